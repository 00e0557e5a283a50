"""gradcheck: compare a hand-written backward with torch.autograd and with finite differences.

This file is a reference tool, like the tests: it is the one place in the package allowed to
call torch.autograd (docs/design.md: the oracle may use it; the compute path may not).

It checks three kinds of thing, in float64 copies (what is passed in is not changed):
- an op pair ``(forward, backward)``: ``forward(*inputs) -> (y, cache)`` and
  ``backward(dy, cache) -> grads``, one gradient per leading input (a tensor for input 0 alone,
  None for an input it does not differentiate); a tuple y takes a tuple dy;
- a handgrad module, or any object with ``forward``/``backward``: ``backward(*dy)`` returns
  dL/dinput (a tuple for several inputs), or sets ``self.dinputs`` (the nnfs convention);
  parameter gradients are read from ``param.grad`` or an attribute ``d<name>``;
- a loss: ``backward()`` (no required argument) returns dL/dpred.
Every floating input that backward returns a gradient for is checked, and every parameter.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from handgrad.comparison import GradcheckReport, GradComparison, _compare, _finite_difference
from handgrad.errors import ArgumentTypeError, InputError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.loss import Loss

__all__ = ["gradcheck", "GradcheckReport", "GradComparison"]


# ---- what is being checked ----------------------------------------------------------------------
def _is_pair(obj: Any) -> bool:
    return isinstance(obj, tuple) and len(obj) == 2 and all(callable(f) for f in obj)


def _is_loss(obj: Any) -> bool:
    """A loss's backward needs no argument; a module's takes the output gradient(s)."""
    if isinstance(obj, Module):
        return isinstance(obj, Loss)
    try:
        params = inspect.signature(obj.backward).parameters.values()
    except (TypeError, ValueError, AttributeError):  # no backward: gradcheck says so
        return False
    required = [
        p
        for p in params
        if (p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
        or p.kind == p.VAR_POSITIONAL
    ]
    return not required


def _check_protocol(obj: Any) -> None:
    """A Module that writes its own backward, and names one tensor (or None) per parameter."""
    if not isinstance(obj, Module):
        return
    name = type(obj).__name__
    if type(obj).backward is Module.backward:
        raise ArgumentTypeError(f"gradcheck: {name} defines no backward(); write the one to check")
    for m in obj.modules():
        for n in m.parameter_names + m.buffer_names:
            v = getattr(m, n, None)
            if v is not None and not isinstance(v, Tensor):
                raise ArgumentTypeError(
                    f"gradcheck: {type(m).__name__}.{n} is a {type(v).__name__}, not a tensor: "
                    "each name in parameter_names holds one tensor (one name per tensor)"
                )


def _is_float(x: Any) -> bool:
    return isinstance(x, Tensor) and x.is_floating_point()


def _float64(x: Any) -> Any:
    """Floating tensors (also inside a list or tuple) as float64 copies; the rest as given."""
    if _is_float(x):
        return x.detach().to(torch.float64).clone()
    if isinstance(x, (list, tuple)) and any(_is_float(t) for t in x):
        return [_float64(t) for t in x]
    return x


def _tensors_of(x: Any) -> list[Tensor]:
    """The floating tensors an input holds: itself, or a list's items."""
    if _is_float(x):
        return [x]
    if isinstance(x, list):
        return [t for t in x if _is_float(t)]
    return []


def _each_tensor(xs: list[Any], fn: Callable[[Tensor], Tensor]) -> list[Any]:
    """fn applied to each floating tensor of a list input; its other items as they are."""
    return [fn(t) if _is_float(t) else t for t in xs]


def _as_tuple(v: Any) -> tuple[Any, ...]:
    return v if isinstance(v, tuple) else (v,)


def _leaves(v: Any) -> list[Any]:
    """The items of a nested tuple output, in order (LSTM's (y, (h, c)) gives y, h, c)."""
    return [x for item in v for x in _leaves(item)] if isinstance(v, tuple) else [v]


def _objective(out: Any, g: tuple[Any, ...] | None) -> Tensor:
    """Σ g ⊙ out over the outputs (out.sum() for a loss): its gradient is backward's."""
    outs = _leaves(_as_tuple(out))
    if g is None:
        return sum(o.sum() for o in outs)
    return sum((o * gi).sum() for o, gi in zip(outs, _leaves(g)) if gi is not None)


def _upstream(out: Any, seed: int) -> tuple[Any, ...]:
    """A random gradient for each floating output, in the output's (nested) structure."""
    gen = torch.Generator(device="cpu").manual_seed(seed + 1)

    def draw(o: Any) -> Any:
        if isinstance(o, tuple):
            return tuple(draw(x) for x in o)
        if _is_float(o):
            return torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o.device)
        return None

    return tuple(draw(o) for o in _as_tuple(out))


# ---- parameters of a module-like object ---------------------------------------------------------
def _tensor_attributes(obj: Any, names: Sequence[str] | None) -> list[str]:
    """Names of the parameters to check: given, declared, or the object's float tensors."""
    if names is not None:
        return list(names)
    if callable(getattr(obj, "named_parameters", None)):
        return [n for n, _ in obj.named_parameters()]
    names = []
    for n, v in vars(obj).items():  # tensors held directly, or in a list or dict ("weights.0")
        if _is_float(v):
            names.append(n)
        elif isinstance(v, (list, tuple, dict)):
            items = v.items() if isinstance(v, dict) else enumerate(v)
            names += [f"{n}.{k}" for k, t in items if _is_float(t) and "." not in str(k)]
    return names


def _step(obj: Any, part: str) -> Any:
    """obj's child, attribute, list item or dict value called `part`."""
    if isinstance(obj, dict):
        return obj[part]
    if isinstance(obj, (list, tuple)):
        return obj[int(part)]
    children = dict(obj.children()) if callable(getattr(obj, "children", None)) else {}
    return children[part] if part in children else getattr(obj, part)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = _step(obj, part)
    return obj


def _set(owner: Any, part: str, value: Any) -> None:
    if isinstance(owner, dict):
        owner[part] = value
    elif isinstance(owner, list):
        owner[int(part)] = value
    else:
        setattr(owner, part, value)


def _replace(obj: Any, names: list[str], fn: Callable[[Tensor], Tensor]) -> None:
    """Set each named parameter to fn(itself); a tensor at several places stays shared."""
    modules = getattr(obj, "named_modules", None)
    places = (
        [(m, n) for _, m in modules(remove_duplicate=False) for n in m.parameter_names]
        if callable(modules)
        else []
    )
    for dotted in names:
        *path, last = dotted.split(".")
        places.append((_get(obj, ".".join(path)) if path else obj, last))
    new: dict[int, Tensor] = {}
    made: set[int] = set()
    for owner, attr in places:
        t = _step(owner, attr)
        if not isinstance(t, Tensor) or id(t) in made:
            continue
        if id(t) not in new:
            new[id(t)] = fn(t)
            made.add(id(new[id(t)]))
        _set(owner, attr, new[id(t)])


def _work_copy(obj: Any, names: list[str]) -> Any:
    work = copy.deepcopy(obj)
    if isinstance(work, Module):
        work.to(torch.float64)  # parameters and buffers, ties kept; drops the copied caches
    _replace(work, names, lambda t: t.detach().to(torch.float64))
    return work


def _run(obj: Any, inputs: Sequence[Any], seed: int) -> Any:
    """obj.forward(*inputs) with the same random draws (dropout masks) every time."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return obj.forward(*inputs)


# ---- the check ----------------------------------------------------------------------------------
@dataclass
class _Subject:
    """What is checked: its name, its parameters' names, how to run its forward on given
    inputs in a work copy, and how to make a fresh float64 work copy (None for an op pair)."""

    name: str
    params: list[str]
    run: Callable[[Sequence[Any], Any], Any]
    fresh: Callable[[], Any]


@dataclass
class _Hand:
    """What the hand-written backward gave: the upstream gradient it was fed (None for a
    loss), one gradient per leading input, and each parameter's gradient."""

    g: tuple[Tensor | None, ...] | None
    inputs: tuple[Any, ...]
    params: dict[str, Any]


def gradcheck(
    obj: Any,
    *inputs: Any,
    params: Sequence[str] | None = None,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    eps: float = 1e-6,
    finite_differences: bool = True,
    max_fd_elements: int = 200,
    seed: int = 0,
    autograd: bool = True,
) -> GradcheckReport:
    """Check obj's backward in float64 against autograd and against finite differences.

    Args:
        obj: an op pair (forward, backward); a handgrad Module or Loss; or any object with
            forward/backward.
        inputs: forward's arguments (a loss takes (pred, target)); floating ones become float64.
        params: attribute names of the parameters, when they cannot be discovered.
        max_fd_elements: finite differences probe at most this many elements per tensor.
        autograd, finite_differences: which references to compare against (at least one).
    The report passes only when every comparison ran and agreed and it compared at least one
    element; a reference that could not run (autograd on a forward it cannot trace) is an
    ERROR, never a pass. Finite differences are wrong at kinks (ReLU at 0); keep inputs away
    from them.
    """
    if not (autograd or finite_differences):
        raise InputError("gradcheck: autograd=False and finite_differences=False compare nothing")
    pair = _is_pair(obj)
    missing = [m for m in ("forward", "backward") if not callable(getattr(obj, m, None))]
    if not pair and missing:
        lacks = " and ".join(f"{m}()" for m in missing)
        raise ArgumentTypeError(
            f"gradcheck: {type(obj).__name__} has no forward/backward methods: it lacks {lacks}"
        )
    if not pair:
        _check_protocol(obj)
    xs = [_float64(x) for x in inputs]
    named = getattr(obj, "named_parameters", None)
    has_params = bool(params) or (callable(named) and any(True for _ in named()))
    if not any(_tensors_of(x) for x in xs) and not has_params:  # an Embedding checks its weight
        raise ArgumentTypeError("gradcheck: expected at least one floating-point tensor input")
    if pair:
        subject, hand = _pair_subject(obj, seed), _hand_pair(obj, xs, seed)
    else:
        subject = _module_subject(obj, _tensor_attributes(obj, params), seed)
        hand = _hand_module(subject.fresh(), xs, subject.params, seed)
    checked = [i for i in range(min(len(hand.inputs), len(xs))) if _tensors_of(xs[i])]
    report = GradcheckReport(subject.name)
    if autograd:
        _against_autograd(report, subject, xs, checked, hand, atol, rtol)
    if finite_differences:
        _against_finite_differences(
            report, subject, xs, checked, hand, atol, rtol, eps, max_fd_elements
        )
    return report


def _pair_subject(pair: tuple[Callable[..., Any], Callable[..., Any]], seed: int) -> _Subject:
    forward, backward = pair

    def run(args: Sequence[Any], _work: Any) -> Any:
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the same dropout mask on every call
            return forward(*args)[0]

    return _Subject(f"({forward.__name__}, {backward.__name__})", [], run, fresh=lambda: None)


def _module_subject(obj: Any, names: list[str], seed: int) -> _Subject:
    def run(args: Sequence[Any], work: Any) -> Any:
        with no_cache():
            return _run(work, args, seed)

    name = repr(obj) if type(obj).__repr__ is not object.__repr__ else type(obj).__name__
    return _Subject(name, names, run, fresh=lambda: _work_copy(obj, names))


def _hand_pair(
    pair: tuple[Callable[..., Any], Callable[..., Any]], xs: list[Any], seed: int
) -> _Hand:
    forward, backward = pair
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out, cache = forward(*xs)
    g = _upstream(out, seed)
    grads = backward(g if isinstance(out, tuple) else g[0], cache)
    return _Hand(g, _as_tuple(grads), {})


def _hand_module(work: Any, xs: list[Any], names: list[str], seed: int) -> _Hand:
    """Run the object's own forward and backward."""
    for n in names:
        _get(work, n).grad = None
    out = _run(work, xs, seed)
    if not all(_is_float(o) for o in _leaves(_as_tuple(out))):
        raise ArgumentTypeError(f"gradcheck: forward returned {type(out).__name__}, not tensors")
    g = None if _is_loss(work) else _upstream(out, seed)
    dx = work.backward() if g is None else work.backward(*g)
    if dx is None:
        dx = next(
            (getattr(work, a) for a in ("dinputs", "dx", "grad_input") if hasattr(work, a)), None
        )
    grads: dict[str, Any] = {}
    for n in names:
        p = _get(work, n)
        *path, last = n.split(".")
        owner = _get(work, ".".join(path)) if path else work
        named = getattr(owner, "d" + last, None) if not isinstance(owner, (list, dict)) else None
        grads[n] = p.grad if p.grad is not None else named
    return _Hand(g, _as_tuple(dx), grads)


def _items(
    xs: list[Any], checked: list[int], hand: _Hand, names: list[str], work: Any
) -> list[tuple[str, Any, Tensor]]:
    """(name, hand-written gradient, the tensor it is for) of every checked input tensor and
    every parameter (the parameters as they are in `work`)."""
    items = []
    for i in checked:
        tensors = _tensors_of(xs[i])
        if isinstance(xs[i], list):
            given = hand.inputs[i]
            grads = list(given) if isinstance(given, (list, tuple)) else [None] * len(tensors)
            items += [(f"input {i}[{j}]", h, t) for j, (h, t) in enumerate(zip(grads, tensors))]
        else:
            items.append((f"input {i}", hand.inputs[i], tensors[0]))
    return items + [(n, hand.params[n], _get(work, n)) for n in names]


def _against_autograd(
    report: GradcheckReport,
    subject: _Subject,
    xs: list[Any],
    checked: list[int],
    hand: _Hand,
    atol: float,
    rtol: float,
) -> None:
    """torch.autograd's gradient of Σ g ⊙ forward(...) for every checked tensor."""

    def leaf(t: Tensor) -> Tensor:
        return t.detach().clone().requires_grad_(True)

    args = [
        x if i not in checked else _each_tensor(x, leaf) if isinstance(x, list) else leaf(x)
        for i, x in enumerate(xs)
    ]
    work = subject.fresh()
    if subject.params:
        _replace(work, subject.params, leaf)
    items = _items(args, checked, hand, subject.params, work)
    try:
        out = subject.run(args, work)
        auto = torch.autograd.grad(
            _objective(out, hand.g), [t for _, _, t in items], allow_unused=True
        )
    except Exception as exc:  # the forward may not be autograd-friendly: never a pass
        report.comparisons.append(
            GradComparison(
                "all",
                "autograd",
                False,
                note=f"could not run: {type(exc).__name__}: {exc} "
                "(pass autograd=False to rely on finite differences alone)",
                error=True,
            )
        )
        return
    for (name, h, t), a in zip(items, auto):
        ref = torch.zeros_like(t) if a is None else a
        report.comparisons.append(_compare(name, "autograd", h, ref, atol, rtol))


def _against_finite_differences(
    report: GradcheckReport,
    subject: _Subject,
    xs: list[Any],
    checked: list[int],
    hand: _Hand,
    atol: float,
    rtol: float,
    eps: float,
    limit: int,
) -> None:
    """Central differences of Σ g ⊙ forward(...) at up to `limit` elements of each tensor."""
    args = [
        _each_tensor(x, Tensor.clone) if isinstance(x, list) else x.clone() if _is_float(x) else x
        for x in xs
    ]
    work = subject.fresh()

    def f() -> float:
        return float(_objective(subject.run(args, work), hand.g))

    for name, h, t in _items(args, checked, hand, subject.params, work):
        idx, est = _finite_difference(f, t, eps, limit)
        report.comparisons.append(
            _compare(name, "finite differences", h, est, atol, rtol, index=idx, shape=t.shape)
        )
