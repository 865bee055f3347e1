/**
 * Block code of the 32-element ggml types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against `q8_0`
 * activations, following ggml's `ggml_vec_dot_q{4,5}_{0,1}_q8_{0,1}` and
 * `ggml_vec_dot_q8_0_q8_0`: per block, an integer dot product of the weight quants with the
 * activation quants, scaled once by `d_w · d_x`.
 *
 * The 4- and 5-bit quants are kept unsigned (0..15, 0..31: the i7 operand of the relaxed
 * dot product); their offset (-8, -16) or min (`m`) enters through the activation block
 * sum `s = d_x · Σ q_x`: `Σ x·(q - 8)·d = d·d_x·Σ q_x·q - 8·d·s`, `Σ x·(q·d + m) =
 * d·d_x·Σ q_x·q + m·s`. The f16 scales of the R rows of a register block are converted
 * together, one row per lane (`snippets.ts` `f16Lanes`), and multiplied by the token's
 * scale once per token. Q8_0 quants are signed; with relaxed SIMD they go through ggml's
 * sign trick (`|w|` and `x·sign(w)`), otherwise through `i16x8.extmul`.
 *
 * @module
 */
import { WEIGHT_TYPES } from "./blocks.ts";
import { addScaledLane, type BlockCtx, type BlockEmitter, f16Vectors, need } from "./block_code.ts";
import { dotI8 } from "./snippets.ts";
import type { WasmFunc } from "../wasm_asm.ts";

/** One bit per byte lane, bit j % 8 in lane j: tests a u32 of qh bits spread over bytes. */
export const BITS = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/** Masks every q32 kernel may use: low nibble, bit 4, the 8 bit positions. */
function initMasks(f: WasmFunc): void {
  need(f, "c0f", "v128");
  need(f, "c10", "v128");
  need(f, "bits", "v128");
  f.comment("constants: low-nibble mask, bit 4, one bit per byte lane");
  f.i8x16(new Array(16).fill(0x0f)).set("c0f");
  f.i8x16(new Array(16).fill(0x10)).set("c10");
  f.i8x16(BITS).set("bits");
}

/** Shared locals of a q32 register block. */
function commonLocals(f: WasmFunc, R: number, C: number): void {
  for (let a = 0; a < R; a++) {
    need(f, `w${a}_0`, "v128");
    need(f, `w${a}_1`, "v128");
  }
  for (let c = 0; c < C; c++) {
    need(f, `dx${c}`, "f32");
    need(f, `x${c}_0`, "v128");
    need(f, `x${c}_1`, "v128");
  }
  need(f, "isum", "v128");
  need(f, "_s", "v128");
  for (let g = 0; g < Math.ceil(R / 4); g++) need(f, `dwx${g}`, "v128");
}

/** The f16 at byte `at` of each row's block → lanes of `{prefix}0` (rows 0..3), `{prefix}1`, .... */
function rowScales(k: BlockCtx, at: number, prefix = "dwv"): void {
  f16Vectors(k, Array.from({ length: k.R }, (_, a) => a * k.rowBytes + at), prefix);
}

/** dwx{g} = dwv{g} · dx{c}: the R rows' scales times token c's. */
function tokenScales(k: BlockCtx, c: number): void {
  for (let g = 0; g * 4 < k.R; g++) {
    k.f.get(`dwv${g}`).get(`dx${c}`).op("f32x4.splat").op("f32x4.mul").set(`dwx${g}`);
  }
}

/** Loads token c's two quant vectors and its scale `dx{c}` (and, if asked, `sx{c}` = d·Σq). */
function loadActs(k: BlockCtx, c: number, sum: boolean): void {
  const f = k.f, o = c * k.stride;
  f.get("px").mem("v128.load", o).set(`x${c}_0`);
  f.get("px").mem("v128.load", o + 16).set(`x${c}_1`);
  f.get("pd").mem("f32.load", o).set(`dx${c}`);
  if (sum) f.get("pd").mem("f32.load", o + 4).set(`sx${c}`);
}

/**
 * Q8_0: d f16 @0, qs i8[32] @2. Signed weights × signed activations. With relaxed SIMD the
 * i7 operand of `i32x4.relaxed_dot_i8x16_i7x16_add_s` must be in [0, 127], so each
 * token's quants split into `x⁺ = max(x, 0)` and `x⁻ = x⁺ - x` (both in [0, 127], once per
 * block, shared by the R rows) and `w·x = w·x⁺ - w·x⁻`: two dot products into two
 * accumulators, exact for every weight byte including -128 (ggml's |w|, sign(w)·x trick
 * would put |-128| = 128 out of the i7 range). Without relaxed SIMD: `i16x8.extmul`.
 *
 * Where the runtime's relaxed dot takes that operand as u8 (`BlockCtx.dotU8`, x86 VNNI
 * `vpdpbusd`), one dot product per 16 weights does: the weights, xor 0x80, become
 * `w + 128` in 0..255 (once per row, shared by the C tokens), and
 * `Σ (w + 128)·x - 128·Σ x = Σ w·x` exactly in i32. The `-128·Σx` of each token's block
 * (written by the activation quantiser, `blocks.ts` `actLayout`) starts each row's sum.
 */
export const Q8_0: BlockEmitter = {
  type: WEIGHT_TYPES.Q8_0,
  elems: 32,
  bytes: 34,
  scalar: false,
  locals(f, R, C) {
    commonLocals(f, R, C);
    for (let c = 0; c < C; c++) need(f, `xn${c}_0`, "v128"), need(f, `xn${c}_1`, "v128");
    need(f, "isumn", "v128");
    need(f, "zero", "v128");
    need(f, "c80", "v128");
  },
  init(f) {
    f.comment("0x80 in every byte: w xor 0x80 = w + 128 as u8 (the u8 dot product)");
    f.i8x16(new Array(16).fill(0x80)).set("c80");
  },
  block(k) {
    const { f, R, C } = k;
    const u8 = k.dotU8; // implies relaxed (linear.ts)
    rowScales(k, 0);
    for (let a = 0; a < R; a++) {
      const o = a * k.rowBytes;
      f.comment(`row ${a}: 32 signed quants${u8 ? ", + 128 as u8" : ""}`);
      for (const v of [0, 1]) {
        f.get("pw").wmem("v128.load", o + 2 + 16 * v);
        if (u8) f.get("c80").op("v128.xor");
        f.set(`w${a}_${v}`);
      }
    }
    for (let c = 0; c < C; c++) {
      loadActs(k, c, false);
      if (u8) {
        f.comment(`token ${c}: xn = -128 · Σx per lane, the start of each row's sum`);
        const xn = `xn${c}_0`;
        f.get("pd").mem("v128.load", c * k.stride + 8, { align: 0 }).set(xn);
        tokenScales(k, c);
        for (let a = 0; a < R; a++) {
          f.comment(`row ${a} · token ${c}`);
          f.get(`x${c}_0`).get(`w${a}_0`).get(xn).op("i32x4.relaxed_dot_i8x16_i7x16_add_s");
          f.set("isum");
          f.get(`x${c}_1`).get(`w${a}_1`).get("isum").op("i32x4.relaxed_dot_i8x16_i7x16_add_s");
          f.set("isum");
          addScaledLane(k, a, c, "isum", `dwx${a >> 2}`);
        }
        continue;
      }
      if (k.relaxed) {
        f.comment(`token ${c}: x⁺ = max(x, 0), x⁻ = x⁺ - x (the i7 operands)`);
        for (const v of [0, 1]) {
          f.get(`x${c}_${v}`).get("zero").op("i8x16.max_s").set(`xn${c}_${v}`);
          f.get(`xn${c}_${v}`).get(`x${c}_${v}`).op("i8x16.sub");
          f.get(`xn${c}_${v}`).set(`x${c}_${v}`).set(`xn${c}_${v}`);
        }
      }
      tokenScales(k, c);
      for (let a = 0; a < R; a++) {
        f.comment(`row ${a} · token ${c}`);
        if (k.relaxed) {
          dotI8(f, "isum", [[`w${a}_0`, `x${c}_0`], [`w${a}_1`, `x${c}_1`]], true, true);
          dotI8(f, "isumn", [[`w${a}_0`, `xn${c}_0`], [`w${a}_1`, `xn${c}_1`]], true, true);
          f.get("isum").get("isumn").op("i32x4.sub").set("isum");
        } else {
          dotI8(f, "isum", [[`x${c}_0`, `w${a}_0`], [`x${c}_1`, `w${a}_1`]], false, true);
        }
        addScaledLane(k, a, c, "isum", `dwx${a >> 2}`);
      }
    }
  },
};

/** Geometry of a 4/5-bit 32-element type. */
interface Q32Layout {
  /** Offset of the min `m` (f16), or -1. */
  m: number;
  /** Offset of the 32 high bits (u32), or -1. */
  qh: number;
  /** Offset of the 16 nibble bytes. */
  qs: number;
  /** Quant offset subtracted when there is no min (8 or 16). */
  zero: number;
}

function lowBits(name: "Q4_0" | "Q4_1" | "Q5_0" | "Q5_1", g: Q32Layout): BlockEmitter {
  const t = WEIGHT_TYPES[name];
  return {
    type: t,
    elems: 32,
    bytes: t.blockBytes,
    scalar: true,
    locals(f, R, C) {
      commonLocals(f, R, C);
      for (let a = 0; a < R; a++) need(f, g.m >= 0 ? `mw${a}` : `dw${a}`, "f32");
      for (let c = 0; c < C; c++) need(f, `sx${c}`, "f32");
      need(f, "qh", "v128");
    },
    init: initMasks,
    block(k) {
      const { f, R, C } = k;
      rowScales(k, 0);
      if (g.m >= 0) rowScales(k, g.m, "mwv");
      f.comment(`the scalar term's factor of each row: ${g.m >= 0 ? "m" : "d"}`);
      for (let a = 0; a < R; a++) {
        f.get(`${g.m >= 0 ? "mwv" : "dwv"}${a >> 2}`).extractLane(a & 3);
        f.set(g.m >= 0 ? `mw${a}` : `dw${a}`);
      }
      for (let a = 0; a < R; a++) {
        const o = a * k.rowBytes;
        f.comment(
          `row ${a}: quants ${g.qh >= 0 ? "nibble | high bit << 4" : "nibbles"} ` +
            `(elements 0..15 low, 16..31 high nibbles)`,
        );
        f.get("pw").wmem("v128.load", o + g.qs).set(`w${a}_1`);
        f.get(`w${a}_1`).get("c0f").op("v128.and").set(`w${a}_0`);
        f.get(`w${a}_1`).i32(4).op("i16x8.shr_u").get("c0f").op("v128.and").set(`w${a}_1`);
        if (g.qh >= 0) {
          f.comment("bit j of qh → bit 4 of byte j");
          f.get("pw").wmem("v128.load32_splat", o + g.qh).set("qh");
          for (let i = 0; i < 2; i++) {
            const lanes = [...new Array(8).fill(2 * i), ...new Array(8).fill(2 * i + 1)];
            f.get("qh").get("qh").shuffle(lanes).get("bits").op("v128.and").get("bits");
            f.op("i8x16.eq").get("c10").op("v128.and").get(`w${a}_${i}`).op("v128.or");
            f.set(`w${a}_${i}`);
          }
        }
      }
      for (let c = 0; c < C; c++) {
        f.comment(`token ${c}: 32 quants, d, s = d·Σq`);
        loadActs(k, c, true);
        tokenScales(k, c);
        for (let a = 0; a < R; a++) {
          f.comment(`row ${a} · token ${c}`);
          dotI8(f, "isum", [[`x${c}_0`, `w${a}_0`], [`x${c}_1`, `w${a}_1`]], k.relaxed, true);
          addScaledLane(k, a, c, "isum", `dwx${a >> 2}`);
          const s = `sacc${a}_${c}`;
          if (g.m >= 0) {
            f.get(s).get(`mw${a}`).get(`sx${c}`).op("f32.mul").op("f32.add").set(s);
          } else {
            f.get(s).get(`dw${a}`).get(`sx${c}`).op("f32.mul");
            f.f32(g.zero).op("f32.mul");
            f.op("f32.sub").set(s);
          }
        }
      }
    },
  };
}

/** Q4_0: d @0, qs[16] @2; x = (q - 8)·d. */
export const Q4_0: BlockEmitter = lowBits("Q4_0", { m: -1, qh: -1, qs: 2, zero: 8 });
/** Q4_1: d @0, m @2, qs[16] @4; x = q·d + m. */
export const Q4_1: BlockEmitter = lowBits("Q4_1", { m: 2, qh: -1, qs: 4, zero: 0 });
/** Q5_0: d @0, qh @2, qs[16] @6; x = (q - 16)·d. */
export const Q5_0: BlockEmitter = lowBits("Q5_0", { m: -1, qh: 2, qs: 6, zero: 16 });
/** Q5_1: d @0, m @2, qh @4, qs[16] @8; x = q·d + m. */
export const Q5_1: BlockEmitter = lowBits("Q5_1", { m: 2, qh: 4, qs: 8, zero: 0 });
