/**
 * The gollm side of the peer benchmark, run as its own process by bench/gollm.ts so its peak
 * RSS is its own:
 *
 * ```
 * deno run -A bench/gollm_runner.ts '{"file": "...", "backend": "wasm", "protocol": {...}}'
 * ```
 *
 * It loads the file through gollm's library (`loadModel(file, { backend, kvCapacity,
 * threads })`) and runs the protocol of bench/protocol.ts with `Model.forward`: decode =
 * BOS then `decodeSteps` single-token forwards (into one reused logits array), each followed
 * by an argmax; prefill = one
 * `forward(prompt, 0)` (which returns the last position's logits). Replies with one JSON
 * {@linkcode EngineBench} line; failures are one `error: ...` line and exit status 1.
 *
 * Threads: `threads` is passed to `loadModel`; the thread count used is read back from
 * `model.threads` when the Model has that property, else 1.
 *
 * @module
 */
import { type Backend, loadModel, type LoadModelOptions } from "../runtime/model.ts";
import type { KvCacheType } from "../core/forward.ts";
import {
  argmax,
  type EngineBench,
  median,
  peakRssBytes,
  prefillPrompt,
  type ResolvedProtocol,
} from "./protocol.ts";
import { runnerMain } from "./subprocess.ts";

/** The request of the gollm runner. */
export interface GollmRunnerRequest {
  /** Model file or directory. */
  file: string;
  /** gollm backend (`wasm` is the fastest today). */
  backend: Backend;
  /** The protocol, resolved. */
  protocol: ResolvedProtocol;
  /** KV cache type of K and V (default f32). */
  cacheType?: KvCacheType;
}

const progress = (msg: string) => console.error(`progress: ${msg}`);
const phase = (i: number, p: ResolvedProtocol) =>
  i < p.warmup ? "warm-up" : `run ${i - p.warmup + 1}/${p.runs}`;

async function main(r: GollmRunnerRequest): Promise<EngineBench> {
  const p = r.protocol;
  const t0 = performance.now();
  const options: LoadModelOptions = {
    backend: r.backend,
    kvCapacity: p.contextSize,
    threads: p.threads,
    cacheTypeK: r.cacheType,
    cacheTypeV: r.cacheType,
    onProgress: (e) => progress(`gollm ${e.stage}`),
  };
  const model = await loadModel(r.file, options);
  const loadMs = performance.now() - t0;
  const own = (model as unknown as { threads?: unknown }).threads;
  const threadsUsed = typeof own === "number" ? own : 1;
  const bos = model.tokenizer?.bosId;
  if (bos === null || bos === undefined) throw new Error(`${r.file}: the model has no BOS token`);

  const decodeMs: number[] = [];
  const logits = new Float32Array(model.config.vocab_size); // reused: no garbage per step
  let greedyIds: number[] = [];
  for (let i = 0; i < p.warmup + p.runs; i++) {
    progress(`gollm decode ${phase(i, p)}`);
    const ids: number[] = [];
    let id = bos;
    const start = performance.now();
    for (let pos = 0; pos < p.decodeSteps; pos++) {
      id = argmax(model.forward([id], pos, logits));
      ids.push(id);
    }
    const ms = performance.now() - start;
    if (i >= p.warmup) decodeMs.push(ms);
    if (i === p.warmup) greedyIds = ids;
  }
  const prompt = prefillPrompt(p.prefillTokens, model.config.vocab_size, bos, p.seed);
  const prefillMs: number[] = [];
  for (let i = 0; i < p.warmup + p.runs; i++) {
    progress(`gollm prefill ${phase(i, p)}`);
    const start = performance.now();
    model.forward(prompt, 0, logits);
    const ms = performance.now() - start;
    if (i >= p.warmup) prefillMs.push(ms);
  }
  return {
    engine: "gollm",
    variant: `gollm ${model.backend}`,
    file: r.file,
    threads: p.threads,
    threadsUsed,
    decodeTokS: p.decodeSteps / (median(decodeMs) / 1000),
    prefillTokS: p.prefillTokens / (median(prefillMs) / 1000),
    decodeMs,
    prefillMs,
    loadMs,
    peakRssBytes: peakRssBytes(),
    greedyIds,
    protocol: p,
  };
}

if (import.meta.main) await runnerMain(main);
