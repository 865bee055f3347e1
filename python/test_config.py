"""python/config.py validates exactly like core/config.ts (same rules, same messages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, GollmError, load_config, load_train_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
BASE = dict(
    arch="llama",
    vocab_size=64,
    dim=32,
    n_layers=1,
    n_heads=4,
    hidden_dim=48,
    context_length=16,
    norm="rmsnorm",
    norm_eps=1e-5,
    mlp="swiglu",
    tie_embeddings=True,
)


def test_defaults_are_filled() -> None:
    c = parse_config(BASE, "x.yaml")
    assert (c.n_kv_heads, c.head_dim, c.rope_theta, c.rope_style, c.attn_bias, c.tokenizer) == (
        4,
        8,
        10000.0,
        "half",
        False,
        "none",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dimm": 3}, "x.yaml: field 'dimm' is not a known config field"),
        ({"dim": None}, "x.yaml: field 'dim' is missing"),
        ({"n_heads": 0}, "x.yaml: field 'n_heads' must be a positive integer, got 0"),
        ({"n_heads": "4"}, "x.yaml: field 'n_heads' must be a positive integer, got \"4\""),
        ({"norm_eps": -1}, "x.yaml: field 'norm_eps' must be a positive number, got -1"),
        ({"tie_embeddings": "yes"}, "x.yaml: field 'tie_embeddings' must be true or false"),
        ({"rope_style": "neox"}, "x.yaml: field 'rope_style' must be one of half | interleaved"),
        ({"n_kv_heads": 3}, "x.yaml: field 'n_kv_heads' must divide n_heads (4), got 3"),
        ({"dim": 30}, "x.yaml: field 'head_dim' must be a positive integer, got 7.5"),  # as core/config.ts
        ({"head_dim": 7}, "x.yaml: field 'head_dim' must be even for RoPE, got 7"),
        ({"mlp": "gelu"}, "x.yaml: field 'mlp' must be swiglu or geglu for arch llama"),
        (
            {"arch": "gpt2", "norm": "layernorm", "mlp": "gelu", "attn_bias": False},
            "x.yaml: field 'attn_bias' must be true or absent for arch gpt2",
        ),
    ],
)
def test_bad_fields_name_file_and_field(change: dict, message: str) -> None:
    raw = {**BASE, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(ConfigError) as e:
        parse_config(raw, "x.yaml")
    assert str(e.value).startswith(message)


def test_gpt2_always_has_bias() -> None:
    c = parse_config({**BASE, "arch": "gpt2", "norm": "layernorm", "mlp": "gelu"}, "g.yaml")
    assert c.attn_bias is True


def test_repo_configs_load() -> None:
    for name in ("tiny", "default", "test-llama", "test-gpt2", "gollm-85m"):
        load_config(ROOT / "configs" / f"{name}.yaml")
    mc, t = load_train_config(ROOT / "configs" / "tiny.yaml")
    assert t.context <= mc.context_length and t.max_steps > 0


def test_yaml_floats_like_js_yaml(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("".join(f"{k}: {v}\n" for k, v in {**BASE, "norm_eps": "1e-5"}.items()).replace("True", "true"))
    assert load_config(p).norm_eps == 1e-5


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ("  batchsize: 4\n", "field 'train.batchsize' is not a known train field"),
        ("  lr: -1\n", "field 'train.lr' must be a positive number, got -1"),
        ("  max_steps: 0\n", "field 'train.max_steps' must be a positive integer, got 0"),
        ("  context: 17\n", "field 'train.context' must be at most context_length (16), got 17"),
    ],
)
def test_bad_train_fields(tmp_path, train: str, message: str) -> None:
    p = tmp_path / "c.yaml"
    body = "".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in BASE.items())
    p.write_text(body + "train:\n" + train)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_train_config(p)


def test_unreadable_and_invalid_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="field '<file>' cannot be read"):
        load_config(tmp_path / "missing.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("dim: [1,\n")
    with pytest.raises(ConfigError, match="field '<yaml>' is not valid YAML"):
        load_config(p)


def test_missing_train_section_is_named(tmp_path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in BASE.items()))
    with pytest.raises(GollmError) as e:
        load_train_config(p)
    assert str(e.value) == f"{p}: no 'train:' section (needed by deno task train); see configs/tiny.yaml"
    with pytest.raises(GollmError, match=r"needed by deno task train:tokenizer\)"):
        load_train_config(p, "deno task train:tokenizer")
    # the repo's inference-only configs say so too (not "train.context must be at most ...")
    with pytest.raises(GollmError, match="no 'train:' section"):
        load_train_config(ROOT / "configs" / "test-llama.yaml")


def test_train_defaults_follow_the_config(tmp_path) -> None:
    p = tmp_path / "small-model.yaml"
    body = "".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in BASE.items())
    p.write_text(body + "train:\n  lr: 0.01\n")
    mc, t = load_train_config(p)
    assert (t.context, t.out_dir, t.lr) == (mc.context_length, "runs/small-model", 0.01)
    p.write_text(body.replace("context_length: 16", "context_length: 4096") + "train:\n")
    assert load_train_config(p)[1].context == 256


def test_sft_section_defaults_and_errors(tmp_path) -> None:
    from config import load_sft_config

    p = tmp_path / "chat.yaml"
    p.write_text((ROOT / "configs" / "tiny.yaml").read_text() + "sft:\n  data: d.jsonl\n  lora_rank: 8\n")
    mc, s = load_sft_config(p)
    assert load_config(p) == mc  # the model fields ignore the sft: section, as core/config.ts does
    assert (s.base, s.out_dir, s.context) == ("runs/tiny/ckpt.pt", "runs/tiny/sft", 128)  # from train: and the model
    assert (s.data, s.lora_rank) == ("d.jsonl", 8)
    s2 = load_sft_config(p, {"lora_rank": 0, "out_dir": "x"})[1]  # command-line overrides
    assert (s2.lora_rank, s2.out_dir, s2.data) == (0, "x", "d.jsonl")
    for section, want in [
        ("sft:\n  steps: 3\n", "field 'sft.steps' is not a known sft field (known: base, data, out_dir"),
        ("sft:\n  context: 4096\n", "field 'sft.context' must be at most context_length (128), got 4096"),
        ("sft:\n  lora_targets: [wq, lm_head]\n", "field 'sft.lora_targets' must name layers among wq wk wv wo w1"),
        ("sft:\n  dtype: f8\n", "field 'sft.dtype' must be one of f32 | f16 | bf16, got \"f8\""),
        ("sft: 3\n", "field 'sft' must be a mapping, got 3"),
    ]:
        p.write_text((ROOT / "configs" / "tiny.yaml").read_text() + section)
        with pytest.raises(ConfigError, match=want.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
            load_sft_config(p)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"rope_scaling": "llama3", "rope_scaling_factor": 8},
            "x.yaml: field 'rope_original_context_length' is missing (required by rope_scaling llama3)",
        ),
        ({"rope_scaling": "linear", "rope_yarn_beta_fast": 8}, "x.yaml: field 'rope_yarn_beta_fast' is set (8)"),
        ({"rope_dimension_count": 7}, "x.yaml: field 'rope_dimension_count' must be even and at most head_dim 8"),
        ({"rope_freq_factors": [1, 2]}, "x.yaml: field 'rope_freq_factors' must hold rope_dimension_count / 2 = 4"),
        ({"rope_freq_factors": [1, 0, 1, 1]}, "x.yaml: field 'rope_freq_factors' [1] must be a positive number"),
        (
            {"rope_scaling": "longrope", "rope_original_context_length": 16, "rope_long_factors": [1, 2, 3, 4]},
            "x.yaml: field 'rope_short_factors' is missing (required by rope_scaling longrope)",
        ),
        (
            {"rope_scaling": "longrope", "rope_original_context_length": 16, "rope_long_factors": [1, 2],
             "rope_short_factors": [1, 1, 1, 1]},
            "x.yaml: field 'rope_long_factors' must hold rope_dimension_count / 2 = 4 values, got 2",
        ),
        ({"layer_types": ["full_attention"] * 2}, "x.yaml: field 'layer_types' must hold n_layers = 1 entries, got 2"),
        ({"layer_types": ["local"]}, "x.yaml: field 'layer_types' [0] must be one of sliding_attention | full_attention"),
        (
            {"layer_types": ["sliding_attention"], "n_layers": 1},
            "x.yaml: field 'sliding_window' is missing (layer_types has sliding_attention layers)",
        ),
        ({"rope_local_base_freq": 10000}, "x.yaml: field 'rope_local_base_freq' is set but no layer"),
        ({"mlp": "relu"}, "x.yaml: field 'mlp' must be one of swiglu | geglu | gelu"),
        (
            {"arch": "gpt2", "norm": "layernorm", "mlp": "gelu", "qk_norm": True},
            "x.yaml: field 'qk_norm' applies to arch llama only (got true)",
        ),
    ],
)
def test_issue10_fields_are_validated_like_core_config(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**BASE, **change}, "x.yaml")
    assert str(e.value).startswith(message), str(e.value)


def test_issue10_fields_default_off_and_round_trip(tmp_path) -> None:
    c = parse_config(BASE, "x.yaml")
    assert (c.rope_scaling, c.rope_dimension_count, c.query_pre_attn_scalar, c.sliding_window) == ("none", 8, 8.0, None)
    assert "rope_scaling" not in c.to_yaml() and c.extensions() == []
    yarn = parse_config(
        {**BASE, "n_layers": 2, "rope_scaling": "yarn", "rope_scaling_factor": 4, "rope_original_context_length": 16,
         "sliding_window": 4, "layer_types": ["sliding_attention", "full_attention"]},
        "y.yaml",
    )
    assert yarn.rope_attn_factor == pytest.approx(0.1 * __import__("math").log(4) + 1)
    (tmp_path / "back.yaml").write_text(yarn.to_yaml())
    assert load_config(tmp_path / "back.yaml") == yarn
    assert yarn.extensions() == [
        "rope_scaling", "rope_scaling_factor", "rope_original_context_length", "sliding_window",
        "layer_types",
    ]
