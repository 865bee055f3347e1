/**
 * Q4_K and Q5_K row pairs repacked at load (codegen/wasm/q4k_pairs.ts): the repacking keeps
 * every scale, min, d, dmin and quant (read back both ways, the stored reading checked against
 * the project's ggml dequantisers), and the kernels that read interleaved pairs (matvec,
 * in-register matmul, panel matmul, embedding lookup) give on repacked bytes the same bits as
 * on the interleaved ggml blocks, themselves checked in interleave_test.ts and linear_test.ts.
 * Negative control: a repacked kernel on bytes left as ggml stores them differs.
 */
import assert from "node:assert/strict";
import { randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { assertPackedKernels, assertPackedLookup } from "../../tests/wasm_linear_run.ts";
import { dequantizeRowQ4_K, dequantizeRowQ5_K } from "../../formats/quant/kquants.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../wasm_features.ts";
import { embedKernel } from "./embed.ts";
import { interleaveRowsInPlace } from "./interleave.ts";
import { emitLinear } from "./linear.ts";
import {
  packQ4KPairsInPlace,
  PAIR_UNITS,
  q4kPairD,
  q4kPairQuants,
  q4kPairScales,
} from "./q4k_pairs.ts";

const relaxed = relaxedSimdSupported(), fp16 = fp16SimdSupported();
const dotU8 = relaxed && relaxedDotU8();

for (const type of ["Q4_K", "Q5_K"] as const) {
  const U = PAIR_UNITS[type]; // bytes of one row's super-block

  Deno.test(`packQ4KPairsInPlace() keeps every scale, min, d and quant of each ${type} row pair`, () => {
    const groups = 6;
    const raw = randomBlocks(type, 4, 768, rng(5)); // 2 pairs of rows × 3 super-blocks
    assert.equal(raw.length, groups * 2 * U);
    interleaveRowsInPlace(raw, 0, 4, 3 * U, U, 2);
    const packed = raw.slice();
    packQ4KPairsInPlace(packed, 0, groups, U);
    for (let g = 0; g < groups; g++) {
      const at = g * 2 * U;
      for (const row of [0, 1]) {
        const want = q4kPairScales(raw, at, row, false, U);
        assert.deepEqual(q4kPairScales(packed, at, row, true, U), want, `group ${g} row ${row}`);
        const d = (b: Uint8Array, p: boolean) =>
          b.subarray(at + q4kPairD(row, p, U), at + q4kPairD(row, p, U) + 4);
        assert.deepEqual(d(packed, true), d(raw, false), `group ${g} row ${row}: d, dmin`);
        const rest = at + U * row + 16; // qs (Q5_K: qh, then qs)
        // The quants (and Q5_K's qh bits) in the lane order.
        const quants = q4kPairQuants(raw, at, row, false, U);
        assert.deepEqual(q4kPairQuants(packed, at, row, true, U), quants, `group ${g} row ${row}`);
        assert.notDeepEqual(
          packed.subarray(rest, rest + U - 16),
          raw.subarray(rest, rest + U - 16),
        );
      }
    }
    assert.notDeepEqual(packed, raw);
    // The stored reading against the project's ggml dequantisers (formats/quant/, checked
    // against gguf-py): every quant 1 (Q5_K: no fifth bit) and d = 1, dmin = 0 give sc_j per
    // element; d = 0, dmin = 1 give -m_j.
    const block = raw.slice(0, U);
    block.fill(0, 16, U - 128);
    block.fill(0x11, U - 128, U);
    const y = new Float32Array(256);
    for (const [d, dmin, sign, half] of [[0x3c00, 0, 1, 0], [0, 0x3c00, -1, 1]]) {
      block.set([d & 255, d >> 8, dmin & 255, dmin >> 8], 0);
      (type === "Q4_K" ? dequantizeRowQ4_K : dequantizeRowQ5_K)(block, y);
      const want = q4kPairScales(block, 0, 0, false, U).slice(8 * half, 8 * half + 8);
      assert.deepEqual([...y].filter((_, e) => e % 32 === 0).map((v) => sign * v), want);
    }
    const re = new RegExp(`2 groups of ${2 * U} bytes`);
    assert.throws(() => packQ4KPairsInPlace(new Uint8Array(3 * U), 0, 2, U), re);
  });

  Deno.test(`${type} kernels on repacked row pairs give the interleaved ggml blocks' outputs`, () => {
    // This runtime's features, then without the u8 dot product, then without relaxed SIMD.
    const features = [[relaxed, dotU8], [relaxed, false], [false, false]] as const;
    for (const [relaxed, dotU8] of features) {
      const base = { type, M: 24, K: 512, relaxed, fp16, dotU8, interleave: 2 } as const;
      assertPackedKernels(base, [6, 16], (u8, at, rb, pack) => {
        interleaveRowsInPlace(u8, at, base.M, rb, U, 2);
        if (pack) packQ4KPairsInPlace(u8, at, (base.M * base.K) / 512, U);
      }, true); // the quants are in the lane order (lanes.ts)
    }
    const one = { type, M: 8, K: 256, kind: "matvec", packed: true } as const;
    assert.throws(() => emitLinear(one), new RegExp(`packed ${type} with interleave 1`));
    assert.throws(() => emitLinear({ ...one, interleave: 2, rows: 1 }), /1 rows per register/);
  });

  Deno.test(`the ${type} embedding lookup of a repacked table gives the interleaved rows`, () => {
    const D = 512, V = 6;
    const name = assertPackedLookup(type, D, V, 2, [0, 1, 4, V - 1], (u8, at, pack) => {
      interleaveRowsInPlace(u8, at, V, 2 * U, U, 2);
      if (pack) packQ4KPairsInPlace(u8, at, (V * D) / 512, U);
    });
    assert.equal(name, `embed_${type.toLowerCase()}_512_i2_p`);
    assert.throws(() => embedKernel(type, 256, 0, 1, 0, true), /with interleave 1/);
  });
}
