"""What a run leaves: its result, the paths it will write (checked before any work), the
log's description of the data, the final scores, the files of the run folder, and the line
that Ctrl-C prints."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from handgrad import io, plot
from handgrad.data import datasets
from handgrad.errors import InputError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.loss import Loss
from handgrad.tools import outputs
from handgrad.tools.config import TrainConfig
from handgrad.training import History, metrics, predict
from handgrad.training.callbacks import Callback


@dataclass
class RunResult:
    """What a run produced: the model, its history, final scores and the files written."""

    model: Module
    history: History
    scores: dict[str, dict[str, float]]
    files: list[Path]


class Where(Callback):
    """Where a run is, for the one line that Ctrl-C prints: "interrupted at epoch 4 of 20; the
    previous run in runs/x is kept" (a run replaces --out only when it is complete)."""

    def __init__(self, unit: str, total: int | None) -> None:
        self.unit, self.total, self.done, self.member = unit, total, 0, ""
        self.doing = "before training"  # or "" while training: at the unit after `done`

    def training(self, done: int = 0, member: str = "") -> None:
        self.done, self.member, self.doing = done, member, ""

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
        self.done = epoch
        return False

    def line(self, out: Path, checkpoint: Path | None = None) -> str:
        doing = self.doing or f"at {self.unit} {self.done + 1} of {self.total}{self.member}"
        if not out.is_dir() or not any(out.iterdir()):
            kept = f"nothing was written to {out}"
        elif outputs.is_run_folder(out):
            kept = f"the previous run in {out} is kept"
        else:
            kept = f"{out} is as it was"
        if checkpoint is not None and checkpoint.is_file():
            kept += f"; the checkpoint {checkpoint} is kept (--resume it to continue)"
        return f"interrupted {doing}; {kept}"


def describe(data: datasets.Dataset) -> str:
    """Two lines for the log: the task (and why), and the size of each split."""
    reason = data.task_reason or "the dataset's own"
    if reason not in ("given", "the dataset's own"):
        reason += "; --task overrides the guess"
    sizes = [f"train {data.X.shape[0]}"]
    if data.X_val is not None:
        sizes.append(f"validation {data.X_val.shape[0]}")
    if data.X_test is not None:
        sizes.append(f"test {data.X_test.shape[0]}")
    classes = ""
    if data.preprocessing is not None and data.preprocessing.classes:
        shown = data.preprocessing.classes[:10]
        more = ", ..." if len(data.preprocessing.classes) > 10 else ""
        k = len(data.preprocessing.classes)
        classes = f", classes {', '.join(map(str, shown))}{more} -> 0..{k - 1}"
    return f"task: {data.task} ({reason}{classes})\nsplit: {', '.join(sizes)} examples"


def check_paths(config: TrainConfig) -> Path:
    """Every path the run will write, checked before any work: returns the --out folder."""
    inputs = [p for p in (config.data, config.resume) if p and os.path.exists(p)]
    out = outputs.check_run_folder(config.out, config.force, inputs)
    if config.resume is not None and not os.path.isfile(config.resume):
        raise InputError(f"--resume: no such checkpoint file: {config.resume}")
    if config.checkpoint_every:
        ckpt = config.checkpoint_path
        others = [p for p in inputs if p != config.resume]
        outputs.check_output_file(ckpt, "--checkpoint", others)
        if ckpt.exists() and not io.is_checkpoint(ckpt):
            raise InputError(
                f"--checkpoint: {ckpt} exists and is not a handgrad checkpoint; choose another path"
            )
        if ckpt.absolute().parent == out.absolute() or out.absolute() in ckpt.absolute().parents:
            raise InputError("--checkpoint: put checkpoints outside the --out folder")
    return out


def scores_of(out: Tensor, y: Tensor, loss: Loss, metric_list: list[Any]) -> dict[str, float]:
    """The loss and each metric of the outputs `out` against the targets `y`."""
    with no_cache():
        values = {"loss": float(loss(out, y))}
    for m in metric_list:
        name, fn = (m, metrics.METRICS[m]) if isinstance(m, str) else (m.__name__, m)
        values[name] = fn(out, y)
    return values


def write_outputs(
    out: Path,
    model: Module,
    histories: list[History],
    scores: dict[str, Any],
    config: TrainConfig,
    data: datasets.Dataset,
    test_out: Tensor,
) -> None:
    """The run folder's files: the model (with its preprocessing), history, config and
    scores as JSON, the training curves and the figure that fits the task."""
    history = histories[0]
    logged = json.loads(history.to_json())
    if len(histories) > 1:  # an ensemble: the first member's epochs, then every member's
        logged["members"] = [json.loads(h.to_json()) for h in histories]
    meta = {
        "task": data.task,
        "dataset": data.name,
        "in_features": data.in_features,
        "input_shape": list(data.X.shape[1:]),
    }
    saved = data.preprocessing if data.preprocessing is not None else data.scaling  # digits: /16
    io.save(model, out / "model.safetensors", metadata=meta, preprocessing=saved)
    for name, text in (
        ("history.json", json.dumps(logged, indent=2)),
        ("config.json", json.dumps(asdict(config), indent=2)),
        ("scores.json", json.dumps(scores, indent=2)),
    ):
        io.atomic_write(out / name, text.encode())
    plot.training_curves(history, out / "curves.png")
    assert data.X_test is not None and data.y_test is not None
    prep = data.preprocessing
    if data.task in ("classification", "binary"):
        pred = (test_out.reshape(-1) > 0).long() if data.task == "binary" else test_out.argmax(1)
        labels = prep.classes if prep is not None else None
        num_classes = data.num_classes or (2 if data.task == "binary" else None)
        plot.confusion_matrix_figure(
            data.y_test.reshape(-1).long(), pred, num_classes, out / "confusion.png", labels
        )
        if data.X.dim() == 2 and data.X.shape[1] == 2:
            plot.decision_boundary(model, data.X, data.y.reshape(-1), out / "boundary.png")
    elif data.X.dim() == 2 and data.X.shape[1] == 1:
        order = data.X[:, 0].argsort()
        X, y = data.X[order], data.y[order]
        pred = predict(model, X)
        if prep is not None:  # draw in the data's own units
            column = prep.columns[0]
            X = X * column.std + column.mean
            y, pred = (t * prep.target_std + prep.target_mean for t in (y, pred))
        plot.fit_snapshots(
            X, y, [pred], [history.epochs[-1]], [history["loss"][-1]], path=out / "fit.png"
        )


def format_scores(scores: dict[str, dict[str, float]]) -> str:
    """A small table: one row per split, one column per value."""
    cols = list(next(iter(scores.values())))
    head = f"{'':<6}" + "".join(f"{c:>12}" for c in cols)
    rows = [
        f"{split:<6}"
        + "".join(f"{v:>12.4f}" if math.isfinite(v) else f"{'nan':>12}" for v in vals.values())
        for split, vals in scores.items()
    ]
    return "\n".join([head, *rows])
