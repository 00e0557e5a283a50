"""TrainConfig.check's checks of the sequence models' and the device's options: each a
one-line error naming the flag, before any work (or any CUDA call) starts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

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
    if config.cuda_graph and device.type != "cuda":
        raise InputError("--cuda-graph needs a CUDA device: add --device cuda")
    if (config.device != "cpu" or config.cuda_graph or config.precision != "float32") and (
        config.arch == "gpt" or config.distributed
    ):
        raise InputError(
            "--device, --cuda-graph and --precision apply to --arch mlp, cnn, gru, lstm and "
            "rnn without --distributed"
        )
