"""Adaptive average and max pooling, 1-D, 2-D and 3-D: the windows are chosen to give the output
size asked for, torch's [floor(i·L/out), ceil((i+1)·L/out)) along each dim. The op pairs are
in handgrad.ops.pooling; math in docs/math.md#adaptive-pooling.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError
from handgrad.module import Module
from handgrad.nn.pooling import check_spatial_input, pop_batched, push_batched

OutputSize = int | None | tuple[int | None, ...]


class _AdaptivePoolNd(Module):
    """Shared by the adaptive pools: output_size and the input checks."""

    nd = 2
    empty_channels = True  # torch's adaptive max pooling refuses C = 0, its 1-D/2-D average not

    def _set_output_size(self, output_size: OutputSize) -> None:
        name, nd = type(self).__name__, self.nd
        given_tuple = isinstance(output_size, (tuple, list))
        sizes: tuple[Any, ...] = (
            tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size,) * nd
        )  # an int: every dim
        none_ok = nd > 1 and given_tuple  # torch: a None in a tuple keeps that dim's size
        if len(sizes) != nd or not all(
            (s is None and none_ok) or (isinstance(s, int) and not isinstance(s, bool))
            for s in sizes
        ):
            what = "an int" if nd == 1 else f"an int or a tuple of {nd} ints or Nones"
            raise ArgumentTypeError(f"{name}: output_size must be {what}, got {output_size!r}")
        if any(s is not None and s < 0 for s in sizes):
            raise InputError(f"{name}: output_size must be >= 0, got {output_size!r}")
        self.output_size = tuple(output_size) if isinstance(output_size, list) else output_size
        self._sizes = sizes

    def config(self) -> dict[str, Any]:
        return {"output_size": self.output_size}

    def _prepare(self, x: Tensor) -> tuple[Tensor, bool, list[int]]:
        """(N, C, *S) input, whether it was unbatched, and the output size (None: S's)."""
        unbatched = check_spatial_input(self, x, self.nd, empty_channels=self.empty_channels)
        xb = x.unsqueeze(0) if unbatched else x
        out = [L if s is None else s for L, s in zip(xb.shape[2:], self._sizes)]
        return xb, unbatched, out


class _AdaptiveAvgPoolNd(_AdaptivePoolNd):
    """y = the mean of each adaptive window (2-D: y = A_H x A_Wᵀ per channel, A averaging);
    dL/dx = A_Hᵀ dy A_W: each dy shared equally over its window."""

    def __init__(self, output_size: OutputSize) -> None:
        self._set_output_size(output_size)

    def forward(self, x: Tensor) -> Tensor:
        xb, unbatched, out = self._prepare(x)
        y, cache = ops.adaptive_avg_pool_forward(xb, out)
        return push_batched(self, y, cache, unbatched)

    def backward(self, dy: Tensor) -> Tensor:
        return pop_batched(self, ops.adaptive_avg_pool_backward, dy)


class _AdaptiveMaxPoolNd(_AdaptivePoolNd):
    """y = the maximum of each adaptive window; dL/dx: dy to the maximum (the first on ties,
    the last NaN), as torch. return_indices=True: forward returns (y, indices), torch's flat
    places in the input's spatial plane, and backward takes (dy, None)."""

    empty_channels = False

    def __init__(self, output_size: OutputSize, return_indices: bool = False) -> None:
        self._set_output_size(output_size)
        self.return_indices = bool(return_indices)

    def config(self) -> dict[str, Any]:
        return {"output_size": self.output_size, "return_indices": self.return_indices}

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        xb, unbatched, out = self._prepare(x)
        y, cache = ops.adaptive_max_pool_forward(xb, out)
        indices = cache[0].squeeze(0) if unbatched else cache[0]
        y = push_batched(self, y, cache, unbatched)
        return (y, indices) if self.return_indices else y

    def backward(self, dy: Tensor, dindices: None = None) -> Tensor:
        return pop_batched(self, ops.adaptive_max_pool_backward, dy)


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average over adaptive windows of (N, C, L) or (C, L) to (N, C, output_size)."""

    nd, torch_name = 1, "AdaptiveAvgPool1d"


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average over adaptive windows of (N, C, H, W) or (C, H, W); a None in output_size
    keeps that dim's size."""

    nd, torch_name = 2, "AdaptiveAvgPool2d"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows of (N, C, L) or (C, L) to (N, C, output_size)."""

    nd, torch_name = 1, "AdaptiveMaxPool1d"


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows of (N, C, H, W) or (C, H, W); a None in output_size keeps
    that dim's size."""

    nd, torch_name = 2, "AdaptiveMaxPool2d"


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """Average over adaptive windows of (N, C, D, H, W) or (C, D, H, W); a None in
    output_size keeps that dim's size."""

    nd, torch_name = 3, "AdaptiveAvgPool3d"
    empty_channels = False  # torch's 3-D kernel refuses C = 0


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """Max over adaptive windows of (N, C, D, H, W) or (C, D, H, W); a None in output_size
    keeps that dim's size."""

    nd, torch_name = 3, "AdaptiveMaxPool3d"
