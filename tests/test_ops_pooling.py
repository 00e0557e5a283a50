"""ops/pooling.py: max and average pooling, forward vs torch.nn.functional in float64, backward
vs autograd."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from conftest import VALUE_KINDS, check_pair, make_values, pair

POOLS = [  # x shape, kernel, stride, symmetric padding (one per spatial dim)
    ((2, 3, 9), (3,), (2,), (1,)),
    ((2, 3, 8), (2,), (1,), (0,)),
    ((2, 3, 8, 7), (2, 2), (2, 2), (0, 0)),
    ((1, 2, 7, 9), (3, 2), (2, 1), (1, 1)),
]
POOL_REFERENCES = {
    ("max_pool", 1): F.max_pool1d,
    ("max_pool", 2): F.max_pool2d,
    ("avg_pool", 1): F.avg_pool1d,
    ("avg_pool", 2): F.avg_pool2d,
}


@pytest.mark.parametrize("kind", VALUE_KINDS)
@pytest.mark.parametrize("x_shape,kernel,stride,padding", POOLS)
@pytest.mark.parametrize("op", ["max_pool", "avg_pool"])
def test_pool(op, x_shape, kernel, stride, padding, kind):
    forward, backward = pair(op)
    reference = POOL_REFERENCES[op, len(kernel)]
    pads = [(p, p) for p in padding]
    check_pair(
        lambda x: forward(x, kernel, stride, pads),
        backward,
        lambda x: reference(x, kernel, stride, padding),
        [make_values(x_shape, kind)],
    )
