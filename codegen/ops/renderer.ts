/**
 * The contract of one row of the emitter's op table (tinygrad: "a renderer is a table from
 * op to code"): for a node of its op, a renderer names the kernel, writes the kernel's
 * source once per distinct name, and writes the call site's arguments. Everything it needs
 * is in the node's typed `attrs` and the small contexts below; it never reads the config.
 *
 * @module
 */
import type { GraphNode, NodeOp } from "../graph.ts";
import type { JsSource } from "../js_source.ts";

/** What a renderer knows about the graph a node is in when it names and writes a kernel. */
export interface KernelContext {
  /** Token rows of the graph: 1 = decode (matrix-vector products), T = prefill chunk. */
  rows: number;
  /** `js`: every kernel in JS. `wasm`: matrix products call the WASM SIMD exports `X`. */
  backend: "js" | "wasm";
}

/** What a renderer knows at a call site. */
export interface CallContext extends KernelContext {
  /** The f32 index in the arena (byte offset / 4) of a buffer of this graph. */
  offset(buffer: string): number;
  /** The module's identifier of a weight tensor (`layers.3.attn.wq.weight` → `l3_attn_wq`). */
  weight(name: string): string;
  /** The expression of the rows present at run time: `1` (decode) or `n` (prefill). */
  n: string;
}

/**
 * The renderer of one op. A kernel's name must encode every constant its source depends on
 * (`matvec_2048x768_bias`, `attention_12x4x64_w2048`): the emitter writes a kernel once per
 * distinct name and calls it from every node with that name.
 */
export interface OpRenderer<O extends NodeOp> {
  /** The kernel's name for this node: op and shape, e.g. `rmsnorm_768`. */
  name(node: GraphNode<O>, ctx: KernelContext): string;
  /** Writes the kernel function `name` (its parameters: weights, f32 offsets, runtime values). */
  kernel(s: JsSource, name: string, node: GraphNode<O>, ctx: KernelContext): void;
  /** The call's arguments, in the kernel's parameter order. */
  args(node: GraphNode<O>, ctx: CallContext): string[];
}

/**
 * A number as part of a kernel name: `.` → `p`, `-` → `m` (`0.125` → `0p125`, `1e-5` →
 * `1em5`), so that a constant a kernel's source depends on is in its name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameNumber } from "./renderer.ts";
 * assert.equal(nameNumber(0.125), "0p125");
 * assert.equal(nameNumber(30), "30");
 * ```
 */
export function nameNumber(v: number): string {
  return String(v).replace("-", "m").replace(".", "p").replace("+", "");
}

/** The emitter's op table: one renderer per node op (a missing op is a type error). */
export type OpTable = { [O in NodeOp]: OpRenderer<O> };
