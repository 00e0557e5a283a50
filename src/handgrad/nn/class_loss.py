"""Losses over a class dimension: CrossEntropyLoss, NLLLoss (torch's), CategoricalCrossEntropy
(the lab's). Scores have the classes along dim 1 of (N, C, d1, ...), or dim 0 of one (C,)
example; targets are class indices (one dim fewer) or, for CrossEntropyLoss, class
probabilities (the scores' shape). Op pairs: handgrad.ops.loss; math: docs/math.md#losses.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, ShapeError, TargetIndexError
from handgrad.mode import _mode
from handgrad.nn.loss import (
    Loss,
    check_device,
    check_probabilities,
    check_tensor,
    check_weight_arg,
    copied,
)
from handgrad.validate import check_number


class _ClassLoss(Loss):
    """Losses over a class dimension: dim 1 of (N, C, ...), dim 0 of a single (C,) example."""

    allow_probabilities = True  # a floating target of the prediction's shape: probabilities
    ignore_index: int | None = None  # a class index that counts for nothing (torch's option)
    _may_ignore = True  # whether the last checked targets may hold ignore_index

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        check_tensor(self, "prediction", pred)
        check_tensor(self, "target", target)
        if not pred.is_floating_point() or pred.dim() == 0:
            raise ShapeError(
                f"{self!r}: expected floating scores of shape (C,) or (N, C, ...), got "
                f"{pred.dtype} {tuple(pred.shape)}"
            )
        check_device(self, pred, target)
        C = pred.shape[0] if pred.dim() == 1 else pred.shape[1]
        if self.allow_probabilities and target.shape == pred.shape:
            return pred, self._probabilities(pred, target)
        if target.is_floating_point() or target.dtype == torch.bool or target.is_complex():
            raise ShapeError(
                f"{self!r}: expected integer class indices of shape "
                f"{tuple(_index_shape(pred))}, got {target.dtype} {tuple(target.shape)}"
            )
        if target.shape != _index_shape(pred):
            raise ShapeError(
                f"{self!r}: prediction {tuple(pred.shape)} needs class indices of shape "
                f"{tuple(_index_shape(pred))}, got {tuple(target.shape)}"
            )
        target = target.long()  # (a uint8 target would wrap ignore_index=-100 around)
        self._check_indices(target, C)
        return pred, target

    def _probabilities(self, pred: Tensor, target: Tensor) -> Tensor:
        """A target of the prediction's shape: class probabilities (floating, as torch)."""
        if not target.is_floating_point():
            raise ShapeError(
                f"{self!r}: a target of the prediction's shape {tuple(pred.shape)} holds class "
                f"probabilities and must be floating, got {target.dtype} (class indices have "
                f"shape {tuple(_index_shape(pred))})"
            )
        if self.ignore_index is not None and self.ignore_index >= 0:
            raise ShapeError(f"{self!r}: ignore_index is not supported for probability targets")
        return target.to(pred.dtype)

    def _check_indices(self, target: Tensor, C: int) -> None:
        """Every index is a class in [0, C) or ignore_index; sets ``_may_ignore``: whether some
        target may be ignore_index (when none can, CrossEntropyLoss's op skips its mask)."""
        ignore = self.ignore_index
        self._may_ignore = ignore is not None and 0 <= ignore < C
        if not _mode.host_reads:  # a capture-safe step: fit checked once that every label is
            return  # a class in [0, C), so only an ignore_index in that range can match one
        if target.numel() == 0:
            return
        lo, hi = torch.stack(torch.aminmax(target)).tolist()  # one host read (one sync)
        if 0 <= lo and hi < C:  # every index a class; the rest only when some lies outside
            return
        outside = (target < 0) | (target >= C)
        if ignore is not None:
            self._may_ignore = True
            outside &= target != ignore
        if bool(outside.any()):  # the bad index is looked up only when there is one
            bad = target[outside]
            also = "" if ignore is None else f" or ignore_index={ignore}"
            raise TargetIndexError(
                f"{self!r}: class indices must be in [0, {C - 1}]{also}, got {int(bad[0])} "
                f"(Target {int(bad[0])} is out of bounds)"
            )

    def _check_class_weight(self, pred: Tensor) -> None:
        w = getattr(self, "weight", None)
        C = pred.shape[0] if pred.dim() == 1 else pred.shape[1]
        if w is not None and (w.dim() != 1 or w.numel() != C):
            raise ShapeError(
                f"{self!r}: weight tensor should be defined either for all {C} classes or no "
                f"classes but got weight tensor of shape: {tuple(w.shape)}"
            )


def _index_shape(pred: Tensor) -> torch.Size:
    """The shape of class-index targets for scores `pred`: (), (N,) or (N, d1, ...)."""
    return pred.shape[:0] if pred.dim() == 1 else pred.shape[:1] + pred.shape[2:]


def _check_class_options(owner: str, ignore_index: Any) -> int:
    """ignore_index as an int (a NumPy integer too)."""
    try:
        return operator.index(ignore_index)
    except TypeError:
        raise ArgumentTypeError(
            f"{owner}: ignore_index must be an int, got {type(ignore_index).__name__}"
        ) from None


class CrossEntropyLoss(_ClassLoss):
    """Logits z; target class indices y or class probabilities t (z's shape, floating).

    ℓ = -Σ_c q_c log softmax(z)_c with q = w_y onehot(y) (0 for ignore_index), smoothed to
    (1 - ε) q + (ε/C) w; for probabilities q = w ⊙ ((1 - ε) t + ε/C).
    dℓ/dz = softmax(z)·Σ_c q_c - q  (= softmax(z) - onehot(y) plainly).  "mean" divides by
    Σ w_y over the counted targets (nan when none counts), or by the number of terms for
    probabilities, as torch.  Math: docs/math.md#crossentropyloss.
    """

    torch_name, cli_name = "CrossEntropyLoss", "cross_entropy"
    op_pair = (ops.cross_entropy_forward, ops.cross_entropy_backward)
    buffer_names = ("weight",)

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = check_weight_arg("CrossEntropyLoss", "weight", weight)
        self.ignore_index = _check_class_options("CrossEntropyLoss", ignore_index)
        self.label_smoothing = check_number("CrossEntropyLoss", "label_smoothing", label_smoothing)
        if not 0.0 <= label_smoothing <= 1.0:  # torch's RuntimeError, at construction
            raise ShapeError(
                f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got "
                f"{label_smoothing}"
            )

    def config(self) -> dict[str, Any]:
        return {
            "weight": copied(self.weight),
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
            "label_smoothing": self.label_smoothing,
        }

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        return {
            "reduction": self._reduction,
            "weight": self._weight("weight", pred),
            "ignore_index": self.ignore_index if self._may_ignore else None,  # None: no mask
            "label_smoothing": float(self.label_smoothing),
        }

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        pred, target = super()._checked(pred, target)
        self._check_class_weight(pred)
        return pred, target


class NLLLoss(_ClassLoss):
    """Log-probabilities x, class indices y.  ℓ = -w_y x_y (0 for ignore_index);
    dℓ/dx = -w_y onehot(y).  "mean" divides by Σ w_y over the counted targets, as torch."""

    torch_name = "NLLLoss"
    allow_probabilities = False
    op_pair = (ops.nll_loss_forward, ops.nll_loss_backward)
    buffer_names = ("weight",)

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight = check_weight_arg("NLLLoss", "weight", weight)
        self.ignore_index = _check_class_options("NLLLoss", ignore_index)

    def config(self) -> dict[str, Any]:
        return {
            "weight": copied(self.weight),
            "ignore_index": self.ignore_index,
            "reduction": self.reduction,
        }

    def op_options(self, pred: Tensor) -> dict[str, Any]:
        return {
            "reduction": self._reduction,
            "weight": self._weight("weight", pred),
            "ignore_index": self.ignore_index,
        }

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        pred, target = super()._checked(pred, target)
        self._check_class_weight(pred)
        return pred, target


class CategoricalCrossEntropy(_ClassLoss):
    """Probabilities p, target one-hot/probabilities or indices t (the lab's 3.2).

    ℓ = -Σ_c t_c log p_c (log floored at -100);  dℓ/dp = -t / p (p floored at 1e-12).
    Math: docs/math.md#why-the-clamps.
    """

    op_pair = (ops.categorical_cross_entropy_forward, ops.categorical_cross_entropy_backward)

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)

    def _probabilities(self, pred: Tensor, target: Tensor) -> Tensor:
        return target.to(pred.dtype)  # an integer target of p's shape is one-hot

    def _checked(self, pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        pred, target = super()._checked(pred, target)
        check_probabilities(self, pred)
        return pred, target
