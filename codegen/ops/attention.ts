/**
 * Paged attention (vLLM PagedAttention, Kwon et al. 2023) over the causal window of each
 * row (Vaswani et al. 2017, with GQA: Ainslie et al. 2023), and the store of a step's keys
 * and values into the paged K/V pools.
 *
 * Each layer has a K and a V pool of `numBlocks · B` rows (B = block size). Position u of
 * sequence s lives at ring slot `u % ring[s]`, pool row
 * `block_table[s][slot / B] · B + slot % B`; the row at position p attends to positions
 * `max(0, p - W + 1) .. p` with `W = min(window[s], layer window)`, reading them block by
 * block, as runtime/reference.ts does one token at a time over its ring.
 *
 * `kv_store` runs before `attention`, so the rows of one sequence in the same step see each
 * other causally through the cache; the caller makes the ring long enough that no row of a
 * step overwrites a slot another row still reads (core/forward.ts `checkStepInput`).
 *
 * The block table's row stride (`blocks_per_seq`) is one per module, so it is not part of
 * the kernel names; every other constant is.
 *
 * @module
 */
import { jsNumber as num, type JsSource } from "../js_source.ts";
import { type CallContext, nameNumber, type OpRenderer } from "./renderer.ts";

/** `slot >> log2(B)` and `slot & (B - 1)`: the block index and the row in it (B a power of 2). */
function blockOf(
  B: number,
): { block: (slot: string) => string; inBlock: (slot: string) => string } {
  const shift = Math.log2(B);
  return {
    block: (slot) => (shift === 0 ? slot : `(${slot} >> ${shift})`),
    inBlock: (slot) => (shift === 0 ? "0" : `(${slot} & ${B - 1})`),
  };
}

/** The f32 (or int32) offsets of a node's inputs then outputs, then the row count. */
const offsetsThenRows = (buffers: string[], ctx: CallContext) => [
  ...buffers.map((b) => String(ctx.offset(b))),
  ctx.n,
];

/**
 * Emits the walk over the window of one row, block by block: for each block of its
 * sequence, `count` consecutive pool rows starting at pool row `first` (pointer `ptr` into
 * `pool`), with `a` the index into the scores. `body` writes the per-position lines.
 */
function walkBlocks(
  s: JsSource,
  B: number,
  kvDim: number,
  pool: string,
  ptr: string,
  body: () => void,
): void {
  const { block, inBlock } = blockOf(B);
  s.line("a = att;");
  s.open("for (let u = start, slot = first; u <= p;)");
  s.line(
    `const off = ${inBlock("slot").replace(/^\((.*)\)$/, "$1")}; // row of the slot in its block`,
  );
  s.line(`const count = Math.min(${B} - off, p - u + 1); // positions in this block`);
  s.line(`let ${ptr} = ${pool} + (I[bt + ${block("slot")}] * ${B} + off) * ${kvDim} + kvh;`);
  s.open(`for (const end = a + count; a < end; a++, ${ptr} += ${kvDim})`);
  body();
  s.close();
  s.line("u += count;");
  s.line("slot += count;");
  s.line("if (slot === R) slot = 0; // the ring wraps at a block boundary");
  s.close();
}

/**
 * `attention_QxKxD_bB[_wL][_sS][_capC](q, kp, vp, pos, seq, table, ring, window, o, att, n)`:
 * for each of the n rows t (sequence s = seq[t], position p = pos[t]) and query head h,
 * `o[t][h] = softmax(q[t][h] · kᵀ · scale) · v` over positions `max(0, p - W + 1) .. p`
 * of that sequence, read block by block from the pools kp/vp `(numBlocks · B, K·D)`;
 * `att` holds one head's scores. `_sS` names a scale other than 1/sqrt(D) (Gemma's
 * `query_pre_attn_scalar`), `_capC` soft-caps each score to `C · tanh(score / C)` (Gemma 2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { attentionOp } from "./attention.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"attention"> = {
 *   op: "attention", group: "g", layer: 0,
 *   inputs: ["q", "kp", "vp", "pos", "seq", "table", "ring", "window"],
 *   outputs: ["o", "att"], weights: [],
 *   attrs: {
 *     n_heads: 12, n_kv_heads: 4, head_dim: 64, block_size: 16, blocks_per_seq: 130,
 *     layer_window: null, scale: 0.125,
 *   },
 *   doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(attentionOp.name(node, ctx), "attention_12x4x64_b16");
 * const s = new JsSource();
 * attentionOp.kernel(s, "attention_12x4x64_b16", node, ctx);
 * assert.match(s.text(), /kvh = \(\(h \/ 3\) \| 0\) \* 64/); // GQA: 3 query heads per KV head
 * assert.match(s.text(), /I\[bt \+ \(slot >> 4\)\] \* 16/); // block table lookup
 * ```
 */
export const attentionOp: OpRenderer<"attention"> = {
  name: ({ attrs: a }) =>
    `attention_${a.n_heads}x${a.n_kv_heads}x${a.head_dim}_b${a.block_size}` +
    (a.layer_window === null ? "" : `_w${a.layer_window}`) +
    (a.scale === 1 / Math.sqrt(a.head_dim) ? "" : `_s${nameNumber(a.scale)}`) +
    (a.softcap == null ? "" : `_cap${nameNumber(a.softcap)}`),
  kernel(s, name, node) {
    const { n_heads, n_kv_heads, head_dim: hd, scale } = node.attrs;
    const cap = node.attrs.softcap ?? null;
    const { block_size: B, blocks_per_seq: MB, layer_window: LW } = node.attrs;
    const qDim = n_heads * hd, kvDim = n_kv_heads * hd;
    const G = n_heads / n_kv_heads; // query heads per KV head
    const HU = hd - (hd % 4); // head dims covered by the unroll by 4
    s.open(
      `function ${name}(q: number, kp: number, vp: number, pos: number, seq: number, ` +
        `table: number, ring: number, window: number, o: number, att: number, n: number)`,
    );
    s.comment(
      `o (n, ${qDim}) = softmax(` + (cap === null ? "" : `${num(cap)} · tanh(`) +
        `q · kᵀ · ${num(scale)}` + (cap === null ? "" : ` / ${num(cap)})`) + `) · v per head; ` +
        `head h reads KV head h / ${G}`,
    );
    s.comment(
      `row t (sequence s = seq[t], position p = pos[t]) sees positions max(0, p - W + 1) .. p, ` +
        (LW === null ? "W = window[s]" : `W = min(window[s], ${LW})`) +
        "; position u is at ring slot " +
        `u % ring[s], pool row table[s][slot / ${B}] · ${B} + slot % ${B} of kp/vp ` +
        `(blocks · ${B}, ${kvDim}); table (seqs, ${MB})`,
    );
    s.line("let a = att;");
    s.open("for (let t = 0; t < n; t++)");
    s.line("const p = I[pos + t], s = I[seq + t], R = I[ring + s];");
    s.line(
      LW === null ? "const w = I[window + s];" : `const w = Math.min(I[window + s], ${LW});`,
    );
    s.line("const start = p >= w ? p - w + 1 : 0; // oldest position in the window");
    s.line(`const bt = table + s * ${MB}; // the sequence's row of the block table`);
    s.line("const first = start % R; // ring slot of the oldest position");
    s.open(`for (let h = 0; h < ${n_heads}; h++)`);
    s.line(
      `const qh = q + t * ${qDim} + h * ${hd}, kvh = ${
        G === 1 ? "h" : `((h / ${G}) | 0)`
      } * ${hd};`,
    );
    s.comment("scores: att[u - start] = q · k[u] · scale");
    s.line("let max = -Infinity;");
    walkBlocks(s, B, kvDim, "kp", "ku", () => {
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
      s.line(
        cap === null
          ? `const score = (d0 + d1 + d2 + d3) * ${num(scale)};`
          : `const score = ${num(cap)} * Math.tanh((d0 + d1 + d2 + d3) * ${num(scale / cap)});`,
      );
      s.line("A[a] = score;");
      s.line("if (score > max) max = score;");
    });
    s.comment("softmax over the window");
    s.line("let sum = 0;");
    s.open("for (let u = att; u < a; u++)");
    s.line("const e = Math.exp(A[u] - max);");
    s.line("A[u] = e;");
    s.line("sum += e;");
    s.close();
    s.comment("o[t][h] = Σ att[u] · v[u] / sum");
    s.line(`const oh = o + t * ${qDim} + h * ${hd}, inv = 1 / sum;`);
    s.line(`for (let i = 0; i < ${hd}; i++) A[oh + i] = 0;`);
    walkBlocks(s, B, kvDim, "vp", "vu", () => {
      s.line("const wt = A[a] * inv;");
      s.line(`for (let i = 0; i < ${hd}; i++) A[oh + i] += wt * A[vu + i];`);
    });
    s.close();
    s.close();
    s.close();
  },
  args: (node, ctx) => offsetsThenRows([...node.inputs, ...node.outputs], ctx),
};

/**
 * `kv_store_KD_bB(k, v, pos, seq, table, ring, kp, vp, n)`: for each row t (sequence s =
 * seq[t], position p = pos[t]), pool row `table[s][slot / B] · B + slot % B` of kp/vp
 * `(numBlocks · B, KD)`, slot = `p % ring[s]`, = k[t], v[t] (keys after RoPE).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { kvStoreOp } from "./attention.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"kv_store"> = {
 *   op: "kv_store", group: "g", layer: 0,
 *   inputs: ["k", "v", "pos", "seq", "table", "ring"], outputs: ["kp", "vp"],
 *   weights: [], attrs: { kv_dim: 256, block_size: 16, blocks_per_seq: 8 }, doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(kvStoreOp.name(node, ctx), "kv_store_256_b16");
 * const s = new JsSource();
 * kvStoreOp.kernel(s, "kv_store_256_b16", node, ctx);
 * assert.match(s.text(), /I\[table \+ s \* 8 \+ \(slot >> 4\)\] \* 16 \+ \(slot & 15\)/);
 * ```
 */
export const kvStoreOp: OpRenderer<"kv_store"> = {
  name: ({ attrs: a }) => `kv_store_${a.kv_dim}_b${a.block_size}`,
  kernel(s, name, node) {
    const { kv_dim: kvDim, block_size: B, blocks_per_seq: MB } = node.attrs;
    if (node.attrs.k_type === "f16" || node.attrs.v_type === "f16") {
      throw new RangeError(
        `the js backend keeps an f32 KV cache; cacheTypeK / cacheTypeV f16 needs the wasm ` +
          `backend (--backend wasm or auto)`,
      );
    }
    const { block, inBlock } = blockOf(B);
    s.open(
      `function ${name}(k: number, v: number, pos: number, seq: number, table: number, ` +
        `ring: number, kp: number, vp: number, n: number)`,
    );
    s.comment(
      `pools kp/vp (blocks · ${B}, ${kvDim}): row of (s = seq[t], p = pos[t]) = k[t], v[t] ` +
        `(keys after RoPE); slot p % ring[s] in block table[s][slot / ${B}] (table (seqs, ${MB}))`,
    );
    s.open("for (let t = 0; t < n; t++)");
    s.line("const s = I[seq + t], slot = I[pos + t] % I[ring + s];");
    s.line(
      `const row = (I[table + s * ${MB} + ${block("slot")}] * ${B} + ${inBlock("slot")}) * ` +
        `${kvDim};`,
    );
    s.line(`A.copyWithin(kp + row, k + t * ${kvDim}, k + (t + 1) * ${kvDim});`);
    s.line(`A.copyWithin(vp + row, v + t * ${kvDim}, v + (t + 1) * ${kvDim});`);
    s.close();
    s.close();
  },
  args: (node, ctx) => offsetsThenRows([...node.inputs, ...node.outputs], ctx),
};
