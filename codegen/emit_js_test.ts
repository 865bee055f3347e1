/**
 * The JS emitter (codegen/emit_js.ts): the module it writes for a config.
 */
import assert from "node:assert/strict";
import { randomWeights } from "../core/weights.ts";
import { compileModel, stripTypes } from "./compile.ts";
import { emitKernels } from "./emit_js.ts";
import { cfg } from "../tests/forward_cases.ts";

Deno.test("emitKernels() writes literal shapes, one function per layer, and is what compileModel() runs", () => {
  const c = cfg("llama", { n_layers: 3, n_kv_heads: 2, tie_embeddings: false });
  const src = emitKernels(c, { kvCapacity: 32, prefillChunk: 8 });
  for (let l = 0; l < 3; l++) {
    assert.match(src, new RegExp(`function layer${l}_attn\\(pos: number\\)`));
    assert.match(src, new RegExp(`function layer${l}_ffn\\(pos: number\\)`));
    assert.match(src, new RegExp(`function prefill_layer${l}_attn\\(pos: number, n: number\\)`));
  }
  assert.match(src, /function lm_head\(pos: number\)/);
  assert.match(src, /function matvec_97x48\(/); // untied LM head (vocab 97, dim 48)
  assert.match(src, /function matmul_80x48\(/); // w1/w3 in prefill
  assert.match(src, /attention_4x2x12_w32/);
  const m = compileModel(c, randomWeights(c, 2), { kvCapacity: 32, prefillChunk: 8 });
  assert.equal(m.source, src);
  // The stripped source is plain JS.
  assert.doesNotThrow(() => new Function("memory", "W", stripTypes(src)));
});
