/**
 * What the runtime's WebAssembly can do, probed once each by validating (or running) a tiny
 * module: relaxed SIMD, the u8 reading of its int8 dot product, the FP16 proposal. The
 * kernel emitters take the answers as options (`codegen/compile_wasm.ts` asks here), so a
 * kernel is the same text on every machine with the same answers.
 *
 * @module
 */
import { WasmFunc } from "./wasm_asm.ts";
import { assembleModule } from "./wasm_assemble.ts";

let relaxed: boolean | undefined;

/**
 * Whether this runtime validates relaxed-SIMD instructions (probed once with a module
 * using `i32x4.relaxed_dot_i8x16_i7x16_add_s` and `f32x4.relaxed_madd`).
 *
 * @returns True when kernels may use relaxed SIMD.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relaxedSimdSupported } from "./wasm_features.ts";
 * assert.equal(typeof relaxedSimdSupported(), "boolean");
 * ```
 */
export function relaxedSimdSupported(): boolean {
  if (relaxed === undefined) {
    const f = new WasmFunc("probe", [], ["v128"]);
    f.zeroV128().zeroV128().zeroV128().op("i32x4.relaxed_dot_i8x16_i7x16_add_s");
    f.zeroV128().zeroV128().zeroV128().op("f32x4.relaxed_madd").op("f32x4.add");
    relaxed = WebAssembly.validate(assembleModule([f], 1));
  }
  return relaxed;
}

let dotU8: boolean | undefined;

/**
 * Whether this runtime's `i32x4.relaxed_dot_i8x16_i7x16_add_s` takes its second (i7) operand
 * as unsigned bytes 0..255, exactly: what V8 emits on x86 with AVX-VNNI (`vpdpbusd`, u8 × s8
 * summed in i32). The relaxed-SIMD proposal leaves the result implementation-defined when
 * that operand has its top bit set; on x86 without VNNI (`pmaddubsw`, pairs saturated to
 * i16) and on Arm (`sdot`, signed × signed) the probe's sums differ, and the Q8_0 kernels
 * keep their i7-only form. Probed once, on the extremes (255 × 127, 255 × -128, 128 × -1).
 *
 * @returns True when the kernels may use the second operand as u8.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relaxedDotU8 } from "./wasm_features.ts";
 * assert.equal(typeof relaxedDotU8(), "boolean");
 * ```
 */
export function relaxedDotU8(): boolean {
  if (dotU8 === undefined) {
    dotU8 = false;
    if (relaxedSimdSupported()) {
      const f = new WasmFunc("dot", [["a", "i32"], ["b", "i32"]], ["i32"]);
      f.get("a").op("i8x16.splat").get("b").op("i8x16.splat").zeroV128();
      f.op("i32x4.relaxed_dot_i8x16_i7x16_add_s").lane("i32x4.extract_lane", 0);
      const memory = new WebAssembly.Memory({ initial: 1 });
      const dot = new WebAssembly.Instance(new WebAssembly.Module(assembleModule([f], 1)), {
        env: { memory },
      }).exports.dot as (a: number, b: number) => number;
      dotU8 = [[127, 255], [-128, 255], [-1, 128], [-128, 200]].every(([a, b]) =>
        dot(a, b) === 4 * a * b
      );
    }
  }
  return dotU8;
}

let fp16: boolean | undefined;

/**
 * The deno flag that turns on V8's WebAssembly FP16 proposal (see
 * {@linkcode fp16SimdSupported}); the deno tasks and the benchmarks' gollm processes pass it.
 */
export const FP16_V8_FLAG = "--v8-flags=--experimental-wasm-fp16";

/**
 * The V8 flags gollm's command-line tasks (`deno task gollm`, `bench`) and the benchmarks'
 * gollm processes start with: {@linkcode FP16_V8_FLAG}'s proposal, and a young generation of
 * at most 2 MB per semi-space (`--max-semi-space-size=2`; V8's default grows it to 16 MB). A
 * model lives in WebAssembly memory; gollm's JavaScript heap is small and long-lived (the
 * tokenizer, the plan), but loading allocates fast enough that V8 grew the young generation
 * to its maximum, memory no run used again. g110M Q4_K_M through `bench/gollm_runner.ts` on
 * 2 threads, peak RSS: 194-207 MB by default, 185-188 MB with 4 MB semi-spaces, 181-182 MB
 * with 2 (or 1). The cost: JavaScript that allocates a lot collects more often (tokenizing a
 * 1.2 MB text ~0.15 → ~0.17 s). An app that embeds gollm chooses its own flags.
 */
export const V8_FLAGS = `${FP16_V8_FLAG},--max-semi-space-size=2`;

/**
 * Whether this runtime validates the WebAssembly FP16 proposal's `f32x4.promote_low_f16x8`
 * (probed once). V8 has it behind `--v8-flags=--experimental-wasm-fp16`, which the deno
 * tasks pass; without it the F16 kernels convert halves with integer shifts (`snippets.ts`).
 * The flag is read when the process starts: it cannot be turned on from inside.
 *
 * Source: the FP16 proposal, https://github.com/WebAssembly/half-precision (opcode
 * `0xfd 0x14b`).
 *
 * @returns True when F16 kernels may use the hardware conversion.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fp16SimdSupported } from "./wasm_features.ts";
 * assert.equal(typeof fp16SimdSupported(), "boolean");
 * ```
 */
export function fp16SimdSupported(): boolean {
  if (fp16 === undefined) {
    const f = new WasmFunc("probe", [], ["v128"]);
    f.zeroV128().op("f32x4.promote_low_f16x8");
    fp16 = WebAssembly.validate(assembleModule([f], 1));
  }
  return fp16;
}
