/**
 * core/rope.ts against transformers' `modeling_rope_utils.py` on published configs: the
 * inverse frequencies of Llama 3.1 8B (llama3 scaling) and of a Qwen2.5-style YaRN ×4 over
 * 32768 positions, as `ROPE_INIT_FUNCTIONS[rope_type](config)` returns them (values copied
 * from transformers 5.18), a Phi-3.5-mini-shaped LongRoPE with both factor sets, and partial
 * rotary on the first dims only.
 */
import assert from "node:assert/strict";
import { parseConfig } from "./config.ts";
import { longropeFactors, ropeAttnFactor, ropeInvFreq } from "./rope.ts";

const BASE = {
  arch: "llama",
  vocab_size: 32,
  dim: 4096,
  n_layers: 1,
  n_heads: 32,
  hidden_dim: 64,
  context_length: 131072,
  norm: "rmsnorm",
  norm_eps: 1e-5,
  mlp: "swiglu",
  tie_embeddings: true,
};

/** Relative closeness (float32 rounding of the two computations). */
function close(got: number, want: number, what: string): void {
  assert.ok(Math.abs(got - want) <= 2e-7 * Math.abs(want), `${what}: ${got} vs ${want}`);
}

Deno.test("ropeInvFreq() llama3 equals transformers on Llama 3.1 8B's rope_scaling", () => {
  const c = parseConfig({
    ...BASE,
    rope_theta: 500000,
    rope_scaling: "llama3",
    rope_scaling_factor: 8,
    rope_original_context_length: 8192,
  }, "<llama3.1>");
  const f = ropeInvFreq(c);
  const hf: [number, number][] = [
    [0, 1.0],
    [20, 0.016560440883040428], // wavelength below 8192 / 4: unchanged
    [40, 3.428102354519069e-05], // between: blended
    [45, 1.2297638932068367e-05],
    [50, 4.411534519022098e-06], // above 8192: / 8
    [63, 3.068925877869333e-07],
  ];
  for (const [i, v] of hf) close(f[i], v, `inv_freq[${i}]`);
  assert.equal(ropeAttnFactor(c), 1);
});

Deno.test("ropeInvFreq() yarn equals transformers on YaRN x4 over 32768 positions", () => {
  const c = parseConfig({
    ...BASE,
    rope_theta: 1e6,
    rope_scaling: "yarn",
    rope_scaling_factor: 4,
    rope_original_context_length: 32768,
  }, "<yarn>");
  const f = ropeInvFreq(c);
  const hf: [number, number][] = [
    [0, 1.0],
    [10, 0.11547820270061493],
    [20, 0.01333521492779255],
    [30, 0.0010643609566614032],
    [40, 4.4456985051510856e-05],
    [63, 3.102344408034696e-07],
  ];
  for (const [i, v] of hf) close(f[i], v, `inv_freq[${i}]`);
  assert.equal(ropeAttnFactor(c), 1.138629436111989); // HF attention_scaling
  assert.equal(ropeAttnFactor(c, true), 1); // a local table is never scaled
});

Deno.test("ropeInvFreq() partial rotary spans rope_dimension_count, local table its own base", () => {
  const c = parseConfig({
    ...BASE,
    dim: 64,
    n_heads: 2, // head_dim 32
    rope_dimension_count: 24, // Phi-4-mini's 0.75
    rope_theta: 1e6,
    sliding_window: 16,
    layer_types: ["sliding_attention"],
    rope_local_base_freq: 10000,
  }, "<partial>");
  const f = ropeInvFreq(c);
  assert.equal(f.length, 12);
  assert.equal(f[1], Math.fround(1e6 ** (-2 / 24))); // exponent over the rotated dims, not head_dim
  assert.equal(ropeInvFreq(c, true)[1], Math.fround(10000 ** (-2 / 24)));
});

Deno.test("ropeInvFreq() longrope equals transformers' _compute_longrope_parameters, the set chosen by the context", () => {
  // A Phi-3.5-mini shape (head_dim 96, original 4096 of 131072) with made-up factors; values
  // from transformers 5.18 `_compute_longrope_parameters(config, seq_len=None | 4097)`.
  const long = Array.from({ length: 48 }, (_, i) => Math.round((1 + i * 0.75) * 100) / 100);
  const short = Array.from({ length: 48 }, (_, i) => Math.round((1 + i * 0.02) * 100) / 100);
  const c = parseConfig({
    ...BASE,
    dim: 3072,
    rope_scaling: "longrope",
    rope_original_context_length: 4096,
    rope_long_factors: long,
    rope_short_factors: short,
  }, "<phi3.5>");
  const hf: [number, number, number][] = [ // [i, short, long]
    [0, 1.0, 1.0],
    [1, 0.8092197775840759, 0.47165951132774353],
    [17, 0.02859094738960266, 0.0027863180730491877],
    [47, 6.244987162062898e-05, 3.3421447369619273e-06],
  ];
  const atShort = ropeInvFreq(c, false, 4096), atLong = ropeInvFreq(c, false, 4097);
  for (const [i, s, l] of hf) {
    close(atShort[i], s, `short ${i}`);
    close(atLong[i], l, `long ${i}`);
  }
  assert.deepEqual(ropeInvFreq(c), atLong); // default context: context_length 131072
  // attention_factor sqrt(1 + ln(32) / ln(4096)), for either set.
  close(ropeAttnFactor(c), 1.1902380714238083, "attention factor");
  assert.throws(() => longropeFactors(c, 0), /context must be a positive integer, got 0/);
  assert.throws(
    () => longropeFactors({ ...c, rope_scaling: "none" }, 16),
    /rope_scaling is none, not longrope/,
  );
});
