"""Figures, drawn with matplotlib's object API (no window) and written atomically to files."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from torch import Tensor


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write fig to path through a temporary file, so an old file is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


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
        raise ValueError(f"fit_snapshots: {len(snapshots)} snapshots but {len(epochs)} epochs")
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
