/**
 * Code snippets shared by the WASM kernel emitters: each pushes or updates values on the
 * stack of a {@linkcode WasmFunc} and writes readable lines (the conversions carry a `;;`
 * comment saying what they compute).
 *
 * Sources: the f16 → f32 conversions follow Giesen, "Half to float done quick" (2012): the
 * scale conversions ({@linkcode f16Scalar}, {@linkcode f16Lanes}) rebias the exponent with an
 * integer add and take subnormals through the magic-number subtraction, so no f32 operand is
 * ever subnormal (a subnormal operand costs x86 a microcode assist; llama.cpp's K-quant files
 * often have f16 scales below 2^-14); the F16 weight conversion of the matrix products
 * shifts and rescales by 2^112 (fewer instructions; subnormal f16 weights are rare). All are
 * exact for zero, subnormals and normals; Inf/NaN scales are rejected when weights load.
 * Integer dot products follow ggml's `ggml_vec_dot_*_q8_*` (products of int8 quants summed
 * in int32, scaled once per block).
 *
 * @module
 */
import type { WasmFunc } from "../wasm_asm.ts";

/** 2^112: rescales an f16 exponent (bias 15) moved into an f32 (bias 127). */
export const F16_RESCALE = 2 ** 112;
/** Mask keeping sign, 5 exponent and 10 mantissa bits after `(h << 16) >> 3`. */
export const F16_MASK = 0x8fffe000 | 0;

/** 2^-14 (0x38800000): the smallest normal f16, the magic of the subnormal case. */
const F16_MAGIC_BITS = 0x38800000;
/** (127 - 15) << 23: adds the exponent bias difference to a shifted f16. */
const F16_REBIAS_BITS = 0x38000000;

/**
 * Pushes the f32 value of the f16 at `addr + offset` (an i32 address local; by default in
 * the function's weight memory), exactly, with no subnormal f32 operand (on x86 a subnormal
 * operand costs a microcode assist of ~100 cycles; llama.cpp's Q6_K files often have f16
 * super-block scales below 2^-14, which made the old `· 2^112` rescale 2.2× slower there):
 *
 * ```text
 * o = (h & 0x7fff) << 13                                  ;; exponent and mantissa in place
 * normal:    reinterpret(o + (112 << 23))                 ;; exponent rebiased 15 → 127
 * subnormal: reinterpret(o + 0x38800000) - 2^-14           ;; (1 + m/1024)·2^-14 - 2^-14 = m·2^-24
 * value = copysign(o >= 1 << 23 ? normal : subnormal, h)
 * ```
 *
 * Giesen's magic-number subtraction (see the module doc); Inf/NaN (rejected at load) are not
 * handled. Uses the i32 local `_f16` (declared on first use).
 */
export function f16Scalar(
  f: WasmFunc,
  addr: string,
  offset: number,
  memory = f.weightMemory,
): void {
  if (!f.has("_f16")) f.local("_f16", "i32");
  f.get(addr).mem("i32.load16_u", offset, { memory, align: 0 });
  f.i32(0x7fff).op("i32.and").i32(13).op("i32.shl").set("_f16");
  f.get("_f16").i32(F16_REBIAS_BITS).op("i32.add").op("f32.reinterpret_i32");
  f.get("_f16").i32(F16_MAGIC_BITS).op("i32.add").op("f32.reinterpret_i32");
  f.f32(2 ** -14).op("f32.sub");
  f.get("_f16").i32(1 << 23).op("i32.ge_u").op("select");
  f.get(addr).mem("i32.load16_u", offset, { memory, align: 0 });
  f.i32(16).op("i32.shl").op("f32.reinterpret_i32").op("f32.copysign");
}

/**
 * Sets the f32x4 local `dst` to the f16 values at `addr + offsets[i]` (lane i; lanes past
 * `offsets.length` are 0; `addr` may name one local per lane), by the same exact arithmetic
 * as {@linkcode f16Scalar} done lane-wise: one conversion for the scales of R weight rows
 * instead of R scalar ones (the per-block scale of Q8_0 and the 32-element types is read for
 * every row of a register block). Uses the v128 locals `_h4` and `_m4` (declared on first use). With `fp16` the
 * lanes go through the FP16 proposal's `f32x4.promote_low_f16x8` instead (one instruction,
 * equally exact; see `wasm_features.ts` `fp16SimdSupported`).
 *
 * ```text
 * h = sign-extended f16 bits;  m = (h << 13) & 0x0fffe000
 * value = (m > 0x007fffff ? m + (112 << 23) : reinterpret(m + 0x38800000) - 2^-14) | (h & 0x80000000)
 * ```
 */
export function f16Lanes(
  f: WasmFunc,
  addr: string | string[],
  offsets: number[],
  dst: string,
  memory = f.weightMemory,
  fp16 = false,
): void {
  if (offsets.length > 4) throw new RangeError(`f16Lanes: ${offsets.length} lanes > 4`);
  for (const l of ["_h4", "_m4"]) if (!f.has(l)) f.local(l, "v128");
  offsets.forEach((o, i) => {
    f.get(typeof addr === "string" ? addr : addr[i]);
    if (i === 0) f.zeroV128();
    else f.get("_h4");
    f.memLane("v128.load16_lane", o, i, { memory, align: 0 }).set("_h4");
  });
  f16HalvesToF32(f, dst, fp16);
}

/**
 * Sets the f32x4 local `dst` to the f16 values in the 4 low 16-bit lanes of the v128 local
 * `_h4` (the arithmetic of {@linkcode f16Lanes}, which loads them lane by lane; a caller may
 * load them in one `v128.load64_zero` when they are adjacent). Uses `_h4` and `_m4`
 * (declared on first use).
 *
 * @param f The function.
 * @param dst The f32x4 local.
 * @param fp16 Through the FP16 proposal's `f32x4.promote_low_f16x8`.
 */
export function f16HalvesToF32(f: WasmFunc, dst: string, fp16 = false): void {
  for (const l of ["_h4", "_m4"]) if (!f.has(l)) f.local(l, "v128");
  if (fp16) {
    f.get("_h4").op("f32x4.promote_low_f16x8").set(dst);
    return;
  }
  f.get("_h4").op("i32x4.extend_low_i16x8_s").set("_h4");
  f.get("_h4").i32(13).op("i32x4.shl").i32x4(0x0fffe000).op("v128.and").set("_m4");
  f.get("_m4").i32x4(F16_REBIAS_BITS).op("i32x4.add");
  f.get("_m4").i32x4(F16_MAGIC_BITS).op("i32x4.add").f32x4(2 ** -14).op("f32x4.sub");
  f.get("_m4").i32x4(0x007fffff).op("i32x4.gt_s").op("v128.bitselect");
  f.get("_h4").i32x4(0x80000000 | 0).op("v128.and").op("v128.or").set(dst);
}

/**
 * The 16 byte lanes of an `i8x16.shuffle` that picks 32-bit lanes: `l[i]` in 0..3 is lane
 * `l[i]` of the first operand, 4..7 lane `l[i] - 4` of the second.
 */
export const lanes32 = (l: number[]): number[] =>
  l.flatMap((x) => [4 * x, 4 * x + 1, 4 * x + 2, 4 * x + 3]);

/**
 * Stores the 4 × 4 transpose of the 32-bit lanes of the v128 locals `rows`: vector k (lane k
 * of each row, in row order) at `base + at(k)`. Two rounds of unpacks (x86
 * `unpcklps`/`unpckhps`, then `movlhps`/`movhlps`).
 *
 * @param f The function.
 * @param rows The 4 v128 locals to transpose.
 * @param tmp 4 other v128 locals it may overwrite.
 * @param base Pushes the i32 base address.
 * @param at The byte offset of vector k from it.
 */
export function storeTransposed4(
  f: WasmFunc,
  rows: string[],
  tmp: string[],
  base: () => void,
  at: (k: number) => number,
): void {
  const [r0, r1, r2, r3] = rows, [t0, t1, t2, t3] = tmp;
  f.get(r0).get(r1).shuffle(lanes32([0, 4, 1, 5])).set(t0);
  f.get(r0).get(r1).shuffle(lanes32([2, 6, 3, 7])).set(t1);
  f.get(r2).get(r3).shuffle(lanes32([0, 4, 1, 5])).set(t2);
  f.get(r2).get(r3).shuffle(lanes32([2, 6, 3, 7])).set(t3);
  const cols: [string, string, number[]][] = [
    [t0, t2, [0, 1, 4, 5]],
    [t0, t2, [2, 3, 6, 7]],
    [t1, t3, [0, 1, 4, 5]],
    [t1, t3, [2, 3, 6, 7]],
  ];
  cols.forEach(([a, b, l], k) => {
    base();
    f.get(a).get(b).shuffle(lanes32(l)).mem("v128.store", at(k));
  });
}

/**
 * Software prefetch: loads one byte of every 64-byte line from the i32 local `ptr` up to
 * the i32 local `end` (weight memory), folding them into the i32 local `touch` so they are
 * not dead code; `ptr` ends at or past `end`. See {@linkcode keepTouchLive}.
 */
export function touchLines(f: WasmFunc, ptr: string, end: string, label: string): void {
  f.block(`${label}_done`).loop(label);
  f.get(ptr).get(end).op("i32.ge_u").brIf(`${label}_done`);
  f.get("touch").get(ptr).wmem("i32.load8_u").op("i32.xor").set("touch");
  f.get(ptr).i32(64).op("i32.add").set(ptr);
  f.br(label).end().end();
}

/**
 * Keeps {@linkcode touchLines}' loads live: stores their fold to `y` on an empty-range call
 * (r1 < r0), which never happens in a step, so the compiler cannot drop them.
 */
export function keepTouchLive(f: WasmFunc): void {
  f.comment("keep the touch loads live: an empty-range call (r1 < r0) would store their fold");
  f.get("r1").get("r0").op("i32.lt_u").if().get("y").get("touch").mem("i32.store").end();
}

/** Pushes lane `lane` of the 32-bit-lane local `v` splatted to all four lanes. */
export function splatLane(f: WasmFunc, v: string, lane: number): void {
  const b = [0, 1, 2, 3].map((i) => 4 * lane + i);
  f.get(v).get(v).shuffle([...b, ...b, ...b, ...b]);
}

/**
 * Converts the v128 on the stack, whose i32 lanes hold f16 bit patterns in their HIGH
 * halves, to f32x4 (same arithmetic as {@linkcode f16Scalar}, lane-wise).
 */
export function f16HighHalvesToF32x4(f: WasmFunc, maskLocal: string, rescaleLocal: string) {
  f.i32(3).op("i32x4.shr_s").get(maskLocal).op("v128.and").get(rescaleLocal).op("f32x4.mul");
}

/**
 * Converts the f32x4 on the stack to 4 f16 in the low 64 bits of the v128 it pushes (the high
 * 64 bits are 0), rounded to nearest even as IEEE 754 and JavaScript's `Math.f16round`:
 * subnormal results are rounded too, magnitudes from 65520 on become ±Inf, NaN stays NaN.
 * With `fp16`: the FP16 proposal's `f16x8.demote_f32x4_zero` (x86 `vcvtps2ph`). Without it,
 * lane-wise integer arithmetic after Giesen, "float->half variants" (2016,
 * `float_to_half_fast3_rtne`); uses the v128 locals `_fa`, `_fs`, `_fr` (declared on first use):
 *
 * ```text
 * s = x & 0x80000000;  a = x ^ s                              ;; |x|
 * normal    (a in [2^-14, 65520)): (a + 0xc8000fff + ((a >> 13) & 1)) >> 13
 * subnormal (a < 2^-14):           bits(f32(a) + 0.5) - 0x3f000000 ;; the add rounds
 * overflow  (a >= 65520):          0x7c00, NaN 0x7e00
 * h = result | s >> 16
 * ```
 *
 * @param f The function.
 * @param fp16 Use the FP16 proposal's instruction.
 */
export function f32x4ToF16x4(f: WasmFunc, fp16: boolean): void {
  if (fp16) {
    f.op("f16x8.demote_f32x4_zero");
    return;
  }
  for (const l of ["_fa", "_fs", "_fr"]) if (!f.has(l)) f.local(l, "v128");
  f.tee("_fa").i32x4(0x80000000 | 0).op("v128.and").set("_fs");
  f.get("_fa").get("_fs").op("v128.xor").set("_fa");
  f.comment("subnormal (|x| < 2^-14): the f32 add of 0.5 rounds the bits into place");
  f.get("_fa").f32x4(0.5).op("f32x4.add").i32x4(0x3f000000).op("i32x4.sub");
  f.comment("normal: round to nearest even at bit 13 and rebias 127 → 15");
  f.get("_fa").i32x4(0xc8000fff | 0).op("i32x4.add");
  f.get("_fa").i32(13).op("i32x4.shr_u").i32x4(1).op("v128.and").op("i32x4.add");
  f.i32(13).op("i32x4.shr_u");
  f.i32x4(0x38800000).get("_fa").op("i32x4.gt_s").op("v128.bitselect").set("_fr");
  f.comment("overflow (|x| >= 65520): Inf; NaN: a quiet NaN");
  f.i32x4(0x7e00).i32x4(0x7c00).get("_fa").i32x4(0x7f800000).op("i32x4.gt_s").op("v128.bitselect");
  f.get("_fr").get("_fa").i32x4(0x477fefff).op("i32x4.gt_s").op("v128.bitselect");
  f.get("_fs").i32(16).op("i32x4.shr_u").op("v128.or");
  f.zeroV128().op("i16x8.narrow_i32x4_u");
}

/**
 * Declares (unless declared) and sets, where it is called (a function's entry), the v128
 * locals `f16mask` ({@linkcode F16_MASK}) and `f16scale` ({@linkcode F16_RESCALE}) of the
 * shift-and-rescale f16 → f32 conversion ({@linkcode f16HighHalvesToF32x4},
 * {@linkcode loadF16x4} without `fp16`).
 *
 * @param f The function.
 */
export function f16RescaleLocals(f: WasmFunc): void {
  for (const l of ["f16mask", "f16scale"]) if (!f.has(l)) f.local(l, "v128");
  f.comment("f16 → f32: ((h << 16) >>s 3) & 0x8fffe000, then · 2^112");
  f.i32x4(F16_MASK).set("f16mask");
  f.f32x4(F16_RESCALE).set("f16scale");
}

/**
 * Pushes the f32x4 of the 4 f16 at `addr + offset` (memory 0, the arena): with `fp16`
 * `v128.load64_zero` and `f32x4.promote_low_f16x8`; without, `v128.load16x4_u` and the
 * shift-and-rescale of {@linkcode f16HighHalvesToF32x4} (locals `maskLocal`, `rescaleLocal`
 * hold {@linkcode F16_MASK} and {@linkcode F16_RESCALE}: {@linkcode f16RescaleLocals}). Exact
 * for every finite f16.
 *
 * @param f The function.
 * @param addr The i32 local holding the address.
 * @param offset Byte offset.
 * @param fp16 Use the FP16 proposal's conversion.
 * @param maskLocal The mask local (without `fp16`).
 * @param rescaleLocal The 2^112 local (without `fp16`).
 */
export function loadF16x4(
  f: WasmFunc,
  addr: string,
  offset: number,
  fp16: boolean,
  maskLocal = "f16mask",
  rescaleLocal = "f16scale",
): void {
  if (fp16) {
    f.get(addr).mem("v128.load64_zero", offset, { align: 1 }).op("f32x4.promote_low_f16x8");
    return;
  }
  f.get(addr).mem("v128.load16x4_u", offset, { align: 1 }).i32(16).op("i32x4.shl");
  f16HighHalvesToF32x4(f, maskLocal, rescaleLocal);
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
