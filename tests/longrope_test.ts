/**
 * LongRoPE (`rope_scaling: longrope`, Phi-3 128k / Phi-3.5-mini / Phi-4-mini) against
 * transformers on the phi3_longrope fixture (python/hf_arch_fixtures.py: original context 16
 * of 64, distinct short and long factors, attention factor sqrt(1 + ln 4 / ln 16)), through the
 * reference, the JIT and the WASM backend, from the HF directory, the llama.cpp-converted GGUF,
 * a `gollm quantize` GGUF and a `gollm convert` directory:
 *
 * - long factors: a context above the original (the default KV capacity 64, or 24) gives
 *   transformers' logits on 24 tokens (transformers: `seq_len` 24 > 16, long factors for the
 *   whole forward); formats/hf_test.ts runs the same through reference and JIT;
 * - short factors: a context of at most 16 gives transformers' logits on 12 tokens;
 * - the server's layout chooses by `--ctx-size` (`BatchLayout.contextSize`).
 *
 * gollm chooses the factor set once per context, as llama.cpp (core/rope.ts); both runs
 * here are single full forwards from an empty cache, where transformers' per-forward choice
 * agrees. Negative controls: the wrong factor set (the context on the other side of the
 * original) or no attention factor moves the logits by more than 1e-2.
 */
import assert from "node:assert/strict";
import { compileModel } from "../codegen/compile.ts";
import { buildGraph } from "../codegen/graph.ts";
import { type ModelConfig, parseConfig } from "../core/config.ts";
import { type ForwardPass, resolveBatchLayout } from "../core/forward.ts";
import { ropeInvFreq } from "../core/rope.ts";
import { requireF32, type Weights } from "../core/weights.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { readGguf } from "../formats/gguf/parse.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { loadHf } from "../formats/hf.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { createBatchModel } from "../runtime/batch_model.ts";
import { createModel, loadModel } from "../runtime/model.ts";
import { createReference } from "../runtime/reference.ts";
import { assertClose } from "./assert_close.ts";
import { TOL } from "./forward_cases.ts";
import { expected, HF_FIXTURES as FIX } from "./hf_expected.ts";

const NAME = "phi3_longrope";
/** What transformers computed: 24 tokens (long factors), and 12 under "short". */
interface Runs {
  tokens: number[];
  logits: number[][];
  short: { tokens: number[]; logits: number[][] };
}
const runs = async (): Promise<Runs> => (await expected(NAME)) as unknown as Runs;

/** The largest |logit - transformers' logit| of one forward over `tokens` from position 0. */
function worst(fp: ForwardPass, run: { tokens: number[]; logits: number[][] }): number {
  const V = fp.config.vocab_size;
  const all = fp.forwardAll(run.tokens, 0); // (n, vocab)
  let d = 0;
  run.logits.forEach((row, t) =>
    row.forEach((v, i) => (d = Math.max(d, Math.abs(all[t * V + i] - v))))
  );
  return d;
}

/** Asserts every position within {@linkcode TOL} of transformers. */
function check(fp: ForwardPass, run: { tokens: number[]; logits: number[][] }, label: string) {
  const V = fp.config.vocab_size;
  const all = fp.forwardAll(run.tokens, 0); // (n, vocab)
  run.logits.forEach((row, t) =>
    assertClose(all.subarray(t * V, (t + 1) * V), row, TOL, `${label} position ${t}`)
  );
}

/** Each backend on a config and weights with a KV capacity (the context that picks the set). */
function backends(c: ModelConfig, w: Weights, kvCapacity: number): [string, ForwardPass][] {
  const f32 = requireF32(w, "the reference");
  return [
    ["reference", createReference(c, f32, { kvCapacity })],
    ["jit", compileModel(c, f32, { kvCapacity, prefillChunk: 5 })],
    ["wasm", compileModel(c, w, { kvCapacity, prefillChunk: 5, backend: "wasm", threads: 1 })],
  ];
}

Deno.test("longrope: a context of at most original_max_position_embeddings runs the short factors, as transformers on 12 tokens", async () => {
  const { config: c, weights: w } = await loadHf(`${FIX}/${NAME}`);
  const r = await runs();
  assert.equal(r.short.tokens.length, 12);
  for (const kv of [12, 16]) { // 16 = the original: still short (llama.cpp: n_ctx > orig → long)
    for (const [b, fp] of backends(c, w, kv)) check(fp, r.short, `short, kvCapacity ${kv}, ${b}`);
  }
});

Deno.test("longrope: a context above it runs the long factors, as transformers on 24 tokens", async () => {
  const { config: c, weights: w } = await loadHf(`${FIX}/${NAME}`);
  const r = await runs();
  for (const kv of [24, 64]) {
    for (const [b, fp] of backends(c, w, kv)) check(fp, r, `long, kvCapacity ${kv}, ${b}`);
  }
  // The model API: loadModel's kvCapacity (default context_length 64) reaches every backend.
  for (const backend of ["reference", "jit", "wasm"] as const) {
    using long = await loadModel(`${FIX}/${NAME}`, { backend, threads: 1 });
    check(long, r, `loadModel ${backend}`);
    using short = await loadModel(`${FIX}/${NAME}`, { backend, threads: 1, kvCapacity: 16 });
    check(short, r.short, `loadModel ${backend} kvCapacity 16`);
  }
});

Deno.test("longrope: the wrong factor set or no attention factor moves the logits past 1e-2 (negative controls)", async () => {
  const { config: c, weights: w } = await loadHf(`${FIX}/${NAME}`);
  const r = await runs();
  // The wrong set: the context on the other side of the original.
  for (const [b, fp] of backends(c, w, 64)) {
    const d = worst(fp, r.short);
    assert.ok(d > 1e-2, `short run with the long factors (${b}): only ${d}`);
    assert.throws(() => check(fp, r.short, b), /max \|diff\|/);
  }
  for (const [b, fp] of backends(c, w, 16)) {
    // The long run's first 16 positions (a ring of 16 holds them) with the short factors.
    const d = worst(fp, { tokens: r.tokens.slice(0, 16), logits: r.logits.slice(0, 16) });
    assert.ok(d > 1e-2, `long run with the short factors (${b}): only ${d}`);
  }
  // No attention factor (1 instead of sqrt(1.5)), with either set.
  const off = parseConfig({ ...c, rope_attn_factor: 1 }, "<no attention factor>");
  for (const [kv, run] of [[64, r], [16, r.short]] as const) {
    for (const [b, fp] of backends(off, w, kv)) {
      const d = worst(fp, run);
      assert.ok(d > 1e-2, `no attention factor, kvCapacity ${kv} (${b}): only ${d}`);
    }
  }
});

Deno.test("longrope: the llama.cpp-converted GGUF gives transformers' logits with both factor sets", async () => {
  const r = await runs();
  const g = await loadGguf(`${FIX}/${NAME}.gguf`);
  assert.equal(g.config.rope_scaling, "longrope");
  for (const [kv, run] of [[64, r], [16, r.short]] as const) {
    for (const [b, fp] of backends(g.config, g.weights, kv)) check(fp, run, `gguf ${kv} ${b}`);
    // Straight into the WASM memory (runtime/wasm_load.ts).
    using m = await loadModel(`${FIX}/${NAME}.gguf`, { kvCapacity: kv, threads: 1 });
    assert.equal(m.backend, "wasm");
    check(m, run, `gguf into wasm, kvCapacity ${kv}`);
  }
});

Deno.test("longrope: gollm quantize writes llama.cpp's tensors and keys; gollm convert keeps the fields", async () => {
  const r = await runs();
  const h = await loadHf(`${FIX}/${NAME}`);
  const dir = await Deno.makeTempDir({ prefix: "gollm_longrope_" });
  try {
    const file = `${dir}/lr.f32.gguf`;
    await quantizeModel(`${FIX}/${NAME}`, file, "f32", { threads: 1 });
    const parsed = await readGguf(file);
    assert.equal(parsed.metadata.get("general.architecture"), "phi3");
    const names = parsed.tensors.map((t) => t.name);
    assert.ok(
      names.includes("rope_factors_long.weight") && names.includes("rope_factors_short.weight"),
    );
    assert.ok(!names.includes("rope_freqs.weight"));
    assert.equal(parsed.metadata.get("phi3.rope.scaling.original_context_length"), 16);
    const af = parsed.metadata.get("phi3.rope.scaling.attn_factor") as number;
    assert.ok(Math.abs(af - h.config.rope_attn_factor) < 1e-7, `attn_factor ${af}`);
    const q = await loadGguf(file);
    assert.deepEqual(q.config.rope_long_factors, h.config.rope_long_factors!.map(Math.fround));
    check(createReference(q.config, q.weights, { kvCapacity: 64 }), r, "quantized f32, long");
    check(
      createReference(q.config, q.weights, { kvCapacity: 16 }),
      r.short,
      "quantized f32, short",
    );

    await writeGollmDir(h, `${dir}/gollm`);
    const back = await loadCheckpoint(`${dir}/gollm`);
    assert.deepEqual(back.config, h.config);
    check(
      createReference(back.config, requireF32(back.weights, "ref"), { kvCapacity: 16 }),
      r.short,
      "gollm dir",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("longrope: the server's layout picks the set by ctx-size (BatchLayout.contextSize)", async () => {
  const { config: c, weights: w } = await loadHf(`${FIX}/${NAME}`);
  const r = await runs();
  const table = (contextSize?: number) => {
    const layout = resolveBatchLayout({ numBlocks: 8, maxBlocksPerSeq: 2, contextSize });
    return buildGraph(c, 1, layout).buffers.get("rope.inv_freq")!.values;
  };
  assert.deepEqual(table(16), ropeInvFreq(c, false, 16)); // short
  assert.deepEqual(table(17), ropeInvFreq(c, false, 17)); // long
  assert.deepEqual(table(), ropeInvFreq(c, false, 32)); // default: 2 blocks of 16
  assert.notDeepEqual(table(16), table(17));
  for (const [ctxSize, run] of [[16, r.short], [64, r]] as const) {
    for (const backend of ["jit", "wasm"] as const) {
      using m = createBatchModel(c, w, null, { ctxSize, parallel: 1, backend, threads: 1 });
      const n = run.tokens.length, V = c.vocab_size;
      const blocks = Array.from({ length: ctxSize / 16 }, (_, b) => 1 + b); // 0: the null block
      m.batch.setSequence(0, blocks, ctxSize, ctxSize);
      const all = m.batch.step({
        tokens: run.tokens,
        positions: run.tokens.map((_, t) => t),
        seqs: run.tokens.map(() => 0),
        outRows: run.tokens.map((_, t) => t),
      }); // (n, vocab)
      for (let t = 0; t < n; t++) {
        assertClose(all.subarray(t * V, (t + 1) * V), run.logits[t], TOL, `serve ${backend} ${t}`);
      }
    }
  }
  // createModel with an explicit kvCapacity, as the CLI's --kv-capacity.
  using m = createModel(c, w, null, { backend: "jit", kvCapacity: 16, warmup: false });
  check(m, r.short, "createModel kvCapacity 16");
});
