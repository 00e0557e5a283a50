"""Containers and composition: Sequential, ModuleList, ModuleDict, Residual, Ensemble, a model
with two branches, a module with two outputs. Each against the same graph in float64 torch
autograd."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from conftest import assert_close, upstream

import handgrad as hg
from handgrad import ops

F64 = torch.float64


def test_sequential_with_names_has_torch_keys_and_slices():
    mine = hg.Sequential(OrderedDict(fc=hg.Linear(3, 4), act=hg.ReLU(), out=hg.Linear(4, 2)))
    ref = nn.Sequential(OrderedDict(fc=nn.Linear(3, 4), act=nn.ReLU(), out=nn.Linear(4, 2)))
    assert list(mine.state_dict()) == list(ref.state_dict())
    tail = mine[1:]
    assert isinstance(tail, hg.Sequential) and list(tail.state_dict()) == ["out.weight", "out.bias"]
    x = torch.randn(2, 3)
    assert_close(hg.to_torch(mine)(x), mine(x))
    assert list(hg.from_torch(ref).state_dict()) == list(ref.state_dict())


def test_module_list_and_dict_keys_match_torch():
    mine = hg.ModuleList([hg.Linear(2, 3), hg.ReLU(), hg.Linear(3, 1)])
    ref = nn.ModuleList([nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)])
    assert list(mine.state_dict()) == list(ref.state_dict()) and len(mine) == 3
    mine.append(hg.Linear(1, 1))
    assert list(mine.state_dict())[-2:] == ["3.weight", "3.bias"] and len(mine[1:3]) == 2
    d = hg.ModuleDict({"enc": hg.Linear(2, 3), "dec": hg.Linear(3, 2)})
    ref_d = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    assert list(d.state_dict()) == list(ref_d.state_dict())
    assert list(d) == ["enc", "dec"] and "enc" in d and isinstance(d["dec"], hg.Linear)
    back = hg.from_torch(ref_d)
    assert isinstance(back, hg.ModuleDict) and torch.equal(back["enc"].weight, ref_d["enc"].weight)
    assert isinstance(hg.to_torch(d), nn.ModuleDict)
    with pytest.raises(TypeError, match="ModuleList: item 0 is int"):
        hg.ModuleList([3])
    with pytest.raises(KeyError, match="without '.'"):
        d["a.b"] = hg.ReLU()


class Stack(hg.Module):
    """A user model that holds its layers in a ModuleList and runs them in a loop."""

    def __init__(self, width: int, depth: int) -> None:
        self.width, self.depth = width, depth
        self.layers = hg.ModuleList([hg.Linear(width, width) for _ in range(depth)])
        self.act = hg.Tanh()  # one module, used after every layer

    def config(self):
        return {"width": self.width, "depth": self.depth}

    def forward(self, x):
        for layer in self.layers:
            x = self.act(layer(x))
        return x

    def backward(self, dy):
        for layer in reversed(list(self.layers)):
            dy = layer.backward(self.act.backward(dy))
        return dy


def test_a_model_with_a_module_list_and_a_shared_activation():
    torch.manual_seed(0)
    mine = Stack(4, 3).to(F64)
    assert [k for k, _ in mine.named_parameters()][:2] == ["layers.0.weight", "layers.0.bias"]
    ref = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)]).double()
    ref.load_state_dict({k[len("layers.") :]: v for k, v in mine.state_dict().items()})
    x, g = torch.randn(5, 4, dtype=F64), upstream((5, 4))
    xr = x.clone().requires_grad_(True)
    h = xr
    for layer in ref:
        h = torch.tanh(layer(h))
    (h * g).sum().backward()
    assert_close(mine(x), h.detach())
    assert_close(mine.backward(g), xr.grad)
    for i in range(3):
        assert_close(mine.layers[i].weight.grad, ref[i].weight.grad)


def test_residual_equals_autograd_and_round_trips(tmp_path):
    torch.manual_seed(0)
    block = hg.Residual(hg.Sequential(hg.Linear(4, 8), hg.GELU(), hg.Linear(8, 4))).to(F64)
    f = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 4)).double()
    f.load_state_dict({k[len("fn.") :]: v for k, v in block.state_dict().items()})
    x, g = torch.randn(3, 4, dtype=F64), upstream((3, 4))
    xr = x.clone().requires_grad_(True)
    ((xr + f(xr)) * g).sum().backward()
    assert_close(block(x), (x + f(x)).detach())
    assert_close(block.backward(g), xr.grad)
    assert_close(block.fn[0].weight.grad, f[0].weight.grad)
    loaded = hg.load(hg.save(block, tmp_path / "r.safetensors"))
    assert isinstance(loaded, hg.Residual) and torch.equal(loaded(x), block.eval()(x))
    with pytest.raises(ValueError, match="Residual: fn must keep the input's shape"):
        hg.Residual(hg.Linear(4, 2))(torch.randn(3, 4))
    with pytest.raises(TypeError, match="not supported: Residual"):
        hg.to_torch(block)


@pytest.mark.parametrize("shape", [(5, 3), (1, 3), (0, 3)])
def test_ensemble_is_the_mean_of_its_members_as_autograd_computes_it(shape, tmp_path):
    torch.manual_seed(0)
    members = [
        hg.Sequential(hg.Linear(3, 6), hg.Tanh(), hg.Linear(6, 2)),
        hg.Linear(3, 2),
        hg.Sequential(hg.Linear(3, 4), hg.ReLU(), hg.Linear(4, 2)),
    ]
    ens = hg.Ensemble(*members).to(F64)
    refs = [hg.to_torch(m) for m in members]
    x, g = torch.randn(*shape, dtype=F64) * 3, upstream((shape[0], 2))
    xr = x.clone().requires_grad_(True)
    ((sum(r(xr) for r in refs) / 3) * g).sum().backward()
    assert_close(ens(x), (sum(r(x) for r in refs) / 3).detach())
    assert_close(ens.backward(g), xr.grad)
    for m, r in zip(members, refs):
        for (name, p), q in zip(m.named_parameters(), r.parameters()):
            assert_close(p.grad, q.grad, msg=name)
    ens(x)  # backward_params gives the same parameter gradients, without dL/dx
    for p in ens.parameters():
        p.grad = None
    ens.backward_params(g)
    for m, r in zip(members, refs):
        for p, q in zip(m.parameters(), r.parameters()):
            assert_close(p.grad, q.grad)
    assert list(ens.state_dict())[:2] == ["members.0.0.weight", "members.0.0.bias"]
    loaded = hg.load(hg.save(ens, tmp_path / "e.safetensors"))
    assert isinstance(loaded, hg.Ensemble) and torch.equal(loaded(x), ens(x))


def test_ensemble_refuses_members_that_disagree_and_has_no_torch_twin():
    with pytest.raises(ValueError, match="Ensemble: give at least one member"):
        hg.Ensemble()
    with pytest.raises(TypeError, match="Ensemble: item 1 is Linear, not a handgrad Module"):
        hg.Ensemble(hg.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Ensemble: member 1 gives \\(4, 3\\), member 0 gives"):
        hg.Ensemble(hg.Linear(2, 2), hg.Linear(2, 3))(torch.randn(4, 2))
    with pytest.raises(TypeError, match="not supported: Ensemble"):
        hg.to_torch(hg.Ensemble(hg.Linear(2, 2)))


class Gated(hg.Module):
    """Two branches of one input, multiplied, then a head: y = head(tanh(A x) ⊙ σ(B x))."""

    torch_name = None

    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        self.d_in, self.d_hidden, self.d_out = d_in, d_hidden, d_out
        self.value = hg.Sequential(hg.Linear(d_in, d_hidden), hg.Tanh())
        self.gate = hg.Sequential(hg.Linear(d_in, d_hidden), hg.Sigmoid())
        self.head = hg.Linear(d_hidden, d_out)

    def config(self):
        return {"d_in": self.d_in, "d_hidden": self.d_hidden, "d_out": self.d_out}

    def forward(self, x):
        h, cache = ops.mul_forward(self.value(x), self.gate(x))
        self.push_cache(cache)
        return self.head(h)

    def backward(self, dy):
        dh = self.head.backward(dy)
        dv, dg = ops.mul_backward(dh, self.pop_cache())
        return self.value.backward(dv) + self.gate.backward(dg)  # x feeds both: they add


def test_a_two_branch_model_equals_autograd_and_round_trips(tmp_path):
    torch.manual_seed(0)
    mine = Gated(3, 5, 2).to(F64)
    sd = mine.state_dict()
    assert list(sd) == [
        "value.0.weight",
        "value.0.bias",
        "gate.0.weight",
        "gate.0.bias",
        "head.weight",
        "head.bias",
    ]
    leaves = {k: v.clone().requires_grad_(True) for k, v in sd.items()}
    x, g = torch.randn(4, 3, dtype=F64), upstream((4, 2))
    xr = x.clone().requires_grad_(True)

    def lin(t, name):
        return t @ leaves[f"{name}.weight"].T + leaves[f"{name}.bias"]

    h = torch.tanh(lin(xr, "value.0")) * torch.sigmoid(lin(xr, "gate.0"))
    (lin(h, "head") * g).sum().backward()
    assert_close(mine(x), lin(h, "head").detach())
    assert_close(mine.backward(g), xr.grad)
    for name, p in mine.named_parameters():
        assert_close(p.grad, leaves[name].grad, msg=lambda m, n=name: f"{n}: {m}")
    loaded = hg.load(hg.save(mine, tmp_path / "gated.safetensors"))
    assert type(loaded) is Gated and torch.equal(loaded(x), mine.eval()(x))
    assert hg.check.gradcheck(Gated(3, 4, 2), torch.randn(5, 3)).ok


class Halves(hg.Module):
    """Two outputs: the first and second half of the last dim (backward takes one gradient
    per output, None for an unused one)."""

    def forward(self, x):
        (a, b), cache = ops.split_forward(x, x.shape[-1] // 2, -1)
        self.push_cache(cache)
        return a, b

    def backward(self, da, db):
        return ops.split_backward((da, db), self.pop_cache())


class Product(hg.Module):
    """Two inputs: y = a ⊙ b; backward returns one gradient per input."""

    def forward(self, a, b):
        y, cache = ops.mul_forward(a, b)
        self.push_cache(cache)
        return y

    def backward(self, dy):
        return ops.mul_backward(dy, self.pop_cache())


def test_two_outputs_feed_two_inputs_in_a_sequential():
    model = hg.Sequential(hg.Linear(3, 4), Halves(), Product()).to(F64)
    W = model[0].weight.detach().clone().requires_grad_(True)
    b = model[0].bias.detach().clone().requires_grad_(True)
    x, g = torch.randn(5, 3, dtype=F64), upstream((5, 2))
    xr = x.clone().requires_grad_(True)
    z = xr @ W.T + b
    ((z[:, :2] * z[:, 2:]) * g).sum().backward()
    assert_close(model(x), (z[:, :2] * z[:, 2:]).detach())
    assert_close(model.backward(g), xr.grad)
    assert_close(model[0].weight.grad, W.grad)


def test_an_unused_output_takes_none():
    halves = Halves()
    x = torch.randn(2, 6, dtype=F64)
    a, _ = halves(x)
    dx = halves.backward(torch.ones_like(a), None)
    assert torch.equal(dx, torch.cat([torch.ones(2, 3), torch.zeros(2, 3)], 1).to(F64))
    report = hg.check.gradcheck(Halves(), torch.randn(3, 4))
    assert report.ok and {c.name for c in report.comparisons} == {"input 0"}
