/**
 * ggml's legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1. Dequantisers
 * follow `dequantize_row_*` and quantisers `quantize_row_*_ref` of ggml/src/ggml-quants.c
 * (what `llama-quantize` runs for these types when no importance matrix is given), in F32
 * arithmetic so the blocks are bit-identical.
 *
 * Layouts (ggml-common.h; little-endian; `d`, `m`, `s` are F16):
 *
 * | type | bytes | fields (offset)                           | element j of the block                  |
 * |------|------:|-------------------------------------------|-----------------------------------------|
 * | Q4_0 | 18 | d@0, qs[16]@2                                | `(nib(j) - 8) * d`                       |
 * | Q4_1 | 20 | d@0, m@2, qs[16]@4                           | `nib(j) * d + m`                         |
 * | Q5_0 | 22 | d@0, qh u32@2, qs[16]@6                      | `((nib(j) \| hb(j) << 4) - 16) * d`       |
 * | Q5_1 | 24 | d@0, m@2, qh u32@4, qs[16]@8                 | `(nib(j) \| hb(j) << 4) * d + m`          |
 * | Q8_0 | 34 | d@0, qs[32] int8@2                           | `qs[j] * d`                              |
 * | Q8_1 | 36 | d@0, s@2 (= d · Σ qs), qs[32] int8@4         | `qs[j] * d`                              |
 *
 * `nib(j)` is the low nibble of `qs[j]` for j < 16 and the high nibble of `qs[j - 16]` for
 * j ≥ 16; `hb(j)` is bit j of `qh`.
 *
 * @module
 */
import { fr, getF16, roundf, setU16, toF16 } from "./common.ts";

/** Elements per legacy block (`QK4_0` = `QK8_0` = 32). */
export const QK = 32;

/** Signature of a row dequantiser: `x` holds `y.length / blockSize` blocks. */
export type DequantizeRow = (x: Uint8Array, y: Float32Array) => void;
/** Signature of a row quantiser: `y` receives `x.length / blockSize` blocks. */
export type QuantizeRow = (x: Float32Array, y: Uint8Array) => void;

/** Value of largest magnitude in `x[o..o+n)` (first one on ties), as the C loops pick it. */
function signedAbsMax(x: Float32Array, o: number, n: number): number {
  let amax = 0, max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[o + j];
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

/** Min and max of `x[o..o+n)`. */
function minMax(x: Float32Array, o: number, n: number): [number, number] {
  let min = Infinity, max = -Infinity;
  for (let j = 0; j < n; j++) {
    const v = x[o + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

// ---------------------------------------------------------------------------------------
// Q4_0: symmetric 4-bit, d = max / -8

/** `dequantize_row_q4_0`. */
export const dequantizeRowQ4_0: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < y.length / QK; b++, o += 18) {
    const d = getF16(x, o);
    for (let j = 0; j < 16; j++) {
      const q = x[o + 2 + j];
      y[b * QK + j] = fr(((q & 0x0f) - 8) * d);
      y[b * QK + j + 16] = fr(((q >> 4) - 8) * d);
    }
  }
};

/** `quantize_row_q4_0_ref`. */
export const quantizeRowQ4_0: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK; b++, o += 18) {
    const xo = b * QK;
    const d = fr(signedAbsMax(x, xo, QK) / -8);
    const id = d ? fr(1 / d) : 0;
    setU16(y, o, toF16(d));
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(x[xo + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(x[xo + j + 16] * id) + 8.5)));
      y[o + 2 + j] = q0 | (q1 << 4);
    }
  }
};

// ---------------------------------------------------------------------------------------
// Q4_1: asymmetric 4-bit, d = (max - min) / 15, m = min

/** `dequantize_row_q4_1`. */
export const dequantizeRowQ4_1: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < y.length / QK; b++, o += 20) {
    const d = getF16(x, o), m = getF16(x, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = x[o + 4 + j];
      y[b * QK + j] = fr(fr((q & 0x0f) * d) + m);
      y[b * QK + j + 16] = fr(fr((q >> 4) * d) + m);
    }
  }
};

/** `quantize_row_q4_1_ref`. */
export const quantizeRowQ4_1: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK; b++, o += 20) {
    const xo = b * QK;
    const [min, max] = minMax(x, xo, QK);
    const d = fr(fr(max - min) / 15);
    const id = d ? fr(1 / d) : 0;
    setU16(y, o, toF16(d));
    setU16(y, o + 2, toF16(min));
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(fr(x[xo + j] - min) * id) + 0.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(fr(x[xo + j + 16] - min) * id) + 0.5)));
      y[o + 4 + j] = q0 | (q1 << 4);
    }
  }
};

// ---------------------------------------------------------------------------------------
// Q5_0: symmetric 5-bit, d = max / -16; the 5th bits in qh

/** Reads the 32-bit `qh` field. */
function getU32(x: Uint8Array, o: number): number {
  return (x[o] | (x[o + 1] << 8) | (x[o + 2] << 16) | (x[o + 3] << 24)) >>> 0;
}

/** Writes the 32-bit `qh` field. */
function setU32(y: Uint8Array, o: number, v: number): void {
  y[o] = v & 0xff;
  y[o + 1] = (v >>> 8) & 0xff;
  y[o + 2] = (v >>> 16) & 0xff;
  y[o + 3] = (v >>> 24) & 0xff;
}

/** `dequantize_row_q5_0`. */
export const dequantizeRowQ5_0: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < y.length / QK; b++, o += 22) {
    const d = getF16(x, o);
    const qh = getU32(x, o + 2);
    for (let j = 0; j < 16; j++) {
      const q = x[o + 6 + j];
      const h0 = ((qh >>> j) << 4) & 0x10, h1 = (qh >>> (j + 12)) & 0x10;
      y[b * QK + j] = fr((((q & 0x0f) | h0) - 16) * d);
      y[b * QK + j + 16] = fr((((q >> 4) | h1) - 16) * d);
    }
  }
};

/** `quantize_row_q5_0_ref`. */
export const quantizeRowQ5_0: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK; b++, o += 22) {
    const xo = b * QK;
    const d = fr(signedAbsMax(x, xo, QK) / -16);
    const id = d ? fr(1 / d) : 0;
    setU16(y, o, toF16(d));
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, Math.trunc(fr(fr(x[xo + j] * id) + 16.5)));
      const q1 = Math.min(31, Math.trunc(fr(fr(x[xo + j + 16] * id) + 16.5)));
      y[o + 6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    setU32(y, o + 2, qh);
  }
};

// ---------------------------------------------------------------------------------------
// Q5_1: asymmetric 5-bit, d = (max - min) / 31, m = min

/** `dequantize_row_q5_1`. */
export const dequantizeRowQ5_1: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < y.length / QK; b++, o += 24) {
    const d = getF16(x, o), m = getF16(x, o + 2);
    const qh = getU32(x, o + 4);
    for (let j = 0; j < 16; j++) {
      const q = x[o + 8 + j];
      const h0 = ((qh >>> j) << 4) & 0x10, h1 = (qh >>> (j + 12)) & 0x10;
      y[b * QK + j] = fr(fr(((q & 0x0f) | h0) * d) + m);
      y[b * QK + j + 16] = fr(fr(((q >> 4) | h1) * d) + m);
    }
  }
};

/** `quantize_row_q5_1_ref`. */
export const quantizeRowQ5_1: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK; b++, o += 24) {
    const xo = b * QK;
    const [min, max] = minMax(x, xo, QK);
    const d = fr(fr(max - min) / 31);
    const id = d ? fr(1 / d) : 0;
    setU16(y, o, toF16(d));
    setU16(y, o + 2, toF16(min));
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.trunc(fr(fr(fr(x[xo + j] - min) * id) + 0.5)) & 0xff;
      const q1 = Math.trunc(fr(fr(fr(x[xo + j + 16] - min) * id) + 0.5)) & 0xff;
      y[o + 8 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
      qh |= ((q0 & 0x10) >> 4) << j;
      qh |= ((q1 & 0x10) >> 4) << (j + 16);
    }
    setU32(y, o + 4, qh);
  }
};

// ---------------------------------------------------------------------------------------
// Q8_0 / Q8_1: symmetric 8-bit, d = amax / 127 (Q8_1 adds s = d * sum(qs))

/** `dequantize_row_q8_0`. */
export const dequantizeRowQ8_0: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < y.length / QK; b++, o += 34) {
    const d = getF16(x, o);
    for (let j = 0; j < QK; j++) y[b * QK + j] = fr(((x[o + 2 + j] << 24) >> 24) * d);
  }
};

function quantizeQ8(x: Float32Array, y: Uint8Array, blockBytes: number, qsAt: number): void {
  for (let b = 0, o = 0; b < x.length / QK; b++, o += blockBytes) {
    const xo = b * QK;
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[xo + j]));
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    setU16(y, o, toF16(d));
    let sum = 0;
    for (let j = 0; j < QK; j++) {
      const q = roundf(fr(x[xo + j] * id));
      y[o + qsAt + j] = q & 0xff;
      sum += q;
    }
    if (qsAt === 4) setU16(y, o + 2, toF16(fr(sum * d)));
  }
}

/** `quantize_row_q8_0_ref`. */
export const quantizeRowQ8_0: QuantizeRow = (x, y) => quantizeQ8(x, y, 34, 2);

/** Dequantises Q8_1 blocks (`x[j] = qs[j] * d`; `s` is only used by dot products). */
export const dequantizeRowQ8_1: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < y.length / QK; b++, o += 36) {
    const d = getF16(x, o);
    for (let j = 0; j < QK; j++) y[b * QK + j] = fr(((x[o + 4 + j] << 24) >> 24) * d);
  }
};

/** `quantize_row_q8_1_ref`. */
export const quantizeRowQ8_1: QuantizeRow = (x, y) => quantizeQ8(x, y, 36, 4);
