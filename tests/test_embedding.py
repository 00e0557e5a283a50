"""Embedding against torch.nn.Embedding in float64: every option (padding_idx, max_norm with
its norm_type, scale_grad_by_freq) on batched, unbatched, scalar and empty ids, with repeats
(the scatter-add), plus _weight, _freeze, from_pretrained, the op pair and the bad inputs."""

from __future__ import annotations

import inspect
import itertools

import pytest
import torch
import torch.nn as nn
from parity import assert_matches_torch

import handgrad as hg
from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError

F64 = torch.float64
IDS = {
    "batched": torch.tensor([[1, 3, 3, 0], [6, 1, 3, 2]]),
    "unbatched": torch.tensor([4, 4, 0, 6, 4]),
    "scalar": torch.tensor(3),
    "empty": torch.zeros(0, 4, dtype=torch.long),
    "int32": torch.tensor([[0, 2], [2, 5]], dtype=torch.int32),
}
OPTIONS = [
    (padding_idx, max_norm, norm_type, scale)
    for padding_idx, (max_norm, norm_type), scale in itertools.product(
        [None, 0, -1, 3], [(None, 2.0), (1.0, 2.0), (1.0, 1.0)], [False, True]
    )
]


@pytest.mark.parametrize("ids", IDS, ids=str)
@pytest.mark.parametrize("padding_idx,max_norm,norm_type,scale", OPTIONS)
def test_embedding_matches_torch(ids, padding_idx, max_norm, norm_type, scale):
    args = (7, 3, padding_idx, max_norm, norm_type, scale)
    torch.manual_seed(0)
    ref = nn.Embedding(*args)
    torch.manual_seed(0)
    mine = hg.Embedding(*args)  # positional: torch's order
    assert torch.equal(mine.weight, ref.weight.detach())  # the same draws, padding row zeroed
    assert_matches_torch(ref, [IDS[ids]], hg_module=mine)
    assert_matches_torch(nn.Embedding(*args), [IDS[ids]])  # through from_torch


def test_max_norm_renormalizes_the_table_in_place_as_torch():
    torch.manual_seed(0)
    ref = nn.Embedding(6, 4, max_norm=0.5).double()
    mine = hg.from_torch(ref)
    ids = torch.tensor([[0, 2, 2], [5, 0, 1]])
    with torch.no_grad():
        ref(ids)
    mine(ids)
    torch.testing.assert_close(mine.weight, ref.weight.detach())
    assert mine.weight[3].norm() > 0.5  # a row not looked up is left alone


def test_gradient_is_a_scatter_add():
    e = hg.Embedding(4, 2, padding_idx=1)
    ids = torch.tensor([0, 0, 1, 3, 0])
    e(ids)
    dy = torch.arange(10.0).reshape(5, 2)
    assert e.backward(dy) is None  # integer ids: no gradient
    expected = torch.tensor([[0.0 + 2 + 8, 1 + 3 + 9], [0, 0], [0, 0], [6, 7]])
    torch.testing.assert_close(e.weight.grad, expected)


def test_weight_and_freeze_and_from_pretrained():
    table = torch.randn(5, 3, dtype=F64)
    e = hg.Embedding(5, 3, _weight=table)
    assert e.weight is table and e.config()["_freeze"] is False
    frozen = hg.Embedding.from_pretrained(table)
    assert frozen.weight is table and frozen.frozen and frozen.config()["_freeze"]
    frozen(torch.tensor([1, 2]))
    frozen.backward(torch.ones(2, 3, dtype=F64))
    assert table.grad is None  # _freeze: no gradient
    trainable = hg.Embedding.from_pretrained(table, freeze=False, padding_idx=2)
    assert not trainable.frozen and torch.equal(trainable.weight[2], table[2])  # not zeroed
    assert not hg.to_torch(frozen).weight.requires_grad  # to_torch passes _freeze=True
    y = frozen(torch.tensor([[4]]))
    torch.testing.assert_close(y, table[4].reshape(1, 1, 3))


def test_device_and_dtype_and_save(tmp_path):
    e = hg.Embedding(5, 3, padding_idx=2, dtype=F64, device="cpu")
    assert e.weight.dtype == F64 and list(e.state_dict()) == ["weight"]
    hg.save(e, tmp_path / "e.safetensors")
    loaded = hg.load(tmp_path / "e.safetensors")
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    assert loaded.config() == e.config()


def _signature(cls):
    return [(p.name, p.kind, p.default) for p in inspect.signature(cls).parameters.values()]


def test_signature_is_torchs():
    assert _signature(hg.Embedding) == _signature(nn.Embedding)


def test_op_pair_gradcheck():
    """The table's gradient against autograd and finite differences (the ids are skipped).
    padding_idx and scale_grad_by_freq change the gradient on purpose (torch's definition, not
    the derivative): test_op_pair_against_autograd compares those with torch's embedding."""
    ids = torch.tensor([[5, 0, 5], [2, 2, 1]])
    w = torch.randn(6, 3, dtype=F64)
    report = hg.check.gradcheck((ops.embedding_forward, ops.embedding_backward), ids, w)
    assert report.ok, str(report)


def test_op_pair_against_autograd():
    w = torch.randn(6, 3, dtype=F64)
    ids = torch.tensor([[5, 0, 5], [2, 2, 2]])
    dy = torch.randn(2, 3, 3, dtype=F64)
    for padding_idx, scale in itertools.product([None, 2], [False, True]):
        y, cache = ops.embedding_forward(ids, w, padding_idx, None, 2.0, scale)
        leaf = w.clone().requires_grad_(True)
        import torch.nn.functional as F

        expected = F.embedding(ids, leaf, padding_idx, scale_grad_by_freq=scale)
        torch.testing.assert_close(y, expected.detach())
        (auto,) = torch.autograd.grad((expected * dy).sum(), leaf)
        dids, dw = ops.embedding_backward(dy, cache)
        assert dids is None
        torch.testing.assert_close(dw, auto)


@pytest.mark.parametrize(
    "build,error,match",
    [
        (lambda: hg.Embedding(0, 3), InputError, "num_embeddings"),
        (lambda: hg.Embedding(4, 2.5), ArgumentTypeError, "embedding_dim"),
        (lambda: hg.Embedding(4, 3, padding_idx=4), InputError, "padding_idx must be within"),
        (lambda: hg.Embedding(4, 3, padding_idx=-5), InputError, "padding_idx must be within"),
        (lambda: hg.Embedding(4, 3, sparse=True), NotSupportedError, "not supported: sparse=True"),
        (lambda: hg.Embedding(4, 3, max_norm=-1.0), InputError, "max_norm"),
        (lambda: hg.Embedding(4, 3, _weight=torch.zeros(3, 3)), ShapeError, "Shape of weight"),
        (lambda: hg.Embedding.from_pretrained(torch.zeros(3)), ShapeError, "2-dimensional"),
    ],
)
def test_bad_constructor_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(
    "ids,error,match",
    [
        (torch.tensor([0.0, 1.0]), ShapeError, "expected int64 or int32 ids"),
        (torch.tensor([0, 4]), InputError, r"index out of range.*\[0, 4\)"),
        (torch.tensor([-1, 2]), InputError, "index out of range"),
        ([0, 1], ArgumentTypeError, "expected a tensor"),
    ],
)
def test_bad_ids(ids, error, match):
    with pytest.raises(error, match=match):
        hg.Embedding(4, 3)(ids)


def test_from_torch_refuses_sparse():
    with pytest.raises(NotSupportedError, match="sparse"):
        hg.from_torch(nn.Embedding(4, 3, sparse=True))


def test_backward_checks_gradient_shape_and_order():
    e = hg.Embedding(4, 3)
    with pytest.raises(hg.errors.UsageError, match="more often than forward"):
        e.backward(torch.zeros(2, 3))
    e(torch.tensor([1, 2]))
    with pytest.raises(ShapeError, match="gradient of the output's shape"):
        e.backward(torch.zeros(3, 3))
