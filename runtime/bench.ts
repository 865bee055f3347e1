/**
 * `gollm bench`: prefill and decode throughput of the reference forward and the JIT on
 * random weights (no checkpoint needed), with effective GFLOP/s and JIT/reference ratios.
 *
 * @module
 */
import { type ModelConfig, parameterCount } from "../core/config.ts";
import type { ForwardPass } from "../core/forward.ts";
import { createReference } from "./reference.ts";
import { randomWeights } from "../core/weights.ts";
import { compileModel } from "../codegen/compile.ts";
import { macsPerToken } from "../codegen/graph.ts";

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
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

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

  let prefillMacs = macsPerToken(config, P - 1, kvCapacity, true);
  for (let p = 0; p < P - 1; p++) prefillMacs += macsPerToken(config, p, kvCapacity, false);
  let decodeMacs = 0;
  for (let i = 0; i < D; i++) decodeMacs += macsPerToken(config, P + i, kvCapacity, true);

  const results: BackendBench[] = [];
  const report = options.onProgress ?? (() => {});
  for (const backend of backends) {
    report({ backend, phase: "prefill", round: 0, rounds: 1 });
    const t0 = performance.now();
    const fp: ForwardPass = backend === "jit"
      ? compileModel(config, weights, { kvCapacity })
      : backend === "wasm"
      ? compileModel(config, weights, { kvCapacity, backend: "wasm" })
      : createReference(config, weights, { kvCapacity });
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
      prefillGflops: (2 * prefillMacs) / tp / 1e9,
      decodeGflops: D > 0 ? (2 * decodeMacs) / td / 1e9 : 0,
      rounds: prefillTimes.length,
    });
  }
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
  return {
    config,
    params: parameterCount(config),
    prefillTokens: P,
    decodeTokens: D,
    backends: results,
    ratio: ratioOf(jit, ref),
    wasmRatio: ratioOf(wasm, ref),
    wasmVsJit: ratioOf(wasm, jit),
  };
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
  const c = r.config;
  const lines = [
    `model: ${c.arch}, ${(r.params / 1e6).toFixed(1)}M params (dim ${c.dim}, ` +
    `${c.n_layers} layers, vocab ${c.vocab_size}); random weights; one thread`,
    `prefill: ${r.prefillTokens} tokens from position 0; decode: ${r.decodeTokens} tokens after it`,
    "",
    "backend     prefill tok/s  prefill GFLOP/s  decode tok/s  decode GFLOP/s  rounds  setup ms",
  ];
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
