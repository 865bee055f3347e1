/**
 * The forward-pass interface shared by the reference implementation
 * (`runtime/reference.ts`) and the JIT (`codegen/compile.ts`).
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/**
 * Element type of the KV cache (llama.cpp's `--cache-type-k` / `--cache-type-v`, vLLM's
 * `kv_cache_dtype`): `f32`, or `f16` (IEEE half, rounded to nearest even when a row is stored
 * and widened exactly when attention reads it): half the memory and half the bytes attention
 * reads, at a rounding of K and V to 11 significant bits (llama.cpp's default).
 */
export type KvCacheType = "f32" | "f16";

/** The KV cache types there are ({@linkcode KvCacheType}). */
export const KV_CACHE_TYPES: readonly KvCacheType[] = ["f32", "f16"];

/**
 * Bytes of one KV cache element.
 *
 * @param type The cache type (default `f32`).
 * @returns 4 for `f32`, 2 for `f16`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvTypeBytes } from "./forward.ts";
 * assert.equal(kvTypeBytes("f16"), 2);
 * assert.equal(kvTypeBytes(), 4);
 * ```
 */
export function kvTypeBytes(type: KvCacheType = "f32"): number {
  return type === "f16" ? 2 : 4;
}

/** The KV cache types of a layout or of options, each absent (`f32`) or given. */
export interface KvCacheTypes {
  /** Element type of the K cache (absent: `f32`). */
  cacheTypeK?: KvCacheType;
  /** Element type of the V cache (absent: `f32`). */
  cacheTypeV?: KvCacheType;
}

/**
 * Checks `cacheTypeK` / `cacheTypeV` of options or a layout: each absent or a
 * {@linkcode KvCacheType}. The one check of the values (resolveBatchLayout; runtime/model.ts
 * adds the backend's).
 *
 * @param o The options.
 * @returns The types given (absent ones left out).
 * @throws {RangeError} naming the field: `cacheTypeV must be one of f32, f16, got "q8_0"`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvCacheTypes } from "./forward.ts";
 * assert.deepEqual(kvCacheTypes({ cacheTypeK: "f16" }), { cacheTypeK: "f16" });
 * assert.throws(() => kvCacheTypes({ cacheTypeV: "q8" }), /cacheTypeV must be one of f32, f16/);
 * ```
 */
export function kvCacheTypes(o: { cacheTypeK?: unknown; cacheTypeV?: unknown }): KvCacheTypes {
  const out: KvCacheTypes = {};
  for (const k of ["cacheTypeK", "cacheTypeV"] as const) {
    const t = o[k];
    if (t === undefined) continue;
    if (!KV_CACHE_TYPES.includes(t as KvCacheType)) {
      throw new RangeError(
        `${k} must be one of ${KV_CACHE_TYPES.join(", ")}, got ${JSON.stringify(t)}`,
      );
    }
    out[k] = t as KvCacheType;
  }
  return out;
}

/** Options when building a forward pass. */
export interface ForwardOptions extends KvCacheTypes {
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
 * Resolves and checks the KV capacity option (docs/DESIGN.md "A step, the arena and the KV cache").
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

// ---------------------------------------------------------------------------------------
// Batched steps over many sequences with a paged KV cache: the engine v2 contract of
// docs/DESIGN.md "A step, the arena and the KV cache" (vLLM PagedAttention, Kwon et al. 2023).

/** Tokens per KV block by default (vLLM's default block size). */
export const DEFAULT_BLOCK_SIZE = 16;

/** Token rows per step by default: the prefill chunk T. */
export const DEFAULT_MAX_ROWS = 32;

/**
 * The sizes that fix a batched forward's arena and kernels. Every one is a literal in the
 * generated code.
 */
export interface BatchLayout extends KvCacheTypes {
  /** T: token rows per step at most (the prefill chunk; the rows = T graph). */
  maxRows: number;
  /** Sequence slots: rows of the block table. */
  maxSeqs: number;
  /** Tokens per KV block (a power of two). */
  blockSize: number;
  /** Blocks in each layer's K and V pool: `numBlocks · blockSize` rows of `kv_dim` elements. */
  numBlocks: number;
  /** Columns of the block table: blocks one sequence can own. */
  maxBlocksPerSeq: number;
  /**
   * Tokens one sequence holds (llama.cpp `n_ctx_per_seq`: the single sequence's KV capacity,
   * the server's `--ctx-size`): chooses longrope's factor set (core/rope.ts
   * `longropeFactors`). Default `maxBlocksPerSeq · blockSize`.
   */
  contextSize?: number;
}

/**
 * What the caller writes for one step: `n` token rows, each with its token, absolute
 * position and sequence slot, and the rows whose logits are wanted. Rows of one sequence
 * are consecutive positions in increasing order (a prefill chunk, one decode token, or the
 * k + 1 rows of a speculative verify).
 */
export interface StepInput {
  /** `(n)` token ids, each in `[0, vocab_size)`. */
  tokens: ArrayLike<number>;
  /** `(n)` absolute position of each row. */
  positions: ArrayLike<number>;
  /** `(n)` sequence slot of each row, in `[0, maxSeqs)`, set by `setSequence`. */
  seqs: ArrayLike<number>;
  /** `(nOut)` rows (indices into the n rows) whose logits are wanted, in output order. */
  outRows: ArrayLike<number>;
}

/**
 * A forward pass over batched steps: rows from many sequences at different positions, one
 * paged KV cache. Layer l keeps a K and a V pool of `numBlocks · blockSize` rows; position
 * u of sequence s lives at ring slot `u mod ring[s]`, physical row
 * `table[s][slot / blockSize] · blockSize + slot mod blockSize`. The row at position p
 * attends to positions `max(0, p - W + 1) .. p` with `W = min(window[s], layer window)`.
 *
 * The caller owns the block tables (which blocks a sequence has, prefix sharing): a block
 * is only written by the rows whose positions map to it, so blocks of a shared prefix that
 * no sequence writes again need no copy.
 */
export interface BatchForward {
  /** The config it was built for. */
  readonly config: ModelConfig;
  /** T: token rows per step at most. */
  readonly maxRows: number;
  /** Sequence slots. */
  readonly maxSeqs: number;
  /** Tokens per KV block. */
  readonly blockSize: number;
  /** Blocks per layer pool (block b is block b in every layer). */
  readonly numBlocks: number;
  /** Blocks one sequence can own (columns of the block table). */
  readonly maxBlocksPerSeq: number;
  /** Bytes of one block over all layers, K and V: {@linkcode kvBlockBytes}. */
  readonly blockBytes: number;
  /**
   * Points sequence slot `seq` at its blocks, its ring length and its sliding window.
   *
   * @param seq Sequence slot in `[0, maxSeqs)`.
   * @param blocks Block ids in `[0, numBlocks)`, ring slot order (at most `maxBlocksPerSeq`).
   * @param ringTokens Ring length in tokens: a positive multiple of `blockSize`, at most
   *   `blocks.length · blockSize`. A server sequence uses `maxBlocksPerSeq · blockSize`
   *   (slot = position); a sliding window needs `window + maxRows` rounded up to a block.
   * @param window The sequence's own sliding window in tokens (`context_length`: none).
   * @throws {RangeError} naming the argument, expected vs actual.
   */
  setSequence(seq: number, blocks: ArrayLike<number>, ringTokens: number, window: number): void;
  /**
   * Runs one step.
   *
   * @param input The rows (see {@linkcode StepInput}); checked by {@linkcode checkStepInput}.
   * @returns `(nOut, vocab_size)` logits of the out rows, a view into the arena valid until
   *   the next step (copy to keep).
   * @throws {RangeError} for a bad row (token, position, sequence, ring too short), naming
   *   the field and row.
   */
  step(input: StepInput): Float32Array;
  /**
   * {@linkcode BatchForward.step} on worker threads while the caller's event loop goes on
   * (a server's HTTP reads and writes); present on the wasm backend built with `offload`
   * (runtime/batch_model.ts `BatchModelOptions.offload`). One step at a time: neither
   * `step` nor `setSequence` may be called until it resolves.
   *
   * @param input The rows, as for `step`.
   * @returns Resolves with the `(nOut, vocab_size)` logits of the out rows, a view into
   *   the arena valid until the next step.
   * @throws {RangeError} (rejects) for a bad row, as `step`; `ThreadError` (runtime/threads.ts) when a
   *   thread fails.
   */
  stepAsync?(input: StepInput): Promise<Float32Array>;
}

/**
 * Bytes one KV block takes over all layers: `n_layers · blockSize · kv_dim · (bytes of a K
 * element + bytes of a V element)` (`2 · … · 4` for the f32 cache). A server sizes
 * `numBlocks` from a memory budget with it.
 *
 * @param config The model config.
 * @param blockSize Tokens per block.
 * @param types The cache types (absent: `f32`).
 * @returns Bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * import { kvBlockBytes } from "./forward.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * assert.equal(kvBlockBytes(c, 16), 2 * 12 * 16 * 256 * 4); // 393,216 bytes per 16 tokens
 * assert.equal(kvBlockBytes(c, 16, { cacheTypeK: "f16", cacheTypeV: "f16" }), 196_608);
 * ```
 */
export function kvBlockBytes(
  config: ModelConfig,
  blockSize: number,
  types: KvCacheTypes = {},
): number {
  const perElement = kvTypeBytes(types.cacheTypeK) + kvTypeBytes(types.cacheTypeV);
  return config.n_layers * blockSize * config.n_kv_heads * config.head_dim * perElement;
}

/** The scratch map of a one-row step (reused: a decode step allocates nothing). */
const ONE_ROW = new Map<number, number>();

const isPowerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;

/**
 * Fills in and checks a batch layout: `maxRows` default 32, `maxSeqs` default 1,
 * `blockSize` default 16; `numBlocks` is required, `maxBlocksPerSeq` defaults to it.
 *
 * @param layout The sizes given.
 * @returns The complete layout.
 * @throws {RangeError} naming the field that is not a positive integer (`blockSize`: a
 *   power of two up to 1024), or a missing `numBlocks`, or a `cacheTypeK`/`cacheTypeV` that is
 *   not a {@linkcode KvCacheType}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveBatchLayout } from "./forward.ts";
 * const l = resolveBatchLayout({ numBlocks: 64, maxSeqs: 8 });
 * assert.deepEqual(l, { maxRows: 32, maxSeqs: 8, blockSize: 16, numBlocks: 64, maxBlocksPerSeq: 64 });
 * assert.throws(() => resolveBatchLayout({ numBlocks: 8, blockSize: 12 }), /blockSize must be a power of two/);
 * ```
 */
export function resolveBatchLayout(
  layout: Partial<BatchLayout> & { numBlocks: number },
): BatchLayout {
  const l: BatchLayout = {
    maxRows: layout.maxRows ?? DEFAULT_MAX_ROWS,
    maxSeqs: layout.maxSeqs ?? 1,
    blockSize: layout.blockSize ?? DEFAULT_BLOCK_SIZE,
    numBlocks: layout.numBlocks,
    maxBlocksPerSeq: layout.maxBlocksPerSeq ?? layout.numBlocks,
  };
  for (const k of Object.keys(l) as (keyof BatchLayout)[]) {
    if (!Number.isInteger(l[k]) || (l[k] as number) <= 0) {
      throw new RangeError(`${k} must be a positive integer, got ${l[k]}`);
    }
  }
  if (layout.contextSize !== undefined) {
    if (!Number.isInteger(layout.contextSize) || layout.contextSize <= 0) {
      throw new RangeError(`contextSize must be a positive integer, got ${layout.contextSize}`);
    }
    l.contextSize = layout.contextSize;
  }
  Object.assign(l, kvCacheTypes(layout));
  if (!isPowerOfTwo(l.blockSize) || l.blockSize > 1024) {
    throw new RangeError(`blockSize must be a power of two up to 1024, got ${l.blockSize}`);
  }
  return l;
}

/**
 * Checks the arguments of {@linkcode BatchForward.setSequence} against a layout.
 *
 * @param layout The batch layout.
 * @param seq Sequence slot.
 * @param blocks Block ids.
 * @param ringTokens Ring length in tokens.
 * @param window Sliding window in tokens.
 * @throws {RangeError} naming the argument, expected vs actual.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkSequence, resolveBatchLayout } from "./forward.ts";
 * const l = resolveBatchLayout({ numBlocks: 8, maxSeqs: 2, blockSize: 4 });
 * checkSequence(l, 1, [7, 0, 3], 12, 100); // ok
 * assert.throws(() => checkSequence(l, 0, [8], 4, 10), /blocks\[0\] = 8 is outside \[0, 8\)/);
 * assert.throws(() => checkSequence(l, 0, [1, 2], 6, 10), /multiple of blockSize 4/);
 * ```
 */
export function checkSequence(
  layout: BatchLayout,
  seq: number,
  blocks: ArrayLike<number>,
  ringTokens: number,
  window: number,
): void {
  const { maxSeqs, numBlocks, blockSize, maxBlocksPerSeq } = layout;
  const where = `setSequence(${seq})`;
  if (!Number.isInteger(seq) || seq < 0 || seq >= maxSeqs) {
    throw new RangeError(`setSequence: seq ${seq} is outside [0, ${maxSeqs}) (maxSeqs)`);
  }
  if (blocks.length > maxBlocksPerSeq) {
    throw new RangeError(
      `${where}: ${blocks.length} blocks, more than maxBlocksPerSeq ${maxBlocksPerSeq}`,
    );
  }
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i];
    if (!Number.isInteger(b) || b < 0 || b >= numBlocks) {
      throw new RangeError(`${where}: blocks[${i}] = ${b} is outside [0, ${numBlocks})`);
    }
  }
  if (
    !Number.isInteger(ringTokens) || ringTokens <= 0 || ringTokens % blockSize !== 0 ||
    ringTokens > blocks.length * blockSize
  ) {
    throw new RangeError(
      `${where}: ringTokens must be a positive multiple of blockSize ${blockSize} up to ` +
        `${blocks.length} blocks × ${blockSize} = ${blocks.length * blockSize}, got ${ringTokens}`,
    );
  }
  if (!Number.isInteger(window) || window <= 0) {
    throw new RangeError(`${where}: window must be a positive integer, got ${window}`);
  }
}

/**
 * Checks one step's rows (see {@linkcode StepInput}) against a layout and the sequences'
 * rings and windows: `1 <= n <= maxRows` rows, equal lengths, token ids in the vocabulary,
 * positions non-negative integers (gpt2: below `context_length`), sequences set, rows of
 * one sequence consecutive positions in increasing order, out rows in `[0, n)`, and no
 * row reading a ring slot that a later row of the same step overwrites
 * (`max(0, p - window + 1) > last - ring`, with `last` the sequence's last position in
 * the step).
 *
 * @param config The model config.
 * @param layout The batch layout.
 * @param input The step.
 * @param ring `(maxSeqs)` ring length in tokens of each sequence (0: not set).
 * @param window `(maxSeqs)` sliding window of each sequence.
 * @throws {RangeError} naming the field and row, expected vs actual.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * import { checkStepInput, resolveBatchLayout } from "./forward.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const l = resolveBatchLayout({ numBlocks: 8, maxSeqs: 2, blockSize: 4, maxRows: 4 });
 * const ring = [16, 0], window = [64, 0];
 * const step = { tokens: [1, 2], positions: [5, 6], seqs: [0, 0], outRows: [1] };
 * checkStepInput(c, l, step, ring, window); // ok
 * assert.throws(
 *   () => checkStepInput(c, l, { ...step, seqs: [0, 1] }, ring, window),
 *   /seqs\[1\] = 1 is not set/,
 * );
 * assert.throws(
 *   () => checkStepInput(c, l, { ...step, positions: [5, 7] }, ring, window),
 *   /positions\[1\] = 7 of sequence 0 does not follow position 5/,
 * );
 * ```
 */
export function checkStepInput(
  config: ModelConfig,
  layout: BatchLayout,
  input: StepInput,
  ring: ArrayLike<number>,
  window: ArrayLike<number>,
): void {
  const { tokens, positions, seqs, outRows } = input;
  const n = tokens.length;
  if (n < 1 || n > layout.maxRows) {
    throw new RangeError(`step: ${n} rows, expected 1 to maxRows ${layout.maxRows}`);
  }
  if (positions.length !== n || seqs.length !== n) {
    throw new RangeError(
      `step: tokens, positions and seqs must have one entry per row, got ` +
        `${n}, ${positions.length}, ${seqs.length}`,
    );
  }
  if (outRows.length > n) {
    throw new RangeError(`step: ${outRows.length} outRows for ${n} rows`);
  }
  // sequence -> its last position so far (none needed for the one row of a decode step)
  const last = n === 1 ? ONE_ROW : new Map<number, number>();
  last.clear();
  for (let t = 0; t < n; t++) {
    const id = tokens[t], p = positions[t], s = seqs[t];
    if (!Number.isInteger(id) || id < 0 || id >= config.vocab_size) {
      throw new RangeError(
        `step: tokens[${t}] = ${id} is outside the vocabulary [0, ${config.vocab_size})`,
      );
    }
    if (!Number.isInteger(p) || p < 0) {
      throw new RangeError(`step: positions[${t}] = ${p} is not a non-negative integer`);
    }
    if (config.arch === "gpt2" && p >= config.context_length) {
      throw new RangeError(
        `step: positions[${t}] = ${p} is past context_length ${config.context_length} ` +
          `(gpt2 has learned position embeddings for positions 0..${config.context_length - 1})`,
      );
    }
    if (!Number.isInteger(s) || s < 0 || s >= layout.maxSeqs || !(ring[s] > 0)) {
      throw new RangeError(
        `step: seqs[${t}] = ${s} is not set (setSequence) in [0, ${layout.maxSeqs})`,
      );
    }
    const prev = last.get(s);
    if (prev !== undefined && p !== prev + 1) {
      throw new RangeError(
        `step: positions[${t}] = ${p} of sequence ${s} does not follow position ${prev} ` +
          `(rows of one sequence are consecutive positions)`,
      );
    }
    last.set(s, p);
  }
  for (let t = 0; t < n; t++) {
    const p = positions[t], s = seqs[t];
    const oldest = Math.max(0, p - window[s] + 1);
    if (oldest <= last.get(s)! - ring[s]) {
      throw new RangeError(
        `step: row ${t} (sequence ${s}, position ${p}) reads positions from ${oldest}, but ` +
          `position ${last.get(s)} of the same step overwrites ring slot ` +
          `${oldest % ring[s]} of its ${ring[s]}-token ring; give the sequence ` +
          `window + maxRows tokens of ring or a smaller window`,
      );
    }
  }
  for (let i = 0; i < outRows.length; i++) {
    const r = outRows[i];
    if (!Number.isInteger(r) || r < 0 || r >= n) {
      throw new RangeError(`step: outRows[${i}] = ${r} is outside the rows [0, ${n})`);
    }
  }
}
