/**
 * The lane order (codegen/wasm/lanes.ts): a permutation of a super-block's 256 elements whose
 * 4-byte lanes each stay in one sub-block (32 elements for Q4_K, 16 for Q6_K), and the copy
 * the q8_K quantiser writes in it. The kernels that read it are checked against the ggml
 * order's kernels in q4k_pairs_test.ts and q6k_pack_test.ts.
 */
import assert from "node:assert/strict";
import { rng } from "../../tests/ggml_blocks.ts";
import { buildKernelModule } from "./module.ts";
import { actLayout } from "./blocks.ts";
import { quantizeKernel } from "./quantize.ts";
import { laneElement, lanePosition } from "./lanes.ts";

Deno.test("laneElement() is a permutation whose lanes stay in one sub-block", () => {
  const seen = new Set<number>();
  for (let v = 0; v < 16; v++) {
    for (let j = 0; j < 16; j++) {
      const e = laneElement(v, j);
      seen.add(e);
      assert.deepEqual(lanePosition(e), [v, j]);
      // Lane l = j >> 2: Q4_K sub-block 4 (v >> 3) + l;
      // Q6_K sub-block 8 (v >> 3) + 2l + (v >> 2 & 1).
      assert.equal(e >> 5, 4 * (v >> 3) + (j >> 2), `v ${v} j ${j}`);
      assert.equal(e >> 4, 8 * (v >> 3) + 2 * (j >> 2) + (v >> 2 & 1), `v ${v} j ${j}`);
    }
  }
  assert.equal(seen.size, 256);
});

Deno.test("quantizeKernel() writes q8_K quants a second time in the lane order", () => {
  const K = 512, n = 3, L = actLayout("q8_K", K);
  assert.equal(L.laneOffset, K + 2 * 64);
  assert.equal(L.stride, 2 * K + 2 * 64);
  assert.equal(actLayout("q8_0", 64).laneOffset, null);
  const memory = new WebAssembly.Memory({ initial: 2 });
  const mod = buildKernelModule([quantizeKernel("q8_K", K)], { minPages: 2 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Record<string, (...args: number[]) => void>;
  const r = rng(7), X = 0, Q = 65536;
  const x = new Float32Array(memory.buffer, X, n * K);
  for (let i = 0; i < x.length; i++) x[i] = 2 * r() - 1;
  e[`quantize_q8_K_${K}`](X, Q, n);
  const q = new Int8Array(memory.buffer, Q, n * L.stride);
  let moved = 0;
  for (let t = 0; t < n; t++) {
    for (let b = 0; b < K / 256; b++) {
      for (let v = 0; v < 16; v++) {
        for (let j = 0; j < 16; j++) {
          const copy: number = q[t * L.stride + L.laneOffset! + 256 * b + 16 * v + j];
          const el = laneElement(v, j);
          assert.equal(copy, q[t * L.stride + 256 * b + el], `token ${t} block ${b} element ${el}`);
          // Negative control: the copy is not the quants in element order.
          if (copy !== q[t * L.stride + 256 * b + 16 * v + j]) moved++;
        }
      }
    }
  }
  assert.ok(moved > (n * K) / 2, `${moved} of ${n * K} quants moved`);
});
