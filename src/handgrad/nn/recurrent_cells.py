"""The recurrent cells as torch.nn has them: RNNCell (tanh, relu), GRUCell, LSTMCell, one
time step each. A cell called k times (through time) is backpropagated k times in reverse:
its gradients add up. Op pairs in handgrad.ops.recurrent; math in
docs/math.md#recurrent-networks-and-bptt.

input (N, H_in) or unbatched (H_in,); hx (N, H) or (H,), zeros when None (LSTMCell: a tuple
(h, c)). backward returns dL/dinput, or (dL/dinput, dL/dhx) when hx was given.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, ShapeError
from handgrad.module import Module
from handgrad.nn.recurrent import (
    _check_bool,
    _check_nonlinearity,
    _check_sizes,
    _check_tensor,
    _uniform,
)


class _CellBase(Module):
    """One step: input (N, H_in) or unbatched (H_in,), hx (N, H) or (H,), zeros if None."""

    gates = 1

    def _setup(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        owner = type(self).__name__
        _check_sizes(owner, input_size, hidden_size)
        _check_bool(owner, "bias", bias)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G = self.gates * hidden_size
        shapes: list[tuple[int, ...]] = [(G, input_size), (G, hidden_size)]
        shapes += [(G,), (G,)] if bias else []
        ws = _uniform(shapes, hidden_size, {"device": device, "dtype": dtype})
        self.weight_ih, self.weight_hh = ws[0], ws[1]
        self.bias_ih: Tensor | None = ws[2] if bias else None
        self.bias_hh: Tensor | None = ws[3] if bias else None

    parameter_names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
        }
        if isinstance(self, RNNCell):
            config["nonlinearity"] = self.nonlinearity
        return config

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        config = super().config_from_torch(m)
        config["bias"] = bool(m.bias)
        return config

    def _inputs(
        self, input: Any, hx: Any, what: str = "hidden"
    ) -> tuple[Tensor, list[Tensor], bool]:
        owner = self._short_name()
        name = type(self).__name__
        x = _check_tensor(owner, "input", input)
        if x.dim() not in (1, 2):
            raise ShapeError(
                f"{owner}: {name}: Expected input to be 1D or 2D, got {x.dim()}D instead"
            )
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{owner}: input has inconsistent input_size: got {x.shape[-1]} expected "
                f"{self.input_size}"
            )
        self._check_like(x, self.weight_ih)
        batched = x.dim() == 2
        xb = x if batched else x.unsqueeze(0)
        n_states = 2 if isinstance(self, LSTMCell) else 1
        if hx is None:
            states = [xb.new_zeros(xb.shape[0], self.hidden_size) for _ in range(n_states)]
            return xb, states, batched
        if n_states == 2:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ArgumentTypeError(
                    f"{owner}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}"
                )
            raw = list(hx)
        else:
            raw = [hx]
        states = []
        for i, h in enumerate(raw):
            label = f"hx[{i}]" if n_states == 2 else "hidden"
            h = _check_tensor(owner, label, h)
            if h.dim() != x.dim():
                raise ShapeError(
                    f"{owner}: {name}: Expected {label} to be {x.dim()}D like the input, got "
                    f"{h.dim()}D instead"
                )
            hb = h if batched else h.unsqueeze(0)
            if tuple(hb.shape) != (xb.shape[0], self.hidden_size):
                raise ShapeError(
                    f"{owner}: Expected {label} of shape {(xb.shape[0], self.hidden_size)}, "
                    f"got {tuple(hb.shape)} (batch of the input, hidden_size)"
                )
            self._check_like(h, x)
            states.append(hb)
        return xb, states, batched

    def _finish(
        self, dx: Tensor, dstates: list[Tensor], grads: tuple, batched: bool, had_hx: bool
    ) -> Any:
        for p, g in zip((self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh), grads):
            self.add_grad(p, g)
        if not batched:
            dx, dstates = dx.squeeze(0), [d.squeeze(0) for d in dstates]
        if not had_hx:
            return dx
        return (dx, dstates[0]) if len(dstates) == 1 else (dx, tuple(dstates))


class RNNCell(_CellBase):
    """torch.nn.RNNCell: h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), act tanh or relu."""

    torch_name = "RNNCell"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.nonlinearity = _check_nonlinearity("RNNCell", nonlinearity)
        self._setup(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._inputs(input, hx)
        y, cache = ops.rnn_cell_forward(
            x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, self.nonlinearity
        )
        y = y if batched else y.squeeze(0)
        self.push_cache((cache, batched, hx is not None, y.shape))
        return y

    def backward(self, dy: Tensor) -> Any:
        cache, batched, had_hx, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx, dh, dW_ih, dW_hh, db_ih, db_hh, _ = ops.rnn_cell_backward(
            dy if batched else dy.unsqueeze(0), cache
        )
        return self._finish(dx, [dh], (dW_ih, dW_hh, db_ih, db_hh), batched, had_hx)


class GRUCell(_CellBase):
    """torch.nn.GRUCell: one GRU step (docs/math.md#gru)."""

    gates = 3
    torch_name = "GRUCell"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self._setup(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._inputs(input, hx)
        y, cache = ops.gru_cell_forward(
            x, h, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )
        y = y if batched else y.squeeze(0)
        self.push_cache((cache, batched, hx is not None, y.shape))
        return y

    def backward(self, dy: Tensor) -> Any:
        cache, batched, had_hx, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        dx, dh, dW_ih, dW_hh, db_ih, db_hh = ops.gru_cell_backward(
            dy if batched else dy.unsqueeze(0), cache
        )
        return self._finish(dx, [dh], (dW_ih, dW_hh, db_ih, db_hh), batched, had_hx)


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell: one LSTM step, forward(input, hx=None) -> (h', c');
    backward(dh', dc') (either may be None)."""

    gates = 4
    torch_name = "LSTMCell"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self._setup(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Tensor]:
        x, (h, c), batched = self._inputs(input, hx)
        (h_new, c_new), cache = ops.lstm_cell_forward(
            x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh
        )
        if not batched:
            h_new, c_new = h_new.squeeze(0), c_new.squeeze(0)
        self.push_cache((cache, batched, hx is not None, h_new.shape))
        return h_new, c_new

    def backward(self, dh: Tensor | None, dc: Tensor | None = None) -> Any:
        cache, batched, had_hx, y_shape = self.pop_cache()
        for g in (dh, dc):
            if g is not None:
                self._check_grad_output(g, y_shape)
        grads = [g if g is None or batched else g.unsqueeze(0) for g in (dh, dc)]
        dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh = ops.lstm_cell_backward(grads, cache)
        return self._finish(dx, [dh0, dc0], (dW_ih, dW_hh, db_ih, db_hh), batched, had_hx)
