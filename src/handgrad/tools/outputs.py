"""Where the command line writes, checked before any work starts, and written so that nothing
is lost: a run is built in a new folder beside --out and swapped in by one rename.

The rules (README "The command line" states them for users):

- an output path is checked before training: a file where a folder is wanted, a folder where
  a file is wanted, a device such as /dev/null, a folder that cannot be written, the same file
  as an input or the model: each a one-line error;
- `--out` never deletes or overwrites a file that handgrad did not write: a folder is replaced
  only when it is empty or a handgrad run (every entry one of RUN_FILES); any other non-empty
  folder is refused unless `--force`, which writes the run's files into it one by one and
  leaves every other entry alone;
- a failure or a kill leaves the old run intact or the new run complete; the staging folder of
  a failed run is removed, and a killed run's is removed by the next run into the same place.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from handgrad.errors import InputError
from handgrad.io import pid_alive

# every name `handgrad train` writes into a run folder (and its marker)
MARKER = ".handgrad-run"
RUN_FILES = frozenset(
    {
        MARKER,
        "model.safetensors",
        "history.json",
        "config.json",
        "scores.json",
        "curves.png",
        "confusion.png",
        "boundary.png",
        "fit.png",
        "checkpoint.safetensors",
    }
)
STAGING = ".{name}.new-{pid}"  # the folder a run is built in, beside --out
OLD = ".{name}.old-{pid}"  # the previous run, between the two renames of the fallback swap


def _is_device(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (also through links); False when either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(
    path: str | os.PathLike[str],
    flag: str,
    inputs: Iterable[str | os.PathLike[str]] = (),
    make_folders: bool = True,
) -> Path:
    """An output FILE path: not a folder, not a device, in a folder that exists (or, with
    `make_folders`, can be made) and can be written, and not the same file as any of `inputs`."""
    target = Path(path)
    if str(path) == "" or target.is_dir():
        raise InputError(f"{flag}: {path} is a folder; give a file name")
    if _is_device(target):
        raise InputError(f"{flag}: {path} is not a regular file (a device or pipe)")
    for other in inputs:
        if same_file(target, other) or target.absolute() == Path(other).absolute():
            raise InputError(f"{flag}: {path} is also an input ({other}); it would be overwritten")
    if not make_folders and not target.absolute().parent.is_dir():
        raise InputError(f"{flag}: folder {target.parent} does not exist")
    parent = _nearest_existing(target.parent)
    if not parent.is_dir():
        raise InputError(f"{flag}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{flag}: folder {parent} is not writable")
    _check_new_files_allowed(parent, flag, path)
    return target


def _check_new_files_allowed(folder: Path, flag: str, path: str | os.PathLike[str]) -> None:
    """Create and remove an empty file in `folder`: a write goes through a new file beside the
    target (io.atomic_write), and some folders refuse one whatever their permissions say
    (/proc, /sys, a read-only mount; root passes every os.access check)."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".handgrad-probe-", suffix=".tmp")
    except OSError as exc:
        raise InputError(
            f"{flag}: cannot write {path}: folder {folder} does not take new files ({exc.strerror})"
        ) from None
    os.close(fd)
    os.unlink(probe)


def is_run_folder(folder: Path) -> bool:
    """A folder handgrad may replace: every entry is a name a run writes."""
    return all(entry.name in RUN_FILES for entry in folder.iterdir())


def check_run_folder(
    out: str | os.PathLike[str],
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """The --out FOLDER of a run, checked before training; returns it as a Path."""
    if str(out) == "":
        raise InputError("--out: give a folder name")
    folder = Path(out)
    if folder.is_symlink():  # replace the folder it points to, keep the link
        folder = folder.resolve()
    folder = Path(os.path.abspath(folder))  # "." and "runs/x/.." by their real names
    cwd = Path.cwd()
    if folder == cwd or folder in cwd.parents:
        raise InputError(f"--out: {out} holds the current folder; name a folder inside it")
    if _is_device(folder):
        raise InputError(f"--out: {out} is not a folder (a device or pipe)")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--out: {out} is a file; give a folder (a run writes several files)")
    for other in inputs:
        o = Path(other).absolute()
        if o == folder.absolute():
            raise InputError(f"--out: {out} is also an input")
    parent = _nearest_existing(folder.absolute().parent)
    if not parent.is_dir():
        raise InputError(f"--out: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out: folder {parent} is not writable")
    _check_new_files_allowed(parent, "--out", out)
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"--out: folder {out} is not writable")
        if not force and not is_run_folder(folder):
            others = sorted(e.name for e in folder.iterdir() if e.name not in RUN_FILES)
            raise InputError(
                f"--out: {out} holds files handgrad did not write ({', '.join(others[:3])}"
                f"{', ...' if len(others) > 3 else ''}); choose another folder, or --force to "
                "write the run's files into it and leave the others alone"
            )
    return folder


def clean_stale(folder: Path) -> list[Path]:
    """Remove the staging folders of killed runs into `folder` (their process is gone)."""
    removed: list[Path] = []
    parent = folder.absolute().parent
    if not parent.is_dir():
        return removed
    for kind in (STAGING, OLD):
        prefix = kind.format(name=folder.name, pid="")
        for entry in parent.glob(prefix + "*"):
            pid = entry.name[len(prefix) :]
            if pid.isdigit() and not pid_alive(int(pid)) and entry.is_dir():
                if kind == OLD and not folder.exists():
                    os.replace(entry, folder)  # killed between the two renames: put it back
                else:
                    shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    ok = renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0
    return ok


@contextlib.contextmanager
def staged_run(out: Path, force: bool = False) -> Iterator[Path]:
    """Yield a new, empty staging folder beside `out`; when the block ends without an error,
    the staged files become `out` (an empty or handgrad run folder is replaced by one rename;
    with force, each file is moved into the existing folder). On an error the staging folder
    is removed and `out` is untouched."""
    clean_stale(out)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    stage = out.absolute().parent / STAGING.format(name=out.name, pid=os.getpid())
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
        (stage / MARKER).write_text("a run written by handgrad train\n")
        _install(stage, out, force)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _install(stage: Path, out: Path, force: bool) -> None:
    if not out.exists():
        os.replace(stage, out)
        return
    if force and not is_run_folder(out):  # the user's folder: add our files, keep theirs
        for entry in stage.iterdir():
            os.replace(entry, out / entry.name)
        return
    if _exchange(stage, out):  # stage now holds the old run
        shutil.rmtree(stage, ignore_errors=True)
        return
    old = out.absolute().parent / OLD.format(name=out.name, pid=os.getpid())
    os.replace(out, old)  # a kill between these two renames is undone by clean_stale
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)
