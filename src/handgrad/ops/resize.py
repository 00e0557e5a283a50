"""Resizing and padding: interpolation (Upsample) and constant padding (ZeroPad/ConstantPad).
Math: docs/math.md#upsample and docs/math.md#constant-padding.

Interpolation is separable: along each spatial dim, every output element is a weighted sum of
one or two input elements (its taps), y = Σ_t w_t ⊙ x[idx_t]; its backward adds dy ⊙ w_t back
at idx_t. The taps are computed with torch's own index arithmetic (UpSample.h), in the same
precision (float32 for nearest; the input's precision, at least float32, for linear), so the
same elements are picked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "interpolation_taps",
    "interpolate_forward",
    "interpolate_backward",
    "constant_pad_forward",
    "constant_pad_backward",
    "pixel_shuffle_forward",
    "pixel_shuffle_backward",
    "pixel_unshuffle_forward",
    "pixel_unshuffle_backward",
    "channel_shuffle_forward",
    "channel_shuffle_backward",
]

Taps = list[tuple[Tensor, Tensor | None]]  # (index (out,), weight (out,) or None for 1)


def _scale(size: int, out: int, scale: float | None, dtype: torch.dtype) -> Tensor:
    """torch's compute_scales_value: 1/scale_factor when one is given, else in/out."""
    if scale is not None and scale > 0:
        return torch.tensor(1.0 / scale, dtype=dtype)
    return torch.tensor(size, dtype=dtype) / out


def _nearest(size: int, out: int, scale: float | None, exact: bool, shortcuts: bool) -> Taps:
    """src = min(floor(dst·s), L-1) ('nearest') or min(floor((dst + ½)·s), L-1) (exact).

    torch's 'nearest' kernels sometimes take two shortcuts: an output of the input's size
    copies (src = dst), one of twice its size halves (src = dst/2), whatever scale_factor was
    given. Its backward always takes them, its forward only for 2-D input. So with
    scale_factor=1.3 on a length of 2, a 1-D forward reads src = (0, 0) while the gradient goes
    to (0, 1). handgrad follows torch in both directions (`shortcuts` says which)."""
    dst = torch.arange(out)
    if shortcuts and not exact and out == size:
        return [(dst, None)]
    if shortcuts and not exact and out == 2 * size:
        return [(dst // 2, None)]
    s = _scale(size, out, scale, torch.float32)
    if exact:  # torch: floorf((dst + 0.5) * scale) with the product in double
        src = ((dst.double() + 0.5) * s.double()).float().floor()
    else:
        src = (dst.float() * s).floor()
    return [(src.long().clamp(max=size - 1), None)]


def _linear(
    size: int, out: int, scale: float | None, align_corners: bool, dtype: torch.dtype
) -> Taps:
    """src = s·dst (align_corners) or max(s·(dst + ½) - ½, 0); its two neighbours weighted
    by how near they are. An unchanged size is copied, whatever the scale (torch's kernel)."""
    if out == size:
        return [(torch.arange(out), None)]
    if align_corners:
        s = torch.tensor((size - 1) / (out - 1) if out > 1 else 0.0, dtype=dtype)
        src = torch.arange(out, dtype=dtype) * s
    else:
        s = _scale(size, out, scale, dtype)
        src = (s * (torch.arange(out, dtype=dtype) + 0.5) - 0.5).clamp(min=0)
    i0 = src.long()  # floor: src >= 0
    i1 = torch.where(i0 < size - 1, i0 + 1, i0)
    w1 = (src - i0).clamp(0, 1)
    return [(i0, 1 - w1), (i1, w1)]


def _cubic(
    size: int, out: int, scale: float | None, align_corners: bool, dtype: torch.dtype
) -> Taps:
    """Keys' cubic convolution (a = -0.75, as torch): src u = s·dst (align_corners) or
    s·(dst + ½) - ½ (not clamped); taps ⌊u⌋-1 .. ⌊u⌋+2, clamped to the input, weighted by the
    kernel at their distance t = u - ⌊u⌋ from u."""
    if align_corners:
        s = torch.tensor((size - 1) / (out - 1) if out > 1 else 0.0, dtype=dtype)
        src = torch.arange(out, dtype=dtype) * s
    else:
        s = _scale(size, out, scale, dtype)
        src = s * (torch.arange(out, dtype=dtype) + 0.5) - 0.5
    i = src.floor()
    t = src - i
    a = -0.75

    def near(x: Tensor) -> Tensor:  # |x| <= 1: ((a + 2)|x| - (a + 3))|x|² + 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: Tensor) -> Tensor:  # 1 < |x| < 2: ((a|x| - 5a)|x| + 8a)|x| - 4a
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    return [((i.long() + k - 1).clamp(0, size - 1), w) for k, w in enumerate(weights)]


def interpolation_taps(
    size: int,
    out: int,
    mode: str,
    align_corners: bool = False,
    scale: float | None = None,
    dtype: torch.dtype = torch.float64,
    shortcuts: bool = False,
) -> Taps:
    """The taps of one dim: each output element's input elements and their weights.
    mode: "nearest" | "nearest-exact" | "linear" (bilinear, trilinear: linear along each dim)
    | "cubic" (bicubic); scale: the scale_factor torch's kernel is given (None: the sizes'
    ratio); shortcuts: as torch's 'nearest' backward (and its 2-D forward), see _nearest."""
    if mode in ("nearest", "nearest-exact"):
        return _nearest(size, out, scale, mode == "nearest-exact", shortcuts)
    if mode == "cubic":
        return _cubic(size, out, scale, align_corners, dtype)
    return _linear(size, out, scale, align_corners, dtype)


def _resize(x: Tensor, dim: int, taps: Taps) -> Tensor:
    """x resized along dim: Σ_t w_t ⊙ x[.., idx_t, ..]."""
    view = [-1 if j == dim else 1 for j in range(x.dim())]
    y = None
    for idx, w in taps:
        part = x.index_select(dim, idx)  # (.., out, ..)
        part = part if w is None else part * w.view(view)
        y = part if y is None else y + part
    assert y is not None
    return y


def _resize_backward(dy: Tensor, dim: int, size: int, taps: Taps) -> Tensor:
    """The adjoint of _resize: dy ⊙ w_t added back at idx_t along dim."""
    shape = [size if j == dim else n for j, n in enumerate(dy.shape)]
    view = [-1 if j == dim else 1 for j in range(dy.dim())]
    dx = dy.new_zeros(shape)
    for idx, w in taps:
        dx = dx.index_add(dim, idx, dy if w is None else dy * w.view(view))  # dL/dx[idx] += w dy
    return dx


def interpolate_forward(
    x: Tensor,
    size: Sequence[int],
    mode: str,
    align_corners: bool = False,
    scales: Sequence[float | None] | None = None,
) -> tuple[Tensor, tuple]:
    """y (N, C, *size): x resized along each spatial dim in turn, y = Σ_t w_t ⊙ x[idx_t].
    mode: "nearest" | "nearest-exact" | "linear" (along each dim: bilinear, trilinear) |
    "cubic" (along each dim: bicubic)."""
    nd = len(size)
    scales = [None] * nd if scales is None else list(scales)
    opmath = torch.float64 if x.dtype == torch.float64 else torch.float32
    backward_taps = []
    y = x
    for i, (L, out, s) in enumerate(zip(x.shape[2:], size, scales)):
        taps, back = (
            [
                (idx.to(x.device), None if w is None else w.to(x))
                for idx, w in interpolation_taps(L, out, mode, align_corners, s, opmath, cut)
            ]
            for cut in (nd == 2, True)  # torch's forward, torch's backward (see _nearest)
        )
        y = _resize(y, 2 + i, taps)  # (N, C, .., out_i, ..)
        backward_taps.append(back)
    return y, (backward_taps, x.shape)


def interpolate_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx: along each dim, last first, dy ⊙ w_t added back at idx_t."""
    backward_taps, x_shape = cache
    dx = dy
    for i in reversed(range(len(backward_taps))):
        dx = _resize_backward(dx, 2 + i, x_shape[2 + i], backward_taps[i])  # (N, C, .., L_i, ..)
    return dx


def constant_pad_forward(
    x: Tensor, padding: Sequence[int], value: float = 0.0
) -> tuple[Tensor, tuple]:
    """y = x with `value` added around its last dims (torch's F.pad, mode "constant"):
    padding is torch's flat list, (left, right) of the last dim first; a negative padding
    crops."""
    return torch.constant_pad_nd(x, list(padding), value), (tuple(padding),)


def constant_pad_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx = dy where x was kept, 0 where it was cropped: dy padded by -padding."""
    (padding,) = cache
    return torch.constant_pad_nd(dy, [-p for p in padding], 0.0)  # dL/dx = dy padded by -padding


def _shuffle(x: Tensor, r: int) -> Tensor:
    """(*, C·r², H, W) -> (*, C, H·r, W·r):
    y[.., c, h·r + i, w·r + j] = x[.., c·r² + i·r + j, h, w]."""
    *lead, Cr2, H, W = x.shape
    C = Cr2 // (r * r)
    y = x.reshape(*lead, C, r, r, H, W)  # (*, C, i, j, H, W)
    y = y.permute(*range(len(lead)), -5, -2, -4, -1, -3)  # (*, C, H, i, W, j)
    return y.reshape(*lead, C, H * r, W * r)


def _unshuffle(x: Tensor, r: int) -> Tensor:
    """(*, C, H·r, W·r) -> (*, C·r², H, W), the inverse of _shuffle."""
    *lead, C, Hr, Wr = x.shape
    H, W = Hr // r, Wr // r
    y = x.reshape(*lead, C, H, r, W, r)  # (*, C, H, i, W, j)
    y = y.permute(*range(len(lead)), -5, -3, -1, -4, -2)  # (*, C, i, j, H, W)
    return y.reshape(*lead, C * r * r, H, W)


def pixel_shuffle_forward(x: Tensor, upscale_factor: int) -> tuple[Tensor, tuple]:
    """y (*, C, H·r, W·r): each r×r block gathered from r² channels of x (*, C·r², H, W)."""
    return _shuffle(x, upscale_factor), (upscale_factor,)


def pixel_shuffle_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, None]:
    """dL/dx = dy moved back: the inverse rearrangement (pixel unshuffle)."""
    (r,) = cache
    return _unshuffle(dy, r), None


def pixel_unshuffle_forward(x: Tensor, downscale_factor: int) -> tuple[Tensor, tuple]:
    """y (*, C·r², H, W): each r×r block of x (*, C, H·r, W·r) spread over r² channels."""
    return _unshuffle(x, downscale_factor), (downscale_factor,)


def pixel_unshuffle_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, None]:
    """dL/dx = dy moved back: the inverse rearrangement (pixel shuffle)."""
    (r,) = cache
    return _shuffle(dy, r), None


def _channel_shuffle(x: Tensor, groups: int) -> Tensor:
    N, C = x.shape[0], x.shape[1]
    y = x.reshape(N, groups, C // groups, *x.shape[2:])  # (N, g, C/g, *)
    return y.transpose(1, 2).reshape(x.shape)  # channel g·k + i goes to i·groups + g


def channel_shuffle_forward(x: Tensor, groups: int) -> tuple[Tensor, tuple]:
    """y (N, C, *): the channels of x read as (groups, C/groups) and transposed."""
    return _channel_shuffle(x, groups), (groups, x.shape[1])


def channel_shuffle_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, None]:
    """dL/dx = dy with the inverse permutation: a shuffle with C/groups groups."""
    groups, C = cache
    return _channel_shuffle(dy, C // groups), None
