"""Where a GPU training step spends its time: the CUDA kernels of one step, handgrad's graph
step beside torch's eager and captured steps (torch.profiler), and the command line's
--device cuda --cuda-graph / --precision bf16 run end to end.

    PYTHONPATH=src python3 benchmarks/gpu_profile.py     # prints; writes nothing but $OUT/run*

Run it after benchmarks/gpu.py, on the same kind of machine: it explains that script's rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import gpu  # noqa: E402 (the same steps as the benchmark)

CASES = [
    ("mnist 784-512-512-10, batch 128", (784, 512, 512, 10), 128, "float32"),
    ("8192-wide 8192x4, batch 8192", (8192, 8192, 8192, 8192, 8192), 8192, "bf16"),
]


def kernels(fn, steps: int = 5) -> list[tuple[str, float, int]]:
    """(kernel name, microseconds per step, launches per step), most time first."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            fn()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if t:
            rows.append((e.key, t / steps, e.count // steps))
    return sorted(rows, key=lambda r: -r[1])


def show(title: str, rows: list[tuple[str, float, int]], top: int = 12) -> None:
    total = sum(r[1] for r in rows)
    launches = sum(r[2] for r in rows)
    print(f"\n{title}: {total:.0f} us of kernels a step, {launches} launches")
    for name, us, n in rows[:top]:
        print(f"  {us:9.1f} us  {n:4d}x  {name[:100]}")


def cli_runs(out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": "src"}
    for flags in (
        ["--cuda-graph"],
        ["--cuda-graph", "--precision", "bf16"],
        ["--precision", "bf16"],
    ):
        t0 = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "handgrad", "train", "--data", "digits", "--epochs", "5",
             "--device", "cuda", *flags, "--quiet", "--out", str(out / ("run" + "".join(flags)))],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        tail = (run.stdout + run.stderr).strip().splitlines()[-3:]
        print(f"\nhandgrad train --device cuda {' '.join(flags)}: rc {run.returncode}, "
              f"{time.perf_counter() - t0:.1f} s\n  " + "\n  ".join(tail))  # fmt: skip


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to profile")
        return 0
    print(torch.cuda.get_device_name(), torch.__version__)
    for name, widths, batch, precision in CASES:
        X, y = gpu._data(widths, batch, "ce")
        for mode in ("torch eager", "torch graph", "handgrad graph"):
            make = gpu.torch_step if mode.startswith("torch") else gpu.handgrad_step
            fn = make(widths, "ce", precision, X, y, graph=mode.endswith("graph"))
            show(f"{name}, {precision}, {mode}", kernels(fn))
            fn = None
            torch.cuda.empty_cache()
    cli_runs(Path(os.environ.get("OUT", "/tmp")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
