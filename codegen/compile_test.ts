/**
 * Ring 1 of DESIGN.md "Tests": the generated kernels (codegen/) against the reference
 * forward (runtime/reference.ts) on random weights over many shapes; prefill vs decode;
 * sliding window past kvCapacity, with the reference itself checked against an
 * independent full-sequence implementation with a banded causal mask; the arena plan.
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../core/config.ts";
import { createReference } from "../runtime/reference.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { compileModel, stripTypes } from "./compile.ts";
import { emitKernels } from "./emit_js.ts";
import { planArena, type PlannedBuffer } from "./plan.ts";
import { assertClose } from "../tests/assert_close.ts";
import { cfg, checkAgainstReference, tokens, TOL } from "../tests/forward_cases.ts";

// ≥ 20 shapes: both arches, GQA ratios 1/2/4 and MQA, odd dims, head_dim ≠ dim/n_heads,
// both RoPE styles, q/k/v bias on/off, tied/untied LM head.
const CASES: [string, ModelConfig][] = [
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

for (const [name, c] of CASES) {
  Deno.test(`compileModel() matches createReference() on ${name}`, () => {
    checkAgainstReference(c, (w) => compileModel(c, w, { kvCapacity: 24, prefillChunk: 5 }), 4);
  });
}

Deno.test("compileModel() prefill chunk gives the same logits as decoding token by token", () => {
  for (const c of [CASES[1][1], CASES[14][1]]) {
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
  for (const c of [CASES[4][1], CASES[18][1]]) {
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

Deno.test("compileModel() runs llama past context_length (RoPE beyond its table) like the reference", () => {
  const c = cfg("llama", { context_length: 16, n_kv_heads: 2, rope_style: "half" });
  const w = randomWeights(c, 4);
  const toks = tokens(30, c.vocab_size, 12);
  const ref = createReference(c, w, { kvCapacity: 8 }).forwardAll(toks, 0);
  const jit = compileModel(c, w, { kvCapacity: 8, prefillChunk: 3 });
  assertClose(jit.forwardAll(toks, 0), ref, TOL, "forwardAll to position 29");
});

/**
 * An independent forward for the whole sequence at once (no KV cache, no ring): layer by
 * layer over all positions, float64, with a banded causal mask — position p attends to
 * positions j with p - window < j <= p (Mistral-style sliding-window attention), RoPE at
 * absolute positions. Returns (n, vocab) logits.
 */
function naiveSlidingWindow(c: ModelConfig, w: Weights, toks: number[], window: number) {
  const W = (k: string) => w.get(k)!.data;
  const has = (k: string) => w.has(k);
  const n = toks.length, D = c.dim, hd = c.head_dim;
  const linear = (X: Float64Array[], name: string, bias: string) =>
    X.map((x) => {
      const m = W(name), rows = m.length / x.length;
      const y = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        let s = has(bias) ? W(bias)[r] : 0;
        for (let i = 0; i < x.length; i++) s += m[r * x.length + i] * x[i];
        y[r] = s;
      }
      return y;
    });
  const norm = (X: Float64Array[], p: string) =>
    X.map((x) => {
      const g = W(p + ".weight");
      if (c.norm === "rmsnorm") {
        const rms = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / D + c.norm_eps);
        return x.map((v, i) => (v / rms) * g[i]);
      }
      const mu = x.reduce((a, v) => a + v, 0) / D;
      const sd = Math.sqrt(x.reduce((a, v) => a + (v - mu) ** 2, 0) / D + c.norm_eps);
      const b = W(p + ".bias");
      return x.map((v, i) => ((v - mu) / sd) * g[i] + b[i]);
    });
  const rot = (x: Float64Array, heads: number, p: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        const f = p / 10 ** ((Math.log10(c.rope_theta) * 2 * i) / hd);
        const [a, b] = c.rope_style === "half"
          ? [h * hd + i, h * hd + i + hd / 2]
          : [h * hd + 2 * i, h * hd + 2 * i + 1];
        const xa = x[a], xb = x[b];
        x[a] = xa * Math.cos(f) - xb * Math.sin(f);
        x[b] = xb * Math.cos(f) + xa * Math.sin(f);
      }
    }
  };
  let H = toks.map((t, p) => {
    const x = new Float64Array(D);
    for (let i = 0; i < D; i++) {
      x[i] = W("tok_embeddings.weight")[t * D + i] +
        (c.arch === "gpt2" ? W("pos_embeddings.weight")[p * D + i] : 0);
    }
    return x;
  });
  for (let l = 0; l < c.n_layers; l++) {
    const p = `layers.${l}.`;
    const X = norm(H, p + "attn_norm");
    const Q = linear(X, p + "attn.wq.weight", p + "attn.wq.bias");
    const K = linear(X, p + "attn.wk.weight", p + "attn.wk.bias");
    const V = linear(X, p + "attn.wv.weight", p + "attn.wv.bias");
    if (c.arch === "llama") {
      Q.forEach((q, i) => rot(q, c.n_heads, i));
      K.forEach((k, i) => rot(k, c.n_kv_heads, i));
    }
    const O = Q.map((q, i) => {
      const o = new Float64Array(c.n_heads * hd);
      for (let h = 0; h < c.n_heads; h++) {
        const g = Math.floor((h * c.n_kv_heads) / c.n_heads);
        const js = [...Array(n).keys()].filter((j) => j <= i && j > i - window);
        const s = js.map((j) => {
          let d = 0;
          for (let e = 0; e < hd; e++) d += q[h * hd + e] * K[j][g * hd + e];
          return d / Math.sqrt(hd);
        });
        const m = Math.max(...s);
        const ex = s.map((v) => Math.exp(v - m));
        const z = ex.reduce((a, b) => a + b, 0);
        js.forEach((j, k) => {
          for (let e = 0; e < hd; e++) o[h * hd + e] += (ex[k] / z) * V[j][g * hd + e];
        });
      }
      return o;
    });
    const A = linear(O, p + "attn.wo.weight", p + "attn.wo.bias");
    H = H.map((x, i) => x.map((v, e) => v + A[i][e]));
    const F = norm(H, p + "ffn_norm");
    const G = linear(F, p + "ffn.w1.weight", p + "ffn.w1.bias");
    const act = c.mlp === "swiglu"
      ? G.map((g, i) => {
        const u = linear([F[i]], p + "ffn.w3.weight", "-")[0];
        return g.map((v, e) => (v / (1 + Math.exp(-v))) * u[e]);
      })
      : G.map((g) =>
        g.map((v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))))
      );
    const Y = linear(act, p + "ffn.w2.weight", p + "ffn.w2.bias");
    H = H.map((x, i) => x.map((v, e) => v + Y[i][e]));
  }
  const out = linear(
    norm(H, "norm"),
    c.tie_embeddings ? "tok_embeddings.weight" : "output.weight",
    "-",
  );
  const flat = new Float64Array(n * c.vocab_size);
  out.forEach((r, i) => flat.set(r, i * c.vocab_size));
  return flat;
}

Deno.test("createReference() sliding window equals a full-sequence banded-mask forward", () => {
  for (const c of [CASES[1][1], CASES[9][1], CASES[18][1]]) {
    const w = randomWeights(c, 8);
    const toks = tokens(20, c.vocab_size, 6);
    for (const cap of [5, 20]) {
      const ref = createReference(c, w, { kvCapacity: cap }).forwardAll(toks, 0);
      assertClose(ref, naiveSlidingWindow(c, w, toks, cap), TOL, `window ${cap}`);
    }
    // Without the window the logits differ (the check above can fail).
    const full = naiveSlidingWindow(c, w, toks, 1000);
    const windowed = createReference(c, w, { kvCapacity: 5 }).forwardAll(toks, 0);
    assert.throws(() => assertClose(windowed, full, TOL));
  }
});

function checkNoLiveOverlap(buffers: PlannedBuffer[], arenaBytes: number, what: string) {
  for (const b of buffers) {
    assert.ok(b.offset >= 0 && b.offset + b.bytes <= arenaBytes, `${what}: ${b.name} in arena`);
    assert.equal(b.offset % 64, 0, `${what}: ${b.name} aligned`);
  }
  for (let i = 0; i < buffers.length; i++) {
    for (let j = i + 1; j < buffers.length; j++) {
      const a = buffers[i], b = buffers[j];
      const sameTime = a.live[0] <= b.live[1] && b.live[0] <= a.live[1];
      const sameBytes = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      assert.ok(!(sameTime && sameBytes), `${what}: live buffers ${a.name} and ${b.name} overlap`);
    }
  }
}

Deno.test("planArena() never places two live buffers on the same bytes, and reuses dead ones", () => {
  for (const [name, c] of CASES.slice(0, 22)) {
    const plan = planArena(c, { kvCapacity: 16, prefillChunk: 8 });
    const shared = plan.buffers.filter((b) => b.graph === "shared");
    for (const g of ["decode", "prefill"] as const) {
      const mine = plan.buffers.filter((b) => b.graph === g);
      checkNoLiveOverlap([...shared, ...mine], plan.arenaBytes, `${name} ${g}`);
      const total = mine.reduce((a, b) => a + b.bytes, 0);
      assert.ok(plan[`${g}Bytes`] < total, `${name} ${g}: dead buffers are reused`);
      // Every node's buffers are planned.
      const graph = plan[g];
      for (const n of graph.nodes) {
        for (const b of [...n.inputs, ...n.outputs].filter(Boolean)) {
          assert.ok(
            plan.buffers.some((p) => p.name === b && (p.graph === g || p.graph === "shared")),
            `${name}: ${b} planned`,
          );
        }
      }
    }
    const kvDim = c.n_kv_heads * c.head_dim;
    assert.equal(plan.kvBytes, 2 * c.n_layers * 16 * kvDim * 4);
    assert.equal(plan.arenaBytes >= plan.kvBytes + plan.activationBytes, true);
  }
});

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

Deno.test("compileModel() forward returns a view of the arena's logits", () => {
  const c = CASES[0][1];
  const m = compileModel(c, randomWeights(c, 2));
  const a = m.forward([1], 0);
  const b = m.forward([2], 1);
  assert.equal(a, b); // same view, overwritten by the next step
  assert.equal(a.buffer, m.memory.buffer);
  assert.equal(a.length, c.vocab_size);
  assert.ok(m.plan.arenaBytes <= m.memory.buffer.byteLength);
});

Deno.test("forward() rejects bad token ids and gpt2 positions past context_length", () => {
  const g = CASES[14][1];
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
