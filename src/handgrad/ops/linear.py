"""The affine map: y = x Wᵀ + b. Derivation: docs/math.md#linear."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["linear_forward", "linear_backward"]


def linear_forward(x: Tensor, W: Tensor, b: Tensor | None = None) -> tuple[Tensor, tuple]:
    """y = x Wᵀ + b.  x (*, in), W (out, in), b (out,) or None -> y (*, out)."""
    x2 = x if x.dim() == 2 else x.reshape(-1, W.shape[1])  # (N, in): leading dims into N
    y = x2 @ W.T if b is None else torch.addmm(b, x2, W.T)  # (N, out)
    return _unrows(y, x.shape), (x2, W, b is not None, x.shape)


def linear_backward(
    dy: Tensor, cache: tuple, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """(dL/dx, dL/dW, dL/db) from dy (*, out); dL/dx is None when not needed (the data's)."""
    x2, W, has_bias, x_shape = cache
    dy2 = dy if dy.dim() == 2 else dy.reshape(-1, W.shape[0])  # (N, out)
    dW = dy2.T @ x2  # dL/dW = dyᵀ x      (out, in)
    db = dy2.sum(0) if has_bias else None  # dL/db = Σₙ dy      (out,)
    dx = _unrows(dy2 @ W, x_shape) if need_dx else None  # dL/dx = dy W       (*, in)
    return dx, dW, db


def _unrows(t2: Tensor, shape: torch.Size) -> Tensor:
    """(N, m) back to (*, m), the leading dims of `shape` (a 2-D shape: t2 as it is, since a
    view costs a call per step)."""
    return t2 if len(shape) == 2 else t2.view(*shape[:-1], t2.shape[1])
