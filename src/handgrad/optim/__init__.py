"""Optimizers (in order of increasing complexity) and learning-rate schedules, as torch.optim
and torch.optim.lr_scheduler name them."""

from collections.abc import Callable

from handgrad.optim import lr_scheduler
from handgrad.optim.adagrad import Adagrad
from handgrad.optim.adam import Adam, AdamW
from handgrad.optim.clip import clip_grad_norm
from handgrad.optim.lr_scheduler import *  # noqa: F403 (every schedule, as torch.optim has them)
from handgrad.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecay,
    LRScheduler,
    StepLR,
)
from handgrad.optim.optimizer import Optimizer
from handgrad.optim.rmsprop import RMSprop
from handgrad.optim.sgd import SGD

OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {  # the classes, by command-line name
    "sgd": SGD,
    "adagrad": Adagrad,
    "rmsprop": RMSprop,
    "adam": Adam,
    "adamw": AdamW,
}

SCHEDULES: dict[str, type[LRScheduler]] = {
    "step": StepLR,
    "exponential": ExponentialLR,
    "cosine": CosineAnnealingLR,
    "inverse_time": InverseTimeDecay,
}
"""The schedules the command line offers by name (tools/recipe.py sets their arguments)."""

__all__ = [
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "Optimizer",
    "OPTIMIZERS",
    *lr_scheduler.__all__,
    "SCHEDULES",
    "lr_scheduler",
    "clip_grad_norm",
]
