/**
 * Config validation: every documented ConfigError (missing, unknown, wrong type, bad enum,
 * inconsistent shapes, invalid YAML, unreadable file) names the file and the field; every
 * shipped config in configs/ loads.
 */
import assert from "node:assert/strict";
import {
  CONFIG_FIELDS,
  configToYaml,
  loadConfig,
  parameterCount,
  parseConfig,
  parseConfigYaml,
} from "./config.ts";
import { ConfigError, GollmError } from "./errors.ts";

const REPO = new URL("..", import.meta.url).pathname;

/** A valid llama config as YAML lines (field → YAML value text). */
const LLAMA: Record<string, string> = {
  arch: "llama",
  vocab_size: "96",
  dim: "48",
  n_layers: "2",
  n_heads: "4",
  n_kv_heads: "2",
  hidden_dim: "80",
  context_length: "64",
  norm: "rmsnorm",
  norm_eps: "1.0e-5",
  rope_theta: "10000",
  rope_style: "interleaved",
  attn_bias: "false",
  mlp: "swiglu",
  tie_embeddings: "false",
  tokenizer: "none",
};

const GPT2: Record<string, string> = {
  arch: "gpt2",
  vocab_size: "96",
  dim: "48",
  n_layers: "2",
  n_heads: "4",
  hidden_dim: "192",
  context_length: "64",
  norm: "layernorm",
  norm_eps: "1.0e-5",
  mlp: "gelu",
  tie_embeddings: "true",
  tokenizer: "none",
};

function yamlOf(fields: Record<string, string | undefined>): string {
  return Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}: ${v}`)
    .join("\n") + "\n";
}

let tmpDir: string | null = null;
async function tmp(): Promise<string> {
  if (tmpDir === null) {
    const dir = await Deno.makeTempDir({ prefix: "gollm_config_test_" });
    tmpDir = dir;
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  }
  return tmpDir;
}

/** Writes `text` to a fresh file and expects loadConfig to throw a ConfigError for `field`. */
async function expectFileError(
  name: string,
  text: string,
  field: string,
  includes?: RegExp,
): Promise<ConfigError> {
  const path = `${await tmp()}/${name}.yaml`;
  await Deno.writeTextFile(path, text);
  try {
    await loadConfig(path);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.ok(e instanceof GollmError);
    assert.equal(e.file, path);
    assert.equal(e.field, field, e.message);
    assert.ok(e.message.startsWith(`${path}: field '${field}'`), e.message);
    if (includes) assert.match(e.message, includes);
    assert.ok(!e.message.includes("\n"), "error message must be one line");
    return e;
  }
  assert.fail(`loadConfig(${name}) should have thrown a ConfigError for '${field}'`);
}

Deno.test("loadConfig() names the file, field and expected type of a missing field", async () => {
  const expected: Record<string, string> = {
    arch: "one of llama | gpt2",
    vocab_size: "a positive integer",
    dim: "a positive integer",
    n_layers: "a positive integer",
    n_heads: "a positive integer",
    hidden_dim: "a positive integer",
    context_length: "a positive integer",
    norm: "one of rmsnorm | layernorm",
    norm_eps: "a positive number",
    mlp: "one of swiglu | geglu | gelu",
    tie_embeddings: "true or false",
  };
  const check = async (base: Record<string, string>, field: string) => {
    const e = await expectFileError(
      `missing_${field}`,
      yamlOf({ ...base, [field]: undefined }),
      field,
      /is missing/,
    );
    assert.ok(
      e.message.endsWith(`field '${field}' is missing (expected ${expected[field]})`),
      e.message,
    );
  };
  for (const field of ["arch", "vocab_size", "dim", "n_layers", "n_heads", "hidden_dim"]) {
    await check(LLAMA, field);
  }
  for (const field of ["context_length", "norm", "norm_eps", "mlp", "tie_embeddings"]) {
    await check(GPT2, field);
  }
});

Deno.test("loadConfig() rejects an unknown field", async () => {
  await expectFileError(
    "unknown",
    yamlOf({ ...LLAMA, n_head: "4" }),
    "n_head",
    /is not a known config field/,
  );
  // A training section beside the model fields is allowed.
  const ok = `${await tmp()}/with_train.yaml`;
  await Deno.writeTextFile(ok, yamlOf(LLAMA) + "train:\n  lr: 0.001\n  steps: 10\n");
  assert.equal((await loadConfig(ok)).dim, 48);
});

Deno.test("loadConfig() rejects wrong types", async () => {
  const cases: [string, string, RegExp][] = [
    ["n_layers", '"2"', /positive integer, got "2"/],
    ["dim", "48.5", /positive integer, got 48.5/],
    ["n_heads", "0", /positive integer, got 0/],
    ["vocab_size", "-1", /positive integer/],
    ["hidden_dim", "[80]", /positive integer, got a list/],
    ["norm_eps", "small", /positive number, got "small"/],
    ["rope_theta", "{a: 1}", /positive number, got a mapping/],
    ["tie_embeddings", '"yes"', /true or false, got "yes"/],
    ["attn_bias", "1", /true or false, got 1/],
    ["tokenizer", "12", /non-empty string, got 12/],
  ];
  for (const [field, value, re] of cases) {
    await expectFileError(`type_${field}`, yamlOf({ ...LLAMA, [field]: value }), field, re);
  }
});

Deno.test("loadConfig() rejects bad enum values", async () => {
  const cases: [string, string][] = [
    ["arch", "mistral"],
    ["norm", "batchnorm"],
    ["rope_style", "neox"],
    ["mlp", "relu"],
  ];
  for (const [field, value] of cases) {
    await expectFileError(
      `enum_${field}`,
      yamlOf({ ...LLAMA, [field]: value }),
      field,
      new RegExp(`must be one of .* got "${value}"`),
    );
  }
});

Deno.test("loadConfig() rejects inconsistent shapes", async () => {
  await expectFileError(
    "gqa",
    yamlOf({ ...LLAMA, n_heads: "4", n_kv_heads: "3" }),
    "n_kv_heads",
    /must divide n_heads \(4\), got 3/,
  );
  await expectFileError(
    "odd_head_dim",
    yamlOf({ ...LLAMA, head_dim: "7" }),
    "head_dim",
    /even for RoPE, got 7/,
  );
  // dim 50 / 4 heads = 12.5 without an explicit head_dim.
  await expectFileError("indivisible", yamlOf({ ...LLAMA, dim: "50" }), "head_dim");
  // With an explicit head_dim the same dim is fine (head_dim ≠ dim / n_heads is allowed).
  const ok = `${await tmp()}/explicit_head_dim.yaml`;
  await Deno.writeTextFile(ok, yamlOf({ ...LLAMA, dim: "50", head_dim: "16" }));
  const c = await loadConfig(ok);
  assert.equal(c.head_dim, 16);
  // An odd head_dim is fine for gpt2 (no RoPE).
  const gptOdd = `${await tmp()}/gpt2_odd_head_dim.yaml`;
  await Deno.writeTextFile(gptOdd, yamlOf({ ...GPT2, dim: "28", n_heads: "4" }));
  assert.equal((await loadConfig(gptOdd)).head_dim, 7);
});

Deno.test("loadConfig() rejects norm/mlp/bias that do not fit the arch", async () => {
  await expectFileError(
    "gpt2_rms",
    yamlOf({ ...GPT2, norm: "rmsnorm" }),
    "norm",
    /layernorm for arch gpt2/,
  );
  await expectFileError(
    "gpt2_swiglu",
    yamlOf({ ...GPT2, mlp: "swiglu" }),
    "mlp",
    /gelu for arch gpt2/,
  );
  await expectFileError("gpt2_nobias", yamlOf({ ...GPT2, attn_bias: "false" }), "attn_bias");
  await expectFileError(
    "llama_ln",
    yamlOf({ ...LLAMA, norm: "layernorm" }),
    "norm",
    /rmsnorm for arch llama/,
  );
  await expectFileError(
    "llama_gelu",
    yamlOf({ ...LLAMA, mlp: "gelu" }),
    "mlp",
    /swiglu or geglu for arch llama/,
  );
});

Deno.test("loadConfig() reports invalid YAML, a non-mapping and an unreadable file", async () => {
  await expectFileError("bad_yaml", "arch: llama\ndim: [48\n", "<yaml>", /not valid YAML/);
  await expectFileError("tabs", "arch: llama\n\tdim: 48\n", "<yaml>", /not valid YAML/);
  await expectFileError("list", "- arch\n- dim\n", "<root>", /mapping/);
  await expectFileError("empty", "", "<root>", /mapping/);
  const missing = `${await tmp()}/does_not_exist.yaml`;
  await assert.rejects(loadConfig(missing), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.field, "<file>");
    assert.ok(e.message.startsWith(`${missing}: cannot read config file: `), e.message);
    assert.ok(!e.message.includes("\n"), "error message must be one line");
    return true;
  });
  // A directory is not a readable config file either.
  await assert.rejects(loadConfig(await tmp()), ConfigError);
});

Deno.test("parseConfig() fills defaults and parseConfigYaml(configToYaml(c)) round-trips", () => {
  const c = parseConfigYaml(yamlOf({ ...GPT2 }), "gpt2.yaml");
  assert.equal(c.n_kv_heads, 4);
  assert.equal(c.head_dim, 12);
  assert.equal(c.attn_bias, true);
  assert.equal(c.rope_style, "half");
  const back = parseConfigYaml(configToYaml(c), "back.yaml");
  assert.deepEqual(back, c);
  assert.deepEqual(Object.keys(back), [...CONFIG_FIELDS]);
  assert.throws(() => parseConfig(null, "<object>"), ConfigError);
});

Deno.test("parameterCount() counts every tensor once", () => {
  // Hand count for test-llama (untied, GQA 2:1): q 48*48, k/v 48*24 each, o 48*48,
  // swiglu 3*48*80, two norms of 48 per layer; embeddings + output + final norm.
  const c = parseConfigYaml(yamlOf(LLAMA), "llama.yaml");
  const perLayer = 48 * 48 + 2 * 48 * 24 + 48 * 48 + 3 * 48 * 80 + 2 * 48;
  assert.equal(parameterCount(c), 2 * perLayer + 96 * 48 * 2 + 48);
});

Deno.test("every configs/*.yaml loads", async () => {
  let n = 0;
  for await (const entry of Deno.readDir(`${REPO}configs`)) {
    if (!entry.isFile || !entry.name.endsWith(".yaml")) continue;
    const c = await loadConfig(`${REPO}configs/${entry.name}`);
    assert.ok(c.vocab_size > 0 && c.dim > 0, entry.name);
    n++;
  }
  assert.ok(n >= 3, `expected at least 3 configs, found ${n}`);
  const big = await loadConfig(`${REPO}configs/gollm-85m.yaml`);
  assert.deepEqual(
    [big.n_layers, big.dim, big.n_heads, big.n_kv_heads, big.head_dim, big.hidden_dim],
    [12, 768, 12, 4, 64, 2048],
  );
  assert.deepEqual([big.context_length, big.vocab_size, big.rope_theta], [2048, 32768, 500000]);
});

Deno.test("parseConfig() issue #10 fields default off and stay out of configToYaml until set", () => {
  const c = parseConfigYaml(yamlOf(LLAMA), "llama.yaml");
  assert.deepEqual(
    [c.rope_scaling, c.rope_dimension_count, c.query_pre_attn_scalar, c.embed_scale, c.mlp],
    ["none", 12, 12, 1, "swiglu"],
  );
  assert.deepEqual([c.sliding_window, c.layer_types, c.rope_freq_factors], [null, null, null]);
  assert.ok(!configToYaml(c).includes("rope_scaling"));
  const gemma = parseConfig({
    ...c,
    mlp: "geglu",
    post_norms: true,
    qk_norm: true,
    embed_scale: 6.928203,
    sliding_window: 8,
    layer_types: ["sliding_attention", "full_attention"],
    rope_local_base_freq: 10000,
    rope_scaling: "linear",
    rope_scaling_factor: 8,
    final_logit_softcapping: 30,
  }, "gemma.yaml");
  const yaml = configToYaml(gemma);
  assert.match(yaml, /^layer_types: \["sliding_attention","full_attention"\]$/m);
  assert.deepEqual(parseConfigYaml(yaml, "back.yaml"), gemma);
  const llama3 = parseConfig({ ...c, rope_freq_factors: [1, 1, 2, 4, 8, 8] }, "f.yaml");
  assert.deepEqual(parseConfigYaml(configToYaml(llama3), "back.yaml"), llama3);
});

Deno.test("loadConfig() rejects inconsistent issue #10 fields, naming the field", async () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [
      { rope_scaling: "llama3", rope_scaling_factor: "8" },
      "rope_original_context_length",
      /required by rope_scaling llama3/,
    ],
    [
      { rope_scaling: "linear", rope_scaling_factor: "2", rope_yarn_beta_fast: "16" },
      "rope_yarn_beta_fast",
      /is set \(16\) but rope_scaling linear does not use it/,
    ],
    [
      {
        rope_scaling: "llama3",
        rope_scaling_factor: "8",
        rope_original_context_length: "8192",
        rope_low_freq_factor: "4",
        rope_high_freq_factor: "1",
      },
      "rope_high_freq_factor",
      /greater than rope_low_freq_factor \(4\), got 1/,
    ],
    [
      { rope_scaling: "dynamic" },
      "rope_scaling",
      /one of none \| linear \| llama3 \| yarn \| longrope, got "dynamic"/,
    ],
    [
      { rope_scaling: "longrope", rope_original_context_length: "16" },
      "rope_long_factors",
      /is missing \(required by rope_scaling longrope\)/,
    ],
    [
      {
        rope_scaling: "longrope",
        rope_original_context_length: "16",
        rope_long_factors: "[1, 2, 3, 4, 5, 6]",
        rope_short_factors: "[1, 2]",
      },
      "rope_short_factors",
      /rope_dimension_count \/ 2 = 6 values, got 2/,
    ],
    [
      {
        rope_scaling: "longrope",
        rope_long_factors: "[1, 2, 3, 4, 5, 6]",
        rope_short_factors: "[1, 1, 1, 1, 1, 1]",
      },
      "rope_original_context_length",
      /required by rope_scaling longrope/,
    ],
    [
      {
        rope_scaling: "linear",
        rope_scaling_factor: "2",
        rope_short_factors: "[1, 1, 1, 1, 1, 1]",
      },
      "rope_short_factors",
      /is set \(a list\) but rope_scaling linear does not use it/,
    ],
    [{ rope_dimension_count: "7" }, "rope_dimension_count", /even and at most head_dim 12, got 7/],
    [{ rope_dimension_count: "16" }, "rope_dimension_count", /at most head_dim 12, got 16/],
    [
      { rope_freq_factors: "[1, 2]" },
      "rope_freq_factors",
      /rope_dimension_count \/ 2 = 6 values, got 2/,
    ],
    [
      { rope_freq_factors: "[1, -2, 1, 1, 1, 1]" },
      "rope_freq_factors",
      /\[1\] must be a positive number, got -2/,
    ],
    [
      {
        rope_freq_factors: "[1, 1, 1, 1, 1, 1]",
        rope_scaling: "yarn",
        rope_scaling_factor: "4",
        rope_original_context_length: "16",
      },
      "rope_freq_factors",
      /cannot be combined with rope_scaling yarn/,
    ],
    [{ layer_types: "[full_attention]" }, "layer_types", /n_layers = 2 entries, got 1/],
    [
      { layer_types: "[local, global]" },
      "layer_types",
      /\[0\] must be one of sliding_attention \| full_attention, got "local"/,
    ],
    [
      { layer_types: "[sliding_attention, full_attention]" },
      "sliding_window",
      /is missing \(layer_types has sliding_attention layers\)/,
    ],
    [
      { rope_local_base_freq: "10000" },
      "rope_local_base_freq",
      /no layer is a sliding_attention layer/,
    ],
    [{ sliding_window: "0" }, "sliding_window", /positive integer or null, got 0/],
    [
      { attn_logit_softcapping: "-50" },
      "attn_logit_softcapping",
      /positive number or null, got -50/,
    ],
  ];
  for (const [over, field, re] of cases) {
    await expectFileError(`issue10_${field}`, yamlOf({ ...LLAMA, ...over }), field, re);
  }
  await expectFileError(
    "gpt2_qk_norm",
    yamlOf({ ...GPT2, qk_norm: "true" }),
    "qk_norm",
    /applies to arch llama only \(got true\)/,
  );
});
