/**
 * The Q6_K panel of the panel matmul (`linear_panel.ts`): prefill and batches of Q6_K
 * weights (relaxed SIMD). The layout and micro-kernel are those of the Q4_K panel
 * (`linear_panel_q4k.ts`) with Q6_K's fields (ggml `dequantize_row_q6_K`):
 * - quants: 6 bits `ql nibble | qh 2 bits << 4`, kept unsigned (0..63, the i7 operand of
 *   the dot product), per group of 4 columns one vector of rows 0..3 and one of rows 4..7
 *   (2048 bytes);
 * - the 16 signed sub-block scales (16 elements each) as i32 lanes, per j two vectors
 *   (512 bytes), and again as i16 pairs `(sc_2k, sc_2k+1)` (256 bytes) for the offset:
 *   the stored quants are q + 32, so each row's sum takes `- 32 · Σ_j sc_j · Σq_x(j)`, two
 *   sub-blocks per `i32x4.dot_i16x8_s` with the token's per-16 activation sums;
 * - the rows' d as f32 (32 bytes).
 * The micro-kernel (8 rows × 2 tokens): per sub-block four dot products per token and row
 * group, times `sc_j` into the super-block's int32 sum; minus the offset (exact, int32);
 * then `acc += f32(sum) · d · d_x`.
 *
 * @module
 */
import { type PanelKind, storeTransposed } from "./linear_panel.ts";
import {
  eachAcc,
  fillBlocks,
  groupDots,
  microBlocks,
  pairDots,
  quantPanelBase,
  quantPanelLocals,
  scaleInto,
} from "./linear_panel_quant.ts";
import { f16Lanes } from "./snippets.ts";

/** Byte offsets in one super-block of the Q6_K panel. */
const Q = 0, SC = 2048, PAIRS = SC + 512, D = PAIRS + 256;
/** Bytes of one unpacked super-block of 8 rows. */
export const Q6K_PANEL_BLOCK = D + 32;
/** Tokens per register block (as Q4_K's). */
export const Q6K_PANEL_TOKENS = 2;
/** The fewest rows a step sends through the Q6_K panel (`renderers.ts`; as Q4_K's). */
export const Q6K_PANEL_MIN_TOKENS = 6;

/**
 * The Q6_K panel kind (module doc).
 *
 * @param K Input features (a multiple of 256).
 * @param fp16 Convert the f16 scales with `f32x4.promote_low_f16x8`.
 * @returns The kind for `emitPanelMatmul`.
 * @throws {RangeError} when K is not a multiple of 256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Q6K_PANEL_BLOCK, q6kPanelKind } from "./linear_panel_q6k.ts";
 * assert.equal(q6kPanelKind(512, false).panelBytes, 2 * Q6K_PANEL_BLOCK);
 * ```
 */
export function q6kPanelKind(K: number, fp16: boolean): PanelKind {
  const { shape, S, base } = quantPanelBase("Q6_K", K, Q6K_PANEL_TOKENS, Q6K_PANEL_BLOCK);
  const nb = shape.nb;
  return {
    ...base,
    locals(f) {
      quantPanelLocals(f, Q6K_PANEL_TOKENS, true);
      for (const l of ["c0f", "c30", "dw4"]) f.local(l, "v128");
      for (let i = 0; i < 4; i++) f.local(`lo${i}`, "v128").local(`sc${i}`, "v128");
      f.comment("constants: byte masks");
      f.i8x16(new Array(16).fill(0x0f)).set("c0f");
      f.i8x16(new Array(16).fill(0x30)).set("c30");
    },
    fill(f, rb) {
      f.comment(
        `panel: ${nb} super-blocks × ${Q6K_PANEL_BLOCK} bytes (quants + 32 per 4 columns, ` +
          "sc, sc pairs, d; each for rows 0..3 then 4..7)",
      );
      fillBlocks(f, rb, shape, () => {
        for (let g = 0; g < 2; g++) {
          for (let s = 0; s < 4; s++) {
            for (const v of [0, 1]) {
              const e0 = 128 * g + 32 * s + 16 * v; // the vector's first element
              f.comment(
                `elements ${e0} .. ${e0 + 15}: ql nibble | qh bits ${2 * s}..${2 * s + 1} << 4`,
              );
              for (let i = 0; i < 4; i++) {
                f.get(`p${i}`).wmem("v128.load", 64 * g + 32 * (s & 1) + 16 * v, { align: 0 });
                if (s >> 1) f.i32(4).op("i16x8.shr_u");
                f.get("c0f").op("v128.and");
                f.get(`p${i}`).wmem("v128.load", 128 + 32 * g + 16 * v, { align: 0 });
                if (2 * s < 4) f.i32(4 - 2 * s).op("i16x8.shl");
                else if (2 * s > 4) f.i32(2 * s - 4).op("i16x8.shr_u");
                f.get("c30").op("v128.and").op("v128.or").set(`lo${i}`);
              }
              storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], Q + (e0 / 4) * 32, 32);
            }
          }
        }
        f.comment("sub-block scales of the 4 rows (signed), one row per lane");
        for (let i = 0; i < 4; i++) {
          f.get(`p${i}`).wmem("v128.load", 192, { align: 0 }).set(`sc${i}`);
        }
        for (const half of [0, 1]) {
          const ext = half ? "i16x8.extend_high_i8x16_s" : "i16x8.extend_low_i8x16_s";
          for (const q of [0, 1]) {
            for (let i = 0; i < 4; i++) {
              f.get(`sc${i}`).op(ext);
              f.op(q ? "i32x4.extend_high_i16x8_s" : "i32x4.extend_low_i16x8_s").set(`lo${i}`);
            }
            storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], SC + (8 * half + 4 * q) * 32, 32);
          }
          for (let i = 0; i < 4; i++) f.get(`sc${i}`).op(ext).set(`lo${i}`);
          storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], PAIRS + 4 * half * 32, 32);
        }
        f16Lanes(f, ["p0", "p1", "p2", "p3"], [208, 208, 208, 208], "dw4", f.weightMemory, fp16);
        f.get("pp").get("dw4").mem("v128.store", D);
      });
    },
    micro(f, C) {
      microBlocks(f, C, shape, () => {
        eachAcc(C, (c, v) => f.zeroV128().set(`is${c}_${v}`));
        for (let j = 0; j < 16; j++) {
          f.comment(`sub-block ${j}: Σ x·(q + 32) per row, times sc_${j}`);
          eachAcc(C, (c, v) => f.zeroV128().set(`ia${c}_${v}`));
          groupDots(f, C, S, 4 * j, 4, Q);
          scaleInto(f, C, SC + 32 * j);
        }
        f.comment("offset: - 32 · Σ_j sc_j · Σq_x(j), two sub-blocks per i16 dot product");
        pairDots(f, C, S, 8, PAIRS, 16);
        f.comment("acc += f32(sum - 32 · offset) · d · d_x");
        f.get("pp").mem("v128.load", D).set("w0").get("pp").mem("v128.load", D + 16).set("w1");
        for (let c = 0; c < C; c++) {
          f.get("pd").mem("v128.load32_splat", c * S).set("xs");
          for (const v of [0, 1]) {
            const acc = `acc${c}_${v}`;
            f.get(acc).get(`is${c}_${v}`).get(`ia${c}_${v}`).i32(5).op("i32x4.shl");
            f.op("i32x4.sub").op("f32x4.convert_i32x4_s");
            f.get(`w${v}`).get("xs").op("f32x4.mul").op("f32x4.mul").op("f32x4.add").set(acc);
          }
        }
      });
    },
  };
}
