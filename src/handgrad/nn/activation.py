"""Activations: each docstring gives y and dy/dx; the op pairs are in handgrad.ops.activation
and the derivations in docs/math.md#activations.

An activation keeps one tensor for backward, the one its derivative needs: its input x, its
output y where dy/dx is a function of y (ReLU, Sigmoid, Tanh, Softmax), or a mask where dy/dx
is a constant per region (LeakyReLU, Hardtanh). `inplace=True` writes y into x and returns x,
as torch; a tensor that backward needs and that something later changes in place is
refused at backward (as torch's autograd refuses it), never silently used.
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from handgrad import kernels, ops
from handgrad.errors import ArgumentTypeError, DimensionError, InputError, ShapeError, UsageError
from handgrad.mode import compiling, reference_when_compiling
from handgrad.module import Module
from handgrad.validate import check_algorithm


def _tensors(cache: Any) -> Iterator[Tensor]:
    if isinstance(cache, Tensor):
        yield cache
    elif isinstance(cache, (tuple, list)):
        for c in cache:
            yield from _tensors(c)


def _versions(cache: Any) -> list[int | None]:
    """The version counter of each tensor in a cache (bumped by every in-place change)."""
    if compiling():  # compiled code keeps no version counters (hg.compile_step)
        return []
    try:
        if isinstance(cache, Tensor):  # the one tensor most activations keep: no walk
            return [cache._version]
        return [t._version for t in _tensors(cache)]
    except RuntimeError:  # an inference-mode tensor keeps no counter
        return [None if t.is_inference() else t._version for t in _tensors(cache)]


class Activation(Module):
    """Base: forward runs the class's op pair with its config() as keyword arguments."""

    op_pair: tuple[Callable[..., Any], Callable[..., Any]]

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        return self._run(x, **self.config())

    def _run(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        y, cache = self.op_pair[0](x, *args, **kwargs)
        self.push_cache((cache, _versions(cache), y.shape))
        return y

    def _pop(self, dy: Tensor) -> Any:
        """The cache of the latest forward, after checking dy and that nothing it holds has
        been changed in place since (an inplace=True layer after this one, say)."""
        cache, versions, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        if _versions(cache) != versions:
            raise UsageError(
                f"{self._short_name()}.backward: a tensor saved by its forward was changed in "
                "place since (by an inplace=True layer after it?); torch's autograd refuses "
                "this too"
            )
        return cache

    def backward(self, dy: Tensor) -> Tensor:
        return self.op_pair[1](dy, self._pop(dy))

    def extra_repr(self) -> str:
        """The config, with inplace shown only when True (ReLU(), ReLU(inplace=True), as torch)."""
        shown = {k: v for k, v in self.config().items() if not (k == "inplace" and v is False)}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _inplace(owner: str, inplace: object) -> bool:
    if not isinstance(inplace, int) or inplace not in (0, 1):  # a bool (or 0/1, as torch takes)
        raise ArgumentTypeError(f"{owner}: inplace must be a bool, got {inplace!r}")
    return bool(inplace)


def _number(owner: str, name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ArgumentTypeError(f"{owner}: {name} must be a number, got {value!r}")
    return float(value)


class Identity(Activation):
    """y = x;  dy/dx = 1. Takes and ignores any arguments, as torch.nn.Identity."""

    torch_name, cli_name = "Identity", "identity"
    op_pair = (lambda x: (x, None), lambda dy, cache: dy)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class ReLU(Activation):
    """y = max(x, 0);  dy/dx = 1 if x > 0 else 0 (0 at x = 0, as torch)."""

    torch_name, cli_name = "ReLU", "relu"
    op_pair = (ops.relu_forward, ops.relu_backward)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = _inplace("ReLU", inplace)

    def config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}


class LeakyReLU(Activation):
    """y = x if x > 0 else negative_slope·x;  dy/dx = 1 or negative_slope (that at 0)."""

    torch_name, cli_name = "LeakyReLU", "leaky_relu"
    op_pair = (ops.leaky_relu_forward, ops.leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope)
        self.inplace = _inplace("LeakyReLU", inplace)

    def config(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope, "inplace": self.inplace}


class ELU(Activation):
    """y = x if x > 0 else α(eˣ - 1);  dy/dx = 1 if x > 0 else α·eˣ."""

    torch_name, cli_name = "ELU", "elu"
    op_pair = (ops.elu_forward, ops.elu_backward)

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        self.alpha = _number("ELU", "alpha", alpha)
        self.inplace = _inplace("ELU", inplace)

    def config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "inplace": self.inplace}


class Sigmoid(Activation):
    """y = σ(x) = 1 / (1 + e⁻ˣ);  dy/dx = y(1 - y)."""

    torch_name, cli_name = "Sigmoid", "sigmoid"
    op_pair = (ops.sigmoid_forward, ops.sigmoid_backward)


class Tanh(Activation):
    """y = tanh(x);  dy/dx = 1 - y²."""

    torch_name, cli_name = "Tanh", "tanh"
    op_pair = (ops.tanh_forward, ops.tanh_backward)


class LogSigmoid(Activation):
    """y = log σ(x) = min(x, 0) - log(1 + e^{-|x|}) (finite for any x);  dy/dx = σ(-x)."""

    torch_name = "LogSigmoid"
    op_pair = (ops.log_sigmoid_forward, ops.log_sigmoid_backward)


class SiLU(Activation):
    """y = x·σ(x);  dy/dx = σ(x)(1 + x(1 - σ(x)))."""

    torch_name, cli_name = "SiLU", "silu"
    op_pair = (ops.silu_forward, ops.silu_backward)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = _inplace("SiLU", inplace)

    def config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}


class Mish(Activation):
    """y = x·tanh(softplus(x));  dy/dx = t + x(1 - t²)σ(x), t = tanh(softplus(x))."""

    torch_name, cli_name = "Mish", "mish"
    op_pair = (ops.mish_forward, ops.mish_backward)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = _inplace("Mish", inplace)

    def config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}


class Hardtanh(Activation):
    """y = min(max(x, min_val), max_val);  dy/dx = 1 strictly between, 0 elsewhere and at
    both ends (as torch). min_value/max_value: torch's deprecated names, with its warning."""

    torch_name, cli_name = "Hardtanh", "hardtanh"
    op_pair = (ops.hardtanh_forward, ops.hardtanh_backward)

    def __init__(
        self,
        min_val: float = -1.0,
        max_val: float = 1.0,
        inplace: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
    ) -> None:
        for old, new, value in (
            ("min_value", "min_val", min_value),
            ("max_value", "max_val", max_value),
        ):
            if value is not None:
                warnings.warn(
                    f"keyword argument `{old}` is deprecated and renamed to `{new}`",
                    FutureWarning,
                    stacklevel=3,
                )
        min_val = min_val if min_value is None else min_value
        max_val = max_val if max_value is None else max_value
        self.min_val = _number("Hardtanh", "min_val", min_val)
        self.max_val = _number("Hardtanh", "max_val", max_val)
        self.inplace = _inplace("Hardtanh", inplace)
        if not self.max_val > self.min_val:
            raise InputError(
                f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})"
            )

    def config(self) -> dict[str, Any]:
        return {"min_val": self.min_val, "max_val": self.max_val, "inplace": self.inplace}


class ReLU6(Activation):
    """y = min(max(x, 0), 6);  dy/dx = 1 for 0 < x < 6, else 0 (0 at 0 and 6, as torch)."""

    torch_name, cli_name = "ReLU6", "relu6"
    op_pair = (ops.relu6_forward, ops.relu6_backward)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = _inplace("ReLU6", inplace)

    def config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}


class Hardsigmoid(Activation):
    """y = ReLU6(x + 3)/6;  dy/dx = 1/6 for -3 < x < 3, else 0."""

    torch_name, cli_name = "Hardsigmoid", "hardsigmoid"
    op_pair = (ops.hardsigmoid_forward, ops.hardsigmoid_backward)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = _inplace("Hardsigmoid", inplace)

    def config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}


class Hardswish(Activation):
    """y = x·ReLU6(x + 3)/6;  dy/dx = 0 for x ≤ -3, (2x + 3)/6 for -3 < x < 3, 1 for x ≥ 3
    (torch's values at the kinks)."""

    torch_name, cli_name = "Hardswish", "hardswish"
    op_pair = (ops.hardswish_forward, ops.hardswish_backward)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = _inplace("Hardswish", inplace)

    def config(self) -> dict[str, Any]:
        return {"inplace": self.inplace}


class Softplus(Activation):
    """y = log(1 + e^{βx}) / β, and y = x where βx > threshold;  dy/dx = σ(βx) (1 there)."""

    torch_name, cli_name = "Softplus", "softplus"
    op_pair = (ops.softplus_forward, ops.softplus_backward)

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta = _number("Softplus", "beta", beta)
        self.threshold = _number("Softplus", "threshold", threshold)
        if self.beta == 0:
            raise InputError(f"Softplus: beta must be nonzero, got {beta}")

    def config(self) -> dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}


class GELU(Activation):
    """y = x·Φ(x), Φ the normal CDF;  dy/dx = Φ(x) + x·φ(x).

    approximate="tanh": y = x/2 (1 + tanh(u)), u = √(2/π)(x + 0.044715x³);
    dy/dx = (1 + t)/2 + x/2 (1 - t²) √(2/π)(1 + 3·0.044715x²), t = tanh(u).
    The exact form keeps Φ(x) beside x: its backward needs it again, and erf is the costly part.

    ``algorithm`` (keyword-only, not part of the saved architecture): "reference" runs
    handgrad.ops.gelu_forward/backward, the formulas; "fused" runs the exact form's steps in
    one buffer per pass (handgrad.kernels.activation); "auto" (default) is "fused".
    """

    torch_name, cli_name = "GELU", "gelu"
    ALGORITHMS = ("auto", "reference", "fused")
    FUSED = (kernels.activation.gelu_forward, kernels.activation.gelu_backward)
    REFERENCE = (ops.gelu_forward, ops.gelu_backward)  # the formulas of handgrad.ops

    def __init__(self, approximate: str = "none", *, algorithm: str = "auto") -> None:
        if approximate not in ("none", "tanh"):
            raise InputError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate
        self.algorithm = check_algorithm("GELU", algorithm, self.ALGORITHMS)

    @property
    def op_pair(self) -> tuple[Callable[..., Any], Callable[..., Any]]:  # type: ignore[override]
        """The reference pair or the fused one, by algorithm (read at forward and backward)."""
        return self.REFERENCE if reference_when_compiling("GELU", self.algorithm) else self.FUSED

    def config(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class PReLU(Activation):
    """y = x if x > 0 else a·x, a learned: one slope, or num_parameters = C slopes, one per
    channel (dim 1 of x).  a: (num_parameters,), init 0.25, as torch.nn.PReLU.
    dy/dx = 1 or a (a at x = 0);  dL/da = Σ dy·x over the elements with x ≤ 0."""

    parameter_names = ("weight",)
    torch_name, cli_name = "PReLU", "prelu"
    op_pair = (ops.prelu_forward, ops.prelu_backward)

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not isinstance(num_parameters, int) or isinstance(num_parameters, bool):
            raise ArgumentTypeError(f"PReLU: num_parameters must be an int, got {num_parameters!r}")
        if num_parameters <= 0:
            raise InputError(f"PReLU: num_parameters must be positive, got {num_parameters}")
        self.num_parameters = num_parameters
        self.init = _number("PReLU", "init", init)
        self.weight = torch.full((num_parameters,), self.init, device=device, dtype=dtype)

    def config(self) -> dict[str, Any]:
        return {"num_parameters": self.num_parameters, "init": self.init}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        self._check_like(x, self.weight)
        channels = x.shape[1] if x.dim() > 1 else 1  # a 1-D input is one channel, as torch
        if self.num_parameters != 1 and channels != self.num_parameters:
            raise ShapeError(
                f"{self._short_name()}: expected input (N, {self.num_parameters}, *) with one "
                f"channel per parameter, got shape {tuple(x.shape)}"
            )
        return self._run(x, self.weight)

    def backward(self, dy: Tensor) -> Tensor:
        dx, da = ops.prelu_backward(dy, self._pop(dy))
        self.add_grad(self.weight, da)
        return dx


class _AlongDim(Activation):
    """Base for functions taken along one dimension. dim=None picks torch's implicit dim
    (0 for a 0-, 1- or 3-D input, else 1) with torch's deprecation warning."""

    def __init__(self, dim: int | None = None) -> None:
        if dim is not None and (not hasattr(dim, "__index__") or isinstance(dim, bool)):
            raise ArgumentTypeError(
                f"{type(self).__name__}: dim must be an int or None, got {dim!r}"
            )
        self.dim = None if dim is None else operator.index(dim)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        dim = self.dim
        if dim is None:
            name = "softmax" if isinstance(self, Softmax) else "log_softmax"
            warnings.warn(
                f"Implicit dimension choice for {name} has been deprecated. "
                "Change the call to include dim=X as an argument.",
                UserWarning,
                stacklevel=3,
            )
            dim = 0 if x.dim() in (0, 1, 3) else 1
        ndim = max(x.dim(), 1)
        if not -ndim <= dim < ndim:
            raise DimensionError(
                f"{self._short_name()}: dim {dim} is out of range for an input of shape "
                f"{tuple(x.shape)} (expected -{ndim} <= dim < {ndim})"
            )
        return self._run(x, dim)


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
