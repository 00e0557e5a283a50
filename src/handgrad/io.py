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

import glob
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from handgrad import registry
from handgrad.data.preprocessing import PREFIX as PREPROCESSING_PREFIX
from handgrad.data.preprocessing import Preprocessing
from handgrad.data.scaling import Scaling
from handgrad.errors import ArgumentTypeError, InputError, StateDictError
from handgrad.module import Module, require_module
from handgrad.optim import OPTIMIZERS, LRScheduler, Optimizer

FORMAT = "handgrad-model-1"
CHECKPOINT_FORMAT = "handgrad-checkpoint-1"


# ---- architecture <-> JSON ------------------------------------------------------------------
def architecture(model: Module) -> dict[str, Any]:
    """The JSON-able description of model that ``build`` turns back into a module:
    ``{"type": <registered name>, **config()}``, module-valued config entries described the
    same way, and a module met again (one module at two places) as ``{"same_as": k}``, the
    k-th module described (0 is model itself). A tensor argument that the module keeps in its
    state_dict (a loss's class weights) is ``{"tensor": shape, "dtype": ...}``: its values are
    saved with the state and loaded into it."""
    seen: dict[int, int] = {}

    def describe(value: Any, in_state: bool = False, where: str = "") -> Any:
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
            state = value.state_dict()
            config = {k: describe(v, k in state, f"{name}.{k}") for k, v in value.config().items()}
            return {"type": name, **config}
        if isinstance(value, Tensor):  # a buffer given to the constructor (a loss's weight)
            if not in_state:
                raise ArgumentTypeError(f"save: {where} is a tensor that is not saved with it")
            return {"tensor": list(value.shape), "dtype": str(value.dtype).removeprefix("torch.")}
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
        if set(value) == {"tensor", "dtype"}:  # a buffer's place: load_state_dict fills it
            dtype = getattr(torch, str(value["dtype"]), None)
            if not isinstance(dtype, torch.dtype) or not isinstance(value["tensor"], list):
                raise InputError(f"a module description has a damaged tensor entry {value!r}")
            return torch.zeros([int(n) for n in value["tensor"]], dtype=dtype)
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
    an interrupted write never leaves a half file where a good one was.

    The temporary file (``.NAME.PID.XXXX.tmp``) is removed on any error, Ctrl-C included; one
    left by a killed process (its PID gone) is removed by the next write of the same name.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    if path.exists() and not path.is_file():
        raise InputError(f"cannot write {path}: not a regular file (a device or pipe)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
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
    remove_stale_temporaries(path)
    return path


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writes of `path` left (``.NAME.PID.XXXX.tmp``
    whose process is gone). Only such temporaries: never a model or a checkpoint."""
    path = Path(path)
    removed = []
    prefix = f".{path.name}."
    for entry in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = entry.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process `pid` may still run: a number no process can have (too large for the
    OS, OverflowError) or one we may not signal counts as alive, so its files are kept."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


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


def is_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a handgrad checkpoint (read from its header only)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(n, 1 << 24)))
        return bool(header.get("__metadata__", {}).get("format") == CHECKPOINT_FORMAT)
    except (OSError, struct.error, ValueError, AttributeError):
        return False


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


def _check_against_architecture(
    spec: dict[str, Any], state: dict[str, Tensor], tied: dict[str, str], path: Path
) -> None:
    """Build the architecture on torch's meta device (no memory) and compare every tensor's
    shape with the file's, so a file claiming Linear(30000, 30000) with small tensors is
    refused before 3.6 GB are allocated."""
    try:
        with torch.device("meta"):
            skeleton = build(spec)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"load: {path}: {exc}") from None
    except Exception:  # noqa: BLE001 a class that cannot be built on meta: checked after building
        return
    for key, t in skeleton.state_dict().items():
        stored = state.get(tied.get(key, key))
        if stored is None:
            raise StateDictError(f"load: {path} lacks the tensor {key!r} its architecture has")
        if tuple(stored.shape) != tuple(t.shape):
            raise StateDictError(
                f"load: {path}: {key!r} has shape {tuple(stored.shape)} in the file but "
                f"{tuple(t.shape)} in its architecture"
            )


def _rebuild(
    spec: dict[str, Any], state: dict[str, Tensor], tied: dict[str, str], path: Path
) -> Module:
    _check_against_architecture(spec, state, tied, path)
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
    model: Module,
    path: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
    preprocessing: Preprocessing | Scaling | None = None,
) -> Path:
    """Write model's weights and architecture to `path` (safetensors), atomically.

    A tensor at several places (tied weights, one module at two places) is stored once and
    tied again by load. `metadata` (JSON-able) is stored beside them; read_metadata reads it.
    `preprocessing` (default: the model's own ``model.preprocessing``, if it has one) is
    stored beside the network as tensors ``__preprocessing__.*`` and JSON, never in it; a
    bundled dataset's ``Scaling`` (``Dataset.scaling``: digits' / 16) as the JSON ``scaling``.
    """
    require_module("save", "model", model)
    tensors, tied = _untied(model)
    meta = {
        "format": FORMAT,
        "architecture": json.dumps(architecture(model)),
        "user": json.dumps(metadata or {}),
    }
    if tied:
        meta["tied"] = json.dumps(tied)
    own = getattr(model, "preprocessing", None)
    if preprocessing is None and isinstance(own, (Preprocessing, Scaling)):
        preprocessing = own
    if isinstance(preprocessing, Scaling):
        meta["scaling"] = preprocessing.to_json()
    elif preprocessing is not None:
        prep_tensors, prep_meta = preprocessing.state()
        tensors = {**tensors, **prep_tensors}
        meta["preprocessing"] = json.dumps(prep_meta)
    return _write(path, tensors, meta)


def _split_preprocessing(
    tensors: dict[str, Tensor], meta: dict[str, str], path: Path
) -> tuple[dict[str, Tensor], Preprocessing | Scaling | None]:
    """The network's tensors, and the preprocessing or scaling stored beside them (None if
    none: a file written before scalings were saved, or a model trained in Python)."""
    net = {k: v for k, v in tensors.items() if not k.startswith(PREPROCESSING_PREFIX)}
    if "scaling" in meta:
        try:
            record = json.loads(meta["scaling"])
        except json.JSONDecodeError:
            raise InputError(f"load: {path} has a damaged scaling record") from None
        try:
            return net, Scaling.from_state(record)
        except InputError as exc:
            raise InputError(f"load: {path}: {exc}") from None
    if "preprocessing" not in meta:
        return net, None
    try:
        prep_meta = json.loads(meta["preprocessing"])
    except json.JSONDecodeError:
        raise InputError(f"load: {path} has a damaged preprocessing record") from None
    try:
        return net, Preprocessing.from_state(tensors, prep_meta)
    except InputError as exc:
        raise InputError(f"load: {path}: {exc}") from None


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `metadata` given to save() (an empty dict if none was)."""
    _, meta = _read(path, "model")
    try:
        return dict(json.loads(meta.get("user", "{}")))
    except (json.JSONDecodeError, TypeError, ValueError):
        raise InputError(f"read_metadata: {path} has damaged metadata") from None


def load(path: str | os.PathLike[str], device: torch.device | str | None = None) -> Module:
    """Rebuild the model saved at `path`, in eval mode (fit() switches to training itself).

    The weights keep their saved dtype; `device` moves them. Every tensor's shape is checked
    against the architecture before any is allocated. ``model.preprocessing`` is the
    preprocessing saved with it (``model.preprocessing.predict(model, table)`` applies it),
    a bundled dataset's Scaling (which ``hg.predict`` applies to raw features), or None.
    """
    tensors, meta = _read(path, "model")
    p = Path(path)
    tensors, prep = _split_preprocessing(tensors, meta, p)
    model = _rebuild(_architecture_from(meta, p, "architecture"), tensors, _tied_from(meta, p), p)
    # None, or a Preprocessing: not a Module, so not a child, not in state_dict, not in to_torch
    # (a model with a child of that name keeps its child)
    if not isinstance(getattr(model, "preprocessing", None), Module):
        model.preprocessing = prep  # type: ignore[attr-defined]
    model.eval()
    return model.to(device) if device is not None else model


def save_checkpoint(
    path: str | os.PathLike[str],
    model: Module,
    optimizer: Optimizer,
    epoch: int,
    scheduler: LRScheduler | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Model, optimizer state, epoch, schedule and RNG state: enough to resume exactly.
    `metadata` (JSON-able: the run's history so far) comes back from load_checkpoint.
    Written atomically; a temporary file is never left behind (see atomic_write)."""
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
        "user": json.dumps(metadata or {}),
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

    Returns {"model", "optimizer", "epoch", "metadata"}; the global RNG is restored too, so a
    resumed fit with `initial_epoch=epoch` follows the uninterrupted run.
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
    try:
        user = json.loads(meta.get("user", "{}"))
    except json.JSONDecodeError:
        raise InputError(f"load_checkpoint: {p} has damaged metadata") from None
    return {"model": model, "optimizer": optimizer, "epoch": int(meta["epoch"]), "metadata": user}
