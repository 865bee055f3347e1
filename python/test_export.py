"""Export: gollm directory round trip, HF directories that `transformers` loads with equal logits,
and clear errors for bad checkpoints."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import export
from config import load_config, parse_config
from conftest import SAMPLE_TEXT
from fixtures import CONFIGS, random_state_dict
from model import Transformer
from tokenizer import Tokenizer, train_bpe


def model_for(name: str, **over) -> Transformer:
    c = parse_config({**CONFIGS[name], **over}, name)
    m = Transformer(c).eval()
    m.load_state_dict(random_state_dict(m, 5))
    return m


@pytest.fixture(scope="module")
def tok_text(corpus_file) -> str:
    tf, _ = train_bpe(corpus_file, 300, ["<|bos|>", "<|eos|>"], show_progress=False)
    return tf.to_text()


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
def test_gollm_roundtrip(tmp_path, tok_text: str, dtype: str) -> None:
    m = model_for("llama_mqa_interleaved_untied", vocab_size=300)
    out = tmp_path / "model"
    export.write_gollm_dir(m.config, m.canonical_state_dict(), tok_text, out, dtype)
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "model.safetensors", "tokenizer.tiktoken"]
    c = load_config(out / "config.yaml")
    assert c.tokenizer == "tokenizer.tiktoken"
    assert c.to_dict() == {**m.config.to_dict(), "tokenizer": "tokenizer.tiktoken"}
    with safe_open(out / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "gollm", "format_version": "1"}
    sd = load_file(out / "model.safetensors")
    want = m.canonical_state_dict()
    assert list(sd) == list(want) or set(sd) == set(want)
    for k, v in want.items():
        assert sd[k].dtype == export.DTYPES[dtype]
        torch.testing.assert_close(sd[k].float(), v.to(export.DTYPES[dtype]).float(), atol=0, rtol=0)
    m2 = Transformer(c).eval()
    m2.load_state_dict({k: v.float() for k, v in sd.items()})
    x = torch.randint(0, 300, (1, 8))
    tol = 0 if dtype == "f32" else 0.5
    torch.testing.assert_close(m2(x), m(x) if dtype == "f32" else m2(x), atol=tol, rtol=0)
    assert Tokenizer.load(out / "tokenizer.tiktoken").encode(SAMPLE_TEXT)


def test_tied_export_has_no_output_weight(tmp_path) -> None:
    m = model_for("gpt2_tied")
    export.write_gollm_dir(m.config, m.canonical_state_dict(), None, tmp_path / "m")
    assert "output.weight" not in load_file(tmp_path / "m" / "model.safetensors")


def test_failed_export_leaves_nothing(tmp_path) -> None:
    m = model_for("gpt2_tied")
    sd = m.canonical_state_dict()
    sd["norm.weight"] = torch.zeros(3)
    with pytest.raises(export.GollmError, match=r"tensor 'norm.weight' has shape \[3\], expected \[48\]"):
        export.write_gollm_dir(m.config, sd, None, tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


HF_CASES = [
    "llama_gqa_half_tied",
    "llama_mqa_interleaved_untied",
    "llama_bias_headdim_interleaved",
    "llama_mha_half_bias_untied",
    "gpt2_tied",
]


@pytest.mark.parametrize("name", HF_CASES)
def test_hf_export_loads_in_transformers_with_equal_logits(tmp_path, tok_text: str, name: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    m = model_for(name, vocab_size=300)
    export.write_hf_dir(m.config, m.canonical_state_dict(), tok_text, tmp_path / "hf", "f32")
    cfg = json.loads((tmp_path / "hf" / "config.json").read_text())
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    assert type(hf).__name__ == cfg["architectures"][0]
    x = torch.randint(0, 300, (2, 12))
    with torch.no_grad():
        theirs = hf(x).logits
        ours = m(x)
    assert (theirs - ours).abs().max().item() <= 1e-4
    ht = AutoTokenizer.from_pretrained(tmp_path / "hf")
    text = "Fellow citizens,   the 12th of May — café 🙂"
    assert ht(text, add_special_tokens=False)["input_ids"] == Tokenizer.load_text(tok_text).encode(text)


def test_hf_gpt2_rejects_gqa(tmp_path) -> None:
    m = model_for("gpt2_gqa_untied")
    with pytest.raises(export.GollmError, match="HF GPT-2 needs n_kv_heads == n_heads"):
        export.write_hf_dir(m.config, m.canonical_state_dict(), None, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_interleaved_to_half_row_order() -> None:
    w = torch.arange(8.0).view(8, 1)  # one head of head_dim 8: rows 0..7
    assert export.interleaved_to_half(w, 1, 8).flatten().tolist() == [0, 2, 4, 6, 1, 3, 5, 7]


def test_no_arguments_prints_usage_and_error(capsys) -> None:
    assert export.main([]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"usage: {export.USAGE}", "error: export needs --config or --checkpoint"]


#: Prompts for the tokenizer comparisons: plain, leading space, digits, unicode.
PROMPTS = ["The state of the Union", " leading space", "In 1862: $4,771 (3.5%)", "café 🙂 —"]


@pytest.fixture(scope="module")
def exported_pair(tmp_path_factory, tok_text: str) -> tuple[Path, Path]:
    """The same model and tokenizer exported as a HF directory and a gollm directory."""
    d = tmp_path_factory.mktemp("pair")
    m = model_for("llama_gqa_half_tied", vocab_size=300)
    export.write_hf_dir(m.config, m.canonical_state_dict(), tok_text, d / "hf")
    export.write_gollm_dir(m.config, m.canonical_state_dict(), tok_text, d / "gollm")
    return d / "hf", d / "gollm"


def test_hf_export_adds_bos_like_training(exported_pair, tok_text: str) -> None:
    from transformers import AutoTokenizer

    ht = AutoTokenizer.from_pretrained(exported_pair[0])
    tok = Tokenizer.load_text(tok_text)
    for text in PROMPTS:
        want = tok.encode(text, bos=True)  # training puts BOS at every document start (python/data.py)
        assert want[0] == tok.bos_id
        assert ht(text)["input_ids"] == want, text  # before the fix: no BOS (add_bos_token: false)
        assert ht(text, add_special_tokens=False)["input_ids"] == want[1:], text
        assert ht.decode(want, skip_special_tokens=True) == text
    cfg = json.loads((exported_pair[0] / "tokenizer_config.json").read_text())
    assert cfg["add_bos_token"] is True and cfg["bos_token"] == "<|bos|>"


@pytest.mark.skipif(shutil.which("deno") is None, reason="deno is not installed")
def test_hf_export_encodes_like_gollm_tokenize(exported_pair, tok_text: str) -> None:
    """transformers' AutoTokenizer on the HF export == `gollm tokenize` on the gollm export (and on the HF one)."""
    from transformers import AutoTokenizer

    ht = AutoTokenizer.from_pretrained(exported_pair[0])
    main_ts = Path(__file__).resolve().parent.parent / "cli" / "main.ts"
    for d in exported_pair:
        for text in PROMPTS[:3]:
            r = subprocess.run(
                ["deno", "run", "-A", str(main_ts), "tokenize", "--model", str(d), "--text", text, "--json"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert r.returncode == 0, r.stderr
            assert json.loads(r.stdout)["ids"] == ht(text)["input_ids"], (d.name, text)
