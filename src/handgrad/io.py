"""Model files and checkpoints.

A model file is safetensors: the state_dict's tensors (a tied tensor once), and in its
metadata the architecture as JSON
(``{"type": "Sequential", "layers": [{"type": "Linear", "in_features": 4, ...}]}``).
Loading rebuilds the architecture from the registry of Module classes (handgrad.registry):
no pickle, and nothing is built but a registered Module class with its saved arguments. A
class of the user's (``"type": "mypackage.models:Block"``) is imported by its module name
when it is not defined yet. Writes go to a temporary file that replaces the target only when
complete.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from handgrad import registry
from handgrad.errors import ArgumentTypeError, InputError, StateDictError
from handgrad.module import Module
from handgrad.optim import OPTIMIZERS, LRScheduler, Optimizer

FORMAT = "handgrad-model-1"
CHECKPOINT_FORMAT = "handgrad-checkpoint-1"


# ---- architecture <-> JSON ------------------------------------------------------------------
def architecture(model: Module) -> dict[str, Any]:
    """The JSON-able description of model that ``build`` turns back into a module:
    ``{"type": <registered name>, **config()}``, module-valued config entries described the
    same way, and a module met again (one module at two places) as ``{"same_as": k}``, the
    k-th module described (0 is model itself)."""
    seen: dict[int, int] = {}

    def describe(value: Any) -> Any:
        if isinstance(value, Module):
            if id(value) in seen:
                return {"same_as": seen[id(value)]}
            seen[id(value)] = len(seen)
            name = registry.saved_name(type(value))
            if registry.classes().get(name) is not type(value):
                raise ArgumentTypeError(
                    f"save: {type(value).__qualname__} cannot be saved: only classes defined at "
                    "a module's top level can be found again by hg.load"
                )
            return {"type": name, **{k: describe(v) for k, v in value.config().items()}}
        if isinstance(value, (list, tuple)):
            return [describe(v) for v in value]
        if isinstance(value, dict):
            return {k: describe(v) for k, v in value.items()}
        return value

    return describe(model)


def build(spec: dict[str, Any]) -> Module:
    """A fresh module from an architecture dict (weights drawn without touching the global RNG)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise InputError(f"expected a module description with a 'type', got {spec!r}")
    built: list[Module | None] = []

    def make(value: Any) -> Any:
        if isinstance(value, list):
            return [make(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "same_as" in value and len(value) == 1:
            k = value["same_as"]
            if not isinstance(k, int) or not 0 <= k < len(built):
                raise InputError(f"a module description refers to module {k!r}, which is not there")
            return built[k]  # (numbered before its children, as saved)
        if "type" not in value:
            return {k: make(v) for k, v in value.items()}
        cls = registry.lookup(value["type"])
        slot = len(built)
        built.append(None)  # numbered before its children, as saved
        config = {k: make(v) for k, v in value.items() if k != "type"}
        try:
            built[slot] = cls.from_config(config)  # type: ignore[attr-defined]
        except TypeError as exc:
            raise InputError(f"bad arguments for {value['type']}: {exc}") from None
        return built[slot]

    with torch.random.fork_rng(devices=[]):
        model = make(spec)
    if not isinstance(model, Module):
        raise InputError(f"{spec['type']} is not a handgrad Module")
    return model


# ---- safetensors bytes, written atomically ------------------------------------------------------
def atomic_write(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write data to path through a temporary file in the same folder, then rename it:
    an interrupted write never leaves a half file where a good one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _write(path: str | os.PathLike[str], tensors: dict[str, Tensor], meta: dict[str, str]) -> Path:
    from safetensors.torch import save as safetensors_bytes

    path = Path(path)
    data = safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, meta)
    return atomic_write(path, data)


def _read(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, with errors that name the file."""
    from safetensors.torch import load as safetensors_load

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileNotFoundError(f"load: cannot read {path}: {exc.strerror}") from None
    problem = f"load: {path} is not a handgrad {kind} file"
    if len(data) < 8:
        raise InputError(f"{problem} (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise InputError(f"{problem} (truncated: header says {n} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + n])
        tensors = safetensors_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(f"{problem} (damaged or truncated: {exc})") from None
    meta = header.get("__metadata__") or {}
    return tensors, meta


def _architecture_from(meta: dict[str, str], path: Path, key: str) -> dict[str, Any]:
    if key not in meta:
        raise InputError(
            f"load: {path} is a safetensors file without handgrad's architecture (a foreign file?)"
        )
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError:
        raise InputError(f"load: {path} has a damaged architecture record") from None


def _untied(model: Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The state_dict with each tensor once, and {key: first key} for the others: a tensor at
    several places (tied weights) is stored once, and the tie is written down."""
    first: dict[int, str] = {}
    tensors, tied = {}, {}
    for k, t in model.state_dict().items():
        if id(t) in first:
            tied[k] = first[id(t)]
        else:
            first[id(t)] = k
            tensors[k] = t
    return tensors, tied


def _retie(model: Module, tied: dict[str, str]) -> None:
    """Make each tied key hold the same tensor as its first key (a tie between tensors of
    different modules; modules saved once are tied already)."""
    state = model.state_dict()
    for key, source in tied.items():
        if key not in state or source not in state:
            raise StateDictError(
                f"the file ties {key!r} to {source!r}, which the model does not have"
            )
        if state[key] is not state[source]:
            owner, _, name = key.rpartition(".")
            setattr(model.get_submodule(owner), name, state[source])


def _rebuild(
    spec: dict[str, Any], state: dict[str, Tensor], tied: dict[str, str], path: Path
) -> Module:
    try:
        model = build(spec)
        floats = [t for t in state.values() if t.is_floating_point()]
        if floats:
            model.to(dtype=floats[0].dtype)
        _retie(model, tied)
        model.load_state_dict({**state, **{k: state[s] for k, s in tied.items() if s in state}})
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"load: {path}: {exc}") from None
    return model


def _tied_from(meta: dict[str, str], path: Path) -> dict[str, str]:
    try:
        tied = json.loads(meta.get("tied", "{}"))
    except json.JSONDecodeError:
        raise InputError(f"load: {path} has a damaged record of tied weights") from None
    if not isinstance(tied, dict):
        raise InputError(f"load: {path} has a damaged record of tied weights")
    return tied


# ---- public API ----------------------------------------------------------------------------------
def save(
    model: Module, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write model's weights and architecture to `path` (safetensors), atomically.

    A tensor at several places (tied weights, one module at two places) is stored once and
    tied again by load. `metadata` (JSON-able) is stored beside them; read_metadata reads it.
    """
    tensors, tied = _untied(model)
    meta = {
        "format": FORMAT,
        "architecture": json.dumps(architecture(model)),
        "user": json.dumps(metadata or {}),
    }
    if tied:
        meta["tied"] = json.dumps(tied)
    return _write(path, tensors, meta)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `metadata` given to save() (an empty dict if none was)."""
    _, meta = _read(path, "model")
    try:
        return dict(json.loads(meta.get("user", "{}")))
    except (json.JSONDecodeError, TypeError, ValueError):
        raise InputError(f"read_metadata: {path} has damaged metadata") from None


def load(path: str | os.PathLike[str], device: torch.device | str | None = None) -> Module:
    """Rebuild the model saved at `path`, in eval mode (fit() switches to training itself).

    The weights keep their saved dtype; `device` moves them.
    """
    tensors, meta = _read(path, "model")
    p = Path(path)
    model = _rebuild(_architecture_from(meta, p, "architecture"), tensors, _tied_from(meta, p), p)
    model.eval()
    return model.to(device) if device is not None else model


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Module,
    optimizer: Optimizer,
    epoch: int,
    scheduler: LRScheduler | None = None,
) -> Path:
    """Model, optimizer state, epoch, schedule and RNG state: enough to resume exactly."""
    untied, tied = _untied(model)
    tensors = {f"model.{k}": v for k, v in untied.items()}
    opt_state = optimizer.state_dict()
    for i, s in opt_state["state"].items():
        tensors.update({f"optimizer.{i}.{k}": v for k, v in s.items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "architecture": json.dumps(architecture(model)),
        "epoch": str(int(epoch)),
        "optimizer": json.dumps(
            {"type": type(optimizer).__name__, "param_groups": opt_state["param_groups"]},
            default=float,  # a tensor lr
        ),
        "scheduler": json.dumps(None if scheduler is None else scheduler.state_dict()),
    }
    if tied:
        meta["tied"] = json.dumps(tied)
    return _write(path, tensors, meta)


def load_checkpoint(
    path: str | os.PathLike[str],
    model: Module | None = None,
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
) -> dict[str, Any]:
    """Restore a checkpoint into `model`/`optimizer`/`scheduler` (or build the model).

    Returns {"model", "optimizer", "epoch"}; the global RNG is restored too, so a resumed fit
    with `initial_epoch=epoch` follows the uninterrupted run.
    """
    p = Path(path)
    tensors, meta = _read(p, "checkpoint")
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"load_checkpoint: {p} is not a handgrad checkpoint")
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    tied = _tied_from(meta, p)
    if model is None:
        model = _rebuild(_architecture_from(meta, p, "architecture"), state, tied, p)
    else:
        try:
            model.load_state_dict({**state, **{k: state[s] for k, s in tied.items() if s in state}})
        except (ValueError, KeyError) as exc:
            raise InputError(f"load_checkpoint: {p}: {exc}") from None
    info = json.loads(meta["optimizer"])
    per_param: dict[int, dict[str, Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optimizer."):
            _, i, name = k.split(".", 2)
            per_param.setdefault(int(i), {})[name] = v
    if "param_groups" in info:
        opt_state: dict[str, Any] = {"state": per_param, "param_groups": info["param_groups"]}
    else:  # written before parameter groups: one group
        states = [per_param.get(i, {}) for i in range(info["num_params"])]
        opt_state = {"hyperparameters": info["hyperparameters"], "state": states}
    if optimizer is None:
        params = list(model.parameters())
        groups = info.get("param_groups", [{"params": range(len(params))}])
        optimizer = OPTIMIZERS[info["type"].lower()](
            [{"params": [params[i] for i in g["params"]]} for g in groups]
        )
    optimizer.load_state_dict(opt_state)
    sched_state = json.loads(meta.get("scheduler", "null"))
    if scheduler is not None and sched_state is not None:
        scheduler.load_state_dict(sched_state)
    torch.set_rng_state(tensors["rng.cpu"])
    return {"model": model, "optimizer": optimizer, "epoch": int(meta["epoch"])}
