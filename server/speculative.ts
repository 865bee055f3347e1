/**
 * Draft proposers for speculative decoding in the server's scheduler (Leviathan et al. 2023,
 * "Fast Inference from Transformers via Speculative Decoding"; Saxena 2023, "Prompt Lookup
 * Decoding"): a proposer guesses the next k tokens of a sequence, the scheduler runs the
 * sequence's last token and the k guesses as k + 1 rows of ONE batched step, and the
 * sequence verifies them with runtime/speculative.ts `verifyDraft`.
 *
 * - {@linkcode NgramProposer}: model-free prompt lookup (vLLM's `ngram` method, llama.cpp's
 *   lookup decoding): the last n tokens (n from `nMax` down to `nMin`) are searched for
 *   earlier in the prompt and output; what followed the latest match is the draft. It is
 *   deterministic: q is one-hot at the drafted token.
 * - {@linkcode DraftModelProposer}: a smaller model with the same vocabulary on its own
 *   single-sequence KV cache (one proposer per sequence slot), rolled back by position to
 *   the longest prefix it shares with the sequence. Greedy requests get its argmax tokens;
 *   sampled ones get tokens drawn from its distribution q after the request's sampling
 *   chain, and q itself.
 *
 * Both greedy and sampled requests are drafted. Verification is the rejection sampling of
 * Leviathan et al. (accept d with probability min(1, p(d)/q(d)), else draw from
 * norm(max(0, p − q)); a bonus token from p when every draft is accepted), so greedy output
 * is identical to plain decoding and sampled tokens keep the target's distribution.
 *
 * @module
 */
import { compileModel } from "../codegen/compile.ts";
import { WasmUnsupportedError } from "../codegen/emit_wasm.ts";
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { ForwardPass } from "../core/forward.ts";
import type { Weights } from "../core/weights.ts";
import { type ResolvedSamplerOptions, Sampler } from "../runtime/sampler.ts";
import type { Draft, TokenDistribution } from "../runtime/speculative.ts";

/** Guesses tokens that follow a sequence. */
export interface Proposer {
  /** What it is, for messages (`ngram 1..3`, `draft model PATH`). */
  readonly name: string;
  /**
   * Drafts up to `maxTokens` tokens to follow `history`. For seeded requests to give the
   * same text whatever else the server runs, the draft must be a function of the arguments
   * (and the proposer's construction) alone.
   *
   * @param history The sequence's tokens so far (prompt and generated; not modified).
   * @param maxTokens Most tokens to draft (>= 1).
   * @param sampling The request's sampling options with a seed for this call's draws
   *   (`Sequence.draftSampling`); absent or temperature 0: draft greedily.
   * @returns The drafted ids (possibly empty: nothing to propose), deterministic (q
   *   one-hot); or a {@linkcode Draft} with the distribution q each token was drawn from.
   */
  propose(
    history: readonly number[],
    maxTokens: number,
    sampling?: ResolvedSamplerOptions,
  ): number[] | Draft;
}

/**
 * Checks a proposer's answer and normalises it to a {@linkcode Draft}: at most `room` ids,
 * each in the vocabulary, with one q each when q is given.
 *
 * @param proposer The proposer (named in the message).
 * @param proposed What its `propose` returned.
 * @param room Most tokens asked for.
 * @param config The model config (`vocab_size`).
 * @returns The draft (`probs` null: one-hot).
 * @throws {GollmError} naming the proposer and what is wrong.
 */
export function checkProposal(
  proposer: Proposer,
  proposed: number[] | Draft,
  room: number,
  config: ModelConfig,
): Draft {
  const draft = Array.isArray(proposed) ? { tokens: proposed, probs: null } : proposed;
  const V = config.vocab_size, n = draft.tokens.length;
  if (n > room || (draft.probs && draft.probs.length !== n)) {
    throw new GollmError(
      `${proposer.name} proposed ${n} tokens with ${draft.probs?.length ?? "no"} ` +
        `distributions; at most ${room} tokens, one distribution each`,
    );
  }
  for (const id of draft.tokens) {
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new GollmError(`${proposer.name} proposed token id ${id}, outside [0, ${V})`);
    }
  }
  return draft;
}

/**
 * Prompt-lookup drafting: find the latest earlier occurrence of the last n tokens and
 * propose the tokens after it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NgramProposer } from "./speculative.ts";
 * const p = new NgramProposer(1, 3);
 * // "... 7 8 9 4 ... 7 8" -> "9 4" followed the last earlier "7 8".
 * assert.deepEqual(p.propose([7, 8, 9, 4, 5, 7, 8], 2), [9, 4]);
 * assert.deepEqual(p.propose([1, 2, 3], 2), []); // no earlier match
 * ```
 */
export class NgramProposer implements Proposer {
  /** `ngram nMin..nMax`. */
  readonly name: string;

  /**
   * Creates the proposer.
   * @param nMin Shortest suffix to match (>= 1). Default 1.
   * @param nMax Longest suffix to match (>= nMin). Default 3.
   * @throws {GollmError} for bad lengths.
   */
  constructor(readonly nMin = 1, readonly nMax = 3) {
    if (!Number.isInteger(nMin) || nMin < 1 || !Number.isInteger(nMax) || nMax < nMin) {
      throw new GollmError(
        `ngram lengths must be integers with 1 <= nMin <= nMax, got ${nMin}..${nMax}`,
      );
    }
    this.name = `ngram ${nMin}..${nMax}`;
  }

  /** Drafts what followed the latest earlier match of the longest suffix that matches. */
  propose(history: readonly number[], maxTokens: number): number[] {
    const L = history.length;
    for (let n = Math.min(this.nMax, L - 1); n >= this.nMin; n--) {
      // Latest start i < L - n with history[i .. i + n) == the last n tokens.
      for (let i = L - n - 1; i >= 0; i--) {
        let same = true;
        for (let j = 0; j < n && same; j++) same = history[i + j] === history[L - n + j];
        if (!same) continue;
        const from = i + n;
        return history.slice(from, Math.min(from + maxTokens, L)) as number[];
      }
    }
    return [];
  }
}

/**
 * A draft model on its own single-sequence KV cache. It keeps the tokens its cache holds
 * and, on each call, runs only what the sequence added since (rolling back by position to
 * the longest common prefix), then drafts: the argmax for greedy requests, a draw from q
 * (the request's sampling chain over the draft's logits, with the penalties seeing the
 * history and the drafts before) for sampled ones.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { compileModel } from "../codegen/compile.ts";
import { WasmUnsupportedError } from "../codegen/emit_wasm.ts";
 * import { resolveSamplerOptions } from "../runtime/sampler.ts";
 * import { DraftModelProposer } from "./speculative.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const p = new DraftModelProposer(compileModel(c, randomWeights(c, 1)), "random");
 * const d = p.propose([1, 2, 3], 3);
 * assert.ok(Array.isArray(d) && d.length === 3); // greedy: plain ids, q one-hot
 * assert.deepEqual(p.propose([1, 2, 3], 3), d); // same history, same draft
 * const sampling = resolveSamplerOptions({ temperature: 1, topK: 5, seed: 9 });
 * const s = p.propose([1, 2, 3], 3, sampling);
 * assert.ok(!Array.isArray(s) && s.tokens.length === 3 && s.probs!.length === 3);
 * assert.deepEqual(p.propose([1, 2, 3], 3, sampling), s); // same seed, same draws
 * ```
 */
export class DraftModelProposer implements Proposer {
  /** `draft model NAME`. */
  readonly name: string;
  #pass: ForwardPass;
  #cached: number[] = []; // tokens whose K/V the draft's cache holds at positions 0..n-1

  /**
   * Wraps a draft model's forward pass.
   * @param pass The draft model's single-sequence pass (its window must hold a sequence).
   * @param name The draft's name for messages.
   */
  constructor(pass: ForwardPass, name: string) {
    this.#pass = pass;
    this.name = `draft model ${name}`;
  }

  /** Catches up with `history`, then drafts (greedily, or by sampling with `sampling`). */
  propose(
    history: readonly number[],
    maxTokens: number,
    sampling?: ResolvedSamplerOptions,
  ): number[] | Draft {
    const cap = this.#pass.kvCapacity;
    const L = history.length;
    if (L + maxTokens > cap) maxTokens = cap - L;
    const sampler = sampling && sampling.temperature > 0 ? new Sampler(sampling) : null;
    if (maxTokens < 1 || L === 0) return sampler ? { tokens: [], probs: [] } : [];
    const cached = this.#cached;
    let p = 0;
    while (p < cached.length && p < L - 1 && cached[p] === history[p]) p++;
    let logits = this.#pass.forward(history.slice(p), p); // (vocab_size) of the last token
    cached.length = p;
    for (let i = p; i < L; i++) cached.push(history[i]);
    const out: number[] = [], probs: TokenDistribution[] = [];
    const recent = sampler ? history.slice() : []; // history + drafts, for the penalties
    for (let i = 0; i < maxTokens; i++) {
      let next = 0;
      if (sampler) {
        const q = sampler.distribution(logits, recent); // views: copied below
        probs.push({ ids: q.ids.slice(), probs: q.probs.slice() });
        next = sampler.sample(logits, recent); // a draw from that same q
        recent.push(next);
      } else {
        for (let v = 1; v < logits.length; v++) if (logits[v] > logits[next]) next = v;
      }
      out.push(next);
      if (i + 1 === maxTokens) break;
      logits = this.#pass.forward([next], L + i);
      cached.push(next);
    }
    return sampler ? { tokens: out, probs } : out;
  }
}

/**
 * One {@linkcode DraftModelProposer} per sequence slot over a draft checkpoint, after
 * checking that its vocabulary is the target's.
 *
 * @param target The target model's config.
 * @param draft The draft model's config and weights, and its path for messages.
 * @param slots Sequence slots (one proposer each).
 * @param ctxSize Tokens one sequence holds (each draft cache holds as many).
 * @returns The proposer of each slot.
 * @throws {GollmError} when the vocabularies differ or `ctxSize` exceeds the draft's context.
 */
export function draftModelProposers(
  target: ModelConfig,
  draft: { config: ModelConfig; weights: Weights; path: string },
  slots: number,
  ctxSize: number,
): Proposer[] {
  const c = draft.config;
  if (c.vocab_size !== target.vocab_size) {
    throw new GollmError(
      `${draft.path}: the draft model's vocabulary has ${c.vocab_size} tokens, the model's ` +
        `${target.vocab_size}; a draft model must share the model's tokenizer`,
    );
  }
  if (ctxSize > c.context_length) {
    throw new GollmError(
      `${draft.path}: the draft model's context length ${c.context_length} is below the ` +
        `server's context of ${ctxSize} tokens; lower --ctx-size`,
    );
  }
  return Array.from(
    { length: slots },
    () => new DraftModelProposer(compileDraft(c, draft.weights, ctxSize), draft.path),
  );
}

/**
 * A draft model's forward pass: the WASM backend on the caller's thread (a draft step is small;
 * the target's threads are busy with the verify step), or the JS kernels when the WASM kernels
 * refuse the model or its weight types.
 */
function compileDraft(c: ModelConfig, weights: Weights, kvCapacity: number): ForwardPass {
  try {
    return compileModel(c, weights, { kvCapacity, backend: "wasm" });
  } catch (e) {
    if (!(e instanceof WasmUnsupportedError)) throw e;
    return compileModel(c, weights, { kvCapacity });
  }
}
