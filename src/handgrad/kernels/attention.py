"""Attention's forward and backward with their elementwise steps in place.

The reference, handgrad.ops.attention_forward/attention_backward, writes each step as a new
tensor. Here the steps that may reuse a buffer do: the blocked rows of P are zeroed in P,
dL/dP' gathers the weights' gradient in dy vᵀ's buffer, the softmax backward P ⊙ (dP - Σ dP P)
runs in dP's buffer and dL/dq is scaled in dS k's (two to three fewer (B, L, S) tensors per
call). The numbers are the reference's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from handgrad.ops.dropout import dropout_backward, dropout_forward
from handgrad.ops.tensor import sum_to

__all__ = ["attention_forward", "attention_backward"]


def attention_forward(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = True,
    safe: bool = False,
) -> tuple[tuple[Tensor, Tensor], tuple]:
    """ops.attention_forward, with the blocked rows of P zeroed in place."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    q_scaled = q * scale  # (B, L, d)
    scores = q_scaled @ k.transpose(-2, -1)  # S = q kᵀ/√d   (B, L, S)
    if mask is not None:
        scores = scores + mask
    blocked = None
    if safe and mask is not None and scores.numel():
        blocked = (mask == -math.inf).all(-1, keepdim=True)
    if scores.numel():
        scores = scores - scores.amax(-1, keepdim=True)
    e = torch.exp(scores)
    P = e / e.sum(-1, keepdim=True)  # (B, L, S)
    if blocked is not None:
        P.masked_fill_(blocked, 0.0)
    P_dropped, keep = dropout_forward(P, dropout_p, training)
    y = P_dropped @ v  # (B, L, d_v)
    mask_shape = None if mask is None else mask.shape
    return (y, P_dropped), (q_scaled, k, v, P, P_dropped, keep, scale, mask_shape)


def attention_backward(
    dys: tuple[Tensor | None, Tensor | None] | list[Tensor | None], cache: tuple
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, None, None, None]:
    """ops.attention_backward, with its elementwise steps in place."""
    q_scaled, k, v, P, P_dropped, keep, scale, mask_shape = cache
    dy, dweights = dys
    dP_dropped = torch.zeros_like(P) if dy is None else dy @ v.transpose(-2, -1)  # dy vᵀ
    if dweights is not None:
        dP_dropped = dP_dropped.add_(dweights)
    dv = P_dropped.new_zeros(v.shape) if dy is None else P_dropped.transpose(-2, -1) @ dy
    dP = dropout_backward(dP_dropped, keep)  # a new tensor when there was dropout
    dS = dP.sub_((dP * P).sum(-1, keepdim=True)).mul_(P)  # P ⊙ (dP - Σⱼ dPⱼ Pⱼ)
    dq = (dS @ k).mul_(scale)  # dS k / √d
    dk = dS.transpose(-2, -1) @ q_scaled  # dSᵀ q / √d
    dmask = None if mask_shape is None else sum_to(dS, mask_shape)
    return dq, dk, dv, dmask, None, None, None
