/**
 * The panel matmul (`linear.ts` `LinearSpec.panel`), the prefill and batch kernel: its
 * driver ({@linkcode emitPanelMatmul}: rows, touches, tokens, stores) and the panel of the
 * float weight types; the quantised types' panels are `linear_panel_q8.ts`,
 * `linear_panel_q4k.ts` and `linear_panel_q6k.ts` ({@linkcode PanelKind}).
 *
 * For each block of {@linkcode PANEL_ROWS} = 8 weight rows, the rows are converted to f32
 * (F16/BF16) once per call and written transposed, column-major: `panel[k][a] = W[r + a, k]`,
 * 32 bytes per column. Then a register block of C tokens (C = {@linkcode PANEL_TOKENS} = 6, then 5
 * .. 1 for the rest) walks k: two f32x4 loads give the 8 rows' weights of column k, one
 * `v128.load32_splat` per token gives `x[t, k]` in every lane, and two multiply-adds per
 * token update `acc[t]` (8 rows, two f32x4). 12 accumulators, 2 weight vectors and the
 * splat are 15 of the 16 xmm registers V8 allocates, so nothing spills, and each load feeds
 * C or 2 multiply-adds: the outer-product form of BLIS's micro-kernel (Van Zee & van de
 * Geijn, "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", 2015), here
 * 8 × 6 with 128-bit vectors. The rows' results leave as two vector stores per token.
 *
 * Each `y[t, r]` is one f32 sum over k in order (then `+ bias`, then `+ y` with `_acc`), so
 * it does not depend on r0/r1 or on which register block computed it: any split of the
 * rows between threads gives identical results. (The one-token matvec sums lanes of 4
 * columns instead; the two agree to rounding, not bit for bit.)
 *
 * A block of fewer than 8 rows (the end of a thread's range) fills the panel's missing rows
 * with its last row and writes its results through a 32-byte slot after the panel, one
 * float at a time.
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { rowBytes, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { keepTouchLive, storeTransposed4, touchLines } from "./snippets.ts";
import { halvesLocals, halvesToF32x4, scalarWeight } from "./types_float.ts";

/** Weight rows per panel (two f32x4 per column). */
export const PANEL_ROWS = 8;
/** Tokens per register block of the panel matmul. */
export const PANEL_TOKENS = 6;
/**
 * The fewest rows (tokens) a step sends through the panel; below it the step calls the
 * in-register kernel (`renderers.ts`). g110M shapes, one thread, weights from memory: at
 * n = 2 and 4 the panel's fill made it 0.6-0.75x the in-register kernel, at n = 6 and 16
 * 1.0-1.2x, at n = 256 1.2-1.3x.
 */
export const PANEL_MIN_TOKENS = 6;

/** What the panel matmul needs to know of its `LinearSpec`. */
export interface PanelSpec {
  /** Kernel name. */
  name: string;
  /** The weight type: F32, F16 or BF16 (this file's panel) or a block type (its `PanelKind`). */
  type: WeightTypeName;
  /** Output features (rows of W). */
  M: number;
  /** Input features. */
  K: number;
  /** Add a bias (M). */
  bias: boolean;
  /** Add into y. */
  accumulate: boolean;
  /** `f32x4.relaxed_madd`. */
  relaxed: boolean;
  /** F16 through `f32x4.promote_low_f16x8`. */
  fp16: boolean;
  /** The memory W is in. */
  memory: number;
  /** Rows per interleaved group of W (`interleave.ts`; default 1: row-major); divides 8. */
  interleave?: number;
  /** Bytes of one unit of an interleaved row (`linear.ts` `interleaveUnit`). */
  unit?: number;
}

/**
 * Where the fill finds a block's rows: `rb` bytes per row; with `I` > 1 the rows are
 * interleaved in groups of I (`interleave.ts`), `unit` bytes per row and unit.
 */
export interface RowLayout {
  /** Bytes per weight row. */
  rb: number;
  /** Rows per interleaved group (1: row-major). */
  I: number;
  /** Bytes per unit of an interleaved row. */
  unit: number;
}

/**
 * Bytes from one block (unit) of a row to its next: `blockBytes` row-major, `I · unit`
 * interleaved.
 *
 * @param l The layout.
 * @param blockBytes The block's bytes in a row-major row.
 * @returns Bytes.
 */
export function blockStride(l: RowLayout, blockBytes: number): number {
  return l.I > 1 ? l.I * l.unit : blockBytes;
}

/**
 * What differs between the panel kernels of two weight types: how a block of 8 rows becomes
 * the panel, and the micro-kernel that reads it. The driver ({@linkcode emitPanelMatmul})
 * does the rest: rows, touches, tokens, stores.
 */
export interface PanelKind {
  /** Tokens per register block (blocks of fewer follow for the rest). */
  tokens: number;
  /** Bytes of the panel, before the partial block's 32-byte result slot. */
  panelBytes: number;
  /** Bytes per activation row of x. */
  xStride: number;
  /** What x is, for the header comment. */
  xDesc: string;
  /** Declares this kind's locals. */
  locals(f: WasmFunc): void;
  /**
   * Writes the panel of rows `wr` .. (rr of them, laid out as `l` says); {@linkcode rowPointers}
   * gives the clamped row addresses and {@linkcode blockStride} the step along a row.
   */
  fill(f: WasmFunc, l: RowLayout): void;
  /**
   * Leaves in `acc{c}_0`, `acc{c}_1` (f32x4, rows 0..3 and 4..7) the products of tokens
   * `xt + c · xStride`, c < C, with the panel.
   */
  micro(f: WasmFunc, C: number): void;
}

/**
 * Bytes of this thread's scratch a panel matmul needs: the float panel (K columns × 8 rows
 * × 4 bytes) and the 32-byte slot a partial row block writes through; the quantised panels
 * (9-12 bytes per column) fit in it ({@linkcode emitPanelMatmul} checks).
 *
 * @param K Input features.
 * @returns 32 · K + 32.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { panelScratchBytes } from "./linear_panel.ts";
 * assert.equal(panelScratchBytes(768), 768 * 32 + 32);
 * ```
 */
export function panelScratchBytes(K: number): number {
  return K * PANEL_ROWS * 4 + PANEL_ROWS * 4;
}

/**
 * Emits `matmul_<type>_MxK[_bias][_acc]_panel(w, [bias,] x, y, r0, r1, n, panel)`:
 * y (n, M) [+]= x (n, K) · Wᵀ [+ bias] for rows r0 .. r1 - 1, y f32 rows, x f32 rows (float
 * types) or the kind's quantised activation rows, W (M, K) in the type's storage layout,
 * `panel` {@linkcode panelScratchBytes} bytes of this thread's scratch (see the module doc).
 *
 * @param s The kernel.
 * @param kind The panel and micro-kernel of the type (default: the float types').
 * @returns The function.
 * @throws {RangeError} when the kind's panel and result slot do not fit
 *   {@linkcode panelScratchBytes}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emitPanelMatmul } from "./linear_panel.ts";
 * const f = emitPanelMatmul({
 *   name: "matmul_f16_16x64_panel", type: "F16", M: 16, K: 64,
 *   bias: false, accumulate: false, relaxed: false, fp16: false, memory: 0,
 * });
 * assert.ok(f.text().includes("v128.load32_splat"));
 * ```
 */
export function emitPanelMatmul(s: PanelSpec, kind: PanelKind = floatKind(s)): WasmFunc {
  const { M, K, type } = s;
  const rb = rowBytes(WEIGHT_TYPES[type], K); // bytes per weight row
  if (kind.panelBytes + PANEL_ROWS * 4 > panelScratchBytes(K)) {
    throw new RangeError(
      `${s.name}: a panel of ${kind.panelBytes} bytes and its slot exceed the scratch's ` +
        `${panelScratchBytes(K)}`,
    );
  }
  const params: [string, "i32"][] = [["w", "i32"]];
  if (s.bias) params.push(["bias", "i32"]);
  params.push(["x", "i32"], ["y", "i32"], ["r0", "i32"], ["r1", "i32"], ["n", "i32"]);
  params.push(["panel", "i32"]);
  const f = new WasmFunc(s.name, params);
  f.weightMemory = s.memory;
  const locals = ["r", "rr", "wr", "pw", "pp", "pend", "px", "t", "xt", "yt", "j", "tend", "touch"];
  for (const l of [...locals, "p0", "p1", "p2", "p3", "ri"]) f.local(l, "i32");
  for (let c = 0; c < kind.tokens; c++) f.local(`acc${c}_0`, "v128").local(`acc${c}_1`, "v128");
  for (const l of ["w0", "w1", "xs", "t0", "t1", "t2", "t3"]) f.local(l, "v128");
  kind.locals(f);
  f.comment(
    `y (n, ${M}) ${s.accumulate ? "+" : ""}= x (n, ${K}) · Wᵀ${s.bias ? " + bias" : ""}, ` +
      `W (${M}, ${K}) ${type} (${rb} bytes per row), x ${kind.xDesc}; rows r0 .. r1 - 1, ` +
      `${PANEL_ROWS} at a time through a panel of ${kind.panelBytes} bytes`,
  );
  f.get("r0").set("r");
  f.block("rows_done").loop("rows");
  f.get("r").get("r1").op("i32.ge_s").brIf("rows_done");
  f.comment(`rr = min(${PANEL_ROWS}, r1 - r): rows in this block`);
  f.get("r1").get("r").op("i32.sub").set("rr");
  f.i32(PANEL_ROWS).get("rr").get("rr").i32(PANEL_ROWS).op("i32.gt_s").op("select").set("rr");
  f.get("w").get("r").i32(rb).op("i32.mul").op("i32.add").set("wr");
  kind.fill(f, { rb, I: s.interleave ?? 1, unit: s.unit ?? 0 });
  f.comment(
    `touch the next block's rows (one load per 64-byte line, not past row r1), so their ` +
      "cache misses overlap this block's arithmetic",
  );
  f.get("wr").i32(PANEL_ROWS * rb).op("i32.add").tee("pp");
  f.i32(PANEL_ROWS * rb).op("i32.add").set("pend");
  f.get("w").get("r1").i32(rb).op("i32.mul").op("i32.add").set("tend");
  f.get("pend").get("tend").get("pend").get("tend").op("i32.lt_u").op("select").set("pend");
  touchLines(f, "pp", "pend", "touch_next");
  f.get("x").set("xt");
  f.get("y").get("r").i32(4).op("i32.mul").op("i32.add").set("yt");
  for (let C = kind.tokens; C >= 1; C--) {
    // The widest block loops over the tokens; the narrower ones each run at most once.
    f.block(`tok${C}_done`).loop(`tok${C}`);
    f.get("t").i32(C).op("i32.add").get("n").op("i32.gt_u").brIf(`tok${C}_done`);
    f.comment(`register block: ${PANEL_ROWS} rows × ${C} token(s)`);
    kind.micro(f, C);
    storeResults(f, s, C, kind.panelBytes);
    f.get("t").i32(C).op("i32.add").set("t");
    f.get("xt").i32(C * kind.xStride).op("i32.add").set("xt");
    f.get("yt").i32(C * M * 4).op("i32.add").set("yt");
    if (C === kind.tokens) f.br(`tok${C}`);
    f.end().end();
  }
  f.i32(0).set("t");
  f.get("r").i32(PANEL_ROWS).op("i32.add").set("r");
  f.br("rows").end().end();
  keepTouchLive(f);
  return f;
}

/**
 * Sets the i32 locals p0..p3 to the addresses of rows g .. g + 3 of the block at `wr`,
 * each clamped to row rr - 1: rows past rr (a partial block) repeat the last one, whose
 * sums are computed and never stored, and no load goes past the rows of this range. With
 * `pairs` (rows interleaved in pairs whose blocks are read together, `q4k_pairs.ts`; g and rr
 * even) p1 and p3 are the partners of p0 and p2, which are clamped to the last pair.
 */
export function rowPointers(f: WasmFunc, g: number, l: RowLayout, pairs = false): void {
  const { rb, I, unit } = l;
  for (let i = 0; i < 4; i++) {
    if (pairs && i % 2) {
      f.comment(`p${i} = p${i - 1} + ${unit} (its pair's second row)`);
      f.get(`p${i - 1}`).i32(unit).op("i32.add").set(`p${i}`);
      continue;
    }
    const last = pairs ? 2 : 1;
    f.comment(
      `p${i} = row min(${g + i}, rr - ${last})` + (I > 1 ? ` (groups of ${I} interleaved)` : ""),
    );
    f.i32(g + i).get("rr").i32(last).op("i32.sub");
    f.i32(g + i).get("rr").op("i32.lt_u").op("select");
    if (I > 1) {
      f.tee("ri").i32(-I).op("i32.and").i32(rb).op("i32.mul");
      f.get("ri").i32(I - 1).op("i32.and").i32(unit).op("i32.mul").op("i32.add");
    } else f.i32(rb).op("i32.mul");
    f.get("wr").op("i32.add").set(`p${i}`);
  }
}

/**
 * Stores the 4 × 4 transpose of the 32-bit lanes of the v128 locals `rows` (row i = 4
 * lanes of weight row g + i) as 4 vectors at `pp + offset`, `colBytes` apart (or, `offset`
 * an array, vector k at `pp + offset[k]`): two rounds of unpacks (`unpcklps`/`unpckhps`,
 * then `movlhps`/`movhlps` on x86). Uses the locals t0..t3.
 */
export function storeTransposed(
  f: WasmFunc,
  rows: string[],
  offset: number | number[],
  colBytes: number,
): void {
  const at = (k: number) => typeof offset === "number" ? offset + k * colBytes : offset[k];
  storeTransposed4(f, rows, ["t0", "t1", "t2", "t3"], () => f.get("pp"), at);
}

/** The float types' panel: (K, 8) f32, column-major, `panel[k][a] = W[r + a, k]`. */
function floatKind(s: PanelSpec): PanelKind {
  const type = s.type as "F32" | "F16" | "BF16";
  const K = s.K, K8 = K - (K % 8), width = WEIGHT_TYPES[type].blockBytes;
  const colBytes = PANEL_ROWS * 4; // one panel column
  return {
    tokens: PANEL_TOKENS,
    panelBytes: K * colBytes,
    xStride: K * 4,
    xDesc: "f32",
    locals(f) {
      f.local("h", "v128");
      for (let i = 0; i < 4; i++) f.local(`lo${i}`, "v128").local(`hi${i}`, "v128");
      if (type === "F16") halvesLocals(f, type, s.fp16);
      if (type === "BF16") f.local("hmask", "v128").i32x4(-65536).set("hmask");
    },
    fill(f, l) {
      const stride = blockStride(l, 8 * width);
      f.comment(`panel (${K}, ${PANEL_ROWS}) f32, column-major: panel[k][a] = W[r + a, k]`);
      for (let g = 0; g < PANEL_ROWS; g += 4) {
        f.comment(`rows ${g} .. ${g + 3}: 8 columns per step, converted and transposed 4 × 4`);
        rowPointers(f, g, l);
        f.get("panel").i32(4 * g).op("i32.add").set("pp");
        if (K8 > 0) {
          f.get("p0").i32((K8 / 8) * stride).op("i32.add").set("pend");
          f.loop(`panel_rows${g}`);
          for (let i = 0; i < 4; i++) {
            if (type === "F32") {
              f.get(`p${i}`).wmem("v128.load").set(`lo${i}`);
              f.get(`p${i}`).wmem("v128.load", 16).set(`hi${i}`);
            } else if (type === "BF16") {
              // Columns 0, 2, 4, 6 by a shift, 1, 3, 5, 7 by a mask of the high halves.
              f.get(`p${i}`).wmem("v128.load").tee("h").i32(16).op("i32x4.shl").set(`lo${i}`);
              f.get("h").get("hmask").op("v128.and").set(`hi${i}`);
            } else {
              f.get(`p${i}`).wmem("v128.load").set("h");
              halvesToF32x4(f, type, "h", `lo${i}`, `hi${i}`, s.fp16);
            }
            f.get(`p${i}`).i32(stride).op("i32.add").set(`p${i}`);
          }
          if (type === "BF16") { // lo holds the even columns, hi the odd ones
            storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], 0, 2 * colBytes);
            storeTransposed(f, ["hi0", "hi1", "hi2", "hi3"], colBytes, 2 * colBytes);
          } else {
            storeTransposed(f, ["lo0", "lo1", "lo2", "lo3"], 0, colBytes);
            storeTransposed(f, ["hi0", "hi1", "hi2", "hi3"], 4 * colBytes, colBytes);
          }
          f.get("pp").i32(8 * colBytes).op("i32.add").set("pp");
          f.get("p0").get("pend").op("i32.lt_u").brIf(`panel_rows${g}`);
          f.end();
        }
        for (let j = 0; j < K - K8; j++) {
          for (let i = 0; i < 4; i++) {
            f.get("pp");
            scalarWeight(f, type, `p${i}`, width * j);
            f.mem("f32.store", j * colBytes + 4 * i);
          }
        }
      }
    },
    micro(f, C) {
      for (let c = 0; c < C; c++) f.zeroV128().set(`acc${c}_0`).zeroV128().set(`acc${c}_1`);
      f.get("panel").set("pp").get("xt").set("px");
      f.get("panel").i32(K * colBytes).op("i32.add").set("pend");
      f.comment(`k = 0 .. ${K - 1}: the 8 rows' weights of column k times x[t + c, k]`);
      f.loop(`k${C}`);
      f.get("pp").mem("v128.load", 0).set("w0").get("pp").mem("v128.load", 16).set("w1");
      for (let c = 0; c < C; c++) {
        f.get("px").mem("v128.load32_splat", c * K * 4).set("xs");
        for (const v of [0, 1]) {
          const acc = `acc${c}_${v}`;
          if (s.relaxed) f.get(`w${v}`).get("xs").get(acc).op("f32x4.relaxed_madd").set(acc);
          else f.get(acc).get(`w${v}`).get("xs").op("f32x4.mul").op("f32x4.add").set(acc);
        }
      }
      f.get("px").i32(4).op("i32.add").set("px");
      f.get("pp").i32(colBytes).op("i32.add").tee("pp").get("pend").op("i32.lt_u").brIf(`k${C}`);
      f.end();
    },
  };
}

/**
 * y[t .. t + C - 1, r .. r + rr - 1] from `acc{c}_{0,1}` (+ bias, + y): two vector stores
 * per token for a full block; through the slot at `panel + slot` one float per row for a
 * partial one.
 */
function storeResults(f: WasmFunc, s: PanelSpec, C: number, slot: number): void {
  const M = s.M;
  /** Pushes the result vector v of token c with the bias and y added (addr on the stack). */
  const result = (c: number, v: number, yOff: number) => {
    f.get(`acc${c}_${v}`);
    if (s.bias) f.get("bias").get("r").i32(4).op("i32.mul").op("i32.add").mem("v128.load", 16 * v);
    if (s.bias) f.op("f32x4.add");
    if (s.accumulate) f.get("yt").mem("v128.load", yOff).op("f32x4.add");
  };
  f.get("rr").i32(PANEL_ROWS).op("i32.eq").if();
  for (let c = 0; c < C; c++) {
    for (const v of [0, 1]) {
      const yOff = c * M * 4 + 16 * v;
      f.get("yt");
      result(c, v, yOff);
      f.mem("v128.store", yOff);
    }
  }
  f.else();
  f.comment("rr < 8: through the slot after the panel, one float per row");
  for (let c = 0; c < C; c++) {
    f.get("panel").get(`acc${c}_0`).mem("v128.store", slot);
    f.get("panel").get(`acc${c}_1`).mem("v128.store", slot + 16);
    f.i32(0).set("j");
    f.loop(`part${C}_${c}`);
    f.get("yt").get("j").i32(4).op("i32.mul").op("i32.add").tee("pw"); // address of y[t + c, r + j]
    f.get("panel").get("j").i32(4).op("i32.mul").op("i32.add").mem("f32.load", slot);
    if (s.bias) {
      f.get("bias").get("r").get("j").op("i32.add").i32(4).op("i32.mul").op("i32.add");
      f.mem("f32.load").op("f32.add");
    }
    if (s.accumulate) f.get("pw").mem("f32.load", c * M * 4).op("f32.add");
    f.mem("f32.store", c * M * 4);
    f.get("j").i32(1).op("i32.add").tee("j").get("rr").op("i32.lt_u").brIf(`part${C}_${c}`);
    f.end();
  }
  f.end();
}
