"""Inverted dropout: y = x ⊙ m / (1 - p), m ~ Bernoulli(1 - p). Math: docs/math.md#dropout."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["dropout_forward", "dropout_backward"]


def dropout_forward(
    x: Tensor, p: float = 0.5, training: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Training: each element kept with probability 1 - p and scaled by 1/(1 - p), so E[y] = x
    (the same draw as torch's dropout under the same seed). Evaluation or p = 0: y = x."""
    if not training or p == 0.0:
        return x, None
    keep = torch.empty_like(x).bernoulli_(1.0 - p)  # m: 1 with probability 1 - p
    scale = keep.mul_(1.0 / (1.0 - p))  # m / (1 - p): values 0 or 1/(1 - p)
    return x * scale, scale


def dropout_backward(dy: Tensor, scale: Tensor | None) -> Tensor:
    return dy if scale is None else dy * scale  # dL/dx = dy ⊙ m / (1 - p), the same mask
