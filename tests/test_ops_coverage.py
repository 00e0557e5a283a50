"""Every op pair in handgrad.ops has a backward, a test against torch and a gradcheck: a new
ops file or pair cannot go untested.

A pair counts as gradchecked only where a test really calls gradcheck on it: the call's first
argument names `ops.<op>_backward`, or is `pair("<op>")`, or reaches one of them through a
local variable, a local function or the test's own parametrisation (`pair(op)` with `op`
parametrized). Quoting the op's name elsewhere in the file does not count."""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import handgrad.ops as ops

FILES = [
    importlib.import_module(f"handgrad.ops.{m.name}") for m in pkgutil.iter_modules(ops.__path__)
]
TEST_FILES = sorted(Path(__file__).parent.glob("test_*.py"))
PAIRS = sorted(
    (n.removesuffix("_forward"), f.__name__)
    for f in FILES
    for n in f.__all__
    if n.endswith("_forward")
)
OPS = {op for op, _ in PAIRS}


@pytest.mark.parametrize("f", FILES, ids=[f.__name__ for f in FILES])
def test_every_ops_file_is_exported_and_pairs_its_functions(f):
    names = f.__all__
    forwards = {n.removesuffix("_forward") for n in names if n.endswith("_forward")}
    backwards = {n.removesuffix("_backward") for n in names if n.endswith("_backward")}
    assert forwards == backwards, forwards ^ backwards
    assert all(getattr(ops, n) is getattr(f, n) for n in names)  # ops/__init__ imports the file


# ---- which pairs the tests gradcheck -----------------------------------------------------------
def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _parametrized(module: object, test: str, arg: str) -> Iterator[object]:
    """The values that the parametrize marks of module.<test> give to its argument `arg`."""
    for mark in getattr(getattr(module, test, None), "pytestmark", []):
        if mark.name != "parametrize":
            continue
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
        if arg not in names:
            continue
        for case in mark.args[1]:
            values = case.values if hasattr(case, "marks") else case  # pytest.param or plain
            yield values[names.index(arg)] if len(names) > 1 else values


class _Scope:
    """One test function: its local assignments and local functions, to follow names."""

    def __init__(self, module: object, function: ast.FunctionDef) -> None:
        self.module, self.function = module, function
        self.values: dict[str, list[ast.AST]] = {}
        for node in ast.walk(function):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.values.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.FunctionDef) and node is not function:
                self.values.setdefault(node.name, []).append(node)

    def ops_of(self, node: ast.AST, seen: frozenset[str] = frozenset()) -> set[str]:
        """The ops whose backward `node` (a gradcheck's first argument) reaches."""
        found: set[str] = set()
        for sub in ast.walk(node):
            name = _name(sub)
            if name and name.endswith("_backward") and name.removesuffix("_backward") in OPS:
                found.add(name.removesuffix("_backward"))
            if isinstance(sub, ast.Call) and (_name(sub.func) or "").endswith("pair"):
                arg = sub.args[0] if sub.args else None
                if isinstance(arg, ast.Constant) and arg.value in OPS:
                    found.add(arg.value)
                elif isinstance(arg, ast.Name):
                    cases = _parametrized(self.module, self.function.name, arg.id)
                    found |= {c for c in cases if isinstance(c, str) and c in OPS}
            if isinstance(sub, ast.Name) and sub.id in self.values and sub.id not in seen:
                for value in self.values[sub.id]:
                    found |= self.ops_of(value, seen | {sub.id})
        return found


@functools.cache
def gradchecked() -> dict[str, list[str]]:
    """{op: the test files that call gradcheck on its pair}."""
    where: dict[str, list[str]] = {}
    for path in TEST_FILES:
        tree = ast.parse(path.read_text())
        module = None
        for function in tree.body:
            if not isinstance(function, ast.FunctionDef):
                continue
            calls = [
                n
                for n in ast.walk(function)
                if isinstance(n, ast.Call) and _name(n.func) == "gradcheck" and n.args
            ]
            if not calls:
                continue
            module = module or importlib.import_module(path.stem)  # for its parametrisations
            scope = _Scope(module, function)
            for call in calls:
                for op in scope.ops_of(call.args[0]):
                    where.setdefault(op, []).append(path.name)
    return where


@pytest.mark.parametrize("op,where", PAIRS, ids=[op for op, _ in PAIRS])
def test_every_pair_is_gradchecked(op, where):
    assert op in gradchecked(), f"{where}: no test calls gradcheck on {op}_forward/{op}_backward"


SAMPLE = """
@pytest.mark.parametrize("op,inputs", [("relu", ()), pytest.param("tanh", (), id="t")])
def test_param(op, inputs):
    gradcheck(pair(op), *inputs)

def test_direct():
    forward = seeded(ops.dropout_forward)
    gradcheck((forward, ops.dropout_backward), x)

def test_local_function():
    def backward_y(dy, cache):
        return ops.attention_backward((dy, None), cache)
    lstm = first_output(ops.lstm_sequence_forward, ops.lstm_sequence_backward, 3)
    gradcheck((forward_y, backward_y), x)
    gradcheck(lstm, x)
    gradcheck(ops_pair("gru_cell"), x)

def test_quoted_only():
    names = ["mul", ops.add_backward]  # named, never gradchecked
    gradcheck(model, x)
"""


def test_the_scanner_counts_real_gradcheck_calls_only():
    tree = ast.parse(SAMPLE)
    namespace: dict = {}
    exec(compile(tree, "<sample>", "exec"), {"pytest": pytest}, namespace)
    module = type("Sample", (), namespace)
    functions = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}

    def found(test: str) -> set[str]:
        scope = _Scope(module, functions[test])
        calls = [n for n in ast.walk(functions[test]) if isinstance(n, ast.Call)]
        return set().union(
            *(scope.ops_of(c.args[0]) for c in calls if _name(c.func) == "gradcheck")
        )

    assert found("test_param") == {"relu", "tanh"}
    assert found("test_direct") == {"dropout"}
    assert found("test_local_function") == {"attention", "lstm_sequence", "gru_cell"}
    assert found("test_quoted_only") == set()
