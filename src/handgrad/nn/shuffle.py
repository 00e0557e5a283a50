"""PixelShuffle, PixelUnshuffle and ChannelShuffle: rearrangements of a tensor's elements,
whose backward is the inverse rearrangement. The op pairs are in handgrad.ops.resize; math in
docs/math.md#pixelshuffle-and-channelshuffle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.module import Module


def _factor(owner: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArgumentTypeError(f"{owner}: {name} must be an int, got {value!r}")
    if value <= 0:
        raise InputError(f"{owner}: {name} must be positive, got {value!r}")
    return value


class _Rearrange(Module):
    """forward: the op's rearrangement after the shape checks; backward: its inverse."""

    op_pair: tuple[Callable[..., Any], Callable[..., Any]]
    factor: int

    def _check(self, x: Tensor) -> None:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(
                f"{self._short_name()}: expected a torch.Tensor, got {type(x).__name__}"
            )
        self._check(x)
        y, cache = self.op_pair[0](x, self.factor)
        self.push_cache((cache, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        cache, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx, _ = self.op_pair[1](dy, cache)
        return dx


class PixelShuffle(_Rearrange):
    """(*, C·r², H, W) -> (*, C, H·r, W·r), r = upscale_factor (sub-pixel convolution)."""

    torch_name = "PixelShuffle"
    op_pair = (ops.pixel_shuffle_forward, ops.pixel_shuffle_backward)

    def __init__(self, upscale_factor: int) -> None:
        self.upscale_factor = self.factor = _factor(
            "PixelShuffle", "upscale_factor", upscale_factor
        )

    def config(self) -> dict[str, Any]:
        return {"upscale_factor": self.upscale_factor}

    def _check(self, x: Tensor) -> None:
        r = self.factor
        if x.dim() < 3 or x.shape[-3] % (r * r):
            raise ShapeError(
                f"{self._short_name()}: expected input (*, C·{r * r}, H, W), got shape "
                f"{tuple(x.shape)}"
            )


class PixelUnshuffle(_Rearrange):
    """(*, C, H·r, W·r) -> (*, C·r², H, W), r = downscale_factor: PixelShuffle's inverse."""

    torch_name = "PixelUnshuffle"
    op_pair = (ops.pixel_unshuffle_forward, ops.pixel_unshuffle_backward)

    def __init__(self, downscale_factor: int) -> None:
        self.downscale_factor = self.factor = _factor(
            "PixelUnshuffle", "downscale_factor", downscale_factor
        )

    def config(self) -> dict[str, Any]:
        return {"downscale_factor": self.downscale_factor}

    def _check(self, x: Tensor) -> None:
        r = self.factor
        if x.dim() < 3 or x.shape[-2] % r or x.shape[-1] % r:
            raise ShapeError(
                f"{self._short_name()}: expected input (*, C, H·{r}, W·{r}), got shape "
                f"{tuple(x.shape)}"
            )


class ChannelShuffle(_Rearrange):
    """(N, C, *) with its channels read as (groups, C/groups) and transposed (ShuffleNet)."""

    torch_name = "ChannelShuffle"
    op_pair = (ops.channel_shuffle_forward, ops.channel_shuffle_backward)

    def __init__(self, groups: int) -> None:
        self.groups = self.factor = _factor("ChannelShuffle", "groups", groups)

    def config(self) -> dict[str, Any]:
        return {"groups": self.groups}

    def _check(self, x: Tensor) -> None:
        if x.dim() < 3 or x.shape[1] % self.groups:
            raise ShapeError(
                f"{self._short_name()}: expected input (N, C, *) with C divisible by "
                f"{self.groups}, got shape {tuple(x.shape)}"
            )
