"""The issue #10 fixtures of python/hf_fixtures.py: Llama 3.1 (llama3), YaRN and linear RoPE
scaling, Qwen3, Gemma 2, Gemma 3, Phi-3 and Qwen2 with sliding layers, each a random-initialised
`transformers` model (attention sharpened so that position errors show) run on 24 tokens, with
expected.json, a hand-written gollm.yaml and a GGUF converted the way llama.cpp's
convert_hf_to_gguf.py does (see hf_fixtures.py's docstring). Run through hf_fixtures.py:
`python3 python/hf_fixtures.py gemma3 phi3 ...`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from hf_fixtures import OUT, logits_of, permute, randomize, save_model

def save_arch(name: str, model, ids: list[int], gollm: dict, extra: dict | None = None) -> Path:
    """save_model for the issue #10 fixtures, which first check their conditioning, plus
    gollm.yaml: the gollm config of the model written out by hand here (not by gollm's
    formats/hf_config.ts, which formats/hf_config_test.ts compares with it), read by the
    PyTorch mirror's parity test (python/test_model_arch.py)."""
    from config import parse_config

    err = conditioning(model, ids)
    assert err < 3e-5, f"{name}: transformers' float32 logits are off by {err} (sharpen less)"
    d = save_model(name, model, ids, {"float32_error": float(f"{err:.2e}"), **(extra or {})})
    (d / "gollm.yaml").write_text(parse_config(gollm, f"{name}/gollm.yaml").to_yaml())
    return d


def gollm_sizes(c, **fields) -> dict:
    """The size fields of a gollm config from a transformers config, plus `fields`."""
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return {
        "arch": "llama", "vocab_size": c.vocab_size, "dim": c.hidden_size, "n_layers": c.num_hidden_layers,
        "n_heads": c.num_attention_heads, "n_kv_heads": c.num_key_value_heads, "head_dim": hd,
        "hidden_dim": c.intermediate_size, "context_length": c.max_position_embeddings, "norm": "rmsnorm",
        "norm_eps": c.rms_norm_eps, "rope_style": "half", "mlp": "swiglu", "tie_embeddings": c.tie_word_embeddings,
        **fields,
    }



ARCH_SEQ = 24  # tokens: past every sliding window (4..6) and original_max_position_embeddings (16)


def arch_ids(seed: int, vocab: int) -> list[int]:
    return torch.randint(0, vocab, (ARCH_SEQ,), generator=torch.Generator().manual_seed(seed)).tolist()


def sharpen(model: torch.nn.Module, factor: float = 3.0) -> None:
    """Scales the query and key projections (or, with q/k norms, the norm weights, whose
    outputs do not depend on the projections' scale) so that attention is peaked: a wrong
    position, window or RoPE frequency then moves the logits well above 1e-4."""
    qk_norm = any(n.endswith("q_norm.weight") for n, _ in model.named_parameters())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                p.mul_(factor)
            elif name.endswith(("q_proj.weight", "k_proj.weight")) and not qk_norm:
                p.mul_(factor)
            elif name.endswith("qkv_proj.weight"):
                c = model.config
                hd = c.hidden_size // c.num_attention_heads
                p[: (c.num_attention_heads + c.num_key_value_heads) * hd].mul_(factor)


def check_exercised(model, cls, cfg, ids: list[int], what: str, **off) -> None:
    """Asserts that `model` with `off` applied to its config (same weights) gives logits more
    than 1e-2 away: the fixture exercises `what`."""
    other = cls(type(cfg)(**{**cfg.to_dict(), **off}))
    other.config._attn_implementation = model.config._attn_implementation
    other.load_state_dict(model.state_dict())
    other.eval()
    d = float(np.abs(logits_of(other, ids) - logits_of(model, ids)).max())
    assert d > 1e-2, f"{what} not exercised (max |diff| {d})"


def make(cls, cfg, seed: int, *, eager: bool = False, sharpness: float = 3.0):
    torch.manual_seed(seed)
    model = cls(cfg)
    if eager:
        model.config._attn_implementation = "eager"  # HF's sdpa path ignores attention softcapping
    randomize(model, 100 + seed)
    sharpen(model, sharpness)
    model.eval()
    return model


def conditioning(model, ids: list[int]) -> float:
    """transformers' own float32 error on this input (vs float64): a fixture must keep it well
    under the 1e-4 tolerance, or sharper attention only measures rounding."""
    import copy

    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        exact = m64(torch.tensor([ids])).logits[0].numpy()
    return float(np.abs(logits_of(model, ids) - exact).max())


def llama31() -> None:
    """Llama 3.1's rope_scaling llama3, with its config.json in the transformers 4.x spelling."""
    from transformers import LlamaConfig, LlamaForCausalLM

    rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_parameters=rope, tie_word_embeddings=False)
    model = make(LlamaForCausalLM, cfg, 31)
    ids = arch_ids(131, 64)
    check_exercised(model, LlamaForCausalLM, cfg, ids, "llama3 scaling",
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    d = save_arch("llama31", model, ids, gollm_sizes(
        cfg, rope_theta=10000, rope_scaling="llama3", rope_scaling_factor=4, rope_original_context_length=16,
        rope_low_freq_factor=1, rope_high_freq_factor=4))
    # transformers 4.x spelling (what published Llama 3.1 config.json files carry).
    j = json.loads((d / "config.json").read_text())
    rp = j.pop("rope_parameters")
    j["rope_theta"] = rp.pop("rope_theta")
    j["rope_scaling"] = rp
    (d / "config.json").write_text(json.dumps(j, indent=2) + "\n")
    again = LlamaForCausalLM.from_pretrained(d)
    assert np.abs(logits_of(again, ids) - logits_of(model, ids)).max() == 0, "4.x spelling reloads differently"
    convert_gguf(model, OUT / "llama31.gguf", "llama", permute_qk=True)


def llama_yarn() -> None:
    """YaRN (factor 4 over 16 positions) in the transformers 5.x spelling (rope_parameters)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    rope = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16}
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_parameters=rope, tie_word_embeddings=True)
    model = make(LlamaForCausalLM, cfg, 32)
    ids = arch_ids(132, 64)
    check_exercised(model, LlamaForCausalLM, cfg, ids, "yarn scaling",
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    save_arch("llama_yarn", model, ids, gollm_sizes(
        cfg, rope_theta=10000, rope_scaling="yarn", rope_scaling_factor=4, rope_original_context_length=16))
    convert_gguf(model, OUT / "llama_yarn.gguf", "llama", permute_qk=True)


def llama_linear() -> None:
    """Linear scaling (position interpolation) in the oldest spelling: rope_scaling {type: linear}."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      rms_norm_eps=1e-5, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
                      tie_word_embeddings=False)
    model = make(LlamaForCausalLM, cfg, 33)
    ids = arch_ids(133, 64)
    check_exercised(model, LlamaForCausalLM, cfg, ids, "linear scaling",
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    d = save_arch("llama_linear", model, ids, gollm_sizes(
        cfg, rope_theta=10000, rope_scaling="linear", rope_scaling_factor=4))
    j = json.loads((d / "config.json").read_text())
    rp = j.pop("rope_parameters")
    j["rope_theta"] = rp["rope_theta"]
    j["rope_scaling"] = {"type": "linear", "factor": rp["factor"]}
    (d / "config.json").write_text(json.dumps(j, indent=2) + "\n")
    again = LlamaForCausalLM.from_pretrained(d)
    assert np.abs(logits_of(again, ids) - logits_of(model, ids)).max() == 0, "old spelling reloads differently"
    convert_gguf(model, OUT / "llama_linear.gguf", "llama", permute_qk=True)


def qwen3() -> None:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      tie_word_embeddings=True)
    model = make(Qwen3ForCausalLM, cfg, 34, sharpness=2.0)
    ids = arch_ids(134, 64)
    # The q/k norms are exercised when dropping them (weights of 1, no normalisation) differs:
    # compared in Deno (formats/hf_test.ts); here, check that their weights matter.
    plain = make(Qwen3ForCausalLM, cfg, 34, sharpness=2.0)
    with torch.no_grad():
        for n, p in plain.named_parameters():
            if n.endswith(("q_norm.weight", "k_norm.weight")):
                p.fill_(1.0)
    assert np.abs(logits_of(plain, ids) - logits_of(model, ids)).max() > 1e-2, "q/k norm not exercised"
    save_arch("qwen3", model, ids, gollm_sizes(cfg, rope_theta=1e6, qk_norm=True))
    convert_gguf(model, OUT / "qwen3.gguf", "qwen3")


def gemma2() -> None:
    from transformers import Gemma2Config, Gemma2ForCausalLM

    # query_pre_attn_scalar = hidden / heads (16) != head_dim (24), as in Gemma 2 27B.
    cfg = Gemma2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=1, head_dim=24, max_position_embeddings=64,
                       rms_norm_eps=1e-6, query_pre_attn_scalar=16, sliding_window=4,
                       attn_logit_softcapping=4.0, final_logit_softcapping=3.0, tie_word_embeddings=True,
                       hidden_activation="gelu_pytorch_tanh")
    model = make(Gemma2ForCausalLM, cfg, 35, eager=True)
    ids = arch_ids(135, 64)
    check_exercised(model, Gemma2ForCausalLM, cfg, ids, "attention softcap", attn_logit_softcapping=None)
    check_exercised(model, Gemma2ForCausalLM, cfg, ids, "final softcap", final_logit_softcapping=None)
    check_exercised(model, Gemma2ForCausalLM, cfg, ids, "sliding window", sliding_window=64)
    check_exercised(model, Gemma2ForCausalLM, cfg, ids, "query_pre_attn_scalar", query_pre_attn_scalar=24)
    # Gemma's normalizer is a tensor of the model's dtype: sqrt(3584) in bfloat16 (Gemma 2 9B).
    normalizer = {"hidden_size": 3584, "bfloat16": float(torch.tensor(3584**0.5, dtype=torch.bfloat16)),
                  "float16": float(torch.tensor(3584**0.5, dtype=torch.float16))}
    save_arch("gemma2", model, ids, gollm_sizes(
        cfg, rope_theta=10000, mlp="geglu", post_norms=True, embed_scale=float(np.float32(32**0.5)),
        query_pre_attn_scalar=16, attn_logit_softcapping=4.0, final_logit_softcapping=3.0, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"]), {"normalizer": normalizer})
    convert_gguf(model, OUT / "gemma2.gguf", "gemma2", norm_shift=1.0, attention_scale=16**-0.5)


def gemma3() -> None:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    # Six layers: 0..4 slide (window 4), 5 is global (sliding_window_pattern 6, llama.cpp's too).
    cfg = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=6,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                           rms_norm_eps=1e-6, query_pre_attn_scalar=16, sliding_window=4,
                           rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                                            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
                           tie_word_embeddings=True)
    # Six layers amplify float32 rounding: a milder sharpening and a smaller final norm (1 + w
    # about 0.5) keep transformers' own float32 error well under 1e-4 (save_arch checks it).
    model = make(Gemma3ForCausalLM, cfg, 36, sharpness=2.0)
    with torch.no_grad():
        model.model.norm.weight.mul_(0.25).sub_(0.75)
    ids = arch_ids(136, 64)
    check_exercised(model, Gemma3ForCausalLM, cfg, ids, "sliding window", sliding_window=64)
    check_exercised(model, Gemma3ForCausalLM, cfg, ids, "global linear scaling",
                    rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
    check_exercised(model, Gemma3ForCausalLM, cfg, ids, "local rope base",
                    rope_parameters={"full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1000000.0},
                                     "sliding_attention": {"rope_type": "default", "rope_theta": 1000000.0}})
    save_arch("gemma3", model, ids, gollm_sizes(
        cfg, mlp="geglu", post_norms=True, qk_norm=True, embed_scale=float(np.float32(32**0.5)),
        query_pre_attn_scalar=16, rope_theta=1e6, rope_scaling="linear", rope_scaling_factor=4,
        rope_local_base_freq=10000, sliding_window=4, layer_types=["sliding_attention"] * 5 + ["full_attention"]))
    convert_gguf(model, OUT / "gemma3.gguf", "gemma3", norm_shift=1.0)


def phi3() -> None:
    from transformers import Phi3Config, Phi3ForCausalLM

    cfg = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                     original_max_position_embeddings=64, rms_norm_eps=1e-5, partial_rotary_factor=0.5,
                     sliding_window=5, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
                     eos_token_id=2)
    model = make(Phi3ForCausalLM, cfg, 37)
    ids = arch_ids(137, 64)
    check_exercised(model, Phi3ForCausalLM, cfg, ids, "sliding window", sliding_window=None)
    check_exercised(model, Phi3ForCausalLM, cfg, ids, "partial rotary", partial_rotary_factor=1.0,
                    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0})
    save_arch("phi3", model, ids, gollm_sizes(cfg, rope_theta=10000, rope_dimension_count=8, sliding_window=5))
    convert_gguf(model, OUT / "phi3.gguf", "phi3")


LONG_FACTORS = [1.0, 1.5, 3.0, 6.0, 12.0, 24.0]  # the fixture's LongRoPE factors (rotary dims 12 / 2)
SHORT_FACTORS = [1.05, 1.2, 1.4, 1.9, 2.5, 4.0]
SHORT_SEQ = 12  # tokens of the short case: at most original_max_position_embeddings (16)


def phi3_longrope() -> None:
    """Phi-3.5-mini / Phi-4-mini's LongRoPE (`rope_scaling` type longrope, config.json in the
    transformers 4.x spelling they are published with): original_max_position_embeddings 16 of
    64 (attention factor sqrt(1 + ln 4 / ln 16)), partial_rotary_factor 0.75, distinct short and
    long factors. expected.json: the 24-token run (past 16: transformers uses the long factors for
    the whole forward), and under "short" a 12-token run (short factors)."""
    from transformers import Phi3Config, Phi3ForCausalLM

    rope = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
            "long_factor": LONG_FACTORS, "short_factor": SHORT_FACTORS}
    cfg = Phi3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                     original_max_position_embeddings=16, rms_norm_eps=1e-5, partial_rotary_factor=0.75,
                     rope_parameters=rope, sliding_window=None, tie_word_embeddings=False, pad_token_id=0,
                     bos_token_id=1, eos_token_id=2)
    model = make(Phi3ForCausalLM, cfg, 39)
    ids = arch_ids(139, 64)
    short_ids = ids[:SHORT_SEQ]
    swapped = {**rope, "long_factor": SHORT_FACTORS, "short_factor": LONG_FACTORS}
    check_exercised(model, Phi3ForCausalLM, cfg, ids, "long factors", rope_parameters=swapped)
    check_exercised(model, Phi3ForCausalLM, cfg, short_ids, "short factors", rope_parameters=swapped)
    check_exercised(model, Phi3ForCausalLM, cfg, ids, "attention factor",
                    rope_parameters={**rope, "attention_factor": 1.0})
    short = logits_of(model, short_ids)
    assert conditioning(model, short_ids) < 3e-5
    attn = math.sqrt(1 + math.log(64 / 16) / math.log(16))
    d = save_arch("phi3_longrope", model, ids, gollm_sizes(
        cfg, rope_theta=10000, rope_dimension_count=12, rope_scaling="longrope", rope_original_context_length=16,
        rope_attn_factor=attn, rope_long_factors=LONG_FACTORS, rope_short_factors=SHORT_FACTORS),
        {"short": {"tokens": short_ids, "logits": [[round(v, 6) for v in row] for row in short.tolist()]}})
    # transformers 4.x spelling (Phi-3.5-mini's and Phi-4-mini's config.json).
    j = json.loads((d / "config.json").read_text())
    rp = j.pop("rope_parameters")
    j["rope_theta"] = rp.pop("rope_theta")
    j["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
    rp["type"] = rp.pop("rope_type")
    j["rope_scaling"] = rp
    (d / "config.json").write_text(json.dumps(j, indent=2) + "\n")
    again = Phi3ForCausalLM.from_pretrained(d)
    assert np.abs(logits_of(again, ids) - logits_of(model, ids)).max() == 0, "4.x spelling reloads differently"
    assert np.abs(logits_of(again, short_ids) - short).max() == 0, "4.x spelling reloads differently"
    convert_gguf(model, OUT / "phi3_longrope.gguf", "phi3")


def qwen2_swa() -> None:
    """Qwen2 with use_sliding_window: layers from max_window_layers (1) on slide (window 4)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      rms_norm_eps=1e-6, use_sliding_window=True, sliding_window=4, max_window_layers=1,
                      tie_word_embeddings=False)
    assert cfg.layer_types == ["full_attention", "sliding_attention", "sliding_attention"], cfg.layer_types
    model = make(Qwen2ForCausalLM, cfg, 38)
    ids = arch_ids(138, 64)
    check_exercised(model, Qwen2ForCausalLM, cfg, ids, "sliding window", use_sliding_window=False,
                    layer_types=None)
    d = save_arch("qwen2_swa", model, ids, gollm_sizes(
        cfg, rope_theta=10000, attn_bias=True, sliding_window=4,
        layer_types=["full_attention", "sliding_attention", "sliding_attention"]))
    # transformers 4.x files carry no layer_types: gollm derives them from max_window_layers.
    j = json.loads((d / "config.json").read_text())
    del j["layer_types"]
    (d / "config.json").write_text(json.dumps(j, indent=2) + "\n")
    again = Qwen2ForCausalLM.from_pretrained(d)
    assert np.abs(logits_of(again, ids) - logits_of(model, ids)).max() == 0


def convert_gguf(model, path: Path, arch: str, *, permute_qk: bool = False, norm_shift: float = 0.0,
                 attention_scale: float | None = None) -> None:
    """A GGUF the way llama.cpp's convert_hf_to_gguf.py writes one (F32, no tokenizer: the
    fixtures use token ids): `TextModel.set_gguf_parameters` keys plus the arch's own (Gemma's
    soft-caps and window, Phi-3's rope dimension count and window), tensor names from
    `gguf.TensorNameMap` (`map_tensor_name`), LlamaModel's Q/K `permute`, the norm shift of
    GemmaModel / Gemma3Model (`+ 1`), Phi-3's fused qkv and gate_up kept fused, and LlamaModel's
    `rope_freqs.weight` for rope_type llama3 (`generate_extra_tensors`).

    `attention_scale`: llama.cpp's converter drops Gemma's query_pre_attn_scalar (llama.cpp
    derives it: n_embd / n_head for the 27B models, else head_dim); the gemma2 fixture's value
    is neither, so its GGUF also carries `<arch>.attention.scale` (llama.cpp's
    LLM_KV_ATTENTION_SCALE key), which gollm's reader prefers.
    """
    import gguf

    c = model.config
    hd = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    rope = dict(c.rope_parameters)
    full = rope.get("full_attention", rope)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"gollm hf fixture {path.stem}")
    w.add_block_count(c.num_hidden_layers)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    if getattr(c, "head_dim", None) is not None:
        w.add_key_length(hd)
        w.add_value_length(hd)
    w.add_rope_freq_base(full["rope_theta"])
    if "sliding_attention" in rope:
        w.add_rope_freq_base_swa(rope["sliding_attention"]["rope_theta"])
    rtype = full.get("rope_type", "default")
    if rtype == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(full["factor"])
    elif rtype == "yarn":
        w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        w.add_rope_scaling_factor(full["factor"])
        w.add_rope_scaling_orig_ctx_len(full["original_max_position_embeddings"])
    if arch == "llama":
        w.add_rope_dimension_count(hd)  # LlamaModel.set_gguf_parameters
    if arch == "gemma2":
        w.add_attn_logit_softcapping(c.attn_logit_softcapping)
        w.add_final_logit_softcapping(c.final_logit_softcapping)
        w.add_sliding_window(c.sliding_window)
    if arch == "gemma3":
        if c.final_logit_softcapping:
            w.add_final_logit_softcapping(c.final_logit_softcapping)
        w.add_sliding_window(c.sliding_window)
    if arch == "phi3":
        w.add_rope_dimension_count(int(full.get("partial_rotary_factor", 1.0) * c.hidden_size) // c.num_attention_heads)
        w.add_rope_scaling_orig_ctx_len(c.original_max_position_embeddings)
        w.add_sliding_window(c.sliding_window or 0)
    if rtype == "longrope":
        # Phi3MiniModel.set_gguf_parameters / generate_extra_tensors (rope_scaling su / longrope).
        scale = c.max_position_embeddings / c.original_max_position_embeddings
        orig = c.original_max_position_embeddings
        w.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1.0 else 1.0)
        w.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight",
                     np.array(full["long_factor"], dtype=np.float32))
        w.add_tensor(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight",
                     np.array(full["short_factor"], dtype=np.float32))
    if attention_scale is not None:
        w.add_float32(gguf.Keys.Attention.SCALE.format(arch=arch), attention_scale)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    names = gguf.TensorNameMap(gguf.MODEL_ARCH_NAMES_INV[arch] if hasattr(gguf, "MODEL_ARCH_NAMES_INV")
                               else next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch), c.num_hidden_layers)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    if rtype == "llama3":
        # LlamaModel.generate_extra_tensors: per-pair factors, applied by llama.cpp as theta / f.
        base, dim = full["rope_theta"], hd
        freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        factor, low, high = full["factor"], full["low_freq_factor"], full["high_freq_factor"]
        old = full["original_max_position_embeddings"]
        low_wl, high_wl = old / low, old / high
        factors = []
        for f in freqs.tolist():
            wl = 2 * math.pi / f
            if wl < high_wl:
                factors.append(1)
            elif wl > low_wl:
                factors.append(factor)
            else:
                smooth = (old / wl - low) / (high - low)
                factors.append(1 / ((1 - smooth) / factor + smooth))
        w.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    for name, t in sd.items():
        if name == "lm_head.weight" and c.tie_word_embeddings:
            continue
        new = names.get_name(name, try_suffixes=(".weight", ".bias"))
        assert new is not None, name
        if permute_qk and name.endswith("q_proj.weight"):
            t = permute(t, c.num_attention_heads, c.num_attention_heads)
        elif permute_qk and name.endswith("k_proj.weight"):
            t = permute(t, c.num_attention_heads, c.num_key_value_heads)
        if norm_shift and name.endswith("norm.weight"):
            t = t + norm_shift
        w.add_tensor(new, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


ARCH_FIXTURES = {
    "llama31": llama31,
    "llama_yarn": llama_yarn,
    "llama_linear": llama_linear,
    "qwen3": qwen3,
    "gemma2": gemma2,
    "gemma3": gemma3,
    "phi3": phi3,
    "phi3_longrope": phi3_longrope,
    "qwen2_swa": qwen2_swa,
}
