/**
 * The benchmark protocol both engines follow, so gollm and llama.cpp are timed the same way
 * (issue #8, item 6):
 *
 * - **decode**: from an empty KV cache, BOS, then greedy steps: `decodeSteps` single-token
 *   forward passes (BOS → t1, t1 → t2, ...), each followed by an argmax. tok/s =
 *   `decodeSteps` / wall time.
 * - **prefill**: one `prefillTokens`-token prompt ({@linkcode prefillPrompt}) evaluated in one
 *   call from an empty cache, with the logits of its last position. tok/s =
 *   `prefillTokens` / wall time.
 * - each phase runs `warmup` untimed times, then `runs` timed times; the figure is the
 *   median ({@linkcode median}).
 * - peak RSS is the engine process's own high-water mark (`VmHWM` in /proc/self/status):
 *   each engine runs in its own subprocess.
 *
 * This file holds the shared types and the pure helpers; bench/llama_cpp_runner.ts and
 * bench/gollm_runner.ts run the protocol, each in its own process.
 *
 * @module
 */
import { benchPrompt } from "../runtime/bench_prompt.ts";

/** What to measure: the protocol's knobs. Every field has the default of issue #8. */
export interface BenchProtocol {
  /** Threads of the engine (llama.cpp: `n_threads` and `n_threads_batch`). Default 1. */
  threads?: number;
  /** Greedy single-token steps after BOS. Default 200. */
  decodeSteps?: number;
  /** Tokens of the prefill prompt, evaluated in one call. Default 256. */
  prefillTokens?: number;
  /** Untimed runs of each phase before the timed ones. Default 1. */
  warmup?: number;
  /** Timed runs of each phase; the median is reported. Default 3. */
  runs?: number;
  /**
   * KV cache slots (llama.cpp `n_ctx`, gollm `kvCapacity`). Default 512, or the next multiple
   * of 256 that holds `decodeSteps + 1` and `prefillTokens` when they need more.
   */
  contextSize?: number;
  /** Seed of the prefill prompt's token ids. Default 1. */
  seed?: number;
}

/** {@linkcode BenchProtocol} with every default filled in. */
export type ResolvedProtocol = Required<BenchProtocol>;

/** The figures of one engine on one file at one thread count. */
export interface EngineBench {
  /** `llama.cpp` or `gollm`. */
  engine: string;
  /** The engine's version or backend, e.g. `node-llama-cpp 3.22.1` or `gollm wasm`. */
  variant: string;
  /** The model file. */
  file: string;
  /** Threads requested. */
  threads: number;
  /** Threads the engine actually used (gollm without a threads option: 1). */
  threadsUsed: number;
  /** Median decode throughput, tokens per second. */
  decodeTokS: number;
  /** Median prefill throughput, tokens per second. */
  prefillTokS: number;
  /** Wall time of each timed decode run (`decodeSteps` steps), milliseconds. */
  decodeMs: number[];
  /** Wall time of each timed prefill run, milliseconds. */
  prefillMs: number[];
  /** Time to load the model and make it ready to run, milliseconds. */
  loadMs: number;
  /** Peak resident set size of the engine's process (VmHWM), bytes. */
  peakRssBytes: number;
  /** The greedy ids of the first decode run (BOS excluded), for a cross-engine sanity check. */
  greedyIds: number[];
  /** The protocol the figures follow. */
  protocol: ResolvedProtocol;
}

/**
 * Fills in the defaults of a {@linkcode BenchProtocol} and checks every field.
 *
 * @param p Partial protocol.
 * @returns Every field set.
 * @throws {RangeError} naming the field when one is not a positive integer (`warmup` may be
 *   0), or when `contextSize` is smaller than `decodeSteps + 1` or `prefillTokens`.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveProtocol } from "./protocol.ts";
 * assert.equal(resolveProtocol({ threads: 2 }).decodeSteps, 200);
 * assert.equal(resolveProtocol({ decodeSteps: 2000 }).contextSize, 2048);
 * assert.throws(() => resolveProtocol({ threads: 0 }), /threads/);
 * ```
 */
export function resolveProtocol(p: BenchProtocol = {}): ResolvedProtocol {
  const decodeSteps = p.decodeSteps ?? 200, prefillTokens = p.prefillTokens ?? 256;
  const needed = Math.max(decodeSteps + 1, prefillTokens);
  const r: ResolvedProtocol = {
    threads: p.threads ?? 1,
    decodeSteps,
    prefillTokens,
    warmup: p.warmup ?? 1,
    runs: p.runs ?? 3,
    contextSize: p.contextSize ?? (needed > 512 ? Math.ceil(needed / 256) * 256 : 512),
    seed: p.seed ?? 1,
  };
  for (const [k, v] of Object.entries(r)) {
    const min = k === "warmup" || k === "seed" ? 0 : 1;
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(`bench option '${k}' must be an integer >= ${min}, got ${v}`);
    }
  }
  if (r.contextSize < r.decodeSteps + 1 || r.contextSize < r.prefillTokens) {
    throw new RangeError(
      `bench option 'contextSize' (${r.contextSize}) must hold decodeSteps + 1 ` +
        `(${r.decodeSteps + 1}) and prefillTokens (${r.prefillTokens})`,
    );
  }
  return r;
}

/**
 * The median of a non-empty list (mean of the two middle values for an even length).
 *
 * @param xs Values (not modified).
 * @returns The median.
 * @throws {RangeError} for an empty list.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { median } from "./protocol.ts";
 * assert.equal(median([30, 10, 20]), 20);
 * assert.equal(median([4, 1, 3, 2]), 2.5);
 * ```
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("median of an empty list");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The prefill prompt: BOS, then `n - 1` seeded xorshift32 ids in `[0, vocabSize)`, the same in
 * both engines and on every machine (runtime/bench_prompt.ts `benchPrompt`, which gollm's own
 * `bench --model` uses too).
 */
export const prefillPrompt: typeof benchPrompt = benchPrompt;

/**
 * Peak resident set size of this process: `VmHWM` of /proc/self/status (Linux).
 *
 * @returns Bytes, or 0 where /proc is not available.
 * @example
 * ```ts
 * import { peakRssBytes } from "./protocol.ts";
 * if (Deno.build.os === "linux" && peakRssBytes() <= 0) throw new Error("no VmHWM");
 * ```
 */
export function peakRssBytes(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const m = status.match(/^VmHWM:\s+(\d+)\s+kB/m);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The machine's load averages (1, 5 and 15 minutes) from /proc/loadavg, printed with every
 * figure because the benchmark machine is shared.
 *
 * @returns e.g. `"1.92 1.40 1.10"`, or `"unknown"` where /proc is not available.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadAverage } from "./protocol.ts";
 * assert.match(loadAverage(), /^(\d+\.\d+ \d+\.\d+ \d+\.\d+|unknown)$/);
 * ```
 */
export function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

/**
 * Index of the largest value (ties → the lowest index, like `torch.argmax` and llama.cpp's
 * greedy sampler).
 *
 * @param x Logits.
 * @returns The argmax index.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { argmax } from "./protocol.ts";
 * assert.equal(argmax([1, 3, 3, 2]), 1);
 * ```
 */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}
