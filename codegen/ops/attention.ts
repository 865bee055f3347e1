/**
 * Causal attention over a KV ring (Vaswani et al. 2017, with GQA: Ainslie et al. 2023) and
 * the store of a step's keys and values into the ring. Each layer has a K and a V ring of
 * `kv_capacity` slots; the token at absolute position p lives in slot `p % kv_capacity`,
 * and attends to positions `max(0, p - kv_capacity + 1) .. p` (a sliding window once the
 * ring wraps), as runtime/reference.ts does one token at a time.
 *
 * @module
 */
import { jsNumber as num } from "../js_source.ts";
import type { OpRenderer } from "./renderer.ts";

/**
 * `attention_QxKxD_wC(q, k, v, kr, vr, o, att, pos, n)`: for each of the n rows t (position
 * p = pos + t) and query head h, `o[t][h] = softmax(q[t][h] · kᵀ · scale) · v` over the
 * window, reading positions before `pos` from the rings kr/vr `(C, K·D)` and the step's own
 * rows from k/v; `att (C)` holds one head's scores. It runs before `kv_store`, so a chunk
 * longer than the window never overwrites a slot one of its own tokens still reads.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { attentionOp } from "./attention.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"attention"> = {
 *   op: "attention", group: "g", layer: 0, inputs: ["q", "k", "v", "kr", "vr"],
 *   outputs: ["o", "att"], weights: [],
 *   attrs: { n_heads: 12, n_kv_heads: 4, head_dim: 64, kv_capacity: 2048, scale: 0.125 },
 *   doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(attentionOp.name(node, ctx), "attention_12x4x64_w2048");
 * const s = new JsSource();
 * attentionOp.kernel(s, "attention_12x4x64_w2048", node, ctx);
 * assert.match(s.text(), /kvh = \(\(h \/ 3\) \| 0\) \* 64/); // GQA: 3 query heads per KV head
 * ```
 */
export const attentionOp: OpRenderer<"attention"> = {
  name: ({ attrs: a }) => `attention_${a.n_heads}x${a.n_kv_heads}x${a.head_dim}_w${a.kv_capacity}`,
  kernel(s, name, node) {
    const { n_heads, n_kv_heads, head_dim: hd, kv_capacity: cap, scale } = node.attrs;
    const qDim = n_heads * hd, kvDim = n_kv_heads * hd;
    const G = n_heads / n_kv_heads; // query heads per KV head
    const HU = hd - (hd % 4); // head dims covered by the unroll by 4
    s.open(
      `function ${name}(q: number, k: number, v: number, kr: number, vr: number, ` +
        `o: number, att: number, pos: number, n: number)`,
    );
    s.comment(
      `o (n, ${qDim}) = softmax(q · kᵀ · ${num(scale)}) · v per head; ` +
        `head h reads KV head h / ${G}`,
    );
    s.comment(
      `token t (position p = pos + t) sees positions max(0, p - ${cap - 1}) .. p: ` +
        `those < pos from the rings kr/vr (${cap}, ${kvDim}), the rest from this step's k/v`,
    );
    s.open("for (let t = 0; t < n; t++)");
    s.line("const p = pos + t;");
    s.line(`const start = p >= ${cap} ? p - ${cap - 1} : 0;`);
    s.open(`for (let h = 0; h < ${n_heads}; h++)`);
    s.line(
      `const qh = q + t * ${qDim} + h * ${hd}, kvh = ${
        G === 1 ? "h" : `((h / ${G}) | 0)`
      } * ${hd};`,
    );
    s.line("let max = -Infinity;");
    s.open("for (let u = start; u <= p; u++)");
    s.line(
      `const ku = (u < pos ? kr + (u % ${cap}) * ${kvDim} : k + (u - pos) * ${kvDim}) + kvh;`,
    );
    s.line("let d0 = 0, d1 = 0, d2 = 0, d3 = 0;");
    if (HU > 0) {
      s.open(`for (let i = 0; i < ${HU}; i += 4)`);
      s.line("d0 += A[qh + i] * A[ku + i];");
      s.line("d1 += A[qh + i + 1] * A[ku + i + 1];");
      s.line("d2 += A[qh + i + 2] * A[ku + i + 2];");
      s.line("d3 += A[qh + i + 3] * A[ku + i + 3];");
      s.close();
    }
    for (let i = HU; i < hd; i++) s.line(`d0 += A[qh + ${i}] * A[ku + ${i}];`);
    s.line(`const score = (d0 + d1 + d2 + d3) * ${num(scale)};`);
    s.line("A[att + u - start] = score;");
    s.line("if (score > max) max = score;");
    s.close();
    s.line("let sum = 0;");
    s.open("for (let u = att; u <= att + p - start; u++)");
    s.line("const e = Math.exp(A[u] - max);");
    s.line("A[u] = e;");
    s.line("sum += e;");
    s.close();
    s.line(`const oh = o + t * ${qDim} + h * ${hd}, inv = 1 / sum;`);
    s.line(`for (let i = 0; i < ${hd}; i++) A[oh + i] = 0;`);
    s.open("for (let u = start; u <= p; u++)");
    s.line(
      `const vu = (u < pos ? vr + (u % ${cap}) * ${kvDim} : v + (u - pos) * ${kvDim}) + kvh;`,
    );
    s.line("const a = A[att + u - start] * inv;");
    s.line(`for (let i = 0; i < ${hd}; i++) A[oh + i] += a * A[vu + i];`);
    s.close();
    s.close();
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...[...node.inputs, ...node.outputs].map((b) => String(ctx.offset(b))),
    "pos",
    ctx.n,
  ],
};

/**
 * `kv_store_KD_wC(k, v, kr, vr, pos, n)`: ring slot `(pos + t) % C` of kr/vr `(C, KD)` =
 * k[t], v[t] (keys after RoPE).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvStoreOp } from "./attention.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"kv_store"> = {
 *   op: "kv_store", group: "g", layer: 0, inputs: ["k", "v"], outputs: ["kr", "vr"],
 *   weights: [], attrs: { kv_dim: 256, kv_capacity: 2048 }, doc: "",
 * };
 * assert.equal(kvStoreOp.name(node, { rows: 1, backend: "js" }), "kv_store_256_w2048");
 * ```
 */
export const kvStoreOp: OpRenderer<"kv_store"> = {
  name: ({ attrs: a }) => `kv_store_${a.kv_dim}_w${a.kv_capacity}`,
  kernel(s, name, node) {
    const { kv_dim: kvDim, kv_capacity: cap } = node.attrs;
    s.open(
      `function ${name}(k: number, v: number, kr: number, vr: number, pos: number, n: number)`,
    );
    s.comment(
      `rings kr/vr (${cap}, ${kvDim}): slot (pos + t) % ${cap} = k[t], v[t] ` +
        `(keys after RoPE)`,
    );
    s.open("for (let t = 0; t < n; t++)");
    s.line(`const slot = ((pos + t) % ${cap}) * ${kvDim};`);
    s.line(`A.copyWithin(kr + slot, k + t * ${kvDim}, k + (t + 1) * ${kvDim});`);
    s.line(`A.copyWithin(vr + slot, v + t * ${kvDim}, v + (t + 1) * ${kvDim});`);
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...[...node.inputs, ...node.outputs].map((b) => String(ctx.offset(b))),
    "pos",
    ctx.n,
  ],
};
