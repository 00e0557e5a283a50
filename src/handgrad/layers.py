"""Layers with or without parameters: Linear, Dropout, Flatten, BatchNorm1d.

Each backward's derivation is in docs/math.md under the layer's name.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad.init import linear_parameters
from handgrad.module import Module, accumulate_grad


def _positive_int(owner: str, name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


class Linear(Module):
    """y = x @ W.T + b.  W: (out, in), b: (out,).  Default init U(±1/sqrt(in)), as torch.

    x may be (in,), (N, in) or (*, in). Backward math: docs/math.md#linear.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str = "torch",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        self.init = init
        self.weight, self.bias = linear_parameters(
            in_features, out_features, bias, init, device=device, dtype=dtype
        )
        self.x: Tensor | None = None

    @classmethod
    def from_weights(cls, weight: Tensor, bias: Tensor | None = None) -> Linear:
        """A layer that uses the given tensors (not copies): weight (out, in), bias (out,)."""
        if not isinstance(weight, Tensor) or weight.dim() != 2 or not weight.is_floating_point():
            raise ValueError(
                "Linear.from_weights: expected a floating weight of shape (out_features, "
                f"in_features), got {getattr(weight, 'dtype', type(weight))} of shape "
                f"{tuple(getattr(weight, 'shape', ()))}"
            )
        out_features, in_features = weight.shape
        if bias is not None and (not isinstance(bias, Tensor) or bias.shape != (out_features,)):
            raise ValueError(
                f"Linear.from_weights: weight is ({out_features}, {in_features}), so bias must "
                f"have shape ({out_features},), got {tuple(getattr(bias, 'shape', ()))}"
            )
        if bias is not None and (bias.dtype != weight.dtype or bias.device != weight.device):
            raise ValueError(
                f"Linear.from_weights: bias is {bias.dtype} on {bias.device}, "
                f"weight is {weight.dtype} on {weight.device}; they must match"
            )
        layer = cls.__new__(cls)
        layer.in_features, layer.out_features, layer.init = in_features, out_features, "given"
        layer.weight, layer.bias, layer.x = weight, bias, None
        return layer

    def _parameter_names(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }

    def forward(self, x: Tensor) -> Tensor:
        self._check_features(x, self.in_features, self.weight)
        self.x = x
        x2 = x if x.dim() == 2 else x.reshape(-1, self.in_features)  # (N, in)
        if self.bias is None:
            y = x2 @ self.weight.T  # (N, out)
        else:
            y = torch.addmm(self.bias, x2, self.weight.T)  # (N, out)
        return y if x.dim() == 2 else y.reshape(*x.shape[:-1], self.out_features)

    def backward(self, dy: Tensor) -> Tensor:  # dy: (..., out)
        x_shape = self._saved(self.x).shape
        dy2 = self._accumulate_param_grads(dy)
        dx = dy2 @ self.weight  # dL/dx = dy W       (N, in)
        return dx if dy.dim() == 2 else dx.reshape(x_shape)

    def backward_params(self, dy: Tensor) -> None:
        self._accumulate_param_grads(dy)  # skips dL/dx = dy W

    def _accumulate_param_grads(self, dy: Tensor) -> Tensor:
        """Add dL/dW and dL/db into .grad; returns dy as (N, out) for dL/dx."""
        x = self._saved(self.x)
        self._check_grad_output(dy, torch.Size((*x.shape[:-1], self.out_features)))
        flat = x.dim() == 2
        dy2 = dy if flat else dy.reshape(-1, self.out_features)  # (N, out)
        x2 = x if flat else x.reshape(-1, self.in_features)  # (N, in)
        accumulate_grad(self.weight, dy2.T @ x2)  # dL/dW = dyᵀ x      (out, in)
        if self.bias is not None:
            accumulate_grad(self.bias, dy2.sum(0))  # dL/db = Σₙ dy      (out,)
        self.x = None  # released: one backward per forward
        return dy2


class Dropout(Module):
    """Inverted dropout: y = x · m / (1 - p), m ~ Bernoulli(1 - p); identity in eval().

    Math: docs/math.md#dropout.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)
        self.mask: Tensor | None = None
        self.shape: torch.Size | None = None

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self.shape = x.shape
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p)  # same draw as torch's dropout
        self.mask = keep.mul_(1.0 / (1.0 - self.p))  # (…) values 0 or 1/(1-p)
        return x * self.mask

    def backward(self, dy: Tensor) -> Tensor:
        shape = self._saved_shape()
        self._check_grad_output(dy, shape)
        mask, self.mask, self.shape = self.mask, None, None  # released: one backward per forward
        return dy if mask is None else dy * mask  # dL/dx = dy · m / (1 - p)

    def _saved_shape(self) -> torch.Size:
        if self.shape is None:
            raise self._no_forward()
        return self.shape


class _Reshape(Module):
    """Base for layers that only relabel elements: dL/dx is dy reshaped to x's shape."""

    def __init__(self) -> None:
        self.shape: torch.Size | None = None
        self.out_shape: torch.Size | None = None

    def _relabel(self, x: Tensor, y: Tensor) -> Tensor:
        self.shape, self.out_shape = x.shape, y.shape
        return y

    def backward(self, dy: Tensor) -> Tensor:
        if self.shape is None or self.out_shape is None:
            raise self._no_forward()
        self._check_grad_output(dy, self.out_shape)
        return dy.reshape(self.shape)  # the same elements, in x's shape


class Flatten(_Reshape):
    """y = x.flatten(start_dim, end_dim); backward reshapes dy back to x's shape.

    Math: docs/math.md#flatten.
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def config(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._short_name()}: expected a tensor, got {type(x).__name__}")
        ndim = max(x.dim(), 1)
        for d in (self.start_dim, self.end_dim):
            if not -ndim <= d < ndim:
                raise ValueError(
                    f"{self._short_name()}: dim {d} is out of range for an input of shape "
                    f"{tuple(x.shape)}"
                )
        return self._relabel(x, x.flatten(self.start_dim, self.end_dim))


class BatchNorm1d(Module):
    """y = γ (x - μ) / sqrt(σ² + eps) + β over the batch (and length) of (N, C) or (N, C, L).

    Training uses the batch's μ, σ² (biased) and updates running stats with `momentum`
    (unbiased σ², as torch); eval uses the running stats. Backward math: docs/math.md#batchnorm1d.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.num_features = _positive_int("BatchNorm1d", "num_features", num_features)
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
        self.xhat: Tensor | None = None
        self.rstd: Tensor | None = None

    def _parameter_names(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def _buffer_names(self) -> tuple[str, ...]:
        return ("running_mean", "running_var", "num_batches_tracked")

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.weight is not None,
        }

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        """Broadcast shape of a per-channel vector against x: (1, C) or (1, C, 1)."""
        return (1, self.num_features) + (1,) * (x.dim() - 2)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if x.dim() not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self._short_name()}: expected input (N, {self.num_features}) or "
                f"(N, {self.num_features}, L), got shape {tuple(x.shape)}"
            )
        dims = [0] if x.dim() == 2 else [0, 2]
        shape = self._shape(x)
        if self.training:
            M = x.numel() // self.num_features
            if M < 2:
                raise ValueError(
                    f"{self._short_name()}: training needs more than one value per channel, "
                    f"got shape {tuple(x.shape)}"
                )
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean, alpha=m)
            self.running_var.mul_(1 - m).add_(var * (M / (M - 1)), alpha=m)
            self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        self.rstd = (var + self.eps).rsqrt().reshape(shape)  # (1, C[, 1])
        self.xhat = (x - mean.reshape(shape)) * self.rstd
        if self.weight is None or self.bias is None:
            return self.xhat
        return self.xhat * self.weight.reshape(shape) + self.bias.reshape(shape)

    def backward(self, dy: Tensor) -> Tensor:
        xhat, rstd = self._saved(self.xhat), self._saved(self.rstd)
        self.xhat = self.rstd = None  # released: one backward per forward
        self._check_grad_output(dy, xhat.shape)
        dims = [0] if dy.dim() == 2 else [0, 2]
        shape = self._shape(dy)
        if self.weight is not None and self.bias is not None:
            accumulate_grad(self.weight, (dy * xhat).sum(dims))  # dL/dγ = Σ dy x̂   (C,)
            accumulate_grad(self.bias, dy.sum(dims))  # dL/dβ = Σ dy      (C,)
            dxhat = dy * self.weight.reshape(shape)  # dL/dx̂ = dy γ
        else:
            dxhat = dy
        if not self.training:
            return dxhat * rstd  # running stats are constants: dL/dx = dx̂ / σ
        mean_dxhat = dxhat.mean(dims, keepdim=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(dims, keepdim=True)
        return rstd * (
            dxhat - mean_dxhat - xhat * mean_dxhat_xhat
        )  # dL/dx = (dx̂ - E[dx̂] - x̂E[dx̂x̂])/σ
