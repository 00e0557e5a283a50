"""How the benchmark measures: median seconds per step, timed in alternation; K busy
processes beside it; and a step's peak memory, in a fresh process."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

import torch

from handgrad.threads import policy
from handgrad.tools.bench_steps import Case, Step, handgrad_step, numpy_step, torch_step


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
