/**
 * A pool of worker threads that run generated WASM steps on one shared `WebAssembly.Memory`:
 * `node:worker_threads` in Deno and Node (unref'd: an idle pool never keeps the process
 * alive), Web Workers from a blob URL in a browser. Every worker instantiates the same
 * module over the same memory;
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
 * The caller blocks (`Atomics.wait`), so in a browser it must be a worker, not a page's main
 * thread, and the page must be cross-origin isolated, or its shared memory cannot reach the
 * workers ({@linkcode threadsUnavailable} says which is missing). A browser starts a worker
 * only while its parent's event loop runs, so there the pool's workers are started and
 * awaited first ({@linkcode createThreadPool}, or {@linkcode prestartWorkers} then
 * {@linkcode spareWorkersStarted}); {@linkcode startThreadPool} then blocks only on workers
 * that run.
 *
 * @module
 */
import { ThreadError } from "./thread_error.ts";
import { CTL, ERR_TIMEOUT } from "../codegen/wasm/barrier.ts";
import {
  NODE,
  type PoolWorker,
  prestartWorkers,
  spareWorkersStarted,
  startedSpares,
  takeWorker,
  threadsUnavailable,
} from "./thread_workers.ts";

export { ThreadError } from "./thread_error.ts";
export {
  dropSpareWorkers,
  type PoolWorker,
  prestartWorkers,
  spareWorkersStarted,
  threadsUnavailable,
} from "./thread_workers.ts";

/** Options of {@linkcode createThreadPool}. */
export interface ThreadPoolOptions {
  /** Threads including the caller's (default `navigator.hardwareConcurrency`; 1..64). */
  threads?: number;
  /** Milliseconds without progress before a step fails (default 10000; 0 = never). */
  timeoutMs?: number;
  /** Further memories the module imports as `env.memory1`, ... (weights past 4 GiB). */
  more?: WebAssembly.Memory[];
  /**
   * Thread 0 runs in a worker too (default false): the caller only starts each step and
   * waits for it, and {@linkcode ThreadPool.runAsync} waits without blocking, so the
   * caller's event loop (a server's HTTP) goes on while the step runs. `threads` workers
   * then compute, one more than without.
   */
  offload?: boolean;
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
  /**
   * {@linkcode ThreadPool.run} that waits with `Atomics.waitAsync` when thread 0 is a worker
   * (`offload`), so the caller's event loop runs meanwhile; otherwise `run` itself.
   *
   * @param entry Export name (one of the pool's entry points).
   * @param args Up to 8 i32 arguments.
   * @returns Resolves when every thread finished.
   * @throws {ThreadError} (rejects) when a thread fails or times out (the pool is then
   *   closed), or when a step is still running.
   */
  runAsync(entry: string, args?: ArrayLike<number>): Promise<void>;
  /** Terminates the workers (idempotent). */
  close(): void;
  /** Same as `close()` (`using pool = ...`). */
  [Symbol.dispose](): void;
  /** The workers (thread 1 .. threads - 1; with `offload` 0 .. threads - 1), for tests. */
  readonly workers: readonly PoolWorker[];
}

const NO_ARGS: number[] = [];

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
 *   within the timeout; in a browser, when {@linkcode threadsUnavailable} names what is
 *   missing or the workers were not started and awaited first (see the module doc).
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
  // Not `instanceof SharedArrayBuffer`: a page without cross-origin isolation has shared
  // WebAssembly memories but no SharedArrayBuffer global (codegen/wasm/scan.ts).
  if (memory.buffer instanceof ArrayBuffer) {
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
  const workers: PoolWorker[] = [];
  const first = options.offload ? 0 : 1; // the first thread that is a worker
  const nWorkers = threads - first;
  if (nWorkers > 0) {
    const why = threadsUnavailable();
    if (why !== null) throw new ThreadError(`${threads} threads: ${why}`);
    if (!NODE && startedSpares() < nWorkers) {
      // This thread is about to block, and a browser would not start a worker meanwhile.
      throw new ThreadError(
        `${threads} threads: only ${startedSpares()} of ${nWorkers} Web Workers have ` +
          "started, and a browser starts them only while the caller's event loop runs: " +
          "await createThreadPool (or prestartWorkers, then spareWorkersStarted) first",
      );
    }
    try {
      for (let tid = first; tid < threads; tid++) {
        // Deno/Node: an unref'd node:worker_threads worker, so an idle pool never keeps the
        // process alive (a Web Worker would); a browser: a Web Worker that answered.
        const worker = takeWorker();
        workers.push(worker);
        worker.postMessage({ module, memory, more, ctl, tid, entries });
      }
      // The workers start in their own threads while this one blocks.
      const start = performance.now();
      for (;;) {
        const ready = Atomics.load(w, CTL.READY / 4);
        if (ready >= nWorkers) break;
        if (performance.now() - start > Math.max(timeoutMs, 10_000)) {
          throw new ThreadError(
            `only ${ready} of ${nWorkers} worker threads started within ` +
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
  let running = false; // a step started and not yet ended
  /** Starts a step on the workers: its arguments, command and generation; returns it. */
  const begin = (entry: string, args: ArrayLike<number>): number => {
    if (failed) throw new ThreadError(`thread pool failed earlier: ${(failed as Error).message}`);
    if (closed) throw new ThreadError("thread pool is closed");
    if (running) throw new ThreadError("a step is still running on this thread pool");
    const cmd = entries.indexOf(entry);
    if (cmd < 0) throw new RangeError(`ThreadPool.run: unknown entry ${entry}`);
    if (args.length > 8) throw new RangeError(`ThreadPool.run: at most 8 arguments`);
    for (let i = 0; i < 8; i++) w[CTL.ARGS / 4 + i] = i < args.length ? args[i] : 0;
    w[CTL.CMD / 4] = cmd;
    w[CTL.NTHREADS / 4] = threads;
    Atomics.store(w, CTL.DONE / 4, 0);
    running = true;
    const gen = Atomics.add(w, CTL.GEN / 4, 1) + 1;
    if (nWorkers > 0) Atomics.notify(w, CTL.GEN / 4);
    return gen;
  };
  /** Ends a step: throws for the threads that are `late` or that flagged an error. */
  const end = (late: number[]): void => {
    running = false;
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
  };
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
      const gen = begin(entry, args);
      if (!options.offload) {
        const a = CTL.ARGS / 4;
        try {
          fns[w[CTL.CMD / 4]](
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
          running = false;
          fail(new ThreadError(`thread 0 failed: ${(e as Error).message}`));
        }
      }
      // A failed or timed-out step has unwound the barriers: the workers finish at once.
      const flagged = Atomics.load(w, CTL.ERR / 4) !== 0;
      end(waitDone(gen, flagged ? Math.min(timeoutMs || 1000, 1000) : timeoutMs));
    },
    async runAsync(entry: string, args: ArrayLike<number> = NO_ARGS) {
      if (!options.offload) return pool.run(entry, args);
      const gen = begin(entry, args);
      const start = performance.now();
      // A pending Atomics.waitAsync does not keep the process alive; this timer does.
      const alive = setInterval(() => {}, 1000);
      for (;;) {
        const done = Atomics.load(w, CTL.DONE / 4);
        if (done >= nWorkers) break;
        if (timeoutMs > 0 && performance.now() - start > timeoutMs) break;
        const r = Atomics.waitAsync(w, CTL.DONE / 4, done, 50);
        if (r.async) await r.value;
      }
      clearInterval(alive);
      end(waitDone(gen, 1));
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
      if (done >= nWorkers) return [];
      if (limitMs > 0 && performance.now() - start > limitMs) break;
      Atomics.wait(w, CTL.DONE / 4, done, 5);
    }
    const late: number[] = [];
    for (let tid = first; tid < threads; tid++) {
      if (Atomics.load(w, CTL.FINISHED / 4 + tid) !== gen) late.push(tid);
    }
    return late;
  }
  registry.register(pool, workers, pool);
  return pool;
}

/** Stops the workers of a pool that was dropped without `close()`. */
const registry = new FinalizationRegistry<PoolWorker[]>((workers) => {
  for (const w of workers) w.terminate();
});

/** The UTF-8 message a failed thread wrote into the control block. */
function readMessage(memory: WebAssembly.Memory, ctl: number): string {
  const bytes = new Uint8Array(memory.buffer, ctl + CTL.MSG, 256);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(bytes.slice(0, end < 0 ? 256 : end));
}

/**
 * {@linkcode startThreadPool} as a promise (the form phase A's callers use). In a browser it
 * first starts the workers and waits for them without blocking
 * ({@linkcode spareWorkersStarted}), which {@linkcode startThreadPool} cannot do there.
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
export async function createThreadPool(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  ctl: number,
  entries: string[],
  options: ThreadPoolOptions = {},
): Promise<ThreadPool> {
  const threads = options.threads ?? navigator.hardwareConcurrency ?? 1;
  if (!NODE && (threads > 1 || options.offload) && threadsUnavailable() === null) {
    // A browser: the workers start while this waits asynchronously, then the pool blocks.
    prestartWorkers(threads - (options.offload ? 0 : 1));
    await spareWorkersStarted(Math.max(options.timeoutMs ?? 10_000, 10_000));
  }
  return startThreadPool(module, memory, ctl, entries, options);
}

/**
 * A pool that runs the `step` export of a whole-step module (codegen/compile_wasm.ts
 * `StartPool`): `run()` is `pool.run("step")`, `runAsync()` is `pool.runAsync("step")`.
 *
 * @param module The module (codegen/emit_wasm.ts `emitWasmStep`).
 * @param memory Its shared memory.
 * @param ctl Byte offset of its control block.
 * @param threads Threads including the caller's.
 * @param more Further memories of weights past 4 GiB.
 * @param offload Thread 0 in a worker too ({@linkcode ThreadPoolOptions.offload}).
 * @returns `run`, `runAsync` and `close`.
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
  offload = false,
): { run(): void; runAsync(): Promise<void>; close(): void } {
  const pool = startThreadPool(module, memory, ctl, ["step"], { threads, more, offload });
  return {
    run: () => pool.run("step"),
    runAsync: () => pool.runAsync("step"),
    close: () => pool.close(),
  };
}
