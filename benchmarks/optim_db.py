"""torch's own optimizer test inputs run against hg.optim, beside torch.optim.

    PYTHONPATH=src python3 benchmarks/optim_db.py

torch.testing._internal.common_optimizers.optim_db lists torch's optimizers with the inputs
torch's test suite builds each with (``optim_inputs_func(device, dtype)``: kwargs). For every
OptimizerInfo whose class handgrad has (SGD, Adagrad, RMSprop, Adam, AdamW; the others are
listed as not built), every input given on the CPU, in float32 and float64, and the inputs
torch keeps for CUDA and MPS (capturable, a tensor lr), each also with foreach, differentiable
and fused set as torch's suite sets them (_get_optim_inputs_including_global_cliquey_kwargs,
foreach included: handgrad's runs anywhere), is built in torch and in handgrad on identical
parameters (two groups, a complex one where torch steps complex parameters) and checked:

  build      both build it, or both refuse it with the same builtin error
  steps      4 steps with identical gradients (two through a closure, whose loss both return;
             one parameter without a gradient every other step) give identical parameters
  state      both state_dicts are equal: groups, per-parameter state, step counts
  torch→hg   torch's state_dict loads into a fresh handgrad optimizer; 2 more steps agree
  hg→torch   handgrad's state_dict loads into a fresh torch optimizer; 2 more steps agree
  older      a state_dict without the flags torch added later (foreach, fused, maximize, ...)
             and with numbers as step counts loads into both to the same groups and state
             (what torch's __setstate__ fills)

Identical means bit-equal, as handgrad's per-parameter updates are torch's single-tensor ones
line for line; with foreach=True (handgrad's multi-tensor kernels against torch's) it means
equal to float rounding. An input handgrad refuses with NotSupportedError at construction is
"refused"; allowed only for differentiable=True, fused=True and capturable=True, each by name.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import handgrad as hg
from handgrad.errors import NotSupportedError

ALLOWED_REFUSALS = ("differentiable", "fused", "capturable")  # each "<flag>=True", by name
LATER_FLAGS = ("foreach", "fused", "differentiable", "maximize", "capturable")
LATER_FLAGS += ("decoupled_weight_decay",)  # keys an older torch's state_dict lacks
STEPS, MORE_STEPS = 4, 2
DTYPES = (torch.float32, torch.float64)


@dataclass
class Outcome:
    """One input's result: "passed", "refused" (by the flag named) or "failed" (why)."""

    optimizer: str
    dtype: torch.dtype
    desc: str
    kwargs: dict[str, Any]
    status: str = "passed"
    refused_by: str | None = None
    failures: list[str] = field(default_factory=list)


# ---- the inputs ---------------------------------------------------------------------------
def inputs(info: Any, dtype: torch.dtype) -> list[tuple[str, dict[str, Any]]]:
    """(desc, kwargs) for every input torch gives on the CPU, then those it keeps for CUDA
    and MPS, each as torch's suite expands it: the flags off, then each on alone."""
    seen: dict[str, dict[str, Any]] = {}
    for device in ("cpu", "cuda", "mps"):
        for oi in info.optim_inputs_func(device=device, dtype=dtype):
            if oi.desc not in seen:
                seen[oi.desc] = oi.kwargs
    flags = ["foreach"] + [
        f
        for f in info.supported_impls
        if f != "foreach" and (f != "fused" or "cpu" in info.supports_fused_on)
    ]
    out = []
    for desc, kwargs in seen.items():
        base = {**copy.deepcopy(kwargs), **{f: False for f in flags}}
        out.append((desc, base))
        out += [(f"{desc} & {f}", {**copy.deepcopy(base), f: True}) for f in flags]
    return out


def make_params(dtype: torch.dtype, with_complex: bool, seed: int = 0) -> list[torch.Tensor]:
    """w (3, 4), b (4,) and, where torch steps complex parameters, c (2, 3) complex."""
    gen = torch.Generator().manual_seed(seed)
    params = [
        torch.randn(3, 4, generator=gen, dtype=dtype),
        torch.randn(4, generator=gen, dtype=dtype),
    ]
    if with_complex:
        cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
        params.append(torch.randn(2, 3, generator=gen, dtype=cdtype))
    return params


def groups(params: list[torch.Tensor]) -> list[dict[str, Any]]:
    """Two parameter groups: b alone in the second (the constructor's values fill both)."""
    return [{"params": [p for i, p in enumerate(params) if i != 1]}, {"params": [params[1]]}]


def clones(params: list[torch.Tensor], leaf: bool) -> list[torch.Tensor]:
    """Copies of params: leaves that require grad for torch.optim, plain tensors for handgrad."""
    return [p.detach().clone().requires_grad_(leaf) for p in params]


# ---- stepping both ------------------------------------------------------------------------
def set_grads(params: list[torch.Tensor], k: int, seed: int) -> None:
    """Step k's gradients, the same for every copy; b has none on odd steps (skipped)."""
    gen = torch.Generator().manual_seed(1000 * seed + k)
    for i, p in enumerate(params):
        g = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        p.grad = None if (i == 1 and k % 2) else g


def step(opt: Any, params: list[torch.Tensor], k: int, seed: int) -> Any:
    """Step k: on even k through a closure that sets the gradients and returns a loss."""
    if k % 2 == 0:
        set_grads(params, k, seed)
        return opt.step()

    def closure() -> float:
        set_grads(params, k, seed)
        return float(k) + 0.5

    return opt.step(closure)


def same(a: Any, b: Any, exact: bool) -> bool:
    """Equal values: tensors bit-equal (exact) or close, with the same dtype."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        a, b = a.detach(), b.detach()
        if exact:
            return torch.equal(a, b)
        return torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, exact) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def state_diff(mine: dict[str, Any], ref: dict[str, Any], exact: bool) -> str | None:
    """Where two state_dicts differ (torch's format), or None."""
    for i, (g, r) in enumerate(zip(mine["param_groups"], ref["param_groups"])):
        if set(g) != set(r):
            return f"group {i} keys differ: {sorted(set(g) ^ set(r))}"
        for k in r:
            if not same(g[k], r[k], exact=True):
                return f"group {i} {k!r}: handgrad {g[k]!r}, torch {r[k]!r}"
    if set(mine["state"]) != set(ref["state"]):
        return f"state ids differ: {sorted(mine['state'])} vs {sorted(ref['state'])}"
    for i, r in ref["state"].items():
        s = mine["state"][i]
        if set(s) != set(r):
            return f"state {i} keys differ: handgrad {sorted(s)}, torch {sorted(r)}"
        for k in r:
            if not same(s[k], r[k], exact or k == "step"):
                return f"state {i} {k!r}: handgrad {s[k]!r}, torch {r[k]!r}"
    return None


def params_diff(mine: list[torch.Tensor], ref: list[torch.Tensor], exact: bool) -> str | None:
    for i, (m, r) in enumerate(zip(mine, ref)):
        if not same(m, r.detach(), exact):
            return f"parameter {i}: max |diff| {float((m - r.detach()).abs().max()):.3g}"
    return None


# ---- one input ----------------------------------------------------------------------------
def build(cls: Callable[..., Any], params: list[torch.Tensor], kwargs: dict[str, Any]) -> Any:
    return cls(groups(params), **copy.deepcopy(kwargs))


def run_input(info: Any, desc: str, kwargs: dict[str, Any], dtype: torch.dtype) -> Outcome:
    """Build, step, compare and swap state_dicts for one input; see the module's docstring."""
    name = info.optim_cls.__name__
    out = Outcome(name, dtype, desc, kwargs)
    hg_cls = getattr(hg.optim, name)
    start = make_params(dtype, info.supports_complex)
    tp, hp = clones(start, leaf=True), clones(start, leaf=False)
    torch_error: Exception | None = None
    try:
        topt = build(info.optim_cls, tp, kwargs)
    except Exception as e:  # torch refuses the input itself
        torch_error = e
    try:
        hopt = build(hg_cls, hp, kwargs)
    except NotSupportedError as e:
        flag = e.option.removesuffix("=True")
        if torch_error is None and flag in ALLOWED_REFUSALS and kwargs.get(flag) is True:
            out.status, out.refused_by = "refused", e.option
        else:
            out.failures.append(f"build: refused {e.option!r}, not an allowed refusal")
        return _done(out)
    except Exception as e:
        if torch_error is None or not isinstance(e, _builtin(torch_error)):
            out.failures.append(f"build: handgrad raised {e!r}, torch {torch_error!r}")
        return _done(out)
    if torch_error is not None:
        out.failures.append(f"build: torch raised {torch_error!r}, handgrad built it")
        return _done(out)
    exact = not kwargs.get("foreach")
    _check_steps(out, topt, tp, hopt, hp, exact, range(STEPS))
    _check(out, "state", state_diff(hopt.state_dict(), topt.state_dict(), exact))
    _round_trips(out, info, hg_cls, kwargs, (topt, tp), (hopt, hp), exact)
    _check_older(out, info, hg_cls, kwargs, topt.state_dict(), start)
    return _done(out)


def _builtin(e: Exception) -> type:
    """The builtin class torch raised (ValueError, TypeError, RuntimeError)."""
    return next(c for c in type(e).__mro__ if c.__module__ == "builtins")


def _check(out: Outcome, what: str, diff: str | None) -> None:
    if diff is not None:
        out.failures.append(f"{what}: {diff}")


def _done(out: Outcome) -> Outcome:
    if out.failures:
        out.status = "failed"
    return out


def _check_steps(
    out: Outcome, topt: Any, tp: list, hopt: Any, hp: list, exact: bool, ks: range, what="steps"
) -> None:
    """Steps ks in both; the parameters and the closures' losses must agree after each."""
    for k in ks:
        try:
            t_loss, h_loss = step(topt, tp, k, 0), step(hopt, hp, k, 0)
        except Exception as e:
            out.failures.append(f"{what}: step {k} raised {e!r}")
            return
        if t_loss != h_loss:
            out.failures.append(f"{what}: step {k} returned {h_loss!r}, torch {t_loss!r}")
        diff = params_diff(hp, tp, exact)
        if diff is not None:
            out.failures.append(f"{what}: after step {k}, {diff}")
            return


def _round_trips(
    out: Outcome, info: Any, hg_cls: Any, kwargs: dict, t: tuple, h: tuple, exact: bool
) -> None:
    """torch's state_dict into a fresh handgrad optimizer, and handgrad's into a fresh torch
    one, each beside the optimizer it came from for MORE_STEPS steps."""
    (topt, tp), (hopt, hp) = t, h
    h2p = clones([p.detach() for p in tp], leaf=False)
    t2p = clones(hp, leaf=True)
    try:
        h2 = build(hg_cls, h2p, kwargs)
        h2.load_state_dict(copy.deepcopy(topt.state_dict()))
        t2 = build(info.optim_cls, t2p, kwargs)
        t2.load_state_dict(copy.deepcopy(hopt.state_dict()))
    except Exception as e:
        out.failures.append(f"state_dict swap: {e!r}")
        return
    ks = range(STEPS, STEPS + MORE_STEPS)
    _check(out, "torch→hg state", state_diff(h2.state_dict(), topt.state_dict(), True))
    _check_steps(out, topt, tp, h2, h2p, exact, ks, "torch→hg")
    _check(out, "hg→torch state", state_diff(hopt.state_dict(), t2.state_dict(), True))
    _check_steps(out, t2, t2p, hopt, hp, exact, ks, "hg→torch")


def _check_older(out: Outcome, info: Any, hg_cls: Any, kwargs: dict, sd: dict, start: list) -> None:
    """An older state_dict (no LATER_FLAGS, numbers as step counts) loads into both alike."""
    old = copy.deepcopy(sd)
    for group in old["param_groups"]:
        for flag in LATER_FLAGS:
            group.pop(flag, None)
    for s in old["state"].values():
        if isinstance(s.get("step"), torch.Tensor):
            s["step"] = s["step"].item()
    try:
        t = build(info.optim_cls, clones(start, leaf=True), kwargs)
        t.load_state_dict(copy.deepcopy(old))
        h = build(hg_cls, clones(start, leaf=False), kwargs)
        h.load_state_dict(copy.deepcopy(old))
    except Exception as e:
        out.failures.append(f"older state_dict: {e!r}")
        return
    _check(out, "older state_dict", state_diff(h.state_dict(), t.state_dict(), True))


# ---- all of them --------------------------------------------------------------------------
def run(dtypes: tuple[torch.dtype, ...] = DTYPES) -> tuple[list[Outcome], list[str]]:
    """Every input of every optimizer handgrad has; and the names of those it has not."""
    from torch.testing._internal.common_optimizers import optim_db

    built = {cls.__name__ for cls in hg.optim.OPTIMIZERS.values()}  # SGD ... AdamW
    outcomes, not_built = [], []
    for info in optim_db:
        name = info.optim_cls.__name__
        if name not in built:
            not_built.append(name)
            continue
        for dtype in dtypes:
            for desc, kwargs in inputs(info, dtype):
                outcomes.append(run_input(info, desc, kwargs, dtype))
    return outcomes, not_built


def summary(outcomes: list[Outcome], not_built: list[str]) -> str:
    """Counts per optimizer and in all, then every failure with its reasons."""
    lines = [f"{'optimizer':<10} {'inputs':>6} {'passed':>6} {'refused':>7} {'failed':>6}"]
    names = list(dict.fromkeys(o.optimizer for o in outcomes))
    for name in [*names, "total"]:
        mine = [o for o in outcomes if name in (o.optimizer, "total")]
        n = {s: sum(o.status == s for o in mine) for s in ("passed", "refused", "failed")}
        lines.append(
            f"{name:<10} {len(mine):>6} {n['passed']:>6} {n['refused']:>7} {n['failed']:>6}"
        )
    by = sorted({o.refused_by for o in outcomes if o.refused_by})
    lines.append(f"refused by: {', '.join(by) or 'nothing'}")
    lines.append(f"not built in handgrad: {', '.join(not_built)}")
    for o in outcomes:
        if o.status == "failed":
            lines.append(f"FAILED {o.optimizer} {o.dtype} {o.desc}: " + "; ".join(o.failures))
    return "\n".join(lines)


def main() -> int:
    outcomes, not_built = run()
    print(summary(outcomes, not_built))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
