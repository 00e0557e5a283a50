"""BatchNorm1d and LayerNorm: y = γ x̂ + β, x̂ = (x - μ)/sqrt(σ² + ε). The op pairs are in
handgrad.ops.normalization; derivations in docs/math.md#batchnorm1d and #layernorm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.module import Module
from handgrad.nn.linear import positive_int


class BatchNorm1d(Module):
    """y = γ (x - μ) / sqrt(σ² + eps) + β over the batch (and length) of (N, C) or (N, C, L).

    Training uses the batch's μ, σ² (biased) and updates running stats with `momentum`
    (unbiased σ², as torch); eval uses the running stats. Backward math: docs/math.md#batchnorm1d.
    """

    parameter_names = ("weight", "bias")
    buffer_names = ("running_mean", "running_var", "num_batches_tracked")
    torch_name = "BatchNorm1d"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.num_features = positive_int("BatchNorm1d", "num_features", num_features)
        if eps <= 0 or not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"BatchNorm1d: need eps > 0 and momentum in [0, 1], got {eps}, {momentum}"
            )
        self.eps, self.momentum = eps, momentum
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.ones(num_features, **kw) if affine else None
        self.bias = torch.zeros(num_features, **kw) if affine else None
        self.running_mean = torch.zeros(num_features, **kw)
        self.running_var = torch.ones(num_features, **kw)
        self.num_batches_tracked = torch.tensor(0, dtype=torch.long, device=device)

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.weight is not None,
        }

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if x.dim() not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self._short_name()}: expected input (N, {self.num_features}) or "
                f"(N, {self.num_features}, L), got shape {tuple(x.shape)}"
            )
        if self.training and x.numel() // self.num_features < 2:
            raise ValueError(
                f"{self._short_name()}: training needs more than one value per channel, "
                f"got shape {tuple(x.shape)}"
            )
        if self.training:
            self.num_batches_tracked += 1
        y, cache = ops.batch_norm_forward(
            x,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            self.training,
            self.momentum,
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


class LayerNorm(Module):
    """y = γ (x - μ) / sqrt(σ² + eps) + β, μ and σ² (biased) over each example's last
    len(normalized_shape) dims.  γ = 1, β = 0 of normalized_shape, as torch.nn.LayerNorm.

    Unlike BatchNorm, the statistics are the example's own: the same in training and eval,
    and no running statistics. Backward math: docs/math.md#layernorm.
    """

    parameter_names = ("weight", "bias")
    torch_name = "LayerNorm"

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(shape)
        for n in self.normalized_shape:
            positive_int("LayerNorm", "normalized_shape", n)
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be > 0, got {eps}")
        self.eps, self.elementwise_affine = eps, elementwise_affine
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
            raise ValueError(
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
        dx, _, dweight, dbias = ops.layer_norm_backward(dy, cache)
        self.add_grad(self.weight, dweight)
        self.add_grad(self.bias, dbias)
        return dx
