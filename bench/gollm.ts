/**
 * gollm measured exactly like its peer: bench/gollm_runner.ts in its own Deno process (its
 * peak RSS is gollm's own), following the protocol of bench/protocol.ts.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { Backend } from "../runtime/model.ts";
import type { KvCacheType } from "../core/forward.ts";
import type { GollmRunnerRequest } from "./gollm_runner.ts";
import { type BenchProtocol, type EngineBench, resolveProtocol } from "./protocol.ts";
import { runRunner } from "./subprocess.ts";
import { V8_FLAGS } from "../codegen/wasm_features.ts";

const RUNNER = fileURLToPath(new URL("./gollm_runner.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../deno.json", import.meta.url));

/** Options of {@linkcode gollmBench}. */
export interface GollmBenchOptions {
  /** gollm backend (default `wasm`, the fastest today). */
  backend?: Backend;
  /** Receives the runner's progress lines (`gollm decode run 1/3`, ...). */
  onProgress?: (message: string) => void;
  /** CPUs to pin the gollm process to (a `taskset -c` list); default not pinned. */
  cpus?: string;
  /** gollm's KV cache type for K and V (default f32; llama.cpp's default is f16). */
  cacheType?: KvCacheType;
}

/**
 * Benchmarks gollm on a model file: decode = BOS then `decodeSteps` greedy single-token
 * forwards from an empty cache; prefill = one `prefillTokens` prompt in one `forward` call;
 * `warmup` untimed runs, median of `runs`; peak RSS of the gollm process.
 *
 * @param file A model gollm loads (GGUF, gollm or HF directory, llama2.c `.bin`).
 * @param protocol Threads, steps, prompt length, runs (defaults of issue #8).
 * @param options Backend, progress, CPUs to pin to.
 * @returns The figures.
 * @throws {RangeError} for a bad protocol value.
 * @throws {RunnerError} (bench/subprocess.ts) when gollm cannot load or run the file, with
 *   gollm's one-line error (e.g. an unsupported tensor type).
 * @example
 * ```ts ignore
 * const r = await gollmBench("g110m-q8_0.gguf", { threads: 1 });
 * console.log(r.decodeTokS, r.peakRssBytes);
 * ```
 */
export async function gollmBench(
  file: string,
  protocol: BenchProtocol = {},
  options: GollmBenchOptions = {},
): Promise<EngineBench> {
  const req: GollmRunnerRequest = {
    file,
    backend: options.backend ?? "wasm",
    protocol: resolveProtocol(protocol),
    ...(options.cacheType ? { cacheType: options.cacheType } : {}),
  };
  return await runRunner<EngineBench>(RUNNER, req, {
    denoFlags: ["-A", "--quiet", V8_FLAGS, "--config", CONFIG],
    onProgress: options.onProgress,
    cpus: options.cpus,
    what: `gollm ${req.backend} bench`, // gollm's own errors name the file
  });
}
