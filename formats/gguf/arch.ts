/**
 * The GGUF architectures gollm reads and writes, and what each means for a gollm config,
 * following llama.cpp (src/llama-model.cpp `load_hparams` and the graph builders,
 * convert_hf_to_gguf.py for the keys it writes):
 *
 * | GGUF arch | RoPE                        | what the arch implies                                        |
 * |-----------|-----------------------------|--------------------------------------------------------------|
 * | `llama`   | interleaved (NORM) pairs    | Llama 1/2/3 (Q/K rows permuted by the converter), Mistral     |
 * | `qwen2`   | NEOX (half)                 | q/k/v bias                                                  |
 * | `qwen3`   | NEOX                        | `attn_q_norm` / `attn_k_norm` (qk_norm)                      |
 * | `gemma2`  | NEOX                        | GeGLU, sandwich norms (norms stored + 1), embedding × √dim (f32), soft-caps (defaults 50 / 30), even layers slide |
 * | `gemma3`  | NEOX                        | as gemma2 without attention soft-cap, + qk_norm, five of six layers slide, local base `rope.freq_base_swa` (10000) |
 * | `phi3`    | NEOX, `rope.dimension_count` | fused `attn_qkv` (or q/k/v), fused `ffn_up` = [gate; up]     |
 * | `gpt2`    | none (learned positions)    | LayerNorm, GELU, fused `attn_qkv`                            |
 *
 * Keys (`<arch>.` prefix): `rope.scaling.type` (`linear`, `yarn`),
 * `rope.scaling.factor`, `rope.scaling.original_context_length`, `rope.scaling.yarn_beta_fast`
 * / `_slow`, `rope.scaling.yarn_attn_factor` (llama.cpp multiplies it by `1 + 0.1 ln(factor)`:
 * `ggml_rope_yarn`), the older `rope.scale_linear`; the tensor `rope_freqs.weight` (Llama 3.1's
 * per-pair divisors, `rope_freq_factors`); LongRoPE (Phi-3 128k, Phi-3.5/Phi-4-mini, as
 * convert_hf_to_gguf.py `Phi3MiniModel` writes it): the tensors `rope_factors_long.weight` and
 * `rope_factors_short.weight` with `rope.scaling.attn_factor` (cos/sin factor, default 1) and
 * `rope.scaling.original_context_length` (default `context_length`; llama.cpp
 * `n_ctx_orig_yarn`) → `rope_scaling: longrope`; `attention.sliding_window` (every layer, or those
 * of the arch's pattern; `attention.sliding_window_pattern` as a period or a bool per layer
 * overrides it); `attn_logit_softcapping`, `final_logit_softcapping`; `attention.scale` (the
 * attention scale; without it Gemma follows llama.cpp: `n_embd / n_head` for the 27B models,
 * else head_dim). Phi-3's window is applied as in transformers (llama.cpp ignores it).
 *
 * @module
 */
import type { LayerType, ModelConfig } from "../../core/config.ts";
import { FormatError, GollmError } from "../../core/errors.ts";
import { ropeInvFreq } from "../../core/rope.ts";
import { type GgufFile, ggufTensor, type GgufTensorInfo } from "./parse.ts";
import { meta, metaFloat, metaInt, metaString } from "./metadata.ts";
import { gguf, type GgufTypedValue } from "./write.ts";

/** What a GGUF architecture implies (see the module table). */
export interface GgufArch {
  /** The MLP kind, which selects the FFN tensor names (core/tensor_names.ts `gguf`). */
  mlp: ModelConfig["mlp"];
  /** RoPE pairing of llama.cpp's rope type: `interleaved` (NORM) or `half` (NEOX). */
  ropeStyle: ModelConfig["rope_style"];
  /** Gemma: GeGLU, sandwich norms, embedding × √dim, soft-caps. */
  gemma?: boolean;
  /** Per-head q/k RMSNorm. */
  qkNorm?: boolean;
  /** llama.cpp's sliding-window period when the file has a window but no pattern (0: every layer). */
  swaPattern: number;
}

/** GGUF architectures gollm reads (and writes: {@linkcode ggufArchFor}). */
export const GGUF_ARCHS: Readonly<Record<string, GgufArch>> = {
  llama: { mlp: "swiglu", ropeStyle: "interleaved", swaPattern: 0 },
  qwen2: { mlp: "swiglu", ropeStyle: "half", swaPattern: 0 },
  qwen3: { mlp: "swiglu", ropeStyle: "half", qkNorm: true, swaPattern: 0 },
  gemma2: { mlp: "geglu", ropeStyle: "half", gemma: true, swaPattern: 2 },
  gemma3: { mlp: "geglu", ropeStyle: "half", gemma: true, qkNorm: true, swaPattern: 6 },
  phi3: { mlp: "swiglu", ropeStyle: "half", swaPattern: 0 },
  gpt2: { mlp: "gelu", ropeStyle: "half", swaPattern: 0 },
};

/** Tensors that are not weights: Llama 3.1's RoPE factors (read into the config) and LongRoPE's. */
export const GGUF_ROPE_TENSORS = new Set([
  "rope_freqs.weight",
  "rope_factors_long.weight",
  "rope_factors_short.weight",
]);

/** llama.cpp `set_swa_pattern(n)`: layer l slides when `n == 0 || l % n < n - 1`. */
function swaLayers(n: number, nLayers: number): LayerType[] {
  return Array.from(
    { length: nLayers },
    (_, l) => n === 0 || l % n < n - 1 ? "sliding_attention" : "full_attention",
  );
}

/** llama.cpp's Gemma attention scale: `n_embd / n_head` for the 27B models, else head_dim. */
function gemmaQueryScalar(arch: string, c: Record<string, number>): number {
  const is27b = (arch === "gemma2" && c.n_layers === 46) ||
    (arch === "gemma3" && c.n_layers === 62);
  return is27b ? c.dim / c.n_heads : c.head_dim;
}

/**
 * The config fields a GGUF's architecture and its RoPE, window, soft-cap and scale keys give,
 * beside the sizes that every architecture reads (formats/gguf/checkpoint.ts).
 *
 * @param g The parsed file.
 * @param arch A key of {@linkcode GGUF_ARCHS}.
 * @param sizes `dim`, `n_layers`, `n_heads`, `head_dim` already read.
 * @returns Raw config fields for `parseConfig`.
 * @throws {FormatError} naming the file and key: an unsupported scaling kind, one LongRoPE
 *   factor tensor without the other, a malformed pattern or RoPE factor tensor.
 */
export function ggufArchConfig(
  g: GgufFile,
  arch: string,
  sizes: Record<string, number>,
): Record<string, unknown> {
  const a = GGUF_ARCHS[arch];
  const k = (s: string) => `${arch}.${s}`;
  const out: Record<string, unknown> = { rope_style: a.ropeStyle, mlp: a.mlp };
  if (arch === "gpt2") return out;
  if (a.qkNorm) out.qk_norm = true;

  // RoPE scaling.
  let type = metaString(g, k("rope.scaling.type"));
  const legacy = meta(g, k("rope.scale_linear"));
  if (type === undefined && typeof legacy === "number" && legacy !== 1) type = "linear";
  const factor = type === "linear" && typeof legacy === "number" &&
      meta(g, k("rope.scaling.factor")) === undefined
    ? legacy
    : metaFloat(g, k("rope.scaling.factor"), 1);
  if (type === "linear" && factor !== 1) {
    out.rope_scaling = "linear";
    out.rope_scaling_factor = factor;
  } else if (type === "yarn") {
    const ext = metaFloat(g, k("rope.scaling.yarn_ext_factor"), 1);
    if (ext !== 1) {
      throw new FormatError(
        g.file,
        `metadata '${k("rope.scaling.yarn_ext_factor")}' = ${ext}: only 1 (full YaRN) is supported`,
      );
    }
    out.rope_scaling = "yarn";
    out.rope_scaling_factor = factor;
    out.rope_original_context_length = metaInt(g, k("rope.scaling.original_context_length"));
    out.rope_yarn_beta_fast = metaFloat(g, k("rope.scaling.yarn_beta_fast"), 32);
    out.rope_yarn_beta_slow = metaFloat(g, k("rope.scaling.yarn_beta_slow"), 1);
    // ggml_rope_yarn: mscale = attn_factor · (1 + 0.1 ln(1 / freq_scale)).
    out.rope_attn_factor = metaFloat(g, k("rope.scaling.yarn_attn_factor"), 1) *
      (factor > 1 ? 1 + 0.1 * Math.log(factor) : 1);
  } else if (type !== undefined && type !== "none" && type !== "linear") {
    throw new FormatError(
      g.file,
      `metadata '${k("rope.scaling.type")}' = "${type}": RoPE scaling ${type} is not supported ` +
        "(supported: none, linear, yarn, and rope_freqs.weight)",
    );
  }
  const infos = new Map(g.tensors.map((t) => [t.name, t]));
  const long = infos.get("rope_factors_long.weight");
  const short = infos.get("rope_factors_short.weight");
  if (long || short) {
    // convert_hf_to_gguf.py Phi3MiniModel; llama.cpp get_rope_factors, n_ctx_orig_yarn and
    // `yarn_attn_factor *= hparams.rope_attn_factor` (rope.scaling.attn_factor, default 1).
    if (!long || !short) {
      throw new FormatError(
        g.file,
        `tensor '${long ? "rope_factors_short" : "rope_factors_long"}.weight' is missing ` +
          `(LongRoPE needs both rope_factors_long.weight and rope_factors_short.weight)`,
      );
    }
    if (type !== undefined && type !== "none") {
      throw new FormatError(
        g.file,
        `metadata '${k("rope.scaling.type")}' = "${type}" with LongRoPE factor tensors`,
      );
    }
    out.rope_scaling = "longrope";
    out.rope_long_factors = [...ropeFreqs(g, long)];
    out.rope_short_factors = [...ropeFreqs(g, short)];
    out.rope_original_context_length = metaInt(
      g,
      k("rope.scaling.original_context_length"),
      metaInt(g, k("context_length")),
    );
    out.rope_attn_factor = metaFloat(g, k("rope.scaling.attn_factor"), 1);
  }
  const freqs = infos.get("rope_freqs.weight");
  if (freqs) out.rope_freq_factors = [...ropeFreqs(g, freqs)];

  // Windows.
  const window = metaInt(g, k("attention.sliding_window"), 0);
  if (window > 0) {
    out.sliding_window = window;
    const pattern = meta(g, k("attention.sliding_window_pattern"));
    let types: LayerType[];
    if (pattern === undefined) types = swaLayers(a.swaPattern, sizes.n_layers);
    else if (typeof pattern === "number") {
      types = swaLayers(metaInt(g, k("attention.sliding_window_pattern")), sizes.n_layers);
    } else if (
      Array.isArray(pattern) && pattern.length === sizes.n_layers &&
      pattern.every((p) => typeof p === "boolean")
    ) types = pattern.map((p) => p ? "sliding_attention" : "full_attention");
    else {
      throw new FormatError(
        g.file,
        `metadata '${
          k("attention.sliding_window_pattern")
        }' must be a period or ${sizes.n_layers} bools`,
      );
    }
    if (types.some((t) => t === "full_attention")) out.layer_types = types;
    if (!types.includes("sliding_attention")) delete out.sliding_window;
  }

  if (a.gemma) {
    out.post_norms = true;
    out.embed_scale = Math.fround(Math.sqrt(sizes.dim)); // llama.cpp: ggml_scale(inpL, sqrtf(n_embd))
    const scale = meta(g, k("attention.scale"));
    out.query_pre_attn_scalar = scale === undefined
      ? gemmaQueryScalar(arch, sizes)
      : 1 / metaFloat(g, k("attention.scale")) ** 2;
    if (arch === "gemma2") {
      out.attn_logit_softcapping = metaFloat(g, k("attn_logit_softcapping"), 50);
      out.final_logit_softcapping = metaFloat(g, k("final_logit_softcapping"), 30);
    } else {
      const cap = meta(g, k("final_logit_softcapping"));
      if (cap !== undefined && cap !== 0) {
        out.final_logit_softcapping = metaFloat(g, k("final_logit_softcapping"));
      }
      if (out.sliding_window !== undefined) {
        out.rope_local_base_freq = metaFloat(g, k("rope.freq_base_swa"), 10000);
      }
    }
  } else if (meta(g, k("attention.scale")) !== undefined) {
    out.query_pre_attn_scalar = 1 / metaFloat(g, k("attention.scale")) ** 2;
  }
  return out;
}

/** The values of a RoPE factor tensor (`rope_freqs`, `rope_factors_long`/`_short`), checked (positive, finite). */
function ropeFreqs(g: GgufFile, info: GgufTensorInfo): Float32Array {
  const t = ggufTensor(g, info);
  const bad = t.data.findIndex((v) => !(v > 0) || !Number.isFinite(v));
  if (t.shape.length !== 1 || bad >= 0) {
    throw new FormatError(
      g.file,
      `tensor '${info.name}' must be a vector of positive factors` +
        (bad >= 0 ? `, got ${t.data[bad]} at ${bad}` : `, got shape [${t.shape}]`),
    );
  }
  return t.data;
}

/**
 * The GGUF architecture a config is written as, and whether its Q/K rows need the
 * rotate-half → interleaved permutation (convert_hf_to_gguf.py `LlamaModel.permute`):
 * gpt2 → `gpt2`; Gemma's features (GeGLU with sandwich norms and √dim embedding) →
 * `gemma3` with qk_norm, else `gemma2`; qk_norm → `qwen3`; partial rotary → `phi3`;
 * interleaved RoPE → `llama`; rotate-half with q/k/v bias → `qwen2`; rotate-half → `llama`
 * with Q/K permuted.
 *
 * @param c A validated config.
 * @returns `{arch, permuteQk}`.
 * @throws {GollmError} when no llama.cpp architecture computes the config, naming the field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "../../core/config.ts";
 * import { ggufArchFor } from "./arch.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 8, dim: 8, n_layers: 1, n_heads: 2,
 *   hidden_dim: 16, context_length: 4, norm: "rmsnorm", norm_eps: 1e-5, mlp: "swiglu",
 *   tie_embeddings: true, rope_style: "half" }, "<example>");
 * assert.deepEqual(ggufArchFor(c), { arch: "llama", permuteQk: true });
 * assert.deepEqual(ggufArchFor({ ...c, qk_norm: true }), { arch: "qwen3", permuteQk: false });
 * ```
 */
export function ggufArchFor(c: ModelConfig): { arch: string; permuteQk: boolean } {
  if (c.arch === "gpt2") return { arch: "gpt2", permuteQk: false };
  const refuse = (field: string, why: string) =>
    new GollmError(`config field '${field}' ${why}: no GGUF architecture of llama.cpp computes it`);
  const gemma = c.mlp === "geglu" || c.post_norms || c.embed_scale !== 1;
  if (gemma) {
    if (c.mlp !== "geglu") throw refuse("mlp", `is ${c.mlp} with Gemma's sandwich norms`);
    if (!c.post_norms) throw refuse("post_norms", "is false with mlp geglu");
    if (Math.abs(c.embed_scale / Math.sqrt(c.dim) - 1) > 1e-2) {
      throw refuse("embed_scale", `is ${c.embed_scale}, not sqrt(dim) = ${Math.sqrt(c.dim)}`);
    }
    if (c.rope_style !== "half") throw refuse("rope_style", "is interleaved for Gemma");
    if (c.attn_bias) throw refuse("attn_bias", "is true for Gemma");
    const arch = c.qk_norm ? "gemma3" : "gemma2";
    if (
      arch === "gemma2" && (c.attn_logit_softcapping === null || c.final_logit_softcapping === null)
    ) {
      throw refuse(
        "attn_logit_softcapping",
        "or final_logit_softcapping is null for gemma2 (llama.cpp always soft-caps)",
      );
    }
    if (arch === "gemma3" && c.attn_logit_softcapping !== null) {
      throw refuse(
        "attn_logit_softcapping",
        "is set for gemma3 (llama.cpp's gemma3 does not soft-cap scores)",
      );
    }
    return { arch, permuteQk: false };
  }
  for (
    const f of [
      "attn_logit_softcapping",
      "final_logit_softcapping",
      "rope_local_base_freq",
    ] as const
  ) {
    if (c[f] !== null) throw refuse(f, "is set without Gemma's GeGLU and sandwich norms");
  }
  const partial = c.rope_dimension_count !== c.head_dim;
  if (c.qk_norm) {
    if (c.rope_style !== "half" || c.attn_bias || partial) {
      throw refuse("qk_norm", "is true with interleaved RoPE, q/k/v bias or partial rotary");
    }
    return { arch: "qwen3", permuteQk: false };
  }
  if (partial || c.rope_scaling === "longrope") { // llama.cpp reads LongRoPE factors for phi3
    if (c.rope_style !== "half" || c.attn_bias) {
      throw refuse(
        partial ? "rope_dimension_count" : "rope_scaling",
        `is ${partial ? `${c.rope_dimension_count} < head_dim` : "longrope"} with ` +
          "interleaved RoPE or bias",
      );
    }
    return { arch: "phi3", permuteQk: false };
  }
  if (c.rope_style === "interleaved") return { arch: "llama", permuteQk: false };
  return c.attn_bias ? { arch: "qwen2", permuteQk: false } : { arch: "llama", permuteQk: true };
}

/**
 * The metadata a config adds for its GGUF architecture (the inverse of
 * {@linkcode ggufArchConfig}): `rope.dimension_count`, the scaling keys, the window and its
 * pattern (when the arch's own differs), the soft-caps, `rope.freq_base_swa`, `attention.scale`
 * (when llama.cpp's rule would give another).
 *
 * @param c The config.
 * @param arch Its GGUF architecture ({@linkcode ggufArchFor}).
 * @returns `[key, typed value]` pairs.
 */
export function ggufArchMetadata(c: ModelConfig, arch: string): [string, GgufTypedValue][] {
  const m: [string, GgufTypedValue][] = [];
  if (arch === "gpt2") return m;
  const k = (s: string) => `${arch}.${s}`;
  m.push([k("rope.dimension_count"), gguf.u32(c.rope_dimension_count)]);
  if (c.rope_scaling === "linear") {
    m.push([k("rope.scaling.type"), gguf.string("linear")]);
    m.push([k("rope.scaling.factor"), gguf.f32(c.rope_scaling_factor)]);
  } else if (c.rope_scaling === "yarn") {
    const f = c.rope_scaling_factor;
    m.push([k("rope.scaling.type"), gguf.string("yarn")]);
    m.push([k("rope.scaling.factor"), gguf.f32(f)]);
    m.push([k("rope.scaling.original_context_length"), gguf.u32(c.rope_original_context_length!)]);
    m.push([k("rope.scaling.yarn_beta_fast"), gguf.f32(c.rope_yarn_beta_fast)]);
    m.push([k("rope.scaling.yarn_beta_slow"), gguf.f32(c.rope_yarn_beta_slow)]);
    const builtIn = f > 1 ? 1 + 0.1 * Math.log(f) : 1;
    if (c.rope_attn_factor !== builtIn) {
      m.push([k("rope.scaling.yarn_attn_factor"), gguf.f32(c.rope_attn_factor / builtIn)]);
    }
  } else if (c.rope_scaling === "longrope") {
    // convert_hf_to_gguf.py Phi3MiniModel: no scaling type, the two factor tensors.
    m.push([k("rope.scaling.attn_factor"), gguf.f32(c.rope_attn_factor)]);
    m.push([k("rope.scaling.original_context_length"), gguf.u32(c.rope_original_context_length!)]);
  }
  if (c.sliding_window !== null) {
    m.push([k("attention.sliding_window"), gguf.u32(c.sliding_window)]);
    const types = c.layer_types ?? Array(c.n_layers).fill("sliding_attention");
    const own = swaLayers(GGUF_ARCHS[arch].swaPattern, c.n_layers);
    if (types.some((t, l) => t !== own[l])) {
      m.push([k("attention.sliding_window_pattern"), {
        type: "array",
        itemType: "bool",
        items: types.map((t) => gguf.bool(t === "sliding_attention")),
      }]);
    }
  }
  if (c.attn_logit_softcapping !== null) {
    m.push([k("attn_logit_softcapping"), gguf.f32(c.attn_logit_softcapping)]);
  }
  if (c.final_logit_softcapping !== null) {
    m.push([k("final_logit_softcapping"), gguf.f32(c.final_logit_softcapping)]);
  }
  if (c.rope_local_base_freq !== null) {
    m.push([k("rope.freq_base_swa"), gguf.f32(c.rope_local_base_freq)]);
  }
  const defaultScalar = GGUF_ARCHS[arch].gemma
    ? gemmaQueryScalar(arch, c as unknown as Record<string, number>)
    : c.head_dim;
  if (c.query_pre_attn_scalar !== defaultScalar) {
    m.push([k("attention.scale"), gguf.f32(1 / Math.sqrt(c.query_pre_attn_scalar))]);
  }
  return m;
}

/**
 * `rope_freqs.weight` for a config whose RoPE frequencies llama.cpp can only take as per-pair
 * divisors: Llama 3.1's `llama3` scaling (convert_hf_to_gguf.py `LlamaModel`
 * `generate_extra_tensors`) or explicit `rope_freq_factors`; null otherwise.
 *
 * @param c The config.
 * @returns `(rope_dimension_count / 2)` factors, `inv_freq` unscaled / scaled.
 */
export function ropeFreqsTensor(c: ModelConfig): Float32Array | null {
  if (c.rope_scaling === "longrope") return null; // ggufRopeTensors: its two factor sets
  if (c.rope_freq_factors !== null) return Float32Array.from(c.rope_freq_factors);
  if (c.rope_scaling !== "llama3") return null;
  const plain: ModelConfig = {
    ...c,
    rope_scaling: "none",
    rope_scaling_factor: 1,
    rope_original_context_length: null,
    rope_low_freq_factor: 1,
    rope_high_freq_factor: 4,
  };
  const base = ropeInvFreq(plain), scaled = ropeInvFreq(c);
  return base.map((b, i) => b / scaled[i]);
}

/**
 * The RoPE factor tensors a config adds to a GGUF, named as llama.cpp reads them:
 * `rope_freqs.weight` ({@linkcode ropeFreqsTensor}), or for `longrope` both
 * `rope_factors_long.weight` and `rope_factors_short.weight` (convert_hf_to_gguf.py
 * `Phi3MiniModel.generate_extra_tensors`; llama.cpp picks one by context size).
 *
 * @param c The config.
 * @returns `[name, (rope_dimension_count / 2) f32 factors]` pairs, possibly none.
 */
export function ggufRopeTensors(c: ModelConfig): [string, Float32Array][] {
  if (c.rope_scaling === "longrope") {
    return [
      ["rope_factors_long.weight", Float32Array.from(c.rope_long_factors!)],
      ["rope_factors_short.weight", Float32Array.from(c.rope_short_factors!)],
    ];
  }
  const freqs = ropeFreqsTensor(c);
  return freqs ? [["rope_freqs.weight", freqs]] : [];
}
