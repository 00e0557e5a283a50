"""Every op the library computes, as a pair of plain functions (llm.c's form):

    y, cache = ops.linear_forward(x, W, b)        # forward: the output and what backward needs
    dx, dW, db = ops.linear_backward(dy, cache)   # backward: one gradient per input

Each derivative sits on the line that computes it. Modules (handgrad.nn) are thin wrappers
that keep the caches; ``hg.check.gradcheck((forward, backward), *inputs)`` checks a pair.
"""

from handgrad.ops.activation import *  # noqa: F403
from handgrad.ops.attention import *  # noqa: F403
from handgrad.ops.conv import *  # noqa: F403
from handgrad.ops.dropout import *  # noqa: F403
from handgrad.ops.embedding import *  # noqa: F403
from handgrad.ops.linear import *  # noqa: F403
from handgrad.ops.loss import *  # noqa: F403
from handgrad.ops.normalization import *  # noqa: F403
from handgrad.ops.pooling import *  # noqa: F403
from handgrad.ops.recurrent import *  # noqa: F403
from handgrad.ops.resize import *  # noqa: F403
from handgrad.ops.tensor import *  # noqa: F403
