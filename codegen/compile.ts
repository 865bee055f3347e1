/**
 * The compile step: plans the arena, emits the kernels module for the config, evaluates
 * that same source with `new Function` and wraps it as a {@linkcode BatchForward}
 * (`compileBatch`: many sequences, a paged KV cache) or, through the single-sequence
 * adapter (core/single_sequence.ts), as a {@linkcode ForwardPass} (`compileModel`).
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type {
  BatchForward,
  BatchLayout,
  ForwardOptions,
  ForwardPass,
  StepInput,
} from "../core/forward.ts";
import { ResourceError } from "../core/errors.ts";
import { checkSequence, checkStepInput, resolveBatchLayout } from "../core/forward.ts";
import { singleSequence } from "../core/single_sequence.ts";
import { checkWeights, requireF32, type Weights } from "../core/weights.ts";
import { instantiateWasm, type StartPool } from "./compile_wasm.ts";
import { emitKernelsForPlan } from "./emit_js.ts";
import type { WasmKernels } from "./emit_wasm.ts";
import { type Plan, planArena, planBatch } from "./plan.ts";
import { stepIo } from "./step_io.ts";

/** What a compiled forward carries besides its interface: its source, plan and memory. */
export interface CompiledParts {
  /**
   * The TypeScript kernels module that was evaluated (what `gollm kernels` writes), or with
   * `backend: "wasm"` the WAT-like listing of the module (`gollm kernels --wasm`).
   */
  readonly source: string;
  /** The arena plan (offsets of every buffer, KV and activation bytes). */
  readonly plan: Plan;
  /**
   * The arena: step rows, block tables, K/V pools, activations, RoPE table and logits (and,
   * wasm, the weights).
   */
  readonly memory: WebAssembly.Memory;
  /** With `backend: "wasm"`: the module's bytes, memory layout and WAT-like listing. */
  readonly wasm?: WasmKernels;
  /** Threads a step runs on (1 for js). */
  readonly threads: number;
  /** Stops the worker threads (wasm with threads; idempotent; a no-op otherwise). */
  close(): void;
}

/** A single-sequence forward pass running generated kernels (see {@linkcode compileModel}). */
export interface CompiledModel extends ForwardPass, CompiledParts {
  /** The batched forward underneath (one sequence slot, a ring of `window + T` tokens). */
  readonly batch: BatchForward;
}

/** A batched forward running generated kernels (see {@linkcode compileBatch}). */
export interface CompiledBatch extends BatchForward, CompiledParts {}

/**
 * Options of {@linkcode compileModel}: the forward options plus the backend of the matrix
 * products.
 */
export interface CompileOptions extends ForwardOptions, ThreadOptions {
  /**
   * `js` (default): everything in generated JS (F32 weights). `wasm`: the whole step runs
   * in one generated WASM SIMD module (codegen/emit_wasm.ts) on a shared memory holding
   * the arena and the weights in their stored types (codegen/compile_wasm.ts).
   */
  backend?: "js" | "wasm";
}

/** The threads of the wasm backend. */
export interface ThreadOptions {
  /** Threads (wasm; default 1; more need `startPool`). */
  threads?: number;
  /** Starts the worker threads (runtime/threads.ts; required for threads > 1). */
  startPool?: StartPool;
  /** Thread 0 in a worker too, for `stepAsync` (codegen/compile_wasm.ts; needs `startPool`). */
  offload?: boolean;
  /** A memory the loader read the weights into (codegen/compile_wasm.ts). */
  memory?: { memory: WebAssembly.Memory; end: number };
  /** Bytes one wasm memory holds (default 4 GiB; tests lower it to use further memories). */
  memoryLimit?: number;
}

/**
 * Options of {@linkcode compileBatch}: the batch layout (`numBlocks` required; `maxRows`
 * default 32, `maxSeqs` default 1, `blockSize` default 16, `maxBlocksPerSeq` default
 * `numBlocks`) and the backend.
 */
export interface BatchCompileOptions extends Partial<BatchLayout>, ThreadOptions {
  /** Blocks in each layer's K and V pool (size it with `kvBlockBytes`). */
  numBlocks: number;
  /** `js` (default) or `wasm` (the whole step in WASM SIMD), as in {@linkcode CompileOptions}. */
  backend?: "js" | "wasm";
}

/** What the evaluated module hands back. */
interface Kernels {
  init(): void;
  step(): void;
}

const PARAM_TYPES =
  /(\w+): (?:Float32Array|number|boolean|ArrayLike<number>|WebAssembly\.Memory|Record<string, Float32Array>|Record<string, Function>)/g;

/**
 * Turns the emitted TypeScript into plain JS for `new Function`: drops `export` and the
 * parameter type annotations of function headers (one line or wrapped) (the only TypeScript syntax the emitter
 * writes).
 *
 * @param source The emitted module (from `emitKernels`).
 * @returns JavaScript statements (no imports or exports).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stripTypes } from "./compile.ts";
 * const js = stripTypes("export function f(a: number, w: Float32Array) {}");
 * assert.equal(js, "function f(a, w) {}");
 * ```
 */
export function stripTypes(source: string): string {
  return source
    .replace(/^export /gm, "")
    .replace(
      /(function \w+\()([^)]*)\)/g,
      (_, head, params) => head + params.replace(PARAM_TYPES, "$1") + ")",
    );
}

/** Bytes a 32-bit WebAssembly memory holds at most: 65536 pages of 64 KiB (4 GiB). */
export const MAX_MEMORY_BYTES = 65536 * 65536;

/**
 * What the memory of a plan holds, for an error message: the KV cache and the activations
 * with the options that size them, and the weights when they are in it.
 */
function describeMemory(plan: Plan, batch: boolean): string {
  const L = plan.layout;
  return `KV cache ${plan.kvBytes} bytes and activations ${plan.activationBytes} bytes for ` +
    (batch
      ? `numBlocks ${L.numBlocks} of blockSize ${L.blockSize}, maxRows ${L.maxRows}`
      : `kvCapacity ${plan.kvCapacity}, prefillChunk ${plan.prefillChunk}`) +
    (plan.weightsBytes > 0 ? `; weights ${plan.weightsBytes} bytes` : "");
}

/**
 * Allocates the plan's memory (arena, and for wasm the weights after it).
 *
 * @throws {ResourceError} when it is over {@linkcode MAX_MEMORY_BYTES} or the allocation
 *   fails, naming the bytes, the limit and the options that lower it.
 */
function allocateMemory(plan: Plan, wasm: boolean, batch: boolean): WebAssembly.Memory {
  const bytes = plan.memoryBytes;
  const lower =
    (batch
      ? "lower numBlocks or maxRows"
      : "lower --kv-capacity (kvCapacity) or --prefill-chunk (prefillChunk)") +
    (wasm ? ", or use --backend jit (the wasm backend keeps the weights in this memory too)" : "");
  if (bytes > MAX_MEMORY_BYTES) {
    throw new ResourceError(
      `the arena needs ${bytes} bytes (${describeMemory(plan, batch)}), over the 4 GiB ` +
        `(${MAX_MEMORY_BYTES}-byte) limit of a WebAssembly memory; ${lower}`,
      bytes,
      MAX_MEMORY_BYTES,
    );
  }
  const pages = Math.ceil(bytes / 65536);
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages });
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new ResourceError(
      `could not allocate the arena of ${bytes} bytes (${describeMemory(plan, batch)}): ` +
        `${e.message}; ${lower}`,
      bytes,
    );
  }
}

/**
 * Plans nothing: evaluates the kernels of `plan` on a new memory (weights in place for js,
 * copied into the memory for wasm) and wraps them as a {@linkcode CompiledBatch}.
 */
function instantiate(
  config: ModelConfig,
  weights: Weights,
  plan: Plan,
  useWasm: boolean,
  batch: boolean,
  threads: ThreadOptions = {},
): CompiledBatch {
  if (useWasm) {
    const b = instantiateWasm(config, weights, plan, threads);
    return {
      ...b,
      setSequence: b.setSequence,
      step: b.step,
      close: b.close,
      get source() {
        return b.module.listing;
      },
      wasm: b.module,
    };
  }
  const f32 = requireF32(weights, "the js backend");
  const source = emitKernelsForPlan(plan);
  const memory = allocateMemory(plan, false, batch);
  // The kernels' weights by canonical name: the caller's arrays, used in place.
  const W: Record<string, Float32Array> = {};
  for (const [name, t] of f32) W[name] = t.data;
  const factory = new Function(
    "memory",
    "W",
    stripTypes(source) + "\nreturn createKernels(memory, W);",
  );
  const k = factory(memory, W) as Kernels;
  k.init();

  const layout = plan.layout;
  const T = layout.maxRows, MB = layout.maxBlocksPerSeq;
  const io = stepIo(plan, memory.buffer, config.vocab_size);
  const ring = io.I.subarray(io.ringIndex, io.ringIndex + layout.maxSeqs); // (maxSeqs)
  const window = io.I.subarray(io.windowIndex, io.windowIndex + layout.maxSeqs); // (maxSeqs)

  return {
    config,
    maxRows: T,
    maxSeqs: layout.maxSeqs,
    blockSize: layout.blockSize,
    numBlocks: layout.numBlocks,
    maxBlocksPerSeq: MB,
    blockBytes: plan.blockBytes,
    source,
    plan,
    memory,
    threads: 1,
    close() {},
    setSequence(seq: number, blocks: ArrayLike<number>, ringTokens: number, win: number): void {
      checkSequence(layout, seq, blocks, ringTokens, win);
      io.writeTable(seq, blocks);
      ring[seq] = ringTokens;
      window[seq] = win;
    },
    step(input: StepInput): Float32Array {
      checkStepInput(config, layout, input, ring, window);
      io.writeInput(input);
      k.step();
      return io.logits(input);
    },
  };
}

/**
 * Compiles a batched forward (engine v2): plans the arena of the layout
 * ({@linkcode planBatch}), emits specialised kernels, evaluates them, and returns a
 * {@linkcode BatchForward} whose step rows, block tables, K/V pools, activations and
 * logits live in one `WebAssembly.Memory`. A step with one row runs the decode graph
 * (matrix-vector kernels), a step with more the prefill graph (matrix-matrix kernels over
 * the rows present); the final norm and the LM head run over the out rows only.
 *
 * @param config The model config.
 * @param weights Canonical weights; used in place (js), or copied into the memory (wasm).
 * @param options The layout (`numBlocks` required; see {@linkcode BatchCompileOptions})
 *   and `backend`.
 * @returns The batched forward with its `source`, `plan` and `memory`.
 * @throws {FormatError} when a weight is missing or mis-shaped.
 * @throws {RangeError} for a bad layout field or backend, naming it.
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { compileBatch } from "./compile.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const b = compileBatch(c, randomWeights(c, 1), { maxSeqs: 2, numBlocks: 8, maxRows: 8 });
 * b.setSequence(0, [0, 1], 32, 64); // blocks 0, 1: positions 0..31
 * b.setSequence(1, [5, 2], 32, 64); // any blocks, in ring order
 * // One step: a 3-token prompt of sequence 0 and a 2-token prompt of sequence 1.
 * const logits = b.step({
 *   tokens: [1, 2, 3, 7, 8],
 *   positions: [0, 1, 2, 0, 1],
 *   seqs: [0, 0, 0, 1, 1],
 *   outRows: [2, 4], // the last row of each sequence
 * });
 * assert.equal(logits.length, 2 * c.vocab_size); // (nOut, vocab_size)
 * ```
 */
export function compileBatch(
  config: ModelConfig,
  weights: Weights,
  options: BatchCompileOptions,
): CompiledBatch {
  checkWeights(config, weights, "<weights>");
  const useWasm = checkBackend(options.backend);
  const layout = resolveBatchLayout(options);
  const plan = planBatch(config, layout);
  return instantiate(config, weights, plan, useWasm, true, options);
}

/**
 * Compiles a plan as it is: emits and evaluates the kernels of `plan` (from
 * {@linkcode planBatch} or {@linkcode planArena}, possibly with edited node attributes, e.g.
 * a layer's `layer_window`) and returns the batched forward. What `compileBatch` and
 * `compileModel` do after planning; a backend that brings its own kernels for the same
 * graph and plan starts from here.
 *
 * @param config The model config the plan was made for.
 * @param weights Canonical weights.
 * @param plan The plan (weights outside it: the wasm backend places them itself).
 * @param backend `js` (default) or `wasm`.
 * @param threads Threads of the wasm backend and the pool starter.
 * @returns The batched forward.
 * @throws {FormatError} when a weight is missing or mis-shaped.
 * @throws {RangeError} for a bad backend, or stored weights on the js backend.
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { compilePlan } from "./compile.ts";
 * import { planBatch } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const plan = planBatch(c, resolveBatchLayout({ numBlocks: 4 }));
 * const b = compilePlan(c, randomWeights(c, 1), plan);
 * assert.equal(b.plan, plan);
 * ```
 */
export function compilePlan(
  config: ModelConfig,
  weights: Weights,
  plan: Plan,
  backend?: "js" | "wasm",
  threads: ThreadOptions = {},
): CompiledBatch {
  checkWeights(config, weights, "<weights>");
  const useWasm = checkBackend(backend);
  return instantiate(config, weights, plan, useWasm, true, threads);
}

/** true for `wasm`, false for `js` or none; RangeError otherwise. */
function checkBackend(backend: string | undefined): boolean {
  if (backend !== undefined && backend !== "js" && backend !== "wasm") {
    throw new RangeError(`compileModel: backend must be js or wasm, got ${backend}`);
  }
  return backend === "wasm";
}

/**
 * Compiles a model for one sequence: plans the single-sequence arena ({@linkcode planArena}:
 * a ring of `kvCapacity + T` tokens in blocks), emits and evaluates the kernels, and wraps
 * the batched forward in the single-sequence adapter (core/single_sequence.ts).
 *
 * `forward(tokens, pos)` runs all but the last token in steps of `plan.prefillChunk` rows
 * (no LM head), then the last token through the decode graph, and returns a view of the
 * arena's logits; a decode step allocates nothing. `forwardAll` runs every step with all its
 * rows as out rows and copies the `(n, vocab_size)` logits out. Sliding-window semantics
 * equal the reference for any chunk size: the ring holds the window plus one step, so
 * storing a step's K/V before attending never overwrites a slot one of its rows reads.
 *
 * @param config The model config.
 * @param weights Canonical weights; used in place (js), or copied into the memory (wasm).
 * @param options `kvCapacity` (the sliding window; default `context_length`),
 *   `prefillChunk` (default 32), `backend` (`js` default, or `wasm`: matrix products in
 *   generated WASM SIMD).
 * @returns The compiled forward pass with its `source`, `plan` and `batch`.
 * @throws {FormatError} when a weight is missing or mis-shaped.
 * @throws {RangeError} for a bad option.
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated; the
 *   message names the bytes and the options that lower them (`kvCapacity`, `prefillChunk`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { compileModel } from "./compile.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const m = compileModel(c, randomWeights(c, 1));
 * const logits = m.forward([1, 2, 3], 0); // (vocab_size) of the token at position 2
 * assert.equal(logits.length, 96);
 * // 2 layers × K, V × a ring of 128 slots (window 64 + one 64-row step: the 128-row prefill
 * // chunk clamped to the window) × kv_dim 24 × 4 bytes
 * assert.equal(m.plan.kvBytes, 2 * 2 * 128 * 24 * 4);
 * ```
 */
export function compileModel(
  config: ModelConfig,
  weights: Weights,
  options: CompileOptions = {},
): CompiledModel {
  checkWeights(config, weights, "<weights>");
  const useWasm = checkBackend(options.backend);
  const plan = planArena(config, options);
  const batch = instantiate(config, weights, plan, useWasm, false, options);
  const pass = singleSequence(batch, plan.kvCapacity);
  return {
    config,
    kvCapacity: pass.kvCapacity,
    forward: pass.forward,
    forwardAll: pass.forwardAll,
    batch,
    get source() {
      return batch.source;
    },
    plan,
    memory: batch.memory,
    threads: batch.threads,
    close: batch.close,
    ...(batch.wasm ? { wasm: batch.wasm } : {}),
  };
}
