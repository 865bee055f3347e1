/**
 * The row-copy kernels: the embedding, one row of the token embedding per token (llama2.c
 * `run.c` `forward()`) plus a row of the learned position embedding for GPT-2, and the
 * gather of the out rows before the LM head.
 *
 * @module
 */
import { jsNumber as num } from "../js_source.ts";
import { nameNumber, type OpRenderer } from "./renderer.ts";

/**
 * `embed_D(e, tok, y, n)` / `embed_D_pos(e, pe, tok, pos, y, n)`: `y (n, D) = e[tok[t]]
 * (+ pe[pos[t]])`, with tok and pos the step's int32 rows; `embed_D_xS` multiplies the
 * token row by the literal S (Gemma's sqrt(dim) embedding scale).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { embedOp } from "./embed.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"embed"> = {
 *   op: "embed", group: "embed", layer: -1, inputs: ["step.tokens"], outputs: ["x"],
 *   weights: ["tok_embeddings.weight"], attrs: { dim: 8, learned_pos: false }, doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(embedOp.name(node, ctx), "embed_8");
 * const s = new JsSource();
 * embedOp.kernel(s, "embed_8", node, ctx);
 * assert.match(s.text(), /A\[out \+ i\] = e\[row \+ i\]/);
 * ```
 */
export const embedOp: OpRenderer<"embed"> = {
  name: (node) =>
    `embed_${node.attrs.dim}${node.attrs.learned_pos ? "_pos" : ""}` +
    ((node.attrs.scale ?? 1) === 1 ? "" : `_x${nameNumber(node.attrs.scale!)}`),
  kernel(s, name, node) {
    const D = node.attrs.dim, pos = node.attrs.learned_pos;
    const S = node.attrs.scale ?? 1;
    const e = S === 1 ? "e[row + i]" : `e[row + i] * ${num(S)}`;
    s.open(
      pos
        ? `function ${name}(e: Float32Array, pe: Float32Array, tok: number, pos: number, ` +
          `y: number, n: number)`
        : `function ${name}(e: Float32Array, tok: number, y: number, n: number)`,
    );
    s.comment(
      `y (n, ${D}) = e[tok[t]]${S === 1 ? "" : ` · ${num(S)}`}${pos ? " + pe[pos[t]]" : ""}`,
    );
    s.open("for (let t = 0; t < n; t++)");
    s.line(`const row = I[tok + t] * ${D}, out = y + t * ${D};`);
    if (pos) {
      s.line(`const prow = I[pos + t] * ${D};`);
      s.line(`for (let i = 0; i < ${D}; i++) A[out + i] = ${e} + pe[prow + i];`);
    } else {
      s.line(`for (let i = 0; i < ${D}; i++) A[out + i] = ${e};`);
    }
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...node.weights.map(ctx.weight),
    ...[...node.inputs, ...node.outputs].map((b) => String(ctx.offset(b))),
    ctx.n,
  ],
};

/**
 * `gather_rows_D(x, out_rows, y, n)`: `y[i] (D) = x[out_rows[i]]` for the n out rows: the
 * rows of the step whose logits are wanted, gathered before the final norm and LM head.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { gatherRowsOp } from "./embed.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"gather_rows"> = {
 *   op: "gather_rows", group: "lm_head", layer: -1, rows: "out",
 *   inputs: ["x", "step.out_rows"], outputs: ["x_out"], weights: [], attrs: { dim: 8 }, doc: "",
 * };
 * const s = new JsSource();
 * gatherRowsOp.kernel(s, "gather_rows_8", node, { rows: 4, backend: "js" });
 * assert.match(s.text(), /const r = x \+ I\[out_rows \+ i\] \* 8;/);
 * ```
 */
export const gatherRowsOp: OpRenderer<"gather_rows"> = {
  name: (node) => `gather_rows_${node.attrs.dim}`,
  kernel(s, name, node) {
    const D = node.attrs.dim;
    s.open(`function ${name}(x: number, out_rows: number, y: number, n: number)`);
    s.comment(`y (n, ${D}) = x[out_rows[i]] for the n out rows`);
    s.open("for (let i = 0; i < n; i++)");
    s.line(`const r = x + I[out_rows + i] * ${D};`);
    s.line(`A.copyWithin(y + i * ${D}, r, r + ${D});`);
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...[...node.inputs, ...node.outputs].map((b) => String(ctx.offset(b))),
    ctx.n,
  ],
};
