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
  readonly workers: readonly PoolWorker[];
}

const NO_ARGS: number[] = [];

/**
 * The worker loop, a function of the pool's one message (module, memory, control block,
 * thread id); {@linkcode NODE_WORKER_SOURCE} and {@linkcode WEB_WORKER_SOURCE} wire it to
 * their runtime's message event.
 */
const WORKER_LOOP = `
const CTL = ${JSON.stringify(CTL)};
const start = (data) => {
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
      if (typeof Atomics.waitAsync !== "function") {
        Atomics.wait(w, CTL.GEN / 4, gen); // a browser without waitAsync (terminate still works)
      } else {
        const r = Atomics.waitAsync(w, CTL.GEN / 4, gen);
        if (r.async) await r.value;
      }
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
};
`;

/** A pool worker's source under `node:worker_threads` (Deno, Node): `eval: true`. */
const NODE_WORKER_SOURCE = `${WORKER_LOOP}
require("node:worker_threads").parentPort.on("message", start);
`;

/**
 * A pool worker's source as a Web Worker (a browser): it answers the parent's empty message
 * (sent when it is made) with an empty message, so that the parent knows its messages reach
 * it ({@linkcode spareWorkersStarted}); the next message starts the loop.
 */
const WEB_WORKER_SOURCE = `${WORKER_LOOP}
self.onmessage = (e) => (e.data === null ? postMessage(null) : start(e.data));
`;

/**
 * Whether pool workers are `node:worker_threads` workers (Deno, Node) or Web Workers (a
 * browser: no `Deno`, no Node `process`).
 */
const NODE = typeof Deno !== "undefined" ||
  typeof (globalThis as { process?: { versions?: { node?: unknown } } }).process?.versions
      ?.node === "string";

/**
 * A pool worker: a `node:worker_threads` `Worker` in Deno and Node, a Web Worker in a
 * browser.
 */
export type PoolWorker = Worker | globalThis.Worker;

/** Workers started by {@linkcode prestartWorkers}, taken first by the next pool. */
const spare: PoolWorker[] = [];

/** A Web Worker's start: whether it ran its script, or why it could not. */
interface WebStart {
  started: boolean;
  error: string | null;
  /** Settles when it started or failed. */
  done: Promise<void>;
}

/** The start of each Web Worker {@linkcode newWorker} made. */
const webStarts = new WeakMap<PoolWorker, WebStart>();

/** The blob URL of {@linkcode WEB_WORKER_SOURCE} (one per realm, kept: workers load it late). */
let webSourceUrl: string | null = null;

/**
 * A pool worker; it waits for its module and memory in a message. In Deno/Node it is
 * unref'd (an idle pool never keeps the process alive); in a browser it is a Web Worker
 * from a blob URL, sent an empty message at once, whose answer says it started.
 */
function newWorker(): PoolWorker {
  if (NODE) {
    const worker = new Worker(NODE_WORKER_SOURCE, { eval: true });
    worker.unref();
    return worker;
  }
  webSourceUrl ??= URL.createObjectURL(
    new Blob([WEB_WORKER_SOURCE], { type: "text/javascript" }),
  );
  const worker = new globalThis.Worker(webSourceUrl);
  const start: WebStart = { started: false, error: null, done: Promise.resolve() };
  start.done = new Promise((resolve) => {
    worker.onmessage = () => {
      start.started = true;
      worker.onmessage = null;
      resolve();
    };
    worker.onerror = (e) => {
      e.preventDefault();
      start.error ??= e.message || "its script did not load";
      resolve();
    };
  });
  webStarts.set(worker, start);
  worker.postMessage(null);
  return worker;
}

/**
 * Why this context cannot run a pool of more than one thread, or null when it can. Deno and
 * Node always can. A browser context needs cross-origin isolation (`crossOriginIsolated`:
 * the page served with `Cross-Origin-Opener-Policy: same-origin` and
 * `Cross-Origin-Embedder-Policy: require-corp`), else its shared memory cannot reach a
 * worker; it must be a worker, not a page's main thread, which may not block in
 * `Atomics.wait`; and it must be able to start Web Workers.
 *
 * @returns One line naming what is missing, or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { threadsUnavailable } from "./threads.ts";
 * assert.equal(threadsUnavailable(), null); // Deno
 * ```
 */
export function threadsUnavailable(): string | null {
  if (NODE) return null;
  if (!(globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated) {
    return "more than one thread needs cross-origin isolation (serve the page with " +
      "Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp; " +
      "crossOriginIsolated is false here)";
  }
  if ("document" in globalThis) {
    return "a page's main thread may not block in Atomics.wait: run the model in a Worker " +
      "(web/gollm.ts loadModelInWorker)";
  }
  if (typeof globalThis.Worker !== "function") return "this context cannot start Web Workers";
  return null;
}

/**
 * Starts pool workers ahead of the pool, so that their start (a new isolate and Node
 * layer: about 0.1 s on this project's 2-core VM) runs while the caller still reads the
 * weights; the next {@linkcode startThreadPool} takes them before starting its own. Keeps
 * at most `n` spare; {@linkcode dropSpareWorkers} ends them if no pool comes. In a browser
 * the workers start only while the caller's event loop runs: await
 * {@linkcode spareWorkersStarted} before {@linkcode startThreadPool}. Starts nothing where
 * {@linkcode threadsUnavailable} says no pool can run.
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
  if (threadsUnavailable() !== null) return;
  while (spare.length < Math.min(n, 63)) spare.push(newWorker());
}

/** Terminates the workers {@linkcode prestartWorkers} started that no pool took. */
export function dropSpareWorkers(): void {
  for (const w of spare.splice(0)) w.terminate();
}

/**
 * Waits, without blocking, until every spare worker ({@linkcode prestartWorkers}) has
 * started and answered a message. Measured in Chromium 150 (a module worker starting
 * classic blob workers, each case a 3 s `Atomics.wait`): a worker that blocks right after
 * `new Worker()` and `postMessage`, even after yielding one task first, never sees the
 * worker run; one that waits until the worker has posted to it from its script's top
 * level, then posts and blocks, still times out: the first messages reach the worker only
 * once the parent's event loop has run after the worker started. Once the worker has
 * answered a message of the parent, the parent's next message reaches it while the parent
 * blocks (0.1-0.4 ms, with a shared `WebAssembly.Memory` and a `WebAssembly.Module`).
 * Resolves at once in Deno and Node, whose workers start while the caller blocks.
 *
 * @param timeoutMs Most milliseconds to wait (default 10000).
 * @throws {ThreadError} when a worker's script fails or they do not all start in time
 *   (the spare workers are then terminated).
 *
 * @example
 * ```ts
 * import { dropSpareWorkers, prestartWorkers, spareWorkersStarted } from "./threads.ts";
 * prestartWorkers(1);
 * await spareWorkersStarted();
 * dropSpareWorkers();
 * ```
 */
export async function spareWorkersStarted(timeoutMs = 10_000): Promise<void> {
  if (NODE || spare.length === 0) return;
  const starts = spare.map((w) => webStarts.get(w)!);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
  await Promise.race([Promise.all(starts.map((s) => s.done)), timeout]);
  clearTimeout(timer);
  const failed = starts.find((s) => s.error !== null);
  const started = starts.filter((s) => s.started).length;
  if (failed || started < starts.length) {
    dropSpareWorkers();
    throw new ThreadError(
      failed
        ? `a pool worker could not start: ${failed.error}`
        : `only ${started} of ${starts.length} worker threads started within ${timeoutMs} ms`,
    );
  }
}

/** Takes a spare worker (in a browser, one that started), else starts one (Deno/Node). */
function takeWorker(): PoolWorker {
  if (NODE) return spare.shift() ?? newWorker();
  const i = spare.findIndex((w) => webStarts.get(w)?.started);
  return spare.splice(i, 1)[0];
}

/** In a browser: how many spare workers have started (a pool can block on only those). */
function startedSpares(): number {
  return spare.filter((w) => webStarts.get(w)?.started).length;
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
  if (threads > 1) {
    const why = threadsUnavailable();
    if (why !== null) throw new ThreadError(`${threads} threads: ${why}`);
    if (!NODE && startedSpares() < threads - 1) {
      // This thread is about to block, and a browser would not start a worker meanwhile.
      throw new ThreadError(
        `${threads} threads: only ${startedSpares()} of ${threads - 1} Web Workers have ` +
          "started, and a browser starts them only while the caller's event loop runs: " +
          "await createThreadPool (or prestartWorkers, then spareWorkersStarted) first",
      );
    }
    try {
      for (let tid = 1; tid < threads; tid++) {
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
  if (!NODE && threads > 1 && threadsUnavailable() === null) {
    // A browser: the workers start while this waits asynchronously, then the pool blocks.
    prestartWorkers(threads - 1);
    await spareWorkersStarted(Math.max(options.timeoutMs ?? 10_000, 10_000));
  }
  return startThreadPool(module, memory, ctl, entries, options);
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
