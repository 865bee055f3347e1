import assert from "node:assert/strict";
import { FormatError } from "../../core/errors.ts";
import { dequantize, GGML_TYPES, ggmlTypeByName, quantize } from "../quant.ts";
import {
  bitsPerWeight,
  checkQuantTensor,
  dequantizeRows,
  dequantizeTensor,
  quantizeTensor,
} from "./tensor.ts";

const x = Float32Array.from({ length: 5 * 512 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));

Deno.test("dequantizeRows() of any row range equals that slice of the whole tensor", () => {
  for (const name of ["F16", "BF16", "Q4_0", "Q5_1", "Q8_0", "Q2_K", "Q4_K", "Q6_K"]) {
    const q = quantizeTensor({ shape: [5, 512], data: x }, ggmlTypeByName(name)!);
    const all = dequantizeTensor(q).data;
    for (const [r0, r1] of [[0, 1], [2, 3], [4, 5], [1, 4], [3, 3]]) {
      assert.deepStrictEqual(dequantizeRows(q, r0, r1), all.slice(r0 * 512, r1 * 512), name);
    }
  }
  const q = quantizeTensor({ shape: [5, 512], data: x }, ggmlTypeByName("Q8_0")!);
  assert.throws(() => dequantizeRows(q, 4, 6), /rows \[4, 6\) are outside \[0, 5\)/);
});

Deno.test("quantizeTensor() keeps ggml's row layout: rows of whole blocks, as the GGUF data", () => {
  const type = ggmlTypeByName("Q4_K")!;
  const q = quantizeTensor({ shape: [5, 512], data: x }, type);
  assert.equal(q.bytes.length, 5 * 2 * 144);
  // Row 3 alone quantises to the same bytes: no block straddles rows.
  assert.deepStrictEqual(
    q.bytes.subarray(3 * 288, 4 * 288),
    quantize(type, x.subarray(1536, 2048)),
  );
  assert.deepStrictEqual(dequantizeTensor(q).data, dequantize(type, q.bytes, x.length));
  assert.throws(() =>
    quantizeTensor({ shape: [10, 256 + 32], data: new Float32Array(2880) }, type)
  );
});

Deno.test("checkQuantTensor() names the file and tensor for truncated data or a bad row length", () => {
  const type = ggmlTypeByName("Q6_K")!;
  const ok = { shape: [2, 256], type, bytes: new Uint8Array(420) };
  checkQuantTensor(ok, "m.gguf", "output.weight");
  assert.throws(
    () => checkQuantTensor({ ...ok, bytes: new Uint8Array(419) }, "m.gguf", "output.weight"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message === "m.gguf: tensor 'output.weight' (Q6_K [2,256]) holds 419 bytes, expected 420",
  );
  assert.throws(
    () => checkQuantTensor({ ...ok, shape: [2, 200] }, "m.gguf", "t"),
    /tensor 't': row length 200 is not a multiple of the Q6_K block size 256/,
  );
});

Deno.test("bitsPerWeight() follows the block sizes", () => {
  const bpw = Object.fromEntries(
    GGML_TYPES.filter((t) => t.supported).map((t) => [t.name, bitsPerWeight(t)]),
  );
  assert.deepStrictEqual(bpw, {
    F32: 32,
    F16: 16,
    Q4_0: 4.5,
    Q4_1: 5,
    Q5_0: 5.5,
    Q5_1: 6,
    Q8_0: 8.5,
    Q8_1: 9,
    Q2_K: 2.625,
    Q3_K: 3.4375,
    Q4_K: 4.5,
    Q5_K: 5.5,
    Q6_K: 6.5625,
    Q8_K: 9.125,
    BF16: 16,
  });
});

Deno.test("QuantizePool gives the bytes of quantize() for any thread count", async () => {
  const { QuantizePool } = await import("./pool.ts");
  const big = Float32Array.from(
    { length: (1 << 18) * 2 + 512 },
    (_, i) => Math.cos(i * 0.01) * (i % 13),
  );
  for (const name of ["Q4_K", "Q8_0", "Q6_K"]) {
    const t = ggmlTypeByName(name)!;
    const want = quantize(t, big);
    for (const threads of [1, 2, 3]) {
      const pool = new QuantizePool(threads);
      try {
        assert.deepStrictEqual(await pool.quantize(t, big), want, `${name} threads=${threads}`);
      } finally {
        pool.close();
      }
    }
  }
});
