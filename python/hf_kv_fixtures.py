"""The F16 KV cache fixture of python/hf_fixtures.py: transformers' logits for the llama_gqa fixture
model when the keys (after RoPE) and values are rounded to IEEE float16 as they are written to the
KV cache and read back as float32 (llama.cpp's default `--cache-type-k f16 --cache-type-v f16`);
everything else stays float32. Reads tests/fixtures/hf/llama_gqa (so llama_gqa must exist or run
first) and writes tests/fixtures/hf/llama_gqa/expected_kv_f16.json. Run through hf_fixtures.py:
`python3 python/hf_fixtures.py kv_f16`.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from transformers import DynamicCache

from hf_fixtures import OUT, logits_of, r6


def round_f16(x: torch.Tensor) -> torch.Tensor:
    """x rounded to the nearest IEEE float16 (round-to-nearest-even), as float32."""
    return x.to(torch.float16).to(torch.float32)


class F16KVCache(DynamicCache):
    """A DynamicCache that stores keys and values rounded to float16 (kept as float32 tensors).

    HF Llama attention calls `past_key_values.update(key_states, value_states, layer_idx)` after
    RoPE and attends over what it returns (the cached past plus the new tokens), so the current
    tokens' keys/values are rounded too, exactly as in a cache that is written before it is read."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.updates = 0  # calls of update (one per layer per forward), checked by kv_f16

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        self.updates += 1
        return super().update(round_f16(key_states), round_f16(value_states), layer_idx, *args, **kwargs)


def f16_cache_logits(model: torch.nn.Module, ids: list[int], incremental: bool = False
                     ) -> tuple[np.ndarray, F16KVCache]:
    """The float32 logits of every position with an F16KVCache, and the filled cache: one forward
    pass over `ids`, or (incremental) one forward per token reusing the cache, as in decoding."""
    cache = F16KVCache()
    with torch.no_grad():
        if incremental:
            rows = [model(torch.tensor([[t]]), past_key_values=cache, use_cache=True).logits[0, -1] for t in ids]
            lg = torch.stack(rows)
        else:
            lg = model(torch.tensor([ids]), past_key_values=cache, use_cache=True).logits[0]
    n_layers = model.config.num_hidden_layers
    assert cache.updates == n_layers * (len(ids) if incremental else 1), cache.updates  # the cache was used
    assert cache.get_seq_length() == len(ids), cache.get_seq_length()
    return lg.float().numpy(), cache


def f16_flips(a: torch.Tensor, b: torch.Tensor) -> int:
    """The number of elements where two float16-rounded tensors differ, after checking that each
    such pair is one float16 step apart (float32 noise carried a value across a rounding midpoint)."""
    ne = a != b
    big = torch.maximum(a[ne].abs(), b[ne].abs()).clamp_min(2.0**-14)
    ulp = 2.0 ** (torch.floor(torch.log2(big)) - 10)
    assert ((a[ne] - b[ne]).abs() <= ulp).all(), "K/V caches differ by more than one float16 step"
    return int(ne.sum())


def kv_f16() -> None:
    import transformers
    from transformers import LlamaForCausalLM

    d = OUT / "llama_gqa"
    if not (d / "expected.json").exists():
        raise SystemExit(f"hf_fixtures: kv_f16 needs {d} (run `python3 python/hf_fixtures.py llama_gqa` first)")
    exp = json.loads((d / "expected.json").read_text())
    ids = exp["tokens"]
    model = LlamaForCausalLM.from_pretrained(str(d), torch_dtype=torch.float32)
    model.eval()
    # One thread: the float32 summation order decides which values near a float16 rounding
    # midpoint round up or down, so it is kept fixed for a reproducible fixture.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        f32 = logits_of(model, ids)
        f16, cache = f16_cache_logits(model, ids)
        inc, inc_cache = f16_cache_logits(model, ids, incremental=True)
    finally:
        torch.set_num_threads(threads)
    err = np.abs(f32 - np.array(exp["logits"], dtype=np.float32)).max()
    assert err < 1e-4, f"kv_f16: reloaded llama_gqa disagrees with its expected.json by {err}"
    diff = float(np.abs(f16 - f32).max())
    assert diff > 1e-4, f"kv_f16: rounding the K/V cache to float16 moves the logits by only {diff}"
    # Self-check: incremental decode rounds in the same place. Its K/V differ from the one-pass
    # ones by float32 noise (~1e-6), which can carry a value across a float16 rounding midpoint;
    # such a flip (one float16 step) moves the logits by a few 1e-4, so the bound is 1e-3.
    flips = sum(f16_flips(a.keys, b.keys) + f16_flips(a.values, b.values)
                for a, b in zip(cache.layers, inc_cache.layers))
    n_kv = sum(a.keys.numel() + a.values.numel() for a in cache.layers)
    assert flips <= n_kv // 100, f"kv_f16: {flips} of {n_kv} cached K/V values differ between the two runs"
    inc_err = float(np.abs(inc - f16).max())
    inc_last = float(np.abs(inc[-1] - f16[-1]).max())
    assert inc_err < 1e-3, f"kv_f16: incremental decode off by {inc_err}"

    out = {
        "source": f"transformers {transformers.__version__}, LlamaForCausalLM, float32, "
                  "K/V cache rounded to float16 (DynamicCache.update)",
        "tokens": ids,
        "logits": [[r6(v) for v in row] for row in f16.tolist()],
        "f32_max_diff": float(f"{diff:.3g}"),
    }
    (d / "expected_kv_f16.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"kv_f16: max |fp16 cache - f32| = {diff:.3g}; incremental vs one pass: {inc_err:.2e} "
          f"(last position {inc_last:.2e}), {flips} of {n_kv} cached K/V values one float16 step apart")
