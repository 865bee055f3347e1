/**
 * A scan for non-finite numbers in stored tensors, in WASM so that loading a file does not
 * wait for the JavaScript JIT: `first_match(p, end, step, mask) -> i32` walks the 16-bit
 * words at `p, p + step, ...` below `end` and returns the address of the first one whose
 * `mask` bits are all set, else `end`. With mask 0x7c00 that is an f16 NaN or ±Inf (a
 * block scale, or an F16 value); with 0x7f80 a BF16 one, or the high half of an F32.
 * The loader then calls formats/quant.ts `checkFinite` on that tensor for the message.
 * Contiguous words (`step` 2: F16, BF16 tensors) are tested 8 at a time with SIMD
 * (`i16x8.eq` of the masked lanes, `v128.any_true`); a hit, and the last < 8 words, go
 * through the one-word loop, which finds the exact address.
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { assembleModule, type MemoryImport } from "../wasm_assemble.ts";

/**
 * The scan function (see the module doc).
 *
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { firstMatchKernel } from "./scan.ts";
 * assert.ok(firstMatchKernel().text().includes("i32.load16_u"));
 * ```
 */
export function firstMatchKernel(): WasmFunc {
  const f = new WasmFunc("first_match", [["p", "i32"], ["end", "i32"], ["step", "i32"], [
    "mask",
    "i32",
  ]], ["i32"]);
  f.local("vmask", "v128");
  f.comment("step 2: 8 words per v128 while 16 bytes remain, up to the first vector with a hit");
  f.get("step").i32(2).op("i32.eq").if();
  f.get("mask").op("i16x8.splat").set("vmask");
  f.block("vectors_done").loop("vectors");
  f.get("p").i32(16).op("i32.add").get("end").op("i32.gt_u").brIf("vectors_done");
  f.get("p").mem("v128.load", 0, { align: 0 }).get("vmask").op("v128.and").get("vmask");
  f.op("i16x8.eq").op("v128.any_true").brIf("vectors_done");
  f.get("p").i32(16).op("i32.add").set("p").br("vectors");
  f.end().end();
  f.end();
  f.comment("first 16-bit word at p, p + step, ... below end with every mask bit set");
  f.block("done").loop("words");
  f.get("p").get("end").op("i32.ge_u").brIf("done");
  f.get("p").mem("i32.load16_u", 0, { align: 0 }).get("mask").op("i32.and").get("mask");
  f.op("i32.eq").brIf("done");
  f.get("p").get("step").op("i32.add").set("p").br("words");
  f.end().end();
  f.get("p").get("end").get("p").get("end").op("i32.lt_u").op("select");
  return f;
}

/**
 * A module with `first_match` over a memory.
 *
 * @param memory The memory it scans (shared or not).
 * @returns `first_match(p, end, step, mask)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { scanner } from "./scan.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * new Uint16Array(memory.buffer).set([0x3c00, 0x3c00, 0x7e00], 0); // 1, 1, NaN (f16)
 * assert.equal(scanner(memory)(0, 6, 2, 0x7c00), 4);
 * ```
 */
export function scanner(
  memory: WebAssembly.Memory,
): (p: number, end: number, step: number, mask: number) => number {
  // Not `instanceof SharedArrayBuffer`: a page without cross-origin isolation has shared
  // WebAssembly memories but no SharedArrayBuffer global.
  const shared = !(memory.buffer instanceof ArrayBuffer);
  const pages = memory.buffer.byteLength / 65536;
  const m: MemoryImport = shared
    ? { minPages: pages, maxPages: pages, shared: true }
    : { minPages: pages };
  const bytes = assembleModule([firstMatchKernel()], [m]);
  const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  return inst.exports.first_match as (p: number, end: number, step: number, mask: number) => number;
}
