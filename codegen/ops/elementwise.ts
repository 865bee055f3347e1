/**
 * Element-wise kernels over `(n, D)` rows: the residual add, the MLP activations, SwiGLU
 * and GeGLU (Shazeer 2020) and GELU with the tanh approximation (GPT-2, HF `gelu_new`,
 * Gemma's `gelu_pytorch_tanh`), and soft-capping (Gemma 2's final logits).
 *
 * @module
 */
import { jsNumber as num } from "../js_source.ts";
import { type CallContext, nameNumber, type OpRenderer } from "./renderer.ts";

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

/** The tanh GELU of `a` as a JS expression (GPT-2 `gelu_new`, PyTorch `gelu(approximate="tanh")`). */
const geluOf = (a: string) =>
  `0.5 * ${a} * (1 + Math.tanh(${
    num(Math.sqrt(2 / Math.PI))
  } * (${a} + 0.044715 * ${a} * ${a} * ${a})))`;

/**
 * `geglu_H(g, u, n)`: `g (n, H) = gelu_tanh(g) · u` (GeGLU, Shazeer 2020; Gemma's MLP with
 * `gelu_pytorch_tanh`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { gegluOp } from "./elementwise.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"geglu"> = {
 *   op: "geglu", group: "g", layer: 0, inputs: ["g", "u"], outputs: ["g"], weights: [],
 *   attrs: { dim: 64 }, doc: "",
 * };
 * const s = new JsSource();
 * gegluOp.kernel(s, "geglu_64", node, { rows: 1, backend: "js" });
 * assert.match(s.text(), /const act = 0\.5 \* a \* \(1 \+ Math\.tanh\(0\.797884\d* \* \(a \+ 0\.044715/);
 * assert.match(s.text(), /A\[g \+ i\] = act \* A\[u \+ i\];/);
 * ```
 */
export const gegluOp: OpRenderer<"geglu"> = {
  name: (node) => `geglu_${node.attrs.dim}`,
  kernel(s, name, node) {
    const H = node.attrs.dim;
    s.open(`function ${name}(g: number, u: number, n: number)`);
    s.comment(`g (n, ${H}) = gelu_tanh(g) * u`);
    s.open(`for (let i = 0; i < n * ${H}; i++)`);
    s.line("const a = A[g + i];");
    s.line(`const act = ${geluOf("a")};`);
    s.line("A[g + i] = act * A[u + i];");
    s.close();
    s.close();
  },
  args: (node, ctx) => offsetsThenRows(node.inputs, ctx),
};

/**
 * `softcap_D_capC(x, n)`: `x (n, D) = C · tanh(x / C)` (Gemma 2's `final_logit_softcapping`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { softcapOp } from "./elementwise.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"softcap"> = {
 *   op: "softcap", group: "lm_head", layer: -1, rows: "out", inputs: ["logits"],
 *   outputs: ["logits"], weights: [], attrs: { dim: 256, cap: 30 }, doc: "",
 * };
 * const ctx = { rows: 1, backend: "js" as const };
 * assert.equal(softcapOp.name(node, ctx), "softcap_256_cap30");
 * const s = new JsSource();
 * softcapOp.kernel(s, "softcap_256_cap30", node, ctx);
 * assert.match(s.text(), /A\[x \+ i\] = 30 \* Math\.tanh\(A\[x \+ i\] \/ 30\);/);
 * ```
 */
export const softcapOp: OpRenderer<"softcap"> = {
  name: (node) => `softcap_${node.attrs.dim}_cap${nameNumber(node.attrs.cap)}`,
  kernel(s, name, node) {
    const D = node.attrs.dim, C = num(node.attrs.cap);
    s.open(`function ${name}(x: number, n: number)`);
    s.comment(`x (n, ${D}) = ${C} · tanh(x / ${C})`);
    s.line(`for (let i = 0; i < n * ${D}; i++) A[x + i] = ${C} * Math.tanh(A[x + i] / ${C});`);
    s.close();
  },
  args: (node, ctx) => offsetsThenRows(node.inputs, ctx),
};
