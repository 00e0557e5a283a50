"""torch.optim.lr_scheduler's path: ``hg.optim.lr_scheduler.OneCycleLR`` is
``hg.optim.OneCycleLR``, so code written against torch needs only its imports changed."""

from handgrad.optim.compose import ChainedScheduler, SequentialLR
from handgrad.optim.cyclic import CosineAnnealingWarmRestarts, CyclicLR
from handgrad.optim.formula_schedules import (
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    InverseTimeDecay,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    PolynomialLR,
    StepLR,
)
from handgrad.optim.onecycle import OneCycleLR
from handgrad.optim.plateau import ReduceLROnPlateau
from handgrad.optim.scheduler_base import LRScheduler

__all__ = [
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
]
