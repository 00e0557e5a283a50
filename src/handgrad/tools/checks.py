"""TrainConfig.check's checks: the sequence models' and the device's options, the flags that
do not apply to a run (config.APPLIES), and the parsers of --threads and --seed. Each is a
one-line error naming the flag, before any work (or any CUDA call) starts."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any

import torch

from handgrad.data.datasets import DATASETS
from handgrad.errors import InputError

if TYPE_CHECKING:
    from handgrad.tools.config import TrainConfig


def check_sequence_options(config: TrainConfig) -> None:
    """The sequence models' numbers, and the options a text run does not take."""
    for name in ("width", "layers", "steps"):
        v = getattr(config, name)
        if v is not None and v < 1:
            raise InputError(f"--{name} must be >= 1, got {v}")
    for name in ("heads", "context", "eval_every"):
        if getattr(config, name) < 1:
            raise InputError(
                f"--{name.replace('_', '-')} must be >= 1, got {getattr(config, name)}"
            )
    if config.clip_grad_norm is not None and not config.clip_grad_norm > 0:
        raise InputError(f"--clip-grad-norm must be > 0, got {config.clip_grad_norm}")
    check_device(config)
    if config.arch != "gpt":
        return
    width = config.width or 128
    if width % config.heads:
        raise InputError(
            f"--arch gpt: --width ({width}) must be divisible by --heads ({config.heads})"
        )
    for flag, used in (
        ("--distributed", config.distributed),
        ("--resume", config.resume is not None),
        ("--checkpoint-every", config.checkpoint_every > 0),
        ("--patience", bool(config.patience)),
        ("--epochs", config.epochs is not None),
        ("--ensemble", config.ensemble is not None and config.ensemble > 1),
    ):
        if used:
            raise InputError(f"--arch gpt does not take {flag} (a text run counts --steps)")


def check_device(config: TrainConfig) -> None:
    """--device, --cuda-graph and --precision, refused before any CUDA call can fail."""
    if config.precision not in ("float32", "bf16"):
        raise InputError(f"--precision must be float32 or bf16, got {config.precision!r}")
    try:
        device = torch.device(config.device)
    except RuntimeError:
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {config.device!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {config.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {config.device}: this machine has no CUDA device")
    if config.compile and config.distributed:
        raise InputError("--compile does not apply with --distributed (train without one)")
    if config.cuda_graph and device.type != "cuda":
        raise InputError("--cuda-graph needs a CUDA device: add --device cuda")
    if (config.device != "cpu" or config.cuda_graph or config.precision != "float32") and (
        config.arch == "gpt" or config.distributed
    ):
        raise InputError(
            "--device, --cuda-graph and --precision apply to --arch mlp, cnn, gru, lstm and "
            "rnn without --distributed"
        )


THREADS_HELP = (
    "CPU threads: auto (one for a small model, every core for a large one; the default), "
    "a number, or torch (torch's own setting)"
)
SEED_MAX = 2**32 - 1  # NumPy's and scikit-learn's seeds (the splits): 0 .. 2**32 - 1


def parse_threads(text: str) -> int | str | None:
    """--threads: auto, a positive count, or torch (leave torch's setting alone)."""
    if text in ("auto", "torch"):
        return None if text == "torch" else text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"expected auto, torch or a positive number of threads, got {text!r}"
        )
    return n


def parse_seed(text: str) -> int:
    """--seed: an integer from 0 to 2**32 - 1."""
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {SEED_MAX}, got {text!r}")
    return n


def flag_name(f: dataclasses.Field[Any]) -> str:
    """A TrainConfig field's flag: --its-name-with-dashes, or the name its metadata gives."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def check_applicable(config: TrainConfig) -> None:
    """A field set away from its default for a run it does not apply to (config.APPLIES) is
    an error: never ignored unsaid."""
    for f in dataclasses.fields(config):
        misfit = None if getattr(config, f.name) == f.default else config.misfit(f.name)
        if misfit is None:
            continue
        key, kind, kinds = misfit
        if key == "data":
            what = "a bundled dataset" if kind in DATASETS else "not a CSV file"
            raise InputError(f"{flag_name(f)} applies to a CSV file; {kind} is {what}")
        chosen = " (the default)" if key == "optimizer" and config.optimizer is None else ""
        raise InputError(
            f"{flag_name(f)} applies to --{key} {', '.join(kinds)} only, not --{key} {kind}{chosen}"
        )
