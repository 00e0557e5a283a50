"""MaxUnpool1d/2d/3d: the inverse of max pooling, putting each value back at the place that
max pooling's indices name (zeros elsewhere). The op pair is handgrad.ops.max_unpool_forward
and _backward; math in docs/math.md#maxunpool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.module import Module
from handgrad.nn.pooling import Size, check_spatial_input, ints


class _MaxUnpoolNd(Module):
    """y = zeros (N, C, *out) with y[indices] = x; out = (in - 1)·stride - 2·padding + kernel
    unless output_size says otherwise (within a stride of it). dL/dx = dy[indices]."""

    nd = 2

    def __init__(self, kernel_size: Size, stride: Size | None = None, padding: Size = 0) -> None:
        name, nd = type(self).__name__, self.nd
        self.kernel_size = ints(name, "kernel_size", kernel_size, nd, 1)
        self.stride = self.kernel_size if stride is None else ints(name, "stride", stride, nd, 1)
        self.padding = ints(name, "padding", padding, nd, 0)

    def config(self) -> dict[str, Any]:  # tuples, as torch's MaxUnpool keeps them
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def _output_size(self, x: Tensor, output_size: Sequence[int] | None) -> list[int]:
        """torch's _unpool_output_size: the default, or output_size checked against it."""
        nd = self.nd
        default = [
            (L - 1) * s - 2 * p + k
            for L, k, s, p in zip(x.shape[2:], self.kernel_size, self.stride, self.padding)
        ]
        if output_size is None:
            return default
        sizes = list(output_size)[-nd:] if len(output_size) == nd + 2 else list(output_size)
        if len(sizes) != nd or not all(isinstance(o, int) for o in sizes):
            raise InputError(
                f"{self._short_name()}: output_size must be {nd} ints (or {nd + 2} with N and "
                f"C), got {output_size!r}"
            )
        for d, (o, dflt, s) in enumerate(zip(sizes, default, self.stride)):
            if not dflt - s < o < dflt + s:
                raise InputError(
                    f"{self._short_name()}: invalid output_size {tuple(output_size)} (dim {d} "
                    f"must be between {dflt - s} and {dflt + s})"
                )
        return sizes

    def forward(
        self, x: Tensor, indices: Tensor, output_size: Sequence[int] | None = None
    ) -> Tensor:
        name = self._short_name()
        unbatched = check_spatial_input(self, x, self.nd)
        if not isinstance(indices, Tensor) or indices.dtype != torch.int64:
            what = indices.dtype if isinstance(indices, Tensor) else type(indices).__name__
            raise ArgumentTypeError(f"{name}: indices must be an int64 tensor, got {what}")
        if indices.shape != x.shape:
            raise ShapeError(
                f"{name}: indices must have the input's shape {tuple(x.shape)}, got "
                f"{tuple(indices.shape)}"
            )
        xb = x.unsqueeze(0) if unbatched else x
        ib = indices.unsqueeze(0) if unbatched else indices
        out = self._output_size(xb, output_size)
        if indices.numel() and not 0 <= int(indices.min()) <= int(indices.max()) < math.prod(out):
            raise ShapeError(
                f"{name}: found an index outside the output's {'x'.join(map(str, out))} places"
            )
        y, cache = ops.max_unpool_forward(xb, ib, out)
        y = y.squeeze(0) if unbatched else y
        self.push_cache((cache, y.shape, unbatched))
        return y

    def backward(self, dy: Tensor) -> tuple[Tensor, None]:
        cache, y_shape, unbatched = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx, _ = ops.max_unpool_backward(dy.unsqueeze(0) if unbatched else dy, cache)
        return (dx.squeeze(0) if unbatched else dx), None


class MaxUnpool1d(_MaxUnpoolNd):
    """The inverse of MaxPool1d: (N, C, L) or (C, L) with its indices to (N, C, L_out)."""

    nd, torch_name = 1, "MaxUnpool1d"


class MaxUnpool2d(_MaxUnpoolNd):
    """The inverse of MaxPool2d: (N, C, H, W) or (C, H, W) with its indices."""

    nd, torch_name = 2, "MaxUnpool2d"


class MaxUnpool3d(_MaxUnpoolNd):
    """The inverse of MaxPool3d: (N, C, D, H, W) or (C, D, H, W) with its indices."""

    nd, torch_name = 3, "MaxUnpool3d"
