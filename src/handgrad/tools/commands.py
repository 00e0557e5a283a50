"""What each `handgrad` command does, given its parsed arguments (tools/cli.py parses them):
lab, train, predict, generate, bench, check. Each returns the exit status; Ctrl-C comes out
as a KeyboardInterrupt whose text is the line to print (tools/cli.py prints it)."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from handgrad.data.csvfile import is_number
from handgrad.errors import InputError
from handgrad.tools.outputs import check_output_file


def lab(args: argparse.Namespace) -> int:
    if args.action == "new":
        from handgrad.tools.course import lab_new

        return lab_new(args)
    if args.chapters is not None:
        raise InputError(
            "lab --chapters: only with lab new, e.g. handgrad lab new my_lab --chapters 5,9"
        )
    import torch

    from handgrad.tools import lab as seed_lab

    unknown = [t for t in args.task if t not in seed_lab.TASKS]
    if unknown:
        raise InputError(
            f"unknown task {', '.join(unknown)}; choose from {', '.join(seed_lab.TASKS)}"
        )
    if not args.no_figure and (not args.task or "4.4" in args.task):
        check_output_file(args.figure, "--figure", make_folders=True)
        check_figure_suffix(args.figure, "--figure")
    torch.set_printoptions(precision=4, sci_mode=None)
    names = args.task or list(seed_lab.TASKS)
    figure = None if args.no_figure else args.figure
    from handgrad.threads import policy

    with policy(args.threads, work=0):  # the lab's networks are tiny: one thread under "auto"
        results = [seed_lab.task_4_4(figure) if n == "4.4" else seed_lab.TASKS[n]() for n in names]
    for r in results:
        print(r, end="\n\n")
    bad = [r.task for r in results if not r.agree]
    print(
        f"{len(results) - len(bad)} of {len(results)} tasks agree with PyTorch"
        + (f"; disagreeing: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad else 0


def train(args: argparse.Namespace) -> int:
    from handgrad.tools.flags import config_from_args
    from handgrad.tools.recipe import run
    from handgrad.tools.results import format_scores

    config = config_from_args(args)
    config.check()
    config = config.resolved()
    shown = {k: v for k, v in vars(config).items() if k != "extra" and config.applies(k)}
    print("config: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
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


def predict(args: argparse.Namespace) -> int:
    from handgrad import io

    if args.out:
        check_output_file(args.out, "--out", inputs=[args.model, args.file])
    meta = io.read_metadata(args.model)
    model = io.load(args.model)
    from handgrad.data.preprocessing import Preprocessing, Table

    prep = getattr(model, "preprocessing", None)
    if isinstance(prep, Preprocessing):  # trained on a table: its columns by name
        table = Table.read_csv(args.file)
        _check_drop_by_name(args.drop, prep.columns, table.names)
        labels, prob = prep.predict(model, table, threads=args.threads)
        if prob is None:
            lines = [prep.target or "prediction"] + [f"{v:.6g}" for v in labels]
        else:
            lines = ["class,probability"] + [f"{c},{float(q):.4f}" for c, q in zip(labels, prob)]
    else:  # raw features in order; hg.predict applies a bundled dataset's saved scaling
        lines = _predict_plain(args, model, meta)
    text = "\n".join(lines) + "\n"
    if args.out:
        io.atomic_write(args.out, text.encode())
        print(f"wrote {len(lines) - 1} predictions to {args.out}")
    else:
        print(text, end="")
    return 0


def _check_drop_by_name(drop: Sequence[str], columns: Sequence[Any], names: Sequence[str]) -> None:
    """--drop with a model that matches columns by name: a column the model needs is an error,
    another is ignored anyway, which a note on stderr says."""
    needed = [c for c in drop if c in {f.name for f in columns}]
    if needed:
        raise InputError(
            f"--drop {needed[0]}: the model was trained on column {needed[0]!r} and needs it"
        )
    unknown = [c for c in drop if c not in names]
    if unknown:
        raise InputError(f"--drop {unknown[0]}: the file has no column {unknown[0]!r}")
    if drop:
        print(
            f"note: --drop is not needed here: this model takes its columns by name, and "
            f"ignores {', '.join(drop)} and every other column it was not trained on",
            file=sys.stderr,
        )


def _predict_plain(args: argparse.Namespace, model: Any, meta: dict[str, Any]) -> list[str]:
    """A model without a table's preprocessing (a bundled dataset): the CSV's columns in order,
    but for --drop; raw values (digits: pixels 0..16), as hg.predict scales them itself."""
    import torch

    from handgrad.data.csvfile import read_rows
    from handgrad.training import predict as run_network

    data = read_rows(args.file)
    path, header = data.path, data.header
    unknown = [c for c in args.drop if c not in header]
    if unknown:
        raise InputError(
            f"--drop {unknown[0]}: {path} has no column {unknown[0]!r}; its columns: "
            f"{', '.join(header)}"
        )
    keep = [i for i, name in enumerate(header) if name not in args.drop]
    values = []
    for r, line in zip(data.rows, data.lines):
        try:
            values.append([float(r[i]) for i in keep])
        except ValueError:
            i = next(i for i in keep if not is_number(r[i]))
            what = "is empty" if not r[i].strip() else f"holds {r[i]!r}, not a number"
            raise InputError(f"{path}, line {line}, column {header[i]!r} {what}") from None
    X = torch.tensor(values, dtype=torch.float32)
    bad = ~torch.isfinite(X)
    if bad.any():
        row, col = (int(v) for v in bad.nonzero()[0])
        raise InputError(
            f"{path}, line {data.lines[row]}, column {header[keep[col]]!r} is missing or not finite"
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
    out = run_network(model, X.to(p.dtype), threads=args.threads)
    if meta.get("task") == "classification":
        probs = torch.softmax(out, 1)
        conf, cls = probs.max(1)
        return ["class,probability"] + [f"{int(c)},{float(q):.4f}" for c, q in zip(cls, conf)]
    return ["prediction"] + [",".join(f"{float(v):.6g}" for v in row.reshape(-1)) for row in out]


MAX_TOKENS = 100_000  # above it, generate needs --force: a forward pass of the model each


def generate(args: argparse.Namespace) -> int:
    """Print the prompt, then each sampled character as soon as it is drawn."""
    from tqdm.auto import tqdm

    from handgrad.threads import policy
    from handgrad.tools.text_recipe import load_text_model, sample_text

    if args.tokens > MAX_TOKENS and not args.force:
        raise InputError(
            f"--tokens {args.tokens:,} is more than {MAX_TOKENS:,} (a forward pass of the model "
            "each); add --force to sample them all"
        )
    model, vocab = load_text_model(args.model)
    chars = sample_text(
        model, vocab, args.prompt, args.tokens, args.temperature, args.top_k, args.seed
    )
    text, done = next(chars), 0  # the prompt: the arguments are checked before any output
    bar = tqdm(total=args.tokens, disable=None if args.progress else True, leave=False)
    try:
        with policy(args.threads, work=0), bar:  # one sequence, token by token: small products
            sys.stdout.write(text)
            sys.stdout.flush()
            for c in chars:  # each character as soon as it is drawn
                sys.stdout.write(c)
                sys.stdout.flush()
                done += 1
                bar.update(1)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader has all it wanted (| head): stop, quietly
        close_stdout()
    except KeyboardInterrupt:
        print(flush=True)
        raise KeyboardInterrupt(
            f"interrupted after {done:,} of {args.tokens:,} characters"
        ) from None
    return 0


def close_stdout() -> None:
    """After a broken pipe: stdout to /dev/null, so that Python's flush at exit stays quiet."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a file (a test's capture)
        pass


# what matplotlib writes an image as, by the file's suffix
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".eps")


def check_figure_suffix(path: str, flag: str) -> None:
    """A figure's file name ends in an image suffix matplotlib writes (.png, .pdf, ...)."""
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise InputError(
            f"{flag}: {path} is not an image file name; end it in {', '.join(FIGURE_SUFFIXES)}"
        )


def bench(args: argparse.Namespace) -> int:
    from handgrad.tools import bench as harness

    suites = harness.COMPILED_SUITES if args.compiled else harness.SUITES
    unknown = [s for s in args.suite if s not in suites]
    if unknown:
        which = "--compiled suite" if args.compiled else "suite"
        raise InputError(f"unknown {which} {', '.join(unknown)}; choose from {', '.join(suites)}")
    if args.compiled and args.busy is not None:
        raise InputError("--compiled and --busy: choose one (--busy times the eager steps)")
    if args.busy is not None and args.busy < 0:
        raise InputError(f"--busy: expected a number of processes >= 0, got {args.busy}")
    if args.rounds < 1:
        raise InputError(f"--rounds: expected a number >= 1, got {args.rounds}")
    if args.json:
        check_output_file(args.json, "--json", make_folders=False)
    print(harness.machine(), flush=True)
    if args.busy is not None:
        cases = harness.MLP_CASES
        rows = [
            row
            for i, case in enumerate(cases)
            for row in harness.run_busy([_announce(i, cases)], args.busy, rounds=args.rounds)
        ]
        print(harness.format_busy_table(rows, args.busy))
    else:
        cases = [c for s in (args.suite or list(suites)) for c in suites[s]]
        rows = [
            row
            for i, case in enumerate(cases)
            for row in harness.run(
                [_announce(i, cases)], rounds=args.rounds, compiled=args.compiled
            )
        ]
        print(harness.format_table(rows))
    if args.json:
        from handgrad.io import atomic_write

        atomic_write(args.json, harness.to_json(rows).encode())
        print(f"wrote {args.json}")
    return 0


def _announce(i: int, cases: Sequence[Any]) -> Any:
    """Progress on stderr (the table goes to stdout): which case of how many is running."""
    print(f"[{i + 1}/{len(cases)}] {cases[i].name}", file=sys.stderr, flush=True)
    return cases[i]


MAX_CHECK_ELEMENTS = 1_000_000  # float64 input and its copies: tens of MB, not the machine


def check(args: argparse.Namespace) -> int:
    from handgrad.tools.check_file import run_check

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
    try:
        ctor_args = [float(a) if "." in a else int(a) for a in args.args.split(",") if a.strip()]
    except ValueError:
        raise InputError(f"--args: expected comma-separated numbers, got {args.args!r}") from None
    debug = getattr(args, "debug", False) or os.environ.get("HANDGRAD_DEBUG", "") not in ("", "0")
    return run_check(path, class_name, ctor_args, tuple(args.input_shape), args.seed, debug)
