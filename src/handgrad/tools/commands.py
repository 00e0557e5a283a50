"""What each `handgrad` command does, given its parsed arguments (tools/cli.py parses them):
lab, train, predict, generate, bench, check. Each returns the exit status."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from handgrad.errors import InputError
from handgrad.tools.outputs import check_output_file


def lab(args: argparse.Namespace) -> int:
    if args.action == "new":
        from handgrad.tools.course import lab_new

        return lab_new(args)
    import torch

    from handgrad.tools import lab as seed_lab

    unknown = [t for t in args.task if t not in seed_lab.TASKS]
    if unknown:
        raise InputError(
            f"unknown task {', '.join(unknown)}; choose from {', '.join(seed_lab.TASKS)}"
        )
    if not args.no_figure and (not args.task or "4.4" in args.task):
        check_output_file(args.figure, "--figure", make_folders=True)
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


def predict(args: argparse.Namespace) -> int:
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

    from handgrad.training import predict as run_network

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
    out = run_network(model, X.to(p.dtype), threads=args.threads)
    if meta.get("task") == "classification":
        probs = torch.softmax(out, 1)
        conf, cls = probs.max(1)
        return ["class,probability"] + [f"{int(c)},{float(q):.4f}" for c, q in zip(cls, conf)]
    return ["prediction"] + [",".join(f"{float(v):.6g}" for v in row.reshape(-1)) for row in out]


def generate(args: argparse.Namespace) -> int:
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


def bench(args: argparse.Namespace) -> int:
    from handgrad.tools import bench as harness

    unknown = [s for s in args.suite if s not in harness.SUITES]
    if unknown:
        raise InputError(
            f"unknown suite {', '.join(unknown)}; choose from {', '.join(harness.SUITES)}"
        )
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
        cases = [c for s in (args.suite or list(harness.SUITES)) for c in harness.SUITES[s]]
        rows = [
            row
            for i, case in enumerate(cases)
            for row in harness.run([_announce(i, cases)], rounds=args.rounds)
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
