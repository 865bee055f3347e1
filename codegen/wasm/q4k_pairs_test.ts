/**
 * Q4_K row pairs repacked at load (codegen/wasm/q4k_pairs.ts): the repacking keeps every
 * scale, min, d, dmin and quant (read back both ways, the stored reading checked against the
 * project's ggml dequantiser), and the kernels that read interleaved Q4_K matrices (matvec,
 * in-register matmul, panel matmul, embedding lookup) give on repacked bytes the same bits as
 * on the interleaved ggml blocks, themselves checked in interleave_test.ts and linear_test.ts.
 * Negative control: a repacked kernel on bytes left as ggml stores them differs.
 */
import assert from "node:assert/strict";
import { randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { assertPackedKernels, assertPackedLookup } from "../../tests/wasm_linear_run.ts";
import { dequantizeRowQ4_K } from "../../formats/quant/kquants.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../wasm_features.ts";
import { embedKernel } from "./embed.ts";
import { interleaveRowsInPlace } from "./interleave.ts";
import { emitLinear } from "./linear.ts";
import { packQ4KPairsInPlace, Q4K_PAIR_BYTES, q4kPairD, q4kPairScales } from "./q4k_pairs.ts";

Deno.test("packQ4KPairsInPlace() keeps every scale, min, d and quant of each row pair", () => {
  const groups = 6;
  const raw = randomBlocks("Q4_K", 4, 768, rng(5)); // 2 pairs of rows × 3 super-blocks
  assert.equal(raw.length, groups * Q4K_PAIR_BYTES);
  interleaveRowsInPlace(raw, 0, 4, 3 * 144, 144, 2);
  const packed = raw.slice();
  packQ4KPairsInPlace(packed, 0, groups);
  for (let g = 0; g < groups; g++) {
    const at = g * Q4K_PAIR_BYTES;
    for (const row of [0, 1]) {
      const want = q4kPairScales(raw, at, row, false), got = q4kPairScales(packed, at, row, true);
      assert.deepEqual(got, want, `group ${g} row ${row}`);
      const d = (b: Uint8Array, p: boolean) =>
        b.subarray(at + q4kPairD(row, p), at + q4kPairD(row, p) + 4);
      assert.deepEqual(d(packed, true), d(raw, false), `group ${g} row ${row}: d, dmin`);
      const qs = at + 16 + 144 * row;
      assert.deepEqual(packed.subarray(qs, qs + 128), raw.subarray(qs, qs + 128));
    }
  }
  assert.notDeepEqual(packed, raw);
  // The stored reading against the project's ggml dequantiser (formats/quant/, checked against
  // gguf-py): every quant 1 and d = 1, dmin = 0 give sc_j per element; d = 0, dmin = 1 give -m_j.
  const block = raw.slice(0, 144);
  block.fill(0x11, 16, 144);
  const y = new Float32Array(256);
  for (const [d, dmin, sign, half] of [[0x3c00, 0, 1, 0], [0, 0x3c00, -1, 1]]) {
    block.set([d & 255, d >> 8, dmin & 255, dmin >> 8], 0);
    dequantizeRowQ4_K(block, y);
    const want = q4kPairScales(block, 0, 0, false).slice(8 * half, 8 * half + 8);
    assert.deepEqual([...y].filter((_, e) => e % 32 === 0).map((v) => sign * v), want);
  }
  assert.throws(() => packQ4KPairsInPlace(new Uint8Array(500), 0, 2), /2 groups of 288 bytes/);
});

const relaxed = relaxedSimdSupported(), fp16 = fp16SimdSupported();
const dotU8 = relaxed && relaxedDotU8();

Deno.test("Q4_K kernels on repacked row pairs give the interleaved ggml blocks' bits", () => {
  const base = { type: "Q4_K", M: 24, K: 512, relaxed, fp16, dotU8, interleave: 2 } as const;
  assertPackedKernels(base, [6, 16], (u8, at, rb, pack) => {
    interleaveRowsInPlace(u8, at, base.M, rb, 144, 2);
    if (pack) packQ4KPairsInPlace(u8, at, (base.M * base.K) / 512);
  });
  const one = { type: "Q4_K", M: 8, K: 256, kind: "matvec", packed: true } as const;
  assert.throws(() => emitLinear(one), /packed Q4_K with interleave 1/);
  assert.throws(() => emitLinear({ ...one, interleave: 2, rows: 1 }), /1 rows per register block/);
});

Deno.test("the Q4_K embedding lookup of a repacked table gives the interleaved table's rows", () => {
  const D = 512, V = 6;
  const name = assertPackedLookup("Q4_K", D, V, 2, [0, 1, 4, V - 1], (u8, at, pack) => {
    interleaveRowsInPlace(u8, at, V, 2 * 144, 144, 2);
    if (pack) packQ4KPairsInPlace(u8, at, (V * D) / 512);
  });
  assert.equal(name, "embed_q4_k_512_i2_p");
  assert.throws(() => embedKernel("Q4_K", 256, 0, 1, 0, true), /packed Q4_K with interleave 1/);
});
