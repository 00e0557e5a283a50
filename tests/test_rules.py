"""docs/design.md's rule: the compute path uses no torch.nn, torch.autograd, torch.optim,
torch.func.

check.py (the gradient oracle), tools/lab.py (the side-by-side reference) and tools/bench.py
(torch eager as the baseline to beat) are the reference side, which docs/design.md lets use
them, as the tests do. interop.py may import torch.nn only inside to_torch/from_torch, which
build or read a torch.nn module and compute nothing.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
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
    "tools/bench_compiled.py",
    "course/grader.py",  # the grader and its reference answers, probes and comparisons
    "course/reference.py",
    "course/probes.py",
    "course/probes_backprop.py",
    "course/hidden.py",
    "course/runner.py",
    "course/catalogue.py",
    "course/chapter_conv.py",  # chapters 6-8: their references, probes and mistakes
    "course/chapter_gru.py",
    "course/chapter_attention.py",
    "course/compare.py",
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


# ---- the rest of docs/design.md's rules that a scan can check ----------------------------------
LOADERS = {"pickle", "marshal", "shelve", "dill", "cloudpickle"}


def unsafe_loading(source: str) -> list[str]:
    """Model files build nothing but registered classes (docs/design.md#model-files): no pickle
    or its kin, no torch.load, no eval or exec."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            found += [f"line {node.lineno}: import {n}" for n in names if n in LOADERS]
        elif isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("eval", "exec", "torch.load", "compile", "__import__"):
                found.append(f"line {node.lineno}: {name}()")
    return found


def setattr_magic(source: str) -> list[str]:
    """No class defines __setattr__: children are found when asked for (docs/design.md)."""
    return [
        f"line {node.lineno}: def __setattr__"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef) and node.name == "__setattr__"
    ]


# The sandbox pickles calls and values between handgrad's own processes, never a model file
# (docs/design.md#running-a-students-code; its unpickler admits only data and tensors).
SANDBOX = {"sandbox.py", "sandbox_worker.py", "sandbox_confine.py"}


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_unsafe_loading_and_no_setattr_magic(path):
    source = path.read_text()
    found = unsafe_loading(source)
    if path.relative_to(PACKAGE).as_posix() in SANDBOX:
        found = [f for f in found if not f.endswith(": import pickle")]
    assert found == [] and setattr_magic(source) == []


def test_the_loading_and_setattr_scanners_catch_each_form():
    for snippet in ["import pickle", "from marshal import loads", "torch.load(f)", "eval(s)"]:
        assert unsafe_loading(snippet), snippet
    assert not unsafe_loading("import json\njson.loads(s)\nmodel.eval()")
    assert setattr_magic("class M:\n    def __setattr__(self, k, v): pass\n")


def _loss_classes():
    import handgrad as hg
    from handgrad import registry

    losses = [c for c in registry.public().values() if issubclass(c, hg.nn.loss.Loss)]
    return sorted(losses, key=lambda c: c.__name__)


def backward_calls(source: str) -> list[str]:
    """The ops backwards (`ops.*_backward`) and `.backward` methods that a source names."""
    return [
        ast.unparse(node)
        for node in ast.walk(ast.parse(textwrap.dedent(source)))
        if isinstance(node, ast.Attribute) and node.attr.endswith("backward")
    ]


@pytest.mark.parametrize("cls", _loss_classes(), ids=lambda c: c.__name__)
def test_a_loss_computes_its_derivative_in_backward_not_forward(cls):
    """docs/design.md#the-protocol: an evaluation pays for no gradient."""
    assert backward_calls(inspect.getsource(cls.forward)) == [], cls.__name__


def test_the_backward_scanner_sees_an_op_backward():
    source = "def forward(self, x):\n    return ops.mse_loss_backward(x, None)\n"
    assert backward_calls(source) == ["ops.mse_loss_backward"]
    assert len(_loss_classes()) >= 14  # every loss the README lists


def test_torch_compile_is_allowed_and_used_on_handgrads_own_step():
    """docs/design.md names torch.compile and torch.compiler as allowed: they compile
    handgrad's own code (training/compiled.py compiles graph.Step.update)."""
    assert not violations("import torch\nf = torch.compile(g)\ntorch.compiler.is_compiling()\n")
    source = (PACKAGE / "training" / "compiled.py").read_text()
    assert "torch.compile(" in source and "step.update" in source
    assert not violations(source)
