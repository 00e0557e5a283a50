"""Padding of the last dims, as torch (a negative padding crops): with a constant,
ZeroPad1d/2d/3d and ConstantPad1d/2d/3d (handgrad.ops.constant_pad_forward/backward; math in
docs/math.md#constant-padding); with the input's own elements, ReflectionPad, ReplicationPad
and CircularPad 1d/2d/3d (handgrad.ops.edge_pad_forward/backward, conv's padding_mode).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, ShapeError
from handgrad.module import Module

Padding = int | tuple[int, ...]


class _PadNd(Module):
    """Shared by the padding modules: padding, torch's flat (left, right, top, bottom, ...)."""

    nd = 1
    max_length = 1 << 30  # F.pad's constant mode pads any number of dims
    padding: tuple[int, ...]

    def _set_padding(self, padding: Padding) -> None:
        """An int pads the class's nd dims on both sides; a tuple, as torch keeps it, pads
        len/2 last dims, whatever nd (torch's ZeroPad2d((1, 1)) pads the last dim only)."""
        name, n = type(self).__name__, 2 * self.nd
        t = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * n
        if (
            (not t and self.max_length <= 6)  # F.pad's other modes need a padding
            or len(t) % 2
            or len(t) > self.max_length
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in t)
        ):
            raise ArgumentTypeError(
                f"{name}: padding must be an int or {n} ints (an even number of ints, "
                f"(left, right, top, bottom, ...)), got {padding!r}"
            )
        self.padding = t
        self.padded_dims = len(t) // 2


class _ConstantPadNd(_PadNd):
    """y = x with `value` added around its last nd dims; padding is (left, right) for 1-D,
    (left, right, top, bottom) for 2-D, (..., front, back) for 3-D. A negative padding crops.
    dL/dx = dy where x was kept."""

    value: float = 0.0

    def config(self) -> dict[str, Any]:
        return {"padding": self.padding, "value": self.value}

    def forward(self, x: Tensor) -> Tensor:
        name = self._short_name()
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() < self.padded_dims:
            raise ShapeError(
                f"{name}: expected an input with at least {self.padded_dims} dims, got "
                f"{tuple(x.shape)}"
            )
        for j in range(self.padded_dims):
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


class _EdgePadNd(_PadNd):
    """y = x padded with copies of its own elements along its last nd dims (torch's reflect,
    replicate or circular F.pad): y[.., i] = x[.., src(i)] per dim; a negative padding crops.
    dL/dx[j] = Σ dy[i] over the places i that copy j. Input (N, C, *S) or (C, *S). Circular
    padding with a negative side crops first and wraps the rest, as torch."""

    mode = "reflect"
    max_length = 6  # F.pad's other modes pad 1, 2 or 3 dims

    def __init__(self, padding: Padding) -> None:
        self._set_padding(padding)

    def config(self) -> dict[str, Any]:
        return {"padding": self.padding}

    def _check(self, x: Any) -> None:
        name, nd = self._short_name(), self.padded_dims
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        empty_ok = 1 if self.mode == "circular" else 0  # torch's circular takes C = 0
        dims: tuple[int, ...] = (nd + 1, nd + 2)
        if self.mode == "circular":  # torch's CircularPadNd checks its own dims as well
            dims = tuple(d for d in dims if d in (self.nd + 1, self.nd + 2))
        if x.dim() not in dims or 0 in x.shape[x.dim() - nd - 1 + empty_ok :]:
            raise ShapeError(
                f"{name}: expected input (N, C, *S) or (C, *S) with {nd} non-empty spatial "
                f"dims, got shape {tuple(x.shape)}"
            )
        for j in range(nd):
            size, (before, after) = x.shape[-1 - j], self.padding[2 * j : 2 * j + 2]
            kept = size + min(before, 0) + min(after, 0)  # what a crop leaves
            what = None
            if kept < 0:
                what = "crops more than the input"
            elif self.mode == "reflect" and max(before, after) >= size:
                what = "must be smaller than the input's size"
            elif self.mode == "circular" and max(before, after) > kept:
                what = "must be at most the (cropped) input's size: it wraps around once"
            elif self.mode != "circular" and size + before + after < 1:
                what = "leaves no element"
            if what:
                raise ShapeError(
                    f"{name}: padding ({before}, {after}) of dim {x.dim() - 1 - j} {what}, "
                    f"input {tuple(x.shape)}"
                )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        nd = self.padded_dims
        unbatched = x.dim() == nd + 1
        xb = x.unsqueeze(0) if unbatched else x  # (N, C, *S)
        crop_cache = None
        padding = self.padding
        if self.mode == "circular" and min(padding) < 0:  # torch crops first, then wraps
            xb, crop_cache = ops.constant_pad_forward(xb, [min(p, 0) for p in padding])
            padding = tuple(max(p, 0) for p in padding)
        pairs = [(padding[2 * j], padding[2 * j + 1]) for j in reversed(range(nd))]
        y, cache = ops.edge_pad_forward(xb, pairs, self.mode)  # pairs: first spatial dim first
        y = y.squeeze(0) if unbatched else y
        self.push_cache((cache, crop_cache, y.shape, unbatched))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, crop_cache, y_shape, unbatched = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx = ops.edge_pad_backward(dy.unsqueeze(0) if unbatched else dy, cache)
        if crop_cache is not None:
            dx = ops.constant_pad_backward(dx, crop_cache)  # zero where circular cropped
        return dx.squeeze(0) if unbatched else dx


class ReflectionPad1d(_EdgePadNd):
    """Pads the last dim of (N, C, L) or (C, L) with its mirror image (the edge not repeated)."""

    nd, mode, torch_name = 1, "reflect", "ReflectionPad1d"


class ReflectionPad2d(_EdgePadNd):
    """Pads the last two dims of (N, C, H, W) or (C, H, W) with their mirror image."""

    nd, mode, torch_name = 2, "reflect", "ReflectionPad2d"


class ReflectionPad3d(_EdgePadNd):
    """Pads the last three dims of (N, C, D, H, W) or (C, D, H, W) with their mirror image."""

    nd, mode, torch_name = 3, "reflect", "ReflectionPad3d"


class ReplicationPad1d(_EdgePadNd):
    """Pads the last dim of (N, C, L) or (C, L) with copies of its edge element."""

    nd, mode, torch_name = 1, "replicate", "ReplicationPad1d"


class ReplicationPad2d(_EdgePadNd):
    """Pads the last two dims of (N, C, H, W) or (C, H, W) with copies of their edges."""

    nd, mode, torch_name = 2, "replicate", "ReplicationPad2d"


class ReplicationPad3d(_EdgePadNd):
    """Pads the last three dims of (N, C, D, H, W) or (C, D, H, W) with copies of their edges."""

    nd, mode, torch_name = 3, "replicate", "ReplicationPad3d"


class CircularPad1d(_EdgePadNd):
    """Pads the last dim of (N, C, L) or (C, L) with its other end (wraps around)."""

    nd, mode, torch_name = 1, "circular", "CircularPad1d"


class CircularPad2d(_EdgePadNd):
    """Pads the last two dims of (N, C, H, W) or (C, H, W) with their other ends."""

    nd, mode, torch_name = 2, "circular", "CircularPad2d"


class CircularPad3d(_EdgePadNd):
    """Pads the last three dims of (N, C, D, H, W) or (C, D, H, W) with their other ends."""

    nd, mode, torch_name = 3, "circular", "CircularPad3d"
