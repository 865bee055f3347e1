/**
 * The embedding kernel: one row of the token embedding per token (llama2.c `run.c`
 * `forward()`), plus a row of the learned position embedding for GPT-2.
 *
 * @module
 */
import type { OpRenderer } from "./renderer.ts";

/**
 * `embed_D` / `embed_D_pos`: `y (n, D) = e[tokens[start + t]] (+ pe[pos + t])`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { embedOp } from "./embed.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"embed"> = {
 *   op: "embed", group: "embed", layer: -1, inputs: [], outputs: ["x"],
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
  name: (node) => `embed_${node.attrs.dim}${node.attrs.learned_pos ? "_pos" : ""}`,
  kernel(s, name, node) {
    const D = node.attrs.dim, pos = node.attrs.learned_pos;
    const pe = pos ? "pe: Float32Array, " : "";
    s.open(
      `function ${name}(e: Float32Array, ${pe}tokens: ArrayLike<number>, start: number, ` +
        `n: number, pos: number, y: number)`,
    );
    s.comment(`y (n, ${D}) = e[tokens[start + t]]${pos ? " + pe[pos + t]" : ""}`);
    s.open("for (let t = 0; t < n; t++)");
    s.line(`const row = tokens[start + t] * ${D}, out = y + t * ${D};`);
    if (pos) {
      s.line(`const prow = (pos + t) * ${D};`);
      s.line(`for (let i = 0; i < ${D}; i++) A[out + i] = e[row + i] + pe[prow + i];`);
    } else {
      s.line(`for (let i = 0; i < ${D}; i++) A[out + i] = e[row + i];`);
    }
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...node.weights.map(ctx.weight),
    "tokens",
    "start",
    ctx.n,
    "pos",
    String(ctx.offset(node.outputs[0])),
  ],
};
