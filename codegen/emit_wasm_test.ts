/**
 * The WASM SIMD emitter (codegen/emit_wasm.ts): its kernels against a plain float64 matrix
 * product for every remainder of rows, columns and tokens, and the listing of a plan's
 * kernels. (The wasm backend's forward pass against the reference is in compile_test.ts; the
 * published stories260K greedy text is checked for it in tests/stories260k_test.ts.)
 */
import assert from "node:assert/strict";
import { randomWeights } from "../core/weights.ts";
import { compileModel } from "./compile.ts";
import { emitKernelsForPlan } from "./emit_js.ts";
import {
  emitWasmForPlan,
  emitWasmListing,
  linearKernel,
  type LinearShape,
  linearShapes,
} from "./emit_wasm.ts";
import { planArena } from "./plan.ts";
import { assembleModule } from "./wasm_asm.ts";
import { assertClose } from "../tests/assert_close.ts";
import { FORWARD_CASES, forwardCase } from "../tests/forward_cases.ts";

/** y (n, M) = x (n, N) · wᵀ + bias in float64, the oracle of the kernel test. */
function matmul64(w: Float32Array, b: Float32Array | null, x: Float32Array, M: number, N: number) {
  const n = x.length / N;
  const y = new Float64Array(n * M);
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < M; r++) {
      let s = 0;
      for (let j = 0; j < N; j++) s += w[r * N + j] * x[t * N + j];
      y[t * M + r] = s + (b ? b[r] : 0);
    }
  }
  return y;
}

Deno.test("linearKernel() computes matvec and matmul for every remainder of rows, columns, tokens", () => {
  const mem = new WebAssembly.Memory({ initial: 4 });
  const F = new Float32Array(mem.buffer);
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (const [M, N] of [[1, 1], [3, 5], [4, 8], [5, 12], [7, 9], [8, 16], [9, 37], [13, 45]]) {
    for (const bias of [false, true]) {
      for (const kind of ["matvec", "matmul"] as const) {
        const shape: LinearShape = { name: "k", kind, M, N, bias };
        const f = linearKernel(shape);
        const inst = new WebAssembly.Instance(new WebAssembly.Module(assembleModule([f], 1)), {
          env: { memory: mem },
        });
        const k = inst.exports.k as (...a: number[]) => void;
        for (const n of kind === "matvec" ? [1] : [1, 2, 3, 4, 5]) {
          // Layout (f32 index): w at 4 (unaligned for SIMD on purpose), bias, x, y.
          const wAt = 4, bAt = wAt + M * N + 3, xAt = bAt + M + 1, yAt = xAt + n * N + 5;
          const w = F.subarray(wAt, wAt + M * N).map(rnd);
          const b = F.subarray(bAt, bAt + M).map(rnd);
          const x = F.subarray(xAt, xAt + n * N).map(rnd);
          F.set(w, wAt);
          F.set(b, bAt);
          F.set(x, xAt);
          F.fill(NaN, yAt, yAt + n * M + 8);
          const args = [wAt * 4, ...(bias ? [bAt * 4] : []), xAt * 4, yAt * 4];
          k(...args, ...(kind === "matmul" ? [n] : []));
          const want = matmul64(w, bias ? b : null, x, M, N);
          assertClose(F.subarray(yAt, yAt + n * M), want, 1e-5, `${kind} ${M}x${N} n=${n}`);
          assert.ok(Number.isNaN(F[yAt + n * M]), `${kind} ${M}x${N} n=${n} wrote past y`);
        }
      }
    }
  }
});

Deno.test("emitWasmListing() lists one exported f32x4 function per matrix-product shape", () => {
  const c = forwardCase("llama odd dim 37, head_dim 8"); // dim 37, hidden 45: remainders everywhere
  const listing = emitWasmListing(c, { kvCapacity: 16, prefillChunk: 4 });
  const funcs = [...listing.matchAll(/\(func \$(\w+) \(export "(\w+)"\)/g)];
  assert.deepEqual(
    funcs.map((m) => m[1]).sort(),
    [
      "matmul_32x37",
      "matmul_16x37",
      "matmul_37x32",
      "matmul_45x37",
      "matmul_37x45",
      "matmul_97x37",
      "matvec_32x37",
      "matvec_16x37",
      "matvec_37x32",
      "matvec_45x37",
      "matvec_37x45",
      "matvec_97x37",
    ].sort(),
  );
  for (const m of funcs) assert.equal(m[1], m[2]);
  assert.ok(listing.includes("f32x4.mul"));
  assert.ok(listing.includes(";; y (45) = w (45, 37) · x (37)"));
  // The JS module of the wasm backend calls exactly these exports.
  const m = compileModel(c, randomWeights(c, 1), {
    kvCapacity: 16,
    prefillChunk: 4,
    backend: "wasm",
  });
  assert.equal(m.wasm!.listing, listing);
  for (const f of funcs) assert.ok(m.source.includes(`X.${f[1]}(`), f[1]);
  assert.ok(WebAssembly.validate(m.wasm!.bytes));
});

Deno.test("linearShapes() lists each distinct matrix product once, named as the JS kernels", () => {
  for (const [name, c] of FORWARD_CASES) {
    const plan = planArena(c, { kvCapacity: 16, prefillChunk: 4, weightsInArena: true });
    const shapes = linearShapes(plan);
    const names = shapes.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, `${name}: no duplicates`);
    const js = emitKernelsForPlan(plan);
    const jsNames = [...js.matchAll(/function (mat(?:vec|mul)_\w+)\(/g)].map((m) => m[1]);
    assert.deepEqual(names.sort(), jsNames.sort(), name);
    for (const s of shapes) {
      assert.equal(s.name, `${s.kind}_${s.M}x${s.N}${s.bias ? "_bias" : ""}`);
    }
  }
  // A one-token prefill chunk uses the matvec kernels for both steps.
  const one = planArena(forwardCase("llama MQA half"), { kvCapacity: 8, prefillChunk: 1 });
  assert.ok(linearShapes(one).every((s) => s.kind === "matvec"));
});

Deno.test("emitWasmForPlan() sizes the memory import by the plan and validates", () => {
  const c = forwardCase("gpt2 untied");
  const plan = planArena(c, { kvCapacity: 16, weightsInArena: true });
  const k = emitWasmForPlan(plan);
  assert.ok(WebAssembly.validate(k.bytes));
  const pages = Math.ceil(plan.memoryBytes / 65536);
  assert.match(k.listing, new RegExp(`\\(import "env" "memory" \\(memory ${pages}\\)\\)`));
  assert.deepEqual(
    WebAssembly.Module.exports(new WebAssembly.Module(k.bytes)).map((e) => e.name),
    k.shapes.map((s) => s.name),
  );
});
