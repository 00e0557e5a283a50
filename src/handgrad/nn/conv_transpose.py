"""ConvTranspose1d and ConvTranspose2d: a convolution's dL/dx as a layer (each input element
spreads its value, times the kernel, over a window of the output). The math is the op pair
handgrad.ops.conv_transpose_forward/backward (docs/math.md#transposed-convolution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import InputError, ShapeError
from handgrad.init import kaiming_uniform_, uniform_
from handgrad.module import Module
from handgrad.nn.conv import Size, _check_groups, _refuse_complex, _tuple
from handgrad.validate import positive_int


class _ConvTransposeNd(Module):
    """y[n, o, s·i + d·k - p] += x[n, c, i] · W[c, o, k], summed over c in o's group, + b[o].

    W: (in, out/groups, *kernel), b: (out,). Output size per spatial dim:
    (S - 1)·stride - 2·padding + dilation·(kernel - 1) + 1 + output_padding, where
    output_padding only resolves which of the `stride` sizes a strided convolution maps to
    the input's (forward(x, output_size=...) picks it from the wanted size, as torch).
    Init as torch: kaiming_uniform(a=√5) with fan_in = out/groups · prod(kernel).
    """

    nd = 2
    parameter_names = ("weight", "bias")

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size = 1,
        padding: Size = 0,
        output_padding: Size = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Size = 1,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        name, nd = type(self).__name__, self.nd
        if padding_mode != "zeros":
            raise InputError(
                f'{name}: Only "zeros" padding mode is supported, got {padding_mode!r}'
            )
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = _check_groups(name, in_channels, out_channels, groups)
        self.padding_mode = padding_mode
        self.kernel_size = _tuple(name, "kernel_size", kernel_size, nd, 1)
        self.stride = _tuple(name, "stride", stride, nd, 1)
        if isinstance(padding, str):
            raise InputError(f"{name}: padding must be an int or a tuple of ints, got {padding!r}")
        self.padding = _tuple(name, "padding", padding, nd, 0)
        self.output_padding = _tuple(name, "output_padding", output_padding, nd, 0)
        self.dilation = _tuple(name, "dilation", dilation, nd, 1)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.weight = torch.empty(in_channels, out_channels // groups, *self.kernel_size, **kw)
        self.bias = torch.empty(out_channels, **kw) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's default: W ~ kaiming_uniform(a=√5), b ~ U(±1/√fan_in), fan_in of W
        (in, out/groups, *k) = out/groups · prod(kernel_size)."""
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
            "output_padding": self.output_padding,
            "groups": self.groups,
            "bias": self.bias is not None,
            "dilation": self.dilation,
            "padding_mode": self.padding_mode,
        }

    def _output_padding(self, x: Tensor, output_size: Sequence[int] | None) -> tuple[int, ...]:
        """output_padding, or the one that gives output_size (torch's rule: any size from the
        smallest output up to stride - 1 more)."""
        if output_size is None:
            return self.output_padding
        nd, lead = self.nd, x.dim() - self.nd  # lead: (N, C) or (C,)
        size = [int(v) for v in output_size]
        if len(size) == lead + nd:
            size = size[lead:]
        if len(size) != nd:
            raise InputError(
                f"{self._short_name()}: for {x.dim()}D input, output_size must have {nd} "
                f"or {lead + nd} elements (got {len(size)})"
            )
        smallest = [
            (n - 1) * s - 2 * p + d * (k - 1) + 1
            for n, s, p, d, k in zip(
                x.shape[lead:], self.stride, self.padding, self.dilation, self.kernel_size
            )
        ]
        largest = [m + s - 1 for m, s in zip(smallest, self.stride)]
        if any(not lo <= v <= hi for v, lo, hi in zip(size, smallest, largest)):
            raise InputError(
                f"{self._short_name()}: requested an output size of {size}, but valid sizes "
                f"range from {smallest} to {largest} (for an input of {list(x.shape[lead:])})"
            )
        return tuple(v - lo for v, lo in zip(size, smallest))

    def _checked(self, x: Tensor, output_padding: Sequence[int]) -> Tensor:
        """x as (N, C, *S) after torch's checks: its shape, and an output of positive size."""
        self._check_input(x)
        nd, C = self.nd, self.in_channels
        if x.dim() not in (nd + 1, nd + 2) or x.shape[-nd - 1] != C:
            dims = "L" if nd == 1 else "H, W"
            raise ShapeError(
                f"{self._short_name()}: expected input (N, {C}, {dims}) or ({C}, {dims}), "
                f"got shape {tuple(x.shape)}"
            )
        self._check_like(x, self.weight)
        if any(op >= s and op >= d for op, s, d in zip(output_padding, self.stride, self.dilation)):
            raise ShapeError(
                f"{self._short_name()}: output padding must be smaller than either stride or "
                f"dilation, got output_padding={tuple(output_padding)}"
            )
        xb = x if x.dim() == nd + 2 else x.unsqueeze(0)
        out = [
            (n - 1) * s - 2 * p + d * (k - 1) + 1 + op
            for n, s, p, d, k, op in zip(
                xb.shape[2:],
                self.stride,
                self.padding,
                self.dilation,
                self.kernel_size,
                output_padding,
            )
        ]
        if any(n <= 0 for n in out):
            raise ShapeError(
                f"{self._short_name()}: input of spatial size {tuple(xb.shape[2:])} gives an "
                f"output of size {tuple(out)}; Output size is too small"
            )
        return xb

    def forward(self, x: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        _refuse_complex(self, x)
        output_padding = self._output_padding(x, output_size) if isinstance(x, Tensor) else ()
        xb = self._checked(x, output_padding)  # (N, C_in, *S)
        geometry = (self.stride, self.padding, output_padding, self.dilation, self.groups)
        y, cache = ops.conv_transpose_forward(xb, self.weight, self.bias, *geometry)
        out = y if x.dim() == self.nd + 2 else y.squeeze(0)  # (N, C_out, *out) or (C_out, *out)
        self.push_cache((cache, out.shape))
        return out

    def backward(self, dy: Tensor) -> Tensor:
        dx = self._backward(dy, need_dx=True)
        assert dx is not None
        return dx

    def backward_params(self, dy: Tensor) -> None:
        self._backward(dy, need_dx=False)  # skips dL/dx's product

    def _backward(self, dy: Tensor, need_dx: bool) -> Tensor | None:
        cache, out_shape = self.pop_cache()
        self._check_grad_output(dy, out_shape)
        unbatched = dy.dim() == self.nd + 1
        dyb = dy.unsqueeze(0) if unbatched else dy  # (N, C_out, *out)
        dx, dW, db = ops.conv_transpose_backward(dyb, cache, need_dx)
        self.add_grad(self.weight, dW)
        self.add_grad(self.bias, db)
        return dx.squeeze(0) if dx is not None and unbatched else dx


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution over (N, C_in, L) or (C_in, L). As torch.nn.ConvTranspose1d."""

    nd = 1
    torch_name = "ConvTranspose1d"


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution over (N, C_in, H, W) or (C_in, H, W). As
    torch.nn.ConvTranspose2d (arguments, init, state_dict keys)."""

    nd = 2
    torch_name = "ConvTranspose2d"
