/**
 * The WASM renderers of the graph's ops: for a node, the kernels it needs (written once per
 * distinct name) and the code of its call inside a generated group function, where each
 * thread does its share (tinygrad: "a renderer is a table from op to code"; the table is
 * `WASM_OPS` in codegen/emit_wasm.ts, the JS one `OPS` in codegen/emit_js.ts).
 *
 * A group function runs on every thread with the locals `tid`, `nthreads` (the thread and
 * the thread count), `n`, `nOut` (the step's rows and out rows), `scr` (this thread's
 * scratch: quantised activations, then attention scores) and `att`; a call splits its work
 * by rows (norms, embedding, KV store, gather), output rows of the weight (matrix products),
 * heads (RoPE), row × head units (attention, QK-norm) or elements (residual add, SwiGLU,
 * GELU, GeGLU, the final soft-cap); the RoPE cos/sin of the step run on thread 0.
 * Every split gives each output element to exactly one thread and every thread's result is
 * the same sum in the same order, so logits do not depend on the thread count.
 *
 * @module
 */
import {
  attentionGroup,
  attentionShape,
  pagedAttentionKernel,
  pagedAttentionName,
} from "./attention.ts";
import type { GraphNode, NodeOp } from "../graph.ts";
import type { WasmFunc } from "../wasm_asm.ts";
import { actLayout, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { emitRowChunks, emitShare } from "./barrier.ts";
import { embedKernel, embedName } from "./embed.ts";
import {
  emitLinear,
  interleaveUnit,
  linearName,
  type LinearSpec,
  panelMinTokens,
  panelSupported,
} from "./linear.ts";
import {
  elementwiseKernel,
  elementwiseName,
  type ElementwiseOp,
  expKernel,
  layernormKernel,
  rmsnormKernel,
} from "./ops.ts";
import { quantizeKernel, quantizeName } from "./quantize.ts";
import {
  addPosRowsKernel,
  embedRowsKernel,
  embedRowsName,
  gatherRowsKernel,
  kvStoreKernel,
  kvTypeSuffix,
  ropeCosSinKernel,
  ropeCosSinName,
  ropeRowsKernel,
  ropeRowsName,
} from "./step_ops.ts";

/** A weight as the WASM module holds it: its type, shape and byte offset in the memory. */
export interface WasmWeight {
  /** Canonical name. */
  name: string;
  /** Storage type in the memory (vectors are always F32). */
  type: WeightTypeName;
  /** Torch-order shape. */
  shape: number[];
  /** The memory it is in: 0, or (past 4 GiB of weights) 1, 2, ... (`env.memory1`, ...). */
  memory: number;
  /** Byte offset in its memory. */
  offset: number;
  /** Bytes it takes. */
  bytes: number;
  /**
   * Rows per interleaved group (`interleave.ts`; 1: row-major as stored): what
   * `linear.ts` `interleaveRows` gives a matrix that only linear and embed nodes read.
   */
  interleave: number;
  /**
   * Only linear and embed nodes read it and it has a layout repacked at load
   * (`blocks.ts` `hasPackedLayout`): Q6_K (`q6k_pack.ts`), Q4_K and Q5_K in pairs
   * (`q4k_pairs.ts`).
   */
  packed?: boolean;
}

/** What a renderer knows when it lists the kernels of a node. */
export interface WasmKernelContext {
  /** Token rows of the graph (1: decode, matrix-vector products; T: matrix products). */
  rows: number;
  /** Use relaxed SIMD in the matrix products. */
  relaxed: boolean;
  /** Convert F16 weights with the FP16 proposal's `f32x4.promote_low_f16x8`. */
  fp16: boolean;
  /** The relaxed dot product takes its i7 operand as u8 (see `relaxedDotU8`). */
  dotU8: boolean;
  /** A weight of the node (type and shape). */
  weight(name: string): WasmWeight;
}

/** What a renderer knows at the call site, inside the group function `f`. */
export interface WasmCallContext extends WasmKernelContext {
  /** The group function being written. */
  f: WasmFunc;
  /** Byte offset of a buffer of this graph. */
  addr(buffer: string): number;
  /** The local holding the rows the node runs over: `n` (step rows) or `nOut`. */
  rowsLocal: "n" | "nOut";
  /**
   * The activations a matrix product of `format` reads: the f32 input itself, or (q8_0,
   * q8_K) this thread's scratch after quantising the input into it, once for consecutive
   * products of the same input.
   */
  quantized(input: string, format: "f32" | "q8_0" | "q8_K", K: number): () => void;
  /** Pushes the address of this thread's f32 panel (F16/BF16 matmuls; `linear.ts`). */
  panel(): void;
  /**
   * Address of this matrix product's row counter (`barrier.ts` `emitRowChunks`), zeroed at
   * the step's start; undefined: split the rows in advance (`emitShare`).
   */
  rowCounter?: number;
}

/** A kernel a node calls: its name, and how to build it (once per module). */
export interface KernelSpec {
  /** Function name (every constant the code depends on is in it). */
  name: string;
  /** Builds the function. */
  build(): WasmFunc;
}

/** A {@linkcode KernelSpec}. */
const spec = (name: string, build: () => WasmFunc): KernelSpec => ({ name, build });

/** The renderer of one op: its kernels and its call (see the module doc). */
export interface WasmOpRenderer<O extends NodeOp> {
  /** The kernels the node calls (built once per name across the module). */
  kernels(node: GraphNode<O>, ctx: WasmKernelContext): KernelSpec[];
  /** Writes the node's call(s) into `ctx.f`, each thread its share. */
  call(node: GraphNode<O>, ctx: WasmCallContext): void;
}

/** The WASM op table: a renderer per op this backend runs (a missing op is refused). */
export type WasmOpTable = { [O in NodeOp]?: WasmOpRenderer<O> };

/** An argument of a call: a constant, a local, or code that pushes an i32. */
export type Arg = number | string | (() => void);

/** `call $name` with its arguments pushed in order. */
export function callWith(f: WasmFunc, name: string, args: Arg[]): void {
  for (const a of args) {
    if (typeof a === "number") f.i32(a);
    else if (typeof a === "string") f.get(a);
    else a();
  }
  f.call(name);
}

/** `lo, hi` = this thread's rows of the runtime count in local `total`: `[total·tid/N, total·(tid+1)/N)`. */
export function shareOf(f: WasmFunc, total: () => void, lo: string, hi: string): void {
  f.comment("this thread's share: [total · tid / nthreads, total · (tid + 1) / nthreads)");
  total();
  f.get("tid").op("i32.mul").get("nthreads").op("i32.div_u").set(lo);
  total();
  f.get("tid").i32(1).op("i32.add").op("i32.mul").get("nthreads").op("i32.div_u").set(hi);
}

/** Pushes `base + local · stride` (a row address). */
const rowAddr = (f: WasmFunc, base: number, local: string, stride: number) => () => {
  f.i32(base).get(local).i32(stride).op("i32.mul").op("i32.add");
};

/** The node's row count local pushed. */
const rowsOf = (ctx: WasmCallContext) => () => {
  ctx.f.get(ctx.rowsLocal);
};

/** Addresses of a node's buffers, in order. */
const addrs = (ctx: WasmCallContext, buffers: string[]) => buffers.map((b) => ctx.addr(b));

/** The one-row lookup of a table (codegen/wasm/embed.ts `embedName`). */
const tableName = (e: WasmWeight, D: number) =>
  embedName(e.type, D, e.memory, e.interleave, e.packed);

const embed: WasmOpRenderer<"embed"> = {
  kernels(node, ctx) {
    const e = ctx.weight(node.weights[0]), D = node.attrs.dim;
    const row = tableName(e, D), S = node.attrs.scale ?? 1;
    const out = [
      spec(
        row,
        () => embedKernel(e.type, D, e.memory, e.interleave, interleaveUnit(e.type), e.packed),
      ),
      spec(embedRowsName(row, S), () => embedRowsKernel(row, D, S)),
    ];
    if (node.attrs.learned_pos) out.push(spec(`add_pos_rows_${D}`, () => addPosRowsKernel(D)));
    return out;
  },
  call(node, ctx) {
    const f = ctx.f, D = node.attrs.dim;
    const e = ctx.weight(node.weights[0]);
    const [tok, pos] = addrs(ctx, node.inputs);
    const x = ctx.addr(node.outputs[0]);
    shareOf(f, rowsOf(ctx), "lo", "hi");
    const rows = embedRowsName(tableName(e, D), node.attrs.scale ?? 1);
    callWith(f, rows, [e.offset, tok, x, "lo", "hi"]);
    if (node.attrs.learned_pos) {
      const pe = ctx.weight(node.weights[1]);
      callWith(f, `add_pos_rows_${D}`, [pe.offset, pos, x, "lo", "hi"]);
    }
  },
};

const ropeCosSin: WasmOpRenderer<"rope_cos_sin"> = {
  kernels: ({ attrs: a }) => [
    spec(ropeCosSinName(a.half, a.mscale), () => ropeCosSinKernel(a.half, a.mscale)),
  ],
  call(node, ctx) {
    const f = ctx.f;
    f.comment("thread 0 only (a few values per row)");
    f.get("tid").op("i32.eqz").if();
    callWith(f, ropeCosSinName(node.attrs.half, node.attrs.mscale), [
      ...addrs(ctx, [...node.inputs, ...node.outputs]),
      ctx.rowsLocal,
    ]);
    f.end();
  },
};

const norm: WasmOpRenderer<"norm"> = {
  kernels: ({ attrs: a }) => [
    spec(
      `${a.kind}_${a.dim}`,
      () => (a.kind === "rmsnorm" ? rmsnormKernel(a.dim, a.eps) : layernormKernel(a.dim, a.eps)),
    ),
  ],
  call(node, ctx) {
    const f = ctx.f, D = node.attrs.dim, H = node.attrs.heads ?? 1;
    const w = node.weights.map((n) => ctx.weight(n).offset);
    const x = ctx.addr(node.inputs[0]), y = ctx.addr(node.outputs[0]);
    if (H > 1) {
      f.comment(`segments: n rows × ${H} heads of ${D}, each normalised with the same w (${D})`);
      shareOf(f, () => f.get(ctx.rowsLocal).i32(H).op("i32.mul"), "lo", "hi");
    } else shareOf(f, rowsOf(ctx), "lo", "hi");
    const count = () => {
      f.get("hi").get("lo").op("i32.sub");
    };
    callWith(f, `${node.attrs.kind}_${D}`, [
      ...w,
      rowAddr(f, x, "lo", D * 4),
      rowAddr(f, y, "lo", D * 4),
      count,
    ]);
  },
};

/** The activation format, kind and kernel name of a linear node. */
function linearSpec(node: GraphNode<"linear">, ctx: WasmKernelContext) {
  const w = ctx.weight(node.weights[0]);
  const { in: K, out: M, bias } = node.attrs;
  return {
    w,
    act: WEIGHT_TYPES[w.type].act,
    spec: withPanel({
      type: w.type,
      M,
      K,
      kind: ctx.rows === 1 ? "matvec" as const : "matmul" as const,
      bias,
      relaxed: ctx.relaxed,
      fp16: ctx.fp16,
      dotU8: ctx.dotU8,
      memory: w.memory,
      interleave: w.interleave,
      packed: w.packed,
    }, ctx),
  };
}

/**
 * The spec with `panel` set when the type has one this runtime runs and the step can have
 * enough rows to use it (below `panelMinTokens` the call takes the in-register kernel, so a
 * step that never has that many would carry the panel kernel for nothing).
 */
function withPanel<T extends LinearSpec>(ls: T, ctx: WasmKernelContext): T & { panel: boolean } {
  return { ...ls, panel: ctx.rows >= panelMinTokens(ls.type) && panelSupported(ls) };
}

const linear: WasmOpRenderer<"linear"> = {
  kernels(node, ctx) {
    const { act, spec: ls } = linearSpec(node, ctx);
    const out = [spec(linearName(ls), () => emitLinear(ls))];
    if (ls.panel) {
      const inRegisters = { ...ls, panel: false };
      out.push(spec(linearName(inRegisters), () => emitLinear(inRegisters)));
    }
    if (act !== "f32") {
      out.push(spec(quantizeName(act, ls.K), () => quantizeKernel(act, ls.K, ctx.relaxed)));
    }
    return out;
  },
  call(node, ctx) {
    const f = ctx.f;
    const { w, act, spec: ls } = linearSpec(node, ctx);
    const x = ctx.quantized(node.inputs[0], act, ls.K);
    const y = ctx.addr(node.outputs[0]);
    const bias = node.attrs.bias ? [ctx.weight(node.weights[1]).offset] : [];
    const args = [w.offset, ...bias, x, y, "lo", "hi", ...(ctx.rows > 1 ? [ctx.rowsLocal] : [])];
    const body = () => {
      if (!ls.panel) {
        callWith(f, linearName(ls), args);
        return;
      }
      const min = panelMinTokens(ls.type);
      f.comment(
        `fewer than ${min} rows: the weights decoded in registers (filling the panel would ` +
          "cost more than it saves)",
      );
      f.get(ctx.rowsLocal).i32(min).op("i32.lt_u").if();
      callWith(f, linearName({ ...ls, panel: false }), args);
      f.else();
      callWith(f, linearName(ls), [...args, () => ctx.panel()]);
      f.end();
    };
    if (ctx.rowCounter !== undefined) {
      emitRowChunks(f, ls.M, ctx.rowCounter, body);
      return;
    }
    emitShare(f, ls.M, Math.max(4, ls.interleave), "lo", "hi"); // whole interleaved groups
    body();
  },
};

/** The name of a rope node's kernel (`_rR` for a partial rotary). */
const ropeName = ({ attrs: a }: GraphNode<"rope">) =>
  ropeRowsName(a.style, a.n_heads, a.n_kv_heads, a.head_dim, a.rot_dim ?? a.head_dim);

const rope: WasmOpRenderer<"rope"> = {
  kernels: (node) => {
    const a = node.attrs;
    return [
      spec(
        ropeName(node),
        () => ropeRowsKernel(a.style, a.n_heads, a.n_kv_heads, a.head_dim, a.rot_dim ?? a.head_dim),
      ),
    ];
  },
  call(node, ctx) {
    const a = node.attrs, f = ctx.f;
    emitShare(f, a.n_heads + a.n_kv_heads, 1, "lo", "hi");
    callWith(f, ropeName(node), [
      ...addrs(ctx, node.inputs),
      ctx.rowsLocal,
      "lo",
      "hi",
    ]);
  },
};

/** `kv_store_KD_bB[_f16kv|_kf16|_vf16]` (as kvStoreKernel names it). */
const kvStoreName = ({ attrs: a }: GraphNode<"kv_store">) =>
  `kv_store_${a.kv_dim}_b${a.block_size}` + kvTypeSuffix(a.k_type, a.v_type);

const kvStore: WasmOpRenderer<"kv_store"> = {
  kernels: (node, ctx) => {
    const a = node.attrs;
    return [
      spec(
        kvStoreName(node),
        () => kvStoreKernel(a.kv_dim, a.block_size, a.blocks_per_seq, a.k_type, a.v_type, ctx.fp16),
      ),
    ];
  },
  call(node, ctx) {
    const f = ctx.f;
    shareOf(f, rowsOf(ctx), "lo", "hi");
    callWith(f, kvStoreName(node), [
      ...addrs(ctx, [...node.inputs, ...node.outputs]),
      "lo",
      "hi",
    ]);
  },
};

/** `attention_QxKxD_bB[_wL][_sS][_capC]` (as pagedAttentionKernel names it). */
const attentionName = (node: GraphNode<"attention">) => pagedAttentionName(attentionShape(node));

/** The internal vector exp. */
const EXP = spec("exp_f32x4", expKernel);

const attention: WasmOpRenderer<"attention"> = {
  kernels: (node, ctx) => [
    EXP,
    spec(
      attentionName(node),
      () => pagedAttentionKernel(attentionShape(node), ctx.fp16, ctx.relaxed),
    ),
  ],
  call(node, ctx) {
    const f = ctx.f, H = node.attrs.n_heads;
    const name = attentionName(node), Gs = attentionGroup(H, node.attrs.n_kv_heads);
    f.comment(`units: n rows × ${H / Gs} groups of ${Gs} heads`);
    shareOf(f, () => f.get(ctx.rowsLocal).i32(H / Gs).op("i32.mul"), "lo", "hi");
    callWith(f, name, [
      ...addrs(ctx, node.inputs),
      ctx.addr(node.outputs[0]),
      "att",
      "lo",
      "hi",
    ]);
  },
};

const gatherRows: WasmOpRenderer<"gather_rows"> = {
  kernels: ({ attrs: a }) => [spec(`gather_rows_${a.dim}`, () => gatherRowsKernel(a.dim))],
  call(node, ctx) {
    const f = ctx.f;
    shareOf(f, rowsOf(ctx), "lo", "hi");
    callWith(f, `gather_rows_${node.attrs.dim}`, [
      ...addrs(ctx, [...node.inputs, ...node.outputs]),
      "lo",
      "hi",
    ]);
  },
};

/** The element-wise ops: the residual add, the MLP activations, the final soft-cap. */
type ElementwiseNode = GraphNode<"add" | "swiglu" | "gelu" | "geglu" | "softcap">;

/** The cap of a softcap node (undefined for the others). */
const capOf = (node: ElementwiseNode) => node.op === "softcap" ? node.attrs.cap : undefined;

/** An element-wise op over `(rows, dim)`: elements split in runs of 4 between threads. */
function elementwise<O extends ElementwiseOp>(op: O): WasmOpRenderer<O> {
  return {
    kernels: (node) => {
      const cap = capOf(node as ElementwiseNode);
      const k = spec(elementwiseName(op, cap), () => elementwiseKernel(op, cap));
      return op === "add" ? [k] : [EXP, k];
    },
    call(node, ctx) {
      const f = ctx.f, D = node.attrs.dim;
      const [a, b] = addrs(ctx, node.inputs);
      f.comment(`elements: n × ${D}, in runs of 4`);
      shareOf(
        f,
        () => f.get(ctx.rowsLocal).i32(D).op("i32.mul").i32(3).op("i32.add").i32(2).op("i32.shr_u"),
        "lo",
        "hi",
      );
      const end = () => {
        f.get("hi").i32(2).op("i32.shl").get(ctx.rowsLocal).i32(D).op("i32.mul");
        f.get("hi").i32(2).op("i32.shl").get(ctx.rowsLocal).i32(D).op("i32.mul").op("i32.lt_u");
        f.op("select");
      };
      callWith(f, elementwiseName(op, capOf(node as ElementwiseNode)), [
        a,
        b ?? 0,
        () => f.get("lo").i32(2).op("i32.shl"),
        end,
      ]);
    },
  };
}

/**
 * The renderers of every op the WASM backend runs, by op name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WASM_RENDERERS } from "./renderers.ts";
 * assert.ok(WASM_RENDERERS.attention && WASM_RENDERERS.linear);
 * ```
 */
export const WASM_RENDERERS: WasmOpTable = {
  embed,
  rope_cos_sin: ropeCosSin,
  norm,
  linear,
  rope,
  kv_store: kvStore,
  attention,
  gather_rows: gatherRows,
  add: elementwise("add"),
  swiglu: elementwise("swiglu"),
  gelu: elementwise("gelu"),
  geglu: elementwise("geglu"),
  softcap: elementwise("softcap"),
};

/** The activation row stride (bytes) a matrix product of weight type `type` reads. */
export function actStride(type: WeightTypeName, K: number): number {
  return actLayout(WEIGHT_TYPES[type].act, K).stride;
}
