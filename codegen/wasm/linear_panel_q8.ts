/**
 * The panel of the 32-element ggml types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) for the panel
 * matmul (`linear_panel.ts`): prefill and batches of Q8_0 weights where the runtime's relaxed
 * dot product takes its i7 operand as u8 (`BlockCtx.dotU8`, x86 `vpdpbusd`), and of the 4-
 * and 5-bit types with relaxed SIMD (their quants 0..15 or 0..31 are i7 already).
 *
 * For each block of 8 weight rows, every 32-quant block b of the rows is repacked once per
 * call into 288 bytes (320 with a min): for each group g of 4 columns (k = 32b + 4g .. + 3),
 * one vector of rows 0..3 and one of rows 4..7, each lane holding one row's 4 quants
 * (`w xor 0x80`, the u8 form of `types_q32.ts`), then the 8 rows' scales d as two f32x4
 * (and the mins m of Q4_1/Q5_1 as two more). The micro-kernel then takes, per group, one
 * `v128.load32_splat` of a token's 4 activation quants and two dot products,
 * `acc[row] += Σ_4 x·(w + 128)` for 8 rows at once: llama.cpp's repacked "Q8_0 4x4" layout
 * (`ggml-cpu/repack.cpp`, `block_q8_0x4`) with the outer product of the float panel. Each
 * row's int32 block sum starts at the token's `-128 · Σq` (the activation record's lanes,
 * summed), so it is exactly `Σ x·w`; then `acc += f32(sum) · d_w · d_x`.
 *
 * The 4- and 5-bit types (ggml `dequantize_row_q4_0` .. `_q5_1`: element j of a block is
 * the low nibble of qs[j], element j + 16 the high one, Q5's with bit j or j + 16 of qh as
 * bit 4) keep those quants in the lanes. Q4_0 and Q5_0 (x = (q - 8)·d, (q - 16)·d) start
 * each sum at `-8 · Σq` or `-16 · Σq`, the same record's lanes summed and shifted right by 4
 * or 3 (exact: `-128 · Σq` is a multiple of 128); Q4_1 and Q5_1 (x = q·d + m) start at 0 and
 * add `m · s`, s = `d_x · Σq` the record's second float.
 *
 * Per (row, token) the block sums are added in block order into one f32 per row, where the
 * in-register kernel keeps 4 lane sums to the end: the two agree to rounding.
 *
 * @module
 */
import { type PanelKind, storeTransposed } from "./linear_panel.ts";
import {
  fillBlocks,
  groupDots,
  microBlocks,
  quantPanelBase,
  quantPanelLocals,
} from "./linear_panel_quant.ts";
import { f16Lanes } from "./snippets.ts";
import { BITS } from "./types_q32.ts";

/** Bytes of one repacked 32-quant block of 8 rows: 8 groups × 2 vectors, 2 f32x4 scales. */
export const Q8_PANEL_BLOCK = 8 * 32 + 32;
/** Tokens per register block: 2 × 3 int32 sums, 2 × 3 f32 accumulators, 2 weights, 1 splat. */
export const Q8_PANEL_TOKENS = 3;
/**
 * The fewest rows a step sends through the Q8_0 panel (`renderers.ts`). g110M shapes, one
 * thread, GMAC/s panel vs in-register: n = 2 1.0-1.1x, n = 4 0.85-1.1x (the in-register
 * kernel's 4-token block), n = 6 1.5-1.7x, n = 16 1.45-1.55x, n = 256 1.65-1.75x.
 */
export const Q8_PANEL_MIN_TOKENS = 5;
/**
 * The fewest rows a step sends through the Q4_0/Q4_1/Q5_0/Q5_1 panel (`renderers.ts`): their
 * in-register kernel decodes nibbles (and qh bits) per register block of tokens, so the
 * panel wins from 2 rows. g110M 2048x768, one thread, GMAC/s panel vs in-register: n = 2
 * 1.2-1.6x, n = 3 1.4-2.2x, n = 4 1.2-1.4x, n = 16 2.0-2.4x, n = 256 2.5-3.2x.
 */
export const Q4_PANEL_MIN_TOKENS = 2;

/** The types of this panel. */
export type Q32Type = "Q8_0" | "Q4_0" | "Q4_1" | "Q5_0" | "Q5_1";

/**
 * Byte offsets in a block (qs, and qh, m when the type has them) and the right shift of
 * `-128 · Σq` that starts each sum (null: the type has a min and starts at 0).
 */
const Q32: Record<Q32Type, { qs: number; qh?: number; m?: number; shift: number | null }> = {
  Q8_0: { qs: 2, shift: 0 },
  Q4_0: { qs: 2, shift: 4 },
  Q4_1: { qs: 4, m: 2, shift: null },
  Q5_0: { qs: 6, qh: 2, shift: 3 },
  Q5_1: { qs: 8, qh: 4, m: 2, shift: null },
};

/**
 * The Q8_0 (Q4_0, Q4_1, Q5_0, Q5_1) panel kind (module doc).
 *
 * @param K Input features (a multiple of 32).
 * @param fp16 Convert the f16 scales with `f32x4.promote_low_f16x8`.
 * @param type Q8_0 (default) or one of the 4- and 5-bit types.
 * @returns The kind for `emitPanelMatmul`.
 * @throws {RangeError} when K is not a multiple of 32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { q8PanelKind } from "./linear_panel_q8.ts";
 * assert.equal(q8PanelKind(768, false).panelBytes, 24 * 288);
 * assert.equal(q8PanelKind(768, false, "Q5_1").panelBytes, 24 * 320);
 * ```
 */
export function q8PanelKind(K: number, fp16: boolean, type: Q32Type = "Q8_0"): PanelKind {
  const t = Q32[type];
  const block = Q8_PANEL_BLOCK + (t.m === undefined ? 0 : 32);
  const { shape, S, base } = quantPanelBase(type, K, Q8_PANEL_TOKENS, block);
  const nb = shape.nb;
  const q8 = type === "Q8_0";
  return {
    ...base,
    locals(f) {
      quantPanelLocals(f, Q8_PANEL_TOKENS, false);
      f.local(q8 ? "c80" : "c0f", "v128").local("dw4", "v128");
      if (t.qh !== undefined) f.local("c10", "v128").local("bits", "v128").local("qh", "v128");
      for (let i = 0; i < 4; i++) f.local(`lo${i}`, "v128").local(`hi${i}`, "v128");
      if (q8) {
        f.comment("0x80 in every byte: w xor 0x80 = w + 128 as u8 (the u8 dot product)");
        f.i8x16(new Array(16).fill(0x80)).set("c80");
      } else {
        f.comment(
          "constants: low-nibble mask" +
            (t.qh === undefined ? "" : ", bit 4, one bit per byte lane"),
        );
        f.i8x16(new Array(16).fill(0x0f)).set("c0f");
        if (t.qh !== undefined) {
          f.i8x16(new Array(16).fill(0x10)).set("c10");
          f.i8x16(BITS).set("bits");
        }
      }
    },
    fill(f, l) {
      f.comment(
        `panel: ${nb} blocks × ${block} bytes; per 4 columns, rows 0..3 and 4..7 ` +
          `(4 quants${q8 ? " + 128" : ""} per lane); then d of rows 0..3 and 4..7 (f32)` +
          (t.m === undefined ? "" : ", then m"),
      );
      fillBlocks(f, l, shape, () => {
        for (let i = 0; i < 4; i++) {
          for (const [half, l] of [[0, "lo"], [1, "hi"]] as const) {
            if (q8) {
              f.get(`p${i}`).wmem("v128.load", 2 + 16 * half, { align: 0 });
              f.get("c80").op("v128.xor").set(`${l}${i}`);
              continue;
            }
            f.comment(
              `row ${i}: quants ${16 * half} .. ${16 * half + 15}, the ${l} nibbles` +
                (t.qh === undefined ? "" : ` | qh bits ${16 * half} .. ${16 * half + 15} << 4`),
            );
            f.get(`p${i}`).wmem("v128.load", t.qs, { align: 0 });
            if (half) f.i32(4).op("i16x8.shr_u");
            f.get("c0f").op("v128.and");
            if (t.qh !== undefined) {
              if (half === 0) {
                f.get(`p${i}`).wmem("v128.load32_splat", t.qh, { align: 0 }).set("qh");
              }
              const lanes = [...new Array(8).fill(2 * half), ...new Array(8).fill(2 * half + 1)];
              f.get("qh").get("qh").shuffle(lanes).get("bits").op("v128.and").get("bits");
              f.op("i8x16.eq").get("c10").op("v128.and").op("v128.or");
            }
            f.set(`${l}${i}`);
          }
        }
        storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], 0, 32);
        storeTransposed(f, ["hi0", "hi1", "hi2", "hi3"], 4 * 32, 32);
        f16Lanes(f, ["p0", "p1", "p2", "p3"], [0, 0, 0, 0], "dw4", f.weightMemory, fp16);
        f.get("pp").get("dw4").mem("v128.store", 8 * 32);
        if (t.m !== undefined) {
          f16Lanes(f, ["p0", "p1", "p2", "p3"], [t.m, t.m, t.m, t.m], "dw4", f.weightMemory, fp16);
          f.get("pp").get("dw4").mem("v128.store", Q8_PANEL_BLOCK);
        }
      });
    },
    micro(f, C) {
      microBlocks(f, C, shape, () => {
        for (let c = 0; c < C; c++) {
          if (t.shift === null) {
            for (const v of [0, 1]) f.zeroV128().set(`ia${c}_${v}`);
            continue;
          }
          const k = 128 >> t.shift;
          f.comment(
            `token ${c}: its block's -${k} · Σq (the record's -128 · Σq${
              t.shift ? ` >> ${t.shift}` : ""
            }), in every lane`,
          );
          f.get("pd").mem("v128.load32_splat", c * S + 24, { align: 0 });
          if (t.shift) f.i32(t.shift).op("i32x4.shr_s");
          f.tee(`ia${c}_0`).set(`ia${c}_1`);
        }
        groupDots(f, C, S, 0, 8, 0);
        f.comment("acc += f32(sum) · d_w · d_x");
        f.get("pp").mem("v128.load", 256).set("w0").get("pp").mem("v128.load", 272).set("w1");
        for (let c = 0; c < C; c++) {
          f.get("pd").mem("v128.load32_splat", c * S).set("xs");
          for (const v of [0, 1]) {
            const acc = `acc${c}_${v}`;
            f.get(`ia${c}_${v}`).op("f32x4.convert_i32x4_s").get(`w${v}`).get("xs").op("f32x4.mul");
            f.get(acc).op("f32x4.relaxed_madd").set(acc);
          }
        }
        if (t.m === undefined) return;
        f.comment("acc += m_w · s_x (s = d_x · Σq, the record's second f32)");
        f.get("pp").mem("v128.load", Q8_PANEL_BLOCK).set("w0");
        f.get("pp").mem("v128.load", Q8_PANEL_BLOCK + 16).set("w1");
        for (let c = 0; c < C; c++) {
          f.get("pd").mem("v128.load32_splat", c * S + 4).set("xs");
          for (const v of [0, 1]) {
            const acc = `acc${c}_${v}`;
            f.get(`w${v}`).get("xs").get(acc).op("f32x4.relaxed_madd").set(acc);
          }
        }
      });
    },
  };
}
