"""The affine map: y = x Wᵀ + b. Derivation: docs/math.md#linear."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["linear_forward", "linear_backward"]


def linear_forward(x: Tensor, W: Tensor, b: Tensor | None = None) -> tuple[Tensor, tuple]:
    """y = x Wᵀ + b.  x (*, in), W (out, in), b (out,) or None -> y (*, out)."""
    x2 = x.reshape(-1, W.shape[1])  # (N, in), the leading dims flattened into N
    y2 = x2 @ W.T if b is None else torch.addmm(b, x2, W.T)  # (N, out)
    y = y2.view(*x.shape[:-1], W.shape[0])  # (*, out)
    return y, (x2, W, b is not None, x.shape)


def linear_backward(
    dy: Tensor, cache: tuple, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """(dL/dx, dL/dW, dL/db) from dy (*, out); dL/dx is None when not needed (the data's)."""
    x2, W, has_bias, x_shape = cache
    dy2 = dy.reshape(-1, W.shape[0])  # (N, out)
    dW = dy2.T @ x2  # dL/dW = dyᵀ x      (out, in)
    db = dy2.sum(0) if has_bias else None  # dL/db = Σₙ dy      (out,)
    dx = (dy2 @ W).view(x_shape) if need_dx else None  # dL/dx = dy W       (*, in)
    return dx, dW, db
