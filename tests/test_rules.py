"""docs/design.md's rule: the compute path uses no torch.nn, torch.autograd, torch.optim,
torch.func.

check.py (the gradient oracle), tools/lab.py (the side-by-side reference) and tools/bench.py
(torch eager as the baseline to beat) are the reference side, which docs/design.md lets use
them, as the tests do. interop.py may import torch.nn only inside to_torch/from_torch, which
build or read a torch.nn module and compute nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "handgrad"
REFERENCE_SIDE = {
    "check.py",
    "tools/lab.py",
    "tools/lab_backprop.py",
    "tools/lab_result.py",
    "tools/bench.py",
    "tools/bench_steps.py",
}
BANNED_MODULES = ("torch.nn", "torch.autograd", "torch.optim", "torch.func")
BANNED_NAMES = {"requires_grad", "requires_grad_", "no_grad", "enable_grad", "autograd"}


def violations(source: str) -> list[str]:
    """Every banned import, attribute or name in the source, with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute):
            names = [ast.unparse(node)]
            if node.attr in BANNED_NAMES:
                found.append(f"line {node.lineno}: {names[0]}")
        elif isinstance(node, ast.Name) and node.id in BANNED_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
            continue
        elif isinstance(node, ast.keyword) and node.arg in BANNED_NAMES:
            found.append(f"line {getattr(node, 'lineno', '?')}: {node.arg}=")
            continue
        else:
            continue
        for name in names:
            if any(name == m or name.startswith(m + ".") for m in BANNED_MODULES):
                found.append(f"line {node.lineno}: {name}")
    return found


INTEROP_FUNCTIONS = {"to_torch", "from_torch"}
ALL_FILES = sorted(PACKAGE.rglob("*.py"))
COMPUTE_PATH = [p for p in ALL_FILES if p.relative_to(PACKAGE).as_posix() not in REFERENCE_SIDE]


def without_interop_functions(source: str) -> str:
    """interop.py's source with the bodies of to_torch/from_torch removed."""
    tree = ast.parse(source)
    tree.body = [
        n for n in tree.body if not (isinstance(n, ast.FunctionDef) and n.name in INTEROP_FUNCTIONS)
    ]
    return ast.unparse(tree)


@pytest.mark.parametrize("path", COMPUTE_PATH, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_compute_path_is_hand_written(path):
    source = path.read_text()
    if path.name == "interop.py":
        source = without_interop_functions(source)
    assert violations(source) == [], f"{path.name} uses the reference side of torch"


def test_interop_exemption_is_narrow():
    source = "import torch.nn as nn\ndef to_torch(m):\n    import torch.nn as nn\n"
    assert violations(without_interop_functions(source)) == ["line 1: torch.nn"]


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch.nn as nn",
        "from torch import nn",
        "from torch.nn import functional as F",
        "import torch.nn.functional",
        "y = torch.nn.functional.relu(x)",
        "from torch import autograd",
        "torch.autograd.grad(y, x)",
        "x.requires_grad_(True)",
        "t = torch.zeros(3, requires_grad=True)",
        "opt = torch.optim.SGD(p, lr=1)",
        "from torch.func import grad",
        "with torch.no_grad(): pass",
    ],
)
def test_the_scanner_catches_each_form(snippet):
    assert violations(snippet)


def test_the_scanner_passes_plain_tensor_code():
    assert (
        violations("import torch\ny = torch.addmm(b, x, W.T).clamp(min=0)\nW.grad = dy.T @ x") == []
    )


def test_every_package_file_is_scanned_or_deliberately_exempt():
    files = {p.relative_to(PACKAGE).as_posix() for p in ALL_FILES}
    scanned = {p.relative_to(PACKAGE).as_posix() for p in COMPUTE_PATH}
    assert REFERENCE_SIDE <= files and files == scanned | REFERENCE_SIDE
    assert {"module.py", "ops/linear.py", "nn/linear.py", "kernels/im2col.py"} <= scanned


# ---- errors: every check raises a handgrad.errors class (docs/design.md#errors) ----------------
BARE = ("ValueError", "TypeError", "KeyError", "IndexError")


def bare_raises(source: str) -> list[str]:
    """`raise ValueError(...)` and friends: a user's mistake must be a HandgradError, so the
    command line can tell it from a bug."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            if isinstance(func, ast.Name) and func.id in BARE:
                found.append(f"line {node.lineno}: raise {func.id}")
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_checks_raise_handgrad_errors(path):
    assert not bare_raises(path.read_text()), bare_raises(path.read_text())


def test_the_error_scanner_catches_a_bare_raise():
    assert bare_raises("def f():\n    raise ValueError('x')\n") == ["line 2: raise ValueError"]
    assert not bare_raises("def f():\n    raise InputError('x')\n")
