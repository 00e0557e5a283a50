"""`handgrad grade lab.ipynb`: a notebook's tagged task cells are graded as a workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handgrad.course import workspace
from handgrad.course.notebook import task_cells, write_workspace
from handgrad.errors import InputError
from handgrad.tools.cli import main

SOLUTIONS = Path(__file__).parent / "data" / "course" / "solutions"


def solved_notebook(tmp_path: Path, softmax: str | None = None) -> Path:
    """lab.ipynb as `lab new` writes it, each task's code cell replaced by the solution."""
    nb = workspace.notebook("en", workspace.FILES)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and cell["id"].endswith("-code"):
            name = cell["metadata"]["tags"][0]
            code = (SOLUTIONS / f"{name}.py").read_text().partition("\nif __name__ ==")[0]
            code = "\n".join(x for x in code.splitlines() if not x.startswith("from task_"))
            if name == "task_2_2" and softmax:
                code = code.replace(
                    "inputs - inputs.max(dim=self.dim, keepdim=True).values", softmax
                )
            cell["source"] = code.splitlines(keepends=True)
    path = tmp_path / "lab.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_a_solved_notebook_passes_every_task(tmp_path, capsys):
    assert main(["grade", str(solved_notebook(tmp_path)), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["task"] for r in rows} >= {"1.1", "2.2", "3.2", "4.1.3", "4.4.3", "4.5"}
    assert all(r["passed"] for r in rows), [r for r in rows if not r["passed"]]


def test_a_notebook_mistake_is_named_and_a_fresh_notebook_is_not_attempted(tmp_path, capsys):
    nb = solved_notebook(tmp_path, softmax="inputs")  # exp without the max shift
    source = "".join(c for cell in json.loads(nb.read_text())["cells"] for c in cell["source"])
    assert "torch.exp(inputs)" in source  # the planted line is in the notebook
    assert main(["grade", str(nb), "--task", "2.2", "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["mistake"] == "softmax-no-max-shift"
    fresh = tmp_path / "fresh"
    main(["lab", "new", str(fresh), "--lang", "en"])
    capsys.readouterr()
    assert main(["grade", str(fresh / "lab.ipynb"), "--task", "2.2", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)[0]["status"] == "not attempted"


def test_later_tasks_see_earlier_cells_names_and_demo_cells_are_left_out(tmp_path):
    files = write_workspace(solved_notebook(tmp_path), tmp_path)
    text = (tmp_path / "task_1_5.py").read_text()
    assert "from task_1_4 import *" in text and "class NeuralNet" in text
    assert "if __name__" not in text and len(files) == len(workspace.FILES)


@pytest.mark.parametrize("content", ["not json", '{"cells": []}', '{"nbformat": 4}'])
def test_a_file_that_is_no_lab_notebook_is_one_line(tmp_path, capsys, content):
    path = tmp_path / "x.ipynb"
    path.write_text(content)
    assert main(["grade", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "grade:" in err and "Traceback" not in err
    with pytest.raises(InputError, match="grade"):
        task_cells(path)
