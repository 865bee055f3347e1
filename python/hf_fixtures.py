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
- llama_gqa/expected_kv_f16.json (kv_f16, python/hf_kv_fixtures.py; reads the saved llama_gqa): the
  llama_gqa logits with keys (after RoPE) and values rounded to float16 as they enter the KV cache
  (llama.cpp's default F16 cache), via a transformers DynamicCache subclass; everything else float32.
- llama_gqa.gguf: the llama_gqa weights converted like llama.cpp's convert_hf_to_gguf.py
  (Q/K rows permuted, blk.N.* names, llama metadata, SentencePiece vocab with scores).
- The architectures of issue #10 (python/hf_arch_fixtures.py), each a random-initialised transformers model with
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

    from hf_arch_fixtures import ARCH_FIXTURES  # the issue #10 architectures (imports this module)
    from hf_kv_fixtures import kv_f16  # the F16 KV cache logits of llama_gqa (imports this module)
    from hf_half_fixtures import half  # bfloat16/float16 copies of fixtures (imports this module)

    only = set(sys.argv[1:])
    base = {"llama_gqa", "kv_f16", "llama_untied", "qwen2", "mistral", "gpt2", "llama3_and_chat", "half"}
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
    for name, fn in [("kv_f16", kv_f16), ("llama_untied", llama_untied), ("qwen2", qwen2), ("mistral", mistral),
                     ("gpt2", gpt2), ("llama3_and_chat", llama3_and_chat), *ARCH_FIXTURES.items(),
                     ("half", half)]:
        if want(name):
            fn()
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"hf_fixtures: wrote {OUT.relative_to(ROOT)} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
