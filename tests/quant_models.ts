/**
 * Test helper: small deterministic random-weight models whose shapes exercise llama.cpp's
 * quantisation mix (GQA ratio 4, 8 layers for the `use_more_bits` pattern, untied and tied
 * embeddings, a row length that is not a multiple of 256 for the fallbacks, GPT-2's fused
 * `attn_qkv`). Used by formats/quantize_test.ts and `deno task fixtures:quant` (which
 * records llama.cpp's `llama_model_quantize` output for them in
 * tests/fixtures/quant/llama_mix.json).
 *
 * @module
 */
import { parseConfig } from "../core/config.ts";
import { randomWeights } from "../core/weights.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";

/** One model: a name, a raw config and a weight seed. */
export interface MixModelSpec {
  /** Short name used in fixture keys. */
  name: string;
  /** Raw config (parsed with parseConfig). */
  config: Record<string, unknown>;
  /** randomWeights seed. */
  seed: number;
}

/** The models. */
export const MIX_MODELS: readonly MixModelSpec[] = [
  {
    name: "llama_gqa_untied",
    config: {
      arch: "llama",
      vocab_size: 300,
      dim: 256,
      n_layers: 8,
      n_heads: 4,
      n_kv_heads: 1,
      hidden_dim: 256,
      context_length: 64,
      norm: "rmsnorm",
      norm_eps: 1e-5,
      rope_style: "interleaved",
      mlp: "swiglu",
      tie_embeddings: false,
    },
    seed: 11,
  },
  {
    name: "llama_tied_192",
    config: {
      arch: "llama",
      vocab_size: 260,
      dim: 192,
      n_layers: 3,
      n_heads: 6,
      hidden_dim: 512,
      context_length: 64,
      norm: "rmsnorm",
      norm_eps: 1e-5,
      rope_style: "half",
      mlp: "swiglu",
      tie_embeddings: true,
    },
    seed: 12,
  },
  {
    name: "gpt2_tied",
    config: {
      arch: "gpt2",
      vocab_size: 256,
      dim: 256,
      n_layers: 2,
      n_heads: 4,
      hidden_dim: 512,
      context_length: 64,
      norm: "layernorm",
      norm_eps: 1e-5,
      mlp: "gelu",
      tie_embeddings: true,
    },
    seed: 13,
  },
];

/**
 * Writes a model as a gollm directory (config.yaml + model.safetensors, no tokenizer).
 *
 * @param spec The model.
 * @param dir Target directory (created).
 * @example
 * ```ts ignore
 * await writeMixModel(MIX_MODELS[0], await Deno.makeTempDir());
 * ```
 */
export async function writeMixModel(spec: MixModelSpec, dir: string): Promise<void> {
  const config = parseConfig({ ...spec.config, tokenizer: "none" }, spec.name);
  await writeGollmDir(
    {
      format: "gollm",
      path: spec.name,
      config,
      weights: randomWeights(config, spec.seed),
      tokenizer: null,
    },
    dir,
    { overwrite: true },
  );
}

/** SHA-256 of bytes as hex. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes.slice()));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}
