/**
 * The normalisation kernels over each row: RMSNorm (Zhang & Sennrich 2019) and LayerNorm
 * (Ba et al. 2016, biased variance), as in runtime/reference.ts.
 *
 * @module
 */
import { jsNumber as num } from "../js_source.ts";
import type { OpRenderer } from "./renderer.ts";

/**
 * `rmsnorm_D(w, x, y, n)`: `y = x / sqrt(mean(x²) + eps) · w`; `layernorm_D(w, b, x, y, n)`:
 * `y = (x - mean) / sqrt(var + eps) · w + b`. Rows `(n, D)`. `rmsnorm_HxD` normalises each of
 * the H `(D)` segments of a `(n, H·D)` row with the same weight `(D)` (QK-norm: Qwen3 and
 * Gemma 3 `q_norm` / `k_norm` over each head); x may be y (in place).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { normOp } from "./norm.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"norm"> = {
 *   op: "norm", group: "g", layer: 0, inputs: ["x"], outputs: ["y"], weights: ["w"],
 *   attrs: { kind: "rmsnorm", dim: 8, eps: 1e-5 }, doc: "",
 * };
 * const ctx = { rows: 4, backend: "js" as const };
 * assert.equal(normOp.name(node, ctx), "rmsnorm_8");
 * const s = new JsSource();
 * normOp.kernel(s, "rmsnorm_8", node, ctx);
 * assert.match(s.text(), /Math\.sqrt\(ss \/ 8 \+ 0\.00001\)/); // eps is a literal
 * ```
 */
export const normOp: OpRenderer<"norm"> = {
  name: (node) =>
    `${node.attrs.kind}_${
      (node.attrs.heads ?? 1) > 1 ? `${node.attrs.heads}x` : ""
    }${node.attrs.dim}`,
  kernel(s, name, node) {
    const D = node.attrs.dim, eps = num(node.attrs.eps), H = node.attrs.heads ?? 1;
    if (node.attrs.kind === "rmsnorm") {
      s.open(`function ${name}(w: Float32Array, x: number, y: number, n: number)`);
      if (H > 1) {
        s.comment(
          `y (n, ${H}×${D}) = each of the ${H} segments (${D}) / sqrt(mean(seg²) + ${eps}) · w (${D})`,
        );
      } else s.comment(`y (n, ${D}) = x / sqrt(mean(x²) + ${eps}) · w`);
      s.open(H > 1 ? `for (let t = 0; t < n * ${H}; t++)` : "for (let t = 0; t < n; t++)");
      s.line(`const xi = x + t * ${D}, yi = y + t * ${D};`);
      s.line("let ss = 0;");
      s.line(`for (let i = 0; i < ${D}; i++) ss += A[xi + i] * A[xi + i];`);
      s.line(`const inv = 1 / Math.sqrt(ss / ${D} + ${eps});`);
      s.line(`for (let i = 0; i < ${D}; i++) A[yi + i] = A[xi + i] * inv * w[i];`);
      s.close();
      s.close();
      return;
    }
    s.open(`function ${name}(w: Float32Array, b: Float32Array, x: number, y: number, n: number)`);
    s.comment(`y (n, ${D}) = (x - mean) / sqrt(var + ${eps}) · w + b`);
    s.open("for (let t = 0; t < n; t++)");
    s.line(`const xi = x + t * ${D}, yi = y + t * ${D};`);
    s.line("let mean = 0;");
    s.line(`for (let i = 0; i < ${D}; i++) mean += A[xi + i];`);
    s.line(`mean /= ${D};`);
    s.line("let variance = 0;");
    s.line(`for (let i = 0; i < ${D}; i++) variance += (A[xi + i] - mean) * (A[xi + i] - mean);`);
    s.line(`const inv = 1 / Math.sqrt(variance / ${D} + ${eps});`);
    s.line(`for (let i = 0; i < ${D}; i++) A[yi + i] = (A[xi + i] - mean) * inv * w[i] + b[i];`);
    s.close();
    s.close();
  },
  args: (node, ctx) => [
    ...node.weights.map(ctx.weight),
    String(ctx.offset(node.inputs[0])),
    String(ctx.offset(node.outputs[0])),
    ctx.n,
  ],
};
