/**
 * Row-interleaved weights: the byte layout the matrix products read F32, F16, BF16, Q8_0 and
 * Q4_K weights in (llama.cpp's "repack" of `ggml-cpu/repack.cpp`, e.g. `block_q8_0x4`;
 * ik_llama.cpp's `Q8_0_R8`). Each group of I consecutive rows (`linear.ts` `interleaveRows`: 4,
 * Q4_K 2) is stored unit by unit: unit j of rows r .. r + I − 1, then unit j + 1 of the same
 * rows, ... A unit is what a kernel's block reads of one row at a time: 8 elements of the float
 * types (16 bytes of F16/BF16, 32 of F32), one 34-byte block of Q8_0, one 144-byte super-block
 * of Q4_K. The group takes the same I · rowBytes bytes as before,
 * so the weights are rearranged in place at load (`compile_wasm.ts`):
 *
 * ```
 * as stored (rows r .. r + 3, units u0 u1 ...)      interleaved, I = 4
 * r+0: u0 u1 u2 ...                                 r+0 u0, r+1 u0, r+2 u0, r+3 u0,
 * r+1: u0 u1 u2 ...                      →          r+0 u1, r+1 u1, r+2 u1, r+3 u1, ...
 * r+2: ...
 * ```
 *
 * Why: a matvec's register block reads its R rows' units side by side. Stored row by row,
 * those are R streams rowBytes apart, which the hardware prefetcher follows poorly, so the
 * kernels touched the lines ahead in bursts (a touch is a load that retires only when its
 * line arrives: the bursts stall). Interleaved with I = R they are ONE sequential stream,
 * which the prefetcher keeps ahead of without touches. Same-process A/B on one pinned core,
 * g110M shapes streamed from DRAM, GB/s of weights: F16 2048x768 ~24.7 → ~35.1, F32
 * 2048x768 ~26.9 → ~38.8, BF16 2048x768 ~19.5 → ~32.2, Q8_0 32768x768 ~22.3 → ~28.9.
 *
 * The arithmetic does not change, only addresses: every kernel gives the same bits on the
 * interleaved bytes as the row-major kernel on the stored ones.
 *
 * Two implementations of the one permutation: {@linkcode interleaveRowsInPlace} in JS (the
 * reference) and {@linkcode interleaveRowsInMemory}, a small generated WASM function that
 * copies each group out with v128 loads and back unit by unit, which a load uses: one core,
 * ~4.5 GB/s on its first calls and ~11 once V8 has optimised it, where the JS loop moves ~2.7
 * GB/s of 16-byte units and ~1.2 of Q8_0's 34-byte blocks (~0.9 s per GB).
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { assembleModule } from "../wasm_assemble.ts";

/** Throws a RangeError unless the rows split into groups of I and fit in `size` bytes. */
function checkRows(
  fn: string,
  size: number,
  offset: number,
  M: number,
  rowBytes: number,
  unit: number,
  I: number,
): void {
  if (M % I !== 0 || rowBytes % unit !== 0) {
    throw new RangeError(
      `${fn}: M ${M} must be a multiple of I ${I} and rowBytes ${rowBytes} of unit ${unit}`,
    );
  }
  if (offset < 0 || offset + M * rowBytes > size) {
    throw new RangeError(`${fn}: rows ${offset} .. ${offset + M * rowBytes} outside ${size} bytes`);
  }
}

/**
 * Rearranges the M rows at `offset` into groups of I interleaved rows (see the module doc),
 * in place.
 *
 * @param bytes The memory (a Uint8Array over it).
 * @param offset Byte offset of row 0.
 * @param M Rows (a multiple of I).
 * @param rowBytes Bytes per row (a multiple of `unit`).
 * @param unit Bytes of one unit (the kernels' block of one row).
 * @param I Rows per group (1: nothing to do).
 * @throws {RangeError} when M is not a multiple of I, rowBytes not a multiple of unit, or
 *   the rows do not fit `bytes`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interleaveRowsInPlace } from "./interleave.ts";
 * // 2 rows of 2 units of 2 bytes: [a0 a1 | b0 b1] → [a0 b0 | a1 b1]
 * const m = new Uint8Array([1, 1, 2, 2, 3, 3, 4, 4]);
 * interleaveRowsInPlace(m, 0, 2, 4, 2, 2);
 * assert.deepEqual([...m], [1, 1, 3, 3, 2, 2, 4, 4]);
 * ```
 */
export function interleaveRowsInPlace(
  bytes: Uint8Array,
  offset: number,
  M: number,
  rowBytes: number,
  unit: number,
  I: number,
): void {
  if (I === 1) return;
  checkRows("interleaveRowsInPlace", bytes.length, offset, M, rowBytes, unit, I);
  // Copy in the widest word that divides every offset: 4 bytes (F32/F16/BF16), 2 (Q8_0's 34).
  const at = bytes.byteOffset + offset;
  const w = [4, 2, 1].find((w) => at % w === 0 && rowBytes % w === 0 && unit % w === 0)!;
  const buf = bytes.buffer as ArrayBuffer, n = (M * rowBytes) / w;
  const words = w === 4 // (M, rowBytes / w)
    ? new Uint32Array(buf, at, n)
    : w === 2
    ? new Uint16Array(buf, at, n)
    : new Uint8Array(buf, at, n);
  const rw = rowBytes / w, uw = unit / w, units = rowBytes / unit;
  const group = words.slice(0, I * rw); // (I, rw): one group as stored
  for (let g = 0; g < M; g += I) {
    const base = g * rw;
    group.set(words.subarray(base, base + I * rw));
    let o = base;
    for (let j = 0; j < units; j++) {
      for (let a = 0; a < I; a++) {
        const from = a * rw + j * uw;
        for (let k = 0; k < uw; k++) words[o++] = group[from + k];
      }
    }
  }
}

/**
 * The interleaving function for one unit size and group: `interleave(off, M, rb)` over
 * memory 0 (the weights), with memory 1 holding one group as stored (I · rb bytes).
 */
function interleaveFunc(unit: number, I: number): WasmFunc {
  const f = new WasmFunc("interleave", [["off", "i32"], ["M", "i32"], ["rb", "i32"]]);
  for (const l of ["g", "base", "i", "n", "o", "s"]) f.local(l, "i32");
  for (let a = 1; a < I; a++) f.local(`r${a}`, "i32");
  f.comment(`rows in groups of ${I}, units of ${unit} bytes; memory 1: one group as stored`);
  for (let a = 1; a < I; a++) f.get("rb").i32(a).op("i32.mul").set(`r${a}`);
  f.get("rb").i32(I).op("i32.mul").set("n");
  f.block("done").loop("groups");
  f.get("g").get("M").op("i32.ge_u").brIf("done");
  f.get("off").get("g").get("rb").op("i32.mul").op("i32.add").set("base");
  f.comment("the group → memory 1, 16 bytes at a time, then the last bytes one by one");
  f.i32(0).set("i");
  f.block("copied").loop("copy");
  f.get("i").i32(16).op("i32.add").get("n").op("i32.gt_u").brIf("copied");
  f.get("i").get("base").get("i").op("i32.add").mem("v128.load", 0, { align: 0 });
  f.mem("v128.store", 0, { memory: 1, align: 0 });
  f.get("i").i32(16).op("i32.add").set("i").br("copy").end().end();
  f.block("tail_done").loop("tail");
  f.get("i").get("n").op("i32.ge_u").brIf("tail_done");
  f.get("i").get("base").get("i").op("i32.add").mem("i32.load8_u", 0);
  f.mem("i32.store8", 0, { memory: 1 });
  f.get("i").i32(1).op("i32.add").set("i").br("tail").end().end();
  f.comment("unit s / unit of every row of the group, in row order, back over the group");
  f.get("base").set("o").i32(0).set("s");
  f.loop("units");
  for (let a = 0; a < I; a++) {
    const src = () => (a === 0 ? f.get("s") : f.get("s").get(`r${a}`).op("i32.add"));
    let k = 0;
    for (const [w, load, store] of UNIT_MOVES) {
      for (; k + w <= unit; k += w) {
        f.get("o");
        src();
        f.mem(load, k, { memory: 1, align: 0 }).mem(store, a * unit + k, { align: 0 });
      }
    }
  }
  f.get("o").i32(I * unit).op("i32.add").set("o");
  f.get("s").i32(unit).op("i32.add").tee("s").get("rb").op("i32.lt_u").brIf("units").end();
  f.get("g").i32(I).op("i32.add").set("g").br("groups").end().end();
  return f;
}

/** Moves of a unit, widest first: [bytes, load, store]. */
const UNIT_MOVES: [number, string, string][] = [
  [16, "v128.load", "v128.store"],
  [8, "i64.load", "i64.store"],
  [4, "i32.load", "i32.store"],
  [2, "i32.load16_u", "i32.store16"],
  [1, "i32.load8_u", "i32.store8"],
];

const modules = new Map<string, WebAssembly.Module>();

/**
 * {@linkcode interleaveRowsInPlace} on a WebAssembly memory by a generated WASM function
 * (one module per unit size and I, cached): the same bytes, faster (see the module doc); where
 * the runtime cannot compile or link it (no multi-memory), the JS loop.
 *
 * @param memory The memory the rows are in (shared or not, 32-bit addresses).
 * @param offset Byte offset of row 0.
 * @param M Rows (a multiple of I).
 * @param rowBytes Bytes per row (a multiple of `unit`).
 * @param unit Bytes of one unit.
 * @param I Rows per group (1: nothing to do).
 * @throws {RangeError} when M is not a multiple of I, rowBytes not a multiple of unit, or
 *   the rows do not fit the memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interleaveRowsInMemory } from "./interleave.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * new Uint8Array(memory.buffer).set([1, 1, 2, 2, 3, 3, 4, 4]);
 * interleaveRowsInMemory(memory, 0, 2, 4, 2, 2);
 * assert.deepEqual([...new Uint8Array(memory.buffer, 0, 8)], [1, 1, 3, 3, 2, 2, 4, 4]);
 * ```
 */
export function interleaveRowsInMemory(
  memory: WebAssembly.Memory,
  offset: number,
  M: number,
  rowBytes: number,
  unit: number,
  I: number,
): void {
  if (I === 1) return;
  checkRows("interleaveRowsInMemory", memory.buffer.byteLength, offset, M, rowBytes, unit, I);
  // The buffer's tag, not `instanceof SharedArrayBuffer`: a page that is not cross-origin
  // isolated has shared WebAssembly memories but no SharedArrayBuffer global.
  const shared = Object.prototype.toString.call(memory.buffer) === "[object SharedArrayBuffer]";
  type Run = (off: number, M: number, rb: number) => void;
  let run: Run | null = null;
  try {
    const key = `${unit}/${I}/${shared}`;
    let module = modules.get(key);
    if (module === undefined) {
      const code = assembleModule([interleaveFunc(unit, I)], [
        shared ? { minPages: 1, maxPages: 65536, shared: true } : { minPages: 1 },
        { minPages: 1 },
      ]);
      module = new WebAssembly.Module(code);
      modules.set(key, module);
    }
    const tmp = new WebAssembly.Memory({ initial: Math.ceil((I * rowBytes + 16) / 65536) });
    const env = { memory, memory1: tmp };
    run = new WebAssembly.Instance(module, { env }).exports.interleave as Run;
  } catch {
    run = null; // a runtime without multi-memory: the JS loop, same bytes
  }
  if (run) run(offset, M, rowBytes);
  else interleaveRowsInPlace(new Uint8Array(memory.buffer), offset, M, rowBytes, unit, I);
}
