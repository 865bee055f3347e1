/**
 * The matrix-product kernels of the `linear` op, the hot loops of every step:
 * - `matvec_MxN` (a graph with one row: the decode step) computes y (M) = w (M, N) · x (N),
 *   4 output rows at a time with the dot product unrolled by 4 (one accumulator per row);
 * - `matmul_MxN` (the prefill chunk) computes y (n, M) = x (n, N) · wᵀ with a 4 weight rows
 *   × 2 tokens register block, unrolled by 2, weight row blocks outside and tokens inside so
 *   each block of weight rows is read from memory once per chunk;
 * - with the `wasm` backend, both are wrappers that call the f32x4 export of the same name
 *   (codegen/emit_wasm.ts) with byte offsets.
 *
 * Both blockings were the fastest variants measured with V8 on scalar f32 code.
 *
 * @module
 */
import { jsNumber as num, type JsSource } from "../js_source.ts";
import type { OpRenderer } from "./renderer.ts";

/** Register blocking of the decode matvec: output rows per block, dot-product unroll. */
const MV_ROWS = 4, MV_UNROLL = 4;
/** Register blocking of the prefill matmul: weight rows × tokens per block, unroll. */
const MM_ROWS = 4, MM_TOKENS = 2, MM_UNROLL = 2;

/**
 * The name of a matrix-product kernel, shared by the JS kernels and the WASM exports that
 * the wasm backend's JS wrappers call (emit_wasm.ts): `matvec_MxN` in a one-row graph
 * (decode, or a one-token prefill chunk), `matmul_MxN` otherwise; `_bias` when it adds one.
 *
 * @param rows Token rows of the graph (1 = decode).
 * @param M Output features (rows of w).
 * @param N Input features (columns of w).
 * @param bias Whether a bias (M) is added.
 * @returns The kernel name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linearKernelName } from "./linear.ts";
 * assert.equal(linearKernelName(32, 2048, 768, true), "matmul_2048x768_bias");
 * assert.equal(linearKernelName(1, 2048, 768, false), "matvec_2048x768");
 * ```
 */
export function linearKernelName(rows: number, M: number, N: number, bias: boolean): string {
  return `${rows === 1 ? "matvec" : "matmul"}_${M}x${N}${bias ? "_bias" : ""}`;
}

/**
 * Emits the lines computing an `R × C` block of `y[t + b][r + a] = Σ_j w[r + a][j] · x[t + b][j]`
 * (+ bias), with the dot product unrolled by `U`. Expects `r` and `t` in scope.
 */
function dotBlock(
  s: JsSource,
  R: number,
  C: number,
  U: number,
  N: number,
  bias: boolean,
  xRow: (b: number) => string,
  yRow: (b: number) => string,
): void {
  const NU = N - (N % U);
  const rows = Array.from({ length: R }, (_, a) => a);
  const toks = Array.from({ length: C }, (_, b) => b);
  s.line(
    `const ${rows.map((a) => `r${a} = ${a === 0 ? `r * ${N}` : `r${a - 1} + ${N}`}`).join(", ")};`,
  );
  s.line(`const ${toks.map((b) => `t${b} = ${xRow(b)}`).join(", ")};`);
  s.line(`let ${rows.flatMap((a) => toks.map((b) => `s${a}${b} = 0`)).join(", ")};`);
  const body = (j: (u: number) => string, us: number[]) => {
    for (const b of toks) {
      s.line(`const ${us.map((u) => `x${b}${u} = A[t${b} + ${j(u)}]`).join(", ")};`);
    }
    for (const a of rows) {
      for (const b of toks) {
        const terms = us.map((u) => `w[r${a} + ${j(u)}] * x${b}${u}`);
        s.line(`s${a}${b} += ${terms.join(" + ")};`);
      }
    }
  };
  if (NU > 0) {
    s.open(`for (let j = 0; j < ${NU}; j += ${U})`);
    body((u) => (u === 0 ? "j" : `j + ${u}`), Array.from({ length: U }, (_, u) => u));
    s.close();
  }
  if (NU < N) {
    s.comment(`tail: ${N % U} column(s) left over from the unroll by ${U}`);
    body((u) => num(NU + u), Array.from({ length: N - NU }, (_, u) => u));
  }
  for (const b of toks) {
    const stores = rows.map((a) => {
      const idx = a === 0 ? "r" : `r + ${a}`;
      return `A[${yRow(b)} + ${idx}] = s${a}${b}${bias ? ` + bias[${idx}]` : ""};`;
    });
    for (const st of stores) s.line(st);
  }
}

/** y (M) = w (M, N) · x (N) [+ bias]: the decode step's matrix-vector product. */
function emitMatvec(s: JsSource, name: string, M: number, N: number, bias: boolean): void {
  const params = bias
    ? "w: Float32Array, bias: Float32Array, x: number, y: number"
    : "w: Float32Array, x: number, y: number";
  s.open(`function ${name}(${params})`);
  s.comment(
    `y (${M}) = w (${M}, ${N}) · x (${N})${bias ? " + bias (" + M + ")" : ""}; ` +
      `${MV_ROWS} rows at a time, dot product unrolled by ${MV_UNROLL}`,
  );
  const MR = M - (M % MV_ROWS);
  if (MR > 0) {
    s.open(`for (let r = 0; r < ${MR}; r += ${MV_ROWS})`);
    dotBlock(s, MV_ROWS, 1, MV_UNROLL, N, bias, () => "x", () => "y");
    s.close();
  }
  if (MR < M) {
    s.open(`for (let r = ${MR}; r < ${M}; r++)`);
    dotBlock(s, 1, 1, MV_UNROLL, N, bias, () => "x", () => "y");
    s.close();
  }
  s.close();
}

/**
 * y (n, M) = x (n, N) · wᵀ [+ bias] with w (M, N): the prefill step's matrix product.
 * Loop order: weight row blocks outside, tokens inside, so a block of MM_ROWS weight rows
 * is read from memory once per chunk and reused from cache for every token.
 */
function emitMatmul(s: JsSource, name: string, M: number, N: number, bias: boolean): void {
  const params = bias
    ? "w: Float32Array, bias: Float32Array, x: number, y: number, n: number"
    : "w: Float32Array, x: number, y: number, n: number";
  s.open(`function ${name}(${params})`);
  s.comment(
    `y (n, ${M}) = x (n, ${N}) · wᵀ, w (${M}, ${N})${bias ? " + bias" : ""}; ` +
      `blocks of ${MM_ROWS} weight rows × ${MM_TOKENS} tokens, unrolled by ${MM_UNROLL}`,
  );
  const xRow = (b: number) => (b === 0 ? `x + t * ${N}` : `t${b - 1} + ${N}`);
  const yRow = (b: number) => (b === 0 ? `y + t * ${M}` : `y + (t + ${b}) * ${M}`);
  const MR = M - (M % MM_ROWS);
  const tokenLoops = (R: number) => {
    s.line("let t = 0;");
    s.open(`for (; t + ${MM_TOKENS} <= n; t += ${MM_TOKENS})`);
    dotBlock(s, R, MM_TOKENS, MM_UNROLL, N, bias, xRow, yRow);
    s.close();
    s.open(`for (; t < n; t++)`);
    dotBlock(s, R, 1, MM_UNROLL, N, bias, xRow, yRow);
    s.close();
  };
  if (MR > 0) {
    s.open(`for (let r = 0; r < ${MR}; r += ${MM_ROWS})`);
    tokenLoops(MM_ROWS);
    s.close();
  }
  if (MR < M) {
    s.open(`for (let r = ${MR}; r < ${M}; r++)`);
    tokenLoops(1);
    s.close();
  }
  s.close();
}

/**
 * The WASM backend's matrix product: a wrapper with the JS kernel's parameters that calls
 * the f32x4 export of the same name (emit_wasm.ts) with byte offsets (`X` = the exports).
 */
function emitWasmCall(s: JsSource, name: string, M: number, N: number, bias: boolean, mm: boolean) {
  const params = "w: Float32Array, " + (bias ? "bias: Float32Array, " : "") +
    "x: number, y: number" +
    (mm ? ", n: number" : "");
  s.open(`function ${name}(${params})`);
  const shape = mm
    ? `y (n, ${M}) = x (n, ${N}) · wᵀ, w (${M}, ${N})`
    : `y (${M}) = w (${M}, ${N}) · x (${N})`;
  s.comment(`${shape}${bias ? " + bias" : ""}: WASM f32x4 kernel`);
  const args = ["w.byteOffset", ...(bias ? ["bias.byteOffset"] : []), "x * 4", "y * 4"];
  s.line(`X.${name}(${[...args, ...(mm ? ["n"] : [])].join(", ")});`);
  s.close();
}

/**
 * `matvec_MxN[_bias](w, [bias,] x, y)` in a one-row graph, `matmul_MxN[_bias](w, [bias,]
 * x, y, n)` otherwise; JS loops, or calls of the WASM exports with the `wasm` backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsSource } from "../js_source.ts";
 * import { linearOp } from "./linear.ts";
 * import type { GraphNode } from "../graph.ts";
 * const node: GraphNode<"linear"> = {
 *   op: "linear", group: "g", layer: 0, inputs: ["x"], outputs: ["y"], weights: ["w"],
 *   attrs: { in: 6, out: 5, bias: false }, doc: "",
 * };
 * const s = new JsSource();
 * linearOp.kernel(s, "matvec_5x6", node, { rows: 1, backend: "js" });
 * // 4 rows at a time, then the one row left over; the literal row stride is 6.
 * assert.match(s.text(), /for \(let r = 0; r < 4; r \+= 4\)/);
 * assert.match(s.text(), /for \(let r = 4; r < 5; r\+\+\)/);
 * assert.match(s.text(), /const r0 = r \* 6, r1 = r0 \+ 6/);
 * ```
 */
export const linearOp: OpRenderer<"linear"> = {
  name: (node, ctx) => linearKernelName(ctx.rows, node.attrs.out, node.attrs.in, node.attrs.bias),
  kernel(s, name, node, ctx) {
    const { out: M, in: N, bias } = node.attrs;
    if (ctx.backend === "wasm") emitWasmCall(s, name, M, N, bias, ctx.rows > 1);
    else if (ctx.rows === 1) emitMatvec(s, name, M, N, bias);
    else emitMatmul(s, name, M, N, bias);
  },
  args: (node, ctx) => [
    ...node.weights.map(ctx.weight),
    String(ctx.offset(node.inputs[0])),
    String(ctx.offset(node.outputs[0])),
    ...(ctx.rows > 1 ? [ctx.n] : []),
  ],
};
