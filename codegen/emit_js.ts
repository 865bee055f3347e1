/**
 * The JS/TS emitter: turns a config's plan (graphs + arena offsets) into a readable,
 * formatted TypeScript module in which every shape, stride and offset is a literal.
 *
 * The module exports `createKernels(memory, W)`, which returns `{ init, step }`, and the
 * arena offsets of the step's int32 rows and the sequences' block tables, which the caller
 * writes before a step (engine v2 contract):
 * - shape-specialised kernels (`matvec_2048x768`, `matmul_2048x768`, `rmsnorm_768`,
 *   `attention_12x4x64_b16`, ...), emitted once per distinct name;
 * - one function per layer and sublayer for each graph (`layer3_attn`, `layer3_ffn`,
 *   `lm_head`; `prefill_layer3_attn`, ...), layers unrolled, each node one commented call;
 * - `decode(nOut)` (1 row, matrix-vector products), `prefill(n, nOut)` (n <= T rows of any
 *   sequences at once as matrix-matrix products, blocked so each weight row block is
 *   streamed once per step), and `step()`, which reads n and nOut from the arena and runs
 *   one of them.
 *
 * What each node op becomes is one row of {@linkcode OPS} (tinygrad: "a renderer is a
 * table from op to code"): its kernel's name and source and its call site, one file per op
 * family under `ops/`. This file only lays the module out.
 *
 * `compile.ts` evaluates exactly this source (type annotations stripped) with
 * `new Function`; `gollm kernels` writes it to disk.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { ForwardOptions } from "../core/forward.ts";
import { expectedShapes } from "../core/weights.ts";
import type { Graph, GraphNode, NodeOp } from "./graph.ts";
import { jsNumber as num, JsSource } from "./js_source.ts";
import { attentionOp, kvStoreOp } from "./ops/attention.ts";
import { addOp, gegluOp, geluOp, softcapOp, swigluOp } from "./ops/elementwise.ts";
import { embedOp, gatherRowsOp } from "./ops/embed.ts";
import { linearOp } from "./ops/linear.ts";
import { normOp } from "./ops/norm.ts";
import type { CallContext, KernelContext, OpRenderer, OpTable } from "./ops/renderer.ts";
import { ropeCosSinOp, ropeOp } from "./ops/rope.ts";
import { findBuffer, type Plan, planArena } from "./plan.ts";

/**
 * The op table: node op → renderer (kernel name, kernel source, call site). A new op is a
 * row here (the type makes a missing row an error).
 */
export const OPS: OpTable = {
  embed: embedOp,
  rope_cos_sin: ropeCosSinOp,
  norm: normOp,
  linear: linearOp,
  rope: ropeOp,
  attention: attentionOp,
  kv_store: kvStoreOp,
  gather_rows: gatherRowsOp,
  add: addOp,
  swiglu: swigluOp,
  gelu: geluOp,
  geglu: gegluOp,
  softcap: softcapOp,
};

/** The renderer of a node's op. */
const rendererOf = (node: GraphNode) => OPS[node.op] as OpRenderer<NodeOp>;

/** Identifier of a weight tensor: `layers.3.attn.wq.weight` → `l3_attn_wq`, `.bias` → `_b`. */
function weightIdent(name: string): string {
  return name
    .replace(/^layers\.(\d+)\./, "l$1_")
    .replace(/\.weight$/, "")
    .replace(/\.bias$/, "_b")
    .replace(/\./g, "_");
}

/** Options of {@linkcode emitKernelsForPlan}. */
export interface EmitOptions {
  /**
   * `js` (default): matrix products as JS loops. `wasm`: they call the exports of the
   * WASM SIMD module (`createKernels` takes it as a third argument `X`); the weights must
   * then be views into `memory` (plan with `weightsInArena`).
   */
  backend?: "js" | "wasm";
}

/** The kernels of a module: each distinct kernel name written once, in first-use order. */
class KernelSet {
  readonly src = new JsSource(1); // inside createKernels
  private readonly done = new Set<string>();

  /** The kernel of `node` in a graph described by `ctx`, written on first use. */
  use(node: GraphNode, ctx: KernelContext): string {
    const r = rendererOf(node);
    const name = r.name(node, ctx);
    if (!this.done.has(name)) {
      this.done.add(name);
      r.kernel(this.src, name, node, ctx);
      this.src.line();
    }
    return name;
  }
}

/** A graph's nodes cut into runs of the same group (one emitted function each). */
function groupsOf(g: Graph): { name: string; nodes: GraphNode[] }[] {
  const groups: { name: string; nodes: GraphNode[] }[] = [];
  for (const n of g.nodes) {
    if (groups.length === 0 || groups[groups.length - 1].name !== n.group) {
      groups.push({ name: n.group, nodes: [] });
    }
    groups[groups.length - 1].nodes.push(n);
  }
  return groups;
}

/** The constant name of a `table` buffer: `rope.inv_freq` → `ROPE_INV_FREQ`. */
const tableConst = (name: string) => name.toUpperCase().replace(/\./g, "_");

/** The `table` buffers of a plan (constants `init()` writes), in graph order. */
const tablesOf = (plan: Plan) =>
  [...plan.decode.buffers.values()].filter((b) => b.kind === "table");

/** The f32/int32 index (byte offset / 4) of a shared buffer of the plan. */
const indexOf = (plan: Plan, name: string) => findBuffer(plan, "decode", name).offset / 4;

/** The comment header, exported constants, and the top of `createKernels` (weights, tables). */
function emitHead(plan: Plan, wasm: boolean): JsSource {
  const c = plan.decode.config;
  const L = plan.layout;
  const s = new JsSource();
  const kvDim = c.n_kv_heads * c.head_dim;
  s.line("// deno-lint-ignore-file");
  s.line("// Generated by gollm codegen/emit_js.ts: kernels specialised for one config.");
  s.line("// Do not edit; regenerate with `gollm kernels --config FILE`.");
  if (wasm) {
    s.line("// Backend wasm: matrix products call the f32x4 exports X of codegen/emit_wasm.ts.");
  }
  s.line("//");
  s.comment(
    `arch ${c.arch}: vocab ${c.vocab_size}, dim ${c.dim}, ${c.n_layers} layers, ` +
      `${c.n_heads} heads / ${c.n_kv_heads} KV heads × head_dim ${c.head_dim}, ` +
      `hidden ${c.hidden_dim}, context ${c.context_length}`,
  );
  s.comment(
    `${c.norm}, ${c.mlp}` +
      (c.arch === "llama"
        ? `, RoPE ${c.rope_style} theta ${num(c.rope_theta)}` +
          (c.rope_scaling === "none" ? "" : ` (${c.rope_scaling} ×${num(c.rope_scaling_factor)})`)
        : "") +
      (c.attn_bias ? ", q/k/v bias" : "") + (c.tie_embeddings ? ", tied LM head" : ""),
  );
  s.comment(
    `step: <= ${L.maxRows} rows of <= ${L.maxSeqs} sequence(s); paged KV cache: ` +
      `${L.numBlocks} blocks of ${L.blockSize} tokens, <= ${L.maxBlocksPerSeq} per sequence`,
  );
  s.line("//");
  s.line("// Arena (one WebAssembly.Memory; offsets below are f32/int32 indices = bytes / 4):");
  for (const t of tablesOf(plan)) {
    s.line(
      `//   ${t.name.padEnd(15)} (${t.shape.join(", ")}) in ${plan.tableBytes} bytes of tables`,
    );
  }
  s.line(
    `//   step, seqs      ${plan.stepBytes} bytes (int32 rows (${L.maxRows}), ` +
      `block table (${L.maxSeqs}, ${L.maxBlocksPerSeq}))`,
  );
  s.line(
    `//   K/V pools       ${plan.kvBytes} bytes ` +
      `(${c.n_layers} × K, V (${L.numBlocks * L.blockSize}, ${kvDim}))`,
  );
  s.line(
    `//   activations     ${plan.activationBytes} bytes (decode ${plan.decodeBytes}, ` +
      `prefill ${plan.prefillBytes}, sharing one region)`,
  );
  s.line(`//   total           ${plan.arenaBytes} bytes`);
  s.line();
  const decodeLogits = findBuffer(plan, "decode", plan.decode.output).offset / 4;
  const prefillLogits = findBuffer(plan, "prefill", plan.prefill.output).offset / 4;
  const constant = (doc: string, name: string, value: number) => {
    s.line(`/** ${doc} */`);
    s.line(`export const ${name} = ${value};`);
  };
  constant("Arena size in bytes.", "ARENA_BYTES", plan.arenaBytes);
  constant("T: rows per step at most.", "MAX_ROWS", L.maxRows);
  constant("Sequence slots (rows of the block table).", "MAX_SEQS", L.maxSeqs);
  constant("Tokens per KV block.", "BLOCK_SIZE", L.blockSize);
  constant("Blocks in each layer's K and V pool.", "NUM_BLOCKS", L.numBlocks);
  constant("Columns of the block table.", "MAX_BLOCKS_PER_SEQ", L.maxBlocksPerSeq);
  const int32 = [
    ["the step's token ids (MAX_ROWS)", "STEP_TOKENS", "step.tokens"],
    ["the step's positions (MAX_ROWS)", "STEP_POSITIONS", "step.positions"],
    ["the step's sequence slots (MAX_ROWS)", "STEP_SEQS", "step.seqs"],
    ["the rows whose logits are wanted (MAX_ROWS)", "STEP_OUT_ROWS", "step.out_rows"],
    ["the step's counts n, nOut (2)", "STEP_COUNTS", "step.counts"],
    ["the block table (MAX_SEQS, MAX_BLOCKS_PER_SEQ)", "SEQ_BLOCK_TABLE", "seq.block_table"],
    ["each sequence's ring length in tokens (MAX_SEQS)", "SEQ_RING", "seq.ring"],
    ["each sequence's sliding window (MAX_SEQS)", "SEQ_WINDOW", "seq.window"],
  ];
  for (const [doc, name, buffer] of int32) {
    constant(`int32 index of ${doc}.`, name, indexOf(plan, buffer));
  }
  constant("f32 index of the decode graph's logits (1, vocab_size).", "LOGITS", decodeLogits);
  constant(
    "f32 index of the prefill graph's logits (nOut, vocab_size).",
    "LOGITS_ALL",
    prefillLogits,
  );
  s.line();
  s.line("/** Binds the kernels to an arena and the weights (canonical name → data). */");
  s.open(
    "export function createKernels(memory: WebAssembly.Memory, W: Record<string, Float32Array>" +
      (wasm ? ", X: Record<string, Function>)" : ")"),
  );
  s.line("const A = new Float32Array(memory.buffer, 0, ARENA_BYTES / 4); // f32 buffers");
  s.line("const I = new Int32Array(memory.buffer, 0, ARENA_BYTES / 4); // int32 buffers");
  s.line();

  s.line("// Weights (row-major, (out_features, in_features)).");
  const used = new Set<string>();
  for (const g of [plan.decode, plan.prefill]) {
    for (const n of g.nodes) for (const w of n.weights) used.add(w);
  }
  const shapes = expectedShapes(c);
  for (const w of used) {
    s.line(`const ${weightIdent(w)} = W["${w}"]; // (${shapes.get(w)!.join(", ")})`);
  }
  s.line();

  for (const t of tablesOf(plan)) {
    s.line(`// ${t.doc ?? t.name}`);
    s.line(`const ${tableConst(t.name)} = [`);
    for (const v of t.values ?? []) s.line(`  ${num(v)},`);
    s.line("];");
    s.line();
  }
  return s;
}

/**
 * One function per group of a graph (`layer3_attn`, `prefill_layer3_attn`, ...): each node a
 * comment with its shapes and one kernel call with literal offsets. The decode graph's
 * functions take no arguments (one row); the prefill graph's take the row count `n`, or
 * `nOut` for the out-row nodes (gather, final norm, LM head).
 */
function emitStep(plan: Plan, which: "decode" | "prefill", kernels: KernelSet, wasm: boolean) {
  const g = which === "decode" ? plan.decode : plan.prefill;
  const prefix = which === "decode" ? "" : "prefill_";
  const s = new JsSource(1);
  s.line(
    which === "decode"
      ? "// ---- decode graph: one row (matrix-vector products) ----"
      : `// ---- prefill graph: n <= ${g.rows} rows, any sequences and positions ` +
        "(matrix-matrix products) ----",
  );
  s.line();
  const base: CallContext = {
    rows: g.rows,
    backend: wasm ? "wasm" : "js",
    n: "1",
    offset: (name) => findBuffer(plan, which, name).offset / 4,
    weight: weightIdent,
  };
  for (const grp of groupsOf(g)) {
    s.open(`function ${prefix}${grp.name}(${groupParams(grp.nodes, which)})`);
    for (const node of grp.nodes) {
      const ctx = { ...base, n: rowsExpr(node, which) };
      const kernel = kernels.use(node, ctx);
      s.comment(node.doc);
      s.call(kernel, rendererOf(node).args(node, ctx));
    }
    s.close();
    s.line();
  }
  return s;
}

/** The expression of a node's row count: `1` (decode), `n` (step rows) or `nOut` (out rows). */
function rowsExpr(node: GraphNode, which: "decode" | "prefill"): string {
  if (which === "decode") return "1";
  return node.rows === "out" ? "nOut" : "n";
}

/** The parameters of a group's function: the row counts its nodes use (none in decode). */
function groupParams(nodes: GraphNode[], which: "decode" | "prefill"): string {
  if (which === "decode") return "";
  const used = new Set(nodes.map((n) => rowsExpr(n, which)));
  return ["n", "nOut"].filter((p) => used.has(p)).map((p) => `${p}: number`).join(", ");
}

/** `init`, `decode`, `prefill` and `step`: the module's entry points. */
function emitEntryPoints(plan: Plan): JsSource {
  const s = new JsSource(1);
  s.line("/** Fills the constant tables (call once after creating the kernels). */");
  s.open("function init()");
  for (const t of tablesOf(plan)) {
    const at = findBuffer(plan, "decode", t.name).offset / 4;
    s.line(`A.set(${tableConst(t.name)}, ${at}); // ${t.name} (${t.shape.join(", ")})`);
  }
  s.close();
  s.line();
  const calls = (which: "decode" | "prefill") => {
    const g = which === "decode" ? plan.decode : plan.prefill;
    for (const grp of groupsOf(g)) {
      const args = groupParams(grp.nodes, which).replace(/: number/g, "");
      const call = `${which === "decode" ? "" : "prefill_"}${grp.name}(${args});`;
      s.line(grp.name === "lm_head" ? `if (nOut > 0) ${call}` : call);
    }
  };
  s.line("/** One row (n = 1); logits (nOut <= 1, vocab_size) at LOGITS. No allocation. */");
  s.open("function decode(nOut: number)");
  calls("decode");
  s.close();
  s.line();
  s.line("/** n <= MAX_ROWS rows; logits (nOut, vocab_size) at LOGITS_ALL. */");
  s.open("function prefill(n: number, nOut: number)");
  calls("prefill");
  s.close();
  s.line();
  s.line("/** Runs the step written at STEP_*: the decode graph when n is 1. */");
  s.open("function step()");
  s.line("const n = I[STEP_COUNTS], nOut = I[STEP_COUNTS + 1];");
  s.line("if (n === 1) decode(nOut);");
  s.line("else prefill(n, nOut);");
  s.close();
  s.line();
  s.line("return { init, decode, prefill, step };");
  s.close();
  return s;
}

/**
 * Emits the kernels module for a plan (see the module doc for its shape).
 *
 * @param plan The arena plan (its decode and prefill graphs and offsets).
 * @param options `backend` (`js` default; `wasm` makes matrix products call WASM exports).
 * @returns TypeScript source; valid JS once parameter type annotations are removed
 *   (`stripTypes` in compile.ts).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { planArena } from "./plan.ts";
 * import { emitKernelsForPlan } from "./emit_js.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-gpt2.yaml"), "t.yaml");
 * const src = emitKernelsForPlan(planArena(c));
 * assert.ok(src.includes("function layer1_ffn()")); // decode graph: one row
 * assert.ok(src.includes("function prefill_layer1_ffn(n: number)"));
 * assert.ok(src.includes("function gelu_192(h: number, n: number)")); // hidden_dim 192
 * ```
 */
export function emitKernelsForPlan(plan: Plan, options: EmitOptions = {}): string {
  const wasm = options.backend === "wasm";
  const kernels = new KernelSet();
  const head = emitHead(plan, wasm);
  const decode = emitStep(plan, "decode", kernels, wasm);
  const prefill = emitStep(plan, "prefill", kernels, wasm);
  const body = [
    "  // ---- kernels: one per distinct shape; offsets are f32 indices into A ----",
    "",
    ...kernels.src.lines,
    ...decode.lines,
    ...prefill.lines,
  ];
  return head.text() + body.join("\n") + "\n" + emitEntryPoints(plan).text();
}

/**
 * Emits the readable TypeScript kernels module for a config: what `gollm kernels` writes
 * and what {@linkcode compileModel} evaluates.
 *
 * @param config The model config.
 * @param options `kvCapacity` and `prefillChunk` (they fix the single-sequence layout
 *   whose sizes are literals in the source: {@linkcode planArena}).
 * @returns The module source: `export function createKernels(memory, W)` returning
 *   `{ init, decode, prefill, step }`, plus `ARENA_BYTES`, the layout (`MAX_ROWS`, ...),
 *   the int32 indices of the step rows and sequence state (`STEP_*`, `SEQ_*`), `LOGITS`
 *   and `LOGITS_ALL`.
 * @throws {RangeError} for a bad `kvCapacity` or `prefillChunk`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { emitKernels } from "./emit_js.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const src = emitKernels(c, { kvCapacity: 64 });
 * assert.ok(src.includes("function prefill_layer0_attn(n: number)"));
 * assert.ok(src.includes("function attention_4x2x12_b16(")); // 4 heads, 2 KV heads, blocks of 16
 * ```
 */
export function emitKernels(config: ModelConfig, options: ForwardOptions = {}): string {
  return emitKernelsForPlan(planArena(config, options));
}
