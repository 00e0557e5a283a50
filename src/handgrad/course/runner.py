"""What the sandbox runs in its child process: import the student's file there, put the
reference in where asked, run the probe, and send back plain Python data.

Student code never runs in the grader's process: run_probe is the only entry to it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from handgrad.course import probes, reference
from handgrad.course.hidden import NotAttempted


def load(path: Path) -> Any:
    """Imports a task file by path, its folder first on sys.path (`from task_1_4 import ...`)."""
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Packed:
    """A tensor as plain Python data, so that it crosses the process boundary by pickling
    alone (torch would share its storage by a file descriptor that dies with the child)."""

    shape: tuple[int, ...]
    values: list[float]


def pack(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return Packed(tuple(value.shape), value.reshape(-1).tolist())
    if isinstance(value, (tuple, list)):
        return type(value)(pack(v) for v in value)
    if isinstance(value, dict):
        return {k: pack(v) for k, v in value.items()}
    return value


def unpack(value: Any) -> Any:
    if isinstance(value, Packed):
        return torch.tensor(value.values, dtype=torch.float64).reshape(value.shape)
    if isinstance(value, (tuple, list)):
        return type(value)(unpack(v) for v in value)
    if isinstance(value, dict):
        return {k: unpack(v) for k, v in value.items()}
    return value


def run_probe(path: str, task: str, seed: int, subs: dict[str, str]) -> Any:
    """In the sandbox's child: import the student's file, put the reference in for each name
    of `subs` ({name: task whose reference replaces it}), run the probe. Returns the outputs,
    or "not attempted"."""
    for file_task, classes in reference.CLASSES.items():  # a missing file: the reference's
        dep = f"task_{file_task.replace('.', '_')}"
        if not (Path(path).parent / f"{dep}.py").is_file():
            sys.modules[dep] = types.ModuleType(dep)
            for name, cls in classes.items():
                setattr(sys.modules[dep], name, cls)
    try:
        module = load(Path(path))
        for name, ref_task in subs.items():
            setattr(module, name, reference.reference_class(ref_task, name))
        return pack(probes.probe(task, module, seed))
    except NotAttempted:
        return "not attempted"
    except NotImplementedError:
        return "not attempted"
