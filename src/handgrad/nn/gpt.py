"""A small GPT (decoder-only transformer) built from handgrad's own layers, forward and
backward by hand, nanoGPT's shape in one file: CausalSelfAttention (packed q, k, v; the heads;
the causal mask), the Block (x + attn(ln(x)), then x + mlp(ln(x))) and the GPT (token +
position embeddings, the blocks, a final LayerNorm and an output layer, optionally tied to the
token embedding: its gradient is then the sum of both uses). Math: docs/math.md#gpt.

The state_dict keys are those of the same model written with torch.nn modules (each block a
TransformerEncoderLayer with norm_first=True, activation="gelu", batch_first=True and a causal
mask; examples/gpt.py has it), so weights move both ways with load_state_dict. The
torch-parity MultiheadAttention (nn/attention.py) runs the same op pair with all of torch's
options; this file keeps only what a GPT uses.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.init import xavier_uniform_
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.activation import GELU
from handgrad.nn.containers import ModuleList
from handgrad.nn.dropout import Dropout
from handgrad.nn.embedding import Embedding
from handgrad.nn.linear import Linear
from handgrad.nn.normalization import LayerNorm
from handgrad.validate import positive_int


def _check_sizes(owner: str, n_embd: int, n_head: int, dropout: float) -> None:
    positive_int(owner, "n_embd", n_embd)
    positive_int(owner, "n_head", n_head)
    if n_embd % n_head:
        raise InputError(f"{owner}: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
        raise InputError(f"{owner}: dropout must be a probability in [0, 1], got {dropout!r}")


def _check_btc(owner: Module, x: Tensor, C: int) -> None:
    owner._check_input(x)
    if x.dim() != 3 or x.shape[-1] != C:
        raise ShapeError(
            f"{owner._short_name()}: expected x of shape (B, T, {C}), got {tuple(x.shape)}"
        )


class CausalSelfAttention(Module):
    """Masked multi-head self-attention: position t attends to positions 0..t only.

    x (B, T, C) -> (B, T, C), C = n_embd split into n_head heads of hs = C / n_head:
    q, k, v = x W_inᵀ + b_in (one product, split in three), per head
    y = dropout(softmax(q kᵀ / √hs + mask)) v, heads side by side, out = y W_outᵀ + b_out.
    Keys, shapes and init as torch's MultiheadAttention: in_proj_weight (3C, C) xavier-uniform,
    in_proj_bias (3C,) zeros, out_proj a Linear(C, C) with a zero bias.
    """

    parameter_names = ("in_proj_weight", "in_proj_bias")

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_sizes("CausalSelfAttention", n_embd, n_head, dropout)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, float(dropout)
        self.out_proj = Linear(n_embd, n_embd, bias=bias, **kw)  # drawn first, as torch does
        self.in_proj_weight = xavier_uniform_(torch.empty(3 * n_embd, n_embd, **kw))
        self.in_proj_bias = torch.zeros(3 * n_embd, **kw) if bias else None
        if self.out_proj.bias is not None:
            self.out_proj.bias.zero_()

    def config(self) -> dict[str, Any]:
        bias = self.in_proj_bias is not None
        return {"n_embd": self.n_embd, "n_head": self.n_head, "dropout": self.dropout, "bias": bias}

    def forward(self, x: Tensor) -> Tensor:
        _check_btc(self, x, self.n_embd)
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        qkv, qkv_cache = ops.linear_forward(x, self.in_proj_weight, self.in_proj_bias)  # (B, T, 3C)
        q, k, v = qkv.split(C, dim=-1)  # (B, T, C) each
        # (B, T, C) -> (B, nh, T, hs), copied once into head-major order for the products
        q = q.reshape(B, T, nh, hs).transpose(1, 2).contiguous()  # (B, nh, T, hs)
        k = k.reshape(B, T, nh, hs).transpose(1, 2).contiguous()  # (B, nh, T, hs)
        v = v.reshape(B, T, nh, hs).transpose(1, 2).contiguous()  # (B, nh, T, hs)
        mask = ops.causal_mask(T, T, q)  # (T, T): 0 where key j ≤ query i, -inf above
        (y, _), att_cache = ops.attention_forward(
            q, k, v, mask, dropout_p=self.dropout, training=self.training
        )  # y = dropout(softmax(q kᵀ/√hs + mask)) v   (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # the heads side by side   (B, T, C)
        self.push_cache((qkv_cache, att_cache, x.shape))
        return self.out_proj(y)  # (B, T, C)

    def backward(self, dout: Tensor) -> Tensor:
        qkv_cache, att_cache, x_shape = self.pop_cache()
        self._check_grad_output(dout, x_shape)
        B, T, C = x_shape
        nh, hs = self.n_head, C // self.n_head
        # in the forward pass this was: out = y W_outᵀ + b_out
        dy = self.out_proj.backward(dout)  # dL/dy = dout W_out   (B, T, C)
        # in the forward pass this was: y = the heads (B, nh, T, hs) side by side
        dy = dy.reshape(B, T, nh, hs).transpose(1, 2).contiguous()  # (B, nh, T, hs)
        # in the forward pass this was: y = dropout(softmax(q kᵀ/√hs + mask)) v
        dq, dk, dv, *_ = ops.attention_backward((dy, None), att_cache)  # (B, nh, T, hs) each
        # in the forward pass this was: q, k, v = the three thirds of qkv, split into heads
        dqkv = torch.cat([d.transpose(1, 2).reshape(B, T, C) for d in (dq, dk, dv)], -1)
        # in the forward pass this was: qkv = x W_inᵀ + b_in   dqkv: (B, T, 3C)
        dx, dW, db = ops.linear_backward(dqkv, qkv_cache)
        self.add_grad(self.in_proj_weight, dW)  # dL/dW_in = dqkvᵀ x   (3C, C)
        self.add_grad(self.in_proj_bias, db)  # dL/db_in = Σ dqkv   (3C,)
        assert dx is not None  # (linear_backward gives None only when asked not to)
        return dx  # dL/dx = dqkv W_in   (B, T, C)


class Block(Module):
    """One transformer block, pre-norm (torch's TransformerEncoderLayer with norm_first=True,
    activation="gelu", batch_first=True and a causal mask, with the same keys):

        x₁ = x + dropout1(self_attn(norm1(x)))
        y  = x₁ + dropout2(linear2(dropout(gelu(linear1(norm2(x₁))))))     linear1: C -> 4C
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        bias: bool = True,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_sizes("Block", n_embd, n_head, dropout)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.self_attn = CausalSelfAttention(n_embd, n_head, dropout, bias=bias, **kw)
        self.linear1 = Linear(n_embd, 4 * n_embd, bias=bias, **kw)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(4 * n_embd, n_embd, bias=bias, **kw)
        self.norm1 = LayerNorm(n_embd, bias=bias, **kw)
        self.norm2 = LayerNorm(n_embd, bias=bias, **kw)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = GELU()

    def config(self) -> dict[str, Any]:
        return self.self_attn.config()  # n_embd, n_head, dropout, bias

    def forward(self, x: Tensor) -> Tensor:
        _check_btc(self, x, self.self_attn.n_embd)
        a = self.self_attn(self.norm1(x))  # (B, T, C)
        # torch's attention output is a (T, B, C) tensor seen as (B, T, C), and its dropout
        # draws the mask in memory order: drop in that layout to draw the same mask
        x = x + self.dropout1(a.transpose(0, 1)).transpose(0, 1)  # x₁   (B, T, C)
        h = self.dropout(self.activation(self.linear1(self.norm2(x))))  # (B, T, 4C)
        return x + self.dropout2(self.linear2(h))  # (B, T, C)

    def backward(self, dy: Tensor) -> Tensor:
        # in the forward pass this was: y = x₁ + dropout2(linear2(h)), h = dropout(gelu(…))
        dh = self.linear2.backward(self.dropout2.backward(dy))  # (B, T, 4C)
        dh = self.activation.backward(self.dropout.backward(dh))  # (B, T, 4C)
        dh = self.linear1.backward(dh)  # dL/d norm2(x₁)   (B, T, C)
        dx1 = dy + self.norm2.backward(dh)  # x₁ feeds y twice: both paths   (B, T, C)
        # in the forward pass this was: x₁ = x + dropout1(self_attn(norm1(x)))
        da = self.dropout1.backward(dx1.transpose(0, 1)).transpose(0, 1)  # (B, T, C)
        return dx1 + self.norm1.backward(self.self_attn.backward(da))  # (B, T, C)


class GPT(Module):
    """logits = head(ln_f(blocks(drop(tok_emb(idx) + pos_emb(0..T-1))))).

    idx (B, T) int64 ids, T ≤ block_size -> logits (B, T, vocab_size); backward(dlogits)
    adds every parameter's gradient and returns None (ids have no gradient).
    init="gpt2" (handgrad's own, keyword-only): N(0, 0.02) weights, zero biases, the output
    projections of each block N(0, 0.02/√(2·n_layer)); init="torch": each layer's own default.
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 128,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        tie_weights: bool = True,
        bias: bool = True,
        *,
        init: str = "gpt2",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        for name, v in (
            ("vocab_size", vocab_size),
            ("block_size", block_size),
            ("n_layer", n_layer),
            ("n_head", n_head),
            ("n_embd", n_embd),
        ):
            positive_int("GPT", name, v)
        if n_embd % n_head:
            raise InputError(f"GPT: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        if init not in ("gpt2", "torch"):
            raise InputError(f"GPT: init must be 'gpt2' or 'torch', got {init!r}")
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_head, self.n_embd, self.tie_weights, self.init = n_head, n_embd, tie_weights, init
        self.tok_emb = Embedding(vocab_size, n_embd, **kw)
        self.pos_emb = Embedding(block_size, n_embd, **kw)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList(
            Block(n_embd, n_head, dropout, bias=bias, **kw) for _ in range(n_layer)
        )
        self.ln_f = LayerNorm(n_embd, bias=bias, **kw)
        if tie_weights:  # the output layer reads the token table itself: one tensor, two uses
            self.head = Linear.from_weights(self.tok_emb.weight)
        else:
            self.head = Linear(n_embd, vocab_size, bias=False, **kw)
        if init == "gpt2":
            self._init_gpt2()

    def _init_gpt2(self) -> None:
        std = 0.02
        for _, p in self.named_parameters():  # (a tied table once)
            p.normal_(0.0, std) if p.dim() >= 2 else p.zero_()  # matrices N(0, 0.02), biases 0
        norms: list[LayerNorm] = [self.ln_f]
        for block in self.blocks:
            assert isinstance(block, Block)
            norms += [block.norm1, block.norm2]
            for proj in (block.self_attn.out_proj, block.linear2):  # onto the residual stream
                proj.weight.normal_(0.0, std / math.sqrt(2 * self.n_layer))
        for norm in norms:
            if norm.weight is not None:
                norm.weight.fill_(1.0)

    def config(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size,
            "block_size": self.block_size,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_embd": self.n_embd,
            "dropout": self.drop.p,
            "tie_weights": self.tie_weights,
            "bias": self.ln_f.bias is not None,
            "init": self.init,
        }

    def forward(self, idx: Tensor) -> Tensor:
        if not isinstance(idx, Tensor):
            raise ArgumentTypeError(
                f"GPT: expected a tensor of token ids, got {type(idx).__name__}"
            )
        if idx.dim() != 2:
            raise ShapeError(f"GPT: expected token ids of shape (B, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if not 0 < T <= self.block_size:
            raise ShapeError(
                f"GPT: sequences of 1 to block_size={self.block_size} tokens, got T={T}"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, C) + (T, C)
        for block in self.blocks:
            x = block(x)  # (B, T, C)
        return self.head(self.ln_f(x))  # (B, T, vocab_size)

    def backward(self, dlogits: Tensor) -> None:
        # in the forward pass this was: logits = head(ln_f(x))
        dx = self.ln_f.backward(self.head.backward(dlogits))  # (B, T, C)
        for block in reversed(list(self.blocks)):  # in the forward pass: x = block(x)
            dx = block.backward(dx)  # (B, T, C)
        # in the forward pass this was: x = drop(tok_emb(idx) + pos_emb(0..T-1))
        dx = self.drop.backward(dx)  # (B, T, C)
        self.pos_emb.backward(dx.sum(0))  # added to every example: Σ_b dx   (T, C)
        self.tok_emb.backward(dx)  # each row of dx into its token's row of the table
        return None

    @no_cache()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """idx (B, T) followed by max_new_tokens sampled ids, each from the softmax of the last
        logits / temperature (only the top_k largest if given), the context cropped to
        block_size. Runs in eval mode (the mode is restored) and keeps no cache."""
        if not temperature > 0:
            raise InputError(f"GPT.generate: temperature must be > 0, got {temperature!r}")
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                logits = self(idx[:, -self.block_size :])[:, -1, :] / temperature  # (B, V)
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, -math.inf)
                probs, _ = ops.softmax_forward(logits, -1)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
                idx = torch.cat([idx, nxt], 1)
        finally:
            self.train(mode=was_training)
        return idx
