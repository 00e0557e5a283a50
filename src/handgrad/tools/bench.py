"""Benchmarks: one training step in handgrad, in torch eager (nn + autograd + optim) and in a
NumPy from-scratch baseline, timed in one run, alternating, several rounds, medians.

This is the reference side (like lab.py): it uses torch.nn and torch.optim as the baseline.
Run it with `handgrad bench` or `python benchmarks/run.py`.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

import handgrad as hg
from handgrad.threads import policy

Step = Callable[[], Any]


@dataclass
class Case:
    """One benchmark: an MLP, GRU or GPT training step, or a conv layer's forward+backward."""

    name: str
    kind: str  # "mlp", "conv1d", "conv2d", "gru" or "gpt"
    sizes: tuple[int, ...] = ()  # mlp: widths from input to output
    batch: int = 64
    loss: str = "ce"  # mlp: "ce" (classes) or "mse"
    conv: dict[str, Any] = field(default_factory=dict)  # conv: in/out channels, kernel, shape
    seq: dict[str, Any] = field(default_factory=dict)  # gru, gpt: the model's sizes


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


# ---- the three implementations of one MLP training step -------------------------------------
def _data(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(case.batch, case.sizes[0], generator=g)
    if case.loss == "mse":
        return X, torch.randn(case.batch, case.sizes[-1], generator=g)
    return X, torch.randint(0, case.sizes[-1], (case.batch,), generator=g)


def handgrad_step(case: Case, lr: float = 0.01) -> Step:
    layers: list[hg.Module] = []
    for i, (a, b) in enumerate(zip(case.sizes, case.sizes[1:])):
        layers += [hg.Linear(a, b)] + ([hg.ReLU()] if i < len(case.sizes) - 2 else [])
    model = hg.Sequential(*layers)
    loss = hg.MSELoss() if case.loss == "mse" else hg.CrossEntropyLoss()
    opt = hg.optim.SGD(model.parameters(), lr=lr)
    X, y = _data(case)

    def step() -> None:  # as fit does it: no gradient for the data, as in torch
        opt.zero_grad()
        loss(model(X), y)
        model.backward_params(loss.backward())
        opt.step()

    def forget() -> None:  # drop gradients and every cached forward tensor (for step_memory)
        opt.zero_grad()
        model.clear_cache()
        loss.clear_cache()

    step.forget = forget  # type: ignore[attr-defined]
    step.model = model  # type: ignore[attr-defined]
    return step


def torch_step(case: Case, lr: float = 0.01) -> Step:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(case.sizes, case.sizes[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(case.sizes) - 2 else [])
    model = nn.Sequential(*layers)
    loss = nn.MSELoss() if case.loss == "mse" else nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    X, y = _data(case)

    def step() -> None:
        opt.zero_grad()
        loss(model(X), y).backward()
        opt.step()

    step.forget = opt.zero_grad  # type: ignore[attr-defined]
    return step


class NumpyMLP:
    """A from-scratch MLP in NumPy, float32, the way the from-scratch books write it."""

    def __init__(self, sizes: tuple[int, ...], loss: str, lr: float, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W = [
            rng.uniform(-1 / math.sqrt(a), 1 / math.sqrt(a), (a, b)).astype(np.float32)
            for a, b in zip(sizes, sizes[1:])
        ]
        self.b = [np.zeros(b, np.float32) for b in sizes[1:]]
        self.loss, self.lr = loss, lr

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        acts = [X]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = acts[-1] @ W + b
            acts.append(np.maximum(z, 0) if i < len(self.W) - 1 else z)
        out, N = acts[-1], X.shape[0]
        if self.loss == "mse":
            diff = out - y
            value = float((diff**2).mean())
            d = 2 * diff / diff.size
        else:
            shifted = out - out.max(1, keepdims=True)
            p = np.exp(shifted)
            p /= p.sum(1, keepdims=True)
            value = float(-np.log(p[np.arange(N), y] + 1e-12).mean())
            p[np.arange(N), y] -= 1
            d = p / N
        for i in range(len(self.W) - 1, -1, -1):
            dW, db = acts[i].T @ d, d.sum(0)
            if i > 0:
                d = (d @ self.W[i].T) * (acts[i] > 0)
            self.W[i] -= self.lr * dW
            self.b[i] -= self.lr * db
        return value


def numpy_step(case: Case, lr: float = 0.01) -> Step:
    X, y = _data(case)
    mlp, Xn, yn = NumpyMLP(case.sizes, case.loss, lr), X.numpy(), y.numpy()
    return lambda: mlp.step(Xn, yn)


# ---- conv layers: forward + backward ------------------------------------------------------------
def _conv_input(case: Case) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(case.batch, case.conv["cin"], *case.conv["size"], generator=g)


def handgrad_conv_step(case: Case) -> Step:
    c = case.conv
    layer = (hg.Conv1d if case.kind == "conv1d" else hg.Conv2d)(
        c["cin"],
        c["cout"],
        c["k"],
        stride=c["stride"],
        padding=c["padding"],
        algorithm=c.get("algorithm", "auto"),
    )
    x = _conv_input(case)
    dy = torch.ones_like(layer(x))

    def step() -> None:
        layer.zero_grad()
        layer(x)
        layer.backward(dy)

    return step


def torch_conv_step(case: Case) -> Step:
    c = case.conv
    layer = (nn.Conv1d if case.kind == "conv1d" else nn.Conv2d)(
        c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["padding"]
    )
    x = _conv_input(case).requires_grad_(True)
    dy = torch.ones_like(layer(x))

    def step() -> None:
        layer.zero_grad()
        x.grad = None
        layer(x).backward(dy)

    return step


# ---- sequence models: a whole training step (forward, loss, backward, optimizer) -------------
# Both implementations run on one thread: a recurrence is a chain of small products that a
# second thread barely helps (examples/mnist1d_gru.py and fit's "auto" run it on one), and on
# a shared 2-core machine two OpenMP threads per process measured 10-60x slower than one.
SEQUENCE_THREADS = 1


def _sequence_data(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    g, c = torch.Generator().manual_seed(0), case.seq
    if case.kind == "gpt":
        ids = torch.randint(0, c["vocab"], (case.batch, c["context"] + 1), generator=g)
        return ids[:, :-1], ids[:, 1:]
    X = torch.randn(case.batch, c["steps"], c["input_size"], generator=g)
    return X, torch.randint(0, c["classes"], (case.batch,), generator=g)


def handgrad_sequence_step(case: Case) -> Step:
    """hg.RecurrentClassifier with Adam, or hg.GPT with AdamW, as `handgrad train` runs them."""
    c = case.seq
    X, y = _sequence_data(case)
    loss = hg.CrossEntropyLoss()
    if case.kind == "gpt":
        model: Any = hg.GPT(c["vocab"], c["context"], c["layers"], c["heads"], c["width"])
        opt: Any = hg.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

        def step() -> None:
            opt.zero_grad()
            logits = model(X)  # (B, T, V)
            loss(logits.reshape(-1, c["vocab"]), y.reshape(-1))
            model.backward(loss.backward().reshape(logits.shape))
            opt.step()

        step.threads = SEQUENCE_THREADS  # type: ignore[attr-defined]
        return step
    model = hg.RecurrentClassifier(
        "gru",
        c["input_size"],
        c["hidden"],
        c["steps"],
        c["classes"],
        bidirectional=c["bidirectional"],
    )
    opt = hg.optim.Adam(model.parameters(), lr=1e-2)

    def rnn_step() -> None:  # as fit does it: no gradient for the data
        opt.zero_grad()
        loss(model(X), y)
        model.backward_params(loss.backward())
        opt.step()

    rnn_step.threads = SEQUENCE_THREADS  # type: ignore[attr-defined]
    return rnn_step


class TorchGPT(nn.Module):
    """hg.GPT written with torch.nn modules (the same keys), as examples/gpt.py has it."""

    def __init__(self, vocab: int, context: int, layers: int, heads: int, width: int) -> None:
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(vocab, width), nn.Embedding(context, width)
        self.drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, 4 * width, 0.0, "gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, vocab, bias=False)
        self.head.weight = self.tok_emb.weight  # tied, as hg.GPT's default

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        mask = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)
        for block in self.blocks:
            x = block(x, mask, None, True)
        return self.head(self.ln_f(x))


class TorchGRUClassifier(nn.Module):
    def __init__(self, input_size: int, hidden: int, steps: int, classes: int, bi: bool) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden, batch_first=True, bidirectional=bi)
        self.linear = nn.Linear(steps * hidden * (2 if bi else 1), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.linear(h.flatten(1))


def torch_sequence_step(case: Case) -> Step:
    c = case.seq
    X, y = _sequence_data(case)
    model: nn.Module
    if case.kind == "gpt":
        model = TorchGPT(c["vocab"], c["context"], c["layers"], c["heads"], c["width"])
        opt: Any = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    else:
        model = TorchGRUClassifier(
            c["input_size"], c["hidden"], c["steps"], c["classes"], c["bidirectional"]
        )
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def step() -> None:
        opt.zero_grad()
        out = model(X)
        nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)).backward()
        opt.step()

    step.threads = SEQUENCE_THREADS  # type: ignore[attr-defined]
    return step


# ---- timing ----------------------------------------------------------------------------------
def measure(
    steps: dict[str, Step],
    rounds: int = 7,
    min_seconds: float = 0.05,
    pause: float = 0.3,
    min_steps: int = 3,
) -> dict[str, float]:
    """Median seconds per step of each implementation, timed in alternation, round by round.

    The order rotates every round, and `pause` seconds separate the blocks: BLAS and OpenMP
    threads spin for a while after their work, and would otherwise slow whoever runs next.
    After the pause one untimed step brings the implementation's own data back into the
    caches, then a block of at least `min_steps` steps and `min_seconds` is timed: training
    runs its steps back to back, and that steady state is what is measured.
    """
    for step in steps.values():  # warm up and calibrate how many steps make one timing
        step()
    reps = {}
    for name, step in steps.items():
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < min_seconds:
            step()
            n += 1
        reps[name] = max(min_steps, n)
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(pause)
            step = steps[name]
            with policy(getattr(step, "threads", None), 0):  # None: torch's count as it is
                step()  # untimed: refills the caches the other implementation used
                t0 = time.perf_counter()
                for _ in range(reps[name]):
                    step()
                times[name].append((time.perf_counter() - t0) / reps[name])
    return {name: statistics.median(ts) for name, ts in times.items()}


# ---- a busy machine: K processes that want the cores, started and stopped here -----------------
def _spin(seconds: float) -> None:
    """Another training process holding one core: torch products back to back on one thread
    (K of them and this benchmark share the cores fairly at (K + 1) / cores each)."""
    torch.set_num_threads(1)
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(100):
            torch.mm(a, b).relu_()


@contextlib.contextmanager
def busy(k: int, limit_seconds: float = 900.0) -> Iterator[None]:
    """K processes that keep the cores busy for the block (and never past limit_seconds)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spin, args=(limit_seconds,), daemon=True) for _ in range(k)]
    for p in procs:
        p.start()
    try:
        time.sleep(0.5 if k else 0.0)  # let them start spinning
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def run_busy(cases: list[Case], k: int, rounds: int = 7) -> list[Row]:
    """Each MLP step with K busy processes beside it: handgrad with its thread policy
    ("auto", as fit runs it), handgrad at torch's default thread count, and torch eager."""
    from handgrad import threads as hg_threads

    rows = []
    for case in cases:
        auto, default = handgrad_step(case), handgrad_step(case)
        X, _ = _data(case)
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


# ---- peak memory of a training step (CPU: resident set size, in a fresh process) ----------------
STEP_MAKERS = {"handgrad": handgrad_step, "torch": torch_step, "numpy": numpy_step}


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def _step_memory(args: tuple[Case, str]) -> float:
    """MiB a training step needs above the model, data and optimizer state: peak RSS over
    4 steps minus RSS after a warm-up step whose gradients and caches were dropped."""
    case, name = args
    torch.set_num_threads(1)
    step = STEP_MAKERS[name](case)
    step()  # loads the kernels' code and creates optimizer state, then drop what a step leaves
    getattr(step, "forget", lambda: None)()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident size
    before = _rss_kib("VmRSS")
    for _ in range(4):
        step()
    return (_rss_kib("VmHWM") - before) / 1024


def step_memory(case: Case) -> dict[str, float]:
    """Peak extra MiB of one training step per implementation, each in a fresh process."""
    import multiprocessing as mp
    import os

    # Every allocation through mmap: freed memory leaves the process at once, so resident
    # size follows live memory and its peak is the step's true peak (glibc reads this at start).
    old = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "0"
    try:
        ctx = mp.get_context("spawn")
        result = {}
        for name in STEP_MAKERS:
            with ctx.Pool(1) as pool:
                result[name] = pool.map(_step_memory, [(case, name)])[0]
        return result
    finally:
        if old is None:
            del os.environ["MALLOC_MMAP_THRESHOLD_"]
        else:
            os.environ["MALLOC_MMAP_THRESHOLD_"] = old


@dataclass
class Row:
    case: str
    seconds: dict[str, float]
    peak_mib: dict[str, float] = field(default_factory=dict)

    def ratio(self, name: str) -> float:
        return self.seconds["handgrad"] / self.seconds[name] if name in self.seconds else math.nan


def run(cases: list[Case], rounds: int = 7, memory: bool = True) -> list[Row]:
    """Time every case; with `memory`, also each MLP step's peak memory (fresh processes)."""
    rows = []
    for case in cases:
        if case.kind in ("gru", "gpt"):
            steps = {"handgrad": handgrad_sequence_step(case), "torch": torch_sequence_step(case)}
        elif case.kind == "mlp":
            steps = {
                "handgrad": handgrad_step(case),
                "torch": torch_step(case),
                "numpy": numpy_step(case),
            }
        else:
            steps = {"handgrad": handgrad_conv_step(case), "torch": torch_conv_step(case)}
        peak = step_memory(case) if memory and case.kind == "mlp" else {}
        rows.append(Row(case.name, measure(steps, rounds), peak))
    return rows


def machine() -> str:
    return (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )


def format_table(rows: list[Row]) -> str:
    head = (
        f"{'case':<42} {'handgrad':>10} {'torch':>10} {'numpy':>10} {'hg/torch':>9} {'hg/numpy':>9}"
        "  peak MiB hg / torch / numpy"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = [
            f"{r.seconds[k] * 1e3:>8.3f}ms" if k in r.seconds else f"{'-':>10}"
            for k in ("handgrad", "torch", "numpy")
        ]
        ratios = [
            f"{r.ratio(k):>9.2f}" if k in r.seconds else f"{'-':>9}" for k in ("torch", "numpy")
        ]
        mem = ""
        if r.peak_mib:
            mem = "  " + " / ".join(f"{r.peak_mib[k]:.1f}" for k in ("handgrad", "torch", "numpy"))
        lines.append(f"{r.case:<42} " + " ".join(ms) + " " + " ".join(ratios) + mem)
    return "\n".join(lines)


def to_json(rows: list[Row]) -> str:
    return json.dumps(
        {
            "machine": machine(),
            "rows": [
                {
                    **asdict(r),
                    "handgrad/torch": r.ratio("torch"),
                    "handgrad/numpy": r.ratio("numpy"),
                }
                for r in rows
            ],
        },
        indent=2,
    )


SUITES = {
    "mlp": MLP_CASES,
    "scaling": SCALING_CASES,
    "conv": CONV_CASES,
    "sequence": SEQUENCE_CASES,
}
