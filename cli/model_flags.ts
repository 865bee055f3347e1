/**
 * The flags that pick and load a model (`--model`, `--backend`, `--kv-capacity`,
 * `--tokenizer`) and the sampling flags, shared by generate, chat and logits.
 *
 * @module
 */
import { type Backend, type GenerateOptions, loadModel, type Model } from "../runtime/model.ts";
import { choice, int, num, type OptionSpecs, str, UsageError, type Values } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import { withProgress } from "./progress_line.ts";

export const MODEL_OPTIONS: OptionSpecs = {
  model: { type: "string" },
  backend: { type: "string" },
  "kv-capacity": { type: "string" },
  tokenizer: { type: "string" },
};

/** The {@linkcode MODEL_OPTIONS} values, checked; `model` is resolved when loading. */
export interface ModelFlags {
  /** `--model` (undefined: the shipped default, resolved by {@linkcode loadModelFlags}). */
  model?: string;
  /** `--backend` (default `jit`). */
  backend: Backend;
  /** `--kv-capacity`, in tokens (>= 1). */
  kvCapacity?: number;
  /** `--tokenizer`. */
  tokenizerPath?: string;
  /**
   * Load a model directory whose tokenizer file is missing or malformed without a tokenizer
   * (set by commands that only need token ids, e.g. `logits --tokens`). Default false.
   */
  optionalTokenizer?: boolean;
}

/**
 * Reads and checks the {@linkcode MODEL_OPTIONS} flags (backend first, then kv capacity).
 *
 * @throws {UsageError} for a backend other than jit/reference or a kv capacity below 1.
 *
 * @example
 * ```ts
 * import { modelFlags } from "./model_flags.ts";
 * console.log(modelFlags({ "kv-capacity": "64" }, "usage: gollm x")); // backend "jit", kvCapacity 64
 * ```
 */
export function modelFlags(values: Values, usage: string): ModelFlags {
  return {
    model: str(values, "model"),
    backend: choice(values, "backend", usage, ["jit", "reference", "wasm"] as const) ?? "jit",
    kvCapacity: int(values, "kv-capacity", usage, 1),
    tokenizerPath: str(values, "tokenizer"),
  };
}

/**
 * Loads the model the flags name (default: the shipped models/default) under a progress
 * display that ends with `loaded PATH (format, backend) in T s` on stderr.
 *
 * @param flags From {@linkcode modelFlags}.
 * @param quiet Print nothing (e.g. with `--json`).
 * @returns The model and the path it was loaded from.
 * @throws {GollmError} for a missing default model or a missing/malformed checkpoint.
 *
 * @example
 * ```ts ignore
 * import { loadModelFlags, modelFlags } from "./model_flags.ts";
 * const { model, path } = await loadModelFlags(modelFlags({}, "usage: gollm x"));
 * console.log(path, model.config.n_layers);
 * ```
 */
export async function loadModelFlags(
  flags: ModelFlags,
  quiet = false,
): Promise<{ model: Model; path: string }> {
  const path = flags.model ?? await resolveDefaultModel(quiet);
  const { backend, kvCapacity, tokenizerPath, optionalTokenizer } = flags;
  const model = await withProgress(
    quiet,
    (onProgress) =>
      loadModel(path, { backend, kvCapacity, tokenizerPath, optionalTokenizer, onProgress }),
    (m) => `loaded ${path} (${m.checkpoint.format}, ${backend})`,
  );
  return { model, path };
}

/** Common help lines for the sampling options of generate and chat. */
export const SAMPLING_HELP =
  `  --temperature T      softmax temperature; 0 = greedy (default: model's, else 0.8)
  --top-k K            keep the K most likely tokens (0 = off)
  --top-p P            nucleus sampling mass in (0, 1] (default: model's, else 0.95)
  --min-p P            drop tokens below P x the top probability (default 0 = off)
  --repeat-penalty R   penalise tokens already in the context (default 1 = off)
  --seed S             PRNG seed: the same seed gives the same text (default: random)`;

/** Option specs of the sampling flags. */
export const SAMPLING_OPTIONS: OptionSpecs = {
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  seed: { type: "string" },
};

/** The sampling fields of {@linkcode GenerateOptions} that the sampling flags set. */
export type SamplingFlags = Pick<
  GenerateOptions,
  "temperature" | "topK" | "topP" | "minP" | "repeatPenalty" | "seed"
>;

/**
 * Reads the sampling flags into `GenerateOptions` fields (undefined where not given).
 *
 * @throws {UsageError} for a value out of range (top-p must be in (0, 1]).
 *
 * @example
 * ```ts
 * import { samplingOptions } from "./model_flags.ts";
 * console.log(samplingOptions({ temperature: "0", seed: "7" }, "usage: gollm x"));
 * ```
 */
export function samplingOptions(values: Values, usage: string): SamplingFlags {
  const topP = num(values, "top-p", usage, 0, 1);
  if (topP === 0) throw new UsageError("--top-p must be in (0, 1], got '0'", usage);
  return {
    temperature: num(values, "temperature", usage, 0),
    topK: int(values, "top-k", usage, 0),
    topP,
    minP: num(values, "min-p", usage, 0, 1),
    repeatPenalty: num(values, "repeat-penalty", usage, 0),
    seed: int(values, "seed", usage, 0),
  };
}
