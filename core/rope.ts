/**
 * Rotary position embedding (RoPE, Su et al. 2021 "RoFormer"): the inverse frequencies that
 * every backend rotates q and k by, and the factor cos and sin are multiplied by. The angle of
 * pair i at absolute position p is `p · inv_freq[i]`; nothing is tabulated per position, so
 * no buffer grows with `context_length` (the forward passes compute the cos/sin of a step's
 * positions once per step, as llama.cpp computes theta per position).
 *
 * This is the one place where RoPE scaling changes the frequencies; the reference
 * (runtime/reference.ts), the PyTorch mirror (python/model.py `rope_inv_freq`) and the
 * generated kernels (codegen/ops/rope.ts, through the graph's `rope.inv_freq` table) all read
 * them from here. The scalings follow transformers' `modeling_rope_utils.py` (the functions
 * named below) and agree with llama.cpp's `ggml_rope_yarn` and `rope_freqs` factors:
 *
 * | `rope_scaling` | `inv_freq[i]` (base = `theta^(-2i/d)`, d = `rope_dimension_count`)        |
 * |----------------|------------------------------------------------------------------------------|
 * | `none`         | `base / rope_freq_factors[i]` (factors default 1: llama.cpp `rope_freqs`)   |
 * | `linear`       | `base / factor` (and / `rope_freq_factors[i]`)                              |
 * | `llama3`       | wavelength `2π / base` below `orig / high`: base; above `orig / low`: base / factor; between: `(1 - s) · base / factor + s · base`, `s = (orig / wavelength - low) / (high - low)` |
 * | `yarn`         | `base / factor · r + base · (1 - r)`, r = clamp((i - lo) / (hi - lo), 0, 1), lo/hi the correction dims of beta_fast/beta_slow (floor/ceil) |
 * | `longrope`     | `1 / (ext[i] · theta^(2i/d))`, ext = `rope_long_factors` when the context per sequence exceeds `rope_original_context_length`, else `rope_short_factors` ({@linkcode longropeFactors}) |
 *
 * LongRoPE (Ding et al. 2024, arXiv:2402.13753; Phi-3 technical report arXiv:2404.14219)
 * follows transformers' `_compute_longrope_parameters` for the frequencies and the attention
 * factor, but chooses the factor set the way llama.cpp does (`llama_model::get_rope_factors`:
 * `n_ctx_per_seq > n_ctx_orig_yarn` → `rope_factors_long`): once, from the context a model is
 * loaded with (the KV capacity of a single sequence, `--ctx-size` per slot of the server),
 * not from the length of each sequence. transformers instead switches dynamically
 * (`dynamic_rope_update`): short factors while `max(position_ids) + 1 <=
 * original_max_position_embeddings`, long ones past it, so a short prompt in a long context
 * gets short factors there and long ones here; both agree on a single forward of the whole
 * context, and on any sequence when the context is at most the original one.
 *
 * Gemma 3's sliding-window layers use their own base (`rope_local_base_freq`) with no scaling
 * (HF's `sliding_attention` RoPE parameters, llama.cpp's `freq_base_swa` / `freq_scale_swa = 1`).
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/**
 * The RoPE inverse frequencies of a config, `(rope_dimension_count / 2)` values rounded to f32
 * as HF transformers stores its `inv_freq` buffer and llama.cpp computes `theta_scale`; with
 * the config's scaling applied (see the module doc), or for `local` the unscaled frequencies of
 * base `rope_local_base_freq`.
 *
 * @param config The model config (`rope_dimension_count`, `rope_theta`, the scaling fields).
 * @param local The table of Gemma 3's sliding-window layers (default false).
 * @param context Tokens one sequence holds (the KV capacity), which picks longrope's factor
 *   set ({@linkcode longropeFactors}); default `context_length` (gollm's default KV capacity).
 * @returns `(rope_dimension_count / 2)` frequencies in radians per position.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig, parseConfigYaml } from "./config.ts";
 * import { ropeInvFreq } from "./rope.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const f = ropeInvFreq(c); // head_dim 12, theta 10000
 * assert.equal(f.length, 6);
 * assert.equal(f[0], 1);
 * assert.equal(f[3], Math.fround(10000 ** -0.5)); // 0.01
 * // Linear scaling (position interpolation) divides every frequency by the factor.
 * const lin = ropeInvFreq(parseConfig({ ...c, rope_scaling: "linear", rope_scaling_factor: 4 }, "l"));
 * assert.equal(lin[3], Math.fround(10000 ** -0.5 / 4));
 * ```
 */
export function ropeInvFreq(
  config: ModelConfig,
  local = false,
  context: number = config.context_length,
): Float32Array {
  const d = config.rope_dimension_count;
  const half = d / 2;
  const theta = local ? config.rope_local_base_freq ?? config.rope_theta : config.rope_theta;
  const out = new Float32Array(half); // (rope_dimension_count / 2)
  const base = (i: number) => Math.pow(theta, (-2 * i) / d);
  if (local) {
    for (let i = 0; i < half; i++) out[i] = base(i);
    return out;
  }
  const f = config.rope_scaling_factor;
  switch (config.rope_scaling) {
    case "none":
    case "linear": {
      const div = config.rope_scaling === "linear" ? f : 1;
      const factors = config.rope_freq_factors;
      for (let i = 0; i < half; i++) out[i] = base(i) / div / (factors ? factors[i] : 1);
      return out;
    }
    case "llama3": {
      // transformers _compute_llama3_parameters (Llama 3.1 reference: apply_scaling).
      const orig = config.rope_original_context_length!;
      const low = config.rope_low_freq_factor, high = config.rope_high_freq_factor;
      const lowWavelen = orig / low, highWavelen = orig / high;
      for (let i = 0; i < half; i++) {
        const inv = Math.fround(base(i));
        const wavelen = (2 * Math.PI) / inv;
        if (wavelen < highWavelen) out[i] = inv;
        else if (wavelen > lowWavelen) out[i] = inv / f;
        else {
          const s = (orig / wavelen - low) / (high - low);
          out[i] = (1 - s) * inv / f + s * inv;
        }
      }
      return out;
    }
    case "yarn": {
      // transformers _compute_yarn_parameters (truncate: true); llama.cpp ggml_rope_yarn_corr_dims.
      const orig = config.rope_original_context_length!;
      const corrDim = (rotations: number) =>
        (d * Math.log(orig / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      const lo = Math.max(Math.floor(corrDim(config.rope_yarn_beta_fast)), 0);
      let hi = Math.min(Math.ceil(corrDim(config.rope_yarn_beta_slow)), d - 1);
      if (lo === hi) hi += 0.001; // HF linear_ramp_factor: prevent a singularity
      for (let i = 0; i < half; i++) {
        const inv = Math.fround(base(i));
        const ramp = Math.min(Math.max((i - lo) / (hi - lo), 0), 1); // 0: extrapolate, 1: interpolate
        out[i] = (inv / f) * ramp + inv * (1 - ramp);
      }
      return out;
    }
    case "longrope": {
      // transformers _compute_longrope_parameters, in its float32 steps:
      // inv_freq = 1 / (ext_factors · base^(2i/d)).
      const ext = longropeFactors(config, context);
      for (let i = 0; i < half; i++) {
        out[i] = 1 / Math.fround(Math.fround(ext[i]) * Math.fround(Math.pow(theta, (2 * i) / d)));
      }
      return out;
    }
  }
}

/**
 * longrope's factor set for a context: `rope_long_factors` when `context` exceeds
 * `rope_original_context_length`, else `rope_short_factors` (llama.cpp
 * `llama_model::get_rope_factors`, chosen once per context; transformers chooses per forward
 * by the sequence length instead, see the module doc).
 *
 * @param config A config with `rope_scaling: longrope`.
 * @param context Tokens one sequence holds: the KV capacity (`kvCapacity`, `--kv-capacity`),
 *   or the server's `--ctx-size` (llama.cpp `n_ctx / n_seq_max`).
 * @returns `(rope_dimension_count / 2)` divisors of the frequencies.
 * @throws {RangeError} for a config of another kind or a context that is not a positive integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { longropeFactors } from "./rope.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 32, dim: 16, n_layers: 1, n_heads: 2,
 *   hidden_dim: 32, context_length: 64, norm: "rmsnorm", norm_eps: 1e-6, mlp: "swiglu",
 *   tie_embeddings: true, rope_scaling: "longrope", rope_original_context_length: 16,
 *   rope_long_factors: [1, 2, 4, 8], rope_short_factors: [1, 1, 1.5, 2] }, "<example>");
 * assert.deepEqual(longropeFactors(c, 16), [1, 1, 1.5, 2]); // context <= original: short
 * assert.deepEqual(longropeFactors(c, 17), [1, 2, 4, 8]); // past it: long
 * assert.equal(c.rope_attn_factor, Math.sqrt(1 + Math.log(64 / 16) / Math.log(16)));
 * ```
 */
export function longropeFactors(config: ModelConfig, context: number): readonly number[] {
  if (config.rope_scaling !== "longrope") {
    throw new RangeError(`longropeFactors: rope_scaling is ${config.rope_scaling}, not longrope`);
  }
  if (!Number.isInteger(context) || context <= 0) {
    throw new RangeError(`longropeFactors: context must be a positive integer, got ${context}`);
  }
  const long = context > config.rope_original_context_length!;
  return long ? config.rope_long_factors! : config.rope_short_factors!;
}

/**
 * The factor cos and sin are multiplied by (HF `attention_scaling`): `rope_attn_factor` for
 * the global table (yarn's `0.1 · ln(factor) + 1` by default, longrope's
 * `sqrt(1 + ln(s) / ln(original))`; 1 for the other kinds), 1 for the local table. longrope
 * applies it with either factor set, as transformers and llama.cpp do.
 *
 * @param config The model config.
 * @param local The table of Gemma 3's sliding-window layers (default false).
 * @returns The multiplier.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { ropeAttnFactor } from "./rope.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 32, dim: 16, n_layers: 1, n_heads: 2,
 *   hidden_dim: 32, context_length: 64, norm: "rmsnorm", norm_eps: 1e-6, mlp: "swiglu",
 *   tie_embeddings: true, rope_scaling: "yarn", rope_scaling_factor: 4,
 *   rope_original_context_length: 16 }, "<example>");
 * assert.equal(ropeAttnFactor(c), 0.1 * Math.log(4) + 1);
 * ```
 */
export function ropeAttnFactor(config: ModelConfig, local = false): number {
  return local ? 1 : config.rope_attn_factor;
}
