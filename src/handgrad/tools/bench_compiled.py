"""The benchmark's compiled steps (`handgrad bench --compiled`): each case's step in handgrad
compiled by hg.compile_step, and torch's own model with its whole step under torch.compile,
beside the two eager steps of bench_steps.py; and the MNIST-1D CNN, which only this suite runs.

What is compiled, per case (forward, loss, backward and update: one training step):

- handgrad: ``hg.compile_step(model, loss, optimizer)``, the one step fit runs with
  ``compile=True`` (one graph, ``fullgraph=True``; the guard and the update in it);
- torch: ``torch.compile`` of a function doing zero_grad, forward, loss, backward and
  ``opt.step()``. Dynamo breaks that graph at ``.backward()`` (AOTAutograd compiles the
  backward with the forward) and compiles ``opt.step()`` as a graph of its own: torch's
  usual way of compiling a training step, the optimizer included. (nn.GRU itself runs
  eagerly inside it: Dynamo leaves RNN modules to eager code unless
  torch._dynamo.config.allow_rnn is set, and a user gets that default.)
- a conv layer (forward and backward only): handgrad's layer call and ``backward(dy)`` in one
  ``torch.compile(fullgraph=True)`` function that zeroes the gradients in place, run under
  capture_safe; torch's ``torch.compile(layer)``, then ``.backward(dy)``.

The first calls compile; they run before the timing (``warm_up``), which records how long they
took. This is the reference side (like bench_steps.py): torch.nn and torch.optim are the baseline.
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import torch
import torch.nn as nn

import handgrad as hg
from handgrad.errors import UsageError
from handgrad.mode import capture_safe
from handgrad.threads import policy
from handgrad.tools.bench_steps import (
    SEQUENCE_THREADS,
    Case,
    Step,
    conv_input,
    handgrad_mlp,
    handgrad_sequence,
    mlp_data,
    sequence_data,
    torch_mlp,
    torch_sequence,
)
from handgrad.tools.build import build_cnn
from handgrad.tools.config import TrainConfig

# torch.compile's backend for both compiled columns. The benchmark compiles with Inductor (the
# C++/OpenMP code it times); the tests set "aot_eager", which traces the same graphs in seconds.
BACKEND = "inductor"
WARMUP_CALLS = 5  # at most this many untimed calls until one compiles nothing new

CNN_CASE = Case(  # `handgrad train --data mnist1d --arch cnn`'s network (tools/build.py)
    "CNN 3 x Conv1d 25 (MNIST-1D), batch 100",
    "cnn",
    batch=100,
    conv=dict(cin=1, channels=25, size=(40,), classes=10),
)


# ---- the MNIST-1D CNN: three Conv1d (k5, k3, k3; stride 2, padding 1), ReLU, Linear -----------
def cnn_data(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    g, c = torch.Generator().manual_seed(0), case.conv
    X = torch.randn(case.batch, c["cin"], *c["size"], generator=g)
    return X, torch.randint(0, c["classes"], (case.batch,), generator=g)


def handgrad_cnn(case: Case) -> tuple[hg.Module, Any, Any]:
    """`handgrad train --arch cnn`'s network (tools/build.py's build_cnn) for the case's
    inputs, AdamW (lr 1e-3, weight decay 0.01)."""
    c = case.conv
    config = TrainConfig(arch="cnn", channels=c["channels"])
    model = build_cnn((c["cin"], *c["size"]), c["classes"], config)
    opt = hg.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return model, hg.CrossEntropyLoss(), opt


def torch_cnn(case: Case) -> tuple[nn.Module, Any, Any]:
    """The same network in torch.nn (hg.to_torch of a fresh one), the same AdamW in
    torch.optim."""
    model = hg.to_torch(handgrad_cnn(case)[0])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return model, nn.CrossEntropyLoss(), opt


def handgrad_cnn_step(case: Case) -> Step:
    """The eager handgrad step of the CNN, as bench_steps.handgrad_step runs an MLP's."""
    model, loss, opt = handgrad_cnn(case)
    X, y = cnn_data(case)

    def step() -> None:
        opt.zero_grad()
        loss(model(X), y)
        model.backward_params(loss.backward())
        opt.step()

    return step


def torch_cnn_step(case: Case) -> Step:
    model, loss, opt = torch_cnn(case)
    X, y = cnn_data(case)

    def step() -> None:
        opt.zero_grad()
        loss(model(X), y).backward()
        opt.step()

    return step


# ---- whole training steps, compiled ---------------------------------------------------------
def _handgrad_parts(case: Case) -> tuple[Any, Any, Any, torch.Tensor, torch.Tensor]:
    if case.kind == "mlp":
        return (*handgrad_mlp(case), *mlp_data(case))
    if case.kind == "cnn":
        return (*handgrad_cnn(case), *cnn_data(case))
    return (*handgrad_sequence(case), *sequence_data(case))


def _torch_parts(case: Case) -> tuple[nn.Module, Any, Any, torch.Tensor, torch.Tensor]:
    if case.kind == "mlp":
        return (*torch_mlp(case), *mlp_data(case))
    if case.kind == "cnn":
        return (*torch_cnn(case), *cnn_data(case))
    model, opt = torch_sequence(case)
    return (model, nn.CrossEntropyLoss(), opt, *sequence_data(case))


def handgrad_compiled_step(case: Case) -> Step:
    """hg.compile_step on the case's model, loss and optimizer (a fresh copy of the eager
    step's: the compiled step puts its optimizer in graph mode)."""
    model, loss, opt, X, y = _handgrad_parts(case)
    compiled = hg.compile_step(model, loss, opt, classes_last=case.kind == "gpt", backend=BACKEND)
    compiled.verbose = False  # warm_up reports both compile times

    def step() -> torch.Tensor:
        return compiled(X, y)

    step.compiled = compiled  # type: ignore[attr-defined]
    return step


def torch_compiled_step(case: Case) -> Step:
    """torch's model, loss and optimizer; the whole step, opt.step() included, compiled."""
    model, loss, opt, X, y = _torch_parts(case)

    classes_last = case.kind == "gpt"  # (B, T, V) logits: one row per position

    def train() -> None:
        opt.zero_grad()
        out = model(X)
        pred, target = (out.flatten(0, -2), y.flatten()) if classes_last else (out, y)
        loss(pred, target).backward()
        opt.step()

    return torch.compile(train, backend=BACKEND)


# ---- a conv layer's forward and backward, compiled ---------------------------------------------
def _conv_layer(case: Case, module: Any) -> Any:
    c = case.conv
    return module(c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["padding"])


def handgrad_conv_compiled_step(case: Case) -> Step:
    """The layer's forward and backward (dL/dx included, as the eager rows and torch's, whose
    x requires grad) in one compiled function; the .grad tensors zeroed in place."""
    layer = _conv_layer(case, hg.Conv1d if case.kind == "conv1d" else hg.Conv2d)
    x = conv_input(case)
    dy = torch.ones_like(layer(x))
    params = layer.parameters()

    def fwd_bwd() -> torch.Tensor:
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
        layer(x)
        return layer.backward(dy)

    fwd_bwd()  # eagerly: makes every .grad, which the compiled calls then update in place
    compiled = torch.compile(fwd_bwd, fullgraph=True, backend=BACKEND)

    def step() -> torch.Tensor:
        with capture_safe():
            return compiled()

    return step


def torch_conv_compiled_step(case: Case) -> Step:
    layer = _conv_layer(case, nn.Conv1d if case.kind == "conv1d" else nn.Conv2d)
    x = conv_input(case).requires_grad_(True)
    dy = torch.ones_like(layer(x))
    compiled = torch.compile(layer, backend=BACKEND)

    def step() -> None:
        layer.zero_grad()
        x.grad = None
        compiled(x).backward(dy)

    return step


def compiled_steps(case: Case) -> dict[str, Step]:
    """The two compiled columns of a case: {"handgrad compiled": ..., "torch compiled": ...}."""
    torch._dynamo.reset()  # each case compiles afresh: no recompile limit carried over
    if case.kind in ("conv1d", "conv2d"):
        steps = {
            "handgrad compiled": handgrad_conv_compiled_step(case),
            "torch compiled": torch_conv_compiled_step(case),
        }
    else:
        steps = {
            "handgrad compiled": handgrad_compiled_step(case),
            "torch compiled": torch_compiled_step(case),
        }
    if case.kind in ("gru", "gpt"):
        for step in steps.values():
            step.threads = SEQUENCE_THREADS  # type: ignore[attr-defined]
    return steps


def warm_up(name: str, step: Step) -> float:
    """Call a compiled step until a call compiles nothing new (the first calls trace and
    compile; handgrad's first step runs eagerly), on the thread count it is timed on: the
    generated code keeps the count it was compiled for. Inductor's caches on disk are left
    out, so the time is a first run's, as a second bench run finds it too. Returns the
    seconds those calls took (hg.compile_step's own compile_seconds for handgrad's step);
    UsageError if torch.compile made no graph, or still compiles after WARMUP_CALLS calls."""
    from torch._dynamo.utils import counters

    seconds, graphs = 0.0, counters["stats"]["unique_graphs"]
    # no compiled code reused from disk:
    cold = torch.compiler.config.patch(force_disable_caches=True)  # type: ignore[attr-defined]
    with policy(getattr(step, "threads", None), 0), cold, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "dynamo_pgo force disabled")  # what cold says
        for _ in range(WARMUP_CALLS):
            before = counters["stats"]["unique_graphs"]
            t0 = time.perf_counter()
            step()
            took = time.perf_counter() - t0
            if counters["stats"]["unique_graphs"] == before and seconds:
                break
            seconds += took
        else:
            raise UsageError(f"bench: {name} still compiles after {WARMUP_CALLS} calls")
    if counters["stats"]["unique_graphs"] == graphs:
        raise UsageError(f"bench: {name}: torch.compile compiled no graph; nothing would be timed")
    compiled = getattr(step, "compiled", None)  # hg.compile_step's own measure, when there
    if compiled is not None and compiled.compile_seconds is not None:
        seconds = compiled.compile_seconds
    print(f"  {name}: compiled in {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds
