"""How many aten ops one of fit's device steps (handgrad.training.graph.Step) runs, on the CPU.

    PYTHONPATH=src python3 benchmarks/step_ops.py

A proxy for the CUDA kernels a captured step launches (benchmarks/gpu_profile.py counts those
on a GPU): every aten call that is not a view is counted once, a ``torch._foreach_*`` call as
one (on CUDA it is one multi-tensor kernel when its tensors share a dtype and device). The
whole step is split into a bare forward + loss + backward of the same model (run as in the
step: under capture_safe, the .grad already there) and "bookkeeping", what the step adds to
it: the zeroing of the gradients, the inf/NaN guard, the optimizer update and the loss sum.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import handgrad as hg
from handgrad.mode import capture_safe
from handgrad.training.graph import Step

CASES = [  # (name, widths, batch), the MLPs of benchmarks/gpu.py
    ("digits 64-128-10, batch 64", (64, 128, 10), 64),
    ("mnist 784-512-512-10, batch 128", (784, 512, 512, 10), 128),
]
OPTIMIZERS = {  # benchmarks/gpu.py's SGD, and Adam
    "SGD": lambda params: hg.optim.SGD(params, lr=0.01),
    "SGD momentum": lambda params: hg.optim.SGD(params, lr=0.01, momentum=0.9),
    "Adam": lambda params: hg.optim.Adam(params, lr=1e-3),
}


class CountOps(TorchDispatchMode):
    """Counts the aten calls made inside it, by name; views (no kernel) are left out."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if not func.is_view:
            self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def mlp(widths: tuple[int, ...]) -> hg.Sequential:
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += [hg.Linear(a, b)] + ([hg.ReLU()] if i < len(widths) - 2 else [])
    return hg.Sequential(*layers)


def step_ops(widths: tuple[int, ...], batch: int, optimizer: str) -> tuple[Counter[str], int]:
    """(the ops of one Step call by name, the ops of a bare forward + loss + backward),
    counted after three warm-up steps (the first one makes the .grad and optimizer state)."""
    torch.manual_seed(0)
    model, loss = mlp(widths), hg.CrossEntropyLoss()
    X = torch.randn(batch, widths[0])
    y = torch.randint(0, widths[-1], (batch,))
    step = Step(model, loss, OPTIMIZERS[optimizer](model.parameters()))
    for _ in range(3):
        step(X, y)
    with CountOps() as whole:
        step(X, y)
    with CountOps() as bare, capture_safe():  # as in the step: no label checks
        loss(model(X), y)
        model.backward_params(loss.backward())
    step.close()
    return whole.ops, sum(bare.ops.values())


def main() -> int:
    torch.set_num_threads(1)
    print("| MLP | optimizer | ops a step | forward + loss + backward | bookkeeping (the rest) |")
    print("|---|---|---:|---:|---:|")
    for name, widths, batch in CASES:
        for opt in OPTIMIZERS:
            ops, bare = step_ops(widths, batch, opt)
            total = sum(ops.values())
            print(f"| {name} | {opt} | {total} | {bare} | {total - bare} |")
    if "-v" in sys.argv:
        ops, _ = step_ops((784, 512, 512, 10), 128, "SGD")
        print("\n784-512-512-10 SGD, by op:", dict(ops.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
