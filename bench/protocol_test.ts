import assert from "node:assert/strict";
import { median, prefillPrompt, resolveProtocol } from "./protocol.ts";

Deno.test("resolveProtocol() fills issue #8's defaults and names a bad field", () => {
  assert.deepEqual(resolveProtocol(), {
    threads: 1,
    decodeSteps: 200,
    prefillTokens: 256,
    warmup: 1,
    runs: 3,
    contextSize: 512,
    seed: 1,
  });
  assert.equal(resolveProtocol({ warmup: 0 }).warmup, 0);
  assert.throws(() => resolveProtocol({ runs: 0 }), /'runs' must be an integer >= 1, got 0/);
  assert.throws(() => resolveProtocol({ threads: 1.5 }), /'threads'/);
  // A longer run gets a KV cache that holds it, unless one is given.
  assert.equal(resolveProtocol({ prefillTokens: 600 }).contextSize, 768);
  assert.equal(resolveProtocol({ decodeSteps: 2000 }).contextSize, 2048);
  assert.throws(
    () => resolveProtocol({ prefillTokens: 600, contextSize: 512 }),
    /'contextSize' \(512\) must hold decodeSteps \+ 1 \(201\) and prefillTokens \(600\)/,
  );
});

Deno.test("median() takes the middle of odd and even lists without reordering its input", () => {
  const xs = [5, 1, 4];
  assert.equal(median(xs), 4);
  assert.deepEqual(xs, [5, 1, 4]);
  assert.equal(median([2, 8]), 5);
  assert.throws(() => median([]), RangeError);
});

Deno.test("prefillPrompt() is BOS then seeded ids inside the vocabulary", () => {
  const p = prefillPrompt(256, 512, 1, 7);
  assert.equal(p[0], 1);
  assert.ok(p.every((id) => Number.isInteger(id) && id >= 0 && id < 512));
  assert.ok(new Set(p).size > 100, "ids are spread over the vocabulary");
  assert.notDeepEqual(prefillPrompt(256, 512, 1, 8), p, "the seed changes the ids");
});
