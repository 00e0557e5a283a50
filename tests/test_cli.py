"""The `handgrad` command end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import handgrad as hg
from handgrad.tools.build import build_cnn
from handgrad.tools.cli import main
from handgrad.tools.config import TrainConfig


def test_lab_single_tasks(capsys, tmp_path):
    assert main(["lab", "--task", "1.1", "--task", "3.2"]) == 0
    out = capsys.readouterr().out
    assert "1.1" in out and "4.84" in out and "2 of 2 tasks agree with PyTorch" in out


def test_lab_4_4_writes_its_figure(capsys, tmp_path):
    figure = tmp_path / "sub" / "fit.png"
    assert main(["lab", "--task", "4.4", "--figure", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    assert "epoch 2000" in capsys.readouterr().out


def test_unknown_task_is_a_clear_error(capsys):
    assert main(["lab", "--task", "9.9"]) == 1
    assert "unknown task 9.9" in capsys.readouterr().err


def test_console_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "handgrad", "lab", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "examples:" in out and "--task" in out


def _train_spiral(out, *extra):
    return main(
        [
            "train",
            "--data",
            "spiral",
            "--hidden",
            "16",
            "--epochs",
            "3",
            "--quiet",
            "--out",
            str(out),
            *extra,
        ]
    )


def test_train_writes_model_history_and_figures(tmp_path, capsys):
    assert _train_spiral(tmp_path / "run") == 0
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "model.safetensors",
        "history.json",
        "config.json",
        "scores.json",
        "curves.png",
        "confusion.png",
        "boundary.png",
    } <= names
    out = capsys.readouterr().out
    assert "config: data=spiral" in out and "accuracy" in out and "test" in out


def test_train_regression_and_full_batch(tmp_path):
    out = tmp_path / "p"
    assert (
        main(
            [
                "train",
                "--data",
                "parabola",
                "--hidden",
                "10",
                "--optimizer",
                "sgd",
                "--lr",
                "0.05",
                "--batch-size",
                "0",
                "--epochs",
                "5",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "fit.png").exists()


def test_train_on_a_csv_file(tmp_path):
    rows = ["a,b,label"] + [f"{i % 7},{(i * 3) % 5},{i % 2}" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "d.csv"),
                "--target",
                "label",
                "--epochs",
                "2",
                "--quiet",
                "--out",
                str(tmp_path / "csv"),
            ]
        )
        == 0
    )


def test_predict_prints_classes(tmp_path, capsys):
    _train_spiral(tmp_path / "run")
    (tmp_path / "x.csv").write_text("x0,x1,label\n0.1,0.2,0\n-0.5,0.3,1\n")
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(tmp_path / "run" / "model.safetensors"),
                str(tmp_path / "x.csv"),
                "--drop",
                "label",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "class,probability" and len(lines) == 3


def test_predict_refuses_wrong_width(tmp_path, capsys):
    _train_spiral(tmp_path / "run")
    (tmp_path / "x.csv").write_text("a,b,c\n1,2,3\n")
    assert (
        main(["predict", str(tmp_path / "run" / "model.safetensors"), str(tmp_path / "x.csv")]) == 1
    )
    assert "expects 2 features" in capsys.readouterr().err


STUDENT = """
import torch

class Good:
    def __init__(self, n_in, n_out):
        self.weights = 0.1 * torch.randn(n_in, n_out)
        self.biases = torch.zeros(1, n_out)
    def forward(self, inputs):
        self.inputs = inputs
        return inputs @ self.weights + self.biases
    def backward(self, dvalues):
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = dvalues.sum(0, keepdims=True)
        self.dinputs = dvalues @ self.weights.T

class Bad(Good):
    def backward(self, dvalues):
        super().backward(dvalues)
        self.dweights = 2 * self.dweights

class MyMSE:
    def forward(self, pred, target):
        self.d = pred - target
        return (self.d ** 2).mean()
    def backward(self):
        return 2 * self.d / self.d.numel()
"""


def test_check_gives_a_verdict_per_gradient(tmp_path, capsys):
    (tmp_path / "student.py").write_text(STUDENT)
    f = str(tmp_path / "student.py")
    assert main(["check", f + ":Good", "--args", "4,3", "--input-shape", "5,4"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(["check", f + ":Bad", "--args", "4,3", "--input-shape", "5,4"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  weights" in out and "ok    biases" in out
    assert main(["check", f + ":MyMSE", "--input-shape", "6,1"]) == 0


def test_one_line_errors_without_traceback(tmp_path):
    cases = [
        (["train", "--data", "nope"], "unknown dataset 'nope'"),
        (["train", "--data", "spiral", "--batch-size", "-2"], "batch size must be >= 1"),
        (["train", "--data", str(tmp_path / "missing.csv")], "cannot read"),
        (["predict", str(tmp_path / "none.safetensors"), "x.csv"], "cannot read"),
        (["check", "nofile.py:X"], "no such file"),
        (["train", "--activation", "swishy"], "invalid choice: 'swishy'"),
        (["train", "--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
    ]
    for argv, message in cases:
        run = subprocess.run(
            [sys.executable, "-m", "handgrad", *argv], capture_output=True, text=True, cwd=tmp_path
        )
        assert run.returncode != 0, argv
        assert message in run.stderr, (argv, run.stderr)
        assert "Traceback" not in run.stderr


def test_a_bug_inside_handgrad_shows_its_traceback(monkeypatch, capsys):
    from handgrad.tools import cli

    def broken(args):
        raise ZeroDivisionError("a bug, not the user's mistake")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["lab"].set_defaults(func=broken)
    with pytest.raises(ZeroDivisionError):
        main(["lab"])


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback_of_a_user_error(monkeypatch, how):
    from handgrad.errors import HandgradError

    if how == "env":
        monkeypatch.setenv("HANDGRAD_DEBUG", "1")
    argv = (["--debug"] if how == "flag" else []) + ["train", "--data", "nope"]
    with pytest.raises(HandgradError, match="unknown dataset 'nope'"):
        main(argv)


def test_user_errors_are_one_line_in_process(capsys, monkeypatch):
    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)
    assert main(["train", "--data", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "handgrad train: error: unknown dataset 'nope'" in err


def test_failed_run_keeps_the_old_model(tmp_path):
    out = tmp_path / "run"
    _train_spiral(out)
    before = (out / "model.safetensors").read_bytes()
    rows = ["x,y"] + [f"{i},{10.0 ** (30 + i)}" for i in range(8)]
    (tmp_path / "huge.csv").write_text("\n".join(rows) + "\n")
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "huge.csv"),
                "--task",
                "regression",
                "--no-standardize",
                "--lr",
                "10",
                "--optimizer",
                "sgd",
                "--epochs",
                "5",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 1
    )
    assert (out / "model.safetensors").read_bytes() == before


def test_train_cnn_on_image_shaped_digits(tmp_path, capsys):
    out = tmp_path / "cnn"
    assert (
        main(
            [
                "train",
                "--data",
                "digits",
                "--arch",
                "cnn",
                "--channels",
                "4",
                "--epochs",
                "1",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "Conv2d" in (out / "model.safetensors").read_bytes()[:4000].decode("latin-1")


def test_cnn_needs_image_shaped_data(tmp_path, capsys):
    assert (
        main(["train", "--data", "spiral", "--arch", "cnn", "--quiet", "--out", str(tmp_path)]) == 1
    )
    assert "needs image-shaped inputs" in capsys.readouterr().err


def test_distributed_flag_outside_torchrun_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert (
        main(["train", "--data", "spiral", "--distributed", "--quiet", "--out", str(tmp_path)]) == 1
    )
    assert "torchrun --nproc-per-node N" in capsys.readouterr().err


def test_train_cnn_with_winograd_convolutions(tmp_path):
    config = TrainConfig(arch="cnn", channels=4, conv_algorithm="winograd")
    model = build_cnn((1, 8, 8), 10, config)
    assert [m.algorithm for m in model.modules() if isinstance(m, hg.Conv2d)] == ["winograd"] * 2
    args = ["train", "--data", "digits", "--arch", "cnn", "--channels", "4", "--epochs", "1"]
    out = tmp_path / "wino"
    assert main([*args, "--conv-algorithm", "winograd", "--quiet", "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists()


def test_unknown_conv_algorithm_is_refused():
    with pytest.raises(ValueError, match="unknown conv_algorithm 'fft'"):
        TrainConfig(arch="cnn", conv_algorithm="fft").check()


def test_validation_numbers_come_from_the_validation_split(tmp_path, capsys, monkeypatch):
    import json

    monkeypatch.delenv("HANDGRAD_DEBUG", raising=False)
    assert _train_spiral(tmp_path / "run", "--val-fraction", "0.25", "--patience", "2") == 0
    assert "split: train 180, validation 60, test 60 examples" in capsys.readouterr().out
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert min(history["val_loss"]) == pytest.approx(scores["val"]["loss"])  # best epoch kept
    assert scores["test"]["loss"] != pytest.approx(scores["val"]["loss"])
    assert _train_spiral(tmp_path / "r2", "--val-fraction", "0", "--patience", "3") == 1
    assert "--patience needs a validation split" in capsys.readouterr().err


def test_train_in_bf16_on_the_cpu(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--data", "spiral", "--epochs", "2", "--quiet", "--out", str(out)]
    assert main([*argv, "--precision", "bf16"]) == 0
    assert "precision=bf16" in capsys.readouterr().out
    model = hg.load(out / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in model.state_dict().values())  # master weights


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--cuda-graph"], "--cuda-graph needs a CUDA device"),
        (["--device", "tpu"], "--device: expected cpu, cuda or cuda:N"),
        (["--device", "nonsense"], "--device: expected cpu, cuda or cuda:N"),
    ]
    + ([] if torch.cuda.is_available() else [(["--device", "cuda"], "no CUDA device")]),
)
def test_device_flags_are_checked_before_training(flags, message, tmp_path, capsys):
    assert main(["train", "--data", "spiral", "--out", str(tmp_path / "r"), *flags]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_task_for_a_bundled_dataset_is_checked_not_ignored(tmp_path, capsys):
    argv = ["train", "--data", "digits", "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]
    assert main([*argv, "--task", "binary"]) == 1
    assert "--task binary: digits is a classification dataset" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
    assert main([*argv, "--task", "classification"]) == 0  # its own task: accepted


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--ensemble", "x"], "handgrad train: error: argument --ensemble: invalid int"),
        (["train", "--optimizer", "lbfgs"], "handgrad train: error: argument --optimizer: invalid"),
        (["trian"], "handgrad: error: argument command: invalid choice: 'trian'"),
    ],
)
def test_a_flag_argparse_refuses_is_one_line_too(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.endswith("--help)\n") and err.count("\n") == 1


def test_the_train_flags_are_the_config_fields():
    """Each TrainConfig field is one `handgrad train` flag (tools/flags.py), so a new flag is
    a field and the code that uses it; the only other option is argparse's --help."""
    import dataclasses

    from handgrad.tools import cli

    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    options = {a.dest for a in train._actions}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    not_flags = {"extra"}  # set from Python only
    not_fields = {"help"}
    assert options == (fields - not_flags) | not_fields
    args = train.parse_args(["--unidirectional", "--quiet", "--no-standardize", "--drop", "a"])
    assert (args.bidirectional, args.progress, args.standardize, args.drop) == (
        False,
        False,
        False,
        ["a"],
    )


def test_the_config_from_the_flags_has_the_field_defaults():
    from handgrad.tools import cli
    from handgrad.tools.flags import config_from_args

    parser = cli.build_parser()
    assert config_from_args(parser.parse_args(["train"])) == TrainConfig()
    gpt = config_from_args(parser.parse_args(["train", "--arch", "gpt", "--drop", "x"]))
    assert (gpt.data, gpt.drop) == ("text", ("x",))


def test_a_new_config_field_is_a_new_flag():
    import argparse
    import dataclasses

    from handgrad.tools.config import flag
    from handgrad.tools.flags import add_train_flags

    @dataclasses.dataclass
    class Bigger(TrainConfig):
        warmup: int = flag(0, "steps of linear warm-up (default: %(default)s)", metavar="N")
        tags: tuple[str, ...] = flag((), "a label (repeatable)")

    parser = argparse.ArgumentParser()
    add_train_flags(parser, Bigger)
    args = parser.parse_args(["--warmup", "5", "--tags", "a", "--tags", "b"])
    assert (args.warmup, args.tags, args.lr) == (5, ["a", "b"], 1e-3)
    assert "steps of linear warm-up (default: 0)" in " ".join(parser.format_help().split())
    with pytest.raises(SystemExit):
        parser.parse_args(["--warmup", "x"])  # its type read from the annotation
