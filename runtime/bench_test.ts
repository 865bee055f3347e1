/**
 * runBench() progress reporting: the events `gollm bench` redraws its status line from;
 * runModelBench(): the fixed protocol on a checkpoint.
 */
import assert from "node:assert/strict";
import { type BenchProgress, formatBench, runBench, runModelBench } from "./bench.ts";
import { randomWeights } from "../core/weights.ts";
import { loadConfig } from "../core/config.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("runBench() reports setup, then prefill and decode of every round, per backend", async () => {
  const config = await loadConfig(`${ROOT}configs/test-llama.yaml`);
  const events: BenchProgress[] = [];
  const r = runBench(config, {
    seconds: 0.02,
    prefillTokens: 4,
    decodeTokens: 2,
    onProgress: (e) => events.push({ ...e }),
  });
  assert.deepEqual(r.backends.map((b) => b.backend), ["reference", "jit", "wasm"]);
  for (const b of r.backends) {
    const mine = events.filter((e) => e.backend === b.backend);
    // Round 0 (setup + warm-up), then prefill and decode for each timed round, in order.
    assert.deepEqual(mine[0], { backend: b.backend, phase: "prefill", round: 0, rounds: 1 });
    const timed = mine.slice(1);
    assert.equal(timed.length, 2 * b.rounds, `${b.backend}: ${JSON.stringify(mine)}`);
    timed.forEach((e, i) => {
      assert.equal(e.round, Math.floor(i / 2) + 1);
      assert.equal(e.phase, i % 2 === 0 ? "prefill" : "decode");
      assert.ok(Number.isInteger(e.rounds) && e.rounds >= e.round, JSON.stringify(e));
    });
  }
  // The backends are reported one after the other.
  assert.equal(events.findIndex((e) => e.backend === "jit"), 1 + 2 * r.backends[0].rounds);
  // With no decode tokens there is no decode phase.
  const prefillOnly: BenchProgress[] = [];
  runBench(config, {
    seconds: 0.01,
    prefillTokens: 4,
    decodeTokens: 0,
    backends: ["jit"],
    onProgress: (e) => prefillOnly.push(e),
  });
  assert.ok(prefillOnly.every((e) => e.phase === "prefill"));
});

Deno.test("runModelBench() follows the protocol: setup, warm-up and timed runs of decode then prefill", async () => {
  const config = await loadConfig(`${ROOT}configs/test-llama.yaml`); // context 64
  const ckpt = {
    format: "gollm" as const,
    path: "m",
    config,
    weights: randomWeights(config, 2),
    tokenizer: null,
  };
  const events: BenchProgress[] = [];
  const r = runModelBench(ckpt, {
    backends: ["reference", "jit"],
    runs: 2,
    onProgress: (e) => events.push({ ...e }),
  });
  // Defaults shrink to the context: a 64-slot cache, a 64-token prompt, BOS + 63 steps.
  assert.deepEqual([r.prefillTokens, r.decodeTokens], [64, 63]);
  assert.deepEqual(r.checkpoint, {
    path: "m",
    format: "gollm",
    bos: 0, // no tokenizer: the prompt and the decode runs start from id 0
    warmup: 1,
    runs: 2,
    kvCapacity: 64,
    seed: 1,
    threads: 1,
    wasmWeights: "f32",
    cacheTypeK: "f32",
    cacheTypeV: "f32",
  });
  assert.deepEqual(r.backends.map((b) => [b.backend, b.rounds]), [["reference", 2], ["jit", 2]]);
  assert.ok(r.backends.every((b) => b.prefillTokPerS > 0 && b.decodeTokPerS > 0));
  assert.ok(r.ratio && r.ratio.prefill > 0 && r.wasmRatio === null);
  const phases = [
    "decode 0",
    "decode 0",
    "decode 1",
    "decode 2",
    "prefill 0",
    "prefill 1",
    "prefill 2",
  ];
  assert.deepEqual(
    events.map((e) => `${e.backend} ${e.phase} ${e.round}`),
    ["reference", "jit"].flatMap((b) => phases.map((p) => `${b} ${p}`)),
  );
  // The header names the checkpoint and the protocol.
  const lines = formatBench(r).split("\n");
  assert.match(lines[0], /; weights: m \(gollm\); one thread$/);
  assert.equal(
    lines[1],
    "decode: BOS, then 63 greedy steps from an empty cache; prefill: one 64-token prompt; " +
      "1 warm-up, median of 2; KV cache 64",
  );
  assert.match(lines[4], /^reference +\d/);
  // Options that do not fit the context are refused, naming the option.
  assert.throws(
    () => runModelBench(ckpt, { kvCapacity: 65 }),
    /kvCapacity 65 exceeds the context length 64/,
  );
  assert.throws(() => runModelBench(ckpt, { decodeSteps: 64 }), /BOS \+ the decode steps \(65\)/);
  assert.throws(() => runModelBench(ckpt, { runs: 0 }), /runs must be an integer >= 1, got 0/);
});
