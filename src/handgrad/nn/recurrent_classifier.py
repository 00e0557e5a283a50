"""A sequence classifier: a recurrent layer over every time step, then a Linear on all of its
outputs together. The MNIST-1D paper's GRU row (a bidirectional GRU of hidden size 6 over the
40 steps, then a Linear on the flattened 40·12 outputs) is
``RecurrentClassifier("gru", 1, 6, 40, 10)``; `handgrad train --arch gru|lstm|rnn` builds it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.module import Module
from handgrad.nn.linear import Linear
from handgrad.nn.recurrent import GRU, LSTM, RNN
from handgrad.nn.shape import Flatten
from handgrad.validate import positive_int

MODES: dict[str, Any] = {"gru": GRU, "lstm": LSTM, "rnn": RNN}  # mode -> class


class RecurrentClassifier(Module):
    """logits = linear(flatten(rnn(x)[0])): x (N, seq_len, input_size) -> (N, num_classes).

    `mode`: "gru", "lstm" or "rnn" (tanh), run with batch_first=True over all seq_len steps;
    the Linear reads every step's output (seq_len · D · hidden_size values, D = 2 when
    bidirectional). backward(dlogits) returns dL/dx: the Linear's and Flatten's backward, then
    backpropagation through time (docs/math.md), the final state h_n unused (its gradient None).
    Keys: "rnn.weight_ih_l0", ..., "linear.weight", "linear.bias".
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        seq_len: int,
        num_classes: int,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if mode not in MODES:
            raise InputError(
                f"RecurrentClassifier: mode must be one of {', '.join(MODES)}, got {mode!r}"
            )
        for name, v in (("seq_len", seq_len), ("num_classes", num_classes)):
            positive_int("RecurrentClassifier", name, v)
        if not isinstance(bidirectional, bool):
            raise ArgumentTypeError(
                f"RecurrentClassifier: bidirectional must be a bool, got {bidirectional!r}"
            )
        self.mode, self.seq_len, self.num_classes = mode, seq_len, num_classes
        self.rnn = MODES[mode](
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout,
            bidirectional=bidirectional,
            device=device,
            dtype=dtype,
        )
        self.flatten = Flatten()
        D = 2 if bidirectional else 1
        self.linear = Linear(seq_len * D * hidden_size, num_classes, device=device, dtype=dtype)

    def config(self) -> dict[str, Any]:
        rnn: Any = self.rnn
        return {
            "mode": self.mode,
            "input_size": rnn.input_size,
            "hidden_size": rnn.hidden_size,
            "seq_len": self.seq_len,
            "num_classes": self.num_classes,
            "num_layers": rnn.num_layers,
            "bidirectional": rnn.bidirectional,
            "dropout": rnn.dropout,
        }

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ArgumentTypeError(
                f"RecurrentClassifier: expected a tensor, got {type(x).__name__}"
            )
        rnn: Any = self.rnn
        expected = (self.seq_len, rnn.input_size)
        if x.dim() != 3 or tuple(x.shape[1:]) != expected:
            raise ShapeError(
                f"RecurrentClassifier: expected sequences of shape (N, {expected[0]}, "
                f"{expected[1]}), got {tuple(x.shape)}"
            )
        h, _ = self.rnn(x)  # (N, L, D·H): every step's output; h_n is not used
        return self.linear(self.flatten(h))  # (N, L·D·H) -> (N, classes)

    def backward(self, dy: Tensor) -> Tensor:
        dh = self.flatten.backward(self.linear.backward(dy))  # (N, L, D·H)
        dx: Tensor = self.rnn.backward(dh, None)  # through time; dL/dh_n = None (unused)
        return dx
