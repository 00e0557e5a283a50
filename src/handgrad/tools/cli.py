"""The `handgrad` command: lab, train, predict, generate, check, bench. A user's mistake prints
one line; an unexpected error inside handgrad shows its traceback (always, with --debug)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from handgrad.errors import InputError
from handgrad.tools.outputs import check_output_file

LAB_EXAMPLES = """examples:
  handgrad lab                              all tasks, figure in runs/lab/fit_4_4.png
  handgrad lab --task 4.4 --figure fit.png  one task
  handgrad lab --task 2.2 --task 3.2        several tasks
"""

TRAIN_EXAMPLES = """examples:
  handgrad train --data digits --hidden 128 --dropout 0.2 --optimizer adamw --lr 3e-3 \\
      --weight-decay 0.01 --schedule cosine --epochs 60 --out runs/digits
  handgrad train --data spiral --hidden 64,64 --activation tanh --epochs 200 --out runs/spiral
  handgrad train --data parabola --hidden 10 --optimizer sgd --lr 0.02 --batch-size 0 \\
      --epochs 2000 --out runs/parabola          (batch size 0 = full batch)
  handgrad train --data my.csv --target label --out runs/mine
  handgrad train --data houses.csv --target price --task regression --impute median \\
      --categorical rooms --drop id --out runs/houses
  handgrad train --data digits --epochs 60 --checkpoint-every 10 --out runs/long
  handgrad train --data digits --epochs 60 --resume runs/long.checkpoint.safetensors \\
      --out runs/long                             (continue a run that was stopped)
  handgrad train --data mnist1d --arch cnn --optimizer adam --lr 0.01 --epochs 150 \\
      --batch-size 100 --out runs/mnist1d-cnn
  handgrad train --data mnist1d --arch gru --width 6 --optimizer adam --lr 0.01 \\
      --epochs 150 --batch-size 100 --val-fraction 0 --out runs/mnist1d-gru
                                                  (the MNIST-1D paper's bidirectional GRU)
  handgrad train --arch gpt --data text --layers 4 --heads 4 --width 128 --context 128 \\
      --optimizer adamw --lr 3e-3 --weight-decay 0.1 --schedule cosine --clip-grad-norm 1 \\
      --steps 2000 --out runs/gpt                  (a character-level GPT on Python's help texts)

splits: training, validation (--val-fraction of the training data: the val_ numbers,
--patience) and test (the dataset's own, or --test-fraction), scored once at the end.
a CSV's numeric columns are standardised and its text columns one-hot, with statistics of
the training split, saved in the model file; the task is guessed (and printed) or --task.
a CSV trains an ensemble of 5 networks by default (--ensemble), their outputs averaged.

writes into --out: model.safetensors, history.json, config.json, scores.json, curves.png,
and confusion.png (classification), boundary.png (2-D inputs) or fit.png (1-D regression).
The run is written beside --out and replaces the previous run whole when complete; a folder
holding other files is refused unless --force (which keeps them).
"""

PREDICT_EXAMPLES = """examples:
  handgrad predict runs/digits/model.safetensors features.csv
  handgrad predict runs/digits/model.safetensors features.csv --out predictions.csv

FILE is a CSV with a header row. For a model trained on a CSV, its columns are matched by
name (any order; others, such as the label, are ignored), the saved preprocessing is applied
and classes come back as their own labels; otherwise the columns are the features in order
(--drop leaves one out). Classification prints the class and its probability, regression
the value in the target's units. --out never overwrites the model or FILE.
"""

BENCH_EXAMPLES = """examples:
  handgrad bench                       every suite: MLP sizes, scaling, conv layers, sequence
  handgrad bench --suite sequence      GRU and GPT training steps (on one thread)
  handgrad bench --suite mlp --json bench.json
  handgrad bench --suite conv --rounds 3

each implementation runs the same step in alternation, round by round; the table shows
median milliseconds per step and handgrad's time divided by torch's and NumPy's
"""

GENERATE_EXAMPLES = """examples:
  handgrad generate runs/gpt/model.safetensors --prompt "The " --tokens 300
  handgrad generate runs/gpt/model.safetensors --prompt "def" --temperature 0.8 --top-k 10 \\
      --seed 1 --progress

MODEL is a model.safetensors written by `handgrad train --arch gpt`; its vocabulary is stored
in it, and a prompt character outside it is an error. Prints the prompt and the sampled text.
"""

CHECK_EXAMPLES = """examples:
  handgrad check my_layers.py:MyLinear --args 4,3 --input-shape 5,4
  handgrad check my_layers.py:MyReLU --input-shape 8
  handgrad check my_losses.py:MyMSE --input-shape 6,1      (a loss: target has the same shape)

the class needs forward() and backward(); see handgrad.check.gradcheck for the conventions.
"""


def _threads(text: str) -> int | str | None:
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


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def _lab(args: argparse.Namespace) -> int:
    import torch

    from handgrad.tools import lab

    unknown = [t for t in args.task if t not in lab.TASKS]
    if unknown:
        raise InputError(f"unknown task {', '.join(unknown)}; choose from {', '.join(lab.TASKS)}")
    if not args.no_figure and (not args.task or "4.4" in args.task):
        check_output_file(args.figure, "--figure", make_folders=True)
    torch.set_printoptions(precision=4, sci_mode=None)
    names = args.task or list(lab.TASKS)
    figure = None if args.no_figure else args.figure
    from handgrad.threads import policy

    with policy(args.threads, work=0):  # the lab's networks are tiny: one thread under "auto"
        results = [lab.task_4_4(figure) if n == "4.4" else lab.TASKS[n]() for n in names]
    for r in results:
        print(r, end="\n\n")
    bad = [r.task for r in results if not r.agree]
    print(
        f"{len(results) - len(bad)} of {len(results)} tasks agree with PyTorch"
        + (f"; disagreeing: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


def _train(args: argparse.Namespace) -> int:
    from handgrad.tools.recipe import TrainConfig, format_scores, run

    config = TrainConfig(
        data=args.data or ("text" if args.arch == "gpt" else "digits"),
        target=args.target,
        arch=args.arch,
        channels=args.channels,
        conv_algorithm=args.conv_algorithm,
        width=args.width,
        layers=args.layers,
        bidirectional=not args.unidirectional,
        heads=args.heads,
        context=args.context,
        steps=args.steps,
        eval_every=args.eval_every,
        clip_grad_norm=args.clip_grad_norm,
        device=args.device,
        cuda_graph=args.cuda_graph,
        precision=args.precision,
        hidden=args.hidden,
        activation=args.activation,
        dropout=args.dropout,
        batchnorm=args.batchnorm,
        loss=args.loss,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        ensemble=args.ensemble,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        task=args.task,
        standardize=not args.no_standardize,
        impute=args.impute,
        categorical=tuple(args.categorical),
        drop=tuple(args.drop),
        seed=args.seed,
        out=args.out,
        force=args.force,
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        checkpoint=args.checkpoint,
        progress=not args.quiet,
        distributed=args.distributed,
        threads=args.threads,
    )
    config.check()
    config = config.resolved()
    print("config: " + ", ".join(f"{k}={v}" for k, v in vars(config).items() if k != "extra"))
    with _terminate_cleanly():
        result = run(config)
    if result.files:  # in a distributed run, only rank 0 reports and writes
        print("\n" + format_scores(result.scores))
        print("\nwrote " + ", ".join(str(p) for p in result.files))
    return 0


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM (kill's default) into SystemExit, so a killed run removes its temporary
    files and staging folder on the way out, as Ctrl-C does."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _predict(args: argparse.Namespace) -> int:
    from handgrad import io

    if args.out:
        check_output_file(args.out, "--out", inputs=[args.model, args.file])
    meta = io.read_metadata(args.model)
    model = io.load(args.model)
    prep = getattr(model, "preprocessing", None)
    if prep is not None:  # a model trained on a table: its columns by name, its labels back
        from handgrad.data.preprocessing import Table

        labels, prob = prep.predict(model, Table.read_csv(args.file), threads=args.threads)
        if prob is None:
            lines = [prep.target or "prediction"] + [f"{v:.6g}" for v in labels]
        else:
            lines = ["class,probability"] + [f"{c},{float(q):.4f}" for c, q in zip(labels, prob)]
    else:
        lines = _predict_plain(args, model, meta)
    text = "\n".join(lines) + "\n"
    if args.out:
        io.atomic_write(args.out, text.encode())
        print(f"wrote {len(lines) - 1} predictions to {args.out}")
    else:
        print(text, end="")
    return 0


def _predict_plain(args: argparse.Namespace, model: Any, meta: dict[str, Any]) -> list[str]:
    """A model without preprocessing (a bundled dataset): the CSV's columns in order."""
    import csv

    import torch

    from handgrad.training import predict

    path = Path(args.file)
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
    except OSError as exc:
        raise FileNotFoundError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text CSV file") from None
    if len(rows) < 2:
        raise InputError(f"{path} needs a header row and at least one data row")
    header = rows[0]
    keep = [i for i, name in enumerate(header) if name not in args.drop]
    try:
        X = torch.tensor([[float(r[i]) for i in keep] for r in rows[1:]], dtype=torch.float32)
    except (ValueError, IndexError):
        raise InputError(f"{path} holds a non-numeric value or a short row") from None
    bad = ~torch.isfinite(X)
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise InputError(
            f"{path}: column {header[keep[col]]!r}, data row {row + 1} is missing or not finite"
        )
    shape = meta.get("input_shape")
    if shape and X.shape[1] != int(torch.tensor(shape).prod()):
        raise InputError(
            f"the model expects {int(torch.tensor(shape).prod())} features, "
            f"{path} has {X.shape[1]} columns"
        )
    if shape:
        X = X.reshape(-1, *shape)
    p = next(iter(model.parameters()))
    out = predict(model, X.to(p.dtype), threads=args.threads)
    if meta.get("task") == "classification":
        probs = torch.softmax(out, 1)
        conf, cls = probs.max(1)
        return ["class,probability"] + [f"{int(c)},{float(q):.4f}" for c, q in zip(cls, conf)]
    return ["prediction"] + [",".join(f"{float(v):.6g}" for v in row.reshape(-1)) for row in out]


def _generate(args: argparse.Namespace) -> int:
    from handgrad.threads import policy
    from handgrad.tools.text_recipe import generate_text, load_text_model

    model, vocab = load_text_model(args.model)
    with policy(args.threads, work=0):  # one sequence, token by token: small products
        text = generate_text(
            model,
            vocab,
            args.prompt,
            args.tokens,
            args.temperature,
            args.top_k,
            args.seed,
            progress=args.progress,
        )
    print(text)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from handgrad.tools import bench

    unknown = [s for s in args.suite if s not in bench.SUITES]
    if unknown:
        raise InputError(
            f"unknown suite {', '.join(unknown)}; choose from {', '.join(bench.SUITES)}"
        )
    if args.busy is not None and args.busy < 0:
        raise InputError(f"--busy: expected a number of processes >= 0, got {args.busy}")
    if args.rounds < 1:
        raise InputError(f"--rounds: expected a number >= 1, got {args.rounds}")
    if args.json:
        check_output_file(args.json, "--json", make_folders=False)
    print(bench.machine(), flush=True)
    if args.busy is not None:
        cases = bench.MLP_CASES
        rows = [
            row
            for i, case in enumerate(cases)
            for row in bench.run_busy([_announce(i, cases)], args.busy, rounds=args.rounds)
        ]
        print(bench.format_busy_table(rows, args.busy))
    else:
        cases = [c for s in (args.suite or list(bench.SUITES)) for c in bench.SUITES[s]]
        rows = [
            row
            for i, case in enumerate(cases)
            for row in bench.run([_announce(i, cases)], rounds=args.rounds)
        ]
        print(bench.format_table(rows))
    if args.json:
        from handgrad.io import atomic_write

        atomic_write(args.json, bench.to_json(rows).encode())
        print(f"wrote {args.json}")
    return 0


def _announce(i: int, cases: Sequence[Any]) -> Any:
    """Progress on stderr (the table goes to stdout): which case of how many is running."""
    print(f"[{i + 1}/{len(cases)}] {cases[i].name}", file=sys.stderr, flush=True)
    return cases[i]


MAX_CHECK_ELEMENTS = 1_000_000  # float64 input and its copies: tens of MB, not the machine


def _check(args: argparse.Namespace) -> int:
    import importlib.util

    import torch

    from handgrad.check import gradcheck

    file, _, class_name = args.target.rpartition(":")
    if not file or not class_name:
        raise InputError(f"expected FILE.py:ClassName, got {args.target!r}")
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if any(n < 1 for n in args.input_shape) or not args.input_shape:
        raise InputError(
            f"--input-shape: every size must be >= 1, got {','.join(map(str, args.input_shape))}"
        )
    if math.prod(args.input_shape) > MAX_CHECK_ELEMENTS:
        raise InputError(
            f"--input-shape: {math.prod(args.input_shape):,} elements; a gradient check needs "
            f"only a few (at most {MAX_CHECK_ELEMENTS:,})"
        )
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise InputError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)  # the user's own file: running it is the point
    except SyntaxError as exc:
        raise InputError(f"{path}, line {exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 the user's code failed, not handgrad
        raise InputError(
            f"importing {path} failed: {type(exc).__name__}: {exc} (run it with python to see "
            "where)"
        ) from None
    finally:
        sys.path.pop(0)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise InputError(f"{path} defines no {class_name}")
    try:
        ctor_args = [float(a) if "." in a else int(a) for a in args.args.split(",") if a.strip()]
    except ValueError:
        raise InputError(f"--args: expected comma-separated numbers, got {args.args!r}") from None
    try:
        obj = cls(*ctor_args)
    except Exception as exc:  # noqa: BLE001 the user's constructor
        raise InputError(
            f"cannot build {class_name}({', '.join(map(str, ctor_args))}): "
            f"{type(exc).__name__}: {exc}; pass its arguments with --args"
        ) from exc
    torch.manual_seed(args.seed)
    x = torch.randn(args.input_shape, dtype=torch.float64)
    from handgrad.check import _is_loss

    inputs = [x, torch.rand(args.input_shape, dtype=torch.float64)] if _is_loss(obj) else [x]
    try:
        report = gradcheck(obj, *inputs)
    except Exception as exc:
        if not _raised_in(exc, path):
            raise  # a bug in handgrad: its traceback
        raise InputError(
            f"{class_name} raised {type(exc).__name__}: {exc} (--debug shows where in {path.name})"
        ) from exc
    print(report)
    return 0 if report.ok else 1


def _raised_in(exc: BaseException, path: Path) -> bool:
    """Whether the exception came out of the user's file (its innermost frames are there)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return any(Path(f.filename).resolve() == path.resolve() for f in frames[-3:])


class _Parser(argparse.ArgumentParser):
    """argparse, with a flag's mistake on one line (argparse prints its usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="handgrad",
        description="Neural networks from scratch on PyTorch tensors, every backward by hand.",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of every error (also HANDGRAD_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    threads_help = (
        "CPU threads: auto (one for a small model, every core for a large one; the default), "
        "a number, or torch (torch's own setting)"
    )

    p = sub.add_parser(
        "lab",
        help="run the seed lab's tasks 1.1-4.4 beside PyTorch",
        epilog=LAB_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="N.M",
        help="run only this task (repeatable), e.g. 4.4",
    )
    p.add_argument(
        "--figure",
        default="runs/lab/fit_4_4.png",
        help="where task 4.4 writes its PNG of the 11 fits (default: %(default)s)",
    )
    p.add_argument("--no-figure", action="store_true", help="skip the 4.4 figure")
    p.add_argument("--threads", type=_threads, default="auto", help=threads_help)
    p.set_defaults(func=_lab)

    from handgrad.nn.conv import Conv2d
    from handgrad.optim import OPTIMIZERS, SCHEDULES
    from handgrad.tools.recipe import ACTIVATIONS, ARCHS, LOSSES

    p = sub.add_parser(
        "train",
        help="train an MLP, CNN, RNN/GRU/LSTM on a dataset or CSV file, or a GPT on text",
        epilog=TRAIN_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument(
        "--data",
        help="digits, mnist1d, spiral, parabola, regression, or FILE.csv (default: digits); "
        "with --arch gpt: text (Python's help texts, the default) or a UTF-8 FILE.txt",
    )
    p.add_argument(
        "--target",
        default="-1",
        help="CSV: the target column's name, or its index when no column has that name "
        "(0 the first, -1 the last, as in Python; default: %(default)s)",
    )
    p.add_argument(
        "--task",
        choices=["auto", "classification", "binary", "regression"],
        default="auto",
        help="CSV: what the target is (auto: guessed, and the guess is printed with its "
        "reason); binary trains one logit",
    )
    p.add_argument(
        "--no-standardize",
        action="store_true",
        help="CSV: keep numeric features (and a regression target) in their own units",
    )
    p.add_argument(
        "--impute",
        choices=["none", "mean", "median"],
        default="none",
        help="CSV: fill missing numbers with the training mean or median (none: a missing "
        "value is an error)",
    )
    p.add_argument(
        "--categorical",
        action="append",
        default=[],
        metavar="COLUMN",
        help="CSV: one-hot this numeric column too (text columns always are; repeatable)",
    )
    p.add_argument(
        "--drop", action="append", default=[], metavar="COLUMN", help="CSV: leave out (repeatable)"
    )
    p.add_argument(
        "--arch",
        choices=list(ARCHS),
        default="mlp",
        help="cnn: three Conv1d for 1-D signals (mnist1d), two Conv2d for images; gru, lstm, "
        "rnn: a recurrent layer over the steps of mnist1d (40 of 1 value) or digits (8 rows of "
        "8), then a Linear on every step's output; gpt: a character-level GPT on text",
    )
    p.add_argument(
        "--width",
        type=int,
        help="gru/lstm/rnn: hidden size (default 6, the MNIST-1D paper's); gpt: embedding "
        "width (default 128)",
    )
    p.add_argument(
        "--layers", type=int, help="gru/lstm/rnn: stacked layers (default 1); gpt: blocks (4)"
    )
    p.add_argument(
        "--unidirectional",
        action="store_true",
        help="gru/lstm/rnn: one direction only (default: both, as the paper's GRU)",
    )
    p.add_argument("--heads", type=int, default=4, help="gpt: attention heads (default: 4)")
    p.add_argument(
        "--context", type=int, default=128, help="gpt: characters per window (default: 128)"
    )
    p.add_argument(
        "--steps", type=int, help="gpt: optimizer steps (default: 1000; --epochs does not apply)"
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=100,
        metavar="N",
        help="gpt: log the training and validation loss every N steps (default: %(default)s)",
    )
    p.add_argument(
        "--clip-grad-norm",
        type=float,
        metavar="MAX",
        help="scale each step's gradients to a total 2-norm of at most MAX "
        "(torch.nn.utils.clip_grad_norm_; default: off)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="with --device cuda: capture the whole training step in one CUDA graph",
    )
    p.add_argument(
        "--precision",
        choices=["float32", "bf16"],
        default="float32",
        help="bf16: bf16 forward and backward, float32 weights (default: %(default)s)",
    )
    p.add_argument("--channels", type=int, default=25, help="cnn channels (default: %(default)s)")
    p.add_argument(
        "--conv-algorithm",
        choices=list(Conv2d.ALGORITHMS),
        default="auto",
        help="Conv2d: reference (the im2col math as docs/math.md writes it), im2col (the same, "
        "tuned), or winograd (3x3 stride 1: faster, float32 rounding error several times "
        "torch's); auto = im2col unless torch's float32 matmul precision is lowered",
    )
    p.add_argument("--hidden", type=_ints, default=(128,), help="mlp hidden widths, e.g. 128,64")
    p.add_argument("--activation", choices=list(ACTIVATIONS), default="relu")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batchnorm", action="store_true", help="BatchNorm1d after hidden layers")
    p.add_argument("--loss", choices=["auto", *LOSSES], default="auto")
    p.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), help="default: adam, or adamw for a CSV"
    )
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument(
        "--weight-decay",
        type=float,
        help="default: 0, or 1.0 for a CSV trained with the default optimizer (adamw)",
    )
    p.add_argument("--schedule", choices=["none", *SCHEDULES], default="none")
    p.add_argument("--epochs", type=int, help="default: 20, or 200 for a CSV (with --patience 20)")
    p.add_argument("--batch-size", type=int, help="0 = full batch (default: 64, or 32 for a CSV)")
    p.add_argument(
        "--patience",
        type=int,
        help="stop when the validation loss has not improved for this many epochs, keeping "
        "the best epoch's weights; 0: never (default: 0, or 20 for a CSV)",
    )
    p.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="train K networks from seeds SEED, SEED+1000, ... and average their outputs "
        "(default: 1, or 5 for a CSV; 1 with --resume, --checkpoint-every or --distributed)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of the training data held out for validation (the val_ numbers; 0: "
        "none; default: %(default)s)",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share held out for the final test, for data without a test split of its own "
        "(default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out",
        default="runs/train",
        help="run folder (default: %(default)s); replaced whole when the run succeeds",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="write into an --out folder that holds files handgrad did not write (they are kept)",
    )
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from this checkpoint")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="save a checkpoint every N epochs (0: never)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="where checkpoints go (default: OUT.checkpoint.safetensors beside --out)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data parallel; start with torchrun --nproc-per-node N -m handgrad train",
    )
    p.add_argument("--threads", type=_threads, default="auto", help=threads_help)
    p.set_defaults(func=_train)

    p = sub.add_parser(
        "predict",
        help="run a saved model on a CSV of features",
        epilog=PREDICT_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument("model", help="a model.safetensors written by handgrad")
    p.add_argument("file", help="CSV with a header row")
    p.add_argument(
        "--drop",
        action="append",
        default=[],
        metavar="COLUMN",
        help="ignore this column (repeatable)",
    )
    p.add_argument("--out", help="write the predictions here instead of printing them")
    p.add_argument("--threads", type=_threads, default="auto", help=threads_help)
    p.set_defaults(func=_predict)

    p = sub.add_parser(
        "bench",
        help="time training steps: handgrad vs torch eager vs NumPy",
        epilog=BENCH_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument(
        "--suite",
        action="append",
        default=[],
        metavar="NAME",
        help="mlp, scaling, conv or sequence (repeatable; default: all)",
    )
    p.add_argument("--rounds", type=int, default=7, help="timing rounds (default: %(default)s)")
    p.add_argument("--json", help="also write the numbers here as JSON")
    p.add_argument(
        "--busy",
        type=int,
        metavar="K",
        help="time the MLP steps while K busy processes run beside them (handgrad's thread "
        "policy, handgrad at torch's thread count, torch eager)",
    )
    p.set_defaults(func=_bench)

    p = sub.add_parser(
        "generate",
        help="sample text from a GPT trained with handgrad train --arch gpt",
        epilog=GENERATE_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument("model", metavar="MODEL", help="a model.safetensors of a text run")
    p.add_argument(
        "--prompt",
        help="the text to continue (default: a newline, or the vocabulary's first character)",
    )
    p.add_argument("--tokens", type=int, default=200, help="characters to sample (default: 200)")
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divides the logits: below 1 more predictable, above 1 more varied (default: 1)",
    )
    p.add_argument("--top-k", type=int, help="sample only among the K likeliest characters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    p.add_argument("--threads", type=_threads, default="auto", help=threads_help)
    p.set_defaults(func=_generate)

    p = sub.add_parser(
        "check",
        help="gradcheck a layer or loss class from a Python file",
        epilog=CHECK_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument("target", metavar="FILE.py:ClassName")
    p.add_argument("--args", default="", help="constructor arguments, e.g. 4,3")
    p.add_argument("--input-shape", type=_ints, default=(4, 3), help="default: %(default)s")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. A user's mistake (a HandgradError, or a file that cannot be read or
    written) prints one line and returns 1; anything else is a bug in handgrad and shows its
    traceback. --debug or HANDGRAD_DEBUG=1 shows the traceback of every error."""
    args = build_parser().parse_args(argv)
    from handgrad.errors import HandgradError

    debug = args.debug or os.environ.get("HANDGRAD_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args))
    except (HandgradError, OSError) as exc:
        if debug:
            raise
        print(f"handgrad {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
