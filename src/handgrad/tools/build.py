"""What a run trains, built from a TrainConfig: the network (MLP, CNN, recurrent), its loss,
its metrics, its optimizer and learning-rate schedule."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from handgrad.data import datasets
from handgrad.errors import InputError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.containers import Sequential
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
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecay,
    LRScheduler,
    StepLR,
)
from handgrad.tools.config import ACTIVATIONS, LOSSES, RECURRENT_ARCHS, TrainConfig
from handgrad.training import metrics


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
BYTES_PER_ACTIVATION = 4  # a float32 number a training step keeps for its backward
SIZE_FLAGS = {  # the flags that set each architecture's size
    "mlp": "--hidden",
    "cnn": "--channels",
    **{arch: "--width or --layers" for arch in RECURRENT_ARCHS},
    "gpt": "--width, --layers, --context or --batch-size",
}


def check_size(model: Module, members: int = 1, arch: str = "mlp", activations: int = 0) -> None:
    """Refuse a model whose weights, gradients and optimizer state (times the members of an
    ensemble), and the `activations` numbers a step keeps for its backward, would take more
    than half of this machine's memory (counted on the meta device: nothing is allocated).
    The error names the flags that size the `arch`."""
    n = sum(p.numel() for p in model.parameters()) * members
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    need = n * BYTES_PER_PARAMETER + activations * BYTES_PER_ACTIVATION
    if need > memory / 2:
        what = f"{n:,} parameters" + (f" and {activations:,} activations" if activations else "")
        raise InputError(
            f"the model would have {what}, about {need / 2**30:,.0f} GiB to train, more than "
            f"half of this machine's {memory / 2**30:.0f} GiB; choose a smaller "
            f"{SIZE_FLAGS.get(arch, '--hidden')}"
        )


def build_loss(config: TrainConfig, task: str) -> Loss:
    """--loss, or by the task: BCE on one logit (binary), cross-entropy (classes), MSE."""
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


def build_metrics(data: datasets.Dataset) -> list[Any]:
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


def optimizer_and_schedule(model: Module, config: TrainConfig) -> tuple[Any, LRScheduler | None]:
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
