"""The command line's traps (issue 21): Ctrl-C, --resume into its own run, the memory guard,
generate's streaming and bound, --version and help, flags that do not apply, seeds, figure
names, check's errors and hints. Each calls handgrad.tools.cli.main in-process (Ctrl-C is a
step monkeypatched to raise KeyboardInterrupt)."""

from __future__ import annotations

import argparse
import io as stdio
import subprocess
import sys

import pytest
import torch

import handgrad as hg
from handgrad import io
from handgrad.tools import commands, results
from handgrad.tools.cli import build_parser, main
from handgrad.tools.config import TrainConfig
from handgrad.tools.text_recipe import generate_text

SPIRAL = ["train", "--data", "spiral", "--hidden", "8", "--epochs", "3", "--quiet"]
TEXT = "the cat sat on the mat; the dog sat on the log.\n" * 8  # 392 characters


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _old_run(folder):
    """A previous run's folder (names a run writes), to see that Ctrl-C keeps it."""
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"the previous run's model")
    return folder


def _interrupt_after(calls: int):
    """A stand-in for a training step that raises KeyboardInterrupt on call `calls`."""
    seen = []

    def step(*args, **kwargs):
        seen.append(1)
        if len(seen) >= calls:
            raise KeyboardInterrupt
        raise AssertionError("unreachable: calls=1 in these tests")

    return step


# ---- 1. Ctrl-C ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        SPIRAL,
        ["train", "--data", "digits", "--arch", "cnn", "--channels", "2", "--epochs", "2"],
        ["train", "--data", "digits", "--arch", "gru", "--width", "2", "--epochs", "2"],
        ["train", "--data", "digits", "--arch", "lstm", "--width", "2", "--epochs", "2"],
        ["train", "--data", "digits", "--arch", "rnn", "--layers", "2", "--epochs", "4"],
    ],
    ids=["mlp", "cnn", "gru", "lstm", "rnn"],
)
def test_ctrl_c_in_training_is_one_line_and_keeps_the_previous_run(
    argv, tmp_path, capsys, monkeypatch
):
    run = _old_run(tmp_path / "run")
    monkeypatch.setattr("handgrad.training.loop.train_step", _interrupt_after(1))
    assert main([*argv, "--quiet", "--out", str(run)]) == 130
    epochs = argv[argv.index("--epochs") + 1]
    expected = f"interrupted at epoch 1 of {epochs}; the previous run in {run} is kept"
    assert _one_line(capsys.readouterr().err) == f"handgrad train: {expected}"
    assert (run / "model.safetensors").read_bytes() == b"the previous run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging folder left


def _text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return path


GPT_FLAGS = ["--width", "8", "--heads", "1", "--layers", "1", "--context", "8"]


def test_ctrl_c_in_gpt_training_names_the_step(tmp_path, capsys, monkeypatch):
    text = _text_file(tmp_path)
    monkeypatch.setattr("handgrad.tools.text_recipe.train_step", _interrupt_after(1))
    argv = ["train", "--arch", "gpt", "--data", str(text), *GPT_FLAGS, "--steps", "5"]
    assert main([*argv, "--quiet", "--out", str(tmp_path / "new")]) == 130
    line = _one_line(capsys.readouterr().err)
    assert line.endswith(f"interrupted at step 1 of 5; nothing was written to {tmp_path / 'new'}")
    assert not (tmp_path / "new").exists()


def test_ctrl_c_while_figures_are_written_keeps_the_previous_run(tmp_path, capsys, monkeypatch):
    run = _old_run(tmp_path / "run")

    def curves(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.plot, "training_curves", curves)
    assert main([*SPIRAL, "--out", str(run)]) == 130
    line = _one_line(capsys.readouterr().err)
    assert line.endswith(f"while writing the run's files; the previous run in {run} is kept")
    assert (run / "model.safetensors").read_bytes() == b"the previous run's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_ctrl_c_names_the_checkpoint_it_kept(tmp_path, capsys, monkeypatch):
    import handgrad.training.loop as loop

    calls = []
    real = loop.train_step

    def step(*args, **kwargs):  # the whole first epoch (one full batch), then Ctrl-C
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    out = tmp_path / "run"
    argv = [*SPIRAL, "--batch-size", "0", "--checkpoint-every", "1", "--out", str(out)]
    assert main(argv) == 130
    line = _one_line(capsys.readouterr().err)
    ckpt = tmp_path / "run.checkpoint.safetensors"
    assert line.startswith("handgrad train: interrupted at epoch 2 of 3; nothing was written")
    assert f"the checkpoint {ckpt} is kept" in line and io.is_checkpoint(ckpt)


def test_ctrl_c_in_the_other_commands(tmp_path, capsys, monkeypatch):
    from handgrad.tools import bench, lab

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(lab.TASKS, "1.1", stop)
    assert main(["lab", "--task", "1.1"]) == 130
    assert _one_line(capsys.readouterr().err) == "handgrad lab: interrupted"
    monkeypatch.setattr(bench, "run", stop)
    assert main(["bench", "--suite", "mlp", "--rounds", "1"]) == 130
    err = capsys.readouterr().err  # "[1/4] tiny ...": the case it was timing, then one line
    assert err.splitlines()[-1] == "handgrad bench: interrupted" and "Traceback" not in err
    model = _gpt_file(tmp_path)
    monkeypatch.setattr(io, "load", stop)
    assert main(["predict", str(model), str(model)]) == 130
    assert _one_line(capsys.readouterr().err) == "handgrad predict: interrupted"


# ---- 2. --resume into the run it came from -----------------------------------------------------
def test_resume_into_its_own_run_keeps_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [*SPIRAL[:-3], "--quiet", "--epochs", "2", "--checkpoint-every", "1"]
    assert main([*argv, "--out", str(run)]) == 0
    ckpt = run / "checkpoint.safetensors"
    before = ckpt.read_bytes()
    assert main([*SPIRAL, "--resume", str(ckpt), "--out", str(run)]) == 0
    assert ckpt.read_bytes() == before  # kept: this run saved none of its own
    assert (run / "model.safetensors").exists()
    assert (
        main([*SPIRAL[:-3], "--quiet", "--epochs", "4", "--resume", str(ckpt), "--out", str(run)])
        == 0
    )
    assert ckpt.read_bytes() == before


# ---- 3. the memory guard -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "flags"),
    [
        (["--arch", "gpt", "--width", "100000", "--layers", "100", "--context", "8"], "--width, "),
        (["--arch", "gpt", "--context", "8", "--batch-size", str(10**9)], "--width, --layers"),
        (["--arch", "gru", "--data", "digits", "--width", "1000000", "--layers", "9"], "--width"),
        (["--arch", "cnn", "--data", "digits", "--channels", "10000000"], "--channels"),
        (["--data", "spiral", "--hidden", "1000000,1000000"], "--hidden"),
    ],
)
def test_memory_guard_for_every_arch(argv, flags, tmp_path, capsys):
    if "gpt" in argv:
        argv = [*argv, "--data", str(_text_file(tmp_path))]
    assert main(["train", *argv, "--quiet", "--out", str(tmp_path / "r")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "more than half of this machine's" in line and f"a smaller {flags}" in line
    assert "--hidden" not in line or "--hidden" in argv  # the flags of this arch only
    assert not (tmp_path / "r").exists()


# ---- 4. generate -------------------------------------------------------------------------------
def _gpt_file(tmp_path):
    vocab = sorted(set(TEXT))
    torch.manual_seed(0)
    model = hg.GPT(len(vocab), block_size=4, n_layer=1, n_head=1, n_embd=8)
    path = tmp_path / "gpt.safetensors"
    io.save(model, path, metadata={"task": "text", "vocab": vocab})
    return path


class _Stream(stdio.StringIO):
    """stdout that records what had been flushed at each flush, or breaks after n writes."""

    def __init__(self, break_after=None):
        super().__init__()
        self.flushed, self.break_after, self.writes = [], break_after, 0

    def write(self, text):
        self.writes += 1
        if self.break_after is not None and self.writes > self.break_after:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)

    def flush(self):
        self.flushed.append(self.getvalue())


def test_generate_streams_each_token_as_it_is_drawn(tmp_path, monkeypatch):
    path = _gpt_file(tmp_path)
    stream = _Stream()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("generate prompted"))
    assert main(["generate", str(path), "--prompt", "the ", "--tokens", "30", "--seed", "3"]) == 0
    text = stream.getvalue()
    # one flush per character, each showing one more: the prompt first, then token by token
    assert [len(f) for f in stream.flushed[:31]] == list(range(4, 35))
    model, vocab = hg.load(path), sorted(set(TEXT))
    assert text == generate_text(model, vocab, "the ", 30, seed=3) + "\n"
    ids = torch.tensor([[vocab.index(c) for c in "the "]])
    g = torch.Generator().manual_seed(3)
    whole = model.generate(ids, 30, generator=g)  # one call: the same draws, never cropped
    assert text[:-1] == "".join(vocab[i] for i in whole[0].tolist())


def test_generate_stops_quietly_on_a_closed_pipe(tmp_path, capsys, monkeypatch):
    path = _gpt_file(tmp_path)
    monkeypatch.setattr(sys, "stdout", _Stream(break_after=5))
    assert main(["generate", str(path), "--prompt", "t", "--tokens", "1000"]) == 0
    assert capsys.readouterr().err == ""


def test_generate_through_head_prints_no_broken_pipe(tmp_path):
    path = _gpt_file(tmp_path)
    cmd = f"{sys.executable} -m handgrad generate {path} --prompt t --tokens 20000 | head -c 20"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert len(done.stdout) == 20 and done.stderr == ""


def test_generate_refuses_tokens_above_the_bound_without_force(tmp_path, capsys, monkeypatch):
    path = _gpt_file(tmp_path)
    many = str(commands.MAX_TOKENS + 1)
    assert main(["generate", str(path), "--tokens", many]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"more than {commands.MAX_TOKENS:,}" in line and "--force" in line
    assert f"more than {commands.MAX_TOKENS:,} needs --force" in _help("generate")
    monkeypatch.setattr(sys, "stdout", _Stream(break_after=3))  # a reader that stops early
    assert main(["generate", str(path), "--tokens", many, "--force"]) == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--tokens", "-5"], "--tokens must be >= 0"), (["--top-k", "0"], "--top-k must be >= 1")],
)
def test_generate_checks_its_arguments_before_any_output(flags, message, tmp_path, capsys):
    assert main(["generate", str(_gpt_file(tmp_path)), *flags]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in _one_line(captured.err)


def test_ctrl_c_in_generate_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    path = _gpt_file(tmp_path)
    model_cls = type(hg.load(path))
    real, calls = model_cls.generate, []

    def generate(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 7:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(model_cls, "generate", generate)
    assert main(["generate", str(path), "--prompt", "t", "--tokens", "50"]) == 130
    captured = capsys.readouterr()
    assert len(captured.out) == 1 + 7 + 1  # the prompt, 7 characters, a newline
    assert _one_line(captured.err) == "handgrad generate: interrupted after 7 of 50 characters"


# ---- 5. --version, help, progress bars, the config line ----------------------------------------
def _help(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices[command].format_help().split())  # unwrapped


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out == f"handgrad {hg.__version__}\n"


def test_every_flag_of_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.dest}"
        for name, command in [("handgrad", parser), *sub.choices.items()]
        for action in command._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not (action.help or "").strip()
    ]
    assert not missing, missing
    for flag in ("--lr", "--dropout", "--momentum", "--seed", "--activation", "--loss"):
        assert flag in _help("train")


def test_progress_bars_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    argv = [*SPIRAL[:-1], "--out", str(tmp_path / "r")]  # without --quiet
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert [ln.split()[1] for ln in captured.out.splitlines() if ln.startswith("epoch ")] == [
        "1/3",
        "2/3",
        "3/3",
    ]
    assert captured.err == ""  # a log: no bar
    terminal = _Stream()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    assert "epoch 3/3" in terminal.getvalue()  # the bar, on a terminal


def test_the_config_line_lists_what_applies(tmp_path, capsys):
    assert main([*SPIRAL, "--out", str(tmp_path / "r")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("config: "))
    assert "hidden=(8,)" in line and "optimizer=adam" in line
    for absent in ("heads=", "width=", "context=", "steps=", "channels=", "momentum=", "target="):
        assert absent not in line
    argv = ["train", "--arch", "gpt", "--data", str(_text_file(tmp_path)), *GPT_FLAGS]
    assert main([*argv, "--steps", "1", "--quiet", "--out", str(tmp_path / "g")]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("config: "))
    assert "heads=1" in line and "steps=1" in line
    for absent in ("hidden=", "epochs=", "patience=", "ensemble=", "loss=", "activation="):
        assert absent not in line


# ---- 6. flags that do not apply ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--optimizer", "adam", "--momentum", "0.9"],
            "--momentum applies to --optimizer sgd, rmsprop",
        ),
        (["--momentum", "0.9"], "not --optimizer adam (the default)"),
        (["--conv-algorithm", "winograd"], "--conv-algorithm applies to --arch cnn only"),
        (["--width", "8"], "--width applies to --arch gru, lstm, rnn, gpt only, not --arch mlp"),
        (["--heads", "2"], "--heads applies to --arch gpt only, not --arch mlp"),
        (["--steps", "5"], "--steps applies to --arch gpt only"),
        (["--channels", "4"], "--channels applies to --arch cnn only"),
        (["--unidirectional"], "--unidirectional applies to --arch gru, lstm, rnn only"),
        (["--target", "y"], "--target applies to a CSV file; spiral is a bundled dataset"),
        (["--no-standardize"], "--no-standardize applies to a CSV file; spiral is a bundled"),
        (["--arch", "gru", "--data", "digits", "--hidden", "64"], "--hidden applies to --arch mlp"),
        (["--arch", "gru", "--data", "digits", "--activation", "tanh"], "--activation applies"),
        (["--arch", "gpt", "--data", "text", "--batchnorm"], "--batchnorm applies to --arch mlp"),
        (["--arch", "gpt", "--data", "text", "--loss", "mse"], "--loss applies to --arch mlp"),
    ],
)
def test_flags_that_do_not_apply_are_an_error(flags, message, tmp_path, capsys):
    argv = ["train", "--data", "spiral", "--quiet", "--out", str(tmp_path / "r"), *flags]
    assert main(argv) == 1
    assert message in _one_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_flags_that_apply_pass_and_resolved_configs_recheck():
    TrainConfig(optimizer="sgd", momentum=0.9).check()
    TrainConfig(optimizer="rmsprop", momentum=0.9).check()
    TrainConfig(arch="gru", width=3, layers=2, bidirectional=False).check()
    for config in (TrainConfig(arch="gpt", data="text", heads=2, width=8), TrainConfig()):
        config.check()
        config.resolved().check()  # run() checks the resolved config again
    with pytest.raises(ValueError, match="--momentum applies to --optimizer sgd, rmsprop"):
        TrainConfig(optimizer="adamw", momentum=0.5).check()


# ---- 7. seeds, figure names, check, hints ------------------------------------------------------
@pytest.mark.parametrize("seed", ["-1", str(2**64), "1.5"])
@pytest.mark.parametrize("command", [["train"], ["generate", "m.safetensors"], ["check", "a:B"]])
def test_a_seed_out_of_range_is_one_line_naming_seed(command, seed, capsys):
    with pytest.raises(SystemExit) as exit:
        main([*command, "--seed", seed])
    assert exit.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "argument --seed: expected an integer from 0 to 4294967295" in line


def test_a_seed_out_of_range_in_the_config():
    with pytest.raises(ValueError, match="--seed: expected an integer from 0 to 4294967295"):
        TrainConfig(seed=-1).check()


@pytest.mark.parametrize("name", ["fit.txt", "fit.csv", "fit"])
def test_lab_figure_must_be_an_image_refused_before_the_task(name, tmp_path, capsys, monkeypatch):
    from handgrad.tools import lab

    monkeypatch.setattr(lab, "task_4_4", lambda *a: pytest.fail("the task ran"))
    assert main(["lab", "--task", "4.4", "--figure", str(tmp_path / name)]) == 1
    assert "is not an image file name; end it in .png" in _one_line(capsys.readouterr().err)


def test_figure_suffixes_are_ones_matplotlib_writes():
    from matplotlib.backend_bases import FigureCanvasBase

    written = FigureCanvasBase.get_supported_filetypes()
    assert {s.lstrip(".") for s in commands.FIGURE_SUFFIXES} <= set(written)


CHECKED = """
import torch
import handgrad as hg

class NoBackward:
    def forward(self, x):
        return x * 2

class ListParameter(hg.Module):
    parameter_names = ("weights",)

    def __init__(self):
        super().__init__()
        self.weights = [torch.ones(3)]

    def forward(self, x):
        return x * self.weights[0]

    def backward(self, dy):
        return dy * self.weights[0]
"""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("NoBackward", "NoBackward has no forward/backward methods: it lacks backward()"),
        ("ListParameter", "ListParameter.weights is a list, not a tensor"),
    ],
)
def test_check_on_a_class_it_cannot_check_is_one_line(name, message, tmp_path, capsys):
    path = tmp_path / "mine.py"
    path.write_text(CHECKED)
    assert main(["check", f"{path}:{name}", "--input-shape", "2,3"]) == 1
    assert message in _one_line(capsys.readouterr().err)


def test_hints_name_this_commands_flags(tmp_path, capsys):
    text = tmp_path / "short.txt"
    text.write_text("abcdefghij" * 5)
    argv = ["train", "--arch", "gpt", "--data", str(text), "--context", "16", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "a smaller --context" in line and "block_size" not in line
