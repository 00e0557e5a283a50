"""The sandbox's fork server: one pre-imported worker that forks a fresh child per call.

handgrad/sandbox.py starts this file in its own interpreter (loaded by path, so the standard
library is all it imports before the preloads) and talks to it over stdin/stdout, one pickled
frame each way per call. For each call the worker forks; the child confines itself
(sandbox_confine.py: limits, session, Landlock, audit hook), runs fn and pickles the outcome
into a result pipe; the worker reads that pipe and the child's output pipe, ends the call at
the wall-clock limit or the output cap, kills the child's process group and any orphan left
behind, and answers with a plain dict. Nothing here imports handgrad: the worker must start
light when a caller asks for no preloads.
"""

from __future__ import annotations

import importlib
import os
import pickle
import select
import signal
import struct
import sys
import time
import traceback
from typing import Any

_HEADER = struct.Struct("!Q")  # every frame: its length, then a pickle
_CHUNK = 1 << 16


# ---- frames -------------------------------------------------------------------------------------
def write_frame(fd: int, data: bytes) -> None:
    """Write one length-prefixed frame to fd (blocking, all of it)."""
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes | None:
    """n bytes from fd, or None at end of file or when the deadline passes."""
    parts, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
        part = os.read(fd, min(n - got, 1 << 20))
        if not part:
            return None
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_frame(fd: int, deadline: float | None = None) -> bytes | None:
    """One frame's payload from fd, or None at end of file or past the deadline."""
    head = read_exact(fd, _HEADER.size, deadline)
    return None if head is None else read_exact(fd, _HEADER.unpack(head)[0], deadline)


# ---- the worker ---------------------------------------------------------------------------------
def serve(imports: list[str], confine: Any) -> None:
    """Preload `imports`, say ready, then answer calls until stdin closes."""
    req, resp = os.dup(0), os.dup(1)  # the protocol; fds 0 and 1 become /dev/null
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller ends us by closing stdin
    confine.become_subreaper()
    failed = []
    for name in imports:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported to the caller, which raises it
            failed.append(f"{name}: {traceback.format_exc(limit=0).strip()}")
    info = {"pid": os.getpid(), "failed": failed, "confinement": confine.write_confinement()}
    write_frame(resp, pickle.dumps(info))
    while (frame := read_frame(req)) is not None:
        write_frame(resp, pickle.dumps(_call(frame, (req, resp), confine)))
    confine.kill_orphans()


def _call(frame: bytes, protocol: tuple[int, int], confine: Any) -> dict[str, Any]:
    """Fork a child for one request, supervise it, and say how it ended. `protocol`: the
    worker's request and reply fds (the child closes them; a request fd that becomes
    readable during the call means the caller went away)."""
    try:
        fn, args, kwargs, workdir, limits = pickle.loads(frame)
    except Exception as exc:  # noqa: BLE001 - fn's module failed to import in the worker
        return _failed("error", f"cannot load the function: {type(exc).__name__}: {exc}")
    out_r, out_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(out_r)
        os.close(res_r)
        confine.run_child(fn, args, kwargs, workdir, limits, out_w, res_w, closing=protocol)
    os.close(out_w)
    os.close(res_w)
    try:
        return _supervise(pid, out_r, res_r, protocol[0], limits, confine)
    finally:
        os.close(out_r)
        os.close(res_r)


def _failed(reason: str, detail: str, output: bytes = b"") -> dict[str, Any]:
    return {"ok": False, "reason": reason, "detail": detail, "output": output}


def _supervise(
    pid: int, out_r: int, res_r: int, req: int, limits: dict[str, Any], confine: Any
) -> dict[str, Any]:
    """Watch the child until it exits, runs out of time or prints too much; then kill its
    process group and orphans, reap it, and classify the ending."""
    exit_fd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    out, res = bytearray(), bytearray()
    stop = _watch(pid, out_r, res_r, req, exit_fd, limits, out, res, confine)
    if stop is not None:
        confine.kill_group(pid)
    status, rusage = _reap(pid, confine)
    _drain(out_r, out)
    _drain(res_r, res)
    if exit_fd is not None:
        os.close(exit_fd)
    confine.kill_orphans()
    output = bytes(out[: limits["output_bytes"]])
    if stop is not None:
        return _failed(*stop, output)
    return _ending(bytes(res), status, rusage, limits, output)


def _watch(
    pid: int,
    out_r: int,
    res_r: int,
    req: int,
    exit_fd: int | None,
    limits: dict[str, Any],
    out: bytearray,
    res: bytearray,
    confine: Any,
) -> tuple[str, str] | None:
    """Read the child's output into `out` and its result into `res` until it exits (None),
    or until the wall-clock limit or the output cap ends the call: (reason, detail)."""
    deadline = time.monotonic() + limits["wall_seconds"]
    open_fds = {out_r, res_r}
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return ("timeout", f"ran past its wall-clock limit of {limits['wall_seconds']:g} s")
        waiting = [*open_fds, req] + ([exit_fd] if exit_fd is not None else [])
        ready = select.select(waiting, [], [], left)[0]
        if req in ready:  # the caller went away: end the call and then the worker
            confine.kill_group(pid)
            confine.kill_orphans()
            os._exit(0)
        for fd in (fd for fd in ready if fd in open_fds):
            data = os.read(fd, _CHUNK)
            if not data:
                open_fds.discard(fd)
            (out if fd == out_r else res).extend(data)
        if len(out) > limits["output_bytes"]:
            return ("output", f"printed more than {limits['output_bytes']:,} bytes")
        if exit_fd in ready or res_r not in open_fds:
            return None  # the child exited (or closed its result pipe in exiting)


def _reap(pid: int, confine: Any) -> tuple[int, Any]:
    """Wait for the child (a short grace to finish exiting), then kill its group: a process
    it started does not outlive the call."""
    end = time.monotonic() + 1.0
    while True:
        done, status, rusage = os.wait4(pid, os.WNOHANG)
        if done or time.monotonic() > end:
            break
        time.sleep(0.002)
    confine.kill_group(pid)
    if not done:
        _, status, rusage = os.wait4(pid, 0)
    return status, rusage


def _drain(fd: int, into: bytearray) -> None:
    """What is left in the result pipe once its writer is gone."""
    os.set_blocking(fd, False)
    try:
        while data := os.read(fd, _CHUNK):
            into.extend(data)
    except BlockingIOError:
        pass


def _ending(
    res: bytes, status: int, rusage: Any, limits: dict[str, Any], output: bytes
) -> dict[str, Any]:
    """The child's own report when it sent one; else what its exit status says."""
    if res:
        try:
            reply: dict[str, Any] = pickle.loads(res)
            reply["output"] = output
            return reply
        except Exception:  # noqa: BLE001 - a result cut short: fall through to the status
            pass
    if os.WIFEXITED(status):
        code = os.WEXITSTATUS(status)
        return _failed("exit", f"the code ended its process with status {code} (os._exit)", output)
    sig = os.WTERMSIG(status)
    cpu = rusage.ru_utime + rusage.ru_stime
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= limits["cpu_seconds"]):
        return _failed(
            "timeout", f"used more than its {limits['cpu_seconds']:g} s of CPU time", output
        )
    name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
    why = {
        "SIGSEGV": "segmentation fault",
        "SIGBUS": "bus error",
        "SIGABRT": "aborted",
        "SIGFPE": "arithmetic fault",
        "SIGILL": "illegal instruction",
        "SIGKILL": "killed; the machine may be out of memory",
    }.get(name, "killed by a signal")
    return _failed("crash", f"the process crashed: {name} ({why})", output)


if __name__ == "__main__":
    sys.exit("run by handgrad.sandbox, not directly")
