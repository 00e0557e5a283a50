"""docs/design.md's claims that no other test file checks, read from the document itself where
it states them as a list or a table, so that the text and the code cannot part."""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
from pathlib import Path

import pytest

import handgrad as hg
from handgrad import errors, ops, registry

ROOT = Path(__file__).resolve().parents[1]
DESIGN = (ROOT / "docs" / "design.md").read_text()
PACKAGE = ROOT / "src" / "handgrad"


def section(title: str) -> str:
    """The text of the design.md section (any level) headed `title`, up to the next heading."""
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ |\Z)", DESIGN, re.M | re.S)
    assert match, f"docs/design.md has no section {title!r}"
    return match.group(1)


def ticked(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


# ---- Errors: the table of classes and the builtin each is too --------------------------------
ERROR_ROWS = [
    row
    for row in section("Errors").splitlines()
    if row.startswith("| `") and not row.startswith("| class")
]


def test_the_errors_table_is_read():
    assert len(ERROR_ROWS) >= 6


@pytest.mark.parametrize("row", ERROR_ROWS, ids=lambda row: ticked(row)[0])
def test_each_error_class_is_also_the_builtin_the_table_names(row):
    classes, also, _ = row.strip("|").split("|")
    for name in ticked(classes):
        cls = getattr(errors, name)
        assert issubclass(cls, errors.HandgradError), name
        for builtin in ticked(also):
            assert issubclass(cls, getattr(builtins, builtin)), f"{name} is not a {builtin}"


# ---- The protocol: the multi-input ops it lists are op pairs ---------------------------------
def test_the_multi_input_ops_it_lists_are_pairs_in_handgrad_ops():
    sentence = re.search(r"The multi-input ops.*?\.\n", section("The protocol"), re.S)
    assert sentence
    names = [n for tick in ticked(sentence.group(0)) for n in tick.split("/")]
    assert "matmul" in names and "transpose" in names
    for name in names:
        assert callable(getattr(ops, f"{name}_forward", None)), name
        assert callable(getattr(ops, f"{name}_backward", None)), name


# ---- What a module class declares: the outline is hg.Linear's --------------------------------
def test_the_declarations_it_shows_are_linears_own(monkeypatch):
    block = re.search(r"```python\n(.*?)```", section("What a module class declares"), re.S)
    assert block
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))  # the outline registers
    outline: dict = {"__name__": "design_outline"}
    exec(block.group(1), outline)
    shown = outline["Linear"]
    declared = ("parameter_names", "buffer_names", "torch_name", "cli_name")
    for name in declared:
        assert name in vars(shown), f"the outline does not show {name}"
        assert getattr(shown, name) == getattr(hg.Linear, name), name
        assert name in vars(hg.Module), f"Module has no default for {name}"
    assert callable(hg.Linear.config) and "config" in vars(hg.Linear)


# ---- One registry: every file in nn/ is imported by the package -------------------------------
def test_every_file_in_nn_is_imported_by_import_handgrad():
    files = sorted(p.stem for p in (PACKAGE / "nn").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys, handgrad\n"
        f"missing = [f for f in {files!r} if 'handgrad.nn.' + f not in sys.modules]\n"
        "print(missing)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ---- A model with branches: the document's Gated is the one tests/test_containers.py checks ---
def _methods(source: str, cls: str) -> dict[str, str]:
    """{method name: its code} of class `cls` in `source`, without comments or type hints."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    methods = [f for f in node.body if isinstance(f, ast.FunctionDef)]
    for f in methods:
        f.returns = None
        for a in f.args.args:
            a.annotation = None
    return {f.name: ast.dump(f, include_attributes=False) for f in methods}


def test_the_gated_model_it_shows_is_the_one_tested_against_autograd():
    block = re.search(r"```python\n(.*?class Gated.*?)```", section("A model with branches"), re.S)
    assert block
    shown = _methods(block.group(1), "Gated")
    tested = _methods((ROOT / "tests" / "test_containers.py").read_text(), "Gated")
    assert set(shown) == {"__init__", "config", "forward", "backward"}
    assert shown == tested


# ---- Model files: a module met again is written {"same_as": k} and loaded as one --------------
def test_a_module_met_again_is_stored_as_same_as_and_loaded_as_one(tmp_path):
    from handgrad.io import architecture

    shared = hg.Linear(2, 2)
    model = hg.Sequential(shared, hg.Tanh(), shared)
    layers = architecture(model)["layers"]
    assert layers[0]["type"] == "Linear" and set(layers[2]) == {"same_as"}
    loaded = hg.load(hg.save(model, tmp_path / "shared.safetensors"))
    assert loaded[2] is loaded[0] and len(loaded.parameters()) == 2
