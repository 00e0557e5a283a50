"""Losses. Each forward gives the per-term loss ℓ reduced by `reduction`; each backward gives
dL/dpred = dℓ/dpred · dL/dℓ, where dL/dℓ is dloss/n for "mean" (n terms), dloss for "sum",
and dloss per term for "none". Derivations: docs/math.md#losses.

Class losses take scores with the classes along dim 1 of (N, C, ...), or dim 0 of one (C,)
example, as torch; inside, the class dim is moved last.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "mse_loss_forward",
    "mse_loss_backward",
    "l1_loss_forward",
    "l1_loss_backward",
    "huber_loss_forward",
    "huber_loss_backward",
    "bce_loss_forward",
    "bce_loss_backward",
    "bce_with_logits_forward",
    "bce_with_logits_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "nll_loss_forward",
    "nll_loss_backward",
    "categorical_cross_entropy_forward",
    "categorical_cross_entropy_backward",
]

LOG_FLOOR = -100.0  # log p is clamped here, as torch.nn.BCELoss does: p = 0 costs 100, not inf
PROB_FLOOR = 1e-12  # p(1 - p) and p are floored here in backward: finite, huge gradients
Upstream = Tensor | float


def reduce(terms: Tensor, reduction: str) -> Tensor:
    """The loss from its terms: their mean, their sum, or the terms themselves ("none")."""
    if reduction == "mean":
        return terms.mean()
    if reduction == "sum":
        return terms.sum()
    return terms


def per_term(dloss: Upstream, reduction: str, terms_shape: torch.Size) -> Upstream:
    """dL/dℓ for each term: dloss/n for mean, dloss for sum, dloss (one per term) for none."""
    if reduction == "mean":
        return dloss / max(terms_shape.numel(), 1)
    return dloss


def _classes_last(t: Tensor) -> Tensor:
    return t if t.dim() == 1 else t.movedim(1, -1)


def _classes_back(t: Tensor) -> Tensor:
    return t if t.dim() == 1 else t.movedim(-1, 1)


def _per_class_term(g: Upstream) -> Upstream:
    """A per-term upstream (N, ...) lined up against classes-last scores (N, ..., C)."""
    return g.unsqueeze(-1) if isinstance(g, Tensor) and g.dim() > 0 else g


def mse_loss_forward(pred: Tensor, target: Tensor, reduction: str = "mean") -> tuple[Tensor, tuple]:
    """ℓ = (p - t)²."""
    d = pred - target
    return reduce(d * d, reduction), (d, reduction)


def mse_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    d, reduction = cache
    return d * (2 * per_term(dloss, reduction, d.shape))  # dℓ/dp = 2(p - t)


def l1_loss_forward(pred: Tensor, target: Tensor, reduction: str = "mean") -> tuple[Tensor, tuple]:
    """ℓ = |p - t|."""
    d = pred - target
    return reduce(d.abs(), reduction), (d, reduction)


def l1_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    d, reduction = cache
    return torch.sign(d) * per_term(dloss, reduction, d.shape)  # dℓ/dp = sign(p - t), 0 at p = t


def huber_loss_forward(
    pred: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0
) -> tuple[Tensor, tuple]:
    """ℓ = ½d² if |d| ≤ δ else δ(|d| - ½δ), d = p - t."""
    d = pred - target
    a = d.abs()
    terms = torch.where(a <= delta, 0.5 * d * d, delta * (a - 0.5 * delta))
    return reduce(terms, reduction), (d, reduction, delta)


def huber_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    d, reduction, delta = cache
    return d.clamp(-delta, delta) * per_term(dloss, reduction, d.shape)  # dℓ/dp = clamp(d, ±δ)


def bce_loss_forward(p: Tensor, target: Tensor, reduction: str = "mean") -> tuple[Tensor, tuple]:
    """ℓ = -(t log p + (1 - t) log(1 - p)), each log floored at -100 (as torch)."""
    log_p = torch.log(p).clamp(min=LOG_FLOOR)
    log_1mp = torch.log1p(-p).clamp(min=LOG_FLOOR)
    return reduce(-(target * log_p + (1 - target) * log_1mp), reduction), (p, target, reduction)


def bce_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    p, t, reduction = cache
    dp = (p - t) / (p * (1 - p)).clamp(min=PROB_FLOOR)  # dℓ/dp = (p - t) / (p(1 - p))
    return dp * per_term(dloss, reduction, p.shape)


def bce_with_logits_forward(
    z: Tensor, target: Tensor, reduction: str = "mean"
) -> tuple[Tensor, tuple]:
    """ℓ = max(z, 0) - z·t + log(1 + e^{-|z|}) = BCE(σ(z), t), finite for any z."""
    terms = z.clamp(min=0) - z * target + torch.log1p(torch.exp(-z.abs()))
    return reduce(terms, reduction), (z, target, reduction)


def bce_with_logits_backward(dloss: Upstream, cache: tuple) -> Tensor:
    z, t, reduction = cache
    return (torch.sigmoid(z) - t) * per_term(dloss, reduction, z.shape)  # dℓ/dz = σ(z) - t


def cross_entropy_forward(
    z: Tensor, target: Tensor, reduction: str = "mean"
) -> tuple[Tensor, tuple]:
    """ℓ = -Σ_c t_c log softmax(z)_c: logits z, target class indices (integers, one dim fewer)
    or class probabilities (floating, z's shape)."""
    zl = _classes_last(z)  # (N, ..., C)
    shifted = zl - zl.amax(-1, keepdim=True)  # log-sum-exp: every exponent <= 0
    e = torch.exp(shifted)
    total = e.sum(-1, keepdim=True)
    log_p = shifted - torch.log(total)  # log softmax(z)
    if target.is_floating_point():
        t = _classes_last(target)
        terms = -(t * log_p).sum(-1)
    else:
        t = target.long().unsqueeze(-1)  # (N, ..., 1): the class of each term
        terms = -log_p.gather(-1, t).squeeze(-1)
    return reduce(terms, reduction), (e, total, t, reduction, terms.shape)


def cross_entropy_backward(dloss: Upstream, cache: tuple) -> Tensor:
    e, total, t, reduction, terms_shape = cache
    softmax = e / total
    if t.is_floating_point():
        dz = softmax * t.sum(-1, keepdim=True) - t  # dℓ/dz = softmax(z)·Σ_c t_c - t
    else:
        dz = softmax.scatter_add(-1, t, softmax.new_full(t.shape, -1.0))  # softmax(z) - onehot
    return _classes_back(dz * _per_class_term(per_term(dloss, reduction, terms_shape)))


def nll_loss_forward(logp: Tensor, target: Tensor, reduction: str = "mean") -> tuple[Tensor, tuple]:
    """ℓ = -x_y: log-probabilities x, class indices y."""
    xl = _classes_last(logp)
    y = target.long().unsqueeze(-1)
    terms = -xl.gather(-1, y).squeeze(-1)
    return reduce(terms, reduction), (y, xl.shape, xl.dtype, reduction, terms.shape)


def nll_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    y, shape, dtype, reduction, terms_shape = cache
    onehot = torch.zeros(shape, dtype=dtype, device=y.device).scatter_(-1, y, 1.0)
    g = _per_class_term(per_term(dloss, reduction, terms_shape))
    return _classes_back(-onehot * g)  # dℓ/dx = -onehot(y)


def categorical_cross_entropy_forward(
    p: Tensor, target: Tensor, reduction: str = "mean"
) -> tuple[Tensor, tuple]:
    """ℓ = -Σ_c t_c log p_c (log floored at -100): probabilities p, target one-hot or
    probabilities (p's shape) or class indices (the lab's task 3.2)."""
    pl = _classes_last(p)
    if target.is_floating_point():
        t = _classes_last(target)
    else:
        t = torch.zeros_like(pl).scatter_(-1, target.long().unsqueeze(-1), 1.0)  # one-hot
    terms = -(t * torch.log(pl).clamp(min=LOG_FLOOR)).sum(-1)
    return reduce(terms, reduction), (pl, t, reduction, terms.shape)


def categorical_cross_entropy_backward(dloss: Upstream, cache: tuple) -> Tensor:
    pl, t, reduction, terms_shape = cache
    dp = -t / pl.clamp(min=PROB_FLOOR)  # dℓ/dp = -t / p
    return _classes_back(dp * _per_class_term(per_term(dloss, reduction, terms_shape)))
