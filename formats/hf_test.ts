/**
 * Hugging Face directories against `transformers` itself: each fixture under
 * tests/fixtures/hf/ (written by python/hf_fixtures.py) holds a random-initialised
 * transformers model and the float32 logits transformers computed for every position plus
 * its greedy continuation. Both the reference forward and the JIT must match within 1e-4;
 * the same model converted to GGUF the llama.cpp way must give the same logits.
 *
 * The architectures of issue #10 (Llama 3.1 llama3 / YaRN / linear RoPE scaling, Qwen3,
 * Gemma 2, Gemma 3, Phi-3, Qwen2 and Mistral sliding windows) each have negative controls:
 * ignoring the feature (the RoPE scaling, the QK-norm, the soft-capping, the window, ...)
 * moves the reference's logits more than 1e-2 away from transformers' at the 24 tokens the
 * fixture runs (attention sharpened, past every window and original context).
 */
import assert from "node:assert/strict";
import { compileModel } from "../codegen/compile.ts";
import type { Checkpoint } from "./checkpoint.ts";
import { type ModelConfig, parseConfig } from "../core/config.ts";
import { expectedShapes, requireF32, type Weights } from "../core/weights.ts";
import { ConfigError, FormatError } from "../core/errors.ts";
import type { ForwardPass } from "../core/forward.ts";
import { loadGguf } from "./gguf/checkpoint.ts";
import { loadHf, parseHfConfig } from "./hf.ts";
import { createReference } from "../runtime/reference.ts";
import { assertClose } from "../tests/assert_close.ts";
import { greedy } from "../tests/greedy_decode.ts";
import { type Expected, expected, HF_FIXTURES as FIX } from "../tests/hf_expected.ts";

const TOL = 1e-4;

function checkLogits(fp: ForwardPass, exp: Expected, label: string): void {
  const vocab = fp.config.vocab_size;
  const all = fp.forwardAll(exp.tokens, 0); // (n, vocab)
  assert.equal(all.length, exp.tokens.length * vocab);
  for (let t = 0; t < exp.tokens.length; t++) {
    assertClose(
      all.subarray(t * vocab, (t + 1) * vocab),
      exp.logits[t],
      TOL,
      `${label} position ${t}`,
    );
  }
}

const FIXTURES: Record<string, (c: Checkpoint) => void> = {
  llama_gqa: (c) => {
    assert.equal(c.config.n_kv_heads, 2);
    assert.equal(c.config.n_heads, 8);
    assert.equal(c.config.tie_embeddings, true);
    assert.ok(!c.weights.has("output.weight"));
    assert.equal(c.config.tokenizer, "tokenizer.json");
    assert.equal(c.tokenizer?.constructor.name, "SentencePieceTokenizer");
  },
  llama_untied: (c) => {
    assert.equal(c.config.rope_theta, 500000);
    assert.equal(c.config.head_dim, 32); // explicit head_dim != dim / n_heads
    assert.equal(c.config.tie_embeddings, false);
    assert.deepEqual(c.extraEosIds, [2, 7]);
    assert.deepEqual(c.generation, { temperature: 0.6, top_p: 0.9, top_k: 40 });
    assert.equal(c.tokenizer, null);
  },
  qwen2: (c) => {
    assert.equal(c.config.attn_bias, true);
    assert.equal(c.config.rope_theta, 1e6);
    assert.ok(c.weights.has("layers.1.attn.wk.bias"));
  },
  mistral: (c) => {
    assert.equal(c.config.n_kv_heads, 1);
    assert.equal(c.config.context_length, 64); // the context is not shrunk to the window
    assert.equal(c.config.sliding_window, 5); // every layer
    assert.equal(c.config.layer_types, null);
  },
  llama31: (c) => {
    assert.equal(c.config.rope_scaling, "llama3"); // transformers 4.x `rope_scaling` spelling
    assert.deepEqual(
      [
        c.config.rope_scaling_factor,
        c.config.rope_original_context_length,
        c.config.rope_low_freq_factor,
        c.config.rope_high_freq_factor,
      ],
      [4, 16, 1, 4],
    );
  },
  llama_yarn: (c) => {
    assert.equal(c.config.rope_scaling, "yarn"); // transformers 5.x `rope_parameters`
    assert.equal(c.config.rope_original_context_length, 16);
    assert.equal(c.config.rope_attn_factor, 0.1 * Math.log(4) + 1);
  },
  llama_linear: (c) => {
    assert.equal(c.config.rope_scaling, "linear"); // the old `type` key
    assert.equal(c.config.rope_scaling_factor, 4);
  },
  qwen3: (c) => {
    assert.equal(c.config.qk_norm, true);
    assert.equal(c.config.attn_bias, false);
    assert.equal(c.config.head_dim, 16);
    assert.ok(c.weights.has("layers.1.attn.k_norm.weight"));
  },
  gemma2: (c) => {
    const g = c.config;
    assert.deepEqual([g.mlp, g.post_norms, g.qk_norm], ["geglu", true, false]);
    assert.equal(g.embed_scale, Math.fround(Math.sqrt(32)));
    assert.deepEqual([g.query_pre_attn_scalar, g.head_dim], [16, 24]);
    assert.deepEqual([g.attn_logit_softcapping, g.final_logit_softcapping], [4, 3]);
    assert.equal(g.sliding_window, 4);
    assert.deepEqual(g.layer_types, ["sliding_attention", "full_attention"]);
    assert.equal(g.tie_embeddings, true);
  },
  gemma3: (c) => {
    const g = c.config;
    assert.deepEqual([g.mlp, g.post_norms, g.qk_norm], ["geglu", true, true]);
    assert.deepEqual([g.rope_theta, g.rope_local_base_freq], [1e6, 10000]);
    assert.deepEqual([g.rope_scaling, g.rope_scaling_factor], ["linear", 4]);
    assert.deepEqual(g.layer_types, [
      ...Array(5).fill("sliding_attention"),
      "full_attention",
    ]);
    assert.equal(g.final_logit_softcapping, null);
  },
  phi3: (c) => {
    assert.equal(c.config.rope_dimension_count, 8); // partial_rotary_factor 0.5 of head_dim 16
    assert.equal(c.config.sliding_window, 5);
    assert.equal(c.config.layer_types, null);
    assert.ok(c.weights.has("layers.1.ffn.w3.weight")); // split from gate_up_proj
  },
  phi3_longrope: (c) => {
    // The default KV capacity (context_length 64) exceeds the original 16: long factors, as
    // transformers on the fixture's 24 tokens (tests/longrope_test.ts: the short case).
    assert.equal(c.config.rope_scaling, "longrope");
    assert.equal(c.config.rope_dimension_count, 12); // partial_rotary_factor 0.75
  },
  qwen2_swa: (c) => {
    assert.equal(c.config.sliding_window, 4); // layer_types derived from max_window_layers 1
    assert.deepEqual(c.config.layer_types, [
      "full_attention",
      "sliding_attention",
      "sliding_attention",
    ]);
  },
  gpt2: (c) => {
    assert.equal(c.config.arch, "gpt2");
    assert.equal(c.config.hidden_dim, 256); // n_inner null → 4 * n_embd
    assert.equal(c.config.context_length, 32);
    assert.equal(c.tokenizer?.constructor.name, "TiktokenTokenizer");
  },
};

for (const [name, checkConfig] of Object.entries(FIXTURES)) {
  Deno.test(`loadHf() ${name}: reference and JIT match transformers' logits and greedy ids`, async () => {
    const ckpt = await loadHf(`${FIX}/${name}`);
    assert.equal(ckpt.format, "hf");
    assert.equal(ckpt.config.rope_style, "half");
    checkConfig(ckpt);
    const exp = await expected(name);
    const ref = createReference(ckpt.config, ckpt.weights);
    checkLogits(ref, exp, `${name} reference`);
    assert.deepEqual(
      greedy(ref, exp.tokens, exp.greedy.length),
      exp.greedy,
      `${name} reference greedy`,
    );
    const jit = compileModel(ckpt.config, ckpt.weights);
    checkLogits(jit, exp, `${name} JIT`);
    assert.deepEqual(greedy(jit, exp.tokens, exp.greedy.length), exp.greedy, `${name} JIT greedy`);
  });
}

/** The largest |logit - transformers' logit| over every position of the fixture. */
function worstDiff(fp: ForwardPass, exp: Expected): number {
  const all = fp.forwardAll(exp.tokens, 0); // (n, vocab)
  const V = fp.config.vocab_size;
  let worst = 0;
  exp.logits.forEach((row, t) => {
    row.forEach((v, i) => (worst = Math.max(worst, Math.abs(all[t * V + i] - v))));
  });
  return worst;
}

/** A config with some fields changed, and the weights it still has. */
function without(
  c: Checkpoint,
  over: Partial<Record<keyof ModelConfig, unknown>>,
): { config: ModelConfig; weights: Weights } {
  const config = parseConfig({ ...c.config, ...over }, "<without>");
  const want = expectedShapes(config);
  return { config, weights: new Map([...c.weights].filter(([n]) => want.has(n))) };
}

const NO_ROPE_SCALING = {
  rope_scaling: "none",
  rope_scaling_factor: 1,
  rope_original_context_length: null,
  rope_low_freq_factor: 1,
  rope_high_freq_factor: 4,
  rope_attn_factor: 1,
};
const NO_WINDOW = { sliding_window: null, layer_types: null };

/** Per fixture, what ignoring each feature means (negative controls). */
const CONTROLS: Record<string, Record<string, Partial<Record<keyof ModelConfig, unknown>>>> = {
  mistral: { "the window": NO_WINDOW },
  llama31: { "the llama3 RoPE scaling": NO_ROPE_SCALING },
  llama_yarn: {
    "the yarn RoPE scaling": NO_ROPE_SCALING,
    "yarn's attention factor": { rope_attn_factor: 1 },
  },
  llama_linear: { "the linear RoPE scaling": NO_ROPE_SCALING },
  qwen3: { "the QK-norm": { qk_norm: false } },
  gemma2: {
    "the attention soft-capping": { attn_logit_softcapping: null },
    "the final soft-capping": { final_logit_softcapping: null },
    "the alternating window": NO_WINDOW,
    "query_pre_attn_scalar": { query_pre_attn_scalar: 24 },
    "the sandwich norms": { post_norms: false },
    "the embedding scale": { embed_scale: 1 },
  },
  gemma3: {
    "the QK-norm": { qk_norm: false },
    "the window": { ...NO_WINDOW, rope_local_base_freq: null },
    "the local RoPE base": { rope_local_base_freq: null },
    "the global linear scaling": { rope_scaling: "none", rope_scaling_factor: 1 },
  },
  phi3: {
    "the window": NO_WINDOW,
    "the partial rotary": { rope_dimension_count: 16 },
  },
  phi3_longrope: {
    "the long factors (short ones instead)": {
      rope_long_factors: [1.05, 1.2, 1.4, 1.9, 2.5, 4.0], // python/hf_arch_fixtures.py SHORT_FACTORS
    },
    "the longrope attention factor": { rope_attn_factor: 1 },
  },
  qwen2_swa: { "the sliding layers": NO_WINDOW },
};

for (const [name, controls] of Object.entries(CONTROLS)) {
  Deno.test(`loadHf() ${name}: ignoring each feature moves the logits past 1e-2 (negative controls)`, async () => {
    const ckpt = await loadHf(`${FIX}/${name}`);
    const exp = await expected(name);
    for (const [what, over] of Object.entries(controls)) {
      const { config, weights } = without(ckpt, over);
      const ref = createReference(config, requireF32(weights, "the reference"));
      assert.throws(() => checkLogits(ref, exp, `${name} without ${what}`), /max \|diff\|/);
      const d = worstDiff(ref, exp);
      assert.ok(d > 1e-2, `${name}: ignoring ${what} moves the logits by only ${d}`);
    }
  });
}

/** GGUF conversions (python/hf_fixtures.py `convert_gguf`, llama.cpp's way) of the fixtures. */
const GGUF_FIXTURES: Record<string, (g: Checkpoint, h: Checkpoint) => void> = {
  llama31: (g) => {
    // llama3 scaling becomes the per-pair factors of rope_freqs.weight.
    assert.equal(g.config.rope_scaling, "none");
    assert.equal(g.config.rope_freq_factors!.length, 8);
    assert.equal(g.config.rope_style, "interleaved"); // Q/K rows permuted by the converter
  },
  llama_yarn: (g, h) => {
    assert.equal(g.config.rope_scaling, "yarn");
    assert.ok(Math.abs(g.config.rope_attn_factor - h.config.rope_attn_factor) < 1e-7);
  },
  llama_linear: (g) => assert.equal(g.config.rope_scaling_factor, 4),
  qwen3: (g) => assert.equal(g.config.qk_norm, true),
  gemma2: (g, h) => {
    assert.deepEqual(g.config.layer_types, h.config.layer_types); // llama.cpp's period 2
    assert.equal(g.config.query_pre_attn_scalar, 16); // attention.scale
    assert.equal(g.config.attn_logit_softcapping, 4);
  },
  gemma3: (g, h) => {
    assert.deepEqual(g.config.layer_types, h.config.layer_types); // llama.cpp's period 6
    assert.equal(g.config.rope_local_base_freq, 10000);
    assert.equal(g.config.rope_scaling, "linear");
  },
  phi3: (g) => {
    assert.equal(g.config.rope_dimension_count, 8);
    assert.equal(g.config.sliding_window, 5);
  },
  phi3_longrope: (g, h) => {
    // rope_factors_long/short.weight, rope.scaling.attn_factor, .original_context_length.
    assert.equal(g.config.rope_scaling, "longrope");
    assert.deepEqual(g.config.rope_long_factors, h.config.rope_long_factors!.map(Math.fround));
    assert.deepEqual(g.config.rope_short_factors, h.config.rope_short_factors!.map(Math.fround));
    assert.equal(g.config.rope_original_context_length, 16);
    assert.ok(Math.abs(g.config.rope_attn_factor - h.config.rope_attn_factor) < 1e-7);
  },
};

for (const [name, check] of Object.entries(GGUF_FIXTURES)) {
  Deno.test(`loadGguf() of the llama.cpp-converted ${name} gives transformers' logits`, async () => {
    const g = await loadGguf(`${FIX}/${name}.gguf`);
    const h = await loadHf(`${FIX}/${name}`);
    check(g, h);
    for (
      const f of ["n_heads", "n_kv_heads", "head_dim", "vocab_size", "mlp", "qk_norm"] as const
    ) {
      assert.equal(g.config[f], h.config[f], f);
    }
    const exp = await expected(name);
    checkLogits(createReference(g.config, g.weights), exp, `${name}.gguf reference`);
    checkLogits(compileModel(g.config, g.weights), exp, `${name}.gguf JIT`);
  });
}

Deno.test("loadGguf() of the llama.cpp-converted llama_gqa gives transformers' logits", async () => {
  const g = await loadGguf(`${FIX}/llama_gqa.gguf`);
  const h = await loadHf(`${FIX}/llama_gqa`);
  assert.equal(g.config.n_kv_heads, h.config.n_kv_heads);
  assert.equal(g.config.vocab_size, h.config.vocab_size);
  const exp = await expected("llama_gqa");
  checkLogits(createReference(g.config, g.weights), exp, "gguf reference");
  checkLogits(compileModel(g.config, g.weights), exp, "gguf JIT");
  // Its SentencePiece vocabulary (with real sentencepiece scores) and the HF tokenizer.json
  // (merges only) tokenize alike.
  const fx = JSON.parse(await Deno.readTextFile(`${FIX}/llama_gqa/expected.json`));
  for (const c of fx.tokenizer_cases as { text: string }[]) {
    assert.deepEqual(g.tokenizer!.encode(c.text), h.tokenizer!.encode(c.text), c.text);
  }
});

// ---------------------------------------------------------------- bad input

async function withDir(
  files: Record<string, string | Uint8Array>,
  fn: (dir: string) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "gollm_hf_test_" });
  try {
    for (const [name, content] of Object.entries(files)) {
      if (typeof content === "string") await Deno.writeTextFile(`${dir}/${name}`, content);
      else await Deno.writeFile(`${dir}/${name}`, content);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const LLAMA_CFG = {
  architectures: ["LlamaForCausalLM"],
  vocab_size: 256,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
};

Deno.test("loadHf() rejects an unsupported architecture naming config.json and the field", async () => {
  const cfg = JSON.stringify({ ...LLAMA_CFG, architectures: ["BertForMaskedLM"] });
  await withDir({ "config.json": cfg }, async (dir) => {
    await assert.rejects(loadHf(dir), (e: unknown) =>
      e instanceof ConfigError &&
      e.message.startsWith(`${dir}/config.json: field 'architectures' names "BertForMaskedLM"`));
  });
});

Deno.test("parseHfConfig() names config.json and the missing or unsupported field", () => {
  const { num_attention_heads: _, ...noHeads } = LLAMA_CFG;
  assert.throws(
    () => parseHfConfig(noHeads, "m/config.json"),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        "m/config.json: field 'num_attention_heads' is missing (required for LlamaForCausalLM)",
  );
  assert.throws(
    () =>
      parseHfConfig({ ...LLAMA_CFG, rope_scaling: { rope_type: "llama3", factor: 8 } }, "c.json"),
    (e: unknown) =>
      e instanceof ConfigError && e.message ===
        "c.json: field 'rope_scaling.low_freq_factor' is missing (required for LlamaForCausalLM)",
  );
  assert.throws(
    () => parseHfConfig({ ...LLAMA_CFG, hidden_act: "gelu" }, "c.json"),
    (e: unknown) => e instanceof ConfigError && e.field === "hidden_act",
  );
  assert.throws(
    () =>
      parseHfConfig({
        architectures: ["GPT2LMHeadModel"],
        vocab_size: 10,
        n_embd: 8,
        n_layer: 1,
        n_head: 2,
        n_positions: 8,
        activation_function: "relu",
      }, "c.json"),
    (e: unknown) => e instanceof ConfigError && e.field === "activation_function",
  );
  // A valid minimal config fills defaults the HF way.
  const { config } = parseHfConfig(LLAMA_CFG, "c.json");
  assert.equal(config.n_kv_heads, 4);
  assert.equal(config.rope_theta, 10000);
  assert.equal(config.tie_embeddings, false);
});

Deno.test("loadHf() names the missing HF tensor and its file", async () => {
  const src = `${FIX}/qwen2`;
  const bytes = await Deno.readFile(`${src}/model.safetensors`);
  // Rename one tensor in the safetensors header (same length, so offsets stay valid).
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const from = "model.layers.1.self_attn.k_proj.bias";
  assert.ok(header.includes(`"${from}"`));
  const patched = new TextEncoder().encode(
    header.replace(`"${from}"`, `"model.layers.1.self_attn.k_proj.xxxx"`),
  );
  const out = bytes.slice();
  out.set(patched, 8);
  await withDir({
    "config.json": await Deno.readTextFile(`${src}/config.json`),
    "model.safetensors": out,
  }, async (dir) => {
    await assert.rejects(loadHf(dir), (e: unknown) =>
      e instanceof FormatError &&
      e.message ===
        `${dir}/model.safetensors: tensor '${from}' is missing (needed for layers.1.attn.wk.bias)`);
  });
});

Deno.test("loadHf() names the index when a sharded checkpoint lacks a tensor", async () => {
  const src = `${FIX}/llama_gqa`;
  const index = JSON.parse(await Deno.readTextFile(`${src}/model.safetensors.index.json`));
  delete index.weight_map["model.norm.weight"];
  const files: Record<string, string | Uint8Array> = {
    "config.json": await Deno.readTextFile(`${src}/config.json`),
    "model.safetensors.index.json": JSON.stringify(index),
  };
  for (const shard of new Set(Object.values(index.weight_map) as string[])) {
    files[shard] = await Deno.readFile(`${src}/${shard}`);
  }
  await withDir(files, async (dir) => {
    await assert.rejects(loadHf(dir), (e: unknown) =>
      e instanceof FormatError &&
      e.message ===
        `${dir}/model.safetensors.index.json: tensor 'model.norm.weight' is missing (needed for norm.weight)`);
  });
});

Deno.test("loadHf() reports a mis-shaped tensor and a directory without weights", async () => {
  const cfg = {
    ...JSON.parse(await Deno.readTextFile(`${FIX}/mistral/config.json`)),
    intermediate_size: 100,
  };
  await withDir({
    "config.json": JSON.stringify(cfg),
    "model.safetensors": await Deno.readFile(`${FIX}/mistral/model.safetensors`),
  }, async (dir) => {
    await assert.rejects(
      loadHf(dir),
      (e: unknown) =>
        e instanceof FormatError &&
        e.message.includes(
          "model.layers.0.mlp.gate_proj.weight' has shape [96,64], expected [100,64]",
        ),
    );
  });
  await withDir(
    { "config.json": JSON.stringify(LLAMA_CFG), "pytorch_model.bin": "x" },
    async (dir) => {
      await assert.rejects(
        loadHf(dir),
        (e: unknown) =>
          e instanceof FormatError && e.message.startsWith(`${dir}: no model.safetensors`) &&
          e.message.includes("pytorch_model.bin"),
      );
    },
  );
  await withDir({ "config.json": "{not json" }, async (dir) => {
    await assert.rejects(
      loadHf(dir),
      (e: unknown) =>
        e instanceof FormatError && e.message.startsWith(`${dir}/config.json: is not valid JSON`),
    );
  });
});
