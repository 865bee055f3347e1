/**
 * The single-sequence adapter: the {@linkcode ForwardPass} of `generate`, `chat`, `logits`
 * and the reference tests, implemented over a {@linkcode BatchForward} on sequence slot 0.
 *
 * The sequence owns blocks `0 .. ceil((window + T) / blockSize) - 1` used as a ring, so a
 * chunk of T rows never overwrites a slot a row of the same step still reads, and its
 * sliding window is `window` (the old `kvCapacity`): the row at position p attends to
 * positions `max(0, p - window + 1) .. p`, exactly as runtime/reference.ts.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";
import {
  type BatchForward,
  checkForwardArgs,
  type ForwardPass,
  type StepInput,
} from "./forward.ts";

/**
 * Blocks a single sequence with sliding window `window` needs when steps have up to
 * `maxRows` rows: `ceil((window + maxRows) / blockSize)`.
 *
 * @param window Sliding window in tokens (the `kvCapacity`).
 * @param maxRows T, rows per step.
 * @param blockSize Tokens per block.
 * @returns Blocks (the ring is that many blocks long).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { singleSequenceBlocks } from "./single_sequence.ts";
 * assert.equal(singleSequenceBlocks(2048, 32, 16), 130); // a ring of 2080 tokens
 * ```
 */
export function singleSequenceBlocks(window: number, maxRows: number, blockSize: number): number {
  return Math.ceil((window + maxRows) / blockSize);
}

/** A step's rows as arrays the adapter fills in place (one set per row count). */
interface Rows extends StepInput {
  tokens: Int32Array;
  positions: Int32Array;
  seqs: Int32Array;
  outRows: Int32Array;
}

/**
 * Wraps a batched forward as a single-sequence {@linkcode ForwardPass} on slot 0.
 *
 * `forward(tokens, pos)` runs all but the last token in steps of up to `maxRows` rows with
 * no logits, then the last token as a one-row step (the decode graph) and returns a view of
 * its logits; `forwardAll` asks for every row's logits and copies them out. The step arrays
 * are allocated once per row count, so a decode step allocates nothing.
 *
 * @param batch The batched forward; it needs `singleSequenceBlocks(window, maxRows,
 *   blockSize)` blocks.
 * @param window Sliding window in tokens (reported as `kvCapacity`).
 * @returns The forward pass.
 * @throws {RangeError} when the batch has too few blocks for the ring.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * import { compileBatch } from "../codegen/compile.ts";
 * import { singleSequence } from "./single_sequence.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const batch = compileBatch(c, randomWeights(c, 1), { numBlocks: 6, maxRows: 8 });
 * const pass = singleSequence(batch, 40); // ring: ceil((40 + 8) / 16) = 3 blocks
 * assert.equal(pass.forward([1, 2, 3], 0).length, c.vocab_size);
 * assert.equal(pass.forwardAll([1, 2, 3], 0).length, 3 * c.vocab_size);
 * ```
 */
export function singleSequence(batch: BatchForward, window: number): ForwardPass {
  const c: ModelConfig = batch.config;
  const T = batch.maxRows, V = c.vocab_size;
  const blocks = singleSequenceBlocks(window, T, batch.blockSize);
  if (blocks > batch.numBlocks || blocks > batch.maxBlocksPerSeq) {
    throw new RangeError(
      `singleSequence: a window of ${window} with ${T}-row steps needs ${blocks} blocks of ` +
        `${batch.blockSize}, the batch has ${Math.min(batch.numBlocks, batch.maxBlocksPerSeq)}`,
    );
  }
  batch.setSequence(
    0,
    Array.from({ length: blocks }, (_, b) => b),
    blocks * batch.blockSize,
    window,
  );

  const byCount: Rows[] = []; // byCount[n]: arrays for an n-row step
  const rows = (n: number, logits: boolean): Rows => {
    const r = byCount[n] ??= {
      tokens: new Int32Array(n),
      positions: new Int32Array(n),
      seqs: new Int32Array(n), // all sequence 0
      outRows: Int32Array.from({ length: n }, (_, t) => t),
    };
    return logits ? r : { ...r, outRows: NO_ROWS };
  };
  /** Runs tokens[start .. start + n) at positions pos .. as one step. */
  const run = (tokens: ArrayLike<number>, start: number, n: number, pos: number, out: boolean) => {
    const r = rows(n, out);
    for (let t = 0; t < n; t++) {
      r.tokens[t] = tokens[start + t];
      r.positions[t] = pos + t;
    }
    return batch.step(r);
  };
  const decode = rows(1, true);

  return {
    config: c,
    kvCapacity: window,
    forward(tokens: ArrayLike<number>, pos: number): Float32Array {
      checkForwardArgs(c, tokens, pos);
      const last = tokens.length - 1;
      for (let done = 0; done < last; done += T) {
        run(tokens, done, Math.min(T, last - done), pos + done, false);
      }
      decode.tokens[0] = tokens[last];
      decode.positions[0] = pos + last;
      return batch.step(decode); // (1, vocab_size) = (vocab_size)
    },
    forwardAll(tokens: ArrayLike<number>, pos: number): Float32Array {
      checkForwardArgs(c, tokens, pos);
      const n = tokens.length;
      const out = new Float32Array(n * V); // (n, vocab_size)
      for (let done = 0; done < n; done += T) {
        const m = Math.min(T, n - done);
        out.set(run(tokens, done, m, pos + done, true), done * V);
      }
      return out;
    },
  };
}

const NO_ROWS = new Int32Array(0);
