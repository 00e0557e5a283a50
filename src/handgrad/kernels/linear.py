"""Linear's backward with dL/dW added into the weight's existing .grad by the product itself.

The reference, handgrad.ops.linear_backward, returns dL/dW = dyᵀ x and the layer adds it to
.grad: a product, then an addition over the whole (out, in) gradient. Here one GEMM with
beta = 1 computes .grad + dyᵀ x in place (one kernel, no (out, in) temporary). The sum is
the same; its rounding may differ in the last bit (the GEMM adds its partial sums into .grad
in its own order).
"""

from __future__ import annotations

from torch import Tensor

from handgrad.ops.linear import _unrows

__all__ = ["linear_backward_into"]


def linear_backward_into(
    dy: Tensor, cache: tuple, grad_W: Tensor, need_dx: bool = True
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """ops.linear_backward with dL/dW added into grad_W (W's .grad, dy's dtype): returns
    (dL/dx, grad_W after the addition, dL/db)."""
    x2, W, has_bias, x_shape = cache
    dy2 = dy if dy.dim() == 2 else dy.reshape(-1, W.shape[0])  # (N, out)
    grad_W.addmm_(dy2.T, x2)  # .grad += dyᵀ x      (out, in), one GEMM with beta = 1
    db = dy2.sum(0) if has_bias else None  # dL/db = Σₙ dy      (out,)
    dx = _unrows(dy2 @ W, x_shape) if need_dx else None  # dL/dx = dy W       (*, in)
    return dx, grad_W, db
