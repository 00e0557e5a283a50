"""Optimizers (in order of increasing complexity) and learning-rate schedules, as torch.optim
and torch.optim.lr_scheduler name them."""

from handgrad.optim import lr_scheduler
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
from handgrad.optim.optimizers import OPTIMIZERS, SGD, Adagrad, Adam, AdamW, RMSprop

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
