"""The `handgrad` command: lab, train, predict, generate, check, bench. A user's mistake prints
one line, and so does Ctrl-C (exit status 130); an unexpected error inside handgrad shows its
traceback (always, with --debug)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from handgrad.tools import commands, course
from handgrad.tools.config import THREADS_HELP
from handgrad.tools.config import parse_ints as _ints
from handgrad.tools.config import parse_seed as _seed
from handgrad.tools.config import parse_threads as _threads
from handgrad.tools.flags import add_train_flags

LAB_EXAMPLES = """examples:
  handgrad lab                              all tasks, figure in runs/lab/fit_4_4.png
  handgrad lab new my_lab --lang en         a student's workspace: the tasks to do, then
                                            handgrad grade my_lab
  handgrad lab new opt --chapters 5,9       chapters past the seed: optimizers, LayerNorm
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
holding other files is refused unless --force (which keeps them). Ctrl-C stops it with one
line, the previous run kept. A flag for another --arch, --optimizer or a CSV (its help says
which: "gpt: ...", "sgd and rmsprop: ...", "CSV: ...") is an error, never ignored.
"""

PREDICT_EXAMPLES = """examples:
  handgrad predict runs/digits/model.safetensors features.csv
  handgrad predict runs/digits/model.safetensors features.csv --out predictions.csv

FILE is a CSV with a header row (UTF-8, a byte-order mark allowed; separated by commas,
semicolons or tabs). It holds RAW features: the model file's saved steps are applied. For a
model trained on a CSV, its columns are matched by name (any order; others, such as the
label, are ignored), its preprocessing is applied and classes come back as their own labels;
otherwise the columns are the features in order (--drop leaves one out), as the dataset's
own files hold them (digits: pixels 0..16; the saved scaling / 16 is applied). Classification
prints the class and its probability, regression the value in the target's units. --out
never overwrites the model or FILE.
"""

BENCH_EXAMPLES = """examples:
  handgrad bench                       every suite: MLP sizes, scaling, conv layers, sequence
  handgrad bench --suite sequence      GRU and GPT training steps (on one thread)
  handgrad bench --suite mlp --json bench.json
  handgrad bench --suite conv --rounds 3
  handgrad bench --compiled            also compiled: hg.compile_step and torch.compile
  handgrad bench --compiled --suite mlp --rounds 3

each implementation runs the same step in alternation, round by round; the table shows
median milliseconds per step and handgrad's time divided by torch's and NumPy's. With
--compiled each case (MLP tiny/digits/large, the MNIST-1D CNN, Conv2d 32->64, the GRU, the
GPT) is timed four ways: handgrad and torch, eager and compiled (torch's whole step, the
optimizer included, under torch.compile); the compile times are printed beside them. The
compiling takes minutes (the GPT's and GRU's the longest).
"""

GENERATE_EXAMPLES = """examples:
  handgrad generate runs/gpt/model.safetensors --prompt "The " --tokens 300
  handgrad generate runs/gpt/model.safetensors --prompt "def" --temperature 0.8 --top-k 10 \\
      --seed 1 --progress

MODEL is a model.safetensors written by `handgrad train --arch gpt`; its vocabulary is stored
in it, and a prompt character outside it is an error. Prints the prompt, then each sampled
character as it is drawn; a reader that stops early (| head) ends it quietly.
"""

CHECK_EXAMPLES = """examples:
  handgrad check my_layers.py:MyLinear --args 4,3 --input-shape 5,4
  handgrad check my_layers.py:MyReLU --input-shape 8
  handgrad check my_losses.py:MyMSE --input-shape 6,1      (a loss: target has the same shape)

the class needs forward() and backward(); see handgrad.check.gradcheck for the conventions.
"""


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
    from handgrad import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    raw = argparse.RawDescriptionHelpFormatter
    threads_help = THREADS_HELP

    p = sub.add_parser(
        "lab",
        help="run the seed lab's tasks 1.1-4.4 beside PyTorch",
        epilog=LAB_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument("action", nargs="?", choices=["new"], help="new: write a student workspace")
    p.add_argument("dir", nargs="?", metavar="DIR", help="the workspace folder (lab new)")
    p.add_argument(
        "--lang", choices=("ru", "en"), default="ru", help="lab new: task texts' language"
    )
    p.add_argument(
        "--chapters",
        metavar="LIST",
        help="lab new: the chapters to write, numbers or names joined by commas (5,9 or "
        "optimizers,layernorm) or all (default: the seed lab's chapters 1-4)",
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
    p.set_defaults(func=commands.lab)

    course.add_grade_parser(sub, raw)

    p = sub.add_parser(
        "train",
        help="train an MLP, CNN, RNN/GRU/LSTM on a dataset or CSV file, or a GPT on text",
        epilog=TRAIN_EXAMPLES,
        formatter_class=raw,
    )
    add_train_flags(p)  # one flag per TrainConfig field (tools/config.py)
    p.set_defaults(func=commands.train)

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
        help="leave this column out (repeatable; a model trained on a CSV takes its columns "
        "by name and needs no --drop)",
    )
    p.add_argument("--out", help="write the predictions here instead of printing them")
    p.add_argument("--threads", type=_threads, default="auto", help=threads_help)
    p.set_defaults(func=commands.predict)

    p = sub.add_parser(
        "bench",
        help="time training steps: handgrad vs torch eager vs NumPy (--compiled: and compiled)",
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
        "--compiled",
        action="store_true",
        help="also time handgrad's step under hg.compile_step and torch's whole step under "
        "torch.compile (Inductor); its own cases, by suite: mlp, conv, sequence",
    )
    p.add_argument(
        "--busy",
        type=int,
        metavar="K",
        help="time the MLP steps while K busy processes run beside them (handgrad's thread "
        "policy, handgrad at torch's thread count, torch eager)",
    )
    p.set_defaults(func=commands.bench)

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
    p.add_argument(
        "--tokens",
        type=int,
        default=200,
        help=f"characters to sample (default: 200; more than {commands.MAX_TOKENS:,} needs "
        "--force)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divides the logits: below 1 more predictable, above 1 more varied (default: 1)",
    )
    p.add_argument("--top-k", type=int, help="sample only among the K likeliest characters")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the sampling (default: 0)")
    p.add_argument("--force", action="store_true", help=f"sample more than {commands.MAX_TOKENS:,}")
    p.add_argument("--progress", action="store_true", help="a progress bar on stderr (a terminal)")
    p.add_argument("--threads", type=_threads, default="auto", help=threads_help)
    p.set_defaults(func=commands.generate)

    p = sub.add_parser(
        "check",
        help="gradcheck a layer or loss class from a Python file",
        epilog=CHECK_EXAMPLES,
        formatter_class=raw,
    )
    p.add_argument("target", metavar="FILE.py:ClassName", help="the file and the class in it")
    p.add_argument("--args", default="", help="constructor arguments, e.g. 4,3")
    p.add_argument("--input-shape", type=_ints, default=(4, 3), help="default: %(default)s")
    p.add_argument("--seed", type=_seed, default=0, help="seeds the random input (default: 0)")
    p.set_defaults(func=commands.check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command. A user's mistake (a HandgradError, or a file that cannot be read or
    written) prints one line and returns 1; Ctrl-C prints one line (what was kept) and returns
    130; a reader that closed the output (| head) ends it quietly (141, as SIGPIPE would);
    anything else is a bug in handgrad and shows its traceback. --debug or HANDGRAD_DEBUG=1
    shows the traceback of every error."""
    args = build_parser().parse_args(argv)
    from handgrad.errors import HandgradError

    debug = args.debug or os.environ.get("HANDGRAD_DEBUG", "") not in ("", "0")
    try:
        return int(args.func(args))
    except KeyboardInterrupt as exc:  # the command says where it stopped and what it kept
        if debug:
            raise
        after_caret = "\n" if sys.stderr.isatty() else ""  # a terminal shows ^C on the line
        print(f"{after_caret}handgrad {args.command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        commands.close_stdout()
        return 141
    except (HandgradError, OSError) as exc:
        if debug:
            raise
        print(f"handgrad {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
