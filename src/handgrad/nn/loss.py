"""Losses. Each docstring gives the per-element loss ℓ and dℓ/dpred; the op pairs are in
handgrad.ops.loss and the derivations in docs/math.md#losses.

``forward(pred, target)`` checks its arguments and returns the reduced loss; ``backward(grad=None)``
returns dL/dpred, computing it there (an evaluation pays for no gradient). With reduction
"mean" the per-element gradients are divided by the number of loss terms, with "sum" they are
not, and with "none" ``grad`` (default: ones) weighs each term.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.module import Module

REDUCTIONS = ("mean", "sum", "none")


class Loss(Module):
    """Base class: checks arguments, runs the class's op pair, checks backward's gradient."""

    op_pair: tuple[Callable[..., Any], Callable[..., Any]]

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}"
            )
        self.reduction = reduction

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}

    def __repr__(self) -> str:
        return self._short_name()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = self._checked(pred, target)
        loss, cache = self.op_pair[0](pred, target, **self.config())
        self.push_cache((cache, loss.shape))
        return loss

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(pred, target) as the op takes them, after checking they fit."""
        return pred, _check_pair(self, pred, target)

    def backward(self, grad: Tensor | float | None = None) -> Tensor:
        """dL/dpred, with the shape of pred; `grad` is dL/dloss (default 1)."""
        cache, loss_shape = self.pop_cache()
        g: Tensor | float = 1.0 if grad is None else grad
        if isinstance(g, Tensor) and self.reduction != "none":
            if g.numel() != 1:
                raise ValueError(
                    f"{self!r}.backward: expected a scalar gradient, got {tuple(g.shape)}"
                )
            g = g.reshape(())
        if isinstance(g, Tensor) and self.reduction == "none" and g.shape != loss_shape:
            raise ValueError(
                f"{self!r}.backward: expected a gradient of shape {tuple(loss_shape)}, "
                f"got {tuple(g.shape)}"
            )
        return self.op_pair[1](g, cache)


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
    """ℓ = (p - t)²;  dℓ/dp = 2(p - t)."""

    torch_name, cli_name = "MSELoss", "mse"
    op_pair = (ops.mse_loss_forward, ops.mse_loss_backward)


class L1Loss(Loss):
    """ℓ = |p - t|;  dℓ/dp = sign(p - t) (0 at p = t, as torch)."""

    torch_name, cli_name = "L1Loss", "l1"
    op_pair = (ops.l1_loss_forward, ops.l1_loss_backward)


class HuberLoss(Loss):
    """ℓ = ½d² if |d| ≤ δ else δ(|d| - ½δ), d = p - t;  dℓ/dp = clamp(d, -δ, δ)."""

    torch_name, cli_name = "HuberLoss", "huber"
    op_pair = (ops.huber_loss_forward, ops.huber_loss_backward)

    def __init__(self, delta: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = float(delta)

    def config(self) -> dict[str, Any]:
        return {"delta": self.delta, "reduction": self.reduction}


class BCELoss(Loss):
    """ℓ = -(t log p + (1 - t) log(1 - p)), logs floored at -100;  dℓ/dp = (p - t) / (p(1 - p)).

    Math: docs/math.md#why-the-clamps.
    """

    torch_name = "BCELoss"
    op_pair = (ops.bce_loss_forward, ops.bce_loss_backward)

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        t = _check_pair(self, pred, target)
        _check_probabilities(self, pred)
        return pred, t


class BCEWithLogitsLoss(Loss):
    """ℓ = max(z, 0) - z·t + log(1 + e^{-|z|}) = BCE(σ(z), t), stable for any z;  dℓ/dz = σ(z) - t.

    Math: docs/math.md#bcewithlogitsloss.
    """

    torch_name = "BCEWithLogitsLoss"
    op_pair = (ops.bce_with_logits_forward, ops.bce_with_logits_backward)


class _ClassLoss(Loss):
    """Losses over a class dimension: dim 1 of (N, C, ...), dim 0 of a single (C,) example."""

    allow_probabilities = True  # a floating target of the prediction's shape: probabilities

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        if not isinstance(pred, Tensor) or not pred.is_floating_point() or pred.dim() == 0:
            raise TypeError(
                f"{self!r}: expected floating scores of shape (C,) or (N, C, ...), got "
                f"{getattr(pred, 'dtype', type(pred).__name__)} {tuple(getattr(pred, 'shape', ()))}"
            )
        if not isinstance(target, Tensor):
            raise TypeError(f"{self!r}: expected a target tensor, got {type(target).__name__}")
        if target.device != pred.device:
            raise ValueError(f"{self!r}: prediction is on {pred.device}, target on {target.device}")
        C = pred.shape[0] if pred.dim() == 1 else pred.shape[1]
        index_shape = pred.shape[:0] if pred.dim() == 1 else pred.shape[:1] + pred.shape[2:]
        if self.allow_probabilities and (target.is_floating_point() or target.shape == pred.shape):
            # the prediction's shape means probabilities/one-hot (indices have one dim fewer)
            if target.shape != pred.shape:
                raise ValueError(
                    f"{self!r}: a probability/one-hot target must have the prediction's shape "
                    f"{tuple(pred.shape)}, got {tuple(target.shape)}"
                )
            return pred, target.to(pred.dtype)
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
        return pred, target.long()


class CrossEntropyLoss(_ClassLoss):
    """Logits z, target class indices or class probabilities t.

    ℓ = -Σ_c t_c log softmax(z)_c;  dℓ/dz = softmax(z)·Σ_c t_c - t  (= softmax(z) - onehot(y)).
    Math: docs/math.md#crossentropyloss.
    """

    torch_name, cli_name = "CrossEntropyLoss", "cross_entropy"
    op_pair = (ops.cross_entropy_forward, ops.cross_entropy_backward)


class NLLLoss(_ClassLoss):
    """Log-probabilities x, class indices y.  ℓ = -x_y;  dℓ/dx = -onehot(y)."""

    torch_name = "NLLLoss"
    allow_probabilities = False
    op_pair = (ops.nll_loss_forward, ops.nll_loss_backward)


class CategoricalCrossEntropy(_ClassLoss):
    """Probabilities p, target one-hot/probabilities or indices t (the lab's 3.2).

    ℓ = -Σ_c t_c log p_c (log floored at -100);  dℓ/dp = -t / p (p floored at 1e-12).
    Math: docs/math.md#why-the-clamps.
    """

    op_pair = (ops.categorical_cross_entropy_forward, ops.categorical_cross_entropy_backward)

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        pred, target = super()._checked(pred, target)
        _check_probabilities(self, pred)
        return pred, target
