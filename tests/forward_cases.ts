/**
 * The forward-pass tables shared by the tests: {@linkcode BACKENDS} (every forward pass
 * gollm has: the reference, the JS JIT and the WASM backend), {@linkcode FORWARD_CASES}
 * (small configs covering every shape feature), deterministic token ids, and the check of a
 * backend against the reference on one config.
 *
 * codegen/compile_test.ts runs every compiled backend on every case against the reference;
 * tests/pytorch_parity_test.ts runs every backend against the PyTorch fixtures;
 * runtime/reference_test.ts checks the reference against an independent full-sequence
 * forward.
 *
 * @module
 */
import { type ModelConfig, parseConfig } from "../core/config.ts";
import type { BatchForward, BatchLayout, ForwardOptions, ForwardPass } from "../core/forward.ts";
import { compileBatch, compileModel } from "../codegen/compile.ts";
import { createReference } from "../runtime/reference.ts";
import { randomWeights, requireF32, type Weights } from "../core/weights.ts";
import { assertClose } from "./assert_close.ts";

/** The F32 logit tolerance of docs/DESIGN.md "Tests". */
export const TOL = 1e-4;

/** One forward pass under test: its backend name and how to build it. */
export interface ForwardBackend {
  /** `reference` (runtime/reference.ts), `jit` (JS kernels) or `wasm` (WASM SIMD). */
  name: "reference" | "jit" | "wasm";
  /** Builds the pass for a config and its weights. */
  build(config: ModelConfig, weights: Weights, options?: ForwardOptions): ForwardPass;
}

/** Every forward pass gollm has, the reference first. */
export const BACKENDS: readonly ForwardBackend[] = [
  { name: "reference", build: (c, w, o) => createReference(c, requireF32(w, "reference"), o) },
  { name: "jit", build: (c, w, o) => compileModel(c, w, o) },
  { name: "wasm", build: (c, w, o) => compileModel(c, w, { ...o, backend: "wasm" }) },
];

/** The backends that generate code: every one but the reference. */
export const COMPILED_BACKENDS: readonly ForwardBackend[] = BACKENDS.filter((b) =>
  b.name !== "reference"
);

/** One batched forward under test (engine v2): its backend name and how to build it. */
export interface BatchBackend {
  /** `jit` (JS kernels) or `wasm` (WASM SIMD matrix products). */
  name: "jit" | "wasm";
  /** Builds the batched forward for a config, its weights and a layout. */
  build(config: ModelConfig, weights: Weights, layout: BatchLayout): BatchForward;
}

/** Every batched forward gollm has (the reference is single-sequence: the oracle). */
export const BATCH_BACKENDS: readonly BatchBackend[] = [
  { name: "jit", build: (c, w, l) => compileBatch(c, w, l) },
  { name: "wasm", build: (c, w, l) => compileBatch(c, w, { ...l, backend: "wasm" }) },
];

/** A config from a few overrides of a small llama/gpt2 base (dim 48, 2 layers, 4 heads). */
export function cfg(arch: "llama" | "gpt2", over: Record<string, unknown>): ModelConfig {
  const base: Record<string, unknown> = arch === "llama"
    ? {
      arch,
      vocab_size: 97,
      dim: 48,
      n_layers: 2,
      n_heads: 4,
      hidden_dim: 80,
      context_length: 64,
      norm: "rmsnorm",
      norm_eps: 1e-5,
      rope_theta: 10000,
      mlp: "swiglu",
      tie_embeddings: true,
    }
    : {
      arch,
      vocab_size: 97,
      dim: 48,
      n_layers: 2,
      n_heads: 4,
      hidden_dim: 96,
      context_length: 64,
      norm: "layernorm",
      norm_eps: 1e-5,
      mlp: "gelu",
      tie_embeddings: true,
    };
  return parseConfig({ ...base, ...over }, "<forward test>");
}

/**
 * The forward-pass cases, `[name, config]`: 22 shapes over both arches, GQA ratios 1/2/3/4
 * and MQA, odd dims (33, 36, 37, 45), head_dim ≠ dim/n_heads, both RoPE styles, q/k/v bias
 * on/off, tied/untied LM head, vocab 5 (one matvec row block plus one row).
 */
export const FORWARD_CASES: readonly (readonly [string, ModelConfig])[] = [
  ["llama MHA half tied", cfg("llama", { n_kv_heads: 4, rope_style: "half" })],
  [
    "llama GQA2 interleaved untied",
    cfg("llama", { n_kv_heads: 2, rope_style: "interleaved", tie_embeddings: false }),
  ],
  ["llama GQA4 half", cfg("llama", { dim: 64, n_heads: 8, n_kv_heads: 2, rope_style: "half" })],
  [
    "llama GQA4 interleaved bias",
    cfg("llama", {
      dim: 64,
      n_heads: 8,
      n_kv_heads: 2,
      rope_style: "interleaved",
      attn_bias: true,
    }),
  ],
  ["llama MQA half", cfg("llama", { n_kv_heads: 1, rope_style: "half" })],
  [
    "llama MQA interleaved untied",
    cfg("llama", { n_kv_heads: 1, rope_style: "interleaved", tie_embeddings: false }),
  ],
  ["llama dim 36 hidden 44", cfg("llama", { dim: 36, n_heads: 3, n_kv_heads: 1, hidden_dim: 44 })],
  [
    "llama dim 44 head_dim 22",
    cfg("llama", { dim: 44, n_heads: 2, n_kv_heads: 2, hidden_dim: 36, rope_style: "interleaved" }),
  ],
  [
    "llama odd dim 37, head_dim 8",
    cfg("llama", { dim: 37, n_heads: 4, n_kv_heads: 2, head_dim: 8, hidden_dim: 45 }),
  ],
  [
    "llama head_dim 16 ≠ dim/n_heads",
    cfg("llama", { n_heads: 4, n_kv_heads: 2, head_dim: 16, rope_style: "half", attn_bias: true }),
  ],
  [
    "llama head_dim 10 interleaved",
    cfg("llama", { dim: 40, n_heads: 4, n_kv_heads: 4, hidden_dim: 70, rope_style: "interleaved" }),
  ],
  [
    "llama head_dim 6 GQA3 bias untied",
    cfg("llama", {
      dim: 30,
      head_dim: 6,
      n_heads: 6,
      n_kv_heads: 2,
      hidden_dim: 50,
      attn_bias: true,
      tie_embeddings: false,
    }),
  ],
  [
    "llama 3 layers theta 500000",
    cfg("llama", { n_layers: 3, n_kv_heads: 2, rope_theta: 500000, vocab_size: 130 }),
  ],
  [
    "llama vocab 5 dim 12",
    cfg("llama", { vocab_size: 5, dim: 12, n_heads: 2, n_kv_heads: 1, hidden_dim: 7 }),
  ],
  ["gpt2 MHA tied", cfg("gpt2", {})],
  ["gpt2 untied", cfg("gpt2", { tie_embeddings: false })],
  ["gpt2 dim 36 hidden 44", cfg("gpt2", { dim: 36, n_heads: 3, hidden_dim: 44 })],
  ["gpt2 odd dim 45 head_dim 9", cfg("gpt2", { dim: 45, n_heads: 5, hidden_dim: 99 })],
  ["gpt2 GQA2", cfg("gpt2", { n_kv_heads: 2 })],
  [
    "gpt2 MQA head_dim 20",
    cfg("gpt2", { n_heads: 4, n_kv_heads: 1, head_dim: 20, tie_embeddings: false }),
  ],
  [
    "gpt2 GQA4 3 layers",
    cfg("gpt2", { dim: 64, n_heads: 8, n_kv_heads: 2, n_layers: 3, hidden_dim: 100 }),
  ],
  [
    "gpt2 odd dim 33 hidden 47",
    cfg("gpt2", { dim: 33, n_heads: 3, hidden_dim: 47, vocab_size: 61 }),
  ],
];

/**
 * The architectures of issue #10 on the small llama base (dim 48, head_dim 12, context 64),
 * `[name, config]`: each turns on the features of one family, with windows and scalings small
 * enough that the 30-token runs of {@linkcode checkAgainstReference} (KV ring 24) cross them.
 * The reference, the JIT (tests/arch_forward_test.ts) and the WASM backend
 * (tests/wasm_arch_test.ts) run them.
 */
export const ARCH_CASES: readonly (readonly [string, ModelConfig])[] = [
  ["qwen3 qk_norm GQA2", cfg("llama", { n_kv_heads: 2, qk_norm: true, tie_embeddings: false })],
  [
    "gemma2 geglu post_norms softcaps alternating window 5",
    cfg("llama", {
      n_kv_heads: 2,
      mlp: "geglu",
      post_norms: true,
      embed_scale: Math.fround(Math.sqrt(48)),
      query_pre_attn_scalar: 20,
      attn_logit_softcapping: 3,
      final_logit_softcapping: 2.5,
      sliding_window: 5,
      layer_types: ["sliding_attention", "full_attention"],
    }),
  ],
  [
    "gemma3 qk_norm local rope linear x4 window 6",
    cfg("llama", {
      n_layers: 3,
      n_kv_heads: 1,
      mlp: "geglu",
      post_norms: true,
      qk_norm: true,
      embed_scale: Math.fround(Math.sqrt(48)),
      rope_theta: 1e6,
      rope_scaling: "linear",
      rope_scaling_factor: 4,
      rope_local_base_freq: 10000,
      sliding_window: 6,
      layer_types: ["sliding_attention", "sliding_attention", "full_attention"],
    }),
  ],
  [
    "phi3 partial rotary 6 of 12, window 7",
    cfg("llama", { n_kv_heads: 4, rope_dimension_count: 6, sliding_window: 7 }),
  ],
  [
    "partial rotary 8 of 12 interleaved",
    cfg("llama", { n_kv_heads: 2, rope_dimension_count: 8, rope_style: "interleaved" }),
  ],
  [
    "llama3 rope scaling x8 original 16",
    cfg("llama", {
      n_kv_heads: 2,
      rope_theta: 500000,
      rope_scaling: "llama3",
      rope_scaling_factor: 8,
      rope_original_context_length: 16,
    }),
  ],
  [
    "yarn x4 original 16 interleaved",
    cfg("llama", {
      rope_style: "interleaved",
      rope_scaling: "yarn",
      rope_scaling_factor: 4,
      rope_original_context_length: 16,
    }),
  ],
  [
    "rope_freq_factors (GGUF rope_freqs)",
    cfg("llama", { n_kv_heads: 2, rope_freq_factors: [1, 1, 1.5, 3, 8, 8] }),
  ],
  [
    "longrope original 16, partial rotary 8 of 12",
    cfg("llama", {
      n_kv_heads: 2,
      rope_dimension_count: 8,
      rope_scaling: "longrope",
      rope_original_context_length: 16, // kvCapacity 24 of the checks: the long factors
      rope_long_factors: [1, 2.5, 6, 20],
      rope_short_factors: [1.1, 1.3, 2, 3],
    }),
  ],
  [
    "qwen2 sliding layers from 1, bias",
    cfg("llama", {
      n_layers: 3,
      attn_bias: true,
      sliding_window: 4,
      layer_types: ["full_attention", "sliding_attention", "sliding_attention"],
    }),
  ],
];

/**
 * The config of the case named `name` in {@linkcode ARCH_CASES}.
 *
 * @param name Case name, e.g. `"qwen3 qk_norm GQA2"`.
 * @returns Its config.
 * @throws {Error} for an unknown name.
 */
export function archCase(name: string): ModelConfig {
  const c = ARCH_CASES.find(([n]) => n === name);
  if (!c) throw new Error(`no arch case named '${name}'`);
  return c[1];
}

/**
 * The cases every batched-forward check runs on (tests/batch_checks.ts; the 8-prompt batch
 * runs on all of {@linkcode FORWARD_CASES}): both archs, MHA, GQA 2/3/4, MQA, odd dims,
 * head_dim ≠ dim / n_heads, q/k/v bias, both RoPE pairings.
 */
export const BATCH_CASES: readonly string[] = [
  "llama GQA2 interleaved untied",
  "llama MQA half",
  "llama odd dim 37, head_dim 8",
  "llama head_dim 6 GQA3 bias untied",
  "gpt2 MHA tied",
  "gpt2 odd dim 45 head_dim 9",
  "gpt2 MQA head_dim 20",
  "gpt2 GQA4 3 layers",
];

/**
 * The config of the case named `name` in {@linkcode FORWARD_CASES}.
 *
 * @param name Case name, e.g. `"llama MQA half"`.
 * @returns Its config.
 * @throws {Error} for an unknown name.
 */
export function forwardCase(name: string): ModelConfig {
  const c = FORWARD_CASES.find(([n]) => n === name);
  if (!c) throw new Error(`no forward case named '${name}'`);
  return c[1];
}

/** Deterministic token ids in `[0, vocab)` (xorshift32). */
export function tokens(n: number, vocab: number, seed: number): number[] {
  let s = seed * 2654435761 >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % vocab;
  });
}

/**
 * Checks a compiled forward pass against createReference() on random weights, both with a
 * KV ring of 24 slots: forwardAll over 13 tokens (prefill chunks 5 + 5 + 3 when `build`
 * uses prefillChunk 5), then single-token decode past the ring capacity (sliding window),
 * then a restart at position 0 through forward() (prefill + decode).
 *
 * @param c The config.
 * @param build Compiles the pass under test from the same weights (kvCapacity 24).
 * @param decodeEvery Compare every n-th decode step (1 = all), plus the last one.
 */
export function checkAgainstReference(
  c: ModelConfig,
  build: (w: Weights) => ForwardPass,
  decodeEvery = 1,
): void {
  const w = randomWeights(c, 11);
  const ref = createReference(c, w, { kvCapacity: 24 });
  const pass = build(w);
  const toks = tokens(30, c.vocab_size, 3);
  assertClose(
    pass.forwardAll(toks.slice(0, 13), 0),
    ref.forwardAll(toks.slice(0, 13), 0),
    TOL,
    "forwardAll",
  );
  for (let p = 13; p < 30; p++) {
    const r = ref.forward([toks[p]], p);
    const j = pass.forward([toks[p]], p);
    if ((p - 13) % decodeEvery === 0 || p === 29) assertClose(j, r, TOL, `decode at position ${p}`);
  }
  assertClose(
    pass.forward(toks.slice(5, 14), 0),
    ref.forward(toks.slice(5, 14), 0),
    TOL,
    "restart",
  );
}
