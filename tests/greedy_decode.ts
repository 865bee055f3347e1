/**
 * Greedy decoding through a {@linkcode ForwardPass}, for parity tests that compare generated
 * ids with ids from an independent implementation (PyTorch, transformers).
 *
 * @module
 */
import type { ForwardPass } from "../core/forward.ts";

/**
 * Index of the largest value (ties → lowest index, like `torch.argmax`).
 * @example
 * ```ts
 * argmax([1, 3, 3, 2]); // 1
 * ```
 */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * Greedy decoding with the KV cache: prefill `prompt` at position 0, then feed one token per
 * call; returns the `n` generated ids (no stop token).
 * @example
 * ```ts ignore
 * const ids = greedy(createReference(config, weights), [1, 2, 3], 16);
 * ```
 */
export function greedy(fp: ForwardPass, prompt: number[], n: number): number[] {
  const out: number[] = [];
  let next = argmax(fp.forward(prompt, 0));
  for (let i = 0; i < n; i++) {
    out.push(next);
    if (i + 1 < n) next = argmax(fp.forward([next], prompt.length + i));
  }
  return out;
}
