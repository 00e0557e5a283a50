"""save/load, checkpoints and resume, torch interop."""

from __future__ import annotations

import os
import struct

import pytest
import torch
import torch.nn as nn

import handgrad as hg
from handgrad import io
from handgrad.errors import NotSupportedError


def _model():
    torch.manual_seed(0)
    return hg.Sequential(
        hg.Linear(4, 8),
        hg.GELU("tanh"),
        hg.BatchNorm1d(8),
        hg.Dropout(0.2),
        hg.Linear(8, 6),
        hg.LeakyReLU(0.2),
        hg.Softplus(2.0),
        hg.ELU(0.5),
        hg.Linear(6, 3),
        hg.LogSoftmax(dim=1),
    ).eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_save_load_identical_outputs(tmp_path, dtype):
    model = _model().to(dtype)
    path = hg.save(model, tmp_path / "m.safetensors")
    x = torch.randn(5, 4, dtype=dtype)
    loaded = hg.load(path)
    assert torch.equal(loaded(x), model(x)) and repr(loaded) == repr(model)
    assert not loaded.training


def test_load_does_not_touch_the_global_rng(tmp_path):
    path = hg.save(_model(), tmp_path / "m.safetensors")
    torch.manual_seed(1)
    hg.load(path)
    after = torch.rand(1)
    torch.manual_seed(1)
    assert torch.equal(after, torch.rand(1))


def test_truncated_and_foreign_files_are_refused_by_name(tmp_path):
    path = hg.save(_model(), tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.safetensors is not a handgrad model file"):
        hg.load(tmp_path / "cut.safetensors")
    (tmp_path / "tiny").write_bytes(b"abc")
    with pytest.raises(ValueError, match="tiny is not a handgrad model file"):
        hg.load(tmp_path / "tiny")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ValueError, match=r"foreign\.safetensors .*without handgrad's architecture"):
        hg.load(tmp_path / "foreign.safetensors")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        hg.load(tmp_path / "nothing-here")


def test_unknown_layer_type_in_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file(
        {},
        str(tmp_path / "evil.safetensors"),
        {"format": io.FORMAT, "architecture": '{"type": "os.system", "command": "rm"}'},
    )
    with pytest.raises(ValueError, match="unknown layer type 'os.system'"):
        hg.load(tmp_path / "evil.safetensors")


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = hg.save(_model(), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def crash(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        hg.save(hg.Sequential(hg.Linear(2, 2)), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_to_torch_and_back_give_the_same_outputs():
    model = _model()
    x = torch.randn(5, 4)
    ref = hg.to_torch(model)
    assert isinstance(ref, nn.Sequential) and not ref.training
    torch.testing.assert_close(ref(x), model(x))
    back = hg.from_torch(ref)
    torch.testing.assert_close(back(x), model(x))
    assert list(back.state_dict()) == list(model.state_dict())


def test_from_torch_of_a_fresh_torch_model():
    torch.manual_seed(0)
    ref = nn.Sequential(
        nn.Flatten(), nn.Linear(6, 4), nn.SiLU(), nn.Linear(4, 2), nn.Softmax(dim=1)
    )
    mine = hg.from_torch(ref)
    x = torch.randn(3, 2, 3)
    torch.testing.assert_close(mine(x), ref(x))


def test_neuron_to_torch():
    n = hg.Neuron(3)
    x = torch.randn(4, 3)
    torch.testing.assert_close(hg.to_torch(n)(x), n(x))


def test_interop_refuses_what_it_cannot_map():
    with pytest.raises(NotSupportedError, match="not supported: Conv3d"):
        hg.from_torch(nn.Conv3d(1, 1, 3))
    with pytest.raises(TypeError, match="not supported: Conv3d"):  # also torch's TypeError
        hg.from_torch(nn.Sequential(nn.Linear(2, 2), nn.Conv3d(1, 1, 3)))

    class Mine(hg.Module):
        def forward(self, x):
            return x

    with pytest.raises(NotSupportedError, match="to_torch: not supported: Mine"):
        hg.to_torch(hg.Sequential(Mine()))


def test_from_torch_refuses_an_option_it_cannot_reproduce_by_name():
    ref = nn.Linear(3, 2)
    ref.scale = 2.0  # an option no config rebuilds (a patched torch class): refused, not dropped
    with pytest.raises(NotSupportedError, match=r"from_torch: Linear: not supported: scale=2.0"):
        hg.from_torch(ref)


def _run(epochs, model, opt, sched, data, start=0):
    return hg.fit(
        model,
        hg.CrossEntropyLoss(),
        opt,
        data,
        epochs=epochs,
        batch_size=32,
        scheduler=sched,
        progress=False,
        seed=3,
        initial_epoch=start,
    )


def test_checkpoint_resume_equals_uninterrupted_run(tmp_path):
    data = hg.datasets.spiral()

    def fresh():
        torch.manual_seed(0)
        m = hg.Sequential(hg.Linear(2, 16), hg.ReLU(), hg.Dropout(0.2), hg.Linear(16, 3))
        o = hg.optim.Adam(m.parameters(), lr=0.01)
        return m, o, hg.optim.StepLR(o, 2, 0.5)

    m1, o1, s1 = fresh()
    _run(6, m1, o1, s1, data)

    m2, o2, s2 = fresh()
    _run(3, m2, o2, s2, data)
    path = hg.save_checkpoint(tmp_path / "ck.safetensors", m2, o2, epoch=3, scheduler=s2)
    torch.manual_seed(999)  # a new process would have another RNG state
    m3, o3, s3 = fresh()
    state = hg.load_checkpoint(path, m3, o3, s3)
    assert state["epoch"] == 3
    _run(6, m3, o3, s3, data, start=3)
    for p, q in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_builds_model_and_optimizer(tmp_path):
    model = _model()
    opt = hg.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.1)
    path = hg.save_checkpoint(tmp_path / "c.safetensors", model, opt, epoch=7)
    state = hg.load_checkpoint(path)
    rebuilt = state["optimizer"]
    assert isinstance(rebuilt, hg.optim.AdamW) and rebuilt.param_groups[0]["weight_decay"] == 0.1
    with pytest.raises(ValueError, match="not a handgrad checkpoint"):
        hg.load_checkpoint(hg.save(model, tmp_path / "m.safetensors"))


def test_header_length_is_checked(tmp_path):
    (tmp_path / "h").write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="truncated"):
        hg.load(tmp_path / "h")


# ---- files written before core v2, ties, classes of the user's -----------------------------------
DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("name", ["mlp", "cnn", "cnn1", "neuron"])
def test_model_files_written_before_core_v2_load_and_give_the_same_outputs(name):
    """tests/data: written by handgrad at db9d6a2 (before the registry and the cache stack)."""
    from safetensors.torch import load_file

    expected = load_file(os.path.join(DATA, "v1_expected.safetensors"))
    model = hg.load(os.path.join(DATA, f"v1_{name}.safetensors"))
    assert io.read_metadata(os.path.join(DATA, f"v1_{name}.safetensors")) == {
        "note": "written before core v2"
    }
    assert torch.equal(model(expected[f"{name}.input"]), expected[f"{name}.output"])


def test_checkpoint_written_before_core_v2_resumes():
    state = hg.load_checkpoint(os.path.join(DATA, "v1_checkpoint.safetensors"))
    assert state["epoch"] == 3 and isinstance(state["optimizer"], hg.optim.Adam)
    assert all(s["step"] == 1 for s in state["optimizer"].state.values())
    model, opt = state["model"], state["optimizer"]
    x, y = torch.randn(6, 6), torch.randint(0, 3, (6,))
    loss = hg.CrossEntropyLoss()
    loss(model.train()(x), y)
    opt.zero_grad()
    model.backward(loss.backward())
    opt.step()


def test_tied_weights_are_stored_once_and_tied_again(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    a, b = hg.Linear(4, 4), hg.Linear(4, 4)
    b.weight = a.weight
    shared = hg.Linear(4, 4)
    model = hg.Sequential(a, hg.Tanh(), b, shared, hg.ReLU(), shared)
    path = hg.save(model, tmp_path / "tied.safetensors")
    assert set(load_file(path)) == {"0.weight", "0.bias", "2.bias", "3.weight", "3.bias"}
    loaded = hg.load(path)
    assert loaded[2].weight is loaded[0].weight and loaded[5] is loaded[3]
    assert len(loaded.parameters()) == len(model.parameters()) == 5
    x = torch.randn(3, 4)
    assert torch.equal(loaded(x), model(x))
    ckpt = io.save_checkpoint(
        tmp_path / "c.safetensors", model, hg.optim.SGD(model.parameters(), lr=0.1), 1
    )
    again = hg.load_checkpoint(ckpt)["model"]
    assert again[2].weight is again[0].weight and torch.equal(again(x), model(x))


class Block(hg.Module):
    """A user's block, importable as test_io:Block: saved by that name, loaded again."""

    def __init__(self, width: int, scale: float = 1.0) -> None:
        self.width, self.scale = width, scale
        self.inner = hg.Residual(hg.Sequential(hg.Linear(width, width), hg.Tanh()))

    def config(self):
        return {"width": self.width, "scale": self.scale}

    def forward(self, x):
        return self.inner(x) * self.scale

    def backward(self, dy):
        return self.inner.backward(dy * self.scale)


def test_a_model_of_user_classes_and_containers_round_trips(tmp_path):
    torch.manual_seed(0)
    model = hg.Sequential(Block(3, 0.5), hg.Linear(3, 3), hg.ModuleList([Block(3)]))
    path = hg.save(model, tmp_path / "user.safetensors")
    arch = io.architecture(model)
    assert (
        arch["layers"][0]["type"] == "test_io:Block" and arch["layers"][2]["type"] == "ModuleList"
    )
    loaded = hg.load(path)
    x = torch.randn(4, 3)
    assert type(loaded[0]) is Block and loaded[0].scale == 0.5
    assert list(loaded.state_dict()) == list(model.state_dict())
    assert torch.equal(loaded[1](loaded[0](x)), model[1](model[0](x)))


def test_load_names_a_class_it_cannot_find(tmp_path):
    from safetensors.torch import save_file

    save_file(
        {},
        str(tmp_path / "m.safetensors"),
        {"format": io.FORMAT, "architecture": '{"type": "my_lost_package.models:Block"}'},
    )
    with pytest.raises(ValueError, match=r"class Block from my_lost_package\.models"):
        hg.load(tmp_path / "m.safetensors")


def test_a_class_defined_in_a_function_cannot_be_saved(tmp_path):
    class Local(hg.Module):
        pass

    with pytest.raises(TypeError, match="Local cannot be saved"):
        hg.save(hg.Sequential(Local()), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_frozen_layer_stays_frozen_both_ways():
    ref = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    ref[0].requires_grad_(False)
    mine = hg.from_torch(ref)
    assert [m.frozen for _, m in mine.children()] == [True, False]
    back = hg.to_torch(mine)
    assert [p.requires_grad for p in back.parameters()] == [False, False, True, True]
