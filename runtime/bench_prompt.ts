/**
 * The benchmark prompt, with no imports: runtime/bench.ts and the llama.cpp peer's process
 * (bench/protocol.ts) both use it, so the peer loads none of gollm's engine.
 *
 * @module
 */
/**
 * The prefill prompt of runtime/bench.ts `runModelBench`: BOS, then `n - 1` ids drawn uniformly
 * from `[0, vocabSize)` by a seeded xorshift32 (the same ids on every machine and in
 * the peer harness, bench/protocol.ts, which imports this dependency-free module; speed does not depend on the ids).
 *
 * @param n Prompt length in tokens (BOS included), >= 1.
 * @param vocabSize Vocabulary size.
 * @param bos The first id.
 * @param seed Seed (0 is mapped to a fixed non-zero state).
 * @returns `n` token ids.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchPrompt } from "./bench_prompt.ts";
 * const p = benchPrompt(256, 32768, 32766, 1);
 * assert.equal(p.length, 256);
 * assert.equal(p[0], 32766);
 * assert.ok(p.every((id) => id >= 0 && id < 32768));
 * assert.deepEqual(benchPrompt(256, 32768, 32766, 1), p);
 * ```
 */
export function benchPrompt(n: number, vocabSize: number, bos: number, seed: number): number[] {
  let s = (seed >>> 0) || 0x9e3779b9;
  const ids = [bos];
  for (let i = 1; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    ids.push(s % vocabSize);
  }
  return ids;
}
