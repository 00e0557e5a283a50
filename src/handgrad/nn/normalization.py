"""BatchNorm1d, BatchNorm2d and LayerNorm: y = γ x̂ + β, x̂ = (x - μ)/sqrt(σ² + ε). The op
pairs are in handgrad.ops.normalization; derivations in docs/math.md#batchnorm1d-and-batchnorm2d
and #layernorm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from handgrad import kernels, ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.mode import reference_when_compiling
from handgrad.module import Module
from handgrad.validate import check_algorithm, positive_int


def _eps(owner: str, eps: object) -> float:
    if not isinstance(eps, (int, float)) or isinstance(eps, bool):
        raise ArgumentTypeError(f"{owner}: eps must be a number, got {eps!r}")
    if not eps >= 0:
        raise InputError(f"{owner}: eps must be >= 0, got {eps}")
    return eps


class _BatchNorm(Module):
    """y = γ (x - μ) / sqrt(σ² + eps) + β per channel (dim 1), μ and σ² over every other dim.

    Training uses the batch's μ, σ² (biased) and, with track_running_stats, moves the running
    statistics: by `momentum`, or by 1/num_batches_tracked (a cumulative average) when
    momentum is None, with the unbiased σ², as torch. Eval uses the running statistics, or
    the batch's when there are none (track_running_stats=False). affine=False: no γ, β;
    bias=False (keyword-only, as torch): γ only. Backward: docs/math.md#batchnorm1d-and-batchnorm2d.
    """

    parameter_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    expected: str  # the input shapes the class takes, for its error message

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        owner = type(self).__name__
        self.num_features = positive_int(owner, "num_features", num_features)
        self.eps = _eps(owner, eps)
        if momentum is not None and (
            not isinstance(momentum, (int, float)) or isinstance(momentum, bool)
        ):
            raise ArgumentTypeError(f"{owner}: momentum must be a number or None, got {momentum!r}")
        self.momentum = momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        self.use_bias = bool(bias)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.ones(num_features, **kw) if affine else None
        self.bias = torch.zeros(num_features, **kw) if affine and bias else None
        tracked = self.track_running_stats
        self.running_mean = torch.zeros(num_features, **kw) if tracked else None
        self.running_var = torch.ones(num_features, **kw) if tracked else None
        self.num_batches_tracked = (
            torch.tensor(0, dtype=torch.long, device=device) if tracked else None
        )

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
            "bias": self.use_bias,
        }

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        """torch keeps no bias flag: bias=False is an affine module whose bias is None."""
        config = super().config_from_torch(m)
        config["bias"] = m.bias is not None or not m.affine
        return config

    def _check_shape(self, x: Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self._check_shape(x)
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{self._short_name()}: expected input {self.expected} with C = "
                f"{self.num_features} channels, got shape {tuple(x.shape)}"
            )
        for t in (self.weight, self.running_mean):
            if t is not None:
                self._check_like(x, t)
        use_batch = self.training or self.running_mean is None  # batch statistics, as torch
        if use_batch and x.numel() // x.shape[1] == 1:
            raise InputError(
                f"{self._short_name()}: Expected more than 1 value per channel when training, "
                f"got input size {x.shape}"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # the cumulative average of every batch so far
                factor = 1.0 / float(self.num_batches_tracked)
        moved = not self.training or self.track_running_stats  # the stats that take part
        y, cache = ops.batch_norm_forward(
            x,
            self.weight,
            self.bias,
            self.running_mean if moved else None,
            self.running_var if moved else None,
            use_batch,
            factor,
            self.eps,
        )
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx, dweight, dbias = ops.batch_norm_backward(dy, cache)
        self.add_grad(self.weight, dweight)
        self.add_grad(self.bias, dbias)
        return dx


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L): per channel, μ and σ² over N (and L)."""

    torch_name = "BatchNorm1d"
    expected = "(N, C) or (N, C, L)"

    def _check_shape(self, x: Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ShapeError(
                f"{self._short_name()}: expected 2D or 3D input (got {x.dim()}D input): "
                f"(N, {self.num_features}) or (N, {self.num_features}, L), got shape "
                f"{tuple(x.shape)}"
            )


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): per channel, μ and σ² over N, H and W."""

    torch_name = "BatchNorm2d"
    expected = "(N, C, H, W)"

    def _check_shape(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ShapeError(
                f"{self._short_name()}: expected 4D input (got {x.dim()}D input): "
                f"(N, {self.num_features}, H, W), got shape {tuple(x.shape)}"
            )


class LayerNorm(Module):
    """y = γ (x - μ) / sqrt(σ² + eps) + β, μ and σ² (biased) over each example's last
    len(normalized_shape) dims.  γ = 1, β = 0 of normalized_shape, as torch.nn.LayerNorm.

    Unlike BatchNorm, the statistics are the example's own: the same in training and eval,
    and no running statistics. Backward math: docs/math.md#layernorm.

    ``algorithm`` (keyword-only, not part of the saved architecture): "reference" runs
    handgrad.ops.layer_norm_backward, the formula; "fused" runs the same steps in one buffer
    (handgrad.kernels.normalization); "auto" (default) is "fused".
    """

    parameter_names = ("weight", "bias")
    torch_name = "LayerNorm"
    ALGORITHMS = ("auto", "reference", "fused")

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        algorithm: str = "auto",
    ) -> None:
        self.algorithm = check_algorithm("LayerNorm", algorithm, self.ALGORITHMS)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(shape)
        for n in self.normalized_shape:
            positive_int("LayerNorm", "normalized_shape", n)
        self.eps, self.elementwise_affine = _eps("LayerNorm", eps), elementwise_affine
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.ones(self.normalized_shape, **kw) if elementwise_affine else None
        use_bias = elementwise_affine and bias
        self.bias = torch.zeros(self.normalized_shape, **kw) if use_bias else None

    def config(self) -> dict[str, Any]:
        return {
            "normalized_shape": self.normalized_shape,
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias is not None,
        }

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        n = len(self.normalized_shape)
        if x.dim() < n or tuple(x.shape[x.dim() - n :]) != self.normalized_shape:
            dims = ", ".join(map(str, self.normalized_shape))
            raise ShapeError(
                f"{self._short_name()}: expected input (*, {dims}), got shape {tuple(x.shape)}"
            )
        if self.weight is not None:
            self._check_like(x, self.weight)
        y, cache = ops.layer_norm_forward(
            x, self.normalized_shape, self.weight, self.bias, self.eps
        )
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        kernel = (
            ops if reference_when_compiling("LayerNorm", self.algorithm) else kernels.normalization
        )
        dx, _, dweight, dbias = kernel.layer_norm_backward(dy, cache)
        self.add_grad(self.weight, dweight)
        self.add_grad(self.bias, dbias)
        return dx
