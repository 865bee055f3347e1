/**
 * Q4_K super-blocks of row pairs repacked at load for the WASM kernels: the same 288 bytes per
 * super-block of two interleaved rows (`interleave.ts`, Q4_K in groups of 2), their scale
 * bytes rearranged so that the two rows' 16 six-bit scales and mins unpack in 9 vector
 * operations, where ggml's `get_scale_min_k4` layout took 10 per row.
 *
 * ggml's layout (`block_q4_K`, ggml-common.h): `d`, `dmin` (f16), `scales[12]`, `qs[128]`; the
 * 8 scales `sc_j` and 8 mins `m_j` are 6-bit, j < 4 in the low 6 bits of `scales[j]` and
 * `scales[j + 4]`, j ≥ 4 a nibble of `scales[j + 4]` and the top 2 bits of `scales[j - 4]` and
 * `scales[j]`. Interleaved, a group is row 0's block (144 bytes) then row 1's.
 *
 * Repacked, with `v = [sc_0..7, m_0..7]` of row 0 and `w` the same of row 1:
 *
 * ```
 * byte   0: d₀  2: dmin₀  4: d₁  6: dmin₁        (f16: the four scales are one 8-byte load)
 * byte   8: Q[8]   Q[k] = (w[2k] & 15) | (w[2k + 1] & 15) << 4
 * byte  16: qs₀[128]                             (row 0's quants, where they were)
 * byte 144: P[16]  P[j] = v[j] | (w[j] >> 4) << 6
 * byte 160: qs₁[128]                             (row 1's quants, where they were)
 * ```
 *
 * Unpacking (`types_k.ts` `Q4_K_PAIRS`, the Q4_K panel, the embedding lookup): `v = P & 63`;
 * `w = ((x | x << 4) & 15) | (P >> 2 & 48)` with `x` = Q widened to 16-bit lanes
 * (`v128.load8x8_u`): lane k of `x | x << 4` holds `Q[k] & 15` in its low byte and `Q[k] >> 4`
 * in its high one. Each row's quants keep their offset from the row's unit (16), so the code
 * that decodes quants does not change; only the scales and the row-1 `d` move.
 *
 * Which matrices: the Q4_K ones only matrix products and the embedding lookup read, which
 * are interleaved in pairs (`emit_wasm.ts` `layoutWasm`). A kernel reads both rows of a pair
 * at once, so its row ranges start and end on even rows (`linear.ts` `LinearSpec.interleave`).
 * Measured, one core, same process, g110M 2048x768 matvec: 1.06-1.12x.
 *
 * @module
 */

/** Bytes of one super-block of a row pair: two Q4_K blocks. */
export const Q4K_PAIR_BYTES = 288;

/** `get_scale_min_k4` (ggml-quants.c): the 6-bit (scale, min) j of the 12 bytes at `s`. */
function scaleMin(x: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [x[s + j] & 63, x[s + j + 4] & 63];
  return [
    (x[s + j + 4] & 15) | (x[s + j - 4] >> 6) << 4,
    (x[s + j + 4] >> 4) | (x[s + j] >> 6) << 4,
  ];
}

/**
 * Repacks interleaved Q4_K row pairs in place (module doc).
 *
 * @param bytes The memory (or a tensor's bytes).
 * @param offset Byte offset of the first pair's first super-block.
 * @param groups Super-blocks of row pairs ({@linkcode Q4K_PAIR_BYTES} bytes each), contiguous.
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
export function packQ4KPairsInPlace(bytes: Uint8Array, offset: number, groups: number): void {
  if (
    !Number.isInteger(offset) || !Number.isInteger(groups) || offset < 0 || groups < 0 ||
    offset + groups * Q4K_PAIR_BYTES > bytes.length
  ) {
    throw new RangeError(
      `packQ4KPairsInPlace: ${groups} groups of ${Q4K_PAIR_BYTES} bytes at ${offset} do not ` +
        `fit ${bytes.length} bytes`,
    );
  }
  const v = new Uint8Array(16), w = new Uint8Array(16);
  for (let g = 0; g < groups; g++) {
    const at = offset + g * Q4K_PAIR_BYTES;
    for (let j = 0; j < 8; j++) {
      [v[j], v[8 + j]] = scaleMin(bytes, at + 4, j);
      [w[j], w[8 + j]] = scaleMin(bytes, at + 148, j);
    }
    bytes.copyWithin(at + 4, at + 144, at + 148); // d₁, dmin₁
    for (let k = 0; k < 8; k++) bytes[at + 8 + k] = (w[2 * k] & 15) | (w[2 * k + 1] & 15) << 4;
    for (let j = 0; j < 16; j++) bytes[at + 144 + j] = v[j] | (w[j] >> 4) << 6;
  }
}

/**
 * The scales and mins of one row of a Q4_K row pair, as ggml's `get_scale_min_k4` gives
 * them: read from the repacked layout (the module doc's unpacking, written separately from
 * the packer) or from the two ggml blocks.
 *
 * @param bytes Bytes holding the pair.
 * @param at Byte offset of the pair's super-block (row 0's block).
 * @param row 0 or 1.
 * @param packed Whether the pair is repacked ({@linkcode packQ4KPairsInPlace}).
 * @returns `(16)` values: sc_0..7, then m_0..7.
 */
export function q4kPairScales(
  bytes: Uint8Array,
  at: number,
  row: number,
  packed: boolean,
): number[] {
  const out: number[] = [];
  for (let j = 0; j < 16; j++) {
    if (!packed) {
      out.push(scaleMin(bytes, at + 144 * row + 4, j & 7)[j >> 3]);
    } else if (row === 0) out.push(bytes[at + 144 + j] & 63);
    else {
      const q = bytes[at + 8 + (j >> 1)];
      out.push(((j & 1 ? q >> 4 : q) & 15) | (bytes[at + 144 + j] >> 6) << 4);
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
 * @returns The offset from the pair's super-block.
 */
export const q4kPairD = (row: number, packed: boolean): number => (packed ? 4 : 144) * row;
