/**
 * Half-precision Hugging Face checkpoints, as most are published: the bf16 and f16 copies of
 * the fixtures (python/hf_half_fixtures.py; transformers' `save_pretrained` in that dtype,
 * its float32 logits on the rounded weights) through `loadModel`:
 *
 * - on wasm (and `auto`) the matrices stay in their stored type (no F32 copy) and the logits
 *   are transformers' within docs/DESIGN.md's F32 tolerance, with its greedy ids; the sources
 *   cover every reshaping an HF loader does (GPT-2's transposed Conv1D and fused c_attn,
 *   Phi-3's fused qkv_proj and gate_up_proj, Gemma 2's `1 + w` norms);
 * - on jit (converted to F32 at load) the same;
 * - negative control: the F32 fixture's logits are further than the tolerance from them, so the
 *   check sees the rounding of the weights.
 */
import assert from "node:assert/strict";
import { loadCheckpoint } from "../formats/load.ts";
import { loadModel } from "../runtime/model.ts";
import { checkTransformers, expected, HF_FIXTURES as FIX } from "./hf_expected.ts";

/** (fixture, its source fixture, the stored type of its matrices). */
const HALF: [string, string, string][] = [
  ["gpt2_bf16", "gpt2", "BF16"],
  ["phi3_bf16", "phi3", "BF16"],
  ["gemma2_bf16", "gemma2", "BF16"],
  ["llama_untied_f16", "llama_untied", "F16"],
];

for (const [name, source, type] of HALF) {
  Deno.test(`loadModel() wasm runs ${name}'s matrices as stored (${type}) and gives transformers' logits`, async () => {
    const ck = await loadCheckpoint(`${FIX}/${name}`, { stored: true });
    for (const [n, t] of ck.weights) {
      // Matrices as stored; vectors (norms, biases) as F32, as in a GGUF.
      assert.equal(t.type?.name, t.shape.length === 2 ? type : undefined, n);
    }
    const exp = await expected(name);
    for (const backend of ["wasm", "auto", "jit"] as const) {
      using m = await loadModel(`${FIX}/${name}`, { backend, threads: 1 });
      assert.equal(m.backend, backend === "auto" ? "wasm" : backend, `${name} ${backend}`);
      checkTransformers(m, exp, `${name} ${backend}`);
    }
    // Negative control: the check tells these weights from the F32 ones they were rounded from.
    using m = await loadModel(`${FIX}/${name}`, { backend: "wasm", threads: 1 });
    const f32 = await expected(source);
    assert.throws(() => checkTransformers(m, f32, `${name} against ${source}`), /max \|diff\|/);
  });
}
