/**
 * The whole-step WASM emitter (codegen/emit_wasm.ts): the module's shape (a function per
 * layer and op, barriers, the step entry), its listing (the issue #10 ops named with their
 * constants), and its refusals (an op without a renderer, a weight type without kernels).
 * The backend's logits against the reference are in compile_test.ts,
 * tests/wasm_backend_test.ts and tests/wasm_arch_test.ts.
 */
import assert from "node:assert/strict";
import { parseConfigYaml } from "../core/config.ts";
import { resolveBatchLayout } from "../core/forward.ts";
import { randomWeights } from "../core/weights.ts";
import { compileModel } from "./compile.ts";
import {
  emitWasmListing,
  emitWasmStep,
  layoutWasm,
  WASM_OPS,
  WasmUnsupportedError,
} from "./emit_wasm.ts";
import { OPS } from "./emit_js.ts";
import { planArena, planBatch } from "./plan.ts";
import { ARCH_CASES, archCase, FORWARD_CASES, forwardCase } from "../tests/forward_cases.ts";

const llama = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");

Deno.test("emitWasmStep() validates for every forward case, decode and prefill graphs", () => {
  for (const [name, c] of FORWARD_CASES) {
    const m = emitWasmStep(planArena(c, { kvCapacity: 16, prefillChunk: 4 }), { threads: 3 });
    assert.ok(WebAssembly.validate(m.bytes), name);
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(m.bytes)).map((e) => e.name);
    assert.ok(exports.includes("step"), name);
    for (let l = 0; l < c.n_layers; l++) {
      assert.ok(m.functions.includes(`layer${l}_attn`), `${name}: layer${l}_attn`);
      assert.ok(m.functions.includes(`prefill_layer${l}_ffn`), `${name}: prefill_layer${l}_ffn`);
    }
  }
});

Deno.test("emitWasmStep() has a WASM renderer for every op of the JS table", () => {
  assert.deepEqual(Object.keys(WASM_OPS).sort(), Object.keys(OPS).sort());
});

Deno.test("emitWasmStep() refuses an op without a renderer, naming it", () => {
  const plan = planBatch(llama, resolveBatchLayout({ numBlocks: 4 }));
  const node = plan.decode.nodes.find((n) => n.op === "gelu" || n.op === "swiglu")!;
  (node as { op: string }).op = "moe_router"; // an op of a graph no renderer knows
  assert.throws(
    () => emitWasmStep(plan),
    (e) =>
      e instanceof WasmUnsupportedError &&
      e.message === "op moe_router is not supported by the wasm backend",
  );
});

Deno.test("layoutWasm() refuses a weight type without kernels, naming the tensor and type", () => {
  const plan = planBatch(llama, resolveBatchLayout({ numBlocks: 4 }));
  assert.throws(
    () => layoutWasm(plan, new Map([["layers.1.ffn.w2.weight", "IQ2_XS"]]), 1),
    /tensor 'layers.1.ffn.w2.weight' has type IQ2_XS, which the wasm backend has no kernels/,
  );
  // A block type needs whole blocks per row: dim 48 is not a multiple of 256.
  assert.throws(
    () => layoutWasm(plan, new Map([["layers.0.attn.wq.weight", "Q4_K"]]), 1),
    /row length 48 is not a multiple of the block size 256/,
  );
});

Deno.test("layoutWasm() keeps matrices in their type, vectors F32, scratch per thread", () => {
  const c = forwardCase("llama GQA4 half"); // dim 64, hidden 80
  const plan = planBatch(c, resolveBatchLayout({ numBlocks: 4 }));
  const types = new Map([["layers.0.ffn.w1.weight", "Q8_0"], ["layers.0.ffn_norm.weight", "F16"]]);
  const l = layoutWasm(plan, types, 3);
  const w1 = l.weights.get("layers.0.ffn.w1.weight")!;
  assert.equal(w1.type, "Q8_0");
  assert.equal(w1.bytes, 80 * (64 / 32) * 34); // (hidden, dim) in blocks of 32: 34 bytes each
  assert.equal(l.weights.get("layers.0.ffn_norm.weight")!.type, "F32");
  assert.equal(l.weightsOffset, l.scratch + 3 * l.scratchStride);
  for (const w of l.weights.values()) assert.equal(w.offset % 64, 0, w.name);
});

Deno.test("emitWasmListing() names every function after its layer and op, offsets visible", () => {
  const c = forwardCase("llama GQA4 half");
  const text = emitWasmListing(c, { kvCapacity: 16, prefillChunk: 4 });
  assert.ok(text.includes("(func $layer1_attn (param $tid i32)"));
  assert.ok(text.includes("(func $prefill_lm_head"));
  assert.ok(text.includes("call $attention_8x2x8_b16"));
  assert.ok(text.includes("call $matvec_f32_64x64"));
  assert.match(text, /;; l0\.q \(4, 64\) = l0\.attn_in \(4, 64\) · layers\.0\.attn\.wq\.weightᵀ/);
  assert.match(text, /;; barrier: wait for every thread's writes before this node/);
  assert.match(text, /;; weight layers\.1\.ffn\.w2\.weight F32 \(64, 80\) at \d+/);
  // The compiled model runs exactly this module.
  const m = compileModel(c, randomWeights(c, 1), {
    kvCapacity: 16,
    prefillChunk: 4,
    backend: "wasm",
  });
  assert.equal(m.source, m.wasm!.listing);
  assert.ok(m.source.includes("(func $prefill_layer1_ffn"));
});

Deno.test("emitWasmStep() puts a barrier only where a node reads or overwrites an earlier write", () => {
  const plan = planArena(llama, { kvCapacity: 16 });
  const text = emitWasmStep(plan, { threads: 2 }).listing;
  const fn = text.slice(text.indexOf("(func $layer0_attn"), text.indexOf("(func $layer0_ffn"));
  // q, k and v read the same normed input: one barrier before q, none between them.
  const between = fn.slice(fn.indexOf(";; l0.q "), fn.indexOf(";; l0.v "));
  assert.equal(between.match(/call \$barrier/g)?.length ?? 0, 0);
  // attention reads the pools kv_store wrote: a barrier right before it.
  const beforeAttention = fn.slice(fn.indexOf(";; l0.k[t]"), fn.indexOf(";; attn_out"));
  assert.equal(beforeAttention.match(/call \$barrier/g)?.length, 1);
  // The quantised rows of attn_in are made once for q, k and v (Q8_0 weights).
  const q8 = new Map(
    ["wq", "wk", "wv"].map((w) => [`layers.0.attn.${w}.weight`, "Q8_0"] as [string, string]),
  );
  const c64 = forwardCase("llama GQA4 half"); // dim 64: whole blocks of 32
  const t2 = emitWasmStep(planArena(c64, { kvCapacity: 16 }), { types: q8 }).listing;
  const f0 = t2.slice(t2.indexOf("(func $layer0_attn"), t2.indexOf("(func $layer0_ffn"));
  assert.equal(f0.match(/call \$quantize_q8_0_64/g)?.length, 1);
  // Each product twice: all rows on one thread, chunks from its row counter on more.
  assert.equal(f0.match(/call \$matvec_q8_0_/g)?.length, 6);
  assert.equal(f0.match(/i32\.atomic\.rmw\.add/g)?.length, 4); // q, k, v and the output
  // A prefill graph of several rows also has the split: each thread its share
  // of the rows into thread 0's scratch, then a barrier (tests/wasm_backend_test.ts runs it).
  const t16 = emitWasmStep(planArena(c64, { kvCapacity: 32, prefillChunk: 16 }), { types: q8 })
    .listing;
  const p0 = t16.slice(
    t16.indexOf("(func $prefill_layer0_attn"),
    t16.indexOf("(func $prefill_layer0_ffn"),
  );
  assert.equal(p0.match(/call \$quantize_q8_0_64/g)?.length, 2);
  assert.match(p0, /rows >= \d+ on several threads: each quantises its share/);
});

Deno.test("emitWasmStep() validates for every issue #10 case; the listing names each new op's kernel", () => {
  const options = { kvCapacity: 24, prefillChunk: 5 };
  for (const [name, c] of ARCH_CASES) {
    assert.ok(
      WebAssembly.validate(emitWasmStep(planArena(c, options), { threads: 2 }).bytes),
      name,
    );
  }
  const calls = (name: string) => emitWasmListing(archCase(name), options);
  const gemma2 = calls("gemma2 geglu post_norms softcaps alternating window 5");
  for (
    const k of [
      "call $geglu_f32", // GeGLU
      "call $softcap_cap2p5_f32", // final soft-cap 2.5
      "call $attention_4x2x12_b16_w5_s0p22360679774997896_cap3", // window 5, 20^-0.5, cap 3
      "call $embed_rows_f32_48_x6p928203105926514", // × sqrt(48) as f32
    ]
  ) assert.ok(gemma2.includes(k), k);
  const qwen3 = calls("qwen3 qk_norm GQA2");
  assert.match(qwen3, /segments: n rows × 4 heads of 12/); // QK-norm over q's heads
  assert.ok(calls("phi3 partial rotary 6 of 12, window 7").includes("call $rope_half_4x4x12_r6"));
  assert.ok(calls("yarn x4 original 16 interleaved").includes("call $rope_cos_sin_6_m1p1386"));
});
