"""Model files and torch interop.

A model file is safetensors: the state_dict's tensors, and in its metadata the architecture
as JSON (``{"type": "Sequential", "layers": [{"type": "Linear", "in_features": 4, ...}]}``).
Loading rebuilds the architecture from a fixed table of handgrad classes: no pickle, no code
runs. Writes go to a temporary file that replaces the target only when complete.
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

from handgrad import activations, conv, layers, neuron
from handgrad.module import Module, Sequential
from handgrad.optim import OPTIMIZERS, Optimizer
from handgrad.schedule import LRScheduler

FORMAT = "handgrad-model-1"
CHECKPOINT_FORMAT = "handgrad-checkpoint-1"

LAYERS: dict[str, type[Module]] = {
    cls.__name__: cls
    for cls in (
        layers.Linear,
        layers.Dropout,
        layers.Flatten,
        layers.BatchNorm1d,
        neuron.Neuron,
        *activations.ACTIVATIONS.values(),
        activations.Softmax,
        activations.LogSoftmax,
        conv.Conv1d,
        conv.Conv2d,
        conv.MaxPool1d,
        conv.MaxPool2d,
        conv.AvgPool1d,
        conv.AvgPool2d,
        conv.Unflatten,
    )
}


def register_layer(cls: type[Module]) -> type[Module]:
    """Let save/load know a Module class (its config() must rebuild it). Usable as a decorator."""
    LAYERS[cls.__name__] = cls
    return cls


# ---- architecture <-> JSON ------------------------------------------------------------------
def architecture(model: Module) -> dict[str, Any]:
    """The JSON-able description of model that ``build`` turns back into a module."""
    if isinstance(model, Sequential):
        return {"type": "Sequential", "layers": [architecture(m) for m in model]}
    name = type(model).__name__
    if LAYERS.get(name) is not type(model):
        raise TypeError(
            f"save: {name} is not a known layer; register it with handgrad.io.register_layer"
        )
    return {"type": name, **model.config()}


def build(spec: dict[str, Any]) -> Module:
    """A fresh module from an architecture dict (weights drawn without touching the global RNG)."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"expected a layer description with a 'type', got {spec!r}")
    kind = spec["type"]
    if kind == "Sequential":
        return Sequential(*[build(s) for s in spec.get("layers", [])])
    if kind not in LAYERS:
        raise ValueError(f"unknown layer type {kind!r}")
    args = {k: v for k, v in spec.items() if k != "type"}
    with torch.random.fork_rng(devices=[]):
        try:
            return LAYERS[kind](**args)
        except TypeError as exc:
            raise ValueError(f"bad arguments for {kind}: {exc}") from None


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
        raise ValueError(f"{problem} (only {len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{problem} (truncated: header says {n} bytes, file has {len(data)})")
    try:
        header = json.loads(data[8 : 8 + n])
        tensors = safetensors_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{problem} (damaged or truncated: {exc})") from None
    meta = header.get("__metadata__") or {}
    return tensors, meta


def _architecture_from(meta: dict[str, str], path: Path, key: str) -> dict[str, Any]:
    if key not in meta:
        raise ValueError(
            f"load: {path} is a safetensors file without handgrad's architecture (a foreign file?)"
        )
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError:
        raise ValueError(f"load: {path} has a damaged architecture record") from None


def _rebuild(spec: dict[str, Any], state: dict[str, Tensor], path: Path) -> Module:
    try:
        model = build(spec)
        floats = [t for t in state.values() if t.is_floating_point()]
        if floats:
            model.to(dtype=floats[0].dtype)
        model.load_state_dict(state)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"load: {path}: {exc}") from None
    return model


# ---- public API ----------------------------------------------------------------------------------
def save(
    model: Module, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None
) -> Path:
    """Write model's weights and architecture to `path` (safetensors), atomically.

    `metadata` (JSON-able) is stored beside them; read it back with read_metadata.
    """
    meta = {
        "format": FORMAT,
        "architecture": json.dumps(architecture(model)),
        "user": json.dumps(metadata or {}),
    }
    return _write(path, dict(model.state_dict()), meta)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `metadata` given to save() (an empty dict if none was)."""
    _, meta = _read(path, "model")
    try:
        return dict(json.loads(meta.get("user", "{}")))
    except (json.JSONDecodeError, TypeError, ValueError):
        raise ValueError(f"read_metadata: {path} has damaged metadata") from None


def load(path: str | os.PathLike[str], device: torch.device | str | None = None) -> Module:
    """Rebuild the model saved at `path`, in eval mode (fit() switches to training itself).

    The weights keep their saved dtype; `device` moves them.
    """
    tensors, meta = _read(path, "model")
    model = _rebuild(_architecture_from(meta, Path(path), "architecture"), tensors, Path(path))
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
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_state = optimizer.state_dict()
    for i, s in enumerate(opt_state["state"]):
        tensors.update({f"optimizer.{i}.{k}": v for k, v in s.items()})
    tensors["rng.cpu"] = torch.get_rng_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "architecture": json.dumps(architecture(model)),
        "epoch": str(int(epoch)),
        "optimizer": json.dumps(
            {
                "type": type(optimizer).__name__,
                "hyperparameters": opt_state["hyperparameters"],
                "num_params": len(opt_state["state"]),
            }
        ),
        "scheduler": json.dumps(None if scheduler is None else scheduler.state_dict()),
    }
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
        raise ValueError(f"load_checkpoint: {p} is not a handgrad checkpoint")
    state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    if model is None:
        model = _rebuild(_architecture_from(meta, p, "architecture"), state, p)
    else:
        try:
            model.load_state_dict(state)
        except (ValueError, KeyError) as exc:
            raise ValueError(f"load_checkpoint: {p}: {exc}") from None
    info = json.loads(meta["optimizer"])
    if optimizer is None:
        optimizer = OPTIMIZERS[info["type"].lower()](
            model.parameters(), lr=info["hyperparameters"]["lr"]
        )
    per_param: list[dict[str, Tensor]] = [{} for _ in range(info["num_params"])]
    for k, v in tensors.items():
        if k.startswith("optimizer."):
            _, i, name = k.split(".", 2)
            per_param[int(i)][name] = v
    optimizer.load_state_dict({"hyperparameters": info["hyperparameters"], "state": per_param})
    sched_state = json.loads(meta.get("scheduler", "null"))
    if scheduler is not None and sched_state is not None:
        scheduler.load_state_dict(sched_state)
    torch.set_rng_state(tensors["rng.cpu"])
    return {"model": model, "optimizer": optimizer, "epoch": int(meta["epoch"])}


# ---- torch interop (torch.nn is imported only inside these two functions) -----------------------
_SAME_NAME = (
    "Linear",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Sigmoid",
    "Tanh",
    "SiLU",
    "Softplus",
    "GELU",
    "Identity",
    "Softmax",
    "LogSoftmax",
    "Dropout",
    "Flatten",
    "BatchNorm1d",
    "Conv1d",
    "Conv2d",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "Unflatten",
)


def _torch_conv_config(m: Any) -> dict[str, Any]:
    if m.groups != 1 or m.padding_mode != "zeros":
        raise TypeError(
            f"from_torch: {type(m).__name__} with groups or padding_mode is not supported"
        )
    return {
        "in_channels": m.in_channels,
        "out_channels": m.out_channels,
        "kernel_size": m.kernel_size,
        "stride": m.stride,
        "padding": m.padding,
        "dilation": m.dilation,
        "bias": m.bias is not None,
    }


def _torch_pool_config(m: Any) -> dict[str, Any]:
    unsupported = (
        getattr(m, "ceil_mode", False)
        or getattr(m, "return_indices", False)
        or getattr(m, "dilation", 1) not in (1, (1,), (1, 1))
        or not getattr(m, "count_include_pad", True)
        or getattr(m, "divisor_override", None)
    )
    if unsupported:
        raise TypeError(
            f"from_torch: {type(m).__name__} options beyond kernel_size, stride and "
            "padding are not supported"
        )
    return {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding}


def to_torch(model: Module) -> Any:
    """The equivalent torch.nn module with copies of the weights.

    Neuron becomes nn.Linear(in, 1), which gives the same (N, 1) output for a batch.
    """
    import torch.nn as nn

    if isinstance(model, Sequential):
        return nn.Sequential(*[to_torch(m) for m in model]).train(model.training)
    name = type(model).__name__
    if isinstance(model, neuron.Neuron):
        ref = nn.Linear(model.in_features, 1)
        ref.load_state_dict({"weight": model.weight[None].clone(), "bias": model.bias.clone()})
    elif name in _SAME_NAME:
        ref = getattr(nn, name)(**model.config())
        ref.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    else:
        raise TypeError(f"to_torch: torch.nn has no equivalent of {name}")
    p = next(iter(model.state_dict().values()), None)
    ref = ref.to(device=p.device, dtype=p.dtype) if p is not None and p.is_floating_point() else ref
    return ref.train(model.training)


def from_torch(module: Any) -> Module:
    """The equivalent handgrad module of a torch.nn module, with copies of its weights."""
    import torch.nn as nn

    if isinstance(module, nn.Sequential):
        return Sequential(*[from_torch(m) for m in module]).train(module.training)
    name = type(module).__name__
    if name not in _SAME_NAME or type(module) is not getattr(nn, name):
        raise TypeError(f"from_torch: handgrad has no equivalent of {name}")
    config = {
        "Linear": lambda m: {
            "in_features": m.in_features,
            "out_features": m.out_features,
            "bias": m.bias is not None,
        },
        "LeakyReLU": lambda m: {"negative_slope": m.negative_slope},
        "ELU": lambda m: {"alpha": m.alpha},
        "Softplus": lambda m: {"beta": m.beta, "threshold": m.threshold},
        "GELU": lambda m: {"approximate": m.approximate},
        "Softmax": lambda m: {"dim": -1 if m.dim is None else m.dim},
        "LogSoftmax": lambda m: {"dim": -1 if m.dim is None else m.dim},
        "Dropout": lambda m: {"p": m.p},
        "Flatten": lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim},
        "BatchNorm1d": lambda m: {
            "num_features": m.num_features,
            "eps": m.eps,
            "momentum": m.momentum,
            "affine": m.affine,
        },
        "Unflatten": lambda m: {"dim": m.dim, "unflattened_size": tuple(m.unflattened_size)},
        **dict.fromkeys(("Conv1d", "Conv2d"), _torch_conv_config),
        **dict.fromkeys(("MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d"), _torch_pool_config),
    }.get(name, lambda m: {})(module)
    mine = build({"type": name, **config})
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    floats = [t for t in state.values() if t.is_floating_point()]
    if floats:
        mine.to(device=floats[0].device, dtype=floats[0].dtype)
    mine.load_state_dict(state)
    return mine.train(module.training)
