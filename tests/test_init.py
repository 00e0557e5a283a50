"""Initialisers draw what torch.nn.init draws after the same seed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import handgrad as hg
from handgrad import init


@pytest.mark.parametrize(
    "name,reference",
    [
        ("xavier_uniform", nn.init.xavier_uniform_),
        ("xavier_normal", nn.init.xavier_normal_),
        ("kaiming_uniform", nn.init.kaiming_uniform_),
        ("kaiming_normal", nn.init.kaiming_normal_),
        ("zeros", nn.init.zeros_),
    ],
)
@pytest.mark.parametrize("in_f,out_f", [(7, 4), (1, 30), (256, 128)])
def test_named_inits_match_torch(name, reference, in_f, out_f):
    torch.manual_seed(3)
    layer = hg.Linear(in_f, out_f, init=name)
    torch.manual_seed(3)
    expected = reference(torch.empty(out_f, in_f))
    assert torch.equal(layer.weight, expected)
    assert torch.equal(layer.bias, torch.zeros(out_f))


def test_torch_default_is_kaiming_uniform_with_a_sqrt5():
    torch.manual_seed(0)
    w = init.kaiming_uniform_(torch.empty(5, 9), a=math.sqrt(5))
    torch.manual_seed(0)
    assert torch.equal(w, nn.init.kaiming_uniform_(torch.empty(5, 9), a=math.sqrt(5)))
    assert w.abs().max() <= 1 / 3


def test_gain():
    assert init.leaky_relu_gain(0.0) == nn.init.calculate_gain("leaky_relu", 0.0)
    assert init.leaky_relu_gain(0.2) == nn.init.calculate_gain("leaky_relu", 0.2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtype_is_honoured(dtype):
    for name in init.INITS:
        layer = hg.Linear(3, 2, init=name, dtype=dtype)
        assert layer.weight.dtype == dtype and layer.bias.dtype == dtype
