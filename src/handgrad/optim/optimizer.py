"""Optimizer: torch.optim.Optimizer's bookkeeping, without its compute.

Parameter groups, per-group hyperparameters, per-parameter state and the state_dict format
are torch.optim's, so code written against torch.optim runs unchanged:

    opt = SGD([{"params": weights, "weight_decay": 1e-4}, {"params": biases}], lr=0.1)
    opt.param_groups[1]["lr"]        # 0.1: the constructor's value fills what a group omits
    opt.state[p]["momentum_buffer"]  # state is keyed by the parameter tensor
    opt.state_dict()                 # {"state": {0: {...}}, "param_groups": [{..., "params": [0]}]}

A subclass passes its hyperparameters as ``defaults`` and writes ``_step_group(group)``.
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any, Union

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError

# Group keys that a learning-rate schedule writes (torch's names); not hyperparameters.
SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def scalar_dtype() -> torch.dtype:
    """The dtype of a "step" count: float64 when that is the default dtype, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def value(x: float | Tensor) -> float:
    """A hyperparameter as a Python number (torch accepts a one-element tensor for lr)."""
    return float(x)


Scalar = Union[float, Tensor]  # noqa: UP007 (runtime alias): a Python number or a 0-d tensor


def axpy(x: Tensor, a: Scalar, y: Tensor) -> Tensor:
    """x ← x + a·y in place; a is a Python number (torch's fused kernel) or a 0-d tensor."""
    return x.add_(y, alpha=a) if not isinstance(a, Tensor) else x.add_(y * a)


def addcdiv(x: Tensor, a: Scalar, num: Tensor, den: Tensor) -> Tensor:
    """x ← x + a·num/den in place (torch's addcdiv_ order: (a·num)/den)."""
    if not isinstance(a, Tensor):
        return x.addcdiv_(num, den, value=a)
    return x.add_((num * a).div_(den))


def capturing() -> bool:
    """Whether a CUDA graph is being captured on the current stream."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


class Optimizer:
    """Holds param_groups (a list of dicts) and state (a dict keyed by parameter)."""

    positional: tuple[str, ...] = ()  # the constructor's hyperparameters, in its order

    # The capture-safe step (see step()): off by default; training/graph.py turns it on.
    _device_scalars = False
    _mask: Tensor | None = None  # graph mode: a device 0/1 flag that multiplies every lr

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self._check_hyperparameters(defaults)  # the constructor's arguments first, as torch
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise ArgumentTypeError(
                f"{self._name}: params argument given to the optimizer should be an iterable "
                f"of Tensors or dicts, but got {torch.typename(params)}"
            )
        if not isinstance(params, Iterable):
            raise ArgumentTypeError(
                f"{self._name}: params argument given to the optimizer should be an iterable "
                f"of Tensors or dicts, but got {type(params).__name__}"
            )
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._counts: dict[Tensor, int] = {}  # each state["step"], mirrored on the host
        self._hyper: list[dict[str, Tensor]] = []  # graph mode: each group's scalars on device
        self._loaded: list[dict[str, Any]] = []  # the numbers last written into them
        groups = list(params)
        if not groups:
            raise InputError(f"{self._name}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ---- what existing handgrad code reads: optimizer.lr, optimizer.weight_decay, ... -------
    @property
    def lr(self) -> Any:
        """The first group's learning rate; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr

    def __getattr__(self, name: str) -> Any:
        """optimizer.momentum and the like: the first group's value (read only)."""
        defaults = self.__dict__.get("defaults", {})
        if name in defaults and self.__dict__.get("param_groups"):
            return self.__dict__["param_groups"][0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def params(self) -> list[Tensor]:
        """Every parameter, group after group."""
        return [p for group in self.param_groups for p in group["params"]]

    # ---- groups -----------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group {'params': [...], 'lr': ..., ...}; what it omits comes from defaults."""
        if not isinstance(param_group, dict):
            raise ArgumentTypeError(
                f"{self._name}: param_group must be a dict, but got {type(param_group)}"
            )
        if "params" not in param_group:
            raise InputError(f"{self._name}: a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise ArgumentTypeError(
                f"{self._name}: optimizer parameters need to be organized in ordered "
                "collections, but the ordering of tensors in sets will change between runs. "
                "Please use a list instead."
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        param_group["params"] = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise InputError(
                    f"{self._name}: all optimizer params should be with/without names. "
                    "Some param names are missing"
                )
            param_group["param_names"] = names
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise ArgumentTypeError(
                    f"{self._name}: optimizer can only optimize Tensors, but one of the params "
                    f"is {torch.typename(p)}"
                )
            if not p.is_leaf:
                raise InputError(f"{self._name}: can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        self._check_hyperparameters(param_group)
        params = param_group["params"]
        if len(params) != len(set(params)):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )
        seen: set[Tensor] = set()
        for group in self.param_groups:
            seen.update(group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                kind = "with names" if "param_names" in param_group else "without names"
                raise InputError(
                    f"{self._name}: all optimizer param groups should be with/without names. "
                    f"cannot add param group {kind} to the optimizer"
                )
        if not seen.isdisjoint(params):
            raise InputError(
                f"{self._name}: some parameters appear in more than one parameter group"
            )
        self.param_groups.append(param_group)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """A subclass checks the constructor's hyperparameters and each group's, in torch's
        order, with torch's messages."""

    # ---- the step ----------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a .grad (the others are skipped, as torch
        does); `closure` re-evaluates the loss first and its value is returned.

        No step reads a tensor's value on the host (no device sync). By default the
        hyperparameters are Python numbers and each parameter's step count is mirrored on the
        host, so the numbers are torch.optim's exactly. In graph mode (``device_scalars``) the
        learning rate, momentum / betas and the bias corrections are 0-d tensors on the
        parameters' device, so that a captured step replays with the current values:
        ``load_hyperparameters()`` writes group["lr"] & co. into them before each replay.
        """
        self._opt_called = True  # a schedule stepped before this warns, as torch's does
        loss = closure() if closure is not None else None
        if self._device_scalars and not capturing():
            self.load_hyperparameters()
        for i, group in enumerate(self.param_groups):
            self._step_group(group, self._scalars(i) if self._device_scalars else None)
        return loss

    def _step_group(self, group: dict[str, Any], h: dict[str, Tensor] | None) -> None:
        """Update the group's parameters; `h`: the group's scalars as tensors (graph mode),
        or None (Python numbers from the group)."""
        raise NotImplementedError

    # ---- graph mode: hyperparameters and step counts as device tensors ------------------------
    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group values a schedule may change, by name (a subclass adds momentum/betas)."""
        return {"lr": group["lr"]}

    def _scalars(self, i: int) -> dict[str, Tensor]:
        """Group i's device tensors (float64, 0-d), made once: their addresses stay fixed."""
        while len(self._hyper) <= i:
            group = self.param_groups[len(self._hyper)]
            device = group["params"][0].device
            self._loaded.append({})
            self._hyper.append(
                {
                    k: torch.zeros((), dtype=torch.float64, device=device)
                    for k in self._hyperparameters(group)
                }
            )
            self._fill(len(self._hyper) - 1)
        h = self._hyper[i]
        if self._mask is not None:  # a masked step: lr·0 (the non-finite guard)
            h = dict(h, lr=h["lr"] * self._mask)
        return h

    def _fill(self, i: int) -> None:
        """Group i's values into its device tensors: a launch each, not a sync, so a number
        that is already there is not written again (this runs before every replay)."""
        loaded = self._loaded[i]
        for k, v in self._hyperparameters(self.param_groups[i]).items():
            t = self._hyper[i][k]
            if isinstance(v, Tensor):
                t.copy_(v)
            elif loaded.get(k) != v:
                t.fill_(v)
                loaded[k] = v

    def load_hyperparameters(self) -> None:
        """Write every group's lr (and momentum / betas) into its device tensors."""
        for i in range(len(self.param_groups)):
            if i < len(self._hyper):
                self._fill(i)
            else:
                self._scalars(i)

    def device_scalars(self, on: bool = True) -> None:
        """Graph mode on: step counts move to their parameter's device and the update reads
        its scalars from device tensors (a captured step replays with the current lr). Off:
        back to Python numbers (the host's step counts are read again once)."""
        self._device_scalars = on
        self._counts.clear()
        if on:
            for p, s in self.state.items():
                if isinstance(s.get("step"), Tensor):
                    s["step"] = s["step"].to(p.device)
            self.load_hyperparameters()

    def _new_step(self, p: Tensor) -> Tensor:
        """A step count of 0 (torch keeps it on the CPU; graph mode on p's device)."""
        self._counts[p] = 0
        device = p.device if self._device_scalars else None
        return torch.zeros((), dtype=scalar_dtype(), device=device)

    def _count(self, p: Tensor, state: dict[str, Any]) -> int:
        """state["step"] += 1 on its device; the new count from the host's mirror (read
        from the tensor once, after load_state_dict)."""
        state["step"] += 1
        return self._mirror(p, state)

    def _count_all(self, params: list[Tensor], states: list[dict[str, Any]]) -> list[int]:
        """_count for a list (optim/foreach.py): every state["step"] += 1 in one call."""
        torch._foreach_add_([s["step"] for s in states], 1)
        return [self._mirror(p, s) for p, s in zip(params, states)]

    def _mirror(self, p: Tensor, state: dict[str, Any]) -> int:
        """The host's copy of p's step count, one more than before (it has just stepped)."""
        n = self._counts.get(p)
        n = int(state["step"]) if n is None else n + 1
        self._counts[p] = n
        return n

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's .grad: to None (torch's default), or to zeros in place (one
        foreach call for all of them, as torch's: one kernel launch on a GPU, not one each)."""
        if set_to_none:
            for p in self.params:
                p.grad = None
            return
        grads = [p.grad for p in self.params if p.grad is not None]
        if grads:
            torch._foreach_zero_(grads)

    # ---- state_dict in torch.optim's format -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{'state': {id: {name: tensor}}, 'param_groups': [{..., 'params': [id, ...]}]};
        ids count the parameters in group order, as torch's. Tensors are copies."""
        ids: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                ids.setdefault(id(p), len(ids))
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [ids[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {
            ids[id(p)]: {k: v.clone() if isinstance(v, Tensor) else v for k, v in s.items()}
            for p, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what state_dict() returned (also torch.optim's own state_dict of the same
        class, and handgrad's format from before parameter groups)."""
        if "hyperparameters" in state_dict and "param_groups" not in state_dict:
            state_dict = self._from_single_group_format(state_dict)
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict:
            raise InputError(f"{self._name}.load_state_dict: expected a dict with param_groups")
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise InputError(
                f"{self._name}.load_state_dict: loaded state dict has a different number of "
                "parameter groups"
            )
        for group, saved in zip(self.param_groups, saved_groups):
            if len(group["params"]) != len(saved["params"]):
                raise InputError(
                    f"{self._name}.load_state_dict: loaded state dict contains a parameter "
                    "group that doesn't match the size of optimizer's group"
                )
            self._check_same_class(saved)
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in self.param_groups),
            )
        )
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, s in state_dict["state"].items():
            if k in id_map:
                p = id_map[k]
                state[p] = {name: _cast(p, name, v) for name, v in s.items()}
            else:
                state[k] = s
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            for name, default in self.defaults.items():
                saved.setdefault(name, default)  # keys torch added later (maximize, foreach)
            if isinstance(saved.get("betas"), list):
                saved["betas"] = tuple(saved["betas"])  # a state that went through JSON
        self.state = state
        self.param_groups = saved_groups
        self._counts.clear()
        self._hyper, self._loaded = [], []

    def _check_same_class(self, saved: dict[str, Any]) -> None:
        """A state saved by another optimizer class lacks this one's hyperparameters: refuse it
        rather than step with another algorithm's numbers."""
        missing = [k for k in self.positional if k not in saved]
        if missing:
            raise InputError(
                f"{self._name}.load_state_dict: the saved parameter group has no "
                f"{', '.join(missing)}: it was saved by another optimizer class, not {self._name}"
            )

    def _from_single_group_format(self, old: dict[str, Any]) -> dict[str, Any]:
        """{'hyperparameters': {...}, 'state': [per-parameter dicts]} (handgrad before
        parameter groups) as torch's format: one group."""
        params = self.params
        state = old["state"]
        if not isinstance(state, list) or len(state) != len(params):
            raise InputError(
                f"{self._name}.load_state_dict: expected state for {len(params)} parameters, "
                f"got {len(state) if isinstance(state, list) else type(state).__name__}"
            )
        group = {**self.defaults, **old["hyperparameters"], "params": list(range(len(params)))}
        return {"state": {i: s for i, s in enumerate(state) if s}, "param_groups": [group]}

    def _refuse(self, option: str, value: Any, detail: str) -> None:
        if value:
            raise NotSupportedError(self._name, f"{option}={value!r}", detail)

    def __repr__(self) -> str:
        text = self._name + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"


def _cast(p: Tensor, name: str, v: Any) -> Any:
    """A saved state value onto p's device (and p's dtype, except the step count), copied."""
    if not isinstance(v, Tensor):
        return copy.deepcopy(v)
    if name == "step":
        return v.clone()
    if p.is_floating_point():
        return v.to(dtype=p.dtype, device=p.device).clone()
    return v.to(device=p.device).clone()


def check_lr(owner: str, lr: Any) -> None:
    """lr: a number >= 0, or a one-element tensor (torch accepts both)."""
    if isinstance(lr, Tensor):
        if lr.numel() != 1:
            raise InputError(f"{owner}: Tensor lr must be 1-element")
    elif not isinstance(lr, (int, float)) or isinstance(lr, bool):
        raise ArgumentTypeError(f"{owner}: lr must be a number, got {type(lr).__name__}")
    if not float(lr) >= 0.0:
        raise InputError(f"{owner}: Invalid learning rate: {lr}")


def check_nonnegative(owner: str, **values: Any) -> None:
    """torch's checks: 'Invalid <what> value: <v>' for a negative (or NaN) hyperparameter."""
    labels = {"eps": "epsilon"}
    for name, v in values.items():
        if not isinstance(v, (int, float, Tensor)) or isinstance(v, bool):
            raise ArgumentTypeError(f"{owner}: {name} must be a number, got {type(v).__name__}")
        if not float(v) >= 0.0:
            raise InputError(f"{owner}: Invalid {labels.get(name, name)} value: {v}")
