"""The small GPT against the same model written with torch.nn modules (float64 forward,
every parameter's gradient, tied and untied output layer, dropout drawn as torch draws it),
its generation, saving with the tie, a few training steps; datasets.text (the default
corpus, a user's UTF-8 file in any script, and the bad files)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import handgrad as hg
from handgrad.errors import ArgumentTypeError, InputError, NotSupportedError, ShapeError

F64 = torch.float64


class TorchGPT(nn.Module):
    """The same architecture as hg.GPT, from torch's own modules, with the same keys."""

    def __init__(self, V, T, layers, heads, E, dropout=0.0, tie=True):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(V, E), nn.Embedding(T, E)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                E, heads, 4 * E, dropout, "gelu", batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.ln_f, self.head = nn.LayerNorm(E), nn.Linear(E, V, bias=False)
        if tie:
            self.head.weight = self.tok_emb.weight

    def forward(self, idx):
        T = idx.shape[1]
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        mask = torch.ones(T, T, dtype=torch.bool, device=idx.device).triu(1)
        for block in self.blocks:
            x = block(x, mask, None, True)
        return self.head(self.ln_f(x))


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("T", [1, 6])
def test_gpt_matches_the_same_model_in_torch(tie, dropout, T):
    torch.manual_seed(0)
    mine = hg.GPT(13, 6, 2, 2, 16, dropout, tie_weights=tie).to(F64)
    ref = TorchGPT(13, 6, 2, 2, 16, dropout, tie=tie).double()
    ref.load_state_dict(mine.state_dict())
    assert list(ref.state_dict()) == list(mine.state_dict())
    idx = torch.randint(13, (3, T), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    expected = ref(idx)
    torch.manual_seed(7)
    logits = mine(idx)
    torch.testing.assert_close(logits, expected.detach())
    g = torch.randn(expected.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    (expected * g).sum().backward()
    assert mine.backward(g) is None
    grads = {n: p.grad for n, p in ref.named_parameters()}
    assert len(mine.parameters()) == len(grads)  # a tied table once
    for name, p in mine.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], msg=name)


def _same_grads(mine, ref):
    grads = {n: p.grad for n, p in ref.named_parameters()}
    assert len(mine.parameters()) == len(grads)
    for name, p in mine.named_parameters():
        torch.testing.assert_close(p.grad, grads[name], msg=name)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_causal_self_attention_is_torchs_attention_with_is_causal(bias, dropout):
    torch.manual_seed(0)
    mine = hg.CausalSelfAttention(8, 2, dropout, bias=bias, dtype=F64)
    ref = nn.MultiheadAttention(8, 2, dropout, bias=bias, batch_first=True, dtype=F64)
    assert list(ref.state_dict()) == list(mine.state_dict())
    ref.load_state_dict(mine.state_dict())
    x = torch.randn(3, 5, 8, dtype=F64, requires_grad=True)
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
    torch.manual_seed(7)
    expected, _ = ref(x, x, x, attn_mask=mask, need_weights=False, is_causal=True)
    torch.manual_seed(7)
    y = mine(x.detach())
    torch.testing.assert_close(y, expected.detach())
    g = torch.randn(expected.shape, dtype=F64)
    (expected * g).sum().backward()
    torch.testing.assert_close(mine.backward(g), x.grad)
    _same_grads(mine, ref)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_block_is_torchs_pre_norm_encoder_layer_with_a_causal_mask(bias, dropout):
    torch.manual_seed(0)
    mine = hg.Block(8, 2, dropout, bias=bias, dtype=F64)
    ref = nn.TransformerEncoderLayer(
        8, 2, 32, dropout, "gelu", batch_first=True, norm_first=True, bias=bias, dtype=F64
    )
    assert list(ref.state_dict()) == list(mine.state_dict())
    ref.load_state_dict(mine.state_dict())
    x = torch.randn(2, 6, 8, dtype=F64, requires_grad=True)
    mask = torch.ones(6, 6, dtype=torch.bool).triu(1)
    torch.manual_seed(7)
    expected = ref(x, mask, is_causal=True)
    torch.manual_seed(7)
    torch.testing.assert_close(mine(x.detach()), expected.detach())
    g = torch.randn(expected.shape, dtype=F64)
    (expected * g).sum().backward()
    torch.testing.assert_close(mine.backward(g), x.grad)
    _same_grads(mine, ref)


def test_init_torch_draws_what_torch_draws():
    torch.manual_seed(0)
    mine = hg.GPT(13, 6, 2, 2, 16, tie_weights=False, init="torch")
    torch.manual_seed(0)
    ref = TorchGPT(13, 6, 2, 2, 16, tie=False)
    for (name, a), b in zip(mine.state_dict().items(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("cls", [hg.CausalSelfAttention, hg.Block])
def test_attention_and_block_save_load_and_refuse_bad_input(cls, tmp_path):
    m = cls(8, 2, 0.1, bias=False)
    hg.save(m, tmp_path / "m.safetensors")
    loaded = hg.load(tmp_path / "m.safetensors")
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    assert type(loaded) is cls and loaded.config() == m.config()
    x = torch.randn(2, 3, 8)
    with hg.no_cache():
        torch.testing.assert_close(loaded.eval()(x), m.eval()(x))
    with pytest.raises(ShapeError, match=r"\(B, T, 8\)"):
        m(torch.randn(2, 3, 7))
    with pytest.raises(InputError, match="divisible"):
        cls(8, 3)
    with pytest.raises(InputError, match="dropout"):
        cls(8, 2, 1.5)


def test_gpt_has_no_torch_twin_as_before():
    with pytest.raises(NotSupportedError, match="GPT"):
        hg.to_torch(hg.GPT(10, 4, 1, 1, 8))


def test_init_tie_save_and_load(tmp_path):
    m = hg.GPT(20, 8, n_layer=2, n_head=2, n_embd=16)
    assert m.head.weight is m.tok_emb.weight
    assert abs(float(m.tok_emb.weight.std()) - 0.02) < 0.005
    assert float(m.blocks[0].linear2.weight.std()) < 0.015  # scaled by 1/√(2·n_layer)
    hg.save(m, tmp_path / "gpt.safetensors")
    loaded = hg.load(tmp_path / "gpt.safetensors")
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    assert loaded.head.weight is loaded.tok_emb.weight
    idx = torch.randint(20, (2, 8))
    with hg.no_cache():
        torch.testing.assert_close(loaded(idx), m(idx))
    untied = hg.GPT(20, 8, 1, 2, 16, tie_weights=False, init="torch")
    assert untied.head.weight is not untied.tok_emb.weight


def test_generate_keeps_no_cache_and_crops_the_context():
    m = hg.GPT(10, 4, 1, 1, 8)
    m.train()
    out = m.generate(torch.zeros(2, 3, dtype=torch.long), 6, temperature=0.8, top_k=3)
    assert out.shape == (2, 9) and int(out.max()) < 10
    assert m.training and all(mod.pending() == 0 for mod in m.modules())
    g = torch.Generator().manual_seed(0)
    a = m.generate(torch.zeros(1, 1, dtype=torch.long), 5, generator=g)
    b = m.generate(
        torch.zeros(1, 1, dtype=torch.long), 5, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(a, b)


def test_a_few_steps_lower_the_loss_on_the_default_corpus():
    torch.manual_seed(0)
    data = hg.datasets.text(block_size=16)
    model = hg.GPT(data.vocab_size, 16, n_layer=1, n_head=2, n_embd=32)
    loss_fn = hg.CrossEntropyLoss()
    opt = hg.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        x, y = data.batch("train", 16, gen)
        logits = model(x)
        losses.append(float(loss_fn(logits.reshape(-1, data.vocab_size), y.reshape(-1))))
        model.zero_grad()
        model.backward(loss_fn.backward().reshape(logits.shape))
        opt.step()
    assert losses[-1] < losses[0] - 1.0  # from ln(103) ≈ 4.6 down


def test_gpt_bad_inputs():
    m = hg.GPT(10, 4, 1, 1, 8)
    with pytest.raises(ShapeError, match="block_size=4"):
        m(torch.zeros(1, 5, dtype=torch.long))
    with pytest.raises(ShapeError, match=r"\(B, T\)"):
        m(torch.zeros(5, dtype=torch.long))
    with pytest.raises(InputError, match="index out of range"):
        m(torch.full((1, 2), 10))
    with pytest.raises(ShapeError, match="int64 or int32"):
        m(torch.zeros(1, 2))
    with pytest.raises(ArgumentTypeError, match="tensor of token ids"):
        m([[1, 2]])
    with pytest.raises(InputError, match="divisible"):
        hg.GPT(10, 4, 1, 3, 8)
    with pytest.raises(InputError, match="temperature"):
        m.generate(torch.zeros(1, 1, dtype=torch.long), 2, temperature=0)


# ---- datasets.text ---------------------------------------------------------------------------
def test_default_corpus_needs_no_download():
    data = hg.datasets.text(block_size=32)
    assert data.name == "pydoc_data.topics"
    assert len(data.train) + len(data.val) > 400_000 and data.vocab_size < 200
    x, y = data.batch("val", 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 32) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one character
    assert data.decode(data.encode("The assert statement")) == "The assert statement"


def test_own_text_in_any_script(tmp_path):
    path = tmp_path / "lab.txt"
    path.write_text("Нейронная сеть без готовых решений. " * 20, encoding="utf-8")
    data = hg.datasets.text(path, block_size=8, val_fraction=0.2)
    assert "й" in data.chars and data.decode(data.train[:8]) == "Нейронна"
    with pytest.raises(InputError, match="outside the vocabulary"):
        data.encode("hello")


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "is empty"),
        (b"\x00\x01\x02binary", "binary"),
        ("caf\u00e9".encode("latin-1") * 50, "not UTF-8"),
        (b"short text", "too short"),
    ],
)
def test_bad_text_files(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        hg.datasets.text(path, block_size=8)


def test_bad_text_arguments(tmp_path):
    with pytest.raises(InputError, match="block_size"):
        hg.datasets.text(block_size=0)
    with pytest.raises(InputError, match="val_fraction"):
        hg.datasets.text(val_fraction=1.0)
    with pytest.raises(FileNotFoundError):
        hg.datasets.text(tmp_path / "missing.txt")
    with pytest.raises(InputError, match="split"):
        hg.datasets.text(block_size=8).batch("test", 2)
