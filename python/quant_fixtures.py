"""ggml block (de)quantisation fixtures from the `gguf` Python package (gguf.quants).

Writes, under tests/fixtures/quant/gguf_py/ (all values computed by code nobody on gollm
wrote: numpy + gguf-py's `gguf.quants.dequantize` / `gguf.quants.quantize`):

- <TYPE>.dequant.bin for F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K,
  Q6_K: random blocks (every byte random, then every F16 scale field replaced by a random
  finite half) followed by their F32 dequantisation by gguf-py.
- <TYPE>.quant.bin for F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (the types gguf-py can
  quantise): F32 input rows followed by gguf-py's blocks for them.
- manifest.json: for each file its type, element count and layout, and the gguf version.

Inputs mix block scales from 1e-4 to 1e2, an all-zero block, a constant block, single
outliers, and exact ties (x.5 after scaling) so rounding rules are exercised.

Run: `python3 python/quant_fixtures.py` (or `deno task fixtures:quant`) from the repo root.
Needs: numpy, gguf. Deterministic (fixed seed); output about 150 KB.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "quant" / "gguf_py"

# Byte offsets of the F16 scale fields inside one block (ggml-common.h).
F16_FIELDS: dict[str, list[int]] = {
    "Q4_0": [0],
    "Q4_1": [0, 2],
    "Q5_0": [0],
    "Q5_1": [0, 2],
    "Q8_0": [0],
    "Q2_K": [80, 82],
    "Q3_K": [108],
    "Q4_K": [0, 2],
    "Q5_K": [0, 2],
    "Q6_K": [208],
}
DEQUANT_TYPES = ["F16", "BF16", *F16_FIELDS]
QUANT_TYPES = ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def random_half(rng: np.random.Generator, n: int) -> np.ndarray:
    """Finite F16 values with magnitudes from 1e-5 to 1e1, both signs."""
    mag = 10.0 ** rng.uniform(-5, 1, n)
    return (mag * rng.choice([-1.0, 1.0], n)).astype(np.float16)


def random_blocks(rng: np.random.Generator, name: str, n_blocks: int) -> np.ndarray:
    """Random bytes of `n_blocks` blocks with valid F16 scale fields."""
    qt = T[name]
    block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
    if name in ("F16", "BF16"):
        # Any bit pattern but NaN/Inf (which compare unequal to themselves).
        vals = rng.standard_normal(n_blocks * 64).astype(np.float32) * 10.0 ** rng.uniform(-6, 4, n_blocks * 64).astype(np.float32)
        if name == "F16":
            return vals.astype(np.float16).view(np.uint8)
        return quantize(vals, qt).view(np.uint8)
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[name]:
        raw[:, off : off + 2] = random_half(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def random_input(rng: np.random.Generator, block: int, n_blocks: int) -> np.ndarray:
    """F32 rows exercising scales, zeros, constants, outliers and rounding ties."""
    x = np.empty((n_blocks, block), dtype=np.float32)
    for b in range(n_blocks):
        scale = 10.0 ** rng.uniform(-4, 2)
        kind = b % 8
        if kind == 0:
            x[b] = 0.0
        elif kind == 1:
            x[b] = np.float32(scale)
        elif kind == 2:
            x[b] = rng.standard_normal(block) * scale
            x[b, rng.integers(block)] = 40 * scale
        elif kind == 3:
            # Multiples of 1/2 of a power of two: many exact ties after scaling.
            x[b] = np.round(rng.uniform(-8, 8, block) * 2) / 2 * np.float32(2.0 ** -3)
        elif kind == 4:
            x[b] = np.abs(rng.standard_normal(block)) * scale + scale
        else:
            x[b] = rng.standard_normal(block) * scale
    return x.reshape(-1)


def main() -> None:
    rng = np.random.default_rng(20261129)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, object] = {"gguf_version": getattr(gguf, "__version__", None), "files": []}
    files: list[dict[str, object]] = manifest["files"]  # type: ignore[assignment]
    for name in DEQUANT_TYPES:
        qt = T[name]
        block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
        n_blocks = 16 if block_size == 256 else 64
        raw = random_blocks(rng, name, n_blocks)
        n = raw.size // type_size * block_size
        y = dequantize(raw, qt).astype(np.float32).reshape(-1)
        assert y.size == n, (name, y.size, n)
        path = OUT / f"{name}.dequant.bin"
        path.write_bytes(raw.tobytes() + y.tobytes())
        files.append({"file": path.name, "type": name, "kind": "dequantize", "n": n,
                      "layout": "blocks then F32 dequantised"})
    for name in QUANT_TYPES:
        qt = T[name]
        block_size, _ = gguf.GGML_QUANT_SIZES[qt]
        n_blocks = 1024 if block_size == 1 else 48
        x = random_input(rng, 32, n_blocks * block_size // 32)
        q = quantize(x, qt)
        q = np.asarray(q).view(np.uint8).reshape(-1)
        path = OUT / f"{name}.quant.bin"
        path.write_bytes(x.tobytes() + q.tobytes())
        files.append({"file": path.name, "type": name, "kind": "quantize", "n": int(x.size),
                      "layout": "F32 input then blocks"})
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum((OUT / str(f["file"])).stat().st_size for f in files)
    print(f"wrote {len(files)} fixtures ({total} bytes) to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
