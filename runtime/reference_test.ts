/**
 * The reference forward (runtime/reference.ts) against an independent full-sequence
 * implementation (no KV cache, float64, banded causal mask), and its argument checks. Its
 * parity with PyTorch is tests/pytorch_parity_test.ts.
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../core/config.ts";
import { ResourceError } from "../core/errors.ts";
import { type F32Weights as Weights, randomWeights } from "../core/weights.ts";
import { createReference } from "./reference.ts";
import { assertClose } from "../tests/assert_close.ts";
import { cfg, forwardCase, tokens, TOL } from "../tests/forward_cases.ts";

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
  for (
    const c of [
      forwardCase("llama GQA2 interleaved untied"),
      forwardCase("llama head_dim 16 ≠ dim/n_heads"),
      forwardCase("gpt2 GQA2"),
    ]
  ) {
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

Deno.test("createReference() RoPE past context_length equals the full-sequence forward", () => {
  // The banded-mask forward computes RoPE on its own (float64 10^(log10(θ)·2i/d)) with no
  // notion of a context length; positions 0..19 run past context_length 8.
  const c = cfg("llama", { context_length: 8, n_kv_heads: 2, rope_style: "interleaved" });
  const w = randomWeights(c, 9);
  const toks = tokens(20, c.vocab_size, 2);
  const ref = createReference(c, w, { kvCapacity: 20 }).forwardAll(toks, 0);
  assertClose(ref, naiveSlidingWindow(c, w, toks, 20), TOL, "positions 0..19");
});

Deno.test("createReference() sizes nothing by context_length: 2^31 - 1 runs with kvCapacity 16", () => {
  const c = cfg("llama", { context_length: 2 ** 31 - 1 });
  const fp = createReference(c, randomWeights(c, 1), { kvCapacity: 16 });
  assert.equal(fp.forward([1, 2, 3], 2 ** 31 - 4).length, c.vocab_size);
});

Deno.test("createReference() throws a ResourceError naming --kv-capacity when the KV cache cannot be allocated", () => {
  const c = cfg("llama", { context_length: 2 ** 31 - 1 });
  const w = randomWeights(c, 1);
  // 2 × 2 layers × (2^31 - 1) slots × kv_dim 48 × 4 bytes: about 1.6 TB.
  assert.throws(
    () => createReference(c, w),
    (e: unknown) =>
      e instanceof ResourceError && e.needed === 2 * 2 * (2 ** 31 - 1) * 48 * 4 &&
      /^could not allocate the KV cache of \d+ bytes \(2 × 2 layers × kvCapacity 2147483647 × kv_dim 48 × 4\): .*; lower --kv-capacity \(kvCapacity\)$/
        .test(e.message),
  );
});

Deno.test("createReference() rejects bad token ids, gpt2 positions past context_length, bad kvCapacity", () => {
  const g = forwardCase("gpt2 MHA tied");
  const w = randomWeights(g, 1);
  const fp = createReference(g, w);
  assert.throws(() => fp.forward([97], 0), RangeError);
  assert.throws(() => fp.forward([-1], 0), RangeError);
  assert.throws(() => fp.forward([], 0), RangeError);
  assert.throws(() => fp.forward([1], 64), RangeError);
  assert.throws(() => fp.forwardAll([1, 2], 63), RangeError);
  assert.equal(fp.forward([1], 63).length, 97);
  assert.throws(() => createReference(g, w, { kvCapacity: 0 }), RangeError);
});

Deno.test("createReference() trace reports each tensor of each token, consistent with the logits", () => {
  for (const arch of ["llama", "gpt2"] as const) {
    const c = cfg(arch, { n_layers: 2 });
    const w = randomWeights(c, 3);
    const seen: string[] = [];
    const copies = new Map<string, Float32Array>();
    const fp = createReference(c, w, {
      trace: (name, layer, pos, data) => {
        seen.push(`${name}/${layer}/${pos}`);
        copies.set(`${name}/${layer}/${pos}`, data.slice());
      },
    });
    const logits = fp.forwardAll([1, 2], 0);
    const layer = (l: number, p: number) =>
      ["attn_norm", "Qcur", "Kcur", "Vcur", "kqv_out", "attn_out", "ffn_inp", "ffn_norm"]
        .concat(["ffn_out", "l_out"]).map((n) => `${n}/${l}/${p}`);
    const token = (p: number) => [
      `inp_embd/-1/${p}`,
      ...layer(0, p),
      ...layer(1, p),
      `result_norm/-1/${p}`,
      `result_output/-1/${p}`,
    ];
    assert.deepEqual(seen, [...token(0), ...token(1)], arch);
    const get = (k: string) => copies.get(k)!;
    assert.deepEqual(get("result_output/-1/1"), logits.subarray(c.vocab_size), arch);
    // The residual stream: l_out = ffn_inp + ffn_out, ffn_inp = l_out of the layer before + attn_out.
    const sum = (a: Float32Array, b: Float32Array) => a.map((v, i) => v + b[i]);
    assert.deepEqual(get("l_out/1/1"), sum(get("ffn_inp/1/1"), get("ffn_out/1/1")), arch);
    assert.deepEqual(get("ffn_inp/1/1"), sum(get("l_out/0/1"), get("attn_out/1/1")), arch);
    // Negative control: a different position's tensor differs.
    assert.notDeepEqual(get("l_out/1/0"), get("l_out/1/1"), arch);
  }
});
