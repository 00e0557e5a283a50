"""Max and average pooling over the windows of each channel, 1-D and 2-D. The op pairs are in
handgrad.ops.pooling; math in docs/math.md#pooling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.nn.conv import Size, _Windows


class _PoolNd(_Windows):
    """Pooling over each channel's windows; stride defaults to kernel_size, as torch."""

    op_pair: tuple[Callable[..., Any], Callable[..., Any]]

    def __init__(self, kernel_size: Size, stride: Size | None = None, padding: Size = 0) -> None:
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__}: padding must be an int or a tuple")
        self._setup(kernel_size, stride, padding, 1)
        if any(2 * a > k for (a, _), k in zip(self.pads, self.kernel_size)):
            raise ValueError(f"{type(self).__name__}: padding must be at most half the kernel size")

    def config(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}

    def forward(self, x: Tensor) -> Tensor:
        xb = self._batched(x, None)  # (N, C, *S)
        y, cache = self.op_pair[0](xb, self.kernel_size, self.stride, self.pads)
        out = y if x.dim() == self.nd + 2 else y.squeeze(0)
        self.push_cache((cache, out.shape))
        return out

    def backward(self, dy: Tensor) -> Tensor:
        cache, out_shape = self.pop_cache()
        self._check_grad_output(dy, out_shape)
        unbatched = dy.dim() == self.nd + 1
        dx = self.op_pair[1](dy.unsqueeze(0) if unbatched else dy, cache)
        return dx.squeeze(0) if unbatched else dx


class _MaxPoolNd(_PoolNd):
    """y = max over the window (padding counts as -inf); dL/dx goes to the first maximum."""

    op_pair = (ops.max_pool_forward, ops.max_pool_backward)


class _AvgPoolNd(_PoolNd):
    """y = mean over the window, zero padding included (torch's count_include_pad=True);
    dL/dx = dy / K spread over the window."""

    op_pair = (ops.avg_pool_forward, ops.avg_pool_backward)


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L)."""

    nd, torch_name = 1, "MaxPool1d"


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W)."""

    nd, torch_name = 2, "MaxPool2d"


class AvgPool1d(_AvgPoolNd):
    """Average over windows of (N, C, L)."""

    nd, torch_name = 1, "AvgPool1d"


class AvgPool2d(_AvgPoolNd):
    """Average over windows of (N, C, H, W)."""

    nd, torch_name = 2, "AvgPool2d"
