"""Max and average pooling over the windows of each channel, fixed and adaptive, on the
reference im2col helpers of handgrad.ops.conv (pad, windows, col2im, crop).
Math: docs/math.md#pooling and docs/math.md#adaptive-pooling.

x is (N, C, *S) with any number of spatial dims; `padding` is a (before, after) pair per dim.
Max pooling returns torch's indices: for each output, the flat place of its maximum in the
input's spatial plane (int64), the first maximum on ties and the last NaN where there is one,
as torch's kernels scan a window (`val > max or isnan(val)`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from handgrad.mode import _mode
from handgrad.ops.conv import Pairs, col2im, crop, pad, windows

__all__ = [
    "pool_output_size",
    "adaptive_bounds",
    "max_pool_forward",
    "max_pool_backward",
    "avg_pool_forward",
    "avg_pool_backward",
    "adaptive_avg_pool_forward",
    "adaptive_avg_pool_backward",
    "adaptive_max_pool_forward",
    "adaptive_max_pool_backward",
    "max_unpool_forward",
    "max_unpool_backward",
    "lp_pool_forward",
    "lp_pool_backward",
]


def pool_output_size(
    size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int, ceil_mode: bool
) -> int:
    """Windows along one dim, torch's rule: floor (or ceil) of (L + pads - span) / s, plus 1;
    with ceil_mode, a last window that would start in the right padding is dropped."""
    before, after = pads
    span = dilation * (kernel - 1) + 1
    out = (size + before + after - span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + before:
        return out - 1
    return out


def _geometry(
    spatial: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Pairs,
    dilation: Sequence[int],
    ceil_mode: bool,
) -> tuple[list[int], list[tuple[int, int]]]:
    """The output sizes, and the padding that holds every window: under ceil_mode the last
    window may run past the right padding (its overhang is padded too, and never counted)."""
    out, pads = [], []
    for L, k, s, (a, b), d in zip(spatial, kernel_size, stride, padding, dilation):
        o = pool_output_size(L, k, s, (a, b), d, ceil_mode)
        overhang = max(0, (o - 1) * s + d * (k - 1) + 1 - (L + a + b))
        out.append(o)
        pads.append((a, b + overhang))
    return out, pads


def _first_windows(win: Tensor, out: Sequence[int]) -> Tensor:
    """win (N, C, *more, *kernel) cut to the first `out` windows along each spatial dim."""
    first: list[Any] = [slice(0, o) for o in out]
    return win[(slice(None), slice(None), *first)]


def _lowest(x: Tensor) -> float:
    return -math.inf if x.is_floating_point() else torch.iinfo(x.dtype).min


def _torch_argmax(win: Tensor, valid: Tensor) -> Tensor:
    """The place in each window (last dim) that torch's scan picks: the last NaN if any, else
    the first valid element equal to the maximum (the first valid one when all are -inf)."""
    K = win.shape[-1]
    lowest = _lowest(win)
    y = win.masked_fill(~valid, lowest).amax(-1, keepdim=True)  # NaN propagates
    first_max = (valid & (win == y)).to(torch.uint8).argmax(-1)  # argmax gives the first
    if not win.is_floating_point():
        return first_max
    nan = win.isnan()
    last_nan = K - 1 - nan.flip(-1).to(torch.uint8).argmax(-1)
    return torch.where(nan.any(-1), last_nan, first_max)


def _pick(win: Tensor, positions: Tensor, has_padding: bool) -> tuple[Tensor, Tensor]:
    """y and torch's indices from windows win (N, C, *out, K) whose elements sit at the flat
    input positions `positions` (broadcastable to win; -1 in the padding)."""
    y, k = win.max(-1)  # the first maximum: torch's pick unless a NaN or an all -inf window
    odd = not _mode.host_reads or (  # capture_safe(): always the general branch, no sync
        y.isnan().any() or (has_padding and bool((y == _lowest(win)).any()))
    )
    if odd:
        k = _torch_argmax(win, positions.expand(win.shape) >= 0)
        y = win.gather(-1, k.unsqueeze(-1)).squeeze(-1)  # (N, C, *out)
    indices = positions.expand(win.shape).gather(-1, k.unsqueeze(-1)).squeeze(-1)  # int64
    return y, indices


def max_pool_forward(
    x: Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Pairs,
    dilation: Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> tuple[Tensor, tuple]:
    """y = the maximum of each (dilated) window of each channel; padding is never picked.
    cache = (indices, x.shape): indices (N, C, *out) are torch's (return_indices=True)."""
    nd = len(kernel_size)
    dilation = [1] * nd if dilation is None else list(dilation)
    spatial = x.shape[2:]
    out, pads = _geometry(spatial, kernel_size, stride, padding, dilation, ceil_mode)
    places = torch.arange(math.prod(spatial), device=x.device).view(1, 1, *spatial)
    xp = pad(x, pads, _lowest(x))  # (N, C, *S padded)
    pp = pad(places, pads, -1)  # (1, 1, *S padded): each element's flat place, -1 in padding
    win = _first_windows(windows(xp, kernel_size, stride, dilation), out).flatten(-nd)
    pwin = _first_windows(windows(pp, kernel_size, stride, dilation), out).flatten(-nd)
    y, indices = _pick(win, pwin, any(a or b for a, b in pads))  # (N, C, *out) each
    return y, (indices, x.shape)


def max_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx: each dy added at its maximum's place (a place in several windows sums them)."""
    indices, x_shape = cache
    N, C = x_shape[0], x_shape[1]
    dx = dy.new_zeros(N, C, math.prod(x_shape[2:]))  # (N, C, H·W)
    flat = (N, C, indices[0, 0].numel() if N * C else 0)  # (N, C, out)
    dx = dx.scatter_add(-1, indices.reshape(flat), dy.reshape(flat))  # dL/dx[argmax] += dy
    return dx.view(x_shape)


def _divisors(
    spatial: Sequence[int],
    out: Sequence[int],
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Pairs,
    count_include_pad: bool,
    like: Tensor,
) -> Tensor:
    """The count each window's sum is divided by, (*out): per dim, the window's length inside
    the padded input (count_include_pad) or inside the input alone; the ceil_mode overhang
    past the padding is never counted. Product over dims."""
    divisor = like.new_ones(())
    for i, (L, o, k, s, (a, b)) in enumerate(zip(spatial, out, kernel_size, stride, padding)):
        start = torch.arange(o, device=like.device) * s - a  # first element, unpadded coords
        end = torch.clamp(start + k, max=L + b)
        if not count_include_pad:
            start, end = start.clamp(min=0), end.clamp(max=L)
        shape = [o if j == i else 1 for j in range(len(out))]
        divisor = divisor * (end - start).to(like.dtype).view(shape)
    return divisor


def avg_pool_forward(
    x: Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Pairs,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[Tensor, tuple]:
    """y = Σ window / divisor: divisor_override if given, else the window's size counted by
    torch's rule (zero padding included with count_include_pad)."""
    nd = len(kernel_size)
    ones = [1] * nd
    spatial = x.shape[2:]
    out, pads = _geometry(spatial, kernel_size, stride, padding, ones, ceil_mode)
    xp = pad(x, pads)  # (N, C, *S padded) with zeros
    win = _first_windows(windows(xp, kernel_size, stride, ones), out).flatten(-nd)
    total = win.sum(-1)  # (N, C, *out), each window's sum
    if divisor_override is not None:
        divisor = x.new_full((), float(divisor_override))
    else:
        divisor = _divisors(spatial, out, kernel_size, stride, padding, count_include_pad, x)
    if x.is_floating_point():
        y = total / divisor  # (N, C, *out)
    else:  # torch's integer kernel: the quotient rounded toward zero
        y = torch.div(total, divisor.to(total.dtype), rounding_mode="trunc")
    return y, (divisor, tuple(kernel_size), xp.shape, tuple(stride), pads)


def avg_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx: dy / divisor to every element of its window, summed back by col2im."""
    divisor, kernel_size, padded_shape, stride, pads = cache
    nd = len(kernel_size)
    dmean = (dy / divisor).reshape(*dy.shape, *[1] * nd)  # (N, C, *out, 1, ..)
    dwin = dmean.expand(*dy.shape, *kernel_size)  # dL/dwindow = dy / divisor  (N, C, *out, *k)
    dxp = col2im(dwin, padded_shape, stride, [1] * nd)  # windows summed back (N, C, *S padded)
    return crop(dxp, pads)


def adaptive_bounds(size: int, out: int) -> tuple[list[int], list[int]]:
    """torch's adaptive windows along one dim: [floor(i·L/out), ceil((i+1)·L/out))."""
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    return starts, ends


def _averaging_matrix(size: int, out: int, like: Tensor) -> Tensor:
    """A (out, L): row i is 1/len over window i, so y = A x averages along that dim."""
    i = torch.arange(out, device=like.device)
    start, end = i * size // out, -(-(i + 1) * size // out)  # adaptive_bounds, as tensors
    at = torch.arange(size, device=like.device)
    inside = (at >= start[:, None]) & (at < end[:, None])  # (out, L): window i's elements
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def _along(x: Tensor, dim: int, A: Tensor) -> Tensor:
    """x with dim d replaced by A @ (that dim): (.., L, ..) -> (.., out, ..)."""
    return (x.movedim(dim, -1) @ A.T).movedim(-1, dim)


def adaptive_avg_pool_forward(x: Tensor, output_size: Sequence[int]) -> tuple[Tensor, tuple]:
    """y = the mean of each adaptive window, one averaging matrix per spatial dim:
    2-D, y = A_H x A_Wᵀ per channel."""
    As = [_averaging_matrix(L, o, x) for L, o in zip(x.shape[2:], output_size)]
    y = x
    for i, A in enumerate(As):
        y = _along(y, 2 + i, A)  # (N, C, .., out_i, ..)
    return y, (As,)


def adaptive_avg_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx = A_Hᵀ dy A_W per channel: each dy shared equally over its window."""
    (As,) = cache
    dx = dy
    for i, A in enumerate(As):
        dx = _along(dx, 2 + i, A.T)  # (N, C, .., L_i, ..)
    return dx


def adaptive_max_pool_forward(x: Tensor, output_size: Sequence[int]) -> tuple[Tensor, tuple]:
    """y = the maximum of each adaptive window; cache = (indices, x.shape) as max_pool's."""
    nd = len(output_size)
    spatial = x.shape[2:]
    picks, lengths = [], []
    for L, o in zip(spatial, output_size):
        starts, ends = adaptive_bounds(L, o)
        k = max((e - s for s, e in zip(starts, ends)), default=1)
        offsets = torch.arange(k, device=x.device)
        start, end = (torch.tensor(v, dtype=torch.long, device=x.device) for v in (starts, ends))
        # (out, k): window i's elements; a shorter window repeats its last element
        picks.append(torch.minimum(start[:, None] + offsets, end[:, None] - 1).clamp(min=0))
        lengths.append(k)
    grids: list[Any] = []  # index i of dim d: (1,..,out_d,..,1, 1,..,k_d,..,1)
    for d, p in enumerate(picks):
        shape = [p.shape[0] if j == d else p.shape[1] if j == nd + d else 1 for j in range(2 * nd)]
        grids.append(p.view(shape))
    win = x[(slice(None), slice(None), *grids)].flatten(-nd)  # (N, C, *out, K)
    places = torch.arange(math.prod(spatial), device=x.device).view(spatial)
    pwin = places[tuple(grids)].flatten(-nd)  # (*out, K) flat places, scanned row by row
    y, indices = _pick(win, pwin, False)
    return y, (indices, x.shape)


def adaptive_max_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx: each dy added at its window's maximum, as max_pool_backward."""
    return max_pool_backward(dy, cache)


def max_unpool_forward(
    x: Tensor, indices: Tensor, output_size: Sequence[int]
) -> tuple[Tensor, tuple]:
    """The inverse of max pooling: y (N, C, *output_size) zero but for y[indices] = x (indices
    as max pooling returns them; of duplicates, the last written stays, as torch's kernel)."""
    N, C = x.shape[0], x.shape[1]
    flat = (N, C, math.prod(x.shape[2:]))
    y = x.new_zeros(N, C, math.prod(output_size))
    y = y.scatter(-1, indices.reshape(flat), x.reshape(flat))  # y[n, c, indices] = x
    return y.view(N, C, *output_size), (indices, x.shape)


def max_unpool_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, None]:
    """dL/dx = dy read back at the indices; the indices get no gradient."""
    indices, x_shape = cache
    N, C = x_shape[0], x_shape[1]
    flat = (N, C, math.prod(x_shape[2:]))
    dx = dy.reshape(N, C, -1).gather(-1, indices.reshape(flat))  # dL/dx = dy[indices]
    return dx.view(x_shape), None


def lp_pool_forward(
    x: Tensor,
    norm_type: float,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    ceil_mode: bool = False,
) -> tuple[Tensor, tuple]:
    """y = (Σ_window x^p)^(1/p), torch's F.lp_pool formula step by step:
    a = avg_pool(x^p), u = sign(a)·relu(|a|)·K, y = u^(1/p) (K the kernel's size)."""
    p, K = norm_type, math.prod(kernel_size)
    t = x.pow(p)  # (N, C, *S)
    no_padding = [(0, 0)] * len(kernel_size)
    a, avg_cache = avg_pool_forward(t, kernel_size, stride, no_padding, ceil_mode)
    u = torch.sign(a) * torch.relu(a.abs()) * K  # (N, C, *out)
    y = u.pow(1.0 / p)
    return y, (x, p, K, a, u, avg_cache)


def lp_pool_backward(dy: Tensor, cache: tuple) -> Tensor:
    """dL/dx through each step of the forward, as autograd takes them."""
    x, p, K, a, u, avg_cache = cache
    q = 1.0 / p
    du = dy * q * u.pow(q - 1) if q != 0 else torch.zeros_like(u)  # dy/du = q u^(q-1)
    da = du * K * (a.abs() > 0)  # d(sign(a) relu(|a|))/da = 1 where a ≠ 0     (N, C, *out)
    dt = avg_pool_backward(da, avg_cache)  # dL/d(x^p)                          (N, C, *S)
    return dt * p * x.pow(p - 1) if p != 0 else torch.zeros_like(x)  # d(x^p)/dx = p x^(p-1)
