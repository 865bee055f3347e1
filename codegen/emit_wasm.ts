/**
 * The WASM emitter: for a plan (both graphs of engine v2 and their arena offsets) and the
 * weights' storage types, ONE WebAssembly module whose export `step(tid, nthreads, ...)`
 * runs every node of the step on every thread, built byte by byte with `wasm_asm.ts` (no
 * external toolchain), with a readable WAT-like listing.
 *
 * The module has, like the JS module of `emit_js.ts`:
 * - shape-specialised kernels (`matvec_q8_0_2048x768`, `matmul_q4_k_768x2048`,
 *   `rmsnorm_768`, `attention_12x4x64_b16`, `quantize_q8_0_768`, ...), each once;
 * - one function per layer and sublayer of each graph (`layer3_attn`, `layer3_ffn`,
 *   `lm_head`; `prefill_layer3_attn`, ...), each node a commented call with literal
 *   offsets, the thread's share computed from `tid` and `nthreads` (matrix products: chunks
 *   of rows taken from the product's counter in the control block, `CTL.ROWS`), and a barrier
 *   (codegen/wasm/barrier.ts) before every node that reads or overwrites bytes an earlier
 *   node of the same phase wrote or read;
 * - `step`, which reads n and nOut from the step rows and runs the decode graph (n = 1,
 *   matrix-vector kernels) or the prefill graph (n rows), skipping the LM head when nOut = 0.
 *
 * What each op becomes is one row of {@linkcode WASM_OPS} (codegen/wasm/renderers.ts); an op
 * without a row, or a weight in a type without kernels, is refused with
 * {@linkcode WasmUnsupportedError} so that `--backend auto` can fall back to the JS kernels.
 *
 * Memory: `[arena][control block][scratch per thread][weights]` (docs/DESIGN.md).
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { ForwardOptions } from "../core/forward.ts";
import { expectedShapes } from "../core/weights.ts";
import type { Graph, GraphNode, NodeOp } from "./graph.ts";
import { findBuffer, type Plan, planArena } from "./plan.ts";
import { WasmFunc, withoutText } from "./wasm_asm.ts";
import { assembleModule, type FunctionImport, memoryImportText } from "./wasm_assemble.ts";
import { attentionScratchBytes, attentionShape } from "./wasm/attention.ts";
import { barrierKernel, CTL, MAX_ROW_COUNTERS } from "./wasm/barrier.ts";
import { stepEntry } from "./wasm/step_entry.ts";
import { actLayout, hasPackedLayout, WEIGHT_TYPES, type WeightTypeName } from "./wasm/blocks.ts";
import { emitQuantizeRows } from "./wasm/quantize.ts";
import { panelScratchBytes } from "./wasm/linear_panel.ts";
import { interleaveRows } from "./wasm/linear.ts";
import {
  callWith,
  type KernelSpec,
  WASM_RENDERERS,
  type WasmCallContext,
  type WasmKernelContext,
  type WasmOpRenderer,
  type WasmOpTable,
  type WasmWeight,
} from "./wasm/renderers.ts";

/** The WASM op table: node op → renderer (codegen/wasm/renderers.ts). */
export const WASM_OPS: WasmOpTable = WASM_RENDERERS;

/** A model or op the WASM backend cannot run (an op without a renderer, a weight type). */
export class WasmUnsupportedError extends GollmError {
  /**
   * Creates the error.
   *
   * @param message One line naming the op or tensor and type.
   */
  constructor(message: string) {
    super(message);
    this.name = "WasmUnsupportedError";
  }
}

/** Byte alignment of the regions the module adds after the arena. */
const ALIGN = 64;
const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/** Where the module puts what it adds to the plan's arena (byte offsets). */
export interface WasmLayout {
  /** Threads the scratch is sized for (1..64). */
  threads: number;
  /** The barrier's control block (`CTL.BYTES`). */
  ctl: number;
  /** Thread 0's scratch; thread i's is at `scratch + i · scratchStride`. */
  scratch: number;
  /** Bytes of one thread's scratch. */
  scratchStride: number;
  /** Bytes of the quantised-activation part of a scratch (the attention scores follow). */
  quantBytes: number;
  /**
   * Offset in a scratch of the f32 panel of the F32/F16/BF16 matmuls (after the attention
   * scores; `linear.ts` `panelScratchBytes` of the widest prefill input).
   */
  panelOffset: number;
  /** Every weight the graphs use, with its type and offset. */
  weights: Map<string, WasmWeight>;
  /** Byte offset of the first weight. */
  weightsOffset: number;
  /** Bytes of all weights. */
  weightsBytes: number;
  /** Bytes memory 0 needs. */
  memoryBytes: number;
  /**
   * Bytes of each further memory (`env.memory1`, ...): weights past what a 32-bit memory
   * holds (4 GiB), one memory per 4 GiB (multi-memory). Empty for models that fit.
   */
  more: number[];
}

/** Bytes one 32-bit WebAssembly memory holds at most: 65536 pages of 64 KiB. */
export const MEMORY_LIMIT = 65536 * 65536;

/**
 * The weights the module keeps F32 whatever their stored type (norm weights, biases,
 * learned positions): the vectors of a graph.
 *
 * @param g A graph.
 * @returns Canonical names.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { buildGraph } from "./graph.ts";
 * import { f32Weights } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-gpt2.yaml"), "t.yaml");
 * const names = f32Weights(buildGraph(c, 1, resolveBatchLayout({ numBlocks: 4 })));
 * assert.ok(names.has("pos_embeddings.weight") && names.has("norm.bias"));
 * assert.ok(!names.has("tok_embeddings.weight"));
 * ```
 */
export function f32Weights(g: Graph): Set<string> {
  const out = new Set<string>();
  for (const n of g.nodes) {
    if (n.op === "norm") n.weights.forEach((w) => out.add(w));
    else if (n.op === "linear" || n.op === "embed") n.weights.slice(1).forEach((w) => out.add(w));
  }
  return out;
}

/** The weights already in the memory (read there by the loader): name → byte offset. */
export interface PlacedWeights {
  /** Byte offset of each weight that is already in the memory, in its stored type. */
  offsets: ReadonlyMap<string, number>;
  /** First byte after the region they are in (other weights are placed from here). */
  end: number;
}

/**
 * The first byte a loader may read weights into for a plan: past the arena, the control
 * block and every thread's scratch ({@linkcode layoutWasm} puts `weightsOffset` here).
 *
 * @param plan The plan.
 * @param threads Threads the scratch is sized for.
 * @returns A 64-byte aligned byte offset.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { planBatch } from "./plan.ts";
 * import { layoutWasm, wasmWeightsStart } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const plan = planBatch(c, resolveBatchLayout({ numBlocks: 8 }));
 * assert.equal(wasmWeightsStart(plan, 2), layoutWasm(plan, new Map(), 2).weightsOffset);
 * ```
 */
export function wasmWeightsStart(plan: Plan, threads: number): number {
  return scratchOf(plan).scratch + threads * scratchOf(plan).scratchStride;
}

/**
 * One thread's scratch: the quantised rows of the widest matrix-product input of either
 * graph (`blocks.ts` `actLayout`: the wider of a q8_0 row, `K + 7K / 8` bytes, and a q8_K
 * row, `2K + K / 4` with its lane copy; whatever the weight types), then the scores of one
 * attention unit's heads over the longest ring (`wasm/attention.ts`), then the f32 panel of a
 * float-type matmul (8 rows of the widest input, transposed; `linear_panel.ts`).
 */
function scratchOf(plan: Plan) {
  let quant = 0, panel = 0, att = 0;
  for (const g of [plan.decode, plan.prefill]) {
    for (const n of g.nodes) {
      if (n.op === "attention") att = Math.max(att, attentionScratchBytes(attentionShape(n)));
      if (n.op !== "linear") continue;
      const K = n.attrs.in;
      for (const [format, block] of [["q8_0", 32], ["q8_K", 256]] as const) {
        if (K % block === 0) quant = Math.max(quant, g.rows * actLayout(format, K).stride);
      }
      if (g.rows > 1) panel = Math.max(panel, panelScratchBytes(n.attrs.in));
    }
  }
  const quantBytes = align(quant);
  const panelOffset = quantBytes + align(att);
  const ctl = align(plan.arenaBytes);
  return {
    ctl,
    quantBytes,
    panelOffset,
    scratch: ctl + align(CTL.BYTES),
    scratchStride: panelOffset + align(panel),
  };
}

/**
 * Lays out the module's memory for a plan: control block, per-thread scratch and every
 * weight in its storage type (vectors F32), or where it already is (`placed`).
 *
 * @param plan The plan (from `planBatch`).
 * @param types The storage type of each matrix by canonical name (`F32` when absent).
 * @param threads Threads the scratch is sized for.
 * @param placed Weights the loader already read into the memory, and where the rest go.
 * @param limit Bytes one memory holds (default {@linkcode MEMORY_LIMIT}; tests lower it to
 *   exercise the further memories on small models).
 * @returns The layout.
 * @throws {WasmUnsupportedError} for a matrix type the kernels do not have or a row length
 *   that is not a multiple of its block size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { planBatch } from "./plan.ts";
 * import { layoutWasm } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const plan = planBatch(c, resolveBatchLayout({ numBlocks: 8 }));
 * const l = layoutWasm(plan, new Map(), 2);
 * assert.equal(l.weights.get("norm.weight")!.type, "F32");
 * assert.ok(l.memoryBytes >= l.weightsOffset + l.weightsBytes);
 * ```
 */
export function layoutWasm(
  plan: Plan,
  types: ReadonlyMap<string, string>,
  threads: number,
  placed?: PlacedWeights,
  limit: number = MEMORY_LIMIT,
): WasmLayout {
  const c = plan.decode.config;
  const shapes = expectedShapes(c);
  const vectors = f32Weights(plan.prefill);
  const { ctl, quantBytes, panelOffset, scratch, scratchStride } = scratchOf(plan);
  const weightsOffset = scratch + threads * scratchStride;
  const weights = new Map<string, WasmWeight>();
  let at = align(placed?.end ?? weightsOffset);
  const typeOf = (name: string): WeightTypeName => {
    const t = types.get(name) ?? "F32";
    if (vectors.has(name) && !placed?.offsets.has(name)) return "F32";
    if (!(t in WEIGHT_TYPES)) {
      throw new WasmUnsupportedError(
        `tensor '${name}' has type ${t}, which the wasm backend has no kernels for ` +
          `(it has ${Object.keys(WEIGHT_TYPES).join(", ")})`,
      );
    }
    return t as WeightTypeName;
  };
  const more: number[] = []; // bytes used in memory 1, 2, ...
  const names: string[] = [];
  for (const g of [plan.decode, plan.prefill]) {
    for (const n of g.nodes) for (const w of n.weights) if (!names.includes(w)) names.push(w);
  }
  // Matrices only linear and embed nodes read (their weights[0]) are row-interleaved (wasm/
  // interleave.ts), and repacked where they can be (blocks.ts): every reader knows the layout.
  const uses = new Map<string, boolean>(); // name → every use is a linear/embed weights[0]
  for (const g of [plan.decode, plan.prefill]) {
    for (const n of g.nodes) {
      n.weights.forEach((w, i) => {
        const ok = i === 0 && (n.op === "linear" || n.op === "embed");
        uses.set(w, (uses.get(w) ?? true) && ok);
      });
    }
  }
  // Vectors first: the kernels that read them (norms, biases) address memory 0 only.
  names.sort((a, b) => Number(vectors.has(b)) - Number(vectors.has(a)));
  for (const name of names) {
    const shape = shapes.get(name)!;
    const type = typeOf(name);
    const t = WEIGHT_TYPES[type];
    const cols = shape[shape.length - 1];
    if (cols % t.blockElems !== 0) {
      throw new WasmUnsupportedError(
        `tensor '${name}' (${type} [${shape}]): row length ${cols} is not a multiple of ` +
          `the block size ${t.blockElems}`,
      );
    }
    const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
    const bytes = rows * (cols / t.blockElems) * t.blockBytes;
    const fixed = placed?.offsets.get(name);
    const own = uses.get(name) === true && shape.length === 2; // its layout is the kernels'
    const interleave = own ? interleaveRows(type, shape[0], shape[1]) : 1;
    const packed = own && hasPackedLayout(type, interleave);
    const w = { name, type, shape, bytes, interleave, packed };
    if (fixed !== undefined && vectors.has(name) && type !== "F32") {
      throw new WasmUnsupportedError(`tensor '${name}' is ${type}; it must be F32 in place`);
    }
    if (fixed !== undefined) {
      weights.set(name, { ...w, memory: 0, offset: fixed });
    } else if (at + bytes <= limit || vectors.has(name)) {
      weights.set(name, { ...w, memory: 0, offset: at });
      at += align(bytes);
    } else {
      // Past 4 GiB: the next memory with room (a tensor over 4 GiB cannot be addressed).
      if (bytes > limit) {
        throw new WasmUnsupportedError(`tensor '${name}' has ${bytes} bytes, over ${limit}`);
      }
      let k = more.findIndex((used) => used + bytes <= limit);
      if (k < 0) k = more.push(0) - 1;
      weights.set(name, { ...w, memory: k + 1, offset: more[k] });
      more[k] += align(bytes);
    }
  }
  return {
    threads,
    ctl,
    scratch,
    scratchStride,
    quantBytes,
    panelOffset,
    weights,
    weightsOffset,
    weightsBytes: at - weightsOffset + more.reduce((a, b) => a + b, 0),
    memoryBytes: at,
    more,
  };
}

/** Byte ranges `[start, end)` of a node's reads and writes (the step's scratch excluded). */
function ranges(plan: Plan, which: "decode" | "prefill", node: GraphNode) {
  const g = which === "decode" ? plan.decode : plan.prefill;
  const of = (names: string[]) =>
    names.filter((b) => !/\.att$/.test(b)).map((b) => {
      const p = findBuffer(plan, which, b);
      return [p.offset, p.offset + p.bytes] as const;
    });
  void g;
  return { reads: of(node.inputs), writes: of(node.outputs) };
}

const overlaps = (
  a: readonly (readonly [number, number])[],
  b: readonly (readonly [number, number])[],
) => a.some(([s, e]) => b.some(([s2, e2]) => s < e2 && s2 < e));

/**
 * Which nodes need a barrier before them: a node that reads bytes a node since the last
 * barrier wrote, or writes bytes one of them read or wrote (the planner reuses bytes of
 * buffers whose lifetimes ended, so this compares byte ranges, not names).
 */
function barriersOf(plan: Plan, which: "decode" | "prefill"): boolean[] {
  const g = which === "decode" ? plan.decode : plan.prefill;
  const out: boolean[] = [];
  let reads: (readonly [number, number])[] = [], writes: (readonly [number, number])[] = [];
  for (const node of g.nodes) {
    const r = ranges(plan, which, node);
    const need = overlaps(r.reads, writes) || overlaps(r.writes, [...reads, ...writes]);
    if (need) reads = [], writes = [];
    out.push(need);
    reads.push(...r.reads);
    writes.push(...r.writes);
  }
  return out;
}

/** The renderer of a node's op, or the refusal. */
function rendererOf(node: GraphNode): WasmOpRenderer<NodeOp> {
  const r = WASM_OPS[node.op] as WasmOpRenderer<NodeOp> | undefined;
  if (!r) throw new WasmUnsupportedError(`op ${node.op} is not supported by the wasm backend`);
  return r;
}

/** A graph's nodes cut into runs of the same group (one function each), with their index. */
function groupsOf(g: Graph): { name: string; nodes: [GraphNode, number][] }[] {
  const groups: { name: string; nodes: [GraphNode, number][] }[] = [];
  g.nodes.forEach((n, i) => {
    if (groups.length === 0 || groups[groups.length - 1].name !== n.group) {
      groups.push({ name: n.group, nodes: [] });
    }
    groups[groups.length - 1].nodes.push([n, i]);
  });
  return groups;
}

/** The parameters of every group function and of `step`'s entry. */
const GROUP_PARAMS: [string, "i32"][] = [["tid", "i32"], ["nthreads", "i32"], ["n", "i32"], [
  "nOut",
  "i32",
]];

/** Options of {@linkcode emitWasmStep}. */
export interface WasmStepOptions {
  /** Storage type of each matrix by canonical name (default: all F32). */
  types?: ReadonlyMap<string, string>;
  /** Weights already in the memory (see {@linkcode layoutWasm}). */
  placed?: PlacedWeights;
  /** Pages of the memory the module imports (default: what the layout needs). */
  pages?: number;
  /** Bytes one memory holds (default {@linkcode MEMORY_LIMIT}; see {@linkcode layoutWasm}). */
  memoryLimit?: number;
  /** Threads the scratch is sized for (default 1). */
  threads?: number;
  /** Use relaxed SIMD in the matrix products (default false). */
  relaxed?: boolean;
  /** f16 by the FP16 proposal's `f32x4.promote_low_f16x8` (default false; `wasm_features.ts`). */
  fp16?: boolean;
  /** The relaxed dot product's i7 operand read as u8 (default false; `wasm_features.ts`). */
  dotU8?: boolean;
}

/** One distinct matrix product of a module (a `matvec_*` or `matmul_*` kernel). */
export interface LinearShape {
  /** Kernel name: `matvec_q8_0_2048x768`, `matmul_f32_768x768_bias`. */
  name: string;
  /** `matvec` (decode graph) or `matmul` (n rows). */
  kind: "matvec" | "matmul";
  /** Output features (rows of w). */
  M: number;
  /** Input features (columns of w). */
  N: number;
  /** Whether a bias (M) is added. */
  bias: boolean;
}

/** The emitted module: bytes, memory layout, listing. */
export interface WasmStepModule {
  /** The matrix products, in first-use order. */
  shapes: LinearShape[];
  /** The module (imports `env.memory` shared, `env.cos`, `env.sin`; exports `step`). */
  bytes: Uint8Array<ArrayBuffer>;
  /** The memory layout beyond the arena. */
  layout: WasmLayout;
  /** Memory pages (64 KiB) the module imports. */
  pages: number;
  /** WAT-like text of the whole module with shape comments. */
  listing: string;
  /** Names of the kernels and group functions, in module order. */
  functions: string[];
}

/**
 * Emits the whole-step module of a plan (see the module doc).
 *
 * @param plan The plan (`planBatch`; weights NOT in the arena: the layout places them).
 * @param options Weight types, threads, relaxed SIMD.
 * @returns The module.
 * @throws {WasmUnsupportedError} for an op without a renderer or a weight type without
 *   kernels, naming it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { planBatch } from "./plan.ts";
 * import { emitWasmStep } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const m = emitWasmStep(planBatch(c, resolveBatchLayout({ numBlocks: 8, maxRows: 4 })));
 * assert.ok(WebAssembly.validate(m.bytes));
 * assert.ok(m.functions.includes("layer1_attn") && m.functions.includes("prefill_lm_head"));
 * ```
 */
export function emitWasmStep(plan: Plan, options: WasmStepOptions = {}): WasmStepModule {
  const threads = options.threads ?? 1;
  const layout = layoutWasm(
    plan,
    options.types ?? new Map(),
    threads,
    options.placed,
    options.memoryLimit,
  );
  const { funcs, kernels, usesTrig } = withoutText(() => stepFunctions(plan, layout, options));
  const pages = Math.max(options.pages ?? 0, Math.ceil(layout.memoryBytes / 65536));
  const memory = { minPages: pages, maxPages: pages, shared: true };
  const extra = layout.more.map((b) => {
    const p = Math.ceil(b / 65536);
    return { minPages: p, maxPages: p, shared: true };
  });
  const imports: FunctionImport[] = usesTrig
    ? [{ name: "cos", params: ["f64"], results: ["f64"] }, {
      name: "sin",
      params: ["f64"],
      results: ["f64"],
    }]
    : [];
  const bytes = assembleModule(funcs, [memory, ...extra], imports);
  const shapes = kernels.filter((k) => /^mat(vec|mul)_/.test(k)).map((name) => {
    const [, kind, M, N] = name.match(/^(matvec|matmul)_\w+?_(\d+)x(\d+)/)!;
    const bias = name.includes("_bias");
    return { name, kind: kind as "matvec" | "matmul", M: Number(M), N: Number(N), bias };
  });
  // The listing is built when asked (a few MB of text for a 100M model) from functions
  // emitted again: the ones assembled above are not kept (~10 MB of heap for a 100M model).
  let listing: string | undefined;
  return {
    shapes,
    bytes,
    layout,
    pages,
    get listing() {
      return listing ??= listingOf(
        plan,
        layout,
        stepFunctions(plan, layout, options).funcs,
        [memory, ...extra].map((m, i) => memoryImportText(m, i)).join("\n  "),
        imports,
        bytes.length,
      );
    },
    functions: funcs.map((f) => f.name),
  };
}

/** The functions of the whole-step module: barrier, kernels, group functions, `step`. */
function stepFunctions(
  plan: Plan,
  layout: WasmLayout,
  options: WasmStepOptions,
): { funcs: WasmFunc[]; kernels: string[]; usesTrig: boolean } {
  const kernels = new Map<string, WasmFunc>();
  const use = (specs: KernelSpec[]) => {
    for (const k of specs) {
      if (kernels.has(k.name)) continue;
      const fn = k.build();
      if (fn.name !== k.name) throw new Error(`emit_wasm: kernel ${k.name} built as ${fn.name}`);
      kernels.set(k.name, fn);
    }
  };
  const groupFns: WasmFunc[] = [];
  const entry: Record<"decode" | "prefill", string[]> = { decode: [], prefill: [] };
  let usesTrig = false;
  for (const which of ["decode", "prefill"] as const) {
    const g = which === "decode" ? plan.decode : plan.prefill;
    const barrier = barriersOf(plan, which);
    let linearCount = 0; // row counters handed out (CTL.ROWS), per graph
    let synced = false; // a barrier has been passed since the step started
    const kctx: WasmKernelContext = {
      rows: g.rows,
      relaxed: options.relaxed ?? false,
      fp16: options.fp16 ?? false,
      dotU8: options.dotU8 ?? false,
      weight: (name) => layout.weights.get(name)!,
    };
    for (const grp of groupsOf(g)) {
      const name = (which === "decode" ? "" : "prefill_") + grp.name;
      entry[which].push(name);
      const f = new WasmFunc(name, GROUP_PARAMS, ["i32"], { export: false });
      f.local("lo", "i32").local("hi", "i32").local("scr", "i32").local("att", "i32");
      f.local("chunk", "i32").local("qx", "i32");
      f.comment(`${grp.name} of the ${which} graph (${g.rows} row${g.rows > 1 ? "s" : ""})`);
      f.comment(
        `this thread's scratch: scr = ${layout.scratch} + tid · ${layout.scratchStride}, ` +
          `att = scr + ${layout.quantBytes}`,
      );
      f.i32(layout.scratch).get("tid").i32(layout.scratchStride).op("i32.mul").op("i32.add");
      f.tee("scr").i32(layout.quantBytes).op("i32.add").set("att");
      let quantOf = ""; // the input whose quantised rows are at qx
      let sharedRead = true; // a thread may read a split quantisation's rows: no barrier since
      const passBarrier = () => { // returns 1 from the group when the barrier failed
        callWith(f, "barrier", [layout.ctl]);
        f.if().i32(1).op("return").end();
      };
      for (const [node, i] of grp.nodes) {
        const r = rendererOf(node);
        use(r.kernels(node, kctx));
        if (node.op === "rope_cos_sin") usesTrig = true;
        // The row counters are zeroed by thread 0 as the step starts: a barrier must come
        // between that and the first matrix product that takes rows from them.
        const counted = node.op === "linear" && linearCount < MAX_ROW_COUNTERS;
        if (barrier[i] || (counted && !synced)) {
          f.comment("barrier: wait for every thread's writes before this node");
          f.get("nthreads").i32(1).op("i32.gt_u").if();
          passBarrier();
          f.end();
          synced = true;
          sharedRead = false;
        }
        f.comment(node.doc);
        const ctx: WasmCallContext = {
          ...kctx,
          f,
          addr: (b) => findBuffer(plan, which, b).offset,
          rowsLocal: node.rows === "out" ? "nOut" : "n",
          panel: () => f.get("scr").i32(layout.panelOffset).op("i32.add"),
          rowCounter: counted ? layout.ctl + CTL.ROWS + 4 * linearCount++ : undefined,
          quantized(input, format, K) {
            if (format === "f32") return () => f.i32(findBuffer(plan, which, input).offset);
            const key = `${input}/${format}`;
            if (quantOf !== key) {
              quantOf = key;
              f.comment(`${input} → ${format} rows at qx`);
              emitQuantizeRows(f, {
                format,
                K,
                input: findBuffer(plan, which, input).offset,
                rows: node.rows === "out" ? "nOut" : "n",
                own: "scr",
                shared: layout.scratch, // thread 0's scratch
                barrierFirst: sharedRead,
                maxRows: g.rows,
                barrier: passBarrier,
              });
            }
            sharedRead = true; // until the next barrier, a thread may read qx
            return () => f.get("qx");
          },
        };
        r.call(node, ctx);
        if (node.op !== "linear") quantOf = "";
      }
      f.i32(0);
      groupFns.push(f);
    }
  }
  const counters = Math.min(
    MAX_ROW_COUNTERS,
    Math.max(...[plan.decode, plan.prefill].map((g) => g.nodes.filter(isLinear).length)),
  );
  const step = stepEntry(plan, entry, layout.ctl, counters);
  const funcs = [barrierKernel(), ...kernels.values(), ...groupFns, step];
  return { funcs, kernels: [...kernels.keys()], usesTrig };
}

const isLinear = (n: GraphNode) => n.op === "linear";

/** The readable listing: a header with the memory map, then every function. */
function listingOf(
  plan: Plan,
  L: WasmLayout,
  funcs: WasmFunc[],
  memoryText: string,
  imports: FunctionImport[],
  size: number,
): string {
  const c = plan.decode.config, B = plan.layout;
  const types = new Map<string, number>();
  for (const w of L.weights.values()) types.set(w.type, (types.get(w.type) ?? 0) + 1);
  const head = [
    ";; Generated by gollm codegen/emit_wasm.ts: the whole engine v2 step in WASM SIMD.",
    ";; Do not edit; regenerate with `gollm kernels --wasm --config FILE`.",
    `;; arch ${c.arch}: vocab ${c.vocab_size}, dim ${c.dim}, ${c.n_layers} layers, ` +
    `${c.n_heads} heads / ${c.n_kv_heads} KV heads × head_dim ${c.head_dim}, hidden ${c.hidden_dim}`,
    `;; step: <= ${B.maxRows} rows of <= ${B.maxSeqs} sequence(s); paged KV cache: ` +
    `${B.numBlocks} blocks of ${B.blockSize} tokens, <= ${B.maxBlocksPerSeq} per sequence`,
    `;; weights: ${[...types].map(([t, k]) => `${k} ${t}`).join(", ")}`,
    ";; memory (byte offsets):",
    `;;   arena            0 .. ${plan.arenaBytes} (KV pools ${plan.kvBytes}, activations ` +
    `${plan.activationBytes})`,
    `;;   control block    ${L.ctl} (${CTL.BYTES} bytes: barrier, thread pool)`,
    `;;   scratch          ${L.scratch} + tid · ${L.scratchStride}, ${L.threads} thread(s)`,
    `;;   weights          ${L.weightsOffset} .. ${L.weightsOffset + L.weightsBytes}`,
    `;; ${funcs.length} functions, ${size} bytes of module`,
    "",
    "(module",
    "  " + memoryText,
    ...imports.map((i) =>
      `  (import "env" "${i.name}" (func $${i.name} (param ${i.params.join(" ")}) (result ${
        i.results.join(" ")
      })))`
    ),
  ];
  const weights = [...L.weights.values()].map((w) =>
    `  ;; weight ${w.name} ${w.type} (${w.shape.join(", ")}) at ${w.offset}` +
    (w.memory ? ` of memory ${w.memory}` : "") + ` (${w.bytes} bytes)`
  );
  const body = funcs.map((f) => f.text().split("\n").map((l) => "  " + l).join("\n"));
  return [...head, ...weights, ...body, ")", ""].join("\n");
}

/** What `compileModel` with `backend: "wasm"` runs: {@linkcode WasmStepModule}. */
export type WasmKernels = WasmStepModule;

/**
 * The listing of the whole-step module of a config for one sequence (what `gollm kernels
 * --wasm` prints): its plan for the single-sequence layout of `generate`
 * (`planArena`: `kvCapacity`, `prefillChunk`).
 *
 * @param config The model config.
 * @param options `kvCapacity`, `prefillChunk`, weight types (default F32), threads.
 * @returns The listing text.
 * @throws {WasmUnsupportedError} as {@linkcode emitWasmStep}.
 * @throws {RangeError} for a bad `kvCapacity` or `prefillChunk`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { emitWasmListing } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const text = emitWasmListing(c, { kvCapacity: 64, prefillChunk: 8 });
 * assert.ok(text.includes("(func $layer0_attn"));
 * assert.ok(text.includes("call $attention_4x2x12_b16"));
 * ```
 */
export function emitWasmListing(
  config: ModelConfig,
  options: ForwardOptions & WasmStepOptions = {},
): string {
  return emitWasmStep(planArena(config, options), options).listing;
}
