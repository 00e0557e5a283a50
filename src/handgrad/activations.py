"""Activations: each docstring gives y and dy/dx; derivations in docs/math.md#activations.

Every activation caches what its backward needs (x or y) in forward and returns
dL/dx = dL/dy · dy/dx in backward (elementwise, except Softmax and LogSoftmax).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from handgrad.module import Module


class Activation(Module):
    """Shared plumbing: input checks in forward, cache checks in backward.

    Each activation keeps one tensor, the one its derivative needs: its input x, or its
    output y where dy/dx is a function of y (ReLU, Sigmoid, Tanh, Softmax). Keeping y costs
    no memory, since the next layer keeps it as its own input anyway.
    """

    def __init__(self) -> None:
        self.saved: Tensor | None = None

    def _remember(self, x: Tensor, keep: Tensor | None = None) -> None:
        """Check the input x; keep `keep` (default: x) for backward."""
        self._check_input(x)
        self.saved = x if keep is None else keep

    def _recall(self, dy: Tensor) -> Tensor:
        """The kept tensor, after checking dy has its shape (x and y share one shape)."""
        kept = self._saved(self.saved)
        self._check_grad_output(dy, kept.shape)
        self.saved = None  # released: one backward per forward, and the memory goes early
        return kept


class Identity(Activation):
    """y = x;  dy/dx = 1.

    Math: docs/math.md#activations.
    """

    def forward(self, x: Tensor) -> Tensor:
        self._remember(x)
        return x

    def backward(self, dy: Tensor) -> Tensor:
        self._recall(dy)
        return dy


class ReLU(Activation):
    """y = max(x, 0);  dy/dx = 1 if x > 0 else 0 (0 at x = 0, as torch).

    Math: docs/math.md#activations.
    """

    def forward(self, x: Tensor) -> Tensor:
        y = x.clamp(min=0)
        self._remember(x, keep=y)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        y = self._recall(dy)
        return dy * (y > 0)  # y > 0 exactly where x > 0


class LeakyReLU(Activation):
    """y = x if x > 0 else negative_slope·x;  dy/dx = 1 or negative_slope.

    Math: docs/math.md#activations.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def forward(self, x: Tensor) -> Tensor:
        self._remember(x)
        return torch.where(x > 0, x, x * self.negative_slope)

    def backward(self, dy: Tensor) -> Tensor:
        x = self._recall(dy)
        return torch.where(x > 0, dy, dy * self.negative_slope)


class ELU(Activation):
    """y = x if x > 0 else α(eˣ - 1);  dy/dx = 1 if x > 0 else α·eˣ.

    Math: docs/math.md#activations.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def forward(self, x: Tensor) -> Tensor:
        self._remember(x)
        return torch.where(x > 0, x, self.alpha * torch.expm1(x))

    def backward(self, dy: Tensor) -> Tensor:
        x = self._recall(dy)
        return torch.where(x > 0, dy, dy * self.alpha * torch.exp(x))


class Sigmoid(Activation):
    """y = σ(x) = 1 / (1 + e⁻ˣ);  dy/dx = y(1 - y).

    Math: docs/math.md#activations.
    """

    def forward(self, x: Tensor) -> Tensor:
        y = torch.sigmoid(x)
        self._remember(x, keep=y)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        y = self._recall(dy)
        return dy * y * (1 - y)


class Tanh(Activation):
    """y = tanh(x);  dy/dx = 1 - y².

    Math: docs/math.md#activations.
    """

    def forward(self, x: Tensor) -> Tensor:
        y = torch.tanh(x)
        self._remember(x, keep=y)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        y = self._recall(dy)
        return dy * (1 - y * y)


class SiLU(Activation):
    """y = x·σ(x);  dy/dx = σ(x)(1 + x(1 - σ(x))).

    Math: docs/math.md#activations.
    """

    def forward(self, x: Tensor) -> Tensor:
        self._remember(x)
        return x * torch.sigmoid(x)

    def backward(self, dy: Tensor) -> Tensor:
        x = self._recall(dy)
        s = torch.sigmoid(x)
        return dy * s * (1 + x * (1 - s))


class Softplus(Activation):
    """y = log(1 + e^{βx}) / β, and y = x where βx > threshold;  dy/dx = σ(βx) (1 there).

    Math: docs/math.md#activations.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        if beta <= 0:
            raise ValueError(f"Softplus: beta must be positive, got {beta}")
        self.beta, self.threshold = float(beta), float(threshold)

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}

    def forward(self, x: Tensor) -> Tensor:
        self._remember(x)
        bx = x * self.beta
        return torch.where(bx > self.threshold, x, torch.log1p(torch.exp(bx)) / self.beta)

    def backward(self, dy: Tensor) -> Tensor:
        x = self._recall(dy)
        bx = x * self.beta
        return torch.where(bx > self.threshold, dy, dy * torch.sigmoid(bx))


_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


class GELU(Activation):
    """y = x·Φ(x), Φ the normal CDF;  dy/dx = Φ(x) + x·φ(x).

    approximate="tanh": y = x/2 (1 + tanh(u)), u = √(2/π)(x + 0.044715x³);
    dy/dx = (1 + t)/2 + x/2 (1 - t²) √(2/π)(1 + 3·0.044715x²), t = tanh(u).
    Math: docs/math.md#activations.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}

    def forward(self, x: Tensor) -> Tensor:
        self._remember(x)
        if self.approximate == "tanh":
            u = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
            return 0.5 * x * (1 + torch.tanh(u))
        return 0.5 * x * (1 + torch.erf(x / _SQRT_2))

    def backward(self, dy: Tensor) -> Tensor:
        x = self._recall(dy)
        if self.approximate == "tanh":
            t = torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
            du_dx = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)
        cdf = 0.5 * (1 + torch.erf(x / _SQRT_2))
        pdf = _INV_SQRT_2PI * torch.exp(-0.5 * x * x)
        return dy * (cdf + x * pdf)


class _AlongDim(Activation):
    """Base for functions taken along one dimension; checks that dim fits the input."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        if not isinstance(dim, int):
            raise TypeError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def _check_dim(self, x: Tensor) -> None:
        ndim = max(x.dim(), 1)
        if not -ndim <= self.dim < ndim:
            raise ValueError(
                f"{self._short_name()}: dim {self.dim} is out of range for an input of shape "
                f"{tuple(x.shape)} (expected -{ndim} <= dim < {ndim})"
            )


class Softmax(_AlongDim):
    """yᵢ = e^{xᵢ - m} / Σⱼ e^{xⱼ - m}, m = max x (finite for any logits);
    dL/dx = y ⊙ (dy - Σ dy ⊙ y), the Jacobian-vector product of diag(y) - y yᵀ.
    Math: docs/math.md#softmax.
    """

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self._check_dim(x)
        e = torch.exp(x - x.amax(self.dim, keepdim=True))
        y = e / e.sum(self.dim, keepdim=True)
        self._remember(x, keep=y)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        y = self._recall(dy)
        return y * (dy - (dy * y).sum(self.dim, keepdim=True))


class LogSoftmax(_AlongDim):
    """yᵢ = xᵢ - m - log Σⱼ e^{xⱼ - m} (log-sum-exp, m = max x);  dL/dx = dy - softmax(x) Σ dy.

    Math: docs/math.md#logsoftmax.
    """

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self._check_dim(x)
        shifted = x - x.amax(self.dim, keepdim=True)
        y = shifted - torch.log(torch.exp(shifted).sum(self.dim, keepdim=True))
        self._remember(x, keep=y)
        return y

    def backward(self, dy: Tensor) -> Tensor:
        y = self._recall(dy)
        return dy - torch.exp(y) * dy.sum(self.dim, keepdim=True)


ACTIVATIONS: dict[str, type[Activation]] = {
    "identity": Identity,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "silu": SiLU,
    "softplus": Softplus,
    "gelu": GELU,
}
