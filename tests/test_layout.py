"""docs/design.md's layout rules: no import loop in the package, and no file in tools/ over
400 lines.

The import graph is read from the source (ast), not from a running interpreter, so an
import inside a function counts as much as one at the top: it runs as soon as the function
is called. Imports under ``if TYPE_CHECKING:`` do not count (they never run).

How an import becomes edges, honestly to what Python executes:

- ``import a.b.c`` and ``from a.b.c import name`` depend on ``a.b.c``; ``from a.b import c``
  depends on ``a.b.c`` when ``c`` is a submodule, else on ``a.b`` itself (its __init__.py,
  which must have defined ``name`` by then). Relative imports are resolved first.
- Importing ``a.b.c`` also runs the __init__.py of ``a`` and ``a.b``, so those packages are
  edges too, except the importer's own enclosing packages: they are already running when
  it runs (that is how it is being imported). ``handgrad`` is every module's enclosing
  package, so only an explicit ``import handgrad`` / ``from handgrad import Name`` (a name
  that is not a submodule) depends on handgrad/__init__.py, which imports almost everything:
  inside the package such an import makes a loop unless handgrad/__init__.py cannot reach
  the importer (tools.lab and tools.bench, which it loads lazily by name, on first use).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "handgrad"
TOOLS_MAX_LINES = 400


def module_files(package: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__.py), for every .py under it."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement anywhere in the tree (functions, classes, try blocks), except
    those in the body of an ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo.extend(ast.iter_child_nodes(node))
    return found


def _targets(node: ast.Import | ast.ImportFrom, here: str, modules: dict) -> set[str]:
    """The modules of the package that this import statement names (see the module doc)."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if node.level:  # relative: `here` is the package the importing file sits in
        base = here.split(".")[: len(here.split(".")) - node.level + 1]
        module = ".".join(base + ([node.module] if node.module else []))
    else:
        module = node.module or ""
    if module not in modules:
        return set()
    return {f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names}


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package that importing it may run."""
    modules = module_files(package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            edges |= _targets(node, here, modules)
        for target in list(edges):  # the packages around a target run first
            parts = target.split(".")
            for i in range(1, len(parts)):
                outer = ".".join(parts[:i])
                if not (name == outer or name.startswith(outer + ".")):
                    edges.add(outer)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            return cycle
    return None


def test_the_package_has_no_import_loop():
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub import b\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from pkg import c\n"
        "def f():\n    from .sub import b\n"
    )
    (pkg / "sub" / "b.py").write_text("from .. import c\n")
    (pkg / "c.py").write_text("import pkg\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}  # in a function; the package runs too
    assert graph["pkg.sub.b"] == {"pkg.c"}  # relative, a submodule
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.c"] == {"pkg"}  # `import pkg` runs pkg/__init__.py
    assert find_cycle(graph) is None


@pytest.mark.parametrize(
    ("files", "loop"),
    [
        ({"a.py": "import pkg.b\n", "b.py": "def f():\n    from pkg import a\n"}, "pkg.a"),
        (
            {
                "a.py": "from . import b\n",
                "b.py": "from .c import x\n",
                "c.py": "from .a import y\n",
            },
            "pkg.c",
        ),
        ({"__init__.py": "from pkg.a import f\n", "a.py": "from pkg import g\n"}, "pkg.a"),
    ],
    ids=["in a function", "relative, three files", "through the package's __init__"],
)
def test_a_small_loop_is_found(tmp_path, files, loop):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for name, text in files.items():
        (pkg / name).write_text(text)
    cycle = find_cycle(import_graph(pkg))
    assert cycle is not None and loop in cycle and cycle[0] == cycle[-1]


def test_no_file_in_tools_passes_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in sorted((PACKAGE / "tools").glob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > TOOLS_MAX_LINES
    }
    assert not long, f"tools/ files over {TOOLS_MAX_LINES} lines: {long}"


def test_the_old_preprocessing_path_still_works():
    import handgrad as hg
    from handgrad.data import preprocessing
    from handgrad.training.tables import predict_table

    assert hg.preprocessing.Preprocessing is preprocessing.Preprocessing
    assert preprocessing.Preprocessing.predict is predict_table


def test_the_shared_validators_are_defined_once():
    from handgrad import validate

    shared = {n for n in vars(validate) if n.startswith(("positive_int", "check_"))}
    elsewhere = [
        f"{p.relative_to(PACKAGE)}: {node.name}"
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "validate.py"
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name in shared
    ]
    assert (
        shared == {"positive_int", "check_int", "check_number", "check_algorithm"} and not elsewhere
    ), elsewhere
