"""Scaled dot-product attention and its backward by hand. Math: docs/math.md#attention.

    S = q kᵀ / √d + mask      (B, L, S)   scores; the mask is additive (-inf: not allowed)
    P = softmax(S)            (B, L, S)   each query's weights over the keys, rows sum to 1
    y = dropout(P) v          (B, L, d_v)

The softmax subtracts each row's max first, so long rows of large scores stay finite; a row
with every key masked gives NaN, as torch's MultiheadAttention with need_weights=True does
(safe=True: zeros, as torch's scaled_dot_product_attention).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from handgrad.ops.dropout import dropout_backward, dropout_forward
from handgrad.ops.tensor import sum_to

__all__ = ["attention_forward", "attention_backward", "causal_mask"]


def causal_mask(L: int, S: int, like: Tensor) -> Tensor:
    """The additive mask of torch's is_causal: query i sees keys j ≤ i (top-left aligned),
    0 there and -inf above the diagonal.  (L, S), like's dtype and device."""
    allowed = torch.ones(L, S, dtype=torch.bool, device=like.device).tril()
    return torch.zeros(L, S, dtype=like.dtype, device=like.device).masked_fill(~allowed, -math.inf)


def attention_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    safe: bool = False,
) -> tuple[tuple[Tensor, Tensor], tuple]:
    """((y, P_dropped), cache).  q (B, L, d), k (B, S, d), v (B, S, d_v), mask additive,
    broadcasting to (B, L, S). P_dropped are the weights y was computed with (torch returns
    them as need_weights' output). safe=True gives a query whose keys are all masked zero
    weights instead of NaN (torch's scaled_dot_product_attention does; its need_weights path
    does not)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    q_scaled = q * scale  # (B, L, d), scaled first, as torch
    scores = q_scaled @ k.transpose(-2, -1)  # S = q kᵀ/√d   (B, L, S)
    if mask is not None:
        scores = scores + mask
    blocked = None
    if safe and mask is not None and scores.numel():  # a query that may see no key:
        blocked = (mask == -math.inf).all(-1, keepdim=True)  # read off the mask, not (B, L, S)
    if scores.numel():  # (out of place: gradcheck differentiates this forward with autograd)
        scores = scores - scores.amax(-1, keepdim=True)  # softmax is shift-invariant: e^{≤0}
    e = torch.exp(scores)
    P = e / e.sum(-1, keepdim=True)  # (B, L, S) rows sum to 1
    if blocked is not None:
        P = P.masked_fill(blocked, 0.0)  # attends to nothing: y = 0, and no gradient
    P_dropped, keep = dropout_forward(P, dropout_p, training)
    y = P_dropped @ v  # (B, L, d_v)
    mask_shape = None if mask is None else mask.shape
    return (y, P_dropped), (q_scaled, k, v, P, P_dropped, keep, scale, mask_shape)


def attention_backward(
    dys: tuple[Tensor | None, Tensor | None] | list[Tensor | None], cache: tuple
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, None, None, None]:
    """From (dL/dy, dL/dP_dropped) (None for an unused one): (dL/dq, dL/dk, dL/dv, dL/dmask
    (None without a mask), then None for dropout_p, training and safe)."""
    q_scaled, k, v, P, P_dropped, keep, scale, mask_shape = cache
    dy, dweights = dys
    if dy is None:  # only the weights were used: y passes no gradient
        dy = P_dropped.new_zeros(*P_dropped.shape[:-1], v.shape[-1])
    # in the forward: S = q kᵀ/√d + mask, P = softmax(S), P' = dropout(P), y = P' v
    dv = P_dropped.transpose(-2, -1) @ dy  # dL/dv = P'ᵀ dy  (B, S, d_v)
    dP_dropped = dy @ v.transpose(-2, -1)  # dL/dP' = dy vᵀ  (B, L, S)
    if dweights is not None:
        dP_dropped = dP_dropped + dweights  # dL/dP' = dy vᵀ + dweights  (P' was an output too)
    dP = dropout_backward(dP_dropped, keep)  # dL/dP = dL/dP' ⊙ m / (1 - p)  (B, L, S)
    dS = P * (dP - (dP * P).sum(-1, keepdim=True))  # dL/dS = P ⊙ (dP - Σⱼ dPⱼ Pⱼ)  (B, L, S)
    dq = (dS @ k) * scale  # dL/dq = dS k / √d   (B, L, d)
    dk = dS.transpose(-2, -1) @ q_scaled  # dL/dk = dSᵀ q / √d  (B, S, d)
    dmask = None if mask_shape is None else sum_to(dS, mask_shape)  # dL/dmask = sum_to(dS)
    return dq, dk, dv, dmask, None, None, None
