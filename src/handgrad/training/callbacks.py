"""History and the callbacks fit calls: EarlyStopping, ModelCheckpoint."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from handgrad.errors import InputError
from handgrad.module import Module


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
            raise InputError(f"EarlyStopping: patience must be >= 0, got {patience}")
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
            raise InputError(f"EarlyStopping: {self.monitor!r} is not logged; logged: {list(logs)}")
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
