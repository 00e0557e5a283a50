"""Module protocol and Sequential: chained gradients, state_dict, accumulation, moving."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from conftest import assert_close, upstream

import handgrad as hg
from handgrad.kernels import fill_outside


def _pair():
    """The same network in handgrad and torch.nn, float64, with identical weights."""
    torch.manual_seed(0)
    mine = hg.Sequential(
        hg.Linear(5, 8),
        hg.Tanh(),
        hg.Linear(8, 6),
        hg.ReLU(),
        hg.Dropout(0.0),
        hg.Linear(6, 4),
        hg.GELU(),
        hg.Linear(4, 3),
    ).to(torch.float64)
    ref = nn.Sequential(
        nn.Linear(5, 8),
        nn.Tanh(),
        nn.Linear(8, 6),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(6, 4),
        nn.GELU(),
        nn.Linear(4, 3),
    ).double()
    ref.load_state_dict(mine.state_dict())
    return mine, ref


def test_every_parameter_gradient_equals_autograd():
    mine, ref = _pair()
    x = torch.randn(7, 5, dtype=torch.float64)
    g = upstream((7, 3))
    xr = x.clone().requires_grad_(True)
    assert_close(mine(x), ref(xr))
    (ref(xr) * g).sum().backward()
    assert_close(mine.backward(g), xr.grad)
    named_ref = dict(ref.named_parameters())
    for name, p in mine.named_parameters():
        assert_close(p.grad, named_ref[name].grad, msg=lambda m, n=name: f"{n}: {m}")


def test_state_dict_keys_and_shapes_match_torch_both_ways():
    mine, ref = _pair()
    assert [(k, v.shape) for k, v in mine.state_dict().items()] == [
        (k, v.shape) for k, v in ref.state_dict().items()
    ]
    torch.manual_seed(9)
    other = nn.Sequential(
        nn.Linear(5, 8),
        nn.Tanh(),
        nn.Linear(8, 6),
        nn.ReLU(),
        nn.Dropout(0.0),
        nn.Linear(6, 4),
        nn.GELU(),
        nn.Linear(4, 3),
    ).double()
    mine.load_state_dict(other.state_dict())
    x = torch.randn(2, 5, dtype=torch.float64)
    assert_close(mine(x), other(x).detach())


def test_batchnorm_state_dict_keys_match_torch():
    mine = hg.Sequential(hg.Linear(3, 4), hg.BatchNorm1d(4))
    ref = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert list(mine.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(mine.state_dict())


def test_gradients_accumulate_and_zero_grad_clears():
    mine, _ = _pair()
    x = torch.randn(4, 5, dtype=torch.float64)
    g = upstream((4, 3))
    mine(x)
    mine.backward(g)
    first = [p.grad.clone() for p in mine.parameters()]
    mine(x)
    mine.backward(g)
    for p, f in zip(mine.parameters(), first):
        assert_close(p.grad, 2 * f)
    mine.zero_grad()
    assert all(p.grad is None for p in mine.parameters())
    mine(x)
    mine.backward(g)
    mine.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for p in mine.parameters())


def test_train_eval_to_return_self_and_reach_children():
    mine, _ = _pair()
    assert mine.eval() is mine and not any(m.training for m in mine.modules())
    assert mine.train() is mine and all(m.training for m in mine.modules())
    assert mine.to(torch.float32) is mine
    assert all(p.dtype == torch.float32 for p in mine.parameters())
    assert (
        mine.to(dtype=torch.bfloat16)(torch.randn(2, 5, dtype=torch.bfloat16)).dtype
        == torch.bfloat16
    )


def test_to_moves_gradients_and_keeps_integer_buffers():
    m = hg.Sequential(hg.Linear(3, 2), hg.BatchNorm1d(2))
    m(torch.randn(4, 3))
    m.backward(torch.ones(4, 2))
    m.to(torch.float64)
    assert m[0].weight.grad.dtype == torch.float64
    assert m[1].num_batches_tracked.dtype == torch.long


def test_load_state_dict_refuses_bad_dicts_and_changes_nothing():
    mine, _ = _pair()
    before = {k: v.clone() for k, v in mine.state_dict().items()}
    sd = dict(mine.state_dict())
    with pytest.raises(KeyError, match=r"missing keys \['7.bias'\]"):
        mine.load_state_dict({k: v for k, v in sd.items() if k != "7.bias"})
    bad = {**sd, "0.weight": torch.zeros(8, 6, dtype=torch.float64), "7.bias": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"'0.weight' expected shape \(8, 5\), got \(8, 6\)"):
        mine.load_state_dict(bad)
    for k, v in mine.state_dict().items():
        assert torch.equal(v, before[k])


def test_repr_lists_layers():
    text = repr(hg.Sequential(hg.Linear(2, 3), hg.ReLU()))
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text
    assert "(1): ReLU()" in text


def test_sequential_refuses_non_modules():
    with pytest.raises(TypeError, match="item 1 is Linear"):
        hg.Sequential(hg.ReLU(), nn.Linear(2, 2))


def test_summary_lists_shapes_and_parameter_counts(capsys):
    model = hg.Sequential(hg.Linear(64, 128), hg.ReLU(), hg.Dropout(0.2), hg.Linear(128, 10))
    text = model.summary((64,))
    assert "(None, 128)" in text and "8,320" in text and "total parameters: 9,610" in text
    assert text in capsys.readouterr().out
    assert model.training


def test_summary_of_an_ensemble_lists_its_members():
    members = [hg.Sequential(hg.Linear(4, 8), hg.ReLU(), hg.Linear(8, 2)), hg.Linear(4, 2)]
    text = hg.Ensemble(*members).summary((4,))
    rows = [line.split() for line in text.splitlines() if line.startswith("members.")]
    assert [(r[0], r[-2:]) for r in rows] == [
        ("members.0:", ["2)", "58"]),
        ("members.1:", ["2)", "10"]),
    ]
    assert "total parameters: 68" in text


@pytest.mark.parametrize("first", [lambda: hg.Linear(5, 8), lambda: hg.Neuron(5)])
def test_backward_params_gives_the_same_parameter_gradients(first):
    torch.manual_seed(0)
    a = hg.Sequential(first(), hg.Tanh(), hg.Linear(8 if isinstance(first(), hg.Linear) else 1, 3))
    b = hg.Sequential(*[m for m in a])  # the same layers
    x, g = torch.randn(4, 5), torch.randn(4, 3)
    a(x)
    a.backward(g)
    full = [p.grad.clone() for p in a.parameters()]
    a.zero_grad()
    b(x)
    assert b.backward_params(g) is None
    for p, f in zip(b.parameters(), full):
        assert torch.equal(p.grad, f)


def test_conv_backward_params():
    conv = hg.Conv1d(2, 3, 3)
    x, g = torch.randn(2, 2, 8), torch.randn(2, 3, 6)
    conv(x)
    conv.backward(g)
    full = [p.grad.clone() for p in conv.parameters()]
    conv.zero_grad()
    conv(x)
    conv.backward_params(g)
    assert all(torch.equal(p.grad, f) for p, f in zip(conv.parameters(), full))


def test_the_same_module_twice_works():
    """Once refused (a module kept one input); with the cache stack it is backpropagated once
    per use, in reverse, as torch's nn.Sequential with the same object twice."""
    torch.manual_seed(0)
    relu, lin = hg.ReLU(), hg.Linear(2, 2).to(torch.float64)
    mine = hg.Sequential(relu, lin, relu, lin).append(relu)
    ref_lin = nn.Linear(2, 2).double()
    ref_lin.load_state_dict(lin.state_dict())
    ref = nn.Sequential(nn.ReLU(), ref_lin, nn.ReLU(), ref_lin, nn.ReLU())
    x, g = torch.randn(5, 2, dtype=torch.float64), upstream((5, 2))
    xr = x.clone().requires_grad_(True)
    assert_close(mine(x), ref(xr))
    (ref(xr) * g).sum().backward()
    assert_close(mine.backward(g), xr.grad)
    assert_close(lin.weight.grad, ref_lin.weight.grad)
    assert_close(lin.bias.grad, ref_lin.bias.grad)
    assert len(mine.parameters()) == 2 and relu.pending() == 0


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: hg.Linear(3, 2), (4, 3)),
        (lambda: hg.ReLU(), (4, 3)),
        (lambda: hg.Dropout(0.5), (4, 3)),
        (lambda: hg.BatchNorm1d(3), (4, 3)),
        (lambda: hg.Conv1d(3, 2, 1), (4, 3, 5)),
        (lambda: hg.MaxPool1d(1), (4, 3, 5)),
        (lambda: hg.Neuron(3), (4, 3)),
    ],
)
def test_backward_releases_the_cache(make, shape):
    """One backward per forward, as torch without retain_graph: the memory goes early."""
    m = make()
    y = m(torch.randn(shape))
    m.backward(torch.ones_like(y))
    with pytest.raises(
        RuntimeError, match="more often than forward.*each forward allows one backward"
    ):
        m.backward(torch.ones_like(y))


def test_loss_backward_releases_too():
    loss = hg.MSELoss()
    loss(torch.zeros(3), torch.ones(3))
    loss.backward()
    with pytest.raises(RuntimeError, match="more often than forward"):
        loss.backward()


def test_fill_outside_sets_only_the_margin():
    buf = torch.arange(2 * 5 * 6, dtype=torch.float64).view(2, 5, 6)
    inside = buf[:, 1:4, 2:5].clone()
    fill_outside(buf, (1, 2), (3, 3), -1.0)
    assert torch.equal(buf[:, 1:4, 2:5], inside)
    margin = torch.ones(2, 5, 6, dtype=torch.bool)
    margin[:, 1:4, 2:5] = False
    assert (buf[margin] == -1).all()


# ---- the cache stack: k forwards, then k backwards in reverse ------------------------------------
def test_one_module_called_three_times_equals_the_unrolled_graph():
    """h ← tanh(W h + b) three times with the same weights (an RNN cell through time), then
    three backwards in reverse: the gradients of the shared W and b add up, as autograd's."""
    torch.manual_seed(0)
    cell = hg.Sequential(hg.Linear(4, 4), hg.Tanh()).to(torch.float64)
    ref = nn.Sequential(nn.Linear(4, 4), nn.Tanh()).double()
    ref.load_state_dict(cell.state_dict())
    x, g = torch.randn(3, 4, dtype=torch.float64), upstream((3, 4))
    h = x
    for _ in range(3):
        h = cell(h)
    assert cell[0].pending() == 3
    dh = g
    for _ in range(3):
        dh = cell.backward(dh)
    xr = x.clone().requires_grad_(True)
    (ref(ref(ref(xr))) * g).sum().backward()
    assert_close(h, ref(ref(ref(x))).detach())
    assert_close(dh, xr.grad)
    assert_close(cell[0].weight.grad, ref[0].weight.grad)
    assert_close(cell[0].bias.grad, ref[0].bias.grad)
    assert cell[0].pending() == 0
    with pytest.raises(RuntimeError, match=r"Tanh\(\)\.backward\(\) called more often"):
        cell.backward(g)


def test_backwards_pop_the_latest_forward_first():
    """Last in, first out: the second forward's input is used by the first backward."""
    lin = hg.Linear(2, 1, bias=False).to(torch.float64)
    a, b = torch.ones(1, 2, dtype=torch.float64), torch.full((1, 2), 3.0, dtype=torch.float64)
    lin(a)
    lin(b)
    lin.backward(torch.ones(1, 1, dtype=torch.float64))
    assert_close(lin.weight.grad, b)  # dL/dW = dyᵀ x with the latest x
    lin.backward(torch.ones(1, 1, dtype=torch.float64))
    assert_close(lin.weight.grad, a + b)


def test_no_cache_keeps_nothing_and_restores_the_mode():
    model = hg.Sequential(hg.Linear(3, 4), hg.BatchNorm1d(4), hg.ReLU(), hg.Dropout(0.5))
    assert hg.is_caching()
    with hg.no_cache():
        assert not hg.is_caching()
        with hg.no_cache():
            model(torch.randn(5, 3))
        assert not hg.is_caching()
    assert hg.is_caching()
    assert all(m.pending() == 0 for m in model.modules())
    with pytest.raises(RuntimeError, match=r"no_cache\(\) keep nothing"):
        model.backward(torch.ones(5, 4))

    @hg.no_cache()
    def look(x):
        return model(x)

    look(torch.randn(5, 3))
    assert all(m.pending() == 0 for m in model.modules()) and hg.is_caching()


def test_no_cache_is_per_thread():
    import threading

    seen = []
    with hg.no_cache():
        t = threading.Thread(target=lambda: seen.append(hg.is_caching()))
        t.start()
        t.join()
    assert seen == [True]


def test_clear_cache_drops_what_forwards_left():
    model = hg.Sequential(hg.Linear(3, 4), hg.ReLU())
    model(torch.randn(2, 3))
    model(torch.randn(2, 3))
    assert [m.pending() for m in model.modules()] == [0, 2, 2]
    assert model.clear_cache() is model
    assert all(m.pending() == 0 for m in model.modules())


# ---- shared weights --------------------------------------------------------------------------
def test_the_same_linear_at_two_places_is_one_parameter_stepped_once():
    torch.manual_seed(0)
    lin = hg.Linear(3, 3).to(torch.float64)
    mine = hg.Sequential(lin, hg.Tanh(), lin)
    ref_lin = nn.Linear(3, 3).double()
    ref_lin.load_state_dict(lin.state_dict())
    ref = nn.Sequential(ref_lin, nn.Tanh(), ref_lin)
    assert [k for k, _ in mine.named_parameters()] == [k for k, _ in ref.named_parameters()]
    assert list(mine.state_dict()) == list(ref.state_dict())  # torch lists both places
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    opt = hg.optim.SGD(mine.parameters(), lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    loss = hg.MSELoss()
    for _ in range(3):
        loss(mine(x), y)
        opt.zero_grad()
        mine.backward(loss.backward())
        opt.step()
        ref_opt.zero_grad()
        nn.functional.mse_loss(ref(x), y).backward()
        ref_opt.step()
    assert_close(lin.weight, ref_lin.weight.detach())
    assert_close(lin.bias, ref_lin.bias.detach())


def test_a_tensor_tied_between_two_modules():
    """A weight shared by two layers (as an embedding and its output layer): one parameter,
    the sum of both uses' gradients, and the tie survives .to()."""
    torch.manual_seed(0)
    a, b = hg.Linear(4, 4, bias=False), hg.Linear(4, 4)
    b.weight = a.weight
    model = hg.Sequential(a, hg.Tanh(), b).to(torch.float64)
    assert model[0].weight is model[2].weight
    assert [k for k, _ in model.named_parameters()] == ["0.weight", "2.bias"]
    x, g = torch.randn(5, 4, dtype=torch.float64), upstream((5, 4))
    W = model[0].weight.detach().clone().requires_grad_(True)
    bias = model[2].bias.detach().clone().requires_grad_(True)
    ((torch.tanh(x @ W.T) @ W.T + bias) * g).sum().backward()
    model(x)
    model.backward(g)
    assert_close(model[0].weight.grad, W.grad)
    assert_close(model[2].bias.grad, bias.grad)


# ---- freezing ----------------------------------------------------------------------------------
def test_a_frozen_layer_gets_no_gradient_and_no_step_but_passes_dx_on():
    torch.manual_seed(0)
    mine = hg.Sequential(hg.Linear(3, 5), hg.ReLU(), hg.Linear(5, 2)).to(torch.float64)
    ref = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double()
    ref.load_state_dict(mine.state_dict())
    ref[2].requires_grad_(False)
    assert mine[2].freeze() is mine[2] and mine[2].frozen
    frozen_before = mine[2].weight.clone()
    opt = hg.optim.Adam(mine.parameters(), lr=0.1)
    x, g = torch.randn(4, 3, dtype=torch.float64), upstream((4, 2))
    xr = x.clone().requires_grad_(True)
    (ref(xr) * g).sum().backward()
    mine(x)
    assert_close(mine.backward(g), xr.grad)  # the gradient flows through the frozen layer
    assert mine[2].weight.grad is None and mine[2].bias.grad is None
    assert_close(mine[0].weight.grad, ref[0].weight.grad)
    opt.step()
    assert torch.equal(mine[2].weight, frozen_before)
    mine.unfreeze()
    mine(x)
    mine.backward(g)
    assert mine[2].weight.grad is not None and not any(m.frozen for m in mine.modules())


def test_freeze_reaches_children():
    model = hg.Sequential(hg.Linear(2, 2), hg.Sequential(hg.Linear(2, 2)))
    model.freeze()
    assert all(m.frozen for m in model.modules())


def test_get_submodule_follows_dotted_paths_as_torch():
    inner = hg.Linear(2, 2)
    model = hg.Sequential(hg.ReLU(), hg.ModuleDict({"enc": hg.Sequential(inner)}))
    assert model.get_submodule("1.enc.0") is inner and model.get_submodule("") is model
    with pytest.raises(AttributeError, match="no child 'dec'"):
        model.get_submodule("1.dec")
