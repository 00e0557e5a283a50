"""The sandbox contains each accident of issue 20 to its call, with the reason named: a loop,
memory, output, an import failure, sys.exit / os._exit, a crash, writes outside the folder,
processes left behind; and a call stays cheap (a fork of a pre-imported worker).

The functions the sandbox runs are module-level (sent by reference): the worker imports this
file once, each call's child has it for free."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from handgrad.errors import ArgumentTypeError
from handgrad.sandbox import REASONS, Limits, Sandbox

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the sandbox needs os.fork")
LINUX = sys.platform.startswith("linux")
FAST = Limits(cpu_seconds=5, wall_seconds=10, memory_bytes=256 << 20, output_bytes=64 << 10)


# ---- what the sandboxed code does ---------------------------------------------------------------
def make_tensor(n: int) -> torch.Tensor:
    print("made", n)
    return torch.arange(n, dtype=torch.float64) * 0.5


def sleep_forever() -> None:
    time.sleep(1000)


def spin_forever() -> None:
    while True:
        pass


def allocate_forever() -> None:
    held = []
    while True:
        held.append(bytearray(32 << 20))


def print_gigabytes() -> None:
    line = "x" * 4095
    for _ in range(1 << 20):  # 4 GiB
        print(line)


def import_student(name: str) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(name + ".py").resolve())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.__name__


def call_exit(code: int) -> None:
    sys.exit(code)


def call_os_exit(code: int) -> None:
    os._exit(code)


def segfault() -> None:
    ctypes.string_at(0)


def write(path: str, text: str = "x") -> str:
    Path(path).write_text(text)
    return Path(path).read_text()


def shell_write(path: str) -> int:
    return subprocess.run(["sh", "-c", f"echo x > {path}"], capture_output=True).returncode


def start_sleeper(new_session: bool) -> int:
    return subprocess.Popen(["sleep", "60"], start_new_session=new_session).pid


def sleep_and_say(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)


class Local:
    """A class of the sandboxed code's own module: its instances do not come out."""


def return_foreign() -> object:
    return [Local()]


# ---- helpers ------------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    """Whether pid is a running process (a zombie counts as gone)."""
    if LINUX:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    with Sandbox(work, FAST) as sandbox:
        yield sandbox


@pytest.fixture
def limits(box):
    """Set the shared sandbox's limits for one test (they travel with each call)."""

    def set_limits(**changes):
        box.limits = dataclasses.replace(FAST, **changes)

    yield set_limits
    box.limits = FAST


# ---- the tests ----------------------------------------------------------------------------------
def test_a_tensor_comes_back_with_what_was_printed(box):
    outcome = box.run(make_tensor, 4)
    assert outcome.ok and outcome.reason is None, outcome
    torch.testing.assert_close(
        outcome.value, torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=torch.float64)
    )
    assert outcome.output == "made 4\n"


def test_many_calls_in_a_row_are_fast(box):
    box.run(make_tensor, 1)  # the worker started and imported this file
    start = time.monotonic()
    values = [box.run(make_tensor, n).value for n in range(30)]
    assert time.monotonic() - start < 5
    assert [len(v) for v in values] == list(range(30))


def test_a_loop_ends_at_the_wall_clock_limit(box, limits):
    limits(wall_seconds=0.5)
    start = time.monotonic()
    outcome = box.run(sleep_forever)
    assert (outcome.reason, outcome.ok) == ("timeout", False)
    assert "wall-clock limit of 0.5 s" in outcome.detail
    assert time.monotonic() - start < 3


def test_a_cpu_bound_loop_hits_the_cpu_limit(box, limits):
    limits(cpu_seconds=1, wall_seconds=20)
    outcome = box.run(spin_forever)
    assert outcome.reason == "timeout"
    assert "1 s of CPU time" in outcome.detail


def test_unbounded_allocation_is_out_of_memory(box):
    outcome = box.run(allocate_forever)
    assert outcome.reason == "memory", outcome
    assert "256 MiB" in outcome.detail


def test_printing_gigabytes_fails_on_output_and_ends_quickly(box):
    start = time.monotonic()
    outcome = box.run(print_gigabytes)
    assert outcome.reason == "output"
    assert len(outcome.output) == FAST.output_bytes
    assert time.monotonic() - start < 3


def test_an_import_failure_is_an_error(box):
    (box.workdir / "student.py").write_text("import no_such_module_of_a_student\n")
    outcome = box.run(import_student, "student")
    assert outcome.reason == "error"
    assert outcome.detail == ("ModuleNotFoundError: No module named 'no_such_module_of_a_student'")
    assert "student.py" in outcome.traceback


@pytest.mark.parametrize(
    "fn,code,detail",
    [
        (call_exit, 3, "the code called sys.exit(3)"),
        (call_os_exit, 0, "the code ended its process with status 0 (os._exit)"),
    ],
)
def test_exits_are_reported(box, fn, code, detail):
    outcome = box.run(fn, code)
    assert (outcome.reason, outcome.detail) == ("exit", detail)


def test_a_segfault_is_a_crash(box):
    outcome = box.run(segfault)
    assert outcome.reason == "crash"
    assert "SIGSEGV" in outcome.detail
    assert "Segmentation fault" in outcome.output  # faulthandler says where


def test_writes_outside_the_folder_are_refused_inside_they_work(box, tmp_path):
    outside = tmp_path / "outside.txt"
    relative = os.path.relpath(outside, box.workdir)
    assert relative.startswith("..")
    for path in (relative, str(outside)):
        outcome = box.run(write, path)
        assert outcome.reason == "write", outcome
        assert str(outside) in outcome.detail
    assert not outside.exists()
    outcome = box.run(write, "inside.txt", "kept")
    assert outcome.ok and outcome.value == "kept"
    assert (box.workdir / "inside.txt").read_text() == "kept"


def test_a_too_large_file_is_a_write_failure(box, limits):
    limits(file_bytes=1 << 20)
    outcome = box.run(write, "big.txt", "x" * (2 << 20))
    assert outcome.reason == "write"
    assert "over 1,048,576 bytes" in outcome.detail


def test_a_subprocess_cannot_write_outside_either(box, tmp_path):
    box.run(make_tensor, 1)  # starts the worker, which says how writes are confined
    if "landlock" not in box.confinement:
        pytest.skip(f"Landlock is not available here ({box.confinement} only)")
    outcome = box.run(shell_write, str(tmp_path / "from_shell.txt"))
    assert outcome.ok and outcome.value != 0
    assert not (tmp_path / "from_shell.txt").exists()
    assert box.run(shell_write, "from_shell.txt").value == 0


@pytest.mark.parametrize("new_session", [False, True])
def test_no_grandchild_outlives_the_call(box, new_session):
    if new_session and not LINUX:
        pytest.skip("an orphan that left its session is ended by the Linux subreaper")
    outcome = box.run(start_sleeper, new_session)
    assert outcome.ok
    assert not alive(outcome.value)


def test_what_cannot_travel_is_refused(box):
    with pytest.raises(ArgumentTypeError, match="module-level function"):
        box.run(lambda: 1)
    outcome = box.run(return_foreign)  # unpickling it here would import the code's module
    assert outcome.reason == "error"
    assert "the value holds test_sandbox.Local" in outcome.detail
    assert set(REASONS) == {"timeout", "memory", "output", "exit", "error", "crash", "write"}


def test_close_ends_every_process_even_a_call_in_flight(box):
    # the last test, as it closes the module's sandbox (a later call would start a new worker)
    pid_file = box.workdir / "child.pid"
    box.run(make_tensor, 1)
    worker = box.worker_pid
    call = threading.Thread(target=box.run, args=(sleep_and_say, str(pid_file)))
    call.start()
    while not pid_file.exists() or not pid_file.read_text():
        time.sleep(0.01)
    box.close()
    call.join(5)
    assert not call.is_alive()
    assert not alive(worker) and not alive(int(pid_file.read_text()))
    assert box.worker_pid is None


def test_shared_sandboxes_use_one_worker_with_their_own_folders_and_limits(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    with Sandbox(a, shared=True) as first:
        assert first.run(write, "note.txt", "from a").ok
        pid = first.worker_pid
    assert pid is not None and alive(pid)  # close() leaves a shared worker running
    with Sandbox(b, Limits(wall_seconds=1), shared=True) as second:
        assert second.run(write, "note.txt", "from b").ok
        assert second.worker_pid == pid  # no new interpreter for the second sandbox
        assert second.run(sleep_forever).reason == "timeout"  # its own, shorter limit
        assert not second.run(write, str(a / "note.txt")).ok  # and its own folder only
    assert (a / "note.txt").read_text() == "from a" and (b / "note.txt").read_text() == "from b"
    with Sandbox(a) as own:  # not shared: a worker of its own, ended by close()
        assert own.run(make_tensor, 2).ok and own.worker_pid != pid
        own_pid = own.worker_pid
    assert own_pid is not None and not alive(own_pid)
