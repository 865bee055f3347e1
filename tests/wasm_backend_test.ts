/**
 * The WASM backend on weights as files store them: every block type, F16 and BF16 against
 * the reference (runtime/reference.ts) running on the dequantised weights, the batch checks
 * (tests/batch_checks.ts) on quantised weights, 1, 2 and 3 threads giving the same logits,
 * and a failing worker giving a clear error.
 *
 * Tolerances (absolute, on logits of max |logit| ≈ 2, rms ≈ 0.5): F16, BF16: {@linkcode TOL}
 * (the weights widen to f32 exactly; only summation order differs). Block types: 0.06 — the
 * integer kernels multiply by activations rounded per block to int8 (q8_0 / q8_K, as
 * llama.cpp's `ggml_vec_dot_*_q8_*` do), ≈ 0.6% of a dot product's size; measured 0.01-0.03
 * on these 2-layer models.
 */
import assert from "node:assert/strict";
import { compileBatch, compileModel } from "../codegen/compile.ts";
import type { ModelConfig } from "../core/config.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { dequantizeWeights } from "../formats/quant/tensor.ts";
import { createReference } from "../runtime/reference.ts";
import { startStepPool, startThreadPool, ThreadError } from "../runtime/threads.ts";
import { assertClose } from "./assert_close.ts";
import { checkServing } from "./batch_checks.ts";
import { cfg, TOL } from "./forward_cases.ts";
import { logitsOf, logitsOnThreads, store } from "./wasm_weights.ts";

/** Block types and their logit tolerance (see the module doc). */
const BLOCK_TOL = 0.06;
const TYPES: [string, number][] = [
  ["F16", TOL],
  ["BF16", TOL],
  ...["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"].map((
    t,
  ): [string, number] => [t, BLOCK_TOL]),
];

/** Configs whose matrices are whole K-quant blocks (dims multiples of 256). */
const CASES: [string, ModelConfig][] = [
  [
    "llama GQA2 tied",
    cfg("llama", { dim: 256, n_kv_heads: 2, hidden_dim: 512, rope_style: "half" }),
  ],
  [
    "llama GQA4 untied bias",
    cfg("llama", {
      dim: 256,
      n_heads: 8,
      n_kv_heads: 2,
      hidden_dim: 768,
      tie_embeddings: false,
      attn_bias: true,
    }),
  ],
  ["gpt2", cfg("gpt2", { dim: 256, hidden_dim: 512 })],
];

for (const [type, tol] of TYPES) {
  Deno.test(`wasm backend on ${type} weights equals the reference on them dequantised`, () => {
    for (const [name, c] of CASES) {
      const w = store(type)(randomWeights(c, 5));
      const ref = createReference(c, dequantizeWeights(w), { kvCapacity: 40 });
      const m = compileModel(c, w, { backend: "wasm", kvCapacity: 40, prefillChunk: 8 });
      const want = logitsOf(ref, c), got = logitsOf(m, c);
      got.forEach((g, i) => assertClose(g, want[i], tol, `${name} ${type} call ${i}`));
    }
  });
}

Deno.test("wasm backend: the quantised check fails for one block scale off (negative control)", () => {
  const [, c] = CASES[0];
  const w = store("Q8_0")(randomWeights(c, 5));
  const ref = createReference(c, dequantizeWeights(w), { kvCapacity: 40 });
  const wq = w.get("layers.1.ffn.w2.weight")!;
  const bytes = wq.bytes!.slice();
  bytes[1] ^= 0x10; // the f16 scale d of row 0's first block: exponent +/- 4 (x16 or /16)
  const off = new Map(w).set("layers.1.ffn.w2.weight", { ...wq, bytes } as typeof wq);
  const m = compileModel(c, off, { backend: "wasm", kvCapacity: 40, prefillChunk: 8 });
  assert.throws(
    () => assertClose(logitsOf(m, c)[0], logitsOf(ref, c)[0], BLOCK_TOL),
    /max \|diff\|/,
  );
});

for (const type of ["Q8_0", "Q4_K", "F16"]) {
  Deno.test(`wasm backend passes the batch checks on ${type} weights`, () => {
    const tol = type === "F16" ? TOL : BLOCK_TOL;
    for (const [name, c] of [CASES[0], CASES[2]]) {
      const build = (w: Weights, l: Parameters<typeof compileBatch>[2]) =>
        compileBatch(c, w, { ...l, backend: "wasm" });
      checkServing(`${name} ${type}`, c, build, { store: store(type), tol });
    }
  });
}

Deno.test("wasm backend: 1, 2 and 3 threads give the same logits (F32, Q8_0, Q4_K)", () => {
  // The 1-row calls: every thread quantises a product's input itself; the 20-row prompt
  // (8-row chunks, or one chunk): the threads split its rows into one shared buffer.
  for (const prefillChunk of [8, 32]) {
    for (const type of ["F32", "Q8_0", "Q4_K"]) {
      for (const [name, c] of CASES) {
        const f32 = randomWeights(c, 9);
        const w = type === "F32" ? f32 : store(type)(f32);
        const runs = [1, 2, 3].map((threads) => logitsOnThreads(c, w, threads, { prefillChunk }));
        for (const k of [1, 2]) {
          runs[k].forEach((g, i) =>
            assertClose(g, runs[0][i], 0, `${name} ${type} ${k + 1} threads, chunk ${prefillChunk}`)
          );
        }
      }
    }
  }
});

Deno.test("wasm backend: a worker that fails gives a ThreadError, not a hang", async () => {
  const [, c] = CASES[0];
  const w = randomWeights(c, 1);
  let workers: { terminate(): unknown }[] = [];
  const m = compileModel(c, w, {
    backend: "wasm",
    threads: 2,
    startPool(module, memory, ctl, threads) {
      const pool = startThreadPool(module, memory, ctl, ["step"], { threads, timeoutMs: 2000 });
      workers = [...pool.workers];
      return { run: () => pool.run("step"), close: () => pool.close() };
    },
  });
  assert.equal(m.forward([1, 2, 3], 0).length, c.vocab_size);
  await workers[0].terminate();
  // A worker may still run the step it wakes for before the termination takes effect; a
  // later one must fail, within the timeout.
  const t0 = performance.now();
  let error: unknown = null;
  for (let i = 0; i < 3 && !error; i++) {
    try {
      m.forward([4], 3 + i);
    } catch (e) {
      error = e;
    }
  }
  assert.ok(error instanceof ThreadError, `a step after the termination fails: ${error}`);
  assert.match(error.message, /^thread 1 did not reach a barrier or finish within 2000 ms/);
  assert.ok(performance.now() - t0 < 10_000, "the failure is reported within the timeout");
  assert.throws(() => m.forward([4], 3), /thread pool failed earlier|closed/);
  m.close();
});

Deno.test("wasm backend: weights past one memory's limit go to further memories, same logits", () => {
  // A memory limit of 160 KiB (instead of 4 GiB) puts most matrices in env.memory1, ...:
  // the kernels read them there (multi-memory), on 1 and 2 threads.
  for (const [name, c] of [CASES[0], CASES[2]]) {
    const w = store("Q8_0")(randomWeights(c, 11));
    const one = compileModel(c, w, { backend: "wasm", kvCapacity: 40, prefillChunk: 8 });
    for (const threads of [1, 2]) {
      const split = compileModel(c, w, {
        backend: "wasm",
        kvCapacity: 40,
        prefillChunk: 8,
        threads,
        startPool: startStepPool,
        memoryLimit: 160 << 10,
      });
      try {
        const L = split.wasm!.layout;
        assert.ok(L.more.length >= 2, `${name}: ${L.more.length} further memories`);
        assert.ok([...L.weights.values()].some((x) => x.memory === 2));
        assert.match(split.source, /\(import "env" "memory1" \(memory \d+ \d+ shared\)\)/);
        assert.match(split.source, /call \$matvec_q8_0_\w+_m1/);
        const want = logitsOf(one, c), got = logitsOf(split, c);
        got.forEach((g, i) => assertClose(g, want[i], 0, `${name} ${threads} thread(s) call ${i}`));
      } finally {
        split.close();
      }
    }
  }
});
