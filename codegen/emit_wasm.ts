/**
 * The WASM SIMD emitter: for a plan, one WebAssembly module with an f32x4 kernel per
 * distinct matrix-product shape (`matvec_2048x768` for the decode step,
 * `matmul_2048x768_bias` for the prefill chunk), built byte by byte with `wasm_asm.ts`
 * (no external toolchain). The module imports the arena memory as `env.memory`; the
 * weights must be in that memory too (plan with `weightsInArena`, see `plan.ts`).
 *
 * Every kernel takes byte offsets into the memory, `(w, [bias,] x, y[, n])`; the shapes,
 * row strides and unrolling are constants in the code:
 * - `matvec_MxN` computes y (M) = w (M, N) · x (N) [+ bias], 8 output rows at a time;
 * - `matmul_MxN` computes y (n, M) = x (n, N) · wᵀ [+ bias] for n tokens, 4 weight rows ×
 *   2 tokens at a time (weight row blocks outside, tokens inside, so each block of weight
 *   rows is streamed once per chunk, as in emit_js.ts).
 *
 * The dot products accumulate in f32x4 lanes (`f32x4.mul` + `f32x4.add`, no fused
 * multiply-add), unrolled by {@linkcode VEC_UNROLL} vectors; the lanes are summed
 * pairwise at the end, then the `N mod 4` tail columns are added one by one, then the
 * bias. Results differ from the sequential sums of `runtime/reference.ts` by rounding only.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { ForwardOptions } from "../core/forward.ts";
import { linearKernelName } from "./ops/linear.ts";
import { type Plan, planArena } from "./plan.ts";
import { assembleModule, WasmFunc } from "./wasm_asm.ts";

/** Output rows per register block of the decode matvec (8 f32x4 accumulators). */
const MV_ROWS = 8;
/** Weight rows per register block of the prefill matmul (× TOKENS accumulators). */
const MM_ROWS = 4;
/** Tokens per register block of the prefill matmul. */
const TOKENS = 2;
/** f32x4 vectors per inner-loop iteration. */
const VEC_UNROLL = 2;

/** One distinct matrix-product shape of a plan. */
export interface LinearShape {
  /** Kernel (and export) name, as in emit_js.ts: `matvec_2048x768`, `matmul_2048x768_bias`. */
  name: string;
  /** `matvec` (graph with 1 row) or `matmul` (n tokens at once). */
  kind: "matvec" | "matmul";
  /** Output features (rows of w). */
  M: number;
  /** Input features (columns of w). */
  N: number;
  /** Whether a bias (M) is added. */
  bias: boolean;
}

/**
 * The distinct matrix-product shapes of a plan's decode and prefill graphs, named like the
 * JS kernels (a graph with one row, decode or a one-token prefill chunk, uses matvec).
 *
 * @param plan The arena plan.
 * @returns The shapes, in first-use order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { planArena } from "./plan.ts";
 * import { linearShapes } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const shapes = linearShapes(planArena(c));
 * assert.deepEqual(shapes[0], { name: "matvec_48x48", kind: "matvec", M: 48, N: 48, bias: false });
 * assert.ok(shapes.some((s) => s.name === "matmul_80x48")); // w1/w3 in the prefill chunk
 * ```
 */
export function linearShapes(plan: Plan): LinearShape[] {
  const out = new Map<string, LinearShape>();
  for (const g of [plan.decode, plan.prefill]) {
    for (const n of g.nodes) {
      if (n.op !== "linear") continue;
      const M = n.attrs.out as number, N = n.attrs.in as number, bias = n.attrs.bias as boolean;
      const kind = g.rows === 1 ? "matvec" : "matmul";
      const name = linearKernelName(g.rows, M, N, bias);
      if (!out.has(name)) out.set(name, { name, kind, M, N, bias });
    }
  }
  return [...out.values()];
}

/**
 * Emits the code of one R × C register block: `y[t + b][r + a] = Σ_j w[r + a][j] ·
 * x[t + b][j] (+ bias[r + a])` for a < R, b < C, with locals `wr` (w row r), `xt` (x row
 * t), `yo` (address of y[t][r]) and `bp` (bias + r) set by the caller.
 */
function registerBlock(f: WasmFunc, R: number, C: number, M: number, N: number, bias: boolean) {
  const rowB = N * 4; // bytes per weight row and per x row
  const N4 = N - (N % 4);
  const step = 16 * VEC_UNROLL;
  const NL = N4 - (N4 % (4 * VEC_UNROLL)); // columns covered by the unrolled loop
  const acc = (a: number, b: number) => `acc${a}${b}`;
  f.comment(`block of ${R} weight row(s) × ${C} token(s): f32x4 accumulators`);
  for (let a = 0; a < R; a++) for (let b = 0; b < C; b++) f.zeroV128().set(acc(a, b));
  // One f32x4 step: columns at byte `col` past the bases `w`/`x` (plus a constant offset).
  const vecStep = (w: string, x: string, col: number) => {
    for (let b = 0; b < C; b++) f.get(x).mem("v128.load", b * rowB + col).set(`xv${b}`);
    for (let a = 0; a < R; a++) {
      f.get(w).mem("v128.load", a * rowB + col).set("wv");
      for (let b = 0; b < C; b++) {
        f.get(acc(a, b)).get("wv").get(`xv${b}`).op("f32x4.mul").op("f32x4.add").set(acc(a, b));
      }
    }
  };
  if (NL > 0) {
    f.comment(`columns 0 .. ${NL - 1}: ${VEC_UNROLL} × f32x4 per iteration`);
    f.i32(0).set("j");
    f.loop("cols");
    f.get("wr").get("j").op("i32.add").set("pw");
    f.get("xt").get("j").op("i32.add").set("px");
    for (let u = 0; u < VEC_UNROLL; u++) vecStep("pw", "px", u * 16);
    f.get("j").i32(step).op("i32.add").tee("j").i32(NL * 4).op("i32.lt_u").brIf("cols");
    f.end();
  }
  for (let col = NL; col < N4; col += 4) {
    f.comment(`columns ${col} .. ${col + 3}: one f32x4 left over from the unroll`);
    vecStep("wr", "xt", col * 4);
  }
  for (let b = 0; b < C; b++) {
    for (let a = 0; a < R; a++) {
      f.comment(
        `y[t${b ? " + " + b : ""}][r${a ? " + " + a : ""}] = sum of lanes` +
          (N4 < N ? ` + ${N - N4} tail column(s)` : "") + (bias ? " + bias" : ""),
      );
      f.get("yo");
      const s = acc(a, b);
      f.get(s).extractLane(0).get(s).extractLane(1).op("f32.add");
      f.get(s).extractLane(2).get(s).extractLane(3).op("f32.add").op("f32.add");
      for (let u = N4; u < N; u++) {
        f.get("wr").mem("f32.load", a * rowB + u * 4);
        f.get("xt").mem("f32.load", b * rowB + u * 4).op("f32.mul").op("f32.add");
      }
      if (bias) f.get("bp").mem("f32.load", a * 4).op("f32.add");
      f.mem("f32.store", b * M * 4 + a * 4);
    }
  }
}

/** Advances `wr`, `yr` and `bp` past R weight rows. */
function nextRows(f: WasmFunc, R: number, N: number, bias: boolean) {
  f.get("wr").i32(R * N * 4).op("i32.add").set("wr");
  f.get("yr").i32(R * 4).op("i32.add").set("yr");
  if (bias) f.get("bp").i32(R * 4).op("i32.add").set("bp");
}

/** Emits the code for the R weight rows at `wr`: every token (matmul) or the one (matvec). */
function rowsOfAllTokens(f: WasmFunc, s: LinearShape, R: number) {
  const { M, N, bias } = s;
  if (s.kind === "matvec") {
    f.get("x").set("xt");
    f.get("yr").set("yo");
    registerBlock(f, R, 1, M, N, bias);
    return;
  }
  f.i32(0).set("t");
  f.get("x").set("xt");
  f.get("yr").set("yo");
  f.block("pairs_done");
  f.loop("pairs");
  f.comment(`while t + ${TOKENS} <= n`);
  f.get("t").i32(TOKENS).op("i32.add").get("n").op("i32.gt_u").brIf("pairs_done");
  registerBlock(f, R, TOKENS, M, N, bias);
  f.get("t").i32(TOKENS).op("i32.add").set("t");
  f.get("xt").i32(TOKENS * N * 4).op("i32.add").set("xt");
  f.get("yo").i32(TOKENS * M * 4).op("i32.add").set("yo");
  f.br("pairs");
  f.end();
  f.end();
  for (let left = 1; left < TOKENS; left++) {
    f.comment(`token t + ${left - 1} when n - t >= ${left}`);
    f.get("t").i32(left - 1).op("i32.add").get("n").op("i32.lt_u");
    f.if();
    registerBlock(f, R, 1, M, N, bias);
    f.end();
    f.get("xt").i32(N * 4).op("i32.add").set("xt");
    f.get("yo").i32(M * 4).op("i32.add").set("yo");
  }
}

/**
 * Builds the kernel function of one shape (see the module doc for the blocking).
 *
 * @param s The shape.
 * @returns The assembled function (bytes and text).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linearKernel } from "./emit_wasm.ts";
 * const f = linearKernel({ name: "matvec_8x6", kind: "matvec", M: 8, N: 6, bias: false });
 * assert.equal(
 *   f.text().split("\n")[0],
 *   '(func $matvec_8x6 (export "matvec_8x6") (param $w i32) (param $x i32) (param $y i32)',
 * );
 * assert.ok(f.text().includes(";; rows 0 .. 7, 8 at a time"));
 * ```
 */
export function linearKernel(s: LinearShape): WasmFunc {
  const { M, N, bias } = s;
  const params: [string, "i32"][] = [["w", "i32"]];
  if (bias) params.push(["bias", "i32"]);
  params.push(["x", "i32"], ["y", "i32"]);
  if (s.kind === "matmul") params.push(["n", "i32"]);
  const f = new WasmFunc(s.name, params);
  for (const l of ["wr", "yr", "bp", "xt", "yo", "j", "pw", "px", "wend", "t"]) f.local(l, "i32");
  const C = s.kind === "matmul" ? TOKENS : 1;
  const ROWS = s.kind === "matmul" ? MM_ROWS : MV_ROWS;
  for (let a = 0; a < ROWS; a++) for (let b = 0; b < C; b++) f.local(`acc${a}${b}`, "v128");
  for (let b = 0; b < C; b++) f.local(`xv${b}`, "v128");
  f.local("wv", "v128");
  f.comment(
    s.kind === "matvec"
      ? `y (${M}) = w (${M}, ${N}) · x (${N})${bias ? ` + bias (${M})` : ""}; byte offsets`
      : `y (n, ${M}) = x (n, ${N}) · wᵀ, w (${M}, ${N})${bias ? " + bias" : ""}; byte offsets`,
  );
  f.get("w").set("wr");
  f.get("y").set("yr");
  if (bias) f.get("bias").set("bp");
  const MR = M - (M % ROWS);
  if (MR > 0) {
    f.comment(`rows 0 .. ${MR - 1}, ${ROWS} at a time`);
    f.get("w").i32(MR * N * 4).op("i32.add").set("wend");
    f.loop("rows");
    rowsOfAllTokens(f, s, ROWS);
    nextRows(f, ROWS, N, bias);
    f.get("wr").get("wend").op("i32.lt_u").brIf("rows");
    f.end();
  }
  for (let r = MR; r < M; r++) {
    f.comment(`row ${r} (left over from the blocks of ${ROWS})`);
    rowsOfAllTokens(f, s, 1);
    if (r + 1 < M) nextRows(f, 1, N, bias);
  }
  return f;
}

/** A plan's WASM kernels: module bytes, the functions and a readable listing. */
export interface WasmKernels {
  /** The module (imports `env.memory`, exports one function per shape). */
  bytes: Uint8Array<ArrayBuffer>;
  /** The shapes, in export order. */
  shapes: LinearShape[];
  /** WAT-like text of the module, with shape comments. */
  listing: string;
}

/**
 * Emits the WASM kernels of a plan: one exported f32x4 function per distinct matvec
 * (decode) and matmul (prefill) shape.
 *
 * @param plan The arena plan; plan it with `weightsInArena: true` to run the kernels (the
 *   module's minimum memory is `plan.memoryBytes`).
 * @returns Bytes, shapes and listing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { planArena } from "./plan.ts";
 * import { emitWasmForPlan } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const k = emitWasmForPlan(planArena(c, { weightsInArena: true }));
 * assert.ok(WebAssembly.validate(k.bytes));
 * assert.equal(k.shapes.length, 10); // 5 matrix shapes × (decode matvec, prefill matmul)
 * ```
 */
export function emitWasmForPlan(plan: Plan): WasmKernels {
  const c = plan.decode.config;
  const shapes = linearShapes(plan);
  const funcs = shapes.map(linearKernel);
  const pages = Math.ceil(plan.memoryBytes / 65536);
  const bytes = assembleModule(funcs, pages);
  const head = [
    ";; Generated by gollm codegen/emit_wasm.ts: f32x4 SIMD matrix products for one config.",
    ";; Do not edit; regenerate with emitWasmListing().",
    `;; arch ${c.arch}: dim ${c.dim}, ${c.n_layers} layers, hidden ${c.hidden_dim}, ` +
    `vocab ${c.vocab_size}; prefill chunk ${plan.prefillChunk} tokens`,
    `;; memory: arena ${plan.arenaBytes} bytes, weights at ${plan.weightsOffset} ` +
    `(${plan.weightsBytes} bytes); ${bytes.length} bytes of module`,
    `;; blocking: matvec ${MV_ROWS} rows, matmul ${MM_ROWS} weight rows × ${TOKENS} tokens, ` +
    `${VEC_UNROLL} × f32x4 per inner iteration`,
    "",
    "(module",
    `  (import "env" "memory" (memory ${pages}))`,
  ];
  const body = funcs.map((f) => f.text().split("\n").map((l) => "  " + l).join("\n"));
  return { bytes, shapes, listing: [...head, ...body, ")", ""].join("\n") };
}

/**
 * The readable WAT-like listing of a config's WASM kernels (what `compileModel` with
 * `backend: "wasm"` runs), one function per distinct shape with shape comments.
 *
 * @param config The model config.
 * @param options `kvCapacity` and `prefillChunk` (they fix the plan the listing is for).
 * @returns The listing text.
 * @throws {RangeError} for a bad `kvCapacity` or `prefillChunk`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { emitWasmListing } from "./emit_wasm.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const listing = emitWasmListing(c);
 * assert.ok(listing.includes('(func $matvec_48x48 (export "matvec_48x48")'));
 * assert.ok(listing.includes("f32x4.mul"));
 * ```
 */
export function emitWasmListing(config: ModelConfig, options: ForwardOptions = {}): string {
  return emitWasmForPlan(planArena(config, { ...options, weightsInArena: true })).listing;
}
