"""Where one thread stops being as fast as every core: the measurement behind
handgrad.threads.SMALL_WORK.

    .venv/bin/python benchmarks/threads.py            # idle machine
    .venv/bin/python benchmarks/threads.py --busy 2   # with two busy processes beside it

Times one handgrad training step (SGD, cross-entropy, as fit runs it) of MLPs of growing
size on one thread and on every physical core, alternating, and prints each step's work
(multiply-adds, handgrad.threads.step_work) beside the two times.
"""

from __future__ import annotations

import argparse

import torch

from handgrad import threads
from handgrad.tools import bench

CASES = [
    bench.Case("1-10-1, batch 100", "mlp", (1, 10, 1), 100, "mse"),
    bench.Case("64-128-10, batch 64", "mlp", (64, 128, 10), 64),
    bench.Case("64-256-10, batch 128", "mlp", (64, 256, 10), 128),
    bench.Case("784-64-64-10, batch 64", "mlp", (784, 64, 64, 10), 64),
    bench.Case("784-128-128-10, batch 64", "mlp", (784, 128, 128, 10), 64),
    bench.Case("784-128-128-10, batch 128", "mlp", (784, 128, 128, 10), 128),
    bench.Case("784-256-256-10, batch 128", "mlp", (784, 256, 256, 10), 128),
    bench.Case("784-512-512-10, batch 128", "mlp", (784, 512, 512, 10), 128),
    bench.Case("784-1024-1024-10, batch 256", "mlp", (784, 1024, 1024, 10), 256),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the timing")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cores = threads.physical_cores()
    print(f"{bench.machine()}; {cores} physical cores; {args.busy} busy processes")
    print(
        f"{'case':<30} {'work (MMAC)':>12} {'1 thread':>10} {f'{cores} threads':>10} {'ratio':>6}"
    )
    with bench.busy(args.busy):
        for case in CASES:
            one, all_ = bench.handgrad_step(case), bench.handgrad_step(case)
            one.threads, all_.threads = 1, cores  # type: ignore[attr-defined]
            X, _ = bench._data(case)
            work = threads.step_work(one.model, X)  # type: ignore[attr-defined]
            t = bench.measure({"one": one, "all": all_}, rounds=args.rounds)
            print(
                f"{case.name:<30} {work / 1e6:>12.2f} {t['one'] * 1e3:>8.3f}ms "
                f"{t['all'] * 1e3:>8.3f}ms {t['one'] / t['all']:>6.2f}",
                flush=True,
            )
    print(f"handgrad.threads.SMALL_WORK = {threads.SMALL_WORK / 1e6:.0f} MMAC")
    torch.set_num_threads(torch.get_num_threads())


if __name__ == "__main__":
    main()
