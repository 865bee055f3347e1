/**
 * Quantisation on every core: a pool of Web Workers (formats/quant/quantize_worker.ts) that
 * quantise chunks of whole blocks in parallel. Blocks are independent (no state crosses a
 * block in any ggml quantiser), so a tensor split at block boundaries and quantised in pieces
 * gives exactly the bytes of {@linkcode quantize} on the whole tensor.
 *
 * @module
 */
import { type GgmlType, quantize } from "../quant.ts";

/** Elements per chunk sent to a worker (a multiple of 256, so of every block size). */
const CHUNK = 1 << 18;

interface Pending {
  resolve: (b: Uint8Array) => void;
  reject: (e: Error) => void;
}

/**
 * A pool of quantisation workers. With `threads` 1 it quantises inline (no workers).
 *
 * @example
 * ```ts
 * import { ggmlTypeByName, quantize } from "../quant.ts";
 * import { QuantizePool } from "./pool.ts";
 * const pool = new QuantizePool(2);
 * const x = Float32Array.from({ length: 1 << 19 }, (_, i) => Math.sin(i));
 * const t = ggmlTypeByName("Q4_K")!;
 * const bytes = await pool.quantize(t, x);
 * pool.close();
 * const same = quantize(t, x);
 * if (bytes.length !== same.length || bytes.some((b, i) => b !== same[i])) throw new Error();
 * ```
 */
export class QuantizePool {
  /** Worker count (1 = inline). */
  readonly threads: number;
  #workers: Worker[] = [];
  #idle: Worker[] = [];
  #queue: { id: number; type: string; data: Float32Array<ArrayBuffer> }[] = [];
  #pending = new Map<number, Pending>();
  #next = 0;

  /**
   * @param threads Workers to start (default `navigator.hardwareConcurrency`); 1 or less
   *   quantises on the calling thread.
   */
  constructor(threads: number = navigator.hardwareConcurrency ?? 1) {
    this.threads = Math.max(1, Math.floor(threads));
    if (this.threads === 1) return;
    for (let i = 0; i < this.threads; i++) {
      const w = new Worker(new URL("./quantize_worker.ts", import.meta.url).href, {
        type: "module",
      });
      w.onmessage = (e: MessageEvent<{ id: number; bytes?: Uint8Array; error?: string }>) => {
        const p = this.#pending.get(e.data.id)!;
        this.#pending.delete(e.data.id);
        if (e.data.error !== undefined) p.reject(new Error(e.data.error));
        else p.resolve(e.data.bytes!);
        this.#idle.push(w);
        this.#pump();
      };
      w.onerror = (e) => {
        e.preventDefault();
        for (const p of this.#pending.values()) {
          p.reject(new Error(`quantise worker: ${e.message}`));
        }
        this.#pending.clear();
      };
      this.#workers.push(w);
      this.#idle.push(w);
    }
  }

  #pump(): void {
    while (this.#idle.length > 0 && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      this.#idle.pop()!.postMessage(job, [job.data.buffer]);
    }
  }

  #chunk(type: GgmlType, data: Float32Array): Promise<Uint8Array> {
    const id = this.#next++;
    const copy = data.slice(); // its own buffer, transferred to the worker
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#queue.push({ id, type: type.name, data: copy });
      this.#pump();
    });
  }

  /**
   * Quantises `data` into `type` (same bytes as {@linkcode quantize}), in chunks across the
   * workers.
   *
   * @param type Target type (supported).
   * @param data Values; the length a multiple of the block size.
   * @returns The blocks.
   * @throws {RangeError} as {@linkcode quantize} (the length is checked here, first).
   */
  async quantize(type: GgmlType, data: Float32Array): Promise<Uint8Array> {
    if (this.threads === 1 || data.length <= CHUNK || type.blockSize === 1) {
      return quantize(type, data);
    }
    if (data.length % type.blockSize !== 0) return quantize(type, data); // throws the RangeError
    const parts: Promise<Uint8Array>[] = [];
    for (let o = 0; o < data.length; o += CHUNK) {
      parts.push(this.#chunk(type, data.subarray(o, Math.min(data.length, o + CHUNK))));
    }
    const done = await Promise.all(parts);
    const out = new Uint8Array(done.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of done) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** Stops the workers (pending work is rejected). */
  close(): void {
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.reject(new Error("quantise pool closed"));
    this.#pending.clear();
    this.#workers = [];
    this.#idle = [];
  }
}
