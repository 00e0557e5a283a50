"""torch interop: to_torch / from_torch, the equivalent module in the other library.

A handgrad class names its torch.nn twin in ``torch_name`` (the registry finds it), and its
config() uses torch's constructor arguments, so the twin is built from the same arguments and
given copies of the same tensors. from_torch reads the arguments from the torch module's
attributes, then checks that they rebuild that module exactly: a torch option handgrad does
not have (groups, ceil_mode, inplace, ...) is refused by name, never dropped.

torch.nn is imported only inside these two functions: they build or read a torch.nn module
and compute nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from handgrad import registry
from handgrad.errors import HandgradError, NotSupportedError
from handgrad.module import Module
from handgrad.nn.containers import ModuleDict, ModuleList, Sequential
from handgrad.nn.linear import Neuron


def to_torch(model: Module) -> Any:
    """The equivalent torch.nn module with copies of the weights, in the same mode.

    Neuron becomes nn.Linear(in, 1), which gives the same (N, 1) output for a batch. A
    module at several places stays one module, so its twin is tied the same way.
    """
    import torch.nn as nn

    twins: dict[int, Any] = {}

    def convert(m: Module) -> Any:
        if id(m) in twins:
            return twins[id(m)]
        ref: Any
        if isinstance(m, Sequential):
            ref = nn.Sequential(OrderedDict((n, convert(c)) for n, c in m.children()))
        elif isinstance(m, ModuleList):
            ref = nn.ModuleList([convert(c) for c in m])
        elif isinstance(m, ModuleDict):
            ref = nn.ModuleDict({k: convert(c) for k, c in m.items()})
        elif isinstance(m, Neuron):
            ref = nn.Linear(m.in_features, 1)
            ref.load_state_dict({"weight": m.weight[None].clone(), "bias": m.bias.clone()})
        elif m.torch_name is not None and registry.public().get(type(m).__name__) is type(m):
            ref = _build(getattr(nn, m.torch_name), m.config(), "to_torch")
            ref.load_state_dict({k: v.clone() for k, v in m.state_dict().items()})
        else:
            raise NotSupportedError("to_torch", f"{type(m).__name__} (torch.nn has no equivalent)")
        p = next(iter(m.state_dict().values()), None)
        if p is not None and p.is_floating_point():
            ref = ref.to(device=p.device, dtype=p.dtype)
        if m.frozen and m.parameter_names:  # a frozen layer's twin gets no gradients either
            for t in ref.parameters(recurse=False):
                t.requires_grad_(False)
        twins[id(m)] = ref.train(m.training)
        return twins[id(m)]

    return convert(model)


def from_torch(module: Any) -> Module:
    """The equivalent handgrad module of a torch.nn module, with copies of its weights.

    Refused with a NotSupportedError (a TypeError) reading "not supported: <option>" when
    handgrad cannot build the same module: never a different one.
    """
    import torch.nn as nn

    twins: dict[int, Module] = {}

    def convert(m: Any) -> Module:
        if id(m) in twins:
            return twins[id(m)]
        name = type(m).__name__
        if isinstance(m, nn.Sequential):
            mine: Module = Sequential(OrderedDict((n, convert(c)) for n, c in m.named_children()))
        elif isinstance(m, nn.ModuleList):
            mine = ModuleList([convert(c) for c in m])
        elif isinstance(m, nn.ModuleDict):
            mine = ModuleDict({k: convert(c) for k, c in m.items()})
        else:
            cls = registry.torch_counterpart(name)
            if cls is None or type(m) is not getattr(nn, name, None):
                raise NotSupportedError("from_torch", f"{name} (handgrad has no equivalent)")
            config = cls.config_from_torch(m)  # type: ignore[attr-defined]
            try:
                mine = cls.from_config(config)  # type: ignore[attr-defined]
            except NotSupportedError as exc:  # an option the handgrad class refuses
                raise NotSupportedError(f"from_torch: {name}", exc.option, exc.detail) from None
            except HandgradError as exc:  # a value the handgrad class refuses
                raise NotSupportedError(f"from_torch: {name}", str(exc)) from None
            _check_same(m, _build(getattr(nn, name), mine.config(), "from_torch"))
            _copy_state(m, mine)
            own = list(m.parameters(recurse=False))
            if own and not any(t.requires_grad for t in own):  # frozen in torch: frozen here
                mine.freeze()
        twins[id(m)] = mine.train(m.training)
        return mine

    return convert(module)


def _build(cls: Any, config: dict[str, Any], where: str) -> Any:
    """cls(**config), a torch class refusing an argument reported by name."""
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise NotSupportedError(f"{where}: {cls.__name__}", f"{config} ({exc})") from None


def _check_same(original: Any, rebuilt: Any) -> None:
    """Refuse when the torch module has an option that handgrad's twin does not reproduce."""
    differ = []
    for key, value in vars(original).items():
        if key.startswith("_") or key == "training":
            continue
        other = getattr(rebuilt, key, None)
        if not _same(value, other):
            differ.append(f"{key}={value!r}")
    if differ:
        raise NotSupportedError(f"from_torch: {type(original).__name__}", ", ".join(differ))


def _same(a: Any, b: Any) -> bool:
    """Equal, counting an int and a tuple of that int as equal (kernel_size=2 vs (2, 2))."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) == isinstance(b, torch.Tensor)
    if isinstance(a, int) and isinstance(b, tuple):
        a = (a,) * len(b)
    if isinstance(b, int) and isinstance(a, tuple):
        b = (b,) * len(a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _copy_state(m: Any, mine: Module) -> None:
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    floats = [t for t in state.values() if t.is_floating_point()]
    if floats:
        mine.to(device=floats[0].device, dtype=floats[0].dtype)
    mine.load_state_dict(state)
