"""Hugging Face reference fixtures for gollm's HF loader, HF tokenizer and chat templates.

Writes, under tests/fixtures/hf/ (all produced by code nobody on gollm wrote: `transformers`,
`tokenizers`, `sentencepiece`, `gguf`):

- <name>/ for llama_gqa, llama_untied, qwen2, mistral, gpt2: a small random-initialised
  `transformers` model saved with `save_pretrained` (safetensors, F32; llama_gqa sharded with
  an index), plus expected.json: input token ids, the float32 logits transformers computes for
  every position, and a greedy continuation (argmax, full re-forward each step).
  llama_gqa carries a SentencePiece-BPE (byte fallback) tokenizer.json built the way
  transformers' LlamaConverter builds it from a real sentencepiece model (and checked
  against sentencepiece itself); gpt2 carries a byte-level BPE tokenizer.json trained with
  `tokenizers`. Their expected.json holds ids from the Python `tokenizers` library.
- llama_gqa.gguf: the llama_gqa weights converted like llama.cpp's convert_hf_to_gguf.py
  (Q/K rows permuted, blk.N.* names, llama metadata, SentencePiece vocab with scores).
- The architectures of issue #10, each a random-initialised transformers model with
  attention sharpened (q/k projections, or the q/k norms, scaled) so that position errors
  show, run on 24 tokens (past every sliding window and past original_max_position_embeddings),
  with its GGUF converted the way llama.cpp's convert_hf_to_gguf.py does (tensor names from
  gguf.TensorNameMap, Q/K permuted for `llama`, Gemma norms + 1, the arch's metadata keys):
  llama31 (rope_scaling llama3; config.json rewritten in the transformers 4.x spelling, as
  published Llama 3.1 files carry it; GGUF `rope_freqs.weight`), llama_yarn (yarn,
  transformers 5.x `rope_parameters`), llama_linear (linear, the old `type` key), qwen3
  (q/k norm), gemma2 (eager attention: soft-capping, query_pre_attn_scalar, alternating
  window), gemma3 (q/k norm, local RoPE base, linear scaling on the global layers, five of six
  layers sliding), phi3 (fused qkv/gate_up, partial_rotary_factor 0.5, sliding window),
  qwen2_swa (use_sliding_window from max_window_layers; llama.cpp has no Qwen2 window, so no
  GGUF). Each asserts that turning its feature off in transformers moves the logits by more
  than 1e-2 (the fixture exercises it).
- llama3_tokenizer.json: ids from the Python `tokenizers` library for the real Llama-3
  tokenizer.json in $GOLLM_ASSETS/tokenizers/llama3 (skipped when absent).
- chat_templates.json: strings rendered by transformers' `apply_chat_template` (Jinja2) for
  the Llama-3 template in $GOLLM_ASSETS and for a few inline templates.

Run: `python3 python/hf_fixtures.py [name ...]` (or `deno task fixtures:hf`) from the repo
root; names select fixtures (default: all).
Needs: torch, numpy, transformers, tokenizers, safetensors, gguf, jinja2, sentencepiece.
Deterministic (fixed seeds); total output about 2 MB.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "hf"
ASSETS = Path(os.environ.get("GOLLM_ASSETS", ROOT.parent / "shared" / "assets"))
TRAIN_TEXT = ASSETS / "text" / "tinystories" / "tinystories_train_head_944KB.txt"

SEQ = 10  # tokens of input per fixture
GREEDY = 12  # greedy continuation length


def r6(x: float) -> float:
    """Rounds a float32 to 6 decimals (well inside the 1e-4 tolerance) to keep JSON small."""
    return float(f"{x:.6f}")


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Re-initialises every parameter with larger values than HF's init (std 0.02), so that
    logits vary by several units and any mapping/layout bug shows far above 1e-4."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                fan_in = p.shape[0] if "c_attn" in name or "c_fc" in name or "c_proj" in name else p.shape[1]
                if "embed" in name or "wte" in name or "wpe" in name or "lm_head" in name:
                    std = 1.0 if "lm_head" not in name else 1.0 / fan_in**0.5
                else:
                    std = 1.0 / fan_in**0.5
                p.copy_(torch.randn(p.shape, generator=g) * std)
            elif "norm" in name or "ln_" in name:
                if name.endswith("bias"):
                    p.copy_(torch.randn(p.shape, generator=g) * 0.1)
                else:
                    p.copy_(1.0 + torch.randn(p.shape, generator=g) * 0.1)
            else:  # biases
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def logits_of(model: torch.nn.Module, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def greedy(model: torch.nn.Module, ids: list[int], n: int) -> list[int]:
    seq = list(ids)
    out = []
    for _ in range(n):
        nxt = int(np.argmax(logits_of(model, seq)[-1]))
        out.append(nxt)
        seq.append(nxt)
    return out


def save_model(name: str, model, ids: list[int], extra: dict | None = None, shard: str | None = None) -> Path:
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    model.eval()
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(d, **kw)
    lg = logits_of(model, ids)
    exp = {
        "source": f"transformers {__import__('transformers').__version__}, {type(model).__name__}, float32"
        + (", eager attention" if model.config._attn_implementation == "eager" else ""),
        "tokens": ids,
        "logits": [[r6(v) for v in row] for row in lg.tolist()],
        "greedy": greedy(model, ids, GREEDY),
    }
    if extra:
        exp.update(extra)
    (d / "expected.json").write_text(json.dumps(exp, separators=(",", ":")) + "\n")
    return d


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


# ---------------------------------------------------------------- tokenizers


def sp_byte_fallback_tokenizer(tmp: Path):
    """Trains a 400-piece sentencepiece BPE with byte fallback and converts it to a HF
    tokenizer.json the way transformers' LlamaConverter (legacy=True) does: vocab = pieces,
    merges from every split of every piece ordered by piece id (= score order), a
    Prepend(▁) + Replace(' ', ▁) normalizer, byte fallback, BOS post-processor."""
    import sentencepiece as spm
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    text = TRAIN_TEXT.read_text(errors="ignore")[:200_000]
    (tmp / "train.txt").write_text(text)
    spm.SentencePieceTrainer.train(
        input=str(tmp / "train.txt"), model_prefix=str(tmp / "sp"), vocab_size=400, model_type="bpe",
        byte_fallback=True, character_coverage=0.995, add_dummy_prefix=True, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(tmp / "sp.model"))
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    normal = [p for p in vocab if sp.is_unknown(vocab[p]) is False and not sp.is_control(vocab[p]) and not sp.is_byte(vocab[p])]
    merges = []
    for piece, pid in vocab.items():
        if pid not in [vocab[p] for p in normal] or len(piece) < 2:
            continue
        for k in range(1, len(piece)):
            a, b = piece[:k], piece[k:]
            if a in vocab and b in vocab and a in normal and b in normal:
                merges.append((pid, vocab[a], vocab[b], a, b))
    merges.sort()
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(a, b) for _, _, _, a, b in merges], unk_token="<unk>",
                               fuse_unk=True, byte_fallback=True))
    # The normalizer of meta-llama/Llama-2-7b-hf's tokenizer.json (always prepends ▁, like
    # sentencepiece's add_dummy_prefix; the Metaspace pre-tokenizer variant skips it when the
    # text already starts with a space).
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok, sp


def byte_level_tokenizer():
    """A byte-level BPE (GPT-2 style) trained with `tokenizers` on TinyStories, 320 ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = TRAIN_TEXT.read_text(errors="ignore")[:200_000]
    tok.train_from_iterator([text[i:i + 2000] for i in range(0, len(text), 2000)], trainer)
    return tok


TOKENIZER_TEXTS = [
    "Once upon a time, there was a little girl named Lily.",
    " She liked to play  outside\nwith her dog.\n\n  The end.",
    "Héllo wörld! Ça va? 你好，世界 🚀🦙 12345 3.14159",
    "tabs\tand\r\nnewlines   trailing   ",
    "<s>special</s> text <unk> and <|endoftext|> markers",
    "",
]


def tokenizer_cases(tok) -> list[dict]:
    out = []
    for t in TOKENIZER_TEXTS:
        out.append({
            "text": t,
            "ids": tok.encode(t, add_special_tokens=True).ids,
            "ids_no_special": tok.encode(t, add_special_tokens=False).ids,
        })
    return out


# ---------------------------------------------------------------- models


def llama_gqa(tmp: Path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok, sp = sp_byte_fallback_tokenizer(tmp)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(1)
    model = LlamaForCausalLM(cfg)
    randomize(model, 11)
    prompt = "Once upon a time, there was a little"
    ids = tok.encode(prompt).ids
    cases = tokenizer_cases(tok)
    for c in cases:  # the HF tokenizer.json must agree with sentencepiece itself
        assert c["ids"] == [1] + sp.encode(c["text"]) or "<" in c["text"], (c, sp.encode(c["text"]))
    d = save_model("llama_gqa", model, ids, {"prompt": prompt, "tokenizer_cases": cases}, shard="60KB")
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
        "add_eos_token": False, "tokenizer_class": "LlamaTokenizer",
    }, indent=2) + "\n")
    assert (d / "model.safetensors.index.json").exists(), "llama_gqa must be sharded"
    write_gguf(model, sp, OUT / "llama_gqa.gguf")


def llama_untied():
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, head_dim=32, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=500000.0, tie_word_embeddings=False,
                      bos_token_id=1, eos_token_id=2)
    torch.manual_seed(2)
    model = LlamaForCausalLM(cfg)
    randomize(model, 12)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=[2, 7], do_sample=True,
                                               temperature=0.6, top_p=0.9, top_k=40)
    ids = torch.randint(0, 256, (SEQ,), generator=torch.Generator().manual_seed(22)).tolist()
    save_model("llama_untied", model, ids)


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False,
                      use_sliding_window=False)
    torch.manual_seed(3)
    model = Qwen2ForCausalLM(cfg)
    randomize(model, 13)
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    ids = torch.randint(0, 256, (SEQ,), generator=torch.Generator().manual_seed(23)).tolist()
    save_model("qwen2", model, ids)


def mistral():
    """Mistral with MQA and a sliding window (5) shorter than the input, so the window is
    exercised: gollm maps it to context_length = sliding_window (the KV ring)."""
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
                        rms_norm_eps=1e-5, rope_theta=10000.0, sliding_window=5, tie_word_embeddings=False)
    torch.manual_seed(4)
    model = MistralForCausalLM(cfg)
    randomize(model, 14)
    ids = torch.randint(0, 256, (SEQ,), generator=torch.Generator().manual_seed(24)).tolist()
    # Prove the window matters for this input (else the fixture would not test it).
    full = MistralForCausalLM(MistralConfig(**{**cfg.to_dict(), "sliding_window": None}))
    full.load_state_dict(model.state_dict())
    assert np.abs(logits_of(full, ids) - logits_of(model, ids)).max() > 1e-2, "window not exercised"
    save_model("mistral", model, ids)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = byte_level_tokenizer()
    cfg = GPT2Config(vocab_size=tok.get_vocab_size(), n_embd=64, n_layer=2, n_head=4, n_positions=32,
                     n_inner=None, layer_norm_epsilon=1e-5, activation_function="gelu_new",
                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(5)
    model = GPT2LMHeadModel(cfg)
    randomize(model, 15)
    prompt = "Once upon a time, there was"
    ids = tok.encode(prompt).ids
    d = save_model("gpt2", model, ids, {"prompt": prompt, "tokenizer_cases": tokenizer_cases(tok)})
    tok.save(str(d / "tokenizer.json"))


# ---------------------------------------------------------------- GGUF (llama.cpp conversion)


def permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute: HF rotate_half rows → adjacent pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(model, sp, path: Path) -> None:
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("gollm hf fixture llama_gqa")
    w.add_vocab_size(c.vocab_size)
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    # Vocabulary as convert_hf_to_gguf.py _create_vocab_sentencepiece writes it.
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        t = gguf.TokenType.NORMAL
        if sp.is_unknown(i):
            t = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            t = gguf.TokenType.CONTROL
        elif sp.is_unused(i):
            t = gguf.TokenType.UNUSED
        elif sp.is_byte(i):
            t = gguf.TokenType.BYTE
        types.append(t)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    nh, nkv = c.num_attention_heads, c.num_key_value_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        w.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        w.add_tensor(f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], nh, nh))
        w.add_tensor(f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], nh, nkv))
        w.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        w.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        w.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        w.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not c.tie_word_embeddings:
        w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---------------------------------------------------------------- issue #10 architectures

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
    "qwen2_swa": qwen2_swa,
}


# ---------------------------------------------------------------- Llama-3 tokenizer + chat templates

LLAMA3_TEXTS = [
    "Hello world",
    " Hello World!",
    "The quick brown fox jumps over the lazy dog. 1234567 + 89 = 1234656",
    "Größenwahn, naïve café — déjà vu; Ελληνικά κείμενα; Русский текст; עברית; العربية",
    "日本語のテキストと中文文本，还有한국어 텍스트 🚀🦙🤗 emoji\u200d sequences 👨‍👩‍👧",
    "  leading spaces\n\n\ttabs\r\nCRLF   trailing   \n",
    "I'm sure you'll see they've said we'd ALL'S gone DON'T 'Twas",
    "def f(x):\n    return x ** 2  # squares\n\nprint(f(3))",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "",
]

CHAT_CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are a helpful assistant.  "},
        {"role": "user", "content": "  What is 2+2?\n"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "Und auf Deutsch? 🙂"},
    ],
]

# Inline templates (typical shapes: ChatML as in Qwen2, Mistral-instruct with raise_exception,
# Zephyr with loop.last) rendered by transformers for comparison.
INLINE_TEMPLATES = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
    "mistral": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
}


def llama3_and_chat() -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    ldir = ASSETS / "tokenizers" / "llama3"
    cases = []
    if (ldir / "tokenizer.json").exists():
        t = Tokenizer.from_file(str(ldir / "tokenizer.json"))
        for s in LLAMA3_TEXTS:
            cases.append({"text": s, "ids": t.encode(s, add_special_tokens=False).ids})
        (OUT / "llama3_tokenizer.json").write_text(json.dumps({
            "source": f"python tokenizers {__import__('tokenizers').__version__}, Tokenizer.from_file(tokenizer.json)"
                      ".encode(text, add_special_tokens=False) (added tokens always recognised)",
            "cases": cases,
        }, ensure_ascii=False, indent=1) + "\n")
    else:
        print(f"skip llama3 tokenizer ids: {ldir}/tokenizer.json absent", file=sys.stderr)

    renders = []
    if (ldir / "tokenizer_config.json").exists():
        tk = AutoTokenizer.from_pretrained(str(ldir))
        for conv in CHAT_CONVERSATIONS:
            for agp in (False, True):
                renders.append({"template": "llama3", "messages": conv, "add_generation_prompt": agp,
                                "bos_token": tk.bos_token, "eos_token": tk.eos_token,
                                "expected": tk.apply_chat_template(conv, tokenize=False, add_generation_prompt=agp)})
    else:
        print(f"skip llama3 chat template: {ldir}/tokenizer_config.json absent", file=sys.stderr)
    # A bare tokenizer is enough to drive apply_chat_template with inline templates.
    from tokenizers import Tokenizer as RawTok, models
    raw = RawTok(models.BPE())
    bare = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<s>", eos_token="</s>")
    for name, tpl in INLINE_TEMPLATES.items():
        for conv in CHAT_CONVERSATIONS + [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]]:
            if name == "mistral" and conv[0]["role"] == "system":
                continue
            for agp in (False, True):
                renders.append({"template": name, "messages": conv, "add_generation_prompt": agp,
                                "bos_token": "<s>", "eos_token": "</s>",
                                "expected": bare.apply_chat_template(conv, chat_template=tpl, tokenize=False,
                                                                     add_generation_prompt=agp)})
    (OUT / "chat_templates.json").write_text(json.dumps({
        "source": f"transformers {__import__('transformers').__version__} apply_chat_template(tokenize=False)",
        "templates": INLINE_TEMPLATES,
        "renders": renders,
    }, ensure_ascii=False, indent=1) + "\n")


def main() -> None:
    import tempfile

    only = set(sys.argv[1:])
    base = {"llama_gqa", "llama_untied", "qwen2", "mistral", "gpt2", "llama3_and_chat"}
    unknown = only - base - set(ARCH_FIXTURES)
    if unknown:
        sys.exit(f"hf_fixtures: unknown fixture(s) {sorted(unknown)} (known: {sorted(base | set(ARCH_FIXTURES))})")
    want = lambda name: not only or name in only  # noqa: E731
    if want("llama_gqa") or want("gpt2"):
        if not TRAIN_TEXT.exists():
            sys.exit(f"hf_fixtures: training text {TRAIN_TEXT} is missing (set GOLLM_ASSETS)")
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)
    if want("llama_gqa"):
        with tempfile.TemporaryDirectory() as tmp:
            llama_gqa(Path(tmp))
    for name, fn in [("llama_untied", llama_untied), ("qwen2", qwen2), ("mistral", mistral), ("gpt2", gpt2),
                     ("llama3_and_chat", llama3_and_chat), *ARCH_FIXTURES.items()]:
        if want(name):
            fn()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"hf_fixtures: wrote {OUT.relative_to(ROOT)} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
