"""Which algorithm "auto" should run inside a compiled step, per module: each layer's forward
and backward compiled (hg.compile_step's way: fullgraph, under capture_safe), once with the
reference ops and once with the tuned kernel, timed alternately (min of rounds).

    PYTHONPATH=src python benchmarks/compiled_auto.py [--threads N]

Its figures are in docs/benchmarks.md#compiled-steps; mode.COMPILED_AUTO keeps the winners.
"""

from __future__ import annotations

import argparse
import time

import torch

import handgrad as hg
from handgrad import mode
from handgrad.mode import capture_safe

CASES = {  # module: (layer, input), the sizes of the benchmarked models
    "Linear": (lambda: hg.Linear(512, 512), lambda: torch.randn(128, 512)),
    "LayerNorm": (lambda: hg.LayerNorm(128), lambda: torch.randn(32, 128, 128)),
    "GELU": (lambda: hg.GELU(), lambda: torch.randn(32, 128, 512)),
    "MultiheadAttention": (
        lambda: hg.MultiheadAttention(128, 4, batch_first=True),
        lambda: torch.randn(32, 128, 128),
    ),
    "Conv": (lambda: hg.Conv2d(32, 64, 3, padding=1), lambda: torch.randn(32, 32, 28, 28)),
}


def compiled_step(module: str, choice: str):
    """The layer's forward + backward, compiled with "auto" meaning `choice`."""
    torch.manual_seed(0)
    layer, x = CASES[module][0](), CASES[module][1]()
    attention = module == "MultiheadAttention"

    def run() -> object:  # returns dL/dx, so that the compiler cannot drop the work
        for p in layer.parameters():
            if p.grad is not None:
                p.grad.zero_()
        if attention:
            y = layer(x, x, x, need_weights=False)[0]
            return layer.backward(torch.ones_like(y), None)
        return layer.backward(torch.ones_like(layer(x)))

    run()  # eager: makes each .grad
    mode.COMPILED_AUTO[module] = choice
    fn = torch.compile(run, fullgraph=True)
    with capture_safe():
        fn()  # compile now, with this choice
    return lambda: _under(fn, module, choice)


def _under(fn, module: str, choice: str) -> None:
    mode.COMPILED_AUTO[module] = choice  # what its graph was traced with (a guard)
    with capture_safe():
        fn()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; ms per forward + backward")
    for module in CASES:
        steps = {c: compiled_step(module, c) for c in ("reference", "kernels")}
        best = {c: float("inf") for c in steps}
        for _ in range(args.rounds):
            for c, f in steps.items():
                f()
                start = time.perf_counter()
                for _ in range(5):
                    f()
                best[c] = min(best[c], (time.perf_counter() - start) / 5 * 1e3)
        print(f"{module:20s} reference {best['reference']:8.2f}   kernels {best['kernels']:8.2f}")
        torch._dynamo.reset()


if __name__ == "__main__":
    main()
