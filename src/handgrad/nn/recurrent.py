"""Recurrent layers as torch.nn has them: RNN (tanh, relu), GRU, LSTM (with proj_size); the
cells are in recurrent_cells.py. Backpropagation through time is by hand: the op pairs
are in handgrad.ops.recurrent, the math in docs/math.md#recurrent-networks-and-bptt.

Same arguments, forward contract and state_dict keys as torch: input (L, N, H_in), or
(N, L, H_in) with batch_first=True, or unbatched (L, H_in); an optional initial state;
output (L, N, D·H_out) and h_n (num_layers·D, N, H_out) (LSTM: (h_n, c_n)); keys
weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, weight_hr_l0 and their _reverse.
backward takes one gradient per output (None for an unused one) and returns dL/dinput, or
(dL/dinput, dL/dhx) when an initial state was given.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError
from handgrad.module import Module

_MODES = {"RNN": 1, "GRU": 3, "LSTM": 4}  # gates stacked in each weight


def _check_sizes(owner: str, input_size: Any, hidden_size: Any) -> None:
    """torch's checks: an int (a bool is one to torch: True builds a size of 1), above zero."""
    for name, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, int):
            raise ArgumentTypeError(
                f"{owner}: {name} should be of type int, got: {type(v).__name__}"
            )
        if v <= 0:
            raise InputError(f"{owner}: {name} must be greater than zero, got {v}")


def _check_bool(owner: str, name: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ArgumentTypeError(f"{owner}: {name} should be of type bool, got: {type(v).__name__}")


def _check_nonlinearity(owner: str, nonlinearity: Any) -> str:
    if nonlinearity not in ("tanh", "relu"):
        raise InputError(
            f"{owner}: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
        )
    return str(nonlinearity)


def _uniform(shapes: list[tuple[int, ...]], hidden_size: int, kw: dict[str, Any]) -> list[Tensor]:
    """torch's reset_parameters: every weight U(±1/sqrt(hidden_size)), drawn in this order."""
    stdv = 1.0 / math.sqrt(hidden_size)
    return [torch.empty(s, **kw).uniform_(-stdv, stdv) for s in shapes]


def _check_tensor(owner: str, name: str, t: Any) -> Tensor:
    if type(t).__name__ == "PackedSequence":
        raise NotSupportedError(owner, "PackedSequence input", "pad the batch instead")
    if not isinstance(t, Tensor):
        raise ArgumentTypeError(f"{owner}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ShapeError(f"{owner}: {name} must be floating point, got {t.dtype}")
    return t


class _RNNBase(Module):
    """The multi-layer, optionally bidirectional loop shared by RNN, GRU and LSTM."""

    mode: str = "RNN"
    nonlinearity: str = "tanh"

    def _setup(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bias: bool,
        batch_first: bool,
        dropout: float,
        bidirectional: bool,
        proj_size: int,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        owner = type(self).__name__
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise InputError(
                f"{owner}: dropout should be a number in range [0, 1] representing the "
                f"probability of an element being zeroed, got {dropout!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        _check_bool(owner, "bias", bias)
        _check_bool(owner, "batch_first", batch_first)
        _check_sizes(owner, input_size, hidden_size)
        if not isinstance(num_layers, int):  # True is 1 layer, False 0, as in torch
            raise ArgumentTypeError(f"{owner}: num_layers should be an int, got {num_layers!r}")
        if num_layers <= 0:
            raise InputError(f"{owner}: num_layers must be greater than zero, got {num_layers}")
        # torch takes False for 0 but fails on True (a TypeError from inside torch.empty)
        if not isinstance(proj_size, int) or proj_size is True:
            raise ArgumentTypeError(
                f"{owner}: proj_size should be an int (0 to disable projections), got {proj_size!r}"
            )
        if proj_size < 0:
            raise InputError(
                f"{owner}: proj_size should be a positive integer or zero to disable "
                f"projections, got {proj_size!r}"
            )
        if proj_size >= hidden_size:
            raise InputError(f"{owner}: proj_size has to be smaller than hidden_size")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bool(bidirectional), proj_size
        D = 2 if bidirectional else 1
        G = _MODES[self.mode] * hidden_size
        H_out = proj_size or hidden_size
        names: list[str] = []
        shapes: list[tuple[int, ...]] = []
        for layer in range(num_layers):
            for d in range(D):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                layer_in = input_size if layer == 0 else H_out * D
                group: list[tuple[str, tuple[int, ...]]] = [
                    ("weight_ih", (G, layer_in)),
                    ("weight_hh", (G, H_out)),
                ]
                if bias:
                    group += [("bias_ih", (G,)), ("bias_hh", (G,))]
                if proj_size:
                    group += [("weight_hr", (proj_size, hidden_size))]
                names += [n + suffix for n, _ in group]
                shapes += [s for _, s in group]
        self.parameter_names = tuple(names)
        for name, t in zip(
            names, _uniform(shapes, hidden_size, {"device": device, "dtype": dtype})
        ):
            setattr(self, name, t)

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
        }
        if self.mode == "RNN":
            config["nonlinearity"] = self.nonlinearity
        config.update(
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
        )
        if self.mode == "LSTM":
            config["proj_size"] = self.proj_size
        return config

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        config = super().config_from_torch(m)
        config["bias"] = bool(m.bias)  # a bool attribute in torch's RNNs, not a tensor
        return config

    def flatten_parameters(self) -> None:
        """torch's call to pack the weights for cuDNN: nothing to do here (the weights are
        plain tensors), kept so that torch code runs unchanged."""

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """The tensors of each layer and direction, in torch's order (as torch's all_weights)."""
        D = 2 if self.bidirectional else 1
        return [[t for t in self._weights(k) if t is not None] for k in range(self.num_layers * D)]

    def _weights(
        self, k: int
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """(W_ih, W_hh, b_ih, b_hh, W_hr) of layer·direction k."""
        layer, d = divmod(k, 2 if self.bidirectional else 1)
        s = f"_l{layer}" + ("_reverse" if d else "")
        W_ih, W_hh = getattr(self, "weight_ih" + s), getattr(self, "weight_hh" + s)
        b_ih, b_hh = getattr(self, "bias_ih" + s, None), getattr(self, "bias_hh" + s, None)
        return W_ih, W_hh, b_ih, b_hh, getattr(self, "weight_hr" + s, None)

    # ---- forward ----------------------------------------------------------------------------
    def _state_shape(self, N: int, batched: bool, H: int) -> tuple[int, ...]:
        lead = self.num_layers * (2 if self.bidirectional else 1)
        return (lead, N, H) if batched else (lead, H)

    def _check_state(self, h: Any, shape: tuple[int, ...], x: Tensor, what: str) -> Tensor:
        h = _check_tensor(self._short_name(), what, h)
        if h.dim() != len(shape):
            raise ShapeError(
                f"{self._short_name()}: For {'batched 3-D' if len(shape) == 3 else 'unbatched 2-D'}"
                f" input, {what} should also be {len(shape)}-D but got {h.dim()}-D tensor"
            )
        if tuple(h.shape) != shape:
            raise ShapeError(
                f"{self._short_name()}: Expected {what} size {shape}, got {list(h.shape)}"
            )
        self._check_like(h, x)
        return h

    def forward(self, input: Tensor, hx: Any = None) -> Any:
        owner = self._short_name()
        x = _check_tensor(owner, "input", input)
        if x.dim() not in (2, 3):
            raise ShapeError(
                f"{owner}: Expected input to be 2D or 3D, got {x.dim()}D tensor instead"
            )
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{owner}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {x.shape[-1]}"
            )
        self._check_like(x, self._weights(0)[0])
        batched = x.dim() == 3
        xs = x.transpose(0, 1) if batched and self.batch_first else x if batched else x.unsqueeze(1)
        L, N = xs.shape[0], xs.shape[1]
        if L == 0:
            raise ShapeError(f"{owner}: Expected sequence length to be larger than 0 in RNN")
        H_out = self.proj_size or self.hidden_size
        lstm = self.mode == "LSTM"
        if hx is None:
            h0 = xs.new_zeros(self._state_shape(N, True, H_out))
            c0 = xs.new_zeros(self._state_shape(N, True, self.hidden_size)) if lstm else None
        elif lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ArgumentTypeError(
                    f"{owner}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}"
                )
            h0 = self._check_state(hx[0], self._state_shape(N, batched, H_out), x, "hidden[0]")
            c0 = self._check_state(
                hx[1], self._state_shape(N, batched, self.hidden_size), x, "hidden[1]"
            )
            h0, c0 = (h0, c0) if batched else (h0.unsqueeze(1), c0.unsqueeze(1))
        else:
            h0 = self._check_state(hx, self._state_shape(N, batched, H_out), x, "hidden")
            h0, c0 = (h0 if batched else h0.unsqueeze(1)), None
        D = 2 if self.bidirectional else 1
        caches, masks, h_n, c_n = [], [], [], []
        inp = xs
        for layer in range(self.num_layers):
            outs = []
            for d in range(D):
                k = layer * D + d
                W_ih, W_hh, b_ih, b_hh, W_hr = self._weights(k)
                if lstm:
                    assert c0 is not None
                    (y, h, c), cache = ops.lstm_sequence_forward(
                        inp, h0[k], c0[k], W_ih, W_hh, b_ih, b_hh, W_hr, d == 1
                    )
                    c_n.append(c)
                elif self.mode == "GRU":
                    (y, h), cache = ops.gru_sequence_forward(
                        inp, h0[k], W_ih, W_hh, b_ih, b_hh, d == 1
                    )
                else:
                    (y, h), cache = ops.rnn_sequence_forward(
                        inp, h0[k], W_ih, W_hh, b_ih, b_hh, self.nonlinearity, d == 1
                    )
                outs.append(y)
                h_n.append(h)
                caches.append(cache)
            inp = torch.cat(outs, -1) if D == 2 else outs[0]  # (L, N, D·H_out)
            if layer < self.num_layers - 1:  # dropout between layers, as torch
                inp, mask = ops.dropout_forward(inp, self.dropout, self.training)
                masks.append(mask)
        out = (
            inp.transpose(0, 1)
            if batched and self.batch_first
            else inp
            if batched
            else inp.squeeze(1)
        )
        hn = torch.stack(h_n) if batched else torch.stack(h_n).squeeze(1)
        self.push_cache((caches, masks, batched, hx is not None, out.shape, hn.shape))
        if lstm:
            cn = torch.stack(c_n) if batched else torch.stack(c_n).squeeze(1)
            return out, (hn, cn)
        return out, hn

    # ---- backward through time -------------------------------------------------------------
    def backward(self, doutput: Tensor | None, dh_n: Any = None) -> Any:
        caches, masks, batched, had_hx, out_shape, hn_shape = self.pop_cache()
        lstm = self.mode == "LSTM"
        dhn, dcn = (dh_n if dh_n is not None else (None, None)) if lstm else (dh_n, None)
        if doutput is not None:
            self._check_grad_output(doutput, out_shape)
        for g, shape in ((dhn, hn_shape), (dcn, (*hn_shape[:-1], self.hidden_size))):
            if g is not None:
                self._check_grad_output(g, torch.Size(shape))
        D = 2 if self.bidirectional else 1

        def seq(t: Tensor | None) -> Tensor | None:  # (L, N, ·) like the forward's loop
            if t is None:
                return None
            return (
                t.transpose(0, 1)
                if batched and self.batch_first
                else t
                if batched
                else t.unsqueeze(1)
            )

        def state(t: Tensor | None) -> Tensor | None:
            return t if t is None or batched else t.unsqueeze(1)

        dout, dhn, dcn = seq(doutput), state(dhn), state(dcn)
        dh0: list[Tensor] = [torch.empty(0)] * (self.num_layers * D)
        dc0: list[Tensor] = [torch.empty(0)] * (self.num_layers * D)
        for layer in reversed(range(self.num_layers)):
            if layer < self.num_layers - 1 and dout is not None:
                dout = ops.dropout_backward(dout, masks[layer])  # through the dropout mask
            douts = [None] * D if dout is None else list(dout.chunk(D, -1))
            dinp: Tensor | None = None
            for d in range(D):
                k = layer * D + d
                W_ih, W_hh, b_ih, b_hh, W_hr = self._weights(k)
                dhk = None if dhn is None else dhn[k]
                if lstm:
                    dck = None if dcn is None else dcn[k]
                    dx, dh0[k], dc0[k], dW_ih, dW_hh, db_ih, db_hh, dW_hr, _ = (
                        ops.lstm_sequence_backward((douts[d], dhk, dck), caches[k])
                    )
                    self.add_grad(W_hr, dW_hr)
                elif self.mode == "GRU":
                    dx, dh0[k], dW_ih, dW_hh, db_ih, db_hh, _ = ops.gru_sequence_backward(
                        (douts[d], dhk), caches[k]
                    )
                else:
                    dx, dh0[k], dW_ih, dW_hh, db_ih, db_hh, _, _ = ops.rnn_sequence_backward(
                        (douts[d], dhk), caches[k]
                    )
                for p, g in ((W_ih, dW_ih), (W_hh, dW_hh), (b_ih, db_ih), (b_hh, db_hh)):
                    self.add_grad(p, g)
                dinp = dx if dinp is None else dinp + dx  # both directions read the layer's input
            dout = dinp
        assert dout is not None
        dx = (
            dout.transpose(0, 1)
            if batched and self.batch_first
            else dout
            if batched
            else dout.squeeze(1)
        )
        if not had_hx:
            return dx
        dh = torch.stack(dh0) if batched else torch.stack(dh0).squeeze(1)
        if lstm:
            dc = torch.stack(dc0) if batched else torch.stack(dc0).squeeze(1)
            return dx, (dh, dc)
        return dx, dh


class RNN(_RNNBase):
    """Elman RNN, torch.nn.RNN: hₜ = act(xₜ W_ihᵀ + b_ih + hₜ₋₁ W_hhᵀ + b_hh), act tanh or
    relu, per layer and direction. forward(input, hx=None) -> (output, h_n)."""

    torch_name = "RNN"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.nonlinearity = _check_nonlinearity("RNN", nonlinearity)
        self._setup(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )


class GRU(_RNNBase):
    """torch.nn.GRU: r, z = σ(·), n = tanh(gᵢₙ + r ⊙ gₕₙ), h' = (1 - z) n + z h, per layer
    and direction. forward(input, hx=None) -> (output, h_n)."""

    mode = "GRU"
    torch_name = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self._setup(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            0,
            device,
            dtype,
        )


class LSTM(_RNNBase):
    """torch.nn.LSTM: i, f, o = σ(·), g = tanh(·), c' = f c + i g, h' = o tanh c' (then
    W_hr with proj_size > 0). forward(input, hx=None) -> (output, (h_n, c_n)); backward
    takes (doutput, (dh_n, dc_n)), any of them None."""

    mode = "LSTM"
    torch_name = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self._setup(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
        )
