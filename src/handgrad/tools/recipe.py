"""A training run from a config: data -> MLP -> fit -> files. What `handgrad train` runs."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from handgrad import io, plot, registry
from handgrad.data import datasets
from handgrad.errors import InputError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.activation import Activation
from handgrad.nn.containers import Sequential
from handgrad.nn.conv import Conv1d, Conv2d
from handgrad.nn.dropout import Dropout
from handgrad.nn.linear import Linear
from handgrad.nn.loss import Loss
from handgrad.nn.normalization import BatchNorm1d
from handgrad.nn.pooling import MaxPool2d
from handgrad.nn.shape import Flatten
from handgrad.optim import (
    OPTIMIZERS,
    SCHEDULES,
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecay,
    LRScheduler,
    StepLR,
)
from handgrad.training import History, evaluate, fit, predict

# the command line's choices, read from the registry: every class with a cli_name
ACTIVATIONS: dict[str, type[Activation]] = registry.cli_choices(Activation)
LOSSES: dict[str, type[Loss]] = registry.cli_choices(Loss)


@dataclass
class TrainConfig:
    """Everything a run needs; `handgrad train` maps its flags onto these fields."""

    data: str = "digits"  # a bundled dataset name, or a CSV file
    target: str = "-1"  # CSV only: the target column (name or index)
    arch: str = "mlp"  # mlp, or cnn: three Conv1d (1-D signals) or two Conv2d (images)
    channels: int = 25  # cnn: channels per convolution (the MNIST-1D paper's 25)
    conv_algorithm: str = "auto"  # cnn: Conv2d's auto, reference, im2col or winograd
    hidden: tuple[int, ...] = (128,)  # hidden layer widths; () is a linear model
    activation: str = "relu"  # the cli_name of an Activation (ACTIVATIONS)
    dropout: float = 0.0  # after every hidden activation; 0 = none
    batchnorm: bool = False  # BatchNorm1d after every hidden Linear
    loss: str = "auto"  # cross_entropy for classification, mse for regression
    optimizer: str = "adam"  # sgd, adagrad, rmsprop, adam, adamw
    lr: float = 1e-3
    momentum: float = 0.0  # sgd and rmsprop only
    weight_decay: float = 0.0
    schedule: str = "none"  # none, step, exponential, cosine, inverse_time
    epochs: int = 20
    batch_size: int | None = 64  # None = full batch
    val_fraction: float = 0.2  # held out when the dataset has no test split
    seed: int = 0
    out: str = "runs/train"  # the folder for model, history and figures
    progress: bool = True
    distributed: bool = False  # data parallel under torchrun (gloo on CPU, NCCL on GPU)
    threads: int | str | None = "auto"  # handgrad.threads: "auto", a count, or None (torch's)
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Reject unknown names and impossible numbers before any work starts."""
        for name, table in (("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in table:
                raise InputError(
                    f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(table)}"
                )
        if self.arch not in ("mlp", "cnn"):
            raise InputError(f"unknown arch {self.arch!r}; choose from mlp, cnn")
        if self.conv_algorithm not in Conv2d.ALGORITHMS:
            raise InputError(
                f"unknown conv_algorithm {self.conv_algorithm!r}; "
                f"choose from {', '.join(Conv2d.ALGORITHMS)}"
            )
        if self.loss != "auto" and self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; choose from auto, {', '.join(LOSSES)}")
        if self.schedule != "none" and self.schedule not in SCHEDULES:
            raise InputError(
                f"unknown schedule {self.schedule!r}; choose from none, {', '.join(SCHEDULES)}"
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch size must be >= 1, got {self.batch_size}")
        if self.epochs < 1 or self.lr < 0 or not 0 <= self.dropout < 1:
            raise InputError("need epochs >= 1, lr >= 0 and dropout in [0, 1)")
        if any(h < 1 for h in self.hidden):
            raise InputError(f"hidden widths must be >= 1, got {self.hidden}")


def load_dataset(config: TrainConfig) -> datasets.Dataset:
    """The named dataset or CSV file, with a test split (held out here if it has none)."""
    if config.data in ("digits", "mnist1d"):
        d = datasets.DATASETS[config.data](image=config.arch == "cnn")  # (N, 1, 8, 8) / (N, 1, 40)
    elif config.data in datasets.DATASETS:
        d = datasets.DATASETS[config.data]()
    elif config.data.endswith(".csv") or os.path.isfile(config.data):
        target: str | int = (
            int(config.target) if config.target.lstrip("-").isdigit() else config.target
        )
        d = datasets.load_csv(config.data, target=target)
    else:
        raise InputError(
            f"unknown dataset {config.data!r}: choose from "
            f"{', '.join(datasets.DATASETS)}, or give a CSV file"
        )
    return d if d.X_test is not None else d.split(config.val_fraction, seed=config.seed)


def build_mlp(
    in_features: int, out_features: int, config: TrainConfig, flatten: bool = False
) -> Sequential:
    """Linear -> [BatchNorm1d] -> activation -> [Dropout] per hidden width, then Linear."""
    layers: list[Module] = [Flatten()] if flatten else []
    width = in_features
    for h in config.hidden:
        layers.append(Linear(width, h))
        if config.batchnorm:
            layers.append(BatchNorm1d(h))
        layers.append(ACTIVATIONS[config.activation]())
        if config.dropout:
            layers.append(Dropout(config.dropout))
        width = h
    layers.append(Linear(width, out_features))
    return Sequential(*layers)


def build_cnn(input_shape: tuple[int, ...], out_features: int, config: TrainConfig) -> Sequential:
    """For (C, L): the MNIST-1D paper's CNN, three Conv1d (kernels 5, 3, 3, stride 2, padding 1)
    with activations, then Linear. For (C, H, W): two 3×3 Conv2d, 2×2 max pooling, two Linear.
    """
    act = ACTIVATIONS[config.activation]
    ch = config.channels

    def drop() -> list[Module]:
        return [Dropout(config.dropout)] if config.dropout else []

    if len(input_shape) == 2:
        convs: list[Module] = [
            Conv1d(input_shape[0], ch, 5, stride=2, padding=1),
            act(),
            Conv1d(ch, ch, 3, stride=2, padding=1),
            act(),
            Conv1d(ch, ch, 3, stride=2, padding=1),
            act(),
            Flatten(),
        ]
        head_in = _flat_size(convs, input_shape)
        return Sequential(*convs, *drop(), Linear(head_in, out_features))
    if len(input_shape) == 3:
        convs = [
            Conv2d(input_shape[0], ch, 3, padding=1, algorithm=config.conv_algorithm),
            act(),
            Conv2d(ch, 2 * ch, 3, padding=1, algorithm=config.conv_algorithm),
            act(),
            MaxPool2d(2),
            Flatten(),
        ]
        head_in = _flat_size(convs, input_shape)
        return Sequential(
            *convs, *drop(), Linear(head_in, 128), act(), *drop(), Linear(128, out_features)
        )
    raise InputError(
        f"--arch cnn needs image-shaped inputs (C, L) or (C, H, W), got "
        f"{input_shape}; digits and mnist1d give them, CSV files do not"
    )


@no_cache()
def _flat_size(layers: list[Module], input_shape: tuple[int, ...]) -> int:
    x = torch.zeros(1, *input_shape)
    for layer in layers:
        x = layer(x)
    return int(x.shape[1])


def _loss(config: TrainConfig, task: str) -> Loss:
    name = (
        config.loss
        if config.loss != "auto"
        else ("cross_entropy" if task == "classification" else "mse")
    )
    if (name == "cross_entropy") != (task == "classification"):
        raise InputError(f"loss {name!r} does not fit a {task} dataset")
    return LOSSES[name]()


def _optimizer_and_schedule(model: Module, config: TrainConfig) -> tuple[Any, LRScheduler | None]:
    kw: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer in ("sgd", "rmsprop"):
        kw["momentum"] = config.momentum
    opt = OPTIMIZERS[config.optimizer](model.parameters(), **kw)
    scheduler: LRScheduler | None = None
    if config.schedule == "step":  # a tenth of the rate at each third of the run
        scheduler = StepLR(opt, max(1, config.epochs // 3), 0.1)
    elif config.schedule == "exponential":  # down to a hundredth by the last epoch
        scheduler = ExponentialLR(opt, 0.01 ** (1 / config.epochs))
    elif config.schedule == "cosine":
        scheduler = CosineAnnealingLR(opt, config.epochs)
    elif config.schedule == "inverse_time":
        scheduler = InverseTimeDecay(opt, 0.1)
    return opt, scheduler


@dataclass
class RunResult:
    """What a run produced: the model, its history, final scores and the files written."""

    model: Module
    history: History
    scores: dict[str, dict[str, float]]
    files: list[Path]


def run(config: TrainConfig) -> RunResult:
    """Train as configured; write model, history and figures into config.out only on success."""
    config.check()
    rank = 0
    if config.distributed:
        from handgrad.training.distributed import init

        rank, _ = init()
    data = load_dataset(config)
    assert data.X_test is not None and data.y_test is not None
    torch.manual_seed(config.seed)
    if config.arch == "cnn":
        model = build_cnn(tuple(data.X.shape[1:]), data.out_features, config)
    else:
        model = build_mlp(data.in_features, data.out_features, config, flatten=data.X.dim() > 2)
    loss = _loss(config, data.task)
    opt, scheduler = _optimizer_and_schedule(model, config)
    metrics = ["accuracy"] if data.task == "classification" else ["mae", "r2"]
    if (
        data.task == "classification"
        and data.y_test.numel()
        and int(data.y_test.max()) >= data.out_features
    ):
        raise InputError(
            f"test labels reach {int(data.y_test.max())} but the training data has "
            f"{data.out_features} classes"
        )
    history = fit(
        model,
        loss,
        opt,
        (data.X, data.y),
        val=(data.X_test, data.y_test),
        epochs=config.epochs,
        batch_size=config.batch_size,
        metrics=metrics,
        scheduler=scheduler,
        progress=config.progress and rank == 0,
        seed=config.seed,
        distributed=config.distributed,
        threads=config.threads,
    )
    scores = {
        "train": evaluate(model, (data.X, data.y), loss, metrics, threads=config.threads),
        "test": evaluate(model, (data.X_test, data.y_test), loss, metrics, threads=config.threads),
    }
    files = (
        [] if rank != 0 else _write_outputs(Path(config.out), model, history, scores, config, data)
    )
    return RunResult(model, history, scores, files)


def _write_outputs(
    out: Path,
    model: Module,
    history: History,
    scores: dict[str, Any],
    config: TrainConfig,
    data: datasets.Dataset,
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "task": data.task,
        "dataset": data.name,
        "in_features": data.in_features,
        "input_shape": list(data.X.shape[1:]),
    }
    files = [io.save(model, out / "model.safetensors", metadata=meta)]
    for name, text in (
        ("history.json", history.to_json()),
        ("config.json", json.dumps(asdict(config), indent=2)),
        ("scores.json", json.dumps(scores, indent=2)),
    ):
        files.append(io.atomic_write(out / name, text.encode()))
    files.append(plot.training_curves(history, out / "curves.png"))
    assert data.X_test is not None and data.y_test is not None
    if data.task == "classification":
        pred = predict(model, data.X_test).argmax(1)
        files.append(
            plot.confusion_matrix_figure(data.y_test, pred, data.num_classes, out / "confusion.png")
        )
        if data.X.dim() == 2 and data.X.shape[1] == 2:
            files.append(plot.decision_boundary(model, data.X, data.y, out / "boundary.png"))
    elif data.X.dim() == 2 and data.X.shape[1] == 1:
        order = data.X[:, 0].argsort()
        X, y = data.X[order], data.y[order]
        files.append(
            plot.fit_snapshots(
                X,
                y,
                [predict(model, X)],
                [history.epochs[-1]],
                [history["loss"][-1]],
                path=out / "fit.png",
            )
        )
    return files


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
