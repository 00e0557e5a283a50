"""A torch model definition copied over builds the same module: each definition below is
written once against a namespace `nn` and built with torch.nn and with handgrad (positional
arguments as torch takes them); both get the same weights and must agree on the forward, the
input gradient, every parameter gradient and every buffer, and to_torch/from_torch round-trip.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as tnn
from parity import assert_matches_torch

import handgrad as hg


def image_cnn(nn):
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 1, 1, 1, 1, False, "reflect"),  # positional up to padding_mode
        nn.BatchNorm2d(8),
        nn.ReLU(True),
        nn.MaxPool2d(2, 2, 0, 1, False, False),
        nn.Conv2d(8, 8, 3, 1, 1, 1, 8),  # depthwise: the seventh argument is groups
        nn.Hardswish(),
        nn.Conv2d(8, 16, 1),
        nn.AdaptiveAvgPool2d((2, 2)),
        nn.Flatten(),
        nn.Dropout(0.0),
        nn.Linear(64, 10),
        nn.LogSoftmax(1),
    )


def signal_cnn(nn):
    return nn.Sequential(
        nn.ConstantPad1d((2, 1), 0.5),
        nn.Conv1d(2, 6, 5, 2, 0, 1, 2, True, "zeros"),
        nn.PReLU(6),
        nn.AvgPool1d(3, 1, 1, False, False),
        nn.Conv1d(6, 6, 3, padding="same", padding_mode="circular"),
        nn.Mish(),
        nn.AdaptiveMaxPool1d(4),
        nn.Flatten(1, -1),
        nn.Linear(24, 3, False),
    )


def decoder(nn):
    return nn.Sequential(
        nn.Linear(4, 32),
        nn.Unflatten(1, (2, 4, 4)),
        nn.ConvTranspose2d(2, 4, 3, 2, 1, 1),
        nn.LeakyReLU(0.2, True),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.ZeroPad2d((1, 0, 0, 1)),
        nn.Conv2d(4, 1, 3),
        nn.Hardtanh(-2.0, 2.0),
    )


def mlp(nn):
    return nn.Sequential(
        nn.Linear(6, 16),
        nn.LayerNorm(16, 1e-5, True, False),
        nn.GELU("tanh"),
        nn.Linear(16, 16),
        nn.BatchNorm1d(16, 1e-5, None, True, True),
        nn.ELU(0.5),
        nn.Dropout1d(0.0),
        nn.Linear(16, 8),
        nn.ReLU6(),
        nn.Linear(8, 4),
        nn.Softmax(-1),
    )


MODELS = [
    (image_cnn, (4, 3, 8, 8)),
    (signal_cnn, (3, 2, 20)),
    (decoder, (2, 4)),
    (mlp, (5, 6)),
]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("define,shape", MODELS, ids=[d.__name__ for d, _ in MODELS])
def test_a_copied_definition_builds_the_same_model(define, shape, train):
    torch.manual_seed(0)
    ref = define(tnn)
    mine = define(hg)
    assert list(mine.state_dict()) == list(ref.state_dict())
    for k, t in ref.state_dict().items():
        assert mine.state_dict()[k].shape == t.shape, k
    x = torch.randn(shape)
    assert_matches_torch(ref, [x], hg_module=mine, train=train)  # the model as built
    assert_matches_torch(ref, [x], train=train)  # from_torch's twin


@pytest.mark.parametrize("define,shape", MODELS, ids=[d.__name__ for d, _ in MODELS])
def test_a_copied_definition_trains_like_torch(define, shape):
    """Five SGD steps with momentum and weight decay: the same weights as torch.optim's."""
    torch.manual_seed(0)
    ref = define(tnn).double()
    mine = hg.from_torch(ref)
    x = torch.randn(shape, dtype=torch.float64)
    opt = hg.optim.SGD(mine.parameters(), 0.05, 0.9, 0, 1e-3)
    ref_opt = torch.optim.SGD(ref.parameters(), 0.05, 0.9, 0, 1e-3)
    for _ in range(5):
        opt.zero_grad()
        ref_opt.zero_grad()
        y = mine(x)
        mine.backward(torch.ones_like(y) / y.numel())
        ref(x).mean().backward()
        opt.step()
        ref_opt.step()
    for k, t in ref.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[k], t, msg=k)
