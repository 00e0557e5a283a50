"""LayerNorm's backward in one work buffer.

The reference, handgrad.ops.layer_norm_backward, writes dL/dx = (dx̂ - E[dx̂] - x̂ E[dx̂ x̂]) / σ
as the formula: each operation makes a new (*, *normalized_shape) tensor. Here the same
operations run in place in dx̂'s own buffer (three fewer full-size allocations and passes over
memory). The numbers are the reference's up to the last bit: addcmul_ may round x̂ E[dx̂ x̂]
and the subtraction as one fused step.
"""

from __future__ import annotations

from torch import Tensor

from handgrad.ops.normalization import _sum

__all__ = ["layer_norm_backward"]


def layer_norm_backward(
    dy: Tensor, cache: tuple
) -> tuple[Tensor, None, Tensor | None, Tensor | None]:
    """ops.layer_norm_backward, computed in one buffer: (dL/dx, None, dL/dγ, dL/dβ)."""
    xhat, rstd, weight, has_bias, dims = cache
    lead = tuple(range(dy.dim() - len(dims)))  # the example dims, summed over for γ and β
    dweight = _sum(dy * xhat, lead) if weight is not None else None  # Σ dy x̂
    dbias = _sum(dy, lead) if has_bias else None  # Σ dy
    dxhat = dy.clone() if weight is None else dy * weight  # dx̂ = dy γ, the one work buffer
    mean_dxhat = dxhat.mean(dims, keepdim=True)  # E[dx̂]
    mean_dxhat_xhat = (dxhat * xhat).mean(dims, keepdim=True)  # E[dx̂ x̂]
    dx = dxhat.sub_(mean_dxhat).addcmul_(xhat, mean_dxhat_xhat, value=-1.0).mul_(rstd)
    return dx, None, dweight, dbias
