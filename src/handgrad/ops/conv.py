"""Convolution by im2col, the reference path: every window of the input becomes a
row of a matrix, so a convolution is a Linear layer over windows, y = cols Wᵀ + b, and its
backward is Linear's followed by col2im. Derivation: docs/math.md#convolutions.

x is (N, C, *S) with one, two or three spatial dims (the kernel's). Per spatial dim: `stride`
and `dilation` are ints, `padding` is a (before, after) pair (padding="same" pads the end more
for an even span, as torch). `groups` splits the channels into independent convolutions.
The tuned kernels in handgrad.kernels compute the same functions.

Also here: the padding modes that copy x's own elements (edge_pad: reflect, replicate,
circular) and the transposed convolution (conv_transpose: the convolution's dL/dx as a layer).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "pad",
    "windows",
    "col2im",
    "crop",
    "conv_forward",
    "conv_backward",
    "edge_pad_forward",
    "edge_pad_backward",
    "conv_transpose_forward",
    "conv_transpose_backward",
]

Pairs = Sequence[tuple[int, int]]


def pad(x: Tensor, padding: Pairs, value: float = 0.0) -> Tensor:
    """x (N, C, *S) with `value` around its spatial dims: (N, C, *(S + before + after))."""
    if not any(a or b for a, b in padding):
        return x
    flat = [p for pair in reversed(padding) for p in pair]  # torch's order: the last dim first
    return torch.constant_pad_nd(x, flat, value)


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
    where the window read it, into a (N, C, *S) tensor (a scatter-add: an element inside
    several windows gets the sum of their gradients)."""
    N, C, S = padded_shape[0], padded_shape[1], padded_shape[2:]
    nd = len(S)
    out, kernel = dwin.shape[2 : 2 + nd], dwin.shape[2 + nd :]
    place = _window_places(S, out, kernel, stride, dilation, dwin.device)  # (out·kernel,)
    dxp = dwin.new_zeros(N, C, math.prod(S))
    dxp = dxp.index_add(-1, place, dwin.reshape(N, C, place.numel()))  # dxp[place] += dwin
    return dxp.view(tuple(padded_shape))


def _window_places(
    S: Sequence[int],
    out: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    device: torch.device,
) -> Tensor:
    """(out·kernel,): for each window i and kernel offset k, in dwin's order, the flat place
    in the padded input (*S) that the window read, s·i + d·k per dim."""
    nd = len(S)
    place = torch.zeros((), dtype=torch.long, device=device)
    for j, (n, o, k, s, d) in enumerate(zip(S, out, kernel, stride, dilation)):
        along_i = [o if m == j else 1 for m in range(2 * nd)]  # dim j of out
        along_k = [k if m == nd + j else 1 for m in range(2 * nd)]  # dim j of kernel
        i, at = torch.arange(o, device=device), torch.arange(k, device=device)
        place = place * n + (s * i.view(along_i) + d * at.view(along_k))  # row-major over S
    return place.reshape(-1)


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
    groups: int = 1,
) -> tuple[Tensor, tuple]:
    """y[n, o, i] = b[o] + Σ_c Σ_k W[o, c, k] · xp[n, c, s·i + d·k] (cross-correlation, as torch),
    c running over the input channels of o's group. x (N, C, *S), W (O, C/G, *kernel),
    b (O,) or None -> y (N, O, *out). With G groups, each group's O/G outputs see only its
    C/G inputs: G independent convolutions side by side, one batched product."""
    N, C, nd, O, G = x.shape[0], x.shape[1], W.dim() - 2, W.shape[0], groups
    xp = pad(x, padding)
    win = windows(xp, W.shape[2:], stride, dilation)  # (N, C, *out, *kernel), a view
    out = win.shape[2 : 2 + nd]
    K = math.prod(W.shape[2:])
    rows = win.movedim(1, 1 + nd).reshape(N * math.prod(out), G, C // G * K)  # a row per window
    cols = rows.transpose(0, 1)  # (G, N·out, C/G·K): each group's windows
    Wg = W.reshape(G, O // G, -1)  # (G, O/G, C/G·K)
    y3 = cols @ Wg.transpose(1, 2)  # y = cols Wᵀ, per group   (G, N·out, O/G)
    y2 = y3.transpose(0, 1).reshape(-1, O)  # (N·out, O)
    if b is not None:
        y2 = y2 + b  # y = cols Wᵀ + b
    y = y2.view(N, *out, O).movedim(-1, 1).contiguous()  # (N, O, *out)
    return y, (cols, W, b is not None, xp.shape, stride, padding, dilation)


def conv_backward(
    dy: Tensor, cache: tuple, need_dx: bool = True, *, add_back: Callable[..., Tensor] = col2im
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """(dL/dx, dL/dW, dL/db) from dy (N, O, *out): Linear's backward over the windows (per
    group), then col2im (`add_back`: another form of it, kernels.col2im_shifted in a compiled
    step); dL/dx is None when not needed."""
    cols, W, has_bias, padded_shape, stride, padding, dilation = cache
    N, C, O, nd, G = dy.shape[0], padded_shape[1], W.shape[0], W.dim() - 2, cols.shape[0]
    dy2 = dy.movedim(1, -1).reshape(-1, O)  # (N·out, O)
    dyg = dy2.view(-1, G, O // G).transpose(0, 1)  # (G, N·out, O/G)
    dW = (dyg.transpose(1, 2) @ cols).view(W.shape)  # dL/dW = dyᵀ cols, per group   (O, C/G, *k)
    db = dy2.sum(0) if has_bias else None  # dL/db = Σ dy over images and positions   (O,)
    if not need_dx:
        return None, dW, db
    Wg = W.reshape(G, O // G, -1)  # (G, O/G, C/G·K)
    dcols = dyg @ Wg  # dL/dcols = dy W, per group   (G, N·out, C/G·K)
    dwin = dcols.transpose(0, 1).reshape(N, *dy.shape[2:], C, *W.shape[2:]).movedim(1 + nd, 1)
    dx = crop(add_back(dwin, padded_shape, stride, dilation), padding)  # windows summed back
    return dx, dW, db  # dwin: (N, C, *out, *kernel)


# ---- padding by the edges: padding_mode "reflect" | "replicate" | "circular" ----------------
def _source_index(size: int, before: int, after: int, mode: str, device: torch.device) -> Tensor:
    """For each position of the padded dim, the input position it copies."""
    i = torch.arange(-before, size + after, device=device)
    if mode == "reflect":  # mirrored about the first and last element: -1 -> 1, S -> S - 2
        return (size - 1) - ((size - 1) - i.abs()).abs()
    if mode == "replicate":  # the edge element repeated
        return i.clamp(0, size - 1)
    return i.remainder(size)  # circular: the other end wraps around


def edge_pad_forward(x: Tensor, padding: Pairs, mode: str) -> tuple[Tensor, tuple]:
    """xp = x (N, C, *S) padded with copies of its own elements (torch.nn.functional.pad's
    reflect/replicate/circular): xp[..., i] = x[..., src(i)] per spatial dim."""
    sources = []
    xp = x
    for dim, (s, (a, b)) in enumerate(zip(x.shape[2:], padding), start=2):
        src = _source_index(s, a, b, mode, x.device)  # (s + a + b,)
        xp = xp.index_select(dim, src)  # one gather per spatial dim
        sources.append(src)
    return xp, (tuple(x.shape), sources)


def edge_pad_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx: each padded element's gradient added to the input element it copies."""
    x_shape, sources = cache
    dx = dy
    for dim in reversed(range(2, 2 + len(sources))):  # the adjoint of each gather, last first
        size = [x_shape[dim] if j == dim else n for j, n in enumerate(dx.shape)]
        dx = dx.new_zeros(size).index_add(dim, sources[dim - 2], dx)  # dL/dx[src(i)] += dy[i]
    return dx


# ---- transposed convolution: the convolution's dL/dx, as a layer -----------------------------
def conv_transpose_forward(
    x: Tensor,
    W: Tensor,
    b: Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    output_padding: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
) -> tuple[Tensor, tuple]:
    """y = the dL/dx of a convolution with weight W for dy = x, plus b: each input position
    spreads x[n, c, i] · W[c, o, k] over the output window it maps to (s·i + d·k - p).
    x (N, C, *S), W (C, O/G, *kernel), b (O,) or None -> y (N, O, *out) with
    out = (S - 1)·s - 2p + d·(k - 1) + 1 + output_padding."""
    N, C, nd, G = x.shape[0], x.shape[1], W.dim() - 2, groups
    O, kernel, size = W.shape[1] * G, W.shape[2:], x.shape[2:]
    full = [  # the output before cropping `padding` from both ends
        (n - 1) * s + d * (k - 1) + 1 + op
        for n, s, d, k, op in zip(size, stride, dilation, kernel, output_padding)
    ]
    xg = x.movedim(1, -1).reshape(-1, G, C // G).transpose(0, 1)  # (G, N·S, C/G)
    Wg = W.reshape(G, C // G, -1)  # (G, C/G, O/G·K)
    dcols = xg @ Wg  # each input position's window of output: x W, per group   (G, N·S, O/G·K)
    win = dcols.transpose(0, 1).reshape(N, *size, O, *kernel).movedim(1 + nd, 1)  # (N, O, *S, *k)
    pads = [(p, p) for p in padding]
    y = crop(col2im(win, (N, O, *full), stride, dilation), pads)  # windows summed into place
    y = y + b.view(O, *[1] * nd) if b is not None else y.contiguous()  # (N, O, *out)
    return y, (xg, W, b is not None, tuple(size), stride, pads, dilation)


def conv_transpose_backward(
    dy: Tensor, cache: tuple, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """(dL/dx, dL/dW, dL/db) from dy (N, O, *out): the windows of dy (the convolution's
    forward), then x's and W's products per group."""
    xg, W, has_bias, size, stride, pads, dilation = cache
    N, O, nd, G = dy.shape[0], dy.shape[1], W.dim() - 2, xg.shape[0]
    dyp = pad(dy, pads)  # (N, O, *full)
    first: list[Any] = [slice(0, n) for n in size]  # output_padding may leave room for more
    dwin = windows(dyp, W.shape[2:], stride, dilation)[(slice(None), slice(None), *first)]
    dcols = dwin.movedim(1, 1 + nd).reshape(-1, G, W[0].numel()).transpose(0, 1)
    Wg = W.reshape(G, W.shape[0] // G, -1)  # (G, C/G, O/G·K); dcols: (G, N·S, O/G·K)
    dW = (xg.transpose(1, 2) @ dcols).view(W.shape)  # dL/dW = xᵀ dcols, per group   (C, O/G, *k)
    db = dy.transpose(0, 1).reshape(O, -1).sum(1) if has_bias else None  # dL/db = Σ dy   (O,)
    if not need_dx:
        return None, dW, db
    dxg = dcols @ Wg.transpose(1, 2)  # dL/dx = dcols Wᵀ, per group   (G, N·S, C/G)
    dx = dxg.transpose(0, 1).reshape(N, *size, W.shape[0]).movedim(-1, 1).contiguous()  # (N, C, *S)
    return dx, dW, db
