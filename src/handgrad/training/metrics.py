"""Metrics: (pred, target) -> float, by name for fit(metrics=[...])."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from handgrad.errors import InputError

Metric = Callable[[Tensor, Tensor], float]


def accuracy(pred: Tensor, target: Tensor) -> float:
    """Share of examples classified right.

    Class scores (N, C, ...) against indices (N, ...): the arg-max over dim 1 (dim 0 for one
    example). One score per example against 0/1 targets: thresholded at 0.5 for
    probabilities, at 0 for logits. Other targets for one score (a regression's) are refused.
    """
    class_dim = 1 if pred.dim() > 1 else 0
    if pred.dim() == target.dim() + 1 and pred.shape[class_dim] > 1:
        return float((pred.argmax(class_dim) == target).float().mean())
    if pred.numel() != target.numel():
        raise InputError(
            f"accuracy: predictions {tuple(pred.shape)} do not fit targets {tuple(target.shape)}"
        )
    labels = (target == 0) | (target == 1)
    if not bool(labels.all()):
        other = target[~labels].flatten()[0].item()
        raise InputError(
            "accuracy: one score per example needs 0/1 targets (binary classification), got "
            f"the target {other:g}: this is a regression; use the metrics 'mae' or 'r2'"
        )
    p = pred.reshape(target.shape)
    threshold = 0.5 if bool(((p >= 0) & (p <= 1)).all()) else 0.0
    return float(((p > threshold) == (target > 0.5)).float().mean())


def _one_per_target(name: str, pred: Tensor, target: Tensor) -> Tensor:
    """target shaped as pred, for a regression metric; class scores are refused."""
    if pred.numel() != target.numel():
        raise InputError(
            f"{name}: predictions {tuple(pred.shape)} do not fit targets "
            f"{tuple(target.shape)}: {name} compares one prediction per target (regression); "
            "for class scores use the metric 'accuracy'"
        )
    return target.reshape(pred.shape)


def mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute error."""
    return float((pred - _one_per_target("mae", pred, target)).abs().mean())


def r2(pred: Tensor, target: Tensor) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot."""
    t = _one_per_target("r2", pred, target).to(pred.dtype)
    ss_tot = float(((t - t.mean(0)) ** 2).sum())
    ss_res = float(((t - pred) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


METRICS: dict[str, Metric] = {"accuracy": accuracy, "mae": mae, "r2": r2}


def _metric(m: str | Metric) -> tuple[str, Metric]:
    if isinstance(m, str):
        if m not in METRICS:
            raise InputError(f"fit: unknown metric {m!r}; choose from {', '.join(METRICS)}")
        return m, METRICS[m]
    return getattr(m, "__name__", "metric"), m
