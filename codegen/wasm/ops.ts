/**
 * The rest of a decoder step in WASM, so a step never returns to JS between ops: RMSNorm
 * and LayerNorm, SwiGLU, GeGLU and tanh-GELU, soft-caps, the residual add, and a vectorised
 * `exp` (RoPE, the KV store and the gather are `step_ops.ts`, attention `attention.ts`).
 * Every kernel takes byte offsets; shapes are constants; the element-wise ones take the range
 * `i0 .. i1` a thread does. Semantics equal the JS kernels of `emit_js.ts` and the reference
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
import { hsumF32 } from "./snippets.ts";

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
