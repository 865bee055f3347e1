/**
 * Q6_K super-blocks packed at load for the WASM kernels: the same 210 bytes, the 6-bit quants
 * rearranged so that decoding them costs fewer instructions (the Q6_K matvecs are bound by
 * instruction count, not by memory), and in the lane order of `lanes.ts`, so that the
 * kernels sum 4 sub-blocks per i32x4 and scale them by one multiply.
 *
 * ggml's layout (`block_q6_K`, ggml-common.h; `dequantize_row_q6_K`): `ql[128]` holds the low
 * 4 bits of each quant, `qh[64]` the high 2, `scales[16]`, then the f16 `d`; element
 * `128g + 32s + l` (half g, chunk s, l < 32) is `ql[64g + 32(s & 1) + l]`'s low (s < 2) or
 * high nibble `| ((qh[32g + l] >> 2s) & 3) << 4`, an unsigned 0..63 (the value is q - 32).
 * Decoding four vectors of 16 takes two loads, two nibble masks, a shift, four moves of the
 * qh bits and four ors: ~17 operations per 64 quants.
 *
 * Packed: the 192 bytes of `ql` and `qh` become 4 parts of 48 bytes. Part p holds four
 * vectors of 16 quants, vector i being the lane vector `4i + p` ({@linkcode q6kLaneVector};
 * its byte j is element `laneElement(4i + p, j)`), as three:
 * `A = w0 | (w3 & 3) << 6`, `B = w1 | (w3 >> 2 & 3) << 6`, `C = w2 | (w3 >> 4) << 6`. Decoding
 * is then three loads, three masks for w0..w2 and three shifts, masks and two ors for w3: ~11
 * operations. Vector i of every part carries the sub-blocks `8 (i >> 1) + 2l + (i & 1)` in its
 * lanes l, so a kernel keeps one i32x4 sum per i. Scales and `d` keep their offsets (192,
 * 208). Measured, one core, same process: the packing alone, the Q6_K matvec 32768x768
 * +9-10%, 768x2048 +12%; the lane order on top, 32768x768 1.14x, 2048x768 1.12x. Packing at
 * load moves words of 4 elements at a time: ~45 ms for the 31.5 MB of Q6_K tensors of the
 * g110M Q4_K_M file.
 *
 * @module
 */

import type { WasmFunc } from "../wasm_asm.ts";
import { laneElement } from "./lanes.ts";

/** Bytes of one Q6_K super-block. */
export const Q6K_BLOCK_BYTES = 210;

/**
 * Element offset of vector i (0..3) of part p (0..3) of a super-block in ggml's order: the
 * 16 elements the unpacked Q6_K kernels decode together (`types_k.ts`, chunks s and s + 2
 * of a half share their `ql` and `qh` bytes).
 */
export const q6kPartOffset = (p: number, i: number): number =>
  32 * (4 * (p >> 1) + (p & 1) + 2 * (i >> 1)) + 16 * (i & 1);

/** The lane vector (`lanes.ts`) of vector i (0..3) of part p (0..3) of a packed super-block. */
export const q6kLaneVector = (p: number, i: number): number => 4 * i + p;

/**
 * Where the packed order's 4-element words come from: entry `16p + 4i + w` is word w of vector
 * i of part p, the elements `laneElement(4i + p, 4w)` .. + 3, which are 4 consecutive
 * elements and so 4 consecutive bytes of ggml's `ql` and of its `qh`. Its `ql` word
 * (`ql` bytes `64g + 32 (s & 1) + l` for element `128g + 32s + l`) and nibble shift
 * `4 (s >> 1)`, then its `qh` word (bytes `128 + 32g + l`) and shift `2s`, each as
 * `8 · word + shift` of the block's first 192 bytes.
 */
const PACKED_WORDS = Uint16Array.from({ length: 128 }, (_, k) => {
  const n = k >> 1, p = n >> 4, i = n >> 2 & 3, w = n & 3;
  const e = laneElement(q6kLaneVector(p, i), 4 * w), g = e >> 7, s = e >> 5 & 3, l = e & 31;
  return k & 1
    ? 8 * ((128 + 32 * g + l) >> 2) + 2 * s
    : 8 * ((64 * g + 32 * (s & 1) + l) >> 2) + 4 * (s >> 1);
});

/**
 * Packs Q6_K super-blocks in place (module doc).
 *
 * @param bytes The memory (or a tensor's bytes).
 * @param offset Byte offset of the first super-block.
 * @param blocks Super-blocks to pack, contiguous.
 * @throws {RangeError} when the blocks do not fit in `bytes`, naming the sizes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { packQ6KInPlace, q6kQuants } from "./q6k_pack.ts";
 * const block = new Uint8Array(210).map((_, i) => (i * 37) & 255);
 * const before = q6kQuants(block, 0, false);
 * packQ6KInPlace(block, 0, 1);
 * assert.deepEqual(q6kQuants(block, 0, true), before);
 * ```
 */
export function packQ6KInPlace(bytes: Uint8Array, offset: number, blocks: number): void {
  if (
    !Number.isInteger(offset) || !Number.isInteger(blocks) || offset < 0 || blocks < 0 ||
    offset + blocks * Q6K_BLOCK_BYTES > bytes.length
  ) {
    throw new RangeError(
      `packQ6KInPlace: ${blocks} blocks of ${Q6K_BLOCK_BYTES} bytes at ${offset} do not fit ` +
        `${bytes.length} bytes`,
    );
  }
  // Words of 4 elements move together (PACKED_WORDS): the quants of 4 elements as a 32-bit
  // word are `(ql >> nibble & 0x0f0f0f0f) | (qh >> shift & 0x03030303) << 4`.
  const src = new Uint32Array(48), out = new Uint32Array(48);
  const srcBytes = new Uint8Array(src.buffer), outBytes = new Uint8Array(out.buffer);
  const word = (k: number) => {
    const lo = PACKED_WORDS[2 * k], hi = PACKED_WORDS[2 * k + 1];
    return (src[lo >> 3] >>> (lo & 7) & 0x0f0f0f0f) | (src[hi >> 3] >>> (hi & 7) & 0x03030303) << 4;
  };
  for (let b = 0; b < blocks; b++) {
    const at = offset + b * Q6K_BLOCK_BYTES;
    srcBytes.set(bytes.subarray(at, at + 192));
    for (let p = 0; p < 4; p++) {
      for (let w = 0; w < 4; w++) {
        const n = 16 * p + w, w3 = word(n + 12);
        out[12 * p + w] = word(n) | (w3 & 0x03030303) << 6;
        out[12 * p + 4 + w] = word(n + 4) | (w3 >>> 2 & 0x03030303) << 6;
        out[12 * p + 8 + w] = word(n + 8) | (w3 >>> 4 & 0x03030303) << 6;
      }
    }
    bytes.set(outBytes, at);
  }
}

/**
 * The 256 unsigned quants (0..63, value + 32) of one Q6_K super-block, in element order.
 *
 * @param bytes Bytes holding the block.
 * @param at Byte offset of the block.
 * @param packed Whether the block is packed ({@linkcode packQ6KInPlace}) or as ggml stores it.
 * @param q Where to write them (default: a new array).
 * @returns `(256)` quants: `q`.
 */
export function q6kQuants(
  bytes: Uint8Array,
  at: number,
  packed: boolean,
  q: Uint8Array = new Uint8Array(256),
): Uint8Array {
  if (packed) {
    for (let p = 0; p < 4; p++) {
      for (let k = 0; k < 16; k++) {
        const a = bytes[at + 48 * p + k], b = bytes[at + 48 * p + 16 + k];
        const c = bytes[at + 48 * p + 32 + k];
        const e = (i: number) => laneElement(q6kLaneVector(p, i), k);
        q[e(0)] = a & 63;
        q[e(1)] = b & 63;
        q[e(2)] = c & 63;
        q[e(3)] = a >> 6 | (b >> 6) << 2 | (c >> 6) << 4;
      }
    }
    return q;
  }
  for (let e = 0; e < 256; e++) {
    const g = e >> 7, s = (e >> 5) & 3, l = e & 31;
    const lo = bytes[at + 64 * g + 32 * (s & 1) + l];
    const nib = s >> 1 ? lo >> 4 : lo & 15;
    q[e] = nib | ((bytes[at + 128 + 32 * g + l] >> (2 * s)) & 3) << 4;
  }
  return q;
}

/** The i8x16 splat constant {@linkcode pushPackedVector} reads, by local name. */
export const PACKED_CONSTS: [string, number][] = [["c3f", 0x3f]];

/**
 * Emits the push of vector i (0..3) of a packed part as i8x16 quants 0..63: i < 3 the low 6
 * bits of A, B or C; i = 3 `(A & ~0x3f) >> 6 | (B & ~0x3f) >> 4 | (C & ~0x3f) >> 2` (16-bit
 * shifts: the top two bits of each byte, masked first, stay in their byte): one mask for the
 * four vectors (masking after the shifts took four, at the same speed). The one decoder of
 * the layout the WASM kernels share (`types_k.ts` matvec and in-register matmul,
 * `linear_panel_q6k.ts`).
 *
 * @param f The function (with the v128 local of {@linkcode PACKED_CONSTS} set).
 * @param i The vector.
 * @param part Pushes A (k = 0), B (1) or C (2) of the part: a load, or a local loaded once.
 */
export function pushPackedVector(f: WasmFunc, i: number, part: (k: number) => void): void {
  if (i < 3) {
    part(i);
    f.get("c3f").op("v128.and");
    return;
  }
  for (const [k, shift] of [[0, 6], [1, 4], [2, 2]] as const) {
    part(k);
    f.get("c3f").op("v128.andnot").i32(shift).op("i16x8.shr_u");
    if (k) f.op("v128.or");
  }
}
