"""The command line never loses work: every output path checked before training, a run
swapped in whole, files handgrad did not write left alone, temporaries removed, checkpoints
and resume. Each case calls `main(argv)` in-process on tiny runs."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

import handgrad as hg
from handgrad import io, plot
from handgrad.tools import commands, outputs, recipe
from handgrad.tools.cli import main

RUN = ["train", "--data", "spiral", "--hidden", "4", "--epochs", "1", "--quiet"]


def _train(out, *extra):
    return main([*RUN, "--out", str(out), *extra])


def _error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts: the path checks must come first."""

    def trained(*args, **kwargs):
        raise AssertionError("training started before the output path was checked")

    monkeypatch.setattr(recipe, "fit", trained)
    monkeypatch.setattr(recipe, "load_dataset", trained)


# ---- checked before training ---------------------------------------------------------------
def test_out_naming_a_file_is_refused_before_training(tmp_path, capsys, no_training):
    (tmp_path / "notes.txt").write_text("mine")
    assert _train(tmp_path / "notes.txt") == 1
    assert "is a file; give a folder" in _error(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_out_under_a_file_is_refused(tmp_path, capsys, no_training):
    (tmp_path / "f").write_text("x")
    assert _train(tmp_path / "f" / "run") == 1
    assert "is a file, not a folder" in _error(capsys)


def test_out_dev_null_is_refused(capsys, no_training):
    assert _train("/dev/null") == 1
    assert "/dev/null is not a folder" in _error(capsys)


def test_read_only_folder_is_refused(tmp_path, capsys, no_training, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(
        outputs.os, "access", lambda p, m: False if str(p) == str(ro) else real(p, m)
    )
    assert _train(ro / "run") == 1
    assert f"folder {ro} is not writable" in _error(capsys)


def test_folder_of_other_files_is_refused_unless_force(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "model.safetensors").write_bytes(b"my own model")
    assert _train(folder) == 1
    assert "holds files handgrad did not write (thesis.tex)" in _error(capsys)
    assert _train(folder, "--force") == 0
    assert (folder / "thesis.tex").read_text() == "years of work"  # left alone
    assert hg.load(folder / "model.safetensors")  # handgrad's own name: replaced
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_out_holding_the_input_is_refused(tmp_path, capsys):
    rows = ["a,label"] + [f"{i},{i % 2}" for i in range(20)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert (
        main(["train", "--data", str(tmp_path / "d.csv"), "--quiet", "--out", str(tmp_path)]) == 1
    )
    assert "holds files handgrad did not write (d.csv)" in _error(capsys)
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "d.csv")]) == 1
    assert "is a file" in _error(capsys)


# ---- a run swapped in whole, or not at all ------------------------------------------------
def test_a_new_run_replaces_the_old_one_whole(tmp_path):
    out = tmp_path / "run"
    assert _train(out) == 0
    assert (out / "boundary.png").exists() and (out / outputs.MARKER).exists()
    args = ["train", "--data", "parabola", "--hidden", "4", "--epochs", "1", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert "fit.png" in names and "boundary.png" not in names  # nothing of the old run left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder


def test_a_failure_while_writing_keeps_the_old_run(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _train(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot, "training_curves", disk_full)
    assert _train(out, "--seed", "3") == 1
    assert "No space left on device" in _error(capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_an_interrupt_while_writing_keeps_the_old_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _train(out)
    before = (out / "model.safetensors").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plot, "confusion_matrix_figure", interrupted)
    assert _train(out, "--seed", "3") == 130  # Ctrl-C: one line (tests/test_cli_traps.py)
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_sigterm_becomes_a_clean_exit():
    with pytest.raises(SystemExit) as stop, commands._terminate_cleanly():
        os.kill(os.getpid(), signal.SIGTERM)
    assert stop.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_killed_runs_staging_folder_is_cleaned(tmp_path):
    out = tmp_path / "run"
    dead = 2**22 + 12345  # above the kernel's pid_max: no such process
    stale = tmp_path / outputs.STAGING.format(name="run", pid=dead)
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    live = tmp_path / outputs.STAGING.format(name="run", pid=os.getpid() + 0)
    assert _train(out) == 0
    assert not stale.exists() and not live.exists()


def test_a_kill_between_the_two_renames_is_undone(tmp_path):
    out = tmp_path / "run"
    old = tmp_path / outputs.OLD.format(name="run", pid=2**22 + 7)
    old.mkdir()
    (old / "model.safetensors").write_bytes(b"the old run")
    outputs.clean_stale(out)
    assert (out / "model.safetensors").read_bytes() == b"the old run" and not old.exists()


# ---- predict, lab, bench, check --------------------------------------------------------------
def test_predict_out_never_overwrites_the_model_or_the_input(tmp_path, capsys):
    _train(tmp_path / "run")
    model = tmp_path / "run" / "model.safetensors"
    before = model.read_bytes()
    (tmp_path / "x.csv").write_text("x0,x1\n0.1,0.2\n")
    for target, message in (
        (model, "is also an input"),
        (tmp_path / "x.csv", "is also an input"),
        (tmp_path, "is a folder"),
        ("/dev/null", "not a regular file"),
    ):
        assert main(["predict", str(model), str(tmp_path / "x.csv"), "--out", str(target)]) == 1
        assert message in _error(capsys)
    assert model.read_bytes() == before
    assert (tmp_path / "x.csv").read_text() == "x0,x1\n0.1,0.2\n"


def test_lab_figure_naming_a_folder_is_refused_first(tmp_path, capsys, monkeypatch):
    from handgrad.tools import lab

    monkeypatch.setattr(lab, "task_4_4", lambda *a: pytest.fail("ran before the check"))
    assert main(["lab", "--task", "4.4", "--figure", str(tmp_path)]) == 1
    assert "is a folder; give a file name" in _error(capsys)


def test_bench_shows_progress(monkeypatch, capsys):
    from handgrad.tools import bench

    monkeypatch.setattr(
        bench, "run", lambda cases, rounds, compiled=False: [bench.Row(cases[0].name, {})]
    )
    monkeypatch.setattr(bench, "format_table", lambda rows: f"{len(rows)} rows")
    assert main(["bench", "--suite", "mlp", "--rounds", "1"]) == 0
    captured = capsys.readouterr()
    n = len(bench.MLP_CASES)
    assert f"[1/{n}] {bench.MLP_CASES[0].name}" in captured.err and f"[{n}/{n}]" in captured.err
    assert f"{n} rows" in captured.out


def test_check_refuses_an_empty_input_shape_and_a_syntax_error(tmp_path, capsys):
    (tmp_path / "ok.py").write_text("class L:\n    def forward(self, x): return x\n")
    assert main(["check", f"{tmp_path / 'ok.py'}:L", "--input-shape", "0,4"]) == 1
    assert "--input-shape: every size must be >= 1, got 0,4" in _error(capsys)
    (tmp_path / "bad.py").write_text("class L:\n    def forward(self, x) return x\n")
    assert main(["check", f"{tmp_path / 'bad.py'}:L"]) == 1
    assert "bad.py, line 2: syntax error" in _error(capsys)
    (tmp_path / "boom.py").write_text("raise RuntimeError('import-time failure')\n")
    assert main(["check", f"{tmp_path / 'boom.py'}:L"]) == 1
    assert "RuntimeError: import-time failure" in _error(capsys)


# ---- checkpoints and resume ------------------------------------------------------------------
def test_checkpoint_every_and_resume_follow_the_uninterrupted_run(tmp_path, capsys):
    args = [*RUN[:-3], "--epochs", "4", "--dropout", "0.2", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    ckpt = tmp_path / "half.checkpoint.safetensors"
    assert main([*args, "--out", str(tmp_path / "half"), "--checkpoint-every", "2"]) == 0
    assert not ckpt.exists() and (tmp_path / "half" / "checkpoint.safetensors").exists()
    # a run killed after epoch 2 leaves the checkpoint beside its folder: resume from it
    first = [*RUN[:-3], "--epochs", "2", "--dropout", "0.2", "--quiet", "--checkpoint-every", "2"]
    assert main([*first, "--out", str(tmp_path / "cut")]) == 0
    os.replace(tmp_path / "cut" / "checkpoint.safetensors", ckpt)
    assert main([*args, "--out", str(tmp_path / "resumed"), "--resume", str(ckpt)]) == 0
    whole = hg.load(tmp_path / "whole" / "model.safetensors").state_dict()
    resumed = hg.load(tmp_path / "resumed" / "model.safetensors").state_dict()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    history = json.loads((tmp_path / "resumed" / "history.json").read_text())
    assert history["epochs"] == [1, 2, 3, 4]
    capsys.readouterr()
    again = [*RUN[:-3], "--epochs", "2", "--dropout", "0.2", "--out", str(tmp_path / "again")]
    assert main([*again, "--resume", str(ckpt)]) == 1
    assert "is at epoch 2; ask for more --epochs" in _error(capsys)


def test_checkpoint_path_must_not_be_a_users_file(tmp_path, capsys, no_training):
    (tmp_path / "data.bin").write_bytes(b"precious")
    argv = [*RUN, "--out", str(tmp_path / "r"), "--checkpoint-every", "1"]
    assert main([*argv, "--checkpoint", str(tmp_path / "data.bin")]) == 1
    assert "is not a handgrad checkpoint" in _error(capsys)
    assert main([*argv, "--checkpoint", str(tmp_path / "r" / "c.safetensors")]) == 1
    assert "outside the --out folder" in _error(capsys)
    assert main([*RUN, "--resume", str(tmp_path / "none.safetensors")]) == 1
    assert "no such checkpoint file" in _error(capsys)


def test_save_checkpoint_leaves_no_temporary_file(tmp_path, monkeypatch):
    model = hg.Sequential(hg.Linear(2, 2))
    opt = hg.optim.SGD(model.parameters(), lr=0.1)

    def killed(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint(tmp_path / "c.safetensors", model, opt, 1)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    dead = 2**22 + 99
    stale = tmp_path / f".c.safetensors.{dead}.abcd.tmp"
    stale.write_bytes(b"x" * 100)
    ours = tmp_path / f".c.safetensors.{os.getpid()}.efgh.tmp"  # a write in progress
    ours.write_bytes(b"y")
    keep = tmp_path / "other.safetensors.tmp"
    keep.write_bytes(b"z")
    model = hg.Sequential(hg.Linear(2, 2))
    io.save_checkpoint(tmp_path / "c.safetensors", model, hg.optim.SGD(model.parameters()), 1)
    assert not stale.exists() and ours.exists() and keep.exists()
    assert io.is_checkpoint(tmp_path / "c.safetensors")


def test_check_reports_the_users_errors_in_one_line(tmp_path, capsys):
    (tmp_path / "l.py").write_text(
        "class L:\n"
        "    def __init__(self, n):\n"
        "        if n < 0: raise ValueError('n must be >= 0')\n"
        "    def forward(self, x): raise ValueError('boom')\n"
        "    def backward(self, d): return d\n"
    )
    target = f"{tmp_path / 'l.py'}:L"
    assert main(["check", target, "--args", "x"]) == 1
    assert "--args: expected comma-separated numbers, got 'x'" in _error(capsys)
    assert main(["check", target, "--args", "-1"]) == 1
    assert "cannot build L(-1): ValueError: n must be >= 0" in _error(capsys)
    assert main(["check", target, "--args", "3"]) == 1
    assert "L raised ValueError: boom (--debug shows where in l.py)" in _error(capsys)


def test_a_symlinked_out_folder_keeps_its_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert _train(tmp_path / "link") == 0
    assert (tmp_path / "link").is_symlink() and (real / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_model_too_large_for_memory_is_refused_before_allocation(capsys, tmp_path):
    argv = ["train", "--data", "digits", "--quiet", "--out", str(tmp_path / "r")]
    assert main([*argv, "--hidden", "100000,100000"]) == 1
    assert "the model would have 10,007,600,010 parameters" in _error(capsys)
    assert main([*argv, "--arch", "cnn", "--channels", "100000"]) == 1
    assert "choose a smaller --channels" in _error(capsys)  # the flag of --arch cnn
    (tmp_path / "l.py").write_text("class L:\n    pass\n")
    assert main(["check", f"{tmp_path / 'l.py'}:L", "--input-shape", "100000,100000"]) == 1
    assert "10,000,000,000 elements; a gradient check needs only a few" in _error(capsys)


def test_out_holding_the_current_folder_is_refused(tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.chdir(tmp_path)
    for out in (".", str(tmp_path.parent)):
        assert _train(out) == 1
        assert "holds the current folder" in _error(capsys)


def test_a_staging_folder_whose_pid_no_process_can_have_is_kept(tmp_path):
    # 20 digits: os.kill raises OverflowError; io.pid_alive counts it alive, so it stays
    out = tmp_path / "run"
    odd = tmp_path / ".run.new-99999999999999999999"
    odd.mkdir()
    assert outputs.clean_stale(out) == [] and odd.is_dir()
