"""python/perplexity_ref.py: the llama2.c reader and the perplexity spec it computes."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
import torch

from config import GollmError, parse_config
from fixtures import CONFIGS, random_state_dict
from model import Transformer
from perplexity_ref import load_llama2c, perplexity


def write_llama2c(m: Transformer, path: Path) -> None:
    """Writes ``m`` as a llama2.c version-0 checkpoint in run.c's order (written here from
    run.c's layout, independently of the reader)."""
    c = m.config
    sd = {k: v.float() for k, v in m.state_dict().items()}
    vocab = c.vocab_size if c.tie_embeddings else -c.vocab_size
    parts = [struct.pack("<7i", c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, vocab, c.context_length)]

    def put(t: torch.Tensor) -> None:
        parts.append(t.contiguous().numpy().astype("<f4").tobytes())

    put(sd["tok_embeddings.weight"])
    for name in ("attn_norm", "attn.wq", "attn.wk", "attn.wv", "attn.wo", "ffn_norm", "ffn.w1", "ffn.w2", "ffn.w3"):
        for i in range(c.n_layers):
            put(sd[f"layers.{i}.{name}.weight"])
    put(sd["norm.weight"])
    put(torch.zeros(2, c.context_length, c.head_dim // 2))  # the unused RoPE tables
    if not c.tie_embeddings:
        put(sd["output.weight"])
    path.write_bytes(b"".join(parts))


@pytest.mark.parametrize("name", ["llama_mqa_interleaved_untied"])
def test_load_llama2c_reads_run_c_layout(tmp_path: Path, name: str) -> None:
    c = parse_config({**CONFIGS[name], "norm_eps": 1e-5, "rope_theta": 10000.0}, name)
    m = Transformer(c)
    m.load_state_dict(random_state_dict(m, seed=3))
    write_llama2c(m, tmp_path / "m.bin")
    got = load_llama2c(tmp_path / "m.bin")
    x = torch.randint(0, c.vocab_size, (1, 20))
    with torch.no_grad():
        assert torch.allclose(got(x), m.double()(x), atol=1e-9)
    # A truncated file is one clear error.
    (tmp_path / "short.bin").write_bytes((tmp_path / "m.bin").read_bytes()[:1000])
    with pytest.raises(GollmError, match="short.bin: ends after"):
        load_llama2c(tmp_path / "short.bin")


def test_perplexity_scores_the_second_half_of_each_chunk_with_bos_first() -> None:
    c = parse_config(CONFIGS["llama_gqa_half_tied"], "t")  # vocab 64, context 32
    m = Transformer(c)
    m.load_state_dict(random_state_dict(m, seed=5))
    m = m.double().eval()
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, c.vocab_size, (70,), generator=g).tolist()
    r = perplexity(m, ids, ctx=16, bos=1)
    assert (r["chunks"], r["ctx"], r["tokens_scored"]) == (4, 16, 4 * 7)  # floor(70/16); 9..15
    # Token by token: the log-probability of x[j+1] given x[0..j], j = 8..14, BOS over x[0].
    nll = 0.0
    with torch.no_grad():
        for i in range(4):
            x = ids[i * 16 : (i + 1) * 16]
            x[0] = 1
            for j in range(8, 15):
                logits = m(torch.tensor([x[: j + 1]]))[0, -1]
                nll -= float(torch.log_softmax(logits, -1)[x[j + 1]])
    assert math.isclose(r["ppl"], math.exp(nll / 28), rel_tol=1e-12)
    # The deliberate mistakes of the negative controls give other values.
    assert not math.isclose(perplexity(m, ids, 16, bos=1, score="all")["ppl"], r["ppl"], rel_tol=1e-4)
    assert not math.isclose(perplexity(m, ids, 16, bos=1, replace_bos=False)["ppl"], r["ppl"], rel_tol=1e-4)
    assert perplexity(m, ids, 16, chunks=2, bos=1)["chunks"] == 2
    with pytest.raises(GollmError, match="needs at least 64"):
        perplexity(m, ids[:40], 32)
