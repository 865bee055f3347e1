"""Writes tests/fixtures/ggml_blocks/: random ggml blocks of every type the WASM kernels
read and their dequantisation by the `gguf` package (gguf.quants.dequantize), the
independent reference for the JS block decoder of tests/ggml_blocks.ts.

Per type NAME: NAME.bin (the raw blocks, 512 elements) and NAME.f32 (512 little-endian
float32). Block bytes are uniform random except the f16 scale fields, which get random
values in [-0.02, 0.02] (d) and [0, 0.02] (dmin, m) so no block decodes to Inf/NaN.

Usage: python3 python/ggml_block_fixtures.py [OUT_DIR]
"""
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

# type -> (block elements, block bytes, [(offset, kind)]) with kind "d" (signed) or "m" (>= 0)
LAYOUT = {
    "Q4_0": (32, 18, [(0, "d")]),
    "Q4_1": (32, 20, [(0, "d"), (2, "m")]),
    "Q5_0": (32, 22, [(0, "d")]),
    "Q5_1": (32, 24, [(0, "d"), (2, "m")]),
    "Q8_0": (32, 34, [(0, "d")]),
    "Q2_K": (256, 84, [(80, "d"), (82, "m")]),
    "Q3_K": (256, 110, [(108, "d")]),
    "Q4_K": (256, 144, [(0, "d"), (2, "m")]),
    "Q5_K": (256, 176, [(0, "d"), (2, "m")]),
    "Q6_K": (256, 210, [(208, "d")]),
}
N = 512


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/ggml_blocks"
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20240608)
    for name, (qk, nbytes, scales) in LAYOUT.items():
        nb = N // qk
        blocks = rng.integers(0, 256, size=(nb, nbytes), dtype=np.uint8)
        for off, kind in scales:
            lo = -0.02 if kind == "d" else 0.0
            v = rng.uniform(lo, 0.02, size=nb).astype(np.float16)
            blocks[:, off:off + 2] = v.view(np.uint8).reshape(nb, 2)
        raw = blocks.tobytes()
        ref = dequantize(np.frombuffer(raw, dtype=np.uint8), getattr(T, name))
        ref = np.asarray(ref, dtype="<f4").reshape(-1)
        assert ref.shape == (N,) and np.isfinite(ref).all(), name
        with open(os.path.join(out, f"{name}.bin"), "wb") as f:
            f.write(raw)
        with open(os.path.join(out, f"{name}.f32"), "wb") as f:
            f.write(ref.tobytes())
    for name in ("F16", "BF16"):
        vals = rng.standard_normal(N).astype(np.float32)
        if name == "F16":
            raw = vals.astype(np.float16).tobytes()
            ref = dequantize(np.frombuffer(raw, dtype=np.uint8), T.F16)
        else:
            bits = (vals.view(np.uint32) >> 16).astype(np.uint16)
            raw = bits.tobytes()
            ref = dequantize(np.frombuffer(raw, dtype=np.uint8), T.BF16)
        with open(os.path.join(out, f"{name}.bin"), "wb") as f:
            f.write(raw)
        with open(os.path.join(out, f"{name}.f32"), "wb") as f:
            f.write(np.asarray(ref, dtype="<f4").reshape(-1).tobytes())
    print(f"wrote {len(LAYOUT) + 2} types to {out}")


if __name__ == "__main__":
    main()
