"""Activations: each docstring gives y and dy/dx; the op pairs are in handgrad.ops.activation
and the derivations in docs/math.md#activations.

An activation keeps one tensor for backward, the one its derivative needs: its input x, or
its output y where dy/dx is a function of y (ReLU, Sigmoid, Tanh, Softmax). Keeping y costs no
memory, since the next layer keeps it as its own input anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.module import Module


class Activation(Module):
    """Base: forward runs the class's op pair with its config() as keyword arguments."""

    op_pair: tuple[Callable[..., Any], Callable[..., Any]]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        y, cache = self.op_pair[0](x, **self.config())
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return self.op_pair[1](dy, cache)


class Identity(Activation):
    """y = x;  dy/dx = 1."""

    torch_name, cli_name = "Identity", "identity"
    op_pair = (lambda x: (x, None), lambda dy, cache: dy)


class ReLU(Activation):
    """y = max(x, 0);  dy/dx = 1 if x > 0 else 0 (0 at x = 0, as torch)."""

    torch_name, cli_name = "ReLU", "relu"
    op_pair = (ops.relu_forward, ops.relu_backward)


class LeakyReLU(Activation):
    """y = x if x > 0 else negative_slope·x;  dy/dx = 1 or negative_slope."""

    torch_name, cli_name = "LeakyReLU", "leaky_relu"
    op_pair = (ops.leaky_relu_forward, ops.leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = float(negative_slope)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}


class ELU(Activation):
    """y = x if x > 0 else α(eˣ - 1);  dy/dx = 1 if x > 0 else α·eˣ."""

    torch_name, cli_name = "ELU", "elu"
    op_pair = (ops.elu_forward, ops.elu_backward)

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class Sigmoid(Activation):
    """y = σ(x) = 1 / (1 + e⁻ˣ);  dy/dx = y(1 - y)."""

    torch_name, cli_name = "Sigmoid", "sigmoid"
    op_pair = (ops.sigmoid_forward, ops.sigmoid_backward)


class Tanh(Activation):
    """y = tanh(x);  dy/dx = 1 - y²."""

    torch_name, cli_name = "Tanh", "tanh"
    op_pair = (ops.tanh_forward, ops.tanh_backward)


class SiLU(Activation):
    """y = x·σ(x);  dy/dx = σ(x)(1 + x(1 - σ(x)))."""

    torch_name, cli_name = "SiLU", "silu"
    op_pair = (ops.silu_forward, ops.silu_backward)


class Softplus(Activation):
    """y = log(1 + e^{βx}) / β, and y = x where βx > threshold;  dy/dx = σ(βx) (1 there)."""

    torch_name, cli_name = "Softplus", "softplus"
    op_pair = (ops.softplus_forward, ops.softplus_backward)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        if beta <= 0:
            raise ValueError(f"Softplus: beta must be positive, got {beta}")
        self.beta, self.threshold = float(beta), float(threshold)

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class GELU(Activation):
    """y = x·Φ(x), Φ the normal CDF;  dy/dx = Φ(x) + x·φ(x).

    approximate="tanh": y = x/2 (1 + tanh(u)), u = √(2/π)(x + 0.044715x³);
    dy/dx = (1 + t)/2 + x/2 (1 - t²) √(2/π)(1 + 3·0.044715x²), t = tanh(u).
    """

    torch_name, cli_name = "GELU", "gelu"
    op_pair = (ops.gelu_forward, ops.gelu_backward)

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class _AlongDim(Activation):
    """Base for functions taken along one dimension; checks that dim fits the input."""

    def __init__(self, dim: int = -1) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        ndim = max(x.dim(), 1)
        if not -ndim <= self.dim < ndim:
            raise ValueError(
                f"{self._short_name()}: dim {self.dim} is out of range for an input of shape "
                f"{tuple(x.shape)} (expected -{ndim} <= dim < {ndim})"
            )
        return super().forward(x)


class Softmax(_AlongDim):
    """yᵢ = e^{xᵢ - m} / Σⱼ e^{xⱼ - m}, m = max x (finite for any logits);
    dL/dx = y ⊙ (dy - Σ dy ⊙ y), the Jacobian-vector product of diag(y) - y yᵀ.
    Math: docs/math.md#softmax.
    """

    torch_name = "Softmax"
    op_pair = (ops.softmax_forward, ops.softmax_backward)


class LogSoftmax(_AlongDim):
    """yᵢ = xᵢ - m - log Σⱼ e^{xⱼ - m} (log-sum-exp, m = max x);  dL/dx = dy - softmax(x) Σ dy.

    Math: docs/math.md#logsoftmax.
    """

    torch_name = "LogSoftmax"
    op_pair = (ops.log_softmax_forward, ops.log_softmax_backward)
