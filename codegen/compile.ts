/**
 * The compile step: plans the arena, emits the kernels module for the config, evaluates
 * that same source with `new Function` and wraps it as a {@linkcode ForwardPass}.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { ForwardOptions, ForwardPass } from "../core/forward.ts";
import { ResourceError } from "../core/errors.ts";
import { checkForwardArgs } from "../core/forward.ts";
import { checkWeights, type Weights } from "../core/weights.ts";
import { emitKernelsForPlan } from "./emit_js.ts";
import { emitWasmForPlan, type WasmKernels } from "./emit_wasm.ts";
import { type Plan, planArena } from "./plan.ts";

/** A forward pass running generated kernels, with the source and arena plan it came from. */
export interface CompiledModel extends ForwardPass {
  /** The TypeScript kernels module that was evaluated (what `gollm kernels` writes). */
  readonly source: string;
  /** The arena plan (offsets of every buffer, KV and activation bytes). */
  readonly plan: Plan;
  /** The arena: activations, scratch, KV rings, RoPE table and logits (and, wasm, weights). */
  readonly memory: WebAssembly.Memory;
  /** With `backend: "wasm"`: the SIMD module's bytes, shapes and WAT-like listing. */
  readonly wasm?: WasmKernels;
}

/**
 * Options of {@linkcode compileModel}: the forward options plus the backend of the matrix
 * products.
 */
export interface CompileOptions extends ForwardOptions {
  /**
   * `js` (default): everything in generated JS. `wasm`: the matvec/matmul kernels run as
   * generated WASM f32x4 code (codegen/emit_wasm.ts) on the same arena; the weights are
   * copied into the arena's memory after the activations (`plan.weightsBytes`).
   */
  backend?: "js" | "wasm";
}

/** What the evaluated module hands back. */
interface Kernels {
  init(): void;
  decode(tokens: ArrayLike<number>, start: number, pos: number): void;
  prefill(tokens: ArrayLike<number>, start: number, n: number, pos: number, logits: boolean): void;
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
function describeMemory(plan: Plan): string {
  return `KV cache ${plan.kvBytes} bytes and activations ${plan.activationBytes} bytes for ` +
    `kvCapacity ${plan.kvCapacity}, prefillChunk ${plan.prefillChunk}` +
    (plan.weightsBytes > 0 ? `; weights ${plan.weightsBytes} bytes` : "");
}

/**
 * Allocates the plan's memory (arena, and for wasm the weights after it).
 *
 * @throws {ResourceError} when it is over {@linkcode MAX_MEMORY_BYTES} or the allocation
 *   fails, naming the bytes, the limit and the options that lower it.
 */
function allocateMemory(plan: Plan, wasm: boolean): WebAssembly.Memory {
  const bytes = plan.memoryBytes;
  const lower = "lower --kv-capacity (kvCapacity) or --prefill-chunk (prefillChunk)" +
    (wasm ? ", or use --backend jit (the wasm backend keeps the weights in this memory too)" : "");
  if (bytes > MAX_MEMORY_BYTES) {
    throw new ResourceError(
      `the arena needs ${bytes} bytes (${describeMemory(plan)}), over the 4 GiB ` +
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
      `could not allocate the arena of ${bytes} bytes (${describeMemory(plan)}): ` +
        `${e.message}; ${lower}`,
      bytes,
    );
  }
}

/**
 * Compiles a model: plans the arena ({@linkcode planArena}), emits specialised kernels
 * (`emitKernels`), evaluates them with `new Function`, fills the RoPE table, and returns a
 * forward pass whose activations, KV rings and logits live in one `WebAssembly.Memory`.
 *
 * `forward(tokens, pos)` runs all but the last token through the prefill step in chunks of
 * `plan.prefillChunk` (no LM head), then the last token through the decode step, and
 * returns a view of the arena's logits; a decode step allocates nothing. `forwardAll` runs
 * every chunk with the LM head and copies the `(n, vocab_size)` logits out. Sliding-window
 * semantics equal the reference for any chunk size: each token attends before its chunk's
 * K/V are stored, reading older positions from the ring and its own chunk from scratch.
 *
 * @param config The model config.
 * @param weights Canonical weights; used in place (js), or copied into the memory (wasm).
 * @param options `kvCapacity` (default `context_length`), `prefillChunk` (default 32),
 *   `backend` (`js` default, or `wasm`: matrix products in generated WASM SIMD).
 * @returns The compiled forward pass with its `source` and `plan`.
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
 * assert.equal(m.plan.kvBytes, 2 * 2 * 64 * 24 * 4); // 2 layers × K, V × 64 slots × kv_dim 24
 * ```
 */
export function compileModel(
  config: ModelConfig,
  weights: Weights,
  options: CompileOptions = {},
): CompiledModel {
  checkWeights(config, weights, "<weights>");
  const useWasm = options.backend === "wasm";
  if (options.backend !== undefined && options.backend !== "js" && !useWasm) {
    throw new RangeError(`compileModel: backend must be js or wasm, got ${options.backend}`);
  }
  const plan = planArena(config, useWasm ? { ...options, weightsInArena: true } : options);
  const source = emitKernelsForPlan(plan, { backend: useWasm ? "wasm" : "js" });
  const memory = allocateMemory(plan, useWasm);
  // The kernels' weights by canonical name: the caller's arrays (js), or (wasm, whose
  // kernels address weights by byte offset) copies placed in the memory at the plan's
  // offsets. The compiled model keeps only the copies, so once the caller drops its
  // weights (loadModel does) they are held once, in the memory.
  const W: Record<string, Float32Array> = {};
  for (const [name, t] of weights) {
    const off = plan.weightOffsets.get(name);
    if (off === undefined) W[name] = t.data;
    else {
      const view = new Float32Array(memory.buffer, off, t.data.length);
      view.set(t.data);
      W[name] = view;
    }
  }
  const wasm = useWasm ? emitWasmForPlan(plan) : undefined;
  const X = wasm &&
    new WebAssembly.Instance(new WebAssembly.Module(wasm.bytes), { env: { memory } }).exports;
  // The js module's createKernels(memory, W) ignores the third argument.
  const factory = new Function(
    "memory",
    "W",
    "X",
    stripTypes(source) +
      "\nreturn { kernels: createKernels(memory, W, X), LOGITS, LOGITS_ALL, PREFILL_CHUNK };",
  );
  const mod = factory(memory, W, X) as {
    kernels: Kernels;
    LOGITS: number;
    LOGITS_ALL: number;
    PREFILL_CHUNK: number;
  };
  const k = mod.kernels;
  k.init();
  const V = config.vocab_size;
  const T = mod.PREFILL_CHUNK;
  const logits = new Float32Array(memory.buffer, mod.LOGITS * 4, V); // (vocab_size)
  const logitsAll = new Float32Array(memory.buffer, mod.LOGITS_ALL * 4, T * V); // (T, vocab_size)

  return {
    config,
    kvCapacity: plan.kvCapacity,
    source,
    plan,
    memory,
    ...(wasm ? { wasm } : {}),
    forward(tokens: ArrayLike<number>, pos: number): Float32Array {
      checkForwardArgs(config, tokens, pos);
      const last = tokens.length - 1;
      for (let done = 0; done < last; done += T) {
        k.prefill(tokens, done, Math.min(T, last - done), pos + done, false);
      }
      k.decode(tokens, last, pos + last);
      return logits;
    },
    forwardAll(tokens: ArrayLike<number>, pos: number): Float32Array {
      checkForwardArgs(config, tokens, pos);
      const n = tokens.length;
      const out = new Float32Array(n * V); // (n, vocab_size)
      for (let done = 0; done < n; done += T) {
        const m = Math.min(T, n - done);
        k.prefill(tokens, done, m, pos + done, true);
        out.set(logitsAll.subarray(0, m * V), done * V);
      }
      return out;
    },
  };
}
