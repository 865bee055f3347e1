/**
 * Code snippets shared by the WASM kernel emitters: each pushes or updates values on the
 * stack of a {@linkcode WasmFunc} and writes readable lines (the conversions carry a `;;`
 * comment saying what they compute).
 *
 * Sources: the f16 → f32 conversion is the shift-and-rescale of Giesen, "Half to float
 * done quick" (2012) (exact for zero, subnormals and normals; Inf/NaN scales are rejected
 * when weights load); integer dot products follow ggml's `ggml_vec_dot_*_q8_*` (products of
 * int8 quants summed in int32, scaled once per block).
 *
 * @module
 */
import type { WasmFunc } from "../wasm_asm.ts";

/** 2^112: rescales an f16 exponent (bias 15) moved into an f32 (bias 127). */
export const F16_RESCALE = 2 ** 112;
/** Mask keeping sign, 5 exponent and 10 mantissa bits after `(h << 16) >> 3`. */
export const F16_MASK = 0x8fffe000 | 0;

/**
 * Pushes the f32 value of the f16 at `addr + offset` (an i32 address local; by default in
 * the function's weight memory):
 * `reinterpret(((h << 16) >>s 3) & 0x8fffe000) · 2^112`.
 */
export function f16Scalar(
  f: WasmFunc,
  addr: string,
  offset: number,
  memory = f.weightMemory,
): void {
  f.get(addr).mem("i32.load16_u", offset, { memory, align: 0 });
  f.i32(16).op("i32.shl").i32(3).op("i32.shr_s").i32(F16_MASK).op("i32.and");
  f.op("f32.reinterpret_i32").f32(F16_RESCALE).op("f32.mul");
}

/**
 * Converts the v128 on the stack, whose i32 lanes hold f16 bit patterns in their HIGH
 * halves, to f32x4 (same arithmetic as {@linkcode f16Scalar}, lane-wise).
 */
export function f16HighHalvesToF32x4(f: WasmFunc, maskLocal: string, rescaleLocal: string) {
  f.i32(3).op("i32x4.shr_s").get(maskLocal).op("v128.and").get(rescaleLocal).op("f32x4.mul");
}

/** Pushes the f32 sum of the four lanes of an f32x4 local: `(l0 + l1) + (l2 + l3)`. */
export function hsumF32(f: WasmFunc, v: string): void {
  f.get(v).extractLane(0).get(v).extractLane(1).op("f32.add");
  f.get(v).extractLane(2).get(v).extractLane(3).op("f32.add").op("f32.add");
}

/** Pushes the i32 sum of the four lanes of an i32x4 local. */
export function hsumI32(f: WasmFunc, v: string): void {
  f.get(v).lane("i32x4.extract_lane", 0).get(v).lane("i32x4.extract_lane", 1).op("i32.add");
  f.get(v).lane("i32x4.extract_lane", 2).get(v).lane("i32x4.extract_lane", 3).op("i32.add");
  f.op("i32.add");
}

/**
 * `acc (i32x4) = [acc +] Σ_k x_k · w_k` over pairs of i8x16 locals (each lane sums four
 * products; relaxed and fallback group them differently, the total is the same). Every `w`
 * must be in [0, 127] for the relaxed instruction (its i7 operand). Exact in both paths.
 *
 * @param f The function.
 * @param acc i32x4 accumulator local.
 * @param pairs `[x, w]` local names.
 * @param relaxed Use `i32x4.relaxed_dot_i8x16_i7x16_add_s`.
 * @param fresh Start from zero instead of adding to `acc`.
 */
export function dotI8(
  f: WasmFunc,
  acc: string,
  pairs: [string, string][],
  relaxed: boolean,
  fresh = false,
): void {
  if (relaxed) {
    pairs.forEach(([x, w], k) => {
      f.get(x).get(w);
      if (k === 0 && fresh) f.zeroV128();
      else f.get(acc);
      f.op("i32x4.relaxed_dot_i8x16_i7x16_add_s").set(acc);
    });
    return;
  }
  pairs.forEach(([x, w], k) => {
    f.get(x).get(w).op("i16x8.extmul_low_i8x16_s");
    f.get(x).get(w).op("i16x8.extmul_high_i8x16_s").op("i16x8.add");
    f.op("i32x4.extadd_pairwise_i16x8_s");
    if (k > 0) f.op("i32x4.add");
  });
  if (!fresh) f.get(acc).op("i32x4.add");
  f.set(acc);
}

/**
 * Pushes `(Σ_k x_k · w_k) · scale` as i32x4 (ggml's `mul_sum_us8_pairs` then `madd` by the
 * sub-block scale): the products of each pair summed in i16 lanes (relaxed,
 * `i16x8.relaxed_dot_i8x16_i7x16_s`, x86 `pmaddubsw`; fallback, `i16x8.extmul` low and
 * high added), the pairs added in i16, then `i32x4.dot_i16x8_s` with the i16-splat scale
 * (x86 `pmaddwd`). The caller guarantees the i16 partial sums fit
 * (`pairs · 2 · max|x·w| < 32768`).
 *
 * @param f The function.
 * @param pairs `[x, w]` local names (w in [0, 127]).
 * @param scale16 Pushes the scale as an i16x8 splat.
 * @param relaxed Use relaxed SIMD.
 */
export function scaledDotI8(
  f: WasmFunc,
  pairs: [string, string][],
  scale16: () => void,
  relaxed: boolean,
): void {
  pairs.forEach(([x, w], k) => {
    if (relaxed) f.get(x).get(w).op("i16x8.relaxed_dot_i8x16_i7x16_s");
    else {
      f.get(x).get(w).op("i16x8.extmul_low_i8x16_s");
      f.get(x).get(w).op("i16x8.extmul_high_i8x16_s").op("i16x8.add");
    }
    if (k > 0) f.op("i16x8.add");
  });
  scale16();
  f.op("i32x4.dot_i16x8_s");
}

/**
 * Pushes Σ_i A[pa + 4i] · A[pb + 4i] over `hd` f32 elements (f32x4 lanes, then the scalar
 * tail): the q · k and similar head_dim-long dot products of attention. Uses the function's
 * v128 local `vacc`.
 *
 * @param f The function being emitted.
 * @param pa Local holding the first vector's byte address.
 * @param pb Local holding the second vector's byte address.
 * @param hd Elements (head_dim).
 */
export function dotHd(f: WasmFunc, pa: string, pb: string, hd: number): void {
  const H4 = hd - (hd % 4);
  f.zeroV128().set("vacc");
  for (let i = 0; i < H4; i += 4) {
    f.get("vacc").get(pa).mem("v128.load", 4 * i).get(pb).mem("v128.load", 4 * i);
    f.op("f32x4.mul").op("f32x4.add").set("vacc");
  }
  hsumF32(f, "vacc");
  for (let i = H4; i < hd; i++) {
    f.get(pa).mem("f32.load", 4 * i).get(pb).mem("f32.load", 4 * i).op("f32.mul").op("f32.add");
  }
}
