/**
 * The model API: load any checkpoint, run the forward pass (JIT-compiled kernels or the
 * reference), and generate streamed text with sampling, stop strings and a sliding KV window.
 *
 * ```
 * loadModel(path) -> loadCheckpoint -> compileModel | createReference -> Model
 * Model.generate(prompt): encode -> prefill -> [sample -> decode step]* -> StreamDecoder -> text
 * ```
 *
 * @module
 */
import { compileModel } from "../codegen/compile.ts";
import { PANEL_MIN_TOKENS } from "../codegen/wasm/linear_panel.ts";
import type { CheckpointFormat, GenerationDefaults } from "../formats/checkpoint.ts";
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import {
  type ForwardPass,
  type KvCacheType,
  type KvCacheTypes,
  kvCacheTypes,
} from "../core/forward.ts";
import { loadCheckpoint } from "../formats/load.ts";
import type { ByteReader, ModelBytes } from "../core/model_bytes.ts";
import type { ProgressCallback } from "../core/progress.ts";
import { buildOnBackend, fallbackFromWasm } from "./backend.ts";
import { checkInt } from "./generation.ts";
import { createReference } from "./reference.ts";
import { GollmModel, type ModelPass } from "./gollm_model.ts";
import { startStepPool, threadsUnavailable } from "./threads.ts";
import { ggufSource, loadGgufIntoWasm } from "./wasm_load.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { Weights } from "../core/weights.ts";
import type { SamplerOptions } from "./sampler.ts";
import type { SpeculativeStats } from "./speculative.ts";
import type { SpeculativeGenerateOptions } from "./speculative_decode.ts";

/**
 * Which forward implementation runs the model: `wasm` (the whole step in generated WASM
 * SIMD, weights as stored, threads), `jit` (generated JS kernels, F32 weights),
 * `reference` (plain loops, the oracle), or `auto` (wasm when it runs the model's ops and
 * weight types, else jit).
 */
export type Backend = "auto" | "jit" | "reference" | "wasm";

/** Most threads a model may use. */
export const MAX_THREADS = 64;

/** Options of {@linkcode createModel}. */
export interface ModelOptions {
  /**
   * `auto` (default): `wasm` when it supports the model, else `jit`; `wasm`, `jit`, or
   * `reference` (the plain-loop oracle). The jit and reference backends dequantise stored
   * weights to F32 when the model is built (4 bytes per weight: 4-8x a quantised file).
   */
  backend?: Backend;
  /**
   * Threads of the wasm backend, 1..64 (default `navigator.hardwareConcurrency`): rows of
   * every matrix product and heads of attention split between them. Other backends run on
   * one thread.
   */
  threads?: number;
  /**
   * Slots in each layer's KV ring (default and maximum: `context_length`). A smaller value
   * saves memory; once a sequence is longer, the oldest tokens fall out of attention
   * (sliding-window attention). It is the context that picks `longrope`'s factor set (long
   * above `rope_original_context_length`, as llama.cpp's `n_ctx`; core/rope.ts).
   */
  kvCapacity?: number;
  /** Tokens per prefill chunk (default 128, `DEFAULT_PREFILL_CHUNK` of codegen/plan.ts). */
  prefillChunk?: number;
  /**
   * Element type of the K cache: `f32` (default) or `f16` (half the KV memory and the bytes
   * attention reads; K rounded to nearest even when stored, as llama.cpp's default
   * `--cache-type-k f16`). `f16` needs the wasm backend.
   */
  cacheTypeK?: KvCacheType;
  /** Element type of the V cache: `f32` (default) or `f16` (see `cacheTypeK`). */
  cacheTypeV?: KvCacheType;
  /** EOS ids beyond the tokenizer's (e.g. from HF generation_config.json). */
  extraEosIds?: number[];
  /** Sampling defaults from the model's files; used where generate options leave a gap. */
  generation?: GenerationDefaults;
  /** Called at the start of long stages (compiling kernels). */
  onProgress?: ProgressCallback;
  /**
   * Run one warm-up pass when the model is built (16 tokens; 2 on the reference), as
   * llama.cpp does, so that the first `generate` does not time the compilation of the
   * kernels, and so that weights holding NaN/Inf are reported at load. Default true.
   */
  warmup?: boolean;
}

/** Options of {@linkcode loadModel}. */
export interface LoadModelOptions
  extends Omit<ModelOptions, "extraEosIds" | "generation" | "kvCapacity"> {
  /**
   * Slots in each layer's KV ring, as {@linkcode ModelOptions.kvCapacity}; or a function of
   * the checkpoint's config that returns them, called once the config is read and before
   * any memory is sized (`gollm perplexity` sizes the cache from `context_length`). It may
   * throw to stop loading.
   */
  kvCapacity?: number | ((config: ModelConfig) => number);
  /**
   * A tokenizer file to use instead of the checkpoint's (llama2.c: needed unless
   * `tok{vocab}.bin` or `tokenizer.bin` sits beside the `.bin`).
   */
  tokenizerPath?: string;
  /**
   * Load a gollm directory whose tokenizer file is missing or malformed with no tokenizer
   * (token ids only) instead of failing. Default false.
   */
  optionalTokenizer?: boolean;
  /**
   * Called with the config as soon as the checkpoint is read, before the kernels are
   * compiled; throw to stop loading (the CLI checks `--kv-capacity` against
   * `context_length` here, so the error names its own flag).
   */
  onConfig?: (config: ModelConfig) => void;
}

/** Where a model came from. */
export interface CheckpointInfo {
  /** Checkpoint format, or `memory` for {@linkcode createModel} without a source. */
  format: CheckpointFormat | "memory";
  /** File or directory it was loaded from (`<memory>` for in-memory weights). */
  path: string;
}

/** Why generation ended. */
export type StopReason =
  /** The model produced an EOS id. */
  | "eos"
  /** `maxTokens` were generated. */
  | "max_tokens"
  /** A stop string appeared in the text, or (`jsonMode`, `jsonSchema`) the JSON value closed. */
  | "stop"
  /** A gpt2 model reached `context_length` (learned positions end there). */
  | "context"
  /** `signal` was aborted. */
  | "aborted";

/** Counters and timings of one {@linkcode Model.generate} call. */
export interface GenerateStats {
  /** Prompt length in tokens (BOS included). */
  promptTokens: number;
  /** Prompt tokens actually run (fewer when a cached prefix from the previous call was reused). */
  prefillTokens: number;
  /**
   * Wall time of the prefill forward pass(es), in milliseconds; prefill tok/s =
   * `prefillTokens / prefillMs * 1000`. The kernels' compilation is not in it (the load-time
   * warm-up pass, {@linkcode ModelOptions.warmup}); V8 may still be optimising them over the
   * first calls, so a short first prompt can read low (`gollm bench` measures steady state).
   */
  prefillMs: number;
  /** Single-token decode steps run. */
  decodeTokens: number;
  /**
   * Wall time of sampling and the decode steps, in milliseconds (not the consumer's time
   * between pieces); decode tok/s = `decodeTokens / decodeMs * 1000`.
   */
  decodeMs: number;
  /**
   * Generated token ids (EOS excluded). With a stop string, the ids end before the first
   * token whose text reaches into it, so they decode to the text emitted (to a prefix of
   * it when the stop string starts inside a token).
   */
  tokens: number[];
  /** Why it stopped. */
  stopReason: StopReason;
  /** Speculative decoding counters (acceptance, tokens per target step), when it ran. */
  speculative?: SpeculativeStats;
}

/**
 * Options of {@linkcode Model.generate}. Sampling options follow runtime/sampler.ts; `draft`,
 * `draftMax`, `draftMin`, `draftPMin` turn on speculative decoding (runtime/speculative.ts).
 */
export interface GenerateOptions extends SpeculativeGenerateOptions {
  /** Most tokens to generate (default 256). */
  maxTokens?: number;
  /** Softmax temperature; 0 = greedy (default: the model's generation default, else 0.8). */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off; default: model default, else off). */
  topK?: number;
  /** Nucleus sampling mass (1 = off; default: model default, else 0.95). */
  topP?: number;
  /** Drop tokens below minP × the top probability (0 = off, the default). */
  minP?: number;
  /** Repetition penalty over previous tokens (1 = off, the default). */
  repeatPenalty?: number;
  /** PRNG seed: the same seed gives the same text on every machine (default: random). */
  seed?: number;
  /**
   * Token id → bias added to its logit before sampling (OpenAI's `logit_bias`, llama.cpp's
   * `--logit-bias`): -100 all but bans a token, +100 all but forces it, `-Infinity` bans it
   * (runtime/sampler.ts `SamplerOptions.logitBias`). Ids must be in the vocabulary.
   */
  logitBias?: SamplerOptions["logitBias"];
  /**
   * JSON mode (OpenAI's `response_format: {"type": "json_object"}`): only tokens that keep
   * the reply a prefix of a JSON object are sampled, and generation stops (`stop`) when the
   * object closes (runtime/json_constraint.ts). Not with a draft. Default false.
   */
  jsonMode?: boolean;
  /**
   * Structured outputs (OpenAI's `response_format: {"type": "json_schema"}`): only tokens
   * that keep the reply a prefix of a JSON text valid for this JSON Schema are sampled, and
   * generation stops when the value is complete (runtime/json_schema.ts: the subset taken,
   * properties in the schema's order, absent `additionalProperties` = false). A schema
   * outside the subset throws a `JsonSchemaError` naming the path (`jsonSchema.items: ...`).
   * Not with `jsonMode` or a draft.
   */
  jsonSchema?: Record<string, unknown> | boolean;
  /** Stop when any of these strings appears; it is not emitted. */
  stop?: string[];
  /** Prepend BOS to a text prompt (default: the tokenizer's `addBos`). */
  addBos?: boolean;
  /**
   * Recognise special-token text (`<|endoftext|>`) in a text prompt and encode it as that
   * token (default true, as the tokenizers' default; false: it is plain text).
   */
  special?: boolean;
  /** Aborting stops generation after the current token (stop reason `aborted`). */
  signal?: AbortSignal;
  /** Receives the stats when generation ends. */
  onStats?: (stats: GenerateStats) => void;
  /**
   * Receives one-line notices, each at most once per call: the KV window starts sliding,
   * a gpt2 model reaches its context length.
   */
  onNotice?: (message: string) => void;
}

/** A runnable language model. One generation at a time (it owns one KV cache). */
export interface Model {
  /** The validated config. */
  readonly config: ModelConfig;
  /** The tokenizer, or null for a model used with token ids only. */
  readonly tokenizer: Tokenizer | null;
  /** Where it came from. */
  readonly checkpoint: CheckpointInfo;
  /** The forward implementation in use (never `auto`: the one auto chose). */
  readonly backend: Backend;
  /** Threads a forward step runs on. */
  readonly threads: number;
  /**
   * Stops the model's worker threads (idempotent). The model cannot run afterwards. A
   * dropped model's threads stop when it is garbage-collected; they never keep the
   * process alive.
   */
  close(): void;
  /** Same as {@linkcode Model.close} (`using model = await loadModel(...)`). */
  [Symbol.dispose](): void;
  /** Slots in each layer's KV ring. */
  readonly kvCapacity: number;
  /** Generation stops at any of these ids (tokenizer EOS ids plus extra ones). */
  readonly eosIds: readonly number[];
  /** Stats of the last finished {@linkcode Model.generate} call, or null. */
  readonly stats: GenerateStats | null;
  /**
   * Runs `tokens` at positions `pos..pos+n-1` and returns the last token's logits.
   * @param tokens Token ids in `[0, vocab_size)`.
   * @param pos Absolute position of `tokens[0]` (default 0: a new sequence).
   * @param out Where to write the logits (length `vocab_size`), reused across calls so a
   *   decode loop allocates nothing (a new 4 · vocab_size-byte array per call is garbage V8
   *   collects late: 500 steps of a 32k vocabulary grew the RSS by 50 MB).
   * @returns `out`, or a new `(vocab_size)` array without it.
   * @throws {GollmError} for an id outside the vocabulary, (gpt2) a position past the
   *   context, or an `out` whose length is not `vocab_size`.
   */
  forward(tokens: ArrayLike<number>, pos?: number, out?: Float32Array): Float32Array;
  /**
   * Like {@linkcode Model.forward} but returns every position's logits.
   * @param tokens Token ids.
   * @param pos Absolute position of `tokens[0]` (default 0).
   * @returns A new `(n, vocab_size)` row-major array.
   * @throws {GollmError} as for `forward`.
   */
  forwardAll(tokens: ArrayLike<number>, pos?: number): Float32Array;
  /**
   * Generates a continuation of `prompt`, streaming text pieces (the prompt is not echoed).
   * @param prompt Text (encoded with the tokenizer) or token ids.
   * @param options Sampling, limits, stop strings, callbacks.
   * @returns Text pieces; never splits a UTF-8 character; stop strings are held back.
   * @throws {GollmError} for a prompt longer than the context (see {@linkcode createModel}),
   *   an empty prompt without BOS, a text prompt on a model without tokenizer, or a second
   *   concurrent call.
   */
  generate(prompt: string | readonly number[], options?: GenerateOptions): AsyncIterable<string>;
  /**
   * Whether positions `from .. last` can be run and then rolled back (speculative decoding):
   * a later run from any position in `[from, last + 1]` sees the K/V before it as if they had
   * never run. False once the KV ring wrapped over a slot inside `from`'s window.
   * @param from First position that may be rolled back.
   * @param last Last position written (`last < from`: nothing to roll back, true).
   * @returns Whether rolling back is safe.
   */
  canRollback(from: number, last: number): boolean;
}

function resolveCapacity(config: ModelConfig, kvCapacity: number | undefined): number {
  const cap = kvCapacity ?? config.context_length;
  if (!Number.isInteger(cap) || cap < 1) {
    throw new GollmError(`kvCapacity must be a positive integer, got ${kvCapacity}`);
  }
  if (cap > config.context_length) {
    throw new GollmError(
      `kvCapacity ${cap} exceeds the model's context length ${config.context_length}`,
    );
  }
  return cap;
}

/**
 * Builds a model from an in-memory config, weights and tokenizer (tests, random weights,
 * custom loaders).
 *
 * Prompt length rules: a prompt longer than `context_length` is an error — except for
 * `llama` models built with `kvCapacity < context_length`, which run it with sliding-window
 * attention and report a notice. gpt2 models (learned positions) never go past
 * `context_length`: generation stops there with stop reason `context` and a notice.
 *
 * @param config The validated config.
 * @param weights Canonical F32 weights (checked by the backend).
 * @param tokenizer The tokenizer, or null for token-id use (forward only).
 * @param options Backend, KV capacity, prefill chunk, extra EOS ids, sampling defaults.
 * @param checkpoint Where the weights came from (default `{format: "memory", path: "<memory>"}`).
 * @returns The model.
 * @throws {GollmError} for a kvCapacity outside `[1, context_length]`, or weights that give
 *   NaN/Inf logits in the warm-up pass.
 * @throws {FormatError} when the weights do not match the config.
 *
 * @example
 * ```ts
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createModel } from "./model.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const m = createModel(c, randomWeights(c, 1), null, { backend: "reference" });
 * import assert from "node:assert/strict";
 * assert.equal(m.forward([1, 2, 3]).length, c.vocab_size); // (vocab_size) logits of the last token
 * ```
 */
export function createModel(
  config: ModelConfig,
  weights: Weights,
  tokenizer: Tokenizer | null,
  options: ModelOptions = {},
  checkpoint: CheckpointInfo = { format: "memory", path: "<memory>" },
): Model {
  const requested = options.backend ?? "auto";
  if (!["auto", "jit", "reference", "wasm"].includes(requested)) {
    throw new GollmError(
      `backend must be auto, wasm, jit or reference, got ${JSON.stringify(requested)}`,
    );
  }
  const threads = resolveThreads(options.threads);
  const kvCapacity = resolveCapacity(config, options.kvCapacity);
  if (options.prefillChunk !== undefined) checkInt("prefillChunk", options.prefillChunk, 1);
  const types = resolveCacheTypes(options, requested);
  const fwd = { kvCapacity, prefillChunk: options.prefillChunk, ...types };
  const { value: pass, backend } = buildOnBackend<ModelPass>(requested, weights, {
    wasm: () => {
      options.onProgress?.({ stage: "compiling kernels" });
      return compileModel(config, weights, {
        ...fwd,
        backend: "wasm",
        threads,
        startPool: startStepPool,
      });
    },
    f32: (backend, f32) => {
      if (backend === "reference") return createReference(config, f32, fwd);
      options.onProgress?.({ stage: "compiling kernels" });
      return compileModel(config, f32, fwd);
    },
  });
  return modelOf(config, pass, tokenizer, checkpoint, backend, options);
}

/** Warms a compiled pass up (closing it when that fails) and wraps it as a Model. */
function modelOf(
  config: ModelConfig,
  pass: ModelPass,
  tokenizer: Tokenizer | null,
  checkpoint: CheckpointInfo,
  backend: Backend,
  options: ModelOptions,
): Model {
  try {
    if (options.warmup ?? true) warmUp(pass, backend, checkpoint.path);
  } catch (e) {
    pass.close?.();
    throw e;
  }
  return new GollmModel(config, pass, tokenizer, checkpoint, backend, options);
}

/**
 * Checks the KV cache types of the options: each absent, `f32` or `f16`, and `f16` only on
 * a backend that can run it (wasm or auto; auto then needs the wasm kernels to cover the
 * model). Used by {@linkcode createModel}, {@linkcode loadModel} and the serving model.
 *
 * @param options `cacheTypeK`, `cacheTypeV`.
 * @param backend The requested backend.
 * @returns The types given (absent ones left out).
 * @throws {RangeError} for a type that is not one (core/forward.ts `kvCacheTypes`:
 *   `cacheTypeK must be one of f32, f16, got "q8_0"`).
 * @throws {GollmError} `cacheTypeV f16 needs the wasm backend (backend jit keeps an f32 KV
 *   cache)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveCacheTypes } from "./model.ts";
 * assert.deepEqual(resolveCacheTypes({ cacheTypeV: "f16" }, "auto"), { cacheTypeV: "f16" });
 * assert.throws(() => resolveCacheTypes({ cacheTypeK: "f16" }, "jit"), /needs the wasm backend/);
 * ```
 */
export function resolveCacheTypes(options: KvCacheTypes, backend: Backend): KvCacheTypes {
  const types = kvCacheTypes(options);
  for (const [k, t] of Object.entries(types)) {
    if (t === "f16" && backend !== "wasm" && backend !== "auto") {
      throw new GollmError(
        `${k} f16 needs the wasm backend (backend ${backend} keeps an f32 KV cache)`,
      );
    }
  }
  return types;
}

/**
 * Checks a thread count: an integer in 1..{@linkcode MAX_THREADS}; default
 * `navigator.hardwareConcurrency` (at most 64), or 1 where no pool can run (a browser page's
 * main thread, a page without cross-origin isolation: runtime/threads.ts
 * `threadsUnavailable`).
 *
 * @param threads The option (undefined: the default).
 * @returns The thread count.
 * @throws {GollmError} `threads must be an integer in 1..64, got 0`; more than one thread
 *   where no pool can run: `2 threads: more than one thread needs cross-origin isolation
 *   ...`, checked before anything is downloaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveThreads } from "./model.ts";
 * assert.equal(resolveThreads(3), 3);
 * assert.throws(() => resolveThreads(0), /threads must be an integer in 1\.\.64, got 0/);
 * ```
 */
export function resolveThreads(threads: number | undefined): number {
  const why = threadsUnavailable();
  const cores = why === null ? navigator.hardwareConcurrency ?? 1 : 1;
  const n = threads ?? Math.min(MAX_THREADS, cores);
  if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS) {
    throw new GollmError(`threads must be an integer in 1..${MAX_THREADS}, got ${threads}`);
  }
  if (n > 1 && why !== null) throw new GollmError(`${n} threads: ${why}`);
  return n;
}

/**
 * The load-time warm-up pass (llama.cpp runs one too): a prompt of
 * {@linkcode PANEL_MIN_TOKENS} tokens (2 on the reference), enough rows for every type's
 * prefill panel kernel (codegen/wasm/linear.ts `panelMinTokens`: 2 to 6 by type), so that V8
 * compiles the generated kernels before anything is timed; its logits show NaN/Inf weights
 * at once. The KV cache it wrote is overwritten by the next sequence. (It was 16 tokens:
 * 6 load an F16 g110M on 2 threads ~55 ms sooner.)
 */
function warmUp(pass: ForwardPass, backend: Backend, path: string): void {
  const n = Math.min(backend === "reference" ? 2 : PANEL_MIN_TOKENS, pass.kvCapacity);
  const logits = pass.forward(new Array(n).fill(0), 0); // (vocab_size)
  let bad = 0;
  for (let i = 0; i < logits.length; i++) if (!Number.isFinite(logits[i])) bad++;
  if (bad > 0) {
    throw new GollmError(
      `${path}: ${bad} of ${logits.length} logits of the first forward pass are NaN or ` +
        `infinite; the model's weights hold NaN or Inf values`,
    );
  }
}

/**
 * Loads a model from any supported checkpoint (gollm or Hugging Face directory, GGUF file,
 * llama2.c `.bin`; see formats/load.ts), or from a GGUF file's bytes, and prepares its
 * forward pass.
 *
 * A GGUF given as bytes (core/model_bytes.ts `ModelBytes`: a `Uint8Array`, `ArrayBuffer`,
 * `Blob`, a fetched `Response`, or an `http:`/`https:` URL fetched here) is read once, front
 * to back: with `auto`/`wasm` its tensor data streams straight into the WASM memory as the
 * bytes arrive (a download is not held twice, and `onProgress` reports the fraction read);
 * `jit` and `reference` read it whole and dequantise it, as from a file.
 *
 * @param source Model directory or file (a path or a `file:` URL), or a GGUF's bytes.
 * @param options Backend (`auto` default), KV capacity, prefill chunk, tokenizer file,
 *   progress callback.
 * @returns The model, ready to `generate`.
 * @throws {GollmError} (ConfigError, FormatError) for a missing or malformed checkpoint,
 *   or a bad option; for bytes, a failed request or a non-2xx status (naming the URL), or
 *   a source that is not a GGUF (FormatError: bad magic).
 *
 * @example
 * ```ts ignore
 * import { loadModel } from "./model.ts";
 * const model = await loadModel("models/default");
 * for await (const piece of model.generate("Once upon a time", { maxTokens: 50, seed: 1 })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(piece));
 * }
 * console.log(model.stats);
 * // A GGUF from a server, streamed into the WASM memory:
 * const remote = await loadModel(new URL("https://example.com/stories260K.gguf"));
 * ```
 */
export async function loadModel(
  source: string | ModelBytes,
  options: LoadModelOptions = {},
): Promise<Model> {
  const backend = options.backend ?? "auto";
  const threads = resolveThreads(options.threads);
  const cacheTypes = resolveCacheTypes(options, backend); // before any download
  const wasm = backend === "auto" || backend === "wasm";
  // A GGUF goes straight into the WASM memory, from its file or as its bytes arrive.
  const gguf = wasm ? await ggufSource(source) : null;
  if (gguf !== null) return await ggufIntoWasm(gguf, backend, threads, cacheTypes, options);
  const ckpt = await loadCheckpoint(source, {
    tokenizerPath: options.tokenizerPath,
    onProgress: options.onProgress,
    optionalTokenizer: options.optionalTokenizer,
    // The wasm backend reads F16/BF16/ggml blocks as stored: no F32 copy of the model.
    stored: wasm,
  });
  options.onConfig?.(ckpt.config);
  return createModel(
    ckpt.config,
    ckpt.weights,
    ckpt.tokenizer,
    {
      ...options,
      kvCapacity: capacityOf(ckpt.config, options.kvCapacity),
      extraEosIds: ckpt.extraEosIds,
      generation: ckpt.generation,
    },
    { format: ckpt.format, path: ckpt.path },
  );
}

/** {@linkcode LoadModelOptions.kvCapacity} for `config`, checked as createModel checks it. */
function capacityOf(config: ModelConfig, kv: LoadModelOptions["kvCapacity"]): number {
  return resolveCapacity(config, typeof kv === "function" ? kv(config) : kv);
}

/**
 * {@linkcode loadModel} of a GGUF on `auto`/`wasm`: straight into the WASM backend's memory
 * (the file's bytes are the model's weights); with `auto`, a model the WASM kernels do not
 * cover falls back to jit with the checkpoint's weights.
 */
async function ggufIntoWasm(
  source: string | ByteReader,
  backend: Backend,
  threads: number,
  cacheTypes: KvCacheTypes,
  options: LoadModelOptions,
): Promise<Model> {
  let kvCapacity = 0; // resolved once, from the header's config
  const { checkpoint: ck, pass, error } = await loadGgufIntoWasm(source, {
    kvCapacity: (c) => (kvCapacity = capacityOf(c, options.kvCapacity)),
    prefillChunk: options.prefillChunk,
    ...cacheTypes,
    threads,
    tokenizerPath: options.tokenizerPath,
    onProgress: options.onProgress,
    onConfig: options.onConfig,
  });
  const info: CheckpointInfo = { format: ck.format, path: ck.path };
  const modelOptions = {
    ...options,
    kvCapacity: kvCapacity || capacityOf(ck.config, options.kvCapacity),
    extraEosIds: ck.extraEosIds,
    generation: ck.generation,
  };
  if (pass) return modelOf(ck.config, pass, ck.tokenizer, info, "wasm", modelOptions);
  fallbackFromWasm(backend, error); // auto, and the WASM kernels do not cover the model
  return createModel(
    ck.config,
    ck.weights,
    ck.tokenizer,
    { ...modelOptions, backend: "jit" },
    info,
  );
}
