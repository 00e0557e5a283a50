"""Optimizer: torch.optim.Optimizer's bookkeeping, without its compute.

Parameter groups, per-group hyperparameters, per-parameter state and the state_dict format
are torch.optim's, so code written against torch.optim runs unchanged:

    opt = SGD([{"params": weights, "weight_decay": 1e-4}, {"params": biases}], lr=0.1)
    opt.param_groups[1]["lr"]        # 0.1: the constructor's value fills what a group omits
    opt.state[p]["momentum_buffer"]  # state is keyed by the parameter tensor
    opt.state_dict()                 # {"state": {0: {...}}, "param_groups": [{..., "params": [0]}]}

A subclass passes its hyperparameters as ``defaults`` and writes ``_step_group``, which runs
its per-parameter update (optim/sgd.py, adagrad.py, rmsprop.py, adam.py) or, with foreach=True
and in graph mode, the multi-tensor kernel of the same update (optim/multi_tensor.py).
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from itertools import chain
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import Tensor

from handgrad.errors import InputError
from handgrad.mode import compiling
from handgrad.optim.checks import check_param_group, check_params

# A hyperparameter: a Python number, or a 0-d tensor (a tensor lr; graph mode's device
# scalars), which torch's ops take wherever they take a number. torch's stubs type those
# arguments as numbers only, so to mypy a Scalar is a float.
if TYPE_CHECKING:
    Scalar = float
else:
    Scalar = Union[float, Tensor]  # noqa: UP007 (runtime alias)
Params = Iterable[Any]  # tensors, (name, tensor) pairs, or dicts {'params': [...], 'lr': ...}
Run = tuple[list[Tensor], list[Tensor], list[dict[str, Any]], Scalar]  # see Optimizer._runs


def scalar_dtype() -> torch.dtype:
    """The dtype of a "step" count: float64 when that is the default dtype, else float32."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def real(t: Tensor) -> Tensor:
    """A complex tensor as its (..., 2) real view, as torch.optim steps complex parameters."""
    return torch.view_as_real(t) if torch.is_complex(t) else t


def capturing() -> bool:
    """Whether a CUDA graph is being captured on the current stream."""
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


class Optimizer:
    """Holds param_groups (a list of dicts) and state (a dict keyed by parameter)."""

    positional: tuple[str, ...] = ()  # the constructor's hyperparameters, in its order
    # What torch's __setstate__ fills into a loaded group that lacks it (an older state_dict);
    # these can differ from the constructor's defaults (SGD's fused: None built, False loaded).
    setstate_defaults: dict[str, Any] = {}

    # The capture-safe step (see step()): off by default; training/graph.py turns it on.
    _device_scalars = False
    _mask: Tensor | None = None  # graph mode: a device 0/1 flag that multiplies every lr

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self._check_hyperparameters(defaults)  # the constructor's arguments first, as torch
        self.defaults = defaults
        check_params(self._name, params)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._counts: dict[Tensor, int] = {}  # each state["step"], mirrored on the host
        self._offsets: dict[Tensor, int] = {}  # compiled steps: see freeze_runs
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

    @property
    def lr(self) -> Any:
        """The first group's learning rate; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, lr: float) -> None:
        for group in self.param_groups:
            group["lr"] = lr

    @property
    def params(self) -> list[Tensor]:
        """Every parameter, group after group."""
        return [p for group in self.param_groups for p in group["params"]]

    # ---- groups -----------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group {'params': [...], 'lr': ..., ...}; what it omits comes from defaults."""
        checked = check_param_group(self._name, param_group)  # {'params': [...]} (and names)
        param_group.update(checked)
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
        hyperparameters are the group's numbers and each parameter's step count is mirrored on
        the host, so the numbers are torch.optim's single-tensor ones exactly. In graph mode
        (``device_scalars``) lr and momentum / betas are 0-d tensors on the parameters'
        device, so that a captured step replays with the current values:
        ``load_hyperparameters()`` writes group["lr"] & co. into them before each replay.
        """
        self._opt_called = True  # a schedule stepped before this warns, as torch's does
        loss = closure() if closure is not None else None
        if self._device_scalars and not (capturing() or compiling()):  # else loaded before
            self.load_hyperparameters()
        for i, group in enumerate(self.param_groups):
            scalars = self._scalars(i) if self._device_scalars else self._group_scalars(group)
            self._step_group(group, scalars)
        return loss

    def _step_group(self, group: dict[str, Any], scalars: dict[str, Any]) -> None:
        """Update the group's parameters; `scalars`: lr & co. (``_hyperparameters``), the
        group's own values or, in graph mode, 0-d device tensors."""
        raise NotImplementedError

    @staticmethod
    def _with_grad(group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        """The group's parameters that have a .grad (the others are skipped), and their .grad."""
        params, grads = [], []
        for p in group["params"]:
            g = p.grad
            if g is not None:
                params.append(p)
                grads.append(g)
        return params, grads

    def _momentum_on(self, group: dict[str, Any], states: list[dict[str, Any]]) -> bool:
        """Whether the group keeps momentum buffers (its momentum is not 0). In a compiled
        step: whether the first parameter has one (the eager first step made them), so that
        a schedule cycling the momentum (OneCycleLR) does not recompile the step."""
        if compiling() and states:
            return "momentum_buffer" in states[0]
        return bool(group["momentum"] != 0)

    def _multi_tensor(self, group: dict[str, Any]) -> bool:
        """Whether the group takes the multi-tensor update (optim/multi_tensor.py): with
        foreach=True, and always in graph mode (one launch per list, not one per parameter);
        else the per-parameter reference update."""
        return self._device_scalars or bool(group.get("foreach"))

    # ---- graph mode: hyperparameters and step counts as device tensors ------------------------
    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        """The group values a schedule may change, by name (a subclass adds momentum/betas);
        a new dict each call."""
        return {"lr": group["lr"]}

    def _group_scalars(self, group: dict[str, Any]) -> dict[str, Any]:
        """_hyperparameters as given, a one-element tensor as a 0-d one (torch's _to_scalar)."""
        scalars = self._hyperparameters(group)  # a new dict, read once a step
        for k, v in scalars.items():
            if isinstance(v, Tensor):
                scalars[k] = v.reshape(())
        return scalars

    def _scalars(self, i: int) -> dict[str, Any]:
        """Group i's scalars: 0-d views of its device tensors (float64, made once: their
        addresses stay fixed). The tensors are (1,): torch.compile takes a 0-d float64 input
        for a Python number, and traces the step twice."""
        while len(self._hyper) <= i:
            group = self.param_groups[len(self._hyper)]
            device = group["params"][0].device
            self._loaded.append({})
            self._hyper.append(
                {
                    k: torch.zeros(1, dtype=torch.float64, device=device)
                    for k in self._hyperparameters(group)
                }
            )
            self._fill(len(self._hyper) - 1)
        h: dict[str, Any] = {k: t.reshape(()) for k, t in self._hyper[i].items()}
        if self._mask is not None:  # a masked step: lr·0 (the non-finite guard)
            h["lr"] = h["lr"] * self._mask.reshape(())
        return h

    def _fill(self, i: int) -> None:
        """Group i's values into its device tensors: a launch each, not a sync, so a number
        that is already there is not written again (this runs before every replay)."""
        loaded = self._loaded[i]
        for k, v in self._group_scalars(self.param_groups[i]).items():
            t = self._hyper[i][k]
            if isinstance(v, Tensor):
                t.copy_(v.reshape(1))
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
        """state["step"] += 1 on its device; the new count t from the host's mirror (read
        from the tensor once, after load_state_dict)."""
        state["step"] += 1
        return self._mirror(p, state)

    def _runs(
        self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> list[Run]:
        """_count for a list, every state["step"] += 1 in one call; then the parameters in
        runs of equal counts, each with its count t (one run in practice; a parameter that
        missed steps makes another): the host's number, or in graph mode the run's device
        tensor (a captured step replays with the current count)."""
        if not params:
            return []
        torch._foreach_add_([s["step"] for s in states], 1)
        by_count: dict[int, list[int]] = {}
        for i, (p, s) in enumerate(zip(params, states)):
            n = self._offsets.get(p, 0) if compiling() else self._mirror(p, s)
            by_count.setdefault(n, []).append(i)
        runs: list[Run] = []
        for n, run in by_count.items():
            t = states[run[0]]["step"] if self._device_scalars else n
            runs.append(
                ([params[i] for i in run], [grads[i] for i in run], [states[i] for i in run], t)
            )
        return runs

    def freeze_runs(self) -> None:
        """Before a compiled step (hg.compile_step): the runs of _runs, kept by each count's
        offset from the smallest. The compiled step counts on the device only (a host number
        that changes every step would recompile it every step); while every parameter steps
        each time, the offsets, and so the runs, stay those of now."""
        counts = {
            p: self._counts[p] if p in self._counts else int(s["step"])  # the host's count
            for p, s in self.state.items()
            if "step" in s
        }
        low = min(counts.values(), default=0)
        self._offsets = {p: n - low for p, n in counts.items()}

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
            for group in self.param_groups:
                for p in group["params"]:
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
            for name, default in {**self.defaults, **self.setstate_defaults}.items():
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

    def __repr__(self) -> str:
        text = self._name + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"


def _cast(p: Tensor, name: str, v: Any) -> Any:
    """A saved state value onto p's device (and p's dtype, except the step count), copied.
    A step count saved as a number (an older torch) becomes a tensor, as torch's
    __setstate__ makes it."""
    if name == "step" and isinstance(v, (int, float)):
        return torch.tensor(float(v), dtype=scalar_dtype())
    if not isinstance(v, Tensor):
        return copy.deepcopy(v)
    if name == "step":
        return v.clone()
    if p.is_floating_point():
        return v.to(dtype=p.dtype, device=p.device).clone()
    return v.to(device=p.device).clone()
