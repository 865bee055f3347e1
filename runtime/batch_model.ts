/**
 * A model prepared for serving: a checkpoint's config, tokenizer and EOS ids with a
 * {@linkcode BatchForward} laid out for many sequences (engine v2: `maxSeqs` slots, a pool
 * of KV blocks, steps of up to `maxRows` rows). The server's scheduler drives it. It runs on
 * the engine `loadModel` runs on (runtime/backend.ts): `auto` picks the whole-step WASM
 * backend (weights as stored, `threads` worker threads) when its kernels cover the model,
 * else the generated JS kernels; a GGUF is read straight into the WASM memory
 * (runtime/wasm_load.ts), so a Q8_0 or Q4_K_M file served stays quantised.
 *
 * ```
 * loadBatchModel(path) ─ gguf, auto|wasm → readGgufIntoWasm(planBatch(layout)) → compilePlan
 *                      └ else → loadCheckpoint(stored) → compileBatch(layout)
 *   → warm-up step → BatchModel (close() stops its threads)
 * layout: maxSeqs = parallel, maxRows = batchSize, blockSize,
 *         maxBlocksPerSeq = ceil(ctxSize / blockSize),
 *         numBlocks = kvBlocks | floor(kvMemoryBytes / kvBlockBytes) | parallel · maxBlocksPerSeq,
 *                     plus block 0 (the null block)
 * ```
 *
 * @module
 */
import { compileBatch, type CompiledBatch, compilePlan } from "../codegen/compile.ts";
import { planBatch } from "../codegen/plan.ts";
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import {
  type BatchForward,
  type BatchLayout,
  DEFAULT_BLOCK_SIZE,
  kvBlockBytes,
  type KvCacheType,
} from "../core/forward.ts";
import type { ProgressCallback } from "../core/progress.ts";
import type { Weights } from "../core/weights.ts";
import type { GenerationDefaults } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import type { ByteReader, ModelBytes } from "../core/model_bytes.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { buildOnBackend, fallbackFromWasm } from "./backend.ts";
import { type CheckpointInfo, resolveCacheTypes, resolveThreads } from "./model.ts";
import { dropSpareWorkers, startStepPool } from "./threads.ts";
import { ggufSource, readGgufIntoWasm } from "./wasm_load.ts";

/** The layout of a serving model. Every field is optional. */
export interface BatchModelOptions {
  /**
   * `auto` (default): `wasm` when its kernels cover the model's ops and weight types, else
   * `jit`; `wasm` (the whole step in generated WASM SIMD, weights as stored, threads) or
   * `jit` (generated JS kernels, one thread; stored weights are dequantised to F32 at
   * load). A batched step multiplies the weights by many rows at once; `deno task
   * bench:serve` measures what that buys per backend (README "Serving benchmark").
   */
  backend?: "auto" | "jit" | "wasm";
  /**
   * Threads of the wasm backend, 1..64 (default `navigator.hardwareConcurrency`): rows of
   * every matrix product and heads of attention are split between them. jit runs on one.
   */
  threads?: number;
  /** Sequences running at once (sequence slots). Default 4. */
  parallel?: number;
  /**
   * Tokens one sequence holds at most, prompt and reply (default: `context_length`); picks
   * `longrope`'s factor set (core/rope.ts), as llama.cpp's `n_ctx_per_seq`.
   */
  ctxSize?: number;
  /** Token rows per step: the token budget of a step (default `max(32, parallel)`). */
  batchSize?: number;
  /** Tokens per KV block (a power of two; default 16). */
  blockSize?: number;
  /** KV blocks in the pool besides the null block (default: `parallel` full contexts). */
  kvBlocks?: number;
  /** Size the pool from a memory budget in bytes instead (`kvBlocks` wins when both). */
  kvMemoryBytes?: number;
  /**
   * Element type of the K pool: `f32` (default) or `f16` (half the bytes per block, so a
   * memory budget holds twice the blocks; llama.cpp's default). `f16` needs the wasm backend.
   */
  cacheTypeK?: KvCacheType;
  /** Element type of the V pool: `f32` (default) or `f16` (see `cacheTypeK`). */
  cacheTypeV?: KvCacheType;
  /**
   * wasm: every thread a worker, thread 0 included (default false), so that the batch's
   * `stepAsync` leaves this thread's event loop free while a step runs: a server then
   * reads requests and writes streamed tokens during steps instead of between them
   * (`gollm serve` sets it). `threads` workers compute; this thread only starts steps.
   */
  offload?: boolean;
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
  /** The backend of its kernels (never `auto`: the one auto chose). */
  readonly backend: "jit" | "wasm";
  /** Threads a step runs on (1 on jit). */
  readonly threads: number;
  /** Tokens one sequence holds at most. */
  readonly ctxSize: number;
  /** The batched forward (block 0 of its pool is the null block). */
  readonly batch: BatchForward;
  /**
   * Stops the worker threads (idempotent); the model cannot step afterwards. A dropped
   * model's threads stop when it is garbage-collected; they never keep the process alive.
   */
  close(): void;
  /** Same as {@linkcode BatchModel.close} (`using model = await loadBatchModel(...)`). */
  [Symbol.dispose](): void;
}

const posInt = (name: string, v: number | undefined, min = 1) => {
  if (v !== undefined && (!Number.isInteger(v) || v < min)) {
    throw new GollmError(`${name} must be an integer >= ${min}, got ${v}`);
  }
};

/** What the checkpoint's files add to the options: extra EOS ids, sampling defaults. */
type CheckpointExtras = { extraEosIds?: number[]; generation?: GenerationDefaults };

/** The backend asked for and the thread count, checked. */
function backendOf(
  options: BatchModelOptions,
): { requested: "auto" | "jit" | "wasm"; threads: number } {
  const requested = options.backend ?? "auto";
  if (requested !== "auto" && requested !== "jit" && requested !== "wasm") {
    throw new GollmError(
      `the server runs the auto, wasm or jit backend, got ${JSON.stringify(requested)}`,
    );
  }
  return { requested, threads: resolveThreads(options.threads) };
}

/**
 * The batch layout of the options for a config (see the module doc), checked: every
 * option named when it is out of range.
 */
function serveLayout(
  config: ModelConfig,
  options: BatchModelOptions,
): { ctxSize: number; layout: BatchLayout } {
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
  const types = resolveCacheTypes(options, options.backend ?? "auto");
  const blockBytes = kvBlockBytes(config, blockSize, types);
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
  return {
    ctxSize,
    layout: {
      maxSeqs: parallel,
      maxRows: batchSize,
      blockSize,
      numBlocks: pool + 1,
      maxBlocksPerSeq,
      contextSize: ctxSize, // picks longrope's factor set, as llama.cpp's n_ctx_per_seq
      ...types,
    },
  };
}

/**
 * Builds a serving model from an in-memory checkpoint.
 *
 * @param config The validated config.
 * @param weights Canonical weights, F32 or stored (F16, BF16, ggml blocks: the wasm backend
 *   copies them into its memory as they are; jit dequantises them to F32).
 * @param tokenizer The tokenizer, or null.
 * @param options The layout, backend and threads (see {@linkcode BatchModelOptions}) plus
 *   the checkpoint's extra EOS ids and sampling defaults.
 * @param checkpoint Where the weights came from.
 * @returns The model; `close()` it to stop its threads.
 * @throws {GollmError} for a bad option (named; threads outside 1..64), a context over
 *   `context_length`, a pool that cannot hold one full context, weights whose warm-up
 *   logits are NaN/Inf, or (`wasm`) an op or weight type the WASM kernels do not have.
 * @throws {ResourceError} when the arena is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createBatchModel } from "./batch_model.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * using m = createBatchModel(c, randomWeights(c, 1), null, { parallel: 2, ctxSize: 32, threads: 1 });
 * assert.equal(m.backend, "wasm"); // auto: the WASM kernels run this model
 * assert.equal(m.batch.maxSeqs, 2);
 * assert.equal(m.batch.numBlocks, 2 * 2 + 1); // two contexts of 2 blocks of 16, + null block
 * assert.throws(() => createBatchModel(c, randomWeights(c, 1), null, { ctxSize: 65 }), /ctxSize/);
 * assert.throws(() => createBatchModel(c, randomWeights(c, 1), null, { threads: 0 }), /threads/);
 * ```
 */
export function createBatchModel(
  config: ModelConfig,
  weights: Weights,
  tokenizer: Tokenizer | null,
  options: BatchModelOptions & { extraEosIds?: number[]; generation?: GenerationDefaults } = {},
  checkpoint: CheckpointInfo = { format: "memory", path: "<memory>" },
): BatchModel {
  const { requested, threads } = backendOf(options);
  const { ctxSize, layout } = serveLayout(config, options);
  options.onProgress?.({ stage: "compiling kernels" });
  const { value: batch, backend } = buildOnBackend<CompiledBatch>(requested, weights, {
    wasm: () =>
      compileBatch(config, weights, {
        ...layout,
        backend: "wasm",
        threads,
        startPool: startStepPool,
        offload: options.offload,
      }),
    f32: (_jit, f32) => compileBatch(config, f32, { ...layout, backend: "js" }),
  });
  return batchModelOf(config, batch, backend === "wasm" ? "wasm" : "jit", tokenizer, {
    ...options,
    ctxSize,
  }, checkpoint);
}

/** Warms a compiled batch up (closing it when that fails) and wraps it as a BatchModel. */
function batchModelOf(
  config: ModelConfig,
  batch: CompiledBatch,
  backend: "jit" | "wasm",
  tokenizer: Tokenizer | null,
  options: BatchModelOptions & CheckpointExtras & { ctxSize: number },
  checkpoint: CheckpointInfo,
): BatchModel {
  try {
    if (options.warmup ?? true) warmUp(batch, checkpoint.path);
  } catch (e) {
    batch.close();
    throw e;
  }
  const eosIds = [...new Set([...(tokenizer?.eosIds ?? []), ...(options.extraEosIds ?? [])])];
  const close = () => batch.close();
  return {
    config,
    tokenizer,
    eosIds,
    generation: options.generation ?? {},
    checkpoint,
    backend,
    threads: batch.threads,
    ctxSize: options.ctxSize,
    batch,
    close,
    [Symbol.dispose]: close,
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
 * Loads any supported checkpoint (see formats/load.ts), or a GGUF's bytes (as
 * runtime/model.ts `loadModel`), and prepares it for serving. With `auto` or `wasm`, a GGUF
 * is read straight into the WASM backend's memory (its tensors stay in their stored types:
 * no F32 copy) and other checkpoints keep F16/BF16 as stored; with `auto`, a model the WASM
 * kernels do not cover runs on jit.
 *
 * @param source Model directory or file (a path or a `file:` URL), or a GGUF's bytes
 *   (core/model_bytes.ts `ModelBytes`: bytes, a Blob, a Response, an http(s) URL).
 * @param options The layout, backend and threads, plus a tokenizer file to use instead of
 *   the checkpoint's and a callback with the config as soon as it is read (throw to stop).
 * @returns The serving model; `close()` it to stop its threads.
 * @throws {GollmError} (ConfigError, FormatError) for a missing or malformed checkpoint, or
 *   a bad option (see {@linkcode createBatchModel}).
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts ignore
 * import { loadBatchModel } from "./batch_model.ts";
 * using model = await loadBatchModel("model.q8_0.gguf", { parallel: 8, ctxSize: 256 });
 * console.log(model.backend, model.threads); // "wasm" 2 on a 2-core machine
 * ```
 */
export async function loadBatchModel(
  source: string | ModelBytes,
  options: BatchModelOptions & { tokenizerPath?: string; onConfig?: (c: ModelConfig) => void } = {},
): Promise<BatchModel> {
  const { requested, threads } = backendOf(options);
  // A GGUF goes straight into the WASM memory, from its file or as its bytes arrive.
  const gguf = requested !== "jit" ? await ggufSource(source) : null;
  if (gguf !== null) return await ggufIntoWasm(gguf, requested, threads, options);
  const ckpt = await loadCheckpoint(source, {
    tokenizerPath: options.tokenizerPath,
    onProgress: options.onProgress,
    // The wasm backend reads F16/BF16/ggml blocks as stored: no F32 copy of the model.
    stored: requested !== "jit",
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

/**
 * {@linkcode loadBatchModel} of a GGUF on `auto`/`wasm`: straight into the WASM backend's
 * memory (the file's bytes are the model's weights); with `auto`, a model the WASM kernels
 * do not cover runs on jit.
 */
async function ggufIntoWasm(
  source: string | ByteReader,
  requested: "auto" | "jit" | "wasm",
  threads: number,
  options: BatchModelOptions & { tokenizerPath?: string; onConfig?: (c: ModelConfig) => void },
): Promise<BatchModel> {
  let ctxSize = 0;
  const read = await readGgufIntoWasm(source, {
    plan: (config) => {
      const l = serveLayout(config, options);
      ctxSize = l.ctxSize;
      return planBatch(config, l.layout);
    },
    threads,
    tokenizerPath: options.tokenizerPath,
    onProgress: options.onProgress,
    onConfig: options.onConfig,
    kv: {
      sizes: (p) => `for numBlocks ${p.layout.numBlocks} of blockSize ${p.layout.blockSize}`,
      lower: "lower --kv-blocks (kvBlocks), --parallel or --ctx-size",
    },
  });
  const ck = read.checkpoint;
  const info: CheckpointInfo = { format: ck.format, path: ck.path };
  const extras = { ...options, extraEosIds: ck.extraEosIds, generation: ck.generation };
  options.onProgress?.({ stage: "compiling kernels" });
  let batch: CompiledBatch;
  try {
    batch = compilePlan(ck.config, ck.weights, read.plan, "wasm", {
      threads,
      startPool: startStepPool,
      offload: options.offload,
      memory: read.memory,
    });
  } catch (e) {
    dropSpareWorkers();
    fallbackFromWasm(requested, e); // auto, and the WASM kernels do not cover the model
    return createBatchModel(ck.config, ck.weights, ck.tokenizer, {
      ...extras,
      backend: "jit",
    }, info);
  }
  return batchModelOf(ck.config, batch, "wasm", ck.tokenizer, { ...extras, ctxSize }, info);
}
