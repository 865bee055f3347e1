/**
 * The assembler features the kernels rely on (codegen/wasm_asm.ts), each run in V8 and
 * compared with the WebAssembly spec semantics: i64 constants, memory64 addresses, two
 * memories, atomics (rmw, wait with timeout), shuffles, narrow/extend, the relaxed dot
 * product, calls; and the assembler's errors.
 */
import assert from "node:assert/strict";
import { WasmFunc } from "../wasm_asm.ts";
import { assembleModule } from "../wasm_assemble.ts";
import { relaxedSimdSupported } from "../wasm_features.ts";

// deno-lint-ignore no-explicit-any
const inst = (bytes: Uint8Array<ArrayBuffer>, env: Record<string, WebAssembly.Memory>): any =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes), { env }).exports;

Deno.test("i64.const and i64 arithmetic follow two's complement", () => {
  const f = new WasmFunc("f", [["a", "i64"]], ["i64"]);
  f.get("a").i64(-(2n ** 40n)).op("i64.mul").i64(7).op("i64.add");
  const e = inst(assembleModule([f], 1), { memory: new WebAssembly.Memory({ initial: 1 }) });
  assert.equal(e.f(3n), -3n * 2n ** 40n + 7n);
});

Deno.test("a shared memory64 memory is addressed with i64", () => {
  const st = new WasmFunc("st", [["p", "i64"], ["v", "i32"]]);
  st.get("p").get("v").mem("i32.store", 8);
  const ld = new WasmFunc("ld", [["p", "i64"]], ["i32"]);
  ld.get("p").mem("i32.load", 8);
  const bytes = assembleModule([st, ld], [{
    minPages: 1,
    maxPages: 2,
    shared: true,
    memory64: true,
  }]);
  const memory = new WebAssembly.Memory(
    {
      address: "i64",
      initial: 1n,
      maximum: 2n,
      shared: true,
    } as unknown as WebAssembly.MemoryDescriptor,
  );
  const e = inst(bytes, { memory });
  e.st(1000n, 0x12345678);
  assert.equal(e.ld(1000n), 0x12345678);
  assert.equal(new DataView(memory.buffer).getInt32(1008, true), 0x12345678);
});

Deno.test("two memories: a load from memory 1, a store to memory 0", () => {
  const f = new WasmFunc("copy", [["p", "i32"]]);
  f.get("p").get("p").mem("i32.load", 0, { memory: 1 }).mem("i32.store", 4);
  assert.ok(f.text().includes("i32.load 1"));
  const m0 = new WebAssembly.Memory({ initial: 1 }), m1 = new WebAssembly.Memory({ initial: 1 });
  new Int32Array(m1.buffer)[2] = 99;
  inst(assembleModule([f], [{ minPages: 1 }, { minPages: 1 }]), { memory: m0, memory1: m1 }).copy(
    8,
  );
  assert.equal(new Int32Array(m0.buffer)[3], 99);
});

Deno.test("atomics: rmw.add returns the old value, wait32 times out, cmpxchg swaps", () => {
  const f = new WasmFunc("f", [["p", "i32"]], ["i32"]);
  f.get("p").i32(5).mem("i32.atomic.rmw.add").op("drop"); // 1 → 6
  f.get("p").i32(5).i64(1000).mem("memory.atomic.wait32").op("drop"); // not-equal: 1
  f.get("p").i32(6).i32(40).mem("i32.atomic.rmw.cmpxchg").op("drop"); // 6 → 40
  f.get("p").i32(40).i64(100_000).mem("memory.atomic.wait32"); // 2 = timed out
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  new Int32Array(memory.buffer)[4] = 1;
  const e = inst(assembleModule([f], [{ minPages: 1, maxPages: 1, shared: true }]), { memory });
  assert.equal(e.f(16), 2);
  assert.equal(new Int32Array(memory.buffer)[4], 40);
});

Deno.test("SIMD: shuffle, narrow with saturation, extend, extmul, dot_i16x8", () => {
  const f = new WasmFunc("f", [["p", "i32"]]);
  // out0 = shuffle(a, b) picking b's bytes then a's
  f.get("p").get("p").mem("v128.load", 0).get("p").mem("v128.load", 16);
  f.shuffle([16, 17, 18, 19, 0, 1, 2, 3, 16, 17, 18, 19, 0, 1, 2, 3]).mem("v128.store", 64);
  // out1 = narrow_i32x4_s(i32x4(70000, -70000, 5, -5), same) → i16 saturated
  f.get("p").i32x4(70000, -70000, 5, -5).i32x4(1, 2, 3, 4).op("i16x8.narrow_i32x4_s");
  f.mem("v128.store", 80);
  // out2 = i32x4.dot_i16x8_s(extend_low_i8(a), extmul_low(a, a)) on bytes 1..8
  f.get("p").get("p").mem("v128.load", 0).op("i16x8.extend_low_i8x16_s");
  f.get("p").mem("v128.load", 0).get("p").mem("v128.load", 0).op("i16x8.extmul_low_i8x16_s");
  f.op("i32x4.dot_i16x8_s").mem("v128.store", 96);
  const memory = new WebAssembly.Memory({ initial: 1 });
  const a = new Int8Array(memory.buffer, 0, 16), b = new Int8Array(memory.buffer, 16, 16);
  for (let i = 0; i < 16; i++) a[i] = i + 1, b[i] = -(i + 1);
  inst(assembleModule([f], 1), { memory }).f(0);
  assert.deepEqual([...new Int8Array(memory.buffer, 64, 8)], [-1, -2, -3, -4, 1, 2, 3, 4]);
  assert.deepEqual([...new Int16Array(memory.buffer, 80, 4)], [32767, -32768, 5, -5]);
  const dot = (i: number) => (2 * i + 1) ** 3 + (2 * i + 2) ** 3; // x · x² pairwise
  assert.deepEqual([...new Int32Array(memory.buffer, 96, 4)], [0, 1, 2, 3].map(dot));
});

Deno.test({
  name: "relaxed dot product i8 × i7 adds groups of four products",
  ignore: !relaxedSimdSupported(),
  fn() {
    const f = new WasmFunc("f", [["p", "i32"]]);
    f.get("p").get("p").mem("v128.load", 0).get("p").mem("v128.load", 16).i32x4(10, 20, 30, 40);
    f.op("i32x4.relaxed_dot_i8x16_i7x16_add_s").mem("v128.store", 32);
    const memory = new WebAssembly.Memory({ initial: 1 });
    const a = new Int8Array(memory.buffer, 0, 16), b = new Int8Array(memory.buffer, 16, 16);
    for (let i = 0; i < 16; i++) a[i] = i % 2 ? -127 : 100, b[i] = (i * 9) % 128;
    inst(assembleModule([f], 1), { memory }).f(0);
    const want = [0, 1, 2, 3].map((l) => {
      let s = [10, 20, 30, 40][l];
      for (let i = 4 * l; i < 4 * l + 4; i++) s += a[i] * b[i];
      return s;
    });
    assert.deepEqual([...new Int32Array(memory.buffer, 32, 4)], want);
    assert.ok(f.usesRelaxed);
  },
});

Deno.test("calls resolve by name; internal functions are not exported", () => {
  const sq = new WasmFunc("sq", [["x", "i32"]], ["i32"], { export: false });
  sq.get("x").get("x").op("i32.mul");
  const f = new WasmFunc("f", [["x", "i32"]], ["i32"]);
  f.get("x").call("sq").call("sq");
  const bytes = assembleModule([f, sq], 1);
  const mod = new WebAssembly.Module(bytes);
  assert.deepEqual(WebAssembly.Module.exports(mod).map((e) => e.name), ["f"]);
  assert.equal(inst(bytes, { memory: new WebAssembly.Memory({ initial: 1 }) }).f(3), 81);
});

Deno.test("the assembler refuses unknown opcodes, bad shuffles, unbounded shared memory", () => {
  const f = new WasmFunc("f", []);
  assert.throws(() => f.op("i32.frobnicate"), /unknown opcode i32\.frobnicate/);
  assert.throws(() => f.shuffle([0, 1, 2]), /bad shuffle/);
  assert.throws(() => f.mem("v128.loadd"), /unknown memory opcode/);
  assert.throws(() => assembleModule([f], [{ minPages: 1, shared: true }]), /needs maxPages/);
  const g = new WasmFunc("g", []);
  g.call("nowhere");
  assert.throws(() => assembleModule([g], 1), /unknown function \$nowhere/);
});
