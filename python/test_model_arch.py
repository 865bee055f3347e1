"""The PyTorch mirror (python/model.py) runs the architectures of issue #10 as transformers does.

Each fixture under tests/fixtures/hf written by python/hf_fixtures.py for issue #10 holds a
random-initialised transformers model (safetensors), the float32 logits transformers computed
(expected.json) and the gollm config of the model spelled out by hand (gollm.yaml). The mirror
built from gollm.yaml, with the transformers weights renamed here (a mapping written
independently of core/tensor_names.ts: Gemma's norms + 1, Phi-3's fused projections split),
gives those logits within 1e-4; turning each fixture's feature off moves them by more than
1e-2 (negative controls).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from config import load_config
from model import Transformer

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hf"
TOL = 1e-4

LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn.wq",
    "self_attn.k_proj": "attn.wk",
    "self_attn.v_proj": "attn.wv",
    "self_attn.o_proj": "attn.wo",
    "self_attn.q_norm": "attn.q_norm",
    "self_attn.k_norm": "attn.k_norm",
    "mlp.gate_proj": "ffn.w1",
    "mlp.up_proj": "ffn.w3",
    "mlp.down_proj": "ffn.w2",
}


def canonical(name: str, hf: dict[str, torch.Tensor], c) -> dict[str, torch.Tensor]:
    """transformers tensor names → gollm's, per family."""
    gemma = c.post_norms
    layer = dict(LAYER)
    if gemma:
        layer |= {
            "post_attention_layernorm": "attn_post_norm",
            "pre_feedforward_layernorm": "ffn_norm",
            "post_feedforward_layernorm": "ffn_post_norm",
        }
    else:
        layer["post_attention_layernorm"] = "ffn_norm"
    out: dict[str, torch.Tensor] = {}
    for k, t in hf.items():
        if k == "model.embed_tokens.weight":
            out["tok_embeddings.weight"] = t
        elif k == "model.norm.weight":
            out["norm.weight"] = t
        elif k == "lm_head.weight":
            if not c.tie_embeddings:
                out["output.weight"] = t
        else:
            _, _, i, rest = k.split(".", 3)  # model.layers.<i>.<rest>
            mod, kind = rest.rsplit(".", 1)
            if mod == "self_attn.qkv_proj":  # Phi-3: [q; k; v] rows
                q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
                for part, rows in zip(("wq", "wk", "wv"), t.split([q, kv, kv])):
                    out[f"layers.{i}.attn.{part}.{kind}"] = rows
            elif mod == "mlp.gate_up_proj":  # Phi-3: [gate; up] rows
                gate, up = t.chunk(2)
                out[f"layers.{i}.ffn.w1.{kind}"], out[f"layers.{i}.ffn.w3.{kind}"] = gate, up
            else:
                out[f"layers.{i}.{layer[mod]}.{kind}"] = t
    if gemma:  # Gemma's RMSNorm computes x · (1 + w)
        out = {k: t + 1 if k.endswith("norm.weight") else t for k, t in out.items()}
    return out


def mirror_logits(name: str, **off) -> tuple[torch.Tensor, torch.Tensor]:
    """(mirror logits, transformers' logits) of fixture `name`, with config fields `off` replaced."""
    c = load_config(FIX / name / "gollm.yaml")
    c = dataclasses.replace(c, **off)
    exp = json.loads((FIX / name / "expected.json").read_text())
    sd = canonical(name, load_file(str(FIX / name / "model.safetensors")), c)
    m = Transformer(c).eval()
    own = m.state_dict()
    m.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=True)
    with torch.no_grad():
        got = m(torch.tensor([exp["tokens"]]))[0]
    return got, torch.tensor(exp["logits"])


FIXTURES = ["llama31", "llama_yarn", "llama_linear", "qwen3", "gemma2", "gemma3", "phi3", "phi3_longrope", "qwen2_swa"]


@pytest.mark.parametrize("name", FIXTURES)
def test_mirror_matches_transformers(name: str) -> None:
    got, want = mirror_logits(name)
    assert (got - want).abs().max().item() < TOL


NO_SCALING = {"rope_scaling": "none", "rope_scaling_factor": 1.0, "rope_original_context_length": None,
              "rope_attn_factor": 1.0, "rope_low_freq_factor": 1.0, "rope_high_freq_factor": 4.0}
CONTROLS = [
    ("llama31", NO_SCALING),
    ("llama_yarn", NO_SCALING),
    ("llama_linear", NO_SCALING),
    ("gemma2", {"attn_logit_softcapping": None}),
    ("gemma2", {"final_logit_softcapping": None}),
    ("gemma2", {"sliding_window": None, "layer_types": None}),
    ("gemma2", {"query_pre_attn_scalar": 24.0}),
    ("gemma3", {"rope_local_base_freq": None}),
    ("phi3", {"sliding_window": None}),
    ("phi3", {"rope_dimension_count": 16}),
    ("phi3_longrope", {"rope_attn_factor": 1.0}),  # context_length 64 > 16: the long factors
    ("phi3_longrope", {"rope_long_factors": (1.05, 1.2, 1.4, 1.9, 2.5, 4.0)}),  # the short ones
    ("qwen2_swa", {"sliding_window": None, "layer_types": None}),
]


@pytest.mark.parametrize(("name", "off"), CONTROLS)
def test_mirror_without_the_feature_misses(name: str, off: dict) -> None:
    got, want = mirror_logits(name, **off)
    assert (got - want).abs().max().item() > 1e-2


def test_qk_norm_is_needed() -> None:
    """Qwen3 without its q/k norms (the norm weights dropped) misses transformers' logits."""
    c = load_config(FIX / "qwen3" / "gollm.yaml")
    plain = dataclasses.replace(c, qk_norm=False)
    exp = json.loads((FIX / "qwen3" / "expected.json").read_text())
    sd = canonical("qwen3", load_file(str(FIX / "qwen3" / "model.safetensors")), c)
    m = Transformer(plain).eval()
    m.load_state_dict({k: v for k, v in sd.items() if "_norm.weight" not in k or "attn." not in k})
    with torch.no_grad():
        got = m(torch.tensor([exp["tokens"]]))[0]
    assert (got - torch.tensor(exp["logits"])).abs().max().item() > 1e-2
