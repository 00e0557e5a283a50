"""Work tensors that a layer reuses between calls, for the tuned kernels.

A fresh large allocation costs page faults on every step, so a kernel takes its work tensors
from the layer's Workspace and gives them back when done. A tensor that a cache still holds
(waiting for its backward) is not handed out again: a layer called k times before its k
backwards gets k tensors, and each comes back when its backward has used it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor


class Workspace:
    """Named work tensors: take() one of a shape, give_back() when its contents are done with.
    What take() returns holds whatever its last user left."""

    def __init__(self) -> None:
        self.free: dict[str, Tensor] = {}

    def take(self, name: str, shape: Sequence[int], like: Tensor) -> Tensor:
        buf = self.free.pop(name, None)
        if (
            buf is None
            or buf.shape != tuple(shape)
            or buf.dtype != like.dtype
            or buf.device != like.device
        ):
            buf = like.new_empty(tuple(shape))
        return buf

    def give_back(self, name: str, buf: Tensor) -> None:
        self.free[name] = buf

    def __deepcopy__(self, memo: dict[int, Any]) -> Workspace:
        return Workspace()  # a copy of a layer starts with no work tensors of its own


def fill_outside(buf: Tensor, starts: Sequence[int], lengths: Sequence[int], value: float) -> None:
    """Set buf to value outside the box starts..starts+lengths of its last len(starts) dims:
    the padding of a reused work tensor, where its last use may have left other data."""
    lead = buf.dim() - len(starts)
    for i, (a, n) in enumerate(zip(starts, lengths)):
        before: tuple[Any, ...] = (slice(None),) * (lead + i)
        buf[(*before, slice(0, a))] = value
        buf[(*before, slice(a + n, None))] = value
