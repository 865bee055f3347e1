/**
 * The forward-pass interface shared by the reference implementation
 * (`runtime/reference.ts`) and the JIT (`codegen/compile.ts`).
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/** Options when building a forward pass. */
export interface ForwardOptions {
  /**
   * Slots in each layer's KV ring (default: `context_length`). The token at absolute
   * position p goes to slot `p % kvCapacity`; attention reads the last
   * `min(p + 1, kvCapacity)` positions (sliding window once p >= kvCapacity).
   */
  kvCapacity?: number;
  /** Tokens per prefill chunk (JIT only; default 32, at most kvCapacity). */
  prefillChunk?: number;
}

/**
 * A runnable forward pass with its own KV cache. Positions are absolute and supplied by the
 * caller; starting again at position 0 begins a new sequence (no reset needed).
 */
export interface ForwardPass {
  /** The config it was built for. */
  readonly config: ModelConfig;
  /** Slots in each layer's KV ring. */
  readonly kvCapacity: number;
  /**
   * Runs `tokens` at positions `pos .. pos + n - 1` (prefill when n > 1, in chunks; decode
   * when n == 1) and returns the logits of the last one.
   *
   * @param tokens Token ids, each in `[0, vocab_size)`.
   * @param pos Absolute position of `tokens[0]` (0 starts a new sequence).
   * @returns Logits `(vocab_size)` of the last token: a view into the arena, valid until
   *   the next call (copy it to keep it).
   * @throws {RangeError} for an id outside the vocabulary, or (gpt2) a position past
   *   `context_length`.
   */
  forward(tokens: ArrayLike<number>, pos: number): Float32Array;
  /**
   * Like {@linkcode ForwardPass.forward} but returns the logits of every position.
   *
   * @param tokens Token ids.
   * @param pos Absolute position of `tokens[0]`.
   * @returns A new `(n, vocab_size)` row-major array.
   * @throws {RangeError} as for `forward`.
   */
  forwardAll(tokens: ArrayLike<number>, pos: number): Float32Array;
}

/**
 * Resolves and checks the KV capacity option (DESIGN.md "Arena and KV cache").
 *
 * @param config The model config.
 * @param options Forward options; `kvCapacity` defaults to `config.context_length`.
 * @returns Slots per layer KV ring (a positive integer).
 * @throws {RangeError} when `kvCapacity` is not a positive integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * import { resolveKvCapacity } from "./forward.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * assert.equal(resolveKvCapacity(c, {}), 64); // context_length
 * assert.equal(resolveKvCapacity(c, { kvCapacity: 16 }), 16);
 * assert.throws(() => resolveKvCapacity(c, { kvCapacity: 0 }), RangeError);
 * ```
 */
export function resolveKvCapacity(config: ModelConfig, options: ForwardOptions = {}): number {
  const cap = options.kvCapacity ?? config.context_length;
  if (!Number.isInteger(cap) || cap <= 0) {
    throw new RangeError(`kvCapacity must be a positive integer, got ${cap}`);
  }
  return cap;
}

/**
 * Checks the arguments of {@linkcode ForwardPass.forward}: at least one token, every id in
 * `[0, vocab_size)`, `pos` a non-negative integer, and (gpt2, learned positions) the last
 * position below `context_length`.
 *
 * @param config The model config.
 * @param tokens Token ids.
 * @param pos Absolute position of `tokens[0]`.
 * @throws {RangeError} naming the offending id or position.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * import { checkForwardArgs } from "./forward.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-gpt2.yaml"), "t.yaml");
 * checkForwardArgs(c, [1, 2, 3], 0); // ok
 * assert.throws(() => checkForwardArgs(c, [1], 64), /position 64 is past context_length 64/);
 * assert.throws(() => checkForwardArgs(c, [c.vocab_size], 0), /outside the vocabulary/);
 * ```
 */
export function checkForwardArgs(
  config: ModelConfig,
  tokens: ArrayLike<number>,
  pos: number,
): void {
  const n = tokens.length;
  if (n === 0) throw new RangeError("forward: tokens must not be empty");
  if (!Number.isInteger(pos) || pos < 0) {
    throw new RangeError(`forward: pos must be a non-negative integer, got ${pos}`);
  }
  if (config.arch === "gpt2" && pos + n > config.context_length) {
    throw new RangeError(
      `forward: position ${pos + n - 1} is past context_length ${config.context_length} ` +
        `(gpt2 has learned position embeddings for positions 0..${config.context_length - 1})`,
    );
  }
  for (let i = 0; i < n; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= config.vocab_size) {
      throw new RangeError(
        `forward: token id ${t} at index ${i} is outside the vocabulary [0, ${config.vocab_size})`,
      );
    }
  }
}
