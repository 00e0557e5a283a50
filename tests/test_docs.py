"""The docs' code runs: every ```python block of README.md, docs/design.md and
docs/adding_a_layer.md, in order, in one namespace per file (a later block uses what an
earlier one defined). A block not meant to run is fenced ```text; shell blocks (```sh) are not
run. A failure names the file and the block's first line, and its traceback the file's own
line numbers. hg.compile_step compiles with the aot_eager backend here (docs_module)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from handgrad import registry
from handgrad.training import compiled

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/design.md", "docs/adding_a_layer.md"]
FENCE = re.compile(r"^```(\S*)\s*$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the block's first code line, its code) for each ```python block, in order."""
    blocks, lang, start, body = [], None, 0, []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if lang is None and fence:
            lang, start, body = fence.group(1), number + 1, []
        elif lang is not None and line.rstrip() == "```":
            if lang == "python":
                blocks.append((start, "\n".join(body) + "\n"))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, "a code fence is never closed"
    return blocks


def test_the_block_reader_finds_python_blocks_only():
    text = "x\n```python\na = 1\n```\n```sh\nls\n```\n```text\nb\n```\n```python\nb = a\n```\n"
    assert python_blocks(text) == [(3, "a = 1\n"), (12, "b = a\n")]


@pytest.fixture
def docs_module(monkeypatch, tmp_path):
    """A fresh module for one file's blocks, importable while the test runs (so hg.load can
    find a class the docs define), in a temporary cwd. The docs' classes register under
    "docs_<name>:<Class>", never as a test's class of the same name, and leave the registry
    and torch's global settings as they found them."""
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))
    # hg.compile_step in the docs compiles with aot_eager here: the same trace into one
    # graph in a second, not Inductor's C++ build (tests/test_compile.py runs Inductor)
    monkeypatch.setattr(compiled, "BACKEND", "aot_eager")
    monkeypatch.chdir(tmp_path)
    precision = torch.get_float32_matmul_precision()
    threads = torch.get_num_threads()
    dtype = torch.get_default_dtype()

    def make(name: str) -> types.ModuleType:
        module = types.ModuleType(name)
        monkeypatch.setitem(sys.modules, name, module)
        return module

    yield make
    torch.set_float32_matmul_precision(precision)
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)


def run_blocks(doc: str, text: str, namespace: dict) -> None:
    """Run the python blocks of `text` in order in `namespace`; a failure names the block."""
    for line, code in python_blocks(text):
        try:  # padded to its own line, so that a traceback points at the line in the file
            exec(compile("\n" * (line - 1) + code, doc, "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{doc}: the block at line {line} raised {exc!r}") from exc


def test_a_failing_block_is_named_and_later_blocks_see_earlier_ones():
    text = "```python\na = 1\n```\n\n```python\nb = a + 1\nc = d\n```\n"
    namespace: dict = {}
    with pytest.raises(AssertionError, match=r"^x\.md: the block at line 6 raised NameError"):
        run_blocks("x.md", text, namespace)
    assert namespace["b"] == 2
    with pytest.raises(AssertionError, match="line 2 raised IndentationError"):
        run_blocks("x.md", "```python\n    def f(self): ...\n```\n", {})


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs(doc, docs_module):
    text = (ROOT / doc).read_text()
    assert python_blocks(text), f"{doc} has no python block"
    module = docs_module("docs_" + Path(doc).stem)
    torch.manual_seed(0)
    run_blocks(doc, text, module.__dict__)
