"""Containers: Sequential, ModuleList, ModuleDict (torch.nn's names and keys), Residual and
Ensemble.

A model with branches needs no container of its own: subclass Module, call the children in
``forward``, call their ``backward`` in reverse (docs/design.md#a-model-with-branches). A module
object may sit at several places (tied weights): its parameters are listed, and stepped, once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError, InvalidKeyError
from handgrad.module import Module


def _checked(owner: str, m: object, where: object) -> Module:
    if not isinstance(m, Module):
        raise ArgumentTypeError(
            f"{owner}: item {where} is {type(m).__name__}, not a handgrad Module"
        )
    return m


class Sequential(Module):
    """Chains modules: forward runs them in order, backward in reverse (the chain rule).

    ``Sequential(a, b, c)`` names its children "0", "1", "2" and
    ``Sequential(OrderedDict(name=module, ...))`` by the given names, as torch.nn. A module that
    returns a tuple feeds its items to the next module's inputs; backward likewise.
    """

    torch_name = "Sequential"

    def __init__(self, *args: Module | Mapping[str, Module]) -> None:
        named: list[tuple[str, Any]] = (
            list(args[0].items())
            if len(args) == 1 and isinstance(args[0], Mapping)
            else [(str(i), m) for i, m in enumerate(args)]
        )
        self.names = [str(n) for n, _ in named]
        self.layers: list[Module] = [_checked("Sequential", m, n) for n, m in named]

    def children(self) -> list[tuple[str, Module]]:
        return list(zip(self.names, self.layers))

    def config(self) -> dict[str, Any]:
        if self.names == [str(i) for i in range(len(self.layers))]:
            return {"layers": list(self.layers)}
        return {"layers": dict(zip(self.names, self.layers))}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Sequential:
        layers = config.get("layers", [])
        return cls(OrderedDict(layers)) if isinstance(layers, dict) else cls(*layers)

    def forward(self, *x: Any) -> Any:
        out: Any = x if len(x) != 1 else x[0]
        for layer in self.layers:
            out = layer(*out) if type(out) is tuple else layer(out)
        return out

    def backward(self, *dy: Any) -> Any:
        """dL/dx of a composition: each layer's backward, last to first."""
        grad: Any = dy if len(dy) != 1 else dy[0]
        for layer in reversed(self.layers):
            grad = layer.backward(*grad) if type(grad) is tuple else layer.backward(grad)
        return grad

    def backward_params(self, *dy: Any) -> None:
        """As backward, but the first layer skips dL/dx (fit uses this: data needs no grad)."""
        grad: Any = dy if len(dy) != 1 else dy[0]
        for layer in reversed(self.layers[1:]):
            grad = layer.backward(*grad) if type(grad) is tuple else layer.backward(grad)
        if self.layers:
            first = self.layers[0]
            first.backward_params(*grad) if type(grad) is tuple else first.backward_params(grad)

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(zip(self.names, self.layers))[i]))
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def append(self, module: Module) -> Sequential:
        self.layers.append(_checked("Sequential.append", module, len(self.layers)))
        self.names.append(str(len(self.names)))
        return self


class ModuleList(Module):
    """A list of modules whose parameters count as the owner's (keys "0.weight", ...).
    It has no forward: the owner decides how its items are called."""

    torch_name = "ModuleList"

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        self.items: list[Module] = []
        self.extend(modules or [])

    def children(self) -> list[tuple[str, Module]]:
        return [(str(i), m) for i, m in enumerate(self.items)]

    def config(self) -> dict[str, Any]:
        return {"modules": list(self.items)}

    def append(self, module: Module) -> ModuleList:
        self.items.append(_checked("ModuleList", module, len(self.items)))
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        self.items.insert(index, _checked("ModuleList", module, index))

    def __getitem__(self, i: int | slice) -> Any:
        return ModuleList(self.items[i]) if isinstance(i, slice) else self.items[i]

    def __setitem__(self, i: int, module: Module) -> None:
        self.items[i] = _checked("ModuleList", module, i)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.items)


class ModuleDict(Module):
    """A dict of modules by name (keys "name.weight", ...), in insertion order. No forward."""

    torch_name = "ModuleDict"

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        self.entries: dict[str, Module] = {}
        self.update(modules or {})

    def children(self) -> list[tuple[str, Module]]:
        return list(self.entries.items())

    def config(self) -> dict[str, Any]:
        return {"modules": dict(self.entries)}

    def update(self, modules: Mapping[str, Module]) -> None:
        for k, m in modules.items():
            self[k] = m

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise InvalidKeyError(
                f"ModuleDict: a key must be a non-empty string without '.', got {key!r}"
            )
        self.entries[key] = _checked("ModuleDict", module, repr(key))

    def __getitem__(self, key: str) -> Module:
        return self.entries[key]

    def __delitem__(self, key: str) -> None:
        del self.entries[key]

    def pop(self, key: str) -> Module:
        return self.entries.pop(key)

    def __contains__(self, key: object) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def keys(self) -> Any:
        return self.entries.keys()

    def values(self) -> Any:
        return self.entries.values()

    def items(self) -> Any:
        return self.entries.items()


class Residual(Module):
    """y = x + f(x);  dL/dx = dy + f.backward(dy): the identity path passes dy on unchanged and
    the two paths' gradients add. f must keep x's shape. Keys: "fn.<f's keys>"."""

    def __init__(self, fn: Module) -> None:
        self.fn = _checked("Residual", fn, "fn")

    def config(self) -> dict[str, Any]:
        return {"fn": self.fn}

    def forward(self, x: Tensor) -> Tensor:
        fx = self.fn(x)
        if not isinstance(fx, Tensor) or fx.shape != x.shape:
            raise InputError(
                f"Residual: fn must keep the input's shape {tuple(x.shape)}, "
                f"got {tuple(getattr(fx, 'shape', ())) or type(fx).__name__}"
            )
        return x + fx

    def backward(self, dy: Tensor) -> Tensor:
        return dy + self.fn.backward(dy)  # dL/dx = dy · 1 + dy · ∂f/∂x

    def backward_params(self, dy: Tensor) -> None:
        self.fn.backward_params(dy)  # f's parameters see dy; dL/dx is not needed


class Ensemble(Module):
    """y = (1/K) Σₖ fₖ(x): the mean of K members' outputs (for classifiers, of their logits);
    dL/dx = (1/K) Σₖ fₖ.backward(dy): each member sees dy/K. Keys: "members.<k>.<fₖ's keys>".

    Members are usually trained one by one, each from its own initial weights (a deep
    ensemble: ``handgrad train --ensemble K``), then joined; the mean is what predict uses.
    Every member must map x to outputs of one shape. torch.nn has no equivalent: to_torch
    refuses it.
    """

    def __init__(self, *members: Module) -> None:
        if not members:
            raise InputError("Ensemble: give at least one member module")
        self.members = ModuleList(_checked("Ensemble", m, i) for i, m in enumerate(members))

    def config(self) -> dict[str, Any]:
        return {"members": list(self.members)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Ensemble:
        return cls(*config["members"])

    def children(self) -> list[tuple[str, Module]]:
        return [("members", self.members)]

    def forward(self, x: Tensor) -> Tensor:
        outs = [m(x) for m in self.members]  # K × (N, ...)
        for k, out in enumerate(outs[1:], start=1):
            if not isinstance(out, Tensor) or out.shape != outs[0].shape:
                raise InputError(
                    f"Ensemble: member {k} gives {tuple(getattr(out, 'shape', ())) or type(out)}"
                    f", member 0 gives {tuple(outs[0].shape)}: members must agree"
                )
        return torch.stack(outs).mean(0)  # (N, ...)

    def backward(self, dy: Tensor) -> Tensor:
        share = dy / len(self.members)  # ∂y/∂fₖ = 1/K
        last, *others = reversed(self.members.items)  # backward in reverse, as the forwards ran
        dx = last.backward(share)
        for m in others:
            dx = dx + m.backward(share)  # the branches' gradients add
        return dx

    def backward_params(self, dy: Tensor) -> None:
        share = dy / len(self.members)
        for m in reversed(self.members.items):
            m.backward_params(share)  # each member's parameters; dL/dx is not needed
