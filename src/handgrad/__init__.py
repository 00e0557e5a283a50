"""handgrad: neural networks from scratch on PyTorch tensors, every backward written by hand.

The math is in ``handgrad.ops`` (op pairs) and ``handgrad.nn`` (modules); every module class
(``hg.Linear``, ``hg.ReLU``, ... and any layer added later) is served from the registry.
"""

import importlib
from typing import Any

from handgrad import (
    check,
    data,
    errors,
    init,
    kernels,
    nn,
    ops,
    optim,
    preprocessing,
    registry,
    threads,
    training,
)
from handgrad.data import datasets
from handgrad.interop import from_torch, to_torch
from handgrad.io import load, load_checkpoint, save, save_checkpoint
from handgrad.mode import is_caching, no_cache
from handgrad.module import Module
from handgrad.nn.penalty import L2, L1Penalty
from handgrad.optim.clip import clip_grad_norm
from handgrad.training import (
    EarlyStopping,
    History,
    ModelCheckpoint,
    compile_step,
    evaluate,
    fit,
    predict,
)

__version__ = "0.1.0"

_LAZY = {"plot": "handgrad.plot", "lab": "handgrad.tools.lab", "bench": "handgrad.tools.bench"}


def __getattr__(name: str) -> Any:
    """hg.<ModuleClass> from the registry; hg.plot, hg.lab and hg.bench imported on first use."""
    classes = registry.public()
    if name in classes:
        return classes[name]
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    raise AttributeError(f"module 'handgrad' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *registry.public(), *_LAZY])


__all__ = [
    *registry.public(),
    "Module",
    "L2",
    "L1Penalty",
    "no_cache",
    "is_caching",
    "fit",
    "compile_step",
    "evaluate",
    "predict",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "save",
    "load",
    "save_checkpoint",
    "load_checkpoint",
    "to_torch",
    "from_torch",
    "clip_grad_norm",
    "check",
    "data",
    "datasets",
    "init",
    "kernels",
    "nn",
    "ops",
    "optim",
    "training",
    "errors",
    "preprocessing",
    "threads",
]
