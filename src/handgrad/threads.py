"""How many CPU threads a call runs on: chosen by the work, so a busy machine does not stall it.

Every torch operation on the CPU splits its work over torch's threads and waits for the
slowest at the end of its parallel region. When another process wants the cores, one of them
is often descheduled and every small operation waits for it: a step of a small network then
takes 5 to 300 times longer. One thread never waits for another. A small network is as fast on
one thread as on two even on an idle machine, so handgrad runs it on one; a step whose matrix
products fill the cores gets them all (docs/benchmarks.md#threads has the measurement).

``threads`` (in fit, evaluate, predict, the command line and the lab):

- ``"auto"`` (the default): one thread when a step's work is below ``SMALL_WORK``
  multiply-adds, the machine's physical cores otherwise; but only while torch's thread count
  is still the one it started with and ``OMP_NUM_THREADS`` is unset: a user who chose a
  thread count keeps it;
- an int: that many threads;
- ``None``: torch's setting, left alone.

torch's previous setting is restored when the call returns, also when it raises.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError
from handgrad.mode import no_cache, record_calls

__all__ = ["SMALL_WORK", "physical_cores", "step_work", "choose", "policy", "Threads"]

Threads = int | str | None

# Multiply-adds of one training step (forward + backward) below which one thread is as fast
# as all of them on an idle machine; measured by benchmarks/threads.py (docs/benchmarks.md).
SMALL_WORK = 15_000_000

_STARTING_THREADS = torch.get_num_threads()  # torch's count when handgrad was imported
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def physical_cores() -> int:
    """Physical cores this process may run on (hyperthreads counted once)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores: set[tuple[str, str]] = set()
    for cpu in allowed:
        base = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{base}/physical_package_id") as f1, open(f"{base}/core_id") as f2:
                cores.add((f1.read().strip(), f2.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def step_work(model: Any, x: Tensor, backward: bool = True) -> int:
    """Multiply-adds of model(x) (and its backward, about twice the forward), counted from
    one sample run under no_cache in eval mode: each module call with a weight of shape
    (out, *rest) costs its output's size times rest's size; any other call its output's size."""
    if not isinstance(x, Tensor) or x.dim() == 0 or x.shape[0] == 0:
        return 0
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        with no_cache(), record_calls() as calls:
            model(x[:1])
    finally:
        model.train(was_training)
    per_sample = 0
    for module, out in calls:
        outs = out if isinstance(out, tuple) else (out,)
        size = sum(o.numel() for o in outs if isinstance(o, Tensor))
        if module.children():
            continue  # a container: its children are counted
        weight = getattr(module, "weight", None)
        fan = weight[0].numel() if isinstance(weight, Tensor) and weight.dim() >= 2 else 1
        per_sample += size * fan
    return per_sample * x.shape[0] * (3 if backward else 1)


def _user_chose() -> bool:
    """Whether someone set torch's thread count: by call, or by environment variable."""
    if any(os.environ.get(v) for v in _THREAD_VARIABLES):
        return True
    return torch.get_num_threads() != _STARTING_THREADS


def choose(threads: Threads, work: int | Callable[[], int]) -> int | None:
    """The thread count for a call of `work` multiply-adds, or None to leave torch's alone.
    `work` may be a function: it is called only when "auto" has a choice to make."""
    if threads is None:
        return None
    if threads == "auto":
        if _user_chose():
            return None
        n = work() if callable(work) else work
        return 1 if n < SMALL_WORK else physical_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InputError(f"threads must be 'auto', a positive int or None, got {threads!r}")
    return threads


@contextlib.contextmanager
def policy(threads: Threads, work: int | Callable[[], int]) -> Iterator[int]:
    """Run the block on choose(threads, work) threads; torch's setting is restored after.
    Yields the thread count in use."""
    before = torch.get_num_threads()
    n = choose(threads, work)
    if n is None or n == before:
        yield before
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
