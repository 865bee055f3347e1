/**
 * Ring 1 of DESIGN.md "Tests": compileModel() (both backends, `js` and `wasm`) against the
 * reference forward (runtime/reference.ts) on random weights over the shared case table
 * (tests/forward_cases.ts); prefill vs decode; sliding window past kvCapacity; RoPE past
 * context_length; the compiled model's own contract.
 */
import assert from "node:assert/strict";
import { createReference } from "../runtime/reference.ts";
import { randomWeights } from "../core/weights.ts";
import { compileModel } from "./compile.ts";
import { assertClose } from "../tests/assert_close.ts";
import {
  cfg,
  checkAgainstReference,
  FORWARD_CASES,
  forwardCase,
  tokens,
  TOL,
} from "../tests/forward_cases.ts";

for (const [name, c] of FORWARD_CASES) {
  Deno.test(`compileModel() matches createReference() on ${name}`, () => {
    checkAgainstReference(c, (w) => compileModel(c, w, { kvCapacity: 24, prefillChunk: 5 }), 4);
  });
}

Deno.test("compileModel() prefill chunk gives the same logits as decoding token by token", () => {
  for (const c of [forwardCase("llama GQA2 interleaved untied"), forwardCase("gpt2 MHA tied")]) {
    const w = randomWeights(c, 5);
    const toks = tokens(21, c.vocab_size, 9);
    const chunked = compileModel(c, w, { prefillChunk: 8 });
    const stepwise = compileModel(c, w, { prefillChunk: 8 });
    const all = chunked.forwardAll(toks, 0); // chunks of 8, 8, 5
    const last = chunked.forward(toks, 0).slice();
    for (let p = 0; p < toks.length; p++) {
      const one = stepwise.forward([toks[p]], p);
      assertClose(
        all.subarray(p * c.vocab_size, (p + 1) * c.vocab_size),
        one,
        TOL,
        `position ${p}`,
      );
    }
    assertClose(last, stepwise.forward([toks[20]], 20), TOL, "forward() prefill + decode");
  }
});

Deno.test("compileModel() past kvCapacity matches the reference sliding window, any chunk", () => {
  for (const c of [forwardCase("llama MQA half"), forwardCase("gpt2 GQA2")]) {
    const w = randomWeights(c, 21);
    const cap = 6;
    const toks = tokens(40, c.vocab_size, 4);
    const ref = createReference(c, w, { kvCapacity: cap }).forwardAll(toks, 0);
    for (const chunk of [1, 4, 5, 6, 32]) {
      const jit = compileModel(c, w, { kvCapacity: cap, prefillChunk: chunk });
      assert.equal(jit.plan.prefillChunk, Math.min(chunk, cap));
      assertClose(jit.forwardAll(toks, 0), ref, TOL, `forwardAll, chunk ${chunk}`);
      // forward() in pieces that start mid-ring.
      const a = jit.forward(toks.slice(0, 17), 0).slice();
      assertClose(a, ref.subarray(16 * c.vocab_size, 17 * c.vocab_size), TOL, `chunk ${chunk}`);
      const b = jit.forward(toks.slice(17, 40), 17);
      assertClose(b, ref.subarray(39 * c.vocab_size), TOL, `continued, chunk ${chunk}`);
    }
  }
});

Deno.test("compileModel() runs llama past context_length like the reference", () => {
  const c = cfg("llama", { context_length: 16, n_kv_heads: 2, rope_style: "half" });
  const w = randomWeights(c, 4);
  const toks = tokens(30, c.vocab_size, 12);
  const ref = createReference(c, w, { kvCapacity: 8 }).forwardAll(toks, 0);
  for (const backend of ["js", "wasm"] as const) {
    const jit = compileModel(c, w, { kvCapacity: 8, prefillChunk: 3, backend });
    assertClose(jit.forwardAll(toks, 0), ref, TOL, `${backend}: forwardAll to position 29`);
  }
});

Deno.test("compileModel() sizes nothing by context_length: 2^31 - 1 runs with kvCapacity 64", () => {
  const huge = cfg("llama", { context_length: 2 ** 31 - 1, n_kv_heads: 2 });
  const small = cfg("llama", { context_length: 64, n_kv_heads: 2 });
  const w = randomWeights(huge, 3);
  const toks = tokens(12, huge.vocab_size, 5);
  const far = 2 ** 31 - 20; // positions near the end of the context
  const ref = createReference(huge, w, { kvCapacity: 64 }).forwardAll(toks, far);
  for (const backend of ["js", "wasm"] as const) {
    const m = compileModel(huge, w, { kvCapacity: 64, prefillChunk: 5, backend });
    // The same arena as for a 64-token context: the RoPE constants are (head_dim / 2).
    const same = compileModel(small, w, { kvCapacity: 64, prefillChunk: 5, backend });
    assert.equal(m.plan.memoryBytes, same.plan.memoryBytes);
    assert.equal(m.plan.tableBytes, 64); // 6 f32 inverse frequencies, aligned
    assertClose(m.forwardAll(toks, far), ref, TOL, `${backend} at position ${far}`);
  }
});

for (const [name, c] of FORWARD_CASES) {
  Deno.test(`compileModel({ backend: "wasm" }) matches createReference() on ${name}`, () => {
    checkAgainstReference(c, (w) => {
      const m = compileModel(c, w, { kvCapacity: 24, prefillChunk: 5, backend: "wasm" });
      assert.ok(m.wasm, "the compiled model carries its WASM module");
      assert.ok(m.plan.weightsBytes > 0);
      return m;
    });
  });
}

Deno.test('compileModel({ backend: "wasm" }) past kvCapacity matches the reference, any chunk', () => {
  for (const c of [forwardCase("llama MQA half"), forwardCase("gpt2 untied")]) {
    const w = randomWeights(c, 21);
    const cap = 6;
    const toks = tokens(40, c.vocab_size, 4);
    const ref = createReference(c, w, { kvCapacity: cap }).forwardAll(toks, 0);
    for (const chunk of [1, 4, 5, 6]) {
      const m = compileModel(c, w, { kvCapacity: cap, prefillChunk: chunk, backend: "wasm" });
      assertClose(m.forwardAll(toks, 0), ref, TOL, `forwardAll, chunk ${chunk}`);
      const b = m.forward(toks.slice(0, 40), 0);
      assertClose(b, ref.subarray(39 * c.vocab_size), TOL, `forward, chunk ${chunk}`);
    }
  }
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

Deno.test("forward() rejects bad token ids and gpt2 positions past context_length", () => {
  const g = forwardCase("gpt2 MHA tied");
  const w = randomWeights(g, 1);
  for (const fp of [createReference(g, w), compileModel(g, w)]) {
    assert.throws(() => fp.forward([97], 0), RangeError);
    assert.throws(() => fp.forward([-1], 0), RangeError);
    assert.throws(() => fp.forward([], 0), RangeError);
    assert.throws(() => fp.forward([1], 64), RangeError);
    assert.throws(() => fp.forwardAll([1, 2], 63), RangeError);
    assert.equal(fp.forward([1], 63).length, 97);
  }
  assert.throws(() => createReference(g, w, { kvCapacity: 0 }), RangeError);
  assert.throws(() => compileModel(g, w, { prefillChunk: 1.5 }), RangeError);
});
