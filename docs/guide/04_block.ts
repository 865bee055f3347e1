/**
 * Step 4 of the guide: the transformer block. RMSNorm, linear layers, RoPE, attention (step
 * 3), residual adds and the SwiGLU MLP, each checked against the tensor gollm's reference
 * forward (runtime/reference.ts) computes at the same place, in every layer.
 *
 * Run: `deno run -A docs/guide/04_block.ts` (page: docs/guide/04_block.md).
 *
 * @module
 */
import type { ModelConfig } from "../../core/config.ts";
import { createReference } from "../../runtime/reference.ts";
import { attention } from "./03_attention.ts";
import { embed } from "./02_embeddings.ts";
import {
  check,
  control,
  fixed,
  type GuideModel,
  loadGuideModel,
  maxAbsDiff,
  row,
  sci,
  section,
  shape,
  show,
  table,
  Trace,
  vec,
  weight,
} from "./lib.ts";

// #region rmsnorm
/** RMSNorm over each row of x (n, dim): x / sqrt(mean(x²) + eps) · weight (dim). */
export function rmsnorm(x: Float32Array, weight: Float32Array, eps: number): Float32Array {
  const dim = weight.length, out = new Float32Array(x.length); // (n, dim)
  for (let r = 0; r < x.length; r += dim) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[r + j] * x[r + j];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[r + j] = x[r + j] * inv * weight[j];
  }
  return out;
}
// #endregion rmsnorm

// #region linear
/** A linear layer: y (n, out) = x (n, in) · Wᵀ, W (out, in) row-major as torch.nn.Linear. */
export function linear(x: Float32Array, W: Float32Array, inF: number): Float32Array {
  const n = x.length / inF, outF = W.length / inF;
  const y = new Float32Array(n * outF); // (n, out)
  for (let t = 0; t < n; t++) {
    for (let o = 0; o < outF; o++) {
      let sum = 0;
      for (let i = 0; i < inF; i++) sum += W[o * inF + i] * x[t * inF + i];
      y[t * outF + o] = sum;
    }
  }
  return y;
}
// #endregion linear

// #region rope
/**
 * RoPE in place on x (n, heads · head_dim), row t at position positions[t]: in every head,
 * pair i is rotated by the angle position · theta^(-2i / head_dim). `interleaved` pairs
 * dimensions (2i, 2i + 1) (Meta, llama2.c); `half` pairs (i, i + head_dim / 2) (HF).
 */
export function rope(x: Float32Array, positions: number[], headDim: number, c: ModelConfig) {
  const width = x.length / positions.length, half = headDim / 2;
  positions.forEach((p, t) => {
    for (let h = t * width; h < (t + 1) * width; h += headDim) {
      for (let i = 0; i < half; i++) {
        const angle = p * Math.pow(c.rope_theta, (-2 * i) / headDim);
        const [a, b] = c.rope_style === "interleaved"
          ? [h + 2 * i, h + 2 * i + 1]
          : [h + i, h + i + half];
        const xa = x[a], xb = x[b];
        x[a] = xa * Math.cos(angle) - xb * Math.sin(angle);
        x[b] = xb * Math.cos(angle) + xa * Math.sin(angle);
      }
    }
  });
}
// #endregion rope

// #region block
/** The tensors of one block, named as llama.cpp (and the reference's trace) names them. */
export type BlockTensors = Record<
  | "attn_norm"
  | "Qcur"
  | "Kcur"
  | "Vcur"
  | "kqv_out"
  | "attn_out"
  | "ffn_inp"
  | "ffn_norm"
  | "ffn_out"
  | "l_out",
  Float32Array
>;

/**
 * One LLaMA block over x (n, dim) at positions 0..n-1:
 *   x += wo · attention(rope(wq · norm(x)), rope(wk · norm(x)), wv · norm(x))
 *   x += w2 · (silu(w1 · norm(x)) * (w3 · norm(x)))
 */
export function block(m: GuideModel, l: number, x: Float32Array): BlockTensors {
  const c = m.config, W = (name: string) => weight(m, `layers.${l}.${name}`);
  const n = x.length / c.dim, positions = Array.from({ length: n }, (_, t) => t);
  const attn_norm = rmsnorm(x, W("attn_norm.weight"), c.norm_eps); // (n, dim)
  const Qcur = linear(attn_norm, W("attn.wq.weight"), c.dim); // (n, n_heads · head_dim)
  const Kcur = linear(attn_norm, W("attn.wk.weight"), c.dim); // (n, n_kv_heads · head_dim)
  const Vcur = linear(attn_norm, W("attn.wv.weight"), c.dim); // (n, n_kv_heads · head_dim)
  rope(Qcur, positions, c.head_dim, c);
  rope(Kcur, positions, c.head_dim, c);
  const kqv_out = attention(Qcur, Kcur, Vcur, n, c); // (n, n_heads · head_dim)
  const attn_out = linear(kqv_out, W("attn.wo.weight"), c.n_heads * c.head_dim); // (n, dim)
  const ffn_inp = x.map((v, i) => v + attn_out[i]); // (n, dim) residual add
  const ffn_norm = rmsnorm(ffn_inp, W("ffn_norm.weight"), c.norm_eps); // (n, dim)
  const gate = linear(ffn_norm, W("ffn.w1.weight"), c.dim); // (n, hidden_dim)
  const up = linear(ffn_norm, W("ffn.w3.weight"), c.dim); // (n, hidden_dim)
  const h = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]); // (n, hidden_dim) silu(g) · u
  const ffn_out = linear(h, W("ffn.w2.weight"), c.hidden_dim); // (n, dim)
  const l_out = ffn_inp.map((v, i) => v + ffn_out[i]); // (n, dim) residual add
  return { attn_norm, Qcur, Kcur, Vcur, kqv_out, attn_out, ffn_inp, ffn_norm, ffn_out, l_out };
}
// #endregion block

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, v, i) => s + v * b[i], 0);
const norm2 = (a: Float32Array) => Math.sqrt(dot(a, a));

async function main() {
  section("the input of layer 0");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer;
  if (c.arch !== "llama") throw new Error("this step builds the LLaMA block");
  const prompt = "Once upon a time, there was a little";
  const ids = tok.encode(prompt);
  const n = ids.length, last = n - 1;
  const trace = new Trace();
  createReference(c, model.weights, { trace: trace.record }).forwardAll(ids, 0);
  const x = embed(weight(model, "tok_embeddings.weight"), ids, c.dim); // (n, dim) step 2
  console.log(`${show(prompt)}: x ${shape(n, c.dim)} (the embedding rows, step 2)`);
  const b = block(model, 0, x);
  const agree = (name: keyof BlockTensors, what: string) => {
    const d = maxAbsDiff(b[name], trace.rows(name, 0, n));
    const detail = `layer 0, ${n} positions, max |diff| ${sci(d)}`;
    check(`${what} equals the reference's ${name}`, d < 1e-5, detail);
  };

  section("RMSNorm");
  const xr = row(x, last, c.dim), nr = row(b.attn_norm, last, c.dim);
  const rms = (v: Float32Array) => Math.sqrt(dot(v, v) / v.length);
  const w = weight(model, "layers.0.attn_norm.weight");
  console.log(`x[${last}]: rms ${fixed(rms(xr))}  ${vec(xr)}`);
  const unit = xr.map((v) => v / rms(xr)); // x / rms(x): rms 1
  console.log(`/ rms    : rms ${fixed(rms(unit))}  ${vec(unit)}`);
  console.log(`· weight : ${vec(nr)}  (attn_norm.weight ${vec(w, 3)})`);
  agree("attn_norm", "our RMSNorm");

  section("q, k, v: three linear layers");
  const qkv = [["q", b.Qcur, "wq"], ["k", b.Kcur, "wk"], ["v", b.Vcur, "wv"]] as const;
  for (const [name, t, wname] of qkv) {
    const W = model.weights.get(`layers.0.attn.${wname}.weight`)!;
    const product = `attn_norm ${shape(n, c.dim)} · ${wname}ᵀ ${shape(...W.shape)}`;
    console.log(`${name} ${shape(n, t.length / n)} = ${product}`);
  }
  agree("Vcur", "our v");

  section("RoPE");
  const half = c.head_dim / 2;
  const style = `rope_style ${c.rope_style}, theta ${c.rope_theta}, head_dim ${c.head_dim}`;
  console.log(`${style}: ${half} pairs per head`);
  const shown = [0, 1, 2, last]; // positions
  const angles: (string | number)[][] = [
    ["pair i", "theta^(-2i/d) rad/pos", ...shown.map((p) => `pos ${p}`)],
  ];
  for (let i = 0; i < half; i++) {
    const f = Math.pow(c.rope_theta, (-2 * i) / c.head_dim);
    angles.push([i, fixed(f, 6), ...shown.map((p) => fixed(p * f, 3))]);
  }
  table(angles);
  agree("Qcur", "our q after RoPE");
  agree("Kcur", "our k after RoPE");
  // Head 0 of q (last position) and of k (position 1), before any rotation.
  const wq = weight(model, "layers.0.attn.wq.weight"),
    wk = weight(model, "layers.0.attn.wk.weight");
  const qv = linear(row(b.attn_norm, last, c.dim), wq, c.dim).slice(0, c.head_dim);
  const kv = linear(row(b.attn_norm, 1, c.dim), wk, c.dim).slice(0, c.head_dim);
  const at = (v: Float32Array, p: number) => {
    const r = v.slice();
    rope(r, [p], c.head_dim, c);
    return r;
  };
  const pairs: [number, number][] = [[5, 3], [12, 10], [105, 103], [5, 4]];
  console.log("q · k after rotating q to position m and k to position n (same two vectors):");
  for (const [m, p] of pairs) {
    console.log(`  m = ${m}, n = ${p} (m - n = ${m - p}): ${fixed(dot(at(qv, m), at(kv, p)), 6)}`);
  }
  const mis = {
    ...c,
    rope_style: c.rope_style === "half" ? "interleaved" as const : "half" as const,
  };
  const wrong = linear(b.attn_norm, wq, c.dim);
  rope(wrong, Array.from({ length: n }, (_, t) => t), c.head_dim, mis);
  const ref = trace.rows("Qcur", 0, n), qDim = c.n_heads * c.head_dim;
  const dAll = maxAbsDiff(wrong, ref), d0 = maxAbsDiff(row(wrong, 0, qDim), row(ref, 0, qDim));
  const where = `max |diff| ${fixed(dAll)}, but ${sci(d0)} at position 0, where every angle is 0`;
  control(`RoPE pairing '${mis.rope_style}' instead of '${c.rope_style}'`, dAll > 1e-3, where);

  section("attention, output projection, residual");
  console.log(`kqv_out ${shape(n, qDim)} = attention(q, k, v) (step 3)`);
  console.log(`attn_out ${shape(n, c.dim)} = kqv_out · woᵀ ${shape(c.dim, qDim)}`);
  const grew = `${fixed(norm2(xr))} -> ${fixed(norm2(row(b.ffn_inp, last, c.dim)))}`;
  console.log(`ffn_inp = x + attn_out; |x[${last}]| ${grew}`);
  agree("attn_out", "our attention output");
  agree("ffn_inp", "our residual stream after attention");

  section("the MLP: SwiGLU");
  const widths = [shape(n, c.dim), shape(n, c.hidden_dim), shape(n, c.dim)];
  console.log(`ffn_norm ${widths[0]} -> w1, w3 ${widths[1]} -> silu(w1) * w3 -> w2 ${widths[2]}`);
  const silu = (v: number) => v / (1 + Math.exp(-v));
  const gelu = (v: number) =>
    0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  const vs = [-3, -1, -0.5, 0, 0.5, 1, 3];
  table([
    ["v", ...vs.map(String)],
    ["silu(v)", ...vs.map((v) => fixed(silu(v), 3))],
    ["gelu(v)", ...vs.map((v) => fixed(gelu(v), 3))],
  ]);
  agree("ffn_out", "our MLP");
  agree("l_out", "our block");

  section("the stack: every layer");
  let h = x;
  const rows: (string | number)[][] = [
    ["layer", `|x[${last}]| in`, "+ attention", "+ MLP", "max |diff| vs reference"],
  ];
  let worst = 0;
  for (let l = 0; l < c.n_layers; l++) {
    const t = block(model, l, h);
    const d = maxAbsDiff(t.l_out, trace.rows("l_out", l, n));
    worst = Math.max(worst, d);
    const length = (m: Float32Array) => fixed(norm2(row(m, last, c.dim)), 3);
    rows.push([l, length(h), length(t.ffn_inp), length(t.l_out), sci(d)]);
    h = t.l_out;
  }
  table(rows);
  const claim = `our ${c.n_layers} blocks equal the reference's l_out after every layer`;
  check(claim, worst < 1e-5, `max |diff| ${sci(worst)}`);
}

if (import.meta.main) await main();
