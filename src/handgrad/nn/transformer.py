"""TransformerEncoderLayer as torch.nn has it: self-attention and a feed-forward block, each
with a residual connection and a LayerNorm (after each block, or before with
norm_first=True), forward and backward by hand from handgrad's own layers.
Math: docs/math.md#transformerencoderlayer.
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import Tensor

from handgrad.errors import InputError, NotSupportedError
from handgrad.module import Module
from handgrad.nn.activation import GELU, ReLU
from handgrad.nn.attention import MultiheadAttention, _additive
from handgrad.nn.dropout import Dropout
from handgrad.nn.linear import Linear
from handgrad.nn.normalization import LayerNorm

# torch's default `activation` is the function torch.nn.functional.relu; the signature rule
# needs that very object as the default. It is only compared with, never called.
_torch_functional = importlib.import_module("torch.nn.functional")
_TORCH_RELU, _TORCH_GELU = _torch_functional.relu, _torch_functional.gelu


def _activation(activation: Any) -> tuple[str | None, Module]:
    """(the name torch knows it by, the handgrad module that computes it)."""
    if activation == "relu" or activation is _TORCH_RELU:
        return "relu", ReLU()
    if activation == "gelu" or activation is _TORCH_GELU:
        return "gelu", GELU()
    if isinstance(activation, Module):  # a handgrad activation, e.g. GELU("tanh")
        return None, activation
    if isinstance(activation, str):
        raise InputError(
            f"TransformerEncoderLayer: activation should be relu/gelu, not {activation}"
        )
    raise NotSupportedError(
        "TransformerEncoderLayer",
        f"activation={activation!r}",
        "give 'relu', 'gelu' or a handgrad activation module",
    )


class TransformerEncoderLayer(Module):
    """torch.nn.TransformerEncoderLayer:

        norm_first=False:  x = norm1(x + sa(x));   x = norm2(x + ff(x))
        norm_first=True:   x = x + sa(norm1(x));   x = x + ff(norm2(x))

    sa(x) = dropout1(self_attn(x, x, x)), ff(x) = dropout2(linear2(dropout(act(linear1(x))))).
    forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False) -> output;
    backward(dy) -> dL/dsrc (then the gradients of floating masks, if any were given).
    """

    torch_name = "TransformerEncoderLayer"

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Any = _TORCH_RELU,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.activation_name, act = _activation(activation)
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, **kw
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **kw)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = act

    def config(self) -> dict[str, Any]:
        return {
            "d_model": self.self_attn.embed_dim,
            "nhead": self.self_attn.num_heads,
            "dim_feedforward": self.linear1.out_features,
            "dropout": self.dropout.p,
            "activation": self.activation_name or self.activation,
            "layer_norm_eps": self.norm1.eps,
            "batch_first": self.self_attn.batch_first,
            "norm_first": self.norm_first,
            "bias": self.linear1.bias is not None,
        }

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        act = m.activation
        return {
            "d_model": m.self_attn.embed_dim,
            "nhead": m.self_attn.num_heads,
            "dim_feedforward": m.linear1.out_features,
            "dropout": m.dropout.p,
            "activation": "relu" if act is _TORCH_RELU else "gelu" if act is _TORCH_GELU else act,
            "layer_norm_eps": m.norm1.eps,
            "batch_first": m.self_attn.batch_first,
            "norm_first": m.norm_first,
            "bias": m.linear1.bias is not None,
        }

    # ---- the two blocks ---------------------------------------------------------------------
    def _sa(self, x: Tensor, mask: Any, kpm: Any, is_causal: bool) -> Tensor:
        out, _ = self.self_attn(x, x, x, kpm, False, mask, True, is_causal)
        if self.self_attn.batch_first and out.dim() == 3:
            # torch's output here is a transposed view of (L, N, E), and torch's dropout draws
            # its mask in memory order: drop in that layout to draw the same mask
            return self.dropout1(out.transpose(0, 1)).transpose(0, 1)
        return self.dropout1(out)

    def _sa_backward(self, dy: Tensor) -> tuple[Tensor, Any, Any]:
        """(dL/dx: query, key and value are all x, so their gradients add; dkpm; dmask)."""
        if self.self_attn.batch_first and dy.dim() == 3:
            dy = self.dropout1.backward(dy.transpose(0, 1)).transpose(0, 1)
        else:
            dy = self.dropout1.backward(dy)
        grads = self.self_attn.backward(dy, None)
        dkpm, dmask = (grads[3], grads[5]) if len(grads) > 3 else (None, None)
        return grads[0] + grads[1] + grads[2], dkpm, dmask

    def _ff(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _ff_backward(self, dy: Tensor) -> Tensor:
        d = self.linear2.backward(self.dropout2.backward(dy))
        return self.linear1.backward(self.activation.backward(self.dropout.backward(d)))

    # ---- forward and backward ---------------------------------------------------------------
    def forward(
        self,
        src: Tensor,
        src_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> Tensor:
        self._check_input(src)
        owner = self._short_name()
        floats = [
            isinstance(m, Tensor) and m.is_floating_point()
            for m in (src_mask, src_key_padding_mask)
        ]
        mask = _additive(src_mask, "src_mask", owner, src)  # as torch: both masks to floats
        kpm = _additive(src_key_padding_mask, "src_key_padding_mask", owner, src)
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), mask, kpm, is_causal)
            x = x + self._ff(self.norm2(x))
        else:
            x = self.norm1(x + self._sa(x, mask, kpm, is_causal))
            x = self.norm2(x + self._ff(x))
        self.push_cache((floats, x.shape))
        return x

    def backward(self, dy: Tensor) -> Any:
        floats, y_shape = self.pop_cache()
        self._check_grad_output(dy, y_shape)
        if self.norm_first:  # x₁ = x + sa(n1(x)), y = x₁ + ff(n2(x₁))
            dx1 = dy + self.norm2.backward(self._ff_backward(dy))  # both paths to x₁
            dsa, dkpm, dmask = self._sa_backward(dx1)
            dx = dx1 + self.norm1.backward(dsa)
        else:  # x₁ = n1(x + sa(x)), y = n2(x₁ + ff(x₁))
            dz2 = self.norm2.backward(dy)
            dx1 = dz2 + self._ff_backward(dz2)
            dz1 = self.norm1.backward(dx1)
            dsa, dkpm, dmask = self._sa_backward(dz1)
            dx = dz1 + dsa
        if not any(floats):
            return dx
        return dx, dmask if floats[0] else None, dkpm if floats[1] else None
