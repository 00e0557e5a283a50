"""Max and average pooling over the windows of each channel, on the reference im2col helpers
of handgrad.ops.conv (pad, windows, col2im, crop). Math: docs/math.md#pooling.

x is (N, C, *S) with one or two spatial dims; `padding` is a (before, after) pair per dim.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor

from handgrad.ops.conv import Pairs, col2im, crop, pad, windows

__all__ = ["max_pool_forward", "max_pool_backward", "avg_pool_forward", "avg_pool_backward"]


def max_pool_forward(
    x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Pairs
) -> tuple[Tensor, tuple]:
    """y = the maximum of each window of each channel (padding counts as -inf)."""
    nd = len(kernel_size)
    xp = pad(x, padding, -math.inf)
    win = windows(xp, kernel_size, stride, [1] * nd).flatten(-nd)  # (N, C, *out, K)
    y, index = win.max(-1)  # the first maximum's place in its window, as torch
    return y, (index, tuple(kernel_size), xp.shape, tuple(stride), padding)


def max_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    index, kernel_size, padded_shape, stride, padding = cache
    dwin = dy.new_zeros((*dy.shape, math.prod(kernel_size)))  # (N, C, *out, K)
    dwin.scatter_(-1, index.unsqueeze(-1), dy.unsqueeze(-1))  # dy goes to each window's maximum
    dxp = col2im(dwin.unflatten(-1, kernel_size), padded_shape, stride, [1] * len(stride))
    return crop(dxp, padding)


def avg_pool_forward(
    x: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Pairs
) -> tuple[Tensor, tuple]:
    """y = the mean of each window, zero padding included (torch's count_include_pad=True)."""
    nd = len(kernel_size)
    xp = pad(x, padding)
    y = windows(xp, kernel_size, stride, [1] * nd).flatten(-nd).mean(-1)  # (N, C, *out)
    return y, (tuple(kernel_size), xp.shape, tuple(stride), padding)


def avg_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    kernel_size, padded_shape, stride, padding = cache
    K = math.prod(kernel_size)
    dwin = (dy / K).reshape(*dy.shape, *[1] * len(kernel_size)).expand(*dy.shape, *kernel_size)
    dxp = col2im(dwin, padded_shape, stride, [1] * len(stride))  # dy / K to every window element
    return crop(dxp, padding)
