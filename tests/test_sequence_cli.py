"""Sequence models on the command line: `handgrad train --arch gru|lstm|rnn|gpt`,
`handgrad generate`, `--clip-grad-norm`, the recurrent classifier against torch, and the
bench's sequence suite. Tiny runs only."""

from __future__ import annotations

import json
import math

import pytest
import torch

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.tools import bench
from handgrad.tools.cli import main
from handgrad.tools.text_recipe import generate_text, load_text_model

TEXT = "the quick brown fox jumps over the lazy dog. " * 40  # 1,800 characters, 28 distinct


# ---- the data ----------------------------------------------------------------------------------
def test_mnist1d_as_sequences():
    d, flat = hg.datasets.mnist1d(sequence=True), hg.datasets.mnist1d()
    assert d.X.shape == (4000, 40, 1) and d.X_test.shape == (1000, 40, 1)
    assert torch.equal(d.X[..., 0], flat.X) and torch.equal(d.y, flat.y)
    with pytest.raises(InputError, match="mnist1d: image=True and sequence=True exclude"):
        hg.datasets.mnist1d(image=True, sequence=True)


# ---- RecurrentClassifier against torch, float64 ------------------------------------------------
class _TorchTwin(torch.nn.Module):
    def __init__(self, mode, input_size, hidden, steps, classes, layers, bi):
        super().__init__()
        cls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[mode]
        self.rnn = cls(input_size, hidden, layers, batch_first=True, bidirectional=bi)
        self.linear = torch.nn.Linear(steps * hidden * (2 if bi else 1), classes)

    def forward(self, x):
        h, _ = self.rnn(x)
        return self.linear(h.flatten(1))


@pytest.mark.parametrize("mode", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize(("layers", "bi"), [(1, True), (2, False), (2, True)])
@pytest.mark.parametrize("steps", [1, 5])
def test_recurrent_classifier_matches_torch(mode, layers, bi, steps):
    torch.manual_seed(0)
    ours = hg.RecurrentClassifier(mode, 3, 4, steps, 5, layers, bi).to(dtype=torch.float64)
    twin = _TorchTwin(mode, 3, 4, steps, 5, layers, bi).double()
    twin.load_state_dict(ours.state_dict())
    x = torch.randn(6, steps, 3, dtype=torch.float64)
    dy = torch.randn(6, 5, dtype=torch.float64)
    xt = x.clone().requires_grad_(True)
    want = twin(xt)
    want.backward(dy)
    got = ours(x)
    torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-12)
    ours.zero_grad()
    torch.testing.assert_close(ours.backward(dy), xt.grad, rtol=1e-9, atol=1e-12)
    theirs = dict(twin.named_parameters())
    assert {n for n, _ in ours.named_parameters()} == set(theirs)
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, theirs[name].grad, rtol=1e-9, atol=1e-12, msg=name)


def test_recurrent_classifier_refuses_bad_input():
    model = hg.RecurrentClassifier("gru", 1, 2, 40, 10)
    with pytest.raises(
        ShapeError, match=r"expected sequences of shape \(N, 40, 1\), got \(3, 40\)"
    ):
        model(torch.randn(3, 40))
    with pytest.raises(ArgumentTypeError, match="RecurrentClassifier: expected a tensor"):
        model([1.0])
    with pytest.raises(InputError, match="mode must be one of gru, lstm, rnn, got 'tcn'"):
        hg.RecurrentClassifier("tcn", 1, 2, 40, 10)


def test_recurrent_classifier_saves_and_loads(tmp_path):
    model = hg.RecurrentClassifier("lstm", 2, 3, 4, 5, 2, False)
    hg.save(model, tmp_path / "m.safetensors")
    again = hg.load(tmp_path / "m.safetensors")
    x = torch.randn(2, 4, 2)
    with hg.no_cache():
        torch.testing.assert_close(again(x), model(x))
    assert again.config() == model.config()


# ---- handgrad train --arch gru|lstm|rnn --------------------------------------------------------
def test_train_gru_on_mnist1d(tmp_path, capsys):
    out = tmp_path / "gru"
    args = ["train", "--data", "mnist1d", "--arch", "gru", "--width", "4", "--epochs", "2"]
    args += ["--lr", "0.01", "--batch-size", "100", "--quiet", "--out", str(out)]
    assert main(args) == 0
    model = hg.load(out / "model.safetensors")
    assert isinstance(model, hg.RecurrentClassifier) and isinstance(model.rnn, hg.GRU)
    assert model.config()["bidirectional"] and model.linear.in_features == 40 * 2 * 4
    scores = json.loads((out / "scores.json").read_text())
    assert scores["test"]["accuracy"] > 0.2  # chance is 0.1
    csv = tmp_path / "x.csv"
    rows = hg.datasets.mnist1d().X_test[:3]
    csv.write_text(
        ",".join(f"t{i}" for i in range(40))
        + "\n"
        + "\n".join(",".join(f"{v:.6f}" for v in r.tolist()) for r in rows)
        + "\n"
    )
    capsys.readouterr()
    assert main(["predict", str(out / "model.safetensors"), str(csv)]) == 0
    assert capsys.readouterr().out.count("\n") == 4  # header and three classes


def test_train_lstm_on_digit_rows(tmp_path):
    out = tmp_path / "lstm"
    args = ["train", "--data", "digits", "--arch", "lstm", "--layers", "2", "--unidirectional"]
    assert main([*args, "--width", "5", "--epochs", "1", "--quiet", "--out", str(out)]) == 0
    model = hg.load(out / "model.safetensors")
    assert isinstance(model.rnn, hg.LSTM) and model.rnn.num_layers == 2
    assert not model.rnn.bidirectional and model.seq_len == 8 and model.rnn.input_size == 8


def test_recurrent_arch_needs_sequences(tmp_path, capsys):
    assert (
        main(
            ["train", "--data", "spiral", "--arch", "rnn", "--quiet", "--out", str(tmp_path / "r")]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "--arch rnn needs sequences (N, steps, features)" in err and err.count("\n") == 1


# ---- --clip-grad-norm ---------------------------------------------------------------------------
def test_clip_grad_norm_flag_reaches_every_step(tmp_path, monkeypatch):
    from handgrad.training import step

    seen = []

    def spy(params, max_norm):
        seen.append(max_norm)
        return hg.clip_grad_norm(params, max_norm)

    monkeypatch.setattr(step, "clip_grad_norm", spy)
    out = tmp_path / "clip"
    args = ["train", "--data", "spiral", "--hidden", "8", "--epochs", "2", "--batch-size", "0"]
    assert main([*args, "--clip-grad-norm", "0.5", "--quiet", "--out", str(out)]) == 0
    assert seen == [0.5, 0.5]  # two epochs of one full batch
    assert json.loads((out / "config.json").read_text())["clip_grad_norm"] == 0.5


def test_clip_grad_norm_flag_must_be_positive(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data",
                "spiral",
                "--clip-grad-norm",
                "0",
                "--quiet",
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 1
    )
    assert "--clip-grad-norm must be > 0, got 0.0" in capsys.readouterr().err


# ---- handgrad train --arch gpt and handgrad generate -------------------------------------------
@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpt")
    (root / "tiny.txt").write_text(TEXT, encoding="utf-8")
    out = root / "run"
    args = ["train", "--arch", "gpt", "--data", str(root / "tiny.txt"), "--layers", "1"]
    args += ["--heads", "2", "--width", "16", "--context", "16", "--batch-size", "8"]
    args += ["--steps", "60", "--eval-every", "20", "--lr", "0.01", "--clip-grad-norm", "1"]
    assert main([*args, "--out", str(out)]) == 0
    return out


def test_train_gpt_writes_a_text_model(gpt_run, capsys):
    history = json.loads((gpt_run / "history.json").read_text())
    assert history["epochs"] == [20, 40, 60]
    assert history["val_loss"][-1] < math.log(28) - 1  # far below a uniform guess
    assert all(r > 0 for r in history["tokens_per_s"])
    meta = hg.io.read_metadata(gpt_run / "model.safetensors")
    assert meta["task"] == "text" and "".join(meta["vocab"]) == "".join(sorted(set(TEXT)))
    model, vocab = load_text_model(gpt_run / "model.safetensors")
    assert isinstance(model, hg.GPT) and model.block_size == 16 and len(vocab) == 28
    assert {p.name for p in gpt_run.iterdir()} >= {"model.safetensors", "scores.json", "curves.png"}


def test_train_gpt_logs_loss_and_tokens_per_second(tmp_path, capsys):
    (tmp_path / "t.txt").write_text(TEXT, encoding="utf-8")
    args = ["train", "--arch", "gpt", "--data", str(tmp_path / "t.txt"), "--layers", "1"]
    args += ["--heads", "1", "--width", "8", "--context", "8", "--steps", "4", "--eval-every", "2"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "step 2/4  loss" in out and "val_loss" in out and "tokens/s" in out
    assert "GPT, " in out and "vocabulary 28" in out


def test_generate_prints_the_prompt_and_its_continuation(gpt_run, capsys):
    path = str(gpt_run / "model.safetensors")
    assert main(["generate", path, "--prompt", "the q", "--tokens", "30", "--seed", "3"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("the q") and len(first) == len("the q") + 30 + 1
    assert main(["generate", path, "--prompt", "the q", "--tokens", "30", "--seed", "3"]) == 0
    assert capsys.readouterr().out == first  # the seed fixes the draws
    model, vocab = load_text_model(path)
    ids = torch.tensor([[vocab.index(c) for c in "the q"]])
    whole = model.generate(ids, 30, 0.7, 5, generator=torch.Generator().manual_seed(1))
    assert generate_text(model, vocab, "the q", 30, 0.7, 5, seed=1) == "".join(
        vocab[i] for i in whole[0].tolist()
    )  # token by token, the same draws as one generate() call


def test_generate_refuses_an_unknown_character_in_one_line(gpt_run, capsys):
    path = str(gpt_run / "model.safetensors")
    assert main(["generate", path, "--prompt", "the Жук", "--tokens", "3"]) == 1
    err = capsys.readouterr().err
    assert "outside the model's vocabulary of 28: 'Ж', 'к', 'у'" in err and err.count("\n") == 1
    assert main(["generate", path, "--temperature", "0"]) == 1
    assert "--temperature must be > 0" in capsys.readouterr().err
    assert main(["generate", path, "--prompt", ""]) == 1
    assert "--prompt: give at least one character" in capsys.readouterr().err


def test_generate_without_a_prompt_starts_from_a_newline_or_the_first_character(gpt_run, capsys):
    assert main(["generate", str(gpt_run / "model.safetensors"), "--tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith(" ")  # no newline in TEXT: its first character


def test_generate_refuses_a_model_that_is_not_a_text_model(tmp_path, capsys):
    hg.save(hg.Linear(2, 2), tmp_path / "lin.safetensors")
    assert main(["generate", str(tmp_path / "lin.safetensors")]) == 1
    assert (
        "is not a text model: train one with handgrad train --arch gpt" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "mnist1d"], "--arch gpt trains on text"),
        (["--width", "30", "--heads", "4"], "--width (30) must be divisible by --heads (4)"),
        (["--data", "no_such.txt"], "no such text file: no_such.txt"),
        (["--patience", "3"], "--arch gpt does not take --patience"),
        (["--epochs", "3"], "--arch gpt does not take --epochs"),
        (["--context", "0"], "--context must be >= 1, got 0"),
    ],
)
def test_gpt_run_refuses_bad_options(tmp_path, capsys, extra, message):
    assert main(["train", "--arch", "gpt", *extra, "--quiet", "--out", str(tmp_path / "g")]) == 1
    assert message in capsys.readouterr().err


# ---- handgrad bench --suite sequence ------------------------------------------------------------
def test_bench_sequence_suite(monkeypatch, capsys):
    tiny = [
        bench.Case(
            "tiny GRU",
            "gru",
            batch=4,
            seq=dict(input_size=2, hidden=3, steps=5, classes=3, bidirectional=True),
        ),
        bench.Case(
            "tiny GPT", "gpt", batch=2, seq=dict(vocab=7, layers=1, heads=2, width=8, context=6)
        ),
    ]
    monkeypatch.setitem(bench.SUITES, "sequence", tiny)
    assert main(["bench", "--suite", "sequence", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "tiny GRU" in out and "tiny GPT" in out


# ---- examples/mnist1d_residual.py: the paper's residual MLP --------------------------------------
def _example(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_residual_mlp_is_the_papers_formula():
    ex = _example("mnist1d_residual")
    model = ex.residual_mlp(7).to(dtype=torch.float64)
    W = {k: v for k, v in model.state_dict().items()}
    x = torch.randn(5, 40, dtype=torch.float64)
    h = torch.relu(x @ W["0.weight"].T + W["0.bias"])
    h = h + torch.relu(h @ W["2.fn.0.weight"].T + W["2.fn.0.bias"])  # h = h + relu(linear2(h))
    want = h @ W["3.weight"].T + W["3.bias"]
    with hg.no_cache():
        torch.testing.assert_close(model(x), want)
    assert hg.check.gradcheck(model, x).ok


def test_residual_example_trains(capsys):
    ex = _example("mnist1d_residual")
    assert ex.run("residual", 0, 60, 100, 1e-2) > 0.25  # chance is 0.1
    assert "residual seed 0: test accuracy" in capsys.readouterr().out
