"""Figures, drawn with matplotlib's object API (no window) and written atomically to files."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    """One panel per snapshot: the data (orange) and the fit (green), as in the lab's 4.4."""
    if len(snapshots) != len(epochs):
        raise InputError(f"fit_snapshots: {len(snapshots)} snapshots but {len(epochs)} epochs")
    cols = 3
    rows = (len(snapshots) + cols - 1) // cols
    fig = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    x_np, y_np = X.detach().cpu().reshape(-1).numpy(), y.detach().cpu().reshape(-1).numpy()
    for k, (pred, epoch) in enumerate(zip(snapshots, epochs)):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.scatter(x_np, y_np, color="orange", s=8)
        ax.plot(x_np, pred.detach().cpu().reshape(-1).float().numpy(), "g-", lw=3)
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-0.25, 1.25)
        title = f"epoch {epoch}"
        if losses is not None:
            title += f", loss {losses[k]:.4f}"
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


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
    C = num_classes or int(max(int(y_true.max()), int(y_pred.max())) + 1)
    return torch.bincount(y_true.long() * C + y_pred.long(), minlength=C * C).reshape(C, C)


def confusion_matrix_figure(
    y_true: Tensor,
    y_pred: Tensor,
    num_classes: int | None = None,
    path: str | os.PathLike[str] = "confusion.png",
) -> Path:
    """The confusion matrix as a heat map with the counts written in."""
    counts = confusion_matrix(y_true, y_pred, num_classes)
    C = counts.shape[0]
    fig = Figure(figsize=(1 + 0.5 * C, 1 + 0.5 * C), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(counts.numpy(), cmap="Blues")
    for i in range(C):
        for j in range(C):
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(C))
    ax.set_yticks(range(C))
    return save_figure(fig, path)
