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
    probabilities, at 0 for logits.
    """
    class_dim = 1 if pred.dim() > 1 else 0
    if pred.dim() == target.dim() + 1 and pred.shape[class_dim] > 1:
        return float((pred.argmax(class_dim) == target).float().mean())
    if pred.numel() != target.numel():
        raise InputError(
            f"accuracy: predictions {tuple(pred.shape)} do not fit targets {tuple(target.shape)}"
        )
    p = pred.reshape(target.shape)
    threshold = 0.5 if bool(((p >= 0) & (p <= 1)).all()) else 0.0
    return float(((p > threshold) == (target > 0.5)).float().mean())


def mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute error."""
    return float((pred - target.reshape(pred.shape)).abs().mean())


def r2(pred: Tensor, target: Tensor) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot."""
    t = target.reshape(pred.shape).to(pred.dtype)
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
