"""A training run from a config: data -> MLP -> fit -> files. What `handgrad train` runs."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from handgrad import io, plot, registry
from handgrad.data import datasets
from handgrad.data.preprocessing import IMPUTE, TASKS
from handgrad.errors import InputError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.activation import Activation
from handgrad.nn.containers import Ensemble, Sequential
from handgrad.nn.conv import Conv1d, Conv2d
from handgrad.nn.dropout import Dropout
from handgrad.nn.linear import Linear
from handgrad.nn.loss import BCEWithLogitsLoss, Loss
from handgrad.nn.normalization import BatchNorm1d
from handgrad.nn.pooling import MaxPool2d
from handgrad.nn.recurrent_classifier import RecurrentClassifier
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
from handgrad.tools import outputs
from handgrad.training import History, evaluate, fit, metrics, predict
from handgrad.training.callbacks import Callback, EarlyStopping

# the command line's choices, read from the registry: every class with a cli_name
ACTIVATIONS: dict[str, type[Activation]] = registry.cli_choices(Activation)
LOSSES: dict[str, type[Loss]] = registry.cli_choices(Loss)


# The defaults that differ by kind of data. A table (a CSV) is small: more epochs in smaller
# batches, stopped by the validation loss (the best epoch's weights kept); AdamW's weight decay
# (the L2 penalty that scikit-learn's linear models also have by default); and 5 networks
# trained from 5 initialisations whose outputs are averaged (a deep ensemble: on a few hundred
# rows one network's test score swings with its initial weights and batch order; the mean of
# five swings less). examples/tabular.py measures this recipe against scikit-learn (README
# "Your own data").
RECIPES: dict[str, dict[str, Any]] = {
    "bundled": {
        "epochs": 20,
        "batch_size": 64,
        "patience": 0,
        "ensemble": 1,
        "optimizer": "adam",
        "weight_decay": 0.0,
    },
    "table": {
        "epochs": 200,
        "batch_size": 32,
        "patience": 20,
        "ensemble": 5,
        "optimizer": "adamw",
        "weight_decay": 1.0,
    },
}
MEMBER_SEED_STEP = 1000  # ensemble member k draws its weights and batches from seed + 1000·k


RECURRENT_ARCHS = ("gru", "lstm", "rnn")  # RecurrentClassifier on (N, L, F) sequences
ARCHS = ("mlp", "cnn", *RECURRENT_ARCHS, "gpt")  # gpt: a character-level GPT on text


@dataclass
class TrainConfig:
    """Everything a run needs; `handgrad train` maps its flags onto these fields."""

    data: str = "digits"  # a bundled dataset name, or a CSV file
    target: str = "-1"  # CSV only: the target column (name or index)
    arch: str = "mlp"  # mlp, or cnn: three Conv1d (1-D signals) or two Conv2d (images)
    channels: int = 25  # cnn: channels per convolution (the MNIST-1D paper's 25)
    conv_algorithm: str = "auto"  # cnn: Conv2d's auto, reference, im2col or winograd
    # sequence models: gru/lstm/rnn (RECURRENT_ARCHS) on mnist1d or digits, gpt on text
    width: int | None = None  # recurrent hidden size (6) or the GPT's embedding width (128)
    layers: int | None = None  # recurrent layers (1) or transformer blocks (4)
    bidirectional: bool = True  # gru/lstm/rnn: both directions (the MNIST-1D paper's GRU)
    heads: int = 4  # gpt: attention heads
    context: int = 128  # gpt: tokens per window (block_size)
    steps: int | None = None  # gpt: optimizer steps (default 1000); --epochs does not apply
    eval_every: int = 100  # gpt: steps between validation losses
    clip_grad_norm: float | None = None  # scale gradients to this total 2-norm; None = off
    device: str = "cpu"  # train on cpu or cuda (cuda:N); the outputs are computed on the CPU
    cuda_graph: bool = False  # cuda: capture the whole step in one CUDA graph, replay per batch
    precision: str = "float32"  # or bf16: bf16 forward/backward, float32 master weights
    hidden: tuple[int, ...] = (128,)  # hidden layer widths; () is a linear model
    activation: str = "relu"  # the cli_name of an Activation (ACTIVATIONS)
    dropout: float = 0.0  # after every hidden activation; 0 = none
    batchnorm: bool = False  # BatchNorm1d after every hidden Linear
    loss: str = "auto"  # cross_entropy for classification, mse for regression
    optimizer: str | None = None  # sgd, adagrad, rmsprop, adam, adamw; None: the recipe's
    lr: float = 1e-3
    momentum: float = 0.0  # sgd and rmsprop only
    weight_decay: float | None = None  # None: 0, or the recipe's 1.0 with its AdamW for a CSV
    schedule: str = "none"  # none, step, exponential, cosine, inverse_time
    epochs: int | None = None  # None: the recipe's (RECIPES)
    batch_size: int | None = None  # 0 = full batch; None: the recipe's (RECIPES)
    val_fraction: float = 0.2  # of the training data, held out for validation; 0 = none
    test_fraction: float = 0.2  # held out for the final test when the data has no test split
    task: str = "auto"  # CSV only: auto (guessed), classification, binary or regression
    standardize: bool = True  # CSV only: standardise numeric features (and a regression target)
    impute: str = "none"  # CSV only: none (a missing value is an error), mean or median
    categorical: tuple[str, ...] = ()  # CSV only: numeric columns to one-hot as well
    drop: tuple[str, ...] = ()  # CSV only: columns to leave out
    seed: int = 0
    out: str = "runs/train"  # the folder for model, history and figures
    force: bool = False  # write into a folder that holds files handgrad did not write
    resume: str | None = None  # a checkpoint to continue from
    checkpoint_every: int = 0  # epochs between checkpoints; 0 = none
    patience: int | None = None  # early stopping on val_loss (best weights kept); 0 = off
    ensemble: int | None = None  # networks trained from different seeds, outputs averaged
    checkpoint: str | None = None  # where checkpoints go (default: OUT.checkpoint.safetensors)
    progress: bool = True
    distributed: bool = False  # data parallel under torchrun (gloo on CPU, NCCL on GPU)
    threads: int | str | None = "auto"  # handgrad.threads: "auto", a count, or None (torch's)
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Reject unknown names and impossible numbers before any work starts."""
        for name, table in (("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS)):
            value = getattr(self, name)
            if value not in table and not (name == "optimizer" and value is None):  # the recipe's
                raise InputError(f"unknown {name} {value!r}; choose from {', '.join(table)}")
        if self.arch not in ARCHS:
            raise InputError(f"unknown arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        _check_sequence_options(self)
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
        if self.batch_size is not None and self.batch_size < 0:
            raise InputError(f"batch size must be >= 1 (0: full batch), got {self.batch_size}")
        if (self.epochs is not None and self.epochs < 1) or self.lr < 0:
            raise InputError(f"need epochs >= 1 and lr >= 0, got {self.epochs} and {self.lr}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"need dropout in [0, 1), got {self.dropout}")
        if self.patience is not None and self.patience < 0:
            raise InputError(f"--patience must be >= 0, got {self.patience}")
        if self.patience and self.val_fraction == 0:
            raise InputError("--patience needs a validation split: --val-fraction above 0")
        if any(h < 1 for h in self.hidden):
            raise InputError(f"hidden widths must be >= 1, got {self.hidden}")
        if not 0 <= self.val_fraction < 1 or not 0 < self.test_fraction < 1:
            raise InputError(
                f"need --val-fraction in [0, 1) and --test-fraction in (0, 1), got "
                f"{self.val_fraction} and {self.test_fraction}"
            )
        if self.task != "auto" and self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; choose from auto, {', '.join(TASKS)}")
        if self.impute not in IMPUTE:
            raise InputError(f"unknown impute {self.impute!r}; choose from {', '.join(IMPUTE)}")
        if self.checkpoint_every < 0:
            raise InputError(f"--checkpoint-every must be >= 0, got {self.checkpoint_every}")
        if self.ensemble is not None and self.ensemble < 1:
            raise InputError(f"--ensemble must be >= 1, got {self.ensemble}")
        if self.ensemble is not None and self.ensemble > 1:
            for flag, used in self._one_network_flags():
                if used:
                    raise InputError(
                        f"--ensemble {self.ensemble} cannot be combined with {flag}, which "
                        "trains one network: pass --ensemble 1"
                    )

    def _one_network_flags(self) -> list[tuple[str, bool]]:
        """The flags whose runs hold one network (checkpoints, data-parallel ranks)."""
        return [
            ("--resume", self.resume is not None),
            ("--checkpoint-every", self.checkpoint_every > 0),
            ("--distributed", self.distributed),
        ]

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's epochs, batch size, patience and ensemble size where they
        are None. A run that checkpoints, resumes or runs distributed trains one network."""
        recipe = RECIPES["table" if self.is_table() else "bundled"]
        if self.arch == "gpt":  # counts --steps; epochs stay None
            recipe = {**RECIPES["bundled"], "batch_size": 32, "epochs": None}
        if any(used for _, used in self._one_network_flags()):
            recipe = {**recipe, "ensemble": 1}
        recurrent = self.arch in RECURRENT_ARCHS
        return replace(
            self,
            width=self.width or (6 if recurrent else 128 if self.arch == "gpt" else None),
            layers=self.layers or (1 if recurrent else 4 if self.arch == "gpt" else None),
            steps=self.steps or (1000 if self.arch == "gpt" else None),
            epochs=recipe.get("epochs") if self.epochs is None else self.epochs,
            batch_size=recipe["batch_size"] if self.batch_size is None else self.batch_size,
            patience=recipe["patience"] if self.patience is None else self.patience,
            ensemble=recipe["ensemble"] if self.ensemble is None else self.ensemble,
            optimizer=recipe["optimizer"] if self.optimizer is None else self.optimizer,
            weight_decay=self._weight_decay(recipe),
        )

    def _weight_decay(self, recipe: dict[str, Any]) -> float:
        """The given weight decay; else the recipe's with the recipe's optimizer, 0 with one
        the user chose."""
        if self.weight_decay is not None:
            return self.weight_decay
        return recipe["weight_decay"] if self.optimizer is None else 0.0

    @property
    def checkpoint_path(self) -> Path:
        """Where --checkpoint-every writes: --checkpoint, or OUT.checkpoint.safetensors beside
        the run folder (outside it, so a kill never leaves it half in the old run)."""
        if self.checkpoint:
            return Path(self.checkpoint)
        out = Path(self.out)
        return out.absolute().parent / f"{out.name}.checkpoint.safetensors"

    def is_table(self) -> bool:
        if self.arch == "gpt":  # text: "text" (the default corpus) or a text file
            return False
        return self.data not in datasets.DATASETS and (
            self.data.endswith(".csv") or os.path.isfile(self.data)
        )


def load_dataset(config: TrainConfig) -> datasets.Dataset:
    """The named dataset or CSV file, split three ways: training, validation (`val_fraction`
    of the training data; none when 0) and test (the dataset's own test split, or
    `test_fraction` of the examples). A CSV's preprocessing is fitted on the training rows."""
    if config.data == "mnist1d" and config.arch in RECURRENT_ARCHS:
        d = datasets.mnist1d(sequence=True)  # (N, 40, 1): 40 time steps of one value
    elif config.data == "digits" and config.arch in RECURRENT_ARCHS:
        d = datasets.digits()
        d = replace(d, X=d.X.view(-1, 8, 8), X_test=_rows(d.X_test))  # 8 steps: the rows
    elif config.data in ("digits", "mnist1d"):
        d = datasets.DATASETS[config.data](image=config.arch == "cnn")  # (N, 1, 8, 8) / (N, 1, 40)
    elif config.data in datasets.DATASETS:
        d = datasets.DATASETS[config.data]()
    elif config.is_table():
        return datasets.load_csv(
            config.data,
            target=config.target,
            task=config.task,
            test_fraction=config.test_fraction,
            val_fraction=config.val_fraction,
            seed=config.seed,
            standardize=config.standardize,
            impute=config.impute,
            categorical=config.categorical,
            drop=config.drop,
        )
    else:
        raise InputError(
            f"unknown dataset {config.data!r}: choose from "
            f"{', '.join(datasets.DATASETS)}, or give a CSV file"
        )
    if config.task not in (None, "auto") and config.task != d.task:  # never ignored unsaid
        raise InputError(
            f"--task {config.task}: {config.data} is a {d.task} dataset; --task chooses the "
            "task of a CSV file"
        )
    if d.X_test is None:
        d = d.split(config.test_fraction, seed=config.seed)
    return d.split_validation(config.val_fraction, seed=config.seed)


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

    def drop() -> list[Module]:
        return [Dropout(config.dropout)] if config.dropout else []

    convs, channels = _convs(input_shape, config)
    head_in = channels * _per_channel(input_shape, config)
    if len(input_shape) == 2:
        return Sequential(*convs, *drop(), Linear(head_in, out_features))
    return Sequential(
        *convs, *drop(), Linear(head_in, 128), act(), *drop(), Linear(128, out_features)
    )


def _convs(input_shape: tuple[int, ...], config: TrainConfig) -> tuple[list[Module], int]:
    """The convolution part of build_cnn, ending in Flatten, and its last channel count."""
    act = ACTIVATIONS[config.activation]
    ch = config.channels
    if len(input_shape) == 2:
        return [
            Conv1d(input_shape[0], ch, 5, stride=2, padding=1),
            act(),
            Conv1d(ch, ch, 3, stride=2, padding=1),
            act(),
            Conv1d(ch, ch, 3, stride=2, padding=1),
            act(),
            Flatten(),
        ], ch
    if len(input_shape) == 3:
        return [
            Conv2d(input_shape[0], ch, 3, padding=1, algorithm=config.conv_algorithm),
            act(),
            Conv2d(ch, 2 * ch, 3, padding=1, algorithm=config.conv_algorithm),
            act(),
            MaxPool2d(2),
            Flatten(),
        ], 2 * ch
    raise InputError(
        f"--arch cnn needs image-shaped inputs (C, L) or (C, H, W), got "
        f"{input_shape}; digits and mnist1d give them, CSV files do not"
    )


def build_recurrent(
    input_shape: tuple[int, ...], out_features: int, config: TrainConfig
) -> RecurrentClassifier:
    """The MNIST-1D paper's recurrent model for (L, F) sequences: a GRU, LSTM or RNN of
    --width units (both directions unless --unidirectional, --layers deep), then a Linear on
    the flattened outputs of every step."""
    if len(input_shape) != 2:
        raise InputError(
            f"--arch {config.arch} needs sequences (N, steps, features), got inputs of shape "
            f"{input_shape}; mnist1d (40 steps of 1) and digits (8 rows of 8) give them"
        )
    assert config.width is not None and config.layers is not None
    return RecurrentClassifier(
        config.arch,
        input_shape[1],
        config.width,
        input_shape[0],
        out_features,
        config.layers,
        config.bidirectional,
        config.dropout,
    )


def _rows(X: Tensor | None) -> Tensor | None:
    """8×8 digits as sequences of their 8 rows."""
    return None if X is None else X.view(-1, 8, 8)


def _check_sequence_options(config: TrainConfig) -> None:
    """The sequence models' numbers, and the options a text run does not take."""
    for name in ("width", "layers", "steps"):
        v = getattr(config, name)
        if v is not None and v < 1:
            raise InputError(f"--{name} must be >= 1, got {v}")
    for name in ("heads", "context", "eval_every"):
        if getattr(config, name) < 1:
            raise InputError(
                f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}"
            )
    if config.clip_grad_norm is not None and not config.clip_grad_norm > 0:
        raise InputError(f"--clip-grad-norm must be > 0, got {config.clip_grad_norm}")
    _check_device(config)
    if config.arch != "gpt":
        return
    width = config.width or 128
    if width % config.heads:
        raise InputError(
            f"--arch gpt: --width ({width}) must be divisible by --heads ({config.heads})"
        )
    for flag, used in (
        ("--distributed", config.distributed),
        ("--resume", config.resume is not None),
        ("--checkpoint-every", config.checkpoint_every > 0),
        ("--patience", bool(config.patience)),
        ("--epochs", config.epochs is not None),
        ("--ensemble", config.ensemble is not None and config.ensemble > 1),
    ):
        if used:
            raise InputError(f"--arch gpt does not take {flag} (a text run counts --steps)")


@no_cache()
def _per_channel(input_shape: tuple[int, ...], config: TrainConfig) -> int:
    """Outputs per channel of the convolutions: a one-channel twin run on the CPU (so it works
    while the model is built on the meta device), drawing nothing from the global RNG."""
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        layers, channels = _convs(input_shape, replace(config, channels=1))
        x = torch.zeros(1, *input_shape)
        for layer in layers:
            x = layer(x)
    return int(x.shape[1]) // channels


def build_model(config: TrainConfig, data: datasets.Dataset) -> Module:
    """The configured network for data's input shape and outputs."""
    if config.arch in RECURRENT_ARCHS:
        return build_recurrent(tuple(data.X.shape[1:]), data.out_features, config)
    if config.arch == "cnn":
        return build_cnn(tuple(data.X.shape[1:]), data.out_features, config)
    return build_mlp(data.in_features, data.out_features, config, flatten=data.X.dim() > 2)


BYTES_PER_PARAMETER = 16  # float32 weight, gradient and two Adam moments


def _check_size(model: Module, members: int = 1) -> None:
    """Refuse a model whose weights, gradients and optimizer state (times the members of an
    ensemble) would take more than half of this machine's memory (counted on the meta
    device, so nothing is allocated)."""
    n = sum(p.numel() for p in model.parameters()) * members
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if n * BYTES_PER_PARAMETER > memory / 2:
        raise InputError(
            f"the model would have {n:,} parameters, about {n * BYTES_PER_PARAMETER / 2**30:.0f} "
            f"GiB to train, more than half of this machine's {memory / 2**30:.0f} GiB; "
            "choose smaller --hidden or --channels"
        )


def _loss(config: TrainConfig, task: str) -> Loss:
    if task == "binary":  # one logit per example
        if config.loss != "auto":
            raise InputError(f"loss {config.loss!r} does not fit a binary task (auto: BCE)")
        return BCEWithLogitsLoss()
    name = (
        config.loss
        if config.loss != "auto"
        else ("cross_entropy" if task == "classification" else "mse")
    )
    if (name == "cross_entropy") != (task == "classification"):
        raise InputError(f"loss {name!r} does not fit a {task} dataset")
    return LOSSES[name]()


def _metrics(data: datasets.Dataset) -> list[Any]:
    """accuracy for classes; mae (in the target's units) and r2 for regression."""
    if data.task == "binary":

        def accuracy(logits: Tensor, target: Tensor) -> float:  # one logit: class 1 when > 0
            return float(((logits.reshape(-1) > 0) == (target.reshape(-1) > 0.5)).float().mean())

        return [accuracy]
    if data.task == "classification":
        return ["accuracy"]
    scale = data.preprocessing.target_std if data.preprocessing is not None else 1.0

    def mae(pred: Tensor, target: Tensor) -> float:  # the target was standardised: undo it
        return metrics.mae(pred, target) * scale

    return [mae, "r2"]


def _optimizer_and_schedule(model: Module, config: TrainConfig) -> tuple[Any, LRScheduler | None]:
    """The optimizer and schedule of a resolved config (TrainConfig.resolved)."""
    assert config.epochs is not None and config.optimizer is not None
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


class _Checkpoints(Callback):
    """Save a checkpoint (model, optimizer, schedule, epoch, RNG, history) every n epochs."""

    def __init__(self, path: Path, every: int, opt: Any, scheduler: Any, history: History):
        self.path, self.every, self.opt, self.scheduler = path, every, opt, scheduler
        self.history = history  # epochs before a resume
        self.logs: list[tuple[int, dict[str, float]]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
        self.logs.append((epoch, dict(logs)))
        if epoch % self.every == 0:
            now = History()
            for e, values in self.logs:
                now.append(e, values)
            logged = json.loads(_joined(self.history, now).to_json())
            io.save_checkpoint(
                self.path, model, self.opt, epoch, self.scheduler, metadata={"history": logged}
            )
        return False


def _joined(first: History, then: History) -> History:
    """A new History: first's epochs, then then's."""
    joined = History()
    for h in (first, then):
        for i, e in enumerate(h.epochs):
            joined.append(e, {k: v[i] for k, v in h.history.items()})
    return joined


def _resume(config: TrainConfig, model: Module, opt: Any, scheduler: Any) -> tuple[int, History]:
    """Load --resume into model, optimizer and schedule; the epoch reached and its history."""
    assert config.resume is not None
    state = io.load_checkpoint(config.resume, model, opt, scheduler)
    epoch = int(state["epoch"])
    if epoch >= (config.epochs or 0):
        raise InputError(
            f"--resume: {config.resume} is at epoch {epoch}; ask for more --epochs than that"
        )
    past = History()
    logged = state["metadata"].get("history") or {}
    for i, e in enumerate(logged.get("epochs", [])):
        past.append(int(e), {k: float(v[i]) for k, v in logged.items() if k != "epochs"})
    return epoch, past


def _check_device(config: TrainConfig) -> None:
    """--device, --cuda-graph and --precision, refused before any CUDA call can fail."""
    if config.precision not in ("float32", "bf16"):
        raise InputError(f"--precision must be float32 or bf16, got {config.precision!r}")
    try:
        device = torch.device(config.device)
    except RuntimeError:
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {config.device!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {config.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {config.device}: this machine has no CUDA device")
    if config.cuda_graph and device.type != "cuda":
        raise InputError("--cuda-graph needs a CUDA device: add --device cuda")
    if (config.device != "cpu" or config.cuda_graph or config.precision != "float32") and (
        config.arch == "gpt" or config.distributed
    ):
        raise InputError(
            "--device, --cuda-graph and --precision apply to --arch mlp, cnn, gru, lstm and "
            "rnn without --distributed"
        )


def _to_device(data: Any, device: str) -> None:
    for name in ("X", "y", "X_val", "y_val", "X_test", "y_test"):
        t = getattr(data, name)
        if isinstance(t, Tensor):
            setattr(data, name, t.to(device))


def run(config: TrainConfig) -> RunResult:
    """Train as configured. Every output path is checked first; the files are written into a
    new folder beside config.out, which replaces the old run only when all are written."""
    config.check()
    config = config.resolved()
    if config.arch == "gpt":
        from handgrad.tools.text_recipe import run_text

        return run_text(config)
    assert config.epochs is not None and config.ensemble is not None  # resolved
    rank = 0
    if config.distributed:
        from handgrad.training.distributed import init

        rank, _ = init()
    out = check_paths(config)
    data = load_dataset(config)
    assert data.X_test is not None and data.y_test is not None
    if rank == 0:
        print(describe(data), flush=True)
    with torch.device("meta"):  # the size first, without memory: a model that cannot fit
        _check_size(build_model(config, data), config.ensemble)  # is refused, not killed
    _to_device(data, config.device)
    loss = _loss(config, data.task)
    metric_list = _metrics(data)
    members, histories = [], []
    for k in range(config.ensemble):
        if config.ensemble != 1 and rank == 0:
            hint = f" (--ensemble 1: one network, 1/{config.ensemble} of the time)" if not k else ""
            print(f"ensemble member {k + 1} of {config.ensemble}{hint}", flush=True)
        member, member_history = _train_one(
            config, data, loss, metric_list, config.seed + MEMBER_SEED_STEP * k, rank
        )
        members.append(member)
        histories.append(member_history)
    # one network, or the mean of the members' outputs (their logits, for classes)
    model = members[0] if len(members) == 1 else Ensemble(*members)
    history = histories[0]  # the first member's epochs draw curves.png
    model.to(device="cpu")  # scores, figures and the model file on the CPU, as before
    _to_device(data, "cpu")
    val = None if data.X_val is None or data.y_val is None else (data.X_val, data.y_val)
    scores = {"train": evaluate(model, (data.X, data.y), loss, metric_list, threads=config.threads)}
    if val is not None:
        scores["val"] = evaluate(model, val, loss, metric_list, threads=config.threads)
    # the test split, once, at the end: its scores and the figure come from one prediction
    test_out = predict(model, data.X_test, threads=config.threads)
    scores["test"] = _scores(test_out, data.y_test, loss, metric_list)
    files: list[Path] = []
    if rank == 0:
        with outputs.staged_run(out, config.force) as stage:
            _write_outputs(stage, model, histories, scores, config, data, test_out)
            if config.checkpoint_every and config.checkpoint_path.exists():
                os.replace(config.checkpoint_path, stage / "checkpoint.safetensors")
        files = [out / p.name for p in sorted(out.iterdir()) if p.name in outputs.RUN_FILES]
        files = [f for f in files if f.name != outputs.MARKER]
    return RunResult(model, history, scores, files)


def _train_one(
    config: TrainConfig,
    data: datasets.Dataset,
    loss: Loss,
    metric_list: list[Any],
    seed: int,
    rank: int,
) -> tuple[Module, History]:
    """One network trained as configured, its weights and batches drawn from `seed`; its
    history includes the epochs before a --resume."""
    assert config.epochs is not None
    torch.manual_seed(seed)
    model = build_model(config, data).to(device=config.device)  # weights drawn on the CPU
    opt, scheduler = _optimizer_and_schedule(model, config)
    val = None if data.X_val is None or data.y_val is None else (data.X_val, data.y_val)
    start, past = (
        (0, History()) if config.resume is None else _resume(config, model, opt, scheduler)
    )
    callbacks: list[Callback] = []
    if config.patience and val is not None:  # the best epoch's weights, by validation loss
        callbacks.append(EarlyStopping("val_loss", patience=config.patience))
    if config.checkpoint_every and rank == 0:
        callbacks.append(
            _Checkpoints(config.checkpoint_path, config.checkpoint_every, opt, scheduler, past)
        )
    history = fit(
        model,
        loss,
        opt,
        (data.X, data.y),
        val=val,
        epochs=config.epochs,
        batch_size=config.batch_size or None,  # 0: full batch
        metrics=metric_list,
        callbacks=callbacks,
        scheduler=scheduler,
        progress=config.progress and rank == 0,
        seed=seed,
        initial_epoch=start,
        distributed=config.distributed,
        threads=config.threads,
        clip_grad_norm=config.clip_grad_norm,
        cuda_graph=config.cuda_graph,
        precision=config.precision,
    )
    return model, _joined(past, history)  # the epochs before a resume, then this run's


def _scores(out: Tensor, y: Tensor, loss: Loss, metric_list: list[Any]) -> dict[str, float]:
    with no_cache():
        values = {"loss": float(loss(out, y))}
    for m in metric_list:
        name, fn = (m, metrics.METRICS[m]) if isinstance(m, str) else (m.__name__, m)
        values[name] = fn(out, y)
    return values


def _write_outputs(
    out: Path,
    model: Module,
    histories: list[History],
    scores: dict[str, Any],
    config: TrainConfig,
    data: datasets.Dataset,
    test_out: Tensor,
) -> None:
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
    io.save(model, out / "model.safetensors", metadata=meta, preprocessing=data.preprocessing)
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
