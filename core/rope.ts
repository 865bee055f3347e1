/**
 * Rotary position embedding (RoPE, Su et al. 2021 "RoFormer"): the inverse frequencies that
 * every backend rotates q and k by. The angle of pair i at absolute position p is
 * `p · inv_freq[i]`; nothing is tabulated per position, so no buffer grows with
 * `context_length` (the forward passes compute the cos/sin of a step's positions once per
 * step, as llama.cpp computes theta per position).
 *
 * This is the one place where RoPE scaling (llama3, linear, yarn: issue #10) changes the
 * frequencies; the reference (runtime/reference.ts) and the generated kernels
 * (codegen/ops/rope.ts) both read them from here.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/**
 * The RoPE inverse frequencies of a config, `inv_freq[i] = rope_theta^(-2i / head_dim)` for
 * `i` in `[0, head_dim / 2)`, rounded to f32 as HF transformers stores its `inv_freq` buffer
 * (`_compute_default_rope_parameters`) and llama.cpp computes `theta_scale` (`powf`).
 *
 * @param config The model config (`head_dim`, `rope_theta`).
 * @returns `(head_dim / 2)` frequencies in radians per position.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "./config.ts";
 * import { ropeInvFreq } from "./rope.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const f = ropeInvFreq(c); // head_dim 12, theta 10000
 * assert.equal(f.length, 6);
 * assert.equal(f[0], 1);
 * assert.equal(f[3], Math.fround(10000 ** -0.5)); // 0.01
 * ```
 */
export function ropeInvFreq(config: ModelConfig): Float32Array {
  const half = config.head_dim / 2;
  const out = new Float32Array(half); // (head_dim / 2)
  for (let i = 0; i < half; i++) out[i] = Math.pow(config.rope_theta, (-2 * i) / config.head_dim);
  return out;
}
