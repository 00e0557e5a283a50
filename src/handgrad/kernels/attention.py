"""Attention's forward and backward with their elementwise steps in place.

The reference, handgrad.ops.attention_forward/attention_backward, writes each step as a new
tensor. Here the backward's steps that may reuse a buffer do: dL/dP' gathers the weights'
gradient in dy vᵀ's buffer, the softmax backward P ⊙ (dP - Σ dP P) runs in dP's buffer and
dL/dq is scaled in dS k's (two to three fewer (B, L, S) tensors per call). The numbers are
the reference's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from handgrad.ops import attention as ops_attention
from handgrad.ops.dropout import dropout_backward
from handgrad.ops.tensor import sum_to

__all__ = ["attention_forward", "attention_backward"]


# The forward has nothing to do in place that pays (P's blocked rows are zeroed only with
# safe=True and a mask): it is the reference's, and makes the cache the backward below reads.
attention_forward = ops_attention.attention_forward


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
