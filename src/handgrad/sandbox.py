"""Run untrusted (student) code outside this process: a fork server and its limits.

API (stable; the grader, `handgrad grade --train` and `handgrad check` use only this):

    with Sandbox(workdir, Limits(cpu_seconds=10)) as box:
        outcome = box.run(fn, *args, **kwargs)   # fn: a module-level function (picklable)
    outcome.ok       True when fn returned
    outcome.value    fn's return value (pickled back; tensors are fine) when ok
    outcome.reason   None when ok, else one of REASONS, e.g. "timeout"
    outcome.detail   a one-line message for the report (the exception, the limit hit)
    outcome.output   what fn printed (stdout and stderr, capped at Limits.output_bytes)
    outcome.traceback  the formatted exception, when fn raised

fn runs in a child process with the workdir as its cwd; it may import the student's file by
path. Nothing it does (a loop, an allocation, sys.exit, a crash, printing gigabytes, writing
files outside workdir) can take down the caller: it costs that call alone. The workdir and
the limits travel with each call, so `box.workdir` and `box.limits` may be replaced between
calls (one worker can serve a whole folder of students). fn's value must be data,
tensors or handgrad objects: an instance of a class of the student's module is refused
("error"), since unpickling it here would import that module into this process.

Threat model: the code is untrusted but not malicious. The sandbox contains accidents (an
endless loop, an unbounded allocation, a flood of output, sys.exit or os._exit, a crash, a
file written with a stray relative or absolute path), not attacks: code that sets out to
escape (ctypes tricks, setsid then fork, a kernel exploit) is out of scope.

How, on Linux (the fork server is sandbox_worker.py, the child's side sandbox_confine.py):
- one worker process imports torch and handgrad once; each call forks a fresh child of it,
  so a call costs milliseconds, and the child's state dies with it;
- the child leads a new session; at the end of the call its process group is killed, and
  the worker (a child subreaper) kills any orphan left behind, so no process of the code
  outlives the call; the worker dies when this process closes it or goes away;
- limits: RLIMIT_CPU (cpu_seconds), RLIMIT_AS (memory_bytes beyond the worker's own
  address space), RLIMIT_FSIZE (file_bytes), no core files; the worker enforces
  wall_seconds and output_bytes, killing the child when either is passed. RLIMIT_NPROC is
  not set: it counts every process of the user on the machine, not those of one call;
- writes: Landlock (Linux >= 5.13) allows writing under the workdir only, for the child and
  all it starts; an audit hook refuses Python-level writes elsewhere with the path, so the
  reason is "write" (`Sandbox.confinement` says which hold on this machine). A write that
  only Landlock stops (torch.save's C++ writer, a shell command) fails with the error it
  raises there ("Permission denied"), reported as "error" or as the command's exit status;
macOS: the same, except Landlock and the subreaper (writes: the audit hook alone, Python-
level only) and RLIMIT_AS, which macOS does not enforce (no memory limit there).
Windows has no fork: Sandbox() refuses with UsageError; `handgrad check` runs there in its
own process, unconfined, as it did before the sandbox.
"""

from __future__ import annotations

import atexit
import builtins
import io
import json
import os
import pickle
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from handgrad.errors import ArgumentTypeError, InputError, UsageError
from handgrad.sandbox_worker import read_frame, write_frame

REASONS = ("timeout", "memory", "output", "exit", "error", "crash", "write")
AVAILABLE = hasattr(os, "fork")  # False on Windows
_HERE = Path(__file__).resolve().parent
_GRACE = 10.0  # seconds past wall_seconds before the caller stops waiting for the worker


@dataclass(frozen=True)
class Limits:
    """What one call may use."""

    cpu_seconds: float = 10.0  # CPU time of the call
    wall_seconds: float = 30.0  # wall-clock time of the call
    memory_bytes: int = 2 << 30  # address space the call may add to the worker's
    output_bytes: int = 1 << 20  # stdout + stderr; more fails the call ("output")
    file_bytes: int = 64 << 20  # the largest file it may write; more fails it ("write")


@dataclass
class Outcome:
    """What one call gave: a value, or the reason it has none."""

    ok: bool
    value: Any = None
    reason: str | None = None
    detail: str = ""
    output: str = ""
    traceback: str = ""  # the formatted exception, when fn raised


# The worker is started by path, so that it imports nothing of handgrad until it preloads.
_BOOT = """
import importlib.util, json, sys
sys.path[:] = json.loads(sys.argv[1])
def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
confine = load("handgrad_sandbox_confine", sys.argv[2])
load("handgrad_sandbox_worker", sys.argv[3]).serve(json.loads(sys.argv[4]), confine)
"""


class Sandbox:
    """Runs functions in child processes confined to `workdir` under `limits`.

    Args:
        imports: modules the worker imports once, before any call (each call's child then
            has them for free); fn's own module is imported by the worker on first use.
        shared: serve the calls from this process's one worker for these imports, started on
            first use and kept until the process exits, instead of a worker of this sandbox's
            own (a worker holds no student state: each call runs in a fresh child, with the
            call's own workdir and limits, and its processes end with the call). What a
            program that grades or checks many times wants (an interpreter with torch takes
            1.5-2.5 s to start); close() then leaves the worker running for the next sandbox.
    """

    def __init__(
        self,
        workdir: str | Path,
        limits: Limits | None = None,
        *,
        imports: Iterable[str] = ("torch", "handgrad"),
        shared: bool = False,
    ) -> None:
        if not AVAILABLE:
            raise UsageError(
                "Sandbox: running code in a sandbox needs os.fork (Linux or macOS); "
                "on Windows, grade under WSL"
            )
        self.workdir = Path(workdir).resolve()
        if not self.workdir.is_dir():
            raise InputError(f"Sandbox: the working folder {self.workdir} is not a folder")
        self.limits = limits or Limits()
        self.imports = tuple(imports)
        self.shared = shared
        self.confinement = ""  # how writes are confined, once the worker has started
        self._worker: subprocess.Popen[bytes] | None = None
        self._closer: weakref.finalize | None = None
        self._one_call = threading.Lock()  # one call at a time; close() may come from anywhere

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_pid(self) -> int | None:
        """The fork server's process id while it runs."""
        return None if self._worker is None else self._worker.pid

    def close(self) -> None:
        """Ends every process this sandbox started (the worker ends any call in flight); a
        shared worker is left for the next sandbox."""
        if self._closer is not None:
            self._closer()
        self._worker, self._closer = None, None

    def _drop(self) -> None:
        """The worker stopped answering: end it, shared or not, so the next call starts anew."""
        if self.shared and self._worker is not None:
            _SHARED.pop(self.imports, None)
            _stop(self._worker)
        self.close()

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
        """fn(*args, **kwargs) in a fresh child: its value, or the reason it has none."""
        if getattr(fn, "__module__", None) == "__main__" or "<" in getattr(fn, "__qualname__", ""):
            raise ArgumentTypeError(
                f"Sandbox.run: {fn!r} must be a module-level function of an importable module"
            )
        try:
            request = pickle.dumps((fn, args, kwargs, str(self.workdir), self._limits()))
        except Exception as exc:  # noqa: BLE001
            raise ArgumentTypeError(f"Sandbox.run: cannot send the call: {exc}") from exc
        with _SHARED_CALL if self.shared else self._one_call:  # one call at a time a worker
            worker = self._start()
            assert worker.stdin is not None and worker.stdout is not None
            deadline = time.monotonic() + self.limits.wall_seconds + _GRACE
            try:
                write_frame(worker.stdin.fileno(), request)
                reply = read_frame(worker.stdout.fileno(), deadline)
            except (OSError, ValueError):  # the worker went away, or close() ran meanwhile
                reply = None
        if reply is None:  # the worker died or hung: a fresh one serves the next call
            self._drop()
            return Outcome(False, reason="crash", detail="the sandbox's worker stopped answering")
        return _outcome(pickle.loads(reply))

    def _limits(self) -> dict[str, Any]:
        return asdict(self.limits)

    def _start(self) -> subprocess.Popen[bytes]:
        """The running worker, started (and waited for until ready) on first use."""
        if self._worker is not None and self._worker.poll() is None:
            return self._worker
        self.close()
        if self.shared and self.imports in _SHARED and _SHARED[self.imports][0].poll() is None:
            self._worker, self.confinement = _SHARED[self.imports]
            return self._worker
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _BOOT,
                json.dumps(sys.path),
                str(_HERE / "sandbox_confine.py"),
                str(_HERE / "sandbox_worker.py"),
                json.dumps(list(self.imports)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches us; we end the worker
        )
        self._worker = worker
        if not self.shared:
            self._closer = weakref.finalize(self, _stop, worker)
        assert worker.stdout is not None
        hello = read_frame(worker.stdout.fileno(), time.monotonic() + 120)
        if hello is None:
            self._drop()
            raise UsageError("Sandbox: the worker process did not start")
        info = pickle.loads(hello)
        if info["failed"]:
            self._drop()
            raise UsageError(f"Sandbox: the worker could not import {'; '.join(info['failed'])}")
        self.confinement = info["confinement"]
        if self.shared:
            _SHARED[self.imports] = (worker, self.confinement)
        return worker


_SHARED: dict[tuple[str, ...], tuple[subprocess.Popen[bytes], str]] = {}  # shared=True workers
_SHARED_CALL = threading.Lock()  # the shared workers serve one call at a time


@atexit.register
def _stop_shared() -> None:
    """The shared workers end with this process (each also exits when its caller dies)."""
    for worker, _ in list(_SHARED.values()):
        _stop(worker)
    _SHARED.clear()


def _stop(worker: subprocess.Popen[bytes]) -> None:
    """Close the worker's stdin (it kills any call in flight and exits); kill it if it lingers."""
    if worker.stdin is not None:
        worker.stdin.close()
    try:
        worker.wait(timeout=5)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
    if worker.stdout is not None:
        worker.stdout.close()


# ---- the value, unpickled with only the classes a result may hold -------------------------------
_SAFE_MODULES = ("torch", "numpy", "handgrad", "collections", "copyreg", "_codecs", "datetime")


class _ResultUnpickler(pickle.Unpickler):
    """Unpickles data, tensors and handgrad's own classes; refuses a class of the sandboxed
    code (unpickling it would import, so run, that code here)."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and isinstance(getattr(builtins, name, None), type):
            return getattr(builtins, name)
        if module.split(".")[0] in _SAFE_MODULES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"the value holds {module}.{name}; return plain data, tensors or handgrad objects"
        )


def _outcome(reply: dict[str, Any]) -> Outcome:
    output = reply.get("output", b"").decode("utf-8", errors="replace")
    extra = {"output": output, "traceback": reply.get("traceback", "")}
    if not reply["ok"]:
        return Outcome(False, reason=reply["reason"], detail=reply["detail"], **extra)
    try:
        value = _ResultUnpickler(io.BytesIO(reply["value"])).load()
    except Exception as exc:  # noqa: BLE001 - a value that cannot come out is the call's error
        return Outcome(False, reason="error", detail=f"the value cannot be read: {exc}", **extra)
    return Outcome(True, value=value, detail=reply.get("detail", ""), **extra)
