"""The lab's Neuron and the Linear layer: y = x Wᵀ + b. Math: docs/math.md#linear."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad import kernels, ops
from handgrad.errors import ArgumentTypeError, ShapeError
from handgrad.init import linear_parameters
from handgrad.mode import autocasting, reference_when_compiling
from handgrad.module import Module
from handgrad.validate import check_algorithm, positive_int


class Linear(Module):
    """y = x @ W.T + b.  W: (out, in), b: (out,).  Default init U(±1/sqrt(in)), as torch.

    x may be (in,), (N, in) or (*, in). Backward math: docs/math.md#linear. handgrad's own
    keyword-only `init`: "torch" (the default, the same draws as torch after the same seed)
    or the other schemes of handgrad.init ("normal": randn(out, in), randn(out), as the lab).

    ``algorithm`` (keyword-only, not part of the saved architecture): "reference" runs
    handgrad.ops.linear_backward and adds dL/dW to .grad; "accumulate" adds dL/dW into an
    existing .grad by the product itself (handgrad.kernels.linear_backward_into: one GEMM
    instead of a product and an addition) where it can: a .grad of dy's dtype, not frozen,
    not under autocast (whose bf16 products are added into the float32 .grad separately);
    "auto" (default) is "accumulate".
    """

    parameter_names = ("weight", "bias")
    torch_name = "Linear"
    ALGORITHMS = ("auto", "reference", "accumulate")

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        init: str = "torch",
        algorithm: str = "auto",
    ) -> None:
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        self.init = init
        self.algorithm = check_algorithm("Linear", algorithm, self.ALGORITHMS)
        self.weight, self.bias = linear_parameters(
            in_features, out_features, bias, init, device=device, dtype=dtype
        )

    @classmethod
    def from_weights(cls, weight: Tensor, bias: Tensor | None = None) -> Linear:
        """A layer that uses the given tensors (not copies): weight (out, in), bias (out,)."""
        for name, t in (("weight", weight), ("bias", bias)):
            if t is not None and not isinstance(t, Tensor):
                raise ArgumentTypeError(
                    f"Linear.from_weights: {name} must be a tensor, got {type(t).__name__}"
                )
        if weight.dim() != 2 or not weight.is_floating_point():
            raise ShapeError(
                "Linear.from_weights: expected a floating weight of shape (out_features, "
                f"in_features), got {getattr(weight, 'dtype', type(weight))} of shape "
                f"{tuple(getattr(weight, 'shape', ()))}"
            )
        out_features, in_features = weight.shape
        if bias is not None and bias.shape != (out_features,):
            raise ShapeError(
                f"Linear.from_weights: weight is ({out_features}, {in_features}), so bias must "
                f"have shape ({out_features},), got {tuple(getattr(bias, 'shape', ()))}"
            )
        if bias is not None and (bias.dtype != weight.dtype or bias.device != weight.device):
            raise ShapeError(
                f"Linear.from_weights: bias is {bias.dtype} on {bias.device}, "
                f"weight is {weight.dtype} on {weight.device}; they must match"
            )
        layer = cls.__new__(cls)
        layer.in_features, layer.out_features, layer.init = in_features, out_features, "given"
        layer.algorithm = "auto"
        layer.weight, layer.bias = weight, bias
        return layer

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
        }

    def forward(self, x: Tensor) -> Tensor:
        self._check_features(x, self.in_features, self.weight)
        y, cache = ops.linear_forward(x, self.weight, self.bias)
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy: Tensor) -> None:
        self._backward(dy, need_dx=False)  # skips dL/dx = dy W

    def _backward(self, dy: Tensor, need_dx: bool) -> Any:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        into = self._weight_grad_to_add_into(dy)
        if into is None:
            dx, dW, db = ops.linear_backward(dy, cache, need_dx)
            self.add_grad(self.weight, dW)
        else:  # dL/dW added into weight.grad by the product itself
            dx, _, db = kernels.linear_backward_into(dy, cache, into, need_dx)
        self.add_grad(self.bias, db)
        return dx

    def _weight_grad_to_add_into(self, dy: Tensor) -> Tensor | None:
        """weight.grad, when algorithm "accumulate" (or "auto") can add dL/dW into it by its
        GEMM; None for "reference", the first gradient (the product becomes .grad), a frozen
        layer, another dtype, and autocast's bf16 products (added into the float32 .grad
        separately)."""
        g = self.weight.grad
        if reference_when_compiling("Linear", self.algorithm):
            return None
        if g is None or self.frozen or g.dtype != dy.dtype or autocasting(dy.device.type):
            return None
        return g


class Neuron(Module):
    """y = x · w + b.  w: (in,), b: (1,); x (in,) gives (1,), x (N, in) gives (N, 1).

    A Linear layer with one output: the same op with W = w as its one row. Init as the lab:
    w = randn(in) then b = randn(1). Backward math: docs/math.md#neuron.
    """

    parameter_names = ("weight", "bias")

    def __init__(
        self,
        in_features: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.in_features = positive_int("Neuron", "in_features", in_features)
        self.weight = torch.randn(in_features, device=device, dtype=dtype)
        self.bias = torch.randn(1, device=device, dtype=dtype)

    @classmethod
    def from_weights(cls, weights: Tensor, bias: Tensor | float) -> Neuron:
        """A neuron with the given weights (in,) and bias (a scalar or one element)."""
        weights = torch.as_tensor(weights)
        if weights.dim() != 1 or weights.numel() == 0 or not weights.is_floating_point():
            raise ShapeError(
                "Neuron.from_weights: expected floating weights of shape (in_features,), "
                f"got {weights.dtype} of shape {tuple(weights.shape)}"
            )
        bias = torch.as_tensor(bias, dtype=weights.dtype, device=weights.device)
        if bias.numel() != 1:
            raise ShapeError(
                "Neuron.from_weights: expected a bias with one element, "
                f"got shape {tuple(bias.shape)}"
            )
        neuron = cls.__new__(cls)
        neuron.in_features = weights.shape[0]
        neuron.weight, neuron.bias = weights, bias.reshape(1)
        return neuron

    def config(self) -> dict[str, Any]:
        return {"in_features": self.in_features}

    def forward(self, x: Tensor) -> Tensor:
        self._check_features(x, self.in_features, self.weight)
        y, cache = ops.linear_forward(x, self.weight.view(1, -1), self.bias)  # (..., 1)
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:  # dy: (..., 1)
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx, dW, db = ops.linear_backward(dy, cache)
        self.add_grad(self.weight, dW.view(-1))  # dL/dw = Σₙ dyₙ xₙ   (in,)
        self.add_grad(self.bias, db)  # dL/db = Σₙ dyₙ      (1,)
        assert dx is not None
        return dx  # dL/dx = dy w   (..., in)
