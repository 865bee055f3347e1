/**
 * The embedding row dequantisers (codegen/wasm/embed.ts) against the scalar block decoder
 * of tests/ggml_blocks.ts (checked against gguf.quants.dequantize in linear_test.ts), for
 * every supported type, first / middle / last row; a negative control reads the wrong row.
 */
import assert from "node:assert/strict";
import { dequantizeRef, randomBlocks, rng } from "../../tests/ggml_blocks.ts";
import { WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { embedKernel } from "./embed.ts";
import { buildKernelModule } from "./module.ts";

/** The exported kernels, called with byte offsets and counts. */
type Kernels = Record<string, (...args: number[]) => number>;

function lookup(type: WeightTypeName, D: number, V: number, tokens: number[]) {
  const memory = new WebAssembly.Memory({ initial: 4 });
  const f = embedKernel(type, D);
  const mod = buildKernelModule([f], { minPages: 4 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Kernels;
  const b = randomBlocks(type, V, D, rng(3));
  new Uint8Array(memory.buffer).set(b, 0);
  const ref = dequantizeRef(type, b, V * D);
  return tokens.map((tok) => {
    e[f.name](0, tok, 65536);
    return { got: new Float32Array(memory.buffer, 65536, D).slice(), ref, tok };
  });
}

for (const type of Object.keys(WEIGHT_TYPES) as WeightTypeName[]) {
  Deno.test(`embed_${type.toLowerCase()} dequantises rows equal to the block decoder`, () => {
    const D = WEIGHT_TYPES[type].blockElems === 1 ? 40 : 512;
    for (const { got, ref, tok } of lookup(type, D, 5, [0, 2, 4])) {
      // Same f32 arithmetic up to one rounding of d · sc · q - dmin · m.
      for (let i = 0; i < D; i++) {
        const want = ref[tok * D + i];
        assert.ok(Math.abs(got[i] - want) <= 1e-6 * Math.abs(want), `${type} row ${tok} [${i}]`);
      }
    }
  });
}

Deno.test("embed negative control: another row differs", () => {
  const [{ got, ref }] = lookup("Q4_K", 256, 3, [1]);
  assert.notDeepEqual(got, ref.slice(0, 256));
});
