/**
 * Per-layer attributes of a config: which layers attend through a sliding window and which
 * rotate by Gemma 3's local RoPE table. The reference (runtime/reference.ts), the graph
 * (codegen/graph.ts `layerWindow`) and the PyTorch mirror (python/config_arch.py
 * `layer_window`) read them from here.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/**
 * The sliding window of layer `layer` in tokens, or null when the layer attends to the whole
 * sequence: `sliding_window` for every layer when `layer_types` is null (Mistral, Phi-3), else
 * for the `sliding_attention` layers only (Qwen2 `max_window_layers`, Gemma 2's even layers,
 * Gemma 3's five of six). HF `sliding_window_causal_mask_function`: the token at position p
 * sees positions `p - W + 1 .. p`.
 *
 * @param config The model config.
 * @param layer Layer index in `[0, n_layers)`.
 * @returns Tokens, or null for no limit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerWindow, parseConfig } from "./config.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 32, dim: 16, n_layers: 3, n_heads: 2,
 *   hidden_dim: 32, context_length: 64, norm: "rmsnorm", norm_eps: 1e-6, mlp: "geglu",
 *   tie_embeddings: true, sliding_window: 8,
 *   layer_types: ["sliding_attention", "full_attention", "sliding_attention"] }, "<example>");
 * assert.deepEqual([0, 1, 2].map((l) => layerWindow(c, l)), [8, null, 8]);
 * ```
 */
export function layerWindow(config: ModelConfig, layer: number): number | null {
  const w = config.sliding_window;
  if (w === null) return null;
  if (config.layer_types === null) return w;
  return config.layer_types[layer] === "sliding_attention" ? w : null;
}

/**
 * Whether layer `layer` rotates by the local RoPE table (`rope_local_base_freq`, unscaled):
 * Gemma 3's sliding-window layers.
 *
 * @param config The model config.
 * @param layer Layer index.
 * @returns True for a sliding layer of a config with `rope_local_base_freq`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerRopeIsLocal, parseConfig } from "./config.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 32, dim: 16, n_layers: 2, n_heads: 2,
 *   hidden_dim: 32, context_length: 64, norm: "rmsnorm", norm_eps: 1e-6, mlp: "geglu",
 *   tie_embeddings: true, sliding_window: 8, rope_local_base_freq: 10000,
 *   layer_types: ["sliding_attention", "full_attention"] }, "<example>");
 * assert.deepEqual([layerRopeIsLocal(c, 0), layerRopeIsLocal(c, 1)], [true, false]);
 * ```
 */
export function layerRopeIsLocal(config: ModelConfig, layer: number): boolean {
  return config.rope_local_base_freq !== null && layerWindow(config, layer) !== null;
}
