/**
 * Row-interleaved weights: the byte layout the matrix products read F32, F16, BF16 and Q8_0
 * weights in (llama.cpp's "repack" of `ggml-cpu/repack.cpp`, e.g. `block_q8_0x4`; ik_llama.cpp's
 * `Q8_0_R8`). Each group of I consecutive rows is stored unit by unit: unit j of rows
 * r .. r + I − 1, then unit j + 1 of the same rows, ... A unit is what a kernel's block
 * reads of one row at a time: 8 elements of the float types (16 bytes of F16/BF16, 32 of
 * F32), one 34-byte block of Q8_0. The group takes the same I · rowBytes bytes as before,
 * so the weights are rearranged in place at load (`compile_wasm.ts`):
 *
 * ```
 * as stored (rows r .. r + 3, units u0 u1 ...)      interleaved, I = 4
 * r+0: u0 u1 u2 ...                                 r+0 u0, r+1 u0, r+2 u0, r+3 u0,
 * r+1: u0 u1 u2 ...                      →          r+0 u1, r+1 u1, r+2 u1, r+3 u1, ...
 * r+2: ...
 * ```
 *
 * Why: a matvec's register block reads its R rows' units side by side. Stored row by row,
 * those are R streams rowBytes apart, which the hardware prefetcher follows poorly, so the
 * kernels touched the lines ahead in bursts (a touch is a load that retires only when its
 * line arrives: the bursts stall). Interleaved with I = R they are ONE sequential stream,
 * which the prefetcher keeps ahead of without touches. Same-process A/B on one pinned core,
 * g110M shapes streamed from DRAM, GB/s of weights: F16 2048x768 ~24.7 → ~35.1, F32
 * 2048x768 ~26.9 → ~38.8, BF16 2048x768 ~19.5 → ~32.2, Q8_0 32768x768 ~22.3 → ~28.9.
 *
 * The arithmetic does not change, only addresses: every kernel gives the same bits on the
 * interleaved bytes as the row-major kernel on the stored ones.
 *
 * @module
 */

/**
 * Rearranges the M rows at `offset` into groups of I interleaved rows (see the module doc),
 * in place.
 *
 * @param bytes The memory (a Uint8Array over it).
 * @param offset Byte offset of row 0.
 * @param M Rows (a multiple of I).
 * @param rowBytes Bytes per row (a multiple of `unit`).
 * @param unit Bytes of one unit (the kernels' block of one row).
 * @param I Rows per group (1: nothing to do).
 * @throws {RangeError} when M is not a multiple of I, rowBytes not a multiple of unit, or
 *   the rows do not fit `bytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interleaveRowsInPlace } from "./interleave.ts";
 * // 2 rows of 2 units of 2 bytes: [a0 a1 | b0 b1] → [a0 b0 | a1 b1]
 * const m = new Uint8Array([1, 1, 2, 2, 3, 3, 4, 4]);
 * interleaveRowsInPlace(m, 0, 2, 4, 2, 2);
 * assert.deepEqual([...m], [1, 1, 3, 3, 2, 2, 4, 4]);
 * ```
 */
export function interleaveRowsInPlace(
  bytes: Uint8Array,
  offset: number,
  M: number,
  rowBytes: number,
  unit: number,
  I: number,
): void {
  if (I === 1) return;
  if (M % I !== 0 || rowBytes % unit !== 0) {
    throw new RangeError(
      `interleaveRowsInPlace: M ${M} must be a multiple of I ${I} and rowBytes ${rowBytes} ` +
        `of unit ${unit}`,
    );
  }
  if (offset < 0 || offset + M * rowBytes > bytes.length) {
    throw new RangeError(
      `interleaveRowsInPlace: rows ${offset} .. ${
        offset + M * rowBytes
      } outside ${bytes.length} bytes`,
    );
  }
  // Copy in the widest word that divides every offset: 4 bytes (F32/F16/BF16), 2 (Q8_0's 34).
  const at = bytes.byteOffset + offset;
  const w = [4, 2, 1].find((w) => at % w === 0 && rowBytes % w === 0 && unit % w === 0)!;
  const buf = bytes.buffer as ArrayBuffer, n = (M * rowBytes) / w;
  const words = w === 4 // (M, rowBytes / w)
    ? new Uint32Array(buf, at, n)
    : w === 2
    ? new Uint16Array(buf, at, n)
    : new Uint8Array(buf, at, n);
  const rw = rowBytes / w, uw = unit / w, units = rowBytes / unit;
  const group = words.slice(0, I * rw); // (I, rw): one group as stored
  for (let g = 0; g < M; g += I) {
    const base = g * rw;
    group.set(words.subarray(base, base + I * rw));
    let o = base;
    for (let j = 0; j < units; j++) {
      for (let a = 0; a < I; a++) {
        const from = a * rw + j * uw;
        for (let k = 0; k < uw; k++) words[o++] = group[from + k];
      }
    }
  }
}
