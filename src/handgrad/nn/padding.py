"""Constant padding of the last dims: ZeroPad1d/2d/3d and ConstantPad1d/2d/3d, as torch
(a negative padding crops). The op pair is handgrad.ops.constant_pad_forward/backward;
math in docs/math.md#constant-padding.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, ShapeError
from handgrad.module import Module

Padding = int | tuple[int, ...]


class _ConstantPadNd(Module):
    """y = x with `value` added around its last nd dims; padding is (left, right) for 1-D,
    (left, right, top, bottom) for 2-D, (..., front, back) for 3-D. A negative padding crops.
    dL/dx = dy where x was kept."""

    nd = 1
    value: float = 0.0

    def _set_padding(self, padding: Padding) -> None:
        name, n = type(self).__name__, 2 * self.nd
        t = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * n
        if len(t) != n or not all(isinstance(p, int) and not isinstance(p, bool) for p in t):
            raise ArgumentTypeError(f"{name}: padding must be an int or {n} ints, got {padding!r}")
        self.padding = t

    def config(self) -> dict[str, Any]:
        return {"padding": self.padding, "value": self.value}

    def forward(self, x: Tensor) -> Tensor:
        name = self._short_name()
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() < self.nd:
            raise ShapeError(
                f"{name}: expected an input with at least {self.nd} dims, got {tuple(x.shape)}"
            )
        for j in range(self.nd):
            size, before, after = x.shape[-1 - j], *self.padding[2 * j : 2 * j + 2]
            if size + min(before, 0) + min(after, 0) < 0:
                raise ShapeError(
                    f"{name}: padding ({before}, {after}) crops more than the {size} elements "
                    f"of dim {x.dim() - 1 - j} of the input {tuple(x.shape)}"
                )
        y, cache = ops.constant_pad_forward(x, self.padding, self.value)
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return ops.constant_pad_backward(dy, cache)


class _ConstantPad(_ConstantPadNd):
    def __init__(self, padding: Padding, value: float) -> None:
        self._set_padding(padding)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ArgumentTypeError(f"{type(self).__name__}: value must be a number, got {value!r}")
        self.value = value


class _ZeroPad(_ConstantPadNd):
    def __init__(self, padding: Padding) -> None:
        self._set_padding(padding)

    def config(self) -> dict[str, Any]:
        return {"padding": self.padding}


class ConstantPad1d(_ConstantPad):
    """Pads the last dim of (*, L) with `value`: (*, left + L + right)."""

    nd, torch_name = 1, "ConstantPad1d"


class ConstantPad2d(_ConstantPad):
    """Pads the last two dims of (*, H, W) with `value`."""

    nd, torch_name = 2, "ConstantPad2d"


class ConstantPad3d(_ConstantPad):
    """Pads the last three dims of (*, D, H, W) with `value`."""

    nd, torch_name = 3, "ConstantPad3d"


class ZeroPad1d(_ZeroPad):
    """Pads the last dim of (*, L) with zeros."""

    nd, torch_name = 1, "ZeroPad1d"


class ZeroPad2d(_ZeroPad):
    """Pads the last two dims of (*, H, W) with zeros."""

    nd, torch_name = 2, "ZeroPad2d"


class ZeroPad3d(_ZeroPad):
    """Pads the last three dims of (*, D, H, W) with zeros."""

    nd, torch_name = 3, "ZeroPad3d"
