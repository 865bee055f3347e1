/**
 * Hugging Face model directories: `config.json` + `model.safetensors` (or the sharded
 * `model.safetensors.index.json`) + optional `tokenizer.json`, `tokenizer_config.json` and
 * `generation_config.json`, mapped onto gollm's canonical config and tensor names
 * (core/tensor_names.ts).
 *
 * Supported architectures (transformers `models/{llama,mistral,qwen2,gpt2}/modeling_*.py`):
 * - `LlamaForCausalLM`, `MistralForCausalLM`, `Qwen2ForCausalLM` → `arch: llama`,
 *   `rope_style: half` (HF `rotate_half`), Qwen2 with q/k/v bias (`attn_bias`);
 * - `GPT2LMHeadModel` → `arch: gpt2`; its `Conv1D` weights are stored `(in, out)` and are
 *   transposed, and the fused `c_attn` is split into wq/wk/wv.
 *
 * Mistral's sliding window W (when shorter than `max_position_embeddings`) becomes
 * `context_length = W`: gollm's KV cache is a ring of `context_length` slots by default and
 * attention reads the last `min(p + 1, W)` positions, exactly Mistral's window.
 *
 * @module
 */
import { checkGenerationDefaults, type Checkpoint, type GenerationDefaults } from "./checkpoint.ts";
import { type ModelConfig, parseConfig } from "../core/config.ts";
import { ConfigError, FormatError } from "../core/errors.ts";
import { isFile, join, readJson } from "../core/files.ts";
import { loadHfTokenizer } from "../tokenizers/hf_tokenizer.ts";
import { readSafetensors } from "./safetensors.ts";
import {
  checkWeights,
  type F32Tensor as Tensor,
  type F32Weights as Weights,
} from "../core/weights.ts";
import {
  fillLayer,
  HF_BASE_PREFIX,
  type HfFamily,
  isPerLayer,
  layersHeld,
  type TensorNameRow,
  tensorRows,
} from "../core/tensor_names.ts";

/** The HF naming family of each supported architecture (core/tensor_names.ts `hf`). */
const HF_FAMILY: Record<string, HfFamily> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "llama",
  Qwen2ForCausalLM: "llama",
  GPT2LMHeadModel: "gpt2",
};

/** Architectures {@linkcode loadHf} reads (`config.json` `architectures[0]`). */
export const HF_ARCHITECTURES: readonly string[] = Object.keys(HF_FAMILY);

/** What {@linkcode parseHfConfig} derives from a `config.json`. */
export interface HfConfigInfo {
  /** The gollm config. */
  config: ModelConfig;
  /** `architectures[0]` (one of {@linkcode HF_ARCHITECTURES}). */
  architecture: string;
  /** `eos_token_id` of config.json (int or list), possibly empty. */
  eosIds: number[];
}

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function ids(v: unknown): number[] {
  if (typeof v === "number" && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x) => typeof x === "number" && Number.isInteger(x));
  return [];
}

const GELU_TANH = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

/**
 * Maps a parsed HF `config.json` onto a validated {@linkcode ModelConfig}.
 *
 * Llama/Mistral/Qwen2: `hidden_size`→dim, `num_hidden_layers`→n_layers,
 * `num_attention_heads`→n_heads, `num_key_value_heads`→n_kv_heads (default n_heads),
 * `head_dim` (when set), `intermediate_size`→hidden_dim, `max_position_embeddings`→
 * context_length, `rms_norm_eps`→norm_eps, `rope_theta` (or `rope_parameters.rope_theta`),
 * `tie_word_embeddings` (default false), `vocab_size`. GPT-2: `n_embd`, `n_layer`, `n_head`,
 * `n_inner` (default 4·n_embd), `n_positions`, `layer_norm_epsilon`, `tie_word_embeddings`
 * (default true).
 *
 * @param raw Parsed config.json.
 * @param file Its path, named in errors.
 * @param tokenizer The config's `tokenizer` field (`tokenizer.json` or `none`).
 * @returns The config, the architecture name and config.json's EOS ids.
 * @throws {ConfigError} naming `file` and the field: an unsupported architecture, a missing
 *   or non-positive size, an unsupported `rope_scaling`/`rope_parameters.rope_type`,
 *   activation, attention/MLP bias layout or sliding-window setting.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHfConfig } from "./hf.ts";
 * const { config } = parseHfConfig({
 *   architectures: ["LlamaForCausalLM"], vocab_size: 256, hidden_size: 64,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
 *   num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5,
 *   rope_theta: 500000, tie_word_embeddings: false, hidden_act: "silu",
 * }, "config.json");
 * assert.equal(config.n_kv_heads, 2);
 * assert.equal(config.rope_style, "half"); // HF rotate_half
 * ```
 */
export function parseHfConfig(raw: unknown, file: string, tokenizer = "none"): HfConfigInfo {
  if (!isObj(raw)) throw new ConfigError(file, "<root>", "must be a JSON object");
  const archs = raw.architectures;
  let architecture: string | undefined;
  if (Array.isArray(archs) && typeof archs[0] === "string") architecture = archs[0];
  else if (archs === undefined) {
    const byType: Record<string, string> = {
      llama: "LlamaForCausalLM",
      mistral: "MistralForCausalLM",
      qwen2: "Qwen2ForCausalLM",
      gpt2: "GPT2LMHeadModel",
    };
    architecture = byType[String(raw.model_type)];
    if (architecture === undefined) {
      throw new ConfigError(
        file,
        "architectures",
        `is missing and model_type ${JSON.stringify(raw.model_type)} is not one of ${
          Object.keys(byType).join(", ")
        }`,
      );
    }
  } else {
    throw new ConfigError(file, "architectures", "must be a list of architecture names");
  }
  if (!HF_ARCHITECTURES.includes(architecture)) {
    throw new ConfigError(
      file,
      "architectures",
      `names ${JSON.stringify(architecture)}, which gollm does not support (supported: ${
        HF_ARCHITECTURES.join(", ")
      })`,
    );
  }
  const num = (name: string, fallback?: number): number => {
    const v = raw[name];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(file, name, `is missing (required for ${architecture})`);
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(file, name, `must be a positive number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const eosIds = ids(raw.eos_token_id);

  if (architecture === "GPT2LMHeadModel") {
    const act = raw.activation_function ?? "gelu_new";
    if (!GELU_TANH.includes(String(act))) {
      throw new ConfigError(
        file,
        "activation_function",
        `is ${JSON.stringify(act)}; gollm's gpt2 uses the tanh GELU (${GELU_TANH.join(", ")})`,
      );
    }
    for (const f of ["scale_attn_by_inverse_layer_idx", "add_cross_attention"]) {
      if (raw[f] === true) throw new ConfigError(file, f, "is true, which gollm does not support");
    }
    if (raw.scale_attn_weights === false) {
      throw new ConfigError(file, "scale_attn_weights", "is false, which gollm does not support");
    }
    const dim = num("n_embd");
    const config = parseConfig({
      arch: "gpt2",
      vocab_size: num("vocab_size"),
      dim,
      n_layers: num("n_layer"),
      n_heads: num("n_head"),
      hidden_dim: num("n_inner", 4 * dim),
      context_length: num("n_positions"),
      norm: "layernorm",
      norm_eps: num("layer_norm_epsilon", 1e-5),
      mlp: "gelu",
      tie_embeddings: raw.tie_word_embeddings ?? true,
      tokenizer,
    }, file);
    return { config, architecture, eosIds };
  }

  // Llama family.
  const act = raw.hidden_act ?? "silu";
  if (act !== "silu") {
    throw new ConfigError(file, "hidden_act", `is ${JSON.stringify(act)}; gollm supports "silu"`);
  }
  if (raw.attention_bias === true) {
    throw new ConfigError(
      file,
      "attention_bias",
      "is true (bias on q/k/v and o_proj), which gollm does not support",
    );
  }
  if (raw.mlp_bias === true) {
    throw new ConfigError(file, "mlp_bias", "is true, which gollm does not support");
  }
  let ropeTheta = raw.rope_theta;
  for (const field of ["rope_scaling", "rope_parameters"]) {
    const rs = raw[field];
    if (rs === undefined || rs === null) continue;
    if (!isObj(rs)) throw new ConfigError(file, field, "must be an object or null");
    const type = rs.rope_type ?? rs.type ?? "default";
    if (type !== "default") {
      throw new ConfigError(
        file,
        field,
        `has rope type ${JSON.stringify(type)}; gollm supports only "default" (no RoPE scaling)`,
      );
    }
    if (rs.rope_theta !== undefined) ropeTheta ??= rs.rope_theta;
  }
  if (ropeTheta !== undefined && (typeof ropeTheta !== "number" || !(ropeTheta > 0))) {
    throw new ConfigError(
      file,
      "rope_theta",
      `must be a positive number, got ${JSON.stringify(ropeTheta)}`,
    );
  }
  let context = num("max_position_embeddings");
  if (architecture === "Qwen2ForCausalLM" && raw.use_sliding_window === true) {
    throw new ConfigError(
      file,
      "use_sliding_window",
      "is true (per-layer sliding window), which gollm does not support",
    );
  }
  if (architecture === "MistralForCausalLM" && typeof raw.sliding_window === "number") {
    if (!(raw.sliding_window > 0)) {
      throw new ConfigError(file, "sliding_window", `must be positive, got ${raw.sliding_window}`);
    }
    context = Math.min(context, raw.sliding_window);
  }
  const hf: Record<string, unknown> = {
    arch: "llama",
    vocab_size: num("vocab_size"),
    dim: num("hidden_size"),
    n_layers: num("num_hidden_layers"),
    n_heads: num("num_attention_heads"),
    n_kv_heads: raw.num_key_value_heads ?? undefined,
    hidden_dim: num("intermediate_size"),
    context_length: context,
    norm: "rmsnorm",
    norm_eps: num("rms_norm_eps", 1e-6),
    rope_theta: ropeTheta ?? 10000,
    rope_style: "half",
    attn_bias: architecture === "Qwen2ForCausalLM",
    mlp: "swiglu",
    tie_embeddings: raw.tie_word_embeddings ?? false,
    tokenizer,
  };
  if (raw.head_dim !== undefined && raw.head_dim !== null) hf.head_dim = raw.head_dim;
  if (hf.n_kv_heads === undefined) delete hf.n_kv_heads;
  return { config: parseConfig(hf, file), architecture, eosIds };
}

/** Where HF tensors live: a lookup by HF name that knows which file to blame. */
interface TensorSource {
  get(name: string): Tensor | undefined;
  /** Every stored tensor name. */
  names(): Iterable<string>;
  /** The file holding `name` (or that should have), for error messages. */
  fileOf(name: string): string;
}

function shapeEq(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Row-major transpose of a (rows, cols) matrix. */
function transpose(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c); // (c, r)
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  }
  return { shape: [c, r], data: out };
}

/**
 * Maps HF tensors onto canonical names for `config`, following the `hf` sources of
 * core/tensor_names.ts: a name is looked up with and without the family's base prefix
 * (`model.`, `transformer.`), `transpose` sources (GPT-2 `Conv1D`, stored `(in, out)`) are
 * transposed, and fused sources (`c_attn`) are split along the output axis in part order.
 *
 * @param config The model config.
 * @param family The HF naming family.
 * @param src The tensors by HF name.
 * @returns Canonical weights (passes `checkWeights`).
 * @throws {FormatError} naming the HF tensor and its file when one is missing or mis-shaped,
 *   or when the file holds fewer or more layers than config.json declares.
 */
function mapWeights(config: ModelConfig, family: HfFamily, src: TensorSource): Weights {
  const rows = tensorRows(config);
  const unnamed = rows.find((r) => r.hf[family] === undefined);
  if (unnamed) {
    throw new FormatError(src.fileOf(""), `has no Hugging Face ${family} name for ${unnamed.name}`);
  }
  // Compare layer counts before anything per layer is built.
  const base = HF_BASE_PREFIX[family];
  const patterns = new Set<string>();
  for (const r of rows) {
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
  const out: Weights = new Map();
  /** The stored tensor `name` (with or without the base prefix), checked against `shape`. */
  const fetch = (name: string, shape: number[], canonical: string): Tensor => {
    const names = name.startsWith(base) ? [name, name.slice(base.length)] : [name];
    for (const n of names) {
      const t = src.get(n);
      if (!t) continue;
      if (!shapeEq(t.shape, shape)) {
        throw new FormatError(
          src.fileOf(n),
          `tensor '${n}' has shape [${t.shape}], expected [${shape}] (for ${canonical}) from config.json`,
        );
      }
      return t;
    }
    throw new FormatError(
      src.fileOf(names[0]),
      `tensor '${names[0]}' is missing (needed for ${canonical})`,
    );
  };
  const perLayer = rows.filter(isPerLayer);
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
      if (s.transpose) t = transpose(t);
      const cols = rest.reduce((a, b) => a * b, 1);
      let r0 = 0;
      parts.forEach((r, j) => {
        const data = parts.length === 1
          ? t.data
          : t.data.slice(r0 * cols, (r0 + shapes[j][0]) * cols);
        out.set(names[j], { shape: shapes[j], data });
        r0 += shapes[j][0];
        done.add(r);
      });
    }
  };
  map(rows.filter((r) => !isPerLayer(r)), 0);
  for (let l = 0; l < config.n_layers; l++) map(perLayer, l);
  return out;
}

/** Opens model.safetensors or every shard listed in model.safetensors.index.json. */
async function openTensors(dir: string): Promise<{ src: TensorSource; file: string }> {
  const single = join(dir, "model.safetensors");
  const index = join(dir, "model.safetensors.index.json");
  if (await isFile(index)) {
    const raw = await readJson(index);
    if (!isObj(raw) || !isObj(raw.weight_map)) {
      throw new FormatError(index, "field 'weight_map' is missing or not an object");
    }
    const map = raw.weight_map as Record<string, unknown>;
    const shards = new Map<string, Map<string, Tensor>>();
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
      shards.set(shard, (await readSafetensors(join(dir, shard))).tensors);
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
    const { tensors } = await readSafetensors(single);
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
export async function loadHf(dir: string): Promise<Checkpoint> {
  dir = dir.replace(/\/+$/, "") || "/";
  const cfgFile = join(dir, "config.json");
  const hasTok = await isFile(join(dir, "tokenizer.json"));
  const { config, architecture, eosIds } = parseHfConfig(
    await readJson(cfgFile),
    cfgFile,
    hasTok ? "tokenizer.json" : "none",
  );
  const { src, file } = await openTensors(dir);
  const weights = mapWeights(config, HF_FAMILY[architecture], src);
  checkWeights(config, weights, file);
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
  const ckpt: Checkpoint = { format: "hf", path: dir, config, weights, tokenizer };
  if (valid.length > 0) ckpt.extraEosIds = valid;
  if (generation) ckpt.generation = generation;
  return ckpt;
}
