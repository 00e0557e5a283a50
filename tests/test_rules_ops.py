"""docs/design.md's rule for handgrad.ops: the ops are the math alone.

No function reachable from an ops ``*_backward`` may call a method whose name ends in ``_``
(an in-place method such as ``add_``), pass ``out=``, or assign into a tensor (``t[i] = …``,
``t += …``). Calls are followed within handgrad.ops, helpers imported from another ops
module included. Every other ops function (the forwards and their helpers) keeps the same
rule, except the few forwards named in FORWARD_MUTATIONS, whose mutations are torch's own
semantics. Speed variants that write into buffers live in handgrad.kernels.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

OPS = Path(__file__).resolve().parents[1] / "src" / "handgrad" / "ops"

# Forwards whose in-place writes are torch's semantics, by name, with why.
FORWARD_MUTATIONS = {
    "batch_norm_forward": "moves running_mean and running_var in place, as torch",
    "embedding_renorm_": "max_norm rescales the looked-up rows of the weight in place, as torch",
    "_dropout": "draws the dropout mask with torch's bernoulli_; inplace=True writes y into x",
    "_out": "inplace=True writes an activation's y into x, as torch",
}

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(tree: ast.Module) -> dict[str, Function]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _imports(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Local name -> (ops module, function) for `from handgrad.ops.x import f [as g]`."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("handgrad.ops."):
            module = node.module.split(".")[-1]  # type: ignore[union-attr]
            for alias in node.names:
                found[alias.asname or alias.name] = (module, alias.name)
    return found


def _int_names(fn: Function) -> set[str]:
    """Names that every assignment in fn binds to a Python int (a literal or len(...))."""

    def is_int(value: ast.expr) -> bool:
        if isinstance(value, ast.Constant):
            return type(value.value) is int
        return isinstance(value, ast.Call) and ast.unparse(value.func) == "len"

    bound: dict[str, bool] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    bound[target.id] = bound.get(target.id, True) and is_int(node.value)
                else:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            bound[name.id] = False
        elif isinstance(node, (ast.For, ast.comprehension, ast.With, ast.AnnAssign)):
            for name in ast.walk(getattr(node, "target", node)):
                if isinstance(name, ast.Name) and node is not name:
                    bound[name.id] = False
    for arg in ast.walk(fn.args):
        if isinstance(arg, ast.arg):
            bound[arg.arg] = False
    return {name for name, ok in bound.items() if ok}


def mutations(fn: Function) -> list[str]:
    """Each in-place method call, out= and assignment into a tensor in fn, with its line."""
    found = []
    ints = _int_names(fn)
    for node in ast.walk(fn):
        where = f"{fn.name}, line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr.endswith("_") and not attr.startswith("__"):
                found.append(f"{where}: in-place call .{attr}()")
        if isinstance(node, ast.keyword) and node.arg == "out":
            found.append(f"{where}: out=")
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if any(isinstance(t, ast.Subscript) for t in ast.walk(target)):
                    found.append(f"{where}: assignment into {ast.unparse(target)}")
        if isinstance(node, ast.AugAssign) and not isinstance(node.target, ast.Subscript):
            if not (isinstance(node.target, ast.Name) and node.target.id in ints):
                found.append(f"{where}: augmented assignment to {ast.unparse(node.target)}")
    return found


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text()) for p in sorted(OPS.glob("*.py"))}


def reachable(modules: dict[str, ast.Module], start: tuple[str, str]) -> set[tuple[str, str]]:
    """(module, function) pairs that start names, directly or through other ops functions."""
    functions = {m: _functions(t) for m, t in modules.items()}
    imports = {m: _imports(t) for m, t in modules.items()}
    seen, todo = set(), [start]
    while todo:
        module, name = todo.pop()
        if (module, name) in seen or name not in functions.get(module, {}):
            continue
        seen.add((module, name))
        for node in ast.walk(functions[module][name]):  # any use, called or passed on
            if isinstance(node, ast.Name):
                if node.id in functions[module]:
                    todo.append((module, node.id))
                elif node.id in imports[module]:
                    todo.append(imports[module][node.id])
    return seen


MODULES = _modules()
BACKWARDS = [
    (m, name)
    for m, tree in MODULES.items()
    for name in _functions(tree)
    if name.endswith("_backward")
]
FROM_BACKWARDS = set().union(*(reachable(MODULES, b) for b in BACKWARDS))
OTHERS = [
    (m, name)
    for m, tree in MODULES.items()
    for name in _functions(tree)
    if (m, name) not in FROM_BACKWARDS
]


def test_the_scan_sees_the_ops():
    assert len(BACKWARDS) > 50, BACKWARDS
    assert ("tensor", "sum_to") in FROM_BACKWARDS  # a helper imported from another ops module
    assert ("conv", "col2im") in FROM_BACKWARDS


@pytest.mark.parametrize("backward", BACKWARDS, ids=lambda b: f"{b[0]}.{b[1]}")
def test_backward_is_the_math_alone(backward):
    found = []
    for module, name in sorted(reachable(MODULES, backward)):
        found += [f"ops/{module}.py {v}" for v in mutations(_functions(MODULES[module])[name])]
    assert found == [], f"{backward[1]} reaches in-place code: " + "; ".join(found)


@pytest.mark.parametrize("function", OTHERS, ids=lambda f: f"{f[0]}.{f[1]}")
def test_forward_mutates_only_as_torch_does(function):
    module, name = function
    found = mutations(_functions(MODULES[module])[name])
    if name in FORWARD_MUTATIONS:
        assert found, f"{name} is allowed to mutate but does not: drop it from FORWARD_MUTATIONS"
    else:
        assert found == [], f"ops/{module}.py: " + "; ".join(found)


def test_the_allowlist_names_real_forwards():
    names = {name for _, tree in MODULES.items() for name in _functions(tree)}
    assert set(FORWARD_MUTATIONS) <= names
    assert not any(name.endswith("_backward") for name in FORWARD_MUTATIONS)


BAD = """
def helper(t, i):
    t[i] = 0
    return t

def other_helper(a, b):
    torch.mul(a, b, out=a)
    return a

def f_backward(dy, cache):
    x, n = cache
    k = 0
    k += 1
    n += 1
    dx = dy.clone().mul_(x)
    dx += x
    dy.data[0], z = 1, 2
    return helper(dx, 0), other_helper
"""


def test_the_checker_flags_each_form():
    tree = ast.parse(BAD)
    modules = {"bad": tree}
    found = []
    for module, name in sorted(reachable(modules, ("bad", "f_backward"))):
        found += mutations(_functions(modules[module])[name])
    text = "\n".join(found)
    assert "in-place call .mul_()" in text
    assert "out=" in text
    assert "assignment into t[i]" in text
    assert "assignment into (dy.data[0], z)" in text
    assert "augmented assignment to dx" in text
    assert "augmented assignment to n" in text  # n came from the cache, not a Python int
    assert "augmented assignment to k" not in text  # k = 0: a Python int
    assert len(found) == 6, found


def test_the_checker_passes_out_of_place_math():
    source = (
        "def g_backward(dy, cache):\n"
        "    x, = cache\n"
        "    n = len(x)\n"
        "    n += 1\n"
        "    dx = dy.index_add(0, x, dy).__add__(1)\n"
        "    return dx / n\n"
    )
    assert mutations(_functions(ast.parse(source))["g_backward"]) == []
