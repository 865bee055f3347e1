/**
 * The rest of a decoder step in WASM, so a step never returns to JS between ops: RMSNorm
 * and LayerNorm, RoPE (both pairings), attention over the f32 KV rings, the KV store,
 * SwiGLU and tanh-GELU, the residual add, and a vectorised `exp`. Every kernel takes byte
 * offsets; shapes are constants; the ones threads split take a range (`h0 .. h1` heads,
 * `i0 .. i1` elements). Semantics equal the JS kernels of `emit_js.ts` and the reference
 * forward (`runtime/reference.ts`): llama2.c run.c `rmsnorm`, `softmax`; GPT-2 `gelu`.
 *
 * `exp_f32x4` (internal): `e^x = 2^n · e^r`, `n = round(x · log2 e)`, `r = x - n·ln 2`
 * (ln 2 split in two), `e^r` by its degree-6 Taylor polynomial (relative error < 2e-7 on
 * |r| ≤ ln2/2), `2^n` built in the exponent bits; x is clamped to [-87, 88].
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { nameNumber } from "../ops/renderer.ts";
import { dotHd, hsumF32 } from "./snippets.ts";

/** The internal vector exp (called by softmax, SiLU and GELU). */
export function expKernel(): WasmFunc {
  const f = new WasmFunc("exp_f32x4", [["x", "v128"]], ["v128"], { export: false });
  f.local("n", "v128").local("r", "v128").local("p", "v128");
  f.comment("e^x for 4 lanes: 2^n · poly(r), x clamped to [-87, 88]");
  f.get("x").f32x4(-87).op("f32x4.max").f32x4(88).op("f32x4.min").set("x");
  f.get("x").f32x4(Math.LOG2E).op("f32x4.mul").op("f32x4.nearest").set("n");
  f.get("x").get("n").f32x4(0.693359375).op("f32x4.mul").op("f32x4.sub");
  f.get("n").f32x4(-2.12194440e-4).op("f32x4.mul").op("f32x4.sub").set("r");
  f.comment("Horner: 1 + r(1 + r(1/2 + r(1/6 + r(1/24 + r(1/120 + r/720)))))");
  f.f32x4(1 / 720);
  for (const c of [1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1]) {
    f.get("r").op("f32x4.mul").f32x4(c).op("f32x4.add");
  }
  f.set("p");
  f.comment("· 2^n: (n + 127) << 23 as f32 bits");
  f.get("n").op("i32x4.trunc_sat_f32x4_s").i32x4(127).op("i32x4.add").i32(23).op("i32x4.shl");
  f.get("p").op("f32x4.mul");
  return f;
}

/**
 * RMSNorm over n rows of D: `y = x / sqrt(mean(x²) + eps) · w` (`rmsnorm_D(w, x, y, n)`).
 *
 * @param D Row length.
 * @param eps Epsilon.
 * @returns The function.
 */
export function rmsnormKernel(D: number, eps: number): WasmFunc {
  const f = new WasmFunc(`rmsnorm_${D}`, [["w", "i32"], ["x", "i32"], ["y", "i32"], ["n", "i32"]]);
  f.local("t", "i32").local("i", "i32").local("ss", "f32").local("inv", "f32");
  f.local("acc", "v128").local("vinv", "v128");
  const D4 = D - (D % 4);
  f.comment(`y (n, ${D}) = x / sqrt(mean(x²) + ${eps}) · w`);
  f.block("done").loop("rows");
  f.get("t").get("n").op("i32.ge_u").brIf("done");
  f.zeroV128().set("acc").f32(0).set("ss");
  if (D4) {
    f.i32(0).set("i").loop("sq");
    f.get("x").get("i").op("i32.add").mem("v128.load").set("vinv");
    f.get("acc").get("vinv").get("vinv").op("f32x4.mul").op("f32x4.add").set("acc");
    f.get("i").i32(16).op("i32.add").tee("i").i32(D4 * 4).op("i32.lt_u").brIf("sq").end();
  }
  hsumF32(f, "acc");
  for (let j = D4; j < D; j++) {
    f.get("x").mem("f32.load", 4 * j).get("x").mem("f32.load", 4 * j).op("f32.mul").op("f32.add");
  }
  f.set("ss");
  f.f32(1).get("ss").f32(D).op("f32.div").f32(eps).op("f32.add").op("f32.sqrt").op("f32.div").set(
    "inv",
  );
  f.get("inv").op("f32x4.splat").set("vinv");
  if (D4) {
    f.i32(0).set("i").loop("scale");
    f.get("y").get("i").op("i32.add");
    f.get("x").get("i").op("i32.add").mem("v128.load").get("vinv").op("f32x4.mul");
    f.get("w").get("i").op("i32.add").mem("v128.load").op("f32x4.mul").mem("v128.store");
    f.get("i").i32(16).op("i32.add").tee("i").i32(D4 * 4).op("i32.lt_u").brIf("scale").end();
  }
  for (let j = D4; j < D; j++) {
    f.get("y").get("x").mem("f32.load", 4 * j).get("inv").op("f32.mul");
    f.get("w").mem("f32.load", 4 * j).op("f32.mul").mem("f32.store", 4 * j);
  }
  f.get("x").i32(4 * D).op("i32.add").set("x").get("y").i32(4 * D).op("i32.add").set("y");
  f.get("t").i32(1).op("i32.add").set("t").br("rows").end().end();
  return f;
}

/**
 * LayerNorm over n rows of D: `y = (x - mean) / sqrt(var + eps) · w + b`
 * (`layernorm_D(w, b, x, y, n)`), scalar sums in row order as the reference.
 *
 * @param D Row length.
 * @param eps Epsilon.
 * @returns The function.
 */
export function layernormKernel(D: number, eps: number): WasmFunc {
  const f = new WasmFunc(`layernorm_${D}`, [
    ["w", "i32"],
    ["b", "i32"],
    ["x", "i32"],
    ["y", "i32"],
    ["n", "i32"],
  ]);
  f.local("t", "i32").local("i", "i32").local("mean", "f32").local("var", "f32");
  f.local("inv", "f32").local("d", "f32");
  f.comment(`y (n, ${D}) = (x - mean) / sqrt(var + ${eps}) · w + b`);
  f.block("done").loop("rows");
  f.get("t").get("n").op("i32.ge_u").brIf("done");
  f.f32(0).set("mean").f32(0).set("var");
  f.i32(0).set("i").loop("sum");
  f.get("mean").get("x").get("i").op("i32.add").mem("f32.load").op("f32.add").set("mean");
  f.get("i").i32(4).op("i32.add").tee("i").i32(4 * D).op("i32.lt_u").brIf("sum").end();
  f.get("mean").f32(D).op("f32.div").set("mean");
  f.i32(0).set("i").loop("var");
  f.get("x").get("i").op("i32.add").mem("f32.load").get("mean").op("f32.sub").set("d");
  f.get("var").get("d").get("d").op("f32.mul").op("f32.add").set("var");
  f.get("i").i32(4).op("i32.add").tee("i").i32(4 * D).op("i32.lt_u").brIf("var").end();
  f.f32(1).get("var").f32(D).op("f32.div").f32(eps).op("f32.add").op("f32.sqrt").op("f32.div").set(
    "inv",
  );
  f.i32(0).set("i").loop("out");
  f.get("y").get("i").op("i32.add");
  f.get("x").get("i").op("i32.add").mem("f32.load").get("mean").op("f32.sub").get("inv").op(
    "f32.mul",
  );
  f.get("w").get("i").op("i32.add").mem("f32.load").op("f32.mul");
  f.get("b").get("i").op("i32.add").mem("f32.load").op("f32.add").mem("f32.store");
  f.get("i").i32(4).op("i32.add").tee("i").i32(4 * D).op("i32.lt_u").brIf("out").end();
  f.get("x").i32(4 * D).op("i32.add").set("x").get("y").i32(4 * D).op("i32.add").set("y");
  f.get("t").i32(1).op("i32.add").set("t").br("rows").end().end();
  return f;
}

/** Attention geometry. */
export interface AttentionShape {
  /** Query heads. */
  nHeads: number;
  /** KV heads (divides nHeads). */
  nKvHeads: number;
  /** Head dimension. */
  headDim: number;
  /** KV ring slots (window). */
  kvCapacity: number;
}

/**
 * RoPE on q (n, nHeads·hd) and k (n, nKvHeads·hd) at positions pos .. pos + n - 1, for the
 * heads h0 .. h1 - 1 of the nHeads + nKvHeads (q heads first):
 * `rope_<style>_HxKxD(q, k, tab, pos, n, h0, h1)`. Pairs `(i, i + hd/2)` (half, GPT-NeoX /
 * HF) or `(2i, 2i + 1)` (interleaved, llama2.c / Meta); cos/sin from the table at `tab`
 * (rows of `[cos × hd/2, sin × hd/2]` per position), which must cover pos + n - 1.
 *
 * @param s Heads and head_dim.
 * @param style Pairing.
 * @returns The function.
 */
export function ropeKernel(s: AttentionShape, style: "half" | "interleaved"): WasmFunc {
  const hd = s.headDim, half = hd / 2, qDim = s.nHeads * hd, kvDim = s.nKvHeads * hd;
  const f = new WasmFunc(`rope_${style}_${s.nHeads}x${s.nKvHeads}x${hd}`, [
    ["q", "i32"],
    ["k", "i32"],
    ["tab", "i32"],
    ["pos", "i32"],
    ["n", "i32"],
    ["h0", "i32"],
    ["h1", "i32"],
  ]);
  for (const l of ["t", "h", "i", "row", "base", "pa", "pb"]) f.local(l, "i32");
  for (const l of ["cos", "sin", "a", "b"]) f.local(l, "f32");
  f.comment(
    `pair (a, b) = ${style === "half" ? `(i, i + ${half})` : "(2i, 2i + 1)"}: ` +
      "a' = a·cos - b·sin, b' = b·cos + a·sin; heads 0.." + (s.nHeads - 1) + " of q, then k",
  );
  f.block("done").loop("tokens");
  f.get("t").get("n").op("i32.ge_u").brIf("done");
  f.get("tab").get("pos").get("t").op("i32.add").i32(hd * 4).op("i32.mul").op("i32.add").set("row");
  f.get("h0").set("h");
  f.block("heads_done").loop("heads");
  f.get("h").get("h1").op("i32.ge_u").brIf("heads_done");
  f.comment("base = q + (t·qDim + h·hd)·4, or k + (t·kvDim + (h - nHeads)·hd)·4");
  f.get("q").get("t").i32(qDim * 4).op("i32.mul").op("i32.add").get("h").i32(hd * 4).op("i32.mul")
    .op("i32.add");
  f.get("k").get("t").i32(kvDim * 4).op("i32.mul").op("i32.add");
  f.get("h").i32(s.nHeads).op("i32.sub").i32(hd * 4).op("i32.mul").op("i32.add");
  f.get("h").i32(s.nHeads).op("i32.lt_u").op("select").set("base");
  f.i32(0).set("i").loop("pairs");
  f.get("row").get("i").i32(4).op("i32.mul").op("i32.add").tee("pa").mem("f32.load").set("cos");
  f.get("pa").mem("f32.load", half * 4).set("sin");
  if (style === "half") {
    f.get("base").get("i").i32(4).op("i32.mul").op("i32.add").tee("pa").i32(half * 4).op("i32.add")
      .set("pb");
  } else {
    f.get("base").get("i").i32(8).op("i32.mul").op("i32.add").tee("pa").i32(4).op("i32.add").set(
      "pb",
    );
  }
  f.get("pa").mem("f32.load").set("a").get("pb").mem("f32.load").set("b");
  f.get("pa").get("a").get("cos").op("f32.mul").get("b").get("sin").op("f32.mul").op("f32.sub").mem(
    "f32.store",
  );
  f.get("pb").get("b").get("cos").op("f32.mul").get("a").get("sin").op("f32.mul").op("f32.add").mem(
    "f32.store",
  );
  f.get("i").i32(1).op("i32.add").tee("i").i32(half).op("i32.lt_u").brIf("pairs").end();
  f.get("h").i32(1).op("i32.add").set("h").br("heads").end().end();
  f.get("t").i32(1).op("i32.add").set("t").br("tokens").end().end();
  return f;
}

/**
 * Causal attention over the KV rings for heads h0 .. h1 - 1:
 * `attention_HxKxD_wC(q, k, v, kr, vr, o, att, pos, n, h0, h1)`. Token t (position
 * p = pos + t) sees positions max(0, p - C + 1) .. p: those below pos from the rings kr/vr
 * (C, kvDim) at slot u % C, the rest from this step's k/v rows; head h reads KV head
 * h / (H / K). `att` is a scratch of C + 4 floats (one per thread).
 *
 * @param s Heads, head_dim, window.
 * @returns The function.
 */
export function attentionKernel(s: AttentionShape): WasmFunc {
  const hd = s.headDim, cap = s.kvCapacity, G = s.nHeads / s.nKvHeads;
  const qDim = s.nHeads * hd, kvDim = s.nKvHeads * hd, scale = 1 / Math.sqrt(hd);
  const f = new WasmFunc(`attention_${s.nHeads}x${s.nKvHeads}x${hd}_w${cap}`, [
    ["q", "i32"],
    ["k", "i32"],
    ["v", "i32"],
    ["kr", "i32"],
    ["vr", "i32"],
    ["o", "i32"],
    ["att", "i32"],
    ["pos", "i32"],
    ["n", "i32"],
    ["h0", "i32"],
    ["h1", "i32"],
  ]);
  for (const l of ["t", "p", "start", "h", "u", "qh", "kvh", "pk", "oh", "i", "len"]) {
    f.local(l, "i32");
  }
  for (const l of ["max", "sum", "score", "a"]) f.local(l, "f32");
  f.local("vacc", "v128").local("va", "v128");
  f.comment(
    `o (n, ${qDim}) = softmax(q·kᵀ · ${scale}) · v per head; window ${cap}; head h reads KV head h / ${G}`,
  );
  f.block("done").loop("tokens");
  f.get("t").get("n").op("i32.ge_u").brIf("done");
  f.get("pos").get("t").op("i32.add").set("p");
  f.get("p").i32(cap - 1).op("i32.sub").i32(0).get("p").i32(cap).op("i32.ge_u").op("select").set(
    "start",
  );
  f.get("p").get("start").op("i32.sub").i32(1).op("i32.add").set("len");
  f.get("h0").set("h");
  f.block("heads_done").loop("heads");
  f.get("h").get("h1").op("i32.ge_u").brIf("heads_done");
  f.get("q").get("t").i32(qDim * 4).op("i32.mul").op("i32.add").get("h").i32(hd * 4).op("i32.mul")
    .op("i32.add").set("qh");
  f.get("h").i32(G).op("i32.div_u").i32(hd * 4).op("i32.mul").set("kvh");
  // Address of position u's row in ring r (below pos) or this step's rows s.
  const rowOf = (ring: string, step: string) => {
    f.get(ring).get("u").i32(cap).op("i32.rem_u").i32(kvDim * 4).op("i32.mul").op("i32.add");
    f.get(step).get("u").get("pos").op("i32.sub").i32(kvDim * 4).op("i32.mul").op("i32.add");
    f.get("u").get("pos").op("i32.lt_u").op("select").get("kvh").op("i32.add").set("pk");
  };
  f.comment("scores and their max");
  f.f32(-Infinity).set("max").get("start").set("u");
  f.loop("scores");
  rowOf("kr", "k");
  dotHd(f, "qh", "pk", hd);
  f.f32(scale).op("f32.mul").set("score");
  f.get("att").get("u").get("start").op("i32.sub").i32(4).op("i32.mul").op("i32.add").get("score")
    .mem("f32.store");
  f.get("max").get("score").op("f32.max").set("max");
  f.get("u").i32(1).op("i32.add").tee("u").get("p").op("i32.le_u").brIf("scores").end();
  f.comment("e = exp(score - max), 4 at a time (the scratch has 4 floats of slack); sum");
  f.zeroV128().set("vacc").i32(0).set("i");
  f.loop("exps");
  f.get("att").get("i").i32(4).op("i32.mul").op("i32.add").tee("pk");
  f.get("pk").mem("v128.load").get("max").op("f32x4.splat").op("f32x4.sub").call("exp_f32x4").tee(
    "va",
  );
  f.mem("v128.store");
  f.comment("lanes past len do not count");
  f.get("vacc").get("va").get("len").get("i").op("i32.sub").op("i32x4.splat").i32x4(0, 1, 2, 3);
  f.op("i32x4.gt_s").op("v128.and").op("f32x4.add").set("vacc");
  f.get("i").i32(4).op("i32.add").tee("i").get("len").op("i32.lt_u").brIf("exps").end();
  hsumF32(f, "vacc");
  f.set("sum");
  f.comment("o_h = Σ_u (e_u / sum) · v_u");
  f.get("o").get("t").i32(qDim * 4).op("i32.mul").op("i32.add").get("h").i32(hd * 4).op("i32.mul")
    .op("i32.add").set("oh");
  for (let i = 0; i < hd; i += 4) {
    if (i + 4 <= hd) f.get("oh").zeroV128().mem("v128.store", 4 * i);
    else for (let j = i; j < hd; j++) f.get("oh").f32(0).mem("f32.store", 4 * j);
  }
  f.get("start").set("u");
  f.loop("values");
  rowOf("vr", "v");
  f.get("att").get("u").get("start").op("i32.sub").i32(4).op("i32.mul").op("i32.add").mem(
    "f32.load",
  );
  f.get("sum").op("f32.div").tee("a").op("f32x4.splat").set("va");
  for (let i = 0; i < hd; i += 4) {
    if (i + 4 <= hd) {
      f.get("oh").get("oh").mem("v128.load", 4 * i).get("pk").mem("v128.load", 4 * i);
      f.get("va").op("f32x4.mul").op("f32x4.add").mem("v128.store", 4 * i);
    } else {
      for (let j = i; j < hd; j++) {
        f.get("oh").get("oh").mem("f32.load", 4 * j).get("pk").mem("f32.load", 4 * j);
        f.get("a").op("f32.mul").op("f32.add").mem("f32.store", 4 * j);
      }
    }
  }
  f.get("u").i32(1).op("i32.add").tee("u").get("p").op("i32.le_u").brIf("values").end();
  f.get("h").i32(1).op("i32.add").set("h").br("heads").end().end();
  f.get("t").i32(1).op("i32.add").set("t").br("tokens").end().end();
  return f;
}

/**
 * Stores this step's k/v rows in the rings: slot (pos + t) % C = k[t], v[t]
 * (`kv_store_D_wC(k, v, kr, vr, pos, n)`); D = kvDim, a multiple of 4.
 *
 * @param kvDim Row length.
 * @param cap Ring slots.
 * @returns The function.
 */
export function kvStoreKernel(kvDim: number, cap: number): WasmFunc {
  const f = new WasmFunc(`kv_store_${kvDim}_w${cap}`, [
    ["k", "i32"],
    ["v", "i32"],
    ["kr", "i32"],
    ["vr", "i32"],
    ["pos", "i32"],
    ["n", "i32"],
  ]);
  f.local("t", "i32").local("slot", "i32").local("i", "i32");
  f.comment(`rings (${cap}, ${kvDim}): slot (pos + t) % ${cap} = k[t], v[t]`);
  f.block("done").loop("tokens");
  f.get("t").get("n").op("i32.ge_u").brIf("done");
  f.get("pos").get("t").op("i32.add").i32(cap).op("i32.rem_u").i32(kvDim * 4).op("i32.mul").set(
    "slot",
  );
  f.i32(0).set("i").loop("copy");
  for (const [ring, src] of [["kr", "k"], ["vr", "v"]]) {
    f.get(ring).get("slot").op("i32.add").get("i").op("i32.add");
    f.get(src).get("t").i32(kvDim * 4).op("i32.mul").op("i32.add").get("i").op("i32.add");
    f.mem(kvDim % 4 === 0 ? "v128.load" : "f32.load").mem(
      kvDim % 4 === 0 ? "v128.store" : "f32.store",
    );
  }
  const step = kvDim % 4 === 0 ? 16 : 4;
  f.get("i").i32(step).op("i32.add").tee("i").i32(kvDim * 4).op("i32.lt_u").brIf("copy").end();
  f.get("t").i32(1).op("i32.add").set("t").br("tokens").end().end();
  return f;
}

/**
 * Element-wise ops over the elements i0 .. i1 - 1 (byte offsets of f32 arrays; the range is
 * a multiple of 4 elements, or the tail is done one by one):
 * - `add`: `x += y` (`add_f32(x, y, i0, i1)`, the residual);
 * - `swiglu`: `g = silu(g) · u` (`swiglu_f32(g, u, i0, i1)`);
 * - `gelu`: `h = 0.5·h·(1 + tanh(√(2/π)·(h + 0.044715·h³)))` (`gelu_f32(h, 0, i0, i1)`);
 * - `geglu`: `g = gelu_tanh(g) · u` (`geglu_f32(g, u, i0, i1)`; GeGLU, Shazeer 2020, Gemma's
 *   `gelu_pytorch_tanh` gate);
 * - `softcap`: `x = C · tanh(x / C)` (`softcap_capC_f32(x, 0, i0, i1)`; Gemma 2's final
 *   logit soft-capping).
 *
 * tanh is `1 - 2 / (e^(2u) + 1)` with the vector exp: absolute error below 3e-7.
 *
 * @param op Which op.
 * @param cap The cap C of `softcap` (a literal of the code and of the name).
 * @returns The function (`add_f32`, `swiglu_f32`, `gelu_f32`, `geglu_f32`, `softcap_cap30_f32`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementwiseKernel } from "./ops.ts";
 * assert.equal(elementwiseKernel("softcap", 30).name, "softcap_cap30_f32");
 * assert.ok(elementwiseKernel("geglu").text().includes("gelu_tanh(a[i]) · b[i]"));
 * ```
 */
export function elementwiseKernel(op: ElementwiseOp, cap?: number): WasmFunc {
  const f = new WasmFunc(elementwiseName(op, cap), [
    ["a", "i32"],
    ["b", "i32"],
    ["i0", "i32"],
    ["i1", "i32"],
  ]);
  f.local("p", "i32").local("q", "i32").local("end", "i32").local("x", "v128").local("u", "v128");
  const C = cap ?? 1;
  f.comment(
    {
      add: "a[i] += b[i]",
      swiglu: "a[i] = silu(a[i]) · b[i] = a / (1 + exp(-a)) · b",
      gelu: "a[i] = 0.5·a·(1 + tanh(u)), u = √(2/π)(a + 0.044715a³), tanh(u) = 1 - 2/(exp(2u) + 1)",
      geglu:
        "a[i] = gelu_tanh(a[i]) · b[i], gelu_tanh(a) = 0.5·a·(1 + tanh(√(2/π)(a + 0.044715a³)))",
      softcap: `a[i] = ${C} · tanh(a[i] / ${C}), tanh(u) = 1 - 2/(exp(2u) + 1)`,
    }[op],
  );
  f.get("a").get("i0").i32(4).op("i32.mul").op("i32.add").set("p");
  f.get("b").get("i0").i32(4).op("i32.mul").op("i32.add").set("q");
  f.get("a").get("i1").i32(4).op("i32.mul").op("i32.add").set("end");
  /** Pushes gelu_tanh(x) (f32x4), using the local u. */
  const gelu = () => {
    f.f32x4(Math.sqrt(2 / Math.PI)).get("x").f32x4(0.044715).get("x").op("f32x4.mul");
    f.get("x").op("f32x4.mul").get("x").op("f32x4.mul").op("f32x4.add").op("f32x4.mul").set("u");
    f.get("x").f32x4(0.5).op("f32x4.mul");
    f.f32x4(2).f32x4(2).get("u").get("u").op("f32x4.add").call("exp_f32x4").f32x4(1).op(
      "f32x4.add",
    );
    f.op("f32x4.div").op("f32x4.sub").op("f32x4.mul");
  };
  const body = (vec: boolean) => {
    const ld = vec ? "v128.load" : "f32.load", st = vec ? "v128.store" : "f32.store";
    const loadB = () => {
      f.get("q").mem(ld);
      if (!vec) f.op("f32x4.splat");
    };
    // Scalar tail: splat, compute in lanes, keep lane 0.
    f.get("p").get("p").mem(ld);
    if (!vec) f.op("f32x4.splat");
    f.set("x");
    if (op === "add") {
      f.get("x");
      loadB();
      f.op("f32x4.add");
    } else if (op === "swiglu") {
      f.get("x").f32x4(1).get("x").op("f32x4.neg").call("exp_f32x4").op("f32x4.add").op(
        "f32x4.div",
      );
      loadB();
      f.op("f32x4.mul");
    } else if (op === "gelu") {
      gelu();
    } else if (op === "geglu") {
      gelu();
      loadB();
      f.op("f32x4.mul");
    } else {
      f.comment(`${C} · (1 - 2 / (exp(a · ${2 / C}) + 1))`);
      f.f32x4(C).f32x4(1).f32x4(2).get("x").f32x4(2 / C).op("f32x4.mul").call("exp_f32x4");
      f.f32x4(1).op("f32x4.add").op("f32x4.div").op("f32x4.sub").op("f32x4.mul");
    }
    if (!vec) f.extractLane(0);
    f.mem(st);
  };
  f.comment("4 elements at a time");
  f.block("vec_done").loop("vec");
  f.get("p").i32(16).op("i32.add").get("end").op("i32.gt_u").brIf("vec_done");
  body(true);
  f.get("p").i32(16).op("i32.add").set("p").get("q").i32(16).op("i32.add").set("q");
  f.br("vec").end().end();
  f.comment("tail, one at a time");
  f.block("tail_done").loop("tail");
  f.get("p").get("end").op("i32.ge_u").brIf("tail_done");
  body(false);
  f.get("p").i32(4).op("i32.add").set("p").get("q").i32(4).op("i32.add").set("q");
  f.br("tail").end().end();
  return f;
}

/** The element-wise ops of {@linkcode elementwiseKernel}. */
export type ElementwiseOp = "add" | "swiglu" | "gelu" | "geglu" | "softcap";

/**
 * The name of an element-wise kernel: `<op>_f32`, or `softcap_capC_f32` with the cap.
 *
 * @param op Which op.
 * @param cap The cap of `softcap`.
 * @returns The name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { elementwiseName } from "./ops.ts";
 * assert.equal(elementwiseName("softcap", 2.5), "softcap_cap2p5_f32");
 * assert.equal(elementwiseName("geglu"), "geglu_f32");
 * ```
 */
export function elementwiseName(op: ElementwiseOp, cap?: number): string {
  return op === "softcap" ? `softcap_cap${nameNumber(cap ?? 1)}_f32` : `${op}_f32`;
}
