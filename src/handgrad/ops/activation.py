"""Activations. Each pair: y = f(x), and dL/dx = dL/dy ⊙ f′(x) (elementwise; softmax and
log-softmax, taken along a dim, use their Jacobian-vector products). A cache keeps what the
derivative needs: the input x, the output y where f′ is a function of y, or a mask.

`inplace=True` (torch's option) writes y into x and returns x; the cache then holds y or a
mask, or a copy of x where f′ needs x itself. At a kink each derivative takes torch's value
(ReLU6 and Hardtanh: 0 at both ends; Hardswish: 0 at -3, 1 at 3).
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
    "hardtanh_forward",
    "hardtanh_backward",
    "relu6_forward",
    "relu6_backward",
    "hardsigmoid_forward",
    "hardsigmoid_backward",
    "hardswish_forward",
    "hardswish_backward",
    "mish_forward",
    "mish_backward",
    "log_sigmoid_forward",
    "log_sigmoid_backward",
    "prelu_forward",
    "prelu_backward",
]


def _out(x: Tensor, y: Tensor, inplace: bool) -> Tensor:
    """y, or y written into x (torch's inplace=True: the input tensor is the result)."""
    return x.copy_(y) if inplace else y


def _source(x: Tensor, inplace: bool) -> Tensor:
    """x to compute y from: a copy when forward is about to overwrite x, so that a backward
    that needs x (and autograd, where gradcheck runs these ops) still finds it."""
    return x.clone() if inplace else x


def relu_forward(x: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """y = max(x, 0)."""
    y = _out(x, _source(x, inplace).clamp(min=0), inplace)
    return y, y


def relu_backward(dy: Tensor, y: Tensor) -> Tensor:
    return dy * (y > 0)  # dy/dx = 1 where x > 0 (y > 0 exactly there), 0 elsewhere and at 0


def leaky_relu_forward(
    x: Tensor, negative_slope: float = 0.01, inplace: bool = False
) -> tuple[Tensor, tuple]:
    """y = x if x > 0 else negative_slope·x."""
    v = _source(x, inplace)
    positive = v > 0
    return _out(x, torch.where(positive, v, v * negative_slope), inplace), (
        positive,
        negative_slope,
    )


def leaky_relu_backward(dy: Tensor, cache: tuple) -> Tensor:
    positive, a = cache
    return torch.where(positive, dy, dy * a)  # dy/dx = 1 where x > 0, else negative_slope


def elu_forward(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> tuple[Tensor, tuple]:
    """y = x if x > 0 else α(eˣ - 1)."""
    v = _source(x, inplace)
    positive = v > 0
    y = _out(x, torch.where(positive, v, alpha * torch.expm1(v)), inplace)
    return y, (positive, y if inplace else x, inplace, alpha)


def elu_backward(dy: Tensor, cache: tuple) -> Tensor:
    positive, t, from_y, alpha = cache
    slope = t + alpha if from_y else alpha * torch.exp(t)  # α·eˣ = y + α for x ≤ 0 (as torch)
    return torch.where(positive, dy, dy * slope)  # dy/dx = 1 or α·eˣ


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


def silu_forward(x: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """y = x·σ(x)."""
    v = _source(x, inplace)
    return _out(x, v * torch.sigmoid(v), inplace), v


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
        return 0.5 * x * (1 + torch.tanh(u)), (x, approximate, None)
    cdf = 0.5 * (1 + torch.erf(x * (1 / _SQRT_2)))  # Φ(x) = (1 + erf(x/√2))/2
    return x * cdf, (x, approximate, cdf)  # Φ is kept: backward needs it again


def gelu_backward(dy: Tensor, cache: tuple) -> Tensor:
    x, approximate, cdf = cache
    if approximate == "tanh":
        t = torch.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))
        du_dx = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du_dx)  # (1+t)/2 + x/2 (1-t²) u′
    pdf = torch.exp(-0.5 * x * x) * _INV_SQRT_2PI  # φ(x) = e^{-x²/2}/√(2π)
    return dy * (cdf + x * pdf)  # dL/dx = dy (Φ(x) + x φ(x))


def _shifted(x: Tensor, dim: int) -> Tensor:
    """x - max x along dim (an empty x has no max: nothing to shift)."""
    return x - x.amax(dim, keepdim=True) if x.numel() else x


def softmax_forward(x: Tensor, dim: int = -1) -> tuple[Tensor, tuple]:
    """yᵢ = e^{xᵢ - m} / Σⱼ e^{xⱼ - m} along dim, m = max x (finite for any logits)."""
    e = torch.exp(_shifted(x, dim))
    y = e / e.sum(dim, keepdim=True)
    return y, (y, dim)


def softmax_backward(dy: Tensor, cache: tuple) -> Tensor:
    y, dim = cache
    return y * (dy - (dy * y).sum(dim, keepdim=True))  # dL/dx = y ⊙ (dy - Σ dy ⊙ y)


def log_softmax_forward(x: Tensor, dim: int = -1) -> tuple[Tensor, tuple]:
    """yᵢ = xᵢ - m - log Σⱼ e^{xⱼ - m} along dim (log-sum-exp, m = max x)."""
    shifted = _shifted(x, dim)
    y = shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))
    return y, (y, dim)


def log_softmax_backward(dy: Tensor, cache: tuple) -> Tensor:
    y, dim = cache
    return dy - torch.exp(y) * dy.sum(dim, keepdim=True)  # dL/dx = dy - softmax(x) Σ dy


def hardtanh_forward(
    x: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> tuple[Tensor, Tensor]:
    """y = min(max(x, min_val), max_val)."""
    v = _source(x, inplace)
    inside = (v > min_val) & (v < max_val)  # the open interval: torch's derivative is 0 at the ends
    return _out(x, v.clamp(min_val, max_val), inplace), inside


def hardtanh_backward(dy: Tensor, inside: Tensor) -> Tensor:
    return dy * inside  # dy/dx = 1 for min_val < x < max_val, 0 elsewhere (ends included)


def relu6_forward(x: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """y = min(max(x, 0), 6): Hardtanh(0, 6)."""
    return hardtanh_forward(x, 0.0, 6.0, inplace)


relu6_backward = hardtanh_backward  # dy/dx = 1 for 0 < x < 6, else 0


def hardsigmoid_forward(x: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """y = 0 for x ≤ -3, 1 for x ≥ 3, x/6 + 1/2 between: ReLU6(x + 3)/6."""
    v = _source(x, inplace)
    inside = (v > -3) & (v < 3)
    return _out(x, (v / 6 + 0.5).clamp(0, 1), inplace), inside


def hardsigmoid_backward(dy: Tensor, inside: Tensor) -> Tensor:
    return dy * inside / 6  # dy/dx = 1/6 for -3 < x < 3, else 0


def hardswish_forward(x: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """y = x·ReLU6(x + 3)/6: 0 for x ≤ -3, x for x ≥ 3, x(x + 3)/6 between."""
    v = _source(x, inplace)
    return _out(x, v * (v + 3).clamp(0, 6) / 6, inplace), v


def hardswish_backward(dy: Tensor, x: Tensor) -> Tensor:
    slope = torch.where(x < 3, x / 3 + 0.5, 1.0)  # (2x + 3)/6 between, 1 from x = 3 on
    return dy * torch.where(x > -3, slope, 0.0)  # dy/dx, 0 up to and at x = -3 (as torch)


def mish_forward(x: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """y = x·tanh(softplus(x)), softplus(x) = log(1 + eˣ)."""
    v = _source(x, inplace)
    return _out(x, v * torch.tanh(_softplus(v)), inplace), v


def mish_backward(dy: Tensor, x: Tensor) -> Tensor:
    t = torch.tanh(_softplus(x))
    return dy * (t + x * (1 - t * t) * torch.sigmoid(x))  # t + x(1 - t²)σ(x), softplus′ = σ


def _softplus(x: Tensor) -> Tensor:
    """log(1 + eˣ) = max(x, 0) + log(1 + e^{-|x|}), finite for any x."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


def log_sigmoid_forward(x: Tensor) -> tuple[Tensor, Tensor]:
    """y = log σ(x) = -softplus(-x) = min(x, 0) - log(1 + e^{-|x|}), finite for any x."""
    return x.clamp(max=0) - torch.log1p(torch.exp(-x.abs())), x


def log_sigmoid_backward(dy: Tensor, x: Tensor) -> Tensor:
    return dy * torch.sigmoid(-x)  # dy/dx = 1 - σ(x) = σ(-x)


def prelu_forward(x: Tensor, weight: Tensor) -> tuple[Tensor, tuple]:
    """y = x if x > 0 else a·x, a = weight: one slope, or one per channel (dim 1 of x)."""
    a = _per_channel(weight, x)
    return torch.where(x > 0, x, a * x), (x, a, weight.shape)


def prelu_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, Tensor]:
    """(dL/dx, dL/da)."""
    x, a, weight_shape = cache
    positive = x > 0
    dx = torch.where(positive, dy, a * dy)  # dy/dx = 1 where x > 0, else a (a at 0, as torch)
    da_each = torch.where(positive, 0.0, x * dy)  # dy/da = x where x ≤ 0, else 0
    if weight_shape.numel() == 1:
        return dx, da_each.sum().reshape(weight_shape)  # dL/da = Σ x dy over x ≤ 0
    dims = [d for d in range(x.dim()) if d != 1]
    return dx, da_each.sum(dims).reshape(weight_shape)  # dL/da_c = Σ x dy over x ≤ 0 in c


def _per_channel(weight: Tensor, x: Tensor) -> Tensor:
    """weight shaped to broadcast against x: (1, C, 1, ...) for C slopes, else as it is."""
    if weight.numel() == 1 or x.dim() < 2:
        return weight.reshape(()) if weight.numel() == 1 else weight
    return weight.reshape(1, -1, *[1] * (x.dim() - 2))
