"""The one registry: a Module class registers when it is defined, and save/load, interop, the
command line's choices and handgrad.__all__ all read it."""

from __future__ import annotations

import pytest
import torch.nn as nn

import handgrad as hg
from handgrad import registry
from handgrad.nn.activation import Activation
from handgrad.nn.loss import Loss


def test_every_public_class_is_exported_and_reachable():
    public = registry.public()
    assert {"Linear", "Conv2d", "LayerNorm", "Residual", "ModuleList", "CrossEntropyLoss"} <= set(
        public
    )
    assert set(public) <= set(hg.__all__) and set(public) <= set(hg.nn.__all__)
    for name, cls in public.items():
        assert getattr(hg, name) is cls and getattr(hg.nn, name) is cls
    assert "Linear" in dir(hg)
    with pytest.raises(AttributeError, match="no attribute 'Lineer'"):
        hg.Lineer  # noqa: B018


def test_a_class_registers_when_defined():
    class Local(hg.Module):  # defined in a function: not findable again, so not registered
        pass

    assert "Local" not in str(list(registry.classes()))
    assert registry.lookup("test_registry:Mine") is Mine
    assert registry.saved_name(Mine) == "test_registry:Mine"
    assert registry.saved_name(hg.Linear) == "Linear"
    assert Mine not in registry.public().values()


class Mine(hg.Module):
    """A user's layer: registered under "module:QualName", not exported by handgrad."""


def test_lookup_imports_or_names_what_it_cannot_find():
    with pytest.raises(ValueError, match="unknown layer type 'Nope'"):
        registry.lookup("Nope")
    with pytest.raises(ValueError, match="class Block from no_such_package.models.*import"):
        registry.lookup("no_such_package.models:Block")
    with pytest.raises(ValueError, match="os:system is not a handgrad Module class"):
        registry.lookup("os:system")


def test_cli_choices_come_from_the_registry():
    acts = registry.cli_choices(Activation)
    assert acts["relu"] is hg.ReLU and acts["gelu"] is hg.GELU and "softmax" not in acts
    losses = registry.cli_choices(Loss)
    assert set(losses) == {"mse", "l1", "huber", "cross_entropy"}


@pytest.mark.parametrize("cls", sorted(registry.public().values(), key=lambda c: c.__name__))
def test_torch_name_is_a_torch_nn_class_of_that_name(cls):
    if cls.torch_name is not None:
        assert cls.torch_name == cls.__name__ and hasattr(nn, cls.torch_name)
        assert registry.torch_counterpart(cls.torch_name) is cls
