/**
 * Step 7 of the guide: the KV cache and the ring buffer. Prefill fills a cache of keys and
 * values, decode runs one token against it; a ring of W slots turns it into sliding-window
 * attention. Checked against the no-cache forward of step 5, gollm's reference with its own
 * ring (runtime/reference.ts), and the paged KV pools inside the JIT's arena.
 *
 * Run: `deno run -A docs/guide/07_kv_cache.ts` (page: docs/guide/07_kv_cache.md).
 *
 * @module
 */
import type { ModelConfig } from "../../core/config.ts";
import { compileModel } from "../../codegen/compile.ts";
import { findBuffer } from "../../codegen/plan.ts";
import { createReference } from "../../runtime/reference.ts";
import { softmax } from "./03_attention.ts";
import { block, linear, rmsnorm, rope } from "./04_block.ts";
import { forward } from "./05_forward.ts";
import { embed } from "./02_embeddings.ts";
import {
  check,
  fixed,
  type GuideModel,
  int,
  loadGuideModel,
  maxAbsDiff,
  measured,
  row,
  sci,
  section,
  shape,
  show,
  weight,
} from "./lib.ts";

// #region cache
/** Per layer, the keys (after RoPE) and values of the positions seen so far, one slot each. */
export class KvCache {
  readonly k: Float32Array[] = []; // n_layers × (slots, kv_dim)
  readonly v: Float32Array[] = []; // n_layers × (slots, kv_dim)
  constructor(readonly c: ModelConfig, readonly slots: number) {
    const kvDim = c.n_kv_heads * c.head_dim;
    for (let l = 0; l < c.n_layers; l++) {
      this.k.push(new Float32Array(slots * kvDim));
      this.v.push(new Float32Array(slots * kvDim));
    }
  }
  /** The slot of a position: a ring, so position `slots` reuses slot 0. */
  slot(pos: number): number {
    return pos % this.slots;
  }
}

/** Prefill: step 4's blocks over the whole prompt at once, keeping every layer's K and V. */
export function prefill(m: GuideModel, cache: KvCache, ids: number[]): Float32Array {
  const c = m.config, kvDim = c.n_kv_heads * c.head_dim;
  let x = embed(weight(m, "tok_embeddings.weight"), ids, c.dim); // (n, dim)
  for (let l = 0; l < c.n_layers; l++) {
    const b = block(m, l, x);
    ids.forEach((_, p) => {
      cache.k[l].set(row(b.Kcur, p, kvDim), cache.slot(p) * kvDim);
      cache.v[l].set(row(b.Vcur, p, kvDim), cache.slot(p) * kvDim);
    });
    x = b.l_out;
  }
  return head(m, row(x, ids.length - 1, c.dim)); // (vocab_size) logits of the last position
}

/** Decode: one token at position `pos`, attending to the cached window. Logits (vocab_size). */
export function decode(m: GuideModel, cache: KvCache, id: number, pos: number): Float32Array {
  const c = m.config, hd = c.head_dim, kvDim = c.n_kv_heads * hd;
  const W = (l: number, name: string) => weight(m, `layers.${l}.${name}`);
  const first = Math.max(0, pos - cache.slots + 1); // oldest position still in the ring
  const x = embed(weight(m, "tok_embeddings.weight"), [id], c.dim); // (1, dim)
  for (let l = 0; l < c.n_layers; l++) {
    const h = rmsnorm(x, W(l, "attn_norm.weight"), c.norm_eps); // (1, dim)
    const q = linear(h, W(l, "attn.wq.weight"), c.dim); // (1, n_heads · head_dim)
    const k = linear(h, W(l, "attn.wk.weight"), c.dim); // (1, kv_dim)
    rope(q, [pos], hd, c);
    rope(k, [pos], hd, c);
    cache.k[l].set(k, cache.slot(pos) * kvDim); // the only K, V computed this step
    cache.v[l].set(linear(h, W(l, "attn.wv.weight"), c.dim), cache.slot(pos) * kvDim);
    const out = new Float32Array(c.n_heads * hd); // (n_heads · head_dim)
    for (let hq = 0; hq < c.n_heads; hq++) {
      const kvh = Math.floor(hq / (c.n_heads / c.n_kv_heads)) * hd;
      const w = new Float64Array(pos - first + 1); // scores over the window
      for (let u = first; u <= pos; u++) {
        const s = cache.slot(u) * kvDim + kvh;
        for (let i = 0; i < hd; i++) w[u - first] += q[hq * hd + i] * cache.k[l][s + i];
        w[u - first] /= Math.sqrt(hd);
      }
      softmax(w);
      for (let u = first; u <= pos; u++) {
        const s = cache.slot(u) * kvDim + kvh;
        for (let i = 0; i < hd; i++) out[hq * hd + i] += w[u - first] * cache.v[l][s + i];
      }
    }
    const a = linear(out, W(l, "attn.wo.weight"), c.n_heads * hd);
    for (let j = 0; j < c.dim; j++) x[j] += a[j]; // residual
    const f = rmsnorm(x, W(l, "ffn_norm.weight"), c.norm_eps);
    const g = linear(f, W(l, "ffn.w1.weight"), c.dim), up = linear(f, W(l, "ffn.w3.weight"), c.dim);
    const hidden = g.map((v, i) => (v / (1 + Math.exp(-v))) * up[i]); // silu(w1) * w3
    const d = linear(hidden, W(l, "ffn.w2.weight"), c.hidden_dim);
    for (let j = 0; j < c.dim; j++) x[j] += d[j]; // residual
  }
  return head(m, x);
}

/** Final norm and LM head of one row (dim): logits (vocab_size). */
function head(m: GuideModel, x: Float32Array): Float32Array {
  const c = m.config;
  const h = rmsnorm(x, weight(m, "norm.weight"), c.norm_eps);
  return linear(h, weight(m, c.tie_embeddings ? "tok_embeddings.weight" : "output.weight"), c.dim);
}
// #endregion cache

const argmax = (v: Float32Array) => v.indexOf(Math.max(...v));

async function main() {
  section("the work without a cache");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer, V = c.vocab_size;
  const kvDim = c.n_kv_heads * c.head_dim, qDim = c.n_heads * c.head_dim;
  const prompt = tok.encode("Once upon a time");
  const steps = 24;
  const perLayer = c.dim * (qDim + 2 * kvDim) + qDim * c.dim + 3 * c.dim * c.hidden_dim;
  const perToken = c.n_layers * perLayer + V * c.dim; // multiply-adds of one position
  let again = 0;
  for (let s = 0; s < steps; s++) again += (prompt.length + s + 1) * perToken;
  const once = (prompt.length + steps) * perToken;
  console.log(`${prompt.length} prompt tokens, then ${steps} generated`);
  console.log(`one position, one pass: ${int(perToken)} multiply-adds`);
  console.log(`re-running every position for every new token: ${int(again)} multiply-adds`);
  console.log(
    `each position once, its K and V kept: ${int(once)} (${fixed(again / once, 1)}x less)`,
  );

  section("prefill, then decode");
  let t0 = performance.now();
  const full = [...prompt];
  const noCache: Float32Array[] = [];
  for (let s = 0; s < steps; s++) {
    const logits = row(forward(model, full), full.length - 1, V); // step 5: everything again
    noCache.push(logits);
    full.push(argmax(logits));
  }
  const tNoCache = performance.now() - t0;
  t0 = performance.now();
  const cache = new KvCache(c, c.context_length);
  const withCache: Float32Array[] = [prefill(model, cache, prompt)];
  const ids = [...prompt, argmax(withCache[0])];
  for (let s = 1; s < steps; s++) {
    const logits = decode(model, cache, ids[ids.length - 1], ids.length - 1);
    withCache.push(logits);
    ids.push(argmax(logits));
  }
  const tCache = performance.now() - t0;
  const kv = shape(prompt.length, kvDim);
  console.log(
    `prefill: ${prompt.length} rows at once -> K, V ${kv} per layer; logits of the last row`,
  );
  console.log(
    "decode: 1 row per step -> 1 new K, V row per layer; attention reads all cached rows",
  );
  console.log(`greedy text: ${show(tok.decode(ids))}`);
  let worst = 0;
  for (let s = 0; s < steps; s++) worst = Math.max(worst, maxAbsDiff(noCache[s], withCache[s]));
  const claim = "cached decode gives step 5's no-cache logits at every step";
  check(claim, worst < 1e-5, `${steps} steps, max |diff| ${sci(worst)}`);
  const ref = createReference(c, model.weights);
  let refWorst = maxAbsDiff(ref.forward(prompt, 0), withCache[0]);
  for (let s = 1; s < steps; s++) {
    const pos = prompt.length + s - 1;
    refWorst = Math.max(refWorst, maxAbsDiff(ref.forward([ids[pos]], pos), withCache[s]));
  }
  const claim2 = "and the reference's, token by token through its own cache";
  check(claim2, refWorst < 1e-5, `max |diff| ${sci(refWorst)}`);
  measured(`${steps} tokens without a cache`, `${fixed(tNoCache, 0)} ms`);
  measured(`${steps} tokens with a cache`, `${fixed(tCache, 0)} ms`);

  section("what the cache costs");
  const bytes = 2 * c.n_layers * kvDim * 4;
  console.log(
    `per token: 2 (K, V) × ${c.n_layers} layers × kv_dim ${kvDim} × 4 bytes = ${int(bytes)} B`,
  );
  console.log(`at the full context of ${c.context_length}: ${int(bytes * c.context_length)} bytes`);
  const l3 = 2 * 32 * 8 * 128 * 2, gib = fixed((l3 * 8192) / 2 ** 30, 2);
  console.log(`Llama-3-8B (32 layers, 8 KV heads × 128, f16): ${int(l3)} bytes per token`);
  console.log(`  ${gib} GiB for a sequence of 8,192 tokens`);

  section("a ring of 8 slots: sliding-window attention");
  const W = 8;
  const ring = new KvCache(c, W);
  const win = createReference(c, model.weights, { kvCapacity: W });
  const rids = [...prompt];
  let logits = prefill(model, ring, prompt);
  let ringWorst = maxAbsDiff(logits, win.forward(prompt, 0));
  for (let pos = prompt.length; pos < prompt.length + 40; pos++) {
    rids.push(argmax(logits));
    logits = decode(model, ring, rids[pos], pos);
    ringWorst = Math.max(ringWorst, maxAbsDiff(logits, win.forward([rids[pos]], pos)));
    if (pos >= W - 1 && pos <= W + 3) {
      const held = Array.from({ length: W }, (_, s) => pos - (((pos - s) % W) + W) % W);
      const at = `position ${String(pos).padStart(2)} -> slot ${ring.slot(pos)}`;
      console.log(`${at}; slots hold positions [${held.join(", ")}]`);
    }
  }
  const claim3 = `our ${W}-slot ring gives the reference's logits with kvCapacity ${W}`;
  check(claim3, ringWorst < 1e-5, `40 decode steps past the prompt, max |diff| ${sci(ringWorst)}`);
  const all = createReference(c, model.weights), fids = [...prompt];
  let fl = all.forward(prompt, 0);
  while (fids.length < rids.length) {
    fids.push(argmax(fl));
    fl = all.forward([fids.at(-1)!], fids.length - 1);
  }
  console.log(`greedy, window of ${W}:  ${show(tok.decode(rids))}`);
  console.log(`greedy, all context: ${show(tok.decode(fids))}`);

  section("the engine's cache: paged blocks");
  const jit = compileModel(c, model.weights, { kvCapacity: 64 });
  const L = jit.plan.layout;
  const table = Array.from({ length: L.numBlocks }, (_, b) => b).join(", ");
  const pools = `${L.numBlocks} blocks × ${L.blockSize} positions`;
  console.log(`compileModel(kvCapacity 64): per layer, K and V pools of ${pools}`);
  console.log(`block table of the sequence: [${table}]`);
  jit.forward(prompt, 0);
  for (let s = 0; s + 1 < steps; s++) jit.forward([ids[prompt.length + s]], prompt.length + s);
  const n = prompt.length + steps - 1; // positions the JIT has run
  const A = new Float32Array(jit.memory.buffer);
  let poolWorst = 0;
  for (let l = 0; l < c.n_layers; l++) {
    const base = findBuffer(jit.plan, "decode", `kv.l${l}.k`).offset / 4;
    // One sequence owns blocks 0, 1, 2, ... in order: position p sits in row p of the pool.
    const pool = A.subarray(base, base + n * kvDim);
    poolWorst = Math.max(poolWorst, maxAbsDiff(pool, cache.k[l].subarray(0, n * kvDim)));
  }
  const at = findBuffer(jit.plan, "decode", "kv.l0.k").offset;
  console.log(`kv.l0.k: ${shape(L.numBlocks * L.blockSize, kvDim)} at arena byte ${at}`);
  const claim4 = "the keys in the JIT's pools are our cached keys";
  check(
    claim4,
    poolWorst < 1e-5,
    `${c.n_layers} layers × ${n} positions × ${kvDim}, max |diff| ${sci(poolWorst)}`,
  );
}

if (import.meta.main) await main();
