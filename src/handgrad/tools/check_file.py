"""`handgrad check FILE.py:ClassName`: the user's class, gradchecked inside the sandbox.

The user's file is imported, its class built and gradchecked in a child of handgrad's
sandbox (handgrad/sandbox.py), with the file's folder as the working folder: a loop, an
allocation, sys.exit, a crash or a stray write in the user's code ends that check with one
line, not handgrad. The child sends back the report (or the user's mistake, in one line);
this process prints it. Windows has no sandbox: there the check runs in this process.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from handgrad.comparison import GradcheckReport
from handgrad.errors import HandgradError, InputError
from handgrad.sandbox import AVAILABLE, Limits, Sandbox

# A check is small (at most a million input elements, a few hundred probes per tensor), but a
# student's layer may be slow or chatty: generous limits, still far from the machine's.
LIMITS = Limits(cpu_seconds=300, wall_seconds=600, memory_bytes=8 << 30, output_bytes=16 << 20)


@dataclass
class CheckResult:
    """What the check gave: a report, or the user's mistake as one line (and where it was)."""

    report: GradcheckReport | None = None
    error: str = ""
    where: str = ""  # the user's traceback, printed with --debug


def check_class(
    file: str, class_name: str, ctor_args: list[float], input_shape: tuple[int, ...], seed: int
) -> CheckResult:
    """Import `file`, build class_name(*ctor_args) and gradcheck it on a random input of
    input_shape (and a target of the same shape for a loss). A mistake in the user's code is
    returned as CheckResult.error; a bug in handgrad raises."""
    path = Path(file)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        return CheckResult(error=f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(module)  # the user's own file: running it is the point
    except SyntaxError as exc:
        return CheckResult(error=f"{path}, line {exc.lineno}: syntax error: {exc.msg}")
    except Exception as exc:  # noqa: BLE001 the user's code failed, not handgrad
        return CheckResult(
            error=f"importing {path} failed: {type(exc).__name__}: {exc} (run it with python "
            "to see where)",
            where=traceback.format_exc(),
        )
    finally:
        sys.path.pop(0)
    cls = getattr(module, class_name, None)
    if cls is None:
        return CheckResult(error=f"{path} defines no {class_name}")
    try:
        obj = cls(*ctor_args)
    except Exception as exc:  # noqa: BLE001 the user's constructor
        return CheckResult(
            error=f"cannot build {class_name}({', '.join(map(str, ctor_args))}): "
            f"{type(exc).__name__}: {exc}; pass its arguments with --args",
            where=traceback.format_exc(),
        )
    return _gradcheck(obj, class_name, path, input_shape, seed)


def _gradcheck(
    obj: object, class_name: str, path: Path, input_shape: tuple[int, ...], seed: int
) -> CheckResult:
    import torch

    from handgrad.check import _is_loss, gradcheck

    torch.manual_seed(seed)
    x = torch.randn(input_shape, dtype=torch.float64)
    inputs = [x, torch.rand(input_shape, dtype=torch.float64)] if _is_loss(obj) else [x]
    try:
        return CheckResult(report=gradcheck(obj, *inputs))
    except HandgradError as exc:  # gradcheck's own argument checks: what the class lacks
        return CheckResult(error=str(exc), where=traceback.format_exc())
    except Exception as exc:
        if not _raised_in(exc, path):
            raise  # a bug in handgrad: its traceback
        return CheckResult(
            error=f"{class_name} raised {type(exc).__name__}: {exc} (--debug shows where in "
            f"{path.name})",
            where=traceback.format_exc(),
        )


def _raised_in(exc: BaseException, path: Path) -> bool:
    """Whether the exception came out of the user's file (its innermost frames are there)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return any(Path(f.filename).resolve() == path.resolve() for f in frames[-3:])


def run_check(
    path: Path,
    class_name: str,
    ctor_args: list[float],
    input_shape: tuple[int, ...],
    seed: int,
    debug: bool = False,
) -> int:
    """Check the class in the sandbox, print what it printed and the report; 0 on a pass."""
    call = (str(path.resolve()), class_name, ctor_args, tuple(input_shape), seed)
    if not AVAILABLE:
        result = check_class(*call)
    else:
        with Sandbox(path.resolve().parent, LIMITS, shared=True) as box:
            outcome = box.run(check_class, *call)
        sys.stdout.write(outcome.output)
        if outcome.reason == "error":  # check_class returns the user's mistakes: this is ours
            raise RuntimeError(f"handgrad check failed in its sandbox:\n{outcome.traceback}")
        if not outcome.ok:
            raise InputError(f"{path.name}:{class_name}: {outcome.detail} ({outcome.reason})")
        result = outcome.value
    if result.error:
        if debug and result.where:
            print(result.where, file=sys.stderr, end="")
        raise InputError(result.error)
    assert result.report is not None
    print(result.report)
    return 0 if result.report.ok else 1
