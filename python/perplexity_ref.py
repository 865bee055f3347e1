"""Perplexity in PyTorch, from the spec of llama.cpp's ``llama-perplexity``, written apart from
gollm's runtime/perplexity.ts so the two can be compared (tests/perplexity_pytorch_test.ts).

Method (llama.cpp tools/perplexity/perplexity.cpp, ``perplexity()``), on given token ids::

    n_chunk = min(chunks, len(ids) // ctx)        chunks of ctx ids, no overlap
    chunk[0] = bos                                  when the tokenizer adds BOS
    logits = model(chunk)                           (ctx, vocab), one causal pass
    first = ctx // 2                                scored: positions first .. ctx-2 predict
    nll = -sum log_softmax(logits[j])[chunk[j+1]]         the tokens first+1 .. ctx-1
    ppl = exp(nll / count)

The model is python/model.py's mirror in float64, loaded from a gollm model directory
(config.yaml + model.safetensors) or from a llama2.c ``.bin`` checkpoint (legacy version 0:
seven int32 header fields, then float32 tensors in run.c's order), parsed here.

Usage::

    python python/perplexity_ref.py JOBS.json

``JOBS.json`` is a list of jobs ``{"model": PATH, "tokens": [ids] | "tokens_file": PATH,
"ctx": N, "chunks": K, "bos": ID | null, "score": "second_half" | "all",
"replace_bos": true}`` (``score`` and ``replace_bos`` exist for negative controls); the
script prints one JSON list with ``{ppl, nll, tokens_scored, chunks, ctx}`` per job.
Models are loaded once per path.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from config import GollmError, load_config, parse_config
from model import Transformer


def load_llama2c(path: Path) -> Transformer:
    """A llama2.c version-0 checkpoint (Karpathy's run.c layout) as a float64 mirror.

    Header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: an
    unshared classifier follows), seq_len. Tensors, float32, each stacked over layers and
    stored (out_features, in_features) as torch.nn.Linear keeps them: token embeddings
    (vocab, dim), rms_att (L, dim), wq (L, q_dim, dim), wk, wv (L, kv_dim, dim), wo (L, dim,
    q_dim), rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden), w3 (L, hidden, dim),
    rms_final (dim), two unused RoPE tables (seq_len, head_dim/2) each, [wcls (vocab, dim)].
    RoPE rotates adjacent pairs (run.c), theta 10000; RMSNorm eps 1e-5.
    """
    raw = path.read_bytes()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack_from("<7i", raw, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    head_dim = dim // n_heads
    c = parse_config(
        {
            "arch": "llama",
            "vocab_size": vocab,
            "dim": dim,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "n_kv_heads": n_kv_heads,
            "hidden_dim": hidden,
            "context_length": seq_len,
            "norm": "rmsnorm",
            "norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "rope_style": "interleaved",
            "mlp": "swiglu",
            "tie_embeddings": shared,
        },
        str(path),
    )
    floats = torch.frombuffer(bytearray(raw[28:]), dtype=torch.float32)
    at = 0

    def take(*shape: int) -> torch.Tensor:
        nonlocal at
        n = math.prod(shape)
        if at + n > floats.numel():
            raise GollmError(f"{path}: ends after {floats.numel()} floats; tensor of shape {list(shape)} needs more")
        t = floats[at : at + n].reshape(shape)
        at += n
        return t

    q_dim, kv_dim = n_heads * head_dim, n_kv_heads * head_dim
    sd = {"tok_embeddings.weight": take(vocab, dim)}
    stacked = {
        "attn_norm.weight": take(n_layers, dim),
        "attn.wq.weight": take(n_layers, q_dim, dim),
        "attn.wk.weight": take(n_layers, kv_dim, dim),
        "attn.wv.weight": take(n_layers, kv_dim, dim),
        "attn.wo.weight": take(n_layers, dim, q_dim),
        "ffn_norm.weight": take(n_layers, dim),
        "ffn.w1.weight": take(n_layers, hidden, dim),
        "ffn.w2.weight": take(n_layers, dim, hidden),
        "ffn.w3.weight": take(n_layers, hidden, dim),
    }
    for name, t in stacked.items():
        for i in range(n_layers):
            sd[f"layers.{i}.{name}"] = t[i]
    sd["norm.weight"] = take(dim)
    take(seq_len, head_dim // 2)  # freq_cis_real (unused: the mirror computes RoPE itself)
    take(seq_len, head_dim // 2)  # freq_cis_imag
    if not shared:
        sd["output.weight"] = take(vocab, dim)
    m = Transformer(c).double()
    m.load_state_dict({k: v.double() for k, v in sd.items()})
    return m.eval()


def load_gollm_dir(path: Path) -> Transformer:
    """A gollm model directory (config.yaml, model.safetensors) as a float64 mirror."""
    from safetensors.torch import load_file

    c = load_config(path / "config.yaml")
    m = Transformer(c).double()
    m.load_state_dict({k: v.double() for k, v in load_file(path / "model.safetensors").items()})
    return m.eval()


def load_model(path: str) -> Transformer:
    """A gollm directory or a llama2.c ``.bin``, by what ``path`` is."""
    p = Path(path)
    if p.is_dir():
        return load_gollm_dir(p)
    if p.suffix == ".bin":
        return load_llama2c(p)
    raise GollmError(f"{path}: not a gollm model directory or a llama2.c .bin")


@torch.no_grad()
def perplexity(
    model: Transformer,
    ids: list[int],
    ctx: int,
    chunks: int | None = None,
    bos: int | None = None,
    score: str = "second_half",
    replace_bos: bool = True,
) -> dict:
    """llama.cpp's perplexity of ``ids`` (module docstring). ``score="all"`` scores every
    position of a chunk and ``replace_bos=False`` keeps each chunk's first id: both are
    wrong on purpose, for negative controls.

    Returns:
        ``{"ppl", "nll" (mean nats per scored token), "tokens_scored", "chunks", "ctx"}``.
    """
    if len(ids) < 2 * ctx:
        raise GollmError(f"{len(ids)} tokens; ctx {ctx} needs at least {2 * ctx}")
    n_chunk = len(ids) // ctx if chunks is None else min(chunks, len(ids) // ctx)
    first = ctx // 2 if score == "second_half" else 0
    nll, count = 0.0, 0
    for i in range(n_chunk):
        chunk = list(ids[i * ctx : (i + 1) * ctx])  # (ctx)
        if bos is not None and replace_bos:
            chunk[0] = bos
        x = torch.tensor([chunk], dtype=torch.long)  # (1, ctx)
        logp = F.log_softmax(model(x)[0].double(), dim=-1)  # (ctx, vocab)
        pred = logp[first : ctx - 1]  # (ctx - 1 - first, vocab): rows predicting the next id
        targets = x[0, first + 1 : ctx]  # (ctx - 1 - first)
        nll -= float(pred.gather(1, targets[:, None]).sum())
        count += ctx - 1 - first
    return {"ppl": math.exp(nll / count), "nll": nll / count, "tokens_scored": count, "chunks": n_chunk, "ctx": ctx}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python python/perplexity_ref.py JOBS.json", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    jobs = json.loads(Path(argv[0]).read_text())
    models: dict[str, Transformer] = {}
    out = []
    for job in jobs:
        m = models.get(job["model"]) or models.setdefault(job["model"], load_model(job["model"]))
        ids = job["tokens"] if "tokens" in job else json.loads(Path(job["tokens_file"]).read_text())
        out.append(
            perplexity(
                m,
                ids,
                job["ctx"],
                job.get("chunks"),
                job.get("bos"),
                job.get("score", "second_half"),
                job.get("replace_bos", True),
            )
        )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except GollmError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
