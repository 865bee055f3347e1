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

/** Architecture family: `llama` (RoPE, RMSNorm, SwiGLU, GQA) or `gpt2` (learned positions, LayerNorm, GELU). */
export type Arch = "llama" | "gpt2";

/**
 * A validated model config. Every field is filled (defaults applied), so code that reads
 * it never has to guess.
 *
 * Derived sizes: `q_dim = n_heads * head_dim`, `kv_dim = n_kv_heads * head_dim`.
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
   * How RoPE pairs dimensions (llama only): `half` rotates dim i against i + head_dim/2
   * (HF `rotate_half`); `interleaved` rotates adjacent pairs (2i, 2i+1) (Meta / llama2.c).
   */
  rope_style: "half" | "interleaved";
  /** Qwen2-style bias on the q/k/v projections (llama only; gpt2 always has bias). */
  attn_bias: boolean;
  /** `swiglu` (llama: w2(silu(w1 x) * w3 x)) or `gelu` (gpt2: w2(gelu_tanh(w1 x))). */
  mlp: "swiglu" | "gelu";
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

type FieldKind = "int" | "number" | "bool" | "string";
interface FieldSpec {
  kind: FieldKind;
  /** Allowed values for string enums. */
  oneOf?: readonly string[];
  /** Default when missing; `undefined` means required. A function derives it from other fields. */
  fallback?: unknown;
  /** Largest accepted value of an `int` field (see {@linkcode CONFIG_LIMITS}). */
  max?: number;
}
type Derive = (c: Record<string, unknown>) => unknown;

/**
 * Upper bounds of the integer fields. They catch absurd values (a corrupt or hostile file:
 * `n_layers: 100000000`, `max_position_embeddings: 1e12`) with a clear error in
 * microseconds, far above any released model: 2^24 for sizes that index features or tokens
 * of the vocabulary (the largest vocabularies are ~256k), 2^31 - 1 for `context_length`
 * (positions are int32; a context this long is fine as long as `--kv-capacity` bounds the KV
 * cache, since nothing else is sized by it), 2^16 for counts
 * of layers and heads and for head_dim (the largest models have ~130 layers and 128 heads).
 * Nothing is allocated by these values before a checkpoint's tensors are checked against
 * them (core/weights.ts `checkWeights` compares tensor counts first), and the KV cache is
 * sized by the KV capacity, not by `context_length`.
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
};

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
  attn_bias: { kind: "bool", fallback: false },
  mlp: { kind: "string", oneOf: ["swiglu", "gelu"] },
  tie_embeddings: { kind: "bool" },
  tokenizer: { kind: "string", fallback: "none" },
};

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
  }
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 60) + "…" : v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

/**
 * Validates a plain object (parsed YAML or JSON) into a {@linkcode ModelConfig}.
 *
 * Checks, in order: unknown fields; each field's presence and type; enum values; positive
 * sizes within {@linkcode CONFIG_LIMITS}; then consistency (`n_heads % n_kv_heads == 0`, `head_dim` an integer and even for
 * RoPE, `arch: gpt2` with `norm: layernorm` and `mlp: gelu`, `arch: llama` with `rmsnorm`
 * and `swiglu`).
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
 * assert.throws(() => parseConfig({ ...c, n_layers: 1e8 }, "c.yaml"),
 *   /c.yaml: field 'n_layers' must be at most 65536/);
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
    if (v === undefined || v === null) {
      if (spec.fallback === undefined) {
        throw new ConfigError(file, name, `is missing (expected ${expectedOf(spec)})`);
      }
      v = typeof spec.fallback === "function"
        ? (spec.fallback as Derive)({ ...src, ...out })
        : spec.fallback;
    }
    switch (spec.kind) {
      case "int":
        if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) {
          throw new ConfigError(file, name, `must be a positive integer, got ${describe(v)}`);
        }
        if (spec.max !== undefined && v > spec.max) {
          throw new ConfigError(
            file,
            name,
            `must be at most ${spec.max} (2^${Math.log2(spec.max)}), got ${v}`,
          );
        }
        break;
      case "number":
        if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
          throw new ConfigError(file, name, `must be a positive number, got ${describe(v)}`);
        }
        break;
      case "bool":
        if (typeof v !== "boolean") {
          throw new ConfigError(file, name, `must be true or false, got ${describe(v)}`);
        }
        break;
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
        break;
    }
    out[name] = v;
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
    if (c.mlp !== "swiglu") {
      throw new ConfigError(file, "mlp", `must be swiglu for arch llama, got "${c.mlp}"`);
    }
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
 * `gollm convert` write as `config.yaml`).
 *
 * @param c The config.
 * @returns YAML text, one `field: value` line per field.
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
  return CONFIG_FIELDS.map((k) => `${k}: ${JSON.stringify(c[k])}`).join("\n") + "\n";
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
