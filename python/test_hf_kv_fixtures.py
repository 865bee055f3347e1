"""Tests of python/hf_kv_fixtures.py's float16-rounding KV cache (tiny tensors, no model)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from hf_kv_fixtures import F16KVCache, f16_flips, round_f16  # noqa: E402


def test_update_returns_float16_values() -> None:
    g = torch.Generator().manual_seed(0)
    cache = F16KVCache()
    k1, v1 = torch.randn(1, 2, 3, 8, generator=g) * 5, torch.randn(1, 2, 3, 8, generator=g)
    k, v = cache.update(k1, v1, 0)
    assert k.dtype == v.dtype == torch.float32
    assert (k.half().float() == k).all() and (v.half().float() == v).all()
    assert not torch.equal(k, k1)  # random float32 values are (almost all) not float16 values
    # A second call returns past + new, all rounded; the cached states are the returned ones.
    k2, v2 = torch.randn(1, 2, 1, 8, generator=g), torch.randn(1, 2, 1, 8, generator=g)
    k, v = cache.update(k2, v2, 0)
    assert k.shape == (1, 2, 4, 8) and cache.get_seq_length() == 4
    assert torch.equal(k, torch.cat([round_f16(k1), round_f16(k2)], -2))
    assert torch.equal(v, torch.cat([round_f16(v1), round_f16(v2)], -2))
    assert torch.equal(cache.layers[0].keys, k) and cache.updates == 2


def test_one_third_is_rounded() -> None:
    third = torch.full((1, 1, 1, 1), 1 / 3)
    k, v = F16KVCache().update(third, -third, 0)
    assert k.item() == 0.333251953125 and v.item() == -0.333251953125  # float16 nearest to 1/3 (0x3555)
    assert abs(k.item() - 1 / 3) > 1e-5


def test_f16_flips_counts_one_step_differences() -> None:
    a = round_f16(torch.tensor([1.0, 1 / 3, 100.0]))
    b = a.clone()
    b[1] = torch.nextafter(a[1].half(), torch.tensor(1.0).half()).float()
    assert f16_flips(a, a) == 0 and f16_flips(a, b) == 1
    b[2] = 101.0  # 100 and 101 are 16 float16 steps apart
    with pytest.raises(AssertionError):
        f16_flips(a, b)
