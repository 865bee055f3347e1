/**
 * Q4_K and Q5_K super-blocks of row pairs repacked at load for the WASM kernels: the same
 * bytes per super-block of two interleaved rows (`interleave.ts`, groups of 2; 288 bytes for
 * Q4_K, 352 for Q5_K), their scale bytes rearranged so that the two rows' 16 six-bit scales
 * and mins unpack in 9 vector operations, where ggml's `get_scale_min_k4` layout took 10 per
 * row. Q5_K has the same `d`, `dmin` and `scales[12]` at the start of its 176-byte block, then
 * `qh[32]` and `qs[128]`; below, `U` is a row's block (144 or 176) and the offsets past 16 of
 * row 0 are Q4_K's (Q5_K: its `qh`, then `qs`, in the same place of each row).
 *
 * ggml's layout (`block_q4_K`, ggml-common.h): `d`, `dmin` (f16), `scales[12]`, `qs[128]`; the
 * 8 scales `sc_j` and 8 mins `m_j` are 6-bit, j < 4 in the low 6 bits of `scales[j]` and
 * `scales[j + 4]`, j ≥ 4 a nibble of `scales[j + 4]` and the top 2 bits of `scales[j - 4]` and
 * `scales[j]`. Interleaved, a group is row 0's block (144 bytes) then row 1's.
 *
 * Repacked, with `v = [sc_0..7, m_0..7]` of row 0 and `w` the same of row 1:
 *
 * ```
 * byte      0: d₀  2: dmin₀  4: d₁  6: dmin₁     (f16: the four scales are one 8-byte load)
 * byte      8: Q[8]   Q[k] = (w[2k] & 15) | (w[2k + 1] & 15) << 4
 * byte     16: qs₀[128]                          (row 0's quants, where they were)
 * byte      U: P[16]  P[j] = v[j] | (w[j] >> 4) << 6
 * byte U + 16: qs₁[128]                          (row 1's quants, where they were)
 * ```
 *
 * The quants are, besides, in the lane order of `lanes.ts`: byte `16u + j` of a row's `qs`
 * holds element `laneElement(u, j)` in its low nibble and `laneElement(8 + u, j)` in its high
 * one, and Q5_K's `qh` byte `16t + j` holds in bit `2p + h` the fifth bit of the element at
 * byte j of lane vector `8h + 2p + t` ({@linkcode q4kPairQuants} reads them back). The kernels
 * then sum sub-blocks 0..3 and 4..7 in the lanes of one i32x4 each (`types_k.ts`
 * `Q4K_LANES`): the Q4_K pair matvec 2048x768 1.14-1.16x, 768x2048 1.17x, Q5_K 2048x768 1.11x
 * (one pinned core, same process). Repacking moves words of 4 elements at a time: ~130 ms at
 * load for the 46 MB of Q4_K tensors of the g110M Q4_K_M file (scales included; ~70 ms
 * before the lane order).
 *
 * Unpacking (`types_k.ts` `Q4_K_PAIRS` and `Q5_K_PAIRS`, the Q4_K/Q5_K panel, the embedding
 * lookup): `v = P & 63`;
 * `w = ((x | x << 4) & 15) | (P >> 2 & 48)` with `x` = Q widened to 16-bit lanes
 * (`v128.load8x8_u`): lane k of `x | x << 4` holds `Q[k] & 15` in its low byte and `Q[k] >> 4`
 * in its high one. Each row's quants (and Q5_K's `qh`) keep their offset from the row's unit,
 * so the vectors are loaded and split into nibbles as before.
 *
 * Which matrices: the Q4_K and Q5_K ones only matrix products and the embedding lookup read,
 * which are interleaved in pairs (`emit_wasm.ts` `layoutWasm`). A kernel reads both rows of a pair
 * at once, so its row ranges start and end on even rows (`linear.ts` `LinearSpec.interleave`).
 * Measured, one core, same process, g110M 2048x768 matvec: Q4_K 1.06-1.12x; Q5_K, against its
 * row-major matvec (it was not interleaved before), 1.08-1.16x.
 *
 * @module
 */
import { laneElement, lanePosition } from "./lanes.ts";

/**
 * The types whose row pairs are repacked, by the bytes of one row's super-block (the `unit`
 * of their interleave): Q4_K and Q5_K share the `get_scale_min_k4` scales (Q5_K's `qh[32]`
 * sits between its scales and its quants).
 */
export const PAIR_UNITS: Readonly<Record<"Q4_K" | "Q5_K", number>> = { Q4_K: 144, Q5_K: 176 };

/**
 * The bytes of one row's super-block if the type's row pairs are repacked (Q4_K, Q5_K), else
 * undefined: the one test of "a pair type" the layout, the kernels and the load share.
 *
 * @param type A weight type name.
 * @returns {@linkcode PAIR_UNITS}' entry, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pairUnit } from "./q4k_pairs.ts";
 * assert.equal(pairUnit("Q5_K"), 176);
 * assert.equal(pairUnit("Q6_K"), undefined);
 * ```
 */
export function pairUnit(type: string): number | undefined {
  return type === "Q4_K" || type === "Q5_K" ? PAIR_UNITS[type] : undefined;
}

/** `get_scale_min_k4` (ggml-quants.c): the 6-bit (scale, min) j of the 12 bytes at `s`. */
function scaleMin(x: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [x[s + j] & 63, x[s + j + 4] & 63];
  return [
    (x[s + j + 4] & 15) | (x[s + j - 4] >> 6) << 4,
    (x[s + j + 4] >> 4) | (x[s + j] >> 6) << 4,
  ];
}

/**
 * Repacks interleaved Q4_K (or Q5_K) row pairs in place (module doc).
 *
 * @param bytes The memory (or a tensor's bytes).
 * @param offset Byte offset of the first pair's first super-block.
 * @param groups Super-blocks of row pairs (`2 · unit` bytes each), contiguous.
 * @param unit Bytes of one row's super-block ({@linkcode PAIR_UNITS}; default Q4_K's 144).
 * @throws {RangeError} when the groups do not fit in `bytes`, naming the sizes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packQ4KPairsInPlace, q4kPairScales } from "./q4k_pairs.ts";
 * const pair = new Uint8Array(288).map((_, i) => (i * 37) & 255);
 * const before = [q4kPairScales(pair, 0, 0, false), q4kPairScales(pair, 0, 1, false)];
 * packQ4KPairsInPlace(pair, 0, 1);
 * assert.deepEqual([q4kPairScales(pair, 0, 0, true), q4kPairScales(pair, 0, 1, true)], before);
 * ```
 */
export function packQ4KPairsInPlace(
  bytes: Uint8Array,
  offset: number,
  groups: number,
  unit = PAIR_UNITS.Q4_K,
): void {
  if (
    !Number.isInteger(offset) || !Number.isInteger(groups) || offset < 0 || groups < 0 ||
    offset + groups * 2 * unit > bytes.length
  ) {
    throw new RangeError(
      `packQ4KPairsInPlace: ${groups} groups of ${2 * unit} bytes at ${offset} do not ` +
        `fit ${bytes.length} bytes`,
    );
  }
  const v = new Uint8Array(16), w = new Uint8Array(16);
  const src = new Uint32Array(32), out = new Uint32Array(32); // a row's qs (or qh) as words
  const srcBytes = new Uint8Array(src.buffer), outBytes = new Uint8Array(out.buffer);
  for (let g = 0; g < groups; g++) {
    const at = offset + g * 2 * unit;
    for (let j = 0; j < 8; j++) {
      [v[j], v[8 + j]] = scaleMin(bytes, at + 4, j);
      [w[j], w[8 + j]] = scaleMin(bytes, at + unit + 4, j);
    }
    bytes.copyWithin(at + 4, at + unit, at + unit + 4); // d₁, dmin₁
    for (let k = 0; k < 8; k++) bytes[at + 8 + k] = (w[2 * k] & 15) | (w[2 * k + 1] & 15) << 4;
    for (let j = 0; j < 16; j++) bytes[at + unit + j] = v[j] | (w[j] >> 4) << 6;
    for (let row = 0; row < 2; row++) {
      // Words of 4 lane-order elements are 4 consecutive elements, in 4 consecutive bytes of
      // ggml's qs (and qh): each moves as one 32-bit word, masked and shifted.
      const b = at + unit * row, qs = b + unit - 128;
      srcBytes.set(bytes.subarray(qs, qs + 128));
      for (let n = 0; n < 32; n++) {
        const lo = QS_WORDS[2 * n], hi = QS_WORDS[2 * n + 1];
        out[n] = (src[lo >> 3] >>> (lo & 7) & 0x0f0f0f0f) |
          (src[hi >> 3] >>> (hi & 7) & 0x0f0f0f0f) << 4;
      }
      bytes.set(outBytes, qs);
      if (unit !== PAIR_UNITS.Q5_K) continue;
      srcBytes.set(bytes.subarray(b + 16, b + 48));
      for (let n = 0; n < 8; n++) {
        let word = 0;
        for (let bit = 0; bit < 8; bit++) {
          const e = QH_WORDS[8 * n + bit];
          word |= (src[e >> 3] >>> (e & 7) & 0x01010101) << bit;
        }
        out[n] = word;
      }
      bytes.set(outBytes.subarray(0, 32), b + 16);
    }
  }
}

/**
 * Word n (bytes 4n .. 4n + 3) of a lane-order `qs`: entries 2n and 2n + 1 are where its low
 * and high nibbles come from in ggml's `qs`, as `8 · word + shift` (element e is the nibble
 * `e >> 5 & 1` of byte `32 (e >> 6) + (e & 31)`; the 4 elements of a word are consecutive).
 */
const QS_WORDS = Uint8Array.from({ length: 64 }, (_, k) => {
  const n = k >> 1, e = laneElement(n >> 2, 4 * (n & 3)) + 128 * (k & 1);
  return 8 * ((32 * (e >> 6) + (e & 31)) >> 2) + 4 * (e >> 5 & 1);
});

/**
 * Bit `2p + h` of word n of a lane-order Q5_K `qh`: the fifth bits of the 4 elements at bytes
 * `4 (n & 3)` .. + 3 of lane vector `8h + 2p + (n >> 2)` (the vector the kernels decode from
 * part p's qs; `n >> 2`: its first or second 16 bytes), as `8 · word + bit` of ggml's `qh`
 * (element e: bit `e >> 5` of byte `e & 31`).
 */
const QH_WORDS = Uint8Array.from({ length: 64 }, (_, k) => {
  const n = k >> 3, bit = k & 7;
  const e = laneElement(8 * (bit & 1) + 2 * (bit >> 1) + (n >> 2), 4 * (n & 3));
  return 8 * ((e & 31) >> 2) + (e >> 5);
});

/** Element of the low nibble of byte n of a lane-order `qs` (the high one: + 128). */
const LANE_LOW = Uint8Array.from({ length: 128 }, (_, n) => laneElement(n >> 4, n & 15));

/**
 * The 256 quants of one row's super-block in element order (Q4_K 0..15, Q5_K 0..31 with its
 * `qh` bit), as ggml stores them (element `64k + 32h + l`: the nibble h of `qs[32k + l]`, Q5_K's
 * fifth bit `qh[l] >> 2k + h`) or in the lane order (module doc).
 */
function pairQuants(
  bytes: Uint8Array,
  b: number,
  unit: number,
  lanes: boolean,
  q: Uint8Array,
): Uint8Array {
  const qs = b + unit - 128;
  for (let n = 0; n < 128; n++) {
    const lo = lanes ? LANE_LOW[n] : 64 * (n >> 5) + (n & 31), hi = lanes ? lo + 128 : lo + 32;
    q[lo] = bytes[qs + n] & 15;
    q[hi] = bytes[qs + n] >> 4;
  }
  if (unit !== PAIR_UNITS.Q5_K) return q;
  for (let e = 0; e < 256; e++) {
    const [v, j] = lanePosition(e);
    const fifth = lanes
      ? bytes[b + 16 + 16 * (v & 1) + j] >> 2 * (v >> 1 & 3) + (v >> 3)
      : bytes[b + 16 + (e & 31)] >> (e >> 5);
    q[e] |= (fifth & 1) << 4;
  }
  return q;
}

/**
 * The 256 quants of one row of a Q4_K (0..15) or Q5_K (0..31, with its fifth bit) row pair,
 * in element order: read from the repacked layout (the lane order) or from the ggml block.
 *
 * @param bytes Bytes holding the pair.
 * @param at Byte offset of the pair's super-block (row 0's block).
 * @param row 0 or 1.
 * @param packed Whether the pair is repacked ({@linkcode packQ4KPairsInPlace}).
 * @param unit Bytes of one row's super-block ({@linkcode PAIR_UNITS}; default Q4_K's 144).
 * @returns `(256)` quants.
 */
export function q4kPairQuants(
  bytes: Uint8Array,
  at: number,
  row: number,
  packed: boolean,
  unit = PAIR_UNITS.Q4_K,
): Uint8Array {
  return pairQuants(bytes, at + unit * row, unit, packed, new Uint8Array(256));
}

/**
 * The scales and mins of one row of a Q4_K (or Q5_K) row pair, as ggml's `get_scale_min_k4`
 * gives them: read from the repacked layout (the module doc's unpacking, written separately
 * from the packer) or from the two ggml blocks.
 *
 * @param bytes Bytes holding the pair.
 * @param at Byte offset of the pair's super-block (row 0's block).
 * @param row 0 or 1.
 * @param packed Whether the pair is repacked ({@linkcode packQ4KPairsInPlace}).
 * @param unit Bytes of one row's super-block ({@linkcode PAIR_UNITS}; default Q4_K's 144).
 * @returns `(16)` values: sc_0..7, then m_0..7.
 */
export function q4kPairScales(
  bytes: Uint8Array,
  at: number,
  row: number,
  packed: boolean,
  unit = PAIR_UNITS.Q4_K,
): number[] {
  const out: number[] = [];
  for (let j = 0; j < 16; j++) {
    if (!packed) {
      out.push(scaleMin(bytes, at + unit * row + 4, j & 7)[j >> 3]);
    } else if (row === 0) out.push(bytes[at + unit + j] & 63);
    else {
      const q = bytes[at + 8 + (j >> 1)];
      out.push(((j & 1 ? q >> 4 : q) & 15) | (bytes[at + unit + j] >> 6) << 4);
    }
  }
  return out;
}

/**
 * Byte offset of row `row`'s f16 d (dmin: + 2) in a super-block of a row pair: in its own
 * block as ggml stores it, or (repacked) at 0 and 4 of the pair.
 *
 * @param row 0 or 1.
 * @param packed Whether the pair is repacked.
 * @param unit Bytes of one row's super-block ({@linkcode PAIR_UNITS}; default Q4_K's 144).
 * @returns The offset from the pair's super-block.
 */
export const q4kPairD = (row: number, packed: boolean, unit = PAIR_UNITS.Q4_K): number =>
  (packed ? 4 : unit) * row;
