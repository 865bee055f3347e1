/**
 * Speculative decoding: a cheap proposer drafts k tokens, the target model runs the last
 * accepted token plus the k drafts in ONE multi-row forward (`k + 1` rows of logits) and
 * keeps the longest prefix it agrees with, plus one token of its own.
 *
 * ```
 * history ─ propose ─> d1 .. dk, q1 .. qk            (runtime/speculative_draft.ts: a draft
 *                                                      model; speculative_ngram.ts: prompt lookup)
 * target.forwardAll([last, d1 .. dk], pos) -> (k + 1, vocab_size) logits -> p1 .. p(k+1)
 * verifyDraft: for i = 1..k: accept di with probability min(1, pi(di) / qi(di));
 *              on the first rejection draw from norm(max(0, pi - qi)) and stop;
 *              all accepted: draw a bonus token from p(k+1)
 * ```
 *
 * This is the rejection sampling of Leviathan, Kalman & Matias 2023, "Fast Inference from
 * Transformers via Speculative Decoding" (arXiv:2211.17192), Algorithm 1 (also Chen et al.
 * 2023, arXiv:2302.01318): every emitted token is distributed exactly as the target's p, for
 * any proposal q, so speculation changes the speed, never the output distribution. A
 * deterministic proposer (n-gram lookup) has a one-hot q: the draft is accepted with
 * probability p(d) and a rejection draws from p with d removed. Greedy (temperature 0) makes
 * p one-hot at the argmax: a draft is accepted exactly when it is the argmax, and the output
 * is identical to plain greedy decoding.
 *
 * p and q come from {@linkcode Sampler.distribution}: the same chain as plain sampling
 * (repetition penalty → temperature → top-k → top-p → min-p), so p is exactly what plain
 * decoding would draw from. Penalties: the row for draft i is penalised with the history
 * plus drafts 1..i-1, the tokens that precede it if the drafts are accepted, which is what
 * plain decoding would see; the draft model's q is filtered with the same options and the
 * same history (a q that differs only lowers acceptance, never correctness).
 *
 * This module has no forward pass in it: {@linkcode verifyDraft} takes logits rows and a
 * sampler, so a batched scheduler can verify many sequences' rows from one step.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { ResolvedSamplerOptions, Sampler } from "./sampler.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/** A sparse token distribution: `ids` `(m)` and their `probs` `(m)`, summing to 1. */
export interface TokenDistribution {
  /** `(m)` token ids. */
  readonly ids: ArrayLike<number>;
  /** `(m)` probabilities of those ids. */
  readonly probs: ArrayLike<number>;
}

/** The drafted continuation a {@linkcode Proposer} returns. */
export interface Draft {
  /** `(k)` drafted token ids, k >= 0 (empty: nothing to propose, a plain step). */
  tokens: number[];
  /**
   * `(k)` the distribution q each draft was drawn from, or null for a deterministic
   * proposal (q one-hot at the drafted token).
   */
  probs: TokenDistribution[] | null;
}

/**
 * Drafts tokens to continue a sequence. Implementations: `DraftModelProposer`
 * (runtime/speculative_draft.ts, what `generate({ draft: model })` uses) and `NgramProposer`
 * (runtime/speculative_ngram.ts). The server's greedy proposers (server/speculative.ts),
 * which return plain token arrays, fit too: an array is a deterministic draft.
 */
export interface SpeculativeProposer {
  /** What it is, for stats and messages (`draft model models/draft`, `ngram 1..3`). */
  readonly name: string;
  /**
   * Called at the start of each generation with the target's sampling options (a draft
   * model filters its q with them). Optional.
   */
  start?(sampling: ResolvedSamplerOptions): void;
  /**
   * Drafts up to `maxTokens` tokens to follow `history`.
   *
   * @param history Prompt and generated ids so far (not modified).
   * @param maxTokens Most tokens to draft (>= 1).
   * @returns The draft (possibly empty), or just its tokens for a deterministic proposer
   *   (q one-hot).
   */
  propose(history: readonly number[], maxTokens: number): Draft | number[];
}

/** What {@linkcode verifyDraft} decided. */
export interface VerifyResult {
  /** Drafted tokens accepted: `tokens[0 .. accepted)` are `drafts[0 .. accepted)`. */
  accepted: number;
  /** The tokens to append: the accepted drafts, then one token drawn from the target. */
  tokens: number[];
}

/** The sampler methods verification uses (a {@linkcode Sampler}; tests script `random`). */
export type VerifySampler = Pick<Sampler, "distribution" | "random" | "sample">;

let dense = new Float64Array(0); // (vocab) q of the rejected row, scattered; zero between uses

/**
 * Verifies k drafted tokens against the target's logits by the rejection sampling of
 * Leviathan et al. 2023 (Algorithm 1): for i = 0..k-1, with p = the target's distribution
 * after `history + drafts[0..i)` and q = the draft's, accept `drafts[i]` with probability
 * `min(1, p(d) / q(d))`; on the first rejection append a token drawn from
 * `norm(max(0, p - q))` and stop; when all k are accepted append a bonus token drawn from
 * the last row. The output is distributed exactly as plain sampling from the target.
 *
 * Draws from the sampler's PRNG only when a choice is random: an acceptance with
 * `0 < p(d) < q(d)`, or a residual with two or more tokens; greedy verification draws
 * nothing.
 *
 * @param logits `(k + 1, vocab_size)` row-major target logits: row i is the target's
 *   prediction after `history + drafts[0..i)` (the rows of `[last, d1 .. dk]`).
 * @param drafts `(k)` drafted token ids.
 * @param probs `(k)` the distribution each draft was drawn from, or null: one-hot (a
 *   deterministic proposer).
 * @param sampler The target's sampler (its filtering defines p; its PRNG decides).
 * @param history Prompt and generated ids before the drafts, for the penalties; drafts are
 *   appended while verifying and removed before returning (default: none).
 * @returns How many drafts were accepted and the tokens to append (accepted + 1 of them).
 * @throws {RangeError} when `logits.length` is not `(k + 1) · vocab`, a draft id is outside
 *   the vocabulary, or q gives a draft probability 0 (it could not have been drawn).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Sampler } from "./sampler.ts";
 * import { verifyDraft } from "./speculative.ts";
 * // vocab 3, greedy; rows: argmax 2, then argmax 1, then argmax 0.
 * const logits = new Float32Array([0, 1, 5, 0, 5, 1, 5, 0, 1]); // (3, 3)
 * const greedy = new Sampler({ temperature: 0, seed: 1 });
 * assert.deepEqual(verifyDraft(logits, [2, 1], null, greedy), { accepted: 2, tokens: [2, 1, 0] });
 * assert.deepEqual(verifyDraft(logits, [2, 0], null, greedy), { accepted: 1, tokens: [2, 1] });
 * ```
 */
export function verifyDraft(
  logits: Float32Array,
  drafts: ArrayLike<number>,
  probs: readonly (TokenDistribution | null)[] | null,
  sampler: VerifySampler,
  history: number[] = [],
): VerifyResult {
  const k = drafts.length;
  const V = logits.length / (k + 1);
  if (!Number.isInteger(V) || V < 1) {
    throw new RangeError(
      `verifyDraft: ${logits.length} logits are not ${k + 1} rows (k = ${k} drafts + 1)`,
    );
  }
  const base = history.length;
  const tokens: number[] = [];
  try {
    for (let i = 0; i < k; i++) {
      const d = drafts[i];
      if (!Number.isInteger(d) || d < 0 || d >= V) {
        throw new RangeError(
          `verifyDraft: drafts[${i}] = ${d} is outside the vocabulary [0, ${V})`,
        );
      }
      const q = probs?.[i] ?? null;
      const qd = q ? probOf(q, d) : 1;
      if (!(qd > 0)) {
        throw new RangeError(
          `verifyDraft: drafts[${i}] = ${d} has probability ${qd} under its own q`,
        );
      }
      const p = sampler.distribution(logits.subarray(i * V, (i + 1) * V), history); // (m) views
      const pd = probOf(p, d);
      if (pd >= qd || (pd > 0 && sampler.random() < pd / qd)) {
        tokens.push(d);
        history.push(d);
        continue;
      }
      tokens.push(residualDraw(p, q, d, V, sampler));
      return { accepted: i, tokens };
    }
    tokens.push(sampler.sample(logits.subarray(k * V, (k + 1) * V), history)); // bonus token
    return { accepted: k, tokens };
  } finally {
    history.length = base;
  }
}

/** p(id) of a sparse distribution (0 when absent). */
function probOf(dist: TokenDistribution, id: number): number {
  const ids = dist.ids;
  for (let j = 0; j < ids.length; j++) if (ids[j] === id) return dist.probs[j];
  return 0;
}

/**
 * Draws from `norm(max(0, p - q))` over p's support (q one-hot at `d` when null). If
 * rounding leaves no mass (p == q up to float error: a rejection is then all but
 * impossible), it draws from p.
 */
function residualDraw(
  p: TokenDistribution,
  q: TokenDistribution | null,
  d: number,
  V: number,
  sampler: VerifySampler,
): number {
  if (dense.length < V) dense = new Float64Array(V);
  if (q) { for (let j = 0; j < q.ids.length; j++) dense[q.ids[j]] = q.probs[j]; }
  else dense[d] = 1;
  const m = p.ids.length;
  let total = 0, positive = 0, only = -1;
  for (let j = 0; j < m; j++) {
    const r = p.probs[j] - dense[p.ids[j]];
    if (r > 0) {
      total += r;
      positive++;
      only = p.ids[j];
    }
  }
  let out = only;
  if (positive !== 1) {
    const useP = positive === 0;
    if (useP) total = 1;
    const u = sampler.random() * total;
    let cum = 0;
    for (let j = 0; j < m; j++) {
      const r = useP ? p.probs[j] : Math.max(0, p.probs[j] - dense[p.ids[j]]);
      if (r <= 0) continue;
      cum += r;
      out = p.ids[j];
      if (u < cum) break;
    }
  }
  if (q) { for (let j = 0; j < q.ids.length; j++) dense[q.ids[j]] = 0; }
  else dense[d] = 0;
  return out;
}

/** Counters of one speculative generation (in `GenerateStats.speculative`). */
export interface SpeculativeStats {
  /** The proposer ({@linkcode SpeculativeProposer.name}). */
  proposer: string;
  /** Most tokens drafted per target step. */
  draftMax: number;
  /** Target decode steps (one multi-row verify forward each; plain steps included). */
  steps: number;
  /** Drafted tokens the target verified. */
  drafted: number;
  /** Of them, accepted. */
  accepted: number;
  /** `accepted / drafted` (0 when nothing was drafted). */
  acceptanceRate: number;
  /**
   * Generated tokens per target decode step: `decodeTokens / steps` (plain decoding: 1).
   * The speed-up in target forward passes.
   */
  tokensPerStep: number;
  /** Wall time spent proposing (the draft model's forward passes), in milliseconds. */
  draftMs: number;
}

/**
 * An empty {@linkcode SpeculativeStats} for a proposer.
 *
 * @param proposer The proposer's name.
 * @param draftMax Most tokens drafted per step.
 * @returns Zeroed counters.
 */
export function speculativeStats(proposer: string, draftMax: number): SpeculativeStats {
  return {
    proposer,
    draftMax,
    steps: 0,
    drafted: 0,
    accepted: 0,
    acceptanceRate: 0,
    tokensPerStep: 0,
    draftMs: 0,
  };
}

/** What {@linkcode checkDraftVocabulary} compares: the parts of a model it reads. */
export interface VocabularyOwner {
  /** The model config (`vocab_size`). */
  readonly config: ModelConfig;
  /** Its tokenizer, or null (then only `vocab_size` is compared). */
  readonly tokenizer: Tokenizer | null;
  /** Where it came from, for the message. */
  readonly checkpoint: { readonly path: string };
}

/**
 * Checks that a draft model can draft for a target: the same `vocab_size` and, when both
 * have a tokenizer, the same bytes for every token id and the same BOS and EOS ids (as
 * llama.cpp's `common_speculative_are_compatible`). Verification indexes p and q by id, so
 * one id meaning two different tokens would silently ruin acceptance.
 *
 * @param target The target model.
 * @param draft The draft model.
 * @throws {GollmError} naming both models and the first difference, e.g. `draft model
 *   runs/x: its vocabulary differs from the target's (models/default): vocab_size 512 vs
 *   4096`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { checkDraftVocabulary } from "./speculative.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const target = { config: c, tokenizer: null, checkpoint: { path: "t" } };
 * checkDraftVocabulary(target, { ...target, checkpoint: { path: "d" } }); // same vocab_size: ok
 * const other = { config: { ...c, vocab_size: 512 }, tokenizer: null, checkpoint: { path: "d" } };
 * assert.throws(() => checkDraftVocabulary(target, other), /vocab_size 512 vs 96/);
 * ```
 */
export function checkDraftVocabulary(target: VocabularyOwner, draft: VocabularyOwner): void {
  const fail = (what: string): never => {
    throw new GollmError(
      `draft model ${draft.checkpoint.path}: its vocabulary differs from the target's ` +
        `(${target.checkpoint.path}): ${what}; a draft model needs the target's tokenizer`,
    );
  };
  const vt = target.config.vocab_size, vd = draft.config.vocab_size;
  if (vt !== vd) fail(`vocab_size ${vd} vs ${vt}`);
  const a = draft.tokenizer, b = target.tokenizer;
  if (!a || !b) return;
  if (a.vocabSize !== b.vocabSize) fail(`tokenizer ids ${a.vocabSize} vs ${b.vocabSize}`);
  if (a.bosId !== b.bosId) fail(`BOS id ${a.bosId} vs ${b.bosId}`);
  if (a.eosIds.join() !== b.eosIds.join()) fail(`EOS ids [${a.eosIds}] vs [${b.eosIds}]`);
  for (let id = 0; id < a.vocabSize; id++) {
    const x = a.tokenBytes(id), y = b.tokenBytes(id);
    if (x.length !== y.length || x.some((v, j) => v !== y[j])) {
      fail(
        `token ${id} is ${JSON.stringify(a.tokenPiece(id))} vs ${JSON.stringify(b.tokenPiece(id))}`,
      );
    }
  }
}
