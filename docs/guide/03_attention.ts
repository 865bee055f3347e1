/**
 * Step 3 of the guide: attention. Scores, the causal mask, softmax, multi-head and grouped
 * KV heads (GQA) in one short function, run on the real q, k, v of every layer of the model
 * and checked against what gollm's reference forward (runtime/reference.ts) computes.
 *
 * Run: `deno run -A docs/guide/03_attention.ts` (page: docs/guide/03_attention.md).
 *
 * @module
 */
import { createReference } from "../../runtime/reference.ts";
import {
  check,
  control,
  fixed,
  int,
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
} from "./lib.ts";

// #region softmax
/**
 * Softmax in place: w[i] = exp(w[i] - max) / Σ exp(w[j] - max). Subtracting the max changes
 * nothing (it cancels in the division) but keeps exp() from overflowing.
 */
export function softmax(w: Float64Array): void {
  const max = Math.max(...w);
  let sum = 0;
  for (let i = 0; i < w.length; i++) sum += w[i] = Math.exp(w[i] - max);
  for (let i = 0; i < w.length; i++) w[i] /= sum;
}
// #endregion softmax

// #region attention
/** The sizes attention needs (a subset of the model config). */
export interface Heads {
  n_heads: number; // query heads
  n_kv_heads: number; // key/value heads (GQA: fewer than n_heads)
  head_dim: number; // width of one head
}

/**
 * Causal multi-head attention over n positions. q (n, n_heads · head_dim), k and v
 * (n, n_kv_heads · head_dim), row t = position t. Returns (n, n_heads · head_dim): for each
 * position t and head h, the average of the values v[0..t] weighted by
 * softmax(q[t] · k[u] / sqrt(head_dim)) over u = 0..t. Query head h reads KV head
 * floor(h / (n_heads / n_kv_heads)).
 */
export function attention(q: Float32Array, k: Float32Array, v: Float32Array, n: number, c: Heads) {
  const hd = c.head_dim, qDim = c.n_heads * hd, kvDim = c.n_kv_heads * hd;
  const group = c.n_heads / c.n_kv_heads; // query heads per KV head
  const out = new Float32Array(n * qDim); // (n, n_heads · head_dim)
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < c.n_heads; h++) {
      const qh = t * qDim + h * hd, kvh = Math.floor(h / group) * hd;
      const w = new Float64Array(t + 1); // (t + 1) scores: positions 0..t, none later (causal)
      for (let u = 0; u <= t; u++) {
        for (let i = 0; i < hd; i++) w[u] += q[qh + i] * k[u * kvDim + kvh + i];
        w[u] /= Math.sqrt(hd);
      }
      softmax(w); // (t + 1) weights summing to 1
      for (let u = 0; u <= t; u++) {
        for (let i = 0; i < hd; i++) out[qh + i] += w[u] * v[u * kvDim + kvh + i];
      }
    }
  }
  return out;
}
// #endregion attention

/** The weights (t + 1) of head h at position t: the middle of {@linkcode attention}. */
function weightsOf(q: Float32Array, k: Float32Array, t: number, h: number, c: Heads) {
  const hd = c.head_dim, kvh = Math.floor(h / (c.n_heads / c.n_kv_heads)) * hd;
  const raw = new Float64Array(t + 1), w = new Float64Array(t + 1);
  for (let u = 0; u <= t; u++) {
    for (let i = 0; i < hd; i++) {
      raw[u] += q[t * c.n_heads * hd + h * hd + i] * k[u * c.n_kv_heads * hd + kvh + i];
    }
  }
  for (let u = 0; u <= t; u++) w[u] = raw[u] / Math.sqrt(hd);
  const scaled = w.slice();
  softmax(w);
  return { raw, scaled, w };
}

const bar = (p: number, width = 20) => "#".repeat(Math.round(p * width));

async function main() {
  section("the inputs");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer;
  const prompt = "Once upon a time, there was a little";
  const ids = tok.encode(prompt);
  const n = ids.length;
  const pieces = ids.map((id) => tok.tokenPiece(id));
  const trace = new Trace();
  createReference(c, model.weights, { trace: trace.record }).forwardAll(ids, 0);
  const qDim = c.n_heads * c.head_dim, kvDim = c.n_kv_heads * c.head_dim;
  console.log(`${show(prompt)}: ${n} tokens ${pieces.map(show).join(" ")}`);
  console.log(
    `${c.n_layers} layers; each: ${c.n_heads} query heads, ${c.n_kv_heads} KV heads, ` +
      `head_dim ${c.head_dim}`,
  );
  const q = trace.rows("Qcur", 0, n), k = trace.rows("Kcur", 0, n), v = trace.rows("Vcur", 0, n);
  console.log(`layer 0: q ${shape(n, qDim)}  k ${shape(n, kvDim)}  v ${shape(n, kvDim)}`);
  const qLast = row(q, n - 1, qDim).subarray(0, c.head_dim); // head 0 of the last position
  console.log(`q[${n - 1}] head 0 = ${vec(qLast, 8)}`);

  section("one head, one position");
  const t = n - 1, h = 0;
  const { raw, scaled, w } = weightsOf(q, k, t, h, c);
  console.log(`layer 0, head ${h}, position ${t} (${show(pieces[t])}) against positions 0..${t}:`);
  const rows: (string | number)[][] = [
    ["pos", "token", "q·k", `/ sqrt(${c.head_dim})`, "softmax", ""],
  ];
  for (let u = 0; u <= t; u++) {
    const [r, s, p] = [fixed(raw[u], 3), fixed(scaled[u], 3), fixed(w[u], 3)];
    rows.push([u, show(pieces[u]), r, s, p, bar(w[u])]);
  }
  table(rows);
  console.log(`weights sum to ${fixed(w.reduce((a, b) => a + b, 0), 6)}`);
  const kvh = Math.floor(h / (c.n_heads / c.n_kv_heads)) * c.head_dim;
  const o = new Float64Array(c.head_dim);
  for (let u = 0; u <= t; u++) {
    for (let i = 0; i < c.head_dim; i++) o[i] += w[u] * v[u * kvDim + kvh + i];
  }
  console.log(`output = Σ weight · v[u] = ${vec(o, 8)}`);

  section("the causal mask");
  const L = Math.min(2, c.n_layers - 1), H = Math.min(2, c.n_heads - 1);
  const qL = trace.rows("Qcur", L, n), kL = trace.rows("Kcur", L, n);
  console.log(`layer ${L}, head ${H}: row t = weights of position t over positions 0..${n - 1}`);
  console.log(`('.' = masked: a later position, never read)`);
  const grid: (string | number)[][] = [["", ...pieces.map((_, u) => String(u))]];
  for (let r = 0; r < n; r++) {
    const { w } = weightsOf(qL, kL, r, H, c);
    grid.push([`${r} ${pieces[r]}`, ...pieces.map((_, u) => (u <= r ? fixed(w[u], 2) : "."))]);
  }
  table(grid);

  section("all heads, all layers");
  const group = c.n_heads / c.n_kv_heads;
  const mapping = Array.from({ length: c.n_heads }, (_, h) => `${h}->${Math.floor(h / group)}`);
  console.log(`query heads -> KV heads: ${mapping.join(" ")}`);
  let worst = 0;
  for (let l = 0; l < c.n_layers; l++) {
    const [ql, kl, vl] = ["Qcur", "Kcur", "Vcur"].map((name) => trace.rows(name, l, n));
    const ours = attention(ql, kl, vl, n, c); // (n, n_heads · head_dim)
    worst = Math.max(worst, maxAbsDiff(ours, trace.rows("kqv_out", l, n)));
  }
  check(
    "our attention equals the reference's kqv_out, every layer and position",
    worst < 1e-5,
    `${c.n_layers} layers × ${n} positions × ${qDim} values, max |diff| ${sci(worst)}`,
  );
  const perToken = (kv: number) => 2 * c.n_layers * kv * c.head_dim * 4;
  console.log(
    `KV cache per token: ${int(perToken(c.n_kv_heads))} bytes with ${c.n_kv_heads} KV heads; ` +
      `${int(perToken(c.n_heads))} if every query head had its own`,
  );

  section("negative controls");
  const ref0 = trace.rows("kqv_out", 0, n);
  const noMask = attentionWithoutMask(q, k, v, n, c);
  const firstRows = maxAbsDiff(
    noMask.subarray(0, (n - 1) * qDim),
    ref0.subarray(0, (n - 1) * qDim),
  );
  const lastRow = maxAbsDiff(row(noMask, n - 1, qDim), row(ref0, n - 1, qDim));
  control(
    "attention without the causal mask",
    firstRows > 1e-3,
    `max |diff| ${fixed(firstRows)} at positions 0..${n - 2}`,
  );
  const unchanged = `max |diff| ${sci(lastRow)}: it may see every position anyway`;
  console.log(`  (position ${n - 1} is unchanged, ${unchanged})`);
  const swap = (x: Float32Array) => { // KV heads 0 and 1 exchanged in every row
    const y = x.slice(), hd = c.head_dim;
    for (let t = 0; t < n; t++) {
      y.set(x.subarray(t * kvDim + hd, t * kvDim + 2 * hd), t * kvDim);
      y.set(x.subarray(t * kvDim, t * kvDim + hd), t * kvDim + hd);
    }
    return y;
  };
  const swapped = attention(q, swap(k), swap(v), n, c);
  control(
    "KV heads 0 and 1 exchanged",
    maxAbsDiff(swapped, ref0) > 1e-3,
    `max |diff| ${fixed(maxAbsDiff(swapped, ref0))}`,
  );
}

/** {@linkcode attention} with every position seeing all n positions (no mask). */
function attentionWithoutMask(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  n: number,
  c: Heads,
) {
  const hd = c.head_dim, qDim = c.n_heads * hd, kvDim = c.n_kv_heads * hd;
  const out = new Float32Array(n * qDim);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < c.n_heads; h++) {
      const qh = t * qDim + h * hd, kvh = Math.floor(h / (c.n_heads / c.n_kv_heads)) * hd;
      const w = new Float64Array(n);
      for (let u = 0; u < n; u++) {
        for (let i = 0; i < hd; i++) w[u] += q[qh + i] * k[u * kvDim + kvh + i];
        w[u] /= Math.sqrt(hd);
      }
      softmax(w);
      for (let u = 0; u < n; u++) {
        for (let i = 0; i < hd; i++) out[qh + i] += w[u] * v[u * kvDim + kvh + i];
      }
    }
  }
  return out;
}

if (import.meta.main) await main();
