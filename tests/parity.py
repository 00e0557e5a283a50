"""The conformance check every parity test uses: a torch.nn module against its handgrad twin.

    assert_matches_torch(nn.Conv2d(4, 4, 3, groups=2), [x])

builds the handgrad twin with from_torch (so the conversion is checked too), runs both on
copies of the same float64 inputs, and compares

- the forward outputs (every element of a tuple output; integer outputs such as pooling
  indices exactly),
- dL/dinput for every floating input (a loss: its prediction, or the inputs named by
  `differentiate`), for the same random upstream gradient, handgrad's
  backward against torch.autograd,
- every parameter's gradient, by state_dict name,
- every buffer after the forward (running statistics),
- and that to_torch(twin) builds a module equal to the original.

`hg_module` checks a module built by hand instead (the signature check: hg.Conv2d(*args)
against nn.Conv2d(*args)); its state is loaded from the torch module first.
Losses work the same way: their backward takes no upstream gradient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

import handgrad as hg
from handgrad.interop import _same

F64 = torch.float64


def _tuple(v: Any) -> tuple[Any, ...]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _flat(v: Any) -> list[Any]:
    """The leaves of a nested tuple/list (LSTM's (output, (h_n, c_n))), in order."""
    if isinstance(v, (tuple, list)):
        return [leaf for item in v for leaf in _flat(item)]
    return [v]


def _map(fn: Any, v: Any) -> Any:
    """fn applied to every leaf of a nested tuple/list, keeping its structure."""
    if isinstance(v, (tuple, list)):
        return type(v)(_map(fn, item) for item in v)
    return fn(v)


def _nest(like: Any, leaves: Any) -> Any:
    """The next leaves from the iterator `leaves`, arranged as `like` is."""
    if isinstance(like, (tuple, list)):
        return tuple(_nest(item, leaves) for item in like)
    return next(leaves)


def _close(actual: Any, expected: Any, what: str, **tol: float) -> None:
    if isinstance(expected, Tensor):
        assert isinstance(actual, Tensor), f"{what}: expected a tensor, got {type(actual)}"
        assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
        if expected.is_floating_point():
            torch.testing.assert_close(actual, expected, msg=lambda m: f"{what}: {m}", **tol)  # type: ignore[arg-type]
        else:
            assert torch.equal(actual, expected), f"{what}: {actual} != {expected}"
    else:
        assert actual == expected, f"{what}: {actual!r} != {expected!r}"


def _floating(t: Any) -> bool:
    return isinstance(t, Tensor) and t.is_floating_point()


def assert_matches_torch(
    torch_module: Any,
    inputs: Sequence[Any],
    *,
    hg_module: hg.Module | None = None,
    train: bool = True,
    differentiate: Sequence[int] | None = None,
    seed: int = 1,
    **tol: float,
) -> hg.Module:
    """Check handgrad against torch on `inputs` (tensors are cast to float64 when floating);
    returns the handgrad module that was checked."""
    ref = torch_module.double().train(train)
    mine = hg.from_torch(ref) if hg_module is None else hg_module
    if hg_module is not None:
        mine.to(dtype=F64).train(train)
        mine.load_state_dict({k: v.detach().clone() for k, v in ref.state_dict().items()})
    xs = [_map(lambda t: t.to(F64) if _floating(t) else t, x) for x in inputs]  # nested: states
    if differentiate is None:  # a module: every floating input; a loss: the prediction
        differentiate = [0] if isinstance(mine, hg.nn.Loss) else range(len(xs))
    leaves = [
        _map(lambda t: t.detach().clone().requires_grad_(True) if _floating(t) else t, x)
        if i in differentiate
        else x
        for i, x in enumerate(xs)
    ]
    expected = _tuple(ref(*leaves))
    actual = _tuple(
        mine(*[_map(lambda t: t.clone() if isinstance(t, Tensor) else t, x) for x in xs])
    )
    structure = expected  # a nested output (LSTM's) is compared and differentiated leaf by leaf
    expected, actual = tuple(_flat(expected)), tuple(_flat(actual))
    assert len(actual) == len(expected), f"{len(actual)} outputs, torch gives {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        _close(a, e.detach() if isinstance(e, Tensor) else e, f"output {i}", **tol)

    gen = torch.Generator().manual_seed(seed)
    differentiable = [isinstance(e, Tensor) and e.requires_grad for e in expected]
    is_loss = isinstance(mine, hg.nn.Loss)
    if is_loss and expected[0].dim() == 0:  # a reduced loss: backward() with no gradient
        grads: list[Tensor | None] = [None]
        objective = expected[0]
    elif is_loss:  # reduction="none": backward(g) with one gradient per term
        grads = [torch.randn(expected[0].shape, generator=gen, dtype=F64)]
        objective = (expected[0] * grads[0]).sum()
    else:
        grads = [
            torch.randn(e.shape, generator=gen, dtype=F64) if d else None
            for e, d in zip(expected, differentiable)
        ]
        objective = sum((e * g).sum() for e, g in zip(expected, grads) if g is not None)
    wanted = [x for x in _flat(leaves) if isinstance(x, Tensor) and x.requires_grad]
    params = dict(ref.named_parameters())
    if isinstance(objective, Tensor) and objective.requires_grad:
        auto = torch.autograd.grad(
            objective, [*wanted, *params.values()], allow_unused=True, materialize_grads=True
        )
    else:  # nothing differentiable (an empty batch): every gradient is zero
        auto = tuple(torch.zeros_like(t) for t in [*wanted, *params.values()])
    if is_loss:
        hand = _tuple(mine.backward() if grads[0] is None else mine.backward(grads[0]))
    else:
        hand = _tuple(mine.backward(*_nest(structure, iter(grads))))
    k = 0
    for i, x in enumerate(leaves):
        xs_i = [t for t in _flat(x) if isinstance(t, Tensor) and t.requires_grad]
        got = _flat(hand[i]) if i < len(hand) else [None]
        for j in range(len(xs_i)):
            what = f"dL/dinput {i}" + (f"[{j}]" if len(xs_i) > 1 else "")
            g = got[j] if j < len(got) else None
            if g is not None:
                _close(g, auto[k], what, **tol)
            else:
                assert not auto[k].any(), f"{what}: handgrad gives none, autograd nonzero"
            k += 1
    mine_params = dict(mine.named_parameters())
    for (name, _), g in zip(params.items(), auto[len(wanted) :]):
        assert name in mine_params, f"parameter {name} missing from handgrad's twin"
        got = mine_params[name].grad
        if got is None:
            assert not g.any(), f"d/d{name}: handgrad gives none, autograd nonzero"
        else:
            _close(got, g, f"d/d{name}", **tol)
    state = mine.state_dict()
    for name, buf in ref.named_buffers():
        assert name in state, f"buffer {name} missing from handgrad's twin"
        _close(state[name], buf.detach(), f"buffer {name}", **tol)
    twin = hg.to_torch(mine)
    assert type(twin) is type(ref)
    for key, value in vars(ref).items():  # every public attribute: the same options
        if not key.startswith("_"):
            assert _same(getattr(twin, key, None), value), f"to_torch: {key} of {twin!r}"
    return mine
