/**
 * The model-free n-gram proposer of speculative decoding ("prompt lookup decoding",
 * Saxena 2023; vLLM's `ngram` method with `prompt_lookup_max` / `prompt_lookup_min`;
 * llama.cpp's `--lookup` family; HF `prompt_lookup_num_tokens`): find the last n tokens of
 * the prompt + output earlier in it and propose what followed them there. It costs no
 * forward pass, and pays off where text repeats: quoting the prompt, code, a greedy loop.
 *
 * @module
 */
import type { Draft, SpeculativeProposer } from "./speculative.ts";
import { GollmError } from "../core/errors.ts";

/** Options of {@linkcode NgramProposer}. */
export interface NgramOptions {
  /** Longest n-gram to match, tried first (vLLM `prompt_lookup_max`; default 3). */
  ngramMax?: number;
  /** Shortest n-gram to match (vLLM `prompt_lookup_min`; default 1). */
  ngramMin?: number;
}

/**
 * Prompt-lookup drafting. For n from `ngramMax` down to `ngramMin`: take the last n tokens
 * of the history as the pattern, find its most recent earlier occurrence, and propose the
 * tokens that followed it. When the continuation reaches the end of the history it carries
 * on with the tokens it has just proposed (a repeating span is extended periodically, so a
 * loop of period P can be drafted in full). The proposal is deterministic: q is one-hot,
 * and with sampling a draft is accepted with the target's probability of it.
 *
 * Cost: O(history · n) comparisons per proposal, no allocation beyond the draft.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NgramProposer } from "./speculative_ngram.ts";
 * const ngram = new NgramProposer({ ngramMax: 2 });
 * // "7 8" occurred before, followed by "9 1": propose that.
 * assert.deepEqual(ngram.propose([7, 8, 9, 1, 5, 7, 8], 2).tokens, [9, 1]);
 * // a loop of period 2 is extended past the end of the history
 * assert.deepEqual(ngram.propose([3, 4, 3, 4], 5).tokens, [3, 4, 3, 4, 3]);
 * assert.deepEqual(ngram.propose([1, 2, 3], 4).tokens, []); // no earlier occurrence
 * ```
 */
export class NgramProposer implements SpeculativeProposer {
  /** `ngram MIN..MAX`. */
  readonly name: string;
  /** Longest n-gram matched. */
  readonly ngramMax: number;
  /** Shortest n-gram matched. */
  readonly ngramMin: number;

  /**
   * Creates a proposer matching n-grams of `ngramMin..ngramMax` tokens.
   *
   * @param options N-gram sizes.
   * @throws {GollmError} unless `1 <= ngramMin <= ngramMax` are integers.
   */
  constructor(options: NgramOptions = {}) {
    const max = options.ngramMax ?? 3, min = options.ngramMin ?? Math.min(1, max);
    if (!Number.isInteger(max) || max < 1) {
      throw new GollmError(`ngramMax must be an integer >= 1, got ${max}`);
    }
    if (!Number.isInteger(min) || min < 1 || min > max) {
      throw new GollmError(`ngramMin must be an integer in [1, ngramMax ${max}], got ${min}`);
    }
    this.ngramMax = max;
    this.ngramMin = min;
    this.name = `ngram ${min}..${max}`;
  }

  /**
   * Drafts up to `maxTokens` tokens by prompt lookup.
   *
   * @param history Prompt and generated ids (not modified).
   * @param maxTokens Most tokens to propose.
   * @returns The continuation of the most recent earlier match of the longest n-gram that
   *   has one; no tokens when none does. `probs` is null (deterministic).
   */
  propose(history: readonly number[], maxTokens: number): Draft {
    const L = history.length;
    for (let n = Math.min(this.ngramMax, L - 1); n >= this.ngramMin; n--) {
      for (let j = L - n - 1; j >= 0; j--) {
        let k = 0;
        while (k < n && history[j + k] === history[L - n + k]) k++;
        if (k < n) continue;
        // history[j .. j+n) equals the last n tokens: propose what followed it.
        const tokens: number[] = [];
        for (let t = j + n; tokens.length < maxTokens; t++) {
          tokens.push(t < L ? history[t] : tokens[t - L]);
        }
        return { tokens, probs: null };
      }
    }
    return { tokens: [], probs: null };
  }
}
