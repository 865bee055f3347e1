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
import { adviseHugePages } from "../core/huge_pages.ts";
import type { ForwardOptions, KvCacheTypes } from "../core/forward.ts";
import type { ProgressCallback } from "../core/progress.ts";
import { expectedShapes, type Weights } from "../core/weights.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { ggufModelInfo, ggufToCheckpoint } from "../formats/gguf/checkpoint.ts";
import { type GgufFile, readGguf, readGgufStream } from "../formats/gguf/parse.ts";
import {
  type ByteReader,
  localPath,
  type ModelBytes,
  openModelBytes,
} from "../core/model_bytes.ts";
import { FormatError, ResourceError } from "../core/errors.ts";
import { checkFinite, F16_SCALES } from "../formats/quant.ts";
import { scanner } from "../codegen/wasm/scan.ts";
import { detectFormat, finishCheckpoint } from "../formats/load.ts";
import {
  dropSpareWorkers,
  prestartWorkers,
  spareWorkersStarted,
  startStepPool,
} from "./threads.ts";

/** Options of {@linkcode loadGgufIntoWasm}. */
export interface WasmLoadOptions extends KvCacheTypes {
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
 * The NaN/Inf check of a data section being read into `dst`: `scan(c0, c1)` scans the
 * probe words (F32/F16/BF16 values, ggml block scales) of the memory bytes [c0, c1) as
 * they arrive (codegen/wasm/scan.ts: a WASM scan, no wait for the JS JIT), and `report()`
 * then throws for the first bad tensor by formats/quant.ts `checkFinite` (file, tensor,
 * block, field).
 */
function finiteCheck(g: GgufFile, memory: WebAssembly.Memory, dst: Uint8Array) {
  const scan = scanner(memory);
  type Probe = {
    t: GgufFile["tensors"][number];
    p: number;
    step: number;
    mask: number;
    end: number;
  };
  const probes: Probe[] = [];
  for (const t of g.tensors) {
    const at = dst.byteOffset + t.offset; // the data section's byte 0 is at dst
    const end = at + t.nbytes;
    const name = t.type.name;
    const add = (p: number, step: number, mask: number) => probes.push({ t, p, step, mask, end });
    if (name === "F32") add(at + 2, 4, 0x7f80);
    else if (name === "Q8_K") add(at + 2, t.type.blockBytes, 0x7f80); // f32 d
    else if (name === "F16") add(at, 2, 0x7c00);
    else if (name === "BF16") add(at, 2, 0x7f80);
    else for (const f of F16_SCALES[name] ?? []) add(at + f, t.type.blockBytes, 0x7c00);
  }
  const flagged = new Set<Probe["t"]>();
  return {
    /** Scans the probe words in the memory bytes [c0, c1) (both even: words never straddle). */
    scan(c0: number, c1: number) {
      for (const pr of probes) {
        if (flagged.has(pr.t) || pr.end <= c0 || pr.p >= c1) continue;
        const lo = pr.p >= c0 ? pr.p : pr.p + Math.ceil((c0 - pr.p) / pr.step) * pr.step;
        const hi = Math.min(pr.end, c1);
        if (lo < hi && scan(lo, hi, pr.step, pr.mask) < hi) flagged.add(pr.t);
      }
    },
    /** Throws FormatError for the first tensor the scans flagged. */
    report() {
      for (const t of g.tensors) {
        if (!flagged.has(t)) continue;
        const at = dst.byteOffset + t.offset;
        checkFinite(t.type, new Uint8Array(memory.buffer, at, t.nbytes), g.file, t.name);
      }
    },
  };
}

/**
 * Reads the data section of `g` (`dst.length` bytes from `g.dataOffset`) into `dst`, a view
 * on `memory`, and checks every tensor's block scales and values for NaN/Inf
 * ({@linkcode finiteCheck}).
 *
 * Pipelined: while the runtime reads chunk i + 1 of each part (Deno's file reads run off the
 * main thread), the main thread scans chunk i, which it is the first to touch in user space (on this
 * project's VM the first touch of a page after `read()` costs ~6 µs; a 200 MB file went from
 * 0.8 s read + 0.55 s check to about the read alone).
 *
 * @param path The GGUF file (for the read and the messages).
 * @param g Its parsed header.
 * @param memory The memory `dst` is on.
 * @param dst The view to read the data section into (its byteOffset is the data section's
 *   byte 0 in the memory).
 * @param chunk Bytes per read (default 8 MiB; tests use small ones to cross chunk edges).
 * @param parts Parts of the data section read at once, each with its own file handle
 *   (default 2: the page faults of the reads then run on two cores; 200 MB read in ~0.55 s
 *   instead of ~0.95 s on this project's 2-core VM).
 * @throws {RangeError} when the file ends early; FormatError from `checkFinite`.
 */
export async function readAndCheck(
  path: string,
  g: GgufFile,
  memory: WebAssembly.Memory,
  dst: Uint8Array,
  chunk: number = 8 << 20,
  parts: number = 2,
): Promise<void> {
  const check = finiteCheck(g, memory, dst);
  // Each part [p0, p1) of the data section: its own file handle. Parts start on 64-byte edges.
  const readPart = async (p0: number, p1: number) => {
    const f = await Deno.open(path, { read: true });
    try {
      await f.seek(g.dataOffset + p0, Deno.SeekMode.Start);
      const got = await readScanning((into) => f.read(into), check, dst, p0, p0, p1, chunk);
      if (got < p1) throw new RangeError(`${path}: the file ended ${dst.length - got} bytes early`);
    } finally {
      f.close();
    }
  };
  const per = Math.ceil(dst.length / Math.max(1, parts) / 64) * 64;
  const ranges: [number, number][] = [];
  for (let p0 = 0; p0 < dst.length; p0 += per) ranges.push([p0, Math.min(dst.length, p0 + per)]);
  // allSettled: every handle is closed before an error (a truncated file) is thrown.
  const settled = await Promise.allSettled(ranges.map(([p0, p1]) => readPart(p0, p1)));
  for (const r of settled) if (r.status === "rejected") throw r.reason;
  check.report();
}

/**
 * {@linkcode readAndCheck} for a stream (core/model_bytes.ts) after its header
 * ({@linkcode readGgufStream}): the part of the data section the header's read took is
 * copied from `g.bytes`, the rest read front to back, each chunk scanned while the next is
 * read, with a progress event (`stage`, the fraction read) after each chunk.
 *
 * @param reader The source, just after the prefix `g.bytes`.
 * @param g The header it gave.
 * @param memory The memory `dst` is on.
 * @param dst The view for the data section.
 * @param progress Progress of the read, and its stage's name.
 * @param chunk Bytes per read (default 8 MiB).
 * @throws {FormatError} naming the source when it ends early or fails, or from
 *   `checkFinite`.
 */
export async function readStreamAndCheck(
  reader: ByteReader,
  g: GgufFile,
  memory: WebAssembly.Memory,
  dst: Uint8Array,
  progress?: { onProgress?: ProgressCallback; stage: string },
  chunk: number = 8 << 20,
): Promise<void> {
  const check = finiteCheck(g, memory, dst);
  const head = g.bytes.subarray(Math.min(g.dataOffset, g.bytes.length));
  const filled = Math.min(head.length, dst.length);
  dst.set(head.subarray(0, filled));
  const onChunk = (got: number) =>
    progress?.onProgress?.({ stage: progress.stage, fraction: got / dst.length });
  const read = (into: Uint8Array) => reader.read(into);
  const got = await readScanning(read, check, dst, 0, filled, dst.length, chunk, onChunk);
  if (got < dst.length) {
    throw new FormatError(
      reader.name,
      `truncated: the tensor data needs ${dst.length} bytes after the header at offset ` +
        `${g.dataOffset}, the source ended after ${got}`,
    );
  }
  check.report();
}

/**
 * The pipelined read of {@linkcode readAndCheck} and {@linkcode readStreamAndCheck}: fills
 * `dst[filled, to)` by `read` calls of at most `chunk` bytes and, while each read runs, scans
 * what the reads before it filled (from `from`, 64-byte steps; the last words at the end).
 *
 * @param read Fills a view; resolves to the bytes read (0 or null: the source ended).
 * @param check The scan of {@linkcode finiteCheck}.
 * @param dst The data section's view.
 * @param from The first byte not yet scanned.
 * @param filled The first byte not yet filled.
 * @param to The end of the range.
 * @param chunk Bytes per read.
 * @param onChunk Called with the bytes filled so far after each read.
 * @returns Where the filled bytes end: `to`, or less when the source ended early.
 */
async function readScanning(
  read: (into: Uint8Array) => Promise<number | null>,
  check: ReturnType<typeof finiteCheck>,
  dst: Uint8Array,
  from: number,
  filled: number,
  to: number,
  chunk: number,
  onChunk?: (got: number) => void,
): Promise<number> {
  let got = filled, scanned = from;
  while (got < to) {
    const reading = read(dst.subarray(got, Math.min(to, got + chunk)));
    const upTo = got - (got % 64);
    if (upTo > scanned) check.scan(dst.byteOffset + scanned, dst.byteOffset + upTo);
    scanned = Math.max(scanned, upTo);
    const n = await reading;
    if (!n) break;
    got += n;
    onChunk?.(got);
  }
  check.scan(dst.byteOffset + scanned, dst.byteOffset + got + (got % 2));
  return got;
}

/**
 * What {@linkcode readGgufIntoWasm} reads for a model source: the path of a GGUF file, or a
 * reader over a GGUF's bytes (bytes are GGUF or nothing; core/model_bytes.ts); null for a
 * directory or a file of another format (the caller loads it as a checkpoint).
 *
 * @param source A path, a `file:` URL, or a GGUF's bytes.
 * @returns The path, the reader, or null.
 * @throws {GollmError} for a missing path, or a request that fails (`openModelBytes`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufSource } from "./wasm_load.ts";
 * assert.equal(await ggufSource("tests/fixtures/gguf/llama.gguf"), "tests/fixtures/gguf/llama.gguf");
 * assert.equal(await ggufSource("models/default"), null); // a gollm directory
 * ```
 */
export async function ggufSource(source: string | ModelBytes): Promise<string | ByteReader | null> {
  const path = localPath(source);
  if (path === undefined) return await openModelBytes(source as ModelBytes);
  return await detectFormat(path) === "gguf" ? path : null;
}

/** Bytes a 32-bit shared WebAssembly memory holds at most. */
const MAX_BYTES = 65536 * 65536;

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
 * @param source The GGUF file: a path, or a stream of its bytes (core/model_bytes.ts
 *   `openModelBytes`: bytes in memory, a Blob, an HTTP body), read front to back once.
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
export async function readGgufIntoWasm(
  source: string | ByteReader,
  options: WasmReadOptions,
): Promise<WasmRead> {
  // The pool's workers start now, in their own threads, while this one parses the header.
  if (options.threads > 1) prestartWorkers(options.threads - 1);
  try {
    const read = await readInto(source, options);
    // A browser starts them only while this thread's event loop runs; the compile after
    // this blocks (runtime/threads.ts). At once in Deno and Node.
    await spareWorkersStarted();
    return read;
  } catch (e) {
    dropSpareWorkers();
    if (typeof source !== "string") await source.cancel();
    throw e;
  }
}

/** {@linkcode readGgufIntoWasm} after the workers' start. */
async function readInto(source: string | ByteReader, options: WasmReadOptions): Promise<WasmRead> {
  const path = typeof source === "string" ? source : source.name;
  options.onProgress?.({ stage: `reading gguf checkpoint ${path}` });
  const g = typeof source === "string" ? await readGguf(path) : await readGgufStream(source);
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
  adviseHugePages(memory, start, start + dataBytes);
  const stage = `reading ${dataBytes} bytes of weights into WASM memory`;
  options.onProgress?.({ stage });
  const data = new Uint8Array(memory.buffer, start, dataBytes);
  if (typeof source === "string") await readAndCheck(path, g, memory, data);
  else await readStreamAndCheck(source, g, memory, data, { onProgress: options.onProgress, stage });
  const checkpoint = await finishCheckpoint(
    ggufToCheckpoint(g, { stored: true, data, info, check: false }),
    { tokenizerPath: options.tokenizerPath, onProgress: options.onProgress },
  );
  return { checkpoint, plan, memory: { memory, end } };
}

/**
 * Loads a GGUF into the WASM backend (see the module doc) and compiles it.
 *
 * @param source The GGUF file: a path or a stream of its bytes (as
 *   {@linkcode readGgufIntoWasm}).
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
  source: string | ByteReader,
  options: WasmLoadOptions,
): Promise<{ checkpoint: Checkpoint<Weights>; pass: CompiledModel | null; error?: unknown }> {
  let fwd: ForwardOptions | undefined;
  const { checkpoint, memory } = await readGgufIntoWasm(source, {
    ...options,
    plan: (config) => {
      fwd = {
        kvCapacity: options.kvCapacity(config),
        prefillChunk: options.prefillChunk,
        cacheTypeK: options.cacheTypeK,
        cacheTypeV: options.cacheTypeV,
      };
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
    dropSpareWorkers();
    return { checkpoint, pass: null, error };
  }
}
