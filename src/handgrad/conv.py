"""Convolutions and pooling, 1-D and 2-D, by im2col: every window of the input becomes a row,
so a convolution is one matrix product and its backward two more. A 3×3, stride-1 Conv2d can
take Winograd's algorithm instead (``algorithm="winograd"``, handgrad.winograd).

Shapes: x (N, C, L) or (N, C, H, W) (an unbatched (C, ...) input also works); windows are
laid out (N, C, *out, *kernel). Math: docs/math.md#convolutions.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from torch import Tensor

from handgrad.init import kaiming_uniform_, uniform_
from handgrad.layers import _Reshape
from handgrad.module import Module, accumulate_grad, fill_outside
from handgrad.winograd import F4x4_3x3

Size = int | tuple[int, ...]


def _tuple(owner: str, name: str, value: Size, nd: int, minimum: int) -> tuple[int, ...]:
    t = (value,) * nd if isinstance(value, int) else tuple(value)
    if len(t) != nd or not all(isinstance(v, int) and v >= minimum for v in t):
        raise ValueError(
            f"{owner}: {name} must be an int >= {minimum} or {nd} of them, got {value!r}"
        )
    return t


class _Windows(Module):
    """Shared by convolutions and pools: padding, the window view (im2col) and its adjoint."""

    nd = 2
    pad_value = 0.0

    def _setup(
        self, kernel_size: Size, stride: Size | None, padding: Size | str, dilation: Size
    ) -> None:
        name, nd = type(self).__name__, self.nd
        self.kernel_size = _tuple(name, "kernel_size", kernel_size, nd, 1)
        self.stride = _tuple(name, "stride", self.kernel_size if stride is None else stride, nd, 1)
        self.dilation = _tuple(name, "dilation", dilation, nd, 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: padding must be an int, a tuple, 'valid' or 'same'")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{name}: padding='same' needs stride 1")
            self.padding: Size | str = padding
            totals = [
                0 if padding == "valid" else d * (k - 1)
                for k, d in zip(self.kernel_size, self.dilation)
            ]
            self.pads = tuple((t // 2, t - t // 2) for t in totals)  # torch pads the right more
        else:
            self.padding = _tuple(name, "padding", padding, nd, 0)
            self.pads = tuple((p, p) for p in self.padding)
        self.x_shape: torch.Size | None = None
        self.batched = True
        self.scratch: dict[str, Tensor] = {}

    def _scratch(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """A work tensor kept between calls and reused while its shape fits: a fresh large
        allocation costs page faults on every step. Never returned to the caller; its
        contents are whatever the last call left."""
        buf = self.scratch.get(name)
        if (
            buf is None
            or buf.shape != shape
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = self.scratch[name] = like.new_empty(shape)
        return buf

    def _batch(self, x: Tensor, channels: int | None) -> Tensor:
        """Check x is (N, C, *S) or (C, *S); returns the batched form."""
        self._check_input(x)
        nd = self.nd
        if x.dim() not in (nd + 1, nd + 2) or (
            channels is not None and x.shape[-nd - 1] != channels
        ):
            dims = "L" if nd == 1 else "H, W"
            c = "C" if channels is None else str(channels)
            raise ValueError(
                f"{self._short_name()}: expected input (N, {c}, {dims}) or "
                f"({c}, {dims}), got shape {tuple(x.shape)}"
            )
        self.batched = x.dim() == nd + 2
        x = x if self.batched else x.unsqueeze(0)
        spans = [d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation)]
        sizes = [s + a + b for s, (a, b) in zip(x.shape[2:], self.pads)]
        if any(span > size for span, size in zip(spans, sizes)):
            raise ValueError(
                f"{self._short_name()}: the kernel spans {tuple(spans)}, more than the "
                f"padded input {tuple(sizes)} (input shape {tuple(x.shape)})"
            )
        return x

    def _pad(self, x: Tensor) -> Tensor:
        """x with pad_value around its spatial dims, in a work tensor that forward uses only
        to read its windows from."""
        if not any(a or b for a, b in self.pads):
            return x
        sizes = [s + a + b for s, (a, b) in zip(x.shape[2:], self.pads)]
        xp = self._scratch("xp", (*x.shape[:2], *sizes), x)
        fill_outside(xp, [a for a, _ in self.pads], x.shape[2:], self.pad_value)
        inner: tuple[Any, ...] = (
            ...,
            *[slice(a, a + s) for (a, _), s in zip(self.pads, x.shape[2:])],
        )
        xp[inner] = x
        return xp

    def _windows(self, xp: Tensor) -> Tensor:
        """(N, C, *S) -> (N, C, *out, *kernel), a strided view (no copy)."""
        w = xp
        for i, (k, s, d) in enumerate(zip(self.kernel_size, self.stride, self.dilation)):
            w = w.unfold(2 + i, d * (k - 1) + 1, s)  # appends a window dim of the dilated span
        if any(d > 1 for d in self.dilation):
            every_dth: tuple[Any, ...] = (..., *[slice(None, None, d) for d in self.dilation])
            w = w[every_dth]
        return w

    def _col2im(self, dwin: Tensor, padded: torch.Size) -> Tensor:
        """Adjoint of _windows: add each window's gradient back where it came from, unpadded.

        dwin is laid out (N, C, *kernel, *out): one (N, C, *out) slab per kernel offset.
        """
        dxp = dwin.new_zeros(padded)
        self._col2im_add(dxp, dwin)
        return self._crop(dxp)

    def _col2im_add(self, dxp: Tensor, dwin: Tensor) -> None:
        """dxp (N, C, *padded) += the window gradients dwin (N, C, *kernel, *out)."""
        out = dwin.shape[2 + self.nd :]
        for offset in itertools.product(*[range(k) for k in self.kernel_size]):
            region: tuple[Any, ...] = (
                slice(None),
                slice(None),
                *[
                    slice(o * d, o * d + s * (n - 1) + 1, s)
                    for o, d, s, n in zip(offset, self.dilation, self.stride, out)
                ],
            )
            at_offset: tuple[Any, ...] = (slice(None), slice(None), *offset)
            dxp[region] += dwin[at_offset]

    def _crop(self, xp: Tensor) -> Tensor:
        """The unpadded part of a padded (N, C, *S) tensor, a view."""
        inside: tuple[Any, ...] = (
            slice(None),
            slice(None),
            *[slice(a, size - b) for (a, b), size in zip(self.pads, xp.shape[2:])],
        )
        return xp[inside]

    def _unbatch(self, t: Tensor) -> Tensor:
        return t if self.batched else t.squeeze(0)

    def _grad_in(self, dy: Tensor, out_shape: torch.Size) -> Tensor:
        self._check_grad_output(dy, out_shape if self.batched else out_shape[1:])
        return dy if self.batched else dy.unsqueeze(0)


class _ConvNd(_Windows):
    """y[n, o] = b[o] + Σ_c Σ_k W[o, c, k] · x[n, c, s·i + d·k]  (cross-correlation, as torch).

    ``algorithm``: "im2col" (one matrix product over every window), "winograd" (Conv2d with a
    3×3 kernel, stride 1, dilation 1, float32/float64: 4× fewer multiplications, several times
    torch's float32 rounding error; handgrad.winograd) or "auto". "auto" is im2col, whose
    rounding error is of torch's size, unless the caller has allowed float32 products to trade
    precision for speed, as in PyTorch, with ``torch.set_float32_matmul_precision("high")``
    (or "medium"): then a float32 CPU Conv2d that Winograd fits and pays for (at least
    ``WINOGRAD_MIN_CHANNELS`` input channels and ``WINOGRAD_MIN_TILES`` 4×4 output blocks in
    the batch) takes Winograd. Not part of the saved architecture. docs/math.md#winograd.
    """

    ALGORITHMS = ("auto", "im2col", "winograd")
    # below these the transforms and the small matrix products cost more than they save
    # (measured: docs/benchmarks.md#winograd-against-im2col-by-shape)
    WINOGRAD_MIN_CHANNELS = 24
    WINOGRAD_MIN_TILES = 64
    # im2col: from this many output positions per image on, one matrix product per image
    # (MKL runs those faster than one very wide product, and y comes out in (N, O, ...) order)
    PER_IMAGE_MIN_POSITIONS = 64
    CHUNK_BYTES = 4 << 20  # ... and dL/dx goes through in chunks of images of about this size

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        padding: Size | str = 0,
        dilation: Size = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        algorithm: str = "auto",
    ) -> None:
        name = type(self).__name__
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self._setup(kernel_size, stride, padding, dilation)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.empty(out_channels, in_channels, *self.kernel_size, **kw)
        self.bias = torch.empty(out_channels, **kw) if bias else None
        self.reset_parameters()
        self.algorithm = algorithm
        self._winograd_ok()  # a bad algorithm fails here, not at the first forward
        self.cols: Tensor | None = None
        self.winograd_saved: tuple[Tensor, Tensor] | None = None

    def reset_parameters(self) -> None:
        """torch's default: W ~ kaiming_uniform(a=√5) = U(±1/√fan_in), b ~ U(±1/√fan_in)."""
        kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            uniform_(self.bias, 1 / math.sqrt(self.in_channels * math.prod(self.kernel_size)))

    def _parameter_names(self) -> tuple[str, ...]:
        return ("weight", "bias")

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "bias": self.bias is not None,
        }

    def _winograd_ok(self) -> bool:
        """Whether this layer's shape allows Winograd; checks ``algorithm`` on the way."""
        if self.algorithm not in self.ALGORITHMS:
            raise ValueError(
                f"{self._short_name()}: algorithm must be one of {self.ALGORITHMS}, "
                f"got {self.algorithm!r}"
            )
        ok = self.nd == 2 and (self.kernel_size, self.stride, self.dilation) == (
            (3, 3),
            (1, 1),
            (1, 1),
        )
        if self.algorithm == "winograd" and not ok:
            raise ValueError(
                f"{self._short_name()}: algorithm='winograd' needs a Conv2d with a 3x3 kernel, "
                f"stride 1 and dilation 1; got kernel_size={self.kernel_size}, "
                f"stride={self.stride}, dilation={self.dilation}"
            )
        return ok

    def _use_winograd(self, x: Tensor) -> bool:
        if not self._winograd_ok() or self.algorithm == "im2col":
            return False
        if self.algorithm == "winograd":
            if x.dtype not in (torch.float32, torch.float64):
                raise ValueError(
                    f"{self._short_name()}: algorithm='winograd' needs float32 or float64 input "
                    f"(its transforms lose too much in {x.dtype}); use 'im2col'"
                )
            return True
        _, _, th, tw = F4x4_3x3.sizes(x.shape, self.pads)
        return (
            x.dtype == torch.float32
            and torch.get_float32_matmul_precision() != "highest"
            and x.device.type == "cpu"
            and self.in_channels >= self.WINOGRAD_MIN_CHANNELS
            and x.shape[0] * th * tw >= self.WINOGRAD_MIN_TILES
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self._batch(x, self.in_channels)
        self._check_like(x, self.weight)
        self.cols = self.winograd_saved = None
        self.x_shape = x.shape
        if self._use_winograd(x):
            y, self.winograd_saved = F4x4_3x3.forward(
                x, self.weight, self.bias, self.pads, self._scratch
            )
            self.out_shape = y.shape
            return self._unbatch(y)
        xp = self._pad(x)
        self.padded_shape = xp.shape
        win = self._windows(xp)  # (N, C, *out, *k), a view
        N, out = x.shape[0], win.shape[2 : 2 + self.nd]
        nd = self.nd
        # im2col with the batch folded into the columns, (C·k, N·out): dL/dW is one GEMM over
        # the whole batch; y too for small images, and one GEMM per image for larger ones
        rows_first = [1, *range(2 + nd, 2 + 2 * nd), 0, *range(2, 2 + nd)]  # (C, *k, N, *out)
        cols = self._scratch("cols", (self.in_channels, *self.kernel_size, N, *out), x)
        rows, columns = self.in_channels * math.prod(self.kernel_size), N * math.prod(out)
        self.cols = cols.copy_(win.permute(rows_first)).view(rows, columns)  # (C·k, N·out)
        W = self.weight.reshape(self.out_channels, -1)  # (O, C·k)
        if math.prod(out) >= self.PER_IMAGE_MIN_POSITIONS:
            # one product per image, (O, C·k)(C·k, out), written straight into (N, O, out)
            per_image = self.cols.view(rows, N, math.prod(out)).transpose(0, 1)  # (N, C·k, out)
            Wn = W.expand(N, *W.shape)
            if self.bias is None:
                y = torch.bmm(Wn, per_image)  # y = W cols
            else:
                y = torch.baddbmm(self.bias.view(1, -1, 1), Wn, per_image)  # y = W cols + b
            y = y.view(N, self.out_channels, *out)
        else:
            y_t = self._scratch("y_t", (self.out_channels, columns), x)  # (O, N·out)
            if self.bias is None:
                torch.mm(W, self.cols, out=y_t)  # y = W cols
            else:
                torch.addmm(self.bias.view(-1, 1), W, self.cols, out=y_t)  # y = W cols + b
            y = y_t.view(self.out_channels, N, *out).movedim(0, 1).contiguous()  # (N, O, *out)
        self.out_shape = y.shape
        return self._unbatch(y)

    def backward(self, dy: Tensor) -> Tensor:
        if self.winograd_saved is not None:
            dx = self._winograd_backward(dy, need_dx=True)
            assert dx is not None
            return self._unbatch(dx)
        dy2 = self._accumulate_param_grads(dy)  # (O, N·out)
        W = self.weight.reshape(self.out_channels, -1)
        N, out = self.out_shape[0], self.out_shape[2:]
        if math.prod(out) < self.PER_IMAGE_MIN_POSITIONS:
            dcols = self._scratch("dcols", (W.shape[1], dy2.shape[1]), dy2)
            torch.mm(W.T, dy2, out=dcols)  # dL/dcols = Wᵀ dy   (C·k, N·out)
            dwin = dcols.reshape(self.in_channels, *self.kernel_size, N, *out)  # (C, *k, N, *out)
            dwin = dwin.movedim(1 + self.nd, 0)  # (N, C, *k, *out), a view for col2im
            return self._unbatch(self._col2im(dwin, self.padded_shape))  # windows summed back
        # image by image, in chunks whose dL/dcols stays in the cache for col2im
        dy3 = dy.reshape(N, self.out_channels, math.prod(out))  # dy as the caller gave it
        Wt = W.T  # (C·k, O)
        nb = max(1, self.CHUNK_BYTES // (Wt.shape[0] * dy3.shape[2] * dy3.element_size()))
        dcols = self._scratch("dcols", (min(nb, N), Wt.shape[0], dy3.shape[2]), dy3)
        dxp = dy3.new_zeros(self.padded_shape)
        for n0 in range(0, N, nb):
            n = min(nb, N - n0)
            torch.bmm(Wt.expand(n, *Wt.shape), dy3[n0 : n0 + n], out=dcols[:n])  # Wᵀ dy
            dwin = dcols[:n].view(n, self.in_channels, *self.kernel_size, *out)
            self._col2im_add(dxp[n0 : n0 + n], dwin)
        return self._unbatch(self._crop(dxp))  # dL/dx: windows summed back

    def backward_params(self, dy: Tensor) -> None:
        if self.winograd_saved is not None:
            self._winograd_backward(dy, need_dx=False)
        else:
            self._accumulate_param_grads(dy)  # skips dL/dcols and col2im

    def _winograd_backward(self, dy: Tensor, need_dx: bool) -> Tensor | None:
        saved = self.winograd_saved
        assert saved is not None and self.x_shape is not None
        dy = self._grad_in(dy, self.out_shape)
        self.winograd_saved = None  # one backward per forward
        dx, dW, db = F4x4_3x3.backward(dy, saved, self.x_shape, self.pads, self._scratch, need_dx)
        accumulate_grad(self.weight, dW)
        if self.bias is not None:
            accumulate_grad(self.bias, db)
        return dx

    def _accumulate_param_grads(self, dy: Tensor) -> Tensor:
        """Add dL/dW and dL/db into .grad; returns dy as (O, N·out) for dL/dx."""
        cols = self._saved(self.cols)
        self.cols = None  # one backward per forward (the buffer itself is kept for reuse)
        dy = self._grad_in(dy, self.out_shape)
        dy2 = self._scratch("dy_t", (self.out_channels, dy.numel() // self.out_channels), dy)
        N, out = dy.shape[0], math.prod(dy.shape[2:])
        dy2.view(self.out_channels, N, out).copy_(
            dy.reshape(N, self.out_channels, out).movedim(1, 0)
        )  # (O, N·out)
        accumulate_grad(self.weight, (dy2 @ cols.T).reshape(self.weight.shape))  # dL/dW = dy colsᵀ
        if self.bias is not None:
            accumulate_grad(self.bias, dy2.sum(1))  # dL/db = Σ dy over images and positions
        return dy2


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L): y (N, C_out, L_out). Init and keys as torch.nn.Conv1d."""

    nd = 1


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W): y (N, C_out, H_out, W_out). As torch.nn.Conv2d."""

    nd = 2


class _PoolNd(_Windows):
    """Pooling over each channel's windows; stride defaults to kernel_size, as torch."""

    def __init__(self, kernel_size: Size, stride: Size | None = None, padding: Size = 0) -> None:
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple")
        self._setup(kernel_size, stride, padding, 1)
        if any(2 * a > k for (a, _), k in zip(self.pads, self.kernel_size)):
            raise ValueError(f"{type(self).__name__}: padding must be at most half the kernel size")
        self.saved: Tensor | None = None

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def forward(self, x: Tensor) -> Tensor:
        x = self._batch(x, None)
        xp = self._pad(x)
        self.x_shape, self.padded_shape = x.shape, xp.shape
        win = self._windows(xp).flatten(-self.nd)  # (N, C, *out, K)
        y = self._pool(win)
        self.out_shape = y.shape
        return self._unbatch(y)

    def backward(self, dy: Tensor) -> Tensor:
        saved = self._saved(self.saved)
        self.saved = None  # released: one backward per forward
        dy = self._grad_in(dy, self.out_shape)
        dwin = self._window_grad(dy, saved).unflatten(-1, self.kernel_size)  # (N, C, *out, *k)
        kernel_first = [0, 1, *range(2 + self.nd, 2 + 2 * self.nd), *range(2, 2 + self.nd)]
        return self._unbatch(self._col2im(dwin.permute(kernel_first), self.padded_shape))

    def _pool(self, win: Tensor) -> Tensor:
        raise NotImplementedError

    def _window_grad(self, dy: Tensor, saved: Tensor) -> Tensor:
        raise NotImplementedError


class _MaxPoolNd(_PoolNd):
    """y = max over the window (padding counts as -inf); dL/dx goes to the first maximum."""

    pad_value = -math.inf

    def _pool(self, win: Tensor) -> Tensor:
        y, self.saved = win.max(-1)  # indices of the first maximum, as torch
        return y

    def _window_grad(self, dy: Tensor, saved: Tensor) -> Tensor:
        K = math.prod(self.kernel_size)
        dwin = dy.new_zeros((*dy.shape, K))
        return dwin.scatter_(-1, saved.unsqueeze(-1), dy.unsqueeze(-1))


class _AvgPoolNd(_PoolNd):
    """y = mean over the window, zero padding included (torch's count_include_pad=True);
    dL/dx = dy / K spread over the window."""

    def _pool(self, win: Tensor) -> Tensor:
        self.saved = win.new_empty(0)  # nothing to remember but the shapes
        return win.mean(-1)

    def _window_grad(self, dy: Tensor, saved: Tensor) -> Tensor:
        K = math.prod(self.kernel_size)
        return (dy / K).unsqueeze(-1).expand(*dy.shape, K)


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L)."""

    nd = 1


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W)."""

    nd = 2


class AvgPool1d(_AvgPoolNd):
    """Average over windows of (N, C, L)."""

    nd = 1


class AvgPool2d(_AvgPoolNd):
    """Average over windows of (N, C, H, W)."""

    nd = 2


class Unflatten(_Reshape):
    """y = x.unflatten(dim, unflattened_size), e.g. (N, 40) -> (N, 1, 40); backward reshapes."""

    def __init__(self, dim: int, unflattened_size: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "unflattened_size": self.unflattened_size}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x, min_dim=1)
        d = self.dim % x.dim() if -x.dim() <= self.dim < x.dim() else None
        if d is None or x.shape[d] != math.prod(self.unflattened_size):
            raise ValueError(
                f"{self._short_name()}: cannot unflatten dim {self.dim} of shape "
                f"{tuple(x.shape)} into {self.unflattened_size}"
            )
        return self._relabel(x, x.unflatten(self.dim, self.unflattened_size))
