/**
 * Several choices per request (`n` > 1; OpenAI's `n`, vLLM's parallel sampling): the seed
 * of each choice, and the choices' streams read as one.
 *
 * How the choices run (server/scheduler.ts `submitGroup`, server/block_manager.ts `fork`):
 * ```
 * submit     choice 0 (the parent) queues as any request; choices 1..n-1 wait on it
 * admission  the parent needs n free sequence slots; it takes one, holds n - 1 for the rest
 * prefill    the parent alone computes the prompt (chunked as any prompt)
 * fork       at its first sample, each child maps the parent's full prompt blocks (ref + 1:
 *            the prompt's K/V are held once) and takes a held slot; it recomputes the
 *            prompt's tail past the last shared full block (at least its last token) in
 *            fresh blocks of its own, then samples with its own seeded sampler
 * after      each choice is an ordinary sequence: decoded, preempted, drafted for
 *            (speculative decoding), finished and freed on its own
 * ```
 * Forking at a block boundary (vLLM v1's way through its prefix cache) rather than copying
 * a shared, partially filled last block on write (vLLM v0's SequenceGroup fork) costs each
 * child at most one block of prefill and needs no kernel that copies K/V. A pool too short
 * for a child's tail blocks at the fork sends that child to the queue as a plain request
 * (its prompt prefilled again, full blocks still shared through the prefix cache when on).
 * Cancelling the request (a disconnect, a timeout) cancels every choice: they share its
 * signal, and choices not forked yet go with the parent.
 *
 * Sampling: choice i draws with the seed {@linkcode choiceSeed}(seed, i) = seed + i, as
 * vLLM v1 derives its child requests' seeds (`vllm/v1/engine/parallel_sampling.py`,
 * `ParentRequest`), so choice i of a seeded request is the text of the same request with
 * `n` = 1 and seed + i, whatever else the server runs. At temperature 0 every choice is the
 * greedy text.
 *
 * @module
 */
import type { GenerationChunk, GenerationHandle, GenerationResult } from "./sequence.ts";

/**
 * The seed of choice `index` of a request seeded with `seed`: `seed + index` (vLLM v1's
 * rule), wrapped by 2^53 past `Number.MAX_SAFE_INTEGER` so it stays an exact integer.
 *
 * @param seed The request's seed (a safe integer).
 * @param index The choice, 0..n-1 (choice 0 keeps the request's seed).
 * @returns The seed of that choice's sampler.
 * @throws {RangeError} when `seed` is not a safe integer or `index` not an integer >= 0.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { choiceSeed } from "./choices.ts";
 * assert.deepEqual([0, 1, 2].map((i) => choiceSeed(42, i)), [42, 43, 44]);
 * assert.equal(choiceSeed(Number.MAX_SAFE_INTEGER, 1), Number.MAX_SAFE_INTEGER + 1 - 2 ** 53);
 * ```
 */
export function choiceSeed(seed: number, index: number): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  if (!Number.isInteger(index) || index < 0) {
    throw new RangeError(`index must be an integer >= 0, got ${index}`);
  }
  const s = seed + index; // exact up to 2^53 + index
  return s > Number.MAX_SAFE_INTEGER ? s - 2 ** 53 : s;
}

/** What one choice's stream delivered: a chunk, or its end. */
export type ChoiceEvent =
  | { index: number; chunk: GenerationChunk }
  | { index: number; result: GenerationResult };

/**
 * Reads the streams of a request's choices as one: each choice's chunks in order, then its
 * result, choices interleaved as their chunks arrive.
 *
 * @param handles The choices' handles, choice i at index i.
 * @returns The events; the iteration throws the first error a choice's stream threw (after
 *   the events that came before it).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interleaveChoices } from "./choices.ts";
 * import type { GenerationHandle } from "./sequence.ts";
 * const handle = (text: string): GenerationHandle => ({
 *   id: 0,
 *   result: Promise.resolve({ finishReason: "stop", promptTokens: 1, completionTokens: 1, cachedTokens: 0, ttftMs: 0 }),
 *   async *[Symbol.asyncIterator]() { yield { text, tokens: [] }; },
 * });
 * const texts = ["", ""];
 * for await (const e of interleaveChoices([handle("a"), handle("b")])) {
 *   if ("chunk" in e) texts[e.index] += e.chunk.text;
 * }
 * assert.deepEqual(texts, ["a", "b"]);
 * ```
 */
export async function* interleaveChoices(
  handles: readonly GenerationHandle[],
): AsyncGenerator<ChoiceEvent> {
  const queue: ChoiceEvent[] = [];
  let wake: (() => void) | null = null;
  let left = handles.length;
  let failed = false, error: unknown = null;
  const pump = async (h: GenerationHandle, index: number) => {
    try {
      for await (const chunk of h) {
        queue.push({ index, chunk });
        wake?.();
      }
      queue.push({ index, result: await h.result });
    } catch (e) {
      if (!failed) error = e;
      failed = true;
    } finally {
      left--;
      wake?.();
    }
  };
  handles.forEach(pump);
  for (;;) {
    if (queue.length > 0) {
      yield queue.shift()!;
      continue;
    }
    if (failed) throw error;
    if (left === 0) return;
    await new Promise<void>((r) => (wake = r));
    wake = null;
  }
}
