"""Max and average pooling over the windows of each channel, 1-D, 2-D and 3-D, with torch's
options (padding, dilation, ceil_mode, return_indices, count_include_pad, divisor_override).
The op pairs are in handgrad.ops.pooling; math in docs/math.md#pooling. Adaptive pooling is
in handgrad.nn.adaptive_pooling.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.module import Module

Size = int | tuple[int, ...]


def push_batched(module: Module, y: Tensor, cache: Any, unbatched: bool) -> Tensor:
    """y of a batched op, as the input was given (without the batch dim for an unbatched
    input); keeps the op's cache with y's shape for pop_batched."""
    y = y.squeeze(0) if unbatched else y
    module.push_cache((cache, y.shape, unbatched))
    return y


def pop_batched(module: Module, op_backward: Any, dy: Tensor) -> Tensor:
    """The backward of a push_batched forward: dy checked against y's shape, the op's backward
    on the batched dy, and dL/dx as the input was given."""
    cache, y_shape, unbatched = module.pop_cache()
    module._check_grad_output(dy, y_shape)
    dx = op_backward(dy.unsqueeze(0) if unbatched else dy, cache)
    return dx.squeeze(0) if unbatched else dx


def ints(owner: str, name: str, value: Any, nd: int, minimum: int) -> tuple[int, ...]:
    """An int or a tuple of nd ints (one int for all dims, as torch), each >= minimum."""
    t = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if len(t) == 1:
        t = t * nd
    if len(t) != nd or not all(isinstance(v, int) and not isinstance(v, bool) for v in t):
        raise ArgumentTypeError(f"{owner}: {name} must be an int or {nd} ints, got {value!r}")
    if any(v < minimum for v in t):
        raise InputError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return t


def _as_given(value: Any) -> Any:
    return tuple(value) if isinstance(value, (tuple, list)) else value


def check_spatial_input(
    module: Module,
    x: Any,
    nd: int,
    *,
    integers: tuple[torch.dtype, ...] = (),
    empty_channels: bool = False,
) -> bool:
    """x is (N, C, *S) or (C, *S) with nd spatial dims, S not empty (nor C, unless
    empty_channels); returns whether it is unbatched."""
    name = module._short_name()
    if not isinstance(x, Tensor):
        raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point() and x.dtype not in integers:
        raise ArgumentTypeError(
            f"{name}: expected a floating-point input, got {x.dtype} (convert with x.float())"
        )
    dims = {1: "L", 2: "H, W"}.get(nd, "D, H, W")
    first = -nd if empty_channels else -nd - 1
    if x.dim() not in (nd + 1, nd + 2) or 0 in x.shape[first:]:
        raise ShapeError(
            f"{name}: expected input (N, C, {dims}) or (C, {dims}), "
            f"{dims if empty_channels else 'C, ' + dims} non-empty, got shape {tuple(x.shape)}"
        )
    return x.dim() == nd + 1


class _PoolNd(Module):
    """Shared by max and average pooling: the window geometry and the input checks."""

    nd = 2
    integers: tuple[torch.dtype, ...] = ()  # the integer dtypes torch's kernel takes too

    def _setup(self, kernel_size: Size, stride: Size | None, padding: Size) -> None:
        name, nd = type(self).__name__, self.nd
        self.kernel_size = ints(name, "kernel_size", kernel_size, nd, 1)
        no_stride = stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0)
        self.stride = self.kernel_size if no_stride else ints(name, "stride", stride, nd, 1)
        self.padding = ints(name, "padding", padding, nd, 0)
        # config() gives the arguments as given, so torch's twin holds the same attributes
        self._given = {
            "kernel_size": _as_given(kernel_size),
            "stride": _as_given(kernel_size if no_stride else stride),
            "padding": _as_given(padding),
        }
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise InputError(
                f"{name}: padding must be at most half the kernel size, got "
                f"padding={self.padding} and kernel_size={self.kernel_size}"
            )

    def _output_size(self, x: Tensor, dilation: tuple[int, ...], ceil_mode: bool) -> list[int]:
        """torch's output size, refused below 1."""
        out = [
            ops.pool_output_size(L, k, s, (p, p), d, ceil_mode)
            for L, k, s, p, d in zip(
                x.shape[-self.nd :], self.kernel_size, self.stride, self.padding, dilation
            )
        ]
        if any(o < 1 for o in out):
            raise ShapeError(
                f"{self._short_name()}: input of shape {tuple(x.shape)} gives an output size "
                f"of {tuple(out)}: too small"
            )
        return out

    def _batched(self, x: Tensor) -> tuple[Tensor, bool]:
        unbatched = check_spatial_input(self, x, self.nd, integers=self.integers)
        return (x.unsqueeze(0) if unbatched else x), unbatched


class _MaxPoolNd(_PoolNd):
    """y = the maximum of each (dilated) window of each channel; padding is never picked.
    dL/dx: dy goes to the window's maximum (the first on ties, the last NaN), as torch.
    With return_indices=True forward returns (y, indices), indices as torch's (the flat place
    in the input's spatial plane, int64), and backward takes (dy, None)."""

    def __init__(
        self,
        kernel_size: Size,
        stride: Size | None = None,
        padding: Size = 0,
        dilation: Size = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        self._setup(kernel_size, stride, padding)
        self.dilation = ints(type(self).__name__, "dilation", dilation, self.nd, 1)
        self._given["dilation"] = _as_given(dilation)
        self.return_indices = bool(return_indices)
        self.ceil_mode = bool(ceil_mode)

    def config(self) -> dict[str, Any]:
        return {
            **self._given,
            "return_indices": self.return_indices,
            "ceil_mode": self.ceil_mode,
        }

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        xb, unbatched = self._batched(x)  # (N, C, *S)
        self._output_size(x, self.dilation, self.ceil_mode)
        pads = [(p, p) for p in self.padding]
        y, cache = ops.max_pool_forward(
            xb, self.kernel_size, self.stride, pads, self.dilation, self.ceil_mode
        )
        indices = cache[0].squeeze(0) if unbatched else cache[0]
        y = push_batched(self, y, cache, unbatched)
        return (y, indices) if self.return_indices else y

    def backward(self, dy: Tensor, dindices: None = None) -> Tensor:
        return pop_batched(self, ops.max_pool_backward, dy)


class _AvgPoolNd(_PoolNd):
    """y = Σ window / divisor, the divisor by torch's rules: divisor_override if given; else
    the window's size clipped to the padded input (count_include_pad=True) or to the input
    (False); with ceil_mode, the part of a window past the padding is never counted.
    dL/dx = dy / divisor to every element of the window. An int64 input gives torch's
    integer quotient (rounded toward zero)."""

    integers = (torch.int64,)

    divisor_override: int | None = None

    def _set_options(self, ceil_mode: bool, count_include_pad: bool) -> None:
        self.ceil_mode = bool(ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def config(self) -> dict[str, Any]:
        return {
            **self._given,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }

    def forward(self, x: Tensor) -> Tensor:
        xb, unbatched = self._batched(x)  # (N, C, *S)
        self._output_size(x, (1,) * self.nd, self.ceil_mode)
        pads = [(p, p) for p in self.padding]
        y, cache = ops.avg_pool_forward(
            xb,
            self.kernel_size,
            self.stride,
            pads,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )
        return push_batched(self, y, cache, unbatched)

    def backward(self, dy: Tensor) -> Tensor:
        return pop_batched(self, ops.avg_pool_backward, dy)


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) or (C, L)."""

    nd, torch_name = 1, "MaxPool1d"


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W) or (C, H, W), of floating or integer values (as
    torch's kernel; its MaxPool1d takes floating values only)."""

    nd, torch_name = 2, "MaxPool2d"
    integers = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class AvgPool1d(_AvgPoolNd):
    """Average over windows of (N, C, L) or (C, L)."""

    nd, torch_name = 1, "AvgPool1d"

    def __init__(
        self,
        kernel_size: Size,
        stride: Size | None = None,
        padding: Size = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        self._setup(kernel_size, stride, padding)
        self._set_options(ceil_mode, count_include_pad)


class _AvgPoolOverrideNd(_AvgPoolNd):
    """AvgPool2d/3d: divisor_override, if given, divides every window's sum instead."""

    def __init__(
        self,
        kernel_size: Size,
        stride: Size | None = None,
        padding: Size = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        self._setup(kernel_size, stride, padding)
        self._set_options(ceil_mode, count_include_pad)
        name = type(self).__name__
        if divisor_override is not None:
            if not isinstance(divisor_override, int) or isinstance(divisor_override, bool):
                raise ArgumentTypeError(
                    f"{name}: divisor_override must be an int or None, got {divisor_override!r}"
                )
            if divisor_override == 0:
                raise InputError(f"{name}: divisor_override must not be zero")
        self.divisor_override = divisor_override

    def config(self) -> dict[str, Any]:
        return {**super().config(), "divisor_override": self.divisor_override}


class AvgPool2d(_AvgPoolOverrideNd):
    """Average over windows of (N, C, H, W) or (C, H, W)."""

    nd, torch_name = 2, "AvgPool2d"


class MaxPool3d(_MaxPoolNd):
    """Max over windows of (N, C, D, H, W) or (C, D, H, W), of floating or integer values."""

    nd, torch_name = 3, "MaxPool3d"
    integers = MaxPool2d.integers


class AvgPool3d(_AvgPoolOverrideNd):
    """Average over windows of (N, C, D, H, W) or (C, D, H, W)."""

    nd, torch_name = 3, "AvgPool3d"


class _LPPoolNd(_PoolNd):
    """y = (Σ_window x^p)^(1/p), by torch's formula: (sign(a)·relu(|a|)·K)^(1/p) with a the
    average of x^p over the window (K its size). p = 1: sum pooling; large p: near max pooling.
    dL/dx through each step (docs/math.md#lppool)."""

    def __init__(
        self,
        norm_type: float,
        kernel_size: Size,
        stride: Size | None = None,
        ceil_mode: bool = False,
    ) -> None:
        name = type(self).__name__
        if not isinstance(norm_type, (int, float)) or isinstance(norm_type, bool):
            raise ArgumentTypeError(f"{name}: norm_type must be a number, got {norm_type!r}")
        if norm_type == 0:
            raise InputError(f"{name}: norm_type must not be 0 (y = (Σ x^p)^(1/p))")
        self.norm_type = norm_type
        self._setup(kernel_size, stride, 0)
        del self._given["padding"]
        self._given["stride"] = _as_given(stride)  # torch keeps stride=None as None here
        self.ceil_mode = bool(ceil_mode)

    def config(self) -> dict[str, Any]:
        return {"norm_type": self.norm_type, **self._given, "ceil_mode": self.ceil_mode}

    def forward(self, x: Tensor) -> Tensor:
        xb, unbatched = self._batched(x)  # (N, C, *S)
        self._output_size(x, (1,) * self.nd, self.ceil_mode)
        y, cache = ops.lp_pool_forward(
            xb, self.norm_type, self.kernel_size, self.stride, self.ceil_mode
        )
        return push_batched(self, y, cache, unbatched)

    def backward(self, dy: Tensor) -> Tensor:
        return pop_batched(self, ops.lp_pool_backward, dy)


class LPPool1d(_LPPoolNd):
    """Power-average pooling over windows of (N, C, L) or (C, L)."""

    nd, torch_name = 1, "LPPool1d"


class LPPool2d(_LPPoolNd):
    """Power-average pooling over windows of (N, C, H, W) or (C, H, W)."""

    nd, torch_name = 2, "LPPool2d"


class LPPool3d(_LPPoolNd):
    """Power-average pooling over windows of (N, C, D, H, W) or (C, D, H, W)."""

    nd, torch_name = 3, "LPPool3d"
