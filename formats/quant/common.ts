/**
 * Scalar helpers shared by the ggml block quantisers: F32 → F16 rounding as ggml's
 * `GGML_FP32_TO_FP16` does it, `nearest_int` (ggml-quants.c), and little-endian field access.
 *
 * Every quantiser here computes in F32 like the C reference: each arithmetic result is passed
 * through `Math.fround`, so the blocks come out bit-identical to llama.cpp's (whose reference
 * quantisers are compiled without FMA contraction or fast-math reassociation).
 *
 * @module
 */
import { f16Table, f32BitsToF16Bits } from "../../core/numbers.ts";

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** `Math.fround`, short: round a double to the nearest F32. */
export const fr: (x: number) => number = Math.fround;

/**
 * F32 value → F16 bits, round to nearest even (ggml `GGML_FP32_TO_FP16`, numpy `astype(float16)`).
 *
 * @param x A value (rounded to F32 first).
 * @returns F16 bit pattern.
 *
 * @example
 * ```ts
 * import { toF16 } from "./common.ts";
 * if (toF16(1) !== 0x3c00 || toF16(-2) !== 0xc000) throw new Error("toF16");
 * ```
 */
export function toF16(x: number): number {
  f32[0] = x;
  return f32BitsToF16Bits(u32[0]);
}

/** The F16 → F32 table (`GGML_FP16_TO_FP32`), shared. */
export const F16: Float32Array = f16Table();

/**
 * ggml's `nearest_int`: round an F32 value to the nearest integer, ties to even, by adding
 * 1.5·2^23 in F32 (valid for |x| ≤ 4194303, as in the C code).
 *
 * @param x An F32 value.
 * @returns The rounded integer.
 *
 * @example
 * ```ts
 * import { nearestInt } from "./common.ts";
 * if (nearestInt(2.5) !== 2 || nearestInt(3.5) !== 4 || nearestInt(-1.2) !== -1) {
 *   throw new Error("nearestInt");
 * }
 * ```
 */
export function nearestInt(x: number): number {
  return fr(x + 12582912) - 12582912;
}

/**
 * C `roundf`: round half away from zero.
 *
 * @param x A value.
 * @returns The rounded integer.
 *
 * @example
 * ```ts
 * import { roundf } from "./common.ts";
 * if (roundf(2.5) !== 3 || roundf(-2.5) !== -3) throw new Error("roundf");
 * ```
 */
export function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

/**
 * Reads a little-endian F16 field as F32.
 *
 * @param b Block bytes.
 * @param o Byte offset.
 * @returns The value.
 */
export function getF16(b: Uint8Array, o: number): number {
  return F16[b[o] | (b[o + 1] << 8)];
}

/**
 * Writes F16 bits little-endian.
 *
 * @param b Block bytes.
 * @param o Byte offset.
 * @param h F16 bits.
 */
export function setU16(b: Uint8Array, o: number, h: number): void {
  b[o] = h & 0xff;
  b[o + 1] = (h >> 8) & 0xff;
}
