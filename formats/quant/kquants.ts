/**
 * ggml's K-quants: 256-element super-blocks of 16 or 32-element groups, each group with its
 * own quantised scale (and min). Dequantisers follow `dequantize_row_q{2..6}_K` /
 * `dequantize_row_q8_K`, quantisers `quantize_row_q{2..6}_K_ref` / `quantize_row_q8_K_ref`
 * of ggml/src/ggml-quants.c (what `llama-quantize` runs without an importance matrix), in
 * F32 arithmetic so the blocks are bit-identical.
 *
 * Layouts (ggml-common.h; little-endian; `d`, `dmin` are F16 unless noted):
 *
 * | type | bytes | fields (offset)                                        | groups × size, level bits |
 * |------|------:|--------------------------------------------------------|---------------------------|
 * | Q2_K |  84 | scales[16]@0 (lo nibble scale, hi nibble min), qs[64]@16, d@80, dmin@82 | 16 × 16, 2 |
 * | Q3_K | 110 | hmask[32]@0, qs[64]@32, scales[12]@96 (16 × 6-bit, offset 32), d@108   | 16 × 16, 3 |
 * | Q4_K | 144 | d@0, dmin@2, scales[12]@4 (8 × 6-bit scale + 8 × 6-bit min), qs[128]@16 | 8 × 32, 4  |
 * | Q5_K | 176 | d@0, dmin@2, scales[12]@4, qh[32]@16, qs[128]@48                       | 8 × 32, 5  |
 * | Q6_K | 210 | ql[128]@0, qh[64]@128, scales[16] int8@192, d@208                      | 16 × 16, 6 |
 * | Q8_K | 292 | d F32@0, qs[256] int8@4, bsums[16] int16@260 (sums of 16 qs)           | activations |
 *
 * Element values: Q2_K `d·sc·q − dmin·m`; Q3_K `d·(sc − 32)·(q − 4·!hbit)`; Q4_K/Q5_K
 * `d·sc·q − dmin·m` with (sc, m) unpacked by `get_scale_min_k4`; Q6_K `d·sc·(q − 32)`;
 * Q8_K `d·q`. Within a 128-element half (Q2_K, Q3_K, Q6_K) or a 64-element quarter (Q4_K,
 * Q5_K), bytes hold element l in their low bits and l + 32, l + 64, ... in the higher bits.
 *
 * @module
 */
import { fr, getF16, nearestInt, setU16, toF16 } from "./common.ts";
import { makeQ3Quants, makeQkx2Quants, makeQxQuants, qkx2Min } from "./k_search.ts";
import type { DequantizeRow, QuantizeRow } from "./legacy.ts";

/** Elements per K-quant super-block (`QK_K`). */
export const QK_K = 256;

// Scratch shared by the quantisers (single-threaded JS: no reentrancy).
const L = new Uint8Array(QK_K); // (256) levels of one super-block
const Ls = new Int8Array(QK_K); // (256) signed-offset levels for Q3_K / Q6_K
const W = new Float32Array(32); // (32) per-element weights of one group
const SCALES = new Float32Array(16); // (16) group scales
const MINS = new Float32Array(16); // (16) group mins

/** Packs 2-bit levels: byte l of each 32-byte run holds elements l, l+32, l+64, l+96. */
function pack2(y: Uint8Array, o: number, lv: Uint8Array | Int8Array): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      y[o + j / 4 + l] = lv[j + l] | (lv[j + l + 32] << 2) | (lv[j + l + 64] << 4) |
        (lv[j + l + 96] << 6);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Q2_K

/** `dequantize_row_q2_K`. */
export const dequantizeRowQ2_K: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0, yo = 0; b < y.length / QK_K; b++, o += 84) {
    const d = getF16(x, o + 80), min = getF16(x, o + 82);
    let is = 0;
    for (let n = 0; n < QK_K; n += 128) {
      const q = o + 16 + n / 4;
      for (let shift = 0; shift < 8; shift += 2) {
        for (let half = 0; half < 32; half += 16) {
          const sc = x[o + is++];
          const dl = fr(d * (sc & 0xf)), ml = fr(min * (sc >> 4));
          for (let l = 0; l < 16; l++) {
            y[yo++] = fr(fr(dl * ((x[q + half + l] >> shift) & 3)) - ml);
          }
        }
      }
    }
  }
};

/** `quantize_row_q2_K_ref`. */
export const quantizeRowQ2_K: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK_K; b++, o += 84) {
    const xo = b * QK_K;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 16; j++) {
      for (let l = 0; l < 16; l++) W[l] = Math.abs(x[xo + 16 * j + l]);
      const s = makeQkx2Quants(16, 3, x, xo + 16 * j, W, L, 16 * j, -0.5, 0.1, 15, true);
      const m = qkx2Min;
      SCALES[j] = s;
      MINS[j] = m;
      if (s > maxScale) maxScale = s;
      if (m > maxMin) maxMin = m;
    }
    if (maxScale > 0) {
      const iscale = fr(15 / maxScale);
      for (let j = 0; j < 16; j++) y[o + j] = nearestInt(fr(iscale * SCALES[j])) & 0xff;
      setU16(y, o + 80, toF16(fr(maxScale / 15)));
    } else {
      for (let j = 0; j < 16; j++) y[o + j] = 0;
      setU16(y, o + 80, 0);
    }
    if (maxMin > 0) {
      const iscale = fr(15 / maxMin);
      for (let j = 0; j < 16; j++) y[o + j] |= (nearestInt(fr(iscale * MINS[j])) << 4) & 0xff;
      setU16(y, o + 82, toF16(fr(maxMin / 15)));
    } else {
      setU16(y, o + 82, 0);
    }
    const dAll = getF16(y, o + 80), mAll = getF16(y, o + 82);
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * (y[o + j] & 0xf));
      if (!d) continue;
      const dm = fr(mAll * (y[o + j] >> 4));
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(fr(fr(x[xo + 16 * j + i] + dm) / d));
        L[16 * j + i] = Math.max(0, Math.min(3, l));
      }
    }
    pack2(y, o + 16, L);
  }
};

// ---------------------------------------------------------------------------------------
// Q3_K

/** The signed 6-bit scale of group j (`-32..31`) from the 12 packed scale bytes at `s`. */
function q3Scale(x: Uint8Array, s: number, j: number): number {
  const lo = j < 8 ? x[s + j] & 0xf : x[s + j - 8] >> 4;
  const hi = (x[s + 8 + (j % 4)] >> (2 * (j >> 2))) & 3;
  return (lo | (hi << 4)) - 32;
}

/** `dequantize_row_q3_K`. */
export const dequantizeRowQ3_K: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0, yo = 0; b < y.length / QK_K; b++, o += 110) {
    const dAll = getF16(x, o + 108);
    let is = 0, m = 1;
    for (let n = 0; n < QK_K; n += 128) {
      const q = o + 32 + n / 4;
      for (let shift = 0; shift < 8; shift += 2, m <<= 1) {
        for (let half = 0; half < 32; half += 16) {
          const dl = fr(dAll * q3Scale(x, o + 96, is++));
          for (let l = 0; l < 16; l++) {
            const lv = ((x[q + half + l] >> shift) & 3) - (x[o + half + l] & m ? 0 : 4);
            y[yo++] = fr(dl * lv);
          }
        }
      }
    }
  }
};

/** `quantize_row_q3_K_ref`. */
export const quantizeRowQ3_K: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK_K; b++, o += 110) {
    const xo = b * QK_K;
    let maxScale = 0, amax = 0;
    for (let j = 0; j < 16; j++) {
      SCALES[j] = makeQ3Quants(16, 4, x, xo + 16 * j, Ls, 16 * j);
      const s = Math.abs(SCALES[j]);
      if (s > amax) {
        amax = s;
        maxScale = SCALES[j];
      }
    }
    y.fill(0, o + 96, o + 108);
    if (maxScale) {
      const iscale = fr(-32 / maxScale);
      for (let j = 0; j < 16; j++) {
        let l = (nearestInt(fr(iscale * SCALES[j])) << 24) >> 24; // int8_t
        l = Math.max(-32, Math.min(31, l)) + 32;
        if (j < 8) y[o + 96 + j] = l & 0xf;
        else y[o + 96 + j - 8] |= (l & 0xf) << 4;
        l >>= 4;
        y[o + 96 + 8 + (j % 4)] |= l << (2 * (j >> 2));
      }
      setU16(y, o + 108, toF16(fr(1 / iscale)));
    } else {
      setU16(y, o + 108, 0);
    }
    const dAll = getF16(y, o + 108);
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * q3Scale(y, o + 96, j));
      if (!d) continue;
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(fr(x[xo + 16 * j + i] / d));
        Ls[16 * j + i] = Math.max(-4, Math.min(3, l)) + 4;
      }
    }
    // High bit of level j goes to hmask[j % 32], bit j / 32.
    y.fill(0, o, o + 32);
    for (let j = 0; j < QK_K; j++) {
      if (Ls[j] > 3) {
        y[o + (j % 32)] |= 1 << (j >> 5);
        Ls[j] -= 4;
      }
    }
    pack2(y, o + 32, Ls);
  }
};

// ---------------------------------------------------------------------------------------
// Q4_K and Q5_K: 8 groups of 32, 6-bit scales and mins packed in 12 bytes

/** `get_scale_min_k4`: group j's 6-bit (scale, min) from the 12 bytes at `s`. */
function scaleMinK4(x: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [x[s + j] & 63, x[s + j + 4] & 63];
  return [
    (x[s + j + 4] & 0xf) | ((x[s + j - 4] >> 6) << 4),
    (x[s + j + 4] >> 4) | ((x[s + j] >> 6) << 4),
  ];
}

/** `dequantize_row_q4_K` (`hasQh` false) and `dequantize_row_q5_K` (true). */
function dequantizeK45(x: Uint8Array, y: Float32Array, blockBytes: number, hasQh: boolean) {
  for (let b = 0, o = 0, yo = 0; b < y.length / QK_K; b++, o += blockBytes) {
    const d = getF16(x, o), min = getF16(x, o + 2);
    let ql = o + (hasQh ? 48 : 16), u1 = 1, u2 = 2;
    for (let is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      const [sc1, m1] = scaleMinK4(x, o + 4, is), [sc2, m2] = scaleMinK4(x, o + 4, is + 1);
      const d1 = fr(d * sc1), mm1 = fr(min * m1), d2 = fr(d * sc2), mm2 = fr(min * m2);
      for (let l = 0; l < 32; l++) {
        const h = hasQh && x[o + 16 + l] & u1 ? 16 : 0;
        y[yo++] = fr(fr(d1 * ((x[ql + l] & 0xf) + h)) - mm1);
      }
      for (let l = 0; l < 32; l++) {
        const h = hasQh && x[o + 16 + l] & u2 ? 16 : 0;
        y[yo++] = fr(fr(d2 * ((x[ql + l] >> 4) + h)) - mm2);
      }
    }
  }
}

/** `dequantize_row_q4_K`. */
export const dequantizeRowQ4_K: DequantizeRow = (x, y) => dequantizeK45(x, y, 144, false);
/** `dequantize_row_q5_K`. */
export const dequantizeRowQ5_K: DequantizeRow = (x, y) => dequantizeK45(x, y, 176, true);

/** The shared body of `quantize_row_q4_K_ref` (nmax 15) and `quantize_row_q5_K_ref` (31). */
function quantizeK45(x: Float32Array, y: Uint8Array, nmax: 15 | 31): void {
  const bytes = nmax === 15 ? 144 : 176;
  const [rmin, nstep] = nmax === 15 ? [-1, 20] : [-0.5, 15];
  for (let b = 0, o = 0; b < x.length / QK_K; b++, o += bytes) {
    const xo = b * QK_K;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const g = xo + 32 * j;
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[g + l] * x[g + l]));
      const avX = fr(Math.sqrt(fr(sumX2 / 32)));
      for (let l = 0; l < 32; l++) W[l] = fr(avX + Math.abs(x[g + l]));
      const s = makeQkx2Quants(32, nmax, x, g, W, L, 32 * j, rmin, 0.1, nstep, false);
      const m = qkx2Min;
      SCALES[j] = s;
      MINS[j] = m;
      if (s > maxScale) maxScale = s;
      if (m > maxMin) maxMin = m;
    }
    const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
    const s = o + 4; // (12) packed scales
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(fr(invScale * SCALES[j])) & 0xff);
      const lm = Math.min(63, nearestInt(fr(invMin * MINS[j])) & 0xff);
      if (j < 4) {
        y[s + j] = ls;
        y[s + j + 4] = lm;
      } else {
        y[s + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        y[s + j - 4] |= (ls >> 4) << 6;
        y[s + j] |= (lm >> 4) << 6;
      }
    }
    setU16(y, o, toF16(fr(maxScale / 63)));
    setU16(y, o + 2, toF16(fr(maxMin / 63)));
    const dAll = getF16(y, o), mAll = getF16(y, o + 2);
    for (let j = 0; j < 8; j++) {
      const [sc, m] = scaleMinK4(y, s, j);
      const d = fr(dAll * sc);
      if (!d) continue;
      const dm = fr(mAll * m);
      for (let i = 0; i < 32; i++) {
        const l = nearestInt(fr(fr(x[xo + 32 * j + i] + dm) / d));
        L[32 * j + i] = Math.max(0, Math.min(nmax, l));
      }
    }
    if (nmax === 15) {
      for (let j = 0, q = o + 16; j < QK_K; j += 64, q += 32) {
        for (let l = 0; l < 32; l++) y[q + l] = L[j + l] | (L[j + l + 32] << 4);
      }
      continue;
    }
    y.fill(0, o + 16, o + 48); // qh
    let m1 = 1, m2 = 2;
    for (let n = 0, ql = o + 48; n < QK_K; n += 64, ql += 32, m1 <<= 2, m2 <<= 2) {
      for (let j = 0; j < 32; j++) {
        let l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          y[o + 16 + j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          y[o + 16 + j] |= m2;
        }
        y[ql + j] = l1 | (l2 << 4);
      }
    }
  }
}

/** `quantize_row_q4_K_ref`. */
export const quantizeRowQ4_K: QuantizeRow = (x, y) => quantizeK45(x, y, 15);
/** `quantize_row_q5_K_ref`. */
export const quantizeRowQ5_K: QuantizeRow = (x, y) => quantizeK45(x, y, 31);

// ---------------------------------------------------------------------------------------
// Q6_K

/** `dequantize_row_q6_K`. */
export const dequantizeRowQ6_K: DequantizeRow = (x, y) => {
  for (let b = 0, o = 0, yo = 0; b < y.length / QK_K; b++, o += 210) {
    const d = getF16(x, o + 208);
    for (let n = 0; n < 2; n++, yo += 128) {
      const ql = o + 64 * n, qh = o + 128 + 32 * n, sc = o + 192 + 8 * n;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4, h = x[qh + l];
        const q1 = ((x[ql + l] & 0xf) | ((h & 3) << 4)) - 32;
        const q2 = ((x[ql + l + 32] & 0xf) | (((h >> 2) & 3) << 4)) - 32;
        const q3 = ((x[ql + l] >> 4) | (((h >> 4) & 3) << 4)) - 32;
        const q4 = ((x[ql + l + 32] >> 4) | (((h >> 6) & 3) << 4)) - 32;
        y[yo + l] = fr(fr(d * ((x[sc + is] << 24) >> 24)) * q1);
        y[yo + l + 32] = fr(fr(d * ((x[sc + is + 2] << 24) >> 24)) * q2);
        y[yo + l + 64] = fr(fr(d * ((x[sc + is + 4] << 24) >> 24)) * q3);
        y[yo + l + 96] = fr(fr(d * ((x[sc + is + 6] << 24) >> 24)) * q4);
      }
    }
  }
};

/** `quantize_row_q6_K_ref`. */
export const quantizeRowQ6_K: QuantizeRow = (x, y) => {
  for (let b = 0, o = 0; b < x.length / QK_K; b++, o += 210) {
    const xo = b * QK_K;
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      const s = makeQxQuants(16, 32, x, xo + 16 * ib, Ls, 16 * ib);
      SCALES[ib] = s;
      if (Math.abs(s) > maxAbs) {
        maxAbs = Math.abs(s);
        maxScale = s;
      }
    }
    if (maxAbs < 1e-15) {
      y.fill(0, o, o + 210);
      continue;
    }
    const iscale = fr(-128 / maxScale);
    setU16(y, o + 208, toF16(fr(1 / iscale)));
    for (let ib = 0; ib < 16; ib++) {
      y[o + 192 + ib] = Math.min(127, nearestInt(fr(iscale * SCALES[ib]))) & 0xff;
    }
    const dAll = getF16(y, o + 208);
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * ((y[o + 192 + j] << 24) >> 24));
      if (!d) continue;
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(fr(x[xo + 16 * j + i] / d));
        Ls[16 * j + i] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    for (let n = 0; n < 2; n++) {
      const j = 128 * n, ql = o + 64 * n, qh = o + 128 + 32 * n;
      for (let l = 0; l < 32; l++) {
        const a = Ls[j + l], c = Ls[j + l + 32], e = Ls[j + l + 64], g = Ls[j + l + 96];
        y[ql + l] = (a & 0xf) | ((e & 0xf) << 4);
        y[ql + l + 32] = (c & 0xf) | ((g & 0xf) << 4);
        y[qh + l] = (a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((g >> 4) << 6);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------
// Q8_K (activations for the K-quant dot products)

/** `dequantize_row_q8_K`. */
export const dequantizeRowQ8_K: DequantizeRow = (x, y) => {
  const view = new DataView(x.buffer, x.byteOffset, x.byteLength);
  for (let b = 0, o = 0; b < y.length / QK_K; b++, o += 292) {
    const d = view.getFloat32(o, true);
    for (let j = 0; j < QK_K; j++) y[b * QK_K + j] = fr(d * ((x[o + 4 + j] << 24) >> 24));
  }
};

/** `quantize_row_q8_K_ref` (an all-zero block gets zero `bsums` too). */
export const quantizeRowQ8_K: QuantizeRow = (x, y) => {
  const view = new DataView(y.buffer, y.byteOffset, y.byteLength);
  for (let b = 0, o = 0; b < x.length / QK_K; b++, o += 292) {
    const xo = b * QK_K;
    let max = 0, amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[xo + j]);
      if (ax > amax) {
        amax = ax;
        max = x[xo + j];
      }
    }
    if (!amax) {
      y.fill(0, o, o + 292);
      continue;
    }
    const iscale = fr(-127 / max);
    for (let j = 0; j < 16; j++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) {
        const q = Math.min(127, nearestInt(fr(iscale * x[xo + 16 * j + i])));
        y[o + 4 + 16 * j + i] = q & 0xff;
        sum += q;
      }
      view.setInt16(o + 260 + 2 * j, sum, true);
    }
    view.setFloat32(o, fr(1 / iscale), true);
  }
};
