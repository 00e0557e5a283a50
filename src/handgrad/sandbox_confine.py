"""What a sandboxed call's child does to itself before it runs fn, and how its ending is named.

Runs inside the fork server (sandbox_worker.py), loaded by path: standard library only.

The child, in order: a new session (its process group is killed at the end of the call);
stdin from /dev/null, stdout and stderr into the worker's capped pipe; cwd and TMPDIR the
workdir; resource limits (CPU time, address space, file size, no core files); writes
confined to the workdir by Landlock where the kernel has it (Linux >= 5.13) and by an audit
hook always (it names the refused path: reason "write"). Then fn runs and its outcome, a
plain dict with the value pickled, goes back through the result pipe.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

_LINUX = sys.platform.startswith("linux")

# Landlock (include/uapi/linux/landlock.h): the syscalls are numbered alike on every arch.
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_WRITE_FILE, _TRUNCATE = 1 << 1, 1 << 14
_WRITE_RIGHTS = (
    (  # every right that changes the file tree: write, remove, make, link
        _WRITE_FILE | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10)
    )
    | (1 << 11)
    | (1 << 12)
)
_REFER = 1 << 13  # ABI 2: rename and link across folders
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS, _PR_SET_CHILD_SUBREAPER = 1, 38, 36
_DEVICES = (os.devnull, "/dev/stdout", "/dev/stderr")  # writable wherever the workdir is

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


class WriteRefused(PermissionError):
    """A write outside the sandbox's workdir, refused by the audit hook."""


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(*args: Any) -> int:
    return int(_libc().syscall(*[ctypes.c_long(a) if isinstance(a, int) else a for a in args]))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (not Linux, too old, off)."""
    if not _LINUX:
        return 0
    try:
        return max(0, _syscall(_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION))
    except (OSError, AttributeError):
        return 0


def write_confinement() -> str:
    """How this machine confines writes: the worker reports it once, when it starts."""
    abi = landlock_abi()
    return f"landlock (ABI {abi}) and audit hook" if abi else "audit hook"


def _landlock(workdir: str) -> bool:
    """Allow writes under workdir (and to /dev/null) only, for this process and whatever it
    starts. False where the kernel cannot."""
    abi = landlock_abi()
    if abi < 1:
        return False
    rights = _WRITE_RIGHTS | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    handled = ctypes.c_uint64(rights)
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(handled), 8, 0)
    if ruleset < 0:
        return False
    try:
        file_rights = rights & (_WRITE_FILE | _TRUNCATE)
        for path, allowed in [(workdir, rights), (os.devnull, file_rights)]:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            rule = _PathBeneath(allowed, fd)
            done = _syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
            os.close(fd)
            if done < 0:
                return False
        _libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        return _syscall(_RESTRICT_SELF, ruleset, 0) == 0
    finally:
        os.close(ruleset)


# ---- the audit hook -----------------------------------------------------------------------------
def _opened_for_writing(args: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    path, mode, flags = args
    writes = bool(flags & _WRITE_FLAGS) or (
        isinstance(mode, str) and any(c in mode for c in "wax+")
    )
    return [(path, None)] if writes else []


def _first(args: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    return [(args[0], args[-1] if isinstance(args[-1], int) else None)]


def _second(args: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    return [(args[1], None)]


def _both(args: tuple[Any, ...]) -> list[tuple[Any, Any]]:
    return [(args[0], None), (args[1], None)]


def _renamed(args: tuple[Any, ...]) -> list[tuple[Any, Any]]:  # src, dst, src_dir_fd, dst_dir_fd
    return [(args[0], args[2]), (args[1], args[3])]


# audit event -> the paths (each with its dir_fd) that it writes
_WRITES: dict[str, Callable[[tuple[Any, ...]], list[tuple[Any, Any]]]] = {
    "open": _opened_for_writing,
    "os.remove": _first,
    "os.rmdir": _first,
    "os.mkdir": _first,
    "os.truncate": lambda a: [(a[0], None)],
    "os.chmod": _first,
    "os.chown": _first,
    "os.utime": _first,
    "os.rename": _renamed,
    "os.link": lambda a: [(a[1], a[3])],
    "os.symlink": lambda a: [(a[1], a[2])],
    "shutil.rmtree": _first,
    "shutil.copyfile": _second,
    "shutil.copytree": _second,
    "shutil.move": _both,
}


def _resolve(path: Any, dir_fd: Any) -> str | None:
    """The absolute, symlink-free form of a path an event names; None for a file descriptor."""
    if isinstance(path, int) or path is None:
        return None
    path = os.fsdecode(os.fspath(path))
    if isinstance(dir_fd, int) and not os.path.isabs(path) and _LINUX:
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    return os.path.realpath(path)


def install_audit_hook(workdir: str, refused: list[str]) -> None:
    """Refuse (WriteRefused) every write the interpreter makes outside workdir; each refused
    path is also appended to `refused`. Hooks cannot be removed: only the child installs it."""
    root = os.path.realpath(workdir)
    allowed = {os.path.realpath(p) for p in _DEVICES} | set(_DEVICES)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        paths = _WRITES.get(event)
        if paths is None:
            return
        for path, dir_fd in paths(args):
            if path in allowed:
                continue
            full = _resolve(path, dir_fd)
            if full is None or full in allowed or full == root or full.startswith(root + os.sep):
                continue
            refused.append(full)
            raise WriteRefused(
                errno.EACCES, f"the sandbox refuses writes outside {root} ({event})", full
            )

    sys.addaudithook(hook)


# ---- processes ----------------------------------------------------------------------------------
def become_subreaper() -> None:
    """Orphans of a call's processes become the worker's children, so it can end them."""
    if _LINUX:
        _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def kill_group(pid: int) -> None:
    """SIGKILL the process group a child leads (itself and what it started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def kill_orphans() -> None:
    """Kill and reap every process left as the worker's child (a call's escaped orphans)."""
    for _ in range(100):
        pids = _children()
        if not pids:
            break
        for pid in pids:
            kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            except ProcessLookupError:
                pass
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


# ---- the child ----------------------------------------------------------------------------------
def run_child(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workdir: str,
    limits: dict[str, Any],
    out_w: int,
    res_w: int,
    closing: Iterable[int] = (),
) -> NoReturn:
    """In a freshly forked child: confine, call fn, send the outcome, exit. Never returns."""
    try:
        refused: list[str] = []
        _enter(workdir, limits, out_w, closing, refused)
        reply = _call(fn, args, kwargs, workdir, limits, refused)
    except BaseException as exc:  # noqa: BLE001 - the setup itself failed: said, not raised
        reply = {"ok": False, "reason": "error", "detail": f"the sandbox could not start: {exc!r}"}
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - an output already over its cap
            pass
    data = memoryview(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    try:
        while data:
            data = data[os.write(res_w, data) :]
    except OSError:
        pass
    os._exit(0)


def _enter(
    workdir: str, limits: dict[str, Any], out_w: int, closing: Iterable[int], refused: list[str]
) -> None:
    os.setsid()  # a new session: its process group is killed at the end of the call
    if _LINUX:
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # dies with the worker
    for fd in closing:
        os.close(fd)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    os.close(out_w)
    sys.stdout = _text(1, line_buffering=True)
    sys.stderr = _text(2, write_through=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file over its cap: EFBIG, not a kill
    import faulthandler

    faulthandler.enable(sys.stderr)  # a crash prints where it happened, into the output
    os.chdir(workdir)
    os.environ["TMPDIR"] = workdir
    import tempfile

    tempfile.tempdir = None  # computed again from TMPDIR: temporary files go in the workdir
    sys.dont_write_bytecode = True  # a .pyc beside a library is not the call's write
    _set_limits(limits)
    _landlock(workdir)
    install_audit_hook(workdir, refused)


def _text(fd: int, line_buffering: bool = False, write_through: bool = False) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        raw,
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=line_buffering,
        write_through=write_through,
    )


def _vm_size() -> int:
    """This process's address space now (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("VmSize:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration):
        return 0


def _set_limits(limits: dict[str, Any]) -> None:
    """CPU seconds (SIGXCPU at the limit, SIGKILL a second later), the address space the call
    may add to the pre-imported worker's, the largest file it may write, no core files."""
    import math
    import resource

    cpu = max(1, math.ceil(limits["cpu_seconds"]))
    wanted = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, _vm_size() + limits["memory_bytes"], None),
        (resource.RLIMIT_FSIZE, limits["file_bytes"], None),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    for which, soft, hard in wanted:
        _, old_hard = resource.getrlimit(which)
        if old_hard != resource.RLIM_INFINITY:
            soft = min(soft, old_hard)
            hard = old_hard if hard is None else min(hard, old_hard)
        try:
            resource.setrlimit(which, (soft, soft if hard is None else hard))
        except (ValueError, OSError):  # macOS refuses RLIMIT_AS: what holds there is documented
            pass


def _call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workdir: str,
    limits: dict[str, Any],
    refused: list[str],
) -> dict[str, Any]:
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - whatever the code raised is the outcome
        reply = _classify(exc, workdir, limits)
        reply["traceback"] = "".join(traceback.format_exception(exc))
        return reply
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "reason": "error", "detail": f"the value cannot be sent back: {exc}"}
    note = f"a write outside the folder was refused: {refused[0]}" if refused else ""
    return {"ok": True, "value": data, "detail": note}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: BaseException | None = exc
    while todo is not None and todo not in seen:
        seen.append(todo)
        todo = todo.__cause__ or todo.__context__
    return seen


def _classify(exc: BaseException, workdir: str, limits: dict[str, Any]) -> dict[str, Any]:
    """The reason and one-line detail of an exception that ended fn."""
    last = traceback.format_exception_only(type(exc), exc)[-1].strip()
    root = os.path.realpath(workdir) + os.sep
    for e in _chain(exc):
        if isinstance(e, SystemExit):
            code = "" if e.code is None else repr(e.code)
            return {"ok": False, "reason": "exit", "detail": f"the code called sys.exit({code})"}
        if isinstance(e, MemoryError) or "can't allocate memory" in str(e):
            mib = limits["memory_bytes"] / 2**20
            return {
                "ok": False,
                "reason": "memory",
                "detail": f"ran out of its {mib:g} MiB: {last}",
            }
        if isinstance(e, WriteRefused):
            return {"ok": False, "reason": "write", "detail": f"{e.strerror}: {e.filename}"}
        if isinstance(e, OSError) and e.errno == errno.EFBIG:
            size = limits["file_bytes"]
            return {"ok": False, "reason": "write", "detail": f"wrote a file over {size:,} bytes"}
        if (
            isinstance(e, OSError)
            and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EXDEV)
            and isinstance(e.filename, str)
            and not os.path.realpath(e.filename).startswith(root)
        ):
            detail = f"the sandbox refuses writes outside {root[:-1]}: {e.filename}"
            return {"ok": False, "reason": "write", "detail": detail}
    return {"ok": False, "reason": "error", "detail": last}
