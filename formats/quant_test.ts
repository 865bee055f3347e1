/**
 * ggml block types (formats/quant.ts, formats/quant/*) against independent peers: gguf-py's
 * `gguf.quants` (tests/fixtures/quant/gguf_py, python/quant_fixtures.py) and llama.cpp's own
 * `quantize_row_*_ref` / `dequantize_row_*` (tests/fixtures/quant/llama, and live through
 * FFI when its library is installed: `deno task fixtures:quant`).
 */
import assert from "node:assert/strict";
import {
  checkFinite,
  dequantize,
  GGML_TYPES,
  ggmlType,
  ggmlTypeByName,
  quantize,
  requireSupported,
  rowBytes,
} from "./quant.ts";
import { FormatError } from "../core/errors.ts";
import { ROOT } from "../tests/assets.ts";
import { LLAMA_QUANT_TYPES, openLlamaGgml, quantTestInput } from "../tests/llama_ggml.ts";

const FIX = `${ROOT}tests/fixtures/quant`;

interface FixtureEntry {
  file: string;
  type: string;
  kind?: string;
  n: number;
}

function readManifest(dir: string): FixtureEntry[] {
  return JSON.parse(Deno.readTextFileSync(`${dir}/manifest.json`)).files;
}

/** F32 view of `bytes[o, o + 4n)` (copied, so alignment never matters). */
function f32At(bytes: Uint8Array, o: number, n: number): Float32Array {
  return new Float32Array(bytes.slice(o, o + 4 * n).buffer);
}

/** Index of the first element whose bits differ (NaN-aware), or -1. */
function firstMismatch(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return i;
  return -1;
}

function describeMismatch(what: string, a: ArrayLike<number>, b: ArrayLike<number>): string {
  const i = firstMismatch(a, b);
  return i < 0 ? "" : `${what}: first mismatch at ${i}: got ${a[i]}, expected ${b[i]}`;
}

const GGUF_PY = readManifest(`${FIX}/gguf_py`);
const LLAMA = readManifest(`${FIX}/llama`);

Deno.test("dequantize() equals gguf-py's gguf.quants.dequantize on random blocks of every type", () => {
  const types = GGUF_PY.filter((f) => f.kind === "dequantize");
  assert.deepStrictEqual(types.map((f) => f.type).sort(), [
    "BF16",
    "F16",
    "Q2_K",
    "Q3_K",
    "Q4_0",
    "Q4_1",
    "Q4_K",
    "Q5_0",
    "Q5_1",
    "Q5_K",
    "Q6_K",
    "Q8_0",
  ]);
  for (const f of types) {
    const type = ggmlTypeByName(f.type)!;
    const bytes = Deno.readFileSync(`${FIX}/gguf_py/${f.file}`);
    const nb = rowBytes(type, f.n);
    const want = f32At(bytes, nb, f.n);
    const got = dequantize(type, bytes.subarray(0, nb), f.n);
    assert.deepStrictEqual(describeMismatch(f.type, got, want), "");
  }
});

Deno.test("quantize() equals gguf-py's gguf.quants.quantize bit for bit", () => {
  const types = GGUF_PY.filter((f) => f.kind === "quantize");
  assert.deepStrictEqual(types.length, 7);
  for (const f of types) {
    const type = ggmlTypeByName(f.type)!;
    const bytes = Deno.readFileSync(`${FIX}/gguf_py/${f.file}`);
    const x = f32At(bytes, 0, f.n);
    const want = bytes.subarray(4 * f.n);
    assert.deepStrictEqual(describeMismatch(f.type, quantize(type, x), want), "");
  }
});

Deno.test("quantize() equals llama.cpp's quantize_row_*_ref bit for bit (every block type)", () => {
  assert.deepStrictEqual(
    LLAMA.map((f) => f.type.toLowerCase()),
    LLAMA_QUANT_TYPES.map((t) => t.toLowerCase()),
  );
  for (const f of LLAMA) {
    const type = ggmlTypeByName(f.type)!;
    const bytes = Deno.readFileSync(`${FIX}/llama/${f.file}`);
    const x = f32At(bytes, 0, f.n);
    const nb = rowBytes(type, f.n);
    const want = bytes.subarray(4 * f.n, 4 * f.n + nb);
    assert.deepStrictEqual(describeMismatch(f.type, quantize(type, x), want), "");
    if (f.type === "Q8_K") {
      const deq = f32At(bytes, 4 * f.n + nb, f.n);
      assert.deepStrictEqual(
        describeMismatch("Q8_K dequantize", dequantize(type, want, f.n), deq),
        "",
      );
    }
  }
});

Deno.test("negative controls: a wrong nibble order, a wrong scale or a wrong rounding fails the comparison", () => {
  // Dequantisation: swap the nibbles of every Q4_0 quant byte; the values no longer match.
  const q4 = GGUF_PY.find((f) => f.type === "Q4_0" && f.kind === "dequantize")!;
  const bytes = Deno.readFileSync(`${FIX}/gguf_py/${q4.file}`);
  const type = ggmlTypeByName("Q4_0")!;
  const nb = rowBytes(type, q4.n);
  const want = f32At(bytes, nb, q4.n);
  const swapped = bytes.slice(0, nb);
  for (let o = 0; o < nb; o += 18) {
    for (let j = 2; j < 18; j++) {
      swapped[o + j] = (swapped[o + j] >> 4) | ((swapped[o + j] & 15) << 4);
    }
  }
  assert(firstMismatch(dequantize(type, swapped, q4.n), want) >= 0);
  // A scale off by one F16 ulp in the first block changes its values.
  const scaled = bytes.slice(0, nb);
  scaled[0] ^= 1;
  assert(firstMismatch(dequantize(type, scaled, q4.n), want) >= 0);
  // Quantisation: Q4_K blocks from inputs nudged by one ulp in one element differ somewhere
  // (the comparison sees single-element changes), and a Q8_0 quantiser that rounds half to
  // even instead of away from zero disagrees with llama.cpp on the tie block.
  const k = LLAMA.find((f) => f.type === "Q8_0")!;
  const kb = Deno.readFileSync(`${FIX}/llama/${k.file}`);
  const x = f32At(kb, 0, k.n);
  const ref = kb.subarray(4 * k.n);
  const evenRounding = quantize(ggmlTypeByName("Q8_0")!, x);
  for (let b = 0; b < k.n / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]));
    const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(x[32 * b + j] * id);
      const r = Math.round(v) - (v % 1 === 0.5 && Math.round(v) % 2 !== 0 ? 1 : 0);
      evenRounding[34 * b + 2 + j] = r & 0xff;
    }
  }
  assert(firstMismatch(evenRounding, ref) >= 0, "round-half-even Q8_0 must differ from llama.cpp");
});

const live = openLlamaGgml("live llama.cpp quantiser comparison");

Deno.test({
  name: "quantize() and dequantize() equal llama.cpp on 64K fresh random values per type",
  ignore: live === null,
  fn() {
    for (const [i, name] of LLAMA_QUANT_TYPES.entries()) {
      const type = ggmlTypeByName(name)!;
      const x = quantTestInput(type.blockSize, 65536 / type.blockSize, 77 + i);
      const ref = live!.quantize(name, x, rowBytes(type, x.length));
      assert.deepStrictEqual(describeMismatch(`${name} quantize`, quantize(type, x), ref), "");
      if (name !== "q8_1") {
        const want = live!.dequantize(name, ref, x.length);
        assert.deepStrictEqual(
          describeMismatch(`${name} dequantize`, dequantize(type, ref, x.length), want),
          "",
        );
      }
    }
    live!.close();
  },
});

/** Round-trip RMSE relative to the RMS of Gaussian data; bounds from the format's bit width. */
const RMSE_BOUNDS: Record<string, number> = {
  // ~1.25 × what llama.cpp's own quantisers give on this data (measured: F16 0.00021,
  // BF16 0.00165, Q8_0 0.0053, Q8_K 0.0069, Q6_K 0.0177, Q5_1 0.0373, Q5_0 0.0423,
  // Q5_K 0.0359, Q4_1 0.078, Q4_0 0.0856, Q4_K 0.0709, Q3_K 0.151, Q2_K 0.297).
  F16: 0.0003,
  BF16: 0.0021,
  Q8_0: 0.0067,
  Q8_1: 0.0067,
  Q8_K: 0.0087,
  Q6_K: 0.022,
  Q5_1: 0.047,
  Q5_0: 0.053,
  Q5_K: 0.045,
  Q4_1: 0.098,
  Q4_0: 0.107,
  Q4_K: 0.089,
  Q3_K: 0.19,
  Q2_K: 0.37,
};

Deno.test("quantize() then dequantize() stays within a per-type error bound", () => {
  const n = 256 * 64;
  let s = 99;
  const u = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const x = Float32Array.from(
    { length: n },
    () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u()) * 0.02,
  );
  const rms = Math.sqrt(x.reduce((a, v) => a + v * v, 0) / n);
  for (const [name, bound] of Object.entries(RMSE_BOUNDS)) {
    const type = ggmlTypeByName(name)!;
    const y = dequantize(type, quantize(type, x), n);
    let se = 0;
    for (let i = 0; i < n; i++) se += (x[i] - y[i]) ** 2;
    const rel = Math.sqrt(se / n) / rms;
    assert(rel < bound, `${name}: relative RMSE ${rel.toFixed(4)} ≥ ${bound}`);
    // Coarser formats must not beat finer ones by accident (a broken bound table would).
    assert(rel > bound / 20, `${name}: relative RMSE ${rel} is implausibly small`);
  }
});

Deno.test("requireSupported() refuses IQ*, TQ*, MXFP4 and integer types naming the tensor and type", () => {
  const refused = GGML_TYPES.filter((t) => !t.supported).map((t) => t.name);
  assert.deepStrictEqual(refused, [
    "IQ2_XXS",
    "IQ2_XS",
    "IQ3_XXS",
    "IQ1_S",
    "IQ4_NL",
    "IQ3_S",
    "IQ2_S",
    "IQ4_XS",
    "I8",
    "I16",
    "I32",
    "I64",
    "F64",
    "IQ1_M",
    "TQ1_0",
    "TQ2_0",
    "MXFP4",
  ]);
  assert.throws(
    () => requireSupported(ggmlType(23)!, "m.gguf", "blk.3.attn_v.weight"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message.split(" (supported")[0] ===
        "m.gguf: tensor 'blk.3.attn_v.weight' has type IQ4_XS (id 23), which is not supported",
  );
  assert.throws(() => dequantize(ggmlType(16)!, new Uint8Array(66), 256), RangeError);
  assert.throws(() => quantize(ggmlTypeByName("Q4_K")!, new Float32Array(32)), RangeError);
  assert.deepStrictEqual(ggmlType(4), undefined); // ids 4 and 5 (Q4_2, Q4_3) were removed from ggml
});

Deno.test("rowBytes() and the type table agree with ggml-common.h block sizes", () => {
  const sizes = Object.fromEntries(GGML_TYPES.map((t) => [t.name, [t.blockSize, t.blockBytes]]));
  assert.deepStrictEqual(sizes.Q2_K, [256, 2 + 2 + 16 + 64]);
  assert.deepStrictEqual(sizes.Q3_K, [256, 2 + 12 + 32 + 64]);
  assert.deepStrictEqual(sizes.Q4_K, [256, 2 + 2 + 12 + 128]);
  assert.deepStrictEqual(sizes.Q5_K, [256, 2 + 2 + 12 + 32 + 128]);
  assert.deepStrictEqual(sizes.Q6_K, [256, 2 + 16 + 64 + 128]);
  assert.deepStrictEqual(sizes.Q8_K, [256, 4 + 256 + 32]);
  assert.deepStrictEqual(rowBytes(ggmlTypeByName("Q8_0")!, 4096), 4352);
  assert.throws(() => rowBytes(ggmlTypeByName("Q6_K")!, 100), RangeError);
});

Deno.test("checkFinite() names the tensor, block and scale field of a NaN/Inf scale", () => {
  const x = quantTestInput(256, 4, 5);
  const cases: [string, number, string][] = [
    ["Q4_0", 0, "d"],
    ["Q4_1", 2, "m"],
    ["Q5_1", 2, "m"],
    ["Q8_0", 0, "d"],
    ["Q8_1", 2, "s"],
    ["Q2_K", 82, "dmin"],
    ["Q3_K", 108, "d"],
    ["Q4_K", 2, "dmin"],
    ["Q5_K", 0, "d"],
    ["Q6_K", 208, "d"],
  ];
  for (const [name, field, label] of cases) {
    const type = ggmlTypeByName(name)!;
    const bytes = quantize(type, x);
    checkFinite(type, bytes, "m.gguf", "w");
    const o = 2 * type.blockBytes + field; // block 2
    bytes[o] = 0x00;
    bytes[o + 1] = 0x7c; // +Inf
    assert.throws(
      () => checkFinite(type, bytes, "m.gguf", "w"),
      (e: unknown) =>
        e instanceof FormatError &&
        e.message === `m.gguf: tensor 'w' block 2 has a non-finite scale ${label} (Infinity)`,
      name,
    );
  }
  const f16 = quantize(ggmlTypeByName("F16")!, new Float32Array([1, 2, NaN]));
  assert.throws(
    () => checkFinite(ggmlTypeByName("F16")!, f16, "m.gguf", "norm"),
    /tensor 'norm' element 2 is non-finite \(NaN\)/,
  );
  const q8k = quantize(ggmlTypeByName("Q8_K")!, x);
  new DataView(q8k.buffer).setFloat32(292, -Infinity, true);
  assert.throws(
    () => checkFinite(ggmlTypeByName("Q8_K")!, q8k, "m.gguf", "a"),
    /block 1 has a non-finite scale d \(-Infinity\)/,
  );
});
