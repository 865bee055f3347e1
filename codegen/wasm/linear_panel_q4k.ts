/**
 * The Q4_K and Q5_K panel of the panel matmul (`linear_panel.ts`): prefill and batches of
 * Q4_K/Q5_K weights (relaxed SIMD; the 4- or 5-bit quants are the i7 operand of the dot
 * product, so no u8 form is needed). Q5_K is Q4_K with a fifth bit per quant from `qh[32]`
 * (bit `2p + h` of `qh[l]` for element `64p + 32h + l`), added as the panel is filled.
 *
 * For each block of 8 weight rows, every 256-element super-block of the rows is unpacked
 * once per call into {@linkcode Q4K_PANEL_BLOCK} bytes:
 * - quants: for each group of 4 columns, one vector of rows 0..3 and one of rows 4..7, each
 *   lane one row's 4 quants as bytes 0..15 (2048 bytes);
 * - the 8 sub-block scales `sc_j` of the 8 rows as i32 lanes, per j two vectors (256 bytes);
 * - the mins as i16 pairs `(m_2k, m_2k+1)` per row and lane, per k two vectors (128 bytes),
 *   so one `i32x4.dot_i16x8_s` with the splat pair `(Σq_x(2k), Σq_x(2k+1))` of a token gives
 *   two sub-blocks' `m·Σq_x` for 4 rows (ggml's `_mm256_madd_epi16(mins, q8sums)`);
 * - the rows' super-block scales d and dmin as f32 (64 bytes).
 *
 * The micro-kernel (8 rows × 2 tokens) then follows ggml's `ggml_vec_dot_q4_K_q8_K` for 8
 * rows at once: per sub-block j the int32 sums `Σ x·q` by one `v128.load32_splat` of a
 * token's 4 activation quants and two dot products per 4 columns, times `sc_j` (i32 lanes)
 * into the super-block's int32 sum; then `acc += f32(sum)·d·d_x − f32(mins)·dmin·d_x`.
 * Integer sums are exact, so each super-block's terms equal the in-register kernel's; the
 * float sums run in a different order (one f32 per row, not four lanes): the two agree to
 * rounding.
 *
 * @module
 */
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
import { f16Lanes } from "./snippets.ts";
import { SCALE_MIN_CONSTS, unpackPairScales, unpackScaleMin } from "./types_k.ts";
import { PAIR_UNITS } from "./q4k_pairs.ts";
import { laneElement } from "./lanes.ts";

/** Byte offsets in one super-block of the Q4_K panel. */
const Q = 0, SC = 2048, MINS = SC + 256, D = MINS + 128, DMIN = D + 32;
/** Bytes of one unpacked super-block of 8 rows. */
export const Q4K_PANEL_BLOCK = DMIN + 32;
/** Tokens per register block: 2 × 2 sub-block sums, 2 × 2 super-block sums, 2 × 2 f32 sums. */
export const Q4K_PANEL_TOKENS = 2;
/**
 * The fewest rows a step sends through the Q4_K panel (`renderers.ts`). g110M shapes, one
 * thread, GMAC/s panel vs in-register: n = 4 0.85x, n = 5 0.65-0.85x (the in-register
 * kernel's 4-token block and one more), n = 6 1.1-1.25x, n = 16 1.5x, n = 256 1.7-1.8x.
 */
export const Q4K_PANEL_MIN_TOKENS = 6;

/**
 * The Q4_K (or Q5_K) panel kind (module doc).
 *
 * @param K Input features (a multiple of 256).
 * @param fp16 Convert the f16 scales with `f32x4.promote_low_f16x8`.
 * @param five Q5_K instead of Q4_K.
 * @param packed Rows interleaved in pairs and repacked (`q4k_pairs.ts`).
 * @returns The kind for `emitPanelMatmul`.
 * @throws {RangeError} when K is not a multiple of 256.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Q4K_PANEL_BLOCK, q4kPanelKind } from "./linear_panel_q4k.ts";
 * assert.equal(q4kPanelKind(768, false).panelBytes, 3 * Q4K_PANEL_BLOCK);
 * ```
 */
export function q4kPanelKind(K: number, fp16: boolean, five = false, packed = false): PanelKind {
  const type = five ? "Q5_K" : "Q4_K";
  const { shape, S, base } = quantPanelBase(type, K, Q4K_PANEL_TOKENS, Q4K_PANEL_BLOCK);
  const nb = shape.nb;
  const qs = five ? 48 : 16; // byte offset of qs[128] in a block (Q5_K: after qh[32] at 16)
  // Repacked pairs are in the lane order (q4k_pairs.ts): byte 16u + j of qs holds elements
  // laneElement(u, j) (low nibble) and laneElement(8 + u, j), with their Q5_K qh bits where
  // the ggml order's vector (p, nib, h) had them, so each 4-column word of a loaded vector
  // goes to its own column group of the panel.
  const lanes = packed;
  const columns = (p: number, nib: number, h: number, e0: number): number | number[] =>
    lanes
      ? [0, 1, 2, 3].map((k) => Q + (laneElement(8 * nib + 2 * p + h, 4 * k) / 4) * 32)
      : Q + (e0 / 4) * 32;
  return {
    ...base,
    locals(f) {
      quantPanelLocals(f, Q4K_PANEL_TOKENS, true);
      for (const l of ["c0f", "c10", "tmp", "qh", "dw4", ...Object.keys(SCALE_MIN_CONSTS)]) {
        f.local(l, "v128");
      }
      if (packed) f.local("c3f", "v128").local("c30", "v128");
      for (let i = 0; i < 4; i++) f.local(`lo${i}`, "v128").local(`sc${i}`, "v128");
      f.comment("constants: nibble and qh-bit masks, the scale-word unpacking masks");
      f.i8x16(new Array(16).fill(0x0f)).set("c0f");
      f.i8x16(new Array(16).fill(0x10)).set("c10");
      if (packed) {
        f.i8x16(new Array(16).fill(0x3f)).set("c3f");
        f.i8x16(new Array(16).fill(0x30)).set("c30");
      }
      for (const [n, v] of Object.entries(SCALE_MIN_CONSTS)) f.i32x4(...v).set(n);
    },
    fill(f, l) {
      f.comment(
        `panel: ${nb} super-blocks × ${Q4K_PANEL_BLOCK} bytes (quants per 4 columns, sc, ` +
          "min pairs, d, dmin; each for rows 0..3 then 4..7)",
      );
      fillBlocks(f, l, shape, () => {
        for (let p = 0; p < 4; p++) {
          for (const nib of [0, 1]) {
            for (const h of [0, 1]) {
              const e0 = 64 * p + 32 * nib + 16 * h; // the vector's first element (ggml)
              const bit = 2 * p + nib; // Q5_K: the qh bit of these elements
              f.comment(
                (lanes
                  ? `lane vector ${8 * nib + 2 * p + h} (lanes.ts)`
                  : `elements ${e0} .. ${e0 + 15}`) +
                  `: ${nib ? "high" : "low"} nibbles` + (five ? ` | qh bit ${bit} << 4` : ""),
              );
              for (let i = 0; i < 4; i++) {
                f.get(`p${i}`).wmem("v128.load", qs + 32 * p + 16 * h, { align: 0 });
                if (nib) f.i32(4).op("i16x8.shr_u");
                f.get("c0f").op("v128.and");
                if (five) {
                  f.get(`p${i}`).wmem("v128.load", 16 + 16 * h, { align: 0 });
                  if (bit < 4) f.i32(4 - bit).op("i16x8.shl");
                  else if (bit > 4) f.i32(bit - 4).op("i16x8.shr_u");
                  f.get("c10").op("v128.and").op("v128.or");
                }
                f.set(`lo${i}`);
              }
              storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], columns(p, nib, h, e0), 32);
            }
          }
        }
        f.comment("sub-block scales and mins of the 4 rows, one row per lane");
        if (packed) {
          const unit = PAIR_UNITS[type];
          for (const i of [0, 2]) unpackPairScales(f, `sc${i}`, `sc${i + 1}`, 0, `p${i}`, unit);
        } else for (let i = 0; i < 4; i++) unpackScaleMin(f, `sc${i}`, 0, `p${i}`);
        for (const half of [0, 1]) {
          for (let i = 0; i < 4; i++) {
            f.get(`sc${i}`).op("i16x8.extend_low_i8x16_u");
            f.op(half ? "i32x4.extend_high_i16x8_u" : "i32x4.extend_low_i16x8_u").set(`lo${i}`);
          }
          storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], SC + 4 * half * 32, 32);
        }
        for (let i = 0; i < 4; i++) f.get(`sc${i}`).op("i16x8.extend_high_i8x16_u").set(`lo${i}`);
        storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], MINS, 32);
        for (const [off, at] of [[0, D], [2, DMIN]]) {
          // Repacked, row 1's d and dmin are at 4 and 6 of its pair (p0, p2), after row 0's.
          const p = packed ? ["p0", "p0", "p2", "p2"] : ["p0", "p1", "p2", "p3"];
          const o = packed ? [off, off + 4, off, off + 4] : [off, off, off, off];
          f16Lanes(f, p, o, "dw4", f.weightMemory, fp16);
          f.get("pp").get("dw4").mem("v128.store", at);
        }
      }, packed);
    },
    micro(f, C) {
      microBlocks(f, C, shape, () => {
        subBlockSums(f, C, S, 32, Q, SC, "q");
        f.comment("mins: Σ_j m_j · Σq_x(j), two sub-blocks per i16 dot product");
        pairDots(f, C, S, 4, MINS, 48);
        addWithMins(f, C, S, D, DMIN);
      });
    },
  };
}
