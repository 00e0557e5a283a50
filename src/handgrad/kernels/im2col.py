"""Tuned im2col: the reference convolution of handgrad.ops.conv, laid out for speed.

The same math as the reference (every window a column, one matrix product), with these
trade-offs, each measured on the benchmarks' shapes (docs/benchmarks.md):
- the columns are laid out (C·K, N·out), so y = W cols + b and dL/dW = dy colsᵀ are single
  products over the whole batch;
- from `per_image_from` output positions per image on, y is one product per image (MKL runs
  those faster than one very wide product, and y comes out in (N, O, *out) order, no copy),
  and dL/dx goes through col2im in chunks of images of about `chunk_bytes`, so each chunk's
  dL/dcols is added back while it is in the cache;
- padded input, columns and their gradients live in the layer's Workspace (no fresh large
  allocation every step).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from handgrad.kernels.workspace import Workspace, fill_outside
from handgrad.ops.conv import col2im, crop, pad, windows

Pairs = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class Im2col:
    """The tuned im2col kernel; ``algorithm="im2col"`` is ``Im2col()``."""

    name: ClassVar[str] = "im2col"

    per_image_from: int = 64  # output positions per image from which y is a product per image
    chunk_bytes: int = 4 << 20  # dL/dcols per col2im chunk

    def forward(
        self,
        x: Tensor,
        W: Tensor,
        b: Tensor | None,
        stride: Sequence[int],
        padding: Pairs,
        dilation: Sequence[int],
        ws: Workspace,
        groups: int = 1,
    ) -> tuple[Tensor, tuple]:
        N, C, nd, O, G = x.shape[0], x.shape[1], W.dim() - 2, W.shape[0], groups
        kernel = W.shape[2:]
        xp = _pad_into(ws, x, padding)
        win = windows(xp, kernel, stride, dilation)  # (N, C, *out, *k), a view
        out = win.shape[2 : 2 + nd]
        rows, P = C * math.prod(kernel), math.prod(out)  # C·K, positions per image
        # groups: rows are G blocks of C/G·K (channel-major), one product per group
        rows_first = [1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd)]  # (C, *k, N, *out)
        cols = ws.take("cols", (C, *kernel, N, *out), x)
        cols.copy_(win.permute(rows_first))
        cols2 = cols.view(rows, N * P)  # (C·K, N·out)
        if xp is not x:
            ws.give_back("xp", xp)
        W2 = W.reshape(O, rows // G)  # (O, C/G·K)
        if G > 1:  # one product per group over the whole batch: (G, O/G, C/G·K)(G, C/G·K, N·out)
            y_t = ws.take("y_t", (O, N * P), x)  # (O, N·out)
            Wg = W2.view(G, O // G, rows // G)
            colsg, yg = cols2.view(G, rows // G, N * P), y_t.view(G, O // G, N * P)
            if b is None:
                torch.bmm(Wg, colsg, out=yg)  # y = W cols, per group
            else:
                torch.baddbmm(b.view(G, -1, 1), Wg, colsg, out=yg)  # y = W cols + b, per group
            y = y_t.view(O, N, *out).movedim(0, 1).contiguous()  # (N, O, *out)
            ws.give_back("y_t", y_t)
        elif P >= self.per_image_from:  # (O, C·K)(C·K, out) per image, straight into (N, O, out)
            per_image = cols2.view(rows, N, P).transpose(0, 1)  # (N, C·K, out)
            Wn = W2.expand(N, O, rows)
            y3 = (
                torch.bmm(Wn, per_image)
                if b is None
                else torch.baddbmm(b.view(1, -1, 1), Wn, per_image)
            )
            y = y3.view(N, O, *out)  # y = W cols + b
        else:
            y_t = ws.take("y_t", (O, N * P), x)  # (O, N·out)
            if b is None:
                torch.mm(W2, cols2, out=y_t)  # y = W cols
            else:
                torch.addmm(b.view(-1, 1), W2, cols2, out=y_t)  # y = W cols + b
            y = y_t.view(O, N, *out).movedim(0, 1).contiguous()  # (N, O, *out)
            ws.give_back("y_t", y_t)
        return y, (cols, W, b is not None, xp.shape, stride, padding, dilation)

    def release(self, cache: tuple, ws: Workspace) -> None:
        """Give back the columns of a cache that no backward will use."""
        ws.give_back("cols", cache[0])

    def backward(
        self, dy: Tensor, cache: tuple, ws: Workspace, need_dx: bool = True
    ) -> tuple[Tensor | None, Tensor, Tensor | None]:
        cols, W, has_bias, padded_shape, stride, padding, dilation = cache
        N, O, out = dy.shape[0], dy.shape[1], dy.shape[2:]
        G = cols.shape[0] // W.shape[1]  # cols: (C, *k, N, *out), W: (O, C/G, *k)
        P, rows = math.prod(out), W[0].numel() * G  # positions per image, C·K
        cols2 = cols.view(rows, N * P)
        dy_t = ws.take("dy_t", (O, N * P), dy)  # (O, N·out)
        dy_t.view(O, N, P).copy_(dy.reshape(N, O, P).movedim(1, 0))
        dy_g, cols_g = dy_t.view(G, O // G, N * P), cols2.view(G, rows // G, N * P)
        if G == 1:
            dW = (dy_t @ cols2.T).reshape(W.shape)  # dL/dW = dy colsᵀ
        else:
            dW = torch.bmm(dy_g, cols_g.transpose(1, 2)).reshape(W.shape)  # per group
        db = dy_t.sum(1) if has_bias else None  # dL/db = Σ dy over images and positions
        ws.give_back("cols", cols)
        if not need_dx:
            ws.give_back("dy_t", dy_t)
            return None, dW, db
        W2 = W.reshape(O, rows // G)
        if P < self.per_image_from or G > 1:
            dcols = ws.take("dcols", (rows, N * P), dy)
            if G == 1:
                torch.mm(W2.T, dy_t, out=dcols)  # dL/dcols = Wᵀ dy   (C·K, N·out)
            else:  # per group: (G, C/G·K, O/G)(G, O/G, N·out)
                Wg = W2.view(G, O // G, rows // G)
                torch.bmm(Wg.transpose(1, 2), dy_g, out=dcols.view(G, rows // G, N * P))
            dwin = dcols.view(G * W.shape[1], *W.shape[2:], N, *out).movedim(1 + len(out), 0)
            dxp = dwin.new_zeros(padded_shape)
            col2im_add(dxp, _kernel_last(dwin), stride, dilation)  # windows summed back
            ws.give_back("dcols", dcols)
        else:  # image by image, in chunks whose dL/dcols stays in the cache for col2im
            dy3 = dy.reshape(N, O, P)
            nb = max(1, self.chunk_bytes // (rows * P * dy.element_size()))
            dcols = ws.take("dcols_chunk", (min(nb, N), rows, P), dy)
            dxp = dy.new_zeros(padded_shape)
            for n0 in range(0, N, nb):
                n = min(nb, N - n0)
                torch.bmm(W2.T.expand(n, rows, O), dy3[n0 : n0 + n], out=dcols[:n])  # Wᵀ dy
                dwin = _kernel_last(dcols[:n].view(n, W.shape[1], *W.shape[2:], *out))
                col2im_add(dxp[n0 : n0 + n], dwin, stride, dilation)
            ws.give_back("dcols_chunk", dcols)
        ws.give_back("dy_t", dy_t)
        return crop(dxp, padding), dW, db


def col2im_shifted(
    dwin: Tensor, padded_shape: Sequence[int], stride: Sequence[int], dilation: Sequence[int]
) -> Tensor:
    """ops.conv.col2im for a compiled step: with stride 1, the sum over the K kernel offsets of
    each offset's window gradients (N, C, *out), zero-padded to sit where those windows read.
    Out of place, as the reference; torch.compile fuses the K shifted reads into one loop per
    element, where the reference's index_add compiles to a serial scatter (Conv2d 32->64 on
    2 cores: 40 ms compiled against 13). Other strides: the reference's scatter."""
    if any(s != 1 for s in stride):
        return col2im(dwin, padded_shape, stride, dilation)
    S, nd = padded_shape[2:], len(stride)
    out, kernel = dwin.shape[2 : 2 + nd], dwin.shape[2 + nd :]
    dxp = None
    for offset in itertools.product(*[range(k) for k in kernel]):
        before = [d * o for d, o in zip(dilation, offset)]
        pads = [(a, n - m - a) for a, n, m in zip(before, S, out)]
        at_offset: list[Any] = list(offset)
        shifted = pad(dwin[(..., *at_offset)], pads)  # (N, C, *S): where these windows read
        dxp = shifted if dxp is None else dxp + shifted
    assert dxp is not None
    return dxp


def col2im_add(dxp: Tensor, dwin: Tensor, stride: Sequence[int], dilation: Sequence[int]) -> None:
    """dxp (N, C, *S) += the window gradients dwin (N, C, *out, *kernel), each where its
    window came from (ops.conv.col2im's scatter-add): one strided in-place addition per kernel
    offset, which reads dwin in any layout and writes no index tensor (faster on CPU than
    the reference's index_add over a copy of dwin)."""
    nd = len(stride)
    out, kernel = dwin.shape[2 : 2 + nd], dwin.shape[2 + nd :]
    for offset in itertools.product(*[range(k) for k in kernel]):
        region: list[Any] = [
            slice(o * d, o * d + s * (n - 1) + 1, s)
            for o, d, s, n in zip(offset, dilation, stride, out)
        ]
        at_offset: list[Any] = list(offset)
        dxp[(..., *region)] += dwin[(..., *at_offset)]


def _pad_into(ws: Workspace, x: Tensor, padding: Pairs) -> Tensor:
    """x zero-padded, in a work tensor (x itself when there is no padding)."""
    if not any(a or b for a, b in padding):
        return x
    sizes = [s + a + b for s, (a, b) in zip(x.shape[2:], padding)]
    xp = ws.take("xp", (*x.shape[:2], *sizes), x)
    fill_outside(xp, [a for a, _ in padding], x.shape[2:], 0.0)
    inside: list[Any] = [slice(a, a + s) for (a, _), s in zip(padding, x.shape[2:])]
    xp[(..., *inside)] = x
    return xp


def _kernel_last(dwin: Tensor) -> Tensor:
    """(N, C, *kernel, *out) -> (N, C, *out, *kernel), the layout col2im_add reads: a view of
    the same memory, so each kernel offset is still one contiguous slab."""
    nd = (dwin.dim() - 2) // 2
    return dwin.permute(0, 1, *range(2 + nd, 2 + 2 * nd), *range(2, 2 + nd))
