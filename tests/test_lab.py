"""Every figure in ../shared/seed/EXPECTED.md, and task 4.4 tracking torch autograd."""

from __future__ import annotations

import pytest
import torch

from handgrad.tools import lab

T = torch.tensor


def _approx(value, expected, atol=1e-4):
    torch.testing.assert_close(
        torch.as_tensor(value).detach().double().reshape(-1),
        torch.as_tensor(expected).double().reshape(-1),
        atol=atol,
        rtol=0,
    )


def _rows(result):
    return {label: mine for label, mine, _ in result.rows}


EXPECTED = {
    "1.1": [T([4.84])],
    "1.2": [T([4.8400, 0.1700, 10.3900])],
    "1.3": [T([[3.7900, 0.9200, 9.0850], [6.1400, -2.1000, 6.9000], [2.0400, 0.7610, 6.7260]])],
    "1.4": [
        T([[-5.0178, 0.5240, -3.9319], [4.0738, -6.7887, -3.5657], [-11.6052, -0.3882, -3.1959]])
    ],
    "2.1": [T([[1.5410, 0, 0], [0.5684, 0, 0], [0.4033, 0.8380, 0], [0, 0, 0.1820]])],
    "2.2": [
        T(
            [
                [0.8446, 0.1349, 0.0205],
                [0.7511, 0.1438, 0.1051],
                [0.3484, 0.5382, 0.1134],
                [0.2762, 0.2277, 0.4961],
            ]
        )
    ],
    "2.3": [
        T(
            [
                [1.5410, -0.3583, -1.2495],
                [0.5684, -0.9327, -1.0611],
                [0.4033, 0.8380, -0.7227],
                [-0.4677, -0.6331, 0.1820],
            ]
        )
    ],
    "3.3": [T(314.5113)],
}


@pytest.mark.parametrize("task", list(EXPECTED))
def test_single_value_tasks(task):
    result = lab.TASKS[task]()
    assert result.agree, str(result)
    for (_, mine, _), expected in zip(result.rows, EXPECTED[task]):
        _approx(mine, expected)


def test_1_5_two_layers():
    result = lab.task_1_5()
    assert result.agree
    out = result.rows[0][1]
    assert out.shape == (3, 7)
    _approx(out[0], [5.1553, 1.1916, -4.7817, 3.6611, -9.6546, 0.1692, 5.8099])


def test_3_1_mse():
    result = lab.task_3_1()
    assert result.agree
    assert result.rows[0][1].item() == pytest.approx(101.30004119873047, abs=1e-4)


def test_3_2_cce_and_its_note():
    result = lab.task_3_2()
    assert result.agree
    _approx(result.rows[0][1], [9.0918, 1.1272e-04, 15.679], atol=1e-3)
    _approx(result.rows[0][1][1], 1.1272e-04, atol=1e-6)
    assert "dim=1" in result.note


def test_4_1_sgd_one_example_per_step():
    result = lab.task_4_1()
    assert result.agree, str(result)
    rows = _rows(result)
    _approx(rows["first step: loss"], 1823.5259)
    _approx(rows["first step: weights"], [5.8937, 3.4480, 8.5208, -6.0718])
    _approx(rows["first step: bias"], -9.6251)
    _approx(rows["end: weights  vs  nn.Linear + optim.SGD"], [20.4924, 34.1698, 67.6242, 87.9235])


@pytest.mark.parametrize("task", ["4.2", "4.3"])
def test_4_2_and_4_3_full_batch(task):
    result = lab.TASKS[task]()
    assert result.agree, str(result)
    rows = _rows(result)
    _approx(rows["epoch 10: weights"], [22.8361, 35.1808, 56.8774, 77.7312])
    _approx(rows["epoch 10: bias"], -0.3279)
    _approx(rows["epoch 10: loss"], 273.2061)
    _approx(rows["epoch 20: loss"], 8.5662)
    _approx(rows["epoch 30: loss"], 0.48739, atol=1e-5)
    _approx(rows["epoch 40: loss"], 0.032591, atol=1e-6)
    _approx(
        rows["end: weights  vs  make_regression's true coef"], [20.4924, 34.1698, 67.6242, 87.9235]
    )
    if task == "4.3":
        assert "one output neuron" in result.note


def test_4_4_tracks_autograd_and_fits(tmp_path):
    figure = tmp_path / "fit.png"
    result = lab.task_4_4(figure)
    assert result.agree
    losses, ref = result.extra["losses"], result.extra["ref_losses"]
    assert result.extra["epochs"] == list(range(0, 2001, 200))
    assert max(abs(a - b) for a, b in zip(losses, ref)) < 1e-4
    assert losses[-1] < 0.01
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
