/**
 * The model worker: the entry `deno task build:web` bundles into `web/dist/worker.js`, which
 * web/worker_model.ts `loadModelInWorker` starts as a module Web Worker. It loads one model
 * (`load`) with `loadModel` on the WASM backend, whose thread pool starts its own workers
 * from here (nested workers: this worker is thread 0 and may block in `Atomics.wait`, which
 * a page's main thread may not), and runs `generate` requests one after another, posting
 * each text piece as it comes. A `stop` message is handled at once, not queued: it aborts
 * its generation, which looks at its signal before every token; after each piece the worker
 * gives its event loop one turn (a `MessageChannel` message, not a clamped timer) so that a
 * `stop` can arrive. Every failure is posted as one line (`error`). The messages are
 * web/worker_model.ts `ToWorker` and `FromWorker`.
 *
 * @module
 */
import { loadModel, type Model } from "../runtime/model.ts";
import type { FromWorker, ToWorker } from "./worker_model.ts";

/** The worker's global scope, as far as this file uses it. */
const scope = globalThis as unknown as {
  postMessage(message: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
};

let model: Model | null = null;
/** Requests run one after another (a model generates one sequence at a time). */
let queue: Promise<void> = Promise.resolve();
/** The abort controller of each generation queued or running, by request id. */
const running = new Map<number, AbortController>();

/** One turn of the event loop (so that a queued `stop` message is handled): one channel. */
const channel = new MessageChannel();
let turned: (() => void) | null = null;
channel.port1.onmessage = () => turned?.();
const turn = (): Promise<void> =>
  new Promise((resolve) => {
    turned = resolve;
    channel.port2.postMessage(null);
  });

async function handle(m: ToWorker): Promise<void> {
  if (m.type === "load") {
    if (model !== null) throw new Error("this worker already holds a model");
    const source = typeof m.source === "string"
      ? new URL(m.source)
      : m.source instanceof ReadableStream
      ? new Response(m.source)
      : m.source;
    model = await loadModel(source, {
      ...m.options,
      onProgress: (event) => scope.postMessage({ type: "progress", event }),
    });
    const { config, backend, threads, kvCapacity } = model;
    scope.postMessage({ type: "loaded", config, backend, threads, kvCapacity });
  } else if (m.type === "generate") {
    if (model === null) throw new Error("no model is loaded in this worker");
    const signal = running.get(m.id)!.signal;
    try {
      for await (const text of model.generate(m.prompt, { ...m.options, signal })) {
        scope.postMessage({ type: "piece", id: m.id, text });
        await turn();
      }
    } finally {
      running.delete(m.id);
    }
    scope.postMessage({ type: "done", id: m.id, stats: model.stats });
  }
}

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === "stop") {
    running.get(m.id)?.abort();
    return;
  }
  if (m.type === "generate") running.set(m.id, new AbortController());
  queue = queue.then(() => handle(m)).catch((err) => {
    const id = m.type === "generate" ? m.id : undefined;
    scope.postMessage({ type: "error", id, message: String((err as Error)?.message ?? err) });
  });
};
