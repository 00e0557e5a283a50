"""Losses. Each docstring gives the per-element loss ℓ and dℓ/dpred; the op pairs are in
handgrad.ops.loss and the derivations in docs/math.md#losses.

``forward(pred, target)`` checks its arguments and returns the reduced loss; ``backward(grad=None)``
returns dL/dpred, computing it there (an evaluation pays for no gradient). With reduction
"mean" the per-element gradients are divided by the number of loss terms, with "sum" they are
not, and with "none" ``grad`` (default: ones) weighs each term. Losses of two inputs
(MarginRankingLoss, CosineEmbeddingLoss, in pair_loss.py) take ``forward(x1, x2, y)`` and return
(dx1, dx2). The class losses (CrossEntropyLoss, NLLLoss, CategoricalCrossEntropy) are in
class_loss.py.

Every class that torch.nn has takes torch's constructor arguments, in torch's order, with the
deprecated ``size_average``/``reduce`` read as torch reads them (with its warning). ``weight``
and ``pos_weight`` are buffers: in state_dict() when given, moved by ``.to()``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.mode import _mode
from handgrad.module import Module
from handgrad.validate import check_number

REDUCTIONS = ("mean", "sum", "none")


def legacy_reduction(owner: str, size_average: Any, reduce: Any, reduction: str) -> str:
    """torch.nn._reduction.legacy_get_string: the deprecated size_average/reduce, when either
    is given, decide the reduction (with torch's warning); else `reduction` stands."""
    if size_average is None and reduce is None:
        return reduction
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if isinstance(value, str):  # torch would read any string as True
            raise ArgumentTypeError(
                f"{owner}: {name} must be a bool or None, got {value!r} (did you mean "
                f"reduction={value!r}?)"
            )
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(
        f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
        stacklevel=3,
    )
    return ret


class Loss(Module):
    """Base class: checks arguments, runs the class's op pair, checks backward's gradient."""

    op_pair: tuple[Callable[..., Any], Callable[..., Any]]
    reductions: tuple[str, ...] = (*REDUCTIONS, "elementwise_mean")  # what torch accepts

    def __init__(
        self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean"
    ) -> None:
        name = type(self).__name__
        reduction = legacy_reduction(name, size_average, reduce, reduction)
        if reduction not in self.reductions:
            raise InputError(
                f"{name}: reduction must be one of {self.reductions}, got {reduction!r}"
            )
        if reduction == "elementwise_mean":
            warnings.warn(
                "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                stacklevel=3,
            )
        self.reduction = reduction

    @property
    def _reduction(self) -> str:
        """The reduction the op computes ("elementwise_mean" is torch's old name for "mean")."""
        return "mean" if self.reduction == "elementwise_mean" else self.reduction

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        """The op's keyword arguments after (pred, target): the reduction and the class's own."""
        return {"reduction": self._reduction}

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        """As Module's, with copies of the weight tensors (the twin shares nothing with m)."""
        config = super().config_from_torch(m)
        return {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in config.items()}

    def extra_repr(self) -> str:
        return ", ".join(
            f"{k}=tensor{tuple(v.shape)}" if isinstance(v, Tensor) else f"{k}={v!r}"
            for k, v in self.config().items()
        )

    def __repr__(self) -> str:
        return self._short_name()

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred, target = self._checked(pred, target)
        loss, cache = self.op_pair[0](pred, target, **self.op_options(pred))
        self.push_cache((cache, loss.shape))
        return loss

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """(pred, target) as the op takes them, after checking they fit."""
        return pred, check_pair(self, pred, target)

    def backward(self, grad: Tensor | float | None = None) -> Any:
        """dL/dpred, with the shape of pred ((dL/dx1, dL/dx2) for a loss of two inputs);
        `grad` is dL/dloss (default 1; one per term for reduction="none")."""
        cache, loss_shape = self.pop_cache()
        if grad is None:
            return self.op_pair[1](1.0, cache)  # dL/dloss = 1
        if isinstance(grad, Tensor) and len(loss_shape) == 0:
            if grad.numel() != 1:
                raise ShapeError(
                    f"{self!r}.backward: expected a scalar gradient, got {tuple(grad.shape)}"
                )
            grad = grad.reshape(())
        elif isinstance(grad, Tensor) and grad.shape != loss_shape:
            raise ShapeError(
                f"{self!r}.backward: expected a gradient of shape {tuple(loss_shape)}, "
                f"got {tuple(grad.shape)}"
            )
        return self.op_pair[1](grad, cache)

    def _weight(self, name: str, pred: Tensor) -> Tensor | None:
        """The buffer `name` in pred's dtype and device (None if not given)."""
        w = getattr(self, name)
        return None if w is None else w.to(device=pred.device, dtype=pred.dtype)


def check_tensor(owner: Loss, what: str, t: Any) -> None:
    if not isinstance(t, Tensor):
        raise ArgumentTypeError(
            f"{owner!r}: expected the {what} as a tensor, got {type(t).__name__}"
        )


def check_pair(owner: Loss, pred: Tensor, target: Tensor) -> Tensor:
    """Same shape, pred floating; returns target cast to pred's dtype (integer targets allowed)."""
    check_tensor(owner, "prediction", pred)
    check_tensor(owner, "target", target)
    if not pred.is_floating_point():
        raise ShapeError(f"{owner!r}: expected a floating-point prediction, got {pred.dtype}")
    if pred.shape != target.shape:
        raise ShapeError(
            f"{owner!r}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} must have "
            "the same shape (no broadcasting: reshape one, e.g. y.view(-1, 1))"
        )
    check_device(owner, pred, target)
    return target.to(pred.dtype)


def check_device(owner: Loss, pred: Tensor, other: Tensor) -> None:
    if other.device != pred.device:
        raise ShapeError(f"{owner!r}: prediction is on {pred.device}, target on {other.device}")


def check_probabilities(owner: Loss, p: Tensor, what: str = "prediction") -> None:
    if not _mode.host_reads:  # a capture-safe step (handgrad.mode.capture_safe)
        return
    if bool(((p < 0) | (p > 1) | p.isnan()).any()):
        raise ShapeError(
            f"{owner!r}: expected {what} probabilities in [0, 1], got values in "
            f"[{p.min().item():.4g}, {p.max().item():.4g}]"
        )


def check_broadcast(owner: Loss, name: str, w: Tensor | None, shape: torch.Size) -> None:
    """w broadcasts to `shape` without growing it (torch fails otherwise)."""
    if w is None:
        return
    try:
        ok = torch.broadcast_shapes(w.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ShapeError(
            f"{owner!r}: {name} of shape {tuple(w.shape)} does not broadcast to the "
            f"prediction's shape {tuple(shape)}"
        )


def copied(w: Tensor | None) -> Tensor | None:
    """A copy of a weight buffer for config(): a module built from it (to_torch) shares nothing."""
    return None if w is None else w.detach().clone()


def check_weight_arg(owner: str, name: str, w: Any) -> Tensor | None:
    if w is not None and not isinstance(w, Tensor):
        raise ArgumentTypeError(f"{owner}: {name} must be a tensor or None, got {type(w).__name__}")
    return w


# ---- regression ----------------------------------------------------------------------------------
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

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = check_number("HuberLoss", "delta", delta)
        if delta <= 0:  # torch's RuntimeError, at construction
            raise ShapeError(f"HuberLoss: delta must be positive, got {delta}")

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "delta": self.delta}

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        return {"reduction": self._reduction, "delta": self.delta}


class SmoothL1Loss(Loss):
    """ℓ = ½d²/β if |d| < β else |d| - ½β, d = p - t (β = 0: L1);  dℓ/dp = clamp(d/β, -1, 1)."""

    torch_name = "SmoothL1Loss"
    op_pair = (ops.smooth_l1_loss_forward, ops.smooth_l1_loss_backward)

    def __init__(
        self,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        beta: float = 1.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = check_number("SmoothL1Loss", "beta", beta)
        if beta < 0:
            raise ShapeError(f"SmoothL1Loss: beta must be >= 0, got {beta}")

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "beta": self.beta}

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        return {"reduction": self._reduction, "beta": self.beta}


class SoftMarginLoss(Loss):
    """Targets y = ±1.  ℓ = log(1 + e^{-y x});  dℓ/dx = -y σ(-y x).  Finite where torch's
    log(1 + exp) overflows (y x below -709 in float64)."""

    torch_name = "SoftMarginLoss"
    op_pair = (ops.soft_margin_loss_forward, ops.soft_margin_loss_backward)


class KLDivLoss(Loss):
    """x log-probabilities, t probabilities (log-probabilities with log_target).

    ℓ = t (log t - x) (0 where t = 0), or e^t (t - x);  dℓ/dx = -t, or -e^t.
    reduction="batchmean" divides the sum by the batch size (the true KL divergence).
    """

    torch_name = "KLDivLoss"
    op_pair = (ops.kl_div_forward, ops.kl_div_backward)
    reductions = (*Loss.reductions, "batchmean")

    def __init__(
        self,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        log_target: bool = False,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction, "log_target": self.log_target}

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        if self.reduction == "mean":  # torch warns on every call
            warnings.warn(
                "reduction: 'mean' divides the total loss by both the batch size and the support "
                "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
                "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
                "major release.",
                stacklevel=4,
            )
        return {"reduction": self._reduction, "log_target": bool(self.log_target)}


# ---- binary and multi-label ----------------------------------------------------------------------
class _WeightedLoss(Loss):
    """A loss with torch's (weight, size_average, reduce, reduction) arguments: weight is a
    buffer (in state_dict when given) that broadcasts against the prediction (torch's
    _WeightedLoss)."""

    buffer_names = ("weight",)

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = check_weight_arg(type(self).__name__, "weight", weight)

    def config(self) -> dict[str, Any]:
        return {"weight": copied(self.weight), "reduction": self.reduction}

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        return {"reduction": self._reduction, "weight": self._weight("weight", pred)}


class BCELoss(_WeightedLoss):
    """ℓ = -w (t log p + (1 - t) log(1 - p)), logs floored at -100;
    dℓ/dp = w (p - t) / (p(1 - p)).  `weight` broadcasts against p.

    Math: docs/math.md#why-the-clamps.
    """

    torch_name = "BCELoss"
    op_pair = (ops.bce_loss_forward, ops.bce_loss_backward)

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        t = check_pair(self, pred, target)
        check_probabilities(self, pred)
        check_probabilities(self, t, "target")
        check_broadcast(self, "weight", self.weight, pred.shape)
        return pred, t


class BCEWithLogitsLoss(Loss):
    """ℓ = w ((1 - t) z - (1 + (pw - 1) t) log σ(z)) = w BCE(σ(z), t), stable for any z;
    dℓ/dz = w ((1 - t + pw t) σ(z) - pw t)  (= σ(z) - t without weights).  `weight` broadcasts
    against z; `pos_weight` too, so a (C,) pos_weight weighs each class of (N, C) logits.

    Math: docs/math.md#bcewithlogitsloss.
    """

    torch_name = "BCEWithLogitsLoss"
    op_pair = (ops.bce_with_logits_forward, ops.bce_with_logits_backward)
    buffer_names = ("weight", "pos_weight")

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        reduce: bool | None = None,
        reduction: str = "mean",
        pos_weight: Tensor | None = None,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = check_weight_arg("BCEWithLogitsLoss", "weight", weight)
        self.pos_weight = check_weight_arg("BCEWithLogitsLoss", "pos_weight", pos_weight)

    def config(self) -> dict[str, Any]:
        return {
            "weight": copied(self.weight),
            "reduction": self.reduction,
            "pos_weight": copied(self.pos_weight),
        }

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        return {
            "reduction": self._reduction,
            "weight": self._weight("weight", pred),
            "pos_weight": self._weight("pos_weight", pred),
        }

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        t = check_pair(self, pred, target)
        check_broadcast(self, "weight", self.weight, pred.shape)
        check_broadcast(self, "pos_weight", self.pos_weight, pred.shape)
        return pred, t


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Scores x (N, C) or (C,), targets t ∈ {0, 1} of the same shape; one term per row:
    ℓ = (1/C) Σ_c -w_c (t_c log σ(x_c) + (1 - t_c) log σ(-x_c));  dℓ/dx_c = w_c (σ(x_c) - t_c) / C.
    """

    torch_name = "MultiLabelSoftMarginLoss"
    op_pair = (ops.multilabel_soft_margin_loss_forward, ops.multilabel_soft_margin_loss_backward)
    reductions = REDUCTIONS  # torch's functional refuses "elementwise_mean" here

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        t = check_pair(self, pred, target)
        if pred.dim() == 0:
            raise ShapeError(f"{self!r}: expected scores of shape (C,) or (N, C), got a 0-d tensor")
        check_broadcast(self, "weight", self.weight, pred.shape)
        return pred, t
