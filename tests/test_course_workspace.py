"""`handgrad lab new`: the student's workspace (issue 20, step 1)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from handgrad.course import workspace
from handgrad.errors import InputError
from handgrad.tools.cli import main

SEED_CLASSES = {
    "task_1_1": {"Neuron"},
    "task_1_2": {"Linear"},
    "task_1_3": {"Linear"},
    "task_1_4": {"Linear"},
    "task_1_5": {"NeuralNet"},
    "task_2_1": {"ReLU"},
    "task_2_2": {"Softmax"},
    "task_2_3": {"ELU"},
    "task_3_1": {"MSELoss"},
    "task_3_2": {"CategoricalCrossEntropyLoss"},
    "task_3_3": {"MSELossL2"},
    "task_4_1": {"MSELoss", "Neuron"},
    "task_4_2": {"MSELoss", "Neuron"},
    "task_4_3": {"Linear"},
    "task_4_4": {"Activation_ReLU", "Linear"},
    "task_4_5": {"SoftmaxCrossEntropyLoss"},
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab") / "my_lab"
    assert main(["lab", "new", str(folder), "--lang", "ru"]) == 0
    return folder


def test_lab_new_writes_every_task_the_notebook_and_the_readme(ws):
    names = {p.name for p in ws.iterdir()}
    assert names == {f"{n}.py" for n in SEED_CLASSES} | {"lab.ipynb", "README.md"}
    readme = (ws / "README.md").read_text(encoding="utf-8")
    assert "Блохин" in readme and "handgrad grade" in readme


@pytest.mark.parametrize("name", sorted(SEED_CLASSES))
def test_each_file_is_the_statement_then_the_seed_classes_then_the_demo(ws, name):
    tree = ast.parse((ws / f"{name}.py").read_text(encoding="utf-8"))
    doc = ast.get_docstring(tree)
    assert doc and doc.startswith(name.removeprefix("task_").replace("_", "."))
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes == SEED_CLASSES[name]
    last = tree.body[-1]
    assert isinstance(last, ast.If) and "__main__" in ast.unparse(last.test)
    if name in ("task_4_1", "task_4_2", "task_4_3", "task_4_4"):
        assert "train" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_the_statements_name_the_right_tasks_and_write_out_the_formulas(ws):
    text = {
        n: ast.get_docstring(ast.parse((ws / f"{n}.py").read_text("utf-8"))) for n in SEED_CLASSES
    }
    assert "__1.2__" in text["task_1_3"] and "2.1.2" not in text["task_1_3"]
    assert "__3.1__" in text["task_4_1"] and "2.3.1" not in text["task_4_1"]
    assert "__4.1__" in text["task_4_2"] and "2.4.1" not in text["task_4_2"]
    assert "max(0, x)" in text["task_2_1"] and "α·(exp(x) − 1)" in text["task_2_3"]
    assert "exp(zᵢ) / Σⱼ exp(zⱼ)" in text["task_2_2"] and "log(ŷⱼ)" in text["task_3_2"]


def test_english_texts(tmp_path):
    workspace.new_workspace(tmp_path / "en", "en")
    doc = ast.get_docstring(ast.parse((tmp_path / "en" / "task_2_2.py").read_text("utf-8")))
    assert doc.startswith("2.2. Using the matrix and vector operations")
    assert "Financial University" in (tmp_path / "en" / "README.md").read_text("utf-8")


def test_softmax_defaults_to_rows_and_the_32_demo_keeps_the_seeds_dim0_with_a_reason(ws):
    src = (ws / "task_2_2.py").read_text("utf-8")
    assert "def __init__(self, dim: int = -1)" in src
    demo = (ws / "task_3_2.py").read_text("utf-8")
    assert "Softmax(dim=0)" in demo and "row-wise" in demo


def test_importing_runs_nothing_and_every_skeleton_raises_not_implemented(ws):
    script = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import task_1_1, task_2_2, task_4_1, task_4_4
for call in (lambda: task_1_1.Neuron(torch.ones(2), torch.ones(())).forward(torch.ones(2)),
             lambda: task_2_2.Softmax().forward(torch.ones(2, 3)),
             lambda: task_4_1.Neuron(3),
             lambda: task_4_4.train(torch.ones(4, 1), torch.ones(4, 1), 1, 0.1)):
    try:
        call()
    except NotImplementedError:
        continue
    raise SystemExit("no NotImplementedError")
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", script, str(ws)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"  # importing printed nothing


def test_the_notebook_holds_the_same_tasks_as_tagged_cells(ws):
    nb = nbformat.reads((ws / "lab.ipynb").read_text("utf-8"), as_version=4)
    nbformat.validate(nb)
    tags = [c.metadata["tags"][0] for c in nb.cells]
    assert sorted(set(tags)) == sorted(SEED_CLASSES)
    code = "".join(c.source for c in nb.cells if c.metadata["tags"] == ["task_2_2"])
    assert "class Softmax" in code and "NotImplementedError" in code
    assert "from task_" not in "".join(c.source for c in nb.cells)


def test_lab_new_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        workspace.new_workspace(tmp_path, "ru")
    assert main(["lab", "new", str(tmp_path)]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_the_task_texts_ship_with_the_package():
    data = Path(workspace.__file__).parent / "tasks"
    past_the_seed = {"task_5_1", "task_5_2", "task_6_1", "task_6_2", "task_7_1", "task_7_2"}
    past_the_seed |= {"task_8_1", "task_9_1"}
    assert {p.stem for p in data.glob("*.txt")} == set(SEED_CLASSES) | past_the_seed
    assert "tasks/*.txt" in (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert json.loads(json.dumps(workspace.notebook("en")))["nbformat"] == 4
