"""A lab notebook (`lab.ipynb`, as `handgrad lab new` writes it) read back as a workspace.

The notebook keeps each task in cells tagged with the task's file name (`task_2_2`): its text,
its code and its demo. The grader grades files, so each task's code cells (the demo cells
aside) become `task_2_2.py`, which first imports every earlier task's names: in a notebook
the cells share one namespace, and a later task uses an earlier task's classes by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from handgrad.errors import InputError


def task_cells(nb_path: Path) -> dict[str, str]:
    """{task file name: the source of its code cells, in order} from the notebook."""
    try:
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        cells: list[dict[str, Any]] = nb["cells"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"grade: {nb_path} is not a Jupyter notebook ({e})") from None
    tasks: dict[str, list[str]] = {}
    for cell in cells:
        tags = cell.get("metadata", {}).get("tags", [])
        names = [t for t in tags if isinstance(t, str) and t.startswith("task_")]
        if (
            cell.get("cell_type") != "code"
            or not names
            or str(cell.get("id", "")).endswith("-demo")
        ):
            continue
        source = cell.get("source", "")
        tasks.setdefault(names[0], []).append(
            "".join(source) if isinstance(source, list) else source
        )
    if not tasks:
        raise InputError(
            f"grade: {nb_path} has no code cells tagged with a task (task_1_1, ...); "
            "write it with handgrad lab new, or grade the task files"
        )
    return {name: "\n\n".join(parts) for name, parts in tasks.items()}


def write_workspace(nb_path: Path, folder: Path) -> list[Path]:
    """Writes each task of the notebook into folder/task_N_M.py; returns the files."""
    written = []
    earlier: list[str] = []
    for name, source in sorted(task_cells(nb_path).items(), key=lambda kv: _order(kv[0])):
        header = "".join(
            f"from {e} import *  # noqa: F403 (the notebook's shared names)\n" for e in earlier
        )
        path = folder / f"{name}.py"
        path.write_text(header + "\n" + source + "\n", encoding="utf-8")
        written.append(path)
        earlier.append(name)
    return written


def _order(name: str) -> list[int]:
    """task_4_10 after task_4_9: the numbers, compared as numbers."""
    return [int(n) for n in name.split("_")[1:] if n.isdigit()]
