/**
 * The WebAssembly assembler (codegen/wasm_asm.ts) against the WebAssembly Core
 * Specification 2.0, chapter 5 "Binary Format" (LEB128 integers, opcodes, the module
 * layout) and the fixed-width SIMD opcode table, and against the engine that runs the bytes.
 */
import assert from "node:assert/strict";
import { sleb, uleb, WasmFunc } from "./wasm_asm.ts";
import { assembleModule } from "./wasm_assemble.ts";

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

Deno.test("uleb() and sleb() use at most 5 bytes for 32-bit values; uleb() rejects negatives", () => {
  assert.deepEqual(uleb(2 ** 32 - 1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(sleb(2 ** 31 - 1), [0xff, 0xff, 0xff, 0xff, 0x07]);
  assert.deepEqual(sleb(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  assert.throws(() => uleb(-1), RangeError);
  assert.throws(() => uleb(1.5), RangeError);
});

/** The body bytes of a function built by `build` (no locals beyond `params`). */
function bodyOf(build: (f: WasmFunc) => void, params: [string, "i32" | "v128"][] = []) {
  const f = new WasmFunc("f", params);
  build(f);
  return f.body;
}

Deno.test("WasmFunc encodes each instruction with the spec's opcode and immediates", () => {
  const p: [string, "i32"][] = [["a", "i32"], ["b", "i32"]];
  assert.deepEqual(bodyOf((f) => f.get("b"), p), [0x20, 1]); // local.get 1
  assert.deepEqual(bodyOf((f) => f.set("a"), p), [0x21, 0]); // local.set 0
  assert.deepEqual(bodyOf((f) => f.tee("b"), p), [0x22, 1]); // local.tee 1
  assert.deepEqual(bodyOf((f) => f.i32(-64)), [0x41, 0x40]); // i32.const, signed LEB128
  assert.deepEqual(bodyOf((f) => f.op("i32.add")), [0x6a]);
  assert.deepEqual(bodyOf((f) => f.op("i32.lt_u")), [0x49]);
  assert.deepEqual(bodyOf((f) => f.op("f32.add")), [0x92]);
  assert.deepEqual(bodyOf((f) => f.op("f32.mul")), [0x94]);
  // SIMD: prefix 0xfd, then the opcode as unsigned LEB128 (f32x4.add = 228, f32x4.mul = 230).
  assert.deepEqual(bodyOf((f) => f.op("f32x4.add")), [0xfd, 0xe4, 0x01]);
  assert.deepEqual(bodyOf((f) => f.op("f32x4.mul")), [0xfd, 0xe6, 0x01]);
  assert.deepEqual(bodyOf((f) => f.extractLane(3)), [0xfd, 0x1f, 3]);
  assert.deepEqual(bodyOf((f) => f.zeroV128()), [0xfd, 0x0c, ...new Array(16).fill(0)]);
  // Memory access: opcode, memarg (align as log2 bytes, offset), both unsigned LEB128.
  assert.deepEqual(bodyOf((f) => f.mem("f32.load", 0)), [0x2a, 2, 0]);
  assert.deepEqual(bodyOf((f) => f.mem("f32.store", 300)), [0x38, 2, 0xac, 0x02]);
  assert.deepEqual(bodyOf((f) => f.mem("v128.load", 16)), [0xfd, 0x00, 2, 16]);
  assert.deepEqual(bodyOf((f) => f.mem("v128.store", 0)), [0xfd, 0x0b, 2, 0]);
  // Control: block/loop/if with the empty block type 0x40; br/br_if take a relative depth.
  assert.deepEqual(
    bodyOf((f) => f.block("out").loop("top").br("top").brIf("out").end().end()),
    [0x02, 0x40, 0x03, 0x40, 0x0c, 0, 0x0d, 1, 0x0b, 0x0b],
  );
  assert.deepEqual(bodyOf((f) => f.i32(1).if().end()), [0x41, 1, 0x04, 0x40, 0x0b]);
});

Deno.test("WasmFunc declares locals in runs of one type and writes a type entry 0x60", () => {
  const f = new WasmFunc("g", [["x", "i32"]], ["f32"]);
  f.local("a", "i32").local("b", "i32").local("v", "v128").local("c", "i32");
  assert.deepEqual(f.typeBytes(), [0x60, 1, 0x7f, 1, 0x7d]);
  f.mem("f32.load", 0);
  // size 11; 3 runs: 2 × i32, 1 × v128, 1 × i32; the body (f32.load); end.
  assert.deepEqual(f.encode(), [11, 3, 2, 0x7f, 1, 0x7b, 1, 0x7f, 0x2a, 2, 0, 0x0b]);
});

Deno.test("assembleModule() writes the magic, version 1, sections type, import, function, export, code, name", () => {
  const f = new WasmFunc("one", [], ["i32"]);
  f.i32(1);
  const bytes = assembleModule([f], 3);
  assert.deepEqual([...bytes.slice(0, 8)], [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  // Walk the sections: id, size (LEB128, one byte here), content.
  const ids: number[] = [];
  let at = 8;
  while (at < bytes.length) {
    ids.push(bytes[at]);
    at += 2 + bytes[at + 1];
  }
  assert.equal(at, bytes.length);
  assert.deepEqual(ids, [1, 2, 3, 7, 10, 0]); // 0: the "name" custom section
  const m = new WebAssembly.Module(bytes);
  assert.deepEqual(WebAssembly.Module.imports(m), [
    { module: "env", name: "memory", kind: "memory" },
  ]);
  assert.deepEqual(WebAssembly.Module.exports(m), [{ name: "one", kind: "function" }]);
  // The memory import's minimum is 3 pages: a smaller memory is refused.
  assert.throws(() =>
    new WebAssembly.Instance(m, { env: { memory: new WebAssembly.Memory({ initial: 2 }) } })
  );
});

Deno.test("WasmFunc programs run: a loop sums 1..n, f32x4 lanes add", () => {
  // sum(n) = 1 + 2 + ... + n with loop, br_if and local.tee.
  const sum = new WasmFunc("sum", [["n", "i32"]], ["i32"]);
  sum.local("i", "i32").local("s", "i32");
  sum.loop("top");
  sum.get("s").get("i").i32(1).op("i32.add").tee("i").op("i32.add").set("s");
  sum.get("i").get("n").op("i32.lt_u").brIf("top");
  sum.end();
  sum.get("s");
  // y[0] = sum of the 4 lanes of x·x (at byte 0) + x[0]·x[0] scalar, stored at byte 16.
  const dot = new WasmFunc("dot", [["x", "i32"], ["y", "i32"]]);
  dot.local("v", "v128");
  dot.get("x").mem("v128.load", 0).get("x").mem("v128.load", 0).op("f32x4.mul").set("v");
  dot.get("y");
  dot.get("v").extractLane(0).get("v").extractLane(1).op("f32.add");
  dot.get("v").extractLane(2).get("v").extractLane(3).op("f32.add").op("f32.add");
  dot.mem("f32.store", 0);
  const memory = new WebAssembly.Memory({ initial: 1 });
  const inst = new WebAssembly.Instance(new WebAssembly.Module(assembleModule([sum, dot], 1)), {
    env: { memory },
  });
  const ex = inst.exports as { sum(n: number): number; dot(x: number, y: number): void };
  assert.equal(ex.sum(100), 5050);
  const F = new Float32Array(memory.buffer);
  F.set([1, 2, 3, 4]);
  ex.dot(0, 16);
  assert.equal(F[4], 30);
});

Deno.test("WasmFunc text() lists one instruction per line with block indentation", () => {
  const f = new WasmFunc("t", [["x", "i32"]]);
  f.local("acc", "v128");
  f.comment("a comment");
  f.loop("l").get("x").mem("v128.load", 32).set("acc").end();
  assert.equal(
    f.text(),
    [
      '(func $t (export "t") (param $x i32)',
      "  (local $acc v128)",
      "  ;; a comment",
      "  loop $l",
      "    local.get $x",
      "    v128.load offset=32 align=4",
      "    local.set $acc",
      "  end",
      ")",
    ].join("\n"),
  );
});

Deno.test("WasmFunc rejects unknown opcodes, undeclared or duplicate locals, bad labels, open blocks", () => {
  const f = new WasmFunc("bad", [["x", "i32"]]);
  assert.throws(() => f.op("f64x2.add"), /unknown opcode f64x2\.add/);
  assert.throws(() => f.get("y"), /no local \$y in bad/);
  assert.throws(() => f.local("x", "i32"), /local \$x declared twice/);
  assert.throws(() => f.br("nowhere"), /no label \$nowhere in scope/);
  f.block("b");
  assert.throws(() => f.encode(), /bad has unclosed blocks/);
  f.end();
  assert.doesNotThrow(() => f.encode());
});
