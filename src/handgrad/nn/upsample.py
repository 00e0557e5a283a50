"""Upsample (torch.nn.Upsample, F.interpolate's modes) and its two fixed-mode subclasses.
The op pair is in handgrad.ops.resize ('area' uses adaptive average pooling); math in
docs/math.md#upsample.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.module import Module

_SPATIAL: dict[str, tuple[int, ...]] = {  # mode: the spatial dims it takes
    "nearest": (1, 2, 3),
    "nearest-exact": (1, 2, 3),
    "area": (1, 2, 3),
    "linear": (1,),
    "bilinear": (2,),
    "trilinear": (3,),
    "bicubic": (2,),
}


class Upsample(Module):
    """y (N, C, *size): x (N, C, *S) resized, S of 1, 2 or 3 dims (the input's dims decide,
    as F.interpolate: a 3-D input is (N, C, L)). size, or scale_factor giving
    floor(S · scale_factor); mode:

    - 'nearest': y[i] = x[floor(i · s)], s = 1/scale_factor when given (and not recomputed),
      else S/size; 'nearest-exact': x[floor((i + ½) · s)];
    - 'linear' (3-D input), 'bilinear' (4-D), 'trilinear' (5-D): linear interpolation along
      each dim between the two nearest elements, with align_corners as torch;
    - 'bicubic' (4-D): Keys' cubic convolution (a = -0.75) over four elements along each dim,
      the edge elements repeated past the border;
    - 'area': adaptive average pooling to the output size.

    dL/dx: each dy back to the elements it was read from, with the same weights."""

    torch_name = "Upsample"

    def __init__(
        self,
        size: int | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        name = type(self).__name__
        self.size = tuple(size) if isinstance(size, list) else size
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor: float | tuple[float, ...] | None = tuple(
                float(f) for f in scale_factor
            )
        else:  # torch: a falsy scale_factor (0) counts as none given
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode, self.align_corners = mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor
        if mode == "lanczos":  # torch's Upsample cannot either: it takes no antialias
            raise InputError(f"{name}: mode='lanczos' needs antialias=True, which Upsample lacks")
        if mode not in _SPATIAL:
            raise InputError(
                f"{name}: mode must be one of {', '.join(map(repr, _SPATIAL))}, got {mode!r}"
            )
        if align_corners is not None and mode in ("nearest", "nearest-exact", "area"):
            raise InputError(
                f"{name}: align_corners can only be set with mode 'linear', 'bilinear', "
                f"'bicubic' or 'trilinear', got mode={mode!r}"
            )
        if (self.size is None) == (self.scale_factor is None):
            raise InputError(f"{name}: give exactly one of size and scale_factor")
        if recompute_scale_factor and self.size is not None:
            raise InputError(f"{name}: recompute_scale_factor is not meaningful with a size")
        sizes = self.size if isinstance(self.size, tuple) else (self.size,)
        if self.size is not None and not all(
            isinstance(s, int) and not isinstance(s, bool) for s in sizes
        ):
            raise ArgumentTypeError(f"{name}: size must be an int or a tuple of ints, got {size!r}")

    def config(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "scale_factor": self.scale_factor,
            "mode": self.mode,
            "align_corners": self.align_corners,
            "recompute_scale_factor": self.recompute_scale_factor,
        }

    def _per_dim(self, value: Any, nd: int, what: str, x: Tensor) -> tuple[Any, ...]:
        if not isinstance(value, tuple):
            return (value,) * nd
        if len(value) != nd:
            raise ShapeError(
                f"{self._short_name()}: {what} {value} has {len(value)} dims, the input "
                f"{tuple(x.shape)} has {nd} spatial dims"
            )
        return value

    def _plan(self, x: Tensor) -> tuple[list[int], list[float | None]]:
        """The output size and the scale each dim's taps use (None: the sizes' ratio)."""
        nd = x.dim() - 2
        if self.size is not None:
            return list(self._per_dim(self.size, nd, "size", x)), [None] * nd
        factors = self._per_dim(self.scale_factor, nd, "scale_factor", x)
        out = [int(L * f) for L, f in zip(x.shape[2:], factors)]  # torch truncates
        recompute = self.recompute_scale_factor or self.mode == "area"
        return out, [None] * nd if recompute else list(factors)

    def _check(self, x: Tensor) -> None:
        name = self._short_name()
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ArgumentTypeError(f"{name}: expected a floating-point input, got {x.dtype}")
        if x.dim() - 2 not in _SPATIAL[self.mode]:
            dims = " or ".join(f"{n + 2}-D" for n in _SPATIAL[self.mode])
            raise ShapeError(
                f"{name}: mode {self.mode!r} needs a {dims} input (N, C, *spatial), got "
                f"shape {tuple(x.shape)}"
            )
        if 0 in x.shape[1:]:
            raise ShapeError(f"{name}: expected non-empty C and spatial dims, got {x.shape}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        out, scales = self._plan(x)
        if self.mode == "area":
            y, cache = ops.adaptive_avg_pool_forward(x, out)
        elif any(o <= 0 for o in out):
            raise ShapeError(
                f"{self._short_name()}: output size {tuple(out)} for input "
                f"{tuple(x.shape)}: sizes must be > 0"
            )
        else:
            linear = self.mode in ("linear", "bilinear", "trilinear")
            mode = "linear" if linear else "cubic" if self.mode == "bicubic" else self.mode
            y, cache = ops.interpolate_forward(x, out, mode, bool(self.align_corners), scales)
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        if self.mode == "area":
            return ops.adaptive_avg_pool_backward(dy, cache)
        return ops.interpolate_backward(dy, cache)


class UpsamplingNearest2d(Upsample):
    """Upsample(size, scale_factor, mode='nearest') of a 4-D input (N, C, H, W)."""

    torch_name = "UpsamplingNearest2d"

    def __init__(
        self, size: int | tuple[int, int] | None = None, scale_factor: float | None = None
    ) -> None:
        super().__init__(size, scale_factor, mode="nearest")

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "scale_factor": self.scale_factor}


class UpsamplingBilinear2d(Upsample):
    """Upsample(size, scale_factor, mode='bilinear', align_corners=True) of (N, C, H, W)."""

    torch_name = "UpsamplingBilinear2d"

    def __init__(
        self, size: int | tuple[int, int] | None = None, scale_factor: float | None = None
    ) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "scale_factor": self.scale_factor}
