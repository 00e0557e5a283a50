"""Weight initialisers. Each draws from the global RNG with the same calls as torch.nn.init,
so the same ``torch.manual_seed`` gives the same numbers.

Shapes follow torch.nn: a weight is (out, in) for Linear and (out, in, *kernel) for
convolutions, so fan_in = in · prod(kernel) and fan_out = out · prod(kernel).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError

INITS = (
    "torch",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "zeros",
)


def leaky_relu_gain(a: float) -> float:
    """sqrt(2 / (1 + a²)): torch.nn.init.calculate_gain("leaky_relu", a)."""
    return math.sqrt(2.0 / (1 + a**2))


def fans(t: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight (out, in, *kernel), as torch computes them."""
    if t.dim() < 2:
        raise InputError(f"init: fans need a weight with at least 2 dims, got {tuple(t.shape)}")
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, bound: float) -> Tensor:
    """Fill t in place with U(-bound, bound)."""
    return t.uniform_(-bound, bound)


def kaiming_uniform_(t: Tensor, a: float = 0.0) -> Tensor:
    """U(±gain·sqrt(3 / fan_in)), gain = sqrt(2 / (1 + a²)); torch's default a=0 suits ReLU."""
    std = leaky_relu_gain(a) / math.sqrt(fans(t)[0])
    return uniform_(t, math.sqrt(3.0) * std)  # torch's order of operations, bit for bit


def kaiming_normal_(t: Tensor, a: float = 0.0) -> Tensor:
    """N(0, std²) with std = gain / sqrt(fan_in) (He et al., 2015)."""
    return t.normal_(0.0, leaky_relu_gain(a) / math.sqrt(fans(t)[0]))


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """U(±gain·sqrt(6 / (fan_in + fan_out))) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = fans(t)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(t, math.sqrt(3.0) * std)


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, std²) with std = gain·sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(t)
    return t.normal_(0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def linear_parameters(
    in_features: int,
    out_features: int,
    bias: bool,
    init: str,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Draw (weight, bias) for a Linear layer with the named scheme.

    "torch": what torch.nn.Linear draws: W ~ kaiming_uniform(a=√5) = U(±1/√in), b ~ U(±1/√in).
    "normal": the lab's W = randn(out, in) then b = randn(out).
    The other schemes set W as named and b = 0.
    """
    if init not in INITS:
        raise InputError(f"Linear: unknown init {init!r}; expected one of {', '.join(INITS)}")
    kw: dict[str, Any] = {"device": device, "dtype": dtype}
    if init == "normal":
        W = torch.randn(out_features, in_features, **kw)
        b = torch.randn(out_features, **kw) if bias else None
        return W, b
    W = torch.empty(out_features, in_features, **kw)
    b = torch.empty(out_features, **kw) if bias else None
    if init == "torch":
        kaiming_uniform_(W, a=math.sqrt(5))
        if b is not None:
            uniform_(b, 1 / math.sqrt(in_features))
        return W, b
    if init == "zeros":
        W.zero_()
    else:
        {
            "xavier_uniform": xavier_uniform_,
            "xavier_normal": xavier_normal_,
            "kaiming_uniform": kaiming_uniform_,
            "kaiming_normal": kaiming_normal_,
        }[init](W)
    if b is not None:
        b.zero_()
    return W, b
