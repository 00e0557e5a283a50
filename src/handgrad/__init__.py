"""handgrad: neural networks from scratch on PyTorch tensors, every backward written by hand."""

from handgrad import check, data, datasets, init, optim
from handgrad.activations import (
    ELU,
    GELU,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from handgrad.io import from_torch, load, load_checkpoint, save, save_checkpoint, to_torch
from handgrad.layers import BatchNorm1d, Dropout, Flatten, Linear
from handgrad.losses import (
    L2,
    BCELoss,
    BCEWithLogitsLoss,
    CategoricalCrossEntropy,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    L1Penalty,
    Loss,
    MSELoss,
    NLLLoss,
)
from handgrad.module import Module, Sequential
from handgrad.neuron import Neuron
from handgrad.train import EarlyStopping, History, ModelCheckpoint, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "CategoricalCrossEntropy",
    "CrossEntropyLoss",
    "Dropout",
    "ELU",
    "Flatten",
    "GELU",
    "HuberLoss",
    "Identity",
    "L1Loss",
    "L1Penalty",
    "L2",
    "LeakyReLU",
    "Linear",
    "LogSoftmax",
    "Loss",
    "MSELoss",
    "Module",
    "NLLLoss",
    "Neuron",
    "ReLU",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "evaluate",
    "fit",
    "from_torch",
    "load",
    "load_checkpoint",
    "predict",
    "save",
    "save_checkpoint",
    "to_torch",
    "check",
    "data",
    "datasets",
    "init",
    "optim",
]
