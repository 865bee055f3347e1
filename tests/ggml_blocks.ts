/**
 * Test helper: a plain scalar decoder of ggml's block formats (one loop per type, written
 * from ggml-common.h and checked against `gguf.quants.dequantize` on the fixtures of
 * python/ggml_block_fixtures.py), and random blocks with finite scales, for testing the
 * WASM kernels against dequantise-then-f32.
 *
 * @module
 */
import { f16ToF32 } from "../core/numbers.ts";

/** Types this helper decodes: [block elements, block bytes]. */
export const BLOCK_GEOMETRY: Record<string, [number, number]> = {
  F32: [1, 4],
  F16: [1, 2],
  BF16: [1, 2],
  Q4_0: [32, 18],
  Q4_1: [32, 20],
  Q5_0: [32, 22],
  Q5_1: [32, 24],
  Q8_0: [32, 34],
  Q2_K: [256, 84],
  Q3_K: [256, 110],
  Q4_K: [256, 144],
  Q5_K: [256, 176],
  Q6_K: [256, 210],
};

/** Offsets of the f16 scale fields of a block: `[offset, signed]` (signed d, or min ≥ 0). */
const SCALES: Record<string, [number, boolean][]> = {
  Q4_0: [[0, true]],
  Q4_1: [[0, true], [2, false]],
  Q5_0: [[0, true]],
  Q5_1: [[0, true], [2, false]],
  Q8_0: [[0, true]],
  Q2_K: [[80, true], [82, false]],
  Q3_K: [[108, true]],
  Q4_K: [[0, true], [2, false]],
  Q5_K: [[0, true], [2, false]],
  Q6_K: [[208, true]],
};

/** Q4_K/Q5_K 6-bit scale and min j of the 12 scale bytes at `p` (ggml get_scale_min_k4). */
function scaleMinK4(b: Uint8Array, p: number, j: number): [number, number] {
  if (j < 4) return [b[p + j] & 63, b[p + j + 4] & 63];
  return [
    (b[p + j + 4] & 0xf) | ((b[p + j - 4] >> 6) << 4),
    (b[p + j + 4] >> 4) | ((b[p + j] >> 6) << 4),
  ];
}

/**
 * Decodes `n` elements of a ggml tensor to f32 (scalar reference).
 *
 * @param type Type name (`Q4_K`, ...).
 * @param b The bytes.
 * @param n Element count (a multiple of the block size).
 * @returns The values.
 */
export function dequantizeRef(type: string, b: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const h = (o: number) => f16ToF32(dv.getUint16(o, true));
  const [qk, bytes] = BLOCK_GEOMETRY[type];
  for (let blk = 0; blk < n / qk; blk++) {
    const o = blk * bytes, y = blk * qk;
    switch (type) {
      case "F32":
        out[blk] = dv.getFloat32(o, true);
        break;
      case "F16":
        out[blk] = h(o);
        break;
      case "BF16":
        out[blk] = new Float32Array(new Uint32Array([dv.getUint16(o, true) << 16]).buffer)[0];
        break;
      case "Q8_0":
        for (let j = 0; j < 32; j++) out[y + j] = h(o) * dv.getInt8(o + 2 + j);
        break;
      case "Q4_0":
      case "Q4_1":
      case "Q5_0":
      case "Q5_1": {
        const hasM = type.endsWith("_1"), five = type.startsWith("Q5");
        const qs = o + 2 + (hasM ? 2 : 0) + (five ? 4 : 0);
        const qh = five ? dv.getUint32(o + (hasM ? 4 : 2), true) : 0;
        for (let j = 0; j < 32; j++) {
          let q = j < 16 ? b[qs + j] & 0xf : b[qs + j - 16] >> 4;
          if (five) q |= ((qh >>> j) & 1) << 4;
          out[y + j] = hasM ? q * h(o) + h(o + 2) : (q - (five ? 16 : 8)) * h(o);
        }
        break;
      }
      case "Q2_K":
        for (let e = 0; e < 256; e++) {
          const g = e >> 7, s = (e >> 5) & 3, i = e & 31;
          const q = (b[o + 16 + 32 * g + i] >> (2 * s)) & 3;
          const sc = b[o + (e >> 4)];
          out[y + e] = h(o + 80) * (sc & 0xf) * q - h(o + 82) * (sc >> 4);
        }
        break;
      case "Q3_K":
        for (let e = 0; e < 256; e++) {
          const g = e >> 7, s = (e >> 5) & 3, i = e & 31, j = e >> 4;
          const low = (b[o + 32 + 32 * g + i] >> (2 * s)) & 3;
          const hbit = (b[o + i] >> (e >> 5)) & 1;
          const ls = j < 8 ? b[o + 96 + j] & 0xf : b[o + 96 + j - 8] >> 4;
          const hs = (b[o + 104 + (j & 3)] >> (2 * (j >> 2))) & 3;
          out[y + e] = h(o + 108) * ((ls | (hs << 4)) - 32) * (low - (hbit ? 0 : 4));
        }
        break;
      case "Q4_K":
      case "Q5_K": {
        const five = type === "Q5_K", qs = o + (five ? 48 : 16);
        for (let e = 0; e < 256; e++) {
          const g = e >> 6, hi = (e >> 5) & 1, i = e & 31;
          let q = (b[qs + 32 * g + i] >> (4 * hi)) & 0xf;
          if (five) q |= ((b[o + 16 + i] >> (e >> 5)) & 1) << 4;
          const [sc, m] = scaleMinK4(b, o + 4, e >> 5);
          out[y + e] = h(o) * sc * q - h(o + 2) * m;
        }
        break;
      }
      case "Q6_K":
        for (let e = 0; e < 256; e++) {
          const g = e >> 7, r = e & 127, hl = r >> 6, i64 = r & 63, s = r >> 5, i = r & 31;
          const ql = (b[o + 64 * g + i64] >> (4 * hl)) & 0xf;
          const qh = (b[o + 128 + 32 * g + i] >> (2 * s)) & 3;
          out[y + e] = h(o + 208) * dv.getInt8(o + 192 + (e >> 4)) * ((ql | (qh << 4)) - 32);
        }
        break;
      default:
        throw new Error(`dequantizeRef: no decoder for ${type}`);
    }
  }
  return out;
}

/** A seeded xorshift32 generator of uniform numbers in [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

const f16Bits = (v: number) => {
  const f = new Float32Array([v]);
  const u = new Uint32Array(f.buffer)[0];
  // Values here are normal f16 numbers: truncate the mantissa (exactness does not matter).
  const sign = (u >>> 16) & 0x8000, exp = ((u >>> 23) & 0xff) - 127 + 15;
  return exp <= 0 ? sign : sign | (exp << 10) | ((u >>> 13) & 0x3ff);
};

/**
 * Random tensor bytes of `rows × K` elements of a type: uniform random quant bytes, f16
 * scales in [-scale, scale] (mins in [0, scale]); float types get values in [-1, 1].
 *
 * @param type Type name.
 * @param rows Rows.
 * @param K Elements per row.
 * @param rand Uniform generator.
 * @param scale Scale magnitude (default 0.02).
 * @returns The bytes.
 */
export function randomBlocks(
  type: string,
  rows: number,
  K: number,
  rand: () => number,
  scale = 0.02,
): Uint8Array {
  const [qk, bytes] = BLOCK_GEOMETRY[type];
  const nb = (rows * K) / qk;
  const b = new Uint8Array(nb * bytes);
  const dv = new DataView(b.buffer);
  if (type === "F32") {
    for (let i = 0; i < nb; i++) dv.setFloat32(4 * i, 2 * rand() - 1, true);
    return b;
  }
  if (type === "F16" || type === "BF16") {
    for (let i = 0; i < nb; i++) {
      const v = 2 * rand() - 1;
      dv.setUint16(
        2 * i,
        type === "F16" ? f16Bits(v) : new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16,
        true,
      );
    }
    return b;
  }
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(rand() * 256);
  for (let blk = 0; blk < nb; blk++) {
    for (const [off, signed] of SCALES[type]) {
      const v = signed ? (2 * rand() - 1) * scale : rand() * scale;
      dv.setUint16(blk * bytes + off, f16Bits(v), true);
    }
  }
  return b;
}
