/**
 * The contract between the matrix-product driver (`linear.ts`) and the per-type block code
 * (`types_float.ts`, `types_q32.ts`, `types_k.ts` through `k_block.ts`): the driver walks
 * rows, tokens and blocks; a type's {@linkcode BlockEmitter} emits what one block
 * contributes to an `R rows × C tokens` register block.
 *
 * Locals the driver provides (i32 byte addresses):
 * - `pw`: the current block of weight row 0 (row a is at `pw + a · rowBytes`);
 * - `px`: the current block's activations of token 0 (quants for q8 formats, f32 for f32;
 *   token c at `px + c · stride`);
 * - `pd`: the current block's metadata record of token 0 (q8 formats; `pd + c · stride`).
 * Accumulators: `acc{a}_{c}` (f32x4, lanes summed at the end) and, when the type asks for
 * them, `accp{a}_{c}` (f32x4, a second chain added to `acc{a}_{c}` at the end) and
 * `sacc{a}_{c}` (f32).
 *
 * @module
 */
import type { WasmFunc } from "../wasm_asm.ts";
import { f16Lanes, splatLane } from "./snippets.ts";
import type { WeightType } from "./blocks.ts";

/** What a block emitter sees. */
export interface BlockCtx {
  /** The function. */
  f: WasmFunc;
  /** Weight rows in the register block. */
  R: number;
  /** Tokens in the register block. */
  C: number;
  /** Bytes per weight row. */
  rowBytes: number;
  /** Bytes per activation row. */
  stride: number;
  /** Use relaxed SIMD. */
  relaxed: boolean;
  /** F16 weights: use the FP16 proposal's `f32x4.promote_low_f16x8`. */
  fp16: boolean;
  /**
   * With `relaxed`: `i32x4.relaxed_dot_i8x16_i7x16_add_s` takes its second operand as u8
   * (0..255) without saturation, as x86 `vpdpbusd` does (`wasm_features.ts` `relaxedDotU8`).
   */
  dotU8: boolean;
  /**
   * Byte offset of the activation quants' lane-order copy from a row's start (`blocks.ts`
   * `ActLayout.laneOffset`; null when the format has none).
   */
  laneOffset: number | null;
}

/** The per-type code of one block. */
export interface BlockEmitter {
  /** The weight type. */
  type: WeightType;
  /** Elements one `block()` covers (the ggml block; 8 for float types). */
  elems: number;
  /** Weight bytes one `block()` covers. */
  bytes: number;
  /** Whether the type uses the scalar accumulators `sacc{a}_{c}`. */
  scalar: boolean;
  /** Declares the locals for register blocks up to R × C (called once per function). */
  locals(f: WasmFunc, R: number, C: number): void;
  /** Sets per-function constants (masks) at entry. */
  init(f: WasmFunc): void;
  /** Emits one block's contribution for R × C. */
  block(k: BlockCtx): void;
  /**
   * Float types: emits `sacc{a}_{c} += Σ w·x` over the `count` columns left after the
   * blocks (pw/px then point just past the last block).
   */
  tail?(k: BlockCtx, count: number): void;
  /**
   * The factor the lane sum of `acc{a}_{c}` is multiplied by at the end (a power of two the
   * block code took out of its inner loop), or undefined for none.
   */
  accScale?(k: BlockCtx): number | undefined;
  /**
   * Whether the block code also accumulates into `accp{a}_{c}` (f32x4, added to
   * `acc{a}_{c}` before its lane sum): a second dependency chain, so the two FMAs a block
   * adds to one (row, token) do not wait on each other's latency.
   */
  pairAcc?(k: BlockCtx): boolean;
}

/** Declares `name` as `type` unless the function already has it. */
export function need(f: WasmFunc, name: string, type: "i32" | "f32" | "v128"): void {
  if (!f.has(name)) f.local(name, type);
}

/**
 * The f16 at `pw + offsets[i]` → lane `i % 4` of the f32x4 local `{prefix}{i / 4}` (declared
 * here): the block scales of a register block's rows converted four per vector
 * (`snippets.ts` `f16Lanes`) instead of one scalar conversion each.
 */
export function f16Vectors(k: BlockCtx, offsets: number[], prefix: string): void {
  for (let g = 0; 4 * g < offsets.length; g++) {
    const part = offsets.slice(4 * g, 4 * g + 4);
    need(k.f, `${prefix}${g}`, "v128");
    k.f.comment(`f16 at bytes ${part.join(", ")} → f32 lanes of ${prefix}${g}`);
    f16Lanes(k.f, "pw", part, `${prefix}${g}`, k.f.weightMemory, k.fp16);
  }
}

/**
 * `acc{a}_{c} += f32(isum) · splat(lane a of the f32x4 local dwx)`, fused when relaxed: the
 * lane-wise form of {@linkcode addScaled} when the R rows' scales (times token c's) are the
 * lanes of one vector.
 */
export function addScaledLane(k: BlockCtx, a: number, c: number, isum: string, dwx: string) {
  splatLane(k.f, dwx, a);
  addScaled(k, a, c, isum, true);
}

/**
 * `acc{a}_{c} += f32(isum{a}_{c}) · splat(scale on the stack)`, fused when relaxed; with
 * `splatted` the stack already holds the f32x4 splat.
 */
export function addScaled(
  k: BlockCtx,
  a: number,
  c: number,
  isum: string,
  splatted = false,
): void {
  const f = k.f;
  if (!splatted) f.op("f32x4.splat");
  f.set("_s");
  if (k.relaxed) {
    f.get(isum).op("f32x4.convert_i32x4_s").get("_s").get(`acc${a}_${c}`);
    f.op("f32x4.relaxed_madd").set(`acc${a}_${c}`);
  } else {
    f.get(isum).op("f32x4.convert_i32x4_s").get("_s").op("f32x4.mul");
    f.get(`acc${a}_${c}`).op("f32x4.add").set(`acc${a}_${c}`);
  }
}
