/**
 * The WASM SIMD backend (codegen/emit_wasm.ts, codegen/wasm_asm.ts, `compileModel(...,
 * { backend: "wasm" })`) against the reference forward (runtime/reference.ts) on random
 * weights over many shapes, its kernels against a plain float64 matrix product, its
 * assembler against the LEB128 examples of the WebAssembly spec / Wikipedia. (The published
 * stories260K greedy text is checked for this backend in tests/stories260k_test.ts.)
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../core/config.ts";
import { createReference } from "../runtime/reference.ts";
import { randomWeights } from "../core/weights.ts";
import { compileModel } from "./compile.ts";
import { emitKernels } from "./emit_js.ts";
import { emitWasmListing, linearKernel, type LinearShape } from "./emit_wasm.ts";
import { planArena } from "./plan.ts";
import { assembleModule, sleb, uleb } from "./wasm_asm.ts";
import { assertClose } from "../tests/assert_close.ts";
import { cfg, checkAgainstReference, tokens, TOL } from "../tests/forward_cases.ts";

// Both arches, MHA/GQA/MQA, odd dims (36, 37, 45, 33, 47), head_dim ≠ dim/n_heads, both
// RoPE styles, q/k/v bias, tied/untied LM head, vocab 5 (one row block plus one row).
const CASES: [string, ModelConfig][] = [
  ["llama MHA half tied", cfg("llama", { n_kv_heads: 4, rope_style: "half" })],
  [
    "llama GQA2 interleaved untied",
    cfg("llama", { n_kv_heads: 2, rope_style: "interleaved", tie_embeddings: false }),
  ],
  [
    "llama GQA4 interleaved bias",
    cfg("llama", {
      dim: 64,
      n_heads: 8,
      n_kv_heads: 2,
      rope_style: "interleaved",
      attn_bias: true,
    }),
  ],
  ["llama MQA half", cfg("llama", { n_kv_heads: 1, rope_style: "half" })],
  ["llama dim 36 hidden 44", cfg("llama", { dim: 36, n_heads: 3, n_kv_heads: 1, hidden_dim: 44 })],
  [
    "llama odd dim 37, head_dim 8",
    cfg("llama", { dim: 37, n_heads: 4, n_kv_heads: 2, head_dim: 8, hidden_dim: 45 }),
  ],
  [
    "llama head_dim 6 GQA3 bias untied",
    cfg("llama", {
      dim: 30,
      head_dim: 6,
      n_heads: 6,
      n_kv_heads: 2,
      hidden_dim: 50,
      attn_bias: true,
      tie_embeddings: false,
    }),
  ],
  [
    "llama vocab 5 dim 12",
    cfg("llama", { vocab_size: 5, dim: 12, n_heads: 2, n_kv_heads: 1, hidden_dim: 7 }),
  ],
  ["gpt2 MHA tied", cfg("gpt2", {})],
  ["gpt2 untied", cfg("gpt2", { tie_embeddings: false })],
  ["gpt2 odd dim 45 head_dim 9", cfg("gpt2", { dim: 45, n_heads: 5, hidden_dim: 99 })],
  [
    "gpt2 MQA head_dim 20",
    cfg("gpt2", { n_heads: 4, n_kv_heads: 1, head_dim: 20, tie_embeddings: false }),
  ],
  [
    "gpt2 odd dim 33 hidden 47",
    cfg("gpt2", { dim: 33, n_heads: 3, hidden_dim: 47, vocab_size: 61 }),
  ],
];

for (const [name, c] of CASES) {
  Deno.test(`compileModel({ backend: "wasm" }) matches createReference() on ${name}`, () => {
    checkAgainstReference(c, (w) => {
      const m = compileModel(c, w, { kvCapacity: 24, prefillChunk: 5, backend: "wasm" });
      assert.ok(m.wasm, "the compiled model carries its WASM module");
      assert.ok(m.plan.weightsBytes > 0);
      return m;
    });
  });
}

Deno.test('compileModel({ backend: "wasm" }) past kvCapacity matches the reference, any chunk', () => {
  for (const c of [CASES[3][1], CASES[9][1]]) {
    const w = randomWeights(c, 21);
    const cap = 6;
    const toks = tokens(40, c.vocab_size, 4);
    const ref = createReference(c, w, { kvCapacity: cap }).forwardAll(toks, 0);
    for (const chunk of [1, 4, 5, 6]) {
      const m = compileModel(c, w, { kvCapacity: cap, prefillChunk: chunk, backend: "wasm" });
      assertClose(m.forwardAll(toks, 0), ref, TOL, `forwardAll, chunk ${chunk}`);
      const b = m.forward(toks.slice(0, 40), 0);
      assertClose(b, ref.subarray(39 * c.vocab_size), TOL, `forward, chunk ${chunk}`);
    }
  }
});

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
  const c = CASES[5][1]; // dim 37, hidden 45: remainders everywhere
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

Deno.test("planArena() places weights after the arena only with weightsInArena", () => {
  const c = CASES[1][1];
  const plain = planArena(c, { kvCapacity: 16 });
  assert.equal(plain.weightsBytes, 0);
  assert.equal(plain.memoryBytes, plain.arenaBytes);
  assert.equal(plain.weightOffsets.size, 0);
  const withW = planArena(c, { kvCapacity: 16, weightsInArena: true });
  assert.equal(withW.arenaBytes, plain.arenaBytes);
  // Untied llama: embeddings, 2 layers × (7 matrices + 2 norms), final norm, output.
  assert.equal(withW.weightOffsets.size, 1 + 2 * 9 + 2);
  const weights = randomWeights(c, 1);
  const spans = [...withW.weightOffsets].map(([name, off]) => {
    const t = weights.get(name)!;
    return [off, off + t.data.length * 4] as const;
  }).sort((a, b) => a[0] - b[0]);
  assert.ok(spans[0][0] >= withW.arenaBytes);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i][0] >= spans[i - 1][1]);
  assert.ok(spans[spans.length - 1][1] <= withW.memoryBytes);
  // The JS backend's emitted module does not depend on the WASM option.
  assert.equal(emitKernels(c, { kvCapacity: 16 }).includes("X."), false);
});

Deno.test("uleb() and sleb() encode the LEB128 examples", () => {
  assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(uleb(0), [0]);
  assert.deepEqual(uleb(127), [0x7f]);
  assert.deepEqual(uleb(128), [0x80, 0x01]);
  assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(sleb(-1), [0x7f]);
  assert.deepEqual(sleb(64), [0xc0, 0x00]);
  assert.deepEqual(sleb(-64), [0x40]);
});
