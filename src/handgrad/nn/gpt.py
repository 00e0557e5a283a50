"""A small GPT (decoder-only transformer) built from handgrad's own layers, forward and
backward by hand: token + position embeddings, blocks of torch's TransformerEncoderLayer
with norm_first=True, activation="gelu" and a causal mask, a final LayerNorm and an output
layer, optionally tied to the token embedding (its gradient is then the sum of both uses).

Its state_dict keys are those of the same model written with torch.nn modules of the same
names (examples/gpt.py has it), so weights move both ways with load_state_dict.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from handgrad import ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError
from handgrad.mode import no_cache
from handgrad.module import Module
from handgrad.nn.containers import ModuleList
from handgrad.nn.dropout import Dropout
from handgrad.nn.embedding import Embedding
from handgrad.nn.linear import Linear
from handgrad.nn.normalization import LayerNorm
from handgrad.nn.transformer import TransformerEncoderLayer
from handgrad.validate import positive_int


class GPT(Module):
    """logits = head(ln_f(blocks(drop(tok_emb(idx) + pos_emb(0..T-1))))).

    idx (N, T) int64 ids, T ≤ block_size -> logits (N, T, vocab_size); backward(dlogits)
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
            TransformerEncoderLayer(
                n_embd,
                n_head,
                4 * n_embd,
                dropout,
                "gelu",
                batch_first=True,
                norm_first=True,
                bias=bias,
                **kw,
            )
            for _ in range(n_layer)
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
            assert isinstance(block, TransformerEncoderLayer)
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
            raise ShapeError(f"GPT: expected token ids of shape (N, T), got {tuple(idx.shape)}")
        T = idx.shape[1]
        if not 0 < T <= self.block_size:
            raise ShapeError(
                f"GPT: sequences of 1 to block_size={self.block_size} tokens, got T={T}"
            )
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (N, T, E) + (T, E)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # j > i: masked
        for block in self.blocks:
            x = block(x, causal, None, True)
        return self.head(self.ln_f(x))  # (N, T, vocab_size)

    def backward(self, dlogits: Tensor) -> None:
        dx = self.ln_f.backward(self.head.backward(dlogits))
        for block in reversed(list(self.blocks)):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        self.pos_emb.backward(dx.sum(0))  # the positions were added to every example: Σₙ
        self.tok_emb.backward(dx)
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
        """idx (N, T) followed by max_new_tokens sampled ids, each from the softmax of the last
        logits / temperature (only the top_k largest if given), the context cropped to
        block_size. Runs in eval mode (the mode is restored) and keeps no cache."""
        if not temperature > 0:
            raise InputError(f"GPT.generate: temperature must be > 0, got {temperature!r}")
        was_training = self.training
        self.eval()
        try:
            for _ in range(max_new_tokens):
                logits = self(idx[:, -self.block_size :])[:, -1, :] / temperature  # (N, V)
                if top_k is not None:
                    kth = logits.topk(min(top_k, logits.shape[-1]), -1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, -math.inf)
                probs, _ = ops.softmax_forward(logits, -1)
                nxt = torch.multinomial(probs, 1, generator=generator)  # (N, 1)
                idx = torch.cat([idx, nxt], 1)
        finally:
            self.train(was_training)
        return idx
