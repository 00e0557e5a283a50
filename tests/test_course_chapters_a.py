"""Issue 20, step 2 for chapters 5 (optimizers: 5.1 SGD with momentum, 5.2 Adam) and 9
(9.1 LayerNorm), and `handgrad lab new --chapters`: the references against torch, the
skeletons, the correct solutions over 20 seeds, each planted mistake named by its id, and the
chapter switch of lab new and grade."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys

import pytest
import torch
from test_grader import SOLUTIONS, InProcess, _planted

from handgrad.course import catalogue, chapter_layernorm, chapter_optim, grader, workspace
from handgrad.errors import InputError
from handgrad.tools.cli import main

TASKS = ("5.1", "5.2", "9.1")
CLASSES = {"task_5_1": {"SGDMomentum"}, "task_5_2": {"Adam"}, "task_9_1": {"LayerNorm"}}
OURS = [m for m in catalogue.MISTAKES if m.task in TASKS]
_GRADER = grader.Grader(InProcess())


@pytest.fixture(autouse=True)
def _forget_task_modules():
    """The in-process grader imports task files as task_N_M modules; later test files check
    that grading leaves none behind."""
    yield
    for name in [m for m in sys.modules if m.startswith("task_")]:
        del sys.modules[name]


def _steps(opt, params, grads, update):
    for g in grads:
        opt.zero_grad()
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
        update([p.detach() for p in params], g)


@pytest.mark.task("5.1")
def test_sgd_momentum_reference_matches_torch_optim_sgd_over_steps():
    torch.manual_seed(3)
    params = [torch.randn(3, 4, dtype=torch.float64), torch.randn(4, dtype=torch.float64)]
    grads = [[torch.randn_like(p) for p in params] for _ in range(6)]
    grads[2] = [torch.zeros_like(p) for p in params]  # a zero gradient mid-way
    ours = [p.clone() for p in params]
    mine = chapter_optim.SGDMomentum51(lr=0.07, momentum=0.8)
    theirs = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.SGD(theirs, lr=0.07, momentum=0.8)

    def check(expected, g):
        mine.step(ours, g)
        assert all(torch.allclose(a, b) for a, b in zip(ours, expected))

    _steps(opt, theirs, grads, check)


@pytest.mark.task("5.2")
@pytest.mark.parametrize("scale", [1.0, 1e-6, 1e4])
def test_adam_reference_matches_torch_optim_adam_with_its_defaults(scale):
    torch.manual_seed(4)
    params = [torch.randn(2, 5, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    grads = [[torch.randn_like(p) * scale for p in params] for _ in range(5)]
    grads[0] = [torch.zeros_like(p) for p in params]  # the first step with a zero gradient
    ours = [p.clone() for p in params]
    mine = chapter_optim.Adam52()
    theirs = [p.clone().requires_grad_(True) for p in params]
    opt = torch.optim.Adam(theirs)

    def check(expected, g):
        mine.step(ours, g)
        assert all(torch.allclose(a, b, rtol=1e-10, atol=1e-12) for a, b in zip(ours, expected))

    _steps(opt, theirs, grads, check)


@pytest.mark.task("9.1")
def test_layernorm_reference_matches_torch_autograd_in_float64():
    torch.manual_seed(5)
    x = torch.randn(3, 4, 6, dtype=torch.float64) * 3 + 1
    x[0, 0] = 2.5  # a row of equal values
    gamma, beta = torch.randn(6, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    ln = chapter_layernorm.LayerNorm91(6, eps=1e-3)
    ln.weight, ln.bias = gamma, beta
    y = ln.forward(x)
    dy = torch.randn_like(y)
    dx, dgamma, dbeta = ln.backward(dy)
    xs, gs, bs = (t.clone().requires_grad_(True) for t in (x, gamma, beta))
    ys = torch.nn.functional.layer_norm(xs, (6,), gs, bs, eps=1e-3)
    ys.backward(dy)
    assert torch.allclose(y, ys.detach())
    assert torch.allclose(dx, xs.grad) and torch.allclose(dgamma, gs.grad)
    assert torch.allclose(dbeta, bs.grad)


def test_each_chapter_has_at_least_three_mistakes_with_both_languages():
    for chapter in ("5", "9"):
        ids = [m.id for m in OURS if m.task.startswith(chapter + ".")]
        assert len(ids) >= 3 and len(set(ids)) == len(ids), chapter
    assert all(m.ru and m.en and m.ru != m.en for m in OURS)


@pytest.mark.parametrize("task", TASKS)
def test_the_solution_passes_over_20_seeds_and_the_skeleton_is_not_attempted(tmp_path, task):
    for seed in range(20):
        (report,) = grader.Grader(InProcess(), seed=seed).grade_folder(SOLUTIONS, [task])
        assert report.passed and report.points == report.max_points, (seed, report)
    workspace.new_workspace(tmp_path / "ws", "en", (int(task[0]),))
    reports = {r.task: r for r in _GRADER.grade_folder(tmp_path / "ws", [task])}
    assert reports[task].status == "not attempted"


@pytest.mark.parametrize("mistake", OURS, ids=lambda m: f"{m.task}:{m.id}")
def test_each_planted_mistake_of_chapters_5_and_9_is_named_by_its_id(tmp_path, mistake, request):
    request.node.add_marker(pytest.mark.task(mistake.task))
    (report,) = _GRADER.grade_folder(_planted(tmp_path, mistake), [mistake.task])
    assert not report.passed and report.mistakes[0] == mistake.id, report
    assert report.first_wrong is not None


def test_lab_new_chapters_writes_only_those_chapters(tmp_path, capsys):
    folder = tmp_path / "opt"
    assert main(["lab", "new", str(folder), "--lang", "en", "--chapters", "optimizers,9"]) == 0
    assert "task_5_1.py ... task_9_1.py" in capsys.readouterr().out
    names = {p.name for p in folder.iterdir()}
    assert names == {f"{n}.py" for n in CLASSES} | {"lab.ipynb", "README.md"}
    for name, classes in CLASSES.items():
        tree = ast.parse((folder / f"{name}.py").read_text("utf-8"))
        assert ast.get_docstring(tree).startswith(name[5:].replace("_", "."))
        assert {n.name for n in tree.body if isinstance(n, ast.ClassDef)} == classes
    tags = {
        c["metadata"]["tags"][0] for c in json.loads((folder / "lab.ipynb").read_text())["cells"]
    }
    assert tags == set(CLASSES)
    readme = (folder / "README.md").read_text("utf-8")
    assert "5 (optimizers), 9 (layernorm)" in readme and "--train" not in readme
    assert "python task_5_1.py" in readme


def test_chapters_all_numbers_and_the_default(tmp_path):
    assert workspace.parse_chapters(None) == (1, 2, 3, 4)
    assert workspace.parse_chapters("9, 5") == (5, 9)
    assert {1, 2, 3, 4, 5, 9} <= set(workspace.parse_chapters("all"))
    workspace.new_workspace(tmp_path / "all", "ru", workspace.parse_chapters("all"))
    assert {"task_4_5.py", "task_5_2.py", "task_9_1.py"} <= {
        p.name for p in (tmp_path / "all").iterdir()
    }
    with pytest.raises(InputError, match="--chapters: unknown chapter 'convolutions'"):
        workspace.parse_chapters("5,convolutions")
    assert main(["lab", "new", str(tmp_path / "bad"), "--chapters", "42"]) == 1
    assert not (tmp_path / "bad").exists()
    assert main(["lab", "--chapters", "5"]) == 1  # --chapters without new is refused


def test_grade_grades_the_chapters_present_through_the_sandbox(tmp_path, capsys):
    folder = tmp_path / "ws"
    shutil.copytree(SOLUTIONS, folder)
    (folder / "task_5_2.py").unlink()  # chapter 5 is there: 5.2 is not attempted
    tasks = {r.task: r.status for r in _GRADER.grade_folder(folder)}
    assert tasks["5.1"] == tasks["9.1"] == "passed" and tasks["5.2"] == "not attempted"
    for name in ("task_5_1.py", "task_9_1.py"):
        (folder / name).unlink()
    assert [r.task for r in _GRADER.grade_folder(folder)] == [
        t
        for t in grader.TASKS
        if t[0] in "1234678"  # chapters 5 and 9 no longer there
    ]
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    for name in CLASSES:
        shutil.copy(SOLUTIONS / f"{name}.py", chosen)
    assert main(["grade", str(chosen), "--json"]) == 0  # only chapters 5 and 9, all passed
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == list(TASKS) and all(r["passed"] for r in rows)


def test_the_demo_lines_run_on_the_solutions(tmp_path):
    scripts = []
    for name in sorted(CLASSES):
        demo = workspace.sections(name)["code"].partition('if __name__ == "__main__":\n')[2]
        solution = (SOLUTIONS / f"{name}.py").read_text("utf-8")
        script = tmp_path / f"{name}.py"
        script.write_text(solution + '\n\nif __name__ == "__main__":\n' + demo, encoding="utf-8")
        scripts.append(str(script))
    run_all = "import runpy, sys\nfor p in sys.argv[1:]: runpy.run_path(p, run_name='__main__')"
    out = subprocess.run(
        [sys.executable, "-c", run_all, *scripts], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "after 100 steps" in out.stdout and "after 300 steps" in out.stdout
    assert "row means" in out.stdout
