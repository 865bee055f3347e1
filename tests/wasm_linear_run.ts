/**
 * Runs one generated matrix-product kernel (codegen/wasm/linear.ts) on random ggml blocks,
 * for the tests that compare a kernel on rearranged weights (interleaved rows, packed Q6_K,
 * repacked Q4_K pairs) with the kernel on the stored bytes; and the checks the repacked
 * layouts' tests share.
 *
 * @module
 */
import assert from "node:assert/strict";
import { rowBytes, WEIGHT_TYPES, type WeightTypeName } from "../codegen/wasm/blocks.ts";
import { embedKernel } from "../codegen/wasm/embed.ts";
import { emitLinear, linearName, type LinearSpec, panelSupported } from "../codegen/wasm/linear.ts";
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

/**
 * Asserts that the repacked (`packed`) form of a spec's kernels gives on repacked weights the
 * outputs of the kernels of the layout it is repacked from, for a matvec, an in-register
 * matmul of 3 tokens and (where the spec has one) a panel matmul of 9, the rows split into
 * calls at `splits`; and, as the negative control, that the repacked kernels on weights left
 * unpacked differ. The same bits, except with `lanes`: a layout in the lane order
 * (`codegen/wasm/lanes.ts`) sums each super-block's integer products (exact, the same) in
 * other f32 lanes, so its matvec and in-register matmul agree to rounding: within 1e-5 of
 * the largest |output| (a misplaced quant moves an output by ~1e-2 of it). Its panel, which
 * puts every quant back in its column, still gives the same bits.
 *
 * @param base The spec without `kind` and `packed` (type, M, K, features, interleave).
 * @param splits Row boundaries between calls.
 * @param prepare Lays out the weights as the kernels read them (`pack`: repacked).
 * @param lanes Whether the repacked layout is in the lane order.
 */
export function assertPackedKernels(
  base: Omit<LinearSpec, "kind" | "packed">,
  splits: number[],
  prepare: (u8: Uint8Array, at: number, rowBytes: number, pack: boolean) => void,
  lanes = false,
): void {
  const cases: [LinearSpec["kind"], number, boolean][] = [
    ["matvec", 1, false],
    ["matmul", 3, false],
    ["matmul", 9, true],
  ];
  for (const [kind, n, panel] of cases) {
    const s: LinearSpec = { ...base, kind, panel };
    if (panel && !panelSupported(s)) continue;
    const run = (spec: LinearSpec, pack: boolean) =>
      runLinearKernel(spec, n, splits, (u8, at, rb) => prepare(u8, at, rb, pack));
    const want = run(s, false);
    const name = linearName({ ...s, packed: true });
    const got = run({ ...s, packed: true }, true);
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const worst = (y: Float32Array) =>
      y.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0) / scale;
    if (lanes && !panel) assert.ok(worst(got) <= 1e-5, `${name}: ${worst(got)} of max |y|`);
    else assert.deepEqual(got, want, name);
    assert.ok(/_p(_|$)/.test(name), name);
    assert.ok(want.every(Number.isFinite) && scale > 0, name);
    const unpacked = run({ ...s, packed: true }, false);
    // (NaN counts as differing: the scales of unpacked weights may be read as Inf.)
    assert.ok(!(worst(unpacked) <= 1e-2), `${name} on unpacked weights: ${worst(unpacked)}`);
  }
}

/**
 * Asserts that a repacked table's embedding lookup (`embed.ts`, `packed`) gives the rows of
 * the lookup of the layout it is repacked from, for the given tokens; and, as the negative
 * control, that on the table left unpacked it differs.
 *
 * @param type The table's type.
 * @param D Row length.
 * @param V Rows.
 * @param interleave Rows per interleaved group.
 * @param tokens The rows to look up.
 * @param prepare Lays out the table at `at` as the lookups read it (`pack`: repacked).
 * @returns The packed lookup's name.
 */
export function assertPackedLookup(
  type: WeightTypeName,
  D: number,
  V: number,
  interleave: number,
  tokens: number[],
  prepare: (u8: Uint8Array, at: number, pack: boolean) => void,
): string {
  const unit = interleave > 1 ? WEIGHT_TYPES[type].blockBytes : 0;
  const memory = new WebAssembly.Memory({ initial: 4 });
  const plain = embedKernel(type, D, 0, interleave, unit);
  const packed = embedKernel(type, D, 0, interleave, unit, true);
  const mod = buildKernelModule([plain, packed], { minPages: 4 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as unknown as Record<string, (...args: number[]) => number>;
  const u8 = new Uint8Array(memory.buffer), T = 65536, Y = 2 * 65536;
  const b = randomBlocks(type, V, D, rng(V * 31 + D));
  u8.set(b, 0);
  u8.set(b, T);
  prepare(u8, 0, false);
  prepare(u8, T, true);
  const f32 = new Float32Array(memory.buffer);
  for (const tok of tokens) {
    e[plain.name](0, tok, Y);
    const want = f32.slice(Y / 4, Y / 4 + D);
    e[packed.name](T, tok, Y);
    assert.deepEqual(f32.slice(Y / 4, Y / 4 + D), want, `token ${tok}`);
    e[packed.name](0, tok, Y);
    assert.notDeepEqual(f32.slice(Y / 4, Y / 4 + D), want, `token ${tok} (unpacked table)`);
  }
  return packed.name;
}
