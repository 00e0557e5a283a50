"""Dropout. The op pair is in handgrad.ops.dropout; math in docs/math.md#dropout."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from handgrad import ops
from handgrad.module import Module


class Dropout(Module):
    """Inverted dropout: y = x · m / (1 - p), m ~ Bernoulli(1 - p); identity in eval()."""

    torch_name = "Dropout"

    def __init__(self, p: float = 0.5) -> None:
        if not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def config(self) -> dict[str, Any]:
        return {"p": self.p}

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        y, mask = ops.dropout_forward(x, self.p, self.training)
        self.push_cache((mask, y.shape))
        return y

    def backward(self, dy: Tensor) -> Tensor:
        mask, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        return ops.dropout_backward(dy, mask)
