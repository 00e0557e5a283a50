"""Convolution by im2col, the reference path: every window of the input becomes a
row of a matrix, so a convolution is a Linear layer over windows, y = cols Wᵀ + b, and its
backward is Linear's followed by col2im. Derivation: docs/math.md#convolutions.

x is (N, C, *S) with one, two or three spatial dims (the kernel's). Per spatial dim: `stride`
and `dilation` are ints, `padding` is a (before, after) pair (padding="same" pads the end more
for an even span, as torch). The tuned kernels in handgrad.kernels compute the same functions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "pad",
    "windows",
    "col2im",
    "col2im_add",
    "crop",
    "conv_forward",
    "conv_backward",
]

Pairs = Sequence[tuple[int, int]]


def pad(x: Tensor, padding: Pairs, value: float = 0.0) -> Tensor:
    """x (N, C, *S) with `value` around its spatial dims: (N, C, *(S + before + after))."""
    if not any(a or b for a, b in padding):
        return x
    sizes = [s + a + b for s, (a, b) in zip(x.shape[2:], padding)]
    xp = x.new_full((*x.shape[:2], *sizes), value)
    inside: list[Any] = [slice(a, a + s) for (a, _), s in zip(padding, x.shape[2:])]
    xp[(..., *inside)] = x
    return xp


def windows(
    xp: Tensor, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> Tensor:
    """(N, C, *S) -> (N, C, *out, *kernel): every window, as a strided view (no copy)."""
    w = xp
    for i, (k, s, d) in enumerate(zip(kernel_size, stride, dilation)):
        w = w.unfold(2 + i, d * (k - 1) + 1, s)  # appends a window dim of the dilated span
    if any(d > 1 for d in dilation):
        every_dth: list[Any] = [slice(None, None, d) for d in dilation]
        w = w[(..., *every_dth)]  # every d-th element of a dilated span
    return w


def col2im(
    dwin: Tensor, padded_shape: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> Tensor:
    """The adjoint of windows(): each window's gradient dwin (N, C, *out, *kernel) added back
    where the window came from, into a (N, C, *S) tensor. An element inside several windows
    gets the sum of their gradients."""
    dxp = dwin.new_zeros(tuple(padded_shape))
    col2im_add(dxp, dwin, stride, dilation)
    return dxp


def col2im_add(dxp: Tensor, dwin: Tensor, stride: Sequence[int], dilation: Sequence[int]) -> None:
    """dxp (N, C, *S) += the window gradients dwin (N, C, *out, *kernel), each where its
    window came from: one strided addition per kernel offset."""
    nd = len(stride)
    out, kernel = dwin.shape[2 : 2 + nd], dwin.shape[2 + nd :]
    for offset in itertools.product(*[range(k) for k in kernel]):
        region: list[Any] = [
            slice(o * d, o * d + s * (n - 1) + 1, s)
            for o, d, s, n in zip(offset, dilation, stride, out)
        ]
        at_offset: list[Any] = list(offset)
        dxp[(..., *region)] += dwin[(..., *at_offset)]


def crop(xp: Tensor, padding: Pairs) -> Tensor:
    """The unpadded part of a padded (N, C, *S) tensor, a view."""
    inside: list[Any] = [slice(a, n - b) for (a, b), n in zip(padding, xp.shape[2:])]
    return xp[(..., *inside)]


def conv_forward(
    x: Tensor,
    W: Tensor,
    b: Tensor | None,
    stride: Sequence[int],
    padding: Pairs,
    dilation: Sequence[int],
) -> tuple[Tensor, tuple]:
    """y[n, o, i] = b[o] + Σ_c Σ_k W[o, c, k] · xp[n, c, s·i + d·k] (cross-correlation, as torch).
    x (N, C, *S), W (O, C, *kernel), b (O,) or None -> y (N, O, *out)."""
    N, C, nd, O = x.shape[0], x.shape[1], W.dim() - 2, W.shape[0]
    xp = pad(x, padding)
    win = windows(xp, W.shape[2:], stride, dilation)  # (N, C, *out, *kernel), a view
    out = win.shape[2 : 2 + nd]
    K = math.prod(W.shape[2:])
    cols = win.movedim(1, 1 + nd).reshape(
        N * math.prod(out), C * K
    )  # (N·out, C·K): a row per window
    W2 = W.reshape(O, -1)  # (O, C·K)
    y2 = cols @ W2.T if b is None else torch.addmm(b, cols, W2.T)  # y = cols Wᵀ + b   (N·out, O)
    y = y2.view(N, *out, O).movedim(-1, 1).contiguous()  # (N, O, *out)
    return y, (cols, W, b is not None, xp.shape, stride, padding, dilation)


def conv_backward(
    dy: Tensor, cache: tuple, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """(dL/dx, dL/dW, dL/db) from dy (N, O, *out): Linear's backward over the windows, then
    col2im; dL/dx is None when not needed."""
    cols, W, has_bias, padded_shape, stride, padding, dilation = cache
    N, C, O, nd = dy.shape[0], W.shape[1], W.shape[0], W.dim() - 2
    dy2 = dy.movedim(1, -1).reshape(-1, O)  # (N·out, O)
    dW = (dy2.T @ cols).view(W.shape)  # dL/dW = dyᵀ cols      (O, C, *kernel)
    db = dy2.sum(0) if has_bias else None  # dL/db = Σ dy over images and positions   (O,)
    if not need_dx:
        return None, dW, db
    W2 = W.reshape(O, -1)  # (O, C·K)
    dcols = dy2 @ W2  # dL/dcols = dy W        (N·out, C·K)
    dwin = dcols.view(N, *dy.shape[2:], C, *W.shape[2:]).movedim(1 + nd, 1)  # (N, C, *out, *kernel)
    dx = crop(col2im(dwin, padded_shape, stride, dilation), padding)  # windows summed back
    return dx, dW, db
