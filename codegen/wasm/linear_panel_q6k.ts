/**
 * The panel of the K-quants with 16-element sub-blocks (Q6_K, Q3_K, Q2_K) for the panel
 * matmul (`linear_panel.ts`): prefill and batches of their weights (relaxed SIMD). The
 * layout and micro-kernel are those of the Q4_K panel (`linear_panel_q4k.ts`) with 16
 * sub-blocks per super-block (ggml `dequantize_row_q6_K`, `_q3_K`, `_q2_K`):
 * - quants, kept unsigned (the i7 operand of the dot product), per group of 4 columns one
 *   vector of rows 0..3 and one of rows 4..7 (2048 bytes): Q6_K `ql nibble | qh 2 bits << 4`
 *   (0..63, stored q + 32), Q3_K `q 2 bits | hmask bit << 2` (0..7, stored q + 4), Q2_K its
 *   2 bits (0..3);
 * - the 16 sub-block scales (Q6_K 8-bit, Q3_K 6-bit signed; Q2_K 4-bit) as i32 lanes, per j
 *   two vectors (512 bytes);
 * - i16 pairs per 2 sub-blocks (256 bytes), one `i32x4.dot_i16x8_s` with the token's per-16
 *   activation sums each: Q6_K and Q3_K the scales again, for the offset of their stored
 *   quants (each row's sum takes `- 32 · Σ_j sc_j · Σq_x(j)`, Q3_K `- 4 · ...`); Q2_K its
 *   4-bit mins, for `- dmin · Σ_j m_j · Σq_x(j)`;
 * - the rows' d as f32 (32 bytes), and Q2_K's dmin (32 bytes).
 * The micro-kernel (8 rows × 2 tokens, from 6 rows, as Q4_K's): per sub-block four dot
 * products per token and row group, times `sc_j` into the super-block's int32 sum; minus the
 * offset (exact, int32) or the mins; then `acc += f32(sum) · d · d_x` (Q2_K
 * `- f32(mins) · dmin · d_x`).
 *
 * @module
 */
import type { WasmFunc } from "../wasm_asm.ts";
import { type PanelKind, storeTransposed } from "./linear_panel.ts";
import {
  addWithMins,
  fillBlocks,
  microBlocks,
  pairDots,
  quantPanelBase,
  quantPanelLocals,
  subBlockSums,
} from "./linear_panel_quant.ts";
import { Q4K_PANEL_TOKENS } from "./linear_panel_q4k.ts";
import { f16Lanes } from "./snippets.ts";
import { unpackQ3Scales } from "./types_k.ts";
import { PACKED_CONSTS, pushPackedVector, q6kLaneVector } from "./q6k_pack.ts";
import { laneElement } from "./lanes.ts";

/** Byte offsets in one super-block of the panel (DMIN: Q2_K only). */
const Q = 0, SC = 2048, PAIRS = SC + 512, D = PAIRS + 256, DMIN = D + 32;
/** Bytes of one unpacked super-block of 8 rows of Q6_K or Q3_K (Q2_K: 32 more, its dmin). */
export const Q6K_PANEL_BLOCK = D + 32;

/** The weight types of this panel. */
export type K16Type = "Q6_K" | "Q3_K" | "Q2_K";

/** What differs between the three types. */
interface K16Fields {
  /** Byte offset of d (f16) in a block. */
  d: number;
  /** Q6_K, Q3_K: log2 of the offset of the stored quants; Q2_K: the byte offset of dmin. */
  offsetShift?: number;
  dmin?: number;
  /** Whether the scales are signed. */
  signed: boolean;
  /** The i8x16 splat constants it uses (local name, byte). */
  consts: [string, number][];
  /** What the quants of elements 128g + 32s + 16v .. + 15 are made of, for the comments. */
  describe(g: number, s: number): string;
  /**
   * Where the 4-column words of vector (g, s, v) go in the panel, when not at elements
   * 128g + 32s + 16v .. + 15 (the lane order of packed Q6_K).
   */
  columns?(g: number, s: number, v: number): number[];
  /** Pushes the quants of elements 128g + 32s + 16v .. + 15 of the row at `p`. */
  quants(f: WasmFunc, p: string, g: number, s: number, v: number): void;
  /** Sets `dst` to the 16 sub-block scales (bytes) of the row at `p`. */
  scales(f: WasmFunc, p: string, dst: string): void;
}

/** Pushes `v`'s bit `from` moved to bit `to` (16-bit shifts), masked by `mask`. */
function moveBit(f: WasmFunc, from: number, to: number, mask: string): void {
  if (to > from) f.i32(to - from).op("i16x8.shl");
  else if (from > to) f.i32(from - to).op("i16x8.shr_u");
  f.get(mask).op("v128.and");
}

const FIELDS: Record<K16Type, K16Fields> = {
  Q6_K: {
    d: 208,
    offsetShift: 5,
    signed: true,
    consts: [["c0f", 0x0f], ["c30", 0x30]],
    describe: (_g, s) => `ql nibble | qh bits ${2 * s}..${2 * s + 1} << 4`,
    quants(f, p, g, s, v) {
      f.get(p).wmem("v128.load", 64 * g + 32 * (s & 1) + 16 * v, { align: 0 });
      if (s >> 1) f.i32(4).op("i16x8.shr_u");
      f.get("c0f").op("v128.and");
      f.get(p).wmem("v128.load", 128 + 32 * g + 16 * v, { align: 0 });
      moveBit(f, 2 * s, 4, "c30"); // ((qh >> 2s) & 3) << 4
      f.op("v128.or");
    },
    scales(f, p, dst) {
      f.get(p).wmem("v128.load", 192, { align: 0 }).set(dst);
    },
  },
  Q3_K: {
    d: 108,
    offsetShift: 2,
    signed: true,
    consts: [["c03", 0x03], ["c04", 0x04]],
    describe: (g, s) => `qs bits ${2 * s}..${2 * s + 1} | hmask bit ${4 * g + s} << 2`,
    quants(f, p, g, s, v) {
      f.get(p).wmem("v128.load", 32 + 32 * g + 16 * v, { align: 0 });
      if (s) f.i32(2 * s).op("i16x8.shr_u");
      f.get("c03").op("v128.and");
      f.get(p).wmem("v128.load", 16 * v, { align: 0 });
      moveBit(f, 4 * g + s, 2, "c04"); // hmask bit 4g + s << 2
      f.op("v128.or");
    },
    scales(f, p, dst) {
      unpackQ3Scales(f, dst, 0, p);
    },
  },
  Q2_K: {
    d: 80,
    dmin: 82,
    signed: false,
    consts: [["c0f", 0x0f], ["c03", 0x03]],
    describe: (_g, s) => `qs bits ${2 * s}..${2 * s + 1}`,
    quants(f, p, g, s, v) {
      f.get(p).wmem("v128.load", 16 + 32 * g + 16 * v, { align: 0 });
      if (s) f.i32(2 * s).op("i16x8.shr_u");
      f.get("c03").op("v128.and");
    },
    scales(f, p, dst) {
      f.get(p).wmem("v128.load", 0, { align: 0 }).get("c0f").op("v128.and").set(dst);
    },
  },
};

/**
 * Q6_K packed at load (`q6k_pack.ts`): vector i of part p (at 48p: i < 3 the low 6 bits of its
 * own vector, i = 3 the top 2 bits of all three) is lane vector `4i + p` (`lanes.ts`). The
 * fill walks (g, s, v) as the vectors' indices: the vector i = 2(s >> 1) + v of part
 * p = 2g + (s & 1), its 4-column words stored where their elements go (`columns`).
 */
const Q6_K_PACKED_FIELDS: K16Fields = {
  ...FIELDS.Q6_K,
  consts: PACKED_CONSTS,
  describe: (g, s) => `packed part ${2 * g + (s & 1)}`,
  quants(f, p, g, s, v) {
    const at = 48 * (2 * g + (s & 1));
    pushPackedVector(f, 2 * (s >> 1) + v, (k) => {
      f.get(p).wmem("v128.load", at + 16 * k, { align: 0 });
    });
  },
  columns(g, s, v) {
    const lane = q6kLaneVector(2 * g + (s & 1), 2 * (s >> 1) + v);
    return [0, 1, 2, 3].map((k) => Q + (laneElement(lane, 4 * k) / 4) * 32);
  },
};

/**
 * The Q6_K (Q3_K, Q2_K) panel kind (module doc).
 *
 * @param K Input features (a multiple of 256).
 * @param fp16 Convert the f16 scales with `f32x4.promote_low_f16x8`.
 * @param type Q6_K (default), Q3_K or Q2_K.
 * @param packed Q6_K packed at load (`q6k_pack.ts`).
 * @returns The kind for `emitPanelMatmul`.
 * @throws {RangeError} when K is not a multiple of 256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Q6K_PANEL_BLOCK, q6kPanelKind } from "./linear_panel_q6k.ts";
 * assert.equal(q6kPanelKind(512, false).panelBytes, 2 * Q6K_PANEL_BLOCK);
 * assert.equal(q6kPanelKind(512, false, "Q2_K").panelBytes, 2 * (Q6K_PANEL_BLOCK + 32));
 * ```
 */
export function q6kPanelKind(
  K: number,
  fp16: boolean,
  type: K16Type = "Q6_K",
  packed = false,
): PanelKind {
  const t = packed && type === "Q6_K" ? Q6_K_PACKED_FIELDS : FIELDS[type];
  const block = t.dmin === undefined ? Q6K_PANEL_BLOCK : DMIN + 32;
  const { shape, S, base } = quantPanelBase(type, K, Q4K_PANEL_TOKENS, block);
  const nb = shape.nb;
  const ext = t.signed ? "s" : "u";
  return {
    ...base,
    locals(f) {
      quantPanelLocals(f, Q4K_PANEL_TOKENS, true);
      for (const [l] of t.consts) f.local(l, "v128");
      f.local("dw4", "v128");
      if (type === "Q3_K") { for (const l of ["u0", "u1", "u2"]) f.local(l, "i32"); }
      for (let i = 0; i < 4; i++) f.local(`lo${i}`, "v128").local(`sc${i}`, "v128");
      f.comment("constants: byte masks");
      for (const [l, v] of t.consts) f.i8x16(new Array(16).fill(v)).set(l);
    },
    fill(f, l) {
      f.comment(
        `panel: ${nb} super-blocks × ${block} bytes (quants${
          t.offsetShift ? ` + ${1 << t.offsetShift}` : ""
        } per 4 columns, sc, ` +
          `${t.dmin === undefined ? "sc" : "min"} pairs, d${t.dmin === undefined ? "" : ", dmin"}` +
          "; each for rows 0..3 then 4..7)",
      );
      fillBlocks(f, l, shape, () => {
        for (let g = 0; g < 2; g++) {
          for (let s = 0; s < 4; s++) {
            for (const v of [0, 1]) {
              const e0 = 128 * g + 32 * s + 16 * v; // the vector's first element
              f.comment(
                t.columns
                  ? `${t.describe(g, s)}, vector ${2 * (s >> 1) + v} (lane order, lanes.ts)`
                  : `elements ${e0} .. ${e0 + 15}: ${t.describe(g, s)}`,
              );
              for (let i = 0; i < 4; i++) {
                t.quants(f, `p${i}`, g, s, v);
                f.set(`lo${i}`);
              }
              storeTransposed(
                f,
                ["lo0", "lo1", "lo2", "lo3"],
                t.columns?.(g, s, v) ?? Q + (e0 / 4) * 32,
                32,
              );
            }
          }
        }
        f.comment(
          `sub-block scales of the 4 rows (${t.signed ? "signed" : "unsigned"}), one row per lane`,
        );
        for (let i = 0; i < 4; i++) t.scales(f, `p${i}`, `sc${i}`);
        for (const half of [0, 1]) {
          const ext16 = `i16x8.extend_${half ? "high" : "low"}_i8x16_${ext}`;
          for (const q of [0, 1]) {
            for (let i = 0; i < 4; i++) {
              f.get(`sc${i}`).op(ext16);
              f.op(`i32x4.extend_${q ? "high" : "low"}_i16x8_${ext}`).set(`lo${i}`);
            }
            storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], SC + (8 * half + 4 * q) * 32, 32);
          }
        }
        if (t.dmin !== undefined) {
          f.comment("the 4-bit mins (high nibbles of scales[16])");
          for (let i = 0; i < 4; i++) {
            f.get(`p${i}`).wmem("v128.load", 0, { align: 0 }).i32(4).op("i16x8.shr_u");
            f.get("c0f").op("v128.and").set(`sc${i}`);
          }
        }
        for (const half of [0, 1]) {
          const ext16 = `i16x8.extend_${half ? "high" : "low"}_i8x16_${ext}`;
          for (let i = 0; i < 4; i++) f.get(`sc${i}`).op(ext16).set(`lo${i}`);
          storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], PAIRS + 4 * half * 32, 32);
        }
        const ds: [number, number][] = [[t.d, D]];
        if (t.dmin !== undefined) ds.push([t.dmin, DMIN]);
        for (const [off, at] of ds) {
          f16Lanes(f, ["p0", "p1", "p2", "p3"], [off, off, off, off], "dw4", f.weightMemory, fp16);
          f.get("pp").get("dw4").mem("v128.store", at);
        }
      });
    },
    micro(f, C) {
      microBlocks(f, C, shape, () => {
        const q = t.offsetShift ? `(q + ${1 << t.offsetShift})` : "q";
        subBlockSums(f, C, S, 16, Q, SC, q);
        if (t.offsetShift !== undefined) {
          const k = 1 << t.offsetShift;
          f.comment(`offset: - ${k} · Σ_j sc_j · Σq_x(j), two sub-blocks per i16 dot product`);
          pairDots(f, C, S, 8, PAIRS, 16);
          f.comment(`acc += f32(sum - ${k} · offset) · d · d_x`);
          f.get("pp").mem("v128.load", D).set("w0").get("pp").mem("v128.load", D + 16).set("w1");
          for (let c = 0; c < C; c++) {
            f.get("pd").mem("v128.load32_splat", c * S).set("xs");
            for (const v of [0, 1]) {
              const acc = `acc${c}_${v}`;
              f.get(acc).get(`is${c}_${v}`).get(`ia${c}_${v}`).i32(t.offsetShift).op("i32x4.shl");
              f.op("i32x4.sub").op("f32x4.convert_i32x4_s");
              f.get(`w${v}`).get("xs").op("f32x4.mul").op("f32x4.mul").op("f32x4.add").set(acc);
            }
          }
          return;
        }
        f.comment("mins: Σ_j m_j · Σq_x(j), two sub-blocks per i16 dot product");
        pairDots(f, C, S, 8, PAIRS, 16);
        addWithMins(f, C, S, D, DMIN);
      });
    },
  };
}
