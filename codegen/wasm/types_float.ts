/**
 * Block code of the float weight types against f32 activations: F32, F16 and BF16 stay in
 * their storage width in memory and become f32 in registers (F16 by the shift-and-rescale
 * of `snippets.ts`, BF16 by moving the 16 bits into the high half of an f32). One block is
 * 8 columns; `acc += w · x` lane-wise (`f32x4.relaxed_madd` when relaxed), and the columns
 * past the last full block go through scalar code into `sacc`.
 *
 * When the runtime has the WebAssembly FP16 proposal (`BlockCtx.fp16`), F16 takes the
 * hardware conversion instead: `f32x4.promote_low_f16x8` (x86 `vcvtph2ps`) of the low and
 * of the shuffled-down high 4 halves, exact for every f16 (subnormals included).
 *
 * F16 one token at a time (matvec) without it: the conversion's `· 2^112` moves out of the loop. The
 * weights stay `w · 2^-112` (the bits shifted into place), the token's x is multiplied by
 * {@linkcode F16_X_SCALE} = 2^64 once per block (shared by the R rows), and the lane sum by
 * 2^48 at the end: powers of two, so every product is the same f32 as `w · x` unless
 * |w·x| < 2^-78 (then subnormal) or |x| ≥ 2^64 (then infinite).
 *
 * @module
 */
import { WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { type BlockCtx, type BlockEmitter, need } from "./block_code.ts";
import {
  F16_RESCALE,
  f16HighHalvesToF32x4,
  f16RescaleLocals,
  f16Scalar,
  lanes32,
} from "./snippets.ts";
import type { WasmFunc } from "../wasm_asm.ts";

/** Scale of x in the F16 one-token kernels (see the module doc). */
export const F16_X_SCALE = 2 ** 64;

/** Byte lanes that move f16/bf16 k (of 8) into the high half of i32 lane k % 4. */
const HIGH_HALVES = (half: number) =>
  [0, 1, 2, 3].flatMap((k) => [0, 0, 16 + 2 * (4 * half + k), 17 + 2 * (4 * half + k)]);

/**
 * Pushes half h (halves 4h .. 4h + 3) of the 8 F16/BF16 values in the v128 local `src` as an
 * f32x4 (needs the locals `zero`, and for F16 `f16mask`, `f16scale`).
 */
function halfToF32x4(f: WasmFunc, name: "F16" | "BF16", src: string, h: number): void {
  f.get("zero").get(src).shuffle(HIGH_HALVES(h));
  if (name === "F16") f16HighHalvesToF32x4(f, "f16mask", "f16scale");
}

/**
 * The 8 f16 of the v128 local `src` → f32x4 locals `lo` (halves 0..3) and `hi` (4..7) by the
 * FP16 proposal's `f32x4.promote_low_f16x8`, the high halves first moved down by a shuffle
 * (one 16-byte load and a shuffle measured ~10 % faster in F16 decode than two
 * `v128.load64_zero`). `hi` may be `src`.
 */
function promoteHalves(f: WasmFunc, src: string, lo: string, hi: string): void {
  f.get(src).op("f32x4.promote_low_f16x8").set(lo);
  f.get(src).get(src).shuffle([8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15]);
  f.op("f32x4.promote_low_f16x8").set(hi);
}

/**
 * Declares and sets, at the function's entry, the locals {@linkcode halvesToF32x4} needs.
 *
 * @param f The function (at its entry).
 * @param type F16 or BF16.
 * @param fp16 F16 through `f32x4.promote_low_f16x8`.
 */
export function halvesLocals(f: WasmFunc, type: "F16" | "BF16", fp16: boolean): void {
  if (type === "F16" && fp16) return;
  need(f, "zero", "v128");
  if (type === "F16") f16RescaleLocals(f);
}

/**
 * The 8 F16/BF16 values of the v128 local `src` → f32x4 locals `lo` (values 0..3) and `hi`
 * (4..7), exactly (see the module doc; locals from {@linkcode halvesLocals}).
 *
 * @param f The function.
 * @param type F16 or BF16.
 * @param src v128 local holding 8 halves.
 * @param lo f32x4 local for halves 0..3.
 * @param hi f32x4 local for halves 4..7 (may be `src`).
 * @param fp16 F16 through `f32x4.promote_low_f16x8`.
 */
export function halvesToF32x4(
  f: WasmFunc,
  type: "F16" | "BF16",
  src: string,
  lo: string,
  hi: string,
  fp16: boolean,
): void {
  if (type === "F16" && fp16) {
    promoteHalves(f, src, lo, hi);
    return;
  }
  halfToF32x4(f, type, src, 0);
  f.set(lo);
  halfToF32x4(f, type, src, 1);
  f.set(hi);
}

function madd(k: BlockCtx, acc: string, w: string, x: string): void {
  const f = k.f;
  if (k.relaxed) f.get(w).get(x).get(acc).op("f32x4.relaxed_madd").set(acc);
  else f.get(acc).get(w).get(x).op("f32x4.mul").op("f32x4.add").set(acc);
}

/**
 * Pushes the f32 value of the F32/F16/BF16 weight at `addr + off` in the weight memory,
 * exactly (the scalar tails of the block code and of the panel).
 *
 * @param f The function.
 * @param name F32, F16 or BF16.
 * @param addr i32 local holding the address.
 * @param off Byte offset.
 */
export function scalarWeight(f: WasmFunc, name: WeightTypeName, addr: string, off: number) {
  if (name === "F32") f.get(addr).wmem("f32.load", off);
  else if (name === "F16") f16Scalar(f, addr, off);
  else f.get(addr).wmem("i32.load16_u", off).i32(16).op("i32.shl").op("f32.reinterpret_i32");
}

/**
 * One token (a matvec): x's 8 values first, then each row loaded, converted and added into
 * its two chains (`acc` takes values 0..3, `accp` 4..7), so only one row's weights are live
 * at a time and the R rows' 2R chains fit the 16 vector registers beside x. Two chains, not
 * one: the two FMAs of a row no longer wait on each other's latency (F16 2048x768 from
 * cache, one core: ~22 → ~27 GB/s). BF16 converts with `i32x4.shl` by 16 (values 0, 2, 4, 6)
 * and a mask of the high halves (1, 3, 5, 7), x's 8 values shuffled into that order once per
 * block for the R rows, where moving each half into place took a two-operand shuffle with
 * zero (BF16 2048x768 from cache ~13.6 → ~26.9 GB/s).
 */
function blockOneToken(k: BlockCtx, name: "F32" | "F16" | "BF16"): void {
  const { f, R } = k;
  const prescale = name === "F16" && !k.fp16;
  if (prescale) f.comment("one token: weights stay · 2^-112, x · 2^64, the sum · 2^48 at the end");
  for (const v of [0, 1]) {
    f.get("px").mem("v128.load", 16 * v);
    if (prescale) f.get("xscale").op("f32x4.mul");
    f.set(`x0_${v}`);
  }
  if (name === "BF16") {
    f.comment("x's even columns, then its odd ones: the order BF16's shift and mask give");
    f.get("x0_0").get("x0_1").shuffle(lanes32([0, 2, 4, 6]));
    f.get("x0_0").get("x0_1").shuffle(lanes32([1, 3, 5, 7])).set("x0_1").set("x0_0");
  }
  for (let a = 0; a < R; a++) {
    const o = a * k.rowBytes;
    if (name === "BF16") {
      f.comment(`row ${a}: 8 × BF16 → the even ones (<< 16) and the odd ones (the high halves)`);
      f.get("pw").wmem("v128.load", o).set(`w${a}_1`);
      f.get(`w${a}_1`).i32(16).op("i32x4.shl").set(`w${a}_0`);
      f.get(`w${a}_1`).get("hmask").op("v128.and").set(`w${a}_1`);
    } else if (name === "F32") {
      f.get("pw").wmem("v128.load", o).set(`w${a}_0`);
      f.get("pw").wmem("v128.load", o + 16).set(`w${a}_1`);
    } else {
      f.comment(`row ${a}: 8 × ${name} → 2 × f32x4`);
      f.get("pw").wmem("v128.load", o).set(`w${a}_1`);
      if (prescale) {
        for (const h of [0, 1]) {
          f.get("zero").get(`w${a}_1`).shuffle(HIGH_HALVES(h));
          f.i32(3).op("i32x4.shr_s").get("f16mask").op("v128.and").set(`w${a}_${h}`);
        }
      } else halvesToF32x4(f, name, `w${a}_1`, `w${a}_0`, `w${a}_1`, k.fp16);
    }
    madd(k, `acc${a}_0`, `w${a}_0`, "x0_0");
    madd(k, `accp${a}_0`, `w${a}_1`, "x0_1");
  }
}

function floatType(name: "F32" | "F16" | "BF16"): BlockEmitter {
  const t = WEIGHT_TYPES[name];
  const width = t.blockBytes;
  return {
    type: t,
    elems: 8,
    bytes: 8 * width,
    scalar: false,
    locals(f, R, C) {
      for (let a = 0; a < R; a++) need(f, `w${a}_0`, "v128"), need(f, `w${a}_1`, "v128");
      for (let c = 0; c < C; c++) need(f, `x${c}_0`, "v128"), need(f, `x${c}_1`, "v128");
      if (name !== "F32") need(f, "zero", "v128");
      if (name === "F16") need(f, "f16mask", "v128"), need(f, "f16scale", "v128");
      if (name === "F16") need(f, "xscale", "v128");
      if (name === "BF16") need(f, "hmask", "v128");
    },
    init(f) {
      if (name === "BF16") f.i32x4(-65536).set("hmask");
      if (name === "F16") {
        f16RescaleLocals(f);
        f.f32x4(F16_X_SCALE).set("xscale");
      }
    },
    pairAcc(k) {
      return k.C === 1;
    },
    accScale(k) {
      return name === "F16" && k.C === 1 && !k.fp16 ? F16_RESCALE / F16_X_SCALE : undefined;
    },
    block(k) {
      const { f, R, C } = k;
      if (C === 1) return blockOneToken(k, name);
      for (let a = 0; a < R; a++) {
        const o = a * k.rowBytes;
        if (name === "F32") {
          f.get("pw").wmem("v128.load", o).set(`w${a}_0`);
          f.get("pw").wmem("v128.load", o + 16).set(`w${a}_1`);
          continue;
        }
        f.comment(`row ${a}: 8 × ${name} → 2 × f32x4`);
        f.get("pw").wmem("v128.load", o).set(`w${a}_1`);
        halvesToF32x4(f, name, `w${a}_1`, `w${a}_0`, `w${a}_1`, k.fp16);
      }
      for (let c = 0; c < C; c++) {
        for (const v of [0, 1]) {
          f.get("px").mem("v128.load", c * k.stride + 16 * v).set(`x${c}_${v}`);
        }
        for (let a = 0; a < R; a++) {
          madd(k, `acc${a}_${c}`, `w${a}_0`, `x${c}_0`);
          madd(k, `acc${a}_${c}`, `w${a}_1`, `x${c}_1`);
        }
      }
    },
    tail(k, count) {
      const { f, R, C } = k;
      f.comment(`${count} column(s) past the last block of 8`);
      for (let a = 0; a < R; a++) {
        for (let c = 0; c < C; c++) {
          const s = `sacc${a}_${c}`;
          for (let j = 0; j < count; j++) {
            f.get(s);
            scalarWeight(f, name, "pw", a * k.rowBytes + j * width);
            f.get("px").mem("f32.load", c * k.stride + 4 * j).op("f32.mul").op("f32.add").set(s);
          }
        }
      }
    },
  };
}

/** F32 weights. */
export const F32: BlockEmitter = floatType("F32");
/** F16 weights (IEEE half), converted in registers. */
export const F16: BlockEmitter = floatType("F16");
/** BF16 weights (upper half of an f32), converted in registers. */
export const BF16: BlockEmitter = floatType("BF16");
