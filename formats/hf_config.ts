/**
 * Hugging Face `config.json` → gollm's {@linkcode ModelConfig}, for the architectures of
 * {@linkcode HF_ARCHITECTURES}, following transformers' configuration classes
 * (`models/<arch>/configuration_<arch>.py`, their defaults for missing keys) and
 * `modeling_rope_utils.py`:
 *
 * | architecture                      | gollm                                                      |
 * |-----------------------------------|------------------------------------------------------------|
 * | `LlamaForCausalLM`                | `arch: llama`, `rope_style: half` (HF `rotate_half`)        |
 * | `MistralForCausalLM`              | + `sliding_window` on every layer                           |
 * | `Qwen2ForCausalLM`                | + q/k/v bias; `use_sliding_window` from `max_window_layers` |
 * | `Qwen3ForCausalLM`                | + `qk_norm` (no bias), windows as Qwen2                     |
 * | `Gemma2ForCausalLM`               | `mlp: geglu`, `post_norms`, `embed_scale` √dim, soft-caps, `query_pre_attn_scalar`, even layers slide |
 * | `Gemma3ForCausalLM` (`gemma3_text`) | as Gemma 2 + `qk_norm`, `rope_local_base_freq`, five of six layers slide (`sliding_window_pattern` / `layer_types`) |
 * | `Phi3ForCausalLM`                 | `partial_rotary_factor` → `rope_dimension_count`; `sliding_window` on every layer |
 * | `GPT2LMHeadModel`                 | `arch: gpt2`                                               |
 *
 * RoPE parameters are read from both spellings: `rope_scaling` (transformers 4.x, also with
 * the old `type` key) and `rope_parameters` (transformers 5.x, nested by layer type for
 * Gemma 3), plus the top-level `rope_theta`, `partial_rotary_factor`,
 * `original_max_position_embeddings` and `rope_local_base_freq`. Kinds `default`, `linear`,
 * `llama3`, `yarn` are supported, and for `Phi3ForCausalLM` `longrope`/`su` (Phi-3 128k,
 * Phi-3.5-mini, Phi-4-mini: `long_factor`, `short_factor`, the attention factor; see
 * core/rope.ts for which set runs); `dynamic` and any other are refused naming the field and
 * the kind.
 *
 * @module
 */
import { type LayerType, type ModelConfig, parseConfig } from "../core/config.ts";
import { ConfigError } from "../core/errors.ts";
import { bf16ToF32, f16ToF32, f32BitsToBf16Bits, f32BitsToF16Bits } from "../core/numbers.ts";
import type { HfFamily } from "../core/tensor_names.ts";

/** The HF naming family of each supported architecture (core/tensor_names.ts `hf`). */
export const HF_FAMILY: Readonly<Record<string, HfFamily>> = {
  LlamaForCausalLM: "llama",
  MistralForCausalLM: "llama",
  Qwen2ForCausalLM: "llama",
  Qwen3ForCausalLM: "llama",
  Gemma2ForCausalLM: "gemma",
  Gemma3ForCausalLM: "gemma",
  Phi3ForCausalLM: "phi3",
  GPT2LMHeadModel: "gpt2",
};

/** Architectures {@linkcode parseHfConfig} reads (`config.json` `architectures[0]`). */
export const HF_ARCHITECTURES: readonly string[] = Object.keys(HF_FAMILY);

/** `model_type` → architecture, for a config.json without `architectures`. */
const BY_MODEL_TYPE: Record<string, string> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  qwen3: "Qwen3ForCausalLM",
  gemma2: "Gemma2ForCausalLM",
  gemma3_text: "Gemma3ForCausalLM",
  phi3: "Phi3ForCausalLM",
  gpt2: "GPT2LMHeadModel",
};

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

/** Whether `v` is a JSON object (not null, not a list). */
export function isObj(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** The token ids of an int-or-list field (`eos_token_id`). */
export function ids(v: unknown): number[] {
  if (typeof v === "number" && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x) => typeof x === "number" && Number.isInteger(x));
  return [];
}

const GELU_TANH = ["gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

/**
 * `x` rounded to a model's dtype (config.json `torch_dtype` / `dtype`): Gemma multiplies the
 * embedding by `sqrt(hidden_size)` as a tensor of the model's dtype.
 */
function inDtype(x: number, dtype: unknown): number {
  const bits = new Uint32Array(new Float32Array([x]).buffer)[0];
  if (dtype === "bfloat16") return bf16ToF32(f32BitsToBf16Bits(bits));
  if (dtype === "float16") return f16ToF32(f32BitsToF16Bits(bits));
  return Math.fround(x);
}

/** Reads typed fields of one JSON object, naming `file` and the field (with a prefix) in errors. */
class Fields {
  constructor(
    readonly raw: Json,
    readonly file: string,
    readonly architecture: string,
    readonly prefix = "",
  ) {}

  /** A positive number; `fallback` when absent or null (else an error naming the field). */
  num(name: string, fallback?: number): number {
    const v = this.raw[name];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(
        this.file,
        this.prefix + name,
        `is missing (required for ${this.architecture})`,
      );
    }
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new ConfigError(
        this.file,
        this.prefix + name,
        `must be a positive number, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** A non-negative integer; `fallback` when absent or null. */
  count(name: string, fallback: number): number {
    const v = this.raw[name];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
      throw new ConfigError(
        this.file,
        this.prefix + name,
        `must be a non-negative integer, got ${JSON.stringify(v)}`,
      );
    }
    return v;
  }

  /** A list of `n` positive numbers (required). */
  nums(name: string, n: number): number[] {
    const v = this.raw[name];
    if (
      !Array.isArray(v) || v.length !== n ||
      v.some((x) => typeof x !== "number" || !Number.isFinite(x) || x <= 0)
    ) {
      const got = Array.isArray(v) ? `a list of ${v.length}` : JSON.stringify(v ?? null);
      throw new ConfigError(
        this.file,
        this.prefix + name,
        `must be a list of ${n} positive numbers (rotary dims / 2), got ${got}`,
      );
    }
    return [...v];
  }

  /** A positive number or null (off); `fallback` when the key is absent. */
  numOrNull(name: string, fallback: number | null): number | null {
    if (!Object.hasOwn(this.raw, name)) return fallback;
    return this.raw[name] === null ? null : this.num(name);
  }
}

/** The RoPE fields of a config.json (see the module doc). */
function parseRope(
  raw: Json,
  f: Fields,
  headDim: number,
  defaultTheta: number,
): Record<string, unknown> {
  const { file, architecture } = f;
  let global: Json = {};
  let local: Json | null = null;
  let where = "rope_parameters";
  const rp = raw.rope_parameters;
  if (rp !== undefined && rp !== null) {
    if (!isObj(rp)) throw new ConfigError(file, "rope_parameters", "must be an object or null");
    if (isObj(rp.full_attention) || isObj(rp.sliding_attention)) {
      global = isObj(rp.full_attention) ? rp.full_attention : {};
      local = isObj(rp.sliding_attention) ? rp.sliding_attention : null;
      where = "rope_parameters.full_attention";
    } else global = rp;
  }
  const rs = raw.rope_scaling;
  if (rs !== undefined && rs !== null) {
    if (!isObj(rs)) throw new ConfigError(file, "rope_scaling", "must be an object or null");
    global = { ...global, ...rs }; // transformers: rope_scaling wins over rope_parameters
    where = "rope_scaling";
  }
  const g = new Fields(global, file, architecture, `${where}.`);
  const type = String(global.rope_type ?? global.type ?? "default");
  const out: Record<string, unknown> = {
    rope_theta: g.num("rope_theta", f.num("rope_theta", defaultTheta)),
  };
  const prf = g.num("partial_rotary_factor", f.num("partial_rotary_factor", 1));
  if (prf !== 1) {
    if (!(prf < 1)) {
      throw new ConfigError(file, "partial_rotary_factor", `must be at most 1, got ${prf}`);
    }
    out.rope_dimension_count = Math.floor(headDim * prf);
  }
  const supported = architecture === "Phi3ForCausalLM" ? ["default", "longrope", "su"] : [
    "default",
    "linear",
    "llama3",
    "yarn",
  ];
  if (!supported.includes(type)) {
    throw new ConfigError(
      file,
      where,
      `has rope type ${JSON.stringify(type)}; gollm supports ${
        supported.map((t) => JSON.stringify(t)).join(", ")
      } for ${architecture}` +
        (type === "longrope" || type === "su" ? " (longrope: Phi3ForCausalLM only)" : ""),
    );
  }
  const orig = () =>
    g.num(
      "original_max_position_embeddings",
      f.num("original_max_position_embeddings", f.num("max_position_embeddings")),
    );
  if (type === "linear") {
    out.rope_scaling = "linear";
    out.rope_scaling_factor = g.num("factor");
  } else if (type === "llama3") {
    out.rope_scaling = "llama3";
    out.rope_scaling_factor = g.num("factor");
    out.rope_low_freq_factor = g.num("low_freq_factor");
    out.rope_high_freq_factor = g.num("high_freq_factor");
    out.rope_original_context_length = orig();
  } else if (type === "yarn") {
    const original = orig();
    const factor = g.num("factor", f.num("max_position_embeddings") / original);
    if (global.truncate === false) {
      throw new ConfigError(file, `${where}.truncate`, "is false, which gollm does not support");
    }
    out.rope_scaling = "yarn";
    out.rope_scaling_factor = factor;
    out.rope_original_context_length = original;
    // HF: `beta_fast or 32`, `beta_slow or 1`.
    out.rope_yarn_beta_fast = global.beta_fast ? g.num("beta_fast") : 32;
    out.rope_yarn_beta_slow = global.beta_slow ? g.num("beta_slow") : 1;
    const mscale = (s: number, m = 1) => (s <= 1 ? 1 : 0.1 * m * Math.log(s) + 1);
    const af = global.attention_factor;
    if (af !== undefined && af !== null) out.rope_attn_factor = g.num("attention_factor");
    else if (global.mscale && global.mscale_all_dim) {
      out.rope_attn_factor = mscale(factor, g.num("mscale")) /
        mscale(factor, g.num("mscale_all_dim"));
    } else out.rope_attn_factor = mscale(factor);
  } else if (type === "longrope" || type === "su") {
    Object.assign(
      out,
      parseLongrope(g, f, (out.rope_dimension_count as number | undefined) ?? headDim),
    );
  }
  if (local !== null) {
    const lt = String(local.rope_type ?? local.type ?? "default");
    if (lt !== "default") {
      throw new ConfigError(
        file,
        "rope_parameters.sliding_attention",
        `has rope type ${JSON.stringify(lt)}; gollm supports only "default" for sliding layers`,
      );
    }
    const lf = new Fields(local, file, architecture, "rope_parameters.sliding_attention.");
    out.rope_local_base_freq = lf.num("rope_theta", f.num("rope_local_base_freq", 10000));
  } else if (architecture === "Gemma3ForCausalLM") {
    out.rope_local_base_freq = f.num("rope_local_base_freq", 10000);
  }
  return out;
}

/**
 * Phi-3's `longrope` (`su`) fields, as transformers 5 reads them (`Phi3Config`,
 * `standardize_rope_params`, `_compute_longrope_parameters`): the top-level
 * `original_max_position_embeddings` (default 4096, and preferred over one inside the RoPE
 * parameters), `long_factor` / `short_factor` of rotary dims / 2 values, and the attention
 * factor `attention_factor`, else `sqrt(1 + ln(s) / ln(original))` (1 when s <= 1) with
 * `s = factor`, else `max_position_embeddings / original`.
 */
function parseLongrope(g: Fields, f: Fields, rotaryDims: number): Record<string, unknown> {
  const original = f.num("original_max_position_embeddings", 4096);
  const s = g.num("factor", f.num("max_position_embeddings") / original);
  const given = g.raw.attention_factor !== undefined && g.raw.attention_factor !== null;
  return {
    rope_scaling: "longrope",
    rope_original_context_length: original,
    rope_long_factors: g.nums("long_factor", rotaryDims / 2),
    rope_short_factors: g.nums("short_factor", rotaryDims / 2),
    rope_attn_factor: given
      ? g.num("attention_factor")
      : s <= 1
      ? 1
      : Math.sqrt(1 + Math.log(s) / Math.log(original)),
  };
}

/** The window and per-layer kinds of a config.json (HF per architecture, see the module doc). */
function parseWindows(
  raw: Json,
  f: Fields,
  nLayers: number,
): { sliding_window: number | null; layer_types: LayerType[] | null } {
  const { file, architecture } = f;
  const window = (fallback: number | null) => f.numOrNull("sliding_window", fallback);
  let w: number | null = null;
  let types: LayerType[] | null = null;
  const given = (): LayerType[] | null => {
    const lt = raw.layer_types;
    if (lt === undefined || lt === null) return null;
    if (
      !Array.isArray(lt) || lt.length !== nLayers ||
      lt.some((t) => t !== "sliding_attention" && t !== "full_attention")
    ) {
      throw new ConfigError(
        file,
        "layer_types",
        `must list num_hidden_layers (${nLayers}) of "sliding_attention" | "full_attention"`,
      );
    }
    return lt as LayerType[];
  };
  switch (architecture) {
    case "MistralForCausalLM":
    case "Phi3ForCausalLM":
      w = window(null); // every layer (HF: one mask for the whole model)
      break;
    case "Qwen2ForCausalLM":
    case "Qwen3ForCausalLM":
      if (raw.use_sliding_window === true) {
        w = window(4096);
        const from = f.count("max_window_layers", 28);
        types = given() ??
          Array.from(
            { length: nLayers },
            (_, i) => i >= from ? "sliding_attention" : "full_attention",
          );
      }
      break;
    case "Gemma2ForCausalLM":
      w = window(4096);
      types = given() ??
        Array.from(
          { length: nLayers },
          (_, i) => (i + 1) % 2 ? "sliding_attention" : "full_attention",
        );
      break;
    case "Gemma3ForCausalLM": {
      if (raw.use_bidirectional_attention === true) {
        throw new ConfigError(file, "use_bidirectional_attention", "is true (not a causal LM)");
      }
      w = window(4096);
      const pattern = f.num("sliding_window_pattern", 6);
      types = given() ??
        Array.from(
          { length: nLayers },
          (_, i) => (i + 1) % pattern ? "sliding_attention" : "full_attention",
        );
      break;
    }
  }
  if (w === null || (types !== null && types.every((t) => t === "full_attention"))) {
    return { sliding_window: null, layer_types: null };
  }
  if (types !== null && types.every((t) => t === "sliding_attention")) types = null;
  return { sliding_window: w, layer_types: types };
}

/**
 * Maps a parsed HF `config.json` onto a validated {@linkcode ModelConfig} (see the module doc).
 *
 * Llama family: `hidden_size`→dim, `num_hidden_layers`→n_layers, `num_attention_heads`→
 * n_heads, `num_key_value_heads`→n_kv_heads (default n_heads), `head_dim` (when set),
 * `intermediate_size`→hidden_dim, `max_position_embeddings`→context_length,
 * `rms_norm_eps`→norm_eps, the RoPE and window fields, `tie_word_embeddings` (default false;
 * Gemma true), `vocab_size`. GPT-2: `n_embd`, `n_layer`, `n_head`, `n_inner` (default
 * 4·n_embd), `n_positions`, `layer_norm_epsilon`, `tie_word_embeddings` (default true).
 *
 * @param raw Parsed config.json.
 * @param file Its path, named in errors.
 * @param tokenizer The config's `tokenizer` field (`tokenizer.json` or `none`).
 * @returns The config, the architecture name and config.json's EOS ids.
 * @throws {ConfigError} naming `file` and the field: an unsupported architecture, a missing
 *   or non-positive size, an unsupported `rope_scaling`/`rope_parameters` type, activation,
 *   attention/MLP bias layout or attention mode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHfConfig } from "./hf_config.ts";
 * const llama31 = {
 *   architectures: ["LlamaForCausalLM"], vocab_size: 256, hidden_size: 64,
 *   intermediate_size: 128, num_hidden_layers: 2, num_attention_heads: 4,
 *   num_key_value_heads: 2, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
 *   rope_theta: 500000, tie_word_embeddings: false, hidden_act: "silu",
 *   rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4,
 *     original_max_position_embeddings: 8192 },
 * };
 * const { config } = parseHfConfig(llama31, "config.json");
 * assert.equal(config.n_kv_heads, 2);
 * assert.equal(config.rope_style, "half"); // HF rotate_half
 * assert.equal(config.rope_scaling, "llama3");
 * assert.equal(config.rope_original_context_length, 8192);
 * assert.throws(
 *   () => parseHfConfig({ ...llama31, rope_scaling: { type: "dynamic", factor: 2 } }, "c.json"),
 *   /c.json: field 'rope_scaling' has rope type "dynamic"/,
 * );
 * ```
 */
export function parseHfConfig(raw: unknown, file: string, tokenizer = "none"): HfConfigInfo {
  if (!isObj(raw)) throw new ConfigError(file, "<root>", "must be a JSON object");
  const archs = raw.architectures;
  let architecture: string | undefined;
  if (Array.isArray(archs) && typeof archs[0] === "string") architecture = archs[0];
  else if (archs === undefined) {
    architecture = BY_MODEL_TYPE[String(raw.model_type)];
    if (architecture === undefined) {
      throw new ConfigError(
        file,
        "architectures",
        `is missing and model_type ${JSON.stringify(raw.model_type)} is not one of ${
          Object.keys(BY_MODEL_TYPE).join(", ")
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
  const f = new Fields(raw, file, architecture);
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
    for (const k of ["scale_attn_by_inverse_layer_idx", "add_cross_attention"]) {
      if (raw[k] === true) throw new ConfigError(file, k, "is true, which gollm does not support");
    }
    if (raw.scale_attn_weights === false) {
      throw new ConfigError(file, "scale_attn_weights", "is false, which gollm does not support");
    }
    const dim = f.num("n_embd");
    const config = parseConfig({
      arch: "gpt2",
      vocab_size: f.num("vocab_size"),
      dim,
      n_layers: f.num("n_layer"),
      n_heads: f.num("n_head"),
      hidden_dim: f.num("n_inner", 4 * dim),
      context_length: f.num("n_positions"),
      norm: "layernorm",
      norm_eps: f.num("layer_norm_epsilon", 1e-5),
      mlp: "gelu",
      tie_embeddings: raw.tie_word_embeddings ?? true,
      tokenizer,
    }, file);
    return { config, architecture, eosIds };
  }

  // Llama family.
  const gemma = HF_FAMILY[architecture] === "gemma";
  const gemma3 = architecture === "Gemma3ForCausalLM";
  if (gemma) {
    const act = raw.hidden_activation ?? raw.hidden_act ?? "gelu_pytorch_tanh";
    if (!GELU_TANH.includes(String(act))) {
      throw new ConfigError(
        file,
        raw.hidden_activation !== undefined ? "hidden_activation" : "hidden_act",
        `is ${JSON.stringify(act)}; gollm's GeGLU uses the tanh GELU (${GELU_TANH.join(", ")})`,
      );
    }
  } else {
    const act = raw.hidden_act ?? "silu";
    if (act !== "silu") {
      throw new ConfigError(file, "hidden_act", `is ${JSON.stringify(act)}; gollm supports "silu"`);
    }
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
  const dim = f.num("hidden_size");
  const nHeads = f.num("num_attention_heads");
  const headDefault = gemma ? 256 : architecture === "Qwen3ForCausalLM" ? 128 : dim / nHeads;
  const headDim = f.num("head_dim", headDefault);
  const nLayers = f.num("num_hidden_layers");
  const defaultTheta = gemma3 ? 1e6 : 10000;
  const hf: Record<string, unknown> = {
    arch: "llama",
    vocab_size: f.num("vocab_size"),
    dim,
    n_layers: nLayers,
    n_heads: nHeads,
    n_kv_heads: raw.num_key_value_heads ?? undefined,
    hidden_dim: f.num("intermediate_size"),
    context_length: f.num("max_position_embeddings"),
    norm: "rmsnorm",
    norm_eps: f.num("rms_norm_eps", 1e-6),
    rope_style: "half",
    ...parseRope(raw, f, headDim, defaultTheta),
    attn_bias: architecture === "Qwen2ForCausalLM",
    qk_norm: architecture === "Qwen3ForCausalLM" || gemma3,
    ...parseWindows(raw, f, nLayers),
    mlp: gemma ? "geglu" : "swiglu",
    tie_embeddings: raw.tie_word_embeddings ?? gemma,
    tokenizer,
  };
  if ((raw.head_dim !== undefined && raw.head_dim !== null) || headDim !== dim / nHeads) {
    hf.head_dim = headDim;
  }
  if (hf.n_kv_heads === undefined || hf.n_kv_heads === null) delete hf.n_kv_heads;
  // Gemma 3 with no sliding layer (sliding_window_pattern 1): its local base is never used.
  if (hf.sliding_window === null) delete hf.rope_local_base_freq;
  if (gemma) {
    hf.post_norms = true;
    hf.embed_scale = inDtype(Math.sqrt(dim), raw.torch_dtype ?? raw.dtype);
    hf.query_pre_attn_scalar = f.num("query_pre_attn_scalar", 256);
    // HF Gemma 3 accepts attn_logit_softcapping but its attention never applies it.
    hf.attn_logit_softcapping = gemma3 ? null : f.numOrNull("attn_logit_softcapping", 50);
    hf.final_logit_softcapping = f.numOrNull("final_logit_softcapping", gemma3 ? null : 30);
  }
  return { config: parseConfig(hf, file), architecture, eosIds };
}
