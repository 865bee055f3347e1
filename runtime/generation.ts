/**
 * Generation helpers of runtime/model.ts: option range checks, the prompt length rule, and
 * stop-string scanning.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";

/**
 * How much of `text`'s end must be held back because it could start a stop string: the
 * length of the longest suffix of `text` that is a proper prefix of one of `stops`.
 *
 * @param text Decoded text not yet emitted.
 * @param stops Stop strings (non-empty).
 * @returns Characters to hold back (0 when none).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stopPrefixHold } from "./generation.ts";
 * assert.equal(stopPrefixHold("the end. TH", ["THE END"]), 2);
 * assert.equal(stopPrefixHold("the end.", ["THE END"]), 0);
 * ```
 */
export function stopPrefixHold(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, text.length); k > hold; k--) {
      if (text.endsWith(s.slice(0, k))) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

/**
 * Where the first stop string starts in `text`.
 *
 * @param text Decoded text.
 * @param stops Stop strings.
 * @returns Index of the earliest occurrence of any of them, or -1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { findStop } from "./generation.ts";
 * assert.equal(findStop("a b\nUser: c", ["\nUser:", " c"]), 3);
 * assert.equal(findStop("abc", ["x"]), -1);
 * ```
 */
export function findStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best < 0 || i < best)) best = i;
  }
  return best;
}

/**
 * Checks an optional integer option (`maxTokens`, `topK`, `prefillChunk`).
 *
 * @param name Option name for the message.
 * @param v The value (undefined: not given, accepted).
 * @param min Smallest allowed value.
 * @throws {GollmError} `maxTokens must be an integer >= 0, got -1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkInt } from "./generation.ts";
 * checkInt("topK", 40, 0);
 * assert.throws(() => checkInt("topK", 1.5, 0), /topK must be an integer >= 0, got 1.5/);
 * ```
 */
export function checkInt(name: string, v: number | undefined, min: number): void {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) {
    throw new GollmError(`${name} must be an integer >= ${min}, got ${v}`);
  }
}

/**
 * Checks an optional finite number option in `[min, max]`, or `(min, max]` when
 * `minExclusive`.
 *
 * @param name Option name for the message.
 * @param v The value (undefined: not given, accepted).
 * @param min Lower bound.
 * @param max Upper bound (default Infinity).
 * @param minExclusive Whether `min` itself is refused.
 * @throws {GollmError} `repeatPenalty must be a number in (0, Infinity], got 0`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkNum } from "./generation.ts";
 * checkNum("topP", 1, 0, 1, true);
 * assert.throws(() => checkNum("topP", 0, 0, 1, true), /topP must be a number in \(0, 1\]/);
 * ```
 */
export function checkNum(
  name: string,
  v: number | undefined,
  min: number,
  max = Infinity,
  minExclusive = false,
): void {
  if (v === undefined) return;
  if (!Number.isFinite(v) || (minExclusive ? v <= min : v < min) || v > max) {
    const lo = `${minExclusive ? "(" : "["}${min}`;
    throw new GollmError(`${name} must be a number in ${lo}, ${max}], got ${v}`);
  }
}

/**
 * The prompt length rule of `Model.generate`, for any sequence run from position
 * 0 (`gollm logits` applies it too): at most `context_length` tokens, except that a `llama`
 * model whose KV capacity is below `context_length` runs a longer prompt through the
 * sliding window. gpt2 models (learned positions) never go past `context_length`.
 *
 * @param config The model config.
 * @param kvCapacity The model's KV capacity (slots per layer).
 * @param n The sequence length in tokens.
 * @param what What the sequence is, for the message (default `the prompt`).
 * @throws {GollmError} `the prompt is 685 tokens, longer than the context length 256; ...`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { checkPromptLength } from "./generation.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * checkPromptLength(c, c.context_length, c.context_length);
 * assert.throws(() => checkPromptLength(c, c.context_length, c.context_length + 1), /longer than/);
 * checkPromptLength(c, c.context_length / 2, c.context_length + 1); // sliding window
 * ```
 */
export function checkPromptLength(
  config: ModelConfig,
  kvCapacity: number,
  n: number,
  what = "the prompt",
): void {
  const C = config.context_length;
  if (n <= C) return;
  if (config.arch === "gpt2") {
    throw new GollmError(
      `${what} is ${n} tokens, longer than the context length ${C} ` +
        `(gpt2 has learned positions 0..${C - 1}); shorten it`,
    );
  }
  if (kvCapacity >= C) {
    throw new GollmError(
      `${what} is ${n} tokens, longer than the context length ${C}; shorten it, or set ` +
        `kvCapacity (--kv-capacity) below ${C} to run it with sliding-window attention`,
    );
  }
}
