"""Activations. Each pair: y = f(x), and dL/dx = dL/dy ⊙ f′(x) (elementwise; softmax and
log-softmax, taken along a dim, use their Jacobian-vector products). A cache keeps the one
tensor the derivative needs: the input x, or the output y where f′ is a function of y.
Derivations: docs/math.md#activations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "elu_forward",
    "elu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "silu_forward",
    "silu_backward",
    "softplus_forward",
    "softplus_backward",
    "gelu_forward",
    "gelu_backward",
    "softmax_forward",
    "softmax_backward",
    "log_softmax_forward",
    "log_softmax_backward",
]


def relu_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = max(x, 0)."""
    y = x.clamp(min=0)
    return y, y


def relu_backward(dy: Tensor, y: Tensor) -> Tensor:
    return dy * (y > 0)  # dy/dx = 1 where x > 0 (y > 0 exactly there), 0 elsewhere and at 0


def leaky_relu_forward(x: Tensor, negative_slope: float = 0.01) -> tuple[Tensor, tuple]:
    """y = x if x > 0 else negative_slope·x."""
    return torch.where(x > 0, x, x * negative_slope), (x, negative_slope)


def leaky_relu_backward(dy: Tensor, cache: tuple) -> Tensor:
    x, a = cache
    return torch.where(x > 0, dy, dy * a)  # dy/dx = 1 or negative_slope


def elu_forward(x: Tensor, alpha: float = 1.0) -> tuple[Tensor, tuple]:
    """y = x if x > 0 else α(eˣ - 1)."""
    return torch.where(x > 0, x, alpha * torch.expm1(x)), (x, alpha)


def elu_backward(dy: Tensor, cache: tuple) -> Tensor:
    x, alpha = cache
    return torch.where(x > 0, dy, dy * alpha * torch.exp(x))  # dy/dx = 1 or α·eˣ


def sigmoid_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = σ(x) = 1 / (1 + e⁻ˣ)."""
    y = torch.sigmoid(x)
    return y, y


def sigmoid_backward(dy: Tensor, y: Tensor) -> Tensor:
    return dy * y * (1 - y)  # dy/dx = σ(x)(1 - σ(x)) = y(1 - y)


def tanh_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = tanh(x)."""
    y = torch.tanh(x)
    return y, y


def tanh_backward(dy: Tensor, y: Tensor) -> Tensor:
    return dy * (1 - y * y)  # dy/dx = 1 - tanh²(x) = 1 - y²


def silu_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = x·σ(x)."""
    return x * torch.sigmoid(x), x


def silu_backward(dy: Tensor, x: Tensor) -> Tensor:
    s = torch.sigmoid(x)
    return dy * s * (1 + x * (1 - s))  # dy/dx = σ(x)(1 + x(1 - σ(x))), the product rule


def softplus_forward(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> tuple[Tensor, tuple]:
    """y = log(1 + e^{βx}) / β, and y = x where βx > threshold (as torch)."""
    bx = x * beta
    y = torch.where(bx > threshold, x, torch.log1p(torch.exp(bx)) / beta)
    return y, (x, beta, threshold)


def softplus_backward(dy: Tensor, cache: tuple) -> Tensor:
    x, beta, threshold = cache
    bx = x * beta
    return torch.where(bx > threshold, dy, dy * torch.sigmoid(bx))  # dy/dx = σ(βx), 1 there


_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu_forward(x: Tensor, approximate: str = "none") -> tuple[Tensor, tuple]:
    """y = x·Φ(x), Φ the normal CDF;
    approximate="tanh": y = x/2 (1 + tanh(u)), u = √(2/π)(x + 0.044715x³)."""
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + torch.tanh(u)), (x, approximate)
    return 0.5 * x * (1 + torch.erf(x / _SQRT_2)), (x, approximate)


def gelu_backward(dy: Tensor, cache: tuple) -> Tensor:
    x, approximate = cache
    if approximate == "tanh":
        t = torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        du_dx = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)  # (1+t)/2 + x/2 (1-t²) u′
    cdf = 0.5 * (1 + torch.erf(x / _SQRT_2))
    pdf = _INV_SQRT_2PI * torch.exp(-0.5 * x * x)
    return dy * (cdf + x * pdf)  # dy/dx = Φ(x) + x·φ(x)


def softmax_forward(x: Tensor, dim: int = -1) -> tuple[Tensor, tuple]:
    """yᵢ = e^{xᵢ - m} / Σⱼ e^{xⱼ - m} along dim, m = max x (finite for any logits)."""
    e = torch.exp(x - x.amax(dim, keepdim=True))
    y = e / e.sum(dim, keepdim=True)
    return y, (y, dim)


def softmax_backward(dy: Tensor, cache: tuple) -> Tensor:
    y, dim = cache
    return y * (dy - (dy * y).sum(dim, keepdim=True))  # dL/dx = y ⊙ (dy - Σ dy ⊙ y)


def log_softmax_forward(x: Tensor, dim: int = -1) -> tuple[Tensor, tuple]:
    """yᵢ = xᵢ - m - log Σⱼ e^{xⱼ - m} along dim (log-sum-exp, m = max x)."""
    shifted = x - x.amax(dim, keepdim=True)
    y = shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))
    return y, (y, dim)


def log_softmax_backward(dy: Tensor, cache: tuple) -> Tensor:
    y, dim = cache
    return dy - torch.exp(y) * dy.sum(dim, keepdim=True)  # dL/dx = dy - softmax(x) Σ dy
