/**
 * ModelConfig: the shape of a decoder-only transformer, loaded from YAML and validated.
 *
 * Field names follow the Meta / llama2.c reference (`dim`, `n_layers`, `n_heads`,
 * `n_kv_heads`, `hidden_dim`, ...). Integer sizes are bounded by {@linkcode CONFIG_LIMITS}.
 *
 * @module
 */
import yaml from "js-yaml";
import { ConfigError, FormatError } from "./errors.ts";
import { readTextBounded } from "./files.ts";
import { isPerLayer, tensorRows } from "./tensor_names.ts";
import { checkLlamaExtras } from "./config_extras.ts";

export { layerRopeIsLocal, layerWindow } from "./layers.ts";

/**
 * Architecture family: `llama` (RoPE decoder: RMSNorm, gated MLP, GQA; also Mistral, Qwen2/3,
 * Gemma 2/3 and Phi-3 through the fields below) or `gpt2` (learned positions, LayerNorm,
 * GELU).
 */
export type Arch = "llama" | "gpt2";

/** RoPE scaling kind (HF `rope_type`, llama.cpp `rope.scaling.type`); see core/rope.ts. */
export type RopeScaling = "none" | "linear" | "llama3" | "yarn" | "longrope";

/** Attention kind of one layer (HF `layer_types`). */
export type LayerType = "sliding_attention" | "full_attention";

/**
 * A validated model config. Every field is filled (defaults applied), so code that reads
 * it never has to guess.
 *
 * Derived sizes: `q_dim = n_heads * head_dim`, `kv_dim = n_kv_heads * head_dim`.
 *
 * The fields after `rope_style` that issue #10 added (RoPE scaling, partial rotary, QK-norm,
 * soft-capping, sliding windows, Gemma's sandwich norms and embedding scale) default to "off"
 * and apply to `arch: llama` only; their names follow Hugging Face `config.json` or llama.cpp's
 * GGUF keys.
 */
export interface ModelConfig {
  /** Architecture family. `gpt2` implies learned position embeddings, LayerNorm, GELU and bias on every linear layer. */
  arch: Arch;
  /** Number of token ids (rows of `tok_embeddings.weight`). */
  vocab_size: number;
  /** Residual stream width (model dimension). */
  dim: number;
  /** Number of transformer blocks. */
  n_layers: number;
  /** Number of query heads. */
  n_heads: number;
  /** Number of key/value heads (GQA: divides n_heads; 1 = MQA). Default: n_heads. */
  n_kv_heads: number;
  /** Width of one attention head. Default: dim / n_heads. May differ from it (then wq is (n_heads*head_dim, dim)). */
  head_dim: number;
  /** Width of the MLP hidden layer (w1/w3 rows). */
  hidden_dim: number;
  /** Maximum sequence length the model was trained for (tokens); the default KV capacity. */
  context_length: number;
  /** `rmsnorm` (llama) or `layernorm` (gpt2, with bias). */
  norm: "rmsnorm" | "layernorm";
  /** Epsilon added to the variance inside the norm. */
  norm_eps: number;
  /** RoPE base frequency theta (llama only; 10000 for Llama-2, 500000 for Llama-3). */
  rope_theta: number;
  /**
   * How RoPE pairs dimensions (llama only): `half` rotates dim i against i + rope_dim/2
   * (HF `rotate_half`); `interleaved` rotates adjacent pairs (2i, 2i+1) (Meta / llama2.c).
   */
  rope_style: "half" | "interleaved";
  /**
   * Dimensions of each head that RoPE rotates, the first ones (llama.cpp `rope.dimension_count`;
   * HF `partial_rotary_factor · head_dim`, Phi-4-mini 0.75). Default head_dim; even.
   */
  rope_dimension_count: number;
  /**
   * RoPE scaling (HF `rope_scaling.rope_type`, llama.cpp `rope.scaling.type`): `linear`
   * (position interpolation: frequencies / factor), `llama3` (Llama 3.1: low frequencies / factor,
   * smooth band between), `yarn` (Peng et al. 2023: NTK-by-parts ramp plus `rope_attn_factor`),
   * `longrope` (Phi-3 128k, Phi-3.5/Phi-4-mini, LongRoPE arXiv:2402.13753: per-pair divisors
   * `rope_long_factors` or `rope_short_factors`, chosen by the context the model runs with, plus
   * `rope_attn_factor`; see core/rope.ts `longropeFactors`). Default `none`. Applies to full-attention layers (Gemma 3's local layers use
   * `rope_local_base_freq` unscaled).
   */
  rope_scaling: RopeScaling;
  /** Scaling factor (HF `factor`, llama.cpp `rope.scaling.factor`). Default 1. */
  rope_scaling_factor: number;
  /**
   * Context the model was pretrained with (HF `original_max_position_embeddings`, llama.cpp
   * `rope.scaling.original_context_length`): required by `llama3`, `yarn` and `longrope`.
   * Default null.
   */
  rope_original_context_length: number | null;
  /** `llama3`: wavelengths above `original / low` are divided by the factor (HF `low_freq_factor`). Default 1. */
  rope_low_freq_factor: number;
  /** `llama3`: wavelengths below `original / high` are kept (HF `high_freq_factor`). Default 4. */
  rope_high_freq_factor: number;
  /** `yarn` ramp start in rotations (HF `beta_fast`, llama.cpp `rope.scaling.yarn_beta_fast`). Default 32. */
  rope_yarn_beta_fast: number;
  /** `yarn` ramp end in rotations (HF `beta_slow`, llama.cpp `rope.scaling.yarn_beta_slow`). Default 1. */
  rope_yarn_beta_slow: number;
  /**
   * Factor cos and sin are multiplied by (HF `attention_factor`): `yarn` default
   * `0.1 · ln(factor) + 1` (1 when factor <= 1); `longrope` default
   * `sqrt(1 + ln(s) / ln(rope_original_context_length))` with `s = context_length /
   * rope_original_context_length` (1 when s <= 1; HF `_compute_longrope_parameters`); 1 for
   * every other kind.
   */
  rope_attn_factor: number;
  /**
   * Per-pair divisors of the RoPE frequencies, `(rope_dimension_count / 2)` values (llama.cpp's
   * `rope_freqs.weight`, what a Llama 3.1 GGUF carries instead of its llama3 parameters).
   * Default null.
   */
  rope_freq_factors: number[] | null;
  /**
   * `longrope`: per-pair divisors of the RoPE frequencies used when the context per sequence
   * exceeds `rope_original_context_length`, `(rope_dimension_count / 2)` values (HF
   * `rope_scaling.long_factor`, llama.cpp tensor `rope_factors_long.weight`). Default null.
   */
  rope_long_factors: number[] | null;
  /**
   * `longrope`: the divisors used when the context per sequence is at most
   * `rope_original_context_length` (HF `short_factor`, llama.cpp `rope_factors_short.weight`).
   * Default null.
   */
  rope_short_factors: number[] | null;
  /** RoPE base of the sliding-window layers (Gemma 3 `rope_local_base_freq`, llama.cpp `rope.freq_base_swa`). Default null: `rope_theta`. */
  rope_local_base_freq: number | null;
  /** Qwen2-style bias on the q/k/v projections (llama only; gpt2 always has bias). */
  attn_bias: boolean;
  /** Per-head RMSNorm of q and k before RoPE, weights `(head_dim)` (Qwen3, Gemma 3). Default false. */
  qk_norm: boolean;
  /** Attention scores are scaled by `query_pre_attn_scalar^-0.5` (HF Gemma). Default head_dim. */
  query_pre_attn_scalar: number;
  /** Scores become `cap · tanh(score / cap)` before the softmax (Gemma 2 `attn_logit_softcapping`). Default null. */
  attn_logit_softcapping: number | null;
  /**
   * Sliding window in tokens (HF `sliding_window`, llama.cpp `attention.sliding_window`): the
   * token at position p of a sliding layer attends to positions `p - W + 1 .. p`. Default null.
   */
  sliding_window: number | null;
  /**
   * Per-layer attention kind (HF `layer_types`), `n_layers` entries; null with a
   * `sliding_window` means every layer slides (Mistral). Default null.
   */
  layer_types: LayerType[] | null;
  /**
   * `swiglu` (llama: w2(silu(w1 x) * w3 x)), `geglu` (Gemma: w2(gelu_tanh(w1 x) * w3 x)) or
   * `gelu` (gpt2: w2(gelu_tanh(w1 x))).
   */
  mlp: "swiglu" | "geglu" | "gelu";
  /**
   * Sandwich norms (Gemma 2/3): RMSNorm of the attention output and of the MLP output before
   * each residual add (`attn_post_norm`, `ffn_post_norm`). Default false.
   */
  post_norms: boolean;
  /** The token embedding is multiplied by this (Gemma: sqrt(dim) in the model's dtype). Default 1. */
  embed_scale: number;
  /** Logits become `cap · tanh(logit / cap)` (Gemma 2 `final_logit_softcapping`). Default null. */
  final_logit_softcapping: number | null;
  /** When true the LM head reuses `tok_embeddings.weight` and `output.weight` is absent. */
  tie_embeddings: boolean;
  /**
   * The tokenizer: a built-in tiktoken encoding name (`gpt2`, `cl100k_base`, `o200k_base`),
   * a file path relative to the config's directory (`tokenizer.tiktoken`, `tokenizer.bin`,
   * `tokenizer.json`), or `none` for models used with token ids only.
   */
  tokenizer: string;
}

/** Top-level keys that may sit beside the model fields, ignored here (python/config.py reads them). */
const IGNORED_SECTIONS = new Set(["train", "sft"]);

type FieldKind = "int" | "number" | "bool" | "string" | "numbers" | "strings";
interface FieldSpec {
  kind: FieldKind;
  /** Allowed values for string enums (and each element of `strings`). */
  oneOf?: readonly string[];
  /** Default when missing; `undefined` means required. A function derives it from other fields. */
  fallback?: unknown;
  /** Largest accepted value of an `int` field (see {@linkcode CONFIG_LIMITS}). */
  max?: number;
  /** null is a value (off), not "missing". */
  nullable?: boolean;
  /** Left out of {@linkcode configToYaml} while it holds its default (the issue #10 fields). */
  optional?: boolean;
}
type Derive = (c: Record<string, unknown>) => unknown;

/** `2^24` or `2^31 - 1`, as a limit is shown in messages. */
function powerOfTwo(n: number): string {
  return Number.isInteger(Math.log2(n)) ? `2^${Math.log2(n)}` : `2^${Math.log2(n + 1)} - 1`;
}

/**
 * Upper bounds of the integer fields. They catch absurd values (a corrupt or hostile file:
 * `n_layers: 100000000`, `max_position_embeddings: 1e12`) with a clear error in
 * microseconds, far above any released model: 2^24 for sizes that index tokens or features
 * (the largest vocabularies are ~256k), 2^16 for counts of layers and heads and for head_dim
 * (the largest models have ~130 layers and 128 heads). Nothing is allocated by these values
 * before a checkpoint's tensors are checked against them (core/weights.ts `checkWeights`
 * compares tensor counts first). `context_length` may be anything a GGUF u32 / llama2.c int32
 * header holds (2^31 - 1; issue #12 item 2): nothing is sized by it, only by the KV capacity,
 * so such a model runs with `--kv-capacity N`.
 */
export const CONFIG_LIMITS: Readonly<Record<string, number>> = {
  vocab_size: 2 ** 24,
  dim: 2 ** 24,
  hidden_dim: 2 ** 24,
  context_length: 2 ** 31 - 1,
  n_layers: 2 ** 16,
  n_heads: 2 ** 16,
  n_kv_heads: 2 ** 16,
  head_dim: 2 ** 16,
  rope_dimension_count: 2 ** 16,
  rope_original_context_length: 2 ** 24,
  sliding_window: 2 ** 24,
};

const LAYER_TYPES: readonly LayerType[] = ["sliding_attention", "full_attention"];
const opt = (spec: FieldSpec): FieldSpec => ({ ...spec, optional: true });

const FIELDS: Record<keyof ModelConfig, FieldSpec> = {
  arch: { kind: "string", oneOf: ["llama", "gpt2"] },
  vocab_size: { kind: "int", max: CONFIG_LIMITS.vocab_size },
  dim: { kind: "int", max: CONFIG_LIMITS.dim },
  n_layers: { kind: "int", max: CONFIG_LIMITS.n_layers },
  n_heads: { kind: "int", max: CONFIG_LIMITS.n_heads },
  n_kv_heads: {
    kind: "int",
    fallback: ((c) => c.n_heads) as Derive,
    max: CONFIG_LIMITS.n_kv_heads,
  },
  head_dim: {
    kind: "int",
    fallback: ((c) => (c.dim as number) / (c.n_heads as number)) as Derive,
    max: CONFIG_LIMITS.head_dim,
  },
  hidden_dim: { kind: "int", max: CONFIG_LIMITS.hidden_dim },
  context_length: { kind: "int", max: CONFIG_LIMITS.context_length },
  norm: { kind: "string", oneOf: ["rmsnorm", "layernorm"] },
  norm_eps: { kind: "number" },
  rope_theta: { kind: "number", fallback: 10000 },
  rope_style: { kind: "string", oneOf: ["half", "interleaved"], fallback: "half" },
  rope_dimension_count: opt({
    kind: "int",
    fallback: ((c) => c.head_dim) as Derive,
    max: CONFIG_LIMITS.rope_dimension_count,
  }),
  rope_scaling: opt({
    kind: "string",
    oneOf: ["none", "linear", "llama3", "yarn", "longrope"],
    fallback: "none",
  }),
  rope_scaling_factor: opt({ kind: "number", fallback: 1 }),
  rope_original_context_length: opt({
    kind: "int",
    nullable: true,
    fallback: null,
    max: CONFIG_LIMITS.rope_original_context_length,
  }),
  rope_low_freq_factor: opt({ kind: "number", fallback: 1 }),
  rope_high_freq_factor: opt({ kind: "number", fallback: 4 }),
  rope_yarn_beta_fast: opt({ kind: "number", fallback: 32 }),
  rope_yarn_beta_slow: opt({ kind: "number", fallback: 1 }),
  rope_attn_factor: opt({ kind: "number", fallback: ((c) => defaultAttnFactor(c)) as Derive }),
  rope_freq_factors: opt({ kind: "numbers", nullable: true, fallback: null }),
  rope_long_factors: opt({ kind: "numbers", nullable: true, fallback: null }),
  rope_short_factors: opt({ kind: "numbers", nullable: true, fallback: null }),
  rope_local_base_freq: opt({ kind: "number", nullable: true, fallback: null }),
  attn_bias: { kind: "bool", fallback: false },
  qk_norm: opt({ kind: "bool", fallback: false }),
  query_pre_attn_scalar: opt({ kind: "number", fallback: ((c) => c.head_dim) as Derive }),
  attn_logit_softcapping: opt({ kind: "number", nullable: true, fallback: null }),
  sliding_window: opt({
    kind: "int",
    nullable: true,
    fallback: null,
    max: CONFIG_LIMITS.sliding_window,
  }),
  layer_types: opt({ kind: "strings", oneOf: LAYER_TYPES, nullable: true, fallback: null }),
  mlp: { kind: "string", oneOf: ["swiglu", "geglu", "gelu"] },
  post_norms: opt({ kind: "bool", fallback: false }),
  embed_scale: opt({ kind: "number", fallback: 1 }),
  final_logit_softcapping: opt({ kind: "number", nullable: true, fallback: null }),
  tie_embeddings: { kind: "bool" },
  tokenizer: { kind: "string", fallback: "none" },
};

/**
 * The default attention factor: yarn's HF `get_mscale(factor)`, `0.1 · ln(factor) + 1`;
 * longrope's HF `_compute_longrope_parameters`, `sqrt(1 + ln(s) / ln(original))` with
 * `s = context_length / original`; 1 when the factor is at most 1 and for the other kinds.
 */
function defaultAttnFactor(c: Record<string, unknown>): number {
  if (c.rope_scaling === "longrope") {
    const orig = c.rope_original_context_length, ctx = c.context_length;
    if (typeof orig !== "number" || typeof ctx !== "number" || !(ctx / orig > 1)) return 1;
    return Math.sqrt(1 + Math.log(ctx / orig) / Math.log(orig));
  }
  const f = c.rope_scaling_factor;
  if (c.rope_scaling !== "yarn" || typeof f !== "number" || !(f > 1)) return 1;
  return 0.1 * Math.log(f) + 1;
}

/** The names of every ModelConfig field, in canonical order (the order YAML is written in). */
export const CONFIG_FIELDS: readonly (keyof ModelConfig)[] = Object.keys(
  FIELDS,
) as (keyof ModelConfig)[];

/** What a field must hold, as error messages say it (`a positive integer`). */
function expectedOf(spec: FieldSpec): string {
  switch (spec.kind) {
    case "int":
      return "a positive integer";
    case "number":
      return "a positive number";
    case "bool":
      return "true or false";
    case "string":
      return spec.oneOf ? `one of ${spec.oneOf.join(" | ")}` : "a non-empty string";
    case "numbers":
      return "a list of positive numbers";
    case "strings":
      return `a list of ${spec.oneOf!.join(" | ")}`;
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 60) + "…" : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

/** The default of `field` for a (partly) validated config. */
function defaultOf(field: keyof ModelConfig, c: Record<string, unknown>): unknown {
  const f = FIELDS[field].fallback;
  return typeof f === "function" ? (f as Derive)(c) : f;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Checks one value against its field spec; returns it (numbers lists copied). */
function checkValue(file: string, name: string, spec: FieldSpec, v: unknown): unknown {
  if (v === null && spec.nullable) return null;
  const bad = () =>
    new ConfigError(
      file,
      name,
      `must be ${expectedOf(spec)}${spec.nullable ? " or null" : ""}, got ${describe(v)}`,
    );
  switch (spec.kind) {
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw bad();
      if (spec.max !== undefined && v > spec.max) {
        throw new ConfigError(
          file,
          name,
          `must be at most ${spec.max} (${powerOfTwo(spec.max)}), got ${v}`,
        );
      }
      return v;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw bad();
      return v;
    case "bool":
      if (typeof v !== "boolean") throw bad();
      return v;
    case "string":
      if (typeof v !== "string" || v.length === 0) {
        throw new ConfigError(file, name, `must be a non-empty string, got ${describe(v)}`);
      }
      if (spec.oneOf && !spec.oneOf.includes(v)) {
        throw new ConfigError(
          file,
          name,
          `must be one of ${spec.oneOf.join(" | ")}, got ${describe(v)}`,
        );
      }
      return v;
    case "numbers": {
      if (!Array.isArray(v)) throw bad();
      const i = v.findIndex((x) => typeof x !== "number" || !Number.isFinite(x) || x <= 0);
      if (i >= 0) {
        throw new ConfigError(
          file,
          name,
          `[${i}] must be a positive number, got ${describe(v[i])}`,
        );
      }
      return [...v];
    }
    case "strings": {
      if (!Array.isArray(v)) throw bad();
      const i = v.findIndex((x) => typeof x !== "string" || !spec.oneOf!.includes(x));
      if (i >= 0) {
        throw new ConfigError(
          file,
          name,
          `[${i}] must be one of ${spec.oneOf!.join(" | ")}, got ${describe(v[i])}`,
        );
      }
      return [...v];
    }
  }
}

/**
 * Validates a plain object (parsed YAML or JSON) into a {@linkcode ModelConfig}.
 *
 * Checks, in order: unknown fields; each field's presence and type; enum values; positive
 * sizes within {@linkcode CONFIG_LIMITS}; then consistency (`n_heads % n_kv_heads == 0`, `head_dim` an integer and even for
 * RoPE, `arch: gpt2` with `norm: layernorm` and `mlp: gelu`, `arch: llama` with `rmsnorm`
 * and `swiglu` or `geglu`; the RoPE fields against `rope_scaling` (a parameter of another kind
 * must keep its default; `llama3`, `yarn` and `longrope` need `rope_original_context_length`,
 * `longrope` both factor lists), `rope_dimension_count` even and at most head_dim,
 * `rope_freq_factors`, `rope_long_factors` and `rope_short_factors` of
 * `rope_dimension_count / 2` values, `layer_types` of `n_layers` entries with a
 * `sliding_window` when one slides, `rope_local_base_freq` only with sliding layers; the issue
 * #10 fields at their defaults for `arch: gpt2`).
 *
 * @param raw The parsed object.
 * @param file Where it came from, used in error messages.
 * @returns A config with every field filled.
 * @throws {ConfigError} naming `file` and the field, with expected vs actual.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * const c = parseConfig({
 *   arch: "llama", vocab_size: 512, dim: 64, n_layers: 5, n_heads: 8, n_kv_heads: 4,
 *   hidden_dim: 172, context_length: 512, norm: "rmsnorm", norm_eps: 1e-5,
 *   rope_theta: 10000, rope_style: "interleaved", mlp: "swiglu", tie_embeddings: true,
 * }, "<example>");
 * assert.equal(c.head_dim, 8); // dim / n_heads
 * assert.equal(c.rope_scaling, "none");
 * assert.throws(() => parseConfig({ ...c, n_layers: 1e8 }, "c.yaml"),
 *   /c.yaml: field 'n_layers' must be at most 65536/);
 * assert.throws(() => parseConfig({ ...c, rope_scaling: "llama3", rope_scaling_factor: 8 }, "c.yaml"),
 *   /c.yaml: field 'rope_original_context_length' is missing \(required by rope_scaling llama3\)/);
 * ```
 */
export function parseConfig(raw: unknown, file: string): ModelConfig {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError(
      file,
      "<root>",
      `must be a mapping of config fields, got ${describe(raw)}`,
    );
  }
  const src = raw as Record<string, unknown>;
  for (const key of Object.keys(src)) {
    if (!Object.hasOwn(FIELDS, key) && !IGNORED_SECTIONS.has(key)) {
      throw new ConfigError(
        file,
        key,
        `is not a known config field (known: ${CONFIG_FIELDS.join(", ")})`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const name of CONFIG_FIELDS) {
    const spec = FIELDS[name];
    let v = src[name];
    if (v === undefined || (v === null && !spec.nullable)) {
      if (spec.fallback === undefined) {
        throw new ConfigError(file, name, `is missing (expected ${expectedOf(spec)})`);
      }
      v = defaultOf(name, { ...src, ...out });
    }
    out[name] = checkValue(file, name, spec, v);
  }
  const c = out as unknown as ModelConfig;

  // Consistency between fields.
  if (c.n_heads % c.n_kv_heads !== 0) {
    throw new ConfigError(
      file,
      "n_kv_heads",
      `must divide n_heads (${c.n_heads}), got ${c.n_kv_heads}`,
    );
  }
  if (src.head_dim === undefined && c.dim % c.n_heads !== 0) {
    throw new ConfigError(
      file,
      "head_dim",
      `is missing and dim (${c.dim}) is not divisible by n_heads (${c.n_heads}); set head_dim`,
    );
  }
  if (c.arch === "llama") {
    if (c.head_dim % 2 !== 0) {
      throw new ConfigError(file, "head_dim", `must be even for RoPE, got ${c.head_dim}`);
    }
    if (c.norm !== "rmsnorm") {
      throw new ConfigError(file, "norm", `must be rmsnorm for arch llama, got "${c.norm}"`);
    }
    if (c.mlp !== "swiglu" && c.mlp !== "geglu") {
      throw new ConfigError(file, "mlp", `must be swiglu or geglu for arch llama, got "${c.mlp}"`);
    }
    checkLlamaExtras(
      c,
      file,
      (f) => defaultOf(f, c as unknown as Record<string, unknown>),
      describe,
    );
  } else {
    if (c.norm !== "layernorm") {
      throw new ConfigError(file, "norm", `must be layernorm for arch gpt2, got "${c.norm}"`);
    }
    if (c.mlp !== "gelu") {
      throw new ConfigError(file, "mlp", `must be gelu for arch gpt2, got "${c.mlp}"`);
    }
    if (c.attn_bias === false && src.attn_bias !== undefined) {
      throw new ConfigError(
        file,
        "attn_bias",
        "must be true or absent for arch gpt2 (gpt2 always has bias)",
      );
    }
    c.attn_bias = true;
    for (const f of CONFIG_FIELDS) {
      if (FIELDS[f].optional && !same(c[f], defaultOf(f, out))) {
        throw new ConfigError(file, f, `applies to arch llama only (got ${describe(c[f])})`);
      }
    }
  }
  return c;
}

/**
 * Reads and validates a YAML model config file. A `train:` or `sft:` section may sit beside the
 * model fields and is ignored here.
 *
 * @param path Path of the YAML file.
 * @returns The validated config.
 * @throws {ConfigError} when the file cannot be read, is not valid YAML, or fails
 *   {@linkcode parseConfig}; the message names the file and field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadConfig } from "./config.ts";
 * const c = await loadConfig("configs/gollm-85m.yaml"); // relative to the repository root
 * assert.equal(c.dim, 768);
 * ```
 */
export async function loadConfig(path: string): Promise<ModelConfig> {
  let text: string;
  try {
    text = await readTextBounded(path, "config file");
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    // Field "<file>" for callers that inspect it; the message reads as a file problem.
    const err = new ConfigError(path, "<file>", "cannot be read");
    err.message = e.message;
    throw err;
  }
  return parseConfigYaml(text, path);
}

/**
 * Parses YAML text into a validated {@linkcode ModelConfig}.
 *
 * @param text YAML source.
 * @param file Where it came from, used in error messages.
 * @returns The validated config.
 * @throws {ConfigError} for invalid YAML or any validation failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * const c = parseConfigYaml(
 *   "arch: gpt2\nvocab_size: 50257\ndim: 768\nn_layers: 12\nn_heads: 12\n" +
 *     "hidden_dim: 3072\ncontext_length: 1024\nnorm: layernorm\nnorm_eps: 1.0e-5\n" +
 *     "mlp: gelu\ntie_embeddings: true\ntokenizer: gpt2\n",
 *   "gpt2.yaml",
 * );
 * assert.equal(c.n_kv_heads, 12); // defaults to n_heads
 * ```
 */
export function parseConfigYaml(text: string, file: string): ModelConfig {
  let raw: unknown;
  try {
    raw = yaml.load(text);
  } catch (e) {
    const msg = (e as Error).message.split("\n")[0];
    throw new ConfigError(file, "<yaml>", `is not valid YAML: ${msg}`);
  }
  return parseConfig(raw, file);
}

/**
 * Serialises a config as YAML in canonical field order (what `python/export.py` and
 * `gollm convert` write as `config.yaml`). The issue #10 fields (RoPE scaling, windows,
 * soft-capping, ...) are written only when they differ from their defaults, so a plain Llama
 * config reads as it always did.
 *
 * @param c The config.
 * @returns YAML text, one `field: value` line per field (lists as JSON flow sequences).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml, configToYaml } from "./config.ts";
 * const text = "arch: gpt2\nvocab_size: 64\ndim: 32\nn_layers: 1\nn_heads: 2\n" +
 *   "hidden_dim: 64\ncontext_length: 16\nnorm: layernorm\nnorm_eps: 1.0e-5\nmlp: gelu\n" +
 *   "tie_embeddings: true\ntokenizer: none\n";
 * const c = parseConfigYaml(text, "x.yaml");
 * assert.deepEqual(parseConfigYaml(configToYaml(c), "y.yaml"), c);
 * ```
 */
export function configToYaml(c: ModelConfig): string {
  const rec = c as unknown as Record<string, unknown>;
  return CONFIG_FIELDS.filter((k) => !FIELDS[k].optional || !same(c[k], defaultOf(k, rec)))
    .map((k) => `${k}: ${JSON.stringify(c[k])}`).join("\n") + "\n";
}

/**
 * Parameter count of a model with this config (embeddings included, tied output counted
 * once): the sum over the rows of core/tensor_names.ts, computed per row, not per layer.
 *
 * @param c The config.
 * @returns Number of scalar parameters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig, parameterCount } from "./config.ts";
 * // GPT-2 small: 124,439,808 parameters, as transformers' `num_parameters()` reports.
 * const gpt2 = parseConfig({ arch: "gpt2", vocab_size: 50257, dim: 768, n_layers: 12,
 *   n_heads: 12, hidden_dim: 3072, context_length: 1024, norm: "layernorm", norm_eps: 1e-5,
 *   mlp: "gelu", tie_embeddings: true }, "<example>");
 * assert.equal(parameterCount(gpt2), 124_439_808);
 * ```
 */
export function parameterCount(c: ModelConfig): number {
  let n = 0;
  for (const r of tensorRows(c)) {
    n += r.shape(c).reduce((a, b) => a * b, 1) * (isPerLayer(r) ? c.n_layers : 1);
  }
  return n;
}
