/**
 * Row-interleaved weights (codegen/wasm/interleave.ts): the byte permutation, and every
 * kernel that reads F32/F16/BF16/Q8_0 matrices (matvec, in-register matmul, panel matmul,
 * embedding lookup) giving on the interleaved bytes the same bits as its row-major form on
 * the stored bytes, for row ranges that start at any group. The row-major kernels are
 * themselves checked against float64 in linear_test.ts and embed_test.ts. Negative control:
 * an interleaved kernel on bytes left row-major differs.
 */
import assert from "node:assert/strict";
import { randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { runLinearKernel } from "../../tests/wasm_linear_run.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../wasm_features.ts";
import { rowBytes, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { embedKernel } from "./embed.ts";
import { interleaveRowsInMemory, interleaveRowsInPlace } from "./interleave.ts";
import {
  emitLinear,
  interleaveRows,
  interleaveUnit,
  linearName,
  type LinearSpec,
  panelSupported,
} from "./linear.ts";
import { buildKernelModule } from "./module.ts";

/** The exported kernels, called with byte offsets and counts. */
type Kernels = Record<string, (...args: number[]) => number>;

Deno.test("interleaveRowsInPlace() puts unit j of the I rows of a group side by side", () => {
  for (const [M, units, unit, I, off] of [[8, 3, 16, 4, 0], [6, 2, 34, 2, 2], [16, 2, 5, 8, 1]]) {
    const rb = units * unit;
    const bytes = Uint8Array.from({ length: off + M * rb }, (_, i) => (i * 7 + 3) & 255);
    const rows = bytes.slice(off);
    interleaveRowsInPlace(bytes, off, M, rb, unit, I);
    for (let r = 0; r < M; r++) {
      for (let j = 0; j < units; j++) {
        const at = off + (r - (r % I)) * rb + j * I * unit + (r % I) * unit;
        assert.deepEqual(
          bytes.subarray(at, at + unit),
          rows.subarray(r * rb + j * unit, (r + 1) * rb - (units - j - 1) * unit),
          `M ${M} unit ${unit} I ${I}: row ${r} unit ${j}`,
        );
      }
    }
  }
  assert.throws(() => interleaveRowsInPlace(new Uint8Array(64), 0, 6, 8, 4, 4), /multiple/);
});

Deno.test("interleaveRows() groups 4 rows of the float types and Q8_0, 2 of Q4_K, Q5_K and Q6_K, where M allows", () => {
  assert.equal(interleaveRows("F32", 768, 768), 4);
  assert.equal(interleaveRows("Q8_0", 768, 2048), 4);
  assert.equal(interleaveRows("BF16", 30, 64), 1); // M not a multiple of 4
  assert.equal(interleaveRows("F16", 8, 36), 1); // a partial 8-column block
  assert.equal(interleaveRows("Q6_K", 256, 256), 2);
  assert.equal(interleaveRows("Q5_K", 256, 256), 2);
  assert.equal(interleaveRows("Q3_K", 256, 256), 1);
  assert.equal(interleaveRows("Q4_K", 6, 256), 2);
  const bad = { type: "F16", M: 6, K: 64, kind: "matvec", interleave: 4 } as const;
  assert.throws(() => emitLinear(bad), /interleave 4 needs a power of two dividing M 6/);
});

const relaxed = relaxedSimdSupported(), fp16 = fp16SimdSupported();
const dotU8 = relaxed && relaxedDotU8();
const TYPES: WeightTypeName[] = ["F32", "F16", "BF16", "Q8_0", "Q4_K", "Q5_K", "Q6_K"];

/**
 * Runs `spec` over `n` tokens on the rows split at `splits`, on bytes interleaved as the
 * spec says (or left row-major with `raw`); returns y (n, M).
 */
const runLinear = (s: LinearSpec, n: number, splits: number[], raw = false) =>
  runLinearKernel(s, n, splits, (u8, at, rb) => {
    if (!raw) interleaveRowsInPlace(u8, at, s.M, rb, interleaveUnit(s.type), s.interleave ?? 1);
  });

for (const type of TYPES) {
  Deno.test(`${type} kernels on interleaved rows give the row-major kernels' bits`, () => {
    // The layout's 4 rows per group, and 2 and 8 (the kernels take any power of two).
    const K = type === "Q8_0" || type.endsWith("_K") ? 256 : 64;
    for (const [M, I] of [[48, interleaveRows(type, 48, K)], [48, 2], [48, 8]]) {
      assert.ok(I > 1, `${type} ${M}x${K}`);
      const cases: [LinearSpec["kind"], number, boolean][] = [
        ["matvec", 1, false],
        ["matmul", 3, false],
        ["matmul", 7, true],
      ];
      for (const [kind, n, panel] of cases) {
        const s: LinearSpec = { type, M, K, kind, relaxed, fp16, dotU8, panel };
        if (panel && !panelSupported(s)) continue;
        const splits = [I, 3 * I, M - I];
        const want = runLinear(s, n, splits);
        const got = runLinear({ ...s, interleave: I }, n, splits);
        const name = linearName({ ...s, interleave: I });
        assert.deepEqual(got, want, name);
        assert.ok(name.includes(`_i${I}`), name);
      }
    }
  });
}

Deno.test("embedding lookups of interleaved tables give the row-major rows", () => {
  for (const type of TYPES) {
    const D = 256, V = 24, I = interleaveRows(type, V, D);
    const memory = new WebAssembly.Memory({ initial: 4 });
    const plain = embedKernel(type, D), inter = embedKernel(type, D, 0, I, interleaveUnit(type));
    const mod = buildKernelModule([plain, inter], { minPages: 4 });
    const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
      .exports as unknown as Kernels;
    const b = randomBlocks(type, V, D, rng(5));
    const u8 = new Uint8Array(memory.buffer), T = 65536, Y = 2 * 65536;
    u8.set(b, 0);
    u8.set(b, T);
    interleaveRowsInPlace(u8, T, V, rowBytes(WEIGHT_TYPES[type], D), interleaveUnit(type), I);
    for (const tok of [0, 1, I + 1, V - 1]) {
      e[plain.name](0, tok, Y);
      const want = new Float32Array(memory.buffer, Y, D).slice();
      e[inter.name](T, tok, Y);
      assert.deepEqual(new Float32Array(memory.buffer, Y, D).slice(), want, `${inter.name} ${tok}`);
    }
  }
});

Deno.test("interleave negative control: an interleaved kernel on row-major bytes differs", () => {
  const s: LinearSpec = { type: "F16", M: 16, K: 64, kind: "matvec", relaxed, fp16, dotU8 };
  const want = runLinear(s, 1, []);
  assert.notDeepEqual(runLinear({ ...s, interleave: 4 }, 1, [], true), want);
  assert.deepEqual(runLinear({ ...s, interleave: 4 }, 1, []), want);
});

Deno.test("interleaveRowsInMemory() writes interleaveRowsInPlace()'s bytes", () => {
  for (
    const [M, rb, unit, I] of [[16, 1536, 16, 4], [8, 816, 34, 4], [16, 96, 32, 8], [6, 102, 34, 2]]
  ) {
    for (const shared of [false, true]) {
      const memory = new WebAssembly.Memory({ initial: 2, maximum: 2, shared });
      const u8 = new Uint8Array(memory.buffer);
      const r = rng(M + rb);
      for (let i = 0; i < u8.length; i++) u8[i] = Math.floor(256 * r());
      const want = u8.slice();
      interleaveRowsInPlace(want, 30, M, rb, unit, I);
      interleaveRowsInMemory(memory, 30, M, rb, unit, I);
      assert.deepEqual(u8.slice(), want, `M ${M} rb ${rb} unit ${unit} I ${I} shared ${shared}`);
    }
  }
});

Deno.test("interleaveRowsInMemory() refuses rows that do not fit or split, naming them", () => {
  const memory = new WebAssembly.Memory({ initial: 1 });
  assert.throws(
    () => interleaveRowsInMemory(memory, 0, 6, 64, 16, 4),
    /M 6 must be a multiple of I 4/,
  );
  assert.throws(
    () => interleaveRowsInMemory(memory, 65100, 8, 64, 16, 4),
    /rows 65100 .. 65612 outside 65536 bytes/,
  );
});
