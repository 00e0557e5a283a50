"""MultiheadAttention as torch.nn has it, forward and backward by hand. The attention op pair
is in handgrad.ops.attention; math in docs/math.md#attention.

Same arguments, keys and forward contract as torch.nn.MultiheadAttention: in_proj_weight
(3E, E), or q_proj_weight, k_proj_weight, v_proj_weight when kdim or vdim differ from E;
in_proj_bias (3E,); out_proj.weight, out_proj.bias; bias_k, bias_v (1, 1, E) with
add_bias_kv. forward(query, key, value, key_padding_mask=None, need_weights=True,
attn_mask=None, average_attn_weights=True, is_causal=False) -> (attn_output, attn_weights);
backward(d_attn_output, d_attn_weights=None) -> (dquery, dkey, dvalue), followed by the
gradients of floating masks when any were given. Self-attention on one tensor (query is key
is value) runs one packed projection, as torch does, and reports that tensor's whole gradient
as dquery (dkey and dvalue are zeros): dquery + dkey + dvalue is dL/dx either way.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from handgrad import kernels, ops
from handgrad.errors import ArgumentTypeError, InputError, ShapeError, UsageError
from handgrad.init import xavier_normal_, xavier_uniform_
from handgrad.mode import reference_when_compiling
from handgrad.module import Module
from handgrad.nn.linear import Linear
from handgrad.validate import check_algorithm, positive_int


def _additive(mask: Tensor | None, name: str, owner: str, like: Tensor) -> Tensor | None:
    """A bool mask as 0 / -inf (True: not allowed), a float mask as it is (torch's
    _canonical_mask)."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise ArgumentTypeError(f"{owner}: {name} must be a tensor, got {type(mask).__name__}")
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(
            mask, -math.inf
        )
    if not mask.is_floating_point():
        raise ShapeError(
            f"{owner}: only bool and floating types of {name} are supported, got {mask.dtype}"
        )
    return mask.to(like.dtype)


def _pad_column(mask: Tensor | None) -> Tensor | None:
    """One more key, allowed (F.pad(mask, (0, 1)))."""
    return None if mask is None else torch.cat([mask, mask.new_zeros(*mask.shape[:-1], 1)], -1)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017), torch.nn.MultiheadAttention's math:
    heads hᵢ = softmax(q Wᵢ^Q (k Wᵢ^K)ᵀ / √d + mask) v Wᵢ^V, output [h₁ … h_H] W_outᵀ + b.
    Init as torch: out_proj as a Linear, then xavier_uniform in_proj, zero biases,
    xavier_normal bias_k and bias_v.

    ``algorithm`` (keyword-only, not part of the saved architecture): "reference" runs
    handgrad.ops.attention_forward/backward, the formulas; "fused" runs their elementwise
    steps in place (handgrad.kernels.attention); "auto" (default) is "fused"."""

    parameter_names = (
        "in_proj_weight",
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "in_proj_bias",
        "bias_k",
        "bias_v",
    )
    torch_name = "MultiheadAttention"
    ALGORITHMS = ("auto", "reference", "fused")

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        algorithm: str = "auto",
    ) -> None:
        owner = "MultiheadAttention"
        self.algorithm = check_algorithm(owner, algorithm, self.ALGORITHMS)
        for name, v in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ArgumentTypeError(f"{owner}: {name} must be an int, got {v!r}")
        if embed_dim <= 0 or num_heads <= 0:
            raise InputError(
                f"{owner}: embed_dim and num_heads must be greater than 0, got "
                f"embed_dim={embed_dim} and num_heads={num_heads} instead"
            )
        if embed_dim % num_heads:
            raise InputError(
                f"{owner}: embed_dim must be divisible by num_heads, got embed_dim={embed_dim} "
                f"and num_heads={num_heads}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise InputError(f"{owner}: dropout must be a probability in [0, 1], got {dropout!r}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim = positive_int(owner, "kdim", kdim) if kdim is not None else embed_dim
        self.vdim = positive_int(owner, "vdim", vdim) if vdim is not None else embed_dim
        self.head_dim = embed_dim // num_heads
        self.batch_first, self.add_zero_attn = batch_first, add_zero_attn
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        E = embed_dim
        self.out_proj = Linear(E, E, bias, **kw)  # torch draws its Linear init first
        self.in_proj_weight: Tensor | None = None
        self.q_proj_weight: Tensor | None = None
        self.k_proj_weight: Tensor | None = None
        self.v_proj_weight: Tensor | None = None
        if self._qkv_same_embed_dim:
            self.in_proj_weight = xavier_uniform_(torch.empty(3 * E, E, **kw))
        else:
            self.q_proj_weight = xavier_uniform_(torch.empty(E, E, **kw))
            self.k_proj_weight = xavier_uniform_(torch.empty(E, self.kdim, **kw))
            self.v_proj_weight = xavier_uniform_(torch.empty(E, self.vdim, **kw))
        self.in_proj_bias = torch.zeros(3 * E, **kw) if bias else None
        if bias:
            assert self.out_proj.bias is not None
            self.out_proj.bias.zero_()
        self.bias_k = xavier_normal_(torch.empty(1, 1, E, **kw)) if add_bias_kv else None
        self.bias_v = xavier_normal_(torch.empty(1, 1, E, **kw)) if add_bias_kv else None

    def config(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "bias": self.in_proj_bias is not None,
            "add_bias_kv": self.bias_k is not None,
            "add_zero_attn": self.add_zero_attn,
            "kdim": self.kdim,
            "vdim": self.vdim,
            "batch_first": self.batch_first,
        }

    @classmethod
    def config_from_torch(cls, m: Any) -> dict[str, Any]:
        config = super().config_from_torch(m)
        config["bias"] = m.in_proj_bias is not None
        config["add_bias_kv"] = m.bias_k is not None
        return config

    def _projections(self) -> tuple[Tensor, Tensor, Tensor]:
        if self.in_proj_weight is not None:
            W_q, W_k, W_v = self.in_proj_weight.chunk(3)  # views: (E, E) each
            return W_q, W_k, W_v
        assert self.q_proj_weight is not None and self.k_proj_weight is not None
        assert self.v_proj_weight is not None
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    # ---- forward --------------------------------------------------------------------------
    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        owner = self._short_name()
        for name, t, dim in (
            ("query", query, self.embed_dim),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            self._check_input(t)
            if t.dim() not in (2, 3):
                raise ShapeError(
                    f"{owner}: {name} should be unbatched 2D or batched 3D, got shape "
                    f"{tuple(t.shape)}"
                )
            if t.shape[-1] != dim:
                raise ShapeError(
                    f"{owner}: expected {name} with {dim} features (last dim), got shape "
                    f"{tuple(t.shape)}"
                )
            self._check_like(t, self.out_proj.weight)
        batched = query.dim() == 3
        if key.dim() != query.dim() or value.dim() != query.dim():
            raise ShapeError(
                f"{owner}: For {'batched (3-D)' if batched else 'unbatched (2-D)'} `query`, "
                f"expected `key` and `value` to be {query.dim()}-D but found {key.dim()}-D and "
                f"{value.dim()}-D tensors respectively"
            )
        if key.shape[:-1] != value.shape[:-1]:
            raise ShapeError(
                f"{owner}: key's sequence and batch dims {tuple(key.shape[:-1])} do not match "
                f"value's {tuple(value.shape[:-1])}"
            )
        if (
            batched
            and query.shape[1 - int(self.batch_first)] != key.shape[1 - int(self.batch_first)]
        ):
            raise ShapeError(
                f"{owner}: query and key must have the same batch size, got "
                f"{tuple(query.shape)} and {tuple(key.shape)}"
            )
        if (
            key_padding_mask is not None
            and attn_mask is not None
            and isinstance(key_padding_mask, Tensor)
            and isinstance(attn_mask, Tensor)
            and key_padding_mask.dtype != attn_mask.dtype
        ):
            warnings.warn(
                "Support for mismatched key_padding_mask and attn_mask is deprecated. "
                "Use same type for both instead.",
                stacklevel=2,
            )
        float_masks = [
            isinstance(m, Tensor) and m.is_floating_point() for m in (key_padding_mask, attn_mask)
        ]
        kpm = _additive(key_padding_mask, "key_padding_mask", owner, query)
        mask = _additive(attn_mask, "attn_mask", owner, query)
        if is_causal and attn_mask is None:
            raise InputError(
                f"{owner}: Need attn_mask if specifying the is_causal hint. You may use "
                "Transformer.generate_square_subsequent_mask to create this mask."
            )
        # torch: with is_causal, no padding mask and no weights asked for, the causal mask is
        # built from the sizes and attn_mask is dropped; otherwise attn_mask is used as given.
        causal = is_causal and kpm is None and not need_weights
        if causal:
            mask, float_masks[1] = None, False  # (so attn_mask gets no gradient)
        # batch-major (N, L, E) inside: each head's rows stay contiguous for the products
        self_attention = query is key and key is value and self.in_proj_weight is not None
        if not batched:
            q_in, k_in, v_in = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            kpm = None if kpm is None else kpm.unsqueeze(0)
        elif self.batch_first:
            q_in, k_in, v_in = query, key, value
        else:
            q_in, k_in, v_in = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        N, L, E = q_in.shape
        S, H, d = k_in.shape[1], self.num_heads, self.head_dim
        if kpm is not None and tuple(kpm.shape) != (N, S):
            raise ShapeError(
                f"{owner}: expected key_padding_mask of shape {(N, S) if batched else (S,)}, "
                f"got {tuple(key_padding_mask.shape)}"  # type: ignore[union-attr]
            )
        if mask is not None:
            if mask.dim() == 2 and tuple(mask.shape) != (L, S):
                raise ShapeError(
                    f"{owner}: The shape of the 2D attn_mask is {tuple(mask.shape)}, but should "
                    f"be {(L, S)}."
                )
            if mask.dim() == 3 and tuple(mask.shape) != (N * H, L, S):
                raise ShapeError(
                    f"{owner}: The shape of the 3D attn_mask is {tuple(mask.shape)}, but should be "
                    f"{(N * H, L, S)}."
                )
            if mask.dim() not in (2, 3):
                raise ShapeError(f"{owner}: attn_mask's dimension {mask.dim()} is not supported")
            mask = mask.view(N, H, L, S) if mask.dim() == 3 else mask  # (L, S) broadcasts
        if self_attention:  # one product for q, k and v: x [W_q; W_k; W_v]ᵀ, as torch packs it
            assert self.in_proj_weight is not None
            qkv, cqkv = ops.linear_forward(q_in, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.chunk(3, -1)  # (N, L, E) each
            caches: tuple = (cqkv,)
        else:
            W_q, W_k, W_v = self._projections()
            b_q, b_k, b_v = (
                (None, None, None) if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
            )
            q, cq = ops.linear_forward(q_in, W_q, b_q)  # (N, L, E)
            k, ck = ops.linear_forward(k_in, W_k, b_k)  # (N, S, E)
            v, cv = ops.linear_forward(v_in, W_v, b_v)  # (N, S, E)
            caches = (cq, ck, cv)
        if self.bias_k is not None and self.bias_v is not None:  # one more key and value
            k = torch.cat([k, self.bias_k.expand(N, 1, E)], 1)  # (N, S+1, E)
            v = torch.cat([v, self.bias_v.expand(N, 1, E)], 1)
            mask, kpm = _pad_column(mask), _pad_column(kpm)
        # heads: (N, L, E) -> (N, H, L, d), E split as torch splits it
        # (N, H, L, d), copied once into head-major order so that no product copies it again
        qh = q.reshape(N, L, H, d).transpose(1, 2).contiguous()
        kh = k.reshape(N, k.shape[1], H, d).transpose(1, 2).contiguous()
        vh = v.reshape(N, v.shape[1], H, d).transpose(1, 2).contiguous()
        if self.add_zero_attn:  # one more key and value, all zeros
            kh = torch.cat([kh, kh.new_zeros(N, H, 1, d)], 2)
            vh = torch.cat([vh, vh.new_zeros(N, H, 1, d)], 2)
            mask, kpm = _pad_column(mask), _pad_column(kpm)
        S_all = kh.shape[2]
        full = mask
        if kpm is not None:  # (N, S) -> (N, 1, 1, S), added to attn_mask
            kpm4 = kpm.view(N, 1, 1, S_all)
            full = kpm4 if full is None else full + kpm4
        if causal:
            full = ops.causal_mask(L, S_all, qh)
        attention = (
            ops
            if reference_when_compiling("MultiheadAttention", self.algorithm)
            else kernels.attention
        )
        (yh, P), ca = attention.attention_forward(
            qh, kh, vh, full, self.dropout, self.training, safe=not need_weights
        )  # torch: need_weights=False runs scaled_dot_product_attention
        y_cat = yh.transpose(1, 2).reshape(N, L, E)  # the heads side by side
        out = self.out_proj(y_cat)  # (N, L, E)
        weights = None
        if need_weights:  # P: (N, H, L, S)
            weights = P.mean(1) if average_attn_weights else P
            weights = weights if batched else weights.squeeze(0)
        out = out if batched else out.squeeze(0)
        out = out.transpose(0, 1) if batched and not self.batch_first else out
        self.push_cache(
            (
                caches,
                ca,
                (N, L, S, S_all),
                batched,
                float_masks,
                mask is not None and mask.dim() == 2,
                average_attn_weights,
                out.shape,
                None if weights is None else weights.shape,
            )
        )
        return out, weights

    # ---- backward -------------------------------------------------------------------------
    def backward(self, dout: Tensor | None, dweights: Tensor | None = None) -> tuple[Any, ...]:
        (
            caches,
            ca,
            (N, L, S, S_all),
            batched,
            float_masks,
            mask_2d,
            average,
            out_shape,
            w_shape,
        ) = self.pop_cache()
        H, d, E = self.num_heads, self.head_dim, self.embed_dim
        if dout is not None:
            self._check_grad_output(dout, out_shape)
        if dweights is not None:
            if w_shape is None:
                raise UsageError(
                    f"{self._short_name()}.backward: got a gradient for attn_weights, but the "
                    "forward had need_weights=False"
                )
            self._check_grad_output(dweights, w_shape)
        if dout is None:
            dout = torch.zeros(
                out_shape, dtype=self.out_proj.weight.dtype, device=self.out_proj.weight.device
            )
        dout = dout.transpose(0, 1) if batched and not self.batch_first else dout
        dout = dout if batched else dout.unsqueeze(0)  # (N, L, E)
        dy_cat = self.out_proj.backward(dout)  # (N, L, E)
        dyh = dy_cat.reshape(N, L, H, d).transpose(1, 2).contiguous()  # (N, H, L, d)
        dP = None
        if dweights is not None:
            dw = dweights if batched else dweights.unsqueeze(0)
            dP = dw.unsqueeze(1).expand(N, H, L, S_all) / H if average else dw  # mean over heads
        attention = (
            ops
            if reference_when_compiling("MultiheadAttention", self.algorithm)
            else kernels.attention
        )
        dqh, dkh, dvh, dS, *_ = attention.attention_backward((dyh, dP), ca)  # dS: the mask's
        if self.add_zero_attn:
            dkh, dvh = dkh[:, :, :-1], dvh[:, :, :-1]  # the zero key and value are constants
        dk = dkh.transpose(1, 2).reshape(N, dkh.shape[2], E)  # (N, S or S+1, E)
        dv = dvh.transpose(1, 2).reshape(N, dvh.shape[2], E)
        dq = dqh.transpose(1, 2).reshape(N, L, E)
        if self.bias_k is not None and self.bias_v is not None:
            self.add_grad(self.bias_k, dk[:, S:].sum(0, keepdim=True))  # every example's: Σₙ
            self.add_grad(self.bias_v, dv[:, S:].sum(0, keepdim=True))
            dk, dv = dk[:, :S], dv[:, :S]
        if len(caches) == 1:  # self-attention: the packed product's backward
            dx, dW, db = ops.linear_backward(torch.cat([dq, dk, dv], -1), caches[0])
            self.add_grad(self.in_proj_weight, dW)  # (3E, E)
            self.add_grad(self.in_proj_bias, db)
            assert dx is not None
            zeros = dx.new_zeros(()).expand_as(dx)  # query, key and value are one tensor: its
            ins: list[Tensor | None] = [dx, zeros, zeros]  # whole gradient is reported once
        else:
            dq_in, dW_q, db_q = ops.linear_backward(dq, caches[0])
            dk_in, dW_k, db_k = ops.linear_backward(dk, caches[1])
            dv_in, dW_v, db_v = ops.linear_backward(dv, caches[2])
            if self.in_proj_weight is not None:
                self.add_grad(self.in_proj_weight, torch.cat([dW_q, dW_k, dW_v]))  # (3E, E)
            else:
                self.add_grad(self.q_proj_weight, dW_q)
                self.add_grad(self.k_proj_weight, dW_k)
                self.add_grad(self.v_proj_weight, dW_v)
            if self.in_proj_bias is not None:
                assert db_q is not None and db_k is not None and db_v is not None
                self.add_grad(self.in_proj_bias, torch.cat([db_q, db_k, db_v]))
            ins = [dq_in, dk_in, dv_in]
        grads = []
        for g in ins:
            assert g is not None
            g = g if batched else g.squeeze(0)
            grads.append(g.transpose(0, 1) if batched and not self.batch_first else g)
        if not any(float_masks):
            return tuple(grads)
        # a floating mask was added to the scores: its gradient is dS summed where it broadcast
        assert dS is not None
        dS_keys = dS[..., :S]  # (N, H, L, S) as broadcast: the extra keys' columns were padding
        dkpm = None
        if float_masks[0]:
            dkpm = dS_keys.sum((1, 2))  # (N, S)
            dkpm = dkpm if batched else dkpm.squeeze(0)
        dmask = None
        if float_masks[1]:  # (L, S), or (N·H, L, S)
            dmask = dS_keys.sum((0, 1)) if mask_2d else dS_keys.reshape(N * H, L, S)
        return (*grads, dkpm, None, dmask)
