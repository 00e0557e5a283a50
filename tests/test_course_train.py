"""`handgrad grade --train` (handgrad.course.train): the student's own 4.4/4.5 classes, wrapped by
handgrad.course.adapter, train the parabola and digits through hg.fit in the sandbox, beside
handgrad's own network from the same initial weights.

The student files are written here from strings that follow COURSE_CONTRACT.md; each planted
mistake is one edit of the correct text.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import tempfile
from pathlib import Path

import pytest

from handgrad.course import train
from handgrad.errors import HandgradError

TASK_4_2 = """
import torch


class MSELoss:
    def forward(self, y_pred, y_true):
        return torch.mean((y_pred - y_true) ** 2)

    def backward(self, y_pred, y_true):
        return 2 * (y_pred - y_true)
"""

TASK_4_4 = """
import os

import torch

from task_4_2 import MSELoss

with open("pids.txt", "a") as f:  # where this file runs: the tests look
    f.write(f"{os.getpid()}\\n")


class Activation_ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = inputs.clip(min=0)
        return self.output

    def backward(self, dvalues):
        self.dinputs = dvalues.clone()
        self.dinputs[self.inputs <= 0] = 0


class Linear:
    def __init__(self, in_features, out_features):
        self.weights = torch.randn(out_features, in_features)
        self.biases = torch.randn(out_features)

    def forward(self, inputs):
        return inputs @ self.weights.T + self.biases

    def backward(self, dvalue, inputs):
        n = inputs.shape[0]
        return dvalue.T @ inputs / n, dvalue.sum(0) / n, dvalue @ self.weights
"""

TASK_4_5 = """
import torch


class SoftmaxCrossEntropyLoss:
    def _probs(self, z):
        e = torch.exp(z - z.max(dim=1, keepdim=True).values)
        return e / e.sum(dim=1, keepdim=True)

    def forward(self, z, y_true):
        p = self._probs(z)
        return -torch.log(p[torch.arange(len(y_true)), y_true]).mean()

    def backward(self, z, y_true):
        d = self._probs(z)
        d[torch.arange(len(y_true)), y_true] -= 1
        return d / len(y_true)
"""

MISSING_4_5 = """
class SoftmaxCrossEntropyLoss:
    def forward(self, z, y_true):
        raise NotImplementedError

    def backward(self, z, y_true):
        raise NotImplementedError
"""

MEAN = "dvalue.T @ inputs / n, dvalue.sum(0) / n, dvalue @ self.weights"
SUMMED_LINEAR = ("task_4_4.py", MEAN, MEAN.replace(" / n", ""))  # sums over the batch
EPOCHS = {"digits": 2}  # the parabola keeps its 2001 epochs; digits' real run is longer
FEW = {"parabola": 300, "digits": 1}


def workspace(folder, edits=(), files=None):
    """`folder` holding the correct files, with (file, old, new) edits applied (None: no file)."""
    folder.mkdir(exist_ok=True)
    texts = {"task_4_2.py": TASK_4_2, "task_4_4.py": TASK_4_4, "task_4_5.py": TASK_4_5}
    texts.update(files or {})
    for name, old, new in edits:
        assert old in texts[name], f"the planted edit {old!r} does not apply to {name}"
        texts[name] = texts[name].replace(old, new)
    for name, text in texts.items():
        if text is not None:
            (folder / name).write_text(text)
    return folder


def same_run(mine, ours, atol):
    """The student's network and handgrad's trained alike: every epoch's loss within atol, and
    the same test accuracy (digits)."""
    assert mine["diverged"] is None and ours["diverged"] is None
    assert len(mine["losses"]) == len(ours["losses"])
    assert max(abs(a - b) for a, b in zip(mine["losses"], ours["losses"])) < atol
    if ours["accuracy"] is not None:
        assert mine["accuracy"] == pytest.approx(ours["accuracy"], abs=1e-9)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("workspaces")


@pytest.fixture(scope="module")
def box(root):
    """One sandbox for the workspaces under `root` (its worker starts once for the module)."""
    with train.Sandbox(root, train.LIMITS) as sandbox:
        yield sandbox


@pytest.fixture
def ws(root):
    """A new empty workspace folder under `root`."""
    return Path(tempfile.mkdtemp(dir=root))


@pytest.fixture(scope="module")
def correct(root, box):
    return train.train_workspace(workspace(root / "correct"), epochs=EPOCHS, box=box)


def test_correct_classes_train_as_handgrads_own(correct):
    assert {r: v[0] for r, v in correct.verdicts.items()} == dict.fromkeys(train.ROLES, "ok")
    mine, ours = correct.runs["parabola"]
    assert len(ours["losses"]) == 2001 and ours["final"] < 0.01  # the seed's goal
    same_run(mine, ours, atol=1e-5)
    mine, ours = correct.runs["digits"]
    assert ours["accuracy"] > 0.5  # two epochs already learn something
    same_run(mine, ours, atol=1e-4)


def test_a_file_that_hangs_costs_only_its_own_classes(tmp_path):
    ws = workspace(tmp_path, files={"task_4_5.py": "while True:\n    pass\n"})
    limits = train.Limits(cpu_seconds=2, wall_seconds=5)
    report = train.train_workspace(ws, epochs={"parabola": 20, "digits": 1}, limits=limits)
    status, reason, _ = report.verdicts["CE"]
    assert status == "wrong" and reason.startswith("timeout")
    assert {report.verdicts[r][0] for r in ("Linear", "ReLU", "MSE")} == {"ok"}
    for name in ("parabola", "digits"):  # digits with handgrad's cross-entropy
        same_run(*report.runs[name], atol=1e-5)


@pytest.mark.parametrize(
    "role, edit, words",
    [
        ("ReLU", ("task_4_4.py", "self.dinputs[self.inputs <= 0] = 0", "pass"), "dinputs"),
        ("Linear", ("task_4_4.py", "dvalue.T @ inputs / n", "inputs.T @ dvalue / n"), "dW"),
        ("Linear", ("task_4_4.py", "dvalue.sum(0) / n", "dvalue / n"), "db"),
        ("MSE", ("task_4_2.py", "2 * (y_pred", "(y_pred"), "backward"),
        ("CE", ("task_4_5.py", "z - z.max(dim=1, keepdim=True).values", "z"), "forward"),
    ],
)
def test_a_wrong_class_is_marked_and_replaced(ws, box, role, edit, words):
    report = train.train_workspace(workspace(ws, [edit]), epochs=FEW, box=box)
    status, reason, _ = report.verdicts[role]
    assert status == "wrong" and words in reason
    for name in ("parabola", "digits"):
        same_run(*report.runs[name], atol=1e-4)  # handgrad's class in its place


def test_a_class_not_written_is_replaced_with_a_note(ws, box):
    workspace(ws, files={"task_4_5.py": MISSING_4_5})
    report = train.train_workspace(ws, epochs={"digits": 1, "parabola": 5}, box=box)
    assert report.verdicts["CE"][:2] == ("missing", "raises NotImplementedError (not written yet)")
    same_run(*report.runs["digits"], atol=1e-4)
    line = train._verdict_lines(report.verdicts, "en")[3]
    assert line.split()[:4] == ["SoftmaxCrossEntropyLoss", "handgrad's", "(not", "written:"]


def test_the_missing_one_over_n_shows_as_a_worse_result(ws, box):
    workspace(ws, [SUMMED_LINEAR])
    report = train.train_workspace(ws, epochs={"digits": 1, "parabola": 50}, box=box)
    assert report.verdicts["Linear"][0] == "scaled"  # right up to N: trained as written
    mine, ours = report.runs["parabola"]
    assert mine["diverged"] or mine["final"] > 10 * ours["final"]  # 100x the step
    assert "missing 1/N" in train._note("parabola", report.verdicts, train.TEXT["en"])
    assert "пропущен 1/N" in train._note("parabola", report.verdicts, train.TEXT["ru"])
    same_run(*report.runs["digits"], atol=1e-4)  # digits normalises each convention
    assert "normalised" in train._note("digits", report.verdicts, train.TEXT["en"])


def test_the_one_over_n_moved_into_the_loss_trains_the_same(ws, box):
    edits = [
        SUMMED_LINEAR,
        ("task_4_2.py", "2 * (y_pred - y_true)", "2 * (y_pred - y_true) / len(y_pred)"),
    ]
    report = train.train_workspace(workspace(ws, edits), epochs={"digits": 1}, box=box)
    assert report.verdicts["MSE"][0] == report.verdicts["Linear"][0] == "scaled"
    same_run(*report.runs["parabola"], atol=1e-5)
    assert "same update" in train._note("parabola", report.verdicts, train.TEXT["en"])


def test_run_train_prints_the_table_and_runs_student_code_only_in_the_sandbox(
    tmp_path, monkeypatch
):
    calls = []

    class Counting(train.Sandbox):
        def run(self, fn, *args, **kwargs):
            calls.append(fn.__name__)
            return super().run(fn, *args, **kwargs)

    monkeypatch.setattr(train, "Sandbox", Counting)
    fast = {k: dataclasses.replace(n, epochs=3) for k, n in train.NETWORKS.items()}
    monkeypatch.setattr(train, "NETWORKS", fast)
    out = io.StringIO()
    assert train.run_train(workspace(tmp_path), lang="ru", out=out) == 0
    assert calls == ["probe"] * 4 + ["train_student"] * 2
    pids = {int(p) for p in (tmp_path / "pids.txt").read_text().split()}
    assert pids and os.getpid() not in pids
    assert not {"task_4_2", "task_4_4", "task_4_5"} & set(sys.modules)
    text = out.getvalue()
    assert "Linear(64, 32) -> ReLU -> Linear(32, 10)" in text
    finals = [line.split() for line in text.splitlines() if "итоговая ошибка" in line]
    assert len(finals) == 2 and all(row[-1] == row[-2] for row in finals)  # yours == handgrad's


def test_nothing_to_train(tmp_path, ws, box):
    out = io.StringIO()
    assert train.run_train(tmp_path, out=out) == 1 and "no class to train" in out.getvalue()
    files = {"task_4_2.py": None, "task_4_4.py": "x = 1\n", "task_4_5.py": MISSING_4_5}
    report = train.train_workspace(workspace(ws, files=files), box=box)
    assert {v[0] for v in report.verdicts.values()} == {"missing"}
    assert report.runs == {"parabola": "skip", "digits": "skip"}


@pytest.mark.parametrize("name", ["nowhere", "task_1_1.py"])
def test_a_bad_path_is_one_line(tmp_path, name):
    (tmp_path / "task_1_1.py").write_text("")
    with pytest.raises(HandgradError, match="grade --train"):
        train.run_train(tmp_path / name, out=io.StringIO())
