"""Losses and penalties. Each docstring gives the per-element loss ℓ and dℓ/dpred;
derivations in docs/math.md#losses.

``forward(pred, target)`` returns the reduced loss; ``backward(grad=None)`` returns dL/dpred.
With reduction "mean" the per-element gradients are divided by the number of loss terms,
with "sum" they are not, and with "none" ``grad`` (default: ones) weighs each term.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from handgrad.module import accumulate_grad

REDUCTIONS = ("mean", "sum", "none")
LOG_FLOOR = -100.0  # log p is clamped here, as torch.nn.BCELoss does: p = 0 costs 100, not inf
PROB_FLOOR = 1e-12  # p(1 - p) and p are floored here in backward: finite, huge gradients


class Loss:
    """Base class: checks arguments, reduces per-term losses, scales the gradient back."""

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}"
            )
        self.reduction = reduction
        self.terms_shape: torch.Size | None = None
        self.dpred: Tensor | None = None  # dℓ/dpred per term, up to the factor below
        self.dpred_scale = 1.0  # dℓ/dpred = dpred_scale · dpred (saves a tensor op for MSE)

    def __call__(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.forward(pred, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def _reduce(self, terms: Tensor) -> Tensor:
        self.terms_shape = terms.shape
        if self.reduction == "mean":
            return terms.mean()
        if self.reduction == "sum":
            return terms.sum()
        return terms

    def _upstream(self, grad: Tensor | float | None) -> Tensor | float:
        """dL/dℓ per term: 1/n for mean, 1 for sum, `grad` (shape of the terms) for none."""
        if self.terms_shape is None or self.dpred is None:
            raise RuntimeError(f"{self!r}.backward() called before forward()")
        g: Tensor | float = 1.0 if grad is None else grad
        if isinstance(g, Tensor) and self.reduction != "none" and g.numel() != 1:
            raise ValueError(f"{self!r}.backward: expected a scalar gradient, got {tuple(g.shape)}")
        if isinstance(g, Tensor) and self.reduction == "none" and g.shape != self.terms_shape:
            raise ValueError(
                f"{self!r}.backward: expected a gradient of shape {tuple(self.terms_shape)}, "
                f"got {tuple(g.shape)}"
            )
        if self.reduction == "mean":
            return g * (self.dpred_scale / max(self.terms_shape.numel(), 1))
        return g * self.dpred_scale

    def backward(self, grad: Tensor | float | None = None) -> Tensor:
        """dL/dpred, with the shape of pred."""
        upstream = self._upstream(grad)
        dpred, self.dpred = self._saved_dpred(), None  # released: one backward per forward
        if isinstance(upstream, Tensor) and upstream.dim() > 0:
            upstream = self._spread(upstream, dpred)
        return dpred * upstream

    def _saved_dpred(self) -> Tensor:
        if self.dpred is None:
            raise RuntimeError(f"{self!r}.backward() called before forward()")
        return self.dpred

    def _spread(self, upstream: Tensor, dpred: Tensor) -> Tensor:
        """Per-term upstream gradient made broadcastable against dpred (elementwise: as is)."""
        return upstream


def _check_pair(owner: Loss, pred: Tensor, target: Tensor) -> Tensor:
    """Same shape, pred floating; returns target cast to pred's dtype (integer targets allowed)."""
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise TypeError(
            f"{owner!r}: expected tensors, got {type(pred).__name__}, {type(target).__name__}"
        )
    if not pred.is_floating_point():
        raise TypeError(f"{owner!r}: expected a floating-point prediction, got {pred.dtype}")
    if pred.shape != target.shape:
        raise ValueError(
            f"{owner!r}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} must have "
            "the same shape (no broadcasting: reshape one, e.g. y.view(-1, 1))"
        )
    if target.device != pred.device:
        raise ValueError(f"{owner!r}: prediction is on {pred.device}, target on {target.device}")
    return target.to(pred.dtype)


def _check_probabilities(owner: Loss, p: Tensor, what: str = "prediction") -> None:
    if bool(((p < 0) | (p > 1) | p.isnan()).any()):
        raise ValueError(
            f"{owner!r}: expected {what} probabilities in [0, 1], got values in "
            f"[{p.min().item():.4g}, {p.max().item():.4g}]"
        )


class MSELoss(Loss):
    """ℓ = (p - t)²;  dℓ/dp = 2(p - t).

    Math: docs/math.md#losses.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        t = _check_pair(self, pred, target)
        d = pred - t
        self.dpred, self.dpred_scale = d, 2.0
        return self._reduce(d * d)


class L1Loss(Loss):
    """ℓ = |p - t|;  dℓ/dp = sign(p - t) (0 at p = t, as torch).

    Math: docs/math.md#losses.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        t = _check_pair(self, pred, target)
        d = pred - t
        self.dpred = torch.sign(d)
        return self._reduce(d.abs())


class HuberLoss(Loss):
    """ℓ = ½d² if |d| ≤ δ else δ(|d| - ½δ), d = p - t;  dℓ/dp = clamp(d, -δ, δ).

    Math: docs/math.md#losses.
    """

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = float(delta)

    def __repr__(self) -> str:
        return f"HuberLoss(delta={self.delta}, reduction={self.reduction!r})"

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        t = _check_pair(self, pred, target)
        d = pred - t
        a = d.abs()
        self.dpred = d.clamp(-self.delta, self.delta)
        return self._reduce(
            torch.where(a <= self.delta, 0.5 * d * d, self.delta * (a - 0.5 * self.delta))
        )


class BCELoss(Loss):
    """ℓ = -(t log p + (1 - t) log(1 - p)), logs floored at -100;  dℓ/dp = (p - t) / (p(1 - p)).

    Math: docs/math.md#why-the-clamps.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        t = _check_pair(self, pred, target)
        _check_probabilities(self, pred)
        log_p = torch.log(pred).clamp(min=LOG_FLOOR)
        log_1mp = torch.log1p(-pred).clamp(min=LOG_FLOOR)
        self.dpred = (pred - t) / (pred * (1 - pred)).clamp(min=PROB_FLOOR)
        return self._reduce(-(t * log_p + (1 - t) * log_1mp))


class BCEWithLogitsLoss(Loss):
    """ℓ = max(z, 0) - z·t + log(1 + e^{-|z|}) = BCE(σ(z), t), stable for any z.

    dℓ/dz = σ(z) - t.
    Math: docs/math.md#bcewithlogitsloss.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        t = _check_pair(self, pred, target)
        self.dpred = torch.sigmoid(pred) - t
        return self._reduce(pred.clamp(min=0) - pred * t + torch.log1p(torch.exp(-pred.abs())))


class _ClassLoss(Loss):
    """Losses over a class dimension: dim 1 of (N, C, ...), dim 0 of a single (C,) example.

    Internally the class dim is moved last, so per-term shapes are (N, ...).
    """

    def _classes_last(self, pred: Tensor) -> Tensor:
        if not isinstance(pred, Tensor) or not pred.is_floating_point() or pred.dim() == 0:
            raise TypeError(
                f"{self!r}: expected floating scores of shape (C,) or (N, C, ...), got "
                f"{getattr(pred, 'dtype', type(pred).__name__)} {tuple(getattr(pred, 'shape', ()))}"
            )
        return pred if pred.dim() == 1 else pred.movedim(1, -1)

    def _target(self, pred: Tensor, target: Tensor, allow_probs: bool) -> tuple[Tensor, bool]:
        """Returns (target with classes last, is_index). Checks shape, range and dtype."""
        if not isinstance(target, Tensor):
            raise TypeError(f"{self!r}: expected a target tensor, got {type(target).__name__}")
        if target.device != pred.device:
            raise ValueError(f"{self!r}: prediction is on {pred.device}, target on {target.device}")
        C = pred.shape[0] if pred.dim() == 1 else pred.shape[1]
        index_shape = pred.shape[:0] if pred.dim() == 1 else pred.shape[:1] + pred.shape[2:]
        if allow_probs and (target.is_floating_point() or target.shape == pred.shape):
            # the prediction's shape means probabilities/one-hot (indices have one dim fewer)
            if target.shape != pred.shape:
                raise ValueError(
                    f"{self!r}: a probability/one-hot target must have the prediction's shape "
                    f"{tuple(pred.shape)}, got {tuple(target.shape)}"
                )
            return self._classes_last(target.to(pred.dtype)), False
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"{self!r}: expected integer class indices, got {target.dtype}")
        if target.shape != index_shape:
            raise ValueError(
                f"{self!r}: prediction {tuple(pred.shape)} needs class indices of shape "
                f"{tuple(index_shape)}, got {tuple(target.shape)}"
            )
        if target.numel():
            lo, hi = (int(v) for v in torch.aminmax(target))
            if lo < 0 or hi >= C:
                raise ValueError(
                    f"{self!r}: class indices must be in [0, {C - 1}], got values in [{lo}, {hi}]"
                )
        return target.long(), True

    def _spread(self, upstream: Tensor, dpred: Tensor) -> Tensor:
        """A per-example gradient (N, ...) lines up with dpred (N, C, ...) along dim 1."""
        return upstream.unsqueeze(0 if dpred.dim() == 1 else 1)

    def _set_dpred(self, d_last: Tensor) -> None:
        self.dpred = d_last if d_last.dim() == 1 else d_last.movedim(-1, 1)


def _one_hot_like(scores: Tensor, index: Tensor) -> Tensor:
    return torch.zeros_like(scores).scatter_(-1, index.unsqueeze(-1), 1.0)


class CrossEntropyLoss(_ClassLoss):
    """Logits z, target class indices or class probabilities t.

    ℓ = -Σ_c t_c log softmax(z)_c;  dℓ/dz = softmax(z)·Σ_c t_c - t  (= softmax(z) - onehot(y)).
    Math: docs/math.md#crossentropyloss.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        z = self._classes_last(pred)
        t, is_index = self._target(pred, target, allow_probs=True)
        shifted = z - z.amax(-1, keepdim=True)  # log-sum-exp: every exponent <= 0
        e = torch.exp(shifted)
        total = e.sum(-1, keepdim=True)
        log_p = shifted - torch.log(total)
        softmax = e.div_(total)
        if is_index:
            idx = t.unsqueeze(-1)
            terms = -log_p.gather(-1, idx).squeeze(-1)
            self._set_dpred(softmax.scatter_add_(-1, idx, softmax.new_full(idx.shape, -1.0)))
        else:
            terms = -(t * log_p).sum(-1)
            self._set_dpred(softmax * t.sum(-1, keepdim=True) - t)
        return self._reduce(terms)


class NLLLoss(_ClassLoss):
    """Log-probabilities x, class indices y.  ℓ = -x_y;  dℓ/dx = -onehot(y).

    Math: docs/math.md#losses.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        x = self._classes_last(pred)
        t, _ = self._target(pred, target, allow_probs=False)
        onehot = _one_hot_like(x, t)
        self._set_dpred(-onehot)
        return self._reduce(-(x * onehot).sum(-1))


class CategoricalCrossEntropy(_ClassLoss):
    """Probabilities p, target one-hot/probabilities or indices t (the lab's 3.2).

    ℓ = -Σ_c t_c log p_c (log floored at -100);  dℓ/dp = -t / p (p floored at 1e-12).
    Math: docs/math.md#why-the-clamps.
    """

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        p = self._classes_last(pred)
        _check_probabilities(self, pred)
        t, is_index = self._target(pred, target, allow_probs=True)
        if is_index:
            t = _one_hot_like(p, t)
        self._set_dpred(-t / p.clamp(min=PROB_FLOOR))
        return self._reduce(-(t * torch.log(p).clamp(min=LOG_FLOOR)).sum(-1))


class _Penalty:
    """Base for weight penalties: penalty() is the value, backward() adds its gradient to .grad."""

    def __init__(self, lambda_: float, params: Iterable[Tensor]) -> None:
        if lambda_ < 0:
            raise ValueError(f"{type(self).__name__}: lambda_ must be >= 0, got {lambda_}")
        self.lambda_ = float(lambda_)
        self.params = list(params)
        if not all(isinstance(p, Tensor) for p in self.params):
            raise TypeError(f"{type(self).__name__}: params must be tensors")

    def __call__(self) -> Tensor:
        return self.penalty()

    def penalty(self) -> Tensor:
        raise NotImplementedError


class L2(_Penalty):
    """R = λ Σ w²;  dR/dw = 2λw.

    Math: docs/math.md#penalties.
    """

    def penalty(self) -> Tensor:
        return self.lambda_ * sum((p * p).sum() for p in self.params)  # type: ignore[return-value]

    def backward(self) -> None:
        for p in self.params:
            accumulate_grad(p, 2 * self.lambda_ * p)


class L1Penalty(_Penalty):
    """R = λ Σ |w|;  dR/dw = λ sign(w).

    Math: docs/math.md#penalties.
    """

    def penalty(self) -> Tensor:
        return self.lambda_ * sum(p.abs().sum() for p in self.params)  # type: ignore[return-value]

    def backward(self) -> None:
        for p in self.params:
            accumulate_grad(p, self.lambda_ * torch.sign(p))
