/**
 * The step kernels of codegen/wasm/ops.ts against plain float64 loops written from the
 * formulas (llama2.c run.c rmsnorm/softmax, GPT-2 layernorm/gelu, GeGLU, Gemma 2's
 * soft-cap, RoPE both pairings, the JS kernels' ring semantics for attention), with a
 * negative control each for attention, RoPE and the soft-cap.
 */
import assert from "node:assert/strict";
import { assertClose } from "../../tests/assert_close.ts";
import { rng } from "../../tests/ggml_blocks.ts";
import type { WasmFunc } from "../wasm_asm.ts";
import { assembleModule } from "../wasm_assemble.ts";
import {
  attentionKernel,
  type AttentionShape,
  elementwiseKernel,
  expKernel,
  kvStoreKernel,
  layernormKernel,
  rmsnormKernel,
  ropeKernel,
} from "./ops.ts";
import { WasmFunc as Fn } from "../wasm_asm.ts";

// deno-lint-ignore no-explicit-any
type Exports = Record<string, any>;

function instantiate(
  funcs: WasmFunc[],
): { e: Exports; f32: Float32Array; mem: WebAssembly.Memory } {
  const mem = new WebAssembly.Memory({ initial: 16 });
  const bytes = assembleModule([expKernel(), ...funcs], 16);
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: mem } })
    .exports as Exports;
  return { e, f32: new Float32Array(mem.buffer), mem };
}

const fill = (a: Float32Array, off: number, n: number, r: () => number, s = 1) => {
  for (let i = 0; i < n; i++) a[off / 4 + i] = (2 * r() - 1) * s;
};

Deno.test("exp_f32x4 is within 3e-7 relative of Math.exp on [-80, 80]", () => {
  const probe = new Fn("probe", [["p", "i32"]]);
  probe.get("p").get("p").mem("v128.load").call("exp_f32x4").mem("v128.store");
  const { e, f32 } = instantiate([probe]);
  let worst = 0;
  for (let x = -80; x <= 80; x += 0.0371) {
    f32.set([x, -x / 3, x / 7, 0], 0);
    e.probe(0);
    for (const [i, v] of [x, -x / 3, x / 7, 0].entries()) {
      const want = Math.exp(Math.fround(v));
      worst = Math.max(worst, Math.abs(f32[i] - want) / want);
    }
  }
  assert.ok(worst < 3e-7, `worst relative error ${worst}`);
});

for (const D of [37, 64]) {
  Deno.test(`rmsnorm_${D} and layernorm_${D} match float64 loops over 3 rows`, () => {
    const eps = 1e-5, n = 3;
    const { e, f32 } = instantiate([rmsnormKernel(D, eps), layernormKernel(D, eps)]);
    const r = rng(D);
    const W = 0, B = 1024, X = 2048, Y = 4096;
    fill(f32, W, D, r), fill(f32, B, D, r), fill(f32, X, n * D, r, 3);
    const x = f32.slice(X / 4, X / 4 + n * D), w = f32.slice(0, D), b = f32.slice(256, 256 + D);
    e[`rmsnorm_${D}`](W, X, Y, n);
    const want = new Float64Array(n * D);
    for (let t = 0; t < n; t++) {
      let ss = 0;
      for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let i = 0; i < D; i++) want[t * D + i] = x[t * D + i] * inv * w[i];
    }
    assertClose(f32.subarray(Y / 4, Y / 4 + n * D), want, 2e-6, "rmsnorm");
    e[`layernorm_${D}`](W, B, X, Y, n);
    for (let t = 0; t < n; t++) {
      let mean = 0, v = 0;
      for (let i = 0; i < D; i++) mean += x[t * D + i] / D;
      for (let i = 0; i < D; i++) v += (x[t * D + i] - mean) ** 2 / D;
      const inv = 1 / Math.sqrt(v + eps);
      for (let i = 0; i < D; i++) want[t * D + i] = (x[t * D + i] - mean) * inv * w[i] + b[i];
    }
    assertClose(f32.subarray(Y / 4, Y / 4 + n * D), want, 2e-6, "layernorm");
  });
}

/** RoPE oracle: pairs (i, i + hd/2) or (2i, 2i + 1), angle p · theta^(-2i/hd). */
function ropeRef(
  v: Float64Array,
  heads: number,
  hd: number,
  pos: number,
  n: number,
  style: string,
  theta: number,
) {
  const half = hd / 2;
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const ang = (pos + t) * theta ** (-2 * i / hd);
        const ia = t * heads * hd + h * hd + (style === "half" ? i : 2 * i);
        const ib = ia + (style === "half" ? half : 1);
        const a = v[ia], b = v[ib];
        v[ia] = a * Math.cos(ang) - b * Math.sin(ang);
        v[ib] = b * Math.cos(ang) + a * Math.sin(ang);
      }
    }
  }
}

for (const style of ["half", "interleaved"] as const) {
  Deno.test(`rope_${style} matches the float64 rotation, split over heads or not`, () => {
    const s: AttentionShape = { nHeads: 4, nKvHeads: 2, headDim: 6, kvCapacity: 8 };
    const hd = 6, theta = 10000, ctx = 16, pos = 5, n = 3;
    const { e, f32 } = instantiate([ropeKernel(s, style)]);
    const TAB = 0, Q = 4096, K = 8192;
    for (let p = 0; p < ctx; p++) {
      for (let i = 0; i < hd / 2; i++) {
        const ang = p * theta ** (-2 * i / hd);
        f32[p * hd + i] = Math.cos(ang);
        f32[p * hd + hd / 2 + i] = Math.sin(ang);
      }
    }
    const r = rng(11);
    fill(f32, Q, n * 4 * hd, r), fill(f32, K, n * 2 * hd, r);
    const q = Float64Array.from(f32.subarray(Q / 4, Q / 4 + n * 4 * hd));
    const k = Float64Array.from(f32.subarray(K / 4, K / 4 + n * 2 * hd));
    const name = `rope_${style}_4x2x6`;
    e[name](Q, K, TAB, pos, n, 0, 2); // heads 0, 1 of q
    e[name](Q, K, TAB, pos, n, 2, 6); // heads 2, 3 of q and both k heads
    ropeRef(q, 4, hd, pos, n, style, theta);
    ropeRef(k, 2, hd, pos, n, style, theta);
    assertClose(f32.subarray(Q / 4, Q / 4 + q.length), q, 2e-6, "q");
    assertClose(f32.subarray(K / 4, K / 4 + k.length), k, 2e-6, "k");
    // Negative control: the other pairing is a different rotation.
    const other = Float64Array.from(k);
    ropeRef(other, 2, hd, pos, n, style === "half" ? "interleaved" : "half", theta);
    assert.throws(() => assertClose(f32.subarray(K / 4, K / 4 + k.length), other, 1e-3));
  });
}

/** Attention oracle with the ring semantics of the JS kernels. */
function attentionRef(
  s: AttentionShape,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  kr: Float32Array,
  vr: Float32Array,
  pos: number,
  n: number,
): Float64Array {
  const { nHeads: H, nKvHeads: KH, headDim: hd, kvCapacity: cap } = s;
  const kvDim = KH * hd, G = H / KH, out = new Float64Array(n * H * hd);
  for (let t = 0; t < n; t++) {
    const p = pos + t, start = Math.max(0, p - cap + 1);
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / G) * hd;
      const row = (u: number, ring: Float32Array, step: Float32Array) =>
        u < pos ? ring.subarray((u % cap) * kvDim + kvh) : step.subarray((u - pos) * kvDim + kvh);
      const sc: number[] = [];
      for (let u = start; u <= p; u++) {
        const kk = row(u, kr, k);
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[t * H * hd + h * hd + i] * kk[i];
        sc.push(d / Math.sqrt(hd));
      }
      const m = Math.max(...sc), ex = sc.map((x) => Math.exp(x - m));
      const sum = ex.reduce((a, b) => a + b, 0);
      for (let u = start; u <= p; u++) {
        const vv = row(u, vr, v);
        for (let i = 0; i < hd; i++) out[t * H * hd + h * hd + i] += ex[u - start] / sum * vv[i];
      }
    }
  }
  return out;
}

for (const hd of [8, 6]) {
  Deno.test(`attention (head_dim ${hd}) matches float64 softmax over ring and step rows`, () => {
    const s: AttentionShape = { nHeads: 6, nKvHeads: 2, headDim: hd, kvCapacity: 5 };
    const { e, f32 } = instantiate([attentionKernel(s), kvStoreKernel(2 * hd, 5)]);
    const H = 6, kvDim = 2 * hd, cap = 5, pos = 7, n = 3;
    const Q = 0, K = 4096, V = 8192, KR = 12288, VR = 16384, O = 20480, ATT = 24576;
    const r = rng(hd);
    fill(f32, Q, n * H * hd, r), fill(f32, K, n * kvDim, r), fill(f32, V, n * kvDim, r);
    fill(f32, KR, cap * kvDim, r), fill(f32, VR, cap * kvDim, r);
    const view = (o: number, len: number) => f32.slice(o / 4, o / 4 + len);
    const want = attentionRef(
      s,
      view(Q, n * H * hd),
      view(K, n * kvDim),
      view(V, n * kvDim),
      view(KR, cap * kvDim),
      view(VR, cap * kvDim),
      pos,
      n,
    );
    const name = `attention_6x2x${hd}_w5`;
    e[name](Q, K, V, KR, VR, O, ATT, pos, n, 0, 4);
    e[name](Q, K, V, KR, VR, O, ATT, pos, n, 4, 6);
    assertClose(view(O, n * H * hd), want, 2e-6, "attention");
    // Negative control: a window one slot shorter gives other outputs.
    const shorter = attentionRef(
      { ...s, kvCapacity: 4 },
      view(Q, n * H * hd),
      view(K, n * kvDim),
      view(V, n * kvDim),
      view(KR, cap * kvDim),
      view(VR, cap * kvDim),
      pos,
      n,
    );
    assert.throws(() => assertClose(view(O, n * H * hd), shorter, 1e-4));
    // kv_store: slot (pos + t) % cap holds step row t afterwards.
    e[`kv_store_${kvDim}_w5`](K, V, KR, VR, pos, n);
    for (let t = 0; t < n; t++) {
      const slot = (pos + t) % cap;
      assert.deepEqual(view(KR + slot * kvDim * 4, kvDim), view(K + t * kvDim * 4, kvDim));
      assert.deepEqual(view(VR + slot * kvDim * 4, kvDim), view(V + t * kvDim * 4, kvDim));
    }
  });
}

Deno.test("add_f32, swiglu_f32 and gelu_f32 match float64 over a range with a tail", () => {
  const { e, f32 } = instantiate([
    elementwiseKernel("add"),
    elementwiseKernel("swiglu"),
    elementwiseKernel("gelu"),
  ]);
  const N = 41, A = 0, B = 4096, r = rng(5);
  const ops: [string, (a: number, b: number) => number][] = [
    ["add_f32", (a, b) => a + b],
    ["swiglu_f32", (a, b) => (a / (1 + Math.exp(-a))) * b],
    [
      "gelu_f32",
      (a) => 0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3))),
    ],
  ];
  for (const [name, ref] of ops) {
    fill(f32, A, N, r, 6), fill(f32, B, N, r, 2);
    const a = f32.slice(0, N), b = f32.slice(B / 4, B / 4 + N);
    e[name](A, B, 3, N); // elements 3 .. N - 1
    const want = Array.from(a, (x, i) => (i < 3 ? x : ref(x, b[i])));
    assertClose(f32.subarray(0, N), want, 3e-6, name);
  }
});

Deno.test("geglu_f32 and softcap_capC_f32 match float64 over a range with a tail, saturating", () => {
  const caps = [30, 2.5];
  const { e, f32 } = instantiate([
    elementwiseKernel("geglu"),
    ...caps.map((c) => elementwiseKernel("softcap", c)),
  ]);
  const N = 41, A = 0, B = 4096, r = rng(6);
  const gelu = (a: number) =>
    0.5 * a * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (a + 0.044715 * a ** 3)));
  // [kernel, float64 formula, input scale, absolute tolerance]; tanh by 1 - 2 / (e^2u + 1)
  // is within ~1e-7 (the vector exp's 2e-7 relative error), times the cap.
  const ops: [string, (a: number, b: number) => number, number, number][] = [
    ["geglu_f32", (a, b) => gelu(a) * b, 6, 3e-6],
    // logits past the cap (±200 against 30; ±20 against 2.5) saturate at ±cap
    ["softcap_cap30_f32", (a) => 30 * Math.tanh(a / 30), 200, 30 * 2e-7],
    ["softcap_cap2p5_f32", (a) => 2.5 * Math.tanh(a / 2.5), 20, 2.5 * 2e-7],
  ];
  for (const [name, ref, scale, tol] of ops) {
    fill(f32, A, N, r, scale), fill(f32, B, N, r, 2);
    f32[5] = 1e-3; // tanh's cancellation near 0
    const a = f32.slice(0, N), b = f32.slice(B / 4, B / 4 + N);
    e[name](A, B, 3, N); // elements 3 .. N - 1
    const want = Array.from(a, (x, i) => (i < 3 ? x : ref(x, b[i])));
    assertClose(f32.subarray(0, N), want, tol, name);
  }
  // Negative control: the cap is a literal of the kernel; the other cap's values differ.
  fill(f32, A, N, r, 20);
  const a = f32.slice(0, N);
  e.softcap_cap30_f32(A, 0, 0, N);
  assert.throws(
    () => assertClose(f32.subarray(0, N), a.map((x) => 2.5 * Math.tanh(x / 2.5)), 1e-3),
    /max \|diff\|/,
  );
});
