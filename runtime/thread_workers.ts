/**
 * The workers of the thread pool (runtime/threads.ts): the loop each one runs (its source,
 * for `node:worker_threads` in Deno and Node and for Web Workers in a browser), making
 * them, and the spare workers a browser must start before a pool may block on them.
 *
 * @module
 */
import { CTL } from "../codegen/wasm/barrier.ts";
import { Worker } from "node:worker_threads";
import { ThreadError } from "./thread_error.ts";

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
export const NODE = typeof Deno !== "undefined" ||
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
export function takeWorker(): PoolWorker {
  if (NODE) return spare.shift() ?? newWorker();
  const i = spare.findIndex((w) => webStarts.get(w)?.started);
  return spare.splice(i, 1)[0];
}

/** In a browser: how many spare workers have started (a pool can block on only those). */
export function startedSpares(): number {
  return spare.filter((w) => webStarts.get(w)?.started).length;
}
