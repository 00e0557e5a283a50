"""Losses. Each forward gives the per-term loss ℓ reduced by `reduction`; each backward gives
dL/dpred = dℓ/dpred · dL/dℓ, where dL/dℓ is dloss/n for "mean" (n terms), dloss for "sum",
and dloss per term for "none". Derivations: docs/math.md#losses.

Class losses take scores with the classes along dim 1 of (N, C, ...), or dim 0 of one (C,)
example, as torch; inside, the class dim is moved last. Their "mean" divides by the summed
weight of the targets that count (torch's rule), not by the number of terms.
Losses of two inputs (margin ranking, cosine embedding) return (dx1, dx2) from backward.
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
    "smooth_l1_loss_forward",
    "smooth_l1_loss_backward",
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
    "kl_div_forward",
    "kl_div_backward",
    "soft_margin_loss_forward",
    "soft_margin_loss_backward",
    "multilabel_soft_margin_loss_forward",
    "multilabel_soft_margin_loss_backward",
    "margin_ranking_loss_forward",
    "margin_ranking_loss_backward",
    "cosine_embedding_loss_forward",
    "cosine_embedding_loss_backward",
]

LOG_FLOOR = -100.0  # log p is clamped here, as torch.nn.BCELoss does: p = 0 costs 100, not inf
PROB_FLOOR = 1e-12  # p(1 - p) and p are floored here in backward: finite, huge gradients
COSINE_EPS = 1e-12  # added to |x1|² and |x2|² before the square root, as torch does
Upstream = Tensor | float


def reduce(terms: Tensor, reduction: str) -> Tensor:
    """The loss from its terms: their mean, their sum, or the terms themselves ("none")."""
    if reduction == "mean":
        return terms.mean()  # no terms: nan, as torch
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


def _log_sigmoid(z: Tensor) -> Tensor:
    """log σ(z) = min(z, 0) - log(1 + e^{-|z|}): the exponent is never positive."""
    return z.clamp(max=0) - torch.log1p(torch.exp(-z.abs()))


# ---- regression ----------------------------------------------------------------------------------
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


def smooth_l1_loss_forward(
    pred: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0
) -> tuple[Tensor, tuple]:
    """ℓ = ½d²/β if |d| < β else |d| - ½β, d = p - t (Huber / β); β = 0 is L1."""
    d = pred - target
    a = d.abs()
    terms = a if beta == 0 else torch.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
    return reduce(terms, reduction), (d, reduction, beta)


def smooth_l1_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    d, reduction, beta = cache
    dp = torch.sign(d) if beta == 0 else (d / beta).clamp(-1, 1)  # dℓ/dp = clamp(d/β, ±1)
    return dp * per_term(dloss, reduction, d.shape)


# ---- binary and multi-label ----------------------------------------------------------------------
def bce_loss_forward(
    p: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None
) -> tuple[Tensor, tuple]:
    """ℓ = -w (t log p + (1 - t) log(1 - p)), each log floored at -100 (as torch)."""
    log_p = torch.log(p).clamp(min=LOG_FLOOR)
    log_1mp = torch.log1p(-p).clamp(min=LOG_FLOOR)
    terms = -(target * log_p + (1 - target) * log_1mp)
    if weight is not None:
        terms = terms * weight
    return reduce(terms, reduction), (p, target, weight, reduction)


def bce_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    p, t, w, reduction = cache
    dp = (p - t) / (p * (1 - p)).clamp(min=PROB_FLOOR)  # dℓ/dp = w (p - t) / (p(1 - p))
    if w is not None:
        dp = dp * w
    return dp * per_term(dloss, reduction, p.shape)


def bce_with_logits_forward(
    z: Tensor,
    target: Tensor,
    reduction: str = "mean",
    weight: Tensor | None = None,
    pos_weight: Tensor | None = None,
) -> tuple[Tensor, tuple]:
    """ℓ = w ((1 - t) z - (1 + (pw - 1) t) log σ(z)) = w BCE(σ(z), t) with the positive term
    weighted by pw; finite for any z."""
    log_weight = 1.0 if pos_weight is None else 1 + (pos_weight - 1) * target
    terms = (1 - target) * z - log_weight * _log_sigmoid(z)
    if weight is not None:
        terms = terms * weight
    return reduce(terms, reduction), (z, target, weight, pos_weight, reduction)


def bce_with_logits_backward(dloss: Upstream, cache: tuple) -> Tensor:
    z, t, w, pw, reduction = cache
    if pw is None:
        dz = torch.sigmoid(z) - t  # dℓ/dz = σ(z) - t
    else:
        dz = (1 - t + pw * t) * torch.sigmoid(z) - pw * t  # dℓ/dz = (1 - t + pw t) σ(z) - pw t
    if w is not None:
        dz = dz * w
    return dz * per_term(dloss, reduction, z.shape)


def multilabel_soft_margin_loss_forward(
    x: Tensor, target: Tensor, reduction: str = "mean", weight: Tensor | None = None
) -> tuple[Tensor, tuple]:
    """ℓ = (1/C) Σ_c -w_c (t_c log σ(x_c) + (1 - t_c) log σ(-x_c)): one term per row of (N, C)."""
    log_sig = _log_sigmoid(x)
    per_class = -(target * log_sig + (1 - target) * (log_sig - x))  # log σ(-x) = log σ(x) - x
    if weight is not None:
        per_class = per_class * weight
    C = x.shape[-1]
    terms = per_class.sum(-1) / C  # (N,)
    return reduce(terms, reduction), (x, target, weight, reduction, terms.shape)


def multilabel_soft_margin_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    x, t, w, reduction, terms_shape = cache
    dx = (torch.sigmoid(x) - t) / x.shape[-1]  # dℓ/dx_c = (σ(x_c) - t_c) w_c / C   (N, C)
    if w is not None:
        dx = dx * w
    return dx * _per_class_term(per_term(dloss, reduction, terms_shape))


def soft_margin_loss_forward(
    x: Tensor, target: Tensor, reduction: str = "mean"
) -> tuple[Tensor, tuple]:
    """ℓ = log(1 + e^{-y x}), written -log σ(y x) so that it stays finite for any y x."""
    terms = -_log_sigmoid(target * x)
    return reduce(terms, reduction), (x, target, reduction)


def soft_margin_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    x, y, reduction = cache
    dx = -y * torch.sigmoid(-y * x)  # dℓ/dx = -y σ(-y x)
    return dx * per_term(dloss, reduction, x.shape)


# ---- distributions -------------------------------------------------------------------------------
def kl_div_forward(
    x: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False
) -> tuple[Tensor, tuple]:
    """ℓ = t (log t - x) (0 where t = 0), x log-probabilities; log_target: ℓ = e^t (t - x).
    "batchmean" divides the sum by the batch size x.shape[0] (by 1 for a 0-d x)."""
    if log_target:
        terms = torch.exp(target) * (target - x)
    else:
        terms = torch.xlogy(target, target) - target * x
    if reduction == "batchmean":
        n = x.shape[0] if x.dim() > 0 else 1
        return terms.sum() / n, (target, log_target, reduction, n)
    return reduce(terms, reduction), (target, log_target, reduction, terms.numel())


def kl_div_backward(dloss: Upstream, cache: tuple) -> Tensor:
    t, log_target, reduction, n = cache
    dx = -torch.exp(t) if log_target else -t  # dℓ/dx = -t  (-e^t with log_target)
    if reduction in ("mean", "batchmean"):
        return dx * (dloss / n) if n else dx  # no terms: an empty gradient
    return dx * dloss


# ---- classes -------------------------------------------------------------------------------------
def _index_distribution(
    y: Tensor,
    C: int,
    weight: Tensor | None,
    ignore_index: int,
    label_smoothing: float,
    like: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """For class indices y (N, ...): the target distribution q = (1 - ε) w_y onehot(y) + (ε/C) w
    (N, ..., C), 0 for an ignored y, so that ℓ = -Σ_c q_c log p_c; the mask of counted terms
    (N, ..., 1); and "mean"'s divisor Σ w_y over the counted terms (torch's normalisation)."""
    active = (y != ignore_index).unsqueeze(-1)  # (N, ..., 1)
    y0 = y.unsqueeze(-1).masked_fill(~active, 0)  # an ignored y reads class 0, masked below
    w = weight if weight is not None else like.new_ones(C)
    w_y = w[y0] * active  # (N, ..., 1): each term's weight, 0 where ignored
    q = torch.zeros(*y.shape, C, dtype=like.dtype, device=like.device).scatter(-1, y0, w_y)
    if label_smoothing > 0:
        q = (1 - label_smoothing) * q + (label_smoothing / C) * w * active
    return q, active, w_y.sum()


def cross_entropy_forward(
    z: Tensor,
    target: Tensor,
    reduction: str = "mean",
    weight: Tensor | None = None,
    ignore_index: int | None = -100,
    label_smoothing: float = 0.0,
) -> tuple[Tensor, tuple]:
    """ℓ = -Σ_c q_c log softmax(z)_c: logits z; target class indices (integers, one dim fewer:
    q = w_y onehot(y), smoothed towards w/C) or class probabilities (floating, z's shape:
    q = w ⊙ ((1 - ε) t + ε/C)). ignore_index=None: no target is ignored (the caller knows that
    none equals it, e.g. every index was checked to be a class in [0, C))."""
    zl = _classes_last(z)  # (N, ..., C)
    C = zl.shape[-1]
    shifted = zl - zl.amax(-1, keepdim=True)  # log-sum-exp: every exponent <= 0
    log_p = shifted - torch.log(torch.exp(shifted).sum(-1, keepdim=True))  # log softmax(z)
    if target.is_floating_point():
        q = _classes_last(target)
        if label_smoothing > 0:
            q = (1 - label_smoothing) * q + label_smoothing / C
        if weight is not None:
            q = q * weight
        active, n = None, log_p.new_tensor(float(log_p.numel() // max(C, 1)))  # mean: per term
    elif weight is None and ignore_index is None and label_smoothing == 0:
        return _plain_cross_entropy(log_p, target, reduction)
    else:
        ignore = -1 if ignore_index is None else ignore_index  # None: no index is ignored
        q, active, n = _index_distribution(target.long(), C, weight, ignore, label_smoothing, log_p)
    terms = -(q * log_p).sum(-1)  # (N, ...)
    if active is not None:
        terms = terms.masked_fill(~active.squeeze(-1), 0.0)  # an ignored term is 0, as torch
    loss = terms.sum() / n if reduction == "mean" else reduce(terms, reduction)
    return loss, (log_p, q, active, n, reduction)


def _plain_cross_entropy(log_p: Tensor, target: Tensor, reduction: str) -> tuple[Tensor, tuple]:
    """Class indices with no weight, none ignored, no smoothing: ℓ = -log softmax(z)_y.

    The general path's numbers (its q is onehot(y), so -Σ_c q_c log p_c = -log p_y and "mean"
    divides by the number of terms) without building q, its mask and its weights: a training
    step's loss in a few ops instead of a score of them.
    """
    y = target.long().unsqueeze(-1)  # (N, ..., 1)
    terms = -log_p.gather(-1, y).squeeze(-1)  # ℓ = -log p_y                  (N, ...)
    loss = terms.sum() / terms.numel() if reduction == "mean" else reduce(terms, reduction)
    return loss, (log_p, y, reduction)


def cross_entropy_backward(dloss: Upstream, cache: tuple) -> Tensor:
    if len(cache) == 3:  # _plain_cross_entropy's (log_p, y, reduction)
        return _plain_cross_entropy_backward(dloss, cache)
    log_p, q, active, n, reduction = cache
    s = _per_class_term(dloss / n if reduction == "mean" else dloss)
    dlog_p = -q * s  # dℓ/dlog p = -q                                   (N, ..., C)
    if active is not None:
        dlog_p = dlog_p.masked_fill(~active, 0.0)  # ignored terms: 0 (even when n = 0)
    dz = dlog_p - torch.exp(log_p) * dlog_p.sum(-1, keepdim=True)  # = (softmax(z) Σ_c q_c - q) s
    return _classes_back(dz)


def _plain_cross_entropy_backward(dloss: Upstream, cache: tuple) -> Tensor:
    log_p, y, reduction = cache
    s = _per_class_term(per_term(dloss, reduction, y.shape[:-1]))  # dL/dℓ per term
    p_s = torch.exp(log_p) * s  # softmax(z) s                                 (N, ..., C)
    if isinstance(s, Tensor):  # -s at each term's class y                          (N, ..., 1)
        minus_s = (-s).to(p_s.dtype).expand(y.shape)
    else:
        minus_s = p_s.new_full(y.shape, -s)
    dz = p_s.scatter_add(-1, y, minus_s)  # dℓ/dz = (softmax(z) - onehot(y)) s
    return _classes_back(dz)


def nll_loss_forward(
    logp: Tensor,
    target: Tensor,
    reduction: str = "mean",
    weight: Tensor | None = None,
    ignore_index: int = -100,
) -> tuple[Tensor, tuple]:
    """ℓ = -w_y x_y (0 where y = ignore_index): log-probabilities x, class indices y."""
    xl = _classes_last(logp)
    y = target.long().unsqueeze(-1)  # (N, ..., 1)
    active = y != ignore_index
    y0 = y.masked_fill(~active, 0)
    w_y = (weight[y0] if weight is not None else torch.ones_like(y0, dtype=xl.dtype)) * active
    terms = torch.where(active, -xl.gather(-1, y0) * w_y, 0.0).squeeze(-1)  # (N, ...)
    n = w_y.sum()  # mean divides by the counted weight, as torch
    loss = terms.sum() / n if reduction == "mean" else reduce(terms, reduction)
    return loss, (y0, active, w_y, n, xl.shape, reduction)


def nll_loss_backward(dloss: Upstream, cache: tuple) -> Tensor:
    y0, active, w_y, n, shape, reduction = cache
    s = _per_class_term(-dloss / n if reduction == "mean" else -dloss)
    dx_y = torch.where(active, w_y * s, 0.0)  # dℓ/dx_y = -w_y, 0 where ignored     (N, ..., 1)
    dx = torch.zeros(shape, dtype=w_y.dtype, device=w_y.device).scatter(-1, y0, dx_y)
    return _classes_back(dx)


def categorical_cross_entropy_forward(
    p: Tensor, target: Tensor, reduction: str = "mean"
) -> tuple[Tensor, tuple]:
    """ℓ = -Σ_c t_c log p_c (log floored at -100): probabilities p, target one-hot or
    probabilities (p's shape) or class indices (the lab's task 3.2)."""
    pl = _classes_last(p)
    if target.is_floating_point():
        t = _classes_last(target)
    else:
        t = torch.zeros_like(pl).scatter(-1, target.long().unsqueeze(-1), 1.0)  # one-hot
    terms = -(t * torch.log(pl).clamp(min=LOG_FLOOR)).sum(-1)
    return reduce(terms, reduction), (pl, t, reduction, terms.shape)


def categorical_cross_entropy_backward(dloss: Upstream, cache: tuple) -> Tensor:
    pl, t, reduction, terms_shape = cache
    dp = -t / pl.clamp(min=PROB_FLOOR)  # dℓ/dp = -t / p
    return _classes_back(dp * _per_class_term(per_term(dloss, reduction, terms_shape)))


# ---- two inputs ----------------------------------------------------------------------------------
def margin_ranking_loss_forward(
    x1: Tensor, x2: Tensor, target: Tensor, reduction: str = "mean", margin: float = 0.0
) -> tuple[Tensor, tuple]:
    """ℓ = max(0, -y (x1 - x2) + margin): y = 1 wants x1 ranked above x2, y = -1 below."""
    v = -target * (x1 - x2) + margin
    terms = v.clamp(min=0)
    return reduce(terms, reduction), (target, v >= 0, reduction)  # torch's clamp passes at 0


def margin_ranking_loss_backward(dloss: Upstream, cache: tuple) -> tuple[Tensor, Tensor]:
    y, on, reduction = cache
    g = torch.where(on, -y, 0.0) * per_term(dloss, reduction, y.shape)  # dℓ/dx1 = -y where v ≥ 0
    return g, -g  # dℓ/dx2 = -dℓ/dx1


def cosine_embedding_loss_forward(
    x1: Tensor, x2: Tensor, target: Tensor, reduction: str = "mean", margin: float = 0.0
) -> tuple[Tensor, tuple]:
    """ℓ = 1 - cos(x1, x2) where y = 1, max(0, cos - margin) where y = -1, 0 otherwise;
    cos = x1·x2 / √((|x1|² + ε)(|x2|² + ε)) over the last dim, ε = 1e-12 (as torch)."""
    A = (x1 * x1).sum(-1) + COSINE_EPS  # (N,)
    B = (x2 * x2).sum(-1) + COSINE_EPS
    root = torch.sqrt(A * B)
    cos = (x1 * x2).sum(-1) / root
    pos, neg = target == 1, target == -1
    terms = torch.where(pos, 1 - cos, 0.0) + torch.where(neg, (cos - margin).clamp(min=0), 0.0)
    dcos = (neg & (cos - margin >= 0)).to(cos.dtype) - pos.to(cos.dtype)  # dℓ/dcos: -1, 1 or 0
    return reduce(terms, reduction), (x1, x2, A, B, root, cos, dcos, reduction)


def cosine_embedding_loss_backward(dloss: Upstream, cache: tuple) -> tuple[Tensor, Tensor]:
    x1, x2, A, B, root, cos, dcos, reduction = cache
    g = (dcos * per_term(dloss, reduction, cos.shape)).unsqueeze(-1)  # dL/dcos   (N, 1)
    r, c = root.unsqueeze(-1), cos.unsqueeze(-1)
    dx1 = g * (x2 / r - c * x1 / A.unsqueeze(-1))  # dcos/dx1 = x2/√(AB) - cos x1/A     (N, D)
    dx2 = g * (x1 / r - c * x2 / B.unsqueeze(-1))  # dcos/dx2 = x1/√(AB) - cos x2/B     (N, D)
    return dx1, dx2
