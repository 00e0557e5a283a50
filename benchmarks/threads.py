"""Where one thread stops being as fast as every core: the measurement behind
handgrad.threads.SMALL_WORK.

    .venv/bin/python benchmarks/threads.py            # idle machine
    .venv/bin/python benchmarks/threads.py --busy 2   # with two busy processes beside it
    .venv/bin/python benchmarks/threads.py --table    # README's table: the digits step, Adam

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


def digits_steps() -> dict[str, bench.Step]:
    """One digits step (64-128-10, batch 64, Adam, cross-entropy) in torch and in handgrad,
    each on one thread and on two."""
    import torch.nn as nn

    import handgrad as hg

    case = bench.Case("digits", "mlp", (64, 128, 10), 64)
    X, y = bench.mlp_data(case)
    steps: dict[str, bench.Step] = {}
    for threads_ in (2, 1):
        ref = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
        ref_loss, ref_opt = nn.CrossEntropyLoss(), torch.optim.Adam(ref.parameters(), 1e-3)

        def torch_step(ref=ref, ref_loss=ref_loss, ref_opt=ref_opt) -> None:
            ref_opt.zero_grad()
            ref_loss(ref(X), y).backward()
            ref_opt.step()

        mine = hg.from_torch(ref)
        loss, opt = hg.CrossEntropyLoss(), hg.optim.Adam(mine.parameters(), 1e-3)

        def hg_step(mine=mine, loss=loss, opt=opt) -> None:
            opt.zero_grad()
            loss(mine(X), y)
            mine.backward_params(loss.backward())
            opt.step()

        torch_step.threads = hg_step.threads = threads_  # type: ignore[attr-defined]
        steps[f"torch, {threads_} thread{'s' if threads_ > 1 else ''}"] = torch_step
        steps[f"handgrad, {threads_} thread{'s' if threads_ > 1 else ''}"] = hg_step
    return steps


def table(rounds: int) -> None:
    """README's table: the digits step, idle and beside two busy processes."""
    rows = {}
    for k, label in ((0, "machine otherwise idle"), (2, "two other processes busy")):
        with bench.busy(k):
            rows[label] = bench.measure(digits_steps(), rounds=rounds)
    names = list(next(iter(rows.values())))
    print("| | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for label, t in rows.items():
        print(f"| {label} | " + " | ".join(f"{t[n] * 1e3:.2f} ms" for n in names) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=0, help="busy processes beside the timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--table", action="store_true", help="README's table, then stop")
    args = parser.parse_args()
    if args.table:
        print(bench.machine())
        table(args.rounds)
        return
    cores = threads.physical_cores()
    print(f"{bench.machine()}; {cores} physical cores; {args.busy} busy processes")
    print(
        f"{'case':<30} {'work (MMAC)':>12} {'1 thread':>10} {f'{cores} threads':>10} {'ratio':>6}"
    )
    with bench.busy(args.busy):
        for case in CASES:
            one, all_ = bench.handgrad_step(case), bench.handgrad_step(case)
            one.threads, all_.threads = 1, cores  # type: ignore[attr-defined]
            X, _ = bench.mlp_data(case)
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
