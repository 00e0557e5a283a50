"""docs/math.md matches the ops line by line: every `# dL/d… = …` comment in handgrad.ops (the
derivative a backward line computes) appears, as written, in math.md's section for that op.

A comment's formula is its text up to the first run of two spaces (what follows is the
shape); whitespace is normalised on both sides.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPS = ROOT / "src" / "handgrad" / "ops"
MATH = ROOT / "docs" / "math.md"

# The math.md heading of each ops module's section; FUNCTION_SECTIONS where a function has
# its own.
MODULE_SECTIONS = {
    "activation": "Activations",
    "attention": "Attention",
    "conv": "Convolutions",
    "dropout": "Dropout",
    "embedding": "Embedding",
    "linear": "Linear",
    "loss": "Losses",
    "normalization": "BatchNorm1d and BatchNorm2d",
    "pooling": "Pooling",
    "recurrent": "Recurrent networks and BPTT",
    "resize": "Upsample",
    "tensor": "Ops on whole tensors",
}
FUNCTION_SECTIONS = {
    "layer_norm_backward": "LayerNorm",
    "conv_backward": "Conv1d and Conv2d",
    "edge_pad_backward": "Conv1d and Conv2d",
    "conv_transpose_backward": "ConvTranspose1d and ConvTranspose2d",
    "adaptive_avg_pool_backward": "Adaptive pooling",
    "adaptive_max_pool_backward": "Adaptive pooling",
    "max_unpool_backward": "MaxUnpool",
    "lp_pool_backward": "LPPool",
    "constant_pad_backward": "Constant padding",
    "_gru_step_backward": "GRU",
    "_lstm_step_backward": "LSTM",
}
FORMULA = re.compile(r"#\s*(dL/d\S+ = .*)")


def _normal(text: str) -> str:
    return " ".join(text.split())


def formulas(source: str) -> list[tuple[int, str, str]]:
    """(line, enclosing top-level function or "", formula) for each `# dL/d… =` comment."""
    tree = ast.parse(source)
    spans = [
        (n.lineno, n.end_lineno or n.lineno, n.name)
        for n in tree.body
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        match = FORMULA.match(tok.string) if tok.type == tokenize.COMMENT else None
        if match:
            line = tok.start[0]
            function = next((name for a, b, name in spans if a <= line <= b), "")
            found.append((line, function, _normal(re.split(r"\s{2,}", match.group(1))[0])))
    return found


def sections(markdown: str) -> dict[str, str]:
    """Heading -> the text under it, to the next heading of the same or a higher level."""
    lines = markdown.splitlines()
    heads = [
        (i, len(m.group(1)), m.group(2).strip())
        for i, line in enumerate(lines)
        if (m := re.match(r"(#{1,6}) (.*)", line))
    ]
    out = {}
    for j, (i, level, title) in enumerate(heads):
        end = next((k for k, lv, _ in heads[j + 1 :] if lv <= level), len(lines))
        out[title] = _normal("\n".join(lines[i + 1 : end]))
    return out


SECTIONS = sections(MATH.read_text())
CASES = [
    (path.stem, line, function, formula)
    for path in sorted(OPS.glob("*.py"))
    for line, function, formula in formulas(path.read_text())
]


def test_the_scan_finds_the_formulas():
    assert len(CASES) > 40
    assert ("linear", "linear_backward", "dL/dW = dyᵀ x") in {(m, f, s) for m, _, f, s in CASES}


def test_every_section_named_exists():
    for title in [*MODULE_SECTIONS.values(), *FUNCTION_SECTIONS.values()]:
        assert title in SECTIONS, f"docs/math.md has no heading {title!r}"
    assert {p.stem for p in OPS.glob("*.py")} - {"__init__"} <= set(MODULE_SECTIONS)


@pytest.mark.parametrize(
    "module,line,function,formula", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_formula_is_in_its_math_section(module, line, function, formula):
    title = FUNCTION_SECTIONS.get(function, MODULE_SECTIONS[module])
    assert formula in SECTIONS[title], (
        f"ops/{module}.py line {line} ({function}) computes `{formula}`; docs/math.md's "
        f"section {title!r} does not write it"
    )


def test_the_checker_can_fail():
    source = "def f_backward(dy, cache):\n    return dy * 2  # dL/dx = 2 dy   (N,)\n"
    assert formulas(source) == [(2, "f_backward", "dL/dx = 2 dy")]
    doc = sections("# A\n## F\nwrites dL/dx = 3 dy\n## G\ndL/dx = 2 dy\n")
    assert "dL/dx = 2 dy" not in doc["F"] and "dL/dx = 2 dy" in doc["G"]
    assert "dL/dx = 2 dy" in doc["A"]  # a section holds its subsections
