/**
 * The step kernels of codegen/wasm/ops.ts against plain float64 loops written from the
 * formulas (llama2.c run.c rmsnorm, GPT-2 layernorm/gelu, GeGLU, Gemma 2's soft-cap), with a
 * negative control for the soft-cap. Attention is attention_test.ts.
 */
import assert from "node:assert/strict";
import { assertClose } from "../../tests/assert_close.ts";
import { rng } from "../../tests/ggml_blocks.ts";
import type { WasmFunc } from "../wasm_asm.ts";
import { assembleModule } from "../wasm_assemble.ts";
import { elementwiseKernel, expKernel, layernormKernel, rmsnormKernel } from "./ops.ts";
import { WasmFunc as Fn } from "../wasm_asm.ts";

// deno-lint-ignore no-explicit-any
type Exports = Record<string, any>;

function instantiate(
  funcs: WasmFunc[],
): { e: Exports; f32: Float32Array; mem: WebAssembly.Memory } {
  const mem = new WebAssembly.Memory({ initial: 16 });
  const bytes = assembleModule([expKernel(), ...funcs], 16);
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: mem } })
    .exports as Exports;
  return { e, f32: new Float32Array(mem.buffer), mem };
}

const fill = (a: Float32Array, off: number, n: number, r: () => number, s = 1) => {
  for (let i = 0; i < n; i++) a[off / 4 + i] = (2 * r() - 1) * s;
};

Deno.test("exp_f32x4 is within 3e-7 relative of Math.exp on [-80, 80]", () => {
  const probe = new Fn("probe", [["p", "i32"]]);
  probe.get("p").get("p").mem("v128.load").call("exp_f32x4").mem("v128.store");
  const { e, f32 } = instantiate([probe]);
  let worst = 0;
  for (let x = -80; x <= 80; x += 0.0371) {
    f32.set([x, -x / 3, x / 7, 0], 0);
    e.probe(0);
    for (const [i, v] of [x, -x / 3, x / 7, 0].entries()) {
      const want = Math.exp(Math.fround(v));
      worst = Math.max(worst, Math.abs(f32[i] - want) / want);
    }
  }
  assert.ok(worst < 3e-7, `worst relative error ${worst}`);
});

for (const D of [37, 64]) {
  Deno.test(`rmsnorm_${D} and layernorm_${D} match float64 loops over 3 rows`, () => {
    const eps = 1e-5, n = 3;
    const { e, f32 } = instantiate([rmsnormKernel(D, eps), layernormKernel(D, eps)]);
    const r = rng(D);
    const W = 0, B = 1024, X = 2048, Y = 4096;
    fill(f32, W, D, r), fill(f32, B, D, r), fill(f32, X, n * D, r, 3);
    const x = f32.slice(X / 4, X / 4 + n * D), w = f32.slice(0, D), b = f32.slice(256, 256 + D);
    e[`rmsnorm_${D}`](W, X, Y, n);
    const want = new Float64Array(n * D);
    for (let t = 0; t < n; t++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) want[t * D + i] = x[t * D + i] * inv * w[i];
    }
    assertClose(f32.subarray(Y / 4, Y / 4 + n * D), want, 2e-6, "rmsnorm");
    e[`layernorm_${D}`](W, B, X, Y, n);
    for (let t = 0; t < n; t++) {
      let mean = 0, v = 0;
      for (let i = 0; i < D; i++) mean += x[t * D + i] / D;
      for (let i = 0; i < D; i++) v += (x[t * D + i] - mean) ** 2 / D;
      const inv = 1 / Math.sqrt(v + eps);
      for (let i = 0; i < D; i++) want[t * D + i] = (x[t * D + i] - mean) * inv * w[i] + b[i];
    }
    assertClose(f32.subarray(Y / 4, Y / 4 + n * D), want, 2e-6, "layernorm");
  });
}

Deno.test("add_f32, swiglu_f32 and gelu_f32 match float64 over a range with a tail", () => {
  const { e, f32 } = instantiate([
    elementwiseKernel("add"),
    elementwiseKernel("swiglu"),
    elementwiseKernel("gelu"),
  ]);
  const N = 41, A = 0, B = 4096, r = rng(5);
  const ops: [string, (a: number, b: number) => number][] = [
    ["add_f32", (a, b) => a + b],
    ["swiglu_f32", (a, b) => (a / (1 + Math.exp(-a))) * b],
    [
      "gelu_f32",
      (a) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3))),
    ],
  ];
  for (const [name, ref] of ops) {
    fill(f32, A, N, r, 6), fill(f32, B, N, r, 2);
    const a = f32.slice(0, N), b = f32.slice(B / 4, B / 4 + N);
    e[name](A, B, 3, N); // elements 3 .. N - 1
    const want = Array.from(a, (x, i) => (i < 3 ? x : ref(x, b[i])));
    assertClose(f32.subarray(0, N), want, 3e-6, name);
  }
});

Deno.test("geglu_f32 and softcap_capC_f32 match float64 over a range with a tail, saturating", () => {
  const caps = [30, 2.5];
  const { e, f32 } = instantiate([
    elementwiseKernel("geglu"),
    ...caps.map((c) => elementwiseKernel("softcap", c)),
  ]);
  const N = 41, A = 0, B = 4096, r = rng(6);
  const gelu = (a: number) =>
    0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3)));
  // [kernel, float64 formula, input scale, absolute tolerance]; tanh by 1 - 2 / (e^2u + 1)
  // is within ~1e-7 (the vector exp's 2e-7 relative error), times the cap.
  const ops: [string, (a: number, b: number) => number, number, number][] = [
    ["geglu_f32", (a, b) => gelu(a) * b, 6, 3e-6],
    // logits past the cap (±200 against 30; ±20 against 2.5) saturate at ±cap
    ["softcap_cap30_f32", (a) => 30 * Math.tanh(a / 30), 200, 30 * 2e-7],
    ["softcap_cap2p5_f32", (a) => 2.5 * Math.tanh(a / 2.5), 20, 2.5 * 2e-7],
  ];
  for (const [name, ref, scale, tol] of ops) {
    fill(f32, A, N, r, scale), fill(f32, B, N, r, 2);
    f32[5] = 1e-3; // tanh's cancellation near 0
    const a = f32.slice(0, N), b = f32.slice(B / 4, B / 4 + N);
    e[name](A, B, 3, N); // elements 3 .. N - 1
    const want = Array.from(a, (x, i) => (i < 3 ? x : ref(x, b[i])));
    assertClose(f32.subarray(0, N), want, tol, name);
  }
  // Negative control: the cap is a literal of the kernel; the other cap's values differ.
  fill(f32, A, N, r, 20);
  const a = f32.slice(0, N);
  e.softcap_cap30_f32(A, 0, 0, N);
  assert.throws(
    () => assertClose(f32.subarray(0, N), a.map((x) => 2.5 * Math.tanh(x / 2.5)), 1e-3),
    /max \|diff\|/,
  );
});
