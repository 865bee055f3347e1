/**
 * The architectures of issue #10 (tests/forward_cases.ts `ARCH_CASES`: Qwen3's QK-norm,
 * Gemma 2/3's GeGLU, sandwich norms, embedding scale, soft-capping, alternating windows and
 * local RoPE, Phi-3's partial rotary, RoPE scaling, Qwen2's sliding layers) through the JIT
 * against the reference: one sequence (prefill chunks, decode past the KV ring, restart) and
 * batched steps over the paged KV cache (8 prompts in one batch; rings and windows through
 * shuffled blocks). Negative controls: the JIT built with each feature turned off fails the
 * same check. The WASM backend on the same cases is tests/wasm_arch_test.ts.
 *
 * The parity with Hugging Face transformers of each family is formats/hf_test.ts.
 */
import assert from "node:assert/strict";
import { type ModelConfig, parseConfig } from "../core/config.ts";
import type { BatchLayout } from "../core/forward.ts";
import { expectedShapes, type Weights } from "../core/weights.ts";
import { compileBatch, compileModel } from "../codegen/compile.ts";
import { checkBatchedPrompts, checkPagedWindow } from "./batch_checks.ts";
import { ARCH_CASES, archCase, checkAgainstReference } from "./forward_cases.ts";

const OPTIONS = { kvCapacity: 24, prefillChunk: 5 };

for (const [name, c] of ARCH_CASES) {
  Deno.test(`compileModel() jit matches createReference() on ${name}`, () => {
    checkAgainstReference(c, (w) => compileModel(c, w, OPTIONS), 2);
  });
}

/** Each case with the feature it exists for turned off (the negative controls). */
const WITHOUT: Record<string, Record<string, unknown>> = {
  "qwen3 qk_norm GQA2": { qk_norm: false },
  "gemma2 geglu post_norms softcaps alternating window 5": { attn_logit_softcapping: null },
  "gemma3 qk_norm local rope linear x4 window 6": { rope_local_base_freq: null },
  "phi3 partial rotary 6 of 12, window 7": { rope_dimension_count: 12 },
  "partial rotary 8 of 12 interleaved": { rope_dimension_count: 12 },
  "llama3 rope scaling x8 original 16": {
    rope_scaling: "none",
    rope_scaling_factor: 1,
    rope_original_context_length: null,
  },
  "yarn x4 original 16 interleaved": {
    rope_scaling: "linear",
    rope_original_context_length: null,
    rope_attn_factor: 1,
  },
  "rope_freq_factors (GGUF rope_freqs)": { rope_freq_factors: null },
  "longrope original 16, partial rotary 8 of 12": { rope_long_factors: [1.1, 1.3, 2, 3] },
  "qwen2 sliding layers from 1, bias": { layer_types: null },
};

/** The weights of `w` that `c` has (a feature turned off may drop tensors: q_norm, ...). */
function keep(c: ModelConfig, w: Weights): Weights {
  const want = expectedShapes(c);
  return new Map([...w].filter(([n]) => want.has(n)));
}

for (const [name, c] of ARCH_CASES) {
  Deno.test(`compileModel() jit without the feature fails the check on ${name} (negative control)`, () => {
    const off = parseConfig({ ...c, ...WITHOUT[name] }, "<without>");
    assert.throws(
      () => checkAgainstReference(c, (w) => compileModel(off, keep(off, w), OPTIONS), 1),
      /max \|diff\|/,
    );
  });
}

for (
  const name of [
    "gemma2 geglu post_norms softcaps alternating window 5",
    "gemma3 qk_norm local rope linear x4 window 6",
    "phi3 partial rotary 6 of 12, window 7",
    "qwen2 sliding layers from 1, bias",
  ]
) {
  const c = archCase(name);
  const build = (w: Weights, l: BatchLayout) => compileBatch(c, w, l);
  Deno.test(`compileBatch() jit: 8 prompts in one batch equal the reference on ${name}`, () => {
    checkBatchedPrompts(c, build);
  });
  Deno.test(`compileBatch() jit: rings, sequence and layer windows through shuffled blocks on ${name}`, () => {
    checkPagedWindow(c, build);
  });
}
