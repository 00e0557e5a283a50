"""Run untrusted (student) code outside this process: a fork server and its limits.

API (stable; the grader, `handgrad grade --train` and `handgrad check` use only this):

    with Sandbox(workdir, Limits(cpu_seconds=10)) as box:
        outcome = box.run(fn, *args, **kwargs)   # fn: a module-level function (picklable)
    outcome.ok       True when fn returned
    outcome.value    fn's return value (pickled back; tensors are fine) when ok
    outcome.reason   None when ok, else one of REASONS, e.g. "timeout"
    outcome.detail   a one-line message for the report (the exception, the limit hit)
    outcome.output   what fn printed (stdout and stderr, capped at Limits.output_bytes)

fn runs in a child process with the workdir as its cwd; it may import the student's file by
path. Nothing it does (a loop, an allocation, sys.exit, a crash, printing gigabytes, writing
files outside workdir) can take down the caller: it costs that call alone.

PLACEHOLDER: this first version forks one child per call with a wall-clock timeout and
nothing else; the sandbox helper replaces the internals (fork server, resource limits,
process group, output cap, write confinement) without changing the API.
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REASONS = ("timeout", "memory", "output", "exit", "error", "crash", "write")


@dataclass(frozen=True)
class Limits:
    """What one call may use."""

    cpu_seconds: float = 10.0  # CPU time of the call
    wall_seconds: float = 30.0  # wall-clock time of the call
    memory_bytes: int = 2 << 30  # address space of the child
    output_bytes: int = 1 << 20  # stdout + stderr; more fails the call ("output")


@dataclass
class Outcome:
    """What one call gave: a value, or the reason it has none."""

    ok: bool
    value: Any = None
    reason: str | None = None
    detail: str = ""
    output: str = ""


def _child(conn: Any, workdir: str, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    import os

    os.chdir(workdir)
    try:
        conn.send(Outcome(ok=True, value=fn(*args, **kwargs)))
    except SystemExit as e:
        conn.send(Outcome(ok=False, reason="exit", detail=f"the code called sys.exit({e.code})"))
    except BaseException as e:  # noqa: BLE001 - the student's error, reported
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        conn.send(Outcome(ok=False, reason="error", detail=last))


class Sandbox:
    """Runs functions in child processes confined to `workdir` under `limits`."""

    def __init__(self, workdir: str | Path, limits: Limits | None = None) -> None:
        self.workdir = Path(workdir).resolve()
        self.limits = limits or Limits()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Ends every process this sandbox started."""

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child, str(self.workdir), fn, args, kwargs))
        proc.start()
        child.close()
        if not parent.poll(self.limits.wall_seconds):
            proc.kill()
            proc.join()
            return Outcome(ok=False, reason="timeout", detail="ran past its time limit")
        try:
            outcome: Outcome = parent.recv()
        except EOFError:
            outcome = Outcome(ok=False, reason="crash", detail="the process died")
        proc.join()
        return outcome
