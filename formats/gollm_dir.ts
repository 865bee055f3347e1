/**
 * The gollm model directory (one of the checkpoint formats of formats/load.ts): read and write.
 *
 * ```
 * <dir>/config.yaml          ModelConfig (core/config.ts); `tokenizer:` names the tokenizer
 * <dir>/model.safetensors    canonical tensor names; __metadata__ {format: "gollm", format_version: "1"}
 * <dir>/<tokenizer file>     e.g. tokenizer.tiktoken or tokenizer.bin, unless the config names
 *                            a built-in encoding (gpt2, cl100k_base, o200k_base) or "none"
 * <dir>/chat_template.jinja  optional: the tokenizer's Jinja chat template (as in HF directories)
 * ```
 *
 * Optional `__metadata__` keys written by {@linkcode writeGollmDir} when the source has them:
 * `extra_eos_ids` (JSON list of ids, e.g. from HF generation_config.json) and `generation`
 * (JSON object of sampling defaults).
 *
 * @module
 */
import { configToYaml, loadConfig, type ModelConfig } from "../core/config.ts";
import {
  checkGenerationDefaults,
  type Checkpoint,
  type CheckpointSummary,
  type CheckpointTensorInfo,
  heldInfo,
} from "./checkpoint.ts";
import { ConfigError, FormatError, GollmError } from "../core/errors.ts";
import type { ProgressCallback } from "../core/progress.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from "./safetensors.ts";
import { loadTokenizer } from "../tokenizers/tokenizer_file.ts";
import { optionalFile, readTokenizerText } from "../tokenizers/read_file.ts";
import { checkTensorShapes, checkWeights, type Weights } from "../core/weights.ts";
import { basename, join, pathExists, writeDirAtomic } from "../core/files.ts";

/** Optional file holding the tokenizer's chat template (the name HF directories use). */
const CHAT_TEMPLATE_FILE = "chat_template.jinja";

/** The same tokenizer with a chat template attached (tokenizer files do not store one). */
function withChatTemplate(tok: Tokenizer, template: string): Tokenizer {
  // Methods are bound once and reused: StreamDecoder calls tokenBytes for every token.
  const bound = new Map<PropertyKey, { fn: unknown; bound: unknown }>();
  return new Proxy(tok, {
    get(target, prop) {
      if (prop === "chatTemplate") return template;
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      let b = bound.get(prop);
      if (b === undefined || b.fn !== v) {
        b = { fn: v, bound: v.bind(target) };
        bound.set(prop, b);
      }
      return b.bound;
    },
  });
}

/** The `format_version` this code writes and the highest it reads. */
export const GOLLM_FORMAT_VERSION = 1;

/** Tokenizer names in config.yaml that are built in (no file in the directory). */
const BUILTIN_TOKENIZERS = new Set(["gpt2", "cl100k_base", "o200k_base"]);

/** Options of {@linkcode loadGollmDir}. */
export interface LoadGollmDirOptions {
  /** Called at the start of each stage (config, weights, tokenizer). */
  onProgress?: ProgressCallback;
  /**
   * When true, a tokenizer that cannot be loaded (the file config.yaml names is missing or
   * malformed) gives `tokenizer: null` instead of an error — for callers that only need token
   * ids, such as `gollm logits --tokens`. Default false.
   */
  optionalTokenizer?: boolean;
  /**
   * Keep F16/BF16 matrices as model.safetensors stores them (what the wasm backend runs: half
   * the memory of F32); vectors (norms, biases) and other dtypes are F32. Default false.
   */
  stored?: boolean;
}

/** Options of {@linkcode writeGollmDir}. */
export interface WriteGollmDirOptions {
  /** Storage dtype of the tensors in model.safetensors (default `f32`). */
  dtype?: "f32" | "f16" | "bf16";
  /** Replace `outDir` when it already exists (default false: that is an error). */
  overwrite?: boolean;
  /** Called at the start of each stage. */
  onProgress?: ProgressCallback;
}

/**
 * Loads a gollm model directory into a {@linkcode Checkpoint}.
 *
 * Steps: `config.yaml` through `loadConfig`; `model.safetensors`, whose `__metadata__` must
 * say `format: gollm` and a `format_version` this code reads (≤ {@linkcode GOLLM_FORMAT_VERSION});
 * `checkWeights` against the config; the tokenizer named by `config.tokenizer` (null only
 * when the config says `none`).
 *
 * @param dir The model directory.
 * @param options Progress callback; `optionalTokenizer` to tolerate a missing tokenizer.
 * @returns The checkpoint (`format: "gollm"`, F32 weights under canonical names).
 * @throws {ConfigError} for a bad config.yaml, or a tokenizer file it names that is absent
 *   (unless `optionalTokenizer`).
 * @throws {FormatError} for a missing/corrupt model.safetensors, wrong metadata, or a missing
 *   or mis-shaped tensor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadGollmDir } from "./gollm_dir.ts";
 * const ckpt = await loadGollmDir("models/default"); // relative to the repository root
 * assert.equal(ckpt.config.dim, 192);
 * assert.equal(ckpt.weights.size, 2 + 9 * ckpt.config.n_layers); // tied: no output.weight
 * ```
 */
export async function loadGollmDir(
  dir: string,
  options?: LoadGollmDirOptions & { stored?: false },
): Promise<Checkpoint>;
/**
 * {@linkcode loadGollmDir} with `stored: true`: F16/BF16 matrices stay as stored.
 *
 * @param dir The model directory.
 * @param options As the first form, with `stored`.
 * @returns The checkpoint, its weights F32 or stored.
 * @throws {ConfigError} as the first form.
 * @throws {FormatError} as the first form, and for a non-finite F16/BF16 element.
 */
export async function loadGollmDir(
  dir: string,
  options: LoadGollmDirOptions,
): Promise<Checkpoint<Weights>>;
export async function loadGollmDir(
  dir: string,
  options: LoadGollmDirOptions = {},
): Promise<Checkpoint<Weights>> {
  const stored = options.stored ?? false;
  const { rest, tensors } = await gollmModel(dir, options, async (stPath, config) => {
    const { tensors, metadata } = await readSafetensors(stPath, { stored });
    return {
      metadata,
      tensors,
      check: () => checkWeights(config, tensors, stPath),
    };
  });
  return { ...rest, weights: tensors };
}

/**
 * A gollm model directory's config, tokenizer and tensor table from model.safetensors'
 * header alone (no tensor data read): each tensor's shape, its type as the wasm backend
 * holds it (F16/BF16 matrices as stored, the rest F32) and bytes. The metadata and shapes
 * are checked as {@linkcode loadGollmDir} checks them.
 *
 * @param dir The model directory.
 * @param options `onProgress`, `optionalTokenizer`.
 * @returns The summary.
 * @throws {ConfigError} for a bad config.yaml.
 * @throws {FormatError} as {@linkcode loadGollmDir} for everything the header shows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inspectGollmDir } from "./gollm_dir.ts";
 * const s = await inspectGollmDir("models/default");
 * assert.equal(s.tensors.get("layers.0.attn.wq.weight")!.type, "F16");
 * assert.equal(s.tensors.get("norm.weight")!.type, "F32"); // vectors are F32 in memory
 * ```
 */
export async function inspectGollmDir(
  dir: string,
  options: Omit<LoadGollmDirOptions, "stored"> = {},
): Promise<CheckpointSummary> {
  const { rest, tensors } = await gollmModel(dir, options, async (stPath, config) => {
    const { tensors: entries, metadata } = await readSafetensorsHeader(stPath);
    const tensors = new Map<string, CheckpointTensorInfo>();
    for (const [name, e] of entries) tensors.set(name, heldInfo(name, e.dtype, e.shape));
    const shapes = new Map([...entries].map(([n, e]) => [n, e.shape]));
    return { metadata, tensors, check: () => checkTensorShapes(config, shapes, stPath) };
  });
  return { ...rest, tensors };
}

/**
 * The steps of reading a gollm directory around its tensors: config.yaml, then `read`
 * (values or header) and the metadata checks, then `check` of the tensors, the tokenizer,
 * EOS ids and generation defaults.
 */
async function gollmModel<T>(
  dir: string,
  options: Omit<LoadGollmDirOptions, "stored">,
  read: (
    stPath: string,
    config: ModelConfig,
  ) => Promise<{ metadata: Record<string, string>; tensors: T; check: () => void }>,
): Promise<{ rest: Omit<Checkpoint, "weights">; tensors: T }> {
  const progress = options.onProgress ?? (() => {});
  const configPath = join(dir, "config.yaml");
  progress({ stage: `reading ${configPath}` });
  const config = await loadConfig(configPath);

  const stPath = join(dir, "model.safetensors");
  if (!(await pathExists(stPath))) {
    throw new FormatError(dir, "model.safetensors is missing from the gollm model directory");
  }
  progress({ stage: `reading ${stPath}` });
  const { tensors, metadata, check } = await read(stPath, config);
  const meta: Record<string, string> = metadata ?? {};
  if (meta.format !== "gollm") {
    throw new FormatError(
      stPath,
      `__metadata__.format must be "gollm", got ${
        meta.format === undefined ? "nothing" : JSON.stringify(meta.format)
      }`,
    );
  }
  const version = Number(meta.format_version);
  if (!Number.isInteger(version) || version < 1) {
    throw new FormatError(
      stPath,
      `__metadata__.format_version must be a positive integer, got ${
        meta.format_version === undefined ? "nothing" : JSON.stringify(meta.format_version)
      }`,
    );
  }
  if (version > GOLLM_FORMAT_VERSION) {
    throw new FormatError(
      stPath,
      `__metadata__.format_version is ${version}; this gollm reads up to ${GOLLM_FORMAT_VERSION}`,
    );
  }
  progress({ stage: "checking weights" });
  check();

  progress({ stage: `loading tokenizer ${config.tokenizer}` });
  let tokenizer: Tokenizer | null;
  try {
    tokenizer = await loadGollmTokenizer(dir, config);
  } catch (e) {
    if (!options.optionalTokenizer || !(e instanceof GollmError)) throw e;
    progress({ stage: `no tokenizer (${e.message})` });
    tokenizer = null;
  }

  const rest: Omit<Checkpoint, "weights"> = { format: "gollm", path: dir, config, tokenizer };
  if (meta.extra_eos_ids !== undefined) {
    const ids = parseJsonMeta(stPath, "extra_eos_ids", meta.extra_eos_ids);
    if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x) && x >= 0)) {
      throw new FormatError(stPath, "__metadata__.extra_eos_ids must be a JSON list of ids");
    }
    rest.extraEosIds = ids as number[];
  }
  if (meta.generation !== undefined) {
    const g = parseJsonMeta(stPath, "generation", meta.generation);
    if (g === null || typeof g !== "object" || Array.isArray(g)) {
      throw new FormatError(stPath, "__metadata__.generation must be a JSON object");
    }
    rest.generation = checkGenerationDefaults(
      g as Record<string, unknown>,
      stPath,
      "__metadata__.generation.",
    );
  }
  return { rest, tensors };
}

/**
 * Loads the tokenizer of a gollm model directory: the one `config.tokenizer` names (null
 * for `none`), with `chat_template.jinja` attached when present. Cheap: no weights are read.
 *
 * @param dir The model directory.
 * @param config Its config (read from `<dir>/config.yaml` when omitted).
 * @returns The tokenizer, or null when the config says `none`.
 * @throws {ConfigError} for a bad config.yaml, or a tokenizer file it names that is absent.
 * @throws {FormatError} for a malformed tokenizer file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadGollmTokenizer } from "./gollm_dir.ts";
 * const tok = (await loadGollmTokenizer("models/default"))!;
 * assert.equal(tok.decode(tok.encode("Hello there", { bos: false })), "Hello there");
 * ```
 */
export async function loadGollmTokenizer(
  dir: string,
  config?: ModelConfig,
): Promise<Tokenizer | null> {
  const configPath = join(dir, "config.yaml");
  const c = config ?? await loadConfig(configPath);
  if (c.tokenizer === "none") return null;
  if (!BUILTIN_TOKENIZERS.has(c.tokenizer)) {
    const file = join(dir, c.tokenizer);
    if (!(await optionalFile(file, "tokenizer file"))) {
      throw new ConfigError(
        configPath,
        "tokenizer",
        `names ${JSON.stringify(c.tokenizer)} but ${file} does not exist ` +
          `(use "none" for a model without a tokenizer)`,
      );
    }
  }
  let tokenizer = await loadTokenizer(c.tokenizer, dir);
  const templatePath = join(dir, CHAT_TEMPLATE_FILE);
  if (
    tokenizer && tokenizer.chatTemplate === undefined &&
    (await optionalFile(templatePath, "chat template"))
  ) {
    tokenizer = withChatTemplate(tokenizer, await readTokenizerText(templatePath, "chat template"));
  }
  return tokenizer;
}

function parseJsonMeta(file: string, key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new FormatError(
      file,
      `__metadata__.${key} is not valid JSON: ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
}

/**
 * Writes a checkpoint as a gollm model directory (what `gollm convert` produces).
 *
 * Everything is written into a temporary sibling directory (`<outDir>.tmp-<random>`) that is
 * renamed to `outDir` only when complete, so a failure never leaves a half-written model;
 * the temporary directory is removed on failure. The tokenizer is stored with
 * `tokenizer.toFile()` and `config.tokenizer` is set to that file's name (`none` when the
 * checkpoint has no tokenizer).
 *
 * @param checkpoint Any loaded checkpoint (gollm, HF, GGUF, llama2.c).
 * @param outDir The directory to create.
 * @param options dtype (`f32` default, `f16`, `bf16`), overwrite, progress.
 * @throws {GollmError} one line naming `outDir` when it exists and `overwrite` is not set, is
 *   not a directory, is the current directory or one of its parents, or cannot be written
 *   (a parent that is a file, `/proc`); nothing is left behind (core/files.ts
 *   `writeDirAtomic`).
 * @throws {FormatError} when the weights do not match the config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadCheckpoint } from "./load.ts";
 * import { writeGollmDir } from "./gollm_dir.ts";
 * const out = await Deno.makeTempDir();
 * await writeGollmDir(await loadCheckpoint("tests/fixtures/gguf/llama.gguf"), `${out}/m`, { dtype: "f16" });
 * const back = await loadCheckpoint(`${out}/m`);
 * assert.equal(back.config.rope_style, "interleaved");
 * await assert.rejects(() => writeGollmDir(back, `${out}/m`), /already exists/);
 * await Deno.remove(out, { recursive: true });
 * ```
 */
export async function writeGollmDir(
  checkpoint: Checkpoint,
  outDir: string,
  options: WriteGollmDirOptions = {},
): Promise<void> {
  const progress = options.onProgress ?? (() => {});
  const dtype = options.dtype ?? "f32";
  if (!["f32", "f16", "bf16"].includes(dtype)) {
    throw new GollmError(`dtype must be f32, f16 or bf16, got ${JSON.stringify(dtype)}`);
  }
  checkWeights(checkpoint.config, checkpoint.weights, checkpoint.path);
  await writeDirAtomic(outDir, async (tmp) => {
    const config = { ...checkpoint.config };
    if (checkpoint.tokenizer) {
      progress({ stage: "writing tokenizer" });
      const { name, bytes } = checkpoint.tokenizer.toFile();
      const reserved = ["config.yaml", "model.safetensors", CHAT_TEMPLATE_FILE];
      if (!/^[A-Za-z0-9._-]+$/.test(name) || reserved.includes(name) || name.startsWith(".")) {
        throw new GollmError(`tokenizer.toFile() returned an unusable file name ${name}`);
      }
      await Deno.writeFile(join(tmp, name), bytes);
      config.tokenizer = name;
      const template = checkpoint.tokenizer.chatTemplate;
      if (template !== undefined && template.trim() !== "") {
        await Deno.writeTextFile(join(tmp, CHAT_TEMPLATE_FILE), template);
      }
    } else {
      config.tokenizer = "none";
    }

    const metadata: Record<string, string> = {
      format: "gollm",
      format_version: String(GOLLM_FORMAT_VERSION),
    };
    if (checkpoint.extraEosIds?.length) {
      metadata.extra_eos_ids = JSON.stringify(checkpoint.extraEosIds);
    }
    if (checkpoint.generation && Object.keys(checkpoint.generation).length > 0) {
      metadata.generation = JSON.stringify(checkpoint.generation);
    }
    progress({ stage: `writing model.safetensors (${dtype})` });
    await writeSafetensors(join(tmp, "model.safetensors"), checkpoint.weights, {
      dtype: dtype.toUpperCase() as "F32" | "F16" | "BF16",
      metadata,
    });
    await Deno.writeTextFile(
      join(tmp, "config.yaml"),
      `# written by gollm from ${checkpoint.format} checkpoint ${
        basename(checkpoint.path.replace(/\/+$/, "")) || checkpoint.path
      }\n` +
        configToYaml(config),
    );
    progress({ stage: `renaming to ${outDir}` });
  }, {
    overwrite: options.overwrite,
    overwriteHint: "the overwrite option (gollm convert --force)",
  });
}
