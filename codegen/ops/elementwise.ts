/**
 * Element-wise kernels over `(n, D)` rows: the residual add and the MLP activations, SwiGLU
 * (Shazeer 2020) and GELU with the tanh approximation (GPT-2, HF `gelu_new`).
 *
 * @module
 */
import { jsNumber as num } from "../js_source.ts";
import type { CallContext, OpRenderer } from "./renderer.ts";

/** The f32 offsets of a node's inputs, then the row count: the call of every kernel here. */
const offsetsThenRows = (inputs: string[], ctx: CallContext) => [
  ...inputs.map((b) => String(ctx.offset(b))),
  ctx.n,
];

/**
 * `add_D(x, y, n)`: `x (n, D) += y (n, D)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addOp } from "./elementwise.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"add"> = {
 *   op: "add", group: "g", layer: 0, inputs: ["x", "y"], outputs: ["x"], weights: [],
 *   attrs: { dim: 48 }, doc: "",
 * };
 * const offsets: Record<string, number> = { x: 0, y: 64 };
 * const ctx = { rows: 1, backend: "js" as const, n: "1", weight: (w: string) => w };
 * assert.equal(addOp.name(node, ctx), "add_48");
 * assert.deepEqual(addOp.args(node, { ...ctx, offset: (b) => offsets[b] }), ["0", "64", "1"]);
 * ```
 */
export const addOp: OpRenderer<"add"> = {
  name: (node) => `add_${node.attrs.dim}`,
  kernel(s, name, node) {
    const D = node.attrs.dim;
    s.open(`function ${name}(x: number, y: number, n: number)`);
    s.comment(`x (n, ${D}) += y (n, ${D})`);
    s.line(`for (let i = 0; i < n * ${D}; i++) A[x + i] += A[y + i];`);
    s.close();
  },
  args: (node, ctx) => offsetsThenRows(node.inputs, ctx),
};

/** `swiglu_H(g, u, n)`: `g (n, H) = silu(g) · u`, silu(a) = a / (1 + e^-a). */
export const swigluOp: OpRenderer<"swiglu"> = {
  name: (node) => `swiglu_${node.attrs.dim}`,
  kernel(s, name, node) {
    const H = node.attrs.dim;
    s.open(`function ${name}(g: number, u: number, n: number)`);
    s.comment(`g (n, ${H}) = silu(g) * u`);
    s.open(`for (let i = 0; i < n * ${H}; i++)`);
    s.line("const a = A[g + i];");
    s.line("A[g + i] = (a / (1 + Math.exp(-a))) * A[u + i];");
    s.close();
    s.close();
  },
  args: (node, ctx) => offsetsThenRows(node.inputs, ctx),
};

/** `gelu_H(h, n)`: `h (n, H) = 0.5 h (1 + tanh(sqrt(2/π) (h + 0.044715 h³)))`. */
export const geluOp: OpRenderer<"gelu"> = {
  name: (node) => `gelu_${node.attrs.dim}`,
  kernel(s, name, node) {
    const H = node.attrs.dim;
    s.open(`function ${name}(h: number, n: number)`);
    s.comment(`h (n, ${H}) = 0.5 h (1 + tanh(sqrt(2/π) (h + 0.044715 h³)))`);
    s.open(`for (let i = 0; i < n * ${H}; i++)`);
    s.line("const a = A[h + i];");
    s.line(
      `A[h + i] = 0.5 * a * (1 + Math.tanh(${
        num(Math.sqrt(2 / Math.PI))
      } * (a + 0.044715 * a * a * a)));`,
    );
    s.close();
    s.close();
  },
  args: (node, ctx) => offsetsThenRows(node.inputs, ctx),
};
