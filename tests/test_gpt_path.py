"""The GPT reader's path (issue 19): the functions on the call stack from GPT.backward down to
the line that computes dL/dq total at most 80 non-blank source lines, in at most 2 files.

The path is found by running GPT.backward under sys.settrace, not from a list: the first line
executed under ops.attention_backward whose statement mentions "dL/dq" (its comment) is the
line, and the Python frames from it up to GPT.backward are the path. Each function counts its
non-blank source lines, decorators and comments included, its docstring excluded.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import torch

import handgrad as hg
from handgrad import ops
from handgrad.nn import gpt as gpt_module
from handgrad.ops import attention as attention_ops

MAX_LINES = 80  # the goal, for the whole path
MAX_LINES_GPT_SIDE = 55  # nn/gpt.py's share, so that the op pair keeps about 25 lines
OPS_FILE = Path(attention_ops.__file__).resolve()
ALLOWED_FILES = {Path(gpt_module.__file__).resolve(), OPS_FILE}


def _dq_lines(filename: str) -> set[int]:
    """First lines of the simple statements in `filename` that mention dL/dq (on one of their
    lines, or in a comment line just above them)."""
    source = Path(filename).read_text()
    lines = source.splitlines()
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.stmt) or hasattr(node, "body"):
            continue  # only simple statements: a def or a loop is not "the line"
        end = node.end_lineno or node.lineno
        above = node.lineno - 1
        while above >= 1 and lines[above - 1].strip().startswith("#"):
            above -= 1
        if any("dL/dq" in lines[i - 1] for i in range(above + 1, end + 1)):
            targets.add(node.lineno)
    return targets


def _path_to_dq() -> list[CodeType]:
    """Run one GPT.backward under a tracer; the code objects from GPT.backward down to the
    frame that runs the dL/dq line, outermost first."""
    torch.manual_seed(0)
    model = hg.GPT(11, 5, n_layer=1, n_head=2, n_embd=8)
    idx = torch.randint(11, (2, 5))
    logits = model(idx)
    found: list[FrameType] = []
    target = ops.attention_backward.__code__
    targets: dict[str, set[int]] = {}

    def below_attention_backward(frame: FrameType | None) -> bool:
        while frame is not None:
            if frame.f_code is target:
                return True
            frame = frame.f_back
        return False

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and not found:
            name = frame.f_code.co_filename
            if name not in targets:
                targets[name] = _dq_lines(name)
            if frame.f_lineno in targets[name]:
                found.append(frame)
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if found or event != "call" or not below_attention_backward(frame):
            return None
        return local

    sys.settrace(tracer)
    try:
        model.backward(torch.randn(logits.shape))
    finally:
        sys.settrace(None)
    assert found, "no line executed under ops.attention_backward mentions dL/dq"
    chain = []
    frame: FrameType | None = found[0]
    while frame is not None:
        chain.append(frame.f_code)
        if frame.f_code is hg.GPT.backward.__code__:
            return chain[::-1]
        frame = frame.f_back
    raise AssertionError(f"GPT.backward is not on the stack of the dL/dq line: {chain}")


def _name(code: CodeType) -> str:
    return getattr(code, "co_qualname", code.co_name)  # (co_qualname: Python 3.11+)


def _lines(code: CodeType) -> int:
    """Non-blank source lines of the function, without its docstring."""
    source_lines, first = inspect.getsourcelines(code)
    tree = ast.parse(textwrap.dedent("".join(source_lines)))
    fn = tree.body[0]
    assert isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
    skip: set[int] = set()
    doc = fn.body[0] if fn.body else None
    if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
        if isinstance(doc.value.value, str):
            skip = set(range(doc.lineno, (doc.end_lineno or doc.lineno) + 1))
    return sum(1 for i, line in enumerate(source_lines, 1) if line.strip() and i not in skip)


def test_the_path_from_gpt_backward_to_dq_is_short_and_in_two_files():
    chain = _path_to_dq()
    counts = {f"{Path(c.co_filename).name}:{_name(c)}": _lines(c) for c in chain}
    report = "\n".join(f"  {n:55s} {k:3d}" for n, k in counts.items())
    report += f"\n  {'total':55s} {sum(counts.values()):3d}"
    expected = [hg.GPT.backward, gpt_module.Block.backward, hg.CausalSelfAttention.backward]
    assert chain[:3] == [f.__code__ for f in expected], report
    assert ops.attention_backward.__code__ in chain, report
    files = {Path(c.co_filename).resolve() for c in chain}
    assert files <= ALLOWED_FILES and len(files) <= 2, f"files: {sorted(map(str, files))}"
    gpt_side = sum(_lines(c) for c in chain if Path(c.co_filename).resolve() != OPS_FILE)
    assert gpt_side <= MAX_LINES_GPT_SIDE, f"nn/gpt.py's share is {gpt_side} lines:\n{report}"
    assert sum(counts.values()) <= MAX_LINES, f"the path is over {MAX_LINES} lines:\n{report}"


def test_the_dq_line_is_found_by_its_comment(tmp_path):
    """The finder reads statements, not raw lines: a comment above a statement or on its last
    line marks it; a line that only mentions dL/dk does not."""
    code = [
        "def f(a, b):",
        "    x = a  # dL/dk = …",
        "    # dL/dq = dS k / √d",
        "    y = (a",
        "         * b)",
        "    z = (a +",
        "         b)  # dL/dq again",
        "    return y",
    ]
    path = tmp_path / "probe.py"
    path.write_text("\n".join(code) + "\n")
    assert _dq_lines(str(path)) == {4, 6}
