/**
 * The f16 KV cache (`cacheTypeK` / `cacheTypeV: "f16"`, llama.cpp's default `--cache-type-k
 * f16 --cache-type-v f16`) through whole models:
 *
 * - against HF transformers whose cache rounds K (after RoPE) and V to float16 when they are
 *   stored (python/hf_kv_fixtures.py, `tests/fixtures/hf/llama_gqa/expected_kv_f16.json`):
 *   a prompt in one prefill and token by token, from the HF directory and from its GGUF.
 *   The tolerance is 2e-3: f32 K/V that differ by ~1e-6 between two implementations can
 *   round to neighbouring halves (the fixture's own one-pass and incremental runs differ by
 *   up to 5e-4 for that reason), while the f32 cache is 7.4e-3 away from the reference — the
 *   negative control: an f32 cache, or an f16 cache that is not used, fails it;
 * - the batch checks of tests/batch_checks.ts (many sequences per step, shuffled blocks,
 *   rings, shared prefixes, verify rows) on f16 pools against the f32 reference (their
 *   difference is the rounding, 1e-2 here; a wrong row or block is O(1));
 * - 1 and 2 threads give the same logits; the pools take half the bytes;
 * - clear errors for a bad type and for f16 on a backend without it.
 */
import assert from "node:assert/strict";
import { compileBatch, compileModel } from "../codegen/compile.ts";
import { planArena } from "../codegen/plan.ts";
import type { ModelConfig } from "../core/config.ts";
import { kvBlockBytes, resolveBatchLayout } from "../core/forward.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { loadModel } from "../runtime/model.ts";
import { createBatchModel } from "../runtime/batch_model.ts";
import { checkServing } from "./batch_checks.ts";
import { cfg } from "./forward_cases.ts";
import { HF_FIXTURES } from "./hf_expected.ts";
import { logitsOnThreads } from "./wasm_weights.ts";

/** The f16-cache reference: prompt ids and transformers' logits at every position. */
interface F16Expected {
  tokens: number[];
  logits: number[][];
  f32_max_diff: number;
}

const REF: F16Expected = JSON.parse(
  await Deno.readTextFile(`${HF_FIXTURES}/llama_gqa/expected_kv_f16.json`),
);
const TOL_F16 = 2e-3;
const F16 = { cacheTypeK: "f16", cacheTypeV: "f16" } as const;

/** max |a - b| over every position's logits. */
function maxDiff(got: Float32Array[], want: number[][]): number {
  let m = 0;
  got.forEach((row, t) => row.forEach((v, i) => (m = Math.max(m, Math.abs(v - want[t][i])))));
  return m;
}

/** The logits of the reference's prompt: one prefill (all rows), then token by token. */
async function promptLogits(path: string, types: Partial<typeof F16>) {
  const m = await loadModel(path, { backend: "wasm", threads: 1, warmup: false, ...types });
  try {
    const V = m.config.vocab_size, n = REF.tokens.length;
    const all = m.forwardAll(REF.tokens, 0);
    const prefill = Array.from({ length: n }, (_, t) => all.slice(t * V, (t + 1) * V));
    const decode = REF.tokens.map((id, p) => m.forwardAll([id], p).slice());
    return { prefill, decode };
  } finally {
    m.close();
  }
}

for (
  const [what, path] of [
    ["the HF directory", `${HF_FIXTURES}/llama_gqa`],
    ["its GGUF", `${HF_FIXTURES}/llama_gqa.gguf`],
  ]
) {
  Deno.test(`loadModel() with an f16 KV cache matches transformers' f16-rounded cache: ${what}`, async () => {
    const f16 = await promptLogits(path, F16);
    const dPrefill = maxDiff(f16.prefill, REF.logits), dDecode = maxDiff(f16.decode, REF.logits);
    assert.ok(dPrefill <= TOL_F16, `prefill: max |diff| ${dPrefill} > ${TOL_F16}`);
    assert.ok(dDecode <= TOL_F16, `token by token: max |diff| ${dDecode} > ${TOL_F16}`);
    // Negative control: the f32 cache is as far from this reference as transformers' own f32.
    const f32 = await promptLogits(path, {});
    const d32 = maxDiff(f32.prefill, REF.logits);
    assert.ok(d32 > TOL_F16, `the f32 cache is only ${d32} from the f16 reference`);
    assert.ok(Math.abs(d32 - REF.f32_max_diff) < 2e-3, `f32 cache ${d32} vs ${REF.f32_max_diff}`);
  });
}

/** A config whose matrices are whole K-quant blocks, GQA 2, tied; and gpt2. */
const CASES: [string, ModelConfig][] = [
  ["llama GQA2", cfg("llama", { dim: 256, n_kv_heads: 2, hidden_dim: 512, rope_style: "half" })],
  ["gpt2 (head_dim 64, MHA)", cfg("gpt2", { dim: 256, hidden_dim: 512 })],
];

Deno.test("compileBatch() on f16 pools passes the batch checks (paging, rings, prefixes, verify)", () => {
  for (const [name, c] of CASES) {
    const build = (w: Weights, l: Parameters<typeof compileBatch>[2]) =>
      compileBatch(c, w, { ...l, ...F16, backend: "wasm" });
    checkServing(name, c, build, { tol: 1e-2 });
  }
});

Deno.test("compileModel() with an f16 cache: 1 and 2 threads give the same logits", () => {
  const [, c] = CASES[0];
  const w = randomWeights(c, 9);
  const runs = [1, 2].map((threads) => logitsOnThreads(c, w, threads, F16));
  runs[1].forEach((l, i) => assert.deepEqual(l, runs[0][i], `call ${i}`));
});

Deno.test("planArena() gives f16 pools half the bytes, one type at a time too", () => {
  const [, c] = CASES[0];
  const f32 = planArena(c, { kvCapacity: 64 }), f16 = planArena(c, { kvCapacity: 64, ...F16 });
  const kOnly = planArena(c, { kvCapacity: 64, cacheTypeK: "f16" });
  assert.equal(f16.kvBytes * 2, f32.kvBytes);
  assert.equal(kOnly.kvBytes * 4, f32.kvBytes * 3);
  assert.equal(f16.blockBytes, kvBlockBytes(c, 16, F16));
  assert.equal(f16.buffers.find((b) => b.name === "kv.l0.v")!.dtype, "f16");
});

Deno.test("createBatchModel() fits twice the f16 blocks in a KV memory budget", () => {
  const [, c] = CASES[0];
  const w = randomWeights(c, 1);
  const o = { backend: "wasm", ctxSize: 64, kvMemoryBytes: 4 << 20, warmup: false } as const;
  const blocks = [{}, F16].map((types) => {
    const m = createBatchModel(c, w, null, { ...o, ...types });
    try {
      return m.batch.numBlocks;
    } finally {
      m.close();
    }
  });
  // numBlocks = the pool + the null block
  assert.equal(blocks[1] - 1, 2 * (blocks[0] - 1));
});

Deno.test("f16 caches: a bad type and a backend without f16 pools give clear errors", () => {
  const [, c] = CASES[0];
  const w = randomWeights(c, 1);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => resolveBatchLayout({ numBlocks: 4, cacheTypeV: "q8_0" as any }),
    /cacheTypeV must be one of f32, f16, got "q8_0"/,
  );
  assert.throws(
    () => compileModel(c, w, { kvCapacity: 16, cacheTypeK: "f16" }),
    /the js backend keeps an f32 KV cache; cacheTypeK \/ cacheTypeV f16 needs the wasm backend/,
  );
  assert.throws(
    () =>
      createBatchModel(c, w, null, { backend: "jit", cacheTypeK: "f16", kvBlocks: 8, ctxSize: 64 }),
    /cacheTypeK f16 needs the wasm backend \(backend jit keeps an f32 KV cache\)/,
  );
});
