/**
 * Rotary position embedding (Su et al. 2021 "RoFormer") in two kernels, as llama.cpp
 * computes theta per position instead of tabulating it:
 * - `rope_cos_sin_H` computes, once per step, the cos and sin `(n, H)` (H = head_dim / 2) of
 *   the step's positions from the `(H)` inverse frequencies (core/rope.ts, the arena's
 *   `rope.inv_freq`, filled by `init()`);
 * - `rope_<style>_QxKxD` rotates every head of q and k by them, in every layer.
 *
 * @module
 */
import { jsNumber as num } from "../js_source.ts";
import { nameNumber, type OpRenderer } from "./renderer.ts";

/**
 * `rope_cos_sin_H(inv_freq, pos, cos, sin, n)`: `cos[t][i], sin[t][i] = cos, sin(pos[t] ·
 * inv_freq[i])` with pos the step's int32 positions; the angle is a double, the results f32.
 * `rope_cos_sin_H_mM` multiplies both by the literal M (YaRN's attention factor).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { ropeCosSinOp } from "./rope.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"rope_cos_sin"> = {
 *   op: "rope_cos_sin", group: "rope", layer: -1,
 *   inputs: ["rope.inv_freq", "step.positions"], outputs: ["rope.cos", "rope.sin"],
 *   weights: [], attrs: { half: 32 }, doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(ropeCosSinOp.name(node, ctx), "rope_cos_sin_32");
 * const s = new JsSource();
 * ropeCosSinOp.kernel(s, "rope_cos_sin_32", node, ctx);
 * assert.match(s.text(), /const angle = p \* A\[inv_freq \+ i\];/);
 * ```
 */
export const ropeCosSinOp: OpRenderer<"rope_cos_sin"> = {
  name: (node) =>
    `rope_cos_sin_${node.attrs.half}` +
    ((node.attrs.mscale ?? 1) === 1 ? "" : `_m${nameNumber(node.attrs.mscale!)}`),
  kernel(s, name, node) {
    const H = node.attrs.half, M = node.attrs.mscale ?? 1;
    s.open(`function ${name}(inv_freq: number, pos: number, cos: number, sin: number, n: number)`);
    s.comment(
      `cos, sin (n, ${H}) = cos, sin(pos[t] · inv_freq (${H}))` +
        (M === 1 ? "" : ` · ${num(M)} (attention factor)`) + ", once per step",
    );
    s.open("for (let t = 0; t < n; t++)");
    s.line(`const p = I[pos + t], ct = cos + t * ${H}, st = sin + t * ${H};`);
    s.open(`for (let i = 0; i < ${H}; i++)`);
    s.line("const angle = p * A[inv_freq + i];");
    s.line(M === 1 ? "A[ct + i] = Math.cos(angle);" : `A[ct + i] = Math.cos(angle) * ${num(M)};`);
    s.line(M === 1 ? "A[st + i] = Math.sin(angle);" : `A[st + i] = Math.sin(angle) * ${num(M)};`);
    s.close();
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...[...node.inputs, ...node.outputs].map((b) => String(ctx.offset(b))),
    ctx.n,
  ],
};

/**
 * `rope_<style>_QxKxD[_rR](q, k, cos, sin, n)`: rotates pair i of every head of q `(n, Q·D)`
 * and k `(n, K·D)` by the angle of row t: `a' = a cos - b sin`, `b' = b cos + a sin`, with
 * `(a, b)` = dims `(i, i + R/2)` (`half`, HF rotate_half) or `(2i, 2i + 1)`
 * (`interleaved`, llama2.c and Meta's reference), i < R/2; R = D, or the `rot_dim` of a
 * partial rotary (Phi-3 `partial_rotary_factor`: dims R .. D - 1 pass through).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { ropeOp } from "./rope.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"rope"> = {
 *   op: "rope", group: "g", layer: 0, inputs: ["q", "k", "rope.cos", "rope.sin"],
 *   outputs: ["q", "k"], weights: [],
 *   attrs: { style: "half", n_heads: 4, n_kv_heads: 2, head_dim: 8 }, doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(ropeOp.name(node, ctx), "rope_half_4x2x8");
 * const s = new JsSource();
 * ropeOp.kernel(s, "rope_half_4x2x8", node, ctx);
 * assert.match(s.text(), /const a = A\[h \+ i\], b = A\[h \+ i \+ 4\];/);
 * ```
 */
export const ropeOp: OpRenderer<"rope"> = {
  name: ({ attrs: a }) =>
    `rope_${a.style}_${a.n_heads}x${a.n_kv_heads}x${a.head_dim}` +
    ((a.rot_dim ?? a.head_dim) === a.head_dim ? "" : `_r${a.rot_dim}`),
  kernel(s, name, node) {
    const { style, n_heads, n_kv_heads, head_dim: D } = node.attrs;
    const R = node.attrs.rot_dim ?? D;
    const H = R / 2;
    s.open(`function ${name}(q: number, k: number, cos: number, sin: number, n: number)`);
    s.comment(
      `RoPE (${style}) on q (n, ${n_heads}×${D}) and k (n, ${n_kv_heads}×${D})` +
        (R === D ? "" : `: the first ${R} dims of each head (partial rotary)`),
    );
    s.comment(
      `pair (a, b) = ${style === "half" ? `(i, i + ${H})` : "(2i, 2i + 1)"} ` +
        `rotated by the angle whose cos, sin (n, ${H}) are at cos, sin`,
    );
    s.open("for (let t = 0; t < n; t++)");
    s.line(`const qt = q + t * ${n_heads * D}, kt = k + t * ${n_kv_heads * D};`);
    s.line(`const ct = cos + t * ${H}, st = sin + t * ${H};`);
    s.open(`for (let i = 0; i < ${H}; i++)`);
    s.line("const c = A[ct + i], s = A[st + i];");
    const ia = style === "half" ? "i" : "2 * i";
    const ib = style === "half" ? `i + ${H}` : "2 * i + 1";
    for (const [buf, heads] of [["qt", n_heads], ["kt", n_kv_heads]] as const) {
      s.open(`for (let h = ${buf}; h < ${buf} + ${heads * D}; h += ${D})`);
      s.line(`const a = A[h + ${ia}], b = A[h + ${ib}];`);
      s.line(`A[h + ${ia}] = a * c - b * s;`);
      s.line(`A[h + ${ib}] = b * c + a * s;`);
      s.close();
    }
    s.close();
    s.close();
    s.close();
  },
  args: (node, ctx) => [...node.inputs.map((b) => String(ctx.offset(b))), ctx.n],
};
