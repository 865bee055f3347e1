/**
 * The Q8_0 and Q4_0 panel of the panel matmul (`linear_panel.ts`): prefill and batches of
 * Q8_0 weights where the runtime's relaxed dot product takes its i7 operand as u8
 * (`BlockCtx.dotU8`, x86 `vpdpbusd`), and of Q4_0 weights with relaxed SIMD (its nibbles
 * 0..15 are i7 already).
 *
 * For each block of 8 weight rows, every 32-quant block b of the rows is repacked once per
 * call into 288 bytes: for each group g of 4 columns (k = 32b + 4g .. + 3), one vector of
 * rows 0..3 and one of rows 4..7, each lane holding one row's 4 quants (`w xor 0x80`, the
 * u8 form of `types_q32.ts`), then the 8 rows' scales d as two f32x4. The micro-kernel then
 * takes, per group, one `v128.load32_splat` of a token's 4 activation quants and two dot
 * products, `acc[row] += Σ_4 x·(w + 128)` for 8 rows at once: llama.cpp's repacked
 * "Q8_0 4x4" layout (`ggml-cpu/repack.cpp`, `block_q8_0x4`) with the outer product of the
 * float panel. Each row's int32 block sum starts at the token's `-128 · Σq` (the activation
 * record's lanes, summed), so it is exactly `Σ x·w`; then `acc += f32(sum) · d_w · d_x`.
 *
 * Q4_0 (ggml `block_q4_0`: x[j] = (lo(qs[j]) - 8)·d, x[j + 16] = (hi(qs[j]) - 8)·d) keeps its
 * nibbles as the lanes' quants and starts each sum at `-8 · Σq`, the same record's lanes
 * summed and shifted right by 4 (exact: `-128 · Σq` is a multiple of 16).
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
import { f16Lanes, lanes32 } from "./snippets.ts";

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
 * The Q8_0 (or Q4_0) panel kind (module doc).
 *
 * @param K Input features (a multiple of 32).
 * @param fp16 Convert the f16 scales with `f32x4.promote_low_f16x8`.
 * @param q4 Q4_0 instead of Q8_0.
 * @returns The kind for `emitPanelMatmul`.
 * @throws {RangeError} when K is not a multiple of 32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { q8PanelKind } from "./linear_panel_q8.ts";
 * assert.equal(q8PanelKind(768, false).panelBytes, 24 * 288);
 * ```
 */
export function q8PanelKind(K: number, fp16: boolean, q4 = false): PanelKind {
  const type = q4 ? "Q4_0" : "Q8_0";
  const { shape, S, base } = quantPanelBase(type, K, Q8_PANEL_TOKENS, Q8_PANEL_BLOCK);
  const nb = shape.nb;
  return {
    ...base,
    locals(f) {
      quantPanelLocals(f, Q8_PANEL_TOKENS, false);
      f.local("c80", "v128").local("c0f", "v128").local("dw4", "v128");
      for (let i = 0; i < 4; i++) f.local(`lo${i}`, "v128").local(`hi${i}`, "v128");
      f.comment("0x80 in every byte: w xor 0x80 = w + 128 as u8 (the u8 dot product)");
      f.i8x16(new Array(16).fill(0x80)).set("c80");
      f.i8x16(new Array(16).fill(0x0f)).set("c0f");
    },
    fill(f, rb) {
      f.comment(
        `panel: ${nb} blocks × ${Q8_PANEL_BLOCK} bytes; per 4 columns, rows 0..3 and 4..7 ` +
          "(4 quants + 128 per lane); then d of rows 0..3 and 4..7 (f32)",
      );
      fillBlocks(f, rb, shape, () => {
        for (let i = 0; i < 4; i++) {
          for (const [half, l] of [[0, "lo"], [1, "hi"]] as const) {
            if (q4) {
              f.comment(`row ${i}: quants ${16 * half} .. ${16 * half + 15}, the ${l} nibbles`);
              f.get(`p${i}`).wmem("v128.load", 2, { align: 0 });
              if (half) f.i32(4).op("i16x8.shr_u");
              f.get("c0f").op("v128.and").set(`${l}${i}`);
            } else {
              f.get(`p${i}`).wmem("v128.load", 2 + 16 * half, { align: 0 });
              f.get("c80").op("v128.xor").set(`${l}${i}`);
            }
          }
        }
        storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], 0, 32);
        storeTransposed(f, ["hi0", "hi1", "hi2", "hi3"], 4 * 32, 32);
        f16Lanes(f, ["p0", "p1", "p2", "p3"], [0, 0, 0, 0], "dw4", f.weightMemory, fp16);
        f.get("pp").get("dw4").mem("v128.store", 8 * 32);
      });
    },
    micro(f, C) {
      microBlocks(f, C, shape, () => {
        for (let c = 0; c < C; c++) {
          f.comment(
            `token ${c}: its block's -128 · Σq (the record's 4 lanes summed), in every lane`,
          );
          f.get("pd").mem("v128.load", c * S + 8, { align: 0 }).set("xs");
          f.get("xs").get("xs").get("xs").shuffle(lanes32([2, 3, 0, 1])).op("i32x4.add").set("xs");
          f.get("xs").get("xs").get("xs").shuffle(lanes32([1, 0, 3, 2])).op("i32x4.add");
          if (q4) f.i32(4).op("i32x4.shr_s"); // -8 · Σq
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
      });
    },
  };
}
