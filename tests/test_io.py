"""save/load, checkpoints and resume, torch interop."""

from __future__ import annotations

import os
import struct

import pytest
import torch
import torch.nn as nn

import handgrad as hg
from handgrad import io


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
    with pytest.raises(TypeError, match="handgrad has no equivalent of Conv3d"):
        hg.from_torch(nn.Conv3d(1, 1, 3))


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
    assert isinstance(state["optimizer"], hg.optim.AdamW) and state["optimizer"].weight_decay == 0.1
    with pytest.raises(ValueError, match="not a handgrad checkpoint"):
        hg.load_checkpoint(hg.save(model, tmp_path / "m.safetensors"))


def test_header_length_is_checked(tmp_path):
    (tmp_path / "h").write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="truncated"):
        hg.load(tmp_path / "h")
