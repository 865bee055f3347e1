/**
 * Speculative decoding of SAMPLED requests in the scheduler:
 *
 * - distribution: thousands of seeded requests on a tiny model, drafted by n-gram lookup, a
 *   proposer with an explicit q and a (random) draft model, give the exact joint
 *   distribution of their tokens computed from the plain-loop reference's logits and the
 *   sampling chain (chi-square at α = 0.001); two broken proposers (one whose q makes every
 *   draft accepted, one whose q is not what it drew from) fail the same bound;
 * - reproducibility: on the default model with n-gram drafts and with models/draft, the
 *   same seed gives the same text alone, under load (drafts that wait for room in a step)
 *   and after preemption.
 */
import assert from "node:assert/strict";
import { parseConfigYaml } from "../core/config.ts";
import { randomWeights } from "../core/weights.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { type BatchModelOptions, createBatchModel } from "../runtime/batch_model.ts";
import { createReference } from "../runtime/reference.ts";
import { type ResolvedSamplerOptions, Rng, Sampler } from "../runtime/sampler.ts";
import type { Draft } from "../runtime/speculative.ts";
import { ROOT } from "../tests/assets.ts";
import { chiSquare } from "../tests/chi_square.ts";
import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
import { Scheduler, type SpeculativeOptions } from "./scheduler.ts";
import type { GenerationHandle, GenerationRequest } from "./sequence.ts";
import { draftModelProposers, NgramProposer, type Proposer } from "./speculative.ts";

// ---------------------------------------------------------------- the distribution test

const config = parseConfigYaml(await Deno.readTextFile(`${ROOT}configs/test-llama.yaml`), "t");
const weights = randomWeights(config, 11);
/** One token per byte: the scheduler streams text, the test reads the ids. */
const bytes = TiktokenTokenizer.fromRanks(
  Array.from({ length: 256 }, (_, b) => new Uint8Array([b])),
  new Map(),
);
/** A prompt after which n-gram drafts are sometimes right (picked by a search over prompts). */
const PROMPT = [56, 0, 49, 70, 21, 63, 49, 7];
/** The request's chain: temperature, top-k, top-p, min-p and all three penalties. */
const SAMPLING = {
  temperature: 1,
  topK: 5,
  topP: 0.98,
  minP: 0.01,
  repeatPenalty: 1.1,
  presencePenalty: 0.3,
  frequencyPenalty: 0.1,
};
const N = 3000; // requests (seeds) per case
/** t1 comes from the prefill, t2 and t3 from one verify step of 2 drafts (t4 unused). */
const MAX_TOKENS = 4;

/**
 * The exact joint distribution of (t1, t2, t3): the plain-loop reference's logits after
 * each prefix, through the request's sampling chain (`Sampler.distribution`, penalties
 * over the prompt and the tokens before).
 */
function exactJoint(): Map<string, number> {
  const ref = createReference(config, weights);
  const p = (history: number[]) => {
    const d = new Sampler({ ...SAMPLING, seed: 0 }).distribution(ref.forward(history, 0), history);
    return [...d.ids].map((id, j) => [id, d.probs[j]] as const);
  };
  const joint = new Map<string, number>();
  for (const [a, pa] of p(PROMPT)) {
    for (const [b, pb] of p([...PROMPT, a])) {
      for (const [c, pc] of p([...PROMPT, a, b])) joint.set(`${a},${b},${c}`, pa * pb * pc);
    }
  }
  return joint;
}

/** Draws from `probs` over `ids` with one uniform `u`. */
function pick(ids: number[], probs: number[], u: number): number {
  let cum = 0;
  for (let j = 0; j < ids.length; j++) if (u < (cum += probs[j])) return ids[j];
  return ids[ids.length - 1];
}

/** A fixed draft distribution: the likely tokens, and some the target never keeps. */
const Q_IDS = [7, 0, 56, 57, 6, 2, 40, 77];
const Q = [0.3, 0.05, 0.2, 0.05, 0.1, 0.1, 0.1, 0.1];

/**
 * Drafts from a fixed q, seeded by the call's sampling seed (a function of the sequence),
 * and reports `reported(d)` as q. Honest: q itself.
 */
function fixedQ(
  name: string,
  draws: number[],
  reported: (d: number) => { ids: number[]; probs: number[] },
): Proposer {
  return {
    name,
    propose(_h: readonly number[], k: number, sampling?: ResolvedSamplerOptions): Draft {
      const rng = new Rng(sampling!.seed);
      const tokens = Array.from({ length: k }, () => pick(Q_IDS, draws, rng.nextFloat()));
      return { tokens, probs: tokens.map(reported) };
    },
  };
}

/** Samples the prompt with N seeds and counts (t1, t2, t3). */
async function sampleJoint(spec: SpeculativeOptions) {
  const m = createBatchModel(config, weights, null, {
    parallel: 32,
    ctxSize: 16,
    batchSize: 160,
  });
  const s = new Scheduler(m.batch, bytes, [], { speculative: spec, maxQueue: N });
  const counts = new Map<string, number>();
  const all: Promise<void>[] = [];
  for (let seed = 0; seed < N; seed++) {
    const h = s.submit({
      prompt: PROMPT,
      maxTokens: MAX_TOKENS,
      ignoreEos: true,
      sampling: { ...SAMPLING, seed },
    });
    all.push(
      ids(h).then((t) => {
        const key = t.slice(0, 3).join();
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }),
    );
  }
  await Promise.all(all);
  return { counts, stats: s.stats };
}

async function ids(h: GenerationHandle): Promise<number[]> {
  const out: number[] = [];
  for await (const c of h) out.push(...c.tokens.map((t) => t.id));
  return out;
}

Deno.test("sampled speculative decoding keeps the target's joint distribution of the next tokens", async () => {
  const exact = exactJoint();
  const mass = [...exact.values()].reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(mass - 1) < 1e-9, `the exact joint sums to ${mass}`);
  const draft = { config, weights: randomWeights(config, 12), path: "random draft" };
  const honest = fixedQ("fixed q", Q, () => ({ ids: Q_IDS, probs: Q }));
  const cases: [string, SpeculativeOptions, boolean][] = [
    ["no speculation", { proposers: { name: "none", propose: () => [] }, maxDraft: 2 }, true],
    ["ngram", { proposers: new NgramProposer(1, 3), maxDraft: 2 }, true],
    ["fixed q", { proposers: honest, maxDraft: 2 }, true],
    ["draft model", { proposers: draftModelProposers(config, draft, 32, 16), maxDraft: 2 }, true],
    // Negative controls. q(d) reported as 1e-9: p(d) >= q(d), every draft is accepted.
    [
      "control: every draft accepted",
      { proposers: fixedQ("liar", Q, (d) => ({ ids: [d], probs: [1e-9] })), maxDraft: 2 },
      false,
    ],
    // Drafts drawn uniformly from Q_IDS but reported as drawn from Q.
    [
      "control: q not the one drawn from",
      {
        proposers: fixedQ("wrong q", Q.map(() => 1 / Q.length), () => ({ ids: Q_IDS, probs: Q })),
        maxDraft: 2,
      },
      false,
    ],
  ];
  for (const [what, spec, correct] of cases) {
    const { counts, stats } = await sampleJoint(spec);
    const r = chiSquare(counts, exact, N);
    console.log(
      `  ${what}: chi2 ${r.stat.toFixed(1)} (df ${r.df}, critical ${r.critical.toFixed(1)}), ` +
        `TV ${r.tv.toFixed(3)}, ${stats.acceptedTokens}/${stats.draftedTokens} drafts accepted`,
    );
    if (what !== "no speculation") {
      const least = what === "ngram" ? N / 10 : N; // n-gram drafts need t1 in the prompt
      assert.ok(stats.draftedTokens > least, `${what}: ${stats.draftedTokens} drafted`);
    }
    if (correct) {
      assert.ok(r.stat < r.critical, `${what}: chi2 ${r.stat} >= ${r.critical}`);
      if (what !== "no speculation") {
        assert.ok(stats.acceptedTokens > 0 && stats.acceptedTokens < stats.draftedTokens, what);
      }
    } else {
      assert.ok(r.stat > r.critical, `${what}: the bound holds for a broken rule (${r.stat})`);
    }
  }
});

// ---------------------------------------------------------------- reproducibility

let ckpt: Checkpoint | null = null;
const checkpoint = async () => ckpt ??= await loadCheckpoint(`${ROOT}models/default`);

async function text(h: GenerationHandle): Promise<string> {
  let t = "";
  for await (const c of h) t += c.text;
  return t;
}

Deno.test("sampled speculative decoding: the same seed gives the same text alone, under load and after preemption", async () => {
  const c = await checkpoint();
  const tok = c.tokenizer!;
  const dc = await loadCheckpoint(`${ROOT}models/draft`);
  const repetitive =
    "We the people, we the people, we the people of the United States, in order to";
  const req = (seed: number, prompt = repetitive): GenerationRequest => ({
    prompt: tok.encode(prompt),
    maxTokens: 40,
    ignoreEos: true,
    sampling: { temperature: 0.6, topP: 0.95, topK: 40, presencePenalty: 0.1, seed },
  });
  const others = ["The economy is", "Mr. Speaker", "Tonight", "In the year", "Congress shall"];
  const proposers = (slots: number): [string, Proposer | Proposer[]][] => [
    ["ngram", new NgramProposer(1, 3)],
    ["models/draft", draftModelProposers(c.config, { ...dc, path: "models/draft" }, slots, 128)],
  ];
  const serve = (layout: BatchModelOptions, proposer: Proposer | Proposer[]) => {
    const m = createBatchModel(c.config, c.weights, tok, { ctxSize: 128, ...layout });
    return new Scheduler(m.batch, tok, m.eosIds, {
      ctxSize: 128,
      speculative: { proposers: proposer, maxDraft: 4 },
    });
  };
  const alone = new Map<string, string>();
  for (const [what, p] of proposers(1)) {
    const s = serve({ parallel: 1, batchSize: 8 }, p);
    alone.set(what, await text(s.submit(req(42))));
    const { acceptedTokens, draftedTokens, steps } = s.stats;
    console.log(
      `  ${what} alone: ${acceptedTokens}/${draftedTokens} drafts accepted, ${steps} steps`,
    );
    assert.ok(s.stats.acceptedTokens > 0, `${what}: no draft accepted alone`);
  }
  assert.notEqual(alone.get("ngram"), alone.get("models/draft")); // the drafts shape the text
  for (const [what, p] of proposers(6)) {
    // Load: 6 slots, 8 rows a step: drafts of 4 wait for room while others decode.
    const s = serve({ parallel: 6, batchSize: 8 }, p);
    const busy = others.map((o, i) => text(s.submit(req(i, o))));
    await new Promise((r) => setTimeout(r, 20));
    const loaded = await text(s.submit(req(42)));
    await Promise.all(busy);
    assert.equal(loaded, alone.get(what), `${what}: under load`);
    assert.ok(s.stats.draftedTokens > 0, `${what}: nothing drafted under load`);
    assert.ok(s.stats.draftWaits > 0, `${what}: no draft waited for room`);
    // Preemption: 10 blocks of 16 for 4 sequences of ~60 tokens (4 blocks each).
    const small = serve({ parallel: 4, batchSize: 16, kvBlocks: 10 }, p);
    const runs = await Promise.all([42, 7, 42, 8].map((seed) => text(small.submit(req(seed)))));
    assert.ok(small.stats.preemptions > 0, `${what}: no preemption happened`);
    assert.equal(runs[0], alone.get(what), `${what}: after preemption`);
    assert.equal(runs[2], alone.get(what), `${what}: after preemption`);
    assert.notEqual(runs[1], alone.get(what), `${what}: another seed, the same text`);
    assert.equal(small.stats.freeBlocks, small.stats.usableBlocks);
  }
});
