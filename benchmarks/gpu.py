"""The GPU benchmark (issue 13), one prepared script: the GPU test subset, then the figures.

    PYTHONPATH=src python3 benchmarks/gpu.py

Runs from the source tree with whatever torch >= 2.2 is installed (nothing else is needed;
pytest is used when present, else a small runner takes tests/test_gpu.py's tests). On a CUDA
machine, in about two minutes:

1. tests/test_gpu.py (capture, replay, schedules, the non-finite mask, bf16 on CUDA);
2. the matrix-multiply rate (8192 x 8192 products, bf16 and float32) in the same run;
3. one SGD training step of each MLP, in float32 and bf16, four ways: torch eager
   (nn + autograd + optim, torch.autocast for bf16), torch eager captured in a CUDA graph by
   hand (torch's whole-network recipe), handgrad eager (fit's device step) and handgrad graph
   (fit(cuda_graph=True)'s replay). The CPU benchmark's MLPs, and 4096- and 8192-wide bf16 MLPs
   whose rate is compared with the bf16 matrix-multiply rate;
4. on the cases marked so, two more: torch compiled (its whole step, opt.step() included,
   under torch.compile with mode "reduce-overhead": Triton kernels replayed as a CUDA graph)
   and handgrad compiled (hg.compile_step with the same mode). Each compile takes 10-60 s,
   so only the MLP cases that the goals name compile; the whole script fits in about 8
   minutes of a device lease, start-up not included.

Writes gpu.json and gpu.md (a Markdown table with the card's name) into $OUT when that
environment variable is set, else into benchmarks/. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

BUDGET_S = 420.0  # the benchmark part stops starting new cases after this
START = time.perf_counter()
DEVICE = "cuda"  # "cpu" with --dry-run: the eager steps on the CPU, to check the script


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


# (name, widths, batch, loss, precisions); COMPILED: the cases also timed compiled
CASES: list[tuple[str, tuple[int, ...], int, str, tuple[str, ...]]] = [
    ("tiny 1-10-1 (lab 4.4), batch 100", (1, 10, 1), 100, "mse", ("float32", "bf16")),
    ("digits 64-128-10, batch 64", (64, 128, 10), 64, "ce", ("float32", "bf16")),
    ("mnist 784-512-512-10, batch 128", (784, 512, 512, 10), 128, "ce", ("float32", "bf16")),
    ("large 784-1024-1024-10, batch 256", (784, 1024, 1024, 10), 256, "ce", ("float32", "bf16")),
    ("4096-wide 4096x4, batch 4096", (4096,) * 4, 4096, "ce", ("bf16",)),
    ("8192-wide 8192x4, batch 8192", (8192,) * 4, 8192, "ce", ("bf16",)),
]
COMPILED = {"tiny 1-10-1 (lab 4.4), batch 100", "mnist 784-512-512-10, batch 128"}
COMPILED |= {"8192-wide 8192x4, batch 8192"}
MODES = ("torch eager", "torch graph", "handgrad eager", "handgrad graph")
COMPILED_MODES = ("torch compiled", "handgrad compiled")
ALL_MODES = MODES + COMPILED_MODES


# ---- 1. the GPU test subset --------------------------------------------------------------------
def run_tests() -> dict[str, Any]:
    """tests/test_gpu.py with pytest if installed, else with the runner below."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    t0 = time.perf_counter()
    if importlib.util.find_spec("pytest") is not None:
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py"]
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            tail = (r.stdout + r.stderr).strip().splitlines()[-15:]
            ok = r.returncode == 0
        except subprocess.TimeoutExpired:
            tail, ok = ["timed out after 120 s"], False
        print("\n".join(tail), flush=True)
        return {"runner": "pytest", "passed": ok, "tail": tail, "s": time.perf_counter() - t0}
    return _run_without_pytest(t0)


class _Raises:
    def __init__(self, kind: type[BaseException], match: str | None = None) -> None:
        self.kind, self.match = kind, match

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, e: Any, tb: Any) -> bool:
        import re

        if kind is None:
            raise AssertionError(f"did not raise {self.kind.__name__}")
        if not issubclass(kind, self.kind):
            return False
        if self.match and not re.search(self.match, str(e)):
            raise AssertionError(f"{str(e)!r} does not match {self.match!r}")
        return True


def _run_without_pytest(t0: float) -> dict[str, Any]:
    stub = types.ModuleType("pytest")
    stub.raises = _Raises  # type: ignore[attr-defined]
    stub.mark = types.SimpleNamespace(skipif=lambda cond, reason="": lambda f: f)  # type: ignore[attr-defined]
    sys.modules.setdefault("pytest", stub)
    spec = importlib.util.spec_from_file_location("test_gpu", ROOT / "tests" / "test_gpu.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = {}
    for name in [n for n in dir(module) if n.startswith("test_")]:
        try:
            getattr(module, name)()
            results[name] = "passed"
        except Exception:  # noqa: BLE001 (reported, the benchmark goes on)
            results[name] = "FAILED: " + traceback.format_exc().strip().splitlines()[-1]
        print(f"{name}: {results[name]}", flush=True)
    ok = all(v == "passed" for v in results.values())
    tail = [f"{k}: {v}" for k, v in results.items()]
    return {"runner": "builtin", "passed": ok, "tail": tail, "s": time.perf_counter() - t0}


# ---- 2. timing ---------------------------------------------------------------------------------
def seconds_per_call(fn: Any, min_time: float = 0.15, rounds: int = 3) -> float:
    """The median over `rounds` of the time per call, each round at least min_time long."""
    for _ in range(6):  # a graph step warms up (3 calls) and captures (the 4th) here
        fn()
    sync()
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        dt = time.perf_counter() - t0
        if dt > 0.03 or n >= 4096:
            break
        n *= 4
    n = max(1, round(n * min_time / dt))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def matmul_rates(size: int = 8192) -> dict[str, float]:
    """TFLOP/s of a size x size x size product (2·size³ flops), bf16 and float32."""
    rates = {}
    for name, dtype in (("bf16", torch.bfloat16), ("float32", torch.float32)):
        a = torch.randn(size, size, device=DEVICE, dtype=dtype)
        b = torch.randn(size, size, device=DEVICE, dtype=dtype)
        c = torch.empty(size, size, device=DEVICE, dtype=dtype)
        s = seconds_per_call(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), min_time=0.3)
        rates[name] = 2 * size**3 / s / 1e12
        del a, b, c
    torch.cuda.empty_cache()
    return rates


def step_flops(widths: tuple[int, ...], batch: int) -> float:
    """Multiply-adds × 2 of a step: forward and dW for every layer, dX for all but the first."""
    layers = list(zip(widths, widths[1:]))
    return sum(2 * batch * a * b * (2 if i == 0 else 3) for i, (a, b) in enumerate(layers))


# ---- 3. the steps ------------------------------------------------------------------------------
def _data(widths: tuple[int, ...], batch: int, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device=DEVICE).manual_seed(0)
    X = torch.randn(batch, widths[0], device=DEVICE, generator=g)
    if loss == "mse":
        return X, torch.randn(batch, widths[-1], device=DEVICE, generator=g)
    return X, torch.randint(0, widths[-1], (batch,), device=DEVICE, generator=g)


def torch_step(widths, loss_name, precision, X, y, graph: bool, compiled: bool = False) -> Any:
    import torch.nn as nn

    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += [nn.Linear(a, b, device=DEVICE)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
    model = nn.Sequential(*layers)
    loss = nn.MSELoss() if loss_name == "mse" else nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def autocast() -> Any:
        if precision == "bf16":
            return torch.autocast(DEVICE, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            value = loss(model(X), y)
        value.backward()
        opt.step()

    if compiled:  # torch's own best: its whole step compiled, replayed as a CUDA graph
        mode = "reduce-overhead" if DEVICE == "cuda" else None
        fast = torch.compile(step, mode=mode)
        for _ in range(3):
            fast()  # compiles (and records the graph) outside the timing
        return fast
    if not graph:
        return step
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # torch's recipe: warm up on a side stream, then capture
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(g):
        with autocast():
            value = loss(model(X), y)
        value.backward()
        opt.step()
    return g.replay


def handgrad_step(widths, loss_name, precision, X, y, graph: bool, compiled: bool = False) -> Any:
    import handgrad as hg
    from handgrad.training.graph import GraphStep, Step

    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += [hg.Linear(a, b, device=DEVICE)] + ([hg.ReLU()] if i < len(widths) - 2 else [])
    model = hg.Sequential(*layers)
    loss = hg.MSELoss() if loss_name == "mse" else hg.CrossEntropyLoss()
    opt = hg.optim.SGD(model.parameters(), lr=0.01)
    if compiled:  # hg.compile_step: the one step, compiled
        mode = "reduce-overhead" if DEVICE == "cuda" else None
        fast = hg.compile_step(model, loss, opt, precision=precision, mode=mode)
        for _ in range(3):
            fast(X, y)  # the eager first step, then the compile, outside the timing
        return lambda: fast(X, y)
    step = Step(model, loss, opt, precision=precision)  # fit's device step
    if not graph:
        return lambda: step(X, y)
    replay = GraphStep(step)
    return lambda: replay(X, y, False)


def run_case(name, widths, batch, loss_name, precision) -> dict[str, Any]:
    X, y = _data(widths, batch, loss_name)
    row: dict[str, Any] = {"case": name, "precision": precision, "batch": batch}
    for mode in MODES + (COMPILED_MODES if name in COMPILED else ()):
        if DEVICE == "cpu" and mode.endswith("graph"):
            row[mode] = None
            continue
        make = torch_step if mode.startswith("torch") else handgrad_step
        try:
            start = time.perf_counter()
            fn = make(
                widths,
                loss_name,
                precision,
                X,
                y,
                graph=mode.endswith("graph"),
                compiled=mode.endswith("compiled"),
            )
            if mode.endswith("compiled"):
                row[f"{mode} setup s"] = time.perf_counter() - start  # the compile
            row[mode] = seconds_per_call(fn) * 1e3
        except Exception as e:  # noqa: BLE001 (a baseline that cannot run is reported)
            row[mode] = None
            row[f"{mode} error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(f"  {mode}: {row[f'{mode} error']}", flush=True)
        fn = None
        sync()
        if DEVICE == "cuda":
            torch.cuda.empty_cache()
    row["tflops"] = {
        m: step_flops(widths, batch) / (row[m] / 1e3) / 1e12 for m in ALL_MODES if row.get(m)
    }
    return row


def _ms(v: float | None) -> str:
    return "—" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def markdown(result: dict[str, Any]) -> str:
    rates = result["matmul_tflops"]
    lines = [
        f"GPU benchmark on **{result['device']}** (torch {result['torch']}, handgrad "
        f"{result['commit']}), {result['date']}.",
        "",
        f"Matrix-multiply rate in the same run (8192³): bf16 {rates['bf16']:.0f} TFLOP/s, "
        f"float32 {rates['float32']:.1f} TFLOP/s (TF32 "
        f"{'on' if result['tf32'] else 'off'}).",
        "",
        f"GPU tests ({result['tests']['runner']}): "
        f"{'passed' if result['tests']['passed'] else 'FAILED'}.",
        "",
        "One SGD training step, ms (median of 3 rounds); ratio = handgrad graph / torch eager; "
        "compiled: mode reduce-overhead (— where the case does not compile).",
        "",
        "| MLP | precision | torch eager | torch graph | handgrad eager | handgrad graph "
        "| torch compiled | handgrad compiled | ratio | graph TFLOP/s (% of mm) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        te, hgg = r.get("torch eager"), r.get("handgrad graph")
        ratio = f"{hgg / te:.3f} ({te / hgg:.1f}×)" if te and hgg else "—"
        tf = r["tflops"].get("handgrad graph")
        mm = rates["bf16" if r["precision"] == "bf16" else "float32"]
        rate = f"{tf:.0f} ({100 * tf / mm:.0f}%)" if tf and tf > 1 else "—"
        cells = [_ms(r.get(m)) for m in ALL_MODES]
        lines.append(
            f"| {r['case']} | {r['precision']} | " + " | ".join(cells) + f" | {ratio} | {rate} |"
        )
    skipped = result.get("skipped")
    if skipped:
        lines += ["", f"Not run (time budget): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


def dry_run() -> int:
    """--dry-run: the eager steps of the small cases on the CPU and the table, no files."""
    global DEVICE
    DEVICE = "cpu"
    rows = [run_case(n, w, b, lo, p) for n, w, b, lo, ps in CASES[:2] for p in ps]
    fake = {
        "device": "cpu (dry run)",
        "torch": torch.__version__,
        "commit": "-",
        "date": "-",
        "tf32": False,
        "tests": {"runner": "none", "passed": True},
        "rows": rows,
        "matmul_tflops": {"bf16": 1.0, "float32": 1.0},
        "skipped": [],
    }
    print(markdown(fake))
    return 0


def main() -> int:
    if "--dry-run" in sys.argv:
        return dry_run()
    if not torch.cuda.is_available():
        print(
            "benchmarks/gpu.py: no CUDA device here (torch.cuda.is_available() is False); "
            "nothing to measure."
        )
        return 0
    out_dir = Path(os.environ.get("OUT") or ROOT / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name()
    print(f"device: {device}, torch {torch.__version__}", flush=True)
    tests = run_tests()
    print(f"tests: {'passed' if tests['passed'] else 'FAILED'} in {tests['s']:.0f} s", flush=True)
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        commit = "unknown"
    result: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tf32": torch.backends.cuda.matmul.allow_tf32,
        "tests": tests,
        "rows": [],
        "skipped": [],
    }
    bench_start = time.perf_counter()
    result["matmul_tflops"] = matmul_rates()
    print(f"matmul TFLOP/s: {result['matmul_tflops']}", flush=True)
    for name, widths, batch, loss_name, precisions in CASES:
        for precision in precisions:
            if time.perf_counter() - bench_start > BUDGET_S:
                result["skipped"].append(f"{name} {precision}")
                continue
            row = run_case(name, widths, batch, loss_name, precision)
            result["rows"].append(row)
            print(
                f"{name} {precision}: "
                + ", ".join(f"{m} {_ms(row.get(m))} ms" for m in ALL_MODES if m in row),
                flush=True,
            )
            (out_dir / "gpu.json").write_text(json.dumps(result, indent=2))  # kept as it goes
    table = markdown(result)
    (out_dir / "gpu.json").write_text(json.dumps(result, indent=2))
    (out_dir / "gpu.md").write_text(table)
    print(table)
    print(
        f"wrote {out_dir / 'gpu.json'} and {out_dir / 'gpu.md'} "
        f"({time.perf_counter() - START:.0f} s in all)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
