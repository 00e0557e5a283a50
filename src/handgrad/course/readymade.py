"""The lab's premise is to build without ready-made parts: torch.nn, torch.nn.functional,
torch.softmax, autograd or a `.backward()` of torch's in a task's body is a mistake of its own.

Only the bodies of the task's own classes and functions are scanned: the demo lines under
`if __name__ == "__main__":` may compare with torch.nn, as the lab's did.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

BANNED_MODULES = ("torch.nn", "torch.autograd", "torch.func")
BANNED_ATTRIBUTES = (
    "torch.nn",
    "torch.softmax",
    "torch.log_softmax",
    "torch.autograd",
    "torch.func",
)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _aliases(tree: ast.Module) -> set[str]:
    """Module-level names bound to a banned module (`import torch.nn as nn`, `import
    torch.nn.functional as F`, `from torch import nn`)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith(BANNED_MODULES) and a.asname:
                    names.add(a.asname)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full.startswith(BANNED_MODULES) or (node.module or "").startswith(
                    BANNED_MODULES
                ):
                    names.add(a.asname or a.name)
    return names


def _uses(body: ast.AST, aliases: set[str]) -> list[str]:
    found = []
    for node in ast.walk(body):
        if isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name.startswith(BANNED_ATTRIBUTES) or name.split(".")[0] in aliases:
                found.append(name)
        elif isinstance(node, ast.Name) and node.id in aliases:
            found.append(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if (module or "").startswith(BANNED_MODULES):
                found.append(module or "")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "backward" and not node.args and not node.keywords:
                found.append(".backward()")
    return found


def scan(path: Path, names: Iterable[str]) -> list[str]:
    """The ready-made parts used in the bodies of the classes and functions `names` of the
    file at `path` (empty when it cannot be parsed: the sandbox reports that)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
        return []
    aliases, wanted = _aliases(tree), set(names)
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name in wanted:
            found += _uses(node, aliases)
    return sorted(set(found))
