"""Conv1d and Conv2d, with torch's arguments (groups, padding_mode, padding="same"/"valid").
The math is the reference op pair in handgrad.ops.conv (im2col: a Linear layer over windows;
docs/math.md#convolutions); ``algorithm`` may pick a tuned kernel from handgrad.kernels
instead, which computes the same function faster. ConvTranspose is in conv_transpose.py.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import InputError, NotSupportedError, ShapeError
from handgrad.init import kaiming_uniform_, uniform_
from handgrad.kernels import F4x4_3x3, Im2col, Winograd, Workspace
from handgrad.kernels.im2col import col2im_shifted
from handgrad.mode import autocasting, compiling, reference_when_compiling
from handgrad.module import Module
from handgrad.validate import positive_int

Size = int | tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]
Kernel = Im2col | Winograd
_IM2COL, _WINOGRAD = Im2col(), Winograd()  # what "im2col" and "winograd" name


def _tuple(owner: str, name: str, value: Any, nd: int, minimum: int) -> tuple[int, ...]:
    t = (value,) * nd if isinstance(value, int) else tuple(value)
    if len(t) != nd or not all(isinstance(v, int) and v >= minimum for v in t):
        raise InputError(
            f"{owner}: {name} must be an int >= {minimum} or {nd} of them, got {value!r}"
        )
    return t


class _Windows(Module):
    """Shared by convolutions and pools: the window geometry and the input checks."""

    nd = 2

    def _setup(
        self, kernel_size: Size, stride: Size | None, padding: Size | str, dilation: Size
    ) -> None:
        name, nd = type(self).__name__, self.nd
        self.kernel_size = _tuple(name, "kernel_size", kernel_size, nd, 1)
        self.stride = _tuple(name, "stride", self.kernel_size if stride is None else stride, nd, 1)
        self.dilation = _tuple(name, "dilation", dilation, nd, 1)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise InputError(
                    f"{name}: Invalid padding string {padding!r}, should be one of "
                    "'valid', 'same' (or an int, or a tuple of ints)"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise InputError(
                    f"{name}: padding='same' is not supported for strided convolutions "
                    f"(stride={self.stride})"
                )
            self.padding: Size | str = padding
            totals = [
                0 if padding == "valid" else d * (k - 1)
                for k, d in zip(self.kernel_size, self.dilation)
            ]
            self.pads = tuple((t // 2, t - t // 2) for t in totals)  # torch pads the end more
        else:
            self.padding = _tuple(name, "padding", padding, nd, 0)
            self.pads = tuple((p, p) for p in self.padding)

    def _batched(self, x: Tensor, channels: int | None) -> Tensor:
        """Check x is (N, C, *S) or (C, *S) and the kernel fits; returns (N, C, *S)."""
        self._check_input(x)
        nd = self.nd
        if x.dim() not in (nd + 1, nd + 2) or (
            channels is not None and x.shape[-nd - 1] != channels
        ):
            dims = "L" if nd == 1 else "H, W"
            c = "C" if channels is None else str(channels)
            raise ShapeError(
                f"{self._short_name()}: expected input (N, {c}, {dims}) or "
                f"({c}, {dims}), got shape {tuple(x.shape)}"
            )
        x = x if x.dim() == nd + 2 else x.unsqueeze(0)
        spans = [d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation)]
        sizes = [s + a + b for s, (a, b) in zip(x.shape[2:], self.pads)]
        if any(span > size for span, size in zip(spans, sizes)):
            raise ShapeError(
                f"{self._short_name()}: the kernel spans {tuple(spans)}, more than the "
                f"padded input {tuple(sizes)} (input shape {tuple(x.shape)})"
            )
        return x


class _ConvNd(_Windows):
    """y[n, o] = b[o] + Σ_c Σ_k W[o, c, k] · x[n, c, s·i + d·k]  (cross-correlation, as torch),
    c over the in_channels/groups inputs of o's group. W: (out, in/groups, *kernel), b: (out,).

    padding_mode "reflect" | "replicate" | "circular" pads x with copies of its own elements
    first (ops.edge_pad_forward), then convolves without padding, as torch does.

    ``algorithm`` (keyword-only, not part of the saved architecture):
    - "reference": handgrad.ops.conv, the im2col math as docs/math.md writes it;
    - "im2col": the same math tuned for speed (handgrad.kernels.Im2col; an ``Im2col(...)``
      instance sets its thresholds);
    - "winograd": Winograd's F(4×4, 3×3) for a Conv2d with a 3×3 kernel, stride 1, dilation 1
      and groups=1 in float32/float64: 4× fewer multiplications, several times torch's float32
      rounding error (handgrad.kernels.Winograd; docs/math.md#winograd); any other layer is
      refused with NotSupportedError;
    - "auto" (default): im2col, whose rounding error is of torch's size, unless the caller
      allowed float32 products to trade precision for speed, as in PyTorch, with
      ``torch.set_float32_matmul_precision("high")``: then a float32 CPU Conv2d that Winograd
      fits and pays for (at least WINOGRAD_MIN_CHANNELS input channels and WINOGRAD_MIN_TILES
      4×4 output blocks in the batch) takes Winograd.
    """

    ALGORITHMS = ("auto", "reference", "im2col", "winograd")
    PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
    # below these Winograd's transforms and small products cost more than they save
    # (measured: docs/benchmarks.md#winograd-against-im2col-by-shape)
    WINOGRAD_MIN_CHANNELS = 24
    WINOGRAD_MIN_TILES = 64

    parameter_names = ("weight", "bias")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        padding: Size | str = 0,
        dilation: Size = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        algorithm: str | Kernel = "auto",
    ) -> None:
        name = type(self).__name__
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = _check_groups(name, in_channels, out_channels, groups)
        if padding_mode not in self.PADDING_MODES:
            raise InputError(
                f"{name}: padding_mode must be one of {self.PADDING_MODES}, but got "
                f"padding_mode={padding_mode!r}"
            )
        self.padding_mode = padding_mode
        self._setup(kernel_size, stride, padding, dilation)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.empty(out_channels, in_channels // groups, *self.kernel_size, **kw)
        self.bias = torch.empty(out_channels, **kw) if bias else None
        self.reset_parameters()
        self.algorithm = algorithm
        self.winograd_fits = (
            self.nd == 2
            and groups == 1
            and (self.kernel_size, self.stride, self.dilation) == ((3, 3), (1, 1), (1, 1))
        )
        self._check_algorithm()  # a bad algorithm fails here, not at the first forward
        self.workspace = Workspace()  # the tuned kernels' work tensors
        self.last_algorithm: str | None = None  # what the latest forward ran: "reference", ...

    def reset_parameters(self) -> None:
        """torch's default: W ~ kaiming_uniform(a=√5) = U(±1/√fan_in), b ~ U(±1/√fan_in),
        fan_in = in_channels/groups · prod(kernel_size)."""
        kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            uniform_(self.bias, 1 / math.sqrt(self.weight[0].numel()))

    def config(self) -> dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "dilation": self.dilation,
            "groups": self.groups,
            "bias": self.bias is not None,
            "padding_mode": self.padding_mode,
        }

    def _check_algorithm(self) -> None:
        a = self.algorithm
        if not isinstance(a, (Im2col, Winograd)) and a not in self.ALGORITHMS:
            raise InputError(
                f"{self._short_name()}: algorithm must be one of {self.ALGORITHMS} or a "
                f"handgrad.kernels.Im2col/Winograd, got {a!r}"
            )
        if (a == "winograd" or isinstance(a, Winograd)) and not self.winograd_fits:
            raise NotSupportedError(
                self._short_name(),
                "algorithm='winograd'",
                "Winograd needs a Conv2d with a 3x3 kernel, stride 1, dilation 1 and groups 1; "
                f"got kernel_size={self.kernel_size}, stride={self.stride}, "
                f"dilation={self.dilation}, groups={self.groups}",
            )

    def _kernel(self, x: Tensor, pads: Pairs) -> Kernel | None:
        """The tuned kernel for this input, or None for the reference ops."""
        self._check_algorithm()
        if autocasting(x.device.type):  # fit's bf16: the reference ops' products autocast
            return None
        a = self.algorithm
        if isinstance(a, (Im2col, Winograd)):
            kernel: Kernel | None = a
        elif a == "auto" and compiling():  # what compiles faster (mode.COMPILED_AUTO)
            kernel = None if reference_when_compiling("Conv", a) else _IM2COL
        elif a == "auto":
            kernel = _WINOGRAD if self._winograd_pays(x, pads) else _IM2COL
        else:
            kernel = {"reference": None, "im2col": _IM2COL, "winograd": _WINOGRAD}[a]
        if isinstance(kernel, Winograd) and x.dtype not in (torch.float32, torch.float64):
            raise NotSupportedError(
                self._short_name(),
                f"algorithm='winograd' with dtype={x.dtype}",
                f"Winograd needs float32 or float64 input (its transforms lose too much in "
                f"{x.dtype}); use 'im2col'",
            )
        return kernel

    def _winograd_pays(self, x: Tensor, pads: Pairs) -> bool:
        if not self.winograd_fits:
            return False
        _, _, th, tw = F4x4_3x3.sizes(x.shape, pads)
        return (
            x.dtype == torch.float32
            and torch.get_float32_matmul_precision() != "highest"
            and x.device.type == "cpu"
            and self.in_channels >= self.WINOGRAD_MIN_CHANNELS
            and x.shape[0] * th * tw >= self.WINOGRAD_MIN_TILES
        )

    def _edge_pad(self, x: Tensor) -> tuple[Tensor, tuple | None, Pairs]:
        """x padded by padding_mode when it copies x's own elements ("reflect", "replicate",
        "circular"), with its cache and the padding left for the convolution (none)."""
        if self.padding_mode == "zeros" or not any(a or b for a, b in self.pads):
            return x, None, self.pads
        for size, (a, b) in zip(x.shape[2:], self.pads):
            if (self.padding_mode == "reflect" and max(a, b) >= size) or (
                self.padding_mode == "circular" and max(a, b) > size
            ):
                raise ShapeError(
                    f"{self._short_name()}: padding {(a, b)} is too large for an input of "
                    f"spatial size {tuple(x.shape[2:])} in padding_mode={self.padding_mode!r} "
                    "(reflect needs padding < size, circular padding <= size)"
                )
        xp, cache = ops.edge_pad_forward(x, self.pads, self.padding_mode)
        return xp, cache, tuple((0, 0) for _ in self.pads)

    def forward(self, x: Tensor) -> Tensor:
        _refuse_complex(self, x)
        xb = self._batched(x, self.in_channels)  # (N, C, *S)
        self._check_like(xb, self.weight)
        xb, edge, pads = self._edge_pad(xb)
        geometry = (self.stride, pads, self.dilation)
        kernel = self._kernel(xb, pads)
        self.last_algorithm = "reference" if kernel is None else kernel.name
        if kernel is None:
            y, cache = ops.conv_forward(xb, self.weight, self.bias, *geometry, self.groups)
        else:
            y, cache = kernel.forward(
                xb, self.weight, self.bias, *geometry, self.workspace, groups=self.groups
            )
        out = y if x.dim() == self.nd + 2 else y.squeeze(0)  # (N, O, *out) or (O, *out)
        if not self.push_cache((kernel, cache, edge, out.shape)) and kernel is not None:
            kernel.release(cache, self.workspace)
        return out

    def backward(self, dy: Tensor) -> Tensor:
        dx = self._backward(dy, need_dx=True)
        assert dx is not None
        return dx

    def backward_params(self, dy: Tensor) -> None:
        self._backward(dy, need_dx=False)  # skips dL/dcols and col2im

    def _backward(self, dy: Tensor, need_dx: bool) -> Tensor | None:
        kernel, cache, edge, out_shape = self.pop_cache()
        self._check_grad_output(dy, out_shape)
        unbatched = dy.dim() == self.nd + 1
        dyb = dy.unsqueeze(0) if unbatched else dy  # (N, O, *out)
        if kernel is None:  # "auto" in a compiled step: col2im as shifted adds, which compile
            shifted = compiling() and self.algorithm == "auto"  # to one loop, not a scatter
            add_back = col2im_shifted if shifted else ops.col2im
            dx, dW, db = ops.conv_backward(dyb, cache, need_dx, add_back=add_back)
        else:
            dx, dW, db = kernel.backward(dyb, cache, self.workspace, need_dx)
        self.add_grad(self.weight, dW)
        self.add_grad(self.bias, db)
        if dx is not None and edge is not None:
            dx = ops.edge_pad_backward(dx, edge)  # the copies' gradients back to their sources
        return dx.squeeze(0) if dx is not None and unbatched else dx


def _refuse_complex(layer: Module, x: object) -> None:
    """torch's convolutions take complex tensors; handgrad's backward is written for real ones."""
    if isinstance(x, Tensor) and x.is_complex():
        raise NotSupportedError(layer._short_name(), f"complex input ({x.dtype})")


def _check_groups(owner: str, in_channels: int, out_channels: int, groups: object) -> int:
    """groups as torch checks it: a positive int dividing both channel counts."""
    if not isinstance(groups, int) or isinstance(groups, bool) or groups <= 0:
        raise InputError(f"{owner}: groups must be a positive integer, got {groups!r}")
    for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
        if n % groups:
            raise InputError(
                f"{owner}: {name} must be divisible by groups, got {name}={n}, groups={groups}"
            )
    return groups


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) or (C_in, L): y (N, C_out, L_out). As torch.nn.Conv1d."""

    nd = 1
    torch_name = "Conv1d"


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W): y (N, C_out, H_out, W_out).
    As torch.nn.Conv2d (arguments, init, state_dict keys)."""

    nd = 2
    torch_name = "Conv2d"
