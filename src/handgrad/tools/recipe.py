"""A training run from a config: data -> model -> fit -> files. What `handgrad train` runs
(a text run, --arch gpt: tools/text_recipe.py)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from handgrad import io
from handgrad.data import datasets
from handgrad.errors import InputError
from handgrad.module import Module
from handgrad.nn.containers import Ensemble
from handgrad.nn.loss import Loss
from handgrad.tools import outputs
from handgrad.tools.build import (
    build_loss,
    build_metrics,
    build_model,
    check_size,
    optimizer_and_schedule,
)
from handgrad.tools.config import MEMBER_SEED_STEP, RECURRENT_ARCHS, TrainConfig
from handgrad.tools.results import (
    RunResult,
    Where,
    check_paths,
    describe,
    scores_of,
    write_outputs,
)
from handgrad.training import History, evaluate, fit, predict
from handgrad.training.callbacks import Callback, EarlyStopping

__all__ = ["TrainConfig", "RunResult", "load_dataset", "run"]


def load_dataset(config: TrainConfig) -> datasets.Dataset:
    """The named dataset or CSV file, split three ways: training, validation (`val_fraction`
    of the training data; none when 0) and test (the dataset's own test split, or
    `test_fraction` of the examples). A CSV's preprocessing is fitted on the training rows.
    Splits below the floor (datasets.check_splits) are refused, naming the flags."""
    if config.data == "mnist1d" and config.arch in RECURRENT_ARCHS:
        d = datasets.mnist1d(sequence=True)  # (N, 40, 1): 40 time steps of one value
    elif config.data == "digits" and config.arch in RECURRENT_ARCHS:
        d = datasets.digits()
        d = replace(d, X=d.X.view(-1, 8, 8), X_test=_rows(d.X_test))  # 8 steps: the rows
    elif config.data in ("digits", "mnist1d"):
        d = datasets.DATASETS[config.data](image=config.arch == "cnn")  # (N, 1, 8, 8) / (N, 1, 40)
    elif config.data in datasets.DATASETS:
        d = datasets.DATASETS[config.data]()
    elif config.is_table():
        d = datasets.load_csv(
            config.data,
            target=config.target,
            task=config.task,
            test_fraction=config.test_fraction,
            val_fraction=config.val_fraction,
            seed=config.seed,
            standardize=config.standardize,
            impute=config.impute,
            categorical=config.categorical,
            drop=config.drop,
            check_sizes=False,  # checked below, naming the flags
        )
        datasets.check_splits(d, _asked(config, own_test=False))
        return d
    else:
        raise InputError(
            f"unknown dataset {config.data!r}: choose from "
            f"{', '.join(datasets.DATASETS)}, or give a CSV file"
        )
    _check_no_table_flags(config)
    if config.task not in (None, "auto") and config.task != d.task:  # never ignored unsaid
        raise InputError(
            f"--task {config.task}: {config.data} is a {d.task} dataset; --task chooses the "
            "task of a CSV file"
        )
    own_test = d.X_test is not None
    default_test = TrainConfig.__dataclass_fields__["test_fraction"].default
    if own_test and config.test_fraction != default_test:  # never ignored unsaid
        raise InputError(
            f"--test-fraction {config.test_fraction}: {config.data} has a test split of its "
            "own, which the run's test scores use; leave --test-fraction out"
        )
    if not own_test:
        d = d.split(config.test_fraction, seed=config.seed)
    d = d.split_validation(config.val_fraction, seed=config.seed)
    datasets.check_splits(d, _asked(config, own_test))
    return d


def _asked(config: TrainConfig, own_test: bool) -> str:
    """The flags that chose the split sizes, for check_splits' message."""
    flags = [] if own_test else [f"--test-fraction {config.test_fraction}"]
    if config.val_fraction:
        flags.append(f"--val-fraction {config.val_fraction}")
    return " and ".join(flags) or "--val-fraction 0"


def _check_no_table_flags(config: TrainConfig) -> None:
    """The CSV flags do nothing for a bundled dataset: an error, not silently ignored."""
    given = [
        name
        for name, used in (
            ("--target", config.target != "-1"),
            ("--drop", bool(config.drop)),
            ("--categorical", bool(config.categorical)),
            ("--impute", config.impute != "none"),
            ("--no-standardize", not config.standardize),
        )
        if used
    ]
    if given:
        raise InputError(
            f"{', '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to a CSV file; "
            f"{config.data} is a bundled dataset"
        )


def _rows(X: Tensor | None) -> Tensor | None:
    """8×8 digits as sequences of their 8 rows."""
    return None if X is None else X.view(-1, 8, 8)


class _Checkpoints(Callback):
    """Save a checkpoint (model, optimizer, schedule, epoch, RNG, history) every n epochs."""

    def __init__(self, path: Path, every: int, opt: Any, scheduler: Any, history: History):
        self.path, self.every, self.opt, self.scheduler = path, every, opt, scheduler
        self.history = history  # epochs before a resume
        self.logs: list[tuple[int, dict[str, float]]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float], model: Module) -> bool:
        self.logs.append((epoch, dict(logs)))
        if epoch % self.every == 0:
            now = History()
            for e, values in self.logs:
                now.append(e, values)
            logged = json.loads(_joined(self.history, now).to_json())
            io.save_checkpoint(
                self.path, model, self.opt, epoch, self.scheduler, metadata={"history": logged}
            )
        return False


def _joined(first: History, then: History) -> History:
    """A new History: first's epochs, then then's."""
    joined = History()
    for h in (first, then):
        for i, e in enumerate(h.epochs):
            joined.append(e, {k: v[i] for k, v in h.history.items()})
    return joined


def _resume(config: TrainConfig, model: Module, opt: Any, scheduler: Any) -> tuple[int, History]:
    """Load --resume into model, optimizer and schedule; the epoch reached and its history."""
    assert config.resume is not None
    state = io.load_checkpoint(config.resume, model, opt, scheduler)
    epoch = int(state["epoch"])
    if epoch >= (config.epochs or 0):
        raise InputError(
            f"--resume: {config.resume} is at epoch {epoch}; ask for more --epochs than that"
        )
    past = History()
    logged = state["metadata"].get("history") or {}
    for i, e in enumerate(logged.get("epochs", [])):
        past.append(int(e), {k: float(v[i]) for k, v in logged.items() if k != "epochs"})
    return epoch, past


def _to_device(data: Any, device: str) -> None:
    for name in ("X", "y", "X_val", "y_val", "X_test", "y_test"):
        t = getattr(data, name)
        if isinstance(t, Tensor):
            setattr(data, name, t.to(device))


def run(config: TrainConfig) -> RunResult:
    """Train as configured. Every output path is checked first; the files are written into a
    new folder beside config.out, which replaces the old run only when all are written. Ctrl-C:
    a KeyboardInterrupt whose text says at which epoch, and that --out is as it was."""
    config.check()
    config = config.resolved()
    if config.arch == "gpt":
        from handgrad.tools.text_recipe import run_text

        return run_text(config)
    rank = 0
    if config.distributed:
        from handgrad.training.distributed import init

        rank, _ = init()
    out = check_paths(config)
    where = Where("epoch", config.epochs)
    try:
        return _run(config, out, rank, where)
    except KeyboardInterrupt:
        checkpoint = config.checkpoint_path if config.checkpoint_every else None
        raise KeyboardInterrupt(where.line(out, checkpoint)) from None


def _run(config: TrainConfig, out: Path, rank: int, where: Where) -> RunResult:
    assert config.epochs is not None and config.ensemble is not None  # resolved
    data = load_dataset(config)
    assert data.X_test is not None and data.y_test is not None
    if rank == 0:
        print(describe(data), flush=True)
    with torch.device("meta"):  # the size first, without memory: a model that cannot fit
        check_size(build_model(config, data), config.ensemble, config.arch)  # is refused
    _to_device(data, config.device)
    loss = build_loss(config, data.task)
    metric_list = build_metrics(data)
    members, histories = [], []
    for k in range(config.ensemble):
        if config.ensemble != 1 and rank == 0:
            hint = f" (--ensemble 1: one network, 1/{config.ensemble} of the time)" if not k else ""
            print(f"ensemble member {k + 1} of {config.ensemble}{hint}", flush=True)
        where.member = f" (member {k + 1} of {config.ensemble})" if config.ensemble > 1 else ""
        member, member_history = _train_one(
            config, data, loss, metric_list, config.seed + MEMBER_SEED_STEP * k, rank, where
        )
        members.append(member)
        histories.append(member_history)
    where.doing = "while scoring the run"
    # one network, or the mean of the members' outputs (their logits, for classes)
    model = members[0] if len(members) == 1 else Ensemble(*members)
    history = histories[0]  # the first member's epochs draw curves.png
    model.to(device="cpu")  # scores, figures and the model file on the CPU, as before
    _to_device(data, "cpu")
    val = None if data.X_val is None or data.y_val is None else (data.X_val, data.y_val)
    scores = {"train": evaluate(model, (data.X, data.y), loss, metric_list, threads=config.threads)}
    if val is not None:
        scores["val"] = evaluate(model, val, loss, metric_list, threads=config.threads)
    # the test split, once, at the end: its scores and the figure come from one prediction
    test_out = predict(model, data.X_test, threads=config.threads)
    scores["test"] = scores_of(test_out, data.y_test, loss, metric_list)
    files: list[Path] = []
    if rank == 0:
        where.doing = "while writing the run's files"
        with outputs.staged_run(out, config.force) as stage:
            write_outputs(stage, model, histories, scores, config, data, test_out)
            _keep_checkpoint(config, out, stage)
        files = [out / p.name for p in sorted(out.iterdir()) if p.name in outputs.RUN_FILES]
        files = [f for f in files if f.name != outputs.MARKER]
    return RunResult(model, history, scores, files)


def _keep_checkpoint(config: TrainConfig, out: Path, stage: Path) -> None:
    """The run's last checkpoint moves into it. A --resume checkpoint inside --out (the
    previous run's own) is carried over into the new run when the run saved none of its own:
    checkpoints are never removed."""
    kept = stage / "checkpoint.safetensors"
    if config.checkpoint_every and config.checkpoint_path.exists():
        os.replace(config.checkpoint_path, kept)
    resumed = None if config.resume is None else Path(config.resume).absolute()
    if resumed is not None and not kept.exists() and resumed.parent == out.absolute():
        try:
            os.link(resumed, kept)  # the same file under the new run's name; no copy
        except OSError:
            shutil.copy2(resumed, kept)


def _train_one(
    config: TrainConfig,
    data: datasets.Dataset,
    loss: Loss,
    metric_list: list[Any],
    seed: int,
    rank: int,
    where: Where,
) -> tuple[Module, History]:
    """One network trained as configured, its weights and batches drawn from `seed`; its
    history includes the epochs before a --resume."""
    assert config.epochs is not None
    torch.manual_seed(seed)
    model = build_model(config, data).to(device=config.device)  # weights drawn on the CPU
    opt, scheduler = optimizer_and_schedule(model, config)
    val = None if data.X_val is None or data.y_val is None else (data.X_val, data.y_val)
    start, past = (
        (0, History()) if config.resume is None else _resume(config, model, opt, scheduler)
    )
    callbacks: list[Callback] = [where]  # the epoch that Ctrl-C names
    where.training(start, where.member)
    if config.patience and val is not None:  # the best epoch's weights, by validation loss
        callbacks.append(EarlyStopping("val_loss", patience=config.patience))
    if config.checkpoint_every and rank == 0:
        callbacks.append(
            _Checkpoints(config.checkpoint_path, config.checkpoint_every, opt, scheduler, past)
        )
    history = fit(
        model,
        loss,
        opt,
        (data.X, data.y),
        val=val,
        epochs=config.epochs,
        batch_size=config.batch_size or None,  # 0: full batch
        metrics=metric_list,
        callbacks=callbacks,
        scheduler=scheduler,
        progress=config.progress and rank == 0,
        seed=seed,
        initial_epoch=start,
        distributed=config.distributed,
        threads=config.threads,
        clip_grad_norm=config.clip_grad_norm,
        cuda_graph=config.cuda_graph,
        precision=config.precision,
        compile=config.compile,
    )
    return model, _joined(past, history)  # the epochs before a resume, then this run's
