/**
 * Loading a GGUF file straight into the WASM backend's memory: the header is read first
 * (config, tokenizer, tensor infos), the memory is sized for the arena, every thread's
 * scratch and the file's tensor data, and the data section is read from the file INTO the
 * memory, once. The stored tensors are then views on it (block scales checked there), so
 * the model is held once, in its file's types: no file buffer, no F32 copy, no second
 * copy (peak RSS ≈ file + KV cache + activations).
 *
 * ```
 * readGguf (header) → ggufModelInfo → plan (planArena | planBatch)
 *   → memory [arena | scratch | file data | vectors] → read data section into memory
 *   → ggufToCheckpoint(stored, data = that view) → compileModel | compilePlan (batch_model.ts)
 * ```
 *
 * @module
 */
import { type CompiledModel, compileModel } from "../codegen/compile.ts";
import { f32Weights, wasmWeightsStart } from "../codegen/emit_wasm.ts";
import { type Plan, planArena } from "../codegen/plan.ts";
import { ResourceError } from "../core/errors.ts";
import type { ProgressCallback } from "../core/progress.ts";
import { expectedShapes, type Weights } from "../core/weights.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { ggufModelInfo, ggufToCheckpoint } from "../formats/gguf/checkpoint.ts";
import { type GgufFile, readGguf } from "../formats/gguf/parse.ts";
import { checkFinite, F16_SCALES } from "../formats/quant.ts";
import { scanner } from "../codegen/wasm/scan.ts";
import { finishCheckpoint } from "../formats/load.ts";
import { startStepPool } from "./threads.ts";

/** Options of {@linkcode loadGgufIntoWasm}. */
export interface WasmLoadOptions {
  /** KV ring slots (sliding window) for the config, resolved by the caller. */
  kvCapacity: (config: Checkpoint["config"]) => number;
  /** Rows per prefill step. */
  prefillChunk?: number;
  /** Threads (1..64). */
  threads: number;
  /** A tokenizer file to use instead of the GGUF's. */
  tokenizerPath?: string;
  /** Progress of the stages. */
  onProgress?: ProgressCallback;
  /** Called with the config once the header is read (throw to stop). */
  onConfig?: (config: Checkpoint["config"]) => void;
}

/**
 * NaN/Inf block scales and values of every tensor in the memory, found by a WASM scan
 * (codegen/wasm/scan.ts: no wait for the JS JIT) and reported by formats/quant.ts
 * `checkFinite` (file, tensor, block, field).
 */
function checkFiniteInMemory(memory: WebAssembly.Memory, g: GgufFile, start: number): void {
  const scan = scanner(memory);
  for (const t of g.tensors) {
    const at = start + t.offset; // the data section's byte 0 is at `start`
    const end = at + t.nbytes;
    const name = t.type.name;
    const probes: [number, number, number][] = []; // [first word, step, mask]
    if (name === "F32") probes.push([at + 2, 4, 0x7f80]);
    else if (name === "Q8_K") probes.push([at + 2, t.type.blockBytes, 0x7f80]); // f32 d
    else if (name === "F16") probes.push([at, 2, 0x7c00]);
    else if (name === "BF16") probes.push([at, 2, 0x7f80]);
    else for (const f of F16_SCALES[name] ?? []) probes.push([at + f, t.type.blockBytes, 0x7c00]);
    for (const [p, step, mask] of probes) {
      if (scan(p, end, step, mask) < end) {
        checkFinite(t.type, new Uint8Array(memory.buffer, at, t.nbytes), g.file, t.name);
      }
    }
  }
}

/** Bytes a 32-bit shared WebAssembly memory holds at most. */
const MAX_BYTES = 65536 * 65536;

/** Reads `length` bytes of `path` at `offset` into `dst` (a view on the memory). */
async function readInto(path: string, offset: number, dst: Uint8Array): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    await f.seek(offset, Deno.SeekMode.Start);
    const CHUNK = 16 << 20;
    for (let got = 0; got < dst.length;) {
      const n = await f.read(dst.subarray(got, Math.min(dst.length, got + CHUNK)));
      if (n === null) {
        throw new RangeError(`${path}: the file ended ${dst.length - got} bytes early`);
      }
      got += n;
    }
  } finally {
    f.close();
  }
}

/** Options of {@linkcode readGgufIntoWasm}. */
export interface WasmReadOptions {
  /**
   * The arena plan of the forward the memory is for (`planArena` for one sequence,
   * `planBatch` for a server), from the config read from the header; throw to stop.
   */
  plan: (config: Checkpoint["config"]) => Plan;
  /** Threads (1..64): each has its scratch in the memory. */
  threads: number;
  /** A tokenizer file to use instead of the GGUF's. */
  tokenizerPath?: string;
  /** Progress of the stages. */
  onProgress?: ProgressCallback;
  /** Called with the config once the header is read (throw to stop). */
  onConfig?: (config: Checkpoint["config"]) => void;
  /**
   * What sizes the KV cache and what lowers the memory, for the errors (default: the
   * single-sequence ring, `for kvCapacity N` and `lower --kv-capacity`).
   */
  kv?: { sizes: (plan: Plan) => string; lower: string };
}

/** A GGUF read into a WASM memory (see {@linkcode readGgufIntoWasm}). */
export interface WasmRead {
  /** The checkpoint; its weights are views on `memory` (stored types). */
  checkpoint: Checkpoint<Weights>;
  /** The plan `options.plan` returned. */
  plan: Plan;
  /** The memory and the first byte after the file's data (pass both to the compiler). */
  memory: { memory: WebAssembly.Memory; end: number };
}

/**
 * Reads a GGUF into a shared WASM memory sized for `plan(config)`, its threads and the
 * file's tensor data (see the module doc); the compile step (codegen/compile.ts
 * `compileModel` or `compilePlan` with `memory`) then leaves the weights where they are.
 *
 * @param path The GGUF file.
 * @param options The plan, threads, tokenizer file, callbacks.
 * @returns The checkpoint, the plan and the memory.
 * @throws {FormatError} for a malformed or truncated file, a tensor with an unknown type,
 *   a non-finite block scale or value (naming the file and tensor).
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts ignore
 * import { planBatch } from "../codegen/plan.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { readGgufIntoWasm } from "./wasm_load.ts";
 * const r = await readGgufIntoWasm("model.gguf", {
 *   plan: (c) => planBatch(c, resolveBatchLayout({ numBlocks: 64, maxSeqs: 4 })),
 *   threads: 2,
 * });
 * console.log(r.memory.end); // first byte after the file's tensor data
 * ```
 */
export async function readGgufIntoWasm(path: string, options: WasmReadOptions): Promise<WasmRead> {
  options.onProgress?.({ stage: `reading gguf checkpoint ${path}` });
  const g = await readGguf(path);
  const info = ggufModelInfo(g);
  const config = info.config;
  options.onConfig?.(config);
  const plan = options.plan(config);
  const kv = options.kv ?? {
    sizes: (p: Plan) => `for kvCapacity ${p.kvCapacity}`,
    lower: "lower --kv-capacity",
  };
  const lower = kv.lower;
  const start = wasmWeightsStart(plan, options.threads);
  const dataBytes = g.fileSize - g.dataOffset;
  // Room after the file's data for vectors stored in another type than F32 (converted).
  const vectors = f32Weights(plan.prefill);
  let extra = 0;
  for (const [name, shape] of expectedShapes(config)) {
    if (vectors.has(name)) extra += Math.ceil((shape.reduce((a, b) => a * b, 1) * 4) / 64) * 64;
  }
  const end = Math.ceil((start + dataBytes) / 64) * 64;
  const bytes = end + extra;
  if (bytes > MAX_BYTES) {
    throw new ResourceError(
      `${path}: the wasm backend needs ${bytes} bytes (weights ${dataBytes}, KV cache ` +
        `${plan.kvBytes} ${kv.sizes(plan)}), over the 4 GiB (${MAX_BYTES}-byte) limit of a ` +
        `WebAssembly memory; ${lower} or use --backend jit`,
      bytes,
      MAX_BYTES,
    );
  }
  const pages = Math.ceil(bytes / 65536);
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  } catch (e) {
    throw new ResourceError(
      `${path}: could not allocate the wasm backend's memory of ${bytes} bytes: ` +
        `${(e as Error).message}; ${lower} or use --backend jit`,
      bytes,
    );
  }
  options.onProgress?.({ stage: `reading ${dataBytes} bytes of weights into WASM memory` });
  const data = new Uint8Array(memory.buffer, start, dataBytes);
  await readInto(path, g.dataOffset, data);
  const checkpoint = await finishCheckpoint(
    ggufToCheckpoint(g, { stored: true, data, info, check: false }),
    { tokenizerPath: options.tokenizerPath, onProgress: options.onProgress },
  );
  checkFiniteInMemory(memory, g, start);
  return { checkpoint, plan, memory: { memory, end } };
}

/**
 * Loads a GGUF into the WASM backend (see the module doc) and compiles it.
 *
 * @param path The GGUF file.
 * @param options KV capacity, prefill chunk, threads, tokenizer file, callbacks.
 * @returns The checkpoint (weights: views on the memory) and the compiled forward pass.
 * @throws {FormatError} for a malformed or truncated file, a tensor with an unknown type,
 *   a non-finite block scale or value (naming the file and tensor).
 * @throws {WasmUnsupportedError} when the kernels do not cover an op or tensor type (the
 *   caller can fall back to the JS kernels with the checkpoint's weights).
 * @throws {ResourceError} when the memory is over 4 GiB or cannot be allocated.
 *
 * @example
 * ```ts ignore
 * import { loadGgufIntoWasm } from "./wasm_load.ts";
 * const { pass } = await loadGgufIntoWasm("model.gguf", { kvCapacity: () => 512, threads: 2 });
 * console.log(pass!.forward([1], 0).length); // vocab_size
 * pass!.close();
 * ```
 */
export async function loadGgufIntoWasm(
  path: string,
  options: WasmLoadOptions,
): Promise<{ checkpoint: Checkpoint<Weights>; pass: CompiledModel | null; error?: unknown }> {
  let fwd: { kvCapacity: number; prefillChunk?: number } | undefined;
  const { checkpoint, memory } = await readGgufIntoWasm(path, {
    ...options,
    plan: (config) => {
      fwd = { kvCapacity: options.kvCapacity(config), prefillChunk: options.prefillChunk };
      return planArena(config, fwd);
    },
  });
  options.onProgress?.({ stage: "compiling kernels" });
  try {
    const pass = compileModel(checkpoint.config, checkpoint.weights, {
      ...fwd,
      backend: "wasm",
      threads: options.threads,
      startPool: startStepPool,
      memory,
    });
    return { checkpoint, pass };
  } catch (error) {
    return { checkpoint, pass: null, error };
  }
}
