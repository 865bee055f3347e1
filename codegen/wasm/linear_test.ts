/**
 * Every matrix-product kernel (codegen/wasm/linear.ts) against dequantise-then-float64:
 * weights decoded by the scalar block decoder of tests/ggml_blocks.ts (itself checked
 * against gguf.quants.dequantize below), activations as the quantiser wrote them
 * (`d · q`), for matvec and matmul, with and without relaxed SIMD, odd row counts (the
 * one-row remainder), 11 and 7 tokens (full register blocks of 8 or 4 tokens, and the
 * smaller blocks of the remainder), a bias and an accumulate.
 *
 * Tolerance: |y - y_ref| ≤ 1e-6 · Σ_k |w_k · x_k| for every type (the kernels differ from
 * the float64 sum only by f32 rounding of the per-block terms). A second check bounds the
 * activation quantisation: |x - d·q| ≤ d/2 per element. Negative controls: one flipped
 * weight byte, and the f32 activations in place of the quantised ones for a q8 type.
 */
import assert from "node:assert/strict";
import { dequantizeRef, randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../wasm_features.ts";
import { actLayout, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { emitLinear, type LinearSpec } from "./linear.ts";
import { buildKernelModule } from "./module.ts";
import { quantizeKernel } from "./quantize.ts";

/** The exported kernels, called with byte offsets and counts. */
type Kernels = Record<string, (...args: number[]) => number>;

const TYPES = Object.keys(WEIGHT_TYPES) as WeightTypeName[];
const FIXTURES = new URL("../../tests/fixtures/ggml_blocks/", import.meta.url);

Deno.test("dequantizeRef() equals gguf.quants.dequantize on random blocks of every type", () => {
  for (const t of TYPES.filter((t) => t !== "F32")) {
    const raw = Deno.readFileSync(new URL(`${t}.bin`, FIXTURES));
    const want = new Float32Array(Deno.readFileSync(new URL(`${t}.f32`, FIXTURES)).buffer);
    assert.deepEqual(dequantizeRef(t, raw, 512), want, t);
  }
});

interface Run {
  y: Float32Array;
  yRef: Float64Array;
  mag: Float64Array;
  xErr: number;
}

/** Runs one kernel on random data; returns its output and the float64 reference. */
function run(
  type: WeightTypeName,
  s: Omit<LinearSpec, "type">,
  n: number,
  opts: { flip?: boolean; rawX?: boolean; split?: number[] } = {},
): Run {
  const t = WEIGHT_TYPES[type];
  const { M, K } = s;
  const f = emitLinear({ type, ...s });
  const funcs = [f];
  if (t.act !== "f32") funcs.push(quantizeKernel(t.act, K));
  const memory = new WebAssembly.Memory({ initial: 64 });
  const mod = buildKernelModule(funcs, { minPages: 64 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Kernels;
  const r = rng(M * 7919 + K);
  const wb = randomBlocks(type, M, K, r);
  const W = dequantizeRef(type, wb, M * K);
  const WO = 0, XO = 1 << 20, QO = 2 << 20, YO = 3 << 20, BO = 3.5 * (1 << 20);
  const u8 = new Uint8Array(memory.buffer), f32 = new Float32Array(memory.buffer);
  u8.set(wb, WO);
  if (opts.flip) u8[WO + Math.floor(wb.length / 2) + 5] ^= 0x24;
  for (let i = 0; i < n * K; i++) f32[XO / 4 + i] = 2 * r() - 1;
  for (let i = 0; i < M; i++) f32[BO / 4 + i] = 2 * r() - 1;
  const y0 = Float32Array.from({ length: n * M }, () => 2 * r() - 1);
  f32.set(y0, YO / 4);
  const x = f32.slice(XO / 4, XO / 4 + n * K);
  let xq = Float64Array.from(x), xArg = XO, xErr = 0;
  if (t.act !== "f32") {
    const L = actLayout(t.act, K);
    e[`quantize_${t.act}_${K}`](XO, QO, n);
    const dv = new DataView(memory.buffer);
    for (let tok = 0; tok < n; tok++) {
      const row = QO + tok * L.stride;
      for (let k = 0; k < K; k++) {
        const d = dv.getFloat32(
          row + L.metaOffset + Math.floor(k / L.blockElems) * L.metaBytes,
          true,
        );
        xq[tok * K + k] = d * dv.getInt8(row + k);
        xErr = Math.max(xErr, Math.abs(xq[tok * K + k] - x[tok * K + k]) / (d / 2 || 1));
      }
    }
    if (opts.rawX) xq = Float64Array.from(x);
    xArg = QO;
  }
  const PO = 3.75 * (1 << 20); // the f32 panel of an F16/BF16 matmul
  // The rows in one call, or in one call per range of `opts.split` (as threads split them).
  const edges = [0, ...(opts.split ?? []), M];
  for (let i = 0; i + 1 < edges.length; i++) {
    e[f.name](
      WO,
      ...(s.bias ? [BO] : []),
      xArg,
      YO,
      edges[i],
      edges[i + 1],
      ...(s.kind === "matmul" ? [n] : []),
      ...(s.panel ? [PO] : []),
    );
  }
  const yRef = new Float64Array(n * M), mag = new Float64Array(n * M);
  for (let tok = 0; tok < n; tok++) {
    for (let m = 0; m < M; m++) {
      let sum = 0, abs = 0;
      for (let k = 0; k < K; k++) {
        const p = W[m * K + k] * xq[tok * K + k];
        sum += p;
        abs += Math.abs(p);
      }
      if (s.bias) sum += f32[BO / 4 + m];
      if (s.accumulate) sum += y0[tok * M + m];
      yRef[tok * M + m] = sum;
      mag[tok * M + m] = abs + 1e-30;
    }
  }
  return { y: f32.slice(YO / 4, YO / 4 + n * M), yRef, mag, xErr };
}

/** Largest |y - yRef| / Σ|w·x|. */
function worst({ y, yRef, mag }: Run): number {
  let w = 0;
  for (let i = 0; i < y.length; i++) w = Math.max(w, Math.abs(y[i] - yRef[i]) / mag[i]);
  return w;
}

const TOL = 1e-6;
const RELAXED = relaxedSimdSupported() ? [false, true] : [false];

for (const type of TYPES) {
  const K = WEIGHT_TYPES[type].blockElems === 1 ? 37 : 512;
  for (const relaxed of RELAXED) {
    const tag = relaxed ? "relaxed SIMD" : "SIMD";
    Deno.test(`${type} matvec and matmul (${tag}) equal dequantise-then-f64 within ${TOL}`, () => {
      // matmul: 11 tokens = 8 + 2 + 1 (F32/F16/BF16), 8 + 1 + 1 + 1 (Q8_0), 4 + 4 + 1 + 1 + 1;
      // 7 tokens = 4 + 2 + 1 or 4 + 1 + 1 + 1: every register block width is used.
      for (const [kind, n] of [["matvec", 1], ["matmul", 11], ["matmul", 7]] as const) {
        const r = run(type, { M: 13, K, kind, relaxed }, n);
        assert.ok(worst(r) <= TOL, `${kind} × ${n}: relative error ${worst(r)}`);
        assert.ok(r.xErr <= 1.0001, `activation error ${r.xErr} × d/2`);
      }
      const biased = run(
        type,
        { M: 7, K, kind: "matmul", bias: true, accumulate: true, relaxed },
        3,
      );
      assert.ok(worst(biased) <= TOL, `bias + acc: relative error ${worst(biased)}`);
    });
  }
}

Deno.test("matvec blocks by row length (linear.ts MATVEC_BLOCKS: 8, 2 or 1 rows at a time) equal the float64 reference", () => {
  const cases = [
    ["F32", 768, 8],
    ["F16", 1024, 8],
    ["BF16", 1024, 8],
    ["Q8_0", 1024, 2],
    ["Q4_1", 4096, 1],
    ["Q5_0", 64, 1],
    ["Q4_K", 512, 1],
    ["Q6_K", 768, 1],
  ] as const;
  for (const [type, K, rows] of cases) {
    const f = emitLinear({ type, M: 16, K, kind: "matvec" });
    // The first (widest) register block, then the one-row remainder when that is wider.
    assert.equal(f.text().match(/rows (\d+) at a time/)?.[1], String(rows), type);
    // One row streams untouched: the hardware prefetcher follows a single stream.
    if (rows === 1) assert.doesNotMatch(f.text(), /touch every line/, type);
    for (const relaxed of RELAXED) {
      for (const extra of [{}, { bias: true, accumulate: true }]) {
        // M = 21: register blocks of 8 (or 2) rows, then the rest one row at a time.
        const spec = { M: 21, K, kind: "matvec" as const, relaxed, ...extra };
        const whole = run(type, spec, 1);
        const what = `${type} K=${K} relaxed=${relaxed} ${JSON.stringify(extra)}`;
        assert.ok(worst(whole) <= TOL, `${what}: relative error ${worst(whole)}`);
        const split = run(type, spec, 1, { split: [3, 12] });
        assert.deepEqual(split.y, whole.y, `${what}, rows split at 3 and 12`);
      }
    }
    // Negative control: a flipped weight byte reaches the long-row products (not F32's: the
    // byte flipped there is a low mantissa byte, below the tolerance; not Q4_1's: one 4-bit
    // quant of 4096 moves the sum by less than 100x the tolerance).
    if (type === "F32" || type === "Q4_1") continue;
    const flipped = run(type, { M: 21, K, kind: "matvec" }, 1, { flip: true });
    assert.ok(worst(flipped) > 100 * TOL, type);
  }
});

const FP16_TYPES = TYPES.filter((t) => t !== "F32" && t !== "BF16");

Deno.test(
  "f16 weights and block scales through f32x4.promote_low_f16x8 (FP16 proposal): the same bits",
  { ignore: !fp16SimdSupported() },
  () => {
    // F16 weights (in registers and through the panel) and the f16 scales of every ggml type.
    const cases = [["matvec", 1, false], ["matmul", 11, false], ["matmul", 7, true]] as const;
    for (const type of FP16_TYPES) {
      const K = type === "F16" ? 37 : 512;
      for (const relaxed of RELAXED) {
        for (const [kind, n, panel] of cases) {
          if (panel && type !== "F16") continue;
          const spec = { M: 13, K, kind, relaxed, panel };
          const plain = run(type, spec, n);
          const fp16 = run(type, { ...spec, fp16: true }, n);
          const what = `${type} ${kind} × ${n} K=${K} panel=${panel} relaxed=${relaxed}`;
          assert.ok(worst(fp16) <= TOL, `${what}: relative error ${worst(fp16)}`);
          assert.deepEqual(fp16.y, plain.y, what);
        }
      }
    }
    for (const type of ["F16", "Q8_0", "Q4_K"] as const) {
      const f = emitLinear({ type, M: 8, K: 256, kind: "matvec", fp16: true });
      assert.ok(f.text().includes("f32x4.promote_low_f16x8"), type);
    }
    // Negative control: a flipped weight byte reaches the promoted products.
    const flipped = run("F16", { M: 13, K: 64, kind: "matvec", fp16: true }, 1, { flip: true });
    assert.ok(worst(flipped) > 100 * TOL);
  },
);

Deno.test("Q8_0 kernels with the u8 dot product (x86 VNNI): the same bits as the i7 form", {
  ignore: !relaxedDotU8(),
}, () => {
  for (const K of [32, 512]) {
    for (const [kind, n] of [["matvec", 1], ["matmul", 11], ["matmul", 7]] as const) {
      for (const extra of [{}, { bias: true, accumulate: true }]) {
        const spec = { M: 13, K, kind, relaxed: true, ...extra };
        const i7 = run("Q8_0", spec, n);
        const u8 = run("Q8_0", { ...spec, dotU8: true }, n);
        const what = `${kind} × ${n} K=${K} ${JSON.stringify(extra)}`;
        assert.ok(worst(u8) <= TOL, `${what}: relative error ${worst(u8)}`);
        assert.deepEqual(u8.y, i7.y, what);
      }
    }
  }
  const f = emitLinear({ type: "Q8_0", M: 8, K: 64, kind: "matvec", relaxed: true, dotU8: true });
  assert.ok(f.text().includes("v128.xor"), "the u8 form was emitted");
  // Negative control: a flipped weight byte reaches the u8 products.
  const flipped = run("Q8_0", { M: 13, K: 64, kind: "matvec", relaxed: true, dotU8: true }, 1, {
    flip: true,
  });
  assert.ok(worst(flipped) > 100 * TOL);
});

Deno.test(
  "K-quant kernels with the u8 dot product (sub-blocks in pairs) equal the float64 reference, however the rows are split",
  {
    ignore: !relaxedDotU8(),
  },
  () => {
    // Each super-block's integer sum is exact, but its four lanes hold other partial sums than
    // the 16-bit form's, so the f32 lane sums round differently: the reference, not the bits.
    for (const type of ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"] as const) {
      for (const [kind, n] of [["matvec", 1], ["matmul", 7]] as const) {
        const spec = { M: 13, K: 512, kind, relaxed: true, dotU8: true };
        const whole = run(type, spec, n);
        const what = `${type} ${kind} × ${n}`;
        assert.ok(worst(whole) <= TOL, `${what}: relative error ${worst(whole)}`);
        const split = run(type, spec, n, { split: [3, 12] });
        assert.deepEqual(split.y, whole.y, `${what}, rows split at 3 and 12`);
      }
      const f = emitLinear({ type, M: 8, K: 256, kind: "matvec", relaxed: true, dotU8: true });
      assert.ok(f.text().includes("i16x8.narrow_i32x4_s"), `${type}: the paired form was emitted`);
      // Negative control: a flipped weight byte reaches the paired products.
      const flipped = run(type, { M: 13, K: 512, kind: "matvec", relaxed: true, dotU8: true }, 1, {
        flip: true,
      });
      assert.ok(worst(flipped) > 100 * TOL, type);
    }
  },
);

Deno.test("F32/F16/BF16 matmul with a panel equals the float64 reference, however the rows are split", () => {
  for (const type of ["F32", "F16", "BF16"] as WeightTypeName[]) {
    for (const relaxed of RELAXED) {
      for (const K of [37, 64]) { // 37: four steps of 8 columns and a 5-column tail
        for (const extra of [{}, { bias: true, accumulate: true }]) {
          // M = 21: two blocks of 8 rows and a partial block of 5; n = 17: 6 + 6 + 5 tokens.
          const spec = { M: 21, K, kind: "matmul" as const, relaxed, panel: true, ...extra };
          const whole = run(type, spec, 17);
          const what = `${type} K=${K} ${JSON.stringify(extra)} relaxed=${relaxed}`;
          assert.ok(worst(whole) <= TOL, `${what}: relative error ${worst(whole)}`);
          // As threads split the rows: partial blocks inside and at the end of a range.
          const split = run(type, spec, 17, { split: [3, 12] });
          assert.deepEqual(split.y, whole.y, `${what}, rows split at 3 and 12`);
        }
      }
    }
  }
  // Negative control: a flipped weight byte reaches the panel's products.
  const flipped = run("F16", { M: 21, K: 64, kind: "matmul", panel: true }, 17, { flip: true });
  assert.ok(worst(flipped) > 100 * TOL);
  const f = emitLinear({ type: "F16", M: 16, K: 64, kind: "matmul", panel: true });
  assert.ok(f.text().includes("v128.load32_splat"), "the outer-product micro-kernel");
  assert.throws(
    () => emitLinear({ type: "Q8_0", M: 8, K: 32, kind: "matmul", panel: true }),
    /a panel is for F32\/F16\/BF16 matmuls, Q8_0 ones with the u8 dot product and relaxed ones of the other block types, not matmul Q8_0/,
  );
});

Deno.test(
  "Q8_0 matmul with a panel (u8 dot product) equals the float64 reference, however the rows are split",
  {
    ignore: !relaxedDotU8(),
  },
  () => {
    for (const fp16 of fp16SimdSupported() ? [false, true] : [false]) {
      for (const K of [32, 512]) {
        for (const extra of [{}, { bias: true, accumulate: true }]) {
          // M = 21: two blocks of 8 rows and a partial block of 5; n = 8: 3 + 3 + 2 tokens.
          const spec = {
            M: 21,
            K,
            kind: "matmul" as const,
            relaxed: true,
            dotU8: true,
            panel: true,
            fp16,
            ...extra,
          };
          const whole = run("Q8_0", spec, 8);
          const what = `K=${K} ${JSON.stringify(extra)} fp16=${fp16}`;
          assert.ok(worst(whole) <= TOL, `${what}: relative error ${worst(whole)}`);
          const split = run("Q8_0", spec, 8, { split: [3, 12] });
          assert.deepEqual(split.y, whole.y, `${what}, rows split at 3 and 12`);
        }
      }
    }
    const f = emitLinear({
      type: "Q8_0",
      M: 16,
      K: 64,
      kind: "matmul",
      relaxed: true,
      dotU8: true,
      panel: true,
    });
    assert.ok(f.text().includes("v128.load32_splat"), "the repacked micro-kernel");
    // Negative control: a flipped weight byte reaches the panel's products.
    const flipped = run(
      "Q8_0",
      {
        M: 21,
        K: 64,
        kind: "matmul",
        relaxed: true,
        dotU8: true,
        panel: true,
      },
      8,
      { flip: true },
    );
    assert.ok(worst(flipped) > 100 * TOL);
  },
);

Deno.test(
  "Q4_0/Q4_1/Q5_0/Q5_1/Q2_K..Q6_K matmul with a panel (relaxed) equals the float64 reference, however the rows are split",
  { ignore: !relaxedSimdSupported() },
  () => {
    for (
      const type of [
        "Q4_0",
        "Q4_1",
        "Q5_0",
        "Q5_1",
        "Q2_K",
        "Q3_K",
        "Q4_K",
        "Q5_K",
        "Q6_K",
      ] as const
    ) {
      for (const fp16 of fp16SimdSupported() ? [false, true] : [false]) {
        for (const K of [256, 512]) {
          // (Bias and accumulate apart: a random Q6_K row can be all zero, where this harness's
          // relative error of bias + y would divide f32 rounding by 1e-30.)
          for (const extra of [{}, { bias: true }, { accumulate: true }]) {
            // M = 21: two blocks of 8 rows and a partial block of 5; n = 7: 2 + 2 + 2 + 1
            // (K-quants) or 3 + 3 + 1 (the 32-element types).
            const spec = { M: 21, K, kind: "matmul" as const, relaxed: true, panel: true, fp16 };
            const whole = run(type, { ...spec, ...extra }, 7);
            const what = `${type} K=${K} ${JSON.stringify(extra)} fp16=${fp16}`;
            assert.ok(worst(whole) <= TOL, `${what}: relative error ${worst(whole)}`);
            const split = run(type, { ...spec, ...extra }, 7, { split: [3, 12] });
            assert.deepEqual(split.y, whole.y, `${what}, rows split at 3 and 12`);
          }
        }
      }
      // Negative control: a flipped weight byte reaches the panel's products.
      const spec = { M: 21, K: 256, kind: "matmul" as const, relaxed: true, panel: true };
      assert.ok(worst(run(type, spec, 7, { flip: true })) > 100 * TOL, type);
    }
  },
);

Deno.test("matvec negative controls: a flipped weight byte, unquantised activations", () => {
  for (const type of ["Q4_K", "Q8_0", "F16"] as WeightTypeName[]) {
    const K = WEIGHT_TYPES[type].blockElems === 1 ? 64 : 512;
    // The reference decodes the unflipped bytes: the kernel's output must disagree.
    assert.ok(worst(run(type, { M: 13, K, kind: "matvec" }, 1, { flip: true })) > 100 * TOL, type);
  }
  const raw = run("Q6_K", { M: 13, K: 512, kind: "matvec" }, 1, { rawX: true });
  assert.ok(worst(raw) > 100 * TOL, "the quantised activations are what the kernel reads");
});
