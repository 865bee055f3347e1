/**
 * Choosing the backend a forward runs on, shared by the single-sequence model
 * (runtime/model.ts) and the serving model (runtime/batch_model.ts): `auto` builds the
 * WASM backend (the whole step in WASM SIMD, weights as stored, threads) and falls back to
 * the generated JS kernels when the WASM kernels do not cover an op or a weight type
 * (codegen/emit_wasm.ts `WasmUnsupportedError`); the JS kernels and the reference read F32,
 * so stored weights (F16, BF16, ggml blocks) are dequantised for them.
 *
 * ```
 * auto | wasm → build.wasm() ──ok──→ wasm
 *                  └─ WasmUnsupportedError and auto → dequantise → build.f32("jit")
 * jit | reference → dequantise → build.f32(backend)
 * ```
 *
 * @module
 */
import { WasmUnsupportedError } from "../codegen/emit_wasm.ts";
import { allF32, type F32Weights, type Weights } from "../core/weights.ts";
import { dequantizeWeights } from "../formats/quant/tensor.ts";

/** A backend as asked for (`auto`: the WASM backend when it runs the model, else jit). */
export type RequestedBackend = "auto" | "wasm" | "jit" | "reference";

/** What a build resolved to: the forward and the backend it runs on. */
export interface BackendChoice<T> {
  /** The built forward. */
  value: T;
  /** The backend it runs on (never `auto`). */
  backend: "wasm" | "jit" | "reference";
}

/**
 * Decides what a failed WASM build means: with `auto` and a {@linkcode WasmUnsupportedError}
 * the model runs on the JS kernels instead; otherwise the error stands.
 *
 * @param requested The backend asked for.
 * @param error What the WASM build threw.
 * @returns `"jit"`, the backend to build instead.
 * @throws {unknown} `error` itself unless `requested` is `auto` and it is a
 *   `WasmUnsupportedError`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WasmUnsupportedError } from "../codegen/emit_wasm.ts";
 * import { fallbackFromWasm } from "./backend.ts";
 * assert.equal(fallbackFromWasm("auto", new WasmUnsupportedError("type IQ2_XS")), "jit");
 * assert.throws(() => fallbackFromWasm("wasm", new WasmUnsupportedError("type IQ2_XS")), /IQ2_XS/);
 * assert.throws(() => fallbackFromWasm("auto", new RangeError("bad layout")), /bad layout/);
 * ```
 */
export function fallbackFromWasm(requested: RequestedBackend, error: unknown): "jit" {
  if (requested !== "auto" || !(error instanceof WasmUnsupportedError)) throw error;
  return "jit";
}

/**
 * Builds a forward on the requested backend (see the module doc): `build.wasm()` for `wasm`
 * and `auto`, `build.f32(backend, f32)` for `jit` and `reference` and for `auto` when the
 * WASM kernels do not cover the model, with stored weights dequantised to F32 first (4
 * bytes per weight).
 *
 * @param requested The backend asked for.
 * @param weights The canonical weights, F32 or stored.
 * @param build The two builders.
 * @returns The forward and the backend it runs on.
 * @throws {GollmError} whatever a builder throws (a `WasmUnsupportedError` only with `wasm`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WasmUnsupportedError } from "../codegen/emit_wasm.ts";
 * import { buildOnBackend } from "./backend.ts";
 * const w = new Map();
 * const f32 = (b: string) => `${b} kernels`;
 * const ok = buildOnBackend("auto", w, { wasm: () => "wasm kernels", f32 });
 * assert.deepEqual(ok, { value: "wasm kernels", backend: "wasm" });
 * const no = () => {
 *   throw new WasmUnsupportedError("no kernel for op 'x'");
 * };
 * assert.deepEqual(buildOnBackend("auto", w, { wasm: no, f32 }), {
 *   value: "jit kernels",
 *   backend: "jit",
 * });
 * assert.throws(() => buildOnBackend("wasm", w, { wasm: no, f32 }), /no kernel for op 'x'/);
 * ```
 */
export function buildOnBackend<T>(
  requested: RequestedBackend,
  weights: Weights,
  build: {
    /** Builds the WASM backend (weights as stored). */
    wasm: () => T;
    /** Builds the JS kernels or the reference on F32 weights. */
    f32: (backend: "jit" | "reference", f32: F32Weights) => T;
  },
): BackendChoice<T> {
  let backend: "jit" | "reference";
  if (requested === "wasm" || requested === "auto") {
    try {
      return { value: build.wasm(), backend: "wasm" };
    } catch (e) {
      backend = fallbackFromWasm(requested, e);
    }
  } else backend = requested;
  // The JS kernels and the reference read F32: stored weights are dequantised here.
  const f32: F32Weights = allF32(weights) ? weights : dequantizeWeights(weights);
  return { value: build.f32(backend, f32), backend };
}
