/**
 * The WASM backend's compile step: emits the whole-step module of a plan
 * (codegen/emit_wasm.ts), allocates one shared `WebAssembly.Memory` for the arena, the
 * threads' scratch and the weights, copies each weight into it in its stored type (no F32
 * copy of a quantised model), fills the RoPE tables, and wraps the module's `step` export as
 * a {@linkcode BatchForward} that behaves exactly like the JS one (same plan, same int32
 * step and sequence buffers).
 *
 * Threads: `codegen/` does not start workers; a caller that wants more than one thread
 * (runtime/model.ts) passes `startPool`, which runs `step` on every thread of a pool
 * (runtime/threads.ts). Without it the step runs on the caller's thread.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { ResourceError } from "../core/errors.ts";
import { adviseHugePages } from "../core/huge_pages.ts";
import { checkSequence, checkStepInput, type StepInput } from "../core/forward.ts";
import { bf16ToF32, f16Table } from "../core/numbers.ts";
import { checkWeights, type Tensor, type Weights } from "../core/weights.ts";
import {
  emitWasmStep,
  f32Weights,
  type PlacedWeights,
  type WasmStepModule,
  WasmUnsupportedError,
} from "./emit_wasm.ts";
import { findBuffer, type Plan } from "./plan.ts";
import { stepIo } from "./step_io.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "./wasm_features.ts";
import { WEIGHT_TYPES } from "./wasm/blocks.ts";
import { interleaveRowsInMemory } from "./wasm/interleave.ts";
import { packQ4KPairsInPlace, pairUnit } from "./wasm/q4k_pairs.ts";
import { interleaveUnit } from "./wasm/linear.ts";
import { packQ6KInPlace, Q6K_BLOCK_BYTES } from "./wasm/q6k_pack.ts";

/**
 * A shared memory of `pages` 64 KiB pages whose weights (bytes `weightsFrom` to the end) are
 * advised to use huge pages (core/huge_pages.ts).
 */
function adviseNew(pages: number, weightsFrom = 0): WebAssembly.Memory {
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  adviseHugePages(memory, weightsFrom);
  return memory;
}

/** What runs a step on many threads: `run()` calls `step` on each, `close()` ends them. */
export interface StepRunner {
  /** Runs `step(tid, threads)` on every thread; returns when all finished. */
  run(): void;
  /** `run()` without blocking the caller's event loop (pools started with `offload`). */
  runAsync?(): Promise<void>;
  /** Stops the threads (idempotent). */
  close(): void;
}

/**
 * Starts the threads of a module: thread 0 is the caller; the control block is at `ctl`.
 * runtime/threads.ts `startThreadPool` is one.
 */
export type StartPool = (
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  ctl: number,
  threads: number,
  more?: WebAssembly.Memory[],
  offload?: boolean,
) => StepRunner;

/** Options of {@linkcode instantiateWasm}. */
export interface WasmCompileOptions {
  /** Threads (default 1; more need `startPool`). */
  threads?: number;
  /** Starts the worker threads (required for threads > 1 and for `offload`). */
  startPool?: StartPool;
  /**
   * Every thread a worker, thread 0 included (default false; needs `startPool`): the
   * caller only starts steps, and `stepAsync` leaves its event loop free while one runs
   * (a server's HTTP). One more thread than `threads` exists, the caller's, mostly idle.
   */
  offload?: boolean;
  /** Use relaxed SIMD when the runtime has it (default true). */
  relaxed?: boolean;
  /**
   * Convert F16 weights with the FP16 proposal's `f32x4.promote_low_f16x8` when the runtime
   * has it (default true; V8 needs `--v8-flags=--experimental-wasm-fp16`).
   */
  fp16?: boolean;
  /**
   * A memory the loader already read weights into (runtime/wasm_load.ts): weights whose
   * bytes are views on it stay where they are (no copy); `end` is the first byte after
   * the loader's region, where the other weights go. It must be shared and start its
   * weights at or after `wasmWeightsStart(plan, threads)`.
   */
  memory?: { memory: WebAssembly.Memory; end: number };
  /** Bytes one memory holds (default 4 GiB; tests lower it to use further memories). */
  memoryLimit?: number;
}

/** The batched forward of the WASM backend, with its module, memory and threads. */
export interface WasmBatch {
  /** The config. */
  readonly config: ModelConfig;
  /** T: rows per step. */
  readonly maxRows: number;
  /** Sequence slots. */
  readonly maxSeqs: number;
  /** Tokens per KV block. */
  readonly blockSize: number;
  /** Blocks per layer pool. */
  readonly numBlocks: number;
  /** Columns of the block table. */
  readonly maxBlocksPerSeq: number;
  /** Bytes of one KV block over all layers. */
  readonly blockBytes: number;
  /** Threads a step runs on. */
  readonly threads: number;
  /** The module (bytes, layout, listing). */
  readonly module: WasmStepModule;
  /** The memory (arena, scratch, weights). */
  readonly memory: WebAssembly.Memory;
  /** Further memories of weights past 4 GiB (`env.memory1`, ...; usually none). */
  readonly more: WebAssembly.Memory[];
  /** The plan. */
  readonly plan: Plan;
  /** See `BatchForward.setSequence`. */
  setSequence(seq: number, blocks: ArrayLike<number>, ringTokens: number, window: number): void;
  /** See `BatchForward.step`. */
  step(input: StepInput): Float32Array;
  /** See `BatchForward.stepAsync` (with `offload` only). */
  stepAsync?(input: StepInput): Promise<Float32Array>;
  /** Stops the worker threads (idempotent; the model cannot step afterwards). */
  close(): void;
}

/** Bytes a 32-bit shared WebAssembly memory holds at most (65536 pages of 64 KiB). */
const MAX_BYTES = 65536 * 65536;

/** The storage type of each tensor, for the layout (`F32` for F32 data). */
function typesOf(weights: Weights): Map<string, string> {
  return new Map([...weights].map(([name, t]) => [name, t.type?.name ?? "F32"]));
}

/**
 * Writes tensor `t` into the memory at `offset` as `type`: stored bytes as they are, F32
 * values as F32, and F16/BF16 vectors converted to F32 (norm weights, biases).
 */
function place(
  bytes: Uint8Array,
  offset: number,
  t: Tensor,
  type: string,
  name: string,
): void {
  if (t.type === undefined) {
    new Float32Array(bytes.buffer, offset, t.data.length).set(t.data);
    return;
  }
  if (t.type.name === type) {
    bytes.set(t.bytes, offset);
    return;
  }
  if (type !== "F32" || (t.type.name !== "F16" && t.type.name !== "BF16")) {
    throw new WasmUnsupportedError(
      `tensor '${name}' has type ${t.type.name}; the wasm backend needs it as F32, F16 or BF16`,
    );
  }
  const n = t.bytes.length / 2;
  const out = new Float32Array(bytes.buffer, offset, n);
  const h = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const lut = f16Table();
  for (let i = 0; i < n; i++) {
    const v = h.getUint16(2 * i, true);
    out[i] = t.type.name === "F16" ? lut[v] : bf16ToF32(v);
  }
}

/**
 * Compiles the WASM backend for a plan: the whole step in one generated module, the
 * weights copied into its memory in their stored types.
 *
 * @param config The model config.
 * @param weights Canonical weights, F32 or stored (F16, BF16, ggml block types).
 * @param plan The plan (`planBatch` or `planArena`, weights NOT in the arena).
 * @param options Threads, the pool starter, relaxed SIMD.
 * @returns The batched forward; `close()` it to stop its threads.
 * @throws {FormatError} when a weight is missing or mis-shaped.
 * @throws {WasmUnsupportedError} for an op or weight type the backend has no kernels for.
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated.
 * @throws {RangeError} for threads > 1 without `startPool`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { instantiateWasm } from "./compile_wasm.ts";
 * import { planBatch } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const b = instantiateWasm(c, randomWeights(c, 1), planBatch(c, resolveBatchLayout({ numBlocks: 4 })));
 * b.setSequence(0, [0, 1], 32, 64);
 * const logits = b.step({ tokens: [1, 2], positions: [0, 1], seqs: [0, 0], outRows: [1] });
 * assert.equal(logits.length, c.vocab_size); // (nOut, vocab_size)
 * b.close();
 * ```
 */
export function instantiateWasm(
  config: ModelConfig,
  weights: Weights,
  plan: Plan,
  options: WasmCompileOptions = {},
): WasmBatch {
  checkWeights(config, weights, "<weights>");
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new RangeError(`threads must be an integer in 1..64, got ${threads}`);
  }
  const offload = options.offload ?? false;
  if ((threads > 1 || offload) && !options.startPool) {
    throw new RangeError(
      `instantiateWasm: ${offload ? "offload" : `${threads} threads`} needs a startPool`,
    );
  }
  const relaxed = (options.relaxed ?? true) && relaxedSimdSupported();
  const fp16 = (options.fp16 ?? true) && fp16SimdSupported();
  const dotU8 = relaxed && relaxedDotU8();
  const given = options.memory;
  let placed: PlacedWeights | undefined;
  if (given) {
    const offsets = new Map<string, number>();
    const vectors = f32Weights(plan.prefill); // must be F32 to stay in place
    for (const [name, t] of weights) {
      const view = t.type === undefined ? t.data : t.bytes;
      const ok = t.type === undefined || (t.type.name in WEIGHT_TYPES && !vectors.has(name));
      if (ok && view.buffer === given.memory.buffer) offsets.set(name, view.byteOffset);
    }
    placed = { offsets, end: given.end };
  }
  const mod = emitWasmStep(plan, {
    types: typesOf(weights),
    threads,
    relaxed,
    fp16,
    dotU8,
    placed,
    pages: given && given.memory.buffer.byteLength / 65536,
    memoryLimit: options.memoryLimit,
  });
  const L = mod.layout;
  if (L.memoryBytes > MAX_BYTES) {
    throw new ResourceError(
      `the arena needs ${L.memoryBytes} bytes (KV cache ${plan.kvBytes} bytes and activations ` +
        `${plan.activationBytes} bytes for kvCapacity ${plan.kvCapacity}, prefillChunk ` +
        `${plan.prefillChunk}; weights ${L.weightsBytes} bytes in the wasm memory), over the ` +
        `4 GiB (${MAX_BYTES}-byte) limit of a WebAssembly memory; lower --kv-capacity ` +
        `(kvCapacity) or --prefill-chunk (prefillChunk), or use --backend jit`,
      L.memoryBytes,
      MAX_BYTES,
    );
  }
  let memory: WebAssembly.Memory;
  try {
    memory = given?.memory ?? adviseNew(mod.pages, L.weightsOffset);
    if (memory.buffer.byteLength < L.memoryBytes) {
      throw new RangeError(`the given memory has ${memory.buffer.byteLength} bytes`);
    }
  } catch (e) {
    throw new ResourceError(
      `could not allocate the wasm backend's memory of ${L.memoryBytes} bytes: ` +
        `${(e as Error).message}; lower the KV cache or use --backend jit`,
      L.memoryBytes,
    );
  }
  const more = L.more.map((b) => {
    const pages = Math.ceil(b / 65536);
    try {
      return adviseNew(pages);
    } catch (e) {
      throw new ResourceError(
        `could not allocate a further wasm memory of ${b} bytes for weights past 4 GiB: ` +
          `${(e as Error).message}`,
        b,
      );
    }
  });
  const buffers = [memory, ...more].map((m) => new Uint8Array(m.buffer));
  for (const w of L.weights.values()) {
    if (placed?.offsets.has(w.name)) continue; // read into place by the loader
    place(buffers[w.memory], w.offset, weights.get(w.name)!, w.type, w.name);
  }
  // Last, once nothing can fail for want of kernels (`auto` then reads the weights on jit):
  // the matrices the kernels read row-interleaved are rearranged in place (wasm/interleave.ts),
  // then the packed ones repacked: Q6_K (wasm/q6k_pack.ts), Q4_K/Q5_K row pairs (q4k_pairs.ts).
  for (const w of L.weights.values()) {
    const m = w.memory === 0 ? memory : more[w.memory - 1], M = w.shape[0];
    if (w.interleave > 1) {
      interleaveRowsInMemory(m, w.offset, M, w.bytes / M, interleaveUnit(w.type), w.interleave);
    }
    if (!w.packed) continue;
    const bytes = buffers[w.memory], unit = pairUnit(w.type);
    if (unit) packQ4KPairsInPlace(bytes, w.offset, w.bytes / (2 * unit), unit);
    else packQ6KInPlace(bytes, w.offset, w.bytes / Q6K_BLOCK_BYTES);
  }
  // The constant tables (the RoPE inverse frequencies, and Gemma 3's local ones).
  for (const b of plan.decode.buffers.values()) {
    if (b.kind !== "table") continue;
    const at = findBuffer(plan, "decode", b.name).offset;
    new Float32Array(memory.buffer, at, b.values!.length).set(b.values!);
  }
  const module = new WebAssembly.Module(mod.bytes);
  let runner: StepRunner;
  if (threads > 1 || offload) {
    runner = options.startPool!(module, memory, L.ctl, threads, more, offload);
  } else {
    const env: Record<string, unknown> = { memory, cos: Math.cos, sin: Math.sin };
    more.forEach((m, i) => (env[`memory${i + 1}`] = m));
    const instance = new WebAssembly.Instance(module, { env } as WebAssembly.Imports);
    const step = instance.exports.step as (tid: number, n: number) => void;
    runner = { run: () => step(0, 1), close() {} };
  }

  const layout = plan.layout;
  const MB = layout.maxBlocksPerSeq;
  const io = stepIo(plan, memory.buffer, config.vocab_size);
  const I = io.I, RING = io.ringIndex, WINDOW = io.windowIndex;
  const ring = new Int32Array(layout.maxSeqs); // (maxSeqs) a copy the checks read
  const window = new Int32Array(layout.maxSeqs); // (maxSeqs)
  let closed = false;
  /** Checks a step's rows and writes them into the arena (step and stepAsync). */
  const writeStep = (input: StepInput, name: string) => {
    if (closed) throw new RangeError(`${name}: the wasm backend was closed`);
    checkStepInput(config, layout, input, ring, window);
    io.writeInput(input);
  };
  return {
    config,
    maxRows: layout.maxRows,
    maxSeqs: layout.maxSeqs,
    blockSize: layout.blockSize,
    numBlocks: layout.numBlocks,
    maxBlocksPerSeq: MB,
    blockBytes: plan.blockBytes,
    threads,
    module: mod,
    memory,
    more,
    plan,
    setSequence(seq, blocks, ringTokens, win) {
      checkSequence(layout, seq, blocks, ringTokens, win);
      io.writeTable(seq, blocks);
      ring[seq] = I[RING + seq] = ringTokens;
      window[seq] = I[WINDOW + seq] = win;
    },
    step(input) {
      writeStep(input, "step");
      runner.run();
      return io.logits(input);
    },
    ...(runner.runAsync && offload
      ? {
        async stepAsync(input: StepInput): Promise<Float32Array> {
          writeStep(input, "stepAsync");
          await runner.runAsync!();
          return io.logits(input);
        },
      }
      : {}),
    close() {
      closed = true;
      runner.close();
    },
  };
}

/**
 * The matrix types the WASM kernels read (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q2_K .. Q6_K).
 *
 * @returns The type names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { wasmWeightTypes } from "./compile_wasm.ts";
 * assert.ok(wasmWeightTypes().includes("Q4_K"));
 * ```
 */
export function wasmWeightTypes(): string[] {
  return Object.keys(WEIGHT_TYPES);
}
