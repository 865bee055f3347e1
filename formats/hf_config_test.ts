/**
 * parseHfConfig() on the config.json spellings of transformers 4.x and 5.x: RoPE scaling from
 * `rope_scaling` (also its old `type` key) and `rope_parameters` (nested by layer type for
 * Gemma 3) give the same config; unsupported kinds are refused naming the field and the kind;
 * per-architecture windows and Gemma's normalizer in the model's dtype follow transformers.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../core/config.ts";
import { ConfigError } from "../core/errors.ts";
import { parseHfConfig } from "./hf_config.ts";

const FIX = fileURLToPath(new URL("../tests/fixtures/hf", import.meta.url));
const json = async (name: string) =>
  JSON.parse(await Deno.readTextFile(`${FIX}/${name}/config.json`));

/** Expects a ConfigError whose message is exactly `message`. */
function refuses(raw: unknown, message: string): void {
  assert.throws(
    () => parseHfConfig(raw, "c.json"),
    (e: unknown) => e instanceof ConfigError && e.message === message,
    message,
  );
}

Deno.test("parseHfConfig() reads rope_scaling (4.x) and rope_parameters (5.x) alike", async () => {
  const v4 = await json("llama31"); // rope_theta + rope_scaling, as Llama 3.1 ships
  assert.ok(v4.rope_scaling && !v4.rope_parameters);
  const { rope_scaling, rope_theta, ...rest } = v4;
  const v5 = { ...rest, rope_parameters: { ...rope_scaling, rope_theta } };
  assert.deepEqual(parseHfConfig(v5, "c.json").config, parseHfConfig(v4, "c.json").config);
  // The old `type` key (llama_linear's config.json) and `rope_type` agree too.
  const lin = await json("llama_linear");
  assert.deepEqual(lin.rope_scaling, { type: "linear", factor: 4 });
  const withType = parseHfConfig(lin, "c.json").config;
  const withRopeType = parseHfConfig(
    { ...lin, rope_scaling: { rope_type: "linear", factor: 4 } },
    "c.json",
  ).config;
  assert.deepEqual(withRopeType, withType);
  assert.equal(withType.rope_scaling, "linear");
});

Deno.test("parseHfConfig() reads Gemma 3's 4.x keys as its 5.x per-layer-type ones", async () => {
  const v5 = await json("gemma3");
  assert.ok(v5.layer_types && v5.rope_parameters.sliding_attention);
  const { layer_types: _, rope_parameters: rp, ...rest } = v5;
  const v4 = {
    ...rest,
    rope_theta: rp.full_attention.rope_theta,
    rope_local_base_freq: rp.sliding_attention.rope_theta,
    rope_scaling: { rope_type: "linear", factor: rp.full_attention.factor },
    sliding_window_pattern: 6,
  };
  assert.deepEqual(parseHfConfig(v4, "c.json").config, parseHfConfig(v5, "c.json").config);
});

Deno.test("parseHfConfig() Phi-3 longrope / su: factors, original context, attention factor as transformers 5", async () => {
  const lr = await json("phi3_longrope"); // 4.x spelling: rope_scaling {type: longrope, ...}
  const c = parseHfConfig(lr, "c.json").config;
  assert.equal(c.rope_scaling, "longrope");
  assert.equal(c.rope_dimension_count, 12); // partial_rotary_factor 0.75 of 16
  assert.deepEqual(c.rope_long_factors, lr.rope_scaling.long_factor);
  assert.deepEqual(c.rope_short_factors, lr.rope_scaling.short_factor);
  assert.equal(c.rope_original_context_length, 16);
  // max_position_embeddings / original = 4: sqrt(1 + ln 4 / ln 16).
  assert.equal(c.rope_attn_factor, Math.sqrt(1 + Math.log(4) / Math.log(16)));
  const at = (rs: Record<string, unknown>, top: Record<string, unknown> = {}) =>
    parseHfConfig({ ...lr, ...top, rope_scaling: { ...lr.rope_scaling, ...rs } }, "c.json").config;
  assert.equal(at({ attention_factor: 1.3 }).rope_attn_factor, 1.3);
  assert.equal(at({ factor: 8 }).rope_attn_factor, Math.sqrt(1 + Math.log(8) / Math.log(16)));
  assert.equal(at({}, { max_position_embeddings: 16 }).rope_attn_factor, 1); // factor 1
  // "su" (Phi-3 128k) is longrope; transformers 5's rope_parameters spelling reads alike.
  assert.deepEqual(at({ type: "su" }), c);
  const { rope_scaling, rope_theta, partial_rotary_factor, ...rest } = lr;
  const v5 = { ...rest, rope_parameters: { ...rope_scaling, rope_theta, partial_rotary_factor } };
  assert.deepEqual(parseHfConfig(v5, "c.json").config, c);
  // Phi3Config's top-level original_max_position_embeddings wins (default 4096).
  assert.equal(at({ original_max_position_embeddings: 32 }).rope_original_context_length, 16);
  const { original_max_position_embeddings: _, ...noOrig } = lr;
  const d = parseHfConfig({ ...noOrig, max_position_embeddings: 8192 }, "c.json").config;
  assert.equal(d.rope_original_context_length, 4096);
  refuses(
    { ...lr, rope_scaling: { ...lr.rope_scaling, long_factor: [1, 2] } },
    "c.json: field 'rope_scaling.long_factor' must be a list of 6 positive numbers (rotary dims / 2), got a list of 2",
  );
  refuses(
    { ...lr, rope_scaling: { type: "longrope", long_factor: lr.rope_scaling.long_factor } },
    "c.json: field 'rope_scaling.short_factor' must be a list of 6 positive numbers (rotary dims / 2), got null",
  );
});

Deno.test("parseHfConfig() refuses dynamic, longrope and other RoPE kinds, naming field and kind", async () => {
  const llama = await json("llama31");
  refuses(
    { ...llama, rope_scaling: { type: "dynamic", factor: 2 } },
    'c.json: field \'rope_scaling\' has rope type "dynamic"; gollm supports "default", "linear", "llama3", "yarn" for LlamaForCausalLM',
  );
  const { rope_scaling: _, ...plain } = llama;
  refuses(
    { ...plain, rope_parameters: { rope_type: "longrope", rope_theta: 1e4, short_factor: [1] } },
    'c.json: field \'rope_parameters\' has rope type "longrope"; gollm supports "default", "linear", "llama3", "yarn" for LlamaForCausalLM (longrope: Phi3ForCausalLM only)',
  );
  const phi3 = await json("phi3");
  refuses(
    { ...phi3, rope_parameters: { ...phi3.rope_parameters, rope_type: "yarn", factor: 2 } },
    'c.json: field \'rope_parameters\' has rope type "yarn"; gollm supports "default", "longrope", "su" for Phi3ForCausalLM',
  );
  refuses(
    { ...plain, rope_scaling: { rope_type: "yarn", factor: 4, truncate: false } },
    "c.json: field 'rope_scaling.truncate' is false, which gollm does not support",
  );
  const g3 = await json("gemma3");
  refuses(
    {
      ...g3,
      rope_parameters: {
        ...g3.rope_parameters,
        sliding_attention: { rope_type: "linear", factor: 2, rope_theta: 1e4 },
      },
    },
    'c.json: field \'rope_parameters.sliding_attention\' has rope type "linear"; gollm supports only "default" for sliding layers',
  );
  refuses(
    { ...(await json("gemma2")), hidden_activation: "gelu" },
    "c.json: field 'hidden_activation' is \"gelu\"; gollm's GeGLU uses the tanh GELU (gelu_new, gelu_pytorch_tanh, gelu_fast)",
  );
  refuses(
    { ...(await json("qwen3")), attention_bias: true },
    "c.json: field 'attention_bias' is true (bias on q/k/v and o_proj), which gollm does not support",
  );
});

Deno.test("parseHfConfig() yarn: attention factor from attention_factor, mscale / mscale_all_dim, or ln(factor)", async () => {
  const base = await json("llama_yarn");
  const rp = base.rope_parameters;
  const at = (extra: Record<string, unknown>) =>
    parseHfConfig({ ...base, rope_parameters: { ...rp, ...extra } }, "c.json").config
      .rope_attn_factor;
  assert.equal(at({}), 0.1 * Math.log(4) + 1);
  assert.equal(at({ attention_factor: 1.25 }), 1.25);
  const m = (s: number, k: number) => 0.1 * k * Math.log(s) + 1;
  assert.equal(at({ mscale: 0.707, mscale_all_dim: 0.707 }), m(4, 0.707) / m(4, 0.707));
  assert.equal(at({ mscale: 1, mscale_all_dim: 0.5 }), m(4, 1) / m(4, 0.5));
  const c = parseHfConfig(base, "c.json").config;
  assert.deepEqual([c.rope_yarn_beta_fast, c.rope_yarn_beta_slow], [32, 1]); // HF defaults
});

Deno.test("parseHfConfig() embed_scale is sqrt(hidden_size) in the model's dtype, as transformers' normalizer", async () => {
  const exp = JSON.parse(await Deno.readTextFile(`${FIX}/gemma2/expected.json`));
  const { hidden_size, bfloat16, float16 } = exp.normalizer; // torch.tensor(3584 ** 0.5, dtype)
  const g2 = await json("gemma2");
  const big = { ...g2, hidden_size, num_attention_heads: 16, head_dim: 256 };
  const scale = (dtype: string) =>
    parseHfConfig({ ...big, torch_dtype: dtype }, "c.json").config.embed_scale;
  assert.equal(scale("bfloat16"), bfloat16); // 59.75
  assert.equal(scale("float16"), float16);
  assert.equal(scale("float32"), Math.fround(Math.sqrt(hidden_size)));
  assert.equal(parseHfConfig({ ...big, dtype: "bfloat16" }, "c.json").config.embed_scale, bfloat16);
});

Deno.test("parseHfConfig() windows per architecture, the context never shrunk", async () => {
  const mistral = await json("mistral");
  const m = parseHfConfig(mistral, "c.json").config;
  assert.deepEqual([m.context_length, m.sliding_window, m.layer_types], [64, 5, null]);
  const none = parseHfConfig({ ...mistral, sliding_window: null }, "c.json").config;
  assert.equal(none.sliding_window, null);
  // Qwen2: only with use_sliding_window, from max_window_layers on (4.x files: no layer_types).
  const q = await json("qwen2_swa");
  assert.equal(q.layer_types, undefined);
  const off = parseHfConfig({ ...q, use_sliding_window: false }, "c.json").config;
  assert.deepEqual([off.sliding_window, off.layer_types], [null, null]);
  const late = parseHfConfig({ ...q, max_window_layers: 3 }, "c.json").config; // no layer >= 3
  assert.equal(late.sliding_window, null);
  const all = parseHfConfig({ ...q, max_window_layers: 0 }, "c.json").config;
  assert.deepEqual([all.sliding_window, all.layer_types], [4, null]); // every layer
  // Gemma 2: even layers slide unless layer_types says otherwise.
  const g2 = await json("gemma2");
  const { layer_types: _, ...g2v4 } = g2;
  assert.deepEqual(parseHfConfig(g2v4, "c.json").config.layer_types, [
    "sliding_attention",
    "full_attention",
  ]);
  // Gemma 3 with sliding_window_pattern 1: no local layer, so no local RoPE base either.
  const g3 = await json("gemma3");
  const { layer_types: _t, ...g3v4 } = g3;
  const global = parseHfConfig({ ...g3v4, sliding_window_pattern: 1 }, "c.json").config;
  assert.deepEqual([global.sliding_window, global.rope_local_base_freq], [null, null]);
  refuses(
    { ...g2, layer_types: ["sliding_attention"] },
    'c.json: field \'layer_types\' must list num_hidden_layers (2) of "sliding_attention" | "full_attention"',
  );
});

Deno.test("parseHfConfig() of each issue #10 fixture equals its hand-written gollm.yaml", async () => {
  const names = [
    "llama31",
    "llama_yarn",
    "llama_linear",
    "qwen3",
    "gemma2",
    "gemma3",
    "phi3",
    "phi3_longrope",
  ];
  for (const name of [...names, "qwen2_swa"]) {
    // python/hf_fixtures.py writes gollm.yaml from a config spelled out by hand per fixture.
    const want = await loadConfig(`${FIX}/${name}/gollm.yaml`);
    assert.deepEqual(parseHfConfig(await json(name), "c.json").config, want, name);
  }
});
