/**
 * Greedy decoding through a {@linkcode ForwardPass}, for parity tests that compare generated
 * ids with ids from an independent implementation (PyTorch, transformers).
 *
 * @module
 */
import { StreamDecoder, type Tokenizer } from "../tokenizers/tokenizer.ts";
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

/**
 * llama2.c run.c `generate()` at temperature 0: from BOS, the argmax at each position, until
 * BOS comes again or `steps` positions; the text as the tokenizer decodes it.
 * @example
 * ```ts ignore
 * const text = greedyText(model, model.tokenizer!, 200); // "Once upon a time, ..."
 * ```
 */
export function greedyText(
  fp: { forward(tokens: number[], pos: number): ArrayLike<number> },
  tok: Tokenizer,
  steps: number,
): string {
  const dec = new StreamDecoder(tok);
  let text = "", id = tok.bosId!;
  for (let pos = 0; pos < steps; pos++) {
    id = argmax(fp.forward([id], pos));
    if (id === tok.bosId) break;
    text += dec.push(id);
  }
  return text + dec.flush();
}
