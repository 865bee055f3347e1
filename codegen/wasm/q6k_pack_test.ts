/**
 * Packed Q6_K (codegen/wasm/q6k_pack.ts): the packing keeps every quant (read back both
 * ways), and the kernels that read Q6_K matrices (matvec, in-register matmul, panel matmul)
 * give on packed bytes the same bits as on ggml's layout, themselves checked against float64
 * in linear_test.ts. Negative control: a packed kernel on bytes left as stored differs.
 */
import assert from "node:assert/strict";
import { randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { runLinearKernel } from "../../tests/wasm_linear_run.ts";
import { dequantizeRowQ6_K } from "../../formats/quant/kquants.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../wasm_features.ts";
import { embedKernel } from "./embed.ts";
import { emitLinear, linearName, type LinearSpec, panelSupported } from "./linear.ts";
import { buildKernelModule } from "./module.ts";
import { packQ6KInPlace, Q6K_BLOCK_BYTES, q6kQuants } from "./q6k_pack.ts";

/** The exported kernels, called with byte offsets and counts. */
type Kernels = Record<string, (...args: number[]) => number>;

Deno.test("packQ6KInPlace() keeps every quant, scale and d of each super-block", () => {
  const blocks = 12;
  const raw = randomBlocks("Q6_K", 3, 1024, rng(3)); // 3 rows of 4 super-blocks
  assert.equal(raw.length, blocks * Q6K_BLOCK_BYTES);
  const packed = raw.slice();
  packQ6KInPlace(packed, 0, blocks);
  for (let b = 0; b < blocks; b++) {
    const at = b * Q6K_BLOCK_BYTES;
    assert.deepEqual(q6kQuants(packed, at, true), q6kQuants(raw, at, false), `block ${b}`);
    assert.deepEqual(packed.subarray(at + 192, at + 210), raw.subarray(at + 192, at + 210));
  }
  assert.notDeepEqual(packed, raw);
  // The stored layout's reading against the project's ggml dequantiser (formats/quant/,
  // checked against gguf-py): with d = 1 and every scale 1, element e is q(e) - 32.
  const unit = raw.slice(0, Q6K_BLOCK_BYTES);
  unit.fill(1, 192, 208);
  unit.set([0x00, 0x3c], 208); // f16 1.0
  const y = new Float32Array(256);
  dequantizeRowQ6_K(unit, y);
  assert.deepEqual([...q6kQuants(unit, 0, false)], [...y].map((v) => v + 32));
  // ggml's element order (dequantize_row_q6_K): element 32 + 5 is ql[37]'s low nibble with
  // qh[5] bits 2..3; element 64 + 5 is ql[5]'s high nibble with qh[5] bits 4..5.
  const b = new Uint8Array(Q6K_BLOCK_BYTES);
  b[37] = 0x0a;
  b[5] = 0x70;
  b[128 + 5] = 0b00_10_01_00;
  const q = q6kQuants(b, 0, false);
  assert.equal(q[37], 0x0a | 1 << 4);
  assert.equal(q[69], 0x07 | 2 << 4);
  assert.throws(() => packQ6KInPlace(new Uint8Array(400), 0, 2), /2 blocks of 210 bytes/);
});

const relaxed = relaxedSimdSupported(), fp16 = fp16SimdSupported();
const dotU8 = relaxed && relaxedDotU8();

/** Runs `s` over `n` tokens on random Q6_K rows split at `splits`; packs them when `pack`. */
const runLinear = (s: LinearSpec, n: number, splits: number[], pack: boolean) =>
  runLinearKernel(s, n, splits, (u8, at) => {
    if (pack) packQ6KInPlace(u8, at, (s.M * s.K) / 256);
  });

Deno.test("Q6_K kernels on packed super-blocks give the stored layout's bits", () => {
  const M = 24, K = 512;
  const cases: [LinearSpec["kind"], number, boolean][] = [
    ["matvec", 1, false],
    ["matmul", 3, false],
    ["matmul", 9, true],
  ];
  for (const [kind, n, panel] of cases) {
    const s: LinearSpec = { type: "Q6_K", M, K, kind, relaxed, fp16, dotU8, panel };
    if (panel && !panelSupported(s)) continue;
    const want = runLinear(s, n, [5, 16], false);
    const got = runLinear({ ...s, packed: true }, n, [5, 16], true);
    const name = linearName({ ...s, packed: true });
    assert.deepEqual(got, want, name);
    assert.ok(name.includes("_p"), name);
    assert.ok(want.every(Number.isFinite), name);
    // Negative control: the packed kernel on the bytes as ggml stores them.
    assert.notDeepEqual(runLinear({ ...s, packed: true }, n, [5, 16], false), want, name);
  }
  assert.throws(
    () => emitLinear({ type: "Q4_K", M: 8, K: 256, kind: "matvec", packed: true }),
    /packed Q4_K with interleave 1/,
  );
});

Deno.test("the Q6_K embedding lookup of a packed table gives the stored table's rows", () => {
  const D = 512, V = 6;
  const memory = new WebAssembly.Memory({ initial: 4 });
  const plain = embedKernel("Q6_K", D), packed = embedKernel("Q6_K", D, 0, 1, 0, true);
  assert.equal(packed.name, "embed_q6_k_512_p");
  const mod = buildKernelModule([plain, packed], { minPages: 4 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Kernels;
  const b = randomBlocks("Q6_K", V, D, rng(8));
  const u8 = new Uint8Array(memory.buffer), T = 65536, Y = 2 * 65536;
  u8.set(b, 0);
  u8.set(b, T);
  packQ6KInPlace(u8, T, (V * D) / 256);
  const f32 = new Float32Array(memory.buffer);
  for (const tok of [0, 3, V - 1]) {
    e[plain.name](0, tok, Y);
    const want = f32.slice(Y / 4, Y / 4 + D);
    e[packed.name](T, tok, Y);
    assert.deepEqual(f32.slice(Y / 4, Y / 4 + D), want, `token ${tok}`);
    e[packed.name](0, tok, Y); // negative control: the packed lookup on the stored bytes
    assert.notDeepEqual(f32.slice(Y / 4, Y / 4 + D), want, `token ${tok} (stored bytes)`);
  }
  assert.throws(() => embedKernel("Q4_K", 256, 0, 1, 0, true), /packed Q4_K with interleave 1/);
});
