"""Normalization: x̂ = (x - μ)/sqrt(σ² + ε), y = γ x̂ + β, with μ and σ² (biased) taken over
the batch per channel (batch norm) or over each example's last dims (layer norm).
Derivations: docs/math.md#batchnorm1d-and-batchnorm2d and docs/math.md#layernorm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from handgrad.errors import InputError

__all__ = ["batch_norm_forward", "batch_norm_backward", "layer_norm_forward", "layer_norm_backward"]


def batch_norm_forward(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Tensor, tuple]:
    """y = γ x̂ + β per channel of x (N, C, *): μ and σ² over every dim but the channel dim 1.

    training=True normalizes with the batch's μ, σ² and, when running statistics are given,
    moves them in place (running ← (1 - momentum)·running + momentum·batch, with the
    unbiased σ², as torch; an empty batch moves nothing). training=False normalizes with the
    running statistics.
    """
    dims = _stat_dims(x)  # everything but the channel dim 1
    shape = (1, x.shape[1]) + (1,) * (x.dim() - 2)  # a per-channel vector against x
    M = x.numel() // x.shape[1] if x.shape[1] else 0  # values per channel
    if training and M == 0:  # an empty batch: no statistics, nothing to normalize or move
        mean, var = x.new_zeros(x.shape[1]), x.new_ones(x.shape[1])
    elif training:
        if M == 1:
            raise InputError("batch_norm_forward: expected more than 1 value per channel")
        var, mean = torch.var_mean(x, dim=dims, unbiased=False)  # (C,)
        if running_mean is not None and running_var is not None:
            running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1 - momentum).add_(var * (M / (M - 1)), alpha=momentum)
    elif running_mean is not None and running_var is not None:
        mean, var = running_mean, running_var
    else:
        raise InputError("batch_norm_forward: training=False needs running_mean and running_var")
    rstd = (var + eps).rsqrt().reshape(shape)  # 1/σ   (1, C, 1, ...)
    xhat = (x - mean.reshape(shape)) * rstd  # x̂
    y = xhat if weight is None else xhat * weight.reshape(shape)  # γ x̂
    y = y if bias is None else y + bias.reshape(shape)  # + β
    if y is xhat:
        y = xhat.clone()  # y must not be the cached x̂ (an inplace layer after this may change y)
    return y, (xhat, rstd, weight, bias is not None, training)


def batch_norm_backward(dy: Tensor, cache: tuple) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """(dL/dx, dL/dγ, dL/dβ)."""
    xhat, rstd, weight, has_bias, training = cache
    dims = _stat_dims(dy)
    dweight = (dy * xhat).sum(dims) if weight is not None else None  # dL/dγ = Σ dy x̂   (C,)
    dbias = dy.sum(dims) if has_bias else None  # dL/dβ = Σ dy      (C,)
    dxhat = dy if weight is None else dy * weight.reshape(rstd.shape)  # dL/dx̂ = dy γ
    if not training:
        return dxhat * rstd, dweight, dbias  # dL/dx = dx̂/σ  (running stats: constants)
    mean_dxhat = dxhat.mean(dims, keepdim=True)
    mean_dxhat_xhat = (dxhat * xhat).mean(dims, keepdim=True)
    dx = rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)  # dL/dx = (dx̂ - E[dx̂] - x̂E[dx̂x̂])/σ
    return dx, dweight, dbias


def _stat_dims(x: Tensor) -> tuple[int, ...]:
    """The dims batch norm averages over: all but the channel dim 1."""
    return (0, *range(2, x.dim()))


def layer_norm_forward(
    x: Tensor,
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> tuple[Tensor, tuple]:
    """y = γ x̂ + β, each example normalized over its last len(normalized_shape) dims.
    x (*, *normalized_shape); γ, β have normalized_shape."""
    dims = tuple(range(-len(normalized_shape), 0))  # the normalized dims, counted from the end
    if x.numel() == 0:  # no examples: nothing to normalize (and a mean would warn)
        xc, var = x, x.sum(dims, keepdim=True)
    else:
        n = math.prod([x.shape[d] for d in dims])  # the elements of one example
        xc = x - x.mean(dims, keepdim=True)  # x - μ
        # σ² = ‖x - μ‖²/n: two passes, as exact as var_mean's and several times faster on CPU
        var = torch.linalg.vector_norm(xc, dim=dims, keepdim=True).square() / n
    rstd = (var + eps).rsqrt()  # 1/σ per example  (*, 1, ..., 1)
    xhat = xc * rstd  # x̂ (out of place: gradcheck differentiates this forward with autograd)
    if weight is None:
        y = xhat.clone() if bias is None else xhat + bias  # never the cached x̂ itself
    else:
        y = xhat * weight if bias is None else torch.addcmul(bias, xhat, weight)  # γ x̂ + β
    return y, (xhat, rstd, weight, bias is not None, dims)


def layer_norm_backward(
    dy: Tensor, cache: tuple
) -> tuple[Tensor, None, Tensor | None, Tensor | None]:
    """(dL/dx, None for normalized_shape, dL/dγ, dL/dβ): one per input of the forward."""
    xhat, rstd, weight, has_bias, dims = cache
    lead = tuple(range(dy.dim() - len(dims)))  # the example dims, summed over for γ and β
    dweight = _sum(dy * xhat, lead) if weight is not None else None  # dL/dγ = Σ dy x̂  (*norm)
    dbias = _sum(dy, lead) if has_bias else None  # dL/dβ = Σ dy     (*normalized_shape)
    dxhat = dy if weight is None else dy * weight  # dL/dx̂ = dy γ  (*, *normalized_shape)
    mean_dxhat = dxhat.mean(dims, keepdim=True)  # E[dx̂]  (*, 1, ..., 1)
    mean_dxhat_xhat = (dxhat * xhat).mean(dims, keepdim=True)  # E[dx̂x̂]  (*, 1, ..., 1)
    dx = rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)  # dL/dx = (dx̂ - E[dx̂] - x̂E[dx̂x̂])/σ
    return dx, None, dweight, dbias


def _sum(t: Tensor, dims: tuple[int, ...]) -> Tensor:
    return t.sum(dims) if dims else t.clone()  # (a sum over no dims would sum over all)
