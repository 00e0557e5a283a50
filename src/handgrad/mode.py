"""What forwards keep: ``no_cache`` (torch's ``no_grad``), and the record of calls that
Module.summary reads. Both are per thread, as torch's grad mode is."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class _Mode(threading.local):
    caching = True  # False inside no_cache()
    calls: list[tuple[Any, Any]] | None = None  # (module, output) of every call, in summary()


_mode = _Mode()


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
