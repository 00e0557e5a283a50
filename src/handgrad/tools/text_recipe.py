"""Text: `handgrad train --arch gpt` (a character-level GPT on a corpus) and `handgrad generate`
(text sampled from the model file it wrote).

A text run counts optimizer steps, not epochs: each step draws a batch of random windows of
--context characters from the training split (datasets.text). Every --eval-every steps it
logs the mean training loss since the last log, the loss on fixed validation windows (nats
per character) and the tokens per second. The vocabulary is stored in the model file's
metadata, so `handgrad generate` reads prompts and writes text without the corpus.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from handgrad import io, plot
from handgrad.data import datasets
from handgrad.data.text import TextData
from handgrad.errors import InputError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.class_loss import CrossEntropyLoss
from handgrad.nn.gpt import GPT
from handgrad.optim.optimizer import Optimizer
from handgrad.threads import policy, step_work
from handgrad.tools import outputs
from handgrad.tools.build import check_size
from handgrad.tools.build import optimizer_and_schedule as _optimizer_and_schedule
from handgrad.tools.config import TrainConfig
from handgrad.tools.results import RunResult, Where, check_paths
from handgrad.training.callbacks import History
from handgrad.training.compiled import CompiledStep
from handgrad.training.graph import Step
from handgrad.training.step import HostGuard, train_step

DEFAULT_CORPUS = "text"  # --data text: the standard library's pydoc_data.topics
EVAL_BATCHES = 10  # fixed windows each evaluation averages over


def load_text(config: TrainConfig) -> TextData:
    """--data text (the default corpus) or a UTF-8 file, in windows of --context characters;
    the last --val-fraction of it is the validation split."""
    if config.data in datasets.DATASETS:
        raise InputError(
            f"--arch gpt trains on text: --data text (Python's help texts) or a UTF-8 text "
            f"file, not {config.data!r}"
        )
    path = None if config.data == DEFAULT_CORPUS else config.data
    if path is not None and not os.path.isfile(path):
        raise InputError(f"--data: no such text file: {path} (or: --data text)")
    if config.val_fraction == 0:
        raise InputError("--arch gpt needs a validation split: --val-fraction above 0")
    try:
        return datasets.text(path, block_size=config.context, val_fraction=config.val_fraction)
    except InputError as exc:  # its words are the Python API's: name the flags instead
        if "block_size" not in str(exc):
            raise
        message = str(exc).replace("block_size", "--context").removeprefix("text: ")
        raise InputError(f"--data: {message}") from None


def build_gpt(config: TrainConfig, vocab_size: int) -> GPT:
    assert config.width is not None and config.layers is not None
    return GPT(
        vocab_size, config.context, config.layers, config.heads, config.width, config.dropout
    )


def _activations(config: TrainConfig, vocab_size: int) -> int:
    """About how many numbers a training step keeps for its backward: per block and token,
    some 16 of width (attention's inputs and outputs, the 4x MLP) and the attention weights
    of every head (its scores and softmax, over up to --context earlier tokens); the logits."""
    assert config.width is not None and config.layers is not None
    B, T, C = config.batch_size or 32, config.context, config.width
    return B * T * (config.layers * (16 * C + 2 * config.heads * T) + 2 * vocab_size)


@no_cache()
def text_loss(model: GPT, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean cross-entropy (nats per character) over fixed windows, in eval mode."""
    was_training = model.training
    model.eval()
    loss = CrossEntropyLoss()
    try:
        total = sum(
            float(loss(model(x).reshape(-1, model.vocab_size), y.reshape(-1))) for x, y in batches
        )
    finally:
        model.train(was_training)
    return total / len(batches)


def _progress(total: int, enabled: bool) -> Any:
    """A progress bar on a terminal only (disable=None: off when stderr is not one)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, disable=None if enabled else True, leave=False, dynamic_ncols=True, unit="step"
    )


def run_text(config: TrainConfig) -> RunResult:
    """Train a GPT on the configured text for config.steps steps and write the run folder
    (model.safetensors with the vocabulary, history.json, config.json, scores.json,
    curves.png). config is resolved (TrainConfig.resolved). Ctrl-C: a KeyboardInterrupt whose
    text says at which step, and that --out is as it was."""
    assert config.steps is not None and config.batch_size is not None
    out = check_paths(config)
    data = load_text(config)
    print(
        f"text: {data.name}, {len(data.train):,} training and {len(data.val):,} validation "
        f"characters, vocabulary {data.vocab_size}",
        flush=True,
    )
    with torch.device("meta"):  # its size first, without memory: refused, not killed
        meta = build_gpt(config, data.vocab_size)
        check_size(meta, arch="gpt", activations=_activations(config, data.vocab_size))
    where = Where("step", config.steps)
    try:
        model, history, scores = _train_text(config, data, where)
        where.doing = "while writing the run's files"
        with outputs.staged_run(out, config.force) as stage:
            _write_outputs(stage, model, data, history, scores, config)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(where.line(out)) from None
    files = [out / p.name for p in sorted(out.iterdir()) if p.name in outputs.RUN_FILES]
    return RunResult(model, history, scores, [f for f in files if f.name != outputs.MARKER])


def _train_text(
    config: TrainConfig, data: TextData, where: Where
) -> tuple[GPT, History, dict[str, Any]]:
    """The trained GPT, its logged steps and its final scores."""
    assert config.steps is not None
    torch.manual_seed(config.seed)
    model = build_gpt(config, data.vocab_size)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: GPT, {n_params:,} parameters", flush=True)
    loss = CrossEntropyLoss()
    opt, scheduler = _optimizer_and_schedule(model, replace(config, epochs=config.steps))
    B = config.batch_size or 32  # 0 (full batch) means nothing here: the recipe's 32
    gen = torch.Generator().manual_seed(config.seed + 1)  # the training windows
    fixed = torch.Generator().manual_seed(config.seed + 2)  # the windows every evaluation reads
    val_batches = [data.batch("val", B, fixed) for _ in range(EVAL_BATCHES)]
    train_batches = [data.batch("train", B, fixed) for _ in range(EVAL_BATCHES)]
    history = History()
    guard = HostGuard(model.parameters(), "train", "try a smaller --lr or --clip-grad-norm 1")
    compiled = _compiled(config, model, loss, opt)
    where.training()
    with policy(config.threads, step_work(model, val_batches[0][0])):
        running, count, tokens, start = 0.0, 0, 0, time.perf_counter()
        with _progress(config.steps, config.progress) as bar:
            for step in range(1, config.steps + 1):
                where.done = step - 1
                x, y = data.batch("train", B, gen)  # (B, T) ids, y the next characters
                guard.where = f"step {step}"  # an inf/NaN loss or gradient raises before the step
                if compiled is None:
                    train_step(
                        model, loss, opt, x, y, guard, clip=config.clip_grad_norm, classes_last=True
                    )  # (B, T, V) logits against (B, T) ids
                    value = guard.value
                else:  # an inf/NaN step is masked, and raises at the next log
                    value = float(compiled(x, y))
                if scheduler is not None:
                    scheduler.step()  # the schedule runs over steps
                running, count, tokens = running + value, count + 1, tokens + x.numel()
                rate = tokens / (time.perf_counter() - start)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", tokens_s=f"{rate:,.0f}", refresh=False)
                if step % config.eval_every == 0 or step == config.steps:
                    if compiled is not None:
                        compiled.finish_epoch()  # NonFiniteLossError naming the step
                    logs = {
                        "loss": running / count,
                        "val_loss": text_loss(model, val_batches),
                        "tokens_per_s": rate,
                    }
                    running, count = 0.0, 0
                    history.append(step, logs)
                    if config.progress:
                        bar.write(
                            f"step {step}/{config.steps}  loss {logs['loss']:.4f}  val_loss "
                            f"{logs['val_loss']:.4f}  {rate:,.0f} tokens/s"
                        )
        if compiled is not None:
            compiled.close()
        where.doing = "while scoring the run"
        scores = {
            "train": {"loss": text_loss(model, train_batches)},
            "val": {"loss": history["val_loss"][-1]},
        }
    return model, history, scores


def _compiled(
    config: TrainConfig, model: GPT, loss: CrossEntropyLoss, opt: Optimizer
) -> CompiledStep | None:
    """--compile: the step through hg.compile_step (None: the eager step)."""
    if not config.compile:
        return None
    step = Step(model, loss, opt, config.clip_grad_norm, flat=False, classes_last=True)
    return CompiledStep(step, who="train", verbose=config.progress)


def _write_outputs(
    out: Path,
    model: GPT,
    data: TextData,
    history: History,
    scores: dict[str, Any],
    config: TrainConfig,
) -> None:
    meta = {"task": "text", "dataset": data.name, "vocab": data.chars}
    io.save(model, out / "model.safetensors", metadata=meta)
    for name, text in (
        ("history.json", history.to_json()),
        ("config.json", json.dumps(asdict(config), indent=2)),
        ("scores.json", json.dumps(scores, indent=2)),
    ):
        io.atomic_write(out / name, text.encode())
    losses = History({k: v for k, v in history.history.items() if "loss" in k}, history.epochs)
    plot.training_curves(losses, out / "curves.png")


# ---- handgrad generate --------------------------------------------------------------------------
def load_text_model(path: str | os.PathLike[str]) -> tuple[GPT, list[str]]:
    """The GPT saved by a text run and its vocabulary (id i is vocab[i])."""
    meta = io.read_metadata(path)
    vocab = meta.get("vocab")
    model: Module = io.load(path)
    if not isinstance(model, GPT) or not isinstance(vocab, list):
        raise InputError(f"{path} is not a text model: train one with handgrad train --arch gpt")
    if len(vocab) != model.vocab_size or not all(isinstance(c, str) for c in vocab):
        raise InputError(
            f"{path} has a damaged vocabulary ({len(vocab)} entries for "
            f"{model.vocab_size} token ids)"
        )
    return model, vocab


def encode_prompt(prompt: str, vocab: list[str]) -> torch.Tensor:
    """The prompt's ids (1, T); a character outside the vocabulary is an InputError."""
    if not prompt:
        raise InputError("--prompt: give at least one character")
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted({c for c in prompt if c not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        raise InputError(
            f"the prompt has characters outside the model's vocabulary of {len(vocab)}: {shown}"
        )
    return torch.tensor([[index[c] for c in prompt]], dtype=torch.long)


def generate_text(
    model: GPT,
    vocab: list[str],
    prompt: str | None,
    tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> str:
    """The prompt followed by `tokens` sampled characters (sample_text, joined; a progress bar
    on a terminal with `progress`)."""
    from tqdm.auto import tqdm

    text: list[str] = []
    with tqdm(total=tokens, disable=None if progress else True, leave=False, unit="token") as bar:
        for c in sample_text(model, vocab, prompt, tokens, temperature, top_k, seed):
            bar.update(int(bool(text)))  # the first item is the prompt
            text.append(c)
    return "".join(text)


def sample_text(
    model: GPT,
    vocab: list[str],
    prompt: str | None,
    tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> Iterator[str]:
    """The prompt, then each of `tokens` sampled characters as soon as it is drawn
    (GPT.generate one token at a time on the last --context ids: the same draws as one call,
    in memory that does not grow with `tokens`). No prompt (None): a newline, or the
    vocabulary's first character if the text had no newline. The arguments are checked at
    the first next()."""
    if tokens < 0:
        raise InputError(f"--tokens must be >= 0, got {tokens}")
    if not temperature > 0:
        raise InputError(f"--temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise InputError(f"--top-k must be >= 1, got {top_k}")
    if prompt is None:
        prompt = "\n" if "\n" in vocab else vocab[0]
    idx = encode_prompt(prompt, vocab).to(next(iter(model.parameters())).device)
    g = torch.Generator(device=idx.device).manual_seed(seed)
    yield prompt
    for _ in range(tokens):
        idx = model.generate(idx[:, -model.block_size :], 1, temperature, top_k, generator=g)
        yield vocab[int(idx[0, -1])]
