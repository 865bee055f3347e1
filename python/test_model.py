"""Shapes, canonical names and invariants of python/model.py."""

from __future__ import annotations

import pytest
import torch

from config import parse_config
from export import interleaved_to_half
from fixtures import CONFIGS
from model import Transformer, expected_shapes, parameter_count


def cfg(name: str, **over):
    return parse_config({**CONFIGS[name], **over}, name)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_dict_has_canonical_names_and_shapes(name: str) -> None:
    c = cfg(name)
    m = Transformer(c)
    sd = m.canonical_state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected_shapes(c)
    assert ("output.weight" in sd) == (not c.tie_embeddings)
    assert sum(v.numel() for v in sd.values()) == parameter_count(c)
    logits = m(torch.randint(0, c.vocab_size, (2, 7)))
    assert logits.shape == (2, 7, c.vocab_size)


def test_parameter_count_matches_engine_formula() -> None:
    # core/config.ts parameterCount for configs/gollm-85m.yaml-like shapes, by hand.
    c = parse_config(
        dict(
            arch="llama",
            vocab_size=32768,
            dim=768,
            n_layers=12,
            n_heads=12,
            n_kv_heads=4,
            hidden_dim=2048,
            context_length=2048,
            norm="rmsnorm",
            norm_eps=1e-5,
            mlp="swiglu",
            tie_embeddings=True,
        ),
        "x",
    )
    per_layer = 2 * 768 + 768 * 768 * 2 + 2 * 768 * 256 + 3 * 768 * 2048
    assert parameter_count(c) == 32768 * 768 + 12 * per_layer + 768


def test_tied_output_uses_embeddings_and_is_not_duplicated() -> None:
    c = cfg("llama_gqa_half_tied")
    m = Transformer(c)
    assert "output.weight" not in m.state_dict()
    x = torch.randint(0, c.vocab_size, (1, 5))
    with torch.no_grad():
        m.tok_embeddings.weight[3].mul_(2)
    h = m.norm(
        m.layers[1](m.layers[0](m.tok_embeddings(x), m.rope_cos[:5], m.rope_sin[:5]), m.rope_cos[:5], m.rope_sin[:5])
    )
    torch.testing.assert_close(m(x), h @ m.tok_embeddings.weight.T)


@pytest.mark.parametrize("name", ["llama_gqa_half_tied", "gpt2_tied"])
def test_causal_future_tokens_do_not_change_past_logits(name: str) -> None:
    c = cfg(name)
    m = Transformer(c).eval()
    a = torch.randint(0, c.vocab_size, (1, 10))
    b = a.clone()
    b[0, 6:] = (b[0, 6:] + 1) % c.vocab_size
    torch.testing.assert_close(m(a)[0, :6], m(b)[0, :6])
    assert not torch.allclose(m(a)[0, 6:], m(b)[0, 6:])


def test_gqa_equals_mha_with_repeated_kv_heads() -> None:
    g = cfg("llama_gqa_half_tied")
    h = cfg("llama_gqa_half_tied", n_kv_heads=4)
    mg, mh = Transformer(g).eval(), Transformer(h).eval()
    sd = mg.state_dict()
    rep = g.n_heads // g.n_kv_heads
    new = {}
    for k, v in sd.items():
        if k.endswith(("wk.weight", "wv.weight")):
            v = v.view(g.n_kv_heads, g.head_dim, -1).repeat_interleave(rep, 0).reshape(h.kv_dim, -1)
        new[k] = v
    mh.load_state_dict(new)
    x = torch.randint(0, g.vocab_size, (2, 9))
    torch.testing.assert_close(mg(x), mh(x))


def test_interleaved_rope_equals_half_rope_on_permuted_rows() -> None:
    il = cfg("llama_bias_headdim_interleaved")
    hf = cfg("llama_bias_headdim_interleaved", rope_style="half")
    mi, mh = Transformer(il).eval(), Transformer(hf).eval()
    for p in mi.parameters():
        torch.nn.init.uniform_(p, -0.3, 0.3)
    sd = mi.state_dict()
    new = {}
    for k, v in sd.items():
        if ".wq." in k:
            v = interleaved_to_half(v, il.n_heads, il.head_dim)
        elif ".wk." in k:
            v = interleaved_to_half(v, il.n_kv_heads, il.head_dim)
        new[k] = v
    mh.load_state_dict(new)
    x = torch.randint(0, il.vocab_size, (1, 11))
    torch.testing.assert_close(mi(x), mh(x), atol=1e-5, rtol=1e-5)
    # and the styles really differ on unpermuted weights
    mh.load_state_dict(sd)
    assert (mi(x) - mh(x)).abs().max() > 1e-3


def test_position_offset_and_context_limit() -> None:
    c = cfg("gpt2_tied")
    m = Transformer(c).eval()
    x = torch.randint(0, c.vocab_size, (1, 4))
    assert not torch.allclose(m(x, pos=0), m(x, pos=5))
    with pytest.raises(ValueError, match="context_length"):
        m(torch.zeros(1, c.context_length + 1, dtype=torch.long))
