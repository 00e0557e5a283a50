"""Flatten and Unflatten: they relabel elements, so dL/dx is dy in x's shape.
Math: docs/math.md#flatten."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.module import Module


class Flatten(Module):
    """y = x.flatten(start_dim, end_dim); backward reshapes dy back to x's shape."""

    torch_name = "Flatten"

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = start_dim, end_dim

    def config(self) -> dict[str, Any]:
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._short_name()}: expected a tensor, got {type(x).__name__}")
        ndim = max(x.dim(), 1)
        for d in (self.start_dim, self.end_dim):
            if not -ndim <= d < ndim:
                raise ValueError(
                    f"{self._short_name()}: dim {d} is out of range for an input of shape "
                    f"{tuple(x.shape)}"
                )
        y, x_shape = ops.flatten_forward(x, self.start_dim, self.end_dim)
        self.push_cache((x_shape, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        x_shape, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return ops.flatten_backward(dy, x_shape)


class Unflatten(Module):
    """y = x.unflatten(dim, unflattened_size), e.g. (N, 40) -> (N, 1, 40); backward reshapes."""

    torch_name = "Unflatten"

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
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
        y, x_shape = ops.unflatten_forward(x, self.dim, self.unflattened_size)
        self.push_cache((x_shape, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        x_shape, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return ops.unflatten_backward(dy, x_shape)
