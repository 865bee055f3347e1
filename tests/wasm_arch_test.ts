/**
 * The architectures of issue #10 through the WASM backend (codegen/emit_wasm.ts and the
 * renderers of codegen/wasm/renderers.ts: GeGLU, soft-capping, QK-norm over heads, partial
 * rotary, YaRN's cos/sin factor, attention scale, embedding scale, Gemma 3's local RoPE table):
 *
 * - every case of tests/forward_cases.ts `ARCH_CASES` equals the reference
 *   (runtime/reference.ts) within DESIGN.md's F32 tolerance {@linkcode TOL}, one sequence
 *   (prefill chunks, decode past the KV ring, restart) and batched over the paged cache;
 * - the transformers fixtures of tests/fixtures/hf (python/hf_fixtures.py) through
 *   `loadModel(..., { backend: "wasm" })` give transformers' logits within {@linkcode TOL}
 *   and its greedy ids, from the HF directory and from the GGUF converted the llama.cpp way
 *   (read straight into WASM memory); `auto` picks wasm for them;
 * - quantised GGUFs of the new architectures (`quantizeModel` to Q8_0 and Q4_K_M) run with
 *   their weights as stored, close to the reference on the same file's dequantised weights;
 * - 1 and 2 threads give identical logits;
 * - negative controls: the same module built from a graph with one attribute of a new op
 *   dropped (the soft-caps, the QK-norm, the GeGLU, the partial rotary, YaRN's factor, the
 *   embedding or attention scale) fails the comparison.
 *
 * Tolerance of the block types: {@linkcode BLOCK_TOL} on random weights, and per file on the
 * fixtures ({@linkcode QUANT}) — the integer kernels multiply by activations rounded per block
 * to int8 (q8_0 / q8_K, as llama.cpp's `ggml_vec_dot_*_q8_*`), as tests/wasm_backend_test.ts
 * and tests/wasm_models_test.ts measure.
 */
import assert from "node:assert/strict";
import { compilePlan } from "../codegen/compile.ts";
import type { GraphNode } from "../codegen/graph.ts";
import { type Plan, planArena } from "../codegen/plan.ts";
import type { ModelConfig } from "../core/config.ts";
import type { BatchLayout } from "../core/forward.ts";
import { singleSequence } from "../core/single_sequence.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { dequantizeWeights } from "../formats/quant/tensor.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { compileBatch, compileModel } from "../codegen/compile.ts";
import { createModel, loadModel } from "../runtime/model.ts";
import { createReference } from "../runtime/reference.ts";
import { loadGgufIntoWasm } from "../runtime/wasm_load.ts";
import { assertClose } from "./assert_close.ts";
import { checkBatchedPrompts, checkPagedWindow } from "./batch_checks.ts";
import { ARCH_CASES, archCase, cfg, checkAgainstReference, TOL } from "./forward_cases.ts";
import { argmax } from "./greedy_decode.ts";
import { checkTransformers, expected, HF_FIXTURES as FIX } from "./hf_expected.ts";
import { logitsOf, logitsOnThreads, store } from "./wasm_weights.ts";

const OPTIONS = { kvCapacity: 24, prefillChunk: 5 };
/**
 * Block-type tolerance on random weights (absolute, logits of max |logit| ≈ 2.2), as
 * tests/wasm_backend_test.ts: measured 0.023-0.042 here; dropping the attention soft-cap moves
 * the Q4_K logits by 0.13.
 */
const BLOCK_TOL = 0.06;

// ------------------------------------------------------------ every ARCH case, F32

for (const [name, c] of ARCH_CASES) {
  Deno.test(`compileModel() wasm matches createReference() on ${name}`, () => {
    checkAgainstReference(c, (w) => compileModel(c, w, { ...OPTIONS, backend: "wasm" }), 1);
  });
}

for (
  const name of [
    "qwen3 qk_norm GQA2",
    "gemma2 geglu post_norms softcaps alternating window 5",
    "gemma3 qk_norm local rope linear x4 window 6",
    "phi3 partial rotary 6 of 12, window 7",
  ]
) {
  const c = archCase(name);
  const build = (w: Weights, l: BatchLayout) => compileBatch(c, w, { ...l, backend: "wasm" });
  Deno.test(`compileBatch() wasm: 8 prompts in one batch equal the reference on ${name}`, () => {
    checkBatchedPrompts(c, build);
  });
  Deno.test(`compileBatch() wasm: rings and layer windows through shuffled blocks on ${name}`, () => {
    checkPagedWindow(c, build);
  });
}

// ------------------------------------------------------------ negative controls

/**
 * A single-sequence wasm forward of `c` whose graphs (decode and prefill) were edited by
 * `edit` before the module was emitted: what a renderer that ignored an attribute computes.
 */
function editedWasm(
  c: ModelConfig,
  w: Weights,
  edit: (nodes: GraphNode[]) => GraphNode[],
  options = OPTIONS,
) {
  const plan: Plan = planArena(c, options);
  for (const g of [plan.decode, plan.prefill]) {
    g.nodes = edit(g.nodes.map((n) => ({ ...n, attrs: { ...n.attrs } }) as GraphNode));
  }
  return singleSequence(compilePlan(c, w, plan, "wasm"), plan.kvCapacity);
}

/** Drops attribute `key` of every `op` node. */
const dropAttr = (op: string, key: string) => (nodes: GraphNode[]) => {
  for (const n of nodes) if (n.op === op) delete (n.attrs as Record<string, unknown>)[key];
  return nodes;
};

/** Each case, and what the renderer would get wrong: a graph edit. */
const CONTROLS: [string, string, (nodes: GraphNode[]) => GraphNode[]][] = [
  [
    "gemma2 geglu post_norms softcaps alternating window 5",
    "the attention soft-cap",
    dropAttr("attention", "softcap"),
  ],
  [
    "gemma2 geglu post_norms softcaps alternating window 5",
    "the final soft-cap",
    (nodes) => nodes.filter((n) => n.op !== "softcap"),
  ],
  [
    "gemma2 geglu post_norms softcaps alternating window 5",
    "the GeGLU (SwiGLU instead)",
    (nodes) => nodes.map((n) => (n.op === "geglu" ? { ...n, op: "swiglu" } as GraphNode : n)),
  ],
  [
    "gemma2 geglu post_norms softcaps alternating window 5",
    "query_pre_attn_scalar (1 / sqrt(head_dim) instead)",
    (nodes) => {
      for (const n of nodes) if (n.op === "attention") n.attrs.scale = 1 / Math.sqrt(12);
      return nodes;
    },
  ],
  [
    "gemma2 geglu post_norms softcaps alternating window 5",
    "the embedding scale",
    dropAttr("embed", "scale"),
  ],
  [
    "qwen3 qk_norm GQA2",
    "the QK-norm",
    (nodes) => nodes.filter((n) => !(n.op === "norm" && (n.attrs.heads ?? 1) > 1)),
  ],
  [
    "gemma3 qk_norm local rope linear x4 window 6",
    "the QK-norm's heads (the first head only)",
    dropAttr("norm", "heads"),
  ],
  [
    "phi3 partial rotary 6 of 12, window 7",
    "the partial rotary (4 of 12 dims)",
    (nodes) => {
      for (const n of nodes) if (n.op === "rope") n.attrs.rot_dim = 4;
      return nodes;
    },
  ],
  [
    "yarn x4 original 16 interleaved",
    "YaRN's attention factor",
    dropAttr("rope_cos_sin", "mscale"),
  ],
];

for (const [name, what, edit] of CONTROLS) {
  Deno.test(`wasm without ${what} fails the check on ${name} (negative control)`, () => {
    const c = archCase(name);
    assert.throws(
      () => checkAgainstReference(c, (w) => editedWasm(c, w, edit), 1),
      /max \|diff\|/,
    );
  });
}

Deno.test("wasm from an unedited plan (the controls' harness) passes the check", () => {
  for (const [name] of CONTROLS.slice(0, 1)) {
    const c = archCase(name);
    checkAgainstReference(c, (w) => editedWasm(c, w, (nodes) => nodes), 1);
  }
});

// ------------------------------------------------------------ transformers' fixtures

const HF = [
  "qwen3",
  "gemma2",
  "gemma3",
  "phi3",
  "phi3_longrope",
  "llama31",
  "llama_yarn",
  "llama_linear",
  "qwen2_swa",
  "mistral",
];
const GGUF = [
  "qwen3",
  "gemma2",
  "gemma3",
  "phi3",
  "phi3_longrope",
  "llama31",
  "llama_yarn",
  "llama_linear",
];

for (const name of HF) {
  Deno.test(`loadModel() wasm and auto on the ${name} fixture give transformers' logits`, async () => {
    const exp = await expected(name);
    for (const backend of ["wasm", "auto"] as const) {
      using m = await loadModel(`${FIX}/${name}`, { backend, threads: 1 });
      assert.equal(m.backend, "wasm", `${name} ${backend}`);
      checkTransformers(m, exp, `${name} ${backend}`);
    }
  });
}

for (const name of GGUF) {
  Deno.test(`loadModel() wasm on the llama.cpp-converted ${name}.gguf gives transformers' logits`, async () => {
    using m = await loadModel(`${FIX}/${name}.gguf`, { threads: 1 });
    assert.equal(m.backend, "wasm");
    checkTransformers(m, await expected(name), `${name}.gguf`);
  });
}

// ------------------------------------------------------------ weights as stored

/**
 * quantizeModel's file types per fixture (Q8_0 needs rows of 32: gemma's rows of 48 take
 * Q4_K_M's fallbacks), the stored types the module must hold, and the tolerance relative to
 * the position's largest |logit|. The fixtures' attention is sharpened (python/hf_fixtures.py:
 * q/k weights scaled so that position errors show), which amplifies the int8 rounding of the
 * activations: measured 0.04 (qwen3), 0.05 (gemma3), 0.13 (phi3, gemma2), and 0.06 for
 * llama31, whose ops are all original; F16 files (f32 activations) measured below 3e-6.
 */
const QUANT: [string, string, string[], number][] = [
  ["qwen3", "q8_0", ["Q8_0"], 0.15],
  ["phi3", "q8_0", ["Q8_0"], 0.15],
  ["gemma2", "q4_k_m", ["Q5_0", "Q8_0", "F16"], 0.15],
  ["gemma3", "q4_k_m", ["Q5_0", "Q8_0", "F16"], 0.15],
  ["gemma2", "f16", ["F16"], 1e-5],
  ["phi3", "f16", ["F16"], 1e-5],
];

for (const [name, type, stored, rel] of QUANT) {
  Deno.test(`quantizeModel() ${type} of ${name} runs as stored through wasm, close to its dequantised weights`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "gollm_wasm_arch_" });
    try {
      const file = `${dir}/${name}.${type}.gguf`;
      await quantizeModel(`${FIX}/${name}`, file, type, { threads: 1 });
      const { pass } = await loadGgufIntoWasm(file, {
        kvCapacity: (c) => c.context_length,
        threads: 2,
      });
      assert.ok(pass, `${name} ${type}: the wasm backend refused it`);
      try {
        const types = new Set([...pass.wasm!.layout.weights.values()].map((w) => w.type));
        for (const t of stored) assert.ok(types.has(t as never), `${t} not in ${[...types]}`);
        const ck = await loadGguf(file); // the same file, dequantised to F32
        const ref = createReference(ck.config, ck.weights);
        const exp = await expected(name);
        const V = ck.config.vocab_size;
        const want = ref.forwardAll(exp.tokens, 0), got = pass.forwardAll(exp.tokens, 0);
        let agree = 0;
        for (let t = 0; t < exp.tokens.length; t++) {
          const w = want.subarray(t * V, (t + 1) * V), g = got.subarray(t * V, (t + 1) * V);
          const scale = w.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
          assertClose(g, w, rel * scale, `${name} ${type} position ${t}`);
          if (argmax(g) === argmax(w)) agree++;
        }
        assert.ok(agree >= exp.tokens.length - 1, `argmax agrees at ${agree} positions`);
      } finally {
        pass.close();
      }
      using auto = await loadModel(file, { threads: 1 });
      assert.equal(auto.backend, "wasm");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

/** Gemma 2 and Qwen3 with whole K-quant blocks (dims multiples of 256). */
const WIDE: [string, ModelConfig][] = [
  [
    "gemma2",
    cfg("llama", {
      dim: 256,
      hidden_dim: 512,
      n_kv_heads: 2,
      mlp: "geglu",
      post_norms: true,
      embed_scale: Math.fround(16),
      query_pre_attn_scalar: 32,
      attn_logit_softcapping: 1,
      final_logit_softcapping: 3,
      sliding_window: 6,
      layer_types: ["sliding_attention", "full_attention"],
    }),
  ],
  [
    "qwen3 yarn partial",
    cfg("llama", {
      dim: 256,
      hidden_dim: 512,
      n_kv_heads: 2,
      qk_norm: true,
      rope_scaling: "yarn",
      rope_scaling_factor: 4,
      rope_original_context_length: 16,
      tie_embeddings: false,
    }),
  ],
];

for (const type of ["Q8_0", "Q4_K", "Q6_K", "F16"]) {
  Deno.test(`wasm on ${type} weights of the new architectures equals the reference on them dequantised`, () => {
    for (const [name, c] of WIDE) {
      const w = store(type)(randomWeights(c, 5));
      const ref = createReference(c, dequantizeWeights(w), { kvCapacity: 40 });
      const m = compileModel(c, w, { backend: "wasm", kvCapacity: 40, prefillChunk: 8 });
      const want = logitsOf(ref, c), got = logitsOf(m, c);
      const tol = type === "F16" ? TOL : BLOCK_TOL;
      got.forEach((g, i) => assertClose(g, want[i], tol, `${name} ${type} call ${i}`));
    }
  });
}

Deno.test("wasm on Q4_K weights without the attention soft-cap fails the check on gemma2 (negative control)", () => {
  const [, c] = WIDE[0];
  const w = store("Q4_K")(randomWeights(c, 5));
  const want = logitsOf(createReference(c, dequantizeWeights(w), { kvCapacity: 40 }), c);
  const options = { kvCapacity: 40, prefillChunk: 8 };
  const got = logitsOf(editedWasm(c, w, dropAttr("attention", "softcap"), options), c);
  assert.throws(
    () => got.forEach((g, i) => assertClose(g, want[i], BLOCK_TOL, `call ${i}`)),
    /max \|diff\|/,
  );
});

// ------------------------------------------------------------ threads

Deno.test("wasm: 1 and 2 threads give identical logits on every ARCH case (F32) and Q8_0/Q4_K", () => {
  const runs: [string, ModelConfig, Weights][] = ARCH_CASES.map((
    [n, c],
  ) => [n, c, randomWeights(c, 9)]);
  for (const [n, c] of WIDE) {
    for (const type of ["Q8_0", "Q4_K"]) {
      runs.push([`${n} ${type}`, c, store(type)(randomWeights(c, 9))]);
    }
  }
  for (const [name, c, w] of runs) {
    const [one, two] = [1, 2].map((threads) => logitsOnThreads(c, w, threads));
    two.forEach((g, i) => assertClose(g, one[i], 0, `${name} call ${i}`));
  }
});

Deno.test("createModel() auto picks wasm for Gemma 2 with Q4_K weights, stored", () => {
  const [, c] = WIDE[0];
  using m = createModel(c, store("Q4_K")(randomWeights(c, 3)), null, { threads: 1 });
  assert.equal(m.backend, "wasm");
});
