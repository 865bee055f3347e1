"""PyTorch parity fixtures for the Deno suite (tests/pytorch_parity_test.ts).

For each small config below (both arches, GQA and MQA, both RoPE styles, q/k/v bias,
head_dim != dim/n_heads, tied and untied output) this writes random weights, a token
sequence, the PyTorch logits of every position (computed in float64 from the stored float32
weights, so the oracle's own rounding is negligible) and a greedy continuation to::

    tests/fixtures/pytorch/<name>/config.yaml
    tests/fixtures/pytorch/<name>/model.safetensors     (F32, canonical names, gollm metadata)
    tests/fixtures/pytorch/<name>/expected.json         {tokens, logits (n*vocab), greedy_prompt, greedy_ids, ...}

plus ``tiny_trained/``: the tiny config (configs/tiny.yaml) trained briefly on the real
corpus and exported as a gollm model directory, with a text prompt, its token ids (tiktoken),
the logits and 50 greedy ids, and tokenizer cases (varied text → ids from the tiktoken package);
and ``default_model.json``: the same checks for the shipped models/default (when present).

CLI (``deno task fixtures``)::

    python python/fixtures.py [--out tests/fixtures/pytorch] [--skip-trained]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from config import GollmError, ModelConfig, load_config, load_train_config, parse_config
from export import write_gollm_dir
from model import Transformer

ROOT = Path(__file__).resolve().parent.parent

#: name -> model config (tokenizer "none": ids only).
CONFIGS: dict[str, dict] = {
    "llama_gqa_half_tied": dict(
        arch="llama",
        vocab_size=64,
        dim=48,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        hidden_dim=96,
        context_length=32,
        norm="rmsnorm",
        norm_eps=1e-5,
        rope_theta=10000,
        rope_style="half",
        attn_bias=False,
        mlp="swiglu",
        tie_embeddings=True,
    ),
    "llama_mqa_interleaved_untied": dict(
        arch="llama",
        vocab_size=72,
        dim=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=1,
        hidden_dim=80,
        context_length=32,
        norm="rmsnorm",
        norm_eps=1e-6,
        rope_theta=500000,
        rope_style="interleaved",
        attn_bias=False,
        mlp="swiglu",
        tie_embeddings=False,
    ),
    "llama_bias_headdim_interleaved": dict(
        arch="llama",
        vocab_size=60,
        dim=40,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        head_dim=16,
        hidden_dim=72,
        context_length=32,
        norm="rmsnorm",
        norm_eps=1e-5,
        rope_theta=10000,
        rope_style="interleaved",
        attn_bias=True,
        mlp="swiglu",
        tie_embeddings=True,
    ),
    "llama_mha_half_bias_untied": dict(
        arch="llama",
        vocab_size=50,
        dim=24,
        n_layers=3,
        n_heads=3,
        n_kv_heads=3,
        hidden_dim=64,
        context_length=24,
        norm="rmsnorm",
        norm_eps=1e-5,
        rope_theta=1000,
        rope_style="half",
        attn_bias=True,
        mlp="swiglu",
        tie_embeddings=False,
    ),
    "gpt2_tied": dict(
        arch="gpt2",
        vocab_size=64,
        dim=48,
        n_layers=2,
        n_heads=4,
        hidden_dim=192,
        context_length=32,
        norm="layernorm",
        norm_eps=1e-5,
        mlp="gelu",
        tie_embeddings=True,
    ),
    "gpt2_gqa_untied": dict(
        arch="gpt2",
        vocab_size=56,
        dim=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        hidden_dim=96,
        context_length=24,
        norm="layernorm",
        norm_eps=1e-5,
        mlp="gelu",
        tie_embeddings=False,
    ),
}

N_TOKENS = 12
N_GREEDY = 16


def random_state_dict(model: Transformer, seed: int) -> dict[str, torch.Tensor]:
    """Random weights large enough that every part of the model moves the logits:
    matrices ~ U(-a, a) with a = sqrt(3)/sqrt(in_features), norm weights 1 ± 0.2, biases ± 0.2,
    embeddings ~ U(-1, 1)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, p in model.canonical_state_dict().items():
        u = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1
        if name.endswith("norm.weight"):
            t = 1 + 0.2 * u
        elif name.endswith(".bias"):
            t = 0.2 * u
        elif "embeddings" in name:
            t = u
        else:
            t = u * (3**0.5) / p.shape[1] ** 0.5
        sd[name] = t.float()
    return sd


def float64_model(c: ModelConfig, sd: dict[str, torch.Tensor]) -> Transformer:
    """A float64 copy of the model with these (float32) weights, in eval mode."""
    m = Transformer(c).double()
    m.load_state_dict({k: v.double() for k, v in sd.items()})
    if c.arch == "llama":
        half = c.head_dim // 2
        inv = c.rope_theta ** (-torch.arange(half, dtype=torch.float64) * 2 / c.head_dim)
        ang = torch.arange(c.context_length, dtype=torch.float64)[:, None] * inv[None, :]
        m.rope_cos, m.rope_sin = torch.cos(ang), torch.sin(ang)  # RoPE tables in float64 too
    return m.eval()


def greedy_with_margin(m: Transformer, prompt: list[int], n: int) -> tuple[list[int], float]:
    """Greedy ids and the smallest gap between the best and second-best logit over the steps."""
    ids, margin = list(prompt), float("inf")
    with torch.no_grad():
        for _ in range(n):
            logits = m(torch.tensor([ids[-m.config.context_length :]]))[0, -1]
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt) :], margin


def write_random_fixture(name: str, raw: dict, out: Path, seed: int) -> int:
    """Write one random-weight fixture; returns bytes written."""
    c = parse_config({**raw, "tokenizer": "none"}, name)
    sd = random_state_dict(Transformer(c), seed)
    m = float64_model(c, sd)
    g = torch.Generator().manual_seed(seed + 7)
    tokens = torch.randint(0, c.vocab_size, (N_TOKENS,), generator=g).tolist()
    with torch.no_grad():
        logits = m(torch.tensor([tokens]))[0]  # (n, vocab)
    prompt = tokens[:4]
    greedy, margin = greedy_with_margin(m, prompt, N_GREEDY)
    d = out / name
    write_gollm_dir(c, sd, None, d, "f32")
    exp = {
        "name": name,
        "tokens": tokens,
        "vocab_size": c.vocab_size,
        "logits": [round(float(x), 7) for x in logits.flatten()],
        "greedy_prompt": prompt,
        "greedy_ids": greedy,
        "greedy_min_margin": margin,
        "note": "PyTorch (python/model.py) in float64 from the stored float32 weights",
    }
    (d / "expected.json").write_text(json.dumps(exp) + "\n")
    return sum(f.stat().st_size for f in d.iterdir())


#: Text whose ids Python (tiktoken) and Deno (js-tiktoken) must agree on.
TOKENIZER_CASES = [
    "The Congress of the United States shall assemble at least once in every year.",
    "héllo wörld — naïve café, Ελληνικά, русский, 日本語のテキスト, 한국어 🙂👍🏽 emoji",
    "def f(x):\n    return {'a': x ** 2, \"b\": [1, 2, 3]}  # code\n\tif x != 0: pass\n",
    "   leading spaces, trailing spaces   \n\n\n\nmany newlines\r\n\r\n  tabs\t\t\tend ",
    "numbers 1234567890 3.14159 1,000,000 $42.50 100% it's we're they've I'm you'll he'd",
    "<|eos|> special-token text is plain text here <|bos|>",
    "MIXED case WORDS and CamelCaseIdentifiers_with_underscores and URLs https://example.org/a?b=c",
]


def write_trained_fixture(out: Path, max_steps: int = 200) -> int:
    """Train configs/tiny.yaml briefly (into runs/fixture-tiny) and write ``tiny_trained/``."""
    from tokenizer import Tokenizer
    from train import load_checkpoint

    cfg = ROOT / "configs" / "tiny.yaml"
    mc, t = load_train_config(cfg)
    run_dir = ROOT / "runs" / "fixture-tiny"
    corpus = ROOT / t.corpus
    if not corpus.is_file():
        raise GollmError(f"{corpus}: corpus file does not exist (run `deno task data` first, or pass --skip-trained)")
    ck_path = run_dir / "ckpt.pt"
    if not ck_path.is_file():
        cmd = [
            sys.executable,
            str(ROOT / "python" / "train.py"),
            "--config",
            str(cfg),
            "--out-dir",
            str(run_dir),
            "--max-steps",
            str(max_steps),
            "--corpus",
            str(corpus),
            "--no-progress",
        ]
        subprocess.run(cmd, check=True, cwd=ROOT)
    ck = load_checkpoint(ck_path)
    c = parse_config(ck["model_config"], str(ck_path))
    sd = ck["model"]
    tok_text = ck["tokenizer"]
    d = out / "tiny_trained"
    write_gollm_dir(c, sd, tok_text, d, "f32")
    c = parse_config({**c.to_dict(), "tokenizer": "tokenizer.tiktoken"}, "tiny_trained")
    tok = Tokenizer.load(d / "tokenizer.tiktoken")
    m = float64_model(c, sd)
    prompt_text = "Fellow citizens, the state of the Union"
    tokens = tok.encode(prompt_text, bos=True)  # as `gollm generate` does (addBos)
    with torch.no_grad():
        logits = m(torch.tensor([tokens]))[0]
    greedy, margin = greedy_with_margin(m, tokens, 50)
    f32 = Transformer(c)
    f32.load_state_dict(sd)
    greedy32 = f32.eval().generate_greedy(tokens, 50)
    if greedy32 != greedy:
        raise GollmError("tiny_trained: float32 and float64 greedy ids differ (a near tie); pick another prompt")
    exp = {
        "name": "tiny_trained",
        "prompt": prompt_text,
        "tokens": tokens,
        "vocab_size": c.vocab_size,
        "logits": [round(float(x), 7) for x in logits.flatten()],
        "greedy_prompt": tokens,
        "greedy_ids": greedy,
        "greedy_min_margin": margin,
        "greedy_text": tok.decode(greedy),
        "train_steps": ck["step"],
        "tokenizer_cases": [{"text": s, "ids": tok.encode(s)} for s in TOKENIZER_CASES],
        "note": "configs/tiny.yaml trained on the sotu corpus; logits from PyTorch in float64",
    }
    (d / "expected.json").write_text(json.dumps(exp, ensure_ascii=False) + "\n")
    return sum(f.stat().st_size for f in d.iterdir())


def write_default_fixture(out: Path) -> int:
    """``default_model.json``: the shipped models/default (F16 weights, exact in F32) — its
    tokenizer's ids for TOKENIZER_CASES, a prompt's ids (with BOS), the last-position logits and
    40 greedy ids from PyTorch in float64. Returns bytes written (0 when models/default is absent)."""
    from safetensors.torch import load_file

    from tokenizer import Tokenizer

    d = ROOT / "models" / "default"
    if not (d / "config.yaml").is_file():
        return 0
    c = load_config(d / "config.yaml")
    sd = {k: v.float() for k, v in load_file(d / "model.safetensors").items()}
    tok = Tokenizer.load(d / c.tokenizer)
    m = float64_model(c, sd)
    prompt_text = "The state of the Union"
    tokens = tok.encode(prompt_text, bos=True)
    with torch.no_grad():
        last = m(torch.tensor([tokens]))[0, -1]
    greedy, margin = greedy_with_margin(m, tokens, 40)
    exp = {
        "prompt": prompt_text,
        "tokens": tokens,
        "last_logits": [round(float(x), 7) for x in last],
        "greedy_ids": greedy,
        "greedy_min_margin": margin,
        "greedy_text": tok.decode(greedy),
        "tokenizer_cases": [{"text": s, "ids": tok.encode(s)} for s in TOKENIZER_CASES],
        "note": "models/default from PyTorch in float64 (python/fixtures.py)",
    }
    p = out / "default_model.json"
    p.write_text(json.dumps(exp, ensure_ascii=False) + "\n")
    return p.stat().st_size


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(description="Regenerate tests/fixtures/pytorch")
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "pytorch"))
    ap.add_argument("--skip-trained", action="store_true", help="do not regenerate tiny_trained/")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        total = 0
        for i, (name, raw) in enumerate(CONFIGS.items()):
            n = write_random_fixture(name, raw, out, seed=1000 + i)
            total += n
            print(f"wrote {out / name} ({n / 1e3:.0f} kB)")
        if not args.skip_trained:
            n = write_trained_fixture(out)
            total += n
            print(f"wrote {out / 'tiny_trained'} ({n / 1e3:.0f} kB)")
        n = write_default_fixture(out)
        if n:
            total += n
            print(f"wrote {out / 'default_model.json'} ({n / 1e3:.0f} kB)")
        for stale in out.iterdir():
            if stale.is_dir() and stale.name not in CONFIGS and stale.name != "tiny_trained":
                shutil.rmtree(stale)
        print(f"fixtures total {sum(f.stat().st_size for f in out.rglob('*') if f.is_file()) / 1e6:.2f} MB")
        return 0
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
