"""The embedding lookup y = W[idx] and its gradient, a scatter-add. Math: docs/math.md#embedding."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["embedding_forward", "embedding_backward", "embedding_renorm_"]


def embedding_renorm_(
    weight: Tensor, idx: Tensor, max_norm: float, norm_type: float = 2.0
) -> Tensor:
    """In place, as torch's max_norm: each row of W that idx names and whose p-norm exceeds
    max_norm is scaled by max_norm / (‖row‖ + 1e-7). No gradient flows through this rescaling
    (torch does it under no_grad): it changes the weight, not the function."""
    rows = idx.reshape(-1).unique()  # each named row once
    norms = torch.linalg.vector_norm(weight[rows], ord=norm_type, dim=1)  # (R,)
    scale = torch.where(norms > max_norm, max_norm / (norms + 1e-7), torch.ones_like(norms))
    weight[rows] = weight[rows] * scale.unsqueeze(1)
    return weight


def embedding_forward(
    idx: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
) -> tuple[Tensor, tuple]:
    """y = W[idx]: idx (*) integer, W (V, D) -> y (*, D). Each token's row, copied out."""
    if max_norm is not None:
        embedding_renorm_(weight, idx, max_norm, norm_type)
    y = weight[idx]  # (*, D)
    return y, (idx, weight.shape, padding_idx, scale_grad_by_freq)


def embedding_backward(dy: Tensor, cache: tuple) -> tuple[None, Tensor]:
    """(None for the integer idx, dL/dW): row v of dW is the sum of dy over the positions
    where idx = v (a scatter-add); the padding row gets none."""
    idx, (V, D), padding_idx, scale_grad_by_freq = cache
    flat = idx.reshape(-1)  # (T,) the T looked-up tokens
    dy2 = dy.reshape(-1, D)  # (T, D)
    if scale_grad_by_freq:
        count = torch.bincount(flat, minlength=V)  # (V,) how often each row was looked up
        dy2 = dy2 / count[flat].unsqueeze(1).to(dy2.dtype)  # each use's gradient / its row's count
    if padding_idx is not None:  # the padding row is not trained: its uses add nothing
        dy2 = torch.where((flat == padding_idx).unsqueeze(1), 0.0, dy2)
    dW = dy2.new_zeros(V, D).index_add(0, flat, dy2)  # dL/dW[v] = Σ_{t: idx_t = v} dy_t  (V, D)
    return None, dW
