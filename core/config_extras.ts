/**
 * The consistency rules of the ModelConfig fields issue #10 added (RoPE scaling and its
 * parameters, partial rotary, RoPE frequency factors, per-layer windows, Gemma 3's local RoPE
 * base), for `arch: llama`: core/config.ts `parseConfig` runs them after each field's own check.
 *
 * @module
 */
import type { ModelConfig, RopeScaling } from "./config.ts";
import { ConfigError } from "./errors.ts";

/** The RoPE parameters each scaling kind reads (the others must keep their defaults). */
const ROPE_PARAMS: Record<RopeScaling, (keyof ModelConfig)[]> = {
  none: [],
  linear: ["rope_scaling_factor"],
  llama3: [
    "rope_scaling_factor",
    "rope_original_context_length",
    "rope_low_freq_factor",
    "rope_high_freq_factor",
  ],
  yarn: [
    "rope_scaling_factor",
    "rope_original_context_length",
    "rope_yarn_beta_fast",
    "rope_yarn_beta_slow",
    "rope_attn_factor",
  ],
  longrope: [
    "rope_original_context_length",
    "rope_attn_factor",
    "rope_long_factors",
    "rope_short_factors",
  ],
};

/** The kinds that need `rope_original_context_length`. */
const NEEDS_ORIGINAL: readonly RopeScaling[] = ["llama3", "yarn", "longrope"];

/**
 * Checks the consistency of the issue #10 fields of an `arch: llama` config (core/config.ts
 * `parseConfig` calls it after each field's own check): `rope_dimension_count` even and at most
 * head_dim; every RoPE parameter the `rope_scaling` kind does not read at its default;
 * `rope_original_context_length` for `llama3`, `yarn` and `longrope`; llama3's high factor
 * above its low one; longrope's `rope_long_factors` and `rope_short_factors` both given, of
 * `rope_dimension_count / 2` values; `rope_freq_factors` of `rope_dimension_count / 2` values
 * and not with llama3/yarn/longrope;
 * `layer_types` of `n_layers` entries, with a `sliding_window` when one slides;
 * `rope_local_base_freq` only with sliding layers.
 *
 * @param c The config, every field filled.
 * @param file Where it came from, named in errors.
 * @param defaultOf The default of a field for this config.
 * @param describe A value as error messages show it.
 * @throws {ConfigError} naming `file` and the field, expected vs actual.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * const base = { arch: "llama", vocab_size: 32, dim: 16, n_layers: 1, n_heads: 2,
 *   hidden_dim: 32, context_length: 64, norm: "rmsnorm", norm_eps: 1e-6, mlp: "swiglu",
 *   tie_embeddings: true };
 * assert.throws(() => parseConfig({ ...base, rope_dimension_count: 5 }, "c.yaml"),
 *   /c.yaml: field 'rope_dimension_count' must be even and at most head_dim 8, got 5/);
 * ```
 */
export function checkLlamaExtras(
  c: ModelConfig,
  file: string,
  defaultOf: (field: keyof ModelConfig) => unknown,
  describe: (v: unknown) => string,
): void {
  const rd = c.rope_dimension_count;
  if (rd % 2 !== 0 || rd > c.head_dim) {
    throw new ConfigError(
      file,
      "rope_dimension_count",
      `must be even and at most head_dim ${c.head_dim}, got ${rd}`,
    );
  }
  const used = ROPE_PARAMS[c.rope_scaling];
  const all = new Set(Object.values(ROPE_PARAMS).flat());
  for (const f of all) {
    if (!used.includes(f) && JSON.stringify(c[f]) !== JSON.stringify(defaultOf(f))) {
      throw new ConfigError(
        file,
        f,
        `is set (${describe(c[f])}) but rope_scaling ${c.rope_scaling} does not use it`,
      );
    }
  }
  if (NEEDS_ORIGINAL.includes(c.rope_scaling) && c.rope_original_context_length === null) {
    throw new ConfigError(
      file,
      "rope_original_context_length",
      `is missing (required by rope_scaling ${c.rope_scaling})`,
    );
  }
  if (c.rope_scaling === "llama3" && !(c.rope_high_freq_factor > c.rope_low_freq_factor)) {
    throw new ConfigError(
      file,
      "rope_high_freq_factor",
      `must be greater than rope_low_freq_factor (${c.rope_low_freq_factor}), got ${c.rope_high_freq_factor}`,
    );
  }
  if (c.rope_scaling === "longrope") checkLongrope(c, file);
  if (c.rope_freq_factors !== null) {
    if (NEEDS_ORIGINAL.includes(c.rope_scaling)) {
      throw new ConfigError(
        file,
        "rope_freq_factors",
        `cannot be combined with rope_scaling ${c.rope_scaling} (give one of them)`,
      );
    }
    if (c.rope_freq_factors.length !== rd / 2) {
      throw new ConfigError(
        file,
        "rope_freq_factors",
        `must hold rope_dimension_count / 2 = ${rd / 2} values, got ${c.rope_freq_factors.length}`,
      );
    }
  }
  if (c.layer_types !== null) {
    if (c.layer_types.length !== c.n_layers) {
      throw new ConfigError(
        file,
        "layer_types",
        `must hold n_layers = ${c.n_layers} entries, got ${c.layer_types.length}`,
      );
    }
    if (c.sliding_window === null && c.layer_types.includes("sliding_attention")) {
      throw new ConfigError(
        file,
        "sliding_window",
        "is missing (layer_types has sliding_attention layers)",
      );
    }
  }
  if (c.rope_local_base_freq !== null) {
    const sliding = c.sliding_window !== null &&
      (c.layer_types === null || c.layer_types.includes("sliding_attention"));
    if (!sliding) {
      throw new ConfigError(
        file,
        "rope_local_base_freq",
        "is set but no layer is a sliding_attention layer (set sliding_window and layer_types)",
      );
    }
  }
}

/** longrope: both factor lists present, each of `rope_dimension_count / 2` values. */
function checkLongrope(c: ModelConfig, file: string): void {
  const half = c.rope_dimension_count / 2;
  for (const f of ["rope_long_factors", "rope_short_factors"] as const) {
    const v = c[f];
    if (v === null) {
      throw new ConfigError(file, f, "is missing (required by rope_scaling longrope)");
    }
    if (v.length !== half) {
      throw new ConfigError(
        file,
        f,
        `must hold rope_dimension_count / 2 = ${half} values, got ${v.length}`,
      );
    }
  }
}
