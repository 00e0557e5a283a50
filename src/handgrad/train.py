"""fit / evaluate / predict: the training loop, its history, metrics and callbacks.

The loop is the lab's, written once: forward, loss, ``zero_grad``, ``backward`` through the
loss and the model, ``step``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor

from handgrad.data import DataLoader
from handgrad.datasets import Dataset
from handgrad.losses import Loss
from handgrad.module import Module
from handgrad.optim import Optimizer
from handgrad.schedule import LRScheduler

Data = Union[tuple[Tensor, Tensor], DataLoader, Dataset]  # noqa: UP007 (runtime alias)
Metric = Callable[[Tensor, Tensor], float]


# ---- metrics: (pred, target) -> float ------------------------------------------------------
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
        raise ValueError(
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
            raise ValueError(f"fit: unknown metric {m!r}; choose from {', '.join(METRICS)}")
        return m, METRICS[m]
    return getattr(m, "__name__", "metric"), m


# ---- history and callbacks -------------------------------------------------------------------
@dataclass
class History:
    """Per-epoch values: history["loss"], history["val_accuracy"], ... (Keras's names)."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        return self.history[key]

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epochs.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def to_json(self) -> str:
        return json.dumps({"epochs": self.epochs, **self.history}, indent=2)


class Callback:
    """Hooks fit calls; return True from on_epoch_end to stop training."""

    def on_train_begin(self, model: Module) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
        return False

    def on_train_end(self, model: Module) -> None:
        pass


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("accuracy", "r2")) else "min"


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs.

    With restore_best_weights the model ends with the weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = True,
    ) -> None:
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = _mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.stopped_epoch: int | None = None

    def on_train_begin(self, model: Module) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch, self.wait = -1, 0
        self.best_state: dict[str, Tensor] | None = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: {self.monitor!r} is not logged; logged: {list(logs)}")
        value = logs[self.monitor]
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_state = {k: v.clone() for k, v in model.state_dict().items()}
            return False
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model: Module) -> None:
        if self.restore_best_weights and self.best_state is not None:
            model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the model (hg.save) after each epoch, or only when `monitor` improves."""

    def __init__(
        self,
        path: str | Path,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        mode: str = "auto",
    ) -> None:
        self.path, self.monitor, self.save_best_only = Path(path), monitor, save_best_only
        self.mode = _mode(monitor, mode)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
        from handgrad.io import save

        value = logs.get(self.monitor)
        if not self.save_best_only or (
            value is not None and _better(self.mode, value, self.best, 0)
        ):
            if value is not None:
                self.best = value
            save(model, self.path)
        return False


# ---- the loop ----------------------------------------------------------------------------------
def _loader(
    data: Data, batch_size: int | None, shuffle: bool, seed: int | None, what: str
) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        data = (data.X, data.y)
    if not isinstance(data, tuple) or len(data) != 2:
        raise TypeError(
            f"fit: {what} must be (X, y), a Dataset or a DataLoader, got {type(data).__name__}"
        )
    return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, seed=seed)


def _check_labels(model_out: Tensor, y: Tensor, what: str) -> None:
    """Class labels beyond the model's outputs would index past its logits: say so plainly."""
    if y.is_floating_point() or model_out.dim() < 2 or y.dim() != model_out.dim() - 1:
        return
    C = model_out.shape[1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
        raise ValueError(
            f"fit: {what} labels span [{int(y.min())}, {int(y.max())}] but the model "
            f"has {C} outputs (classes 0..{C - 1})"
        )


class NonFiniteLossError(FloatingPointError):
    """The loss became inf or NaN; the model holds its last finite weights."""


def _scores(
    model: Module, loader: DataLoader, loss: Loss | None, metrics: Sequence[tuple[str, Metric]]
) -> tuple[float, dict[str, float]]:
    outs, ys, total, n = [], [], 0.0, 0
    for xb, yb in loader:
        out = model(xb)
        if loss is not None:
            total += float(loss(out, yb)) * xb.shape[0]
        n += xb.shape[0]
        if metrics:
            outs.append(out.detach())
            ys.append(yb)
    values = {}
    if metrics:
        pred, target = torch.cat(outs), torch.cat(ys)
        values = {name: fn(pred, target) for name, fn in metrics}
    return (total / n if loss is not None else math.nan), values


def evaluate(
    model: Module,
    data: Data,
    loss: Loss | None = None,
    metrics: Sequence[str | Metric] = (),
    batch_size: int | None = 1024,
) -> dict[str, float]:
    """Loss (when given) and metrics over `data`, in eval mode; the model's mode is restored."""
    loader = _loader(data, batch_size, shuffle=False, seed=None, what="data")
    was_training = model.training
    model.eval()
    try:
        value, values = _scores(model, loader, loss, [_metric(m) for m in metrics])
    finally:
        model.train(was_training)
    return ({"loss": value} if loss is not None else {}) | values


def predict(model: Module, X: Tensor, batch_size: int | None = 1024) -> Tensor:
    """model(X) in eval mode, in batches; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        n = X.shape[0]
        b = batch_size or n
        return torch.cat([model(X[i : i + b]) for i in range(0, n, b)])
    finally:
        model.train(was_training)


def _progress(total: int, epoch: int, epochs: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=f"epoch {epoch}/{epochs}",
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        unit="batch",
    )


def fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    train: Data,
    val: Data | None = None,
    epochs: int = 10,
    batch_size: int | None = 32,
    metrics: Sequence[str | Metric] = (),
    callbacks: Sequence[Callback] = (),
    scheduler: LRScheduler | None = None,
    progress: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    initial_epoch: int = 0,
    distributed: bool = False,
) -> History:
    """Train `model` for `epochs` epochs; returns the History of train and val loss and metrics.

    `train`/`val` are (X, y) tensors, a Dataset or a DataLoader (whose own batch_size wins).
    `scheduler.step()` runs after every epoch. A non-finite loss stops training with
    NonFiniteLossError naming the epoch and batch; the model keeps its last finite weights.
    `initial_epoch` resumes a run (see hg.io.save_checkpoint). With `distributed`, inside a
    torch.distributed process group, each process trains on its shard of (X, y) and the
    gradients are averaged before every step (handgrad.distributed); the logged train loss is
    the average over processes.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    sync: Callable[[Module], None] | None = None
    loader = _loader(train, batch_size, shuffle, seed, "train")
    if distributed:
        from handgrad import distributed as hd

        rank, world = hd.rank_and_world_size()
        if not isinstance(train, DataLoader):
            loader = DataLoader(
                loader.X,
                loader.y,
                batch_size=batch_size,
                shuffle=shuffle,
                seed=0 if seed is None else seed,
                rank=rank,
                world_size=world,
            )
        hd.prepare(model)
        sync = hd.average_gradients
    val_loader = None if val is None else _loader(val, 1024, False, None, "val")
    named = [_metric(m) for m in metrics]
    history = History()
    for cb in callbacks:
        cb.on_train_begin(model)
    for epoch in range(initial_epoch + 1, epochs + 1):
        loader.set_epoch(epoch)
        logs = _train_epoch(model, loss, optimizer, loader, named, epoch, epochs, progress, sync)
        if sync is not None:
            logs["loss"] = _average_over_processes(logs["loss"])
        if val_loader is not None:
            scores = evaluate(model, val_loader, loss, metrics)
            logs.update({f"val_{k}": v for k, v in scores.items()})
        if scheduler is not None:
            scheduler.step()
        history.append(epoch, logs)
        if progress:
            print(
                f"epoch {epoch}/{epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in logs.items()),
                flush=True,
            )
        if any([cb.on_epoch_end(epoch, logs, model) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    return history


def _average_over_processes(value: float) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def _train_epoch(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    loader: DataLoader,
    metrics: Sequence[tuple[str, Metric]],
    epoch: int,
    epochs: int,
    progress: bool,
    sync: Callable[[Module], None] | None = None,
) -> dict[str, float]:
    model.train()
    snapshot = [p.clone() for p in model.parameters()]  # for a step that makes weights non-finite
    total, n, outs, ys = 0.0, 0, [], []
    with _progress(len(loader), epoch, epochs, progress) as bar:
        for batch, (xb, yb) in enumerate(loader, start=1):
            out = model(xb)
            if batch == 1:
                _check_labels(out, yb, "train")
            value = loss(out, yb)
            v = float(value)
            if not math.isfinite(v):
                if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                    for p, s in zip(model.parameters(), snapshot):
                        p.copy_(s)
                raise NonFiniteLossError(
                    f"fit: the loss became {v} at epoch {epoch}, batch {batch}; the model keeps "
                    "its last finite weights (try a smaller learning rate)"
                )
            optimizer.zero_grad()
            model.backward_params(loss.backward())  # dL/dX of the data is never needed
            if sync is not None:
                sync(model)  # data parallel: every process steps with the averaged gradient
            optimizer.step()
            total += v * xb.shape[0]
            n += xb.shape[0]
            if metrics:
                outs.append(out.detach())
                ys.append(yb)
            bar.update(1)
            bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)
    logs = {"loss": total / n}
    if metrics:
        pred, target = torch.cat(outs), torch.cat(ys)
        logs.update({name: fn(pred, target) for name, fn in metrics})
    return logs
