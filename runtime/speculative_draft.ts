/**
 * The draft-model proposer of speculative decoding: a smaller model with the target's
 * vocabulary drafts k tokens one decode step at a time (Leviathan et al. 2023's M_q;
 * llama.cpp `--model-draft`, vLLM `draft_model`). It keeps its own KV cache in step with the
 * sequence: tokens whose K/V it holds are remembered, and after a verification the cache is
 * rolled back by position (the next run starts at the first position whose token differs,
 * overwriting the rejected drafts).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import type { Model } from "./model.ts";
import { type ResolvedSamplerOptions, Sampler } from "./sampler.ts";
import type { Draft, SpeculativeProposer, TokenDistribution } from "./speculative.ts";

/** Options of {@linkcode DraftModelProposer}. */
export interface DraftModelOptions {
  /**
   * Stop drafting when the draft model's top probability (softmax of its raw logits,
   * temperature 1) falls below this: it is unsure, so the rest would likely be rejected
   * (llama.cpp `--draft-p-min`). 0 = always draft the full k. Default 0.
   */
  pMin?: number;
}

/**
 * Drafts with a smaller model. The q of each draft is the draft model's distribution after
 * the same sampling chain as the target (temperature, top-k/p, min-p, penalties with the
 * same history), drawn with its own PRNG seeded from the target's seed; at temperature 0
 * the drafts are the draft model's greedy tokens.
 *
 * The draft model must not run anything else while it drafts (its KV cache is this
 * proposer's), and must be a different model from the target.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createModel } from "./model.ts";
 * import { resolveSamplerOptions } from "./sampler.ts";
 * import { DraftModelProposer } from "./speculative_draft.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const draft = new DraftModelProposer(createModel(c, randomWeights(c, 2), null));
 * draft.start(resolveSamplerOptions({ temperature: 0, seed: 1 }));
 * const d = draft.propose([1, 2, 3], 4); // 4 greedy tokens of the draft model
 * assert.equal(d.tokens.length, 4);
 * assert.deepEqual(d.probs!.map((q) => Array.from(q.probs)), [[1], [1], [1], [1]]); // one-hot q
 * ```
 */
export class DraftModelProposer implements SpeculativeProposer {
  /** `draft model PATH`. */
  readonly name: string;
  /** The draft model. */
  readonly model: Model;
  /** See {@linkcode DraftModelOptions.pMin}. */
  readonly pMin: number;
  #sampler: Sampler | null = null;
  /** Tokens whose K/V the draft model holds at positions 0..n-1 (this proposer's runs). */
  #cached: number[] = [];

  /**
   * Creates a proposer drafting with `model`.
   *
   * @param model The draft model (same vocabulary as the target: the caller checks it
   *   with `checkDraftVocabulary`).
   * @param options p-min.
   * @throws {GollmError} for a `pMin` outside [0, 1].
   */
  constructor(model: Model, options: DraftModelOptions = {}) {
    const pMin = options.pMin ?? 0;
    if (!(pMin >= 0 && pMin <= 1)) {
      throw new GollmError(`draftPMin must be a number in [0, 1], got ${pMin}`);
    }
    this.model = model;
    this.pMin = pMin;
    this.name = `draft model ${model.checkpoint.path}`;
  }

  /**
   * Takes the target's sampling options for q (a new PRNG stream: seed + 1) and forgets
   * nothing else: the KV cache is matched against the next history by content.
   *
   * @param sampling The target's resolved sampling options.
   */
  start(sampling: ResolvedSamplerOptions): void {
    this.#sampler = new Sampler({ ...sampling, seed: (sampling.seed + 1) % 2 ** 53 });
  }

  /**
   * Drafts up to `maxTokens` tokens: runs the history the draft cache lacks (at least the
   * last token), then draws a token from q, runs it, draws the next, ... The last draft is
   * not run (the next call runs it if it is accepted). Drafts fewer when the draft model's
   * positions would run past what it can run or roll back (gpt2's context, a wrapped KV
   * ring), or when its top probability drops below `pMin`.
   *
   * @param history Prompt and generated ids (not modified).
   * @param maxTokens Most tokens to draft.
   * @returns Drafts and their q (copies).
   * @throws {GollmError} from the draft model's forward pass.
   */
  propose(history: readonly number[], maxTokens: number): Draft {
    const m = this.model, c = m.config, L = history.length;
    this.#sampler ??= new Sampler({ temperature: 0, seed: 0 });
    // Drafts 1..k-1 run at positions L .. L+k-2 and may be rolled back to L.
    let k = maxTokens;
    if (c.arch === "gpt2") k = Math.min(k, c.context_length - L + 1);
    while (k > 1 && !m.canRollback(L, L + k - 2)) k--;
    if (k < 1) return { tokens: [], probs: null };

    const cached = this.#cached;
    let n = 0; // positions whose K/V the draft cache holds for this history
    while (n < cached.length && n < L - 1 && cached[n] === history[n]) n++;
    let logits = this.#forward(history.slice(n), n); // (vocab) after the whole history
    const recent = history.slice(); // history + drafts so far, for the penalties
    const tokens: number[] = [], probs: TokenDistribution[] = [];
    for (let i = 0; i < k; i++) {
      if (this.pMin > 0 && topProbability(logits) < this.pMin) break;
      const q = this.#sampler.distribution(logits, recent);
      const d = draw(q, this.#sampler);
      tokens.push(d);
      probs.push({ ids: q.ids.slice(), probs: q.probs.slice() });
      recent.push(d);
      if (i + 1 < k) logits = this.#forward([d], L + i);
    }
    return { tokens, probs };
  }

  /** Runs the draft model and keeps `#cached` in step (a failed run forgets the cache). */
  #forward(tokens: number[], pos: number): Float32Array {
    const cached = this.#cached;
    cached.length = Math.min(cached.length, pos);
    let out: Float32Array;
    try {
      out = this.model.forward(tokens, pos);
    } catch (e) {
      cached.length = 0;
      throw e;
    }
    if (cached.length === pos) cached.push(...tokens);
    return out;
  }
}

/** Draws from a sparse distribution (no PRNG draw when it has one token). */
function draw(q: { ids: Int32Array; probs: Float64Array }, sampler: Sampler): number {
  const m = q.ids.length;
  if (m === 1) return q.ids[0];
  const u = sampler.random();
  let cum = 0;
  for (let j = 0; j < m; j++) {
    cum += q.probs[j];
    if (u < cum) return q.ids[j];
  }
  return q.ids[m - 1];
}

/** max softmax(logits): 1 / Σ exp(l - max), the model's raw confidence in its top token. */
function topProbability(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  return 1 / z;
}
