"""`handgrad grade`: the grader names the mistake (issue 20, step 1).

The CLI tests go through the sandbox; the loops over seeds and over the planted set call the
same Grader with an in-process runner, which keeps them fast.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from handgrad.course import catalogue, compare, grader, probes, reference
from handgrad.sandbox import Outcome
from handgrad.tools.cli import main

DATA = Path(__file__).parent / "data" / "course"
SOLUTIONS, SEED = DATA / "solutions", DATA / "seed"
SEED_MISTAKES = {
    "2.2": {"softmax-dim0-default", "softmax-no-max-shift"},
    "3.2": {"ce-log-unclipped"},
    "4.3.1": {"linear-backward-one-output"},
}
SEED_NOT_ATTEMPTED = {"4.4.2", "4.4.3", "4.5"}  # 4.4's network and loop, unfinished; 4.5 past it


class InProcess:
    """The sandbox's API, run here (for trusted fixtures only: the tests' loops)."""

    def run(self, fn, *args):
        saved = list(sys.path)
        for name in [m for m in sys.modules if m.startswith("task_")]:
            del sys.modules[name]
        try:
            return Outcome(ok=True, value=fn(*args))
        finally:
            sys.path[:] = saved


def by_task(reports):
    return {r.task: r for r in reports}


def test_every_file_of_the_course_has_its_probe_and_reference():
    assert set(probes.TASKS) == {t for t in grader.TASKS}
    assert {reference.file_task(t) for t in probes.TASKS} == set(reference.CLASSES)


@pytest.mark.task("2.2")
def test_the_reference_matches_torch():
    z = torch.randn(5, 4, dtype=torch.float64) * 3
    assert torch.allclose(reference.Softmax22().forward(z), torch.softmax(z, dim=-1))
    elu = reference.ELU23(alpha=1.3).forward(z)
    assert torch.allclose(elu, torch.nn.functional.elu(z, alpha=1.3))


@pytest.mark.task("4.3.1")
def test_the_reference_backwards_match_torch_autograd_in_float64():
    torch.manual_seed(1)
    X = torch.randn(6, 4, dtype=torch.float64)
    layer = reference.Linear44(4, 3)
    layer.weights, layer.biases = layer.weights.double(), layer.biases.double()
    W = layer.weights.clone().requires_grad_(True)
    b = layer.biases.clone().requires_grad_(True)
    Xg = X.clone().requires_grad_(True)
    t = torch.randn(6, 3, dtype=torch.float64)
    torch.mean((Xg @ W.T + b - t) ** 2, dim=0).sum().backward()
    g = reference.MSELoss42().backward(layer.forward(X), t)
    dW, db, dX = layer.backward(g, X)
    assert torch.allclose(dW, W.grad) and torch.allclose(db, b.grad)
    assert torch.allclose(dX / X.shape[0], Xg.grad)  # dinputs is per example; the mean adds 1/N
    z = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 3, 1, 1, 2])
    torch.nn.functional.cross_entropy(z, y).backward()
    ce = reference.SoftmaxCrossEntropy45()
    assert torch.allclose(ce.backward(z.detach(), y), z.grad)
    assert torch.allclose(ce.forward(z.detach(), y), torch.nn.functional.cross_entropy(z, y))


def test_the_solutions_score_full_marks_through_the_sandbox(capsys):
    assert main(["grade", str(SOLUTIONS), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == list(grader.TASKS)
    for r in rows:
        assert r["passed"] and r["points"] == r["max_points"], r
        assert r["mistake"] is None and r["mistakes"] == [] and r["first_wrong"] is None
        assert isinstance(r["message"], str)


def test_no_correct_task_is_marked_wrong_over_20_seeds():
    for seed in range(20):
        reports = grader.Grader(InProcess(), seed=seed).grade_folder(SOLUTIONS)
        wrong = [(r.task, r.message) for r in reports if not r.passed]
        assert not wrong, (seed, wrong)


def test_the_seeds_own_code_gets_its_known_mistakes_named_and_the_rest_passed(capsys):
    assert main(["grade", str(SEED), "--json", "--lang", "ru"]) == 1
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    for task, row in rows.items():
        if task in SEED_MISTAKES:
            assert not row["passed"] and set(row["mistakes"]) == SEED_MISTAKES[task], row
            assert row["mistake"] == row["mistakes"][0] and row["first_wrong"]["case"]
        elif task in SEED_NOT_ATTEMPTED:
            assert row["status"] == "not attempted" and not row["passed"], row
        else:
            assert row["passed"], row
    assert "nan" in rows["3.2"]["message"] and "ожидалось" in rows["3.2"]["message"]


def _planted(tmp_path: Path, mistake: catalogue.Mistake) -> Path:
    folder = tmp_path / f"{mistake.task}-{mistake.id}"
    shutil.copytree(SOLUTIONS, folder)
    path = grader.task_file(folder, mistake.task)
    path.write_text(
        path.read_text()
        + "\nfrom handgrad.course.catalogue import plant as _plant\n\n"
        + f"_plant(globals(), {mistake.task!r}, {mistake.id!r})\n"
    )
    return folder


def test_the_catalogue_covers_the_seeds_tasks_with_stable_ids_and_both_languages():
    assert len(catalogue.MISTAKES) >= 25
    keys = [(m.task, m.id) for m in catalogue.MISTAKES]
    assert len(set(keys)) == len(keys)
    assert {reference.file_task(m.task) for m in catalogue.MISTAKES} == set(reference.CLASSES) - {
        "1.5"
    }
    for m in catalogue.MISTAKES:
        assert m.ru and m.en and m.ru != m.en


@pytest.mark.parametrize("mistake", catalogue.MISTAKES, ids=lambda m: f"{m.task}:{m.id}")
def test_each_planted_mistake_is_named_by_its_id(tmp_path, mistake, request):
    request.node.add_marker(pytest.mark.task(mistake.task))
    folder = _planted(tmp_path, mistake)
    report = by_task(_GRADER.grade_folder(folder, [mistake.task]))[mistake.task]
    assert not report.passed and mistake.id in report.mistakes, report
    assert report.first_wrong is not None


_GRADER = grader.Grader(InProcess())


@pytest.mark.task("4.2.2")
def test_reciprocal_conventions_both_pass_with_a_note(tmp_path):
    folder = tmp_path / "moved"
    shutil.copytree(SOLUTIONS, folder)
    path = folder / "task_4_2.py"
    src = path.read_text()
    src = src.replace("return 2 * (y_pred - y_true)", "return 2 * (y_pred - y_true) / len(y_pred)")
    src = src.replace(
        "return torch.mean(dvalue * inputs, dim=0), torch.mean(dvalue)",
        "return torch.sum(dvalue * inputs, dim=0), torch.sum(dvalue)",
    )
    path.write_text(src)
    reports = by_task(_GRADER.grade_folder(folder, ["4.2.1", "4.2.2", "4.2.3"]))
    for task in ("4.2.1", "4.2.2"):
        assert reports[task].passed and "factor" in reports[task].message, reports[task]
    assert reports["4.2.3"].passed


@pytest.mark.task("4.1.1")
def test_a_dependency_mistake_is_reported_once_and_the_loop_graded_with_the_reference(tmp_path):
    folder = _planted(tmp_path, catalogue.find("4.1.1", "mse-backward-no-2"))
    reports = by_task(_GRADER.grade_folder(folder, ["4.1.3"] + ["4.1.1"]))
    assert reports["4.1.1"].mistake == "mse-backward-no-2"
    assert reports["4.1.3"].passed and reports["4.1.3"].notes


@pytest.mark.task("2.2")
def test_ready_made_code_is_a_mistake(tmp_path):
    folder = tmp_path / "nn"
    shutil.copytree(SOLUTIONS, folder)
    (folder / "task_2_2.py").write_text(
        "import torch\n\n\nclass Softmax:\n"
        "    def __init__(self, dim=-1):\n        self.dim = dim\n\n"
        "    def forward(self, inputs):\n        return torch.softmax(inputs, dim=self.dim)\n"
    )
    report = by_task(_GRADER.grade_folder(folder, ["2.2"]))["2.2"]
    assert (
        not report.passed and report.mistake == "ready-made" and "torch.softmax" in report.message
    )


def test_one_task_file_and_a_missing_task(tmp_path, capsys):
    assert main(["grade", str(SOLUTIONS / "task_2_2.py"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["task"] for r in rows] == ["2.2"]
    folder = tmp_path / "partial"
    folder.mkdir()
    shutil.copy(SOLUTIONS / "task_2_1.py", folder)
    assert main(["grade", str(folder), "--task", "2.1", "--task", "2.3", "--json"]) == 1
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["2.1"]["passed"] and rows["2.3"]["status"] == "not attempted"
    shutil.copy(SOLUTIONS / "task_4_3.py", folder)  # it imports task_4_2, which is missing
    assert main(["grade", str(folder / "task_4_3.py"), "--json"]) == 0
    assert [r["passed"] for r in json.loads(capsys.readouterr().out)] == [True, True]
    assert main(["grade", str(folder), "--task", "9.9"]) == 1
    assert "unknown task 9.9" in capsys.readouterr().err


def test_a_class_folder_gets_a_gradebook_beside_it_and_never_replaces_a_users_file(
    tmp_path, capsys
):
    klass = tmp_path / "class"
    shutil.copytree(SOLUTIONS, klass / "ann")
    (klass / "bob").mkdir()
    shutil.copy(SEED / "task_2_2.py", klass / "bob")
    assert main(["grade", str(klass), "--task", "2.2"]) == 0
    assert "gradebook" in capsys.readouterr().out
    rows = list(csv.DictReader((tmp_path / "class-gradebook.csv").open()))
    assert [(r["student"], r["2.2"]) for r in rows] == [("ann", "1"), ("bob", "0")]
    book = json.loads((tmp_path / "class-gradebook.json").read_text())
    assert book["students"]["bob"][0]["mistake"] == "softmax-dim0-default"
    assert main(["grade", str(klass), "--task", "2.2"]) == 0  # its own gradebook is replaced
    mine = tmp_path / "mine.csv"
    mine.write_text("my notes\n")
    assert main(["grade", str(klass), "--task", "2.2", "--out", str(mine)]) == 1
    assert mine.read_text() == "my notes\n"
    assert "not a gradebook handgrad wrote" in capsys.readouterr().err


def test_flags_that_do_not_apply_to_the_run_are_refused_before_grading(tmp_path, capsys):
    one = tmp_path / "ann"
    shutil.copytree(SOLUTIONS, one)
    for argv, flag in [
        (["grade", str(one), "--out", str(tmp_path / "book.csv")], "grade --out"),
        (["grade", "--train", str(one), "--task", "2.2"], "--task"),
        (["grade", "--train", str(one), "--json"], "--json"),
    ]:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert flag in err and "Traceback" not in err
    assert not (tmp_path / "book.csv").exists()
    klass = tmp_path / "class"
    shutil.copytree(SOLUTIONS, klass / "ann")
    (tmp_path / "notes.json").write_text("{}")  # the gradebook's JSON half is the user's
    assert main(["grade", str(klass), "--out", str(tmp_path / "notes.csv")]) == 1
    assert "not a gradebook handgrad wrote" in capsys.readouterr().err
    assert not (tmp_path / "notes.csv").exists()  # refused before grading wrote anything


def test_compare_reads_gradients_on_values():
    assert compare.wrong(torch.ones(4), torch.ones(1, 4)) == []
    place = compare.wrong(torch.ones(4, 3), torch.ones(3, 4) * 2)[0]
    assert place["index"] == [0, 0] and place["expected"] == 2.0 and place["got"] == 1.0


def test_a_file_that_fails_to_import_costs_its_own_tasks_only(tmp_path, capsys):
    folder = tmp_path / "broken"
    folder.mkdir()
    shutil.copy(SOLUTIONS / "task_2_1.py", folder)
    (folder / "task_2_2.py").write_text("import torch\n\nclass Softmax(:\n")
    assert main(["grade", str(folder), "--task", "2.1", "--task", "2.2", "--json"]) == 1
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["2.1"]["passed"]
    assert rows["2.2"]["status"] == "error" and "SyntaxError" in rows["2.2"]["message"]


DANGEROUS = {  # task: (what its file does, the reason the report must give)
    "1.1": ("while True:\n    pass\n", "timeout"),
    # bytes(n) takes address space without touching its pages, so the memory limit is what
    # stops it however slow the machine's page faults are (a bytearray's zero-fill of 1 GiB
    # cost over 2 s of CPU on CI and hit the CPU limit first)
    "1.2": ("blocks = []\nwhile True:\n    blocks.append(bytes(1 << 26))\n", "memory"),
    "1.3": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", "output"),
    "2.1": ("import a_module_that_does_not_exist\n", "error"),
    "2.2": ("import sys\nsys.exit(3)\n", "exit"),
    "2.3": ("open('../outside.txt', 'w').write('escaped')\n", "write"),
}


def test_dangerous_submissions_cost_their_own_task_with_the_reason(tmp_path, monkeypatch, capsys):
    """Each task file does something a grader must survive, at import; 3.1 is correct and
    still passes; nothing is written outside the workspace, and nothing is left running."""
    monkeypatch.setattr(
        grader, "LIMITS", grader.Limits(cpu_seconds=2, wall_seconds=3, memory_bytes=1 << 30)
    )
    work = tmp_path / "lab"
    work.mkdir()
    for task, (body, _) in DANGEROUS.items():
        (work / f"task_{task.replace('.', '_')}.py").write_text(body)
    shutil.copy(SOLUTIONS / "task_3_1.py", work)
    assert (
        main(
            [
                "grade",
                str(work),
                "--json",
                "--task",
                "3.1",
                *sum((["--task", t] for t in DANGEROUS), []),
            ]
        )
        == 1
    )
    rows = {r["task"]: r for r in json.loads(capsys.readouterr().out)}
    for task, (_, reason) in DANGEROUS.items():
        assert not rows[task]["passed"] and f"({reason})" in rows[task]["message"], rows[task]
    assert rows["3.1"]["passed"]
    assert not (tmp_path / "outside.txt").exists() and not list(tmp_path.rglob("outside.txt"))
