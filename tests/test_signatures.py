"""The signature rule (docs/design.md#the-signature-rule): a class that shares its name with a
torch.nn module, a torch.optim optimizer or a torch.optim.lr_scheduler class takes torch's
constructor parameters first, in torch's order, with torch's kinds and defaults; handgrad's own
extras (init=, algorithm=) come after them, keyword-only."""

from __future__ import annotations

import inspect
import typing

import pytest
import torch
import torch.nn as nn

import handgrad as hg
from handgrad import registry


def _twins() -> list[tuple[type, type]]:
    pairs = []
    for name, cls in sorted(registry.public().items()):
        ref = getattr(nn, name, None)
        if isinstance(ref, type):
            pairs.append((cls, ref))
    for ours, theirs in [(hg.optim, torch.optim), (hg.optim, torch.optim.lr_scheduler)]:
        for name in sorted(dir(ours)):
            cls, ref = getattr(ours, name), getattr(theirs, name, None)
            if isinstance(ref, type) and name not in ("Optimizer", "LRScheduler"):
                pairs.append((cls, ref))
    return pairs


TWINS = _twins()


def _parameters(cls: type) -> list[inspect.Parameter]:
    """The constructor's parameters; torch's Module.__init__(*args, **kwargs) takes none."""
    if issubclass(cls, nn.Module) and cls.__init__ is nn.Module.__init__:
        return []
    params = list(inspect.signature(cls).parameters.values())
    var = [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]
    if [p.kind for p in params] == var:  # torch's RNN, GRU, LSTM:
        overloads = typing.get_overloads(cls.__init__)  # documented by their first overload
        if overloads:
            return list(inspect.signature(overloads[0]).parameters.values())[1:]
    return params


def _describe(p: inspect.Parameter) -> tuple[str, inspect._ParameterKind, object]:
    return (p.name, p.kind, p.default)


def test_the_classes_handgrad_shares_with_torch_are_all_checked():
    names = {c.__name__ for c, _ in TWINS}
    assert {"Linear", "Conv2d", "CrossEntropyLoss", "BatchNorm1d", "SGD", "AdamW"} <= names


@pytest.mark.parametrize("ours,theirs", TWINS, ids=[c.__name__ for c, _ in TWINS])
def test_signature_follows_torch(ours, theirs):
    mine, ref = _parameters(ours), _parameters(theirs)
    head = [_describe(p) for p in mine[: len(ref)]]
    assert head == [_describe(p) for p in ref], f"{ours.__name__}: torch's parameters first"
    extras = [p.name for p in mine[len(ref) :] if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert not extras, f"{ours.__name__}: handgrad's own parameters must be keyword-only: {extras}"
