/**
 * The JS/TS emitter: turns a config's plan (graphs + arena offsets) into a readable,
 * formatted TypeScript module in which every shape, stride and offset is a literal.
 *
 * The module exports `createKernels(memory, W)`, which returns `{ init, decode, prefill }`:
 * - shape-specialised kernels (`matvec_2048x768`, `matmul_2048x768`, `rmsnorm_768`,
 *   `attention_12x4x64_w2048`, ...), emitted once per distinct shape;
 * - one function per layer and sublayer for each step (`layer3_attn`, `layer3_ffn`,
 *   `lm_head`; `prefill_layer3_attn`, ...), layers unrolled, each node one commented call;
 * - `decode(token, pos)` (1 token, matrix-vector products) and
 *   `prefill(tokens, start, n, pos, logits)` (n <= T tokens at once as matrix-matrix
 *   products, blocked so each weight row block is streamed once per chunk).
 *
 * `compile.ts` evaluates exactly this source (type annotations stripped) with
 * `new Function`; `gollm kernels` writes it to disk.
 *
 * Inner loops: decode uses 4 output rows at a time with the dot product unrolled by 4
 * (one accumulator per row); prefill uses a 4 weight rows × 2 tokens register block,
 * unrolled by 2. Both were the fastest variants measured with V8 on scalar f32 code.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { ForwardOptions } from "../core/forward.ts";
import { ropeInvFreq } from "../core/rope.ts";
import { expectedShapes } from "../core/weights.ts";
import type { Graph, GraphNode } from "./graph.ts";
import { findBuffer, type Plan, planArena } from "./plan.ts";

/** Register blocking of the decode matvec: output rows per block, dot-product unroll. */
const MV_ROWS = 4, MV_UNROLL = 4;
/** Register blocking of the prefill matmul: weight rows × tokens per block, unroll. */
const MM_ROWS = 4, MM_TOKENS = 2, MM_UNROLL = 2;

/** Line builder with indentation. */
class Src {
  readonly lines: string[] = [];
  constructor(private depth = 0) {}
  line(s = ""): void {
    this.lines.push(s === "" ? "" : "  ".repeat(this.depth) + s);
  }
  open(s: string): void {
    // Wrap a long function header one parameter per line, as `deno fmt` would.
    const m = /^(.*function \w+)\((.*)\)$/.exec(s);
    if (m && "  ".repeat(this.depth).length + s.length + 2 > 100) {
      this.line(m[1] + "(");
      for (const p of m[2].split(/, (?=\w+: )/)) this.line("  " + p + ",");
      this.line(") {");
    } else {
      this.line(s + " {");
    }
    this.depth++;
  }
  close(s = "}"): void {
    this.depth--;
    this.line(s);
  }
  /** Closes a block and opens the next one on the same line (`} else {`). */
  mid(s: string): void {
    this.depth--;
    this.line(s);
    this.depth++;
  }
  text(): string {
    return this.lines.join("\n") + "\n";
  }
}

/** JS literal of a number that round-trips exactly. */
const num = (v: number) => (Object.is(v, -0) ? "0" : String(v));

/** Identifier of a weight tensor: `layers.3.attn.wq.weight` → `l3_attn_wq`, `.bias` → `_b`. */
function weightIdent(name: string): string {
  return name
    .replace(/^layers\.(\d+)\./, "l$1_")
    .replace(/\.weight$/, "")
    .replace(/\.bias$/, "_b")
    .replace(/\./g, "_");
}

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
 * import { linearKernelName } from "./emit_js.ts";
 * console.log(linearKernelName(32, 2048, 768, true)); // matmul_2048x768_bias
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
  s: Src,
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
    s.line(`// tail: ${N % U} column(s) left over from the unroll by ${U}`);
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
function emitMatvec(s: Src, name: string, M: number, N: number, bias: boolean): void {
  const params = bias
    ? "w: Float32Array, bias: Float32Array, x: number, y: number"
    : "w: Float32Array, x: number, y: number";
  s.open(`function ${name}(${params})`);
  s.line(
    `// y (${M}) = w (${M}, ${N}) · x (${N})${bias ? " + bias (" + M + ")" : ""}; ` +
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
function emitMatmul(s: Src, name: string, M: number, N: number, bias: boolean): void {
  const params = bias
    ? "w: Float32Array, bias: Float32Array, x: number, y: number, n: number"
    : "w: Float32Array, x: number, y: number, n: number";
  s.open(`function ${name}(${params})`);
  s.line(
    `// y (n, ${M}) = x (n, ${N}) · wᵀ, w (${M}, ${N})${bias ? " + bias" : ""}; ` +
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
function emitWasmCall(s: Src, name: string, M: number, N: number, bias: boolean, mm: boolean) {
  const params = "w: Float32Array, " + (bias ? "bias: Float32Array, " : "") +
    "x: number, y: number" +
    (mm ? ", n: number" : "");
  s.open(`function ${name}(${params})`);
  const shape = mm
    ? `y (n, ${M}) = x (n, ${N}) · wᵀ, w (${M}, ${N})`
    : `y (${M}) = w (${M}, ${N}) · x (${N})`;
  s.line(`// ${shape}${bias ? " + bias" : ""}: WASM f32x4 kernel`);
  const args = ["w.byteOffset", ...(bias ? ["bias.byteOffset"] : []), "x * 4", "y * 4"];
  s.line(`X.${name}(${[...args, ...(mm ? ["n"] : [])].join(", ")});`);
  s.close();
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

/** Emits every kernel of the module once per distinct shape. */
class KernelSet {
  readonly src = new Src(1); // inside createKernels
  private readonly done = new Set<string>();
  constructor(readonly c: ModelConfig, readonly plan: Plan, readonly wasm = false) {}

  /** Returns the kernel name for a node in a graph with `rows` rows, emitting it on first use. */
  kernel(node: GraphNode, rows: number): string {
    const c = this.c;
    const s = this.src;
    const once = (name: string, emit: () => void) => {
      if (!this.done.has(name)) {
        this.done.add(name);
        emit();
        s.line();
      }
      return name;
    };
    const qDim = c.n_heads * c.head_dim, kvDim = c.n_kv_heads * c.head_dim;
    const hd = c.head_dim, half = hd / 2, cap = this.plan.kvCapacity;
    switch (node.op) {
      case "embed": {
        const gpt2 = c.arch === "gpt2";
        const name = `embed_${c.dim}${gpt2 ? "_pos" : ""}`;
        return once(name, () => {
          const pe = gpt2 ? "pe: Float32Array, " : "";
          s.open(
            `function ${name}(e: Float32Array, ${pe}tokens: ArrayLike<number>, start: number, ` +
              `n: number, pos: number, y: number)`,
          );
          s.line(
            `// y (n, ${c.dim}) = e[tokens[start + t]]${gpt2 ? " + pe[pos + t]" : ""}`,
          );
          s.open("for (let t = 0; t < n; t++)");
          s.line(`const row = tokens[start + t] * ${c.dim}, out = y + t * ${c.dim};`);
          if (gpt2) {
            s.line(`const prow = (pos + t) * ${c.dim};`);
            s.line(`for (let i = 0; i < ${c.dim}; i++) A[out + i] = e[row + i] + pe[prow + i];`);
          } else {
            s.line(`for (let i = 0; i < ${c.dim}; i++) A[out + i] = e[row + i];`);
          }
          s.close();
          s.close();
        });
      }
      case "norm": {
        const D = c.dim;
        if (c.norm === "rmsnorm") {
          return once(`rmsnorm_${D}`, () => {
            s.open(`function rmsnorm_${D}(w: Float32Array, x: number, y: number, n: number)`);
            s.line(`// y (n, ${D}) = x / sqrt(mean(x²) + ${num(c.norm_eps)}) · w`);
            s.open("for (let t = 0; t < n; t++)");
            s.line(`const xi = x + t * ${D}, yi = y + t * ${D};`);
            s.line("let ss = 0;");
            s.line(`for (let i = 0; i < ${D}; i++) ss += A[xi + i] * A[xi + i];`);
            s.line(`const inv = 1 / Math.sqrt(ss / ${D} + ${num(c.norm_eps)});`);
            s.line(`for (let i = 0; i < ${D}; i++) A[yi + i] = A[xi + i] * inv * w[i];`);
            s.close();
            s.close();
          });
        }
        return once(`layernorm_${D}`, () => {
          s.open(
            `function layernorm_${D}(w: Float32Array, b: Float32Array, x: number, y: number, ` +
              `n: number)`,
          );
          s.line(`// y (n, ${D}) = (x - mean) / sqrt(var + ${num(c.norm_eps)}) · w + b`);
          s.open("for (let t = 0; t < n; t++)");
          s.line(`const xi = x + t * ${D}, yi = y + t * ${D};`);
          s.line("let mean = 0;");
          s.line(`for (let i = 0; i < ${D}; i++) mean += A[xi + i];`);
          s.line(`mean /= ${D};`);
          s.line("let variance = 0;");
          s.line(
            `for (let i = 0; i < ${D}; i++) variance += (A[xi + i] - mean) * (A[xi + i] - mean);`,
          );
          s.line(`const inv = 1 / Math.sqrt(variance / ${D} + ${num(c.norm_eps)});`);
          s.line(
            `for (let i = 0; i < ${D}; i++) A[yi + i] = (A[xi + i] - mean) * inv * w[i] + b[i];`,
          );
          s.close();
          s.close();
        });
      }
      case "linear": {
        const M = node.attrs.out as number, N = node.attrs.in as number;
        const bias = node.attrs.bias as boolean;
        const name = linearKernelName(rows, M, N, bias);
        return once(name, () => {
          if (this.wasm) emitWasmCall(s, name, M, N, bias, rows > 1);
          else if (rows === 1) emitMatvec(s, name, M, N, bias);
          else emitMatmul(s, name, M, N, bias);
        });
      }
      case "rope_cos_sin": {
        const name = `rope_cos_sin_${half}`;
        return once(name, () => {
          s.open(
            `function ${name}(inv_freq: number, cos: number, sin: number, pos: number, n: number)`,
          );
          s.line(
            `// cos, sin (n, ${half}) = cos, sin((pos + t) · inv_freq (${half})): ` +
              "once per step, read by every layer's RoPE",
          );
          s.open("for (let t = 0; t < n; t++)");
          s.line(`const p = pos + t, ct = cos + t * ${half}, st = sin + t * ${half};`);
          s.open(`for (let i = 0; i < ${half}; i++)`);
          s.line("const angle = p * A[inv_freq + i];");
          s.line("A[ct + i] = Math.cos(angle);");
          s.line("A[st + i] = Math.sin(angle);");
          s.close();
          s.close();
          s.close();
        });
      }
      case "rope": {
        const name = `rope_${c.rope_style}_${c.n_heads}x${c.n_kv_heads}x${hd}`;
        return once(name, () => {
          s.open(`function ${name}(q: number, k: number, cos: number, sin: number, n: number)`);
          s.line(
            `// RoPE (${c.rope_style}) on q (n, ${c.n_heads}×${hd}) and k (n, ${c.n_kv_heads}×${hd})`,
          );
          s.line(
            `// pair (a, b) = ${
              c.rope_style === "half" ? `(i, i + ${half})` : "(2i, 2i + 1)"
            } rotated by the angle whose cos, sin (n, ${half}) are at cos, sin`,
          );
          s.open("for (let t = 0; t < n; t++)");
          s.line(`const qt = q + t * ${qDim}, kt = k + t * ${kvDim};`);
          s.line(`const ct = cos + t * ${half}, st = sin + t * ${half};`);
          s.open(`for (let i = 0; i < ${half}; i++)`);
          s.line("const c = A[ct + i], s = A[st + i];");
          const ia = c.rope_style === "half" ? "i" : "2 * i";
          const ib = c.rope_style === "half" ? `i + ${half}` : "2 * i + 1";
          for (const [buf, heads] of [["qt", c.n_heads], ["kt", c.n_kv_heads]] as const) {
            s.open(`for (let h = ${buf}; h < ${buf} + ${heads * hd}; h += ${hd})`);
            s.line(`const a = A[h + ${ia}], b = A[h + ${ib}];`);
            s.line(`A[h + ${ia}] = a * c - b * s;`);
            s.line(`A[h + ${ib}] = b * c + a * s;`);
            s.close();
          }
          s.close();
          s.close();
          s.close();
        });
      }
      case "attention": {
        const name = `attention_${c.n_heads}x${c.n_kv_heads}x${hd}_w${cap}`;
        const G = c.n_heads / c.n_kv_heads;
        const scale = node.attrs.scale as number;
        const HU = hd - (hd % 4);
        return once(name, () => {
          s.open(
            `function ${name}(q: number, k: number, v: number, kr: number, vr: number, ` +
              `o: number, att: number, pos: number, n: number)`,
          );
          s.line(
            `// o (n, ${qDim}) = softmax(q · kᵀ · ${num(scale)}) · v per head; ` +
              `head h reads KV head h / ${G}`,
          );
          s.line(
            `// token t (position p = pos + t) sees positions max(0, p - ${cap - 1}) .. p: ` +
              `those < pos from the rings kr/vr (${cap}, ${kvDim}), the rest from this step's k/v`,
          );
          s.open("for (let t = 0; t < n; t++)");
          s.line("const p = pos + t;");
          s.line(`const start = p >= ${cap} ? p - ${cap - 1} : 0;`);
          s.open(`for (let h = 0; h < ${c.n_heads}; h++)`);
          s.line(
            `const qh = q + t * ${qDim} + h * ${hd}, kvh = ${
              G === 1 ? "h" : `((h / ${G}) | 0)`
            } * ${hd};`,
          );
          s.line("let max = -Infinity;");
          s.open("for (let u = start; u <= p; u++)");
          s.line(
            `const ku = (u < pos ? kr + (u % ${cap}) * ${kvDim} : k + (u - pos) * ${kvDim}) + kvh;`,
          );
          s.line("let d0 = 0, d1 = 0, d2 = 0, d3 = 0;");
          if (HU > 0) {
            s.open(`for (let i = 0; i < ${HU}; i += 4)`);
            s.line("d0 += A[qh + i] * A[ku + i];");
            s.line("d1 += A[qh + i + 1] * A[ku + i + 1];");
            s.line("d2 += A[qh + i + 2] * A[ku + i + 2];");
            s.line("d3 += A[qh + i + 3] * A[ku + i + 3];");
            s.close();
          }
          for (let i = HU; i < hd; i++) s.line(`d0 += A[qh + ${i}] * A[ku + ${i}];`);
          s.line(`const score = (d0 + d1 + d2 + d3) * ${num(scale)};`);
          s.line("A[att + u - start] = score;");
          s.line("if (score > max) max = score;");
          s.close();
          s.line("let sum = 0;");
          s.open("for (let u = att; u <= att + p - start; u++)");
          s.line("const e = Math.exp(A[u] - max);");
          s.line("A[u] = e;");
          s.line("sum += e;");
          s.close();
          s.line(`const oh = o + t * ${qDim} + h * ${hd}, inv = 1 / sum;`);
          s.line(`for (let i = 0; i < ${hd}; i++) A[oh + i] = 0;`);
          s.open("for (let u = start; u <= p; u++)");
          s.line(
            `const vu = (u < pos ? vr + (u % ${cap}) * ${kvDim} : v + (u - pos) * ${kvDim}) + kvh;`,
          );
          s.line("const a = A[att + u - start] * inv;");
          s.line(`for (let i = 0; i < ${hd}; i++) A[oh + i] += a * A[vu + i];`);
          s.close();
          s.close();
          s.close();
          s.close();
        });
      }
      case "kv_store": {
        const name = `kv_store_${kvDim}_w${cap}`;
        return once(name, () => {
          s.open(
            `function ${name}(k: number, v: number, kr: number, vr: number, pos: number, ` +
              `n: number)`,
          );
          s.line(
            `// rings kr/vr (${cap}, ${kvDim}): slot (pos + t) % ${cap} = k[t], v[t] ` +
              `(keys after RoPE)`,
          );
          s.open("for (let t = 0; t < n; t++)");
          s.line(`const slot = ((pos + t) % ${cap}) * ${kvDim};`);
          s.line(`A.copyWithin(kr + slot, k + t * ${kvDim}, k + (t + 1) * ${kvDim});`);
          s.line(`A.copyWithin(vr + slot, v + t * ${kvDim}, v + (t + 1) * ${kvDim});`);
          s.close();
          s.close();
        });
      }
      case "add": {
        const D = node.attrs.dim as number;
        return once(`add_${D}`, () => {
          s.open(`function add_${D}(x: number, y: number, n: number)`);
          s.line(`// x (n, ${D}) += y (n, ${D})`);
          s.line(`for (let i = 0; i < n * ${D}; i++) A[x + i] += A[y + i];`);
          s.close();
        });
      }
      case "swiglu": {
        const H = node.attrs.dim as number;
        return once(`swiglu_${H}`, () => {
          s.open(`function swiglu_${H}(g: number, u: number, n: number)`);
          s.line(`// g (n, ${H}) = silu(g) * u`);
          s.open(`for (let i = 0; i < n * ${H}; i++)`);
          s.line("const a = A[g + i];");
          s.line("A[g + i] = (a / (1 + Math.exp(-a))) * A[u + i];");
          s.close();
          s.close();
        });
      }
      case "gelu": {
        const H = node.attrs.dim as number;
        return once(`gelu_${H}`, () => {
          s.open(`function gelu_${H}(h: number, n: number)`);
          s.line(`// h (n, ${H}) = 0.5 h (1 + tanh(sqrt(2/π) (h + 0.044715 h³)))`);
          s.open(`for (let i = 0; i < n * ${H}; i++)`);
          s.line("const a = A[h + i];");
          s.line(
            `A[h + i] = 0.5 * a * (1 + Math.tanh(${
              num(Math.sqrt(2 / Math.PI))
            } * (a + 0.044715 * a * a * a)));`,
          );
          s.close();
          s.close();
        });
      }
    }
  }
}

/** The call expression of one node (arguments: weights, then f32 offsets, then runtime values). */
function callFor(
  plan: Plan,
  which: "decode" | "prefill",
  g: Graph,
  node: GraphNode,
  kernel: string,
  n: string,
): string {
  const off = (name: string) => String(findBuffer(plan, which, name).offset / 4);
  const ws = node.weights.map(weightIdent);
  const [i0, i1, i2, i3, i4] = node.inputs;
  switch (node.op) {
    case "embed":
      return `${kernel}(${[...ws, "tokens", "start", n, "pos", off(node.outputs[0])].join(", ")})`;
    case "norm":
    case "linear":
      return `${kernel}(${[...ws, off(i0), off(node.outputs[0])].join(", ")}${
        node.op === "norm" || g.rows > 1 ? `, ${n}` : ""
      })`;
    case "rope_cos_sin":
      return `${kernel}(${[i0, ...node.outputs].map(off).join(", ")}, pos, ${n})`;
    case "rope":
      return `${kernel}(${[i0, i1, i2, i3].map(off).join(", ")}, ${n})`;
    case "attention":
      return `${kernel}(${[i0, i1, i2, i3, i4, ...node.outputs].map(off).join(", ")}, pos, ${n})`;
    case "kv_store":
      return `${kernel}(${[i0, i1, ...node.outputs].map(off).join(", ")}, pos, ${n})`;
    case "add":
    case "swiglu":
      return `${kernel}(${off(i0)}, ${off(i1)}, ${n})`;
    case "gelu":
      return `${kernel}(${off(i0)}, ${n})`;
  }
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
 * import { parseConfigYaml } from "../core/config.ts";
 * import { planArena } from "./plan.ts";
 * import { emitKernelsForPlan } from "./emit_js.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-gpt2.yaml"), "t.yaml");
 * const src = emitKernelsForPlan(planArena(c));
 * console.log(src.includes("function layer1_ffn(pos: number)")); // true
 * ```
 */
export function emitKernelsForPlan(plan: Plan, options: EmitOptions = {}): string {
  const c = plan.decode.config;
  const wasm = options.backend === "wasm";
  const ks = new KernelSet(c, plan, wasm);
  const head = new Src();
  const kvDim = c.n_kv_heads * c.head_dim;
  head.line("// deno-lint-ignore-file");
  head.line("// Generated by gollm codegen/emit_js.ts: kernels specialised for one config.");
  head.line("// Do not edit; regenerate with `gollm kernels --config FILE`.");
  if (wasm) {
    head.line(
      "// Backend wasm: matrix products call the f32x4 exports X of codegen/emit_wasm.ts.",
    );
  }
  head.line("//");
  head.line(
    `// arch ${c.arch}: vocab ${c.vocab_size}, dim ${c.dim}, ${c.n_layers} layers, ` +
      `${c.n_heads} heads / ${c.n_kv_heads} KV heads × head_dim ${c.head_dim}, ` +
      `hidden ${c.hidden_dim}, context ${c.context_length}`,
  );
  head.line(
    `// ${c.norm}, ${c.mlp}` +
      (c.arch === "llama" ? `, RoPE ${c.rope_style} theta ${num(c.rope_theta)}` : "") +
      (c.attn_bias ? ", q/k/v bias" : "") + (c.tie_embeddings ? ", tied LM head" : ""),
  );
  head.line(
    `// KV ring: ${plan.kvCapacity} slots per layer; prefill chunk: ${plan.prefillChunk} tokens`,
  );
  head.line("//");
  head.line("// Arena (one WebAssembly.Memory; offsets below are f32 indices = bytes / 4):");
  if (c.arch === "llama") {
    head.line(`//   RoPE inv_freq   ${plan.tableBytes} bytes (${c.head_dim / 2})`);
  }
  head.line(
    `//   KV rings        ${plan.kvBytes} bytes (${c.n_layers} × K, V (${plan.kvCapacity}, ${kvDim}))`,
  );
  head.line(
    `//   activations     ${plan.activationBytes} bytes (decode ${plan.decodeBytes}, ` +
      `prefill ${plan.prefillBytes}, sharing one region)`,
  );
  head.line(`//   total           ${plan.arenaBytes} bytes`);
  head.line();
  const decodeLogits = findBuffer(plan, "decode", plan.decode.output).offset / 4;
  const prefillLogits = findBuffer(plan, "prefill", plan.prefill.output).offset / 4;
  head.line("/** Arena size in bytes. */");
  head.line(`export const ARENA_BYTES = ${plan.arenaBytes};`);
  head.line("/** f32 index of the decode step's logits (vocab_size). */");
  head.line(`export const LOGITS = ${decodeLogits};`);
  head.line("/** f32 index of the prefill step's logits (prefill chunk, vocab_size). */");
  head.line(`export const LOGITS_ALL = ${prefillLogits};`);
  head.line("/** Tokens per prefill chunk (max n of prefill()). */");
  head.line(`export const PREFILL_CHUNK = ${plan.prefillChunk};`);
  head.line();
  head.line("/** Binds the kernels to an arena and the weights (canonical name → data). */");
  if (wasm) {
    head.open(
      "export function createKernels(memory: WebAssembly.Memory, W: Record<string, " +
        "Float32Array>, X: Record<string, Function>)",
    );
  } else {
    head.open(
      "export function createKernels(memory: WebAssembly.Memory, W: Record<string, Float32Array>)",
    );
  }
  head.line("const A = new Float32Array(memory.buffer, 0, ARENA_BYTES / 4);");
  head.line();
  head.line("// Weights (row-major, (out_features, in_features)).");
  const used = new Set<string>();
  for (const g of [plan.decode, plan.prefill]) {
    for (const n of g.nodes) for (const w of n.weights) used.add(w);
  }
  const shapes = expectedShapes(c);
  for (const w of used) {
    head.line(`const ${weightIdent(w)} = W["${w}"]; // (${shapes.get(w)!.join(", ")})`);
  }
  head.line();
  if (c.arch === "llama") {
    const hd = c.head_dim;
    head.line(
      `// RoPE inverse frequencies (${hd / 2}) = ${num(c.rope_theta)}^(-2i/${hd}) ` +
        "(core/rope.ts ropeInvFreq), f32",
    );
    head.line("const ROPE_INV_FREQ = [");
    const vals = [...ropeInvFreq(c)].map(num);
    let line = "";
    for (const v of vals) {
      if (line && 4 + line.length + v.length + 2 > 100) {
        head.line("  " + line.trimEnd());
        line = "";
      }
      line += v + ", ";
    }
    if (line) head.line("  " + line.trimEnd());
    head.line("];");
    head.line();
  }

  // Step functions, grouped by node.group.
  const steps = new Src();
  const groupsOf = (g: Graph) => {
    const groups: { name: string; nodes: GraphNode[] }[] = [];
    for (const n of g.nodes) {
      if (groups.length === 0 || groups[groups.length - 1].name !== n.group) {
        groups.push({ name: n.group, nodes: [] });
      }
      groups[groups.length - 1].nodes.push(n);
    }
    return groups;
  };
  for (const which of ["decode", "prefill"] as const) {
    const g = which === "decode" ? plan.decode : plan.prefill;
    const prefix = which === "decode" ? "" : "prefill_";
    const n = which === "decode" ? "1" : "n";
    steps.line(
      which === "decode"
        ? "  // ---- decode step: one token at position pos (matrix-vector products) ----"
        : `  // ---- prefill step: n <= ${g.rows} tokens at positions pos .. pos + n - 1 ` +
          "(matrix-matrix products) ----",
    );
    steps.line();
    for (const grp of groupsOf(g)) {
      const params = grp.name === "embed"
        ? (which === "decode"
          ? "tokens: ArrayLike<number>, start: number, pos: number"
          : "tokens: ArrayLike<number>, start: number, n: number, pos: number")
        : which === "decode"
        ? "pos: number"
        : "pos: number, n: number";
      steps.line(`  function ${prefix}${grp.name}(${params}) {`);
      for (const node of grp.nodes) {
        const kernel = ks.kernel(node, g.rows);
        steps.line(`    // ${node.doc}`);
        const call = callFor(plan, which, g, node, kernel, n);
        if (call.length + 5 <= 100) steps.line(`    ${call};`);
        else {
          // Wrap a long call one argument per line, as `deno fmt` would.
          const open = call.indexOf("(");
          steps.line(`    ${call.slice(0, open + 1)}`);
          for (const arg of call.slice(open + 1, -1).split(", ")) steps.line(`      ${arg},`);
          steps.line("    );");
        }
      }
      steps.line("  }");
      steps.line();
    }
  }
  const groupsD = groupsOf(plan.decode), groupsP = groupsOf(plan.prefill);
  const tail = new Src();
  tail.line("  /** Fills the constant tables (call once after creating the kernels). */");
  tail.line("  function init() {");
  if (c.arch === "llama") {
    const inv = findBuffer(plan, "decode", "rope.inv_freq").offset / 4;
    tail.line(`    A.set(ROPE_INV_FREQ, ${inv}); // rope.inv_freq (${c.head_dim / 2})`);
  }
  tail.line("  }");
  tail.line();
  tail.line("  /** One token at position pos; logits (vocab_size) at LOGITS. No allocation. */");
  tail.line("  function decode(tokens: ArrayLike<number>, start: number, pos: number) {");
  for (const grp of groupsD) {
    tail.line(
      grp.name === "embed" ? "    embed(tokens, start, pos);" : `    ${grp.name}(pos);`,
    );
  }
  tail.line("  }");
  tail.line();
  tail.line(
    "  /** n <= PREFILL_CHUNK tokens tokens[start ..] at pos ..; with logits, (n, vocab) at LOGITS_ALL. */",
  );
  for (
    const l of [
      "  function prefill(",
      "    tokens: ArrayLike<number>,",
      "    start: number,",
      "    n: number,",
      "    pos: number,",
      "    logits: boolean,",
      "  ) {",
    ]
  ) tail.line(l);
  for (const grp of groupsP) {
    if (grp.name === "embed") tail.line("    prefill_embed(tokens, start, n, pos);");
    else if (grp.name === "lm_head") tail.line("    if (logits) prefill_lm_head(pos, n);");
    else tail.line(`    prefill_${grp.name}(pos, n);`);
  }
  tail.line("  }");
  tail.line();
  tail.line("  return { init, decode, prefill };");
  tail.line("}");

  const kernels = [
    "  // ---- kernels: one per distinct shape; offsets are f32 indices into A ----",
    "",
    ...ks.src.lines,
  ];
  return head.text() + kernels.join("\n") + "\n" + steps.text() + tail.text();
}

/**
 * Emits the readable TypeScript kernels module for a config: what `gollm kernels` writes
 * and what {@linkcode compileModel} evaluates.
 *
 * @param config The model config.
 * @param options `kvCapacity` and `prefillChunk` (they are literals in the source).
 * @returns The module source: `export function createKernels(memory, W)` returning
 *   `{ init, decode, prefill }`, plus `ARENA_BYTES`, `LOGITS`, `LOGITS_ALL`, `PREFILL_CHUNK`.
 * @throws {RangeError} for a bad `kvCapacity` or `prefillChunk`.
 *
 * @example
 * ```ts
 * import { parseConfigYaml } from "../core/config.ts";
 * import { emitKernels } from "./emit_js.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const src = emitKernels(c, { kvCapacity: 64 });
 * console.log(src.includes("function layer0_attn(pos: number)")); // true
 * ```
 */
export function emitKernels(config: ModelConfig, options: ForwardOptions = {}): string {
  return emitKernelsForPlan(planArena(config, options));
}
