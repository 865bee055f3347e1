/**
 * Speculative decoding in the scheduler: greedy output is identical with and without drafts
 * (n-gram lookup, the model as its own draft, a random draft model, drafts that are always
 * wrong), drafts are verified in fewer steps when they are right, sampled requests are
 * drafted too (their distribution: server/speculative_sampled_test.ts), and a draft model
 * with another vocabulary is refused.
 */
import assert from "node:assert/strict";
import { randomWeights } from "../core/weights.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { createBatchModel } from "../runtime/batch_model.ts";
import { ROOT } from "../tests/assets.ts";
import { Scheduler, type SpeculativeOptions } from "./scheduler.ts";
import { draftModelProposers, NgramProposer, type Proposer } from "./speculative.ts";

let ckpt: Checkpoint | null = null;
const checkpoint = async () => ckpt ??= await loadCheckpoint(`${ROOT}models/default`);

const PROMPTS = [
  "We the people, we the people, we the people of the United States, in order to form",
  "The economy is growing. The economy is",
  "Mr. Speaker, Mr. Vice President",
  "Tonight",
];

/** Greedy ids and texts of the prompts, with the scheduler's stats. */
async function run(speculative?: SpeculativeOptions, temperature = 0) {
  const c = await checkpoint();
  const m = createBatchModel(c.config, c.weights, c.tokenizer, { parallel: 4, ctxSize: 160 });
  const s = new Scheduler(m.batch, c.tokenizer!, m.eosIds, { speculative });
  const outs = await Promise.all(PROMPTS.map(async (p, i) => {
    const h = s.submit({
      prompt: c.tokenizer!.encode(p),
      maxTokens: 40,
      ignoreEos: true,
      sampling: { temperature, seed: i },
    });
    let text = "";
    const ids: number[] = [];
    for await (const chunk of h) {
      text += chunk.text;
      ids.push(...chunk.tokens.map((t) => t.id));
    }
    return { text, ids };
  }));
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
  return { outs, stats: s.stats };
}

/** Proposes `maxTokens` copies of one token: always wrong for these prompts. */
const constant: Proposer = { name: "constant", propose: (_h, k) => new Array(k).fill(3) };

Deno.test("speculative decoding keeps greedy output identical and verifies drafts in fewer steps", async () => {
  const plain = await run();
  assert.equal(plain.stats.draftedTokens, 0);
  const c = await checkpoint();
  const cases: [string, SpeculativeOptions][] = [
    ["ngram", { proposers: new NgramProposer(1, 3), maxDraft: 4 }],
    [
      "the model as its own draft",
      { proposers: draftModelProposers(c.config, { ...c, path: "default" }, 4, 160), maxDraft: 4 },
    ],
    ["always wrong", { proposers: constant, maxDraft: 3 }],
  ];
  for (const [what, spec] of cases) {
    const r = await run(spec);
    r.outs.forEach((o, i) => {
      assert.deepEqual(o.ids, plain.outs[i].ids, `${what}: prompt ${i}`);
      assert.equal(o.text, plain.outs[i].text, `${what}: prompt ${i}`);
    });
    assert.ok(r.stats.draftedTokens > 0, `${what}: nothing drafted`);
    const rate = r.stats.acceptedTokens / r.stats.draftedTokens;
    console.log(
      `  ${what}: ${r.stats.acceptedTokens}/${r.stats.draftedTokens} drafts accepted ` +
        `(${(rate * 100).toFixed(0)}%), ${r.stats.steps} steps (plain: ${plain.stats.steps})`,
    );
    if (what === "the model as its own draft") {
      assert.ok(rate > 0.9, `${what}: acceptance ${rate}`);
      assert.ok(r.stats.steps < plain.stats.steps / 2, `${what}: ${r.stats.steps} steps`);
    }
    if (what === "always wrong") assert.equal(r.stats.acceptedTokens, 0);
  }
});

Deno.test("speculative decoding with a random draft model: same greedy output; sampled requests are drafted", async () => {
  const c = await checkpoint();
  // A 1-layer model on the default model's vocabulary: a poor but valid draft.
  const small = { ...c.config, dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, head_dim: 16 };
  small.hidden_dim = 64;
  const draft = { config: small, weights: randomWeights(small, 5), path: "random draft" };
  const spec = { proposers: draftModelProposers(c.config, draft, 4, 160), maxDraft: 2 };
  const plain = await run();
  const r = await run(spec);
  r.outs.forEach((o, i) => assert.deepEqual(o.ids, plain.outs[i].ids, `prompt ${i}`));
  assert.ok(r.stats.draftedTokens > 0);
  // Sampling (temperature > 0): drafted from the draft model's q and verified by rejection
  // sampling; the same seeds give the same text again.
  const sampled = await run(spec, 0.8);
  assert.ok(sampled.stats.draftedTokens > 0, "sampled requests drafted nothing");
  assert.ok(sampled.stats.acceptedTokens > 0, "no sampled draft accepted");
  const again = await run(
    { ...spec, proposers: draftModelProposers(c.config, draft, 4, 160) },
    0.8,
  );
  sampled.outs.forEach((o, i) => assert.equal(o.text, again.outs[i].text, `prompt ${i}`));
  // A draft model with another vocabulary is refused.
  const other = { ...draft, config: { ...small, vocab_size: 300 } };
  assert.throws(() => draftModelProposers(c.config, other, 4, 160), /vocabulary has 300 tokens/);
});
