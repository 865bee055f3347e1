/**
 * `gollm bench`: prefill and decode throughput of the reference forward and the JIT (JS and
 * WASM), with effective GFLOP/s and the ratios between backends; on random weights for a
 * config ({@linkcode runBench}: rounds within a time budget), or on a real checkpoint
 * ({@linkcode runModelBench}: the project's fixed protocol, as bench/protocol.ts times gollm
 * against llama.cpp).
 *
 * @module
 */
import { type ModelConfig, parameterCount } from "../core/config.ts";
import type { ForwardPass, KvCacheType } from "../core/forward.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { createReference } from "./reference.ts";
import { randomWeights, requireF32, type Weights } from "../core/weights.ts";
import { benchPrompt } from "./bench_prompt.ts";

export { benchPrompt };
import { compileModel } from "../codegen/compile.ts";
import { macsPerToken } from "../codegen/graph.ts";
import { startStepPool } from "./threads.ts";
import { resolveCacheTypes } from "./model.ts";

/**
 * A backend `gollm bench` can measure: the reference forward, the JS JIT, or the JIT with
 * its matrix products in generated WASM SIMD (`compileModel(..., { backend: "wasm" })`).
 */
export type BenchBackend = "reference" | "jit" | "wasm";

/** Options of {@linkcode runBench}. */
export interface BenchOptions {
  /** Time budget per backend in seconds (at least one round always runs). Default 10. */
  seconds?: number;
  /** Backends to measure, in order. Default `["reference", "jit", "wasm"]`. */
  backends?: BenchBackend[];
  /** Prompt length of each prefill round (tokens, at positions 0..). Default 64 (gpt2: at most 3/4 of context_length). */
  prefillTokens?: number;
  /** Tokens decoded one by one after each prefill. Default 16 (gpt2: what fits the context). */
  decodeTokens?: number;
  /** KV ring slots (default: enough for one round, at most `context_length`). */
  kvCapacity?: number;
  /** Seed of the random weights and token ids. Default 1. */
  seed?: number;
  /**
   * Called (synchronously) before each timed phase, so a caller can show where a long run
   * is (`gollm bench` redraws a status line). See {@linkcode BenchProgress}.
   */
  onProgress?: (info: BenchProgress) => void;
}

/**
 * Where {@linkcode runBench} is: passed to `BenchOptions.onProgress` before each phase.
 *
 * Round 0 is the untimed setup (building the forward pass; emit + compile for the JIT) and
 * warm-up; rounds 1.. are timed. The number of rounds depends on the time budget, so
 * `rounds` is an estimate: 1 until the first round finished, then the rounds the remaining
 * budget allows at the pace so far (never below `round`).
 */
export interface BenchProgress {
  /** The backend being measured. */
  backend: BenchBackend;
  /** The phase about to run: a prompt of `prefillTokens`, or `decodeTokens` single steps. */
  phase: "prefill" | "decode";
  /** Round number, 0 = setup and warm-up, then 1, 2, ... (timed). */
  round: number;
  /** Estimated total timed rounds for this backend (at least `round`). */
  rounds: number;
}

/** Figures of one backend. */
export interface BackendBench {
  /** Which backend. */
  backend: BenchBackend;
  /** Time to build the forward pass (emit + compile for the JIT), milliseconds. */
  setupMs: number;
  /** Median prefill throughput over rounds, tokens per second. */
  prefillTokPerS: number;
  /** Median decode throughput over rounds, tokens per second. */
  decodeTokPerS: number;
  /** Prefill effective GFLOP/s: 2 · matmul MACs of the prompt (LM head once) / median time. */
  prefillGflops: number;
  /** Decode effective GFLOP/s: 2 · matmul MACs per token (with LM head) × tok/s. */
  decodeGflops: number;
  /** Measured rounds. */
  rounds: number;
}

/** The result of {@linkcode runBench}. */
export interface BenchResult {
  /** The benchmarked config. */
  config: ModelConfig;
  /** Parameter count (embeddings included). */
  params: number;
  /** Prompt tokens per round. */
  prefillTokens: number;
  /** Decode tokens per round. */
  decodeTokens: number;
  /** One entry per backend, in the order measured. */
  backends: BackendBench[];
  /** JIT / reference throughput ratios, when both ran. */
  ratio: { prefill: number; decode: number } | null;
  /** WASM / reference throughput ratios, when both ran. */
  wasmRatio?: { prefill: number; decode: number } | null;
  /** WASM / JIT throughput ratios (same run), when both ran. */
  wasmVsJit?: { prefill: number; decode: number } | null;
  /**
   * The checkpoint timed by {@linkcode runModelBench}, and its protocol; null for random
   * weights ({@linkcode runBench}).
   */
  checkpoint: ModelBenchInfo | null;
}

/** What {@linkcode runModelBench} timed, and how (in {@linkcode BenchResult.checkpoint}). */
export interface ModelBenchInfo {
  /** The checkpoint's file or directory. */
  path: string;
  /** Its format (`gollm`, `hf`, `gguf`, `llama2c`). */
  format: string;
  /** The first token of every decode run and of the prefill prompt (BOS; 0 without one). */
  bos: number;
  /** Untimed runs of each phase per backend. */
  warmup: number;
  /** Timed runs of each phase per backend; the figures are their medians. */
  runs: number;
  /** KV ring slots of every backend. */
  kvCapacity: number;
  /** Threads of the wasm backend (the others run on one). */
  threads: number;
  /**
   * The wasm backend's weights: `stored` (the file's types, what `loadModel` runs by
   * default) or `f32` (dequantised, as the reference and the JS JIT run them).
   */
  wasmWeights: "stored" | "f32";
  /** Element type of the wasm backend's K cache (the others' is `f32`). */
  cacheTypeK: KvCacheType;
  /** Element type of the wasm backend's V cache (the others' is `f32`). */
  cacheTypeV: KvCacheType;
  /** Seed of the prefill prompt's ids. */
  seed: number;
}

/** Options of {@linkcode runModelBench}: the protocol's knobs, each with its default. */
export interface ModelBenchOptions {
  /** Backends to measure, in order. Default `["reference", "jit", "wasm"]`. */
  backends?: BenchBackend[];
  /** Greedy single-token steps after BOS. Default 200 (fewer when the context is shorter). */
  decodeSteps?: number;
  /** Tokens of the prefill prompt, run in one call. Default 256 (or the KV capacity). */
  prefillTokens?: number;
  /** Untimed runs of each phase before the timed ones. Default 1. */
  warmup?: number;
  /** Timed runs of each phase; the median is reported. Default 3. */
  runs?: number;
  /** KV ring slots. Default 512, or `context_length` when shorter. */
  kvCapacity?: number;
  /**
   * The checkpoint's tensors in their stored types (`loadCheckpoint(path, { stored: true })`)
   * for the wasm backend, which then runs what `loadModel` runs by default (GGUF F16 and
   * ggml blocks as stored). Default: the checkpoint's (F32) weights.
   */
  storedWeights?: Weights;
  /** Threads of the wasm backend (1..64). Default 1. */
  threads?: number;
  /**
   * Element types of the wasm backend's K and V cache (`f32` default, or `f16`: llama.cpp's
   * `-ctk f16 -ctv f16`). The reference and the JS JIT keep F32 caches, so `f16` needs
   * `backends: ["wasm"]`.
   */
  cacheTypeK?: KvCacheType;
  /** See `cacheTypeK`. */
  cacheTypeV?: KvCacheType;
  /** Seed of the prefill prompt's random ids. Default 1. */
  seed?: number;
  /** Called before each phase (round 0: setup, then warm-up runs; 1..runs: timed). */
  onProgress?: (info: BenchProgress) => void;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Builds one backend's forward pass over `weights` with a `kvCapacity`-slot ring (wasm:
 * on `threads` threads).
 */
function buildPass(
  backend: BenchBackend,
  config: ModelConfig,
  weights: Weights,
  kvCapacity: number,
  threads = 1,
  cache: { cacheTypeK?: KvCacheType; cacheTypeV?: KvCacheType } = {},
): ForwardPass & { close?(): void } {
  return backend === "jit"
    ? compileModel(config, weights, { kvCapacity })
    : backend === "wasm"
    ? compileModel(config, weights, {
      kvCapacity,
      backend: "wasm",
      threads,
      startPool: threads > 1 ? startStepPool : undefined,
      ...cache,
    })
    : createReference(config, requireF32(weights, "the reference backend"), { kvCapacity });
}

/** Matmul multiply-adds of a P-token prompt (LM head once) and of D decode steps after `from`. */
function benchMacs(config: ModelConfig, P: number, D: number, from: number, kvCapacity: number) {
  let prefill = macsPerToken(config, P - 1, kvCapacity, true);
  for (let p = 0; p < P - 1; p++) prefill += macsPerToken(config, p, kvCapacity, false);
  let decode = 0;
  for (let i = 0; i < D; i++) decode += macsPerToken(config, from + i, kvCapacity, true);
  return { prefill, decode };
}

/** The ratios of a result: jit / reference, wasm / reference, wasm / jit (null: not run). */
function ratios(results: BackendBench[]) {
  const ref = results.find((r) => r.backend === "reference");
  const jit = results.find((r) => r.backend === "jit");
  const wasm = results.find((r) => r.backend === "wasm");
  const ratioOf = (a: BackendBench | undefined, b: BackendBench | undefined) =>
    a && b
      ? {
        prefill: a.prefillTokPerS / b.prefillTokPerS,
        decode: b.decodeTokPerS > 0 ? a.decodeTokPerS / b.decodeTokPerS : 0,
      }
      : null;
  return { ratio: ratioOf(jit, ref), wasmRatio: ratioOf(wasm, ref), wasmVsJit: ratioOf(wasm, jit) };
}

/**
 * Measures prefill and decode throughput of each backend on random weights.
 *
 * Each round runs `forward(prompt, 0)` with `prefillTokens` tokens (timed as prefill), then
 * `decodeTokens` single-token `forward` calls (timed together as decode). Rounds repeat
 * until `seconds` have passed for that backend (at least one, after an untimed warm-up);
 * the medians over rounds are reported. Effective GFLOP/s counts 2 FLOPs per
 * multiply-add of the matrix products actually needed: q/k/v/o, MLP, attention's q·k and
 * a·v over the live window, and the LM head (once per prompt in prefill, every token in
 * decode), see `macsPerToken` in graph.ts.
 *
 * @param config The model config (any size; weights are random).
 * @param options Time budget, backends, prompt and decode lengths, progress callback.
 * @returns The figures, ready for {@linkcode formatBench}.
 * @throws {RangeError} for non-positive token counts or (gpt2) a round longer than
 *   `context_length`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { runBench } from "./bench.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const r = runBench(c, { seconds: 0.05, prefillTokens: 16, decodeTokens: 4 });
 * assert.deepEqual(r.backends.map((b) => b.backend), ["reference", "jit", "wasm"]);
 * assert.ok(r.backends.every((b) => b.prefillTokPerS > 0 && b.decodeTokPerS > 0));
 * ```
 */
export function runBench(config: ModelConfig, options: BenchOptions = {}): BenchResult {
  const seconds = options.seconds ?? 10;
  const backends = options.backends ?? ["reference", "jit", "wasm"];
  // Defaults shrink to fit a short gpt2 context (learned positions end there).
  const fit = config.arch === "gpt2" ? config.context_length : Infinity;
  const P = options.prefillTokens ?? Math.min(64, Math.max(1, Math.floor(fit * 0.75)));
  const D = options.decodeTokens ?? Math.max(0, Math.min(16, fit - P));
  if (!Number.isInteger(P) || P <= 0 || !Number.isInteger(D) || D < 0) {
    throw new RangeError(`bench: prefillTokens must be >= 1 and decodeTokens >= 0, got ${P}, ${D}`);
  }
  if (config.arch === "gpt2" && P + D > config.context_length) {
    throw new RangeError(
      `bench: prefillTokens + decodeTokens = ${
        P + D
      } exceeds context_length ${config.context_length}`,
    );
  }
  const kvCapacity = options.kvCapacity ?? Math.min(config.context_length, P + D);
  const weights = randomWeights(config, options.seed ?? 1);
  let s = (options.seed ?? 1) * 2654435761 >>> 0 || 1;
  const tokens = Array.from({ length: P + D }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % config.vocab_size;
  });
  const prompt = tokens.slice(0, P);
  const next = tokens.slice(P).map((t) => [t]);

  const macs = benchMacs(config, P, D, P, kvCapacity);

  const results: BackendBench[] = [];
  const report = options.onProgress ?? (() => {});
  for (const backend of backends) {
    report({ backend, phase: "prefill", round: 0, rounds: 1 });
    const t0 = performance.now();
    const fp = buildPass(backend, config, weights, kvCapacity);
    const setupMs = performance.now() - t0;
    // Warm-up (untimed): lets V8 optimise the hot loops.
    fp.forward(prompt.slice(0, Math.min(P, 40)), 0);
    for (let i = 0; i < Math.min(D, 2); i++) fp.forward(next[i], Math.min(P, 40) + i);

    const prefillTimes: number[] = [], decodeTimes: number[] = [];
    const start = performance.now();
    let estimate = 1;
    do {
      const round = prefillTimes.length + 1;
      if (round > 1) {
        const perRound = (performance.now() - start) / (round - 1);
        estimate = Math.max(round, Math.ceil((seconds * 1000) / Math.max(perRound, 1e-3)));
      }
      report({ backend, phase: "prefill", round, rounds: estimate });
      const a = performance.now();
      fp.forward(prompt, 0);
      const b = performance.now();
      if (D > 0) report({ backend, phase: "decode", round, rounds: estimate });
      for (let i = 0; i < D; i++) fp.forward(next[i], P + i);
      const c = performance.now();
      prefillTimes.push((b - a) / 1000);
      decodeTimes.push((c - b) / 1000);
    } while (performance.now() - start < seconds * 1000);
    const tp = median(prefillTimes), td = median(decodeTimes);
    results.push({
      backend,
      setupMs,
      prefillTokPerS: P / tp,
      decodeTokPerS: D > 0 ? D / td : 0,
      prefillGflops: (2 * macs.prefill) / tp / 1e9,
      decodeGflops: D > 0 ? (2 * macs.decode) / td / 1e9 : 0,
      rounds: prefillTimes.length,
    });
  }
  return {
    config,
    params: parameterCount(config),
    prefillTokens: P,
    decodeTokens: D,
    backends: results,
    ...ratios(results),
    checkpoint: null,
  };
}

/** Index of the largest logit (the lowest on ties, as torch.argmax and llama.cpp). */
function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * Times a real checkpoint with the project's protocol (bench/protocol.ts, issue #8), on each
 * backend in turn:
 *
 * - decode: from an empty KV cache, BOS, then `decodeSteps` greedy single-token steps
 *   (BOS → t1, t1 → t2, ..., each followed by an argmax); tok/s = steps / wall time;
 * - prefill: one `prefillTokens`-token prompt ({@linkcode benchPrompt}) in one call from
 *   position 0, with the last position's logits; tok/s = tokens / wall time;
 * - each phase: `warmup` untimed runs, then `runs` timed ones; the median is reported.
 *
 * Setup (building the forward pass: emit + compile for the JIT) is timed apart. Effective
 * GFLOP/s counts the matrix products as {@linkcode runBench} does.
 *
 * @param checkpoint The loaded checkpoint (`loadCheckpoint`); its weights are shared by
 *   every backend.
 * @param options Backends and the protocol's knobs.
 * @returns The figures, with `checkpoint` (path, format, protocol) set.
 * @throws {RangeError} naming the option that is not a positive integer (`warmup` may be 0),
 *   a `kvCapacity` above `context_length`, or a prompt or decode run longer than the KV
 *   capacity.
 * @throws {GollmError} for an `f16` cache type with a backend other than wasm in `backends`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { runModelBench } from "./bench.ts";
 * const config = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const ckpt = {
 *   format: "gollm" as const, path: "t", config, weights: randomWeights(config, 1), tokenizer: null,
 * };
 * const r = runModelBench(ckpt, { backends: ["jit"], decodeSteps: 8, prefillTokens: 16, runs: 1 });
 * assert.deepEqual([r.prefillTokens, r.decodeTokens, r.backends[0].rounds], [16, 8, 1]);
 * assert.equal(r.checkpoint?.kvCapacity, 64); // context_length 64 < 512
 * ```
 */
export function runModelBench(
  checkpoint: Checkpoint<Weights>,
  options: ModelBenchOptions = {},
): BenchResult {
  const { config, weights } = checkpoint;
  const backends = options.backends ?? ["reference", "jit", "wasm"];
  const kvCapacity = options.kvCapacity ?? Math.min(512, config.context_length);
  const P = options.prefillTokens ?? Math.min(256, kvCapacity);
  const D = options.decodeSteps ?? Math.min(200, kvCapacity - 1);
  const warmup = options.warmup ?? 1, runs = options.runs ?? 3, seed = options.seed ?? 1;
  const threads = options.threads ?? 1;
  // f16 caches are the wasm backend's: every backend asked for must be wasm.
  const cache = resolveCacheTypes(options, backends.find((b) => b !== "wasm") ?? "wasm");
  const cacheTypeK = cache.cacheTypeK ?? "f32", cacheTypeV = cache.cacheTypeV ?? "f32";
  const knobs = { kvCapacity, prefillTokens: P, decodeSteps: D, runs, warmup, seed, threads };
  for (const [k, v] of Object.entries(knobs)) {
    const min = k === "warmup" || k === "seed" ? 0 : 1;
    if (!Number.isInteger(v) || v < min) {
      throw new RangeError(`bench: ${k} must be an integer >= ${min}, got ${v}`);
    }
  }
  if (threads > 64) throw new RangeError(`bench: threads must be at most 64, got ${threads}`);
  if (kvCapacity > config.context_length) {
    throw new RangeError(
      `bench: kvCapacity ${kvCapacity} exceeds the context length ${config.context_length}`,
    );
  }
  if (P > kvCapacity || D + 1 > kvCapacity) {
    throw new RangeError(
      `bench: the KV capacity ${kvCapacity} must hold the prompt (${P}) and BOS + the decode ` +
        `steps (${D + 1})`,
    );
  }
  const bos = checkpoint.tokenizer?.bosId ?? 0;
  const prompt = benchPrompt(P, config.vocab_size, bos, seed);
  const macs = benchMacs(config, P, D, 0, kvCapacity);
  const report = options.onProgress ?? (() => {});

  const results: BackendBench[] = [];
  for (const backend of backends) {
    report({ backend, phase: "decode", round: 0, rounds: runs });
    const t0 = performance.now();
    const wasm = backend === "wasm";
    const fp = buildPass(
      backend,
      config,
      wasm ? options.storedWeights ?? weights : weights,
      kvCapacity,
      wasm ? threads : 1,
      { cacheTypeK, cacheTypeV },
    );
    const setupMs = performance.now() - t0;
    const decodeMs: number[] = [], prefillMs: number[] = [];
    const step = [0]; // the one-token input of a decode step
    for (let i = 0; i < warmup + runs; i++) {
      report({ backend, phase: "decode", round: Math.max(0, i - warmup + 1), rounds: runs });
      const start = performance.now();
      step[0] = bos;
      for (let pos = 0; pos < D; pos++) step[0] = argmax(fp.forward(step, pos));
      if (i >= warmup) decodeMs.push(performance.now() - start);
    }
    for (let i = 0; i < warmup + runs; i++) {
      report({ backend, phase: "prefill", round: Math.max(0, i - warmup + 1), rounds: runs });
      const start = performance.now();
      fp.forward(prompt, 0);
      if (i >= warmup) prefillMs.push(performance.now() - start);
    }
    fp.close?.();
    const tp = median(prefillMs) / 1000, td = median(decodeMs) / 1000;
    results.push({
      backend,
      setupMs,
      prefillTokPerS: P / tp,
      decodeTokPerS: D / td,
      prefillGflops: (2 * macs.prefill) / tp / 1e9,
      decodeGflops: (2 * macs.decode) / td / 1e9,
      rounds: runs,
    });
  }
  return {
    config,
    params: parameterCount(config),
    prefillTokens: P,
    decodeTokens: D,
    backends: results,
    ...ratios(results),
    checkpoint: {
      path: checkpoint.path,
      format: checkpoint.format,
      bos,
      warmup,
      runs,
      kvCapacity,
      seed,
      threads,
      wasmWeights: options.storedWeights ? "stored" : "f32",
      cacheTypeK,
      cacheTypeV,
    },
  };
}

/** Which backend ran on how many threads, and the wasm backend's weights. */
function threadsNote(r: BenchResult, ck: ModelBenchInfo): string {
  if (!r.backends.some((b) => b.backend === "wasm")) return "one thread";
  const others = r.backends.length > 1 ? ", the others on one" : "";
  const cache = ck.cacheTypeK === "f32" && ck.cacheTypeV === "f32"
    ? ""
    : ` and a K ${ck.cacheTypeK} / V ${ck.cacheTypeV} cache`;
  return `wasm on ${ck.threads} thread(s) with the weights ` +
    `${ck.wasmWeights === "stored" ? "as stored" : "in F32"}${cache}${others}`;
}

/**
 * Formats a {@linkcode BenchResult} as a plain-text table (what `gollm bench` prints).
 *
 * @param r The bench result.
 * @returns Lines: a header with the model size, one row per backend (prefill tok/s, decode
 *   tok/s, effective GFLOP/s of each, rounds), and the JIT/reference ratios (and, when the
 *   wasm backend ran, wasm/reference and wasm/jit).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { formatBench, runBench } from "./bench.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-gpt2.yaml"), "t.yaml");
 * const r = runBench(c, { seconds: 0.05, prefillTokens: 8, decodeTokens: 4, backends: ["jit"] });
 * const lines = formatBench(r).split("\n");
 * assert.match(lines[0], /^model: gpt2, [\d.]+M params \(dim 48, 2 layers, vocab 96\)/);
 * assert.match(lines[4], /^jit +\d/);
 * ```
 */
export function formatBench(r: BenchResult): string {
  const c = r.config, ck = r.checkpoint;
  const size = `model: ${c.arch}, ${(r.params / 1e6).toFixed(1)}M params (dim ${c.dim}, ` +
    `${c.n_layers} layers, vocab ${c.vocab_size})`;
  const lines = ck
    ? [
      `${size}; weights: ${ck.path} (${ck.format}); ${threadsNote(r, ck)}`,
      `decode: BOS, then ${r.decodeTokens} greedy steps from an empty cache; prefill: one ` +
      `${r.prefillTokens}-token prompt; ${ck.warmup} warm-up, median of ${ck.runs}; KV cache ` +
      `${ck.kvCapacity}`,
    ]
    : [
      `${size}; random weights; one thread`,
      `prefill: ${r.prefillTokens} tokens from position 0; decode: ${r.decodeTokens} tokens after it`,
    ];
  lines.push(
    "",
    "backend     prefill tok/s  prefill GFLOP/s  decode tok/s  decode GFLOP/s  rounds  setup ms",
  );
  const f = (v: number, w: number, d = 2) => v.toFixed(d).padStart(w);
  for (const b of r.backends) {
    lines.push(
      b.backend.padEnd(10) + f(b.prefillTokPerS, 15) + f(b.prefillGflops, 17) +
        f(b.decodeTokPerS, 14) + f(b.decodeGflops, 16) + String(b.rounds).padStart(8) +
        f(b.setupMs, 10, 0),
    );
  }
  if (r.ratio) {
    lines.push(
      "",
      `jit / reference: prefill ${r.ratio.prefill.toFixed(2)}x, decode ${
        r.ratio.decode.toFixed(2)
      }x`,
    );
  }
  const ratioLine = (label: string, q: { prefill: number; decode: number } | null | undefined) => {
    if (!q) return;
    if (!r.ratio) lines.push("");
    lines.push(
      `${label}: prefill ${q.prefill.toFixed(2)}x, decode ${q.decode.toFixed(2)}x`,
    );
  };
  ratioLine("wasm / reference", r.wasmRatio);
  ratioLine("wasm / jit", r.wasmVsJit);
  return lines.join("\n");
}
