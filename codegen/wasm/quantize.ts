/**
 * The activation quantisers: f32 rows → the `q8_0` / `q8_K` layouts of `blocks.ts`, once
 * per matrix-product input (as llama.cpp's `quantize_row_q8_0` / `quantize_row_q8_K`, which
 * the `ggml_vec_dot_*_q8_*` kernels read). Per block: `d = max|x| / 127`, `q = round(x / d)`
 * (round half to even, `f32x4.nearest`), plus the block sums the offset/min terms need.
 * The scale stays f32 (ggml rounds the q8_0 scale to f16).
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { type ActFormat, actLayout } from "./blocks.ts";
import { emitLaneCopy } from "./lanes.ts";

/**
 * Name of the quantiser of one format and row length: `quantize_q8_0_768`.
 *
 * @param format `q8_0` or `q8_K`.
 * @param K Elements per row.
 * @returns The function name.
 */
export function quantizeName(format: Exclude<ActFormat, "f32">, K: number): string {
  return `quantize_${format}_${K}`;
}

/**
 * Emits: quantise 32 f32 at `src`, quants at `dst`; leaves i16x8 `h0..h3` and scale `d`.
 * With `relaxed`, `i32x4.relaxed_trunc_f32x4_s` (x86 `cvttps2dq`) converts the rounded values:
 * they are integers in [-127, 127], where it equals `trunc_sat` (V8's exact form adds a
 * saturation sequence): a q8_0 row of 2048 ~1.3x faster.
 */
function quantize32(
  f: WasmFunc,
  src: number,
  dst: number,
  amaxKnown: boolean,
  relaxed: boolean,
): void {
  for (let i = 0; i < 8; i++) f.get("px").mem("v128.load", src + 16 * i).set(`v${i}`);
  if (!amaxKnown) {
    f.comment("amax = max |x| over the block");
    f.get("v0").op("f32x4.abs");
    for (let i = 1; i < 8; i++) f.get(`v${i}`).op("f32x4.abs").op("f32x4.max");
    f.set("m");
    f.get("m").extractLane(0).get("m").extractLane(1).op("f32.max");
    f.get("m").extractLane(2).get("m").extractLane(3).op("f32.max").op("f32.max").set("amax");
    scaleFromAmax(f);
  }
  f.comment("q = round(x · 127 / amax) in [-127, 127], narrowed to i16 then i8");
  for (let i = 0; i < 8; i++) {
    f.get(`v${i}`).get("vid").op("f32x4.mul").op("f32x4.nearest");
    f.op(relaxed ? "i32x4.relaxed_trunc_f32x4_s" : "i32x4.trunc_sat_f32x4_s");
    f.set(`q${i}`);
  }
  for (let i = 0; i < 4; i++) {
    f.get(`q${2 * i}`).get(`q${2 * i + 1}`).op("i16x8.narrow_i32x4_s").set(`h${i}`);
  }
  f.get("pq").get("h0").get("h1").op("i8x16.narrow_i16x8_s").mem("v128.store", dst);
  f.get("pq").get("h2").get("h3").op("i8x16.narrow_i16x8_s").mem("v128.store", dst + 16);
}

/** d = amax / 127; vid = splat(amax > 0 ? 127 / amax : 0). */
function scaleFromAmax(f: WasmFunc): void {
  f.get("amax").f32(127).op("f32.div").set("d");
  f.f32(127).get("amax").op("f32.div").f32(0).get("amax").f32(0).op("f32.gt").op("select");
  f.op("f32x4.splat").set("vid");
}

/**
 * Builds the quantiser of one format: `(x, xq, n)` reads n rows of K f32 at byte offset x
 * and writes n activation rows (stride `actLayout(format, K).stride`) at xq.
 *
 * @param format `q8_0` (blocks of 32) or `q8_K` (blocks of 256).
 * @param K Elements per row (a multiple of the block size).
 * @param relaxed Convert with relaxed SIMD's truncation (the same bytes; see `quantize32`).
 * @returns The function.
 * @throws {RangeError} when K is not a multiple of the block size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeKernel } from "./quantize.ts";
 * assert.equal(quantizeKernel("q8_0", 64).name, "quantize_q8_0_64");
 * ```
 */
export function quantizeKernel(
  format: Exclude<ActFormat, "f32">,
  K: number,
  relaxed = false,
): WasmFunc {
  const L = actLayout(format, K);
  const f = new WasmFunc(quantizeName(format, K), [["x", "i32"], ["xq", "i32"], ["n", "i32"]]);
  for (const l of ["t", "px", "pq", "pm", "pl", "end", "s"]) f.local(l, "i32");
  for (let i = 0; i < 8; i++) f.local(`v${i}`, "v128").local(`q${i}`, "v128");
  for (let i = 0; i < 4; i++) f.local(`h${i}`, "v128");
  f.local("m", "v128").local("vid", "v128").local("amax", "f32").local("d", "f32");
  if (L.laneOffset !== null) { for (let i = 0; i < 8; i++) f.local(`t${i}`, "v128"); }
  f.comment(
    `n rows of ${K} f32 at x → ${format} rows at xq (stride ${L.stride}): ` +
      `${K} quants, then ${K / L.blockElems} × ${L.metaBytes}-byte records ` +
      (format === "q8_0"
        ? "(d f32, d·Σq f32, -128·Σq per i32 lane of the dot product, i32x4)"
        : "(d f32 @0, Σq per 16 i16[16] @16, per 32 i16[8] @48), then the quants in the " +
          `lane order (lanes.ts) at ${L.laneOffset}`),
  );
  f.get("x").set("px").get("xq").set("pq");
  f.block("rows_done").loop("rows");
  f.get("t").get("n").op("i32.ge_u").brIf("rows_done");
  f.get("pq").i32(L.metaOffset).op("i32.add").set("pm");
  if (L.laneOffset !== null) f.get("pq").i32(L.laneOffset).op("i32.add").set("pl");
  f.get("pq").i32(K).op("i32.add").set("end");
  f.loop("blocks");
  if (format === "q8_0") {
    quantize32(f, 0, 0, false, relaxed);
    f.comment("m = Σq over the bytes 4i..4i+3 of both 16-byte halves, lane i (the dot's lanes)");
    f.get("pq").mem("v128.load", 0).op("i16x8.extadd_pairwise_i8x16_s");
    f.op("i32x4.extadd_pairwise_i16x8_s");
    f.get("pq").mem("v128.load", 16).op("i16x8.extadd_pairwise_i8x16_s");
    f.op("i32x4.extadd_pairwise_i16x8_s").op("i32x4.add").set("m");
    f.comment("-128 · m: the correction of the u8 dot product");
    f.get("pm").get("m").i32(7).op("i32x4.shl").op("i32x4.neg").mem("v128.store", 8, { align: 0 });
    f.comment("s = Σq, the total of m's lanes; records: d, d · s");
    f.get("m").lane("i32x4.extract_lane", 0).get("m").lane("i32x4.extract_lane", 1).op("i32.add");
    f.get("m").lane("i32x4.extract_lane", 2).get("m").lane("i32x4.extract_lane", 3).op("i32.add");
    f.op("i32.add").set("s");
    f.get("pm").get("d").mem("f32.store", 0);
    f.get("pm").get("d").get("s").op("f32.convert_i32_s").op("f32.mul").mem("f32.store", 4);
    f.get("pm").get("s").i32(-128).op("i32.mul").mem("i32.store", 24);
    f.get("px").i32(128).op("i32.add").set("px");
    f.get("pq").i32(32).op("i32.add").set("pq");
    f.get("pm").i32(L.metaBytes).op("i32.add").set("pm");
  } else {
    f.comment("amax over the 256-element block");
    f.zeroV128().set("m");
    for (let i = 0; i < 64; i++) {
      f.get("m").get("px").mem("v128.load", 16 * i).op("f32x4.abs").op("f32x4.max").set("m");
    }
    f.get("m").extractLane(0).get("m").extractLane(1).op("f32.max");
    f.get("m").extractLane(2).get("m").extractLane(3).op("f32.max").op("f32.max").set("amax");
    scaleFromAmax(f);
    f.get("pm").get("d").mem("f32.store", 0);
    for (let j = 0; j < 8; j++) {
      f.comment(`elements ${32 * j} .. ${32 * j + 31}: quants, Σq per 16 and per 32`);
      quantize32(f, 128 * j, 32 * j, true, relaxed);
      for (let half = 0; half < 2; half++) {
        f.get(`h${2 * half}`).get(`h${2 * half + 1}`).op("i16x8.add");
        f.op("i32x4.extadd_pairwise_i16x8_s").set("m");
        f.get("m").lane("i32x4.extract_lane", 0).get("m").lane("i32x4.extract_lane", 1);
        f.op("i32.add").get("m").lane("i32x4.extract_lane", 2).op("i32.add");
        f.get("m").lane("i32x4.extract_lane", 3).op("i32.add");
        f.set("s").get("pm").get("s").mem("i32.store16", 16 + 4 * j + 2 * half);
      }
      // Σ per 32 = the two stored 16-sums.
      f.get("pm").get("pm").mem("i32.load16_s", 16 + 4 * j).get("pm");
      f.mem("i32.load16_s", 16 + 4 * j + 2).op("i32.add").mem("i32.store16", 48 + 2 * j);
    }
    f.comment("the block's quants again, in the lane order (lanes.ts)");
    emitLaneCopy(f, () => f.get("pq"), () => f.get("pl"));
    f.get("pl").i32(256).op("i32.add").set("pl");
    f.get("px").i32(1024).op("i32.add").set("px");
    f.get("pq").i32(256).op("i32.add").set("pq");
    f.get("pm").i32(64).op("i32.add").set("pm");
  }
  f.get("pq").get("end").op("i32.lt_u").brIf("blocks");
  f.end();
  f.comment("next row");
  f.get("xq").i32(L.stride).get("t").i32(1).op("i32.add").tee("t").op("i32.mul").op("i32.add");
  f.set("pq");
  f.br("rows").end().end();
  return f;
}

/**
 * The fewest rows of a step whose threads split the quantisation of a matrix product's
 * input ({@linkcode emitQuantizeRows}); one row (a decode step) every thread quantises into
 * its own scratch, with no barrier. Batched steps of g110M Q8_0 on 2 threads, duplicate vs
 * split: 2 rows 6.3 → 6.1 ms, 4 rows 9.0 → 8.9, 8 rows 12.4 → 12.0, 16 rows 18.4 → 17.5.
 */
export const QUANT_SPLIT_MIN_ROWS = 2;

/** Where {@linkcode emitQuantizeRows} reads and writes. */
export interface QuantizeRowsSpec {
  /** `q8_0` or `q8_K`. */
  format: Exclude<ActFormat, "f32">;
  /** Elements per row. */
  K: number;
  /** Byte offset of the f32 input rows, `(rows, K)` dense. */
  input: number;
  /** The i32 local holding the row count of this step. */
  rows: string;
  /** The i32 local holding this thread's own buffer (its scratch). */
  own: string;
  /** Byte offset of the buffer every thread reads when they split the rows. */
  shared: number;
  /**
   * A thread may still be reading `shared` from an earlier split (no barrier since): pass
   * one before writing it (or, on the unsplit path, `own`, which is `shared` on thread 0).
   */
  barrierFirst: boolean;
  /** Emits a barrier of all threads (returning from the caller when it fails). */
  barrier: () => void;
  /** Rows of the graph's steps at most: below `QUANT_SPLIT_MIN_ROWS` no split is emitted. */
  maxRows: number;
}

/**
 * Emits the quantisation of a matrix product's input rows and sets the i32 local `qx` to
 * where the activation rows are (uses the i32 locals `tid`, `nthreads`, `lo`, `hi`):
 *
 * - `rows >= QUANT_SPLIT_MIN_ROWS` on more than one thread: thread t quantises rows
 *   `[rows · t / nthreads, rows · (t + 1) / nthreads)` into `shared`, then all pass a
 *   barrier (and one before, with `barrierFirst`), `qx = shared`. Prefill and server steps:
 *   each row is quantised once instead of once per thread (llama.cpp's threads split the
 *   conversion of `src1` the same way in `ggml_compute_forward_mul_mat`).
 * - otherwise every thread quantises all rows into `own`, `qx = own` (the only code emitted
 *   for a graph of fewer rows, as a decode graph).
 *
 * The bytes of a row are the same either way: the quantiser works row by row.
 *
 * @param f The function.
 * @param s Input, buffers and barrier.
 */
export function emitQuantizeRows(f: WasmFunc, s: QuantizeRowsSpec): void {
  const name = quantizeName(s.format, s.K), stride = actLayout(s.format, s.K).stride;
  const allRows = () => f.i32(s.input).get(s.own).get(s.rows).call(name).get(s.own).set("qx");
  if (s.maxRows < QUANT_SPLIT_MIN_ROWS) {
    f.comment(`all rows into ${s.own} (stride ${stride}), on every thread`);
    allRows();
    return;
  }
  f.comment(
    `rows >= ${QUANT_SPLIT_MIN_ROWS} on several threads: each quantises its share into ` +
      `${s.shared} (stride ${stride}), then a barrier; else all rows into ${s.own}`,
  );
  f.get(s.rows).i32(QUANT_SPLIT_MIN_ROWS).op("i32.ge_u");
  f.get("nthreads").i32(1).op("i32.gt_u").op("i32.and").if();
  if (s.barrierFirst) s.barrier();
  f.get(s.rows).get("tid").op("i32.mul").get("nthreads").op("i32.div_u").set("lo");
  f.get(s.rows).get("tid").i32(1).op("i32.add").op("i32.mul").get("nthreads").op("i32.div_u");
  f.set("hi");
  f.i32(s.input).get("lo").i32(4 * s.K).op("i32.mul").op("i32.add");
  f.i32(s.shared).get("lo").i32(stride).op("i32.mul").op("i32.add");
  f.get("hi").get("lo").op("i32.sub").call(name);
  s.barrier();
  f.i32(s.shared).set("qx");
  f.else();
  if (s.barrierFirst) {
    // Thread 0's own scratch is `shared`: a step's split earlier (n rows) may still be read
    // when this product has fewer (the nOut rows of an LM head).
    f.get("nthreads").i32(1).op("i32.gt_u").if();
    s.barrier();
    f.end();
  }
  allRows();
  f.end();
}
