"""The GPU path of fit: a training step that never syncs with the host, captured in a CUDA graph.

``fit(..., cuda_graph=True)`` or ``fit(..., precision="bf16")`` trains with ``Step``, which
runs the one training step (handgrad.training.step.train_step) with the device guard:

    forward → loss → zero_grad (in place) → backward → clip → finite? (mask) → optimizer step

No line of it reads a tensor's value on the host, and every tensor that lives across steps
keeps its address (parameters, gradients, optimizer state, the flags below), so the whole step
can be recorded once in a CUDA graph and replayed per batch (``GraphStep``):

- warm-up: the first ``WARMUP`` batches run eagerly on a side stream (cuBLAS and the optimizer
  state are set up there), then the next batch is captured and replayed; every later batch is
  copied into the captured input buffers and the graph replayed. A last batch of another size
  runs eagerly (the same tensors, no graph); pass a DataLoader with drop_last=True to drop it.
- the learning rate: the optimizer runs in graph mode (Optimizer.device_scalars): lr, momentum
  / betas and the bias corrections are device tensors; before each replay the current
  group["lr"] & co. are written into them, so a per-batch schedule stepped on the host between
  replays keeps working.
- the non-finite guard: ``ok`` is a device flag, cleared (for the rest of the epoch) by the
  first inf/NaN loss or gradient; a cleared flag zeroes the gradients and multiplies every lr
  by 0, so the weights stay those from before that step (the optimizer's moments still decay).
  fit reads the flag, the first bad batch and the epoch's loss sum once per epoch.

``precision="bf16"``: the forward and backward run under torch.autocast(bfloat16) — the matrix
products and convolutions in bf16 — with the float32 parameters as master weights, float32
gradients (accumulated into float32 .grad) and float32 optimizer state; the loss is computed
in float32 from the bf16 output. bf16 works on the CPU too (without a graph).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.linalg import vector_norm

from handgrad.data.loader import DataLoader
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError, UsageError
from handgrad.mode import capture_safe
from handgrad.module import Module
from handgrad.nn.loss import Loss
from handgrad.optim.optimizer import Optimizer
from handgrad.training.step import autocast as precision_context
from handgrad.training.step import train_step

__all__ = ["PRECISIONS", "WARMUP", "GraphStep", "Step", "check_options", "precision_context"]

PRECISIONS = ("float32", "bf16")
WARMUP = 3  # eager steps on a side stream before the capture (torch's recipe)


def check_options(
    model: Module,
    loader: DataLoader,
    cuda_graph: Any,
    precision: Any,
    distributed: bool,
    compile: Any = False,
) -> None:
    """fit's GPU and compile options, checked before any CUDA call or trace can fail."""
    for name, value in (("cuda_graph", cuda_graph), ("compile", compile)):
        if not isinstance(value, bool):
            raise ArgumentTypeError(
                f"fit: {name} must be True or False, got {type(value).__name__}"
            )
    if compile and distributed:
        raise NotSupportedError("fit", "compile=True with distributed=True")
    if precision not in PRECISIONS:
        raise InputError(f"fit: precision must be 'float32' or 'bf16', got {precision!r}")
    params = model.parameters()
    device = params[0].device if params else None
    X = loader.X
    data_device = torch.device(loader.device) if loader.device is not None else X.device
    if device is not None and device != data_device:
        raise InputError(
            f"fit: the model is on {device} but the data is on {data_device}: move both to "
            "the same device (model.to(device), X.to(device))"
        )
    if not cuda_graph:
        return
    if not torch.cuda.is_available():
        raise UsageError(
            "fit: cuda_graph=True needs CUDA, and torch.cuda.is_available() is False "
            "(train with cuda_graph=False)"
        )
    if device is None or device.type != "cuda":
        raise UsageError(
            f"fit: cuda_graph=True needs the model and the data on a CUDA device, got "
            f"{device}: move them with model.to('cuda') and X.to('cuda')"
        )
    if distributed:
        raise NotSupportedError("fit", "cuda_graph=True with distributed=True")


class Step:
    """One training step with no host sync: ``step(xb, yb)`` runs train_step with this object
    as its guard (``zero_grad``, ``check``) and returns the model's output.

    Keeps on the model's device: ``ok`` (no inf/NaN seen yet), ``total`` (the sum of
    loss × batch size over the epoch's good steps), ``good`` (the number of good steps: the
    first bad batch is the next one), and the gradients in flat buffers (``gather``).
    """

    def __init__(
        self,
        model: Module,
        loss: Loss,
        optimizer: Optimizer,
        clip: float | None = None,
        precision: str = "float32",
        sync: Callable[[Module], None] | None = None,
        flat: bool = True,
        classes_last: bool = False,
    ) -> None:
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.flat_buffers = flat  # False: each .grad its own tensor (compiled steps)
        self.clip, self.precision, self.sync = clip, precision, sync
        self.classes_last = classes_last  # (N, T, V) logits against (N, T) ids: a GPT
        self.params = model.parameters()
        if not self.params:
            raise InputError("fit: the model has no parameters to train")
        self.device = self.params[0].device
        # (1,), not 0-d: torch.compile (2.13) may treat a 0-d input as a number, and then
        # loses its in-place changes (a float64 one) or traces the step twice
        self.ok = torch.ones(1, dtype=torch.bool, device=self.device)
        self.total = torch.zeros(1, dtype=torch.float64, device=self.device)
        self.good = torch.zeros(1, dtype=torch.int64, device=self.device)  # good steps
        optimizer.device_scalars(True)
        optimizer._mask = self.ok
        if precision != "float32":  # bf16 gradients accumulate into float32 .grad
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        self.flat: list[Tensor] = []  # the gradients, one buffer per (device, dtype)
        self.held: list[tuple[Tensor, Tensor]] = []  # (parameter, its .grad: a view of one)
        self.gather()

    def close(self) -> None:
        """The optimizer back to its ordinary (host-number) steps."""
        self.optimizer._mask = None
        self.optimizer.device_scalars(False)

    def gather(self) -> None:
        """Put every .grad in one flat buffer per (device, dtype), each p.grad a view of it.

        Then the gradients are zeroed, tested for inf/NaN and masked by one op per buffer
        instead of one per parameter; backward's ``p.grad += dp`` writes into the view. Runs
        once at the start and after every backward, where it does nothing unless a parameter
        got its first .grad (the first step; a module unfrozen later): a parameter with no
        gradient keeps None, so the optimizer skips it as in the eager step.
        """
        with_grad = [p for p in self.params if p.grad is not None]
        if len(with_grad) == len(self.held) and all(p.grad is g for p, g in self.held):
            return
        if not self.flat_buffers:  # torch.compile fuses the per-gradient ops itself
            self.flat = [p.grad for p in with_grad if p.grad is not None]
            self.held = [(p, g) for p, g in zip(with_grad, self.flat)]
            return
        by_kind: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
        for p in with_grad:
            by_kind.setdefault((p.device, p.dtype), []).append(p)
        self.flat, self.held = [], []
        for params in by_kind.values():
            grads = [p.grad.reshape(-1).to(p.dtype) for p in params if p.grad is not None]
            flat = torch.cat(grads)  # the current values, moved in
            offset = 0
            for p in params:
                p.grad = flat[offset : offset + p.numel()].view_as(p)
                self.held.append((p, p.grad))
                offset += p.numel()
            self.flat.append(flat)

    def __call__(self, xb: Tensor, yb: Tensor) -> Tensor:
        return self.run(xb, yb)[0]

    def run(self, xb: Tensor, yb: Tensor, host_checks: bool = False) -> tuple[Tensor, Tensor]:
        """The step on (xb, yb): the model's output and the loss (0-d, detached). Without
        `host_checks`, nothing reads a value on the host (fit checked the labels before)."""
        with contextlib.nullcontext() if host_checks else capture_safe():
            return self.update(xb, yb)

    def update(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        """run's step, in the mode it set (what CompiledStep compiles)."""
        out, loss = train_step(
            self.model,
            self.loss,
            self.optimizer,
            xb,
            yb,
            self,  # the guard: check() below
            clip=self.clip,
            sync=self.sync,
            precision=self.precision,
            classes_last=self.classes_last,
        )
        loss = loss.detach()
        self.total.add_(torch.where(self.ok, loss, 0.0), alpha=xb.shape[0])
        return out, loss

    # ---- the device guard (handgrad.training.step.Guard) ------------------------------------
    def zero_grad(self, optimizer: Optimizer) -> None:
        """One fill per gradient buffer; the addresses are kept."""
        for flat in self.flat:
            flat.zero_()

    def check(self, loss: Tensor, norm: Tensor | None) -> None:
        """Clear ``ok`` (for the rest of the epoch) on an inf/NaN loss or gradient, and zero
        the gradients of a step taken with ``ok`` cleared: with the optimizer's lr·ok, the
        update changes no weight (the optimizer's moments still decay)."""
        self.gather()  # a gradient made by this backward joins its buffer
        self.ok &= self.finite(loss, norm)
        self.good += self.ok  # the first bad batch is good + 1 (read() works it out)
        bad = ~self.ok[0]  # 0-d: a mask for a gradient of any shape
        for flat in self.flat:
            flat.masked_fill_(bad, 0.0)

    def finite(self, loss: Tensor, norm: Tensor | None = None) -> Tensor:
        """Whether the loss and every gradient element are finite: a 0-d bool on the device.

        The gradients' norm (clip_grad_norm's, or else max|g| of each buffer: one reduction
        each) is folded into x = loss + 0·norm; then x - x is 0 for a finite x and NaN for
        inf or NaN.
        """
        norms = [norm] if norm is not None else [vector_norm(f, math.inf) for f in self.flat]
        x = loss.detach()
        for n in norms:
            x = torch.add(x, n, alpha=0)
        return (x - x) == 0

    def read(self) -> tuple[float, int]:
        """(the epoch's loss sum, the first bad batch or 0): one host read; resets the sum."""
        total, good, ok = torch.stack(
            [self.total[0], self.good[0].double(), self.ok[0].double()]
        ).tolist()
        self.total.zero_()
        self.good.zero_()
        return total, 0 if ok else int(good) + 1


class GraphStep:
    """Step captured in a CUDA graph: warm-up, capture, then copy-in and replay per batch."""

    def __init__(self, step: Step, warmup: int = WARMUP) -> None:
        self.step, self.warmup = step, warmup
        self.warm = 0
        self.stream = torch.cuda.Stream(device=step.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.shape: tuple[torch.Size, torch.Size] | None = None  # the first batch's shapes
        self.x = self.y = self.out = torch.empty(0)

    def __call__(self, xb: Tensor, yb: Tensor, last: bool) -> Tensor:
        shape = (xb.shape, yb.shape)
        if self.shape is None:
            self.shape = shape
        if shape != self.shape:
            if last and xb.shape[1:] == self.shape[0][1:]:
                return self.step(xb, yb)  # a last, smaller batch: eagerly, the same tensors
            raise ShapeError(
                f"fit: cuda_graph=True needs one batch shape, got {tuple(xb.shape)} after "
                f"{tuple(self.shape[0])} (targets {tuple(yb.shape)} after "
                f"{tuple(self.shape[1])}) within the epoch"
            )
        if self.graph is not None:
            self.x.copy_(xb, non_blocking=True)
            self.y.copy_(yb, non_blocking=True)
            self.step.optimizer.load_hyperparameters()  # a schedule's new lr, without a sync
            self.graph.replay()
            return self.out
        if self.warm < self.warmup:
            self.warm += 1
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                out = self.step(xb, yb)
            torch.cuda.current_stream().wait_stream(self.stream)
            return out
        return self._capture(xb, yb)

    def _capture(self, xb: Tensor, yb: Tensor) -> Tensor:
        self.x, self.y = xb.clone(), yb.clone()
        self.step.optimizer.load_hyperparameters()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.out = self.step(self.x, self.y)
        except RuntimeError as e:
            raise UsageError(
                f"fit: the training step could not be captured in a CUDA graph ({e}); "
                "train with cuda_graph=False"
            ) from e
        self.graph = graph
        graph.replay()  # capturing records the step; the replay runs it on this batch
        return self.out


def batches(loader: DataLoader) -> Iterator[tuple[int, Tensor, Tensor, bool]]:
    """(batch number from 1, xb, yb, whether it is the epoch's last batch)."""
    n = len(loader)
    for b, (xb, yb) in enumerate(loader, start=1):
        yield b, xb, yb, b == n


def train_epoch(
    step: Step,
    graph: Callable[[Tensor, Tensor, bool], Tensor] | None,
    loader: DataLoader,
    keep_outputs: bool,
    scheduler: Any,
    bar: Any,
) -> tuple[float, int, list[Tensor], list[Tensor]]:
    """One epoch of Step, or of `graph` when given (a GraphStep, or CompiledStep.batch: each
    takes (xb, yb, last) and returns the output): (mean loss, first bad batch or 0, outputs
    and targets when kept for metrics). `scheduler`: a per-batch schedule, stepped
    on the host after every step. The loss is read once, at the end."""
    step.model.train()
    n, outs, ys = 0, [], []
    for _, xb, yb, last in batches(loader):
        out = step(xb, yb) if graph is None else graph(xb, yb, last)
        if scheduler is not None:  # host numbers only; the next step loads the new lr
            scheduler.step()
        n += xb.shape[0]
        if keep_outputs:
            outs.append(out.detach().clone())  # a replay overwrites the captured output
            ys.append(yb)
        bar.update(1)
    total, bad = step.read()
    return total / max(n, 1), bad, outs, ys
