"""gradcheck passes on correct backward passes and names the gradient a planted bug breaks."""

from __future__ import annotations

import os

import pytest
import torch

import handgrad as hg
from handgrad.check import gradcheck


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: hg.Linear(4, 3), (5, 4)),
        (lambda: hg.Neuron(4), (5, 4)),
        (lambda: hg.Sequential(hg.Linear(3, 6), hg.Tanh(), hg.Linear(6, 2)), (4, 3)),
        (lambda: hg.Softmax(dim=1), (3, 4)),
        (lambda: hg.LogSoftmax(dim=0), (3, 4)),
        (lambda: hg.GELU(), (2, 3, 4)),
        (lambda: hg.Dropout(0.4), (6, 5)),
        (lambda: hg.BatchNorm1d(3), (6, 3)),
    ],
)
def test_correct_modules_pass(make, shape):
    report = gradcheck(make(), torch.randn(shape))
    assert report.ok, str(report)
    assert {c.reference for c in report.comparisons} == {"autograd", "finite differences"}


@pytest.mark.parametrize(
    "loss,pred,target",
    [
        (hg.MSELoss(), torch.randn(4, 2), torch.randn(4, 2)),
        (hg.CrossEntropyLoss(), torch.randn(4, 3), torch.tensor([0, 2, 1, 1])),
        (hg.BCEWithLogitsLoss(reduction="sum"), torch.randn(5), torch.rand(5)),
        (hg.HuberLoss(reduction="none"), torch.randn(6) * 3, torch.zeros(6) + 0.5),
    ],
)
def test_correct_losses_pass(loss, pred, target):
    report = gradcheck(loss, pred, target)
    assert report.ok, str(report)


class WrongInputGradient(hg.Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        return dx * 2  # planted bug


class WrongBiasGradient(hg.Linear):
    def backward(self, dy):
        dx = super().backward(dy)
        self.bias.grad = self.bias.grad + 1.0  # planted bug
        return dx


@pytest.mark.parametrize("cls,bad", [(WrongInputGradient, "input 0"), (WrongBiasGradient, "bias")])
def test_planted_bug_is_caught_and_named(cls, bad):
    report = gradcheck(cls(3, 2), torch.randn(4, 3))
    assert not report.ok
    assert {c.name for c in report.failures} == {bad}
    assert {c.reference for c in report.failures} == {"autograd", "finite differences"}
    worst = report.failures[0]
    assert worst.worst_index is not None and len(worst.worst_index) in (1, 2)
    assert f"FAIL  {bad}" in str(report)


class StudentLinear:
    """A student's layer in the nnfs style: backward stores dweights, dbiases, dinputs."""

    def __init__(self, n_in, n_out, bug=False):
        self.weights = torch.randn(n_in, n_out)
        self.biases = torch.zeros(1, n_out)
        self.bug = bug

    def forward(self, inputs):
        self.inputs = inputs
        return inputs @ self.weights + self.biases

    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = dvalues.sum(0, keepdims=True) * (0.5 if self.bug else 1.0)
        self.dinputs = dvalues @ self.weights.T


def test_foreign_object_is_checked():
    assert gradcheck(StudentLinear(3, 2), torch.randn(4, 3)).ok
    report = gradcheck(StudentLinear(3, 2, bug=True), torch.randn(4, 3))
    assert {c.name for c in report.failures} == {"biases"}


def test_missing_gradient_is_reported():
    class NoGrads:
        def __init__(self):
            self.w = torch.randn(3)

        def forward(self, x):
            return x * self.w

        def backward(self, dy):
            return dy * self.w

    report = gradcheck(NoGrads(), torch.randn(3))
    assert [c.name for c in report.failures] == ["w", "w"]
    assert "no gradient found" in str(report)


def test_object_passed_in_is_not_changed():
    layer = hg.Linear(3, 2)
    w = layer.weight.clone()
    gradcheck(layer, torch.randn(4, 3))
    assert layer.weight.dtype == torch.float32 and torch.equal(layer.weight, w)
    assert layer.weight.grad is None


def test_bad_arguments():
    with pytest.raises(TypeError, match="no forward/backward"):
        gradcheck(object(), torch.randn(2))
    with pytest.raises(TypeError, match="floating-point"):
        gradcheck(hg.ReLU(), torch.tensor([1, 2]))


# ---- a check that cannot run never passes -------------------------------------------------------
class LeavesTheGraph(hg.Linear):
    def forward(self, x):
        y = super().forward(x)
        return torch.from_numpy(y.detach().numpy().copy())  # autograd sees a constant


def test_autograd_that_cannot_run_is_an_error_not_a_pass():
    class Raises(hg.Linear):
        def forward(self, x):
            y = super().forward(x)
            if y.requires_grad:
                raise RuntimeError("no autograd here")
            return y

    report = gradcheck(Raises(3, 2), torch.randn(4, 3), finite_differences=False)
    assert not report.ok
    assert "ERROR" in str(report).splitlines()[0]
    assert "could not run" in str(report)
    assert gradcheck(Raises(3, 2), torch.randn(4, 3), autograd=False).ok  # FD alone: a pass


def test_a_reference_that_sees_a_constant_fails_the_check():
    report = gradcheck(LeavesTheGraph(3, 2), torch.randn(4, 3), finite_differences=False)
    assert not report.ok  # autograd's gradient is zero, the hand one is not


def test_no_reference_at_all_is_refused():
    with pytest.raises(ValueError, match="compare nothing"):
        gradcheck(hg.Linear(3, 2), torch.randn(4, 3), autograd=False, finite_differences=False)


def test_the_report_counts_what_it_compared():
    report = gradcheck(hg.Linear(3, 2), torch.randn(4, 3))
    assert report.compared == 2 * (4 * 3 + 2 * 3 + 2)  # dx, dW, db against both references
    assert f"{report.compared} elements compared" in str(report).splitlines()[0]


def test_an_empty_input_compares_nothing_and_does_not_pass():
    report = gradcheck(hg.Tanh(), torch.randn(0, 3))
    assert report.compared == 0 and not report.ok


class ListLayer:
    """Parameters held in a list and a dict: they are found and checked."""

    def __init__(self, bug=False):
        self.params = [torch.randn(3, 2), torch.randn(2)]
        self.extra = {"scale": torch.randn(2)}
        self.bug = bug

    def forward(self, x):
        self.x = x
        W, b = self.params
        return (x @ W + b) * self.extra["scale"]

    def backward(self, dy):
        W, b = self.params
        s = self.extra["scale"]
        u = self.x @ W + b
        self.extra["scale"].grad = (dy * u).sum(0)
        dz = dy * s
        W.grad = self.x.T @ dz * (3 if self.bug else 1)
        b.grad = dz.sum(0)
        return dz @ W.T


@pytest.mark.parametrize("bug", [False, True])
def test_parameters_in_lists_and_dicts_are_checked(bug):
    report = gradcheck(ListLayer(bug), torch.randn(4, 3))
    assert {c.name for c in report.comparisons} >= {"params.0", "params.1", "extra.scale"}
    assert report.ok is not bug
    if bug:
        assert {c.name for c in report.failures} == {"params.0"}


def test_nested_outputs_are_checked():
    """LSTM returns (y, (h, c)): each of the three gets its own upstream gradient."""
    report = gradcheck(hg.LSTM(3, 4, 2, bidirectional=True), torch.randn(5, 2, 3))
    assert report.ok, str(report)
    assert report.compared > 2 * (5 * 2 * 3)  # the input and every weight, against both


def test_a_module_of_integer_inputs_checks_its_parameters():
    report = gradcheck(hg.Embedding(6, 3), torch.tensor([[0, 2, 2], [5, 1, 0]]))
    assert report.ok and {c.name for c in report.comparisons} == {"weight"}
    # padding_idx: the row gets no gradient by torch's convention, not by the math
    padded = gradcheck(hg.Embedding(6, 3, padding_idx=0), torch.tensor([[0, 2], [5, 0]]))
    assert not padded.ok and {c.worst_index[0] for c in padded.failures} == {0}


# ---- `handgrad check` runs the user's file in the sandbox (handgrad/tools/check_file.py) --------
def test_the_check_command_runs_the_users_file_in_another_process(tmp_path, capsys):
    from handgrad.tools.cli import main

    (tmp_path / "layer.py").write_text(
        "import os\n"
        "print('hello from the layer file')\n"
        "open('pid.txt', 'w').write(str(os.getpid()))  # cwd: the file's folder\n"
        "class Double:\n"
        "    def forward(self, x):\n"
        "        return 2 * x\n"
        "    def backward(self, dy):\n"
        "        return 2 * dy\n"
    )
    assert main(["check", f"{tmp_path / 'layer.py'}:Double", "--input-shape", "3,2"]) == 0
    out = capsys.readouterr().out
    assert out.index("hello from the layer file") < out.index("gradcheck Double: PASS")
    assert int((tmp_path / "pid.txt").read_text()) != os.getpid()


def test_a_file_that_ends_its_process_costs_the_check_alone(tmp_path, capsys):
    from handgrad.tools.cli import main

    (tmp_path / "quits.py").write_text("import os\nos._exit(0)\n")
    assert main(["check", f"{tmp_path / 'quits.py'}:L"]) == 1  # before, pytest itself ended
    err = capsys.readouterr().err
    assert err == (
        "handgrad check: error: quits.py:L: the code ended its process with status 0 "
        "(os._exit) (exit)\n"
    )
