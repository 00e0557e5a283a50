"""fit / evaluate / predict: the training loop.

Each batch is one call of handgrad.training.step.train_step (forward, loss, ``zero_grad``,
``backward`` through the loss and the model, clip, the inf/NaN guard, ``step``), the function
that the GPT recipe and fit's device step (training/graph.py) call too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import Tensor

from handgrad.data.datasets import Dataset
from handgrad.data.loader import DataLoader
from handgrad.data.scaling import Scaling
from handgrad.errors import ArgumentTypeError, InputError
from handgrad.mode import no_cache
from handgrad.module import Module, require_module
from handgrad.nn.loss import Loss
from handgrad.optim.optimizer import Optimizer
from handgrad.optim.scheduler_base import LRScheduler
from handgrad.threads import Threads, policy, step_work
from handgrad.training.arguments import check_clip, check_fit
from handgrad.training.callbacks import Callback, History
from handgrad.training.compiled import CompiledStep
from handgrad.training.graph import GraphStep, Step
from handgrad.training.graph import check_options as check_gpu_options
from handgrad.training.graph import train_epoch as graph_epoch
from handgrad.training.metrics import Metric, _metric
from handgrad.training.step import HostGuard, non_finite, train_step
from handgrad.training.step import NonFiniteLossError as NonFiniteLossError  # its old home

Data = Union[tuple[Tensor, Tensor], DataLoader, Dataset]  # noqa: UP007 (runtime alias)
HINT = "try a smaller learning rate"  # the end of fit's NonFiniteLossError


# ---- the loop ----------------------------------------------------------------------------------
def _loader(
    data: Data, batch_size: int | None, shuffle: bool, seed: int | None, what: str
) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, Dataset):
        data = (data.X, data.y)
    if not isinstance(data, tuple) or len(data) != 2:
        raise ArgumentTypeError(
            f"fit: {what} must be (X, y), a Dataset or a DataLoader, got {type(data).__name__}"
        )
    return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=shuffle, seed=seed)


def _check_labels(model_out: Tensor, y: Tensor, what: str) -> None:
    """Class labels beyond the model's outputs would index past its logits: say so plainly."""
    if y.is_floating_point() or model_out.dim() < 2 or y.dim() != model_out.dim() - 1:
        return
    C = model_out.shape[1]
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
        raise InputError(
            f"fit: {what} labels span [{int(y.min())}, {int(y.max())}] but the model "
            f"has {C} outputs (classes 0..{C - 1})"
        )


def _scores(
    model: Module, loader: DataLoader, loss: Loss | None, metrics: Sequence[tuple[str, Metric]]
) -> tuple[float, dict[str, float]]:
    outs, ys, total, n = [], [], 0.0, 0
    for xb, yb in loader:
        out = model(xb)
        if loss is not None:
            total += float(loss(out, yb)) * xb.shape[0]
        n += xb.shape[0]
        if metrics:
            outs.append(out.detach())
            ys.append(yb)
    values = {}
    if metrics:
        pred, target = torch.cat(outs), torch.cat(ys)
        values = {name: fn(pred, target) for name, fn in metrics}
    return (total / n if loss is not None else math.nan), values


def evaluate(
    model: Module,
    data: Data,
    loss: Loss | None = None,
    metrics: Sequence[str | Metric] = (),
    batch_size: int | None = 1024,
    threads: Threads = "auto",
) -> dict[str, float]:
    """Loss (when given) and metrics over `data`, in eval mode and under no_cache (nothing is
    kept for a backward); the model's mode is restored. `threads`: handgrad.threads."""
    require_module("evaluate", "model", model)
    loader = _loader(data, batch_size, shuffle=False, seed=None, what="data")
    was_training = model.training
    model.eval()
    try:
        with no_cache(), policy(threads, lambda: _batch_work(model, loader, backward=False)):
            value, values = _scores(model, loader, loss, [_metric(m) for m in metrics])
    finally:
        model.train(was_training)
    return ({"loss": value} if loss is not None else {}) | values


def predict(
    model: Module, X: Tensor, batch_size: int | None = 1024, threads: Threads = "auto"
) -> Tensor:
    """model(X) in eval mode, in batches, under no_cache; the model's mode is restored.
    `threads`: handgrad.threads. A model loaded from a file with a bundled dataset's scaling
    (``model.preprocessing``, handgrad.data.scaling: digits' / 16) takes raw features: the
    scaling is applied first."""
    if not isinstance(X, Tensor):
        raise ArgumentTypeError(f"predict: X must be a torch.Tensor, got {type(X).__name__}")
    scaling = getattr(model, "preprocessing", None)
    if isinstance(scaling, Scaling):
        X = scaling.apply(X)
    was_training = model.training
    n = X.shape[0]
    b = batch_size or n
    model.eval()
    try:
        with no_cache(), policy(threads, lambda: step_work(model, X[:b], backward=False)):
            return torch.cat([model(X[i : i + b]) for i in range(0, n, b)])
    finally:
        model.train(was_training)


def _progress(total: int, epoch: int, epochs: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=f"epoch {epoch}/{epochs}",
        disable=None if enabled else True,  # None: a bar only on a terminal
        leave=False,
        dynamic_ncols=True,
        unit="batch",
    )


def fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    train: Data,
    val: Data | None = None,
    epochs: int = 10,
    batch_size: int | None = 32,
    metrics: Sequence[str | Metric] = (),
    callbacks: Sequence[Callback] = (),
    scheduler: LRScheduler | None = None,
    progress: bool = True,
    shuffle: bool = True,
    seed: int | None = None,
    initial_epoch: int = 0,
    distributed: bool = False,
    threads: Threads = "auto",
    clip_grad_norm: float | None = None,
    cuda_graph: bool = False,
    precision: str = "float32",
    compile: bool = False,
) -> History:
    """Train `model` for `epochs` epochs; returns the History of train and val loss and metrics.

    `train`/`val` are (X, y) tensors, a Dataset or a DataLoader (whose own batch_size wins).
    `scheduler.step()` runs after every epoch, or after every optimizer step for a schedule
    whose `interval` is "batch" (OneCycleLR, CyclicLR); ReduceLROnPlateau steps on the
    epoch's val_loss (the train loss without validation data). A non-finite loss or gradient
    stops training with NonFiniteLossError naming the epoch and batch; both are checked before
    the optimizer step, so the model keeps its weights from before that step (nothing is
    copied).
    `initial_epoch` resumes a run (see hg.io.save_checkpoint). With `distributed`, inside a
    torch.distributed process group, each process trains on its shard of (X, y) and the
    gradients are averaged before every step (handgrad.distributed); the logged train loss is
    the average over processes. `threads` (handgrad.threads): "auto" runs a small model's
    steps on one thread, so another busy process cannot stall them; torch's setting is
    restored on return. `clip_grad_norm`: after each backward, the gradients are scaled to a
    total 2-norm of at most this (hg.clip_grad_norm, as torch.nn.utils.clip_grad_norm_).
    `cuda_graph=True` (a model and data on CUDA): the whole step is captured once in a CUDA
    graph and replayed per batch; `precision="bf16"`: bf16 forward and backward with float32
    master weights and optimizer state (CPU too). Either trains with handgrad.training.graph's
    step, which never syncs with the host: the loss and the inf/NaN check are read once per
    epoch, and an inf/NaN masks that step and the rest of the epoch (the weights stay those
    from before it) before NonFiniteLossError is raised. `compile=True`: the same step
    compiled by torch.compile (hg.compile_step; with cuda_graph=True,
    mode="reduce-overhead"), checked once an epoch too; its compile time is printed once.
    """
    check_fit(model, loss, optimizer)
    if not isinstance(epochs, int) or epochs < 0:
        raise InputError(f"fit: epochs must be an int >= 0, got {epochs!r}")
    check_clip("fit", clip_grad_norm)
    sync: Callable[[Module], None] | None = None
    loader = _loader(train, batch_size, shuffle, seed, "train")
    if distributed:
        from handgrad.training import distributed as hd

        rank, world = hd.rank_and_world_size()
        if not isinstance(train, DataLoader):
            loader = DataLoader(
                loader.X,
                loader.y,
                batch_size=batch_size,
                shuffle=shuffle,
                seed=0 if seed is None else seed,
                rank=rank,
                world_size=world,
            )
        hd.prepare(model)
        sync = hd.average_gradients
    val_loader = None if val is None else _loader(val, 1024, False, None, "val")
    check_gpu_options(model, loader, cuda_graph, precision, distributed, compile)
    with policy(threads, lambda: _batch_work(model, loader, backward=True)):
        return _fit(
            model,
            loss,
            optimizer,
            loader,
            val_loader,
            epochs,
            metrics,
            callbacks,
            scheduler,
            progress,
            initial_epoch,
            sync,
            clip_grad_norm,
            cuda_graph,
            precision,
            compile,
        )


def _fit(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    loader: DataLoader,
    val_loader: DataLoader | None,
    epochs: int,
    metrics: Sequence[str | Metric],
    callbacks: Sequence[Callback],
    scheduler: LRScheduler | None,
    progress: bool,
    initial_epoch: int,
    sync: Callable[[Module], None] | None,
    clip: float | None = None,
    cuda_graph: bool = False,
    precision: str = "float32",
    compile: bool = False,
) -> History:
    named = [_metric(m) for m in metrics]
    device_step, graph = None, None
    _check_all_labels(model, loader)
    if compile:  # handgrad.training.compiled: the device step, compiled
        device_step = Step(model, loss, optimizer, clip, precision, sync, flat=False)
        mode = "reduce-overhead" if cuda_graph else None
        graph = CompiledStep(device_step, mode=mode, who="fit", verbose=progress).batch
    elif cuda_graph or precision != "float32":  # handgrad.training.graph: no host syncs
        device_step = Step(model, loss, optimizer, clip, precision, sync)
        graph = GraphStep(device_step) if cuda_graph else None
    history = History()
    model.clear_cache()  # a stray forward before fit would otherwise sit under every step's
    for cb in callbacks:
        cb.on_train_begin(model)
    for epoch in range(initial_epoch + 1, epochs + 1):
        loader.set_epoch(epoch)
        per_batch = scheduler if getattr(scheduler, "interval", "epoch") == "batch" else None
        if device_step is not None:
            logs = _graph_epoch(
                device_step, graph, loader, named, epoch, epochs, progress, per_batch
            )
        else:
            logs = _train_epoch(
                model,
                loss,
                optimizer,
                loader,
                named,
                epoch,
                epochs,
                progress,
                sync,
                per_batch,
                clip,
            )
        if sync is not None:
            logs["loss"] = _average_over_processes(logs["loss"])
        if val_loader is not None:
            scores = evaluate(model, val_loader, loss, metrics, threads=None)
            logs.update({f"val_{k}": v for k, v in scores.items()})
        if scheduler is not None and getattr(scheduler, "interval", "epoch") == "epoch":
            if getattr(scheduler, "needs_metric", False):  # ReduceLROnPlateau
                plateau: Any = scheduler  # its step takes the metric
                plateau.step(logs.get("val_loss", logs["loss"]))
            else:
                scheduler.step()
        history.append(epoch, logs)
        if progress:
            print(
                f"epoch {epoch}/{epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in logs.items()),
                flush=True,
            )
        if any([cb.on_epoch_end(epoch, logs, model) for cb in callbacks]):
            break
    for cb in callbacks:
        cb.on_train_end(model)
    if device_step is not None:
        device_step.close()
    return history


def _check_all_labels(model: Module, loader: DataLoader) -> None:
    """The label check, once on every label before training (the step itself cannot: its
    loss follows its forward, and a captured step reads nothing on the host)."""
    if loader.y.is_floating_point():  # targets, not class labels
        return
    was_training = model.training
    model.eval()
    try:
        with no_cache():
            out = model(loader.X[:1].to(loader.device) if loader.device else loader.X[:1])
    finally:
        model.train(was_training)
    _check_labels(out, loader.y, "train")


def _graph_epoch(
    step: Step,
    graph: Callable[[Tensor, Tensor, bool], Tensor] | None,
    loader: DataLoader,
    metrics: Sequence[tuple[str, Metric]],
    epoch: int,
    epochs: int,
    progress: bool,
    scheduler: LRScheduler | None,
) -> dict[str, float]:
    """An epoch of handgrad.training.graph's step; inf/NaN is read (and raised) at its end."""
    try:
        with _progress(len(loader), epoch, epochs, progress) as bar:
            value, bad, outs, ys = graph_epoch(step, graph, loader, bool(metrics), scheduler, bar)
    except BaseException:  # a refused batch shape, Ctrl-C: the optimizer back to host numbers
        step.close()
        raise
    if bad:
        step.close()
        step.model.clear_cache()
        step.loss.clear_cache()
        what = f"the loss or a gradient became inf or NaN at epoch {epoch}, batch {bad}"
        raise non_finite("fit", what, HINT)
    return _epoch_logs(value, metrics, outs, ys)


def _batch_work(model: Module, loader: DataLoader, backward: bool) -> int:
    """Multiply-adds of one batch's step (handgrad.threads.step_work), from the first batch."""
    X = loader.X
    if not isinstance(X, Tensor) or X.dim() == 0:
        return 0
    return step_work(model, X[: loader.batch_size or X.shape[0]], backward)


def _average_over_processes(value: float) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def _train_epoch(
    model: Module,
    loss: Loss,
    optimizer: Optimizer,
    loader: DataLoader,
    metrics: Sequence[tuple[str, Metric]],
    epoch: int,
    epochs: int,
    progress: bool,
    sync: Callable[[Module], None] | None = None,
    scheduler: LRScheduler | None = None,
    clip: float | None = None,
) -> dict[str, float]:
    """An eager epoch: train_step with the host guard, which raises on inf/NaN before the step."""
    model.train()
    guard = HostGuard(model.parameters(), "fit", HINT)
    total, n, outs, ys = 0.0, 0, [], []
    with _progress(len(loader), epoch, epochs, progress) as bar:
        for batch, (xb, yb) in enumerate(loader, start=1):
            guard.where = f"epoch {epoch}, batch {batch}"
            out, _ = train_step(model, loss, optimizer, xb, yb, guard, clip=clip, sync=sync)
            if scheduler is not None:  # a per-batch schedule (OneCycleLR, CyclicLR)
                scheduler.step()
            total += guard.value * xb.shape[0]
            n += xb.shape[0]
            if metrics:
                outs.append(out.detach())
                ys.append(yb)
            bar.update(1)
            bar.set_postfix(loss=f"{total / n:.4f}", refresh=False)
    return _epoch_logs(total / n, metrics, outs, ys)


def _epoch_logs(
    loss: float, metrics: Sequence[tuple[str, Metric]], outs: list[Tensor], ys: list[Tensor]
) -> dict[str, float]:
    """The epoch's mean loss and each metric over the outputs the epoch kept."""
    logs = {"loss": loss}
    if metrics:
        pred, target = torch.cat(outs), torch.cat(ys)
        logs.update({name: fn(pred, target) for name, fn in metrics})
    return logs
