"""Benchmarks: one training step in handgrad, in torch eager (nn + autograd + optim) and in a
NumPy from-scratch baseline, timed in one run, alternating, several rounds, medians. With
`compiled` (`handgrad bench --compiled`), also handgrad's step under hg.compile_step and
torch's whole step under torch.compile, in the same alternation (COMPILED_SUITES' cases).

The steps are in bench_steps.py and bench_compiled.py (the reference side, like lab.py:
torch.nn and torch.optim are the baseline), the timing in bench_timing.py; here the cases,
the runs and the tables.
Run it with `handgrad bench` or `python benchmarks/run.py`.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from handgrad.tools.bench_compiled import (
    CNN_CASE,
    compiled_steps,
    handgrad_cnn_step,
    torch_cnn_step,
    warm_up,
)
from handgrad.tools.bench_steps import (
    Case,
    NumpyMLP,
    Step,
    TorchGPT,
    handgrad_conv_step,
    handgrad_sequence_step,
    handgrad_step,
    mlp_data,
    numpy_step,
    torch_conv_step,
    torch_sequence_step,
    torch_step,
)
from handgrad.tools.bench_timing import busy, measure, step_memory

__all__ = [
    "COMPILED_SUITES",
    "Case",
    "NumpyMLP",
    "Row",
    "Step",
    "SUITES",
    "TorchGPT",
    "busy",
    "format_busy_table",
    "format_table",
    "handgrad_step",
    "machine",
    "measure",
    "mlp_data",
    "numpy_step",
    "run",
    "run_busy",
    "to_json",
    "torch_step",
]

MLP_CASES = [
    Case("tiny (lab 4.4, full batch)", "mlp", (1, 10, 1), 100, "mse"),
    Case("digits 64-128-10, batch 64", "mlp", (64, 128, 10), 64),
    Case("mnist 784-512-512-10, batch 128", "mlp", (784, 512, 512, 10), 128),
    Case("large 784-1024-1024-10, batch 256", "mlp", (784, 1024, 1024, 10), 256),
]
SCALING_CASES = [
    *[Case(f"784-512-512-10, batch {b}", "mlp", (784, 512, 512, 10), b) for b in (16, 1024)],
    *[Case(f"784-{w}-{w}-10, batch 128", "mlp", (784, w, w, 10), 128) for w in (128, 2048)],
]
CONV_CASES = [
    Case(
        "Conv1d 1->25 k5 s2 (MNIST-1D), batch 100",
        "conv1d",
        batch=100,
        conv=dict(cin=1, cout=25, k=5, stride=2, padding=1, size=(40,)),
    ),
    Case(
        "Conv1d 25->25 k3 s2, batch 100",
        "conv1d",
        batch=100,
        conv=dict(cin=25, cout=25, k=3, stride=2, padding=1, size=(19,)),
    ),
    Case(
        "Conv2d 1->32 k3 (digits), batch 64",
        "conv2d",
        batch=64,
        conv=dict(cin=1, cout=32, k=3, stride=1, padding=1, size=(8, 8)),
    ),
    Case(
        "Conv2d 32->64 k3, 28x28, batch 32",
        "conv2d",
        batch=32,
        conv=dict(cin=32, cout=64, k=3, stride=1, padding=1, size=(28, 28)),
    ),
    Case(  # the same layer by the reference ops: the im2col math as docs/math.md writes it
        "Conv2d 32->64 k3, 28x28, b32, reference",
        "conv2d",
        batch=32,
        conv=dict(cin=32, cout=64, k=3, stride=1, padding=1, size=(28, 28), algorithm="reference"),
    ),
    Case(  # the same layer by Winograd F(4x4, 3x3): algorithm="winograd", or "auto" after
        # torch.set_float32_matmul_precision("high")
        "Conv2d 32->64 k3, 28x28, b32, Winograd",
        "conv2d",
        batch=32,
        conv=dict(cin=32, cout=64, k=3, stride=1, padding=1, size=(28, 28), algorithm="winograd"),
    ),
]


SEQUENCE_CASES = [
    Case(  # the MNIST-1D paper's GRU row: bidirectional, hidden 6, 40 steps, Linear on all
        "GRU bi 1->6, 40 steps (MNIST-1D), b100",
        "gru",
        batch=100,
        seq=dict(input_size=1, hidden=6, steps=40, classes=10, bidirectional=True),
    ),
    Case(
        "GRU 32->128, 64 steps, batch 32",
        "gru",
        batch=32,
        seq=dict(input_size=32, hidden=128, steps=64, classes=10, bidirectional=False),
    ),
    Case(  # the issue's ~0.8M-parameter character model, one AdamW step
        "GPT 4x128, 4 heads, context 128, b32",
        "gpt",
        batch=32,
        seq=dict(vocab=96, layers=4, heads=4, width=128, context=128),
    ),
]


@dataclass
class Row:
    case: str
    seconds: dict[str, float]
    peak_mib: dict[str, float] = field(default_factory=dict)
    compile_seconds: dict[str, float] = field(default_factory=dict)  # --compiled: the warm-up's

    def ratio(self, name: str, of: str = "handgrad") -> float:
        """seconds[of] / seconds[name] (nan when either was not timed)."""
        if name not in self.seconds or of not in self.seconds:
            return math.nan
        return self.seconds[of] / self.seconds[name]


HGC, TC = "handgrad compiled", "torch compiled"  # the compiled columns' names


def eager_steps(case: Case) -> dict[str, Step]:
    """The case's eager steps: handgrad, torch and (MLPs) NumPy."""
    if case.kind in ("gru", "gpt"):
        return {"handgrad": handgrad_sequence_step(case), "torch": torch_sequence_step(case)}
    if case.kind == "mlp":
        return {
            "handgrad": handgrad_step(case),
            "torch": torch_step(case),
            "numpy": numpy_step(case),
        }
    if case.kind == "cnn":
        return {"handgrad": handgrad_cnn_step(case), "torch": torch_cnn_step(case)}
    return {"handgrad": handgrad_conv_step(case), "torch": torch_conv_step(case)}


def run(
    cases: list[Case], rounds: int = 7, memory: bool = True, compiled: bool = False
) -> list[Row]:
    """Time every case; with `memory`, also each MLP step's peak memory (fresh processes);
    with `compiled`, also handgrad's and torch's compiled steps, compiled before the timing."""
    rows = []
    for case in cases:
        steps, compile_seconds = eager_steps(case), {}
        if compiled:
            more = compiled_steps(case)
            compile_seconds = {name: warm_up(name, step) for name, step in more.items()}
            steps |= more
        peak = step_memory(case) if memory and case.kind == "mlp" else {}
        rows.append(Row(case.name, measure(steps, rounds), peak, compile_seconds))
    return rows


def run_busy(cases: list[Case], k: int, rounds: int = 7) -> list[Row]:
    """Each MLP step with K busy processes beside it: handgrad with its thread policy
    ("auto", as fit runs it), handgrad at torch's default thread count, and torch eager."""
    from handgrad import threads as hg_threads

    rows = []
    for case in cases:
        auto, default = handgrad_step(case), handgrad_step(case)
        X, _ = mlp_data(case)
        work = hg_threads.step_work(auto.model, X)  # type: ignore[attr-defined]
        auto.threads = hg_threads.choose("auto", work)  # type: ignore[attr-defined]
        steps = {"handgrad auto": auto, "handgrad": default, "torch": torch_step(case)}
        with busy(k):
            rows.append(Row(case.name, measure(steps, rounds)))
    return rows


def format_busy_table(rows: list[Row], k: int) -> str:
    head = (
        f"{'case, ' + str(k) + ' busy processes':<42} {'hg auto':>10} {'hg default':>10} "
        f"{'torch':>10} {'auto/torch':>10} {'default/torch':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        t = r.seconds
        lines.append(
            f"{r.case:<42} {t['handgrad auto'] * 1e3:>8.3f}ms {t['handgrad'] * 1e3:>8.3f}ms "
            f"{t['torch'] * 1e3:>8.3f}ms {t['handgrad auto'] / t['torch']:>10.2f} "
            f"{t['handgrad'] / t['torch']:>13.2f}"
        )
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )


def _ms(r: Row, key: str, width: int = 10) -> str:
    return f"{r.seconds[key] * 1e3:>{width - 2}.3f}ms" if key in r.seconds else f"{'-':>{width}}"


def format_table(rows: list[Row]) -> str:
    """The table of median ms per step and ratios; the compiled columns when rows have them."""
    compiled = any(HGC in r.seconds for r in rows)
    more = f" {'hg compiled':>11} {'torch compiled':>14} {'hgc/torch':>9} {'hgc/tc':>7}"
    head = (
        f"{'case':<42} {'handgrad':>10} {'torch':>10} {'numpy':>10} {'hg/torch':>9} {'hg/numpy':>9}"
        + (more + f" {'compile s hg / torch':>21}" if compiled else "")
        + "  peak MiB hg / torch / numpy"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = [_ms(r, k) for k in ("handgrad", "torch", "numpy")]
        ratios = [
            f"{r.ratio(k):>9.2f}" if k in r.seconds else f"{'-':>9}" for k in ("torch", "numpy")
        ]
        if compiled:
            ms_c = f" {_ms(r, HGC, 11)} {_ms(r, TC, 14)}"
            ratios.append(ms_c + f" {r.ratio('torch', HGC):>9.2f} {r.ratio(TC, HGC):>7.2f}")
            c = r.compile_seconds
            ratios.append(f"{c.get(HGC, math.nan):>10.1f} / {c.get(TC, math.nan):<8.1f}")
        mem = ""
        if r.peak_mib:
            mem = "  " + " / ".join(f"{r.peak_mib[k]:.1f}" for k in ("handgrad", "torch", "numpy"))
        lines.append(f"{r.case:<42} " + " ".join(ms) + " " + " ".join(ratios) + mem)
    if compiled:
        lines.append(
            "hgc: handgrad compiled (hg.compile_step); tc: torch's whole step under "
            "torch.compile; compile s: the first compiled calls, outside the timing"
        )
    return "\n".join(lines)


def to_json(rows: list[Row]) -> str:
    return json.dumps(
        {
            "machine": machine(),
            "rows": [_json_row(r) for r in rows],
        },
        indent=2,
    )


def _json_row(r: Row) -> dict[str, object]:
    row: dict[str, object] = {
        **asdict(r),
        "handgrad/torch": r.ratio("torch"),
        "handgrad/numpy": r.ratio("numpy"),
    }
    if HGC in r.seconds:
        row["handgrad compiled/torch"] = r.ratio("torch", HGC)
        row["handgrad compiled/torch compiled"] = r.ratio(TC, HGC)
    else:
        del row["compile_seconds"]  # the output without --compiled is as it was
    return row


SUITES = {
    "mlp": MLP_CASES,
    "scaling": SCALING_CASES,
    "conv": CONV_CASES,
    "sequence": SEQUENCE_CASES,
}
# `handgrad bench --compiled`: each case timed four ways (handgrad and torch, eager and
# compiled); the GRU and GPT compile for minutes each.
COMPILED_SUITES = {
    "mlp": [MLP_CASES[0], MLP_CASES[1], MLP_CASES[3]],  # tiny, digits, large
    "conv": [CNN_CASE, CONV_CASES[3]],  # the MNIST-1D CNN's step; Conv2d 32->64 (the layer)
    "sequence": [SEQUENCE_CASES[0], SEQUENCE_CASES[2]],  # the MNIST-1D GRU; the GPT
}
