/**
 * The speculative decode loop of `Model.generate` (runtime/model.ts): one verify round per
 * target step, tokens handed out one at a time so that the caller's stop checks (EOS, stop
 * strings, max tokens) run per token exactly as in plain decoding.
 *
 * ```
 * next(history): queue empty -> k = min(draftMax, what the target can roll back)
 *                            -> draft = proposer.propose(history, k)
 *                            -> logits = target.forwardAll([last, ...draft], pos(last))
 *                            -> queue = verifyDraft(logits, draft).tokens
 *                -> queue.shift()
 * ```
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { Model } from "./model.ts";
import type { Sampler } from "./sampler.ts";
import { checkInt, checkNum } from "./generation.ts";
import {
  checkDraftVocabulary,
  type SpeculativeProposer,
  type SpeculativeStats,
  speculativeStats,
  verifyDraft,
} from "./speculative.ts";
import { DraftModelProposer } from "./speculative_draft.ts";

/** What the loop needs of the target model. */
export interface VerifyTarget {
  /** The target's config (`arch`, `context_length`: gpt2 cannot run past it). */
  readonly config: ModelConfig;
  /**
   * Runs `tokens` at positions `pos ..` and returns every row's logits.
   * @returns `(n, vocab_size)` logits.
   */
  forwardAll(tokens: number[], pos: number): Float32Array;
  /** `Model.canRollback`: whether positions `from .. last` can be run and rolled back. */
  canRollback(from: number, last: number): boolean;
}

/** Options of {@linkcode SpeculativeDecoder}. */
export interface SpeculativeLoopOptions {
  /** Most tokens drafted per step (>= 1). */
  draftMax: number;
  /** A draft shorter than this is not verified: a plain one-row step instead (>= 0). */
  draftMin: number;
}

/**
 * Produces the tokens after a prefill, one at a time, by draft-and-verify rounds.
 *
 * The draft length adapts as Hugging Face's `num_assistant_tokens_schedule="heuristic"`:
 * it starts at `draftMax`, grows by 2 after a round whose drafts were all accepted and
 * shrinks by 1 (to no less than 1) after a rejection, so a proposer that keeps missing
 * costs the target few extra rows. It is further capped where the target could not roll
 * back (a KV ring about to wrap over the window, see `Model.canRollback`) or run (gpt2 past
 * `context_length`); at 0 the round is a plain one-row decode step.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createModel } from "./model.ts";
 * import { Sampler } from "./sampler.ts";
 * import { speculativeStats } from "./speculative.ts";
 * import { SpeculativeDecoder } from "./speculative_decode.ts";
 * import { NgramProposer } from "./speculative_ngram.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const m = createModel(c, randomWeights(c, 1), null, { backend: "reference" });
 * const history = [1, 2, 1, 2];
 * m.forward(history.slice(0, -1), 0); // the prefill: K/V of every token but the last
 * const stats = speculativeStats("ngram", 4);
 * const target = {
 *   config: c,
 *   forwardAll: (t: number[], p: number) => m.forwardAll(t, p),
 *   canRollback: (f: number, l: number) => m.canRollback(f, l),
 * };
 * const sampler = new Sampler({ temperature: 0, seed: 1 });
 * const spec = new SpeculativeDecoder(target, new NgramProposer(), sampler, stats, {
 *   draftMax: 4,
 *   draftMin: 0,
 * });
 * for (let i = 0; i < 6; i++) history.push(spec.next(history));
 * assert.equal(history.length, 10);
 * assert.ok(stats.steps >= 2 && stats.steps <= 6); // 6 tokens in at most 6 target steps
 * ```
 */
export class SpeculativeDecoder {
  #target: VerifyTarget;
  #proposer: SpeculativeProposer;
  #sampler: Sampler;
  #stats: SpeculativeStats;
  #options: SpeculativeLoopOptions;
  /** Tokens of the last round not yet handed out, in order. */
  #queue: number[] = [];
  #head = 0;
  /** Rows of one verify step: the last token, then the drafts (reused). */
  #rows: number[] = [];
  /** Tokens handed out so far. */
  #handed = 0;
  /** Tokens to draft next round (adaptive, in [1, draftMax]). */
  #k: number;

  /**
   * Creates the decoder of one generation.
   *
   * @param target The target model's forward and rollback rule.
   * @param proposer Drafts tokens.
   * @param sampler The target's sampler (defines p, decides acceptances).
   * @param stats Counters updated as rounds run.
   * @param options Draft lengths.
   */
  constructor(
    target: VerifyTarget,
    proposer: SpeculativeProposer,
    sampler: Sampler,
    stats: SpeculativeStats,
    options: SpeculativeLoopOptions,
  ) {
    this.#target = target;
    this.#proposer = proposer;
    this.#sampler = sampler;
    this.#stats = stats;
    this.#options = options;
    this.#k = options.draftMax;
  }

  /**
   * The next token after `history`, whose last token has been sampled but not run through
   * the target (its K/V is missing): runs a verify round when the tokens of the previous
   * one are used up. The caller appends each returned token to `history` before the next
   * call, and stops calling whenever it likes (EOS, a stop string, max tokens).
   *
   * @param history Prompt and tokens generated so far (not modified).
   * @returns The next token id.
   * @throws {GollmError} from the proposer or the target's forward pass; {RangeError} when
   *   the target's logits are all NaN/-Infinity (the caller names the model).
   */
  next(history: number[]): number {
    const stats = this.#stats;
    this.#handed++;
    if (this.#head < this.#queue.length) {
      stats.tokensPerStep = this.#handed / stats.steps;
      return this.#queue[this.#head++];
    }
    const t = this.#target, c = t.config;
    const L = history.length, pos = L - 1; // `last` runs at pos; drafts at pos+1 .. pos+k
    let k = this.#k;
    if (c.arch === "gpt2") k = Math.min(k, c.context_length - L);
    while (k > 0 && !t.canRollback(L, pos + k)) k--;
    let drafts: number[] = [], probs = null;
    if (k > 0) {
      const t0 = performance.now();
      const proposed = this.#proposer.propose(history, k);
      const d = Array.isArray(proposed) ? { tokens: proposed, probs: null } : proposed;
      stats.draftMs += performance.now() - t0;
      if (d.tokens.length > k) {
        throw new GollmError(
          `${this.#proposer.name} proposed ${d.tokens.length} tokens, more than the ${k} asked`,
        );
      }
      if (d.probs && d.probs.length !== d.tokens.length) {
        throw new GollmError(
          `${this.#proposer.name} gave ${d.probs.length} draft distributions for ` +
            `${d.tokens.length} tokens`,
        );
      }
      for (const id of d.tokens) {
        if (!Number.isInteger(id) || id < 0 || id >= c.vocab_size) {
          throw new GollmError(
            `${this.#proposer.name} proposed token id ${id}, outside the vocabulary ` +
              `[0, ${c.vocab_size})`,
          );
        }
      }
      if (d.tokens.length >= Math.max(1, this.#options.draftMin)) {
        drafts = d.tokens;
        probs = d.probs;
      }
    }
    const rows = this.#rows;
    rows.length = 0;
    rows.push(history[pos], ...drafts);
    const logits = t.forwardAll(rows, pos); // (k + 1, vocab_size)
    const r = verifyDraft(logits, drafts, probs, this.#sampler, history);
    stats.steps++;
    stats.drafted += drafts.length;
    stats.accepted += r.accepted;
    stats.acceptanceRate = stats.drafted > 0 ? stats.accepted / stats.drafted : 0;
    if (drafts.length > 0) {
      // HF's "heuristic" schedule: longer drafts while they are all accepted, shorter otherwise.
      const max = this.#options.draftMax;
      this.#k = r.accepted === drafts.length
        ? Math.min(max, this.#k + 2)
        : Math.max(1, this.#k - 1);
    }
    stats.tokensPerStep = this.#handed / stats.steps;
    this.#queue = r.tokens;
    this.#head = 1;
    return r.tokens[0];
  }
}

/** The speculative fields of `GenerateOptions`. */
export interface SpeculativeGenerateOptions {
  /** A draft model or a proposer; none: plain decoding. */
  draft?: Model | SpeculativeProposer;
  /** Most tokens drafted per step (default 4, as `gollm serve`). */
  draftMax?: number;
  /** Shortest draft worth verifying (default 0). */
  draftMin?: number;
  /** A draft model's p-min (default 0). */
  draftPMin?: number;
}

/**
 * Checks the speculative options of `generate` eagerly: `draftMax` an integer >= 1,
 * `draftMin` >= 0, `draftPMin` in [0, 1], a draft model other than the target and with its
 * vocabulary ({@linkcode checkDraftVocabulary}).
 *
 * @param target The target model.
 * @param options The generate options.
 * @throws {GollmError} naming the option or the two models.
 */
export function checkSpeculativeOptions(target: Model, options: SpeculativeGenerateOptions): void {
  checkInt("draftMax", options.draftMax, 1);
  checkInt("draftMin", options.draftMin, 0);
  checkNum("draftPMin", options.draftPMin, 0, 1);
  const d = options.draft;
  if (d === target) throw new GollmError("the draft model must be another model than the target");
  if (d && "generate" in d) checkDraftVocabulary(target, d);
}

/** Default most tokens drafted per target step. */
export const DEFAULT_DRAFT_MAX = 4;

/**
 * Builds the decoder for one generation from the generate options: a
 * {@linkcode DraftModelProposer} for a model, the proposer itself otherwise; `start` is
 * called with the target's sampling options.
 *
 * @param target The target's forward and rollback rule.
 * @param options The speculative options (already range-checked by `generate`).
 * @param sampler The target's sampler.
 * @returns The decoder and its stats, or null without a draft.
 */
export function speculativeDecoder(
  target: VerifyTarget,
  options: SpeculativeGenerateOptions,
  sampler: Sampler,
): { decoder: SpeculativeDecoder; stats: SpeculativeStats } | null {
  const d = options.draft;
  if (!d) return null;
  const proposer = "generate" in d ? new DraftModelProposer(d, { pMin: options.draftPMin }) : d;
  proposer.start?.(sampler.options);
  const draftMax = options.draftMax ?? DEFAULT_DRAFT_MAX;
  const stats = speculativeStats(proposer.name, draftMax);
  const decoder = new SpeculativeDecoder(target, proposer, sampler, stats, {
    draftMax,
    draftMin: options.draftMin ?? 0,
  });
  return { decoder, stats };
}
