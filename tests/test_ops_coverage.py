"""Every op pair in handgrad.ops has a backward, a test against torch and a gradcheck: a new
ops file or pair cannot go untested. (A pair counts as gradchecked when a test file that
calls gradcheck names it, as pair("op") or ops.op_forward.)"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import handgrad.ops as ops

FILES = [
    importlib.import_module(f"handgrad.ops.{m.name}") for m in pkgutil.iter_modules(ops.__path__)
]
TESTS = {p.name: p.read_text() for p in Path(__file__).parent.glob("test_*.py")}
PAIRS = sorted(
    (n.removesuffix("_forward"), f.__name__)
    for f in FILES
    for n in f.__all__
    if n.endswith("_forward")
)


@pytest.mark.parametrize("f", FILES, ids=[f.__name__ for f in FILES])
def test_every_ops_file_is_exported_and_pairs_its_functions(f):
    names = f.__all__
    forwards = {n.removesuffix("_forward") for n in names if n.endswith("_forward")}
    backwards = {n.removesuffix("_backward") for n in names if n.endswith("_backward")}
    assert forwards == backwards, forwards ^ backwards
    assert all(getattr(ops, n) is getattr(f, n) for n in names)  # ops/__init__ imports the file


@pytest.mark.parametrize("op,where", PAIRS, ids=[op for op, _ in PAIRS])
def test_every_pair_is_gradchecked(op, where):
    named = re.compile(rf"[\"']{op}[\"']|\b{op}_forward\b")
    files = [name for name, text in TESTS.items() if "gradcheck(" in text and named.search(text)]
    assert files, f"{where}: no test file gradchecks {op}_forward/{op}_backward"
