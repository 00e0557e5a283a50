"""A compiled training step: handgrad's own forward, backward, guard and update, fused by
torch.compile.

``hg.compile_step(model, loss_fn, optimizer)`` returns ``step(x, y) -> loss``, and
``fit(..., compile=True)`` / ``handgrad train --compile`` train with it. It compiles the one
training step (training/step.py's ``train_step``) with the device guard of training/graph.py's
``Step``; nothing is written twice:

    forward → loss → zero_grad → backward → clip → finite? (mask) → optimizer update

torch.compile traces that Python once into one graph (``fullgraph=True``: a graph break is an
error, not a slow path), and Inductor generates the code: C++/OpenMP loops on the CPU, Triton
kernels on a GPU, where ``mode="reduce-overhead"`` also replays it as a CUDA graph. What the
compiler gets is handgrad's math: no torch.nn, no autograd.

What the compiled step does differently from the eager one, so that it compiles once:

- it runs one eager step first (its labels checked on the host): that step makes each .grad
  and the optimizer's state, which the compiled steps then update in place;
- the optimizer runs in graph mode (device scalars, the multi-tensor update): lr & co. are
  read from device tensors that are filled before each step, so a schedule does not
  recompile it, and the step counts live on the device (Optimizer.freeze_runs);
- the guard reads nothing on the host: an inf or NaN clears a device flag that masks the
  update, and ``finish_epoch()`` (fit: at the epoch's end) reads it and raises;
- the saved-tensor version checks are left out (compiled code keeps no version counters;
  the eager first step ran them), as are the checks that read a value on the host
  (handgrad.mode.capture_safe).

A batch of another shape recompiles once, with the batch size dynamic (torch's automatic
dynamic shapes); fit runs an epoch's last, smaller batch eagerly instead, as GraphStep does.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError, NotSupportedError, UsageError
from handgrad.mode import capture_safe
from handgrad.module import Module
from handgrad.nn.loss import Loss
from handgrad.optim.optimizer import Optimizer
from handgrad.training.arguments import check_clip, check_fit
from handgrad.training.graph import PRECISIONS, Step
from handgrad.training.step import non_finite

__all__ = ["CompiledStep", "check_compiler", "compile_step"]

MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
BACKEND = "inductor"  # torch.compile's backend for fit(compile=True) and --compile


def check_compiler(who: str, device: torch.device, backend: Any = "inductor") -> None:
    """One line, before anything is traced, when torch.compile cannot work here."""
    try:
        from torch._dynamo.eval_frame import is_dynamo_supported
    except ImportError:  # pragma: no cover - torch without dynamo
        raise NotSupportedError(who, f"compiling with torch {torch.__version__}") from None
    if not is_dynamo_supported():
        version = ".".join(map(str, sys.version_info[:2]))
        raise UsageError(
            f"{who}: torch {torch.__version__} cannot compile on Python {version} "
            "(torch.compile is not supported there); train without compiling"
        )
    if backend == "inductor" and device.type == "cpu" and not _cxx():
        raise UsageError(
            f"{who}: compiling for the CPU needs a C++ compiler (g++ or clang++), and none "
            "was found on PATH; install one, or train without compiling"
        )


def _cxx() -> str | None:
    """The C++ compiler Inductor would use on the CPU, if there is one."""
    named = os.environ.get("CXX")
    for name in ([named] if named else []) + ["g++", "c++", "clang++"]:
        found = shutil.which(name)
        if found:
            return found
    return None


def _own_copy(method: Callable[..., Any]) -> Callable[..., Any]:
    """The bound method with a code object of its own: torch.compile keeps its compiled graphs
    per code object, at most 8 (then fails with fullgraph=True), so each CompiledStep gets its
    own, and a process may compile any number of different models."""
    fn = method.__func__  # type: ignore[attr-defined]
    code = fn.__code__.replace()  # equal, not the same object
    own = types.FunctionType(code, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    return types.MethodType(own, method.__self__)  # type: ignore[attr-defined]


class CompiledStep:
    """``step(x, y) -> loss``: one training step, compiled (see the module's docstring).

    The loss is the one the step saw (0-d, detached, on the model's device; reading it syncs):
    an inf or NaN one was not applied. ``finish_epoch()`` returns the mean loss of the steps
    since the last call and raises NonFiniteLossError if one of them was inf or NaN;
    ``close()`` (or leaving a ``with`` block) puts the optimizer back to its ordinary steps.
    ``compile_seconds``: how long the first compiled step took, compiling included.
    """

    def __init__(
        self,
        step: Step,
        mode: str | None = None,
        backend: Any = None,
        dynamic: bool | None = None,
        who: str = "hg.compile_step",
        verbose: bool = True,
    ) -> None:
        backend = BACKEND if backend is None else backend
        check_compiler(who, step.device, backend)
        self.step, self.who, self.verbose = step, who, verbose
        self.compiled = torch.compile(
            _own_copy(step.update), fullgraph=True, mode=mode, backend=backend, dynamic=dynamic
        )
        self.warm = False  # whether the first, eager step has run
        self.steps = self.examples = 0  # since the last finish_epoch
        self.done = 0  # the steps before those
        self.compile_seconds: float | None = None
        self.shape: tuple[torch.Size, torch.Size] | None = None  # the first compiled batch's

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        return self.run(x, y)[1]

    def run(self, x: Tensor, y: Tensor, eager: bool = False) -> tuple[Tensor, Tensor]:
        """The step on (x, y): (the model's output, the loss). The first step, and any with
        `eager`, runs without the compiler (the same Step)."""
        self.steps += 1
        self.examples += x.shape[0]
        if not self.warm:  # eagerly, the labels checked on the host: makes .grad and state
            self.warm = True
            return self.step.run(x, y, host_checks=True)
        if eager:
            return self.step.run(x, y)
        self.step.optimizer.load_hyperparameters()  # a schedule's lr, into the device scalars
        if self.compile_seconds is not None:
            return self._compiled(x, y)
        self.step.optimizer.freeze_runs()
        start = time.perf_counter()
        out = self._compiled(x, y)  # traced, compiled and run
        self.compile_seconds = time.perf_counter() - start
        if self.verbose:
            print(
                f"{self.who}: compiled the training step in {self.compile_seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        return out

    def _compiled(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The compiled step; a failure to compile it (here or at a recompile) is one line."""
        try:
            with capture_safe():
                return self.compiled(x, y)
        except torch._dynamo.exc.TorchDynamoException as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UsageError(
                f"{self.who}: torch.compile could not compile the training step ({first}); "
                "train without compiling"
            ) from e

    def batch(self, xb: Tensor, yb: Tensor, last: bool) -> Tensor:
        """fit's step (as GraphStep's): the output; an epoch's last batch of another shape
        runs eagerly, so that it does not recompile the step."""
        shape = (xb.shape, yb.shape)
        if self.shape is None:
            self.shape = shape
        return self.run(xb, yb, eager=last and shape != self.shape)[0]

    def finish_epoch(self) -> float:
        """The mean loss of the good steps since the last call; NonFiniteLossError (after
        the optimizer is back to its ordinary steps) if a step saw an inf or NaN."""
        total, bad = self.step.read()
        examples, first = self.examples, self.done
        self.done, self.steps, self.examples = self.done + self.steps, 0, 0
        if bad:
            self.close()
            what = f"the loss or a gradient became inf or NaN at step {first + bad}"
            raise non_finite(self.who, what, "try a smaller learning rate, or clip_grad_norm")
        return total / max(examples, 1)

    def close(self) -> None:
        """The optimizer back to its ordinary (host-number) steps."""
        self.step.close()

    def __enter__(self) -> CompiledStep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compile_step(
    model: Module,
    loss_fn: Loss,
    optimizer: Optimizer,
    *,
    classes_last: bool = False,
    clip_grad_norm: float | None = None,
    precision: str | None = None,
    mode: str | None = None,
    backend: Any = None,
    dynamic: bool | None = None,
) -> CompiledStep:
    """A whole training step of `model` on `loss_fn` by `optimizer`, compiled by torch.compile:
    ``step = hg.compile_step(model, loss_fn, opt)``, then ``loss = step(x, y)`` per batch.

    Args:
        classes_last: the model's (N, T, V) output against (N, T) class ids (a GPT): one row
            per position, as the text recipe trains.
        clip_grad_norm: scale the gradients to a total 2-norm of at most this.
        precision: "bf16": bf16 forward and backward with float32 master weights; None or
            "float32": the model's own dtype.
        mode, backend, dynamic: torch.compile's ("reduce-overhead": CUDA graphs on a GPU;
            backend None: BACKEND, "inductor").
    """
    who = "hg.compile_step"
    check_fit(model, loss_fn, optimizer, who)
    precision = "float32" if precision is None else precision
    if precision not in PRECISIONS:
        raise InputError(f"{who}: precision must be None, 'float32' or 'bf16', got {precision!r}")
    if mode not in MODES:
        raise InputError(f"{who}: mode must be one of {MODES[1:]} or None, got {mode!r}")
    check_clip(who, clip_grad_norm)
    step = Step(
        model,
        loss_fn,
        optimizer,
        clip_grad_norm,
        precision,
        flat=False,
        classes_last=bool(classes_last),
    )
    return CompiledStep(step, mode=mode, backend=backend, dynamic=dynamic, who=who)
