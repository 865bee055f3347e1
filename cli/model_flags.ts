/**
 * The option specs shared by the commands that run a model (generate, chat, logits): the
 * flags that pick and load a model (`--model`, `--backend`, `--kv-capacity`, `--tokenizer`),
 * the sampling flags, `--no-special`; and loading a model from them.
 *
 * @module
 */
import { DEFAULT_PREFILL_CHUNK } from "../codegen/plan.ts";
import { type GenerateOptions, loadModel, type Model } from "../runtime/model.ts";
import { type OptionSpec, type PositionalSpec, UsageError, type Values } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import { withProgress } from "./progress_line.ts";

/** The positional `PATH` that stands for `--model` (every command that reads a model). */
export const MODEL_POSITIONAL: PositionalSpec = {
  name: "PATH",
  description: "model directory (gollm or Hugging Face), GGUF file or llama2.c .bin; " +
    "or an http(s) URL of a GGUF, streamed into memory",
  option: "model",
};

/**
 * The model a command was given, as the loaders take it: an `http://` or `https://`
 * address becomes a `URL` (a GGUF streamed into memory, core/model_bytes.ts); anything else
 * is a path.
 *
 * @param arg The PATH argument or `--model` value.
 * @returns A URL or the path.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelSource } from "./model_flags.ts";
 * assert.ok(modelSource("https://example.com/m.gguf") instanceof URL);
 * assert.equal(modelSource("models/default"), "models/default");
 * ```
 */
export function modelSource(arg: string): string | URL {
  return /^https?:\/\//i.test(arg) ? new URL(arg) : arg;
}

/** `--model PATH` alone (tokenize, inspect). */
export const MODEL_OPTION = {
  model: {
    type: "string",
    meta: "PATH",
    description: "model directory (gollm or Hugging Face), GGUF file or llama2.c .bin; " +
      "or an http(s) URL of a GGUF",
    defaultText: "the shipped models/default",
  },
} as const satisfies Record<string, OptionSpec>;

/** `--tokenizer PATH`. */
export const TOKENIZER_OPTION = {
  tokenizer: {
    type: "string",
    meta: "PATH",
    description: "tokenizer file to use instead of the model's (needed for a llama2.c .bin " +
      "unless tok{vocab}.bin or tokenizer.bin sits beside it)",
  },
} as const satisfies Record<string, OptionSpec>;

/** `--kv-capacity N` (checked against the context length once the config is read). */
export const KV_CAPACITY_OPTION = {
  "kv-capacity": {
    type: "int",
    min: 1,
    meta: "N",
    description: "KV cache slots, at most the context length; past them the oldest tokens " +
      "leave attention, a sliding window",
    defaultText: "the context length",
  },
} as const satisfies Record<string, OptionSpec>;

/** `--prefill-chunk T` (inspect, kernels; checked against the context length). */
export const PREFILL_CHUNK_OPTION = {
  "prefill-chunk": {
    type: "int",
    min: 1,
    default: DEFAULT_PREFILL_CHUNK,
    meta: "T",
    description: "tokens per prefill chunk (clamped to the KV capacity), as the runtime uses",
  },
} as const satisfies Record<string, OptionSpec>;

/** `--threads N`: threads of the wasm backend. */
export const THREADS_OPTION = {
  threads: {
    type: "int",
    min: 1,
    max: 64,
    meta: "N",
    description: "threads of the wasm backend (rows of every matrix product and heads of " +
      "attention are split between them)",
    defaultText: "the number of CPU cores",
  },
} as const satisfies Record<string, OptionSpec>;

/** `--cache-type-k T`, `--cache-type-v T` (llama.cpp's names): the KV cache's element types. */
export const CACHE_TYPE_OPTIONS = {
  "cache-type-k": {
    type: "choice",
    choices: ["f32", "f16"],
    default: "f32",
    meta: "T",
    description: "element type of the K cache: f32, or f16 (half the KV memory; keys rounded " +
      "to f16 when stored, as llama.cpp's default; wasm backend)",
  },
  "cache-type-v": {
    type: "choice",
    choices: ["f32", "f16"],
    default: "f32",
    meta: "T",
    description: "element type of the V cache: f32 or f16 (as --cache-type-k)",
  },
} as const satisfies Record<string, OptionSpec>;

/** The flags that pick and load a model (generate, chat, logits). */
export const MODEL_OPTIONS = {
  ...MODEL_OPTION,
  backend: {
    type: "choice",
    choices: ["auto", "wasm", "jit", "reference"],
    default: "auto",
    meta: "B",
    description: "auto (wasm when it runs the model, else jit), wasm (the whole step in " +
      "generated WASM SIMD, weights as stored), jit (generated JS kernels) or reference " +
      "(plain loops)",
  },
  ...THREADS_OPTION,
  ...KV_CAPACITY_OPTION,
  ...CACHE_TYPE_OPTIONS,
  ...TOKENIZER_OPTION,
} as const satisfies Record<string, OptionSpec>;

/** `--no-special`: special-token text in a text prompt is plain text. */
export const NO_SPECIAL_OPTION = {
  "no-special": {
    type: "bool",
    description: "encode special-token text in the prompt (<|endoftext|>, <s>) as plain text " +
      "(default: it becomes the special token)",
  },
} as const satisfies Record<string, OptionSpec>;

/** The sampling flags of generate and chat (ranges as runtime/sampler.ts checks them). */
export const SAMPLING_OPTIONS = {
  temperature: {
    type: "number",
    min: 0,
    meta: "T",
    description: "softmax temperature; 0 = greedy",
    defaultText: "the model's, else 0.8",
  },
  "top-k": {
    type: "int",
    min: 0,
    meta: "K",
    description: "keep the K most likely tokens; 0 = off",
    defaultText: "the model's, else 0",
  },
  "top-p": {
    type: "number",
    min: 0,
    max: 1,
    minExclusive: true,
    meta: "P",
    description: "nucleus sampling: keep the most likely tokens up to this mass; 1 = off",
    defaultText: "the model's, else 0.95",
  },
  "min-p": {
    type: "number",
    min: 0,
    max: 1,
    default: 0,
    meta: "P",
    description: "drop tokens below P x the top probability; 0 = off",
  },
  "repeat-penalty": {
    type: "number",
    min: 0,
    minExclusive: true,
    default: 1,
    meta: "R",
    description: "penalise tokens among the last 64 of the context; 1 = off",
  },
  seed: {
    type: "int",
    min: 0,
    meta: "S",
    description: "PRNG seed: the same seed gives the same text on every machine",
    defaultText: "random",
  },
  "logit-bias": {
    type: "string",
    repeatable: true,
    meta: "ID±B",
    description: "add B to token ID's logit, as llama.cpp's --logit-bias: 15043+1 makes it " +
      "likelier, 15043-1 less likely, 2-inf bans it",
  },
} as const satisfies Record<string, OptionSpec>;

/** The sampling fields of {@linkcode GenerateOptions} that the sampling flags set. */
export type SamplingFlags = Pick<
  GenerateOptions,
  "temperature" | "topK" | "topP" | "minP" | "repeatPenalty" | "seed" | "logitBias"
>;

/**
 * One `--logit-bias` value in llama.cpp's syntax, `TOKEN_ID(+|-)BIAS` (`15043+1`,
 * `15043-0.5`, `2-inf`), as `[id, bias]`.
 *
 * @param text The flag's value.
 * @param usage The command's usage line, for the error.
 * @returns The token id and its bias.
 * @throws {UsageError} `--logit-bias: '15043' is not ID+BIAS or ID-BIAS (e.g. 15043+1, 2-inf)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLogitBias } from "./model_flags.ts";
 * assert.deepEqual(parseLogitBias("15043+1.5", ""), [15043, 1.5]);
 * assert.deepEqual(parseLogitBias("2-inf", ""), [2, -Infinity]);
 * ```
 */
export function parseLogitBias(text: string, usage: string): [number, number] {
  const m = /^(\d{1,10})([+-])(inf|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)$/.exec(text);
  if (!m || (m[3] === "inf" && m[2] === "+")) {
    throw new UsageError(
      `--logit-bias: '${text}' is not ID+BIAS or ID-BIAS (e.g. 15043+1, 2-inf)`,
      usage,
    );
  }
  const size = m[3] === "inf" ? Infinity : Number(m[3]);
  return [Number(m[1]), m[2] === "-" ? -size : size];
}

/**
 * The sampling flags as `GenerateOptions` fields (undefined where not given, so the model's
 * own defaults apply). The values were range-checked by the parser.
 *
 * @param v Parsed values of a spec that includes {@linkcode SAMPLING_OPTIONS}.
 * @param usage The command's usage line, for a bad `--logit-bias`.
 * @returns The fields (`logitBias` only when `--logit-bias` was given).
 * @throws {UsageError} for a `--logit-bias` value that is not `ID+BIAS` / `ID-BIAS`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { samplingOptions } from "./model_flags.ts";
 * const s = samplingOptions({
 *   temperature: 0, "top-k": undefined, "top-p": undefined, "min-p": 0, "repeat-penalty": 1, seed: 7,
 *   "logit-bias": [],
 * });
 * assert.deepEqual(s, {
 *   temperature: 0, topK: undefined, topP: undefined, minP: 0, repeatPenalty: 1, seed: 7,
 * });
 * ```
 */
export function samplingOptions(
  v: Values<typeof SAMPLING_OPTIONS>,
  usage = "",
): SamplingFlags {
  const bias = v["logit-bias"].map((b) => parseLogitBias(b, usage));
  return {
    temperature: v.temperature,
    topK: v["top-k"],
    topP: v["top-p"],
    minP: v["min-p"],
    repeatPenalty: v["repeat-penalty"],
    seed: v.seed,
    ...(bias.length ? { logitBias: bias } : {}),
  };
}

/** Options of {@linkcode loadModelFlags}. */
export interface LoadModelFlagsOptions {
  /** Print nothing on stderr (e.g. with `--json`). */
  quiet?: boolean;
  /**
   * Load a model directory whose tokenizer file is missing or malformed without a tokenizer
   * (commands that only need token ids, e.g. `logits --tokens`). Default false.
   */
  optionalTokenizer?: boolean;
}

/**
 * Checks `--kv-capacity` against the model's context length: the one flag value that can
 * only be checked once the config is read.
 *
 * @param kvCapacity The flag's value (undefined: not given).
 * @param contextLength The model's `context_length`.
 * @param source The model path, for the message.
 * @param usage Usage line for the error.
 * @throws {UsageError} `--kv-capacity 300 exceeds the context length 256 of PATH`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkKvCapacity } from "./model_flags.ts";
 * checkKvCapacity(128, 256, "m", "usage: gollm x");
 * assert.throws(() => checkKvCapacity(300, 256, "m", "usage: gollm x"), /--kv-capacity 300 exceeds/);
 * ```
 */
export function checkKvCapacity(
  kvCapacity: number | undefined,
  contextLength: number,
  source: string,
  usage: string,
): void {
  if (kvCapacity !== undefined && kvCapacity > contextLength) {
    throw new UsageError(
      `--kv-capacity ${kvCapacity} exceeds the context length ${contextLength} of ${source}; ` +
        `give at most ${contextLength}`,
      usage,
    );
  }
}

/**
 * Checks `--cache-type-k` / `--cache-type-v` against `--backend`: f16 pools exist only in
 * the wasm backend (auto picks it).
 *
 * @param v The parsed `backend`, `cache-type-k` and `cache-type-v`.
 * @param usage Usage line for the error.
 * @throws {UsageError} `--cache-type-k f16 needs --backend wasm or auto, got jit`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkCacheTypeFlags } from "./model_flags.ts";
 * const v = { backend: "jit", "cache-type-k": "f16", "cache-type-v": "f32" };
 * assert.throws(() => checkCacheTypeFlags(v, "usage: gollm x"), /needs --backend wasm or auto/);
 * ```
 */
export function checkCacheTypeFlags(
  v: { backend: string; "cache-type-k": string; "cache-type-v": string },
  usage: string,
): void {
  for (const flag of ["cache-type-k", "cache-type-v"] as const) {
    if (v[flag] === "f16" && v.backend !== "auto" && v.backend !== "wasm") {
      throw new UsageError(`--${flag} f16 needs --backend wasm or auto, got ${v.backend}`, usage);
    }
  }
}

/**
 * Loads the model the flags name (default: the shipped models/default) under a progress
 * display that ends with `loaded PATH (format, backend) in T s` on stderr. `--kv-capacity`
 * is checked against the context length right after the checkpoint is read, before the
 * kernels are compiled.
 *
 * @param v Parsed values of a spec that includes {@linkcode MODEL_OPTIONS}.
 * @param usage Usage line for errors.
 * @param options Quiet, optional tokenizer.
 * @returns The model and the path it was loaded from.
 * @throws {UsageError} for a `--kv-capacity` above the context length, or an f16
 *   `--cache-type-k`/`--cache-type-v` on the jit or reference backend.
 * @throws {GollmError} for a missing default model or a missing/malformed checkpoint.
 *
 * @example
 * ```ts ignore
 * import { loadModelFlags } from "./model_flags.ts";
 * const { model, path } = await loadModelFlags(
 *   { model: undefined, backend: "auto", threads: undefined, "kv-capacity": undefined,
 *     "cache-type-k": "f32", "cache-type-v": "f32", tokenizer: undefined },
 *   "usage: gollm x",
 * );
 * ```
 */
export async function loadModelFlags(
  v: Values<typeof MODEL_OPTIONS>,
  usage: string,
  options: LoadModelFlagsOptions = {},
): Promise<{ model: Model; path: string }> {
  const quiet = options.quiet ?? false;
  const path = v.model ?? await resolveDefaultModel(quiet);
  const backend = v.backend, kvCapacity = v["kv-capacity"];
  checkCacheTypeFlags(v, usage);
  const model = await withProgress(
    quiet,
    (onProgress) =>
      loadModel(modelSource(path), {
        backend,
        threads: v.threads,
        kvCapacity,
        cacheTypeK: v["cache-type-k"],
        cacheTypeV: v["cache-type-v"],
        tokenizerPath: v.tokenizer,
        optionalTokenizer: options.optionalTokenizer,
        onProgress,
        onConfig: (c) => checkKvCapacity(kvCapacity, c.context_length, path, usage),
      }),
    (m) => loadedLine(path, m),
  );
  return { model, path };
}

/**
 * The line a command prints once its model is loaded (the progress display adds ` in T s`):
 * `loaded PATH (format, backend[, N threads])`, threads only when more than one.
 *
 * @param path The model path as given.
 * @param m The loaded model's checkpoint format, resolved backend and threads (a `Model` or
 *   a serving `BatchModel`).
 * @returns The line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadedLine } from "./model_flags.ts";
 * const m = { checkpoint: { format: "gguf" as const }, backend: "wasm", threads: 2 };
 * assert.equal(loadedLine("m.gguf", m), "loaded m.gguf (gguf, wasm, 2 threads)");
 * assert.equal(loadedLine("m.gguf", { ...m, threads: 1 }), "loaded m.gguf (gguf, wasm)");
 * ```
 */
export function loadedLine(
  path: string,
  m: { checkpoint: { format: string }; backend: string; threads: number },
): string {
  return `loaded ${path} (${m.checkpoint.format}, ${m.backend}` +
    (m.threads > 1 ? `, ${m.threads} threads)` : ")");
}
