"""What `handgrad train` runs, as one dataclass: TrainConfig, its checks and the recipe's
defaults. Each field is also a `handgrad train` flag: its help, metavar and choices sit in the
field's metadata (``flag(...)``), and tools/cli.py builds the parser from the fields, so a new
flag is a new field here and the code that uses it."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from handgrad import registry
from handgrad.data import datasets
from handgrad.data.preprocessing import IMPUTE, TASKS
from handgrad.errors import InputError
from handgrad.nn.activation import Activation
from handgrad.nn.conv import Conv2d
from handgrad.nn.loss import Loss
from handgrad.optim import OPTIMIZERS, SCHEDULES
from handgrad.tools.checks import SEED_MAX, check_applicable, check_sequence_options
from handgrad.tools.checks import THREADS_HELP as THREADS_HELP
from handgrad.tools.checks import parse_seed as parse_seed
from handgrad.tools.checks import parse_threads as parse_threads

# the command line's choices, read from the registry: every class with a cli_name
ACTIVATIONS: dict[str, type[Activation]] = registry.cli_choices(Activation)
LOSSES: dict[str, type[Loss]] = registry.cli_choices(Loss)

# The defaults that differ by kind of data. A table (a CSV) is small: more epochs in smaller
# batches, stopped by the validation loss (the best epoch's weights kept); AdamW's weight decay
# (the L2 penalty that scikit-learn's linear models also have by default); and 5 networks
# trained from 5 initialisations whose outputs are averaged (a deep ensemble: on a few hundred
# rows one network's test score swings with its initial weights and batch order; the mean of
# five swings less). examples/tabular.py measures this recipe against scikit-learn (README
# "Your own data").
RECIPES: dict[str, dict[str, Any]] = {
    "bundled": {
        "epochs": 20,
        "batch_size": 64,
        "patience": 0,
        "ensemble": 1,
        "optimizer": "adam",
        "weight_decay": 0.0,
    },
    "table": {
        "epochs": 200,
        "batch_size": 32,
        "patience": 20,
        "ensemble": 5,
        "optimizer": "adamw",
        "weight_decay": 1.0,
    },
}
MEMBER_SEED_STEP = 1000  # ensemble member k draws its weights and batches from seed + 1000·k

RECURRENT_ARCHS = ("gru", "lstm", "rnn")  # RecurrentClassifier on (N, L, F) sequences
ARCHS = ("mlp", "cnn", *RECURRENT_ARCHS, "gpt")  # gpt: a character-level GPT on text
BY_EPOCH = ("mlp", "cnn", *RECURRENT_ARCHS)  # the archs that train on examples, by epochs

# Which runs a field applies to, by the run's arch, optimizer (the recipe's when none is
# chosen) or data ("table": a CSV file); a field not named here applies to every run. A flag
# set for a run it does not apply to is an error (TrainConfig.check), the `config:` line
# leaves the field out, and TrainConfig.resolved puts it back to its default.
APPLIES: dict[str, dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(("hidden", "batchnorm"), {"arch": ("mlp",)}),
    "activation": {"arch": ("mlp", "cnn")},
    **dict.fromkeys(("channels", "conv_algorithm"), {"arch": ("cnn",)}),
    **dict.fromkeys(("width", "layers"), {"arch": (*RECURRENT_ARCHS, "gpt")}),
    "bidirectional": {"arch": RECURRENT_ARCHS},
    **dict.fromkeys(("heads", "context", "steps", "eval_every"), {"arch": ("gpt",)}),
    **dict.fromkeys(  # a text run: cross-entropy, counted in --steps, on the CPU
        ("loss", "epochs", "patience", "ensemble", "resume", "checkpoint_every", "checkpoint")
        + ("test_fraction", "device", "cuda_graph", "precision", "distributed"),
        {"arch": BY_EPOCH},
    ),
    **dict.fromkeys(  # and --task: a bundled dataset's own task is accepted (load_dataset)
        ("target", "standardize", "impute", "categorical", "drop"), {"data": ("table",)}
    ),
    "momentum": {"optimizer": ("sgd", "rmsprop")},
}


def parse_ints(text: str) -> tuple[int, ...]:
    """128,64 -> (128, 64); "" -> () (--hidden "": no hidden layer); an empty item, as in
    128,,64 or 128, is an error, not dropped."""
    if not text.strip():
        return ()
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def flag(default: Any, help: str | None = None, **cli: Any) -> Any:
    """A field with this default whose `handgrad train` flag shows `help`. `cli` may give the
    flag's metavar, choices, type (else read from the annotation), a name that is not
    --<field-name> (``flag="--quiet", action="store_false"`` for a flag that turns a True
    default off), or the parser's own default where the field's is filled in later."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    """A training run, as the command line describes it (each field: its flag's meaning)."""

    data: str = flag(
        "digits",
        "digits, mnist1d, spiral, parabola, regression, or FILE.csv (default: digits); "
        "with --arch gpt: text (Python's help texts, the default) or a UTF-8 FILE.txt",
        parser_default=None,  # digits, or text for --arch gpt
    )
    target: str = flag(
        "-1",
        "CSV: the target column's name, or its index when no column has that name "
        "(0 the first, -1 the last, as in Python; default: %(default)s)",
    )
    arch: str = flag(
        "mlp",
        "cnn: three Conv1d for 1-D signals (mnist1d), two Conv2d for images; gru, lstm, "
        "rnn: a recurrent layer over the steps of mnist1d (40 of 1 value) or digits (8 rows of "
        "8), then a Linear on every step's output; gpt: a character-level GPT on text",
        choices=list(ARCHS),
    )
    channels: int = flag(25, "cnn channels (default: %(default)s)")  # the MNIST-1D paper's
    conv_algorithm: str = flag(
        "auto",
        "Conv2d: reference (the im2col math as docs/math.md writes it), im2col (the same, "
        "tuned), or winograd (3x3 stride 1: faster, float32 rounding error several times "
        "torch's); auto = im2col unless torch's float32 matmul precision is lowered",
        choices=list(Conv2d.ALGORITHMS),
    )
    # sequences: None is the arch's default (recurrent 6 units in 1 layer; gpt 128 and 4)
    width: int | None = flag(
        None,
        "gru/lstm/rnn: hidden size (default 6, the MNIST-1D paper's); gpt: embedding "
        "width (default 128)",
    )
    layers: int | None = flag(None, "gru/lstm/rnn: stacked layers (default 1); gpt: blocks (4)")
    bidirectional: bool = flag(
        True,
        "gru/lstm/rnn: one direction only (default: both, as the paper's GRU)",
        flag="--unidirectional",
        action="store_false",
    )
    heads: int = flag(4, "gpt: attention heads (default: 4)")
    context: int = flag(128, "gpt: characters per window (default: 128)")  # block_size
    steps: int | None = flag(None, "gpt: optimizer steps (default: 1000; --epochs does not apply)")
    eval_every: int = flag(
        100,
        "gpt: log the training and validation loss every N steps (default: %(default)s)",
        metavar="N",
    )
    clip_grad_norm: float | None = flag(
        None,
        "scale each step's gradients to a total 2-norm of at most MAX "
        "(torch.nn.utils.clip_grad_norm_; default: off)",
        metavar="MAX",
    )
    device: str = flag("cpu", "cpu, cuda or cuda:N (default: %(default)s)")  # outputs: on CPU
    cuda_graph: bool = flag(
        False, "with --device cuda: capture the whole training step in one CUDA graph"
    )
    compile: bool = flag(  # hg.compile_step: the same step, fused by torch.compile
        False,
        "compile the whole training step with torch.compile (its first compiled step takes "
        "seconds to a minute; with --cuda-graph: mode reduce-overhead)",
    )
    precision: str = flag(  # bf16 forward/backward, float32 master weights
        "float32",
        "bf16: bf16 forward and backward, float32 weights (default: %(default)s)",
        choices=["float32", "bf16"],
    )
    hidden: tuple[int, ...] = flag((128,), "mlp hidden widths, e.g. 128,64")  # (): linear
    activation: str = flag(
        "relu", "mlp, cnn: hidden activation (default: %(default)s)", choices=list(ACTIVATIONS)
    )
    dropout: float = flag(0.0, "probability of zeroing a hidden unit in training (default: 0)")
    batchnorm: bool = flag(False, "mlp: BatchNorm1d after hidden layers")
    loss: str = flag(
        "auto",
        "auto: cross_entropy for classes, bce for a binary CSV, mse for regression",
        choices=["auto", *LOSSES],
    )
    optimizer: str | None = flag(
        None, "default: adam, or adamw for a CSV", choices=list(OPTIMIZERS)
    )
    lr: float = flag(1e-3, "learning rate (default: %(default)s)")
    momentum: float = flag(0.0, "sgd and rmsprop: momentum (default: 0)")
    weight_decay: float | None = flag(
        None, "default: 0, or 1.0 for a CSV trained with the default optimizer (adamw)"
    )
    schedule: str = flag(
        "none", "learning rate over the run (default: none, constant)", choices=["none", *SCHEDULES]
    )
    epochs: int | None = flag(None, "default: 20, or 200 for a CSV (with --patience 20)")
    batch_size: int | None = flag(None, "0 = full batch (default: 64, or 32 for a CSV)")
    val_fraction: float = flag(
        0.2,
        "share of the training data held out for validation (the val_ numbers; 0: "
        "none; default: %(default)s)",
    )
    test_fraction: float = flag(
        0.2,
        "share held out for the final test, for data without a test split of its own "
        "(default: %(default)s)",
    )
    task: str = flag(
        "auto",
        "CSV: what the target is (auto: guessed, and the guess is printed with its "
        "reason); binary trains one logit",
        choices=["auto", *TASKS],
    )
    standardize: bool = flag(
        True,
        "CSV: keep numeric features (and a regression target) in their own units",
        flag="--no-standardize",
        action="store_false",
    )
    impute: str = flag(
        "none",
        "CSV: fill missing numbers with the training mean or median (none: a missing "
        "value is an error)",
        choices=list(IMPUTE),
    )
    categorical: tuple[str, ...] = flag(
        (),
        "CSV: one-hot this numeric column too (text columns always are; repeatable)",
        metavar="COLUMN",
    )
    drop: tuple[str, ...] = flag((), "CSV: leave out (repeatable)", metavar="COLUMN")
    seed: int = flag(
        0, "draws the weights, splits and batches: 0 to 2**32 - 1 (default: 0)", type=parse_seed
    )
    out: str = flag(
        "runs/train", "run folder (default: %(default)s); replaced whole when the run succeeds"
    )
    force: bool = flag(
        False,
        "write into an --out folder that holds files handgrad did not write (they are kept)",
    )
    resume: str | None = flag(None, "continue from this checkpoint", metavar="CHECKPOINT")
    checkpoint_every: int = flag(0, "save a checkpoint every N epochs (0: never)", metavar="N")
    patience: int | None = flag(
        None,
        "stop when the validation loss has not improved for this many epochs, keeping "
        "the best epoch's weights; 0: never (default: 0, or 20 for a CSV)",
    )
    ensemble: int | None = flag(
        None,
        "train K networks from seeds SEED, SEED+1000, ... and average their outputs "
        "(default: 1, or 5 for a CSV; 1 with --resume, --checkpoint-every or --distributed)",
        metavar="K",
    )
    checkpoint: str | None = flag(
        None,
        "where checkpoints go (default: OUT.checkpoint.safetensors beside --out)",
        metavar="PATH",
    )
    progress: bool = flag(
        True, "no progress bar or per-epoch lines", flag="--quiet", action="store_false"
    )
    distributed: bool = flag(
        False, "data parallel; start with torchrun --nproc-per-node N -m handgrad train"
    )
    threads: int | str | None = flag("auto", THREADS_HELP, type=parse_threads)
    extra: dict[str, Any] = field(default_factory=dict, metadata={"flag": None})  # no flag

    def check(self) -> None:
        """Reject unknown names and impossible numbers before any work starts."""
        for name, table in (("activation", ACTIVATIONS), ("optimizer", OPTIMIZERS)):
            value = getattr(self, name)
            if value not in table and not (name == "optimizer" and value is None):  # the recipe's
                raise InputError(f"unknown {name} {value!r}; choose from {', '.join(table)}")
        if self.arch not in ARCHS:
            raise InputError(f"unknown arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        check_sequence_options(self)
        if self.conv_algorithm not in Conv2d.ALGORITHMS:
            raise InputError(
                f"unknown conv_algorithm {self.conv_algorithm!r}; "
                f"choose from {', '.join(Conv2d.ALGORITHMS)}"
            )
        if self.loss != "auto" and self.loss not in LOSSES:
            raise InputError(f"unknown loss {self.loss!r}; choose from auto, {', '.join(LOSSES)}")
        if self.schedule != "none" and self.schedule not in SCHEDULES:
            raise InputError(
                f"unknown schedule {self.schedule!r}; choose from none, {', '.join(SCHEDULES)}"
            )
        if self.batch_size is not None and self.batch_size < 0:
            raise InputError(f"batch size must be >= 1 (0: full batch), got {self.batch_size}")
        if (self.epochs is not None and self.epochs < 1) or self.lr < 0:
            raise InputError(f"need epochs >= 1 and lr >= 0, got {self.epochs} and {self.lr}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"need dropout in [0, 1), got {self.dropout}")
        if self.patience is not None and self.patience < 0:
            raise InputError(f"--patience must be >= 0, got {self.patience}")
        if self.patience and self.val_fraction == 0:
            raise InputError("--patience needs a validation split: --val-fraction above 0")
        if any(h < 1 for h in self.hidden):
            raise InputError(f"hidden widths must be >= 1, got {self.hidden}")
        if not 0 <= self.val_fraction < 1 or not 0 < self.test_fraction < 1:
            raise InputError(
                f"need --val-fraction in [0, 1) and --test-fraction in (0, 1), got "
                f"{self.val_fraction} and {self.test_fraction}"
            )
        if self.task != "auto" and self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}; choose from auto, {', '.join(TASKS)}")
        if self.impute not in IMPUTE:
            raise InputError(f"unknown impute {self.impute!r}; choose from {', '.join(IMPUTE)}")
        if self.checkpoint_every < 0:
            raise InputError(f"--checkpoint-every must be >= 0, got {self.checkpoint_every}")
        if self.ensemble is not None and self.ensemble < 1:
            raise InputError(f"--ensemble must be >= 1, got {self.ensemble}")
        if self.ensemble is not None and self.ensemble > 1:
            for name, used in self.one_network_flags():
                if used:
                    raise InputError(
                        f"--ensemble {self.ensemble} cannot be combined with {name}, which "
                        "trains one network: pass --ensemble 1"
                    )
        if not 0 <= self.seed <= SEED_MAX:
            raise InputError(f"--seed: expected an integer from 0 to {SEED_MAX}, got {self.seed}")
        check_applicable(self)

    def applies(self, name: str) -> bool:
        """Whether the field `name` means anything to this run (APPLIES)."""
        return self.misfit(name) is None

    def misfit(self, name: str) -> tuple[str, str, tuple[str, ...]] | None:
        """Why `name` does not apply: (arch, optimizer or data; this run's; those it applies
        to), the optimizer being the recipe's when none is chosen, the data "table" for a CSV."""
        for key, kinds in APPLIES.get(name, {}).items():
            recipe = RECIPES["table" if self.is_table() else "bundled"]
            kind = {"optimizer": self.optimizer or recipe["optimizer"], "data": self.data}.get(
                key, getattr(self, key)
            )
            if ("table" if key == "data" and self.is_table() else kind) not in kinds:
                return key, kind, kinds
        return None

    def one_network_flags(self) -> list[tuple[str, bool]]:
        """The flags whose runs hold one network (checkpoints, data-parallel ranks)."""
        return [
            ("--resume", self.resume is not None),
            ("--checkpoint-every", self.checkpoint_every > 0),
            ("--distributed", self.distributed),
        ]

    def resolved(self) -> TrainConfig:
        """A copy with the recipe's epochs, batch size, patience and ensemble size where they
        are None (a run that checkpoints, resumes or runs distributed trains one network)."""
        recipe = RECIPES["table" if self.is_table() else "bundled"]
        if self.arch == "gpt":  # counts --steps; epochs stay None
            recipe = {**RECIPES["bundled"], "batch_size": 32, "epochs": None}
        if any(used for _, used in self.one_network_flags()):
            recipe = {**recipe, "ensemble": 1}
        recurrent = self.arch in RECURRENT_ARCHS
        done = replace(
            self,
            width=self.width or (6 if recurrent else 128 if self.arch == "gpt" else None),
            layers=self.layers or (1 if recurrent else 4 if self.arch == "gpt" else None),
            steps=self.steps or (1000 if self.arch == "gpt" else None),
            epochs=recipe.get("epochs") if self.epochs is None else self.epochs,
            batch_size=recipe["batch_size"] if self.batch_size is None else self.batch_size,
            patience=recipe["patience"] if self.patience is None else self.patience,
            ensemble=recipe["ensemble"] if self.ensemble is None else self.ensemble,
            optimizer=recipe["optimizer"] if self.optimizer is None else self.optimizer,
            weight_decay=self._weight_decay(recipe),
        )  # and the fields that do not apply to this run at their defaults (APPLIES)
        unused: dict[str, Any] = {
            f.name: f.default for f in fields(done) if not done.applies(f.name)
        }
        return replace(done, **unused)

    def _weight_decay(self, recipe: dict[str, Any]) -> float:
        """The given weight decay; else the recipe's with the recipe's optimizer, 0 with one
        the user chose."""
        if self.weight_decay is not None:
            return self.weight_decay
        return recipe["weight_decay"] if self.optimizer is None else 0.0

    @property
    def checkpoint_path(self) -> Path:
        """Where --checkpoint-every writes: --checkpoint, or OUT.checkpoint.safetensors beside
        the run folder (outside it, so a kill never leaves it half in the old run)."""
        if self.checkpoint:
            return Path(self.checkpoint)
        out = Path(self.out)
        return out.absolute().parent / f"{out.name}.checkpoint.safetensors"

    def is_table(self) -> bool:
        if self.arch == "gpt":  # text: "text" (the default corpus) or a text file
            return False
        return self.data not in datasets.DATASETS and (
            self.data.endswith(".csv") or os.path.isfile(self.data)
        )
