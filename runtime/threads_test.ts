/**
 * The thread pool (runtime/threads.ts) with the WASM barrier (codegen/wasm/barrier.ts):
 * a two-op step (matvec, barrier, matvec reading the first one's output) gives the same
 * bits for 1, 2 and 3 threads as one call over all rows; a worker that throws or was
 * terminated gives a ThreadError, not a hang.
 */
import assert from "node:assert/strict";
import { WasmFunc } from "../codegen/wasm_asm.ts";
import { assembleModule } from "../codegen/wasm_assemble.ts";
import { barrierKernel, CTL, emitShare } from "../codegen/wasm/barrier.ts";
import { emitLinear } from "../codegen/wasm/linear.ts";
import { quantizeKernel } from "../codegen/wasm/quantize.ts";
import { actLayout, rowBytes, WEIGHT_TYPES } from "../codegen/wasm/blocks.ts";
import { randomBlocks, rng } from "../tests/ggml_blocks.ts";
import { createThreadPool, ThreadError } from "./threads.ts";

const M1 = 96, K1 = 256, M2 = 40; // W1 (96, 256) Q4_K, W2 (40, 96) F32
const PAGES = 16;
const CTL_AT = 0, W1 = 8192, W2 = W1 + rowBytes(WEIGHT_TYPES.Q4_K, K1) * M1;
const X = 65536, XQ = X + 4 * K1, Y1 = XQ + actLayout("q8_K", K1).stride, Y2 = Y1 + 4 * M1;

const ARGS = Array.from({ length: 8 }, (_, i) => [`a${i}`, "i32"] as [string, "i32"]);

/** step(tid, n): quantise x (thread 0), barrier, rows of W1, barrier, rows of W2, barrier. */
function stepEntry(failTid: number): WasmFunc {
  const f = new WasmFunc("step", [["tid", "i32"], ["nthreads", "i32"], ...ARGS]);
  f.local("lo", "i32").local("hi", "i32");
  const barrier = () => f.i32(CTL_AT).call("barrier").if().op("return").end();
  f.get("tid").op("i32.eqz").if().i32(X).i32(XQ).i32(1).call("quantize_q8_K_256").end();
  barrier();
  if (failTid >= 0) f.get("tid").i32(failTid).op("i32.eq").if().op("unreachable").end();
  emitShare(f, M1, 2, "lo", "hi");
  f.i32(W1).i32(XQ).i32(Y1).get("lo").get("hi").call("matvec_q4_k_96x256");
  barrier();
  emitShare(f, M2, 4, "lo", "hi");
  f.i32(W2).i32(Y1).i32(Y2).get("lo").get("hi").call("matvec_f32_40x96");
  barrier();
  return f;
}

function moduleBytes(failTid = -1) {
  const funcs = [
    stepEntry(failTid),
    barrierKernel(),
    quantizeKernel("q8_K", K1),
    emitLinear({ type: "Q4_K", M: M1, K: K1, kind: "matvec" }),
    emitLinear({ type: "F32", M: M2, K: M1, kind: "matvec" }),
  ];
  return assembleModule(funcs, [{ minPages: PAGES, maxPages: PAGES, shared: true }]);
}

function freshMemory(): WebAssembly.Memory {
  const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
  const u8 = new Uint8Array(memory.buffer);
  const r = rng(3);
  u8.set(randomBlocks("Q4_K", M1, K1, r), W1);
  u8.set(randomBlocks("F32", M2, M1, r), W2);
  const x = new Float32Array(memory.buffer, X, K1);
  for (let i = 0; i < K1; i++) x[i] = 2 * r() - 1;
  return memory;
}

/** The same two matvecs in one plain instance, every row at once. */
function singleCall(): Float32Array {
  const memory = freshMemory();
  const bytes = assembleModule([
    barrierKernel(),
    quantizeKernel("q8_K", K1),
    emitLinear({ type: "Q4_K", M: M1, K: K1, kind: "matvec" }),
    emitLinear({ type: "F32", M: M2, K: M1, kind: "matvec" }),
  ], [{ minPages: PAGES, maxPages: PAGES, shared: true }]);
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } })
    .exports as unknown as Record<string, (...args: number[]) => number>;
  e.quantize_q8_K_256(X, XQ, 1);
  e.matvec_q4_k_96x256(W1, XQ, Y1, 0, M1);
  e.matvec_f32_40x96(W2, Y1, Y2, 0, M2);
  return new Float32Array(memory.buffer, Y2, M2).slice();
}

for (const threads of [1, 2, 3]) {
  Deno.test(`createThreadPool() with ${threads} thread(s) gives the bits of one call`, async () => {
    const expected = singleCall();
    const memory = freshMemory();
    const pool = await createThreadPool(
      new WebAssembly.Module(moduleBytes()),
      memory,
      CTL_AT,
      ["step"],
      { threads },
    );
    try {
      for (let rep = 0; rep < 3; rep++) {
        new Float32Array(memory.buffer, Y2, M2).fill(NaN);
        pool.run("step");
        assert.deepEqual(new Float32Array(memory.buffer, Y2, M2).slice(), expected);
      }
    } finally {
      pool.close();
    }
  });
}

Deno.test("createThreadPool(): the negative control, a wrong row split, changes the result", () => {
  // Only rows 0 .. M1 - 3 of W1: the matvec output differs, so the bitwise check can fail.
  const expected = singleCall();
  const memory = freshMemory();
  const bytes = assembleModule([
    quantizeKernel("q8_K", K1),
    emitLinear({ type: "Q4_K", M: M1, K: K1, kind: "matvec" }),
    emitLinear({ type: "F32", M: M2, K: M1, kind: "matvec" }),
  ], [{ minPages: PAGES, maxPages: PAGES, shared: true }]);
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } })
    .exports as unknown as Record<string, (...args: number[]) => number>;
  e.quantize_q8_K_256(X, XQ, 1);
  e.matvec_q4_k_96x256(W1, XQ, Y1, 0, M1 - 2);
  e.matvec_f32_40x96(W2, Y1, Y2, 0, M2);
  assert.notDeepEqual(new Float32Array(memory.buffer, Y2, M2).slice(), expected);
});

Deno.test("ThreadPool.run() throws a ThreadError naming a worker that traps", async () => {
  const memory = freshMemory();
  const pool = await createThreadPool(
    new WebAssembly.Module(moduleBytes(1)),
    memory,
    CTL_AT,
    ["step"],
    { threads: 2, timeoutMs: 2000 },
  );
  try {
    assert.throws(() => pool.run("step"), (e: Error) => {
      assert.ok(e instanceof ThreadError);
      assert.match(e.message, /^thread 1 failed: .*unreachable/);
      return true;
    });
    assert.throws(() => pool.run("step"), /thread pool failed earlier/);
  } finally {
    pool.close();
  }
});

Deno.test("ThreadPool.run() throws a ThreadError, not a hang, when a worker was terminated", async () => {
  const memory = freshMemory();
  const pool = await createThreadPool(
    new WebAssembly.Module(moduleBytes()),
    memory,
    CTL_AT,
    ["step"],
    { threads: 2, timeoutMs: 300 },
  );
  try {
    pool.run("step");
    pool.workers[0].terminate();
    await new Promise((r) => setTimeout(r, 50));
    // A worker blocked in Atomics.wait may still run the step it wakes for before the
    // termination takes effect; the one after that must fail, within the timeout.
    const t0 = performance.now();
    let error: Error | null = null;
    for (let i = 0; i < 3 && !error; i++) {
      try {
        pool.run("step");
      } catch (e) {
        error = e as Error;
      }
    }
    assert.ok(error instanceof ThreadError, "a step after the termination fails");
    assert.match(error.message, /^thread 1 did not reach a barrier or finish within 300 ms/);
    assert.ok(performance.now() - t0 < 5000);
  } finally {
    pool.close();
  }
});

Deno.test("ThreadPool.run() throws a ThreadError, not a hang, when a worker hangs", async () => {
  const memory = freshMemory();
  const f = new WasmFunc("spin", [["tid", "i32"], ["nthreads", "i32"], ...ARGS]);
  f.get("tid").if().loop("forever").br("forever").end().end();
  f.i32(CTL_AT).call("barrier").op("drop");
  const bytes = assembleModule([f, barrierKernel()], [
    { minPages: PAGES, maxPages: PAGES, shared: true },
  ]);
  const pool = await createThreadPool(new WebAssembly.Module(bytes), memory, CTL_AT, ["spin"], {
    threads: 2,
    timeoutMs: 200,
  });
  try {
    assert.throws(() => pool.run("spin"), /^ThreadError: thread 1 did not reach a barrier/);
  } finally {
    pool.close();
  }
});

Deno.test("createThreadPool() rejects a thread count out of range and a non-shared memory", async () => {
  const memory = freshMemory();
  const mod = new WebAssembly.Module(moduleBytes());
  await assert.rejects(
    () => createThreadPool(mod, memory, CTL_AT, ["step"], { threads: 0 }),
    /threads must be an integer in 1\.\.64, got 0/,
  );
  await assert.rejects(
    () => createThreadPool(mod, new WebAssembly.Memory({ initial: 1 }), 0, ["step"], {}),
    /must be shared/,
  );
  assert.equal(CTL.BYTES % 64, 0);
});
