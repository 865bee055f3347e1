/**
 * Hugging Face model directories: `config.json` + `model.safetensors` (or the sharded
 * `model.safetensors.index.json`) + optional `tokenizer.json`, `tokenizer_config.json` and
 * `generation_config.json`, mapped onto gollm's canonical config and tensor names
 * (core/tensor_names.ts).
 *
 * Supported architectures (formats/hf_config.ts maps their config.json): Llama (3.1+ RoPE
 * scaling included), Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3 (text), Phi-3 / Phi-4-mini and
 * GPT-2. Weights follow the `hf` sources of core/tensor_names.ts: GPT-2's `Conv1D` weights
 * are stored `(in, out)` and transposed; fused tensors (GPT-2 `c_attn`, Phi-3 `qkv_proj` and
 * `gate_up_proj`) are split along the output axis; Gemma's norm weights get their `+ 1`
 * (`x · (1 + w)`), as llama.cpp's converter does.
 *
 * Sliding windows (Mistral, Qwen2 `use_sliding_window`, Gemma's local layers, Phi-3) are
 * per-layer attention windows over the paged KV cache (core/config.ts `layerWindow`); the
 * context stays `max_position_embeddings`.
 *
 * @module
 */
import {
  checkGenerationDefaults,
  type Checkpoint,
  type CheckpointSummary,
  type CheckpointTensorInfo,
  type GenerationDefaults,
  heldInfo,
  infoRows,
} from "./checkpoint.ts";
import type { ModelConfig } from "../core/config.ts";
import { FormatError } from "../core/errors.ts";
import { isFile, join, readJson } from "../core/files.ts";
import { loadHfTokenizer } from "../tokenizers/hf_tokenizer.ts";
import { readSafetensors, readSafetensorsHeader } from "./safetensors.ts";
import { HF_FAMILY, ids, isObj, parseHfConfig } from "./hf_config.ts";
import { checkWeights, type F32Tensor, type Tensor, type Weights } from "../core/weights.ts";
import { tensorToF32 } from "./quant/tensor.ts";
import {
  fillLayer,
  HF_BASE_PREFIX,
  type HfFamily,
  isPerLayer,
  layersHeld,
  type TensorNameRow,
  tensorRows,
} from "../core/tensor_names.ts";

export { HF_ARCHITECTURES, type HfConfigInfo, parseHfConfig } from "./hf_config.ts";

/**
 * Where HF tensors live: a lookup by HF name that knows which file to blame. `T` is a
 * tensor's values, or (for `gollm inspect`) what its header says.
 */
interface TensorSource<T> {
  get(name: string): T | undefined;
  /** Every stored tensor name. */
  names(): Iterable<string>;
  /** The file holding `name` (or that should have), for error messages. */
  fileOf(name: string): string;
}

function shapeEq(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Row-major transpose of a (rows, cols) matrix: F32 values, or a stored F16/BF16 matrix's
 * 16-bit elements (into a fresh, aligned copy).
 */
function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape;
  if (t.type === undefined) {
    const out = new Float32Array(r * c); // (c, r)
    for (let i = 0; i < r; i++) {
      for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
    }
    return { shape: [c, r], data: out };
  }
  const src = new Uint16Array(t.bytes.slice().buffer); // (r, c) halves
  const out = new Uint16Array(r * c); // (c, r)
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j];
  }
  return { shape: [c, r], type: t.type, bytes: new Uint8Array(out.buffer) };
}

/** Rows r0 .. r0 + shape[0] of a tensor (a part of a fused one): F32 copied, stored a view. */
function rows(t: Tensor, r0: number, shape: number[]): Tensor {
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  if (t.type === undefined) {
    return { shape, data: t.data.slice(r0 * cols, (r0 + shape[0]) * cols) };
  }
  const rowBytes = cols * t.type.blockBytes; // F16/BF16: one element per "block"
  return {
    shape,
    type: t.type,
    bytes: t.bytes.subarray(r0 * rowBytes, (r0 + shape[0]) * rowBytes),
  };
}

/** How {@linkcode mapWeights} reshapes what a {@linkcode TensorSource} holds. */
interface Reshape<T> {
  /** Its shape, outermost first. */
  shape(t: T): readonly number[];
  /** The (rows, cols) matrix transposed. */
  transpose(t: T): T;
  /** As F32 (norms, biases). */
  toF32(t: T): T;
  /** With a constant added to every value (an F32 tensor: Gemma's `1 + w`). */
  add(t: T, c: number): T;
  /** Rows r0 .. r0 + shape[0] (a part of a fused tensor). */
  rows(t: T, r0: number, shape: number[]): T;
}

/** The tensors' values. */
const VALUES: Reshape<Tensor> = {
  shape: (t) => t.shape,
  transpose,
  toF32: tensorToF32,
  add: (t, c) => {
    const f = t as F32Tensor;
    return { shape: f.shape, data: f.data.map((v) => v + c) };
  },
  rows,
};

/** What the headers say (`gollm inspect`): shapes, types and byte counts follow the values'. */
const INFOS: Reshape<CheckpointTensorInfo> = {
  shape: (t) => t.shape,
  transpose: (t) => ({ ...t, shape: [...t.shape].reverse() }),
  toF32: (t) => ({ ...t, type: "F32", bytes: 4 * t.shape.reduce((a, b) => a * b, 1) }),
  add: (t) => t,
  rows: (t, _r0, shape) => infoRows(t, shape),
};

/**
 * Maps HF tensors onto canonical names for `config`, following the `hf` sources of
 * core/tensor_names.ts: a name is looked up with and without the family's base prefix
 * (`model.`, `transformer.`), `transpose` sources (GPT-2 `Conv1D`, stored `(in, out)`) are
 * transposed, `add` sources (Gemma norms) get the constant added, and fused sources
 * (`c_attn`, `qkv_proj`, `gate_up_proj`) are split along the output axis in part order.
 * Matrices read as stored (F16/BF16) stay stored; the reader gives vectors (norms, biases) as F32.
 *
 * @param config The model config.
 * @param family The HF naming family.
 * @param src The tensors by HF name.
 * @returns Canonical weights (passes `checkWeights`).
 * @throws {FormatError} naming the HF tensor and its file when one is missing or mis-shaped,
 *   or when the file holds fewer or more layers than config.json declares.
 */
function mapWeights<T>(
  config: ModelConfig,
  family: HfFamily,
  src: TensorSource<T>,
  ops: Reshape<T>,
): Map<string, T> {
  const nameRows = tensorRows(config);
  const unnamed = nameRows.find((r) => r.hf[family] === undefined);
  if (unnamed) {
    throw new FormatError(src.fileOf(""), `has no Hugging Face ${family} name for ${unnamed.name}`);
  }
  // Compare layer counts before anything per layer is built.
  const base = HF_BASE_PREFIX[family];
  const patterns = new Set<string>();
  for (const r of nameRows) {
    if (!isPerLayer(r)) continue;
    const n = r.hf[family]!.name;
    patterns.add(n);
    if (n.startsWith(base)) patterns.add(n.slice(base.length));
  }
  const held = layersHeld(src.names(), patterns);
  if (held !== config.n_layers) {
    throw new FormatError(
      src.fileOf(""),
      `holds ${held} layers${
        held ? ` (0..${held - 1})` : ""
      } but config.json declares ${config.n_layers}`,
    );
  }
  const out = new Map<string, T>();
  /** The stored tensor `name` (with or without the base prefix), checked against `shape`. */
  const fetch = (name: string, shape: number[], canonical: string): T => {
    const names = name.startsWith(base) ? [name, name.slice(base.length)] : [name];
    for (const n of names) {
      const t = src.get(n);
      if (!t) continue;
      if (!shapeEq(ops.shape(t), shape)) {
        throw new FormatError(
          src.fileOf(n),
          `tensor '${n}' has shape [${
            ops.shape(t)
          }], expected [${shape}] (for ${canonical}) from config.json`,
        );
      }
      return t;
    }
    throw new FormatError(
      src.fileOf(names[0]),
      `tensor '${names[0]}' is missing (needed for ${canonical})`,
    );
  };
  const perLayer = nameRows.filter(isPerLayer);
  const map = (group: TensorNameRow[], layer: number) => {
    const done = new Set<TensorNameRow>();
    for (const row of group) {
      if (done.has(row)) continue;
      const s = row.hf[family]!;
      // Every row stored in the same (possibly fused) tensor, in part order.
      const parts = s.part === undefined
        ? [row]
        : group.filter((r) => r.hf[family]!.name === s.name)
          .sort((a, b) => a.hf[family]!.part! - b.hf[family]!.part!);
      const shapes = parts.map((r) => r.shape(config));
      const rest = shapes[0].slice(1);
      const stacked = [shapes.reduce((a, sh) => a + sh[0], 0), ...rest];
      const names = parts.map((r) => fillLayer(r.name, layer));
      const label = names.length > 1 ? names.join(" + ") : names[0];
      let t = fetch(
        fillLayer(s.name, layer),
        s.transpose ? [...stacked].reverse() : stacked,
        label,
      );
      if (s.transpose) t = ops.transpose(t);
      if (s.add !== undefined) t = ops.add(ops.toF32(t), s.add); // Gemma's norms: F32 already
      let r0 = 0;
      parts.forEach((r, j) => {
        out.set(names[j], parts.length === 1 ? t : ops.rows(t, r0, shapes[j]));
        r0 += shapes[j][0];
        done.add(r);
      });
    }
  };
  map(nameRows.filter((r) => !isPerLayer(r)), 0);
  for (let l = 0; l < config.n_layers; l++) map(perLayer, l);
  return out;
}

/** Opens model.safetensors or every shard listed in model.safetensors.index.json. */
async function openTensors<T>(
  dir: string,
  read: (path: string) => Promise<Map<string, T>>,
): Promise<{ src: TensorSource<T>; file: string }> {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  if (await isFile(index)) {
    const raw = await readJson(index);
    if (!isObj(raw) || !isObj(raw.weight_map)) {
      throw new FormatError(index, "field 'weight_map' is missing or not an object");
    }
    const map = raw.weight_map as Record<string, unknown>;
    const shards = new Map<string, Map<string, T>>();
    for (const [name, shard] of Object.entries(map)) {
      if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
        throw new FormatError(
          index,
          `weight_map['${name}'] must be a file name in ${dir}, got ${JSON.stringify(shard)}`,
        );
      }
      if (!shards.has(shard)) shards.set(shard, new Map());
    }
    for (const shard of shards.keys()) {
      shards.set(shard, await read(join(dir, shard)));
    }
    return {
      file: index,
      src: {
        names: () => Object.keys(map),
        get: (n) => {
          const shard = map[n];
          return typeof shard === "string" ? shards.get(shard)?.get(n) : undefined;
        },
        fileOf: (n) => (typeof map[n] === "string" ? join(dir, map[n] as string) : index),
      },
    };
  }
  if (await isFile(single)) {
    const tensors = await read(single);
    return {
      file: single,
      src: { get: (n) => tensors.get(n), names: () => tensors.keys(), fileOf: () => single },
    };
  }
  const others = [];
  for (const f of ["pytorch_model.bin", "model.bin", "pytorch_model.bin.index.json"]) {
    if (await isFile(join(dir, f))) others.push(f);
  }
  throw new FormatError(
    dir,
    `no model.safetensors or model.safetensors.index.json` +
      (others.length
        ? ` (found ${others.join(", ")}: PyTorch pickles are not read; save with safetensors)`
        : ""),
  );
}

/**
 * Reads `generation_config.json` into EOS ids and sampling defaults. Follows transformers:
 * `temperature`/`top_p`/`top_k` apply only when `do_sample` is true; a config that sets
 * `do_sample: false`, or sampling fields without `do_sample: true`, means greedy
 * (`{temperature: 0}`).
 */
function parseGenerationConfig(
  raw: unknown,
  file: string,
): { eos: number[]; gen?: GenerationDefaults } {
  if (!isObj(raw)) throw new FormatError(file, "must be a JSON object");
  const eos = ids(raw.eos_token_id);
  const keys = ["temperature", "top_p", "top_k"] as const;
  // Checked whether or not they apply: a bad value is a bad file.
  const gen = checkGenerationDefaults(raw, file, "");
  if (raw.do_sample === true) return { eos, gen };
  if (raw.do_sample === false || keys.some((k) => raw[k] !== undefined)) {
    return { eos, gen: { temperature: 0 } };
  }
  return { eos };
}

/** Options of {@linkcode loadHf}. */
export interface LoadHfOptions {
  /** Keep F16/BF16 matrices as stored instead of converting them to F32. Default false. */
  stored?: boolean;
}

/**
 * Loads a Hugging Face model directory.
 *
 * @param dir Directory with `config.json` and `model.safetensors` or
 *   `model.safetensors.index.json` (+ shards); optional `tokenizer.json`,
 *   `tokenizer_config.json`, `chat_template.jinja`, `generation_config.json`.
 * @returns A checkpoint (format `hf`) with canonical F32 weights, the tokenizer (or null),
 *   `extraEosIds` from config.json and generation_config.json, and sampling defaults.
 * @throws {ConfigError} for an unsupported or incomplete config.json (names the field).
 * @throws {FormatError} for a missing/unreadable file, a missing or mis-shaped tensor (names
 *   the HF tensor and the safetensors file or index that should hold it), or a bad
 *   tokenizer.json.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadHf } from "./hf.ts";
 * const ckpt = await loadHf("tests/fixtures/hf/llama_gqa"); // written by transformers
 * assert.equal(ckpt.config.n_kv_heads, 2);
 * assert.equal(ckpt.tokenizer!.decode(ckpt.tokenizer!.encode("Once upon a time", { bos: false })),
 *   "Once upon a time");
 * ```
 */
export async function loadHf(dir: string): Promise<Checkpoint>;
/**
 * {@linkcode loadHf} with options: `stored` keeps F16 and BF16 matrices as the safetensors
 * files store them (what the wasm backend runs: half the memory of F32, and half the bytes
 * a decode step reads); vectors and other dtypes are F32.
 *
 * @param dir The model directory.
 * @param options `stored` (default false).
 * @returns The checkpoint, its weights F32 or stored.
 * @throws {FormatError} as the one-argument form, and for a non-finite F16/BF16 element.
 */
export async function loadHf(dir: string, options: LoadHfOptions): Promise<Checkpoint<Weights>>;
export async function loadHf(
  dir: string,
  options: LoadHfOptions = {},
): Promise<Checkpoint<Weights>> {
  const m = await hfModel(dir);
  const stored = options.stored ?? false;
  const read = async (path: string) => (await readSafetensors(path, { stored })).tensors;
  const { src, file } = await openTensors(m.dir, read);
  const weights = mapWeights(m.config, m.family, src, VALUES);
  checkWeights(m.config, weights, file);
  return { ...m.rest, weights };
}

/**
 * A Hugging Face directory's config, tokenizer and tensor table from the safetensors headers
 * alone (no tensor data read): each canonical tensor's shape, its type as the wasm backend
 * holds it (F16/BF16 matrices as stored, the rest F32) and bytes, and its HF name. Shapes
 * and layer counts are checked as {@linkcode loadHf} checks them.
 *
 * @param dir The model directory.
 * @returns The summary.
 * @throws {FormatError} as {@linkcode loadHf} for everything the headers show.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { inspectHf } from "./hf.ts";
 * const s = await inspectHf("tests/fixtures/hf/gpt2_bf16"); // Conv1D and a fused c_attn
 * const wk = s.tensors.get("layers.0.attn.wk.weight")!;
 * assert.equal(wk.stored, "transformer.h.0.attn.c_attn.weight");
 * assert.equal(wk.type, "BF16");
 * ```
 */
export async function inspectHf(dir: string): Promise<CheckpointSummary> {
  const m = await hfModel(dir);
  const read = async (path: string) => {
    const out = new Map<string, CheckpointTensorInfo>();
    for (const [name, e] of (await readSafetensorsHeader(path)).tensors) {
      out.set(name, heldInfo(name, e.dtype, e.shape));
    }
    return out;
  };
  const { src } = await openTensors(m.dir, read);
  return { ...m.rest, tensors: mapWeights(m.config, m.family, src, INFOS) };
}

/** Everything of an HF directory but its weights: config, tokenizer, EOS ids, defaults. */
async function hfModel(dir: string) {
  dir = dir.replace(/\/+$/, "") || "/";
  const cfgFile = join(dir, "config.json");
  const hasTok = await isFile(join(dir, "tokenizer.json"));
  const { config, architecture, eosIds } = parseHfConfig(
    await readJson(cfgFile),
    cfgFile,
    hasTok ? "tokenizer.json" : "none",
  );
  const tokenizer = await loadHfTokenizer(dir);
  const extra = [...eosIds];
  let generation: GenerationDefaults | undefined;
  const genFile = join(dir, "generation_config.json");
  if (await isFile(genFile)) {
    const g = parseGenerationConfig(await readJson(genFile), genFile);
    for (const id of g.eos) if (!extra.includes(id)) extra.push(id);
    generation = g.gen;
  }
  const valid = extra.filter((id) => id >= 0 && id < config.vocab_size);
  const rest: Omit<Checkpoint, "weights"> = { format: "hf", path: dir, config, tokenizer };
  if (valid.length > 0) rest.extraEosIds = valid;
  if (generation) rest.generation = generation;
  return { dir, config, family: HF_FAMILY[architecture], rest };
}
