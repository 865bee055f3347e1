/**
 * A model that runs in a dedicated Web Worker (web/worker.ts, bundled as
 * `web/dist/worker.js`), driven from a page by messages: {@linkcode loadModelInWorker}.
 * A page's main thread may not block in `Atomics.wait`, which the thread pool's caller does
 * between steps (runtime/threads.ts), and a long generation on it would freeze the page;
 * in the worker the model runs on `threads` threads (the worker is thread 0 and starts the
 * pool's workers itself, nested) and streams its text pieces back with `postMessage`.
 *
 * More than one thread needs cross-origin isolation (`crossOriginIsolated`: COOP/COEP
 * headers); without it the load fails with one line saying so.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { ProgressCallback, ProgressEvent } from "../core/progress.ts";
import type {
  Backend,
  GenerateOptions,
  GenerateStats,
  LoadModelOptions,
} from "../runtime/model.ts";

/** Options of {@linkcode loadModelInWorker}: those of `loadModel` that cross a message. */
export interface WorkerLoadOptions extends
  Pick<
    LoadModelOptions,
    "backend" | "threads" | "kvCapacity" | "prefillChunk" | "cacheTypeK" | "cacheTypeV" | "warmup"
  > {
  /** Called with the worker's load progress (reading, compiling). */
  onProgress?: ProgressCallback;
  /**
   * The worker's script, a module (default `./worker.js` beside the bundle that holds this
   * code: `web/dist/worker.js`).
   */
  workerUrl?: string | URL;
}

/**
 * Options of {@linkcode WorkerModel.generate}: the sampling options of `generate`, and a
 * `signal` that stops the generation in the worker.
 */
export type WorkerGenerateOptions =
  & Pick<
    GenerateOptions,
    | "maxTokens"
    | "temperature"
    | "topK"
    | "topP"
    | "minP"
    | "repeatPenalty"
    | "seed"
    | "stop"
    | "addBos"
    | "special"
  >
  & {
    /**
     * Stops the generation: the worker ends it before its next token (as `generate`'s
     * `signal`), no further piece is yielded, and the call returns once the worker has
     * stopped, with `stats.stopReason` `"aborted"`. It stays on the page (an `AbortSignal`
     * cannot cross a message); the worker gets a `stop` message.
     */
    signal?: AbortSignal;
  };

/** A model loaded in a Web Worker by {@linkcode loadModelInWorker}. */
export interface WorkerModel {
  /** The validated config. */
  readonly config: ModelConfig;
  /** The forward implementation the worker runs. */
  readonly backend: Backend;
  /** Threads a forward step runs on (the worker and its pool's workers). */
  readonly threads: number;
  /** Slots in each layer's KV ring. */
  readonly kvCapacity: number;
  /** Stats of the last finished {@linkcode WorkerModel.generate} call, or null. */
  readonly stats: GenerateStats | null;
  /**
   * Generates a continuation of `prompt` in the worker, streaming text pieces as the
   * worker posts them (the prompt is not echoed). One call at a time. Leaving the loop
   * early (`break`) stops the worker's generation too, so the next call starts at once.
   *
   * @param prompt Text or token ids.
   * @param options Sampling and limits.
   * @returns Text pieces.
   * @throws {Error} with the worker's one-line message when generation fails, or for a
   *   second concurrent call or a closed model.
   */
  generate(
    prompt: string | readonly number[],
    options?: WorkerGenerateOptions,
  ): AsyncIterable<string>;
  /** Terminates the worker and its threads (idempotent). */
  close(): void;
}

/** The source of a model, as a page has it: a URL, a file or its bytes. */
export type WorkerModelSource = URL | string | Blob | ArrayBuffer | Uint8Array | Response;

/** A message from the page to the worker. */
export type ToWorker =
  | {
    type: "load";
    source: string | Blob | ArrayBuffer | Uint8Array | ReadableStream<Uint8Array>;
    options: Omit<WorkerLoadOptions, "onProgress" | "workerUrl">;
  }
  | {
    type: "generate";
    id: number;
    prompt: string | readonly number[];
    /** The sampling options (the page keeps `signal`; a `stop` message carries it over). */
    options: Omit<WorkerGenerateOptions, "signal">;
  }
  /** Ends generation `id` before its next token (handled at once, not queued). */
  | { type: "stop"; id: number };

/** A message from the worker to the page. */
export type FromWorker =
  | { type: "progress"; event: ProgressEvent }
  | {
    type: "loaded";
    config: ModelConfig;
    backend: Backend;
    threads: number;
    kvCapacity: number;
  }
  | { type: "piece"; id: number; text: string }
  | { type: "done"; id: number; stats: GenerateStats | null }
  | { type: "error"; id?: number; message: string };

/**
 * Loads a GGUF into a new dedicated Web Worker and returns a handle that generates there.
 *
 * @param source A URL (absolute, or a string relative to the page), a `File`/`Blob`, the
 *   bytes (copied to the worker), or a fetched `Response` (its body is transferred to the
 *   worker, which reads it as it arrives).
 * @param options Threads (default in the worker: `navigator.hardwareConcurrency` when the
 *   page is cross-origin isolated, else 1), KV capacity, progress callback, worker URL.
 * @returns The model, loaded.
 * @throws {Error} with the worker's one-line message: a failed download (`GET URL: HTTP
 *   404`), a malformed file, `2 threads: more than one thread needs cross-origin isolation
 *   ...`; or `the model worker failed: ...` when its script cannot run.
 *
 * @example
 * ```ts ignore
 * import { loadModelInWorker } from "./dist/gollm.js";
 * const model = await loadModelInWorker("model.gguf", { threads: 2 });
 * for await (const piece of model.generate("Once upon a time", { maxTokens: 40 })) {
 *   document.body.append(piece);
 * }
 * ```
 */
export function loadModelInWorker(
  source: WorkerModelSource,
  options: WorkerLoadOptions = {},
): Promise<WorkerModel> {
  const { onProgress, workerUrl, ...loadOptions } = options;
  const worker = new Worker(workerUrl ?? new URL("./worker.js", import.meta.url), {
    type: "module",
  });
  return new Promise((resolve, reject) => {
    const fail = (message: string) => {
      worker.terminate();
      reject(new Error(message));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      fail(`the model worker failed: ${e.message || "its script did not load"}`);
    };
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if (m.type === "progress") onProgress?.(m.event);
      else if (m.type === "error") fail(m.message);
      else if (m.type === "loaded") resolve(new Handle(worker, m));
    };
    let sent: Extract<ToWorker, { type: "load" }>["source"];
    const transfer: Transferable[] = [];
    if (source instanceof Response) {
      if (!source.ok || source.body === null) {
        return fail(`${source.url || "the response"}: HTTP ${source.status}, no model bytes`);
      }
      sent = source.body;
      transfer.push(source.body);
    } else if (source instanceof URL || typeof source === "string") {
      sent = new URL(source, location.href).href;
    } else {
      sent = source;
    }
    const message: ToWorker = { type: "load", source: sent, options: loadOptions };
    worker.postMessage(message, transfer);
  });
}

/** {@linkcode WorkerModel} over the worker's messages. */
class Handle implements WorkerModel {
  readonly config: ModelConfig;
  readonly backend: Backend;
  readonly threads: number;
  readonly kvCapacity: number;
  stats: GenerateStats | null = null;
  #worker: Worker;
  #closed = false;
  #busy = false;
  /** Id of the latest generate call; messages of earlier (abandoned) calls are dropped. */
  #id = 0;
  /** Where the current call's messages go. */
  #deliver: ((m: FromWorker) => void) | null = null;

  constructor(worker: Worker, loaded: Extract<FromWorker, { type: "loaded" }>) {
    this.#worker = worker;
    this.config = loaded.config;
    this.backend = loaded.backend;
    this.threads = loaded.threads;
    this.kvCapacity = loaded.kvCapacity;
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if ("id" in m && m.id !== this.#id) return;
      this.#deliver?.(m);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      this.#deliver?.({ type: "error", message: `the model worker failed: ${e.message}` });
    };
  }

  async *generate(
    prompt: string | readonly number[],
    options: WorkerGenerateOptions = {},
  ): AsyncGenerator<string> {
    if (this.#closed) throw new Error("WorkerModel.generate: the model is closed");
    if (this.#busy) throw new Error("WorkerModel.generate: one generation at a time");
    this.#busy = true;
    const id = ++this.#id;
    const { signal, ...sent } = options;
    const queue: FromWorker[] = [];
    let wake: (() => void) | null = null;
    this.#deliver = (m) => {
      queue.push(m);
      wake?.();
      wake = null;
    };
    let stopped = false, finished = false;
    const stop = () => {
      if (stopped || finished) return;
      stopped = true;
      const message: ToWorker = { type: "stop", id };
      this.#worker.postMessage(message);
      wake?.();
      wake = null;
    };
    if (signal?.aborted) stopped = true; // nothing to stop yet: the request says so below
    signal?.addEventListener("abort", stop);
    const message: ToWorker = { type: "generate", id, prompt, options: sent };
    this.#worker.postMessage(message);
    if (stopped) this.#worker.postMessage({ type: "stop", id } satisfies ToWorker);
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => wake = r);
        const m = queue.shift()!;
        if (m.type === "piece") {
          if (!stopped) yield m.text; // after a stop, pieces already on their way are dropped
        } else if (m.type === "error") throw new Error(m.message);
        else if (m.type === "done") {
          finished = true;
          this.stats = m.stats;
          return;
        }
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      stop(); // a consumer that left the loop early: the worker need not go on
      this.#deliver = null;
      this.#busy = false;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate(); // its pool's workers (nested) end with it
  }
}
