"""What forwards keep: ``no_cache`` (torch's ``no_grad``), and the record of calls that
Module.summary reads. Both are per thread, as torch's grad mode is."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])


class _Mode(threading.local):
    def __init__(self) -> None:  # per thread; set on the instance, as torch.compile's guards
        self.caching = True  # False inside no_cache()  # read them there
        self.host_reads = True  # False inside capture_safe()
        self.calls: list[tuple[Any, Any]] | None = None  # (module, output) of every call


_mode = _Mode()


@contextlib.contextmanager
def capture_safe() -> Iterator[None]:
    """Nothing inside reads a tensor's value on the host (no device sync): input checks that
    would (class-index range, probabilities in [0, 1]) are skipped, and fast paths chosen by a
    value (max pooling's NaN check) take their general branch. Class indices are taken to be
    classes in [0, C), so CrossEntropyLoss drops its ignore_index mask unless ignore_index is a
    class. A training step that a CUDA graph captures runs under it, after the data were
    checked once (handgrad.training.graph)."""
    before = _mode.host_reads
    _mode.host_reads = False
    try:
        yield
    finally:
        _mode.host_reads = before


_is_compiling = getattr(torch.compiler, "is_compiling", None) or torch._dynamo.is_compiling


def compiling() -> bool:
    """Whether torch.compile is tracing this code now (hg.compile_step): then the checks that
    read what compiled code does not keep (a tensor's ``_version``) are left out; the eager
    step before the compile ran them. (torch.compiler.is_compiling: torch >= 2.3.)"""
    return bool(_is_compiling())


# What algorithm="auto" runs inside a compiled step (hg.compile_step), by module: the tuned
# kernels' in-place passes are what torch.compile fuses anyway, and the reference ops' plain
# formulas compiled to code as fast or faster for every module measured (Conv's col2im as
# shifted adds: kernels.col2im_shifted). benchmarks/compiled_auto.py measures them; figures
# in docs/benchmarks.md#compiled-steps-issue-22.
COMPILED_AUTO = {"Conv": "reference", "Linear": "reference", "LayerNorm": "reference"}
COMPILED_AUTO |= {"GELU": "reference", "MultiheadAttention": "reference"}


def reference_when_compiling(module: str, algorithm: str) -> bool:
    """Whether a module whose algorithm is `algorithm` runs the reference ops: "reference"
    always, "auto" when torch.compile traces it and COMPILED_AUTO says so."""
    if algorithm == "reference":
        return True
    return algorithm == "auto" and compiling() and COMPILED_AUTO[module] == "reference"


def autocasting(device_type: str) -> bool:
    """Whether torch.autocast is on for this device type (fit's precision="bf16"): then an
    input's dtype may differ from a layer's float32 weights, as in torch."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4: one function per device type
        cpu = torch.is_autocast_cpu_enabled()  # type: ignore[attr-defined,unused-ignore]
        return bool(torch.is_autocast_enabled() if device_type == "cuda" else cpu)


def is_caching() -> bool:
    """Whether forwards keep their caches now (False inside ``no_cache``)."""
    return _mode.caching


class no_cache:
    """``with hg.no_cache():`` (or ``@hg.no_cache()``): forwards inside keep nothing for backward.

    What ``torch.no_grad`` is to torch: evaluate, predict and summary run under it, and so
    should any forward that is only looked at.
    """

    def __enter__(self) -> None:
        self.before = is_caching()
        _mode.caching = False

    def __exit__(self, *exc: object) -> None:
        _mode.caching = self.before

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with no_cache():
                return fn(*args, **kwargs)

        return wrapped  # type: ignore[return-value]


@contextlib.contextmanager
def record_calls() -> Iterator[list[tuple[Any, Any]]]:
    """Inside, every module call appends (module, output) to the yielded list."""
    before, _mode.calls = _mode.calls, []
    try:
        yield _mode.calls
    finally:
        _mode.calls = before
