"""Figures, drawn with matplotlib's object API (no window) and written atomically to files."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from handgrad.errors import InputError


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write fig to path atomically, so an old file is never left half-written."""
    from handgrad.io import atomic_write

    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    return atomic_write(path, buffer.getvalue())


def fit_snapshots(
    X: Tensor,
    y: Tensor,
    snapshots: Sequence[Tensor],
    epochs: Sequence[int],
    losses: Sequence[float] | None = None,
    path: str | os.PathLike[str] = "fit_snapshots.png",
) -> Path:
    """One panel per snapshot: the data (orange) and the fit (green), as in the lab's 4.4.

    The axes span the data's own x range and the y range of the data and the fits, with a
    margin of 5% (the same for every panel)."""
    if len(snapshots) != len(epochs):
        raise InputError(f"fit_snapshots: {len(snapshots)} snapshots but {len(epochs)} epochs")
    cols = 3
    rows = (len(snapshots) + cols - 1) // cols
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    x_np = X.detach().cpu().reshape(-1).double().numpy()
    y_np = y.detach().cpu().reshape(-1).double().numpy()
    preds = [p.detach().cpu().reshape(-1).double().numpy() for p in snapshots]
    xlim = _padded(x_np)
    ylim = _padded(np.concatenate([y_np, *preds]))
    for k, (pred, epoch) in enumerate(zip(preds, epochs)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.scatter(x_np, y_np, color="orange", s=8)
        ax.plot(x_np, pred, "g-", lw=3)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        title = f"epoch {epoch}"
        if losses is not None:
            title += f", loss {losses[k]:.4f}"
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def _padded(values: np.ndarray, margin: float = 0.05) -> tuple[float, float]:
    """The finite values' range widened by `margin` on each side (±1 around a single value)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -1.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    pad = (hi - lo) * margin if hi > lo else 1.0
    return lo - pad, hi + pad


def training_curves(history: Any, path: str | os.PathLike[str] = "curves.png") -> Path:
    """Loss and each metric per epoch, train and validation, from a History."""
    logs: dict[str, list[float]] = history.history
    names = [k for k in logs if not k.startswith("val_")]
    fig = Figure(figsize=(5 * len(names), 3.5), layout="constrained")
    for k, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), k + 1)
        ax.plot(history.epochs, logs[name], label=f"train {name}")
        if f"val_{name}" in logs:
            ax.plot(history.epochs, logs[f"val_{name}"], label=f"val {name}")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        if name == "loss" and min(logs[name]) > 0:
            ax.set_yscale("log")
        ax.legend()
    return save_figure(fig, path)


def decision_boundary(
    model: Any,
    X: Tensor,
    y: Tensor,
    path: str | os.PathLike[str] = "boundary.png",
    resolution: int = 200,
) -> Path:
    """The class a 2-D classifier picks over the plane, with the data on top."""
    if X.dim() != 2 or X.shape[1] != 2:
        raise InputError(f"decision_boundary: needs 2-D inputs (N, 2), got {tuple(X.shape)}")
    from handgrad.training import predict

    lo, hi = X.min(0).values - 0.1, X.max(0).values + 0.1
    gx = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    gy = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    xx, yy = torch.meshgrid(gx, gy, indexing="xy")
    grid = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).to(X.dtype)
    classes = predict(model, grid).argmax(1).reshape(resolution, resolution)
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.contourf(xx.numpy(), yy.numpy(), classes.numpy(), alpha=0.3, cmap="brg")
    ax.scatter(X[:, 0].numpy(), X[:, 1].numpy(), c=y.numpy(), s=10, cmap="brg")
    ax.set_title("decision boundary")
    return save_figure(fig, path)


def confusion_matrix(y_true: Tensor, y_pred: Tensor, num_classes: int | None = None) -> Tensor:
    """counts[i, j] = how many examples of class i were predicted as j."""
    if y_true.numel() and (int(y_true.min()) < 0 or int(y_pred.min()) < 0):
        raise InputError("confusion_matrix: class indices must be >= 0")
    C = num_classes or int(max(int(y_true.max()), int(y_pred.max())) + 1)
    if C > MAX_MATRIX_CLASSES:
        raise InputError(
            f"confusion_matrix: {C} classes would need a {C}x{C} matrix; at most "
            f"{MAX_MATRIX_CLASSES} (map the labels to 0..K-1 first)"
        )
    return torch.bincount(y_true.long() * C + y_pred.long(), minlength=C * C).reshape(C, C)


MAX_MATRIX_CLASSES = 10_000  # a 10,000 x 10,000 count matrix is 800 MB: beyond that, refuse
MAX_FIGURE_CLASSES = 30  # the figure draws at most this many classes, with a note


def confusion_matrix_figure(
    y_true: Tensor,
    y_pred: Tensor,
    num_classes: int | None = None,
    path: str | os.PathLike[str] = "confusion.png",
    labels: Sequence[Any] | None = None,
    max_classes: int = MAX_FIGURE_CLASSES,
) -> Path:
    """The confusion matrix as a heat map with the counts written in, in a bounded figure.

    With more than `max_classes` classes only the `max_classes` most frequent true classes are
    drawn (rows and columns), and the title says how many of how many, and what share of
    the examples they hold. `labels` names the classes (default 0..C-1).
    """
    if y_true.shape != y_pred.shape:
        raise InputError(
            f"confusion_matrix_figure: y_true {tuple(y_true.shape)} and y_pred "
            f"{tuple(y_pred.shape)} differ"
        )
    y_true, y_pred = y_true.reshape(-1).long(), y_pred.reshape(-1).long()
    C = num_classes or (int(max(int(y_true.max()), int(y_pred.max())) + 1) if y_true.numel() else 1)
    title = "confusion matrix"
    shown = torch.arange(C)
    if C > max_classes:  # the most frequent true classes only: the figure stays small
        freq = torch.bincount(y_true, minlength=C)
        shown = freq.argsort(descending=True, stable=True)[:max_classes].sort().values
        held = int(freq[shown].sum())
        title = f"{max_classes} most frequent of {C} classes ({held} of {y_true.numel()} examples)"
    keep = torch.isin(y_true, shown) & torch.isin(y_pred, shown)
    remap = torch.full((C,), -1, dtype=torch.long)
    remap[shown] = torch.arange(len(shown))
    counts = confusion_matrix(remap[y_true[keep]], remap[y_pred[keep]], len(shown))
    K = counts.shape[0]
    names = [str(labels[int(i)]) if labels is not None else str(int(i)) for i in shown]
    side = min(1 + 0.5 * K, 16)
    fig = Figure(figsize=(side, side), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(counts.numpy(), cmap="Blues")
    for i in range(K):
        for j in range(K):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(K), names, rotation=90 if K > 10 else 0, fontsize=8)
    ax.set_yticks(range(K), names, fontsize=8)
    ax.set_title(title, fontsize=10)
    return save_figure(fig, path)
