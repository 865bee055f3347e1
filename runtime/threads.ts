/**
 * A pool of worker threads (`node:worker_threads`, unref'd: an idle pool never keeps the
 * process alive) that run generated WASM steps on one shared `WebAssembly.Memory`. Every worker instantiates the same module over the same memory;
 * a step starts with ONE `Atomics.notify` (no postMessage per step or per op); inside the
 * step the threads meet at WASM barriers (`codegen/wasm/barrier.ts`); the caller's thread
 * is thread 0 and runs its share too, then waits (blocking, with a timeout) until every
 * worker finished. Nothing is allocated per step.
 *
 * An entry point is an export `entry(tid, nthreads, a0 .. a7)` (i32s). A worker whose entry
 * throws writes its message into the control block and sets the error word; a worker that
 * was terminated or hangs is caught by the barrier and finish timeouts. Either way
 * {@linkcode ThreadPool.run} throws a {@linkcode ThreadError} naming the thread, and the
 * pool refuses further steps.
 *
 * Requires a runtime where the main thread may block (`Atomics.wait`): Deno, Node.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { CTL, ERR_TIMEOUT } from "../codegen/wasm/barrier.ts";
import { Worker } from "node:worker_threads";

/** A step of a thread pool failed: a worker threw, was terminated or timed out. */
export class ThreadError extends GollmError {
  /**
   * Creates the error.
   *
   * @param message One line naming the thread and what happened.
   */
  constructor(message: string) {
    super(message);
    this.name = "ThreadError";
  }
}

/** Options of {@linkcode createThreadPool}. */
export interface ThreadPoolOptions {
  /** Threads including the caller's (default `navigator.hardwareConcurrency`; 1..64). */
  threads?: number;
  /** Milliseconds without progress before a step fails (default 10000; 0 = never). */
  timeoutMs?: number;
  /** Further memories the module imports as `env.memory1`, ... (weights past 4 GiB). */
  more?: WebAssembly.Memory[];
}

/** A running pool (see the module doc). */
export interface ThreadPool {
  /** Threads including the caller's. */
  readonly threads: number;
  /** The caller's instance of the module (thread 0). */
  readonly instance: WebAssembly.Instance;
  /**
   * Runs `entry(tid, threads, ...args)` on every thread and returns when all finished.
   *
   * @param entry Export name (one of the pool's entry points).
   * @param args Up to 8 i32 arguments.
   * @throws {ThreadError} when a thread fails or times out (the pool is then closed).
   */
  run(entry: string, args?: ArrayLike<number>): void;
  /** Terminates the workers (idempotent). */
  close(): void;
  /** Same as `close()` (`using pool = ...`). */
  [Symbol.dispose](): void;
  /** The workers (thread 1 .. threads - 1), for tests that make one fail. */
  readonly workers: readonly Worker[];
}

const NO_ARGS: number[] = [];

const WORKER_SOURCE = `
const CTL = ${JSON.stringify(CTL)};
require("node:worker_threads").parentPort.on("message", (data) => {
  const { module, memory, more, ctl, tid, entries } = data;
  const w = new Int32Array(memory.buffer, ctl, CTL.BYTES / 4);
  const ready = () => {
    Atomics.add(w, CTL.READY / 4, 1);
    Atomics.notify(w, CTL.READY / 4);
  };
  let inst;
  try {
    const env = { memory, cos: Math.cos, sin: Math.sin };
    more.forEach((m, i) => (env["memory" + (i + 1)] = m));
    inst = new WebAssembly.Instance(module, { env });
  } catch (err) {
    if (Atomics.compareExchange(w, CTL.ERR / 4, 0, tid + 1) === 0) {
      const msg = new TextEncoder().encode(String(err && err.message || err).slice(0, 200));
      new Uint8Array(memory.buffer, ctl + CTL.MSG, msg.length + 1).set([...msg, 0]);
    }
    ready();
    return;
  }
  const fns = entries.map((n) => inst.exports[n]);
  // Read the generation BEFORE saying ready: the first step may start right after.
  let gen = Atomics.load(w, CTL.GEN / 4);
  ready();
  // Wait with Atomics.waitAsync so the worker returns to its event loop between steps:
  // a Worker.terminate() then takes effect (a worker blocked in Atomics.wait ignores it).
  const loop = async () => {
   for (;;) {
    for (;;) {
      const r = Atomics.waitAsync(w, CTL.GEN / 4, gen);
      if (r.async) await r.value;
      const g = Atomics.load(w, CTL.GEN / 4);
      if (g !== gen) {
        gen = g;
        break;
      }
    }
    const cmd = Atomics.load(w, CTL.CMD / 4);
    if (cmd < 0) return; // closing
    const n = Atomics.load(w, CTL.NTHREADS / 4);
    if (tid < n) {
      try {
        const a = CTL.ARGS / 4;
        fns[cmd](tid, n, w[a], w[a + 1], w[a + 2], w[a + 3], w[a + 4], w[a + 5], w[a + 6], w[a + 7]);
      } catch (err) {
        if (Atomics.compareExchange(w, CTL.ERR / 4, 0, tid + 1) === 0) {
          const msg = new TextEncoder().encode(String(err && err.message || err).slice(0, 200));
          new Uint8Array(memory.buffer, ctl + CTL.MSG, msg.length + 1).set([...msg, 0]);
        }
        Atomics.notify(w, CTL.BGEN / 4);
      }
    }
    Atomics.store(w, CTL.FINISHED / 4 + tid, gen);
    Atomics.add(w, CTL.DONE / 4, 1);
    Atomics.notify(w, CTL.DONE / 4);
   }
  };
  loop();
});
`;

/** Workers started by {@linkcode prestartWorkers}, taken first by the next pool. */
const spare: Worker[] = [];

/** A pool worker, unref'd: it waits for its module and memory in a message. */
function newWorker(): Worker {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  worker.unref();
  return worker;
}

/**
 * Starts pool workers ahead of the pool, so that their start (a new isolate and Node
 * layer: about 0.1 s on this project's 2-core VM) runs while the caller still reads the
 * weights; the next {@linkcode startThreadPool} takes them before starting its own. Keeps
 * at most `n` spare; {@linkcode dropSpareWorkers} ends them if no pool comes.
 *
 * @param n Spare workers wanted (a pool of N threads uses N - 1).
 *
 * @example
 * ```ts
 * import { dropSpareWorkers, prestartWorkers } from "./threads.ts";
 * prestartWorkers(1);
 * dropSpareWorkers();
 * ```
 */
export function prestartWorkers(n: number): void {
  while (spare.length < Math.min(n, 63)) spare.push(newWorker());
}

/** Terminates the workers {@linkcode prestartWorkers} started that no pool took. */
export function dropSpareWorkers(): void {
  for (const w of spare.splice(0)) w.terminate();
}

/**
 * The imports every instance of a kernel module gets besides `env.memory`: `env.cos` and
 * `env.sin` (f64 → f64, JavaScript's `Math.cos`/`Math.sin`, so RoPE angles in WASM equal
 * those of the JS kernels). A module that does not import them ignores them.
 *
 * @param memory The memory.
 * @param more Further memories (`env.memory1`, ...).
 * @returns The import object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { kernelImports } from "./threads.ts";
 * const memory = new WebAssembly.Memory({ initial: 1 });
 * assert.equal((kernelImports(memory).env.cos as (x: number) => number)(0), 1);
 * ```
 */
export function kernelImports(
  memory: WebAssembly.Memory,
  more: WebAssembly.Memory[] = [],
): WebAssembly.Imports {
  const env: Record<string, unknown> = { memory, cos: Math.cos, sin: Math.sin };
  more.forEach((m, i) => (env[`memory${i + 1}`] = m));
  return { env } as WebAssembly.Imports;
}

/**
 * Starts a pool and returns it once every worker is ready: `threads - 1` workers, each
 * with its own instance of `module` over the shared `memory`, synchronised through the
 * control block at byte offset `ctl`. It blocks the calling thread while the workers start
 * (they start in their own threads; about 0.1 s), so it can run inside a synchronous
 * constructor.
 *
 * @param module The compiled kernels (importing `env.memory`, optionally `env.cos`/`env.sin`).
 * @param memory A shared memory (`new WebAssembly.Memory({ shared: true, ... })`).
 * @param ctl Byte offset of a 64-byte aligned control block of `CTL.BYTES` bytes (zeroed here).
 * @param entries Export names the pool may run (each `(tid, nthreads, a0..a7)`).
 * @param options Thread count and timeout.
 * @returns The pool, its workers ready.
 * @throws {RangeError} for a thread count outside 1..64 or a non-shared memory.
 * @throws {ThreadError} when a worker cannot instantiate the module or does not start
 *   within the timeout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WasmFunc } from "../codegen/wasm_asm.ts";
 * import { assembleModule } from "../codegen/wasm_assemble.ts";
 * import { startThreadPool } from "./threads.ts";
 * // entry(tid, n, ...): memory[1024 + 4·tid] = tid + 1
 * const f = new WasmFunc("mark", [["tid", "i32"], ["n", "i32"], ...Array.from({ length: 8 },
 *   (_, i) => [`a${i}`, "i32"] as [string, "i32"])]);
 * f.get("tid").i32(4).op("i32.mul").get("tid").i32(1).op("i32.add").mem("i32.store", 1024);
 * const bytes = assembleModule([f], [{ minPages: 1, maxPages: 1, shared: true }]);
 * const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * using pool = startThreadPool(new WebAssembly.Module(bytes), memory, 0, ["mark"], { threads: 2 });
 * pool.run("mark");
 * assert.deepEqual([...new Int32Array(memory.buffer, 1024, 2)], [1, 2]);
 * ```
 */
export function startThreadPool(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  ctl: number,
  entries: string[],
  options: ThreadPoolOptions = {},
): ThreadPool {
  const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
    throw new RangeError(`threads must be an integer in 1..64, got ${threads}`);
  }
  if (!(memory.buffer instanceof SharedArrayBuffer)) {
    throw new RangeError("createThreadPool: the memory must be shared ({ shared: true })");
  }
  if (ctl % 64 !== 0 || ctl + CTL.BYTES > memory.buffer.byteLength) {
    throw new RangeError(`createThreadPool: bad control block offset ${ctl}`);
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  const w = new Int32Array(memory.buffer, ctl, CTL.BYTES / 4);
  w.fill(0);
  Atomics.store(w, CTL.TIMEOUT_MS / 4, timeoutMs);
  const more = options.more ?? [];
  const instance = new WebAssembly.Instance(module, kernelImports(memory, more));
  const fns = entries.map((n) => {
    const fn = instance.exports[n];
    if (typeof fn !== "function") throw new RangeError(`createThreadPool: no export ${n}`);
    return fn as (...a: number[]) => void;
  });
  const workers: Worker[] = [];
  if (threads > 1) {
    try {
      for (let tid = 1; tid < threads; tid++) {
        // node:worker_threads (Deno's Node layer): its workers can be unref'd, so an idle
        // pool never keeps the process alive (a Web Worker does).
        const worker = spare.shift() ?? newWorker();
        workers.push(worker);
        worker.postMessage({ module, memory, more, ctl, tid, entries });
      }
      // The workers start in their own threads while this one blocks.
      const start = performance.now();
      for (;;) {
        const ready = Atomics.load(w, CTL.READY / 4);
        if (ready >= threads - 1) break;
        if (performance.now() - start > Math.max(timeoutMs, 10_000)) {
          throw new ThreadError(
            `only ${ready} of ${threads - 1} worker threads started within ` +
              `${Math.max(timeoutMs, 10_000)} ms`,
          );
        }
        Atomics.wait(w, CTL.READY / 4, ready, 50);
      }
      const err = Atomics.load(w, CTL.ERR / 4);
      if (err !== 0) {
        throw new ThreadError(`thread ${err - 1} could not start: ${readMessage(memory, ctl)}`);
      }
    } catch (e) {
      for (const wk of workers) wk.terminate();
      throw e;
    }
  }
  let failed: ThreadError | null = null;
  let closed = false;
  const message = () => readMessage(memory, ctl);
  const fail = (err: ThreadError): never => {
    failed = err;
    pool.close();
    throw err;
  };
  const pool: ThreadPool = {
    threads,
    instance,
    workers,
    run(entry: string, args: ArrayLike<number> = NO_ARGS) {
      if (failed) throw new ThreadError(`thread pool failed earlier: ${(failed as Error).message}`);
      if (closed) throw new ThreadError("thread pool is closed");
      const cmd = entries.indexOf(entry);
      if (cmd < 0) throw new RangeError(`ThreadPool.run: unknown entry ${entry}`);
      if (args.length > 8) throw new RangeError(`ThreadPool.run: at most 8 arguments`);
      for (let i = 0; i < 8; i++) w[CTL.ARGS / 4 + i] = i < args.length ? args[i] : 0;
      w[CTL.CMD / 4] = cmd;
      w[CTL.NTHREADS / 4] = threads;
      Atomics.store(w, CTL.DONE / 4, 0);
      const gen = Atomics.add(w, CTL.GEN / 4, 1) + 1;
      if (threads > 1) Atomics.notify(w, CTL.GEN / 4);
      const a = CTL.ARGS / 4;
      try {
        fns[cmd](
          0,
          threads,
          w[a],
          w[a + 1],
          w[a + 2],
          w[a + 3],
          w[a + 4],
          w[a + 5],
          w[a + 6],
          w[a + 7],
        );
      } catch (e) {
        Atomics.compareExchange(w, CTL.ERR / 4, 0, 1);
        Atomics.notify(w, CTL.BGEN / 4);
        // Let the workers unwind before reporting.
        waitDone(gen, Math.min(timeoutMs || 1000, 1000));
        fail(new ThreadError(`thread 0 failed: ${(e as Error).message}`));
      }
      // A failed or timed-out step has unwound the barriers: the workers finish at once.
      const flagged = Atomics.load(w, CTL.ERR / 4) !== 0;
      const late = waitDone(gen, flagged ? Math.min(timeoutMs || 1000, 1000) : timeoutMs);
      const err = Atomics.load(w, CTL.ERR / 4);
      if (err === ERR_TIMEOUT || late.length) {
        const who = late.length ? late.join(", ") : "a thread";
        fail(
          new ThreadError(
            `thread ${who} did not reach a barrier or finish within ${timeoutMs} ms ` +
              "(terminated or hung)",
          ),
        );
      }
      if (err !== 0) fail(new ThreadError(`thread ${err - 1} failed: ${message()}`));
    },
    [Symbol.dispose]() {
      pool.close();
    },
    close() {
      if (closed) return;
      registry.unregister(pool);
      closed = true;
      Atomics.store(w, CTL.CMD / 4, -1);
      Atomics.add(w, CTL.GEN / 4, 1);
      Atomics.notify(w, CTL.GEN / 4);
      for (const wk of workers) wk.terminate();
    },
  };
  /** Waits until every worker finished step `gen`; returns the ids of those that did not. */
  function waitDone(gen: number, limitMs: number): number[] {
    const start = performance.now();
    for (;;) {
      const done = Atomics.load(w, CTL.DONE / 4);
      if (done >= threads - 1) return [];
      if (limitMs > 0 && performance.now() - start > limitMs) break;
      Atomics.wait(w, CTL.DONE / 4, done, 5);
    }
    const late: number[] = [];
    for (let tid = 1; tid < threads; tid++) {
      if (Atomics.load(w, CTL.FINISHED / 4 + tid) !== gen) late.push(tid);
    }
    return late;
  }
  registry.register(pool, workers, pool);
  return pool;
}

/** Stops the workers of a pool that was dropped without `close()`. */
const registry = new FinalizationRegistry<Worker[]>((workers) => {
  for (const w of workers) w.terminate();
});

/** The UTF-8 message a failed thread wrote into the control block. */
function readMessage(memory: WebAssembly.Memory, ctl: number): string {
  const bytes = new Uint8Array(memory.buffer, ctl + CTL.MSG, 256);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.slice(0, end < 0 ? 256 : end));
}

/**
 * {@linkcode startThreadPool} as a promise (the form phase A's callers use).
 *
 * @param module The compiled kernels.
 * @param memory A shared memory.
 * @param ctl Byte offset of the control block.
 * @param entries Export names the pool may run.
 * @param options Thread count and timeout.
 * @returns The pool, its workers ready.
 * @throws {RangeError} for a thread count outside 1..64 or a non-shared memory.
 * @throws {ThreadError} when a worker cannot start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { WasmFunc } from "../codegen/wasm_asm.ts";
 * import { assembleModule } from "../codegen/wasm_assemble.ts";
 * import { createThreadPool } from "./threads.ts";
 * const f = new WasmFunc("mark", [["tid", "i32"], ["n", "i32"], ...Array.from({ length: 8 },
 *   (_, i) => [`a${i}`, "i32"] as [string, "i32"])]);
 * f.get("tid").i32(4).op("i32.mul").get("tid").i32(1).op("i32.add").mem("i32.store", 1024);
 * const bytes = assembleModule([f], [{ minPages: 1, maxPages: 1, shared: true }]);
 * const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
 * const pool = await createThreadPool(new WebAssembly.Module(bytes), memory, 0, ["mark"], { threads: 2 });
 * pool.run("mark");
 * assert.deepEqual([...new Int32Array(memory.buffer, 1024, 2)], [1, 2]);
 * pool.close();
 * ```
 */
export function createThreadPool(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  ctl: number,
  entries: string[],
  options: ThreadPoolOptions = {},
): Promise<ThreadPool> {
  try {
    return Promise.resolve(startThreadPool(module, memory, ctl, entries, options));
  } catch (e) {
    return Promise.reject(e);
  }
}

/**
 * A pool that runs the `step` export of a whole-step module (codegen/compile_wasm.ts
 * `StartPool`): `run()` is `pool.run("step")`.
 *
 * @param module The module (codegen/emit_wasm.ts `emitWasmStep`).
 * @param memory Its shared memory.
 * @param ctl Byte offset of its control block.
 * @param threads Threads including the caller's.
 * @param more Further memories of weights past 4 GiB.
 * @returns `run` and `close`.
 * @throws {ThreadError} when a worker cannot start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { compileModel } from "../codegen/compile.ts";
 * import { startStepPool } from "./threads.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const w = randomWeights(c, 1);
 * const one = compileModel(c, w, { backend: "wasm" });
 * const two = compileModel(c, w, { backend: "wasm", threads: 2, startPool: startStepPool });
 * assert.deepEqual(two.forward([1, 2, 3], 0), one.forward([1, 2, 3], 0));
 * two.close();
 * ```
 */
export function startStepPool(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  ctl: number,
  threads: number,
  more: WebAssembly.Memory[] = [],
): { run(): void; close(): void } {
  const pool = startThreadPool(module, memory, ctl, ["step"], { threads, more });
  return { run: () => pool.run("step"), close: () => pool.close() };
}
