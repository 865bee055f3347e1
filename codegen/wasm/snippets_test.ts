/**
 * The f16 → f32 snippets against the runtime's own IEEE half conversion (`Float16Array`,
 * ECMAScript 2025) on every f16 bit pattern that is not Inf/NaN, with a negative control:
 * the rebias without the subnormal case differs on the subnormals. The f32 → f16 rounding of
 * the f16 KV cache (`f32x4ToF16x4`) against `Math.f16round` on f32 bit patterns of every
 * exponent and the edge values, both paths; truncating instead of rounding is its negative
 * control.
 */
import assert from "node:assert/strict";
import { WasmFunc } from "../wasm_asm.ts";
import { assembleModule } from "../wasm_assemble.ts";
import { fp16SimdSupported } from "../wasm_features.ts";
import { f16RescaleLocals, f16Scalar, f32x4ToF16x4, loadF16x4 } from "./snippets.ts";

/**
 * An exported `run(n)` on an 8-page memory that runs `body` for i = 0, step, 2 · step, ...
 * below n (i32 locals `i` and `p`).
 */
function loopModule(
  step: number,
  body: (f: WasmFunc) => void,
): { run: (n: number) => void; mem: WebAssembly.Memory } {
  const f = new WasmFunc("run", [["n", "i32"]]);
  f.local("i", "i32").local("p", "i32");
  f.block("done").loop("each");
  f.get("i").get("n").op("i32.ge_u").brIf("done");
  body(f);
  f.get("i").i32(step).op("i32.add").set("i");
  f.br("each").end().end();
  const mem = new WebAssembly.Memory({ initial: 8 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(assembleModule([f], 8)), {
    env: { memory: mem },
  }).exports as { run: (n: number) => void };
  return { run: e.run, mem };
}

/** Converts n f16 at byte 0 into n f32 at byte 2^17 with `body` (address of the f16 in `p`). */
function converter(body: (f: WasmFunc) => void): (h: Uint16Array) => Float32Array {
  const { run, mem } = loopModule(1, (f) => {
    f.get("i").i32(1).op("i32.shl").set("p");
    f.get("i").i32(2).op("i32.shl").i32(1 << 17).op("i32.add");
    body(f);
    f.mem("f32.store", 0);
  });
  return (h) => {
    new Uint16Array(mem.buffer, 0, h.length).set(h);
    run(h.length);
    return new Float32Array(mem.buffer, 1 << 17, h.length).slice();
  };
}

/** Every finite f16 bit pattern (exponent field < 31), both signs. */
const finite = Uint16Array.from(
  { length: 65536 },
  (_, h) => h,
).filter((h) => (h & 0x7c00) !== 0x7c00);

/** Asserts `got[i]` is the f32 value of `finite[i]`, as the runtime's Float16Array reads it. */
function assertWidensExactly(got: Float32Array): void {
  const want = new Float32Array(new Float16Array(finite.buffer));
  let bad = 0;
  for (let i = 0; i < finite.length; i++) if (!Object.is(got[i], want[i])) bad++;
  assert.equal(bad, 0, `${bad} of ${finite.length} patterns differ`);
}

Deno.test("f16Scalar() converts every finite f16 exactly, subnormals and ±0 included", () => {
  const got = converter((f) => f16Scalar(f, "p", 0))(finite);
  assertWidensExactly(got);
});

Deno.test("f16Scalar() negative control: a rebias without the subnormal case fails", () => {
  const naive = converter((f) => {
    f.get("p").mem("i32.load16_u", 0, { align: 0 }).i32(0x7fff).op("i32.and");
    f.i32(13).op("i32.shl").i32(0x38000000).op("i32.add").op("f32.reinterpret_i32");
  })(finite);
  const want = new Float32Array(new Float16Array(finite.buffer));
  let bad = 0;
  for (let i = 0; i < finite.length; i++) if (Math.abs(naive[i]) !== Math.abs(want[i])) bad++;
  assert.equal(bad, 2 * 1024, "exactly the 2 × 1024 subnormals and zeros differ");
});

Deno.test("f32x4.promote_low_f16x8 (FP16 proposal) converts every finite f16 exactly", {
  ignore: !fp16SimdSupported(),
}, () => {
  // The F16 kernels' hardware path (types_float.ts): the runtime's conversion, one lane of 4.
  const got = converter((f) => {
    f.get("p").mem("v128.load64_zero", 0, { align: 0 }).op("f32x4.promote_low_f16x8");
    f.extractLane(0);
  })(finite);
  assertWidensExactly(got);
});

Deno.test("fp16SimdSupported() is true when V8 got --experimental-wasm-fp16", () => {
  // The test task passes the flag (README); /proc/self/cmdline shows what this process got.
  // (Without it the answer is the runtime's default, false in Deno 2.9's V8.)
  let cmdline: string;
  try {
    cmdline = Deno.readTextFileSync("/proc/self/cmdline");
  } catch {
    return; // not Linux: nothing to compare with
  }
  if (cmdline.includes("--experimental-wasm-fp16")) assert.equal(fp16SimdSupported(), true);
});

for (const fp16 of [false, true]) {
  Deno.test(
    `loadF16x4() widens every finite f16 exactly (${fp16 ? "FP16 proposal" : "fallback"})`,
    {
      ignore: fp16 && !fp16SimdSupported(),
    },
    () => {
      const got = converter((f) => {
        if (!fp16) f16RescaleLocals(f);
        loadF16x4(f, "p", 0, fp16);
        f.extractLane(0);
      })(finite);
      assertWidensExactly(got);
    },
  );
}

/** Rounds n f32 (n a multiple of 4) at byte 0 to f16 at byte 2^18 with `body` (f32x4 → f16 x4). */
function rounder(body: (f: WasmFunc) => void): (x: Float32Array) => Float16Array {
  const { run, mem } = loopModule(4, (f) => {
    f.get("i").i32(1).op("i32.shl").i32(1 << 18).op("i32.add");
    f.get("i").i32(2).op("i32.shl").mem("v128.load", 0);
    body(f);
    f.memLane("v128.store64_lane", 0, 0, { align: 1 });
  });
  return (x) => {
    new Float32Array(mem.buffer, 0, x.length).set(x);
    run(x.length);
    return new Float16Array(mem.buffer, 1 << 18, x.length).slice();
  };
}

/** f32 inputs: the edges of f16 rounding, then bit patterns of every exponent (both signs). */
function roundingInputs(): Float32Array {
  const edges = [
    0,
    65504,
    65519,
    65519.996,
    65520,
    65536,
    1e30,
    6.1035156e-5,
    6.1e-5,
    5.9604645e-8,
    2.9802322e-8,
    2.9802326e-8,
    8.940697e-8,
    1e-40,
    1 / 3,
    0.1,
    2049,
    2050,
    2051,
    2053,
    1.00048828125,
    1.000732421875,
  ];
  const u = new Uint32Array(32768 + 4 * edges.length);
  const x = new Float32Array(u.buffer);
  edges.forEach((v, i) => x.set([v, -v, v * 1.0000001, -v * 0.9999999], 4 * i));
  let seed = 12345;
  for (let i = 4 * edges.length; i < u.length; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const exp = (i * 7) % 255; // every finite exponent (no Inf/NaN inputs)
    u[i] = (seed & 0x807fffff) | (exp << 23);
  }
  return x;
}

for (const fp16 of [false, true]) {
  Deno.test(`f32x4ToF16x4() rounds like Math.f16round (${fp16 ? "FP16 proposal" : "fallback"})`, {
    ignore: fp16 && !fp16SimdSupported(),
  }, () => {
    const x = roundingInputs();
    const got = rounder((f) => f32x4ToF16x4(f, fp16))(x);
    let bad = 0;
    for (let i = 0; i < x.length; i++) if (!Object.is(got[i], Math.f16round(x[i]))) bad++;
    assert.equal(bad, 0, `${bad} of ${x.length} values differ`);
  });
}

Deno.test("f32x4ToF16x4() negative control: truncating the mantissa differs", () => {
  const x = roundingInputs();
  // (|x| bits - rebias) >> 13 with the sign: no rounding (and wrong below 2^-14 and above 65504).
  const got = rounder((f) => {
    f.local("_t", "v128");
    f.tee("_t").i32x4(0x7fffffff).op("v128.and").i32x4(0x38000000).op("i32x4.sub");
    f.i32(13).op("i32x4.shr_u").get("_t").i32(16).op("i32x4.shr_u").i32x4(0x8000);
    f.op("v128.and").op("v128.or").zeroV128().op("i16x8.narrow_i32x4_u");
  })(x);
  let bad = 0;
  for (let i = 0; i < x.length; i++) if (!Object.is(got[i], Math.f16round(x[i]))) bad++;
  assert.ok(bad > x.length / 4, `only ${bad} of ${x.length} values differ`);
});
