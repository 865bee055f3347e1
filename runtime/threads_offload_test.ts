/**
 * A thread pool with `offload` (runtime/threads.ts): thread 0 runs in a worker too, so
 * `runAsync` leaves the caller's event loop free while a step runs (`gollm serve`'s HTTP).
 * Results equal one plain call; a timer fires during a step; a failing worker rejects.
 */
import assert from "node:assert/strict";
import { WasmFunc } from "../codegen/wasm_asm.ts";
import { assembleModule } from "../codegen/wasm_assemble.ts";
import { barrierKernel, emitShare } from "../codegen/wasm/barrier.ts";
import { emitLinear } from "../codegen/wasm/linear.ts";
import { randomBlocks, rng } from "../tests/ggml_blocks.ts";
import { createThreadPool, ThreadError } from "./threads.ts";

const M = 64, K = 96; // W (64, 96) F32
const PAGES = 4, CTL_AT = 0, W = 8192, X = W + 4 * M * K, Y = X + 4 * K, FLAG = Y + 4 * M;
const ARGS = Array.from({ length: 8 }, (_, i) => [`a${i}`, "i32"] as [string, "i32"]);
const MEM = [{ minPages: PAGES, maxPages: PAGES, shared: true }];

/** step(tid, n): this thread's rows of y = W · x, then a barrier. */
function stepModule(): WebAssembly.Module {
  const f = new WasmFunc("step", [["tid", "i32"], ["nthreads", "i32"], ...ARGS]);
  f.local("lo", "i32").local("hi", "i32");
  emitShare(f, M, 4, "lo", "hi");
  f.i32(W).i32(X).i32(Y).get("lo").get("hi").call("matvec_f32_64x96");
  f.i32(CTL_AT).call("barrier").op("drop");
  const mv = emitLinear({ type: "F32", M, K, kind: "matvec" });
  return new WebAssembly.Module(assembleModule([f, barrierKernel(), mv], MEM));
}

/** wait(tid, n): thread 0 spins until the word at FLAG is non-zero, then sets it to 2. */
function waitModule(): WebAssembly.Module {
  const f = new WasmFunc("wait", [["tid", "i32"], ["nthreads", "i32"], ...ARGS]);
  f.get("tid").op("i32.eqz").if();
  f.loop("spin").i32(0).mem("i32.atomic.load", FLAG).op("i32.eqz").brIf("spin").end();
  f.i32(0).i32(2).mem("i32.atomic.store", FLAG);
  f.end();
  return new WebAssembly.Module(assembleModule([f], MEM));
}

function freshMemory(): WebAssembly.Memory {
  const memory = new WebAssembly.Memory({ initial: PAGES, maximum: PAGES, shared: true });
  const r = rng(5);
  new Uint8Array(memory.buffer).set(randomBlocks("F32", M, K, r), W);
  const x = new Float32Array(memory.buffer, X, K);
  for (let i = 0; i < K; i++) x[i] = 2 * r() - 1;
  return memory;
}

/** An offload pool of one thread over `waitModule()`, and the flag its step waits for. */
async function flagPool(timeoutMs?: number) {
  const memory = freshMemory();
  const flag = new Int32Array(memory.buffer, FLAG, 1);
  const pool = await createThreadPool(waitModule(), memory, CTL_AT, ["wait"], {
    threads: 1,
    offload: true,
    timeoutMs,
  });
  return { pool, flag };
}

/** y = W · x in one plain instance. */
function singleCall(): Float32Array {
  const memory = freshMemory();
  const mv = emitLinear({ type: "F32", M, K, kind: "matvec" });
  const e = new WebAssembly.Instance(new WebAssembly.Module(assembleModule([mv], MEM)), {
    env: { memory },
  }).exports as unknown as Record<string, (...args: number[]) => void>;
  e.matvec_f32_64x96(W, X, Y, 0, M);
  return new Float32Array(memory.buffer, Y, M).slice();
}

for (const threads of [1, 2]) {
  Deno.test(`ThreadPool.runAsync() with offload, ${threads} thread(s), gives the bits of one call`, async () => {
    const expected = singleCall();
    const memory = freshMemory();
    const pool = await createThreadPool(stepModule(), memory, CTL_AT, ["step"], {
      threads,
      offload: true,
    });
    try {
      assert.equal(pool.workers.length, threads); // thread 0 is a worker too
      for (let rep = 0; rep < 3; rep++) {
        new Float32Array(memory.buffer, Y, M).fill(NaN);
        if (rep === 1) pool.run("step"); // the blocking form works as well
        else await pool.runAsync("step");
        assert.deepEqual(new Float32Array(memory.buffer, Y, M).slice(), expected);
      }
    } finally {
      pool.close();
    }
  });
}

Deno.test("ThreadPool.runAsync() with offload lets a timer run while the step does", async () => {
  const { pool, flag } = await flagPool(3000);
  try {
    // The step ends only when a timer of this thread sets the flag.
    const timer = setTimeout(() => Atomics.store(flag, 0, 1), 20);
    await pool.runAsync("wait");
    clearTimeout(timer);
    assert.equal(Atomics.load(flag, 0), 2);
  } finally {
    pool.close();
  }
});

Deno.test("ThreadPool.run() (negative control): a blocking wait starves the timer, the step times out", async () => {
  const { pool, flag } = await flagPool(300);
  const timer = setTimeout(() => Atomics.store(flag, 0, 1), 20);
  try {
    assert.throws(() => pool.run("wait"), (e: Error) => {
      assert.ok(e instanceof ThreadError);
      assert.match(e.message, /^thread 0 did not reach a barrier or finish within 300 ms/);
      return true;
    });
  } finally {
    clearTimeout(timer);
    pool.close();
  }
});

Deno.test("ThreadPool.runAsync() rejects with a ThreadError naming a worker that traps, then refuses", async () => {
  const f = new WasmFunc("trap", [["tid", "i32"], ["nthreads", "i32"], ...ARGS]);
  f.get("tid").i32(1).op("i32.eq").if().op("unreachable").end();
  f.i32(CTL_AT).call("barrier").op("drop");
  const mod = new WebAssembly.Module(assembleModule([f, barrierKernel()], MEM));
  const pool = await createThreadPool(mod, freshMemory(), CTL_AT, ["trap"], {
    threads: 2,
    offload: true,
    timeoutMs: 2000,
  });
  try {
    await assert.rejects(() => pool.runAsync("trap"), (e: Error) => {
      assert.ok(e instanceof ThreadError);
      assert.match(e.message, /^thread 1 failed: .*unreachable/);
      return true;
    });
    await assert.rejects(() => pool.runAsync("trap"), /thread pool failed earlier/);
  } finally {
    pool.close();
  }
});

Deno.test("ThreadPool.runAsync() refuses a second step while one runs", async () => {
  const { pool, flag } = await flagPool();
  try {
    const first = pool.runAsync("wait");
    await assert.rejects(() => pool.runAsync("wait"), /a step is still running/);
    Atomics.store(flag, 0, 1);
    await first;
  } finally {
    pool.close();
  }
});
