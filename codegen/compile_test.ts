/**
 * Ring 1 of docs/DESIGN.md "Tests": compileModel() with each generated backend (`jit`: JS
 * kernels, `wasm`: WASM SIMD matrix products) against the reference forward
 * (runtime/reference.ts) on random weights over the shared case table
 * (tests/forward_cases.ts); prefill vs decode; the sliding window past kvCapacity; RoPE
 * past context_length; negative controls; and the compiled model's own contract (typed
 * resource errors, the logits view, argument checks).
 */
import assert from "node:assert/strict";
import { GollmError, ResourceError } from "../core/errors.ts";
import { type BatchLayout, kvBlockBytes } from "../core/forward.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { createReference } from "../runtime/reference.ts";
import {
  compileBatch,
  compileModel,
  compilePlan,
  MAX_MEMORY_BYTES,
  stripTypes,
} from "./compile.ts";
import { DEFAULT_PREFILL_CHUNK, planArena } from "./plan.ts";
import { singleSequence } from "../core/single_sequence.ts";
import { assertClose } from "../tests/assert_close.ts";
import {
  checkBatchedPrompts,
  checkPagedWindow,
  checkPrefixSharing,
  checkVerifyStep,
  editSequences,
} from "../tests/batch_checks.ts";
import {
  BATCH_BACKENDS,
  BATCH_CASES,
  cfg,
  checkAgainstReference,
  COMPILED_BACKENDS,
  FORWARD_CASES,
  forwardCase,
  tokens,
  TOL,
} from "../tests/forward_cases.ts";

for (const backend of COMPILED_BACKENDS) {
  for (const [name, c] of FORWARD_CASES) {
    Deno.test(`compileModel() ${backend.name} matches createReference() on ${name}`, () => {
      checkAgainstReference(c, (w) => backend.build(c, w, { kvCapacity: 24, prefillChunk: 5 }), 4);
    });
  }
}

Deno.test("checkAgainstReference() fails for a backend one weight or one RoPE pairing off", () => {
  // Negative controls: the parity check above can fail.
  const c = forwardCase("llama GQA2 interleaved untied");
  assert.throws(
    () =>
      checkAgainstReference(c, (w) => {
        const off = new Map(w);
        const wq = w.get("layers.1.attn.wq.weight")!;
        const data = wq.data!.slice();
        data[5] += 0.05;
        off.set("layers.1.attn.wq.weight", { shape: wq.shape, data });
        return compileModel(c, off, { kvCapacity: 24, prefillChunk: 5 });
      }),
    /max \|diff\|/,
  );
  const half = cfg("llama", { n_kv_heads: 2, rope_style: "half", tie_embeddings: false });
  assert.throws(
    () => checkAgainstReference(c, (w) => compileModel(half, w, { kvCapacity: 24 })),
    /max \|diff\|/,
  );
  // A window one slot wider than the reference's changes the decode past the ring's wrap.
  assert.throws(
    () => checkAgainstReference(c, (w) => compileModel(c, w, { kvCapacity: 25 })),
    /decode at position 24/,
  );
});

for (const backend of COMPILED_BACKENDS) {
  Deno.test(`compileModel() ${backend.name}: prefill chunks give the logits of decoding one by one`, () => {
    for (const c of [forwardCase("llama GQA2 interleaved untied"), forwardCase("gpt2 MHA tied")]) {
      const w = randomWeights(c, 5);
      const toks = tokens(21, c.vocab_size, 9);
      const chunked = backend.build(c, w, { prefillChunk: 8 });
      const stepwise = backend.build(c, w, { prefillChunk: 8 });
      const all = chunked.forwardAll(toks, 0); // chunks of 8, 8, 5
      const last = chunked.forward(toks, 0).slice();
      for (let p = 0; p < toks.length; p++) {
        const one = stepwise.forward([toks[p]], p);
        const row = all.subarray(p * c.vocab_size, (p + 1) * c.vocab_size);
        assertClose(row, one, TOL, `position ${p}`);
      }
      assertClose(last, stepwise.forward([toks[20]], 20), TOL, "forward() prefill + decode");
    }
  });

  Deno.test(`compileModel() ${backend.name} past kvCapacity matches the reference window, any chunk`, () => {
    for (const c of [forwardCase("llama MQA half"), forwardCase("gpt2 GQA2")]) {
      const w = randomWeights(c, 21);
      const cap = 6;
      const toks = tokens(40, c.vocab_size, 4);
      const ref = createReference(c, w, { kvCapacity: cap }).forwardAll(toks, 0);
      for (const chunk of [1, 4, 5, 6, 32]) {
        const m = backend.build(c, w, { kvCapacity: cap, prefillChunk: chunk });
        assertClose(m.forwardAll(toks, 0), ref, TOL, `forwardAll, chunk ${chunk}`);
        // forward() in pieces that start mid-ring.
        const a = m.forward(toks.slice(0, 17), 0).slice();
        assertClose(a, ref.subarray(16 * c.vocab_size, 17 * c.vocab_size), TOL, `chunk ${chunk}`);
        const b = m.forward(toks.slice(17, 40), 17);
        assertClose(b, ref.subarray(39 * c.vocab_size), TOL, `continued, chunk ${chunk}`);
      }
    }
  });

  Deno.test(`compileModel() ${backend.name} runs llama past context_length like the reference`, () => {
    const c = cfg("llama", { context_length: 16, n_kv_heads: 2, rope_style: "half" });
    const w = randomWeights(c, 4);
    const toks = tokens(30, c.vocab_size, 12);
    const ref = createReference(c, w, { kvCapacity: 8 }).forwardAll(toks, 0);
    const m = backend.build(c, w, { kvCapacity: 8, prefillChunk: 3 });
    assertClose(m.forwardAll(toks, 0), ref, TOL, "forwardAll to position 29");
  });

  Deno.test(`compileModel() ${backend.name} sizes nothing by context_length: 2^31 - 1 with kvCapacity 64`, () => {
    const huge = cfg("llama", { context_length: 2 ** 31 - 1, n_kv_heads: 2 });
    const small = cfg("llama", { context_length: 64, n_kv_heads: 2 });
    const w = randomWeights(huge, 3);
    const toks = tokens(12, huge.vocab_size, 5);
    const far = 2 ** 31 - 20; // positions near the end of the context
    const ref = createReference(huge, w, { kvCapacity: 64 }).forwardAll(toks, far);
    const options = {
      kvCapacity: 64,
      prefillChunk: 5,
      backend: backend.name === "wasm" ? "wasm" as const : "js" as const,
    };
    const m = compileModel(huge, w, options);
    // The same memory as for a 64-token context: the RoPE constants are (head_dim / 2).
    const same = compileModel(small, w, options);
    assert.equal(m.plan.memoryBytes, same.plan.memoryBytes);
    assert.equal(m.plan.tableBytes, 64); // 6 f32 inverse frequencies, aligned to 64 bytes
    const got = m.forwardAll(toks, far);
    assertClose(got, ref, TOL, `at position ${far}`);
    // Negative control: the rotation is not the identity there (position 0 differs).
    assert.throws(() => assertClose(got, m.forwardAll(toks, 0), TOL));
  });
}

/** The exception `f` throws (fails when it returns). */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new assert.AssertionError({ message: "expected an exception" });
}

Deno.test("compileModel() throws a ResourceError naming --kv-capacity when the arena is over 4 GiB", () => {
  const c = cfg("llama", { context_length: 2 ** 31 - 1 });
  const w = randomWeights(c, 1);
  for (const backend of ["js", "wasm"] as const) {
    const e = thrown(() => compileModel(c, w, { backend }));
    assert.ok(e instanceof ResourceError && e instanceof GollmError, String(e));
    assert.equal(e.limit, MAX_MEMORY_BYTES);
    assert.ok(e.needed > MAX_MEMORY_BYTES);
    assert.ok(!e.message.includes("\n"), "one line");
    assert.match(e.message, /^the arena needs \d+ bytes \(KV cache \d+ bytes and activations/);
    assert.match(
      e.message,
      new RegExp(`kvCapacity 2147483647, prefillChunk ${DEFAULT_PREFILL_CHUNK}`),
    );
    assert.match(
      e.message,
      /lower --kv-capacity \(kvCapacity\) or --prefill-chunk \(prefillChunk\)/,
    );
    assert.equal(e.message.includes("--backend jit"), backend === "wasm");
  }
  // The same config with a small ring compiles.
  assert.equal(compileModel(c, w, { kvCapacity: 256 }).plan.kvCapacity, 256);
});

Deno.test("compileModel() forward returns a view of the arena's logits", () => {
  const c = forwardCase("llama MHA half tied");
  const m = compileModel(c, randomWeights(c, 2));
  const a = m.forward([1], 0);
  const b = m.forward([2], 1);
  assert.equal(a, b); // same view, overwritten by the next step
  assert.equal(a.buffer, m.memory.buffer);
  assert.equal(a.length, c.vocab_size);
  assert.ok(m.plan.arenaBytes <= m.memory.buffer.byteLength);
});

Deno.test("compileModel() keeps wasm weights in its memory and the js weights in place", () => {
  const c = forwardCase("llama GQA2 interleaved untied");
  const w = randomWeights(c, 2);
  const js = compileModel(c, w);
  assert.equal(js.wasm, undefined);
  assert.equal(js.plan.weightsBytes, 0);
  const wasm = compileModel(c, w, { backend: "wasm" });
  assert.ok(wasm.wasm && WebAssembly.validate(wasm.wasm.bytes));
  const L = wasm.wasm.layout;
  assert.ok(wasm.memory.buffer.byteLength >= L.weightsOffset + L.weightsBytes);
  const off = L.weights.get("output.weight")!.offset;
  const out = w.get("output.weight")!.data;
  assert.deepEqual(new Float32Array(wasm.memory.buffer, off, out.length), out);
});

Deno.test("compileModel() rejects bad token ids, gpt2 positions past context_length, bad options", () => {
  const g = forwardCase("gpt2 MHA tied");
  const w = randomWeights(g, 1);
  const fp = compileModel(g, w);
  assert.throws(() => fp.forward([97], 0), RangeError);
  assert.throws(() => fp.forward([-1], 0), RangeError);
  assert.throws(() => fp.forward([], 0), RangeError);
  assert.throws(() => fp.forward([1], 64), RangeError);
  assert.throws(() => fp.forwardAll([1, 2], 63), RangeError);
  assert.equal(fp.forward([1], 63).length, 97);
  assert.throws(() => compileModel(g, w, { prefillChunk: 1.5 }), RangeError);
  assert.throws(() => compileModel(g, w, { kvCapacity: 0 }), RangeError);
  assert.throws(
    () => compileModel(g, w, { backend: "gpu" as "js" }),
    /backend must be js or wasm, got gpu/,
  );
  const missing = new Map(w);
  missing.delete("norm.weight");
  assert.throws(() => compileModel(g, missing), /norm\.weight/);
});

Deno.test("stripTypes() removes the emitted parameter types, one line or wrapped", () => {
  assert.equal(
    stripTypes("export function f(a: number, w: Float32Array) {}"),
    "function f(a, w) {}",
  );
  const wrapped = "function g(\n  t: ArrayLike<number>,\n  m: Record<string, Float32Array>,\n) {}";
  assert.equal(stripTypes(wrapped), "function g(\n  t,\n  m,\n) {}");
  // The body keeps its expressions (a ternary's colon is not a type).
  assert.equal(
    stripTypes("function h(x: number) { return x ? 1 : 2; }"),
    "function h(x) { return x ? 1 : 2; }",
  );
});

// ---- the batched forward (engine v2): many sequences per step, a paged KV cache ----

for (const backend of BATCH_BACKENDS) {
  for (const [name, c] of FORWARD_CASES) {
    Deno.test(`compileBatch() ${backend.name}: 8 prompts in one batch equal each alone on ${name}`, () => {
      checkBatchedPrompts(c, (w, l) => backend.build(c, w, l));
    });
  }
  for (const name of BATCH_CASES) {
    const c = forwardCase(name);
    const build = (w: Weights, l: BatchLayout) => backend.build(c, w, l);
    Deno.test(`compileBatch() ${backend.name}: ring and window through shuffled blocks, every chunk size, on ${name}`, () => {
      checkPagedWindow(c, build);
    });
    Deno.test(`compileBatch() ${backend.name}: a shared prefix equals a cold prefill on ${name}`, () => {
      checkPrefixSharing(c, build);
    });
    Deno.test(`compileBatch() ${backend.name}: a verify step of 5 rows equals 5 decode steps on ${name}`, () => {
      checkVerifyStep(c, build);
    });
  }
}

Deno.test("the batch checks fail for overlapping block tables, a wrong window, a wrong prefix, shifted rows", () => {
  // Negative controls: each check above can fail.
  const c = forwardCase("llama GQA2 interleaved untied");
  const build = (w: Weights, l: BatchLayout) => compileBatch(c, w, l);
  let first: number[] = [];
  const overlapping = editSequences(build, (s, b, r, win) => {
    if (s === 0) first = b;
    return [s === 1 ? first : b, r, win]; // sequence 1 writes into sequence 0's blocks
  });
  assert.throws(() => checkBatchedPrompts(c, overlapping), /sequence \d/);
  const wider = editSequences(build, (_, b, r, win) => [b, r, win + 1]);
  assert.throws(() => checkPagedWindow(c, wider), /chunks of 1: sequence [01] at position (6|9):/);
  assert.throws(() => checkPrefixSharing(c, build, 8), /prefix-cache hit/);
  assert.throws(() => checkVerifyStep(c, build, 1), /verify row 0/);
});

Deno.test("compileBatch() step() rejects bad rows with one line naming the field", () => {
  const c = forwardCase("gpt2 MHA tied");
  const b = compileBatch(c, randomWeights(c, 1), { maxRows: 4, maxSeqs: 2, numBlocks: 4 });
  b.setSequence(0, [0, 1], 32, 64);
  const ok = { tokens: [1, 2], positions: [0, 1], seqs: [0, 0], outRows: [1] };
  assert.equal(b.step(ok).length, c.vocab_size);
  const bad: [Partial<typeof ok>, RegExp][] = [
    [{ tokens: [1, 97] }, /tokens\[1\] = 97 is outside the vocabulary \[0, 97\)/],
    [{ positions: [0, 2] }, /positions\[1\] = 2 of sequence 0 does not follow position 0/],
    [{ positions: [63, 64] }, /positions\[1\] = 64 is past context_length 64/],
    [{ seqs: [0, 1] }, /seqs\[1\] = 1 is not set/],
    [{ outRows: [2] }, /outRows\[0\] = 2 is outside the rows \[0, 2\)/],
    [{ positions: [31, 32] }, /row 0 \(sequence 0, position 31\) reads positions from 0/],
    [
      { tokens: [1, 1, 1, 1, 1], positions: [0, 1, 2, 3, 4], seqs: [0, 0, 0, 0, 0] },
      /5 rows, expected 1 to maxRows 4/,
    ],
  ];
  for (const [edit, message] of bad) {
    const e = thrown(() => b.step({ ...ok, ...edit }));
    assert.ok(e instanceof RangeError && !e.message.includes("\n"), String(e));
    assert.match(e.message, message);
  }
  assert.throws(() => b.setSequence(2, [0], 16, 8), /seq 2 is outside \[0, 2\)/);
  assert.throws(() => b.setSequence(1, [4], 16, 8), /blocks\[0\] = 4 is outside \[0, 4\)/);
  assert.throws(() => b.setSequence(1, [2, 3], 24, 8), /ringTokens must be a positive multiple/);
  assert.throws(
    () => compileBatch(c, randomWeights(c, 1), { numBlocks: 4, blockSize: 6 }),
    /blockSize must be a power of two/,
  );
});

Deno.test("compileBatch() sizes its K/V pools by numBlocks: blockBytes per block", () => {
  const c = forwardCase("llama MQA half");
  const b = compileBatch(c, randomWeights(c, 1), { maxSeqs: 4, numBlocks: 10 });
  assert.equal(b.blockBytes, kvBlockBytes(c, 16));
  assert.equal(b.plan.kvBytes, 10 * b.blockBytes);
  assert.deepEqual(
    [b.maxRows, b.maxSeqs, b.blockSize, b.numBlocks, b.maxBlocksPerSeq],
    [32, 4, 16, 10, 10],
  );
});

Deno.test("a layer_window attribute limits that layer's attention like the reference window", () => {
  // Per-layer sliding windows (Mistral, Qwen2, Gemma's local layers) are a graph attribute;
  // with every layer at 5 the model equals the reference with a 5-token window.
  for (const name of ["llama GQA2 interleaved untied", "gpt2 MQA head_dim 20"]) {
    const c = forwardCase(name);
    const w = randomWeights(c, 8);
    const toks = tokens(24, c.vocab_size, 2);
    const ref = createReference(c, w, { kvCapacity: 5 }).forwardAll(toks, 0);
    for (const backend of ["js", "wasm"] as const) {
      const plan = planArena(c, { kvCapacity: 64, prefillChunk: 8, weightsInArena: true });
      for (const g of [plan.decode, plan.prefill]) {
        for (const n of g.nodes) if (n.op === "attention") n.attrs.layer_window = 5;
      }
      const batch = compilePlan(c, w, plan, backend);
      assert.match(batch.source, /(function |\(func \$)attention_\d+x\d+x\d+_b16_w5[( ]/);
      const pass = singleSequence(batch, 64);
      assertClose(pass.forwardAll(toks, 0), ref, TOL, `${name} ${backend}`);
      // Negative control: without it, the 64-token window differs from position 5 on.
      const full = compileModel(c, w, { kvCapacity: 64, prefillChunk: 8, backend });
      assert.throws(() => assertClose(full.forwardAll(toks, 0), ref, TOL), /max \|diff\|/);
    }
  }
});
