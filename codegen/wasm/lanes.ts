/**
 * The lane order of a K-quant super-block: the order in which the repacked Q4_K and Q5_K row
 * pairs (`q4k_pairs.ts`) store their quants, Q6_K (`q6k_pack.ts`) its packed quants, and the
 * `q8_K` activations keep a second copy of theirs (`blocks.ts` `ActLayout.laneOffset`).
 *
 * A 32-bit relaxed dot product (`i32x4.relaxed_dot_i8x16_i7x16_add_s`, x86 `vpdpbusd`) sums
 * bytes 4l .. 4l + 3 of its operands into lane l. In ggml's order a 16-byte vector is 16
 * consecutive elements, all of one sub-block, so every sub-block's four lanes had to be
 * summed across and scaled on their own (`k_block.ts` `pairedDots`: a narrowing, a 16-bit dot
 * product by the splat scales and an add per two sub-blocks, plus the shuffles that splat the
 * scales). In the lane order, vector v of a super-block holds in lane l four elements of
 * sub-block l of its group of four: the dot products of a group's vectors add into one i32x4
 * with one sub-block per lane, and one `i32x4.mul` by the group's four scales ends it.
 *
 * Vector v (0..15), byte j (0..15) is element
 *
 * ```
 * e = 128 · (v >> 3) + 32 · (j >> 2) + 4 · (v & 7) + (j & 3)
 * ```
 *
 * so vectors 0..7 hold elements 0..127 and 8..15 elements 128..255, lane l (bytes 4l..4l+3)
 * the 32-element sub-block l of that half (Q4_K's sub-blocks), word `v & 7` of it. For the
 * 16-element sub-blocks of Q6_K, lane l of v is sub-block `8 (v >> 3) + 2l + (v >> 2 & 1)`:
 * vectors 0..3 carry sub-blocks 0, 2, 4, 6, vectors 4..7 sub-blocks 1, 3, 5, 7, and so on.
 * Within each half it is the 4 × 8 transpose of the 4-byte words. One order serves both
 * types, so an activation feeds Q4_K and Q6_K matrices from the same copy.
 *
 * Measured (one pinned core, same process, the g110M shapes, against the ggml order with
 * paired dot products): the Q4_K pair matvec 2048x768 1.14-1.16x, 768x2048 1.17x; Q5_K 2048x768
 * 1.11x; the packed Q6_K matvec 2048x768 1.12x, 32768x768 1.14-1.15x.
 *
 * @module
 */
import type { WasmFunc } from "../wasm_asm.ts";
import { lanes32, storeTransposed4 } from "./snippets.ts";

/**
 * The element of a super-block at byte j of vector v in the lane order (module doc).
 *
 * @param v The vector, 0..15.
 * @param j The byte, 0..15.
 * @returns The element, 0..255.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { laneElement } from "./lanes.ts";
 * assert.equal(laneElement(0, 4), 32); // lane 1 of vector 0: sub-block 1's first element
 * assert.equal(laneElement(9, 0), 132); // vector 9: the second half, word 1
 * ```
 */
export function laneElement(v: number, j: number): number {
  return 128 * (v >> 3) + 32 * (j >> 2) + 4 * (v & 7) + (j & 3);
}

/**
 * Where element e of a super-block is in the lane order: the inverse of
 * {@linkcode laneElement}.
 *
 * @param e The element, 0..255.
 * @returns `[v, j]`: vector 0..15 and byte 0..15.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lanePosition } from "./lanes.ts";
 * assert.deepEqual(lanePosition(132), [9, 0]);
 * ```
 */
export function lanePosition(e: number): [number, number] {
  return [8 * (e >> 7) + (e >> 2 & 7), 4 * (e >> 5 & 3) + (e & 3)];
}

/**
 * Emits the lane-order copy of one super-block of 256 int8 quants: the four 4 × 4 transposes
 * of 4-byte words (8 shuffles each). Vector v of the copy takes word `v & 7` of the vectors
 * `2l + (v >> 2 & 1)` (l = 0..3) of its half.
 *
 * @param f The function, with the v128 locals `t0` .. `t7` free.
 * @param src Pushes the i32 address of the quants in element order.
 * @param dst Pushes the i32 address of the copy (256 bytes, not overlapping `src`'s).
 */
export function emitLaneCopy(f: WasmFunc, src: () => void, dst: () => void): void {
  for (let h = 0; h < 2; h++) {
    for (let s = 0; s < 2; s++) {
      f.comment(
        `lane vectors ${8 * h + 4 * s} .. ${8 * h + 4 * s + 3}: words ${4 * s} .. ` +
          `${4 * s + 3} of the 4 sub-blocks of elements ${128 * h} .. ${128 * h + 127}`,
      );
      for (let l = 0; l < 4; l++) {
        src();
        f.mem("v128.load", 128 * h + 16 * (2 * l + s), { align: 0 }).set(`t${l}`);
      }
      const t = (i: number) => [0, 1, 2, 3].map((k) => `t${i + k}`);
      storeTransposed4(f, t(0), t(4), dst, (g) => 16 * (8 * h + 4 * s + g));
    }
  }
}

/**
 * Emits `acc += x · w` per 4-byte lane: lane l of the i32x4 gets `Σ_{b<4} x[4l+b] · w[4l+b]`,
 * x signed, w unsigned below 128 (or below 256 with `dotU8`). With relaxed SIMD one
 * `i32x4.relaxed_dot_i8x16_i7x16_add_s`; without, 16-bit products added in pairs, twice, and
 * the halves' pairs put together by two shuffles (the same integers).
 *
 * @param f The function (v128 locals `dq0`, `dq1` free when not relaxed).
 * @param x Pushes the activation vector.
 * @param w Pushes the weight vector.
 * @param acc The i32x4 local to add to (updated).
 * @param relaxed Use relaxed SIMD.
 */
export function laneDot(
  f: WasmFunc,
  x: () => void,
  w: () => void,
  acc: string,
  relaxed: boolean,
): void {
  if (relaxed) {
    x();
    w();
    f.get(acc).op("i32x4.relaxed_dot_i8x16_i7x16_add_s").set(acc);
    return;
  }
  for (const [half, dq] of [["low", "dq0"], ["high", "dq1"]]) {
    x();
    w();
    f.op(`i16x8.extmul_${half}_i8x16_s`).op("i32x4.extadd_pairwise_i16x8_s").set(dq);
  }
  f.get(acc);
  f.get("dq0").get("dq1").shuffle(lanes32([0, 2, 4, 6]));
  f.get("dq0").get("dq1").shuffle(lanes32([1, 3, 5, 7]));
  f.op("i32x4.add").op("i32x4.add").set(acc);
}
