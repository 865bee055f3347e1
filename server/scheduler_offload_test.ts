/**
 * The scheduler over a model built with `offload` (runtime/batch_model.ts; `gollm serve`'s
 * form): every step goes through `stepAsync` on worker threads while the event loop runs.
 * Greedy ids of a batch equal the plain-loop reference run alone, every step going through
 * `stepAsync`; `stepAsync` gives the logits of `step`.
 */
import assert from "node:assert/strict";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import type { BatchForward } from "../core/forward.ts";
import { createBatchModel } from "../runtime/batch_model.ts";
import { createReference } from "../runtime/reference.ts";
import { ROOT } from "../tests/assets.ts";
import { greedy } from "../tests/greedy_decode.ts";
import { Scheduler } from "./scheduler.ts";

let ckpt: Checkpoint | null = null;
async function checkpoint(): Promise<Checkpoint> {
  return ckpt ??= await loadCheckpoint(`${ROOT}models/default`);
}

Deno.test("BatchForward.stepAsync() with offload gives the logits of step() without it", async () => {
  const c = await checkpoint();
  const layout = { parallel: 2, ctxSize: 64, threads: 2 };
  using plain = createBatchModel(c.config, c.weights, null, layout);
  using off = createBatchModel(c.config, c.weights, null, { ...layout, offload: true });
  assert.equal(plain.batch.stepAsync, undefined);
  assert.ok(off.batch.stepAsync);
  const input = { tokens: [1, 5, 9, 2], positions: [0, 1, 2, 3], seqs: [0, 0, 0, 0], outRows: [3] };
  for (const m of [plain, off]) m.batch.setSequence(0, [1, 2, 3, 4], 64, c.config.context_length);
  const want = plain.batch.step(input).slice();
  const got = (await off.batch.stepAsync(input)).slice();
  assert.deepEqual(got, want);
  // Negative control: another last token gives other logits.
  const other = (await off.batch.stepAsync({ ...input, tokens: [1, 5, 9, 3] })).slice();
  assert.notDeepEqual(other, want);
});

Deno.test("Scheduler over an offload model steps through stepAsync with the greedy ids of each prompt alone", async () => {
  const c = await checkpoint();
  const tok = c.tokenizer!;
  using m = createBatchModel(c.config, c.weights, tok, {
    parallel: 4,
    ctxSize: 128,
    batchSize: 16,
    threads: 2,
    offload: true,
  });
  // Count the steps that go through stepAsync (a model without offload has none).
  let asyncSteps = 0;
  const stepAsync = m.batch.stepAsync!;
  const batch: BatchForward = {
    ...m.batch,
    stepAsync: (input) => (asyncSteps++, stepAsync(input)),
  };
  const s = new Scheduler(batch, tok, m.eosIds, { ctxSize: m.ctxSize });
  const prompts = ["Once upon a time", "We", "Congress shall", "Tonight"].map((p) => tok.encode(p));
  const n = 16;
  const outs = await Promise.all(prompts.map(async (prompt) => {
    const h = s.submit({ prompt, maxTokens: n, ignoreEos: true, sampling: { temperature: 0 } });
    const ids: number[] = [];
    for await (const chunk of h) ids.push(...chunk.tokens.map((t) => t.id));
    return ids;
  }));
  await s.close();
  assert.ok(s.stats.steps > n, `${s.stats.steps} steps`);
  assert.equal(asyncSteps, s.stats.steps);
  const ref = createReference(c.config, c.weights, { kvCapacity: 128 });
  prompts.forEach((prompt, i) => assert.deepEqual(outs[i], greedy(ref, prompt, n), `prompt ${i}`));
  // Negative control: the reference of another prompt gives other ids.
  assert.notDeepEqual(outs[0], greedy(ref, prompts[1], n));
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});
