/**
 * Checks of a batched forward (core/forward.ts `BatchForward`, engine v2) against the
 * single-sequence reference (runtime/reference.ts), run per sequence: every check builds
 * the batch under test from the same random weights, drives it the way a server would
 * (many sequences per step, shuffled block tables, rings, shared prefix blocks, speculative
 * verify rows) and compares each sequence's logits with the reference run alone, within
 * {@linkcode TOL}. codegen/compile_test.ts runs them for every backend over the case table
 * of tests/forward_cases.ts, with negative controls.
 *
 * @module
 */
import { AssertionError } from "node:assert/strict";
import type { ModelConfig } from "../core/config.ts";
import type { BatchForward, BatchLayout } from "../core/forward.ts";
import { type F32Weights, randomWeights, type Weights } from "../core/weights.ts";
import { dequantizeWeights } from "../formats/quant/tensor.ts";
import { createReference } from "../runtime/reference.ts";
import { assertClose } from "./assert_close.ts";
import { tokens, TOL } from "./forward_cases.ts";

/** Builds the batched forward under test from weights and a layout. */
export type BuildBatch = (weights: Weights, layout: BatchLayout) => BatchForward;

/**
 * Options of the checks: `store` turns the random F32 weights into the weights the batch
 * under test gets (e.g. quantised to Q8_0); the reference then runs on their dequantised
 * values, within `tol` (default {@linkcode TOL}; greedy ids are compared only at TOL).
 */
export interface BatchCheckOptions {
  /** The weights the batch gets, from the random F32 ones (default: as they are). */
  store?: (weights: F32Weights) => Weights;
  /** Logit tolerance (default TOL). */
  tol?: number;
}

/** The batch's weights, the reference's (dequantised) and the tolerance. */
function weightsFor(c: ModelConfig, seed: number, o: BatchCheckOptions) {
  const f32 = randomWeights(c, seed);
  const w = o.store ? o.store(f32) : f32;
  const tol = o.tol ?? TOL;
  return { w, wr: o.store ? dequantizeWeights(w) : f32, tol, exact: tol <= TOL };
}

/** A permutation of `0 .. n - 1` (Fisher-Yates with a xorshift32 stream). */
export function shuffled(n: number, seed: number): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  const r = tokens(n, 1 << 30, seed);
  for (let i = n - 1; i > 0; i--) {
    const j = r[i] % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The index of the largest logit (the greedy token). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** One row of a step. */
interface Row {
  seq: number;
  pos: number;
  token: number;
  out: boolean;
}

/** Runs the rows as one step; returns the logits `(vocab_size)` of each out row, copied. */
function runStep(batch: BatchForward, rows: Row[]): Float32Array[] {
  const outRows = rows.flatMap((r, t) => (r.out ? [t] : []));
  const logits = batch.step({
    tokens: rows.map((r) => r.token),
    positions: rows.map((r) => r.pos),
    seqs: rows.map((r) => r.seq),
    outRows,
  });
  const V = batch.config.vocab_size;
  return outRows.map((_, i) => logits.slice(i * V, (i + 1) * V));
}

/**
 * 8 prompts of different lengths (1 to 13 tokens) as ONE batch: prefill steps of up to 16
 * rows that mix chunks of several sequences (a prompt may be split across steps), then
 * decode steps with one row per sequence still running (down to one row: the decode
 * graph), each sequence with a shuffled, non-contiguous block table of 4-token blocks.
 * Every sequence's logits equal the reference run alone, and its greedy ids too.
 *
 * @param c The config (context_length >= 24).
 * @param build Builds the batch under test.
 * @param options Stored weights and tolerance.
 */
export function checkBatchedPrompts(
  c: ModelConfig,
  build: BuildBatch,
  options: BatchCheckOptions = {},
): void {
  const { w, wr, tol, exact } = weightsFor(c, 13, options);
  const lens = [1, 3, 5, 7, 9, 11, 2, 13]; // prompt tokens of sequences 0..7
  const decodeSteps = [6, 5, 4, 3, 6, 2, 1, 8]; // greedy tokens after each prompt
  const S = lens.length, bs = 4, perSeq = 6; // 6 blocks of 4: positions 0..23
  const batch = build(w, {
    maxRows: 16,
    maxSeqs: S,
    blockSize: bs,
    numBlocks: S * perSeq + 3,
    maxBlocksPerSeq: perSeq,
  });
  const free = shuffled(S * perSeq + 3, 7);
  for (let s = 0; s < S; s++) {
    batch.setSequence(s, free.slice(s * perSeq, (s + 1) * perSeq), perSeq * bs, c.context_length);
  }
  const prompts = lens.map((n, s) => tokens(n, c.vocab_size, 100 + s));
  const refs = prompts.map(() => createReference(c, wr, { kvCapacity: c.context_length }));

  // Prefill: fill each step with up to 16 rows, sequence after sequence.
  const next: number[] = new Array(S).fill(0); // next prompt position of each sequence
  const last: (Float32Array | null)[] = new Array(S).fill(null); // logits of the last row
  while (next.some((p, s) => p < lens[s])) {
    const rows: Row[] = [];
    for (let s = 0; s < S && rows.length < 16; s++) {
      while (next[s] < lens[s] && rows.length < 16) {
        const pos = next[s]++;
        rows.push({ seq: s, pos, token: prompts[s][pos], out: pos === lens[s] - 1 });
      }
    }
    const outs = runStep(batch, rows);
    rows.filter((r) => r.out).forEach((r, i) => (last[r.seq] = outs[i]));
  }
  const ids: number[] = [];
  for (let s = 0; s < S; s++) {
    const ref = refs[s].forward(prompts[s], 0);
    assertClose(last[s]!, ref, tol, `sequence ${s}: prompt of ${lens[s]} tokens`);
    ids.push(argmax(ref));
    if (exact && argmax(last[s]!) !== ids[s]) {
      throw new AssertionError({ message: `sequence ${s}: greedy id after the prompt` });
    }
  }

  // Decode: one row per sequence still running.
  for (let step = 0; step < Math.max(...decodeSteps); step++) {
    const running = [...Array(S).keys()].filter((s) => step < decodeSteps[s]);
    const rows = running.map((s) => ({ seq: s, pos: lens[s] + step, token: ids[s], out: true }));
    const outs = runStep(batch, rows);
    running.forEach((s, i) => {
      const ref = refs[s].forward([ids[s]], lens[s] + step);
      assertClose(outs[i], ref, tol, `sequence ${s}: decode step ${step} (${rows.length} rows)`);
      const greedy = argmax(ref);
      if (exact && argmax(outs[i]) !== greedy) {
        throw new AssertionError({ message: `sequence ${s}: greedy id at decode step ${step}` });
      }
      ids[s] = greedy;
    });
  }
}

/**
 * The ring and the sliding window through shuffled blocks: sequence 0 (window 6) runs 30
 * tokens in chunks of k rows for every k from 1 to T = 8, sharing each step with chunks of
 * T - k rows of sequence 1 (window 9); each sequence owns `ceil((window + T) / 4)` shuffled
 * blocks of 4 used as a ring. Every row's logits equal the reference with that window
 * (`kvCapacity`).
 *
 * @param c The config (context_length >= 30).
 * @param build Builds the batch under test.
 * @param options Stored weights and tolerance.
 */
export function checkPagedWindow(
  c: ModelConfig,
  build: BuildBatch,
  options: BatchCheckOptions = {},
): void {
  const { w, wr, tol } = weightsFor(c, 17, options);
  const windows = [6, 9];
  const T = 8, bs = 4, n = 30;
  const blocks = windows.map((win) => Math.ceil((win + T) / bs));
  const numBlocks = blocks[0] + blocks[1];
  const batch = build(w, { maxRows: T, maxSeqs: 2, blockSize: bs, numBlocks, maxBlocksPerSeq: 8 });
  const perm = shuffled(numBlocks, 3);
  batch.setSequence(0, perm.slice(0, blocks[0]), blocks[0] * bs, windows[0]);
  batch.setSequence(1, perm.slice(blocks[0]), blocks[1] * bs, windows[1]);
  const toks = [tokens(n, c.vocab_size, 21), tokens(n, c.vocab_size, 22)];
  const refs = windows.map((win, s) =>
    createReference(c, wr, { kvCapacity: win }).forwardAll(toks[s], 0)
  );
  const V = c.vocab_size;
  for (let k = 1; k <= T; k++) {
    const chunk = [k, k === T ? T : T - k];
    const done = [0, 0];
    while (done[0] < n || done[1] < n) {
      const rows: Row[] = [];
      for (const s of [0, 1]) {
        const m = Math.min(chunk[s], n - done[s], T - rows.length);
        for (let t = 0; t < m; t++) {
          rows.push({ seq: s, pos: done[s] + t, token: toks[s][done[s] + t], out: true });
        }
        done[s] += m;
      }
      runStep(batch, rows).forEach((logits, i) => {
        const { seq, pos } = rows[i];
        const ref = refs[seq].subarray(pos * V, (pos + 1) * V);
        assertClose(logits, ref, tol, `chunks of ${k}: sequence ${seq} at position ${pos}`);
      });
    }
  }
}

/**
 * Prefix sharing: sequence 0 prefills a 15-token prompt; sequence 1, whose 22-token prompt
 * starts with the same 12 tokens, points its first 3 block-table entries at sequence 0's
 * first 3 blocks (of 4 tokens) and prefills only positions 12..21. Its logits equal a cold
 * prefill of the whole prompt (the reference, and sequence 2 in the same batch with its own
 * blocks), and sequence 0 decodes on as before afterwards (no shared block was written).
 *
 * @param c The config (context_length >= 32).
 * @param build Builds the batch under test.
 * @param prefixSeed Seed of sequence 1's first 12 tokens (3: the prefix held by the shared
 *   blocks; another seed makes them a different prefix: a negative control).
 * @param options Stored weights and tolerance.
 */
export function checkPrefixSharing(
  c: ModelConfig,
  build: BuildBatch,
  prefixSeed = 3,
  options: BatchCheckOptions = {},
): void {
  const { w, wr, tol } = weightsFor(c, 19, options);
  const bs = 4, k = 3, perSeq = 8; // 3 shared blocks: positions 0..11
  const batch = build(w, {
    maxRows: 8,
    maxSeqs: 3,
    blockSize: bs,
    numBlocks: 3 * perSeq,
    maxBlocksPerSeq: perSeq,
  });
  const perm = shuffled(3 * perSeq, 5);
  const own = [0, 1, 2].map((s) => perm.slice(s * perSeq, (s + 1) * perSeq));
  const shared = [...own[0].slice(0, k), ...own[1].slice(k)];
  const ring = perSeq * bs;
  batch.setSequence(0, own[0], ring, c.context_length);
  batch.setSequence(1, shared, ring, c.context_length);
  batch.setSequence(2, own[2], ring, c.context_length);
  const prefix = tokens(k * bs, c.vocab_size, 3);
  const a = [...prefix, ...tokens(3, c.vocab_size, 4)]; // sequence 0: 15 tokens
  const b = [...tokens(k * bs, c.vocab_size, prefixSeed), ...tokens(10, c.vocab_size, 6)];
  const rowsOf = (seq: number, toks: number[], from: number, to: number): Row[] =>
    Array.from({ length: to - from }, (_, t) => ({
      seq,
      pos: from + t,
      token: toks[from + t],
      out: from + t === toks.length - 1,
    }));
  /** Runs rows in steps of up to 8; returns the logits of the last out row. */
  const run = (rows: Row[]) => {
    let out: Float32Array | undefined;
    for (let i = 0; i < rows.length; i += 8) {
      const outs = runStep(batch, rows.slice(i, i + 8));
      if (outs.length > 0) out = outs.at(-1);
    }
    return out!;
  };
  const refA = createReference(c, wr, { kvCapacity: c.context_length });
  assertClose(run(rowsOf(0, a, 0, a.length)), refA.forward(a, 0), tol, "sequence 0 prompt");
  // Sequence 1: a prefix-cache hit, prefill from position 12 only.
  const warm = run(rowsOf(1, b, k * bs, b.length));
  const cold = run(rowsOf(2, b, 0, b.length));
  const refB = createReference(c, wr, { kvCapacity: c.context_length }).forward(b, 0);
  assertClose(cold, refB, tol, "cold prefill of sequence 2");
  assertClose(warm, cold, TOL, "prefix-cache hit of sequence 1 equals a cold prefill");
  // Sequence 0 goes on reading its blocks, shared ones included.
  for (let t = 0; t < 4; t++) {
    const id = (7 * t + 1) % c.vocab_size;
    const [out] = runStep(batch, [{ seq: 0, pos: a.length + t, token: id, out: true }]);
    assertClose(out, refA.forward([id], a.length + t), tol, `sequence 0 decode ${t}`);
  }
}

/**
 * Speculative verification: after the same 10-token prompt in sequences 0 and 1, one step
 * runs k + 1 = 5 consecutive rows of sequence 0 (a decode token and 4 drafted ones), all in
 * `outRows`, next to a decode row of sequence 2; sequence 1 runs the same 5 tokens as 5
 * single-row decode steps. Each verify row's logits equal the matching single step's, and
 * the reference's.
 *
 * @param c The config (context_length >= 16).
 * @param build Builds the batch under test.
 * @param shift Positions the verify rows are shifted by (0; 1 is a negative control).
 * @param options Stored weights and tolerance.
 */
export function checkVerifyStep(
  c: ModelConfig,
  build: BuildBatch,
  shift = 0,
  options: BatchCheckOptions = {},
): void {
  const { w, wr, tol } = weightsFor(c, 23, options);
  const bs = 4, perSeq = 4;
  const batch = build(w, {
    maxRows: 8,
    maxSeqs: 3,
    blockSize: bs,
    numBlocks: 3 * perSeq,
    maxBlocksPerSeq: perSeq,
  });
  const perm = shuffled(3 * perSeq, 9);
  for (let s = 0; s < 3; s++) {
    batch.setSequence(s, perm.slice(s * perSeq, (s + 1) * perSeq), perSeq * bs, c.context_length);
  }
  const prompt = tokens(10, c.vocab_size, 31);
  const other = tokens(3, c.vocab_size, 32);
  const prefill: Row[] = [
    ...prompt.map((token, pos) => ({ seq: 0, pos, token, out: false })),
    ...other.map((token, pos) => ({ seq: 2, pos, token, out: false })),
  ];
  runStep(batch, prefill.slice(0, 8));
  runStep(batch, prefill.slice(8));
  runStep(batch, prompt.slice(0, 8).map((token, pos) => ({ seq: 1, pos, token, out: false })));
  runStep(batch, prompt.slice(8).map((token, t) => ({ seq: 1, pos: 8 + t, token, out: false })));
  const draft = tokens(5, c.vocab_size, 33);
  const verify = runStep(batch, [
    ...draft.map((token, t) => ({ seq: 0, pos: 10 + t + shift, token, out: true })),
    { seq: 2, pos: 3, token: 1, out: true },
  ]);
  const ref = createReference(c, wr, { kvCapacity: c.context_length });
  ref.forward(prompt, 0);
  for (let t = 0; t < draft.length; t++) {
    const [single] = runStep(batch, [{ seq: 1, pos: 10 + t, token: draft[t], out: true }]);
    assertClose(verify[t], single, TOL, `verify row ${t} vs a single decode step`);
    assertClose(single, ref.forward([draft[t]], 10 + t), tol, `decode step ${t} vs reference`);
  }
  const ref2 = createReference(c, wr, { kvCapacity: c.context_length });
  assertClose(verify[5], ref2.forward([...other, 1], 0), tol, "the other sequence's row");
}

/**
 * Wraps a {@linkcode BuildBatch} so that every `setSequence` call goes through `edit`
 * first: how the negative controls break a batch (overlapping block tables, a wrong
 * window).
 *
 * @param build The builder to wrap.
 * @param edit Rewrites the arguments of one call.
 * @returns The wrapping builder.
 */
export function editSequences(
  build: BuildBatch,
  edit: (seq: number, blocks: number[], ring: number, window: number) => [number[], number, number],
): BuildBatch {
  return (w, layout) => {
    const batch = build(w, layout);
    const blocksOf: number[][] = [];
    return {
      ...batch,
      setSequence(seq, blocks, ring, window) {
        blocksOf[seq] = [...Array.from(blocks)];
        const [b, r, win] = edit(seq, blocksOf[seq], ring, window);
        batch.setSequence(seq, b, r, win);
      },
      step: (input) => batch.step(input),
    };
  };
}

/**
 * Runs the four server-shaped checks on one config ({@linkcode checkBatchedPrompts},
 * {@linkcode checkPagedWindow}, {@linkcode checkPrefixSharing} over 3 sequences,
 * {@linkcode checkVerifyStep} unshifted), the first failure's message prefixed with `label`.
 *
 * @param label What is checked, e.g. `llama GQA2 Q8_0`.
 * @param c The config.
 * @param build Builds the batch under test.
 * @param options Stored weights and tolerance.
 * @throws {Error} `label: message` of the first check that fails.
 */
export function checkServing(
  label: string,
  c: ModelConfig,
  build: BuildBatch,
  options: BatchCheckOptions = {},
): void {
  try {
    checkBatchedPrompts(c, build, options);
    checkPagedWindow(c, build, options);
    checkPrefixSharing(c, build, 3, options);
    checkVerifyStep(c, build, 0, options);
  } catch (e) {
    throw new Error(`${label}: ${(e as Error).message}`);
  }
}
