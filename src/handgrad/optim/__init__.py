"""Optimizers (in order of increasing complexity) and learning-rate schedules, as torch.optim
and torch.optim.lr_scheduler name them."""

from handgrad.optim import lr_scheduler
from handgrad.optim.compose import ChainedScheduler, SequentialLR
from handgrad.optim.cyclic import CosineAnnealingWarmRestarts, CyclicLR
from handgrad.optim.onecycle import OneCycleLR
from handgrad.optim.optimizer import Optimizer
from handgrad.optim.optimizers import OPTIMIZERS, SGD, Adagrad, Adam, AdamW, RMSprop
from handgrad.optim.plateau import ReduceLROnPlateau
from handgrad.optim.schedule import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecay,
    LambdaLR,
    LinearLR,
    LRScheduler,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)

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
    "LRScheduler",
    "LambdaLR",
    "MultiplicativeLR",
    "StepLR",
    "MultiStepLR",
    "ConstantLR",
    "LinearLR",
    "ExponentialLR",
    "PolynomialLR",
    "CosineAnnealingLR",
    "InverseTimeDecay",
    "SequentialLR",
    "ChainedScheduler",
    "OneCycleLR",
    "CyclicLR",
    "CosineAnnealingWarmRestarts",
    "ReduceLROnPlateau",
    "SCHEDULES",
    "lr_scheduler",
]
