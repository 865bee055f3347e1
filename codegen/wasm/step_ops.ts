/**
 * The WASM kernels of the engine v2 step that read the step's int32 rows and the paged KV
 * cache (engine v2 contract; vLLM PagedAttention, Kwon et al. 2023): RoPE's per-step
 * cos/sin and the rotation by them, the store of k/v into their blocks (paged attention,
 * which reads them, is attention.ts), the gather of the out rows, and the embedding of the
 * step's tokens. Each computes exactly what its JS counterpart in `codegen/ops/` computes
 * (same loop order; WASM f32 arithmetic where the JS kernels round through doubles, so
 * results differ by rounding only).
 *
 * Every kernel takes byte offsets into the one memory; int32 rows `tok`, `pos`, `seq`,
 * `out_rows` (step) and `table`, `ring`, `window` (sequences) are read at run time, every
 * shape, stride and block size is a constant. The ranges `t0 .. t1` (rows) and `h0 .. h1`
 * (heads) are what one thread does.
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { nameNumber } from "../ops/renderer.ts";
import { type KvCacheType, kvTypeBytes } from "../../core/forward.ts";
import { f32x4ToF16x4 } from "./snippets.ts";

/**
 * Declares i32 locals (shared with attention.ts).
 *
 * @param f The function.
 * @param names The locals' names.
 */
export const i32s = (f: WasmFunc, ...names: string[]): void =>
  names.forEach((n) => f.local(n, "i32"));

/**
 * Pushes `I[base + 4·index]` (an int32 of the arena), index a local (shared with
 * attention.ts).
 *
 * @param f The function.
 * @param base The i32 local holding the int32 array's byte address.
 * @param index The i32 local holding the index.
 */
export function loadI32(f: WasmFunc, base: string, index: string): void {
  f.get(base).get(index).i32(2).op("i32.shl").op("i32.add").mem("i32.load");
}

/** `for (t = t0; t < t1; t++) body()` over a local `t`. */
function forRange(f: WasmFunc, t: string, t0: string, t1: string, body: () => void): void {
  f.get(t0).set(t);
  f.block(`${t}_done`).loop(`${t}_loop`);
  f.get(t).get(t1).op("i32.ge_s").brIf(`${t}_done`);
  body();
  f.get(t).i32(1).op("i32.add").set(t).br(`${t}_loop`);
  f.end().end();
}

/** Copies `n` f32 from address local `src` to address local `dst` (v128 when n % 4 == 0). */
function copyF32(f: WasmFunc, dst: string, src: string, n: number): void {
  const vec = n % 4 === 0;
  const step = vec ? 16 : 4;
  for (let o = 0; o < 4 * n; o += step) {
    f.get(dst).get(src).mem(vec ? "v128.load" : "f32.load", o).mem(
      vec ? "v128.store" : "f32.store",
      o,
    );
  }
}

/**
 * `rope_cos_sin_H[_mM](inv_freq, pos, cos, sin, n)`: `cos[t][i], sin[t][i] = cos, sin(pos[t]
 * · inv_freq[i])` for the n rows, the angle a double (the imported `env.cos`/`env.sin`, i.e.
 * JavaScript's Math.cos/sin, as codegen/ops/rope.ts); with M ≠ 1 both are multiplied by M in
 * double before rounding to f32 (YaRN's attention factor, HF `attention_factor`).
 *
 * @param H Rotation pairs per head (`rope_dimension_count / 2`).
 * @param M The factor (default 1).
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ropeCosSinKernel } from "./step_ops.ts";
 * assert.ok(ropeCosSinKernel(32).text().includes("call $cos"));
 * assert.equal(ropeCosSinKernel(32, 1.125).name, "rope_cos_sin_32_m1p125");
 * ```
 */
export function ropeCosSinKernel(H: number, M = 1): WasmFunc {
  const f = new WasmFunc(
    ropeCosSinName(H, M),
    [
      ["inv", "i32"],
      ["pos", "i32"],
      ["cos", "i32"],
      ["sin", "i32"],
      ["n", "i32"],
    ],
    [],
    { export: false },
  );
  i32s(f, "t", "i", "pc", "zero");
  f.local("p", "f64").local("angle", "f64").local("m", "f64");
  f.comment(
    `cos, sin (n, ${H}) = cos, sin(pos[t] · inv_freq (${H}))` +
      (M === 1 ? "" : ` · ${M} (attention factor)`) + ", angles as doubles",
  );
  if (M !== 1) {
    // M as a double: its f32 part plus the f32 of the rest (exact to ~2^-48).
    const hi = Math.fround(M), lo = Math.fround(M - hi);
    f.comment(`m = ${M} as a double: ${hi} + ${lo}`);
    f.f32(hi).op("f64.promote_f32").f32(lo).op("f64.promote_f32").op("f64.add").set("m");
  }
  const times = () => {
    if (M !== 1) f.get("m").op("f64.mul");
  };
  forRange(f, "t", "zero", "n", () => {
    loadI32(f, "pos", "t");
    f.op("f64.convert_i32_s").set("p");
    f.get("t").i32(H * 4).op("i32.mul").set("pc");
    f.i32(0).set("i").loop("pairs");
    f.get("p").get("inv").get("i").op("i32.add").mem("f32.load").op("f64.promote_f32");
    f.op("f64.mul").set("angle");
    f.get("cos").get("pc").op("i32.add").get("i").op("i32.add");
    f.get("angle").call("cos");
    times();
    f.op("f32.demote_f64").mem("f32.store");
    f.get("sin").get("pc").op("i32.add").get("i").op("i32.add");
    f.get("angle").call("sin");
    times();
    f.op("f32.demote_f64").mem("f32.store");
    f.get("i").i32(4).op("i32.add").tee("i").i32(H * 4).op("i32.lt_u").brIf("pairs").end();
  });
  return f;
}

/**
 * The name of {@linkcode ropeCosSinKernel}: `rope_cos_sin_H`, or `rope_cos_sin_H_mM` with a
 * factor M ≠ 1 (as codegen/ops/rope.ts names it).
 *
 * @param H Rotation pairs per head.
 * @param M The factor (default 1).
 * @returns The name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ropeCosSinName } from "./step_ops.ts";
 * assert.equal(ropeCosSinName(4, 1.1386), "rope_cos_sin_4_m1p1386");
 * ```
 */
export function ropeCosSinName(H: number, M = 1): string {
  return `rope_cos_sin_${H}` + (M === 1 ? "" : `_m${nameNumber(M)}`);
}

/**
 * `rope_<style>_QxKxD[_rR](q, k, cos, sin, n, h0, h1)`: rotates heads h0 .. h1 - 1 of the
 * `Q + K` heads (q's first) of every row t < n by row t's cos/sin `(n, R/2)`:
 * `a' = a·c - b·s`, `b' = b·c + a·s`, pairs `(i, i + R/2)` (half) or `(2i, 2i + 1)`
 * (interleaved), i < R/2, as codegen/ops/rope.ts. R = D, or the `rot_dim` of a partial
 * rotary (Phi-3 `partial_rotary_factor`): dims R .. D - 1 of each head pass through.
 *
 * @param style Pairing.
 * @param Q Query heads.
 * @param K KV heads.
 * @param D head_dim.
 * @param R Dims rotated, the first ones of each head (default D).
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ropeRowsKernel } from "./step_ops.ts";
 * assert.equal(ropeRowsKernel("half", 12, 4, 64).name, "rope_half_12x4x64");
 * assert.equal(ropeRowsKernel("half", 32, 8, 96, 48).name, "rope_half_32x8x96_r48");
 * ```
 */
export function ropeRowsKernel(
  style: "half" | "interleaved",
  Q: number,
  K: number,
  D: number,
  R = D,
): WasmFunc {
  const H = R / 2;
  const f = new WasmFunc(
    ropeRowsName(style, Q, K, D, R),
    [
      ["q", "i32"],
      ["k", "i32"],
      ["cos", "i32"],
      ["sin", "i32"],
      ["n", "i32"],
      ["h0", "i32"],
      ["h1", "i32"],
    ],
    [],
    { export: false },
  );
  i32s(f, "t", "h", "i", "ct", "st", "base", "pa", "pb", "zero");
  for (const l of ["c", "s", "a", "b"]) f.local(l, "f32");
  f.comment(
    `RoPE (${style}) on q (n, ${Q}×${D}) and k (n, ${K}×${D}): pair (a, b) = ` +
      `${style === "half" ? `(i, i + ${H})` : "(2i, 2i + 1)"}, i < ${H}; heads h0 .. h1 - 1 of ` +
      `${Q + K}` + (R === D ? "" : `; dims ${R} .. ${D - 1} of each head pass through`),
  );
  forRange(f, "t", "zero", "n", () => {
    f.get("cos").get("t").i32(H * 4).op("i32.mul").op("i32.add").set("ct");
    f.get("sin").get("t").i32(H * 4).op("i32.mul").op("i32.add").set("st");
    forRange(f, "h", "h0", "h1", () => {
      f.comment(`head h of q (h < ${Q}) or of k`);
      f.get("q").get("t").i32(Q * D * 4).op("i32.mul").op("i32.add");
      f.get("h").i32(D * 4).op("i32.mul").op("i32.add");
      f.get("k").get("t").i32(K * D * 4).op("i32.mul").op("i32.add");
      f.get("h").i32(Q).op("i32.sub").i32(D * 4).op("i32.mul").op("i32.add");
      f.get("h").i32(Q).op("i32.lt_u").op("select").set("base");
      f.i32(0).set("i").loop("pairs");
      f.get("ct").get("i").i32(2).op("i32.shl").op("i32.add").mem("f32.load").set("c");
      f.get("st").get("i").i32(2).op("i32.shl").op("i32.add").mem("f32.load").set("s");
      if (style === "half") {
        f.get("base").get("i").i32(2).op("i32.shl").op("i32.add").tee("pa");
        f.i32(H * 4).op("i32.add").set("pb");
      } else {
        f.get("base").get("i").i32(3).op("i32.shl").op("i32.add").tee("pa");
        f.i32(4).op("i32.add").set("pb");
      }
      f.get("pa").mem("f32.load").set("a").get("pb").mem("f32.load").set("b");
      f.get("pa").get("a").get("c").op("f32.mul").get("b").get("s").op("f32.mul").op("f32.sub");
      f.mem("f32.store");
      f.get("pb").get("b").get("c").op("f32.mul").get("a").get("s").op("f32.mul").op("f32.add");
      f.mem("f32.store");
      f.get("i").i32(1).op("i32.add").tee("i").i32(H).op("i32.lt_u").brIf("pairs").end();
    });
  });
  return f;
}

/**
 * The name of {@linkcode ropeRowsKernel}: `rope_<style>_QxKxD`, `_rR` for a partial rotary
 * (as codegen/ops/rope.ts names it).
 *
 * @param style Pairing.
 * @param Q Query heads.
 * @param K KV heads.
 * @param D head_dim.
 * @param R Dims rotated (default D).
 * @returns The name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ropeRowsName } from "./step_ops.ts";
 * assert.equal(ropeRowsName("interleaved", 4, 2, 12, 8), "rope_interleaved_4x2x12_r8");
 * ```
 */
export function ropeRowsName(
  style: "half" | "interleaved",
  Q: number,
  K: number,
  D: number,
  R = D,
): string {
  return `rope_${style}_${Q}x${K}x${D}` + (R === D ? "" : `_r${R}`);
}

/**
 * Pushes the pool row `table[s][slot / B] · B + slot % B` of ring slot `slot` of the sequence
 * whose block-table row is at `bt` (kv_store, and attention.ts's runs).
 *
 * @param f The function.
 * @param bt The i32 local holding the byte address of the sequence's block-table row.
 * @param slot The i32 local holding the ring slot.
 * @param B Tokens per block (a power of two).
 */
export function poolRow(f: WasmFunc, bt: string, slot: string, B: number): void {
  const shift = Math.log2(B);
  f.get(bt).get(slot).i32(shift).op("i32.shr_u").i32(2).op("i32.shl").op("i32.add");
  f.mem("i32.load").i32(B).op("i32.mul");
  f.get(slot).i32(B - 1).op("i32.and").op("i32.add");
}

/**
 * The kernel-name suffix of a KV cache's element types: `""` (both f32), `_f16kv` (both
 * f16), `_kf16` or `_vf16` (one of them).
 *
 * @param kType The K pool's element type.
 * @param vType The V pool's element type.
 * @returns The suffix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvTypeSuffix } from "./step_ops.ts";
 * assert.equal(kvTypeSuffix("f16", "f16"), "_f16kv");
 * assert.equal(kvTypeSuffix("f32", "f16"), "_vf16");
 * ```
 */
export function kvTypeSuffix(kType: KvCacheType = "f32", vType: KvCacheType = "f32"): string {
  if (kType === "f16" && vType === "f16") return "_f16kv";
  return (kType === "f16" ? "_kf16" : "") + (vType === "f16" ? "_vf16" : "");
}

/** Copies n f32 from `src` to the f16 row at `dst`, rounded to nearest even (see snippets). */
function copyF32ToF16(f: WasmFunc, dst: string, src: string, n: number, fp16: boolean): void {
  for (let i = 0; i + 4 <= n; i += 4) {
    f.get(dst).get(src).mem("v128.load", 4 * i);
    f32x4ToF16x4(f, fp16);
    f.memLane("v128.store64_lane", 2 * i, 0, { align: 1 });
  }
  for (let i = n - (n % 4); i < n; i++) {
    f.get(dst).get(src).mem("f32.load", 4 * i).op("f32x4.splat");
    f32x4ToF16x4(f, fp16);
    f.memLane("v128.store16_lane", 2 * i, 0);
  }
}

/**
 * `kv_store_KD_bB[_f16kv|_kf16|_vf16](k, v, pos, seq, table, ring, kp, vp, t0, t1)`: for rows
 * t0 .. t1 - 1 (s = seq[t], slot = pos[t] % ring[s]) pool row `table[s][slot / B] · B + slot
 * % B` of kp/vp `(blocks · B, KD)` = k[t], v[t] (as codegen/ops/attention.ts `kv_store`);
 * an f16 pool gets the row rounded to nearest even (snippets.ts `f32x4ToF16x4`, as
 * `Math.f16round`).
 *
 * @param kvDim `n_kv_heads · head_dim`.
 * @param B Tokens per block (a power of two).
 * @param MB Columns of the block table.
 * @param kType The K pool's element type (default f32).
 * @param vType The V pool's element type (default f32).
 * @param fp16 Round with the FP16 proposal's `f16x8.demote_f32x4_zero` (default false).
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kvStoreKernel } from "./step_ops.ts";
 * assert.equal(kvStoreKernel(256, 16, 8).name, "kv_store_256_b16");
 * assert.equal(kvStoreKernel(256, 16, 8, "f16", "f16").name, "kv_store_256_b16_f16kv");
 * ```
 */
export function kvStoreKernel(
  kvDim: number,
  B: number,
  MB: number,
  kType: KvCacheType = "f32",
  vType: KvCacheType = "f32",
  fp16 = false,
): WasmFunc {
  const f = new WasmFunc(
    `kv_store_${kvDim}_b${B}` + kvTypeSuffix(kType, vType),
    [
      ["k", "i32"],
      ["v", "i32"],
      ["pos", "i32"],
      ["seq", "i32"],
      ["table", "i32"],
      ["ring", "i32"],
      ["kp", "i32"],
      ["vp", "i32"],
      ["t0", "i32"],
      ["t1", "i32"],
    ],
    [],
    { export: false },
  );
  i32s(f, "t", "s", "slot", "bt", "row", "src", "dst");
  f.comment(
    `pools kp/vp (blocks · ${B}, ${kvDim})` +
      (kType === "f32" && vType === "f32" ? "" : ` (K ${kType}, V ${vType})`) +
      `: row of (s = seq[t], p = pos[t]) = k[t], v[t]; slot p % ring[s] in block ` +
      `table[s][slot / ${B}] (table (seqs, ${MB}))`,
  );
  forRange(f, "t", "t0", "t1", () => {
    loadI32(f, "seq", "t");
    f.set("s");
    loadI32(f, "pos", "t");
    loadI32(f, "ring", "s");
    f.op("i32.rem_u").set("slot");
    f.get("table").get("s").i32(MB * 4).op("i32.mul").op("i32.add").set("bt");
    poolRow(f, "bt", "slot", B);
    // row: the pool row's byte offset when K and V rows have one size, else its index
    const same = kType === vType;
    if (same) f.i32(kvDim * kvTypeBytes(kType)).op("i32.mul");
    f.set("row");
    for (const [src, pool, type] of [["k", "kp", kType], ["v", "vp", vType]] as const) {
      f.get(src).get("t").i32(kvDim * 4).op("i32.mul").op("i32.add").set("src");
      f.get(pool).get("row");
      if (!same) f.i32(kvDim * kvTypeBytes(type)).op("i32.mul");
      f.op("i32.add").set("dst");
      if (type === "f16") copyF32ToF16(f, "dst", "src", kvDim, fp16);
      else copyF32(f, "dst", "src", kvDim);
    }
  });
  return f;
}

/**
 * `gather_rows_D(x, out_rows, y, i0, i1)`: `y[i] (D) = x[out_rows[i]]` for i0 .. i1 - 1.
 *
 * @param D Row width.
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { gatherRowsKernel } from "./step_ops.ts";
 * assert.equal(gatherRowsKernel(48).name, "gather_rows_48");
 * ```
 */
export function gatherRowsKernel(D: number): WasmFunc {
  const f = new WasmFunc(
    `gather_rows_${D}`,
    [
      ["x", "i32"],
      ["out_rows", "i32"],
      ["y", "i32"],
      ["i0", "i32"],
      ["i1", "i32"],
    ],
    [],
    { export: false },
  );
  i32s(f, "i", "src", "dst");
  f.comment(`y (nOut, ${D}) = x[out_rows[i]] for the out rows i0 .. i1 - 1`);
  forRange(f, "i", "i0", "i1", () => {
    f.get("x");
    loadI32(f, "out_rows", "i");
    f.i32(D * 4).op("i32.mul").op("i32.add").set("src");
    f.get("y").get("i").i32(D * 4).op("i32.mul").op("i32.add").set("dst");
    copyF32(f, "dst", "src", D);
  });
  return f;
}

/**
 * `embed_rows_<type>_D[_xS](e, tok, y, t0, t1)`: `y[t] (D) = dequantise(e[tok[t]]) (· S)`
 * for rows t0 .. t1 - 1, by the one-row lookup `embed_<type>_D` (codegen/wasm/embed.ts);
 * S is Gemma's embedding scale (`sqrt(dim)` in the model's dtype), absent when 1.
 *
 * @param rowKernel Name of the one-row lookup (`embed_q8_0_768`).
 * @param D Row width.
 * @param S The scale (default 1).
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { embedRowsKernel } from "./step_ops.ts";
 * assert.equal(embedRowsKernel("embed_q8_0_64", 64).name, "embed_rows_q8_0_64");
 * assert.equal(embedRowsKernel("embed_f32_64", 64, 8).name, "embed_rows_f32_64_x8");
 * ```
 */
export function embedRowsKernel(rowKernel: string, D: number, S = 1): WasmFunc {
  const f = new WasmFunc(
    embedRowsName(rowKernel, S),
    [
      ["e", "i32"],
      ["tok", "i32"],
      ["y", "i32"],
      ["t0", "i32"],
      ["t1", "i32"],
    ],
    [],
    { export: false },
  );
  f.local("t", "i32").local("row", "i32").local("i", "i32");
  f.comment(
    `y (n, ${D}) = e[tok[t]]${S === 1 ? "" : ` · ${S}`} for rows t0 .. t1 - 1, ` +
      "one dequantised row each",
  );
  forRange(f, "t", "t0", "t1", () => {
    f.get("e");
    loadI32(f, "tok", "t");
    f.get("y").get("t").i32(D * 4).op("i32.mul").op("i32.add").tee("row").call(rowKernel);
    if (S !== 1) {
      f.comment(`the row · ${S} (embedding scale)`);
      const D4 = D - (D % 4);
      if (D4 > 0) {
        f.get("row").set("i").loop("scale");
        f.get("i").get("i").mem("v128.load").f32x4(S).op("f32x4.mul").mem("v128.store");
        f.get("i").i32(16).op("i32.add").tee("i").get("row").i32(D4 * 4).op("i32.add");
        f.op("i32.lt_u").brIf("scale").end();
      }
      for (let i = D4; i < D; i++) {
        f.get("row").get("row").mem("f32.load", 4 * i).f32(S).op("f32.mul");
        f.mem("f32.store", 4 * i);
      }
    }
  });
  return f;
}

/**
 * The name of {@linkcode embedRowsKernel}: the row lookup's with `embed_rows_`, `_xS` with a
 * scale S ≠ 1.
 *
 * @param rowKernel Name of the one-row lookup (`embed_q8_0_768`).
 * @param S The scale (default 1).
 * @returns The name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { embedRowsName } from "./step_ops.ts";
 * assert.equal(embedRowsName("embed_q6_k_256", 16), "embed_rows_q6_k_256_x16");
 * ```
 */
export function embedRowsName(rowKernel: string, S = 1): string {
  return rowKernel.replace(/^embed_/, "embed_rows_") + (S === 1 ? "" : `_x${nameNumber(S)}`);
}

/**
 * `add_pos_rows_D(pe, pos, y, t0, t1)`: `y[t] (D) += pe[pos[t]]` (gpt2's learned position
 * embedding, F32) for rows t0 .. t1 - 1.
 *
 * @param D Row width.
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { addPosRowsKernel } from "./step_ops.ts";
 * assert.equal(addPosRowsKernel(64).name, "add_pos_rows_64");
 * ```
 */
export function addPosRowsKernel(D: number): WasmFunc {
  const f = new WasmFunc(
    `add_pos_rows_${D}`,
    [
      ["pe", "i32"],
      ["pos", "i32"],
      ["y", "i32"],
      ["t0", "i32"],
      ["t1", "i32"],
    ],
    [],
    { export: false },
  );
  i32s(f, "t", "src", "dst", "i");
  f.comment(`y (n, ${D}) += pe[pos[t]] for rows t0 .. t1 - 1`);
  forRange(f, "t", "t0", "t1", () => {
    f.get("pe");
    loadI32(f, "pos", "t");
    f.i32(D * 4).op("i32.mul").op("i32.add").set("src");
    f.get("y").get("t").i32(D * 4).op("i32.mul").op("i32.add").set("dst");
    f.i32(0).set("i").loop("elems");
    f.get("dst").get("i").op("i32.add");
    f.get("dst").get("i").op("i32.add").mem("f32.load");
    f.get("src").get("i").op("i32.add").mem("f32.load").op("f32.add").mem("f32.store");
    f.get("i").i32(4).op("i32.add").tee("i").i32(4 * D).op("i32.lt_u").brIf("elems").end();
  });
  return f;
}
