/**
 * Checkpoint auto-detection: one entry point that reads any format gollm supports.
 *
 * | path                          | format  | reader                  |
 * |-------------------------------|---------|-------------------------|
 * | directory with `config.yaml`  | gollm   | formats/gollm_dir.ts     |
 * | directory with `config.json`  | hf      | formats/hf.ts            |
 * | file starting with `GGUF`     | gguf    | formats/gguf/checkpoint.ts |
 * | `*.gguf`, or a legacy ggml magic (GGML/GGJT/GGLA) | gguf (reports the bad magic) | formats/gguf/checkpoint.ts |
 * | any other file                | llama2c | formats/llama2c.ts       |
 *
 * A file that is not clearly llama2.c (neither a `.bin` name nor the `ak42` v1 magic) and
 * fails the llama2.c checks is reported as "not a recognised model file", naming its first
 * bytes, rather than with a llama2.c header error.
 *
 * Only directories and regular files are accepted: a FIFO, a device or a socket is refused
 * after a stat, before any open (so `--model` of a FIFO cannot block), and no read goes past
 * the size stat reports (`/dev/zero` and `/proc/self/mem` cannot grow memory).
 *
 * @module
 */
import type {
  Checkpoint,
  CheckpointFormat,
  CheckpointSummary,
  CheckpointTensorInfo,
} from "./checkpoint.ts";
import type { Weights } from "../core/weights.ts";
import { ConfigError, FormatError, GollmError } from "../core/errors.ts";
import { basename, checkRegularFile, dirname, isFile, join, readFull } from "../core/files.ts";
import { ggufModelInfo, ggufTensorTable, ggufToCheckpoint, loadGguf } from "./gguf/checkpoint.ts";
import { type GgufFile, parseGguf, readGguf, readGgufStream } from "./gguf/parse.ts";
import { localPath, type ModelBytes, openModelBytes } from "../core/model_bytes.ts";
import { inspectGollmDir, loadGollmDir, loadGollmTokenizer } from "./gollm_dir.ts";
import { inspectHf, loadHf } from "./hf.ts";
import { loadHfTokenizer } from "../tokenizers/hf_tokenizer.ts";
import { loadLlama2c } from "./llama2c.ts";
import type { ProgressCallback } from "../core/progress.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { loadTokenizer } from "../tokenizers/tokenizer_file.ts";
import { checkTokenizerFits } from "../tokenizers/fit.ts";
import { checkRegularFile as checkTokenizerFile } from "../tokenizers/read_file.ts";

/** Options of {@linkcode loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /**
   * A tokenizer file to use instead of the checkpoint's own (required for a llama2.c `.bin`
   * unless a `tok{vocab}.bin` or `tokenizer.bin` sits beside it). Any file `loadTokenizer` reads
   * (`.tiktoken`, llama2.c `tokenizer.bin`, HF `tokenizer.json`).
   */
  tokenizerPath?: string;
  /** Called at the start of each loading stage. */
  onProgress?: ProgressCallback;
  /**
   * When true, a gollm directory whose tokenizer cannot be loaded (the file its config names
   * is missing or malformed) loads with `tokenizer: null` instead of failing — for callers
   * that only need token ids (`gollm logits --tokens`). An explicit `tokenizerPath` must
   * still load. Default false.
   */
  optionalTokenizer?: boolean;
  /**
   * Keep GGUF tensors in their stored type (F16, BF16, ggml blocks; views on the file's
   * bytes, block scales checked), and the F16/BF16 matrices of gollm and Hugging Face
   * directories, instead of converting them to F32: what a backend that reads them directly
   * (wasm) loads. A llama2.c checkpoint loads F32 either way. Default false.
   */
  stored?: boolean;
}

/**
 * Detects the checkpoint format of `path` without reading more than its first bytes.
 *
 * @param path A model directory or a checkpoint file.
 * @returns The format.
 * @throws {GollmError} when the path does not exist, or is a directory with neither
 *   `config.yaml` nor `config.json`, or a lone `.safetensors` file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { detectFormat } from "./load.ts";
 * assert.equal(await detectFormat("tests/fixtures/gguf/llama.gguf"), "gguf");
 * assert.equal(await detectFormat("models/default"), "gollm");
 * assert.equal(await detectFormat("tests/fixtures/hf/llama_gqa"), "hf");
 * await assert.rejects(() => detectFormat("/dev/zero"), /it is a character device/);
 * ```
 */
export async function detectFormat(path: string): Promise<CheckpointFormat> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new GollmError(
        `${path}: no such file or directory (expected a model directory or file)`,
      );
    }
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  if (info.isDirectory) {
    if (await isFile(join(path, "config.yaml"))) return "gollm";
    if (await isFile(join(path, "config.json"))) return "hf";
    throw new GollmError(
      `${path}: directory has neither config.yaml (gollm model) nor config.json (Hugging Face model)`,
    );
  }
  checkRegularFile(path, "model file"); // a FIFO or device is refused before any open
  if (path.endsWith(".safetensors")) {
    throw new GollmError(
      `${path}: a lone .safetensors file carries no config; pass the directory that holds it ` +
        `with its config.yaml or config.json`,
    );
  }
  return (await sniffFile(path)).format;
}

/** Legacy pre-GGUF llama.cpp magics, as bytes on disk (uint32 LE) and as text. */
const GGML_MAGICS = new Set(["GGML", "GGJT", "GGLA", "lmgg", "tjgg", "algg"]);

/** llama2.c v1 magic "ak42" as it sits on disk (uint32 0x616b3432 little-endian). */
const LLAMA2C_V1_HEAD = "24ka";

/** The first bytes of a file, printable (`\xNN` for others), for error messages. */
function showHead(head: Uint8Array): string {
  return [...head].map((b) =>
    b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`
  ).join("");
}

/**
 * The first `n` bytes of a regular file (fewer when it is shorter; none when stat reports
 * size 0, as `/proc` files do): never opens a FIFO or device, never reads past the size.
 */
async function readHead(path: string, n: number): Promise<Uint8Array> {
  const size = checkRegularFile(path, "model file").size;
  const buf = new Uint8Array(Math.min(n, size));
  if (buf.length === 0) return buf;
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new FormatError(path, `cannot read model file: ${(e as Error).message}`);
  }
  try {
    return await readFull(f, buf);
  } catch (e) {
    throw new FormatError(path, `cannot read model file: ${(e as Error).message}`);
  } finally {
    f.close();
  }
}

/** Format of a (non-directory) file, and whether a llama2.c guess is certain. */
async function sniffFile(
  path: string,
): Promise<{ format: "gguf" | "llama2c"; clearlyLlama2c: boolean; head: Uint8Array }> {
  const head = await readHead(path, 4);
  const text = String.fromCharCode(...head);
  if (text === "GGUF" || GGML_MAGICS.has(text) || /\.gguf$/i.test(path)) {
    return { format: "gguf", clearlyLlama2c: false, head };
  }
  const clearlyLlama2c = /\.bin$/i.test(path) || text === LLAMA2C_V1_HEAD;
  return { format: "llama2c", clearlyLlama2c, head };
}

/**
 * Loads any supported checkpoint, detecting its format (see the module table); or a GGUF
 * given as bytes (core/model_bytes.ts `ModelBytes`: bytes, a Blob, a Response, an http(s)
 * URL), read whole.
 *
 * @param path A gollm or Hugging Face model directory, a GGUF file, or a llama2.c `.bin`
 *   (a path or a `file:` URL); or a GGUF's bytes.
 * @param options `tokenizerPath` overrides (or, for llama2.c, supplies) the tokenizer;
 *   `onProgress` reports stages.
 * @returns The checkpoint, config validated and weights checked.
 * @throws {GollmError} (or its subclasses ConfigError / FormatError) for a path that does not
 *   exist, matches no format, or is malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadCheckpoint } from "./load.ts";
 * const ckpt = await loadCheckpoint("tests/fixtures/gguf/qwen2.gguf");
 * assert.equal(ckpt.format, "gguf");
 * assert.equal(ckpt.config.attn_bias, true); // Qwen2's q/k/v bias
 * ```
 */
export async function loadCheckpoint(
  path: string | ModelBytes,
  options?: LoadCheckpointOptions & { stored?: false },
): Promise<Checkpoint>;
/**
 * {@linkcode loadCheckpoint} with `stored: true`: GGUF tensors keep their stored types.
 *
 * @param path A model directory or checkpoint file, or a GGUF's bytes.
 * @param options As the first form, with `stored`.
 * @returns The checkpoint, its weights F32 or stored.
 * @throws {GollmError} as the first form.
 */
export async function loadCheckpoint(
  path: string | ModelBytes,
  options: LoadCheckpointOptions,
): Promise<Checkpoint<Weights>>;
export async function loadCheckpoint(
  source: string | ModelBytes,
  options: LoadCheckpointOptions = {},
): Promise<Checkpoint<Weights>> {
  const progress = options.onProgress ?? (() => {});
  const path = localPath(source);
  if (path === undefined) {
    const reader = await openModelBytes(source as ModelBytes);
    progress({ stage: `reading gguf checkpoint ${reader.name}` });
    const g = parseGguf(await reader.readAll(), reader.name);
    return await finishCheckpoint(
      ggufToCheckpoint(g, { stored: options.stored ?? false }),
      options,
    );
  }
  const format = await detectFormat(path);
  progress({ stage: `reading ${format} checkpoint ${path}` });
  let ckpt: Checkpoint<Weights>;
  switch (format) {
    case "gollm":
      ckpt = await loadGollmDir(path, {
        onProgress: options.onProgress,
        optionalTokenizer: options.optionalTokenizer && options.tokenizerPath === undefined,
        stored: options.stored ?? false,
      });
      break;
    case "hf":
      ckpt = await loadHf(path, { stored: options.stored ?? false });
      break;
    case "gguf":
      ckpt = await loadGguf(path, { stored: options.stored ?? false });
      break;
    case "llama2c":
      ckpt = await loadLlama2cChecked(path, options.tokenizerPath);
      break;
  }
  return await finishCheckpoint(ckpt, options);
}

/**
 * A checkpoint's config, tokenizer and tensor table without its weights, as `gollm inspect`
 * shows them. A GGUF (a path, or bytes/URL as {@linkcode loadCheckpoint} takes them) is read
 * only as far as its header, and so are the safetensors files of gollm and Hugging Face
 * directories: a multi-GB checkpoint or a URL costs its headers, and no tensor is converted.
 * Tensors are listed as the wasm backend holds them (F16/BF16 matrices of a directory as
 * stored, vectors F32). A llama2.c `.bin` is read whole.
 * Tensor data is not checked for NaN/Inf here; loading does that.
 *
 * @param source A model directory or checkpoint file, or a GGUF's bytes.
 * @param options `tokenizerPath`, `onProgress`, `optionalTokenizer` as for
 *   {@linkcode loadCheckpoint}.
 * @returns The summary: config, tokenizer, tensors (canonical name → shape, stored type,
 *   bytes, name in the file).
 * @throws {GollmError} as {@linkcode loadCheckpoint} for everything the header shows (bad
 *   magic, metadata, unsupported tensor types, shapes, a file shorter than its tensors).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inspectCheckpoint } from "./load.ts";
 * const s = await inspectCheckpoint("tests/fixtures/gguf/qwen2.gguf");
 * assert.equal(s.format, "gguf");
 * const wq = s.tensors.get("layers.0.attn.wq.weight")!;
 * assert.equal(wq.stored, "blk.0.attn_q.weight");
 * ```
 */
export async function inspectCheckpoint(
  source: string | ModelBytes,
  options: Omit<LoadCheckpointOptions, "stored"> = {},
): Promise<CheckpointSummary> {
  const path = localPath(source);
  const format = path === undefined ? "gguf" : await detectFormat(path); // bytes are GGUF
  if (format === "gollm" || format === "hf") {
    const summary = format === "hf" ? await inspectHf(path!) : await inspectGollmDir(path!, {
      onProgress: options.onProgress,
      optionalTokenizer: options.optionalTokenizer && options.tokenizerPath === undefined,
    });
    return await finishCheckpoint(summary, options);
  }
  if (format === "llama2c") {
    const { weights, ...rest } = await loadCheckpoint(path!, { ...options, stored: true });
    const tensors = new Map<string, CheckpointTensorInfo>();
    for (const [name, t] of weights) {
      tensors.set(name, {
        shape: t.shape,
        type: t.type?.name ?? "F32",
        bytes: t.type ? t.bytes.length : 4 * t.data.length,
        stored: name,
      });
    }
    return { ...rest, tensors };
  }
  let g: GgufFile;
  if (path !== undefined) {
    options.onProgress?.({ stage: `reading gguf header ${path}` });
    g = await readGguf(path);
  } else {
    const reader = await openModelBytes(source as ModelBytes);
    options.onProgress?.({ stage: `reading gguf header ${reader.name}` });
    try {
      g = await readGgufStream(reader);
    } finally {
      await reader.cancel(); // the tensor data is not needed: stop the download
    }
  }
  const info = ggufModelInfo(g);
  const tensors = ggufTensorTable(g, info);
  const summary: CheckpointSummary = {
    format: "gguf",
    path: g.file,
    config: info.config,
    tokenizer: info.tokenizer,
    tensors,
  };
  return await finishCheckpoint(summary, options);
}

/**
 * The last stage of {@linkcode loadCheckpoint} for a checkpoint read by any reader: the
 * `tokenizerPath` override (not for llama2.c, whose reader takes it), then the check that
 * every id the tokenizer produces is a row of the embedding (tokenizers/fit.ts).
 *
 * @param ckpt The checkpoint as its reader returned it, or its summary (changed in place).
 * @param options `tokenizerPath`, `onProgress`.
 * @returns The same checkpoint.
 * @throws {GollmError} for a tokenizer file that cannot be loaded or does not fit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { finishCheckpoint } from "./load.ts";
 * import { loadGguf } from "./gguf/checkpoint.ts";
 * const ck = await finishCheckpoint(await loadGguf("tests/fixtures/gguf/qwen2.gguf"));
 * assert.equal(ck.format, "gguf");
 * ```
 */
export async function finishCheckpoint<C extends Omit<Checkpoint<Weights>, "weights">>(
  ckpt: C,
  options: LoadCheckpointOptions = {},
): Promise<C> {
  const progress = options.onProgress ?? (() => {});
  const format = ckpt.format;
  if (options.tokenizerPath !== undefined && format !== "llama2c") {
    progress({ stage: `loading tokenizer ${options.tokenizerPath}` });
    ckpt.tokenizer = await loadTokenizerFile(options.tokenizerPath);
  }
  if (ckpt.tokenizer) {
    // Every id the tokenizer produces must be a row of the embedding (tokenizers/fit.ts).
    const own = options.tokenizerPath === undefined;
    ckpt.tokenizer = checkTokenizerFits(
      ckpt.tokenizer,
      ckpt.config.vocab_size,
      own ? tokenizerSource(ckpt) : options.tokenizerPath!,
      { exact: own && format === "gguf" },
    );
  }
  return ckpt;
}

/** The file a checkpoint's own tokenizer came from, for error messages. */
function tokenizerSource(ckpt: Omit<Checkpoint<Weights>, "weights">): string {
  if (ckpt.format === "gguf" || ckpt.format === "llama2c") return ckpt.path;
  if (ckpt.format === "hf") return join(ckpt.path, "tokenizer.json");
  const name = ckpt.config.tokenizer;
  return name.includes(".") || name.includes("/")
    ? join(ckpt.path, name)
    : `${join(ckpt.path, "config.yaml")} (tokenizer: ${name})`;
}

/**
 * loadLlama2c, but a file that is not clearly llama2.c and fails its checks is reported as
 * an unrecognised file (a llama2.c header error would mislead: `--model README.md`).
 */
async function loadLlama2cChecked(path: string, tokenizerPath?: string): Promise<Checkpoint> {
  const { clearlyLlama2c, head } = await sniffFile(path);
  try {
    return await loadLlama2c(path, { tokenizerPath });
  } catch (e) {
    const aboutThisFile = (e instanceof FormatError || e instanceof ConfigError) &&
      e.file === path;
    if (clearlyLlama2c || !aboutThisFile) throw e;
    const start = head.length === 0 ? "is empty" : `starts with '${showHead(head)}'`;
    throw new FormatError(
      path,
      `not a recognised model file (${start}; expected a GGUF file, a llama2.c .bin ` +
        `checkpoint, or a model directory)`,
    );
  }
}

async function loadTokenizerFile(path: string): Promise<Tokenizer> {
  await checkTokenizerFile(path, "tokenizer file");
  const tok = await loadTokenizer(basename(path), dirname(path));
  if (!tok) throw new GollmError(`${path}: no tokenizer could be read from this file`);
  return tok;
}

/**
 * Loads only the tokenizer of a checkpoint: from a GGUF's header (the tensor data is not
 * read), from the separate files of gollm and Hugging Face directories; a llama2.c
 * checkpoint is read whole.
 *
 * @param source As for {@linkcode loadCheckpoint}: a path, or a GGUF's bytes.
 * @param options `tokenizerPath` overrides the checkpoint's tokenizer.
 * @returns The tokenizer, or null when the checkpoint has none.
 * @throws {GollmError} as for {@linkcode loadCheckpoint}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadCheckpointTokenizer } from "./load.ts";
 * const tok = (await loadCheckpointTokenizer("models/default"))!;
 * assert.equal(tok.vocabSize, 4096);
 * ```
 */
export async function loadCheckpointTokenizer(
  source: string | ModelBytes,
  options: LoadCheckpointOptions = {},
): Promise<Tokenizer | null> {
  const path = localPath(source);
  const format = path === undefined ? "gguf" : await detectFormat(path); // bytes are GGUF
  if (options.tokenizerPath !== undefined) return await loadTokenizerFile(options.tokenizerPath);
  if (format === "gguf") return (await inspectCheckpoint(source, options)).tokenizer; // header
  if (format === "gollm") return await loadGollmTokenizer(path!);
  if (format === "hf") return await loadHfTokenizer(path!);
  return (await loadCheckpoint(path!, options)).tokenizer;
}
