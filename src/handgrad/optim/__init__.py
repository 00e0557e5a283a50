"""Optimizers (in order of increasing complexity) and learning-rate schedules."""

from handgrad.optim.optimizers import OPTIMIZERS, SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from handgrad.optim.schedule import (
    SCHEDULES,
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecay,
    LRScheduler,
    StepLR,
)

__all__ = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "Optimizer",
    "OPTIMIZERS",
    "LRScheduler",
    "StepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "InverseTimeDecay",
    "SCHEDULES",
]
