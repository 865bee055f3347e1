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
