"""Inverted dropout: y = x ⊙ m / (1 - p), m ~ Bernoulli(1 - p), one draw per element
(dropout) or per channel of each example (feature dropout: Dropout1d, Dropout2d).
Math: docs/math.md#dropout."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "dropout_forward",
    "dropout_backward",
    "feature_dropout_forward",
    "feature_dropout_backward",
]


def dropout_forward(
    x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Training: each element kept with probability 1 - p and scaled by 1/(1 - p), so E[y] = x
    (the same draw as torch's dropout under the same seed). Evaluation, p = 0 or an empty x:
    y = x. inplace=True writes y into x."""
    return _dropout(x, p, training, inplace, x.shape)


def dropout_backward(dy: Tensor, scale: Tensor | None) -> Tensor:
    return dy if scale is None else dy * scale  # dL/dx = dy ⊙ m / (1 - p), the same mask


def feature_dropout_forward(
    x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Dropout of whole channels: x (N, C, *) keeps or zeroes each x[n, c] as one, with one
    draw per (n, c) (the same draw as torch's feature dropout under the same seed)."""
    return _dropout(x, p, training, inplace, (*x.shape[:2], *[1] * (x.dim() - 2)))


feature_dropout_backward = dropout_backward  # dL/dx = dy ⊙ m / (1 - p), m broadcast per channel


def _dropout(
    x: Tensor, p: float, training: bool, inplace: bool, mask_shape: tuple[int, ...] | torch.Size
) -> tuple[Tensor, Tensor | None]:
    if not training or p == 0.0 or x.numel() == 0:
        return x, None
    if p == 1.0:
        scale = x.new_zeros(())  # every element dropped (no draw, as torch)
    else:
        keep = x.new_empty(mask_shape).bernoulli_(1.0 - p)  # m: 1 with probability 1 - p
        scale = keep.div_(1.0 - p)  # m / (1 - p): values 0 or 1/(1 - p)
    return (x.mul_(scale) if inplace else x * scale), scale
