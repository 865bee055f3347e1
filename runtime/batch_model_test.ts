/**
 * The serving model on the whole-step WASM backend with threads and weights as stored:
 * a Q8_0 GGUF of the shipped default model (quantised here by formats/quantize.ts) and a
 * Q4_K_M stories260K (../shared/assets; skipped with a printed reason when absent) served
 * through the continuous-batching scheduler give the greedy ids of `loadModel`'s generate
 * on the same file and backend; its logits stay close to the plain-loop reference on the
 * file's dequantised weights; 1 and 2 threads give identical logits; a wrong block table
 * row changes them (negative control); close() stops the threads.
 */
import assert from "node:assert/strict";
import type { CompiledBatch } from "../codegen/compile.ts";
import type { BatchForward } from "../core/forward.ts";
import { allF32 } from "../core/weights.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { parseGguf } from "../formats/gguf/parse.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { dequantizeWeights } from "../formats/quant/tensor.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { Scheduler } from "../server/scheduler.ts";
import { assertClose } from "../tests/assert_close.ts";
import { ASSETS, haveFiles, ROOT } from "../tests/assets.ts";
import { argmax } from "../tests/greedy_decode.ts";
import { type BatchModel, createBatchModel, loadBatchModel } from "./batch_model.ts";
import { loadModel } from "./model.ts";
import { createReference } from "./reference.ts";

const DEFAULT = `${ROOT}models/default`;
const STORIES = `${ASSETS}/stories260K/stories260K.gguf`;
const haveStories = haveFiles("stories260K Q4_K_M served on the wasm backend", [STORIES]);

/** Quantises `src` to `type` in a temp dir, runs `fn` on the file, removes the dir. */
async function withQuantised(
  src: string,
  type: string,
  fn: (file: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/model.${type.toLowerCase()}.gguf`;
    await quantizeModel(src, file, type, { threads: 1 });
    await fn(file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Greedy ids of each prompt, all running at once through the model's scheduler. */
async function servedGreedy(m: BatchModel, prompts: number[][], n: number): Promise<number[][]> {
  const s = new Scheduler(m.batch, m.tokenizer!, m.eosIds, { ctxSize: m.ctxSize });
  const handles = prompts.map((prompt) =>
    s.submit({ prompt, maxTokens: n, sampling: { temperature: 0 } })
  );
  const ids: number[][] = [];
  for (const h of handles) {
    const got: number[] = [];
    for await (const c of h) got.push(...c.tokens.map((t) => t.id));
    ids.push(got);
  }
  await s.close();
  return ids;
}

/** Greedy ids of `loadModel(file)`'s generate (stops at EOS, as the scheduler does). */
async function generateGreedy(
  file: string,
  threads: number,
  prompts: number[][],
  n: number,
): Promise<number[][]> {
  using m = await loadModel(file, { backend: "wasm", threads });
  assert.equal(m.backend, "wasm");
  const ids: number[][] = [];
  for (const p of prompts) {
    for await (const _ of m.generate(p, { maxTokens: n, temperature: 0 }));
    ids.push(m.stats!.tokens);
  }
  return ids;
}

/** The loaded memory holds the file's blocks, not F32: under 1/3 of the F32 weight bytes. */
async function assertStored(m: BatchModel, file: string): Promise<void> {
  const ck = await loadGguf(file); // dequantised to F32 on load
  let f32Bytes = 0;
  for (const t of ck.weights.values()) f32Bytes += t.data!.byteLength;
  const b = m.batch as CompiledBatch;
  const weightsBytes = b.wasm!.layout.weightsBytes;
  assert.ok(b.memory.buffer instanceof SharedArrayBuffer, "the threads share one memory");
  assert.ok(
    weightsBytes < f32Bytes / 3,
    `weights take ${weightsBytes} bytes in the wasm memory; F32 would be ${f32Bytes}`,
  );
}

Deno.test("loadBatchModel() serves a Q8_0 GGUF on 2 wasm threads, weights as stored, with generate's greedy ids", async () => {
  await withQuantised(DEFAULT, "Q8_0", async (file) => {
    using m = await loadBatchModel(file, { parallel: 4, ctxSize: 96, threads: 2 });
    assert.equal(m.backend, "wasm");
    assert.equal(m.threads, 2);
    assert.equal(m.checkpoint.format, "gguf");
    await assertStored(m, file);
    const tok = m.tokenizer!;
    const prompts = ["Once upon a time", "The people", "We", "Congress shall make"]
      .map((p) => tok.encode(p));
    const served = await servedGreedy(m, prompts, 24);
    const alone = await generateGreedy(file, 2, prompts, 24);
    assert.deepEqual(served, alone);
    assert.ok(served.every((ids) => ids.length > 0));
  });
});

Deno.test("loadBatchModel() serves a Q8_0 GGUF streamed from an http URL, as stored, with generate's greedy ids", async () => {
  await withQuantised(DEFAULT, "Q8_0", async (file) => {
    const bytes = await Deno.readFile(file);
    await using server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      () => new Response(bytes),
    );
    const url = new URL(`http://127.0.0.1:${server.addr.port}/model.q8_0.gguf`);
    using m = await loadBatchModel(url, { parallel: 2, ctxSize: 96, threads: 1 });
    assert.equal(m.backend, "wasm");
    assert.equal(m.checkpoint.path, url.href);
    await assertStored(m, file);
    const prompts = ["Once upon a time", "We the people"].map((p) => m.tokenizer!.encode(p));
    assert.deepEqual(
      await servedGreedy(m, prompts, 16),
      await generateGreedy(file, 1, prompts, 16),
    );
    // jit reads the bytes whole and dequantises them, as from the file.
    using jit = await loadBatchModel(bytes, { parallel: 1, ctxSize: 64, backend: "jit" });
    assert.equal(jit.backend, "jit");
    assert.equal(jit.checkpoint.path, `Uint8Array (${bytes.length} bytes)`);
  });
});

Deno.test({
  name:
    "loadBatchModel() serves a Q4_K_M stories260K (Q5_0, Q8_0, F16 tensors) with generate's greedy ids",
  ignore: !haveStories,
  fn: async () => {
    await withQuantised(STORIES, "Q4_K_M", async (file) => {
      const types = new Set(
        parseGguf(await Deno.readFile(file), file).tensors.map((t) => t.type.name),
      );
      assert.ok(types.has("Q5_0") && types.has("Q8_0") && types.has("F16"), [...types].join());
      using m = await loadBatchModel(file, { parallel: 3, ctxSize: 128, threads: 2 });
      assert.equal(m.backend, "wasm");
      await assertStored(m, file);
      const tok = m.tokenizer!;
      const prompts = ["Once upon a time", "Lily and Ben", "The cat"].map((p) => tok.encode(p));
      const served = await servedGreedy(m, prompts, 40);
      assert.deepEqual(served, await generateGreedy(file, 2, prompts, 40));
    });
  },
});

/**
 * Runs two prompts of different lengths in one prefill step (blocks interleaved), then
 * `n` steps of one decode row each, the next token the reference's greedy pick; returns
 * each step's `(2, vocab_size)` logits. `swap` points sequence 1's table at sequence 0's
 * blocks before the decode steps (the negative control).
 */
function twoSequences(b: BatchForward, a: number[], c: number[], next: number[][], swap = false) {
  const bs = b.blockSize, ring = b.maxBlocksPerSeq * bs, win = b.config.context_length;
  const blocks0 = Array.from({ length: b.maxBlocksPerSeq }, (_, i) => 1 + 2 * i);
  const blocks1 = Array.from({ length: b.maxBlocksPerSeq }, (_, i) => 2 + 2 * i);
  b.setSequence(0, blocks0, ring, win);
  b.setSequence(1, blocks1, ring, win);
  const out: Float32Array[] = [];
  out.push(
    b.step({
      tokens: [...a, ...c],
      positions: [...a.keys(), ...c.keys()],
      seqs: [...a.map(() => 0), ...c.map(() => 1)],
      outRows: [a.length - 1, a.length + c.length - 1],
    }).slice(),
  );
  if (swap) b.setSequence(1, blocks0, ring, win);
  for (let i = 0; i < next.length; i++) {
    out.push(
      b.step({
        tokens: next[i],
        positions: [a.length + i, c.length + i],
        seqs: [0, 1],
        outRows: [0, 1],
      }).slice(),
    );
  }
  return out;
}

Deno.test("createBatchModel() on stored Q8_0 weights: 1 and 2 threads give identical logits, close to the reference; a wrong block table row changes them", async () => {
  await withQuantised(DEFAULT, "Q8_0", async (file) => {
    const ck = await loadCheckpoint(file, { stored: true });
    assert.ok(!allF32(ck.weights), "the weights are stored Q8_0 blocks");
    const V = ck.config.vocab_size;
    const layout = { parallel: 2, ctxSize: 64, batchSize: 16 };
    using one = createBatchModel(ck.config, ck.weights, ck.tokenizer, { ...layout, threads: 1 });
    using two = createBatchModel(ck.config, ck.weights, ck.tokenizer, { ...layout, threads: 2 });
    assert.deepEqual([one.backend, one.threads, two.backend, two.threads], ["wasm", 1, "wasm", 2]);
    // The reference on the file's dequantised weights: the independent check and the ids.
    const ref = createReference(ck.config, dequantizeWeights(ck.weights));
    const ref1 = createReference(ck.config, dequantizeWeights(ck.weights));
    const a = ck.tokenizer!.encode("Once upon a time"), c = ck.tokenizer!.encode("We");
    // forward returns a view it overwrites on the next call: copies.
    const want: Float32Array[] = [ref.forward(a, 0).slice(), ref1.forward(c, 0).slice()];
    const next: number[][] = [];
    for (let i = 0; i < 8; i++) {
      const t = [argmax(want.at(-2)!), argmax(want.at(-1)!)];
      next.push(t);
      want.push(
        ref.forward([t[0]], a.length + i).slice(),
        ref1.forward([t[1]], c.length + i).slice(),
      );
    }
    const got1 = twoSequences(one.batch, a, c, next);
    const got2 = twoSequences(two.batch, a, c, next);
    assert.deepEqual(got2, got1, "2 threads give the logits of 1");
    for (let s = 0; s < got1.length; s++) {
      for (const q of [0, 1]) {
        const w = want[2 * s + q], g = got1[s].subarray(q * V, (q + 1) * V);
        const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        // 3% of the largest |logit|: the int8 activation rounding of the Q8_0 kernels
        // (tests/wasm_backend_test.ts).
        assertClose(g, w, 0.03 * scale, `step ${s} sequence ${q}`);
      }
    }
    // Negative control: sequence 1 reading sequence 0's blocks goes far from the reference.
    const bad = twoSequences(one.batch, a, c, next, true);
    const w = want[2 * 1 + 1], g = bad[1].subarray(V, 2 * V);
    const scale = w.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.throws(() => assertClose(g, w, 0.03 * scale), /max \|diff\|/);
  });
});

Deno.test("createBatchModel() runs jit on request (dequantised weights, 1 thread) and close() stops the wasm threads", async () => {
  await withQuantised(DEFAULT, "Q8_0", async (file) => {
    const ck = await loadCheckpoint(file, { stored: true });
    const layout = { parallel: 2, ctxSize: 32, warmup: false };
    using jit = createBatchModel(ck.config, ck.weights, null, { ...layout, backend: "jit" });
    assert.deepEqual([jit.backend, jit.threads], ["jit", 1]);
    const m = createBatchModel(ck.config, ck.weights, null, { ...layout, threads: 2 });
    m.batch.setSequence(0, [1, 2], 32, ck.config.context_length);
    const step = () => m.batch.step({ tokens: [1], positions: [0], seqs: [0], outRows: [0] });
    assert.equal(step().length, ck.config.vocab_size);
    m.close();
    m.close(); // idempotent
    assert.throws(step, /closed/);
  });
});
