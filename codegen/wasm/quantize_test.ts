/**
 * The activation quantisers (codegen/wasm/quantize.ts): the relaxed-SIMD form writes the
 * same bytes as the exact one (its accuracy against the f32 values is checked per element
 * in linear_test.ts). Rows mix ordinary values, zeros (a zero block: scale 0), ±1e30 and
 * values that round half-way.
 */
import assert from "node:assert/strict";
import { rng } from "../../tests/ggml_blocks.ts";
import { relaxedSimdSupported } from "../wasm_features.ts";
import { actLayout } from "./blocks.ts";
import { buildKernelModule } from "./module.ts";
import { quantizeKernel } from "./quantize.ts";

/** Quantises `rows` rows of K with the exact or the relaxed kernel; returns the bytes. */
function quantize(format: "q8_0" | "q8_K", K: number, x: Float32Array, relaxed: boolean) {
  const f = quantizeKernel(format, K, relaxed);
  const memory = new WebAssembly.Memory({ initial: 8 });
  const mod = buildKernelModule([f], { minPages: 8 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Record<string, (...a: number[]) => void>;
  const rows = x.length / K, out = 256 << 10;
  new Float32Array(memory.buffer).set(x);
  e[f.name](0, out, rows);
  assert.equal(f.text().includes("i32x4.relaxed_trunc_f32x4_s"), relaxed);
  return new Uint8Array(memory.buffer, out, rows * actLayout(format, K).stride).slice();
}

Deno.test({
  name: "quantizeKernel() with relaxed truncation writes the exact form's bytes",
  ignore: !relaxedSimdSupported(),
  fn() {
    const r = rng(11);
    for (const [format, K] of [["q8_0", 256], ["q8_K", 512]] as const) {
      const x = Float32Array.from({ length: 5 * K }, () => 6 * r() - 3);
      x.fill(0, K, K + 256); // a zero block (whole q8_K super-block)
      x[3] = 1e30, x[2 * K + 7] = -1e30;
      for (let i = 0; i < 32; i++) x[3 * K + i] = (i - 16) * 0.5; // amax 8: steps of 7.9375
      const exact = quantize(format, K, x, false);
      assert.deepEqual(quantize(format, K, x, true), exact, format);
      assert.ok(exact.some((b) => b !== 0), format);
    }
  },
});
