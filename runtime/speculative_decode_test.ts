/**
 * Speculative decoding through Model.generate: greedy output identical to plain decoding
 * (draft model, n-gram, drafts always wrong and always right; JIT, WASM and reference; across
 * the KV ring's wrap and gpt2's context end), the output distribution with sampling against
 * the exact target distribution (chi-square), and the errors.
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { randomWeights } from "../core/weights.ts";
import { byteTokenizer, EOS, tinyConfig } from "../tests/model_fixtures.ts";
import { chiSquare } from "../tests/chi_square.ts";
import { type Backend, createModel, type GenerateOptions, type Model } from "./model.ts";
import { keptSet } from "./sampler.ts";
import type { Draft, SpeculativeProposer as Proposer } from "./speculative.ts";
import { DraftModelProposer } from "./speculative_draft.ts";
import { NgramProposer } from "./speculative_ngram.ts";

/** A random-weight llama (or gpt2) over the byte vocabulary. */
function tiny(
  seed: number,
  opts: {
    backend?: Backend;
    arch?: "llama" | "gpt2";
    kvCapacity?: number;
    over?: Record<string, unknown>;
  } = {},
): Model {
  const c = tinyConfig(opts.arch ?? "llama", {
    dim: 64,
    hidden_dim: 96,
    context_length: 64,
    ...opts.over,
  });
  return createModel(c, randomWeights(c, seed), byteTokenizer(), {
    backend: opts.backend ?? "jit",
    kvCapacity: opts.kvCapacity,
    prefillChunk: 16,
  });
}

/** Runs generate and returns the generated ids and the stats. */
async function run(model: Model, prompt: string, options: GenerateOptions) {
  let text = "";
  for await (const p of model.generate(prompt, { temperature: 0, ...options })) text += p;
  const stats = model.stats!;
  return { text, tokens: stats.tokens, stats };
}

/** A deterministic proposer that always proposes `pick(history)` repeated. */
function fixed(name: string, pick: (history: readonly number[], i: number) => number): Proposer {
  return {
    name,
    propose: (history, k): Draft => ({
      tokens: Array.from({ length: k }, (_, i) => pick(history, i)),
      probs: null,
    }),
  };
}

const PROMPT = "the cat sat on the mat";

for (const backend of ["jit", "wasm", "reference"] as const) {
  Deno.test(`generate() greedy with a draft model or n-gram drafts equals plain greedy (${backend})`, async () => {
    // kvCapacity 24 < the 23 + 90 positions: the ring wraps many times under speculation.
    for (const kvCapacity of [undefined, 24]) {
      const target = tiny(1, { backend, kvCapacity });
      const plain = await run(target, PROMPT, { maxTokens: 90 });
      assert.ok(plain.tokens.length >= 60, `${plain.tokens.length} tokens`);
      const draft = tiny(2, { backend, kvCapacity, over: { n_layers: 1, dim: 32 } });
      for (const d of [draft, new NgramProposer(), new NgramProposer({ ngramMax: 1 })]) {
        for (const draftMax of [1, 3, 15]) {
          const spec = await run(target, PROMPT, { maxTokens: 90, draft: d, draftMax });
          const what = `${"generate" in d ? "draft model" : d.name}, draftMax ${draftMax}, ` +
            `kvCapacity ${kvCapacity}`;
          assert.deepEqual(spec.tokens, plain.tokens, what);
          assert.equal(spec.text, plain.text, what);
          const s = spec.stats.speculative!;
          assert.ok(s.steps > 0 && s.steps <= 89, what);
          assert.equal(spec.stats.stopReason, plain.stats.stopReason, what);
          assert.equal(spec.stats.decodeTokens, plain.stats.decodeTokens, what);
          assert.ok(s.accepted <= s.drafted, what);
        }
      }
    }
  });
}

Deno.test("generate() greedy with drafts that are always wrong: nothing accepted, same output", async () => {
  const target = tiny(3);
  const plain = await run(target, PROMPT, { maxTokens: 60 });
  const never = [...Array(256).keys()].find((id) => !plain.tokens.includes(id))!;
  const spec = await run(target, PROMPT, {
    maxTokens: 60,
    draft: fixed("never", () => never),
    draftMax: 4,
  });
  assert.deepEqual(spec.tokens, plain.tokens);
  const s = spec.stats.speculative!;
  assert.equal(s.accepted, 0);
  assert.ok(s.drafted >= 59, `drafted ${s.drafted}`);
  assert.equal(s.steps, 59); // one target step per token, as plain decoding
  assert.equal(s.tokensPerStep, 1);
});

Deno.test("generate() greedy with drafts that are always right: k + 1 tokens per target step", async () => {
  const target = tiny(4);
  const plain = await run(target, PROMPT, { maxTokens: 61 });
  const promptLen = target.tokenizer!.encode(PROMPT).length;
  // Replays the plain output: the draft for position p is plain.tokens[p - promptLen].
  const oracle = fixed("oracle", (h, i) => plain.tokens[h.length - promptLen + i] ?? EOS);
  const spec = await run(target, PROMPT, { maxTokens: 61, draft: oracle, draftMax: 5 });
  assert.deepEqual(spec.tokens, plain.tokens);
  const s = spec.stats.speculative!;
  assert.equal(s.accepted, s.drafted);
  assert.equal(s.acceptanceRate, 1);
  assert.equal(s.steps, 10); // 60 decoded tokens, 6 per step
  assert.equal(s.tokensPerStep, 6);
});

Deno.test("generate() speculative greedy on gpt2 stops at the context end like plain decoding", async () => {
  const target = tiny(5, { arch: "gpt2", over: { context_length: 40 } });
  const plain = await run(target, PROMPT, { maxTokens: 100 });
  assert.equal(plain.stats.stopReason, "context");
  const draft = tiny(6, { arch: "gpt2", over: { context_length: 32 } }); // shorter context
  for (const d of [draft, new NgramProposer()]) {
    const spec = await run(target, PROMPT, { maxTokens: 100, draft: d, draftMax: 6 });
    assert.deepEqual(spec.tokens, plain.tokens);
    assert.equal(spec.stats.stopReason, "context");
  }
});

Deno.test("generate() checks the draft: vocabulary, not the target itself, option ranges", () => {
  const target = tiny(1);
  const other = createModel(
    tinyConfig("llama", { vocab_size: 300, dim: 32, hidden_dim: 32 }),
    randomWeights(tinyConfig("llama", { vocab_size: 300, dim: 32, hidden_dim: 32 }), 1),
    null,
  );
  assert.throws(
    () => target.generate("x", { draft: other }),
    (e: Error) => e instanceof GollmError && /vocab_size 300 vs 258/.test(e.message),
  );
  assert.throws(() => target.generate("x", { draft: target }), /another model than the target/);
  assert.throws(
    () => target.generate("x", { draft: new NgramProposer(), draftMax: 0 }),
    /draftMax/,
  );
  assert.throws(() => target.generate("x", { draft: tiny(2), draftPMin: 2 }), /draftPMin/);
  assert.throws(() => new NgramProposer({ ngramMax: 2, ngramMin: 3 }), /ngramMin/);
});

Deno.test("generate() refuses a proposer that drafts too many tokens or ids outside the vocabulary", async () => {
  const target = tiny(1);
  const greedy = (draft: Proposer) => run(target, PROMPT, { maxTokens: 5, draft, draftMax: 2 });
  await assert.rejects(
    () => greedy({ name: "long", propose: () => ({ tokens: [1, 2, 3], probs: null }) }),
    (e: Error) =>
      e instanceof GollmError && /long proposed 3 tokens, more than the 2/.test(e.message),
  );
  await assert.rejects(
    () => greedy({ name: "bad", propose: () => ({ tokens: [999], probs: null }) }),
    /bad proposed token id 999, outside the vocabulary \[0, 258\)/,
  );
  await assert.rejects(
    () => greedy({ name: "q", propose: () => ({ tokens: [1, 2], probs: [] }) }),
    /q gave 0 draft distributions for 2 tokens/,
  );
});

// ---------------------------------------------------------------------------------------
// The output distribution with sampling.

const SAMPLING = { temperature: 1, topK: 4, topP: 1 };
const PROMPT_IDS = [256, 104, 105]; // BOS "hi"

/**
 * The exact distribution of the first 3 generated tokens, from the reference forward pass
 * and keptSet() (plain sampling's kept set and probabilities): P(a, b, c) = p(a) p(b | a)
 * p(c | a b); a sequence ends early at EOS.
 */
function exactJoint(target: Model): Map<string, number> {
  const ref = createModel(target.config, randomWeights(target.config, 11), null, {
    backend: "reference",
  });
  const out = new Map<string, number>();
  const expand = (prefix: number[], prob: number, depth: number) => {
    const logits = ref.forward([...PROMPT_IDS, ...prefix], 0);
    const { ids, probs } = keptSet(logits, SAMPLING, [...PROMPT_IDS, ...prefix]);
    ids.forEach((id, j) => {
      if (depth === 1 || id === EOS) out.set([...prefix, id].join(), prob * probs[j]);
      else expand([...prefix, id], prob * probs[j], depth - 1);
    });
  };
  expand([], 1, 3);
  return out;
}

/** Counts of the first 3 tokens over seeds 0..n-1. */
async function sampleJoint(target: Model, draft: Model | Proposer, n: number) {
  const counts = new Map<string, number>();
  let accepted = 0, drafted = 0;
  for (let seed = 0; seed < n; seed++) {
    const opts = { ...SAMPLING, seed, maxTokens: 3, draft, draftMax: 2 };
    for await (const _ of target.generate(PROMPT_IDS, opts)) { /* ids are in the stats */ }
    const s = target.stats!;
    const t = [...s.tokens, ...(s.stopReason === "eos" ? [EOS] : [])].join();
    counts.set(t, (counts.get(t) ?? 0) + 1);
    accepted += target.stats!.speculative!.accepted;
    drafted += target.stats!.speculative!.drafted;
  }
  return { counts, acceptance: accepted / drafted };
}

Deno.test("generate() sampling with drafts keeps the target's distribution (chi-square, first 3 tokens)", async () => {
  const c = tinyConfig("llama", { dim: 64, hidden_dim: 96, context_length: 64 });
  const target = createModel(c, randomWeights(c, 11), byteTokenizer(), { backend: "jit" });
  // The draft: the target's weights plus noise, so that q is near p but not equal.
  const mixed = randomWeights(c, 11), noise = randomWeights(c, 12);
  for (const [name, t] of mixed) {
    const n = noise.get(name)!.data;
    t.data.forEach((x, i) => t.data[i] = x + 0.2 * n[i]);
  }
  const draftModel = createModel(c, mixed, byteTokenizer(), { backend: "jit" });
  const exact = exactJoint(target); // 4 × 4 × 4 = 64 sequences
  assert.ok(exact.size > 30, `${exact.size} sequences`); // up to 4 × 4 × 4
  const N = 3000;
  // Bound: df + 6 sqrt(2 df), about 6 standard deviations of the chi-square distribution;
  // the seeds are fixed, so the statistic is the same on every run.
  const bound = (df: number) => df + 6 * Math.sqrt(2 * df);

  // A deterministic proposer drafting the target's own likeliest tokens (one-hot q).
  const ref = createModel(c, randomWeights(c, 11), null, { backend: "reference" });
  const likeliest: Proposer = {
    name: "likeliest",
    propose(history, k) {
      const tokens: number[] = [];
      for (let i = 0; i < k; i++) {
        tokens.push(keptSet(ref.forward([...history, ...tokens], 0), SAMPLING).ids[0]);
      }
      return { tokens, probs: null };
    },
  };
  for (
    const [name, draft] of [["a draft model", draftModel], ["one-hot drafts", likeliest]] as const
  ) {
    const { counts, acceptance } = await sampleJoint(target, draft, N);
    const { stat: chi, df } = chiSquare(counts, exact, N);
    console.log(
      `${name}: chi-square ${chi.toFixed(1)}, df ${df}, acceptance ${acceptance.toFixed(2)}`,
    );
    assert.ok(chi < bound(df), `${name}: chi-square ${chi} >= ${bound(df)} (df ${df})`);
    assert.ok(acceptance > 0.05 && acceptance < 0.95, `${name}: both branches ran`);
  }

  // Negative control: the draft model's tokens verified against a misreported q (uniform
  // over the vocabulary) are accepted far too often, and the test sees it.
  const dp = new DraftModelProposer(draftModel);
  const misreported: Proposer = {
    name: "misreported",
    start: (o) => dp.start(o),
    propose(history, k) {
      const d = dp.propose(history, k);
      const uniform = { ids: [...Array(258).keys()], probs: new Array(258).fill(1 / 258) };
      return { tokens: d.tokens, probs: d.tokens.map(() => uniform) };
    },
  };
  const { counts } = await sampleJoint(target, misreported, N);
  const { stat: chi, df } = chiSquare(counts, exact, N);
  console.log(`misreported q (negative control): chi-square ${chi.toFixed(1)}, df ${df}`);
  assert.ok(chi > 3 * bound(df), `the control must fail clearly: chi-square ${chi}`);
});
