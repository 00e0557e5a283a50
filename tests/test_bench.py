"""The benchmark harness runs each implementation and reports ratios (no timing asserts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handgrad.tools import bench
from handgrad.tools.cli import main


def test_numpy_baseline_learns_the_same_function_as_handgrad():
    case = bench.Case("t", "mlp", (3, 5, 2), 8, "mse")
    X, y = bench.mlp_data(case)
    mlp = bench.NumpyMLP(case.sizes, "mse", lr=0.1)
    losses = [mlp.step(X.numpy(), y.numpy()) for _ in range(50)]
    assert losses[-1] < losses[0]
    ce = bench.NumpyMLP((3, 5, 4), "ce", lr=0.5)
    Xc = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    yc = np.arange(16) % 4
    first = ce.step(Xc, yc)
    assert all(np.isfinite(ce.step(Xc, yc)) for _ in range(20)) and ce.step(Xc, yc) < first


def test_run_and_report(tmp_path, capsys):
    cases = [
        bench.Case("tiny", "mlp", (2, 4, 1), 8, "mse"),
        bench.Case("cls", "mlp", (4, 8, 3), 8),
        bench.Case(
            "conv",
            "conv1d",
            batch=2,
            conv=dict(cin=1, cout=2, k=3, stride=1, padding=1, size=(10,)),
        ),
    ]
    rows = bench.run(cases, rounds=1, memory=False)  # (pauses keep this short enough)
    assert [set(r.seconds) for r in rows] == [{"handgrad", "torch", "numpy"}] * 2 + [
        {"handgrad", "torch"}
    ]
    assert all(r.ratio("torch") > 0 for r in rows)
    text = bench.format_table(rows)
    assert "hg/torch" in text and "tiny" in text
    data = json.loads(bench.to_json(rows))
    assert "machine" in data and len(data["rows"]) == 3


def test_bench_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(bench.SUITES, "mlp", [bench.Case("tiny", "mlp", (2, 4, 1), 8, "mse")])
    out = tmp_path / "b.json"
    assert main(["bench", "--suite", "mlp", "--rounds", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["rows"][0]["peak_mib"]["handgrad"] >= 0
    assert json.loads(out.read_text())["rows"][0]["case"] == "tiny"
    row = json.loads(out.read_text())["rows"][0]
    assert set(row["seconds"]) == {"handgrad", "torch", "numpy"}  # no compiled columns
    assert "compile_seconds" not in row and "handgrad compiled/torch" not in row
    assert "compiled" not in capsys.readouterr().out
    assert main(["bench", "--suite", "gpu"]) == 1
    assert main(["bench", "--compiled", "--suite", "scaling"]) == 1  # no compiled cases there
    assert "choose from mlp, conv, sequence" in capsys.readouterr().err
    assert torch.get_num_threads() >= 1


def test_busy_benchmark_rows_and_the_busy_processes_end(tmp_path, capsys, monkeypatch):
    import multiprocessing as mp

    monkeypatch.setattr(bench, "MLP_CASES", [bench.Case("tiny", "mlp", (2, 4, 1), 8, "mse")])
    out = tmp_path / "busy.json"
    before = torch.get_num_threads()
    assert main(["bench", "--busy", "1", "--rounds", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 busy processes" in text and "auto/torch" in text
    row = json.loads(out.read_text())["rows"][0]
    assert set(row["seconds"]) == {"handgrad auto", "handgrad", "torch"}
    assert all(v > 0 for v in row["seconds"].values())
    assert torch.get_num_threads() == before
    assert not mp.active_children()  # the busy processes were stopped


def test_bench_refuses_bad_flags_before_running(tmp_path, capsys):
    assert main(["bench", "--busy", "-1"]) == 1
    assert "--busy" in capsys.readouterr().err
    assert main(["bench", "--json", str(tmp_path)]) == 1  # a folder, not a file
    assert "is a folder" in capsys.readouterr().err
    assert main(["bench", "--json", str(tmp_path / "no" / "b.json")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_compiled_bench_times_four_ways(tmp_path, capsys, monkeypatch):
    """--compiled: handgrad and torch, eager and compiled, in one run (compiled by aot_eager
    here, which traces the same graphs as Inductor in a fraction of its time)."""
    from handgrad.tools import bench_compiled

    monkeypatch.setattr(bench_compiled, "BACKEND", "aot_eager")
    tiny = bench.Case("tiny", "mlp", (2, 4, 1), 8, "mse")
    monkeypatch.setitem(bench.COMPILED_SUITES, "mlp", [tiny])
    monkeypatch.setattr(bench, "step_memory", lambda case: {})  # test_bench_command's part
    out = tmp_path / "c.json"
    assert main(["bench", "--compiled", "--suite", "mlp", "--rounds", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "hg compiled" in text and "torch compiled" in text and "hgc/tc" in text
    row = json.loads(out.read_text())["rows"][0]
    compiled = {"handgrad compiled", "torch compiled"}
    assert set(row["seconds"]) == {"handgrad", "torch", "numpy"} | compiled
    assert all(v > 0 for v in row["seconds"].values())
    assert set(row["compile_seconds"]) == compiled
    assert all(v > 0 for v in row["compile_seconds"].values())
    assert row["handgrad compiled/torch"] > 0 and row["handgrad compiled/torch compiled"] > 0


def test_the_cnn_case_is_train_s_cnn_in_both_libraries():
    """The MNIST-1D CNN case is `handgrad train --arch cnn`'s network (tools/build.py), and
    its torch copy computes the same outputs from the same weights."""
    from handgrad.tools import bench_compiled as bc
    from handgrad.tools.build import build_cnn
    from handgrad.tools.config import TrainConfig

    case = bc.CNN_CASE
    model, _, _ = bc.handgrad_cnn(case)
    reference, _, _ = bc.torch_cnn(case)
    built = build_cnn((1, 40), 10, TrainConfig(arch="cnn"))
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [tuple(p.shape) for p in built.parameters()]
    assert shapes == [tuple(p.shape) for p in reference.parameters()]
    for p, q in zip(model.parameters(), reference.parameters()):
        p.copy_(q.detach())
    X, _ = bc.cnn_data(case)
    torch.testing.assert_close(model(X), reference(X).detach(), rtol=1e-5, atol=1e-5)


def test_warm_up_refuses_a_step_that_compiled_nothing():
    from handgrad.errors import UsageError
    from handgrad.tools import bench_compiled as bc

    with pytest.raises(UsageError, match="compiled no graph"):
        bc.warm_up("plain", lambda: None)
