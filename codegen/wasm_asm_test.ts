/**
 * The WebAssembly assembler (codegen/wasm_asm.ts) against the WebAssembly Core
 * Specification's binary format.
 */
import assert from "node:assert/strict";
import { sleb, uleb } from "./wasm_asm.ts";

Deno.test("uleb() and sleb() encode the LEB128 examples", () => {
  assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(uleb(0), [0]);
  assert.deepEqual(uleb(127), [0x7f]);
  assert.deepEqual(uleb(128), [0x80, 0x01]);
  assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(sleb(-1), [0x7f]);
  assert.deepEqual(sleb(64), [0xc0, 0x00]);
  assert.deepEqual(sleb(-64), [0x40]);
});
