/**
 * `first_match` (scan.ts) against a plain loop over the same words: every position of a
 * NaN/Inf in contiguous F16 words (the 8-word SIMD path, its hand-over to the one-word
 * loop, the tail) and in strided block scales; no hit returns `end`.
 */
import assert from "node:assert/strict";
import { scanner } from "./scan.ts";

/** The plain loop: first word at p, p + step, ... below end with every mask bit set. */
function firstMatchRef(u16: Uint16Array, p: number, end: number, step: number, mask: number) {
  for (; p < end; p += step) if ((u16[p >> 1] & mask) === mask) return p;
  return end;
}

Deno.test("scanner() finds the first non-finite f16 wherever it is, as a plain loop does", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  const u16 = new Uint16Array(memory.buffer);
  const scan = scanner(memory);
  const n = 77; // 9 vectors of 8 words and a 5-word tail
  for (const start of [0, 2, 6]) {
    const end = start + 2 * n;
    for (const bad of [-1, 0, 7, 8, 15, 40, 71, 72, 76]) {
      for (const value of [0x7c00, 0xfe00, 0x7fff]) { // +Inf, NaN (negative), NaN
        u16.fill(0x3c00); // 1.0
        u16[(start >> 1) + 3] = 0x7bff; // the largest finite f16: not a hit
        if (bad >= 0) u16[(start >> 1) + bad] = value;
        if (bad >= 0) u16[(start >> 1) + bad + 1] = value; // a second one after the first
        const want = firstMatchRef(u16, start, end, 2, 0x7c00);
        assert.equal(scan(start, end, 2, 0x7c00), want, `start ${start}, bad ${bad}`);
        assert.equal(want, bad < 0 ? end : start + 2 * bad);
      }
    }
  }
  // Strided: the f16 d at byte 0 of 34-byte Q8_0 blocks; a NaN between scales is no hit.
  u16.fill(0x3c00);
  u16[(34 * 5 + 10) >> 1] = 0x7e00;
  assert.equal(scan(0, 34 * 20, 34, 0x7c00), 34 * 20);
  u16[(34 * 6) >> 1] = 0x7e00;
  assert.equal(scan(0, 34 * 20, 34, 0x7c00), 34 * 6);
});
