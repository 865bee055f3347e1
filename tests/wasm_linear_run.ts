/**
 * Runs one generated matrix-product kernel (codegen/wasm/linear.ts) on random ggml blocks,
 * for the tests that compare a kernel on rearranged weights (interleaved rows, packed Q6_K)
 * with the kernel on the stored bytes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { rowBytes, WEIGHT_TYPES } from "../codegen/wasm/blocks.ts";
import { emitLinear, type LinearSpec } from "../codegen/wasm/linear.ts";
import { panelScratchBytes } from "../codegen/wasm/linear_panel.ts";
import { buildKernelModule } from "../codegen/wasm/module.ts";
import { quantizeKernel } from "../codegen/wasm/quantize.ts";
import { randomBlocks, rng } from "./ggml_blocks.ts";

/**
 * `y (n, M) = x (n, K) · Wᵀ` by the kernel of `s`, its rows split into calls at `splits`. W is
 * `randomBlocks(s.type, M, K)` (seeded by M and K, so every call sees the same W), placed in
 * the memory and then handed to `prepare` (which may rearrange it in place); x is random in
 * [-1, 1), quantised first when the type reads quantised activations.
 *
 * @param s The kernel's spec.
 * @param n Tokens (1 for a matvec).
 * @param splits Row boundaries between calls (inside 0 .. M).
 * @param prepare Gets the memory's bytes, W's byte offset and its bytes per row.
 * @returns `(n, M)` outputs.
 */
export function runLinearKernel(
  s: LinearSpec,
  n: number,
  splits: number[],
  prepare: (u8: Uint8Array, at: number, rowBytes: number) => void = () => {},
): Float32Array {
  const t = WEIGHT_TYPES[s.type], { M, K } = s;
  const f = emitLinear(s);
  const funcs = [f];
  if (t.act !== "f32") funcs.push(quantizeKernel(t.act, K));
  const memory = new WebAssembly.Memory({ initial: 96 });
  const mod = buildKernelModule(funcs, { minPages: 96 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Record<string, (...args: number[]) => number>;
  const r = rng(M * 31 + K);
  const WO = 64, XO = 2 << 20, QO = 3 << 20, YO = 4 << 20, PO = 5 << 20;
  const u8 = new Uint8Array(memory.buffer), f32 = new Float32Array(memory.buffer);
  u8.set(randomBlocks(s.type, M, K, r), WO);
  prepare(u8, WO, rowBytes(t, K));
  for (let i = 0; i < n * K; i++) f32[XO / 4 + i] = 2 * r() - 1;
  let x = XO;
  if (t.act !== "f32") {
    e[`quantize_${t.act}_${K}`](XO, QO, n);
    x = QO;
  }
  const bounds = [0, ...splits, M];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const args = [WO, x, YO, bounds[i], bounds[i + 1]];
    if (s.kind === "matmul") args.push(n);
    if (s.panel) args.push(PO);
    e[f.name](...args);
  }
  assert.ok(PO + panelScratchBytes(K) <= memory.buffer.byteLength);
  return f32.slice(YO / 4, YO / 4 + n * M);
}
