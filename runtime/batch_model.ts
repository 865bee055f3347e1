/**
 * A model prepared for serving: a checkpoint's config, tokenizer and EOS ids with a
 * {@linkcode BatchForward} laid out for many sequences (engine v2: `maxSeqs` slots, a pool
 * of KV blocks, steps of up to `maxRows` rows). The server's scheduler drives it.
 *
 * ```
 * loadBatchModel(path) -> loadCheckpoint -> compileBatch(layout) -> warm-up step -> BatchModel
 * layout: maxSeqs = parallel, maxRows = batchSize, blockSize,
 *         maxBlocksPerSeq = ceil(ctxSize / blockSize),
 *         numBlocks = kvBlocks | floor(kvMemoryBytes / kvBlockBytes) | parallel · maxBlocksPerSeq,
 *                     plus block 0 (the null block)
 * ```
 *
 * @module
 */
import { compileBatch } from "../codegen/compile.ts";
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import { type BatchForward, DEFAULT_BLOCK_SIZE, kvBlockBytes } from "../core/forward.ts";
import type { ProgressCallback } from "../core/progress.ts";
import type { Weights } from "../core/weights.ts";
import type { GenerationDefaults } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { CheckpointInfo } from "./model.ts";

/** The layout of a serving model. Every field is optional. */
export interface BatchModelOptions {
  /**
   * `wasm` (default: the matrix products in WASM SIMD) or `jit` (generated JS). A batched
   * step multiplies the weights by many rows at once; measured on g110M at 16 rows per step,
   * the WASM kernels run 6.4x the tokens per second of one row, the JS ones 1.25x
   * (bench/serve.ts), so serving defaults to wasm.
   */
  backend?: "jit" | "wasm";
  /** Sequences running at once (sequence slots). Default 4. */
  parallel?: number;
  /** Tokens one sequence holds at most, prompt and reply (default: `context_length`). */
  ctxSize?: number;
  /** Token rows per step: the token budget of a step (default `max(32, parallel)`). */
  batchSize?: number;
  /** Tokens per KV block (a power of two; default 16). */
  blockSize?: number;
  /** KV blocks in the pool besides the null block (default: `parallel` full contexts). */
  kvBlocks?: number;
  /** Size the pool from a memory budget in bytes instead (`kvBlocks` wins when both). */
  kvMemoryBytes?: number;
  /** Run one warm-up step at load (default true): compiles the kernels, finds NaN weights. */
  warmup?: boolean;
  /** Called at the start of long stages. */
  onProgress?: ProgressCallback;
}

/** A model ready to serve. */
export interface BatchModel {
  /** The validated config. */
  readonly config: ModelConfig;
  /** The tokenizer, or null (token ids only). */
  readonly tokenizer: Tokenizer | null;
  /** Ids that end a sequence (tokenizer EOS ids plus the checkpoint's extra ones). */
  readonly eosIds: readonly number[];
  /** Sampling defaults from the model's files. */
  readonly generation: GenerationDefaults;
  /** Where it came from. */
  readonly checkpoint: CheckpointInfo;
  /** The backend of its kernels. */
  readonly backend: "jit" | "wasm";
  /** Tokens one sequence holds at most. */
  readonly ctxSize: number;
  /** The batched forward (block 0 of its pool is the null block). */
  readonly batch: BatchForward;
}

const posInt = (name: string, v: number | undefined, min = 1) => {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) {
    throw new GollmError(`${name} must be an integer >= ${min}, got ${v}`);
  }
};

/**
 * Builds a serving model from an in-memory checkpoint.
 *
 * @param config The validated config.
 * @param weights Canonical weights.
 * @param tokenizer The tokenizer, or null.
 * @param options The layout (see {@linkcode BatchModelOptions}) plus the checkpoint's extra
 *   EOS ids and sampling defaults.
 * @param checkpoint Where the weights came from.
 * @returns The model.
 * @throws {GollmError} for a bad option (named), a context over `context_length`, a pool
 *   that cannot hold one full context, or weights whose warm-up logits are NaN/Inf.
 * @throws {ResourceError} when the arena is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createBatchModel } from "./batch_model.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const m = createBatchModel(c, randomWeights(c, 1), null, { parallel: 2, ctxSize: 32 });
 * assert.equal(m.batch.maxSeqs, 2);
 * assert.equal(m.batch.numBlocks, 2 * 2 + 1); // two contexts of 2 blocks of 16, + null block
 * assert.throws(() => createBatchModel(c, randomWeights(c, 1), null, { ctxSize: 65 }), /ctxSize/);
 * ```
 */
export function createBatchModel(
  config: ModelConfig,
  weights: Weights,
  tokenizer: Tokenizer | null,
  options: BatchModelOptions & { extraEosIds?: number[]; generation?: GenerationDefaults } = {},
  checkpoint: CheckpointInfo = { format: "memory", path: "<memory>" },
): BatchModel {
  const backend = options.backend ?? "wasm";
  if (backend !== "jit" && backend !== "wasm") {
    throw new GollmError(`the server runs the jit or wasm backend, got ${JSON.stringify(backend)}`);
  }
  const parallel = options.parallel ?? 4;
  const ctxSize = options.ctxSize ?? config.context_length;
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  posInt("parallel", parallel);
  posInt("ctxSize", ctxSize, 2);
  posInt("batchSize", options.batchSize);
  posInt("kvBlocks", options.kvBlocks);
  posInt("kvMemoryBytes", options.kvMemoryBytes);
  const batchSize = options.batchSize ?? Math.max(32, parallel);
  if (batchSize < parallel) {
    throw new GollmError(
      `batchSize ${batchSize} is below parallel ${parallel}: a step needs a row for every ` +
        `running sequence's next token`,
    );
  }
  if (ctxSize > config.context_length) {
    throw new GollmError(
      `ctxSize ${ctxSize} exceeds the model's context length ${config.context_length}`,
    );
  }
  const maxBlocksPerSeq = Math.ceil(ctxSize / blockSize);
  const blockBytes = kvBlockBytes(config, blockSize);
  const pool = options.kvBlocks ??
    (options.kvMemoryBytes !== undefined
      ? Math.floor(options.kvMemoryBytes / blockBytes)
      : parallel * maxBlocksPerSeq);
  if (pool < maxBlocksPerSeq) {
    throw new GollmError(
      `a KV pool of ${pool} blocks (${pool * blockBytes} bytes) cannot hold one sequence of ` +
        `${ctxSize} tokens: it needs ${maxBlocksPerSeq} blocks of ${blockSize} tokens ` +
        `(${blockBytes} bytes each); raise kvBlocks / the KV memory or lower ctxSize`,
    );
  }
  options.onProgress?.({ stage: "compiling kernels" });
  const batch = compileBatch(config, weights, {
    backend: backend === "wasm" ? "wasm" : "js",
    maxSeqs: parallel,
    maxRows: batchSize,
    blockSize,
    numBlocks: pool + 1,
    maxBlocksPerSeq,
  });
  if (options.warmup ?? true) warmUp(batch, checkpoint.path);
  const eosIds = [...new Set([...(tokenizer?.eosIds ?? []), ...(options.extraEosIds ?? [])])];
  return {
    config,
    tokenizer,
    eosIds,
    generation: options.generation ?? {},
    checkpoint,
    backend,
    ctxSize,
    batch,
  };
}

/**
 * One prefill step of up to 16 rows and one decode step on sequence slot 0 (blocks from 1,
 * overwritten later), as llama.cpp warms up: V8 compiles both graphs' kernels before the
 * first request, and NaN/Inf weights are reported at load.
 */
function warmUp(batch: BatchForward, path: string): void {
  const bs = batch.blockSize;
  const n = Math.min(16, batch.maxRows, batch.maxBlocksPerSeq * bs - 1);
  const blocks = Array.from({ length: batch.maxBlocksPerSeq }, (_, i) => 1 + i);
  batch.setSequence(0, blocks, batch.maxBlocksPerSeq * bs, batch.config.context_length);
  const rows = (k: number, from: number) => ({
    tokens: new Array(k).fill(0),
    positions: Array.from({ length: k }, (_, t) => from + t),
    seqs: new Array(k).fill(0),
    outRows: [k - 1],
  });
  if (n > 1) batch.step(rows(n, 0));
  const logits = batch.step(rows(1, n > 1 ? n : 0)); // (1, vocab_size)
  let bad = 0;
  for (let i = 0; i < logits.length; i++) if (!Number.isFinite(logits[i])) bad++;
  if (bad > 0) {
    throw new GollmError(
      `${path}: ${bad} of ${logits.length} logits of the warm-up step are NaN or infinite; ` +
        `the model's weights hold NaN or Inf values`,
    );
  }
}

/**
 * Loads any supported checkpoint (see formats/load.ts) and prepares it for serving.
 *
 * @param path Model directory or file.
 * @param options The layout, plus a tokenizer file to use instead of the checkpoint's.
 * @returns The serving model.
 * @throws {GollmError} (ConfigError, FormatError) for a missing or malformed checkpoint, or
 *   a bad option (see {@linkcode createBatchModel}).
 *
 * @example
 * ```ts ignore
 * import { loadBatchModel } from "./batch_model.ts";
 * const model = await loadBatchModel("models/default", { parallel: 8, ctxSize: 256 });
 * ```
 */
export async function loadBatchModel(
  path: string,
  options: BatchModelOptions & { tokenizerPath?: string; onConfig?: (c: ModelConfig) => void } = {},
): Promise<BatchModel> {
  const ckpt = await loadCheckpoint(path, {
    tokenizerPath: options.tokenizerPath,
    onProgress: options.onProgress,
  });
  options.onConfig?.(ckpt.config);
  return createBatchModel(
    ckpt.config,
    ckpt.weights,
    ckpt.tokenizer,
    { ...options, extraEosIds: ckpt.extraEosIds, generation: ckpt.generation },
    { format: ckpt.format, path: ckpt.path },
  );
}
