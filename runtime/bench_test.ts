/**
 * runBench() progress reporting: the events `gollm bench` redraws its status line from.
 */
import assert from "node:assert/strict";
import { type BenchProgress, runBench } from "./bench.ts";
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
