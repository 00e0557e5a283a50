"""The course's chapters 6 (convolution by im2col), 7 (a GRU and BPTT) and 8 (attention):
the references against torch autograd in float64, the solutions graded full over seeds, each
catalogued mistake planted and named by its id, and the workspace's files (issue 20, step 2).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from handgrad.course import (
    catalogue,
    chapter_attention,
    chapter_conv,
    chapter_gru,
    grader,
    workspace,
)
from handgrad.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from test_grader import SEED, SOLUTIONS, InProcess, by_task  # noqa: E402

TASKS = ["6.1", "6.2", "7.1", "7.2", "8.1"]
OURS = [m for m in catalogue.MISTAKES if m.task in TASKS]
_GRADER = grader.Grader(InProcess())


@pytest.fixture(autouse=True)
def _no_task_modules_left():
    """The in-process runner leaves the task files it imported (and the reference's stand-ins
    for missing ones) in sys.modules: later tests expect none there."""
    yield
    for name in [m for m in sys.modules if m.startswith("task_")]:
        del sys.modules[name]


def _f64(*shape):
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.task("6.2")
def test_the_conv_references_match_torch_in_float64():
    torch.manual_seed(0)
    x, W, b = _f64(2, 3, 6, 5), _f64(4, 3, 3, 3), _f64(4)
    for s, p in [(1, 1), (2, 0), (2, 2)]:
        cols = chapter_conv.Im2col61(3, s, p).forward(x)
        unfold = F.unfold(x, 3, padding=p, stride=s).transpose(1, 2).reshape(-1, 27)
        assert torch.allclose(cols, unfold)
        xg, Wg, bg = (t.clone().requires_grad_(True) for t in (x, W, b))
        y = F.conv2d(xg, Wg, bg, stride=s, padding=p)
        dy = torch.randn_like(y)
        y.backward(dy)
        layer = chapter_conv.Conv2d62(W, b, stride=s, padding=p)
        assert torch.allclose(layer.forward(x), y.detach())
        for mine, theirs in zip(layer.backward(dy), (xg.grad, Wg.grad, bg.grad)):
            assert torch.allclose(mine, theirs)


@pytest.mark.task("7.2")
def test_the_gru_references_match_torch_in_float64():
    torch.manual_seed(0)
    gru = torch.nn.GRU(4, 3).double()
    weights = [gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0]
    x, h0 = _f64(5, 2, 4).requires_grad_(True), _f64(1, 2, 3).requires_grad_(True)
    y, h_n = gru(x, h0)
    dy, dh_n = torch.randn_like(y), torch.randn_like(h_n)
    grads = torch.autograd.grad((y, h_n), [x, h0, *weights], (dy, dh_n))
    ref = chapter_gru.GRU72(*[w.detach() for w in weights])
    y2, h2 = ref.forward(x.detach(), h0.detach()[0])
    assert torch.allclose(y2, y.detach()) and torch.allclose(h2, h_n.detach()[0])
    for mine, theirs in zip(ref.backward(dy, dh_n[0]), grads):
        assert torch.allclose(mine, theirs.reshape(mine.shape))
    cell = torch.nn.GRUCell(4, 3).double()
    cw = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
    xc, hc = _f64(2, 4).requires_grad_(True), _f64(2, 3).requires_grad_(True)
    out = cell(xc, hc)
    dh = torch.randn_like(out)
    cgrads = torch.autograd.grad(out, [xc, hc, *cw], dh)
    mine = chapter_gru.GRUCell71(*[w.detach() for w in cw])
    assert torch.allclose(mine.forward(xc.detach(), hc.detach()), out.detach())
    for a, b in zip(mine.backward(dh), cgrads):
        assert torch.allclose(a, b)


@pytest.mark.task("8.1")
def test_the_attention_reference_matches_torch_in_float64():
    torch.manual_seed(0)
    for causal, S in [(False, 6), (True, 4)]:
        q, k, v = _f64(2, 4, 5), _f64(2, S, 5), _f64(2, S, 3)
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
        y = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
        dy = torch.randn_like(y)
        y.backward(dy)
        layer = chapter_attention.Attention81(causal=causal)
        assert torch.allclose(layer.forward(q, k, v), y.detach())
        for mine, theirs in zip(layer.backward(dy), (qg.grad, kg.grad, vg.grad)):
            assert torch.allclose(mine, theirs)


def test_each_chapter_catalogues_at_least_3_mistakes_in_both_languages():
    for chapter in ("6", "7", "8"):
        assert len([m for m in OURS if m.task.startswith(chapter + ".")]) >= 3, chapter
    for m in OURS:
        assert m.ru and m.en and m.ru != m.en and m.id


def test_the_solutions_pass_over_20_seeds():
    for seed in range(20):
        reports = grader.Grader(InProcess(), seed=seed).grade_folder(SOLUTIONS, TASKS)
        assert [r.task for r in reports] == TASKS
        wrong = [(r.task, r.message) for r in reports if not r.passed]
        assert not wrong, (seed, wrong)


def _planted(tmp_path: Path, mistake: catalogue.Mistake) -> Path:
    folder = tmp_path / mistake.id
    folder.mkdir()
    for name in ("task_6_1", "task_6_2", "task_7_1", "task_7_2", "task_8_1"):
        shutil.copy(SOLUTIONS / f"{name}.py", folder)
    path = grader.task_file(folder, mistake.task)
    path.write_text(
        path.read_text()
        + "\nfrom handgrad.course.catalogue import plant as _plant\n\n"
        + f"_plant(globals(), {mistake.task!r}, {mistake.id!r})\n"
    )
    return folder


@pytest.mark.parametrize("mistake", OURS, ids=lambda m: f"{m.task}:{m.id}")
def test_each_planted_mistake_is_named_by_its_id(tmp_path, mistake, request):
    request.node.add_marker(pytest.mark.task(mistake.task))
    report = by_task(_GRADER.grade_folder(_planted(tmp_path, mistake), [mistake.task]))
    report = report[mistake.task]
    assert not report.passed and report.mistake == mistake.id, report
    assert report.first_wrong is not None


@pytest.mark.task("6.2")
def test_a_wrong_im2col_is_reported_against_6_1_and_the_conv_graded_with_the_reference(
    tmp_path,
):
    folder = _planted(tmp_path, catalogue.find("6.1", "im2col-column-order"))
    reports = by_task(_GRADER.grade_folder(folder, ["6.2"] + ["6.1"]))
    assert reports["6.1"].mistake == "im2col-column-order"
    assert reports["6.2"].passed and reports["6.2"].notes


@pytest.mark.task("8.1")
def test_large_scores_and_the_causal_mask_are_what_name_their_mistakes(tmp_path):
    folder = _planted(tmp_path, catalogue.find("8.1", "attention-no-max-shift"))
    report = by_task(_GRADER.grade_folder(folder, ["8.1"]))["8.1"]
    assert report.first_wrong["case"].startswith("large_scores")
    folder = _planted(tmp_path, catalogue.find("8.1", "attention-mask-after-softmax"))
    report = by_task(_GRADER.grade_folder(folder, ["8.1"]))["8.1"]
    assert report.first_wrong["case"].startswith("causal")


def test_a_workspace_writes_the_chapters_asked_for_and_grades_them_as_not_attempted(tmp_path):
    folder = tmp_path / "lab"
    written = workspace.new_workspace(folder, "en", chapters=[8, 6])
    names = [p.name for p in written]
    assert names[-5:] == ["task_6_1.py", "task_6_2.py", "task_8_1.py", "lab.ipynb", "README.md"]
    assert "task_7_1.py" not in names
    text = (folder / "task_6_2.py").read_text()
    assert "col2im" in text and "from task_6_1 import Im2col" in text
    assert "NotImplementedError" in text and 'if __name__ == "__main__":' in text
    ru = workspace.task_source("task_7_1", "ru")
    assert "гейт" in ru and "class GRUCell" in ru
    assert '"task_8_1"' in (folder / "lab.ipynb").read_text()
    reports = by_task(_GRADER.grade_folder(folder, ["6.1", "6.2", "8.1"]))
    assert all(r.status == "not attempted" for r in reports.values()), reports
    with pytest.raises(InputError, match="--chapters"):
        workspace.new_workspace(tmp_path / "other", "en", chapters=[42])


def test_the_seed_workspace_is_graded_without_the_chapters_it_does_not_hold():
    tasks = [r.task for r in _GRADER.grade_folder(SEED, ["2.1"])]
    assert tasks == ["2.1"]
    assert grader._chapters_present(SEED) == {0}  # the seed lab: chapters 1-4 only
    assert {6, 7, 8} <= grader._chapters_present(SOLUTIONS) and set(TASKS) <= set(grader.TASKS)


@pytest.mark.task("6.1")
def test_the_solutions_run_the_skeletons_demo_lines(tmp_path):
    """Each chapter file's demo lines (which compare with torch) run on the solutions, in one
    child process, and print no False and no nan."""
    folder = tmp_path / "demo"
    shutil.copytree(SOLUTIONS, folder)
    script = ["import torch"]
    for name in ("task_6_1", "task_6_2", "task_7_1", "task_7_2", "task_8_1"):
        demo = workspace.sections(name)["code"].partition('if __name__ == "__main__":\n')[2]
        body = "\n".join(line[4:] for line in demo.splitlines())
        script.append(f"exec({body!r}, {{**vars(__import__({name!r})), 'torch': torch}})")
    (folder / "demos.py").write_text("\n".join(script) + "\n")
    done = subprocess.run(
        [sys.executable, "demos.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "False" not in done.stdout and "nan" not in done.stdout, done.stdout
    assert done.stdout.count("True") == 3, done.stdout
