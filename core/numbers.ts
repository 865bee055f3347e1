/**
 * Number formats: IEEE half precision (F16) and bfloat16 (BF16) to and from F32, in one
 * place for every reader and writer (safetensors, GGUF, ggml blocks).
 *
 * Sources: IEEE 754-2008 binary16; numpy `halffloat.c` (F32 → F16 rounding); PyTorch
 * `c10/util/BFloat16.h` (F32 → BF16 rounding); ggml `GGML_FP16_TO_FP32`.
 *
 * @module
 */

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/**
 * Converts an IEEE 754 half-precision bit pattern to a number (subnormals, ±inf, NaN
 * included; same result as ggml's `GGML_FP16_TO_FP32`).
 *
 * @param h 16-bit pattern (0..65535).
 * @returns The value.
 *
 * @example
 * ```ts
 * import { f16ToF32 } from "./numbers.ts";
 * console.log(f16ToF32(0x3c00), f16ToF32(0xc000)); // 1 -2
 * ```
 */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Converts a bfloat16 bit pattern (the upper 16 bits of an F32) to a number.
 *
 * @param b 16-bit pattern.
 * @returns The value.
 *
 * @example
 * ```ts
 * import { bf16ToF32 } from "./numbers.ts";
 * console.log(bf16ToF32(0x3f80)); // 1
 * ```
 */
export function bf16ToF32(b: number): number {
  u32buf[0] = (b & 0xffff) << 16;
  return f32buf[0];
}

let F16_TABLE: Float32Array | null = null;

/**
 * All 65536 half-precision values as F32, built once (a lookup table for bulk F16 decoding).
 *
 * @returns `(65536)` table: entry h is the value of f16 bit pattern h.
 *
 * @example
 * ```ts
 * import { f16Table } from "./numbers.ts";
 * console.log(f16Table()[0x3c00]); // 1
 * ```
 */
export function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16ToF32(h);
  }
  return F16_TABLE;
}

/**
 * Converts the bits of an F32 value to F16 bits, rounding to nearest with ties to even;
 * overflow gives ±Infinity, NaN stays NaN (quiet). Follows numpy's
 * `npy_floatbits_to_halfbits` (numpy/core/src/npymath/halffloat.c).
 *
 * @param f F32 bit pattern (as from a `Uint32Array` view).
 * @returns F16 bit pattern in `[0, 65535]`.
 *
 * @example
 * ```ts
 * import { f32BitsToF16Bits } from "./numbers.ts";
 * const bits = new Uint32Array(new Float32Array([1.0]).buffer)[0];
 * console.log(f32BitsToF16Bits(bits).toString(16)); // "3c00"
 * ```
 */
export function f32BitsToF16Bits(f: number): number {
  const hSgn = (f >>> 16) & 0x8000;
  const fExp = f & 0x7f800000;
  if (fExp >= 0x47800000) {
    // Exponent overflow/NaN converts to signed inf/NaN.
    if (fExp === 0x7f800000) {
      const fSig = f & 0x007fffff;
      if (fSig !== 0) {
        // NaN: keep the top mantissa bits, force it quiet so it stays a NaN.
        return hSgn | 0x7c00 | 0x0200 | (fSig >>> 13);
      }
      return hSgn | 0x7c00; // inf
    }
    return hSgn | 0x7c00; // overflow to inf
  }
  if (fExp <= 0x38000000) {
    // Exponent underflow converts to a subnormal half or signed zero.
    if (fExp < 0x33000000) return hSgn;
    const e = fExp >>> 23;
    let fSig = 0x00800000 + (f & 0x007fffff);
    // Shift by 13 plus the extra shift for the subnormal exponent.
    fSig = fSig >>> (113 - e);
    // Round to nearest even; the shift may have dropped up to 11 bits, checked in `f`.
    if ((fSig & 0x00003fff) !== 0x00001000 || (f & 0x000007ff) !== 0) fSig += 0x00001000;
    return hSgn + (fSig >>> 13); // a carry into the exponent gives the right result
  }
  const hExp = (fExp - 0x38000000) >>> 13;
  let fSig = f & 0x007fffff;
  if ((fSig & 0x00003fff) !== 0x00001000) fSig += 0x00001000;
  // A carry out of the mantissa increments the exponent (up to inf): still correct.
  return hSgn + hExp + (fSig >>> 13);
}

/**
 * Converts the bits of an F32 value to BF16 bits (the top 16 bits), rounding to nearest
 * with ties to even; NaN stays NaN (quiet). Same rounding as PyTorch's `round_to_nearest_even`
 * (c10/util/BFloat16.h).
 *
 * @param f F32 bit pattern.
 * @returns BF16 bit pattern in `[0, 65535]`.
 *
 * @example
 * ```ts
 * import { f32BitsToBf16Bits } from "./numbers.ts";
 * const bits = new Uint32Array(new Float32Array([1.0]).buffer)[0];
 * console.log(f32BitsToBf16Bits(bits).toString(16)); // "3f80"
 * ```
 */
export function f32BitsToBf16Bits(f: number): number {
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x007fffff) !== 0) {
    return ((f >>> 16) | 0x0040) & 0xffff; // quiet NaN
  }
  // The sum stays below 2^32 for every non-NaN pattern, so `>>> 16` sees it unwrapped.
  return ((f >>> 0) + 0x7fff + ((f >>> 16) & 1)) >>> 16;
}
