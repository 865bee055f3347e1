/**
 * Packed Q6_K (codegen/wasm/q6k_pack.ts): the packing keeps every quant (read back both
 * ways), and the kernels that read Q6_K matrices (matvec, in-register matmul, panel matmul)
 * give on packed bytes the same bits as on ggml's layout, themselves checked against float64
 * in linear_test.ts. Negative control: a packed kernel on bytes left as stored differs.
 */
import assert from "node:assert/strict";
import { randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { assertPackedKernels, assertPackedLookup } from "../../tests/wasm_linear_run.ts";
import { dequantizeRowQ6_K } from "../../formats/quant/kquants.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../wasm_features.ts";
import { interleaveRowsInPlace } from "./interleave.ts";
import { emitLinear } from "./linear.ts";
import { packQ6KInPlace, Q6K_BLOCK_BYTES, q6kQuants } from "./q6k_pack.ts";

Deno.test("packQ6KInPlace() keeps every quant, scale and d of each super-block", () => {
  const blocks = 12;
  const raw = randomBlocks("Q6_K", 3, 1024, rng(3)); // 3 rows of 4 super-blocks
  assert.equal(raw.length, blocks * Q6K_BLOCK_BYTES);
  const packed = raw.slice();
  packQ6KInPlace(packed, 0, blocks);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q6K_BLOCK_BYTES;
    assert.deepEqual(q6kQuants(packed, at, true), q6kQuants(raw, at, false), `block ${b}`);
    assert.deepEqual(packed.subarray(at + 192, at + 210), raw.subarray(at + 192, at + 210));
  }
  assert.notDeepEqual(packed, raw);
  // The stored layout's reading against the project's ggml dequantiser (formats/quant/,
  // checked against gguf-py): with d = 1 and every scale 1, element e is q(e) - 32.
  const unit = raw.slice(0, Q6K_BLOCK_BYTES);
  unit.fill(1, 192, 208);
  unit.set([0x00, 0x3c], 208); // f16 1.0
  const y = new Float32Array(256);
  dequantizeRowQ6_K(unit, y);
  assert.deepEqual([...q6kQuants(unit, 0, false)], [...y].map((v) => v + 32));
  // ggml's element order (dequantize_row_q6_K): element 32 + 5 is ql[37]'s low nibble with
  // qh[5] bits 2..3; element 64 + 5 is ql[5]'s high nibble with qh[5] bits 4..5.
  const b = new Uint8Array(Q6K_BLOCK_BYTES);
  b[37] = 0x0a;
  b[5] = 0x70;
  b[128 + 5] = 0b00_10_01_00;
  const q = q6kQuants(b, 0, false);
  assert.equal(q[37], 0x0a | 1 << 4);
  assert.equal(q[69], 0x07 | 2 << 4);
  assert.throws(() => packQ6KInPlace(new Uint8Array(400), 0, 2), /2 blocks of 210 bytes/);
});

const relaxed = relaxedSimdSupported(), fp16 = fp16SimdSupported();
const dotU8 = relaxed && relaxedDotU8();

Deno.test("Q6_K kernels on packed super-blocks give the stored layout's outputs", () => {
  // This runtime's features, then without the u8 dot product, then without relaxed SIMD.
  const features = [[relaxed, dotU8], [relaxed, false], [false, false]] as const;
  for (const [relaxed, dotU8] of features) {
    for (const interleave of [1, 2]) { // row-major, and in pairs as the engine lays them out
      const base = { type: "Q6_K", M: 24, K: 512, relaxed, fp16, dotU8, interleave } as const;
      assertPackedKernels(base, [6, 16], (u8, at, rb, pack) => {
        interleaveRowsInPlace(u8, at, base.M, rb, Q6K_BLOCK_BYTES, interleave);
        if (pack) packQ6KInPlace(u8, at, (base.M * base.K) / 256);
      }, true);
    }
  }
  assert.throws(
    () => emitLinear({ type: "Q4_K", M: 8, K: 256, kind: "matvec", packed: true }),
    /packed Q4_K with interleave 1/,
  );
});

Deno.test("the Q6_K embedding lookup of a packed table gives the stored table's rows", () => {
  const D = 512, V = 6;
  for (const I of [1, 2]) {
    const name = assertPackedLookup("Q6_K", D, V, I, [0, 3, V - 1], (u8, at, pack) => {
      interleaveRowsInPlace(u8, at, V, 2 * Q6K_BLOCK_BYTES, Q6K_BLOCK_BYTES, I);
      if (pack) packQ6KInPlace(u8, at, (V * D) / 256);
    });
    assert.equal(name, I > 1 ? "embed_q6_k_512_i2_p" : "embed_q6_k_512_p");
  }
});
