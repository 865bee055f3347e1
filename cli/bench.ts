/**
 * `gollm bench`: reference vs JIT (JS and WASM) prefill and decode speed, on random weights
 * for a config (`--config`) or on a real checkpoint (`--model`, the default model without
 * either).
 *
 * @module
 */
import {
  type BenchBackend,
  type BenchProgress,
  type BenchResult,
  formatBench,
  runBench,
  runModelBench,
} from "../runtime/bench.ts";
import { loadConfig } from "../core/config.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { dequantizeWeights } from "../formats/quant/tensor.ts";
import { type Command, parse, UsageError } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import {
  CACHE_TYPE_OPTIONS,
  MODEL_OPTION,
  MODEL_POSITIONAL,
  modelSource,
  THREADS_OPTION,
  TOKENIZER_OPTION,
} from "./model_flags.ts";
import { resolveThreads } from "../runtime/model.ts";
import { out, outJson } from "./output.ts";
import { progress, withProgress } from "./progress_line.ts";

const SPEC = {
  name: "bench",
  summary: "reference vs JIT (JS, WASM) tok/s and GFLOP/s, on random weights or a checkpoint",
  usage: "[PATH | --config FILE] [--seconds S] [--backends LIST] [--threads N] [--json] [options]",
  description:
    `Prints, in one run, the reference's, the JS JIT's and the WASM SIMD JIT's prefill and
decode tok/s, their ratios, and effective GFLOP/s (2 x multiply-adds per token x tok/s).
With --config: a model config on random weights (no checkpoint needed); rounds of a 64-token
prompt and 16 decode steps repeat for --seconds per backend and the medians are shown.
With --model (or PATH; the shipped models/default when neither is given): a real checkpoint,
timed with the project's fixed protocol (as bench/ times gollm against llama.cpp): decode =
BOS, then 200 greedy steps from an empty KV cache; prefill = one 256-token prompt (BOS and
seeded random ids) in one call (both shortened to fit a shorter context); 1 untimed warm-up,
then the median of 3 runs; a KV cache of 512 slots (or the context length). There the wasm
backend runs what generate runs: the weights as stored (GGUF F16 and ggml blocks, no F32
copy) on --threads threads (default: the core count), with a K and V cache of
--cache-type-k/-v (f32 or f16; f16 needs --backends wasm); the reference and the JS JIT run
F32 weights on one thread with f32 caches. --json prints
the figures as one object: {config, params, prefillTokens, decodeTokens, backends: [{backend,
setupMs, prefillTokPerS, decodeTokPerS, prefillGflops, decodeGflops, rounds}], ratio,
wasmRatio, wasmVsJit, checkpoint} (checkpoint: null for --config; else {path, format, bos,
warmup, runs, kvCapacity, seed, threads, wasmWeights, cacheTypeK, cacheTypeV}).`,
  positionals: [MODEL_POSITIONAL],
  options: {
    config: {
      type: "string",
      meta: "FILE",
      description: "model config (YAML) to run on random weights, e.g. configs/gollm-85m.yaml",
    },
    ...MODEL_OPTION,
    ...TOKENIZER_OPTION,
    ...THREADS_OPTION,
    ...CACHE_TYPE_OPTIONS,
    seconds: {
      type: "number",
      min: 0,
      minExclusive: true,
      meta: "S",
      description: "with --config: time budget per backend",
      defaultText: "10",
    },
    backends: {
      type: "string",
      meta: "LIST",
      description: "comma-separated subset of reference,jit,wasm",
      defaultText: "all three",
    },
    json: { type: "bool", description: "print the result as one JSON object" },
  },
} as const;

/** The status line of one progress event. */
function stage({ backend, phase, round, rounds }: BenchProgress, fixed: boolean): string {
  if (round === 0) return `bench ${backend}: setup and warm-up`;
  return `bench ${backend}: ${phase}, run ${round} of ${fixed ? "" : "~"}${rounds}`;
}

/**
 * The `bench` subcommand: parse → {@linkcode runBench} on a config's random weights, or load a
 * checkpoint → {@linkcode runModelBench} → print the table (tok/s, GFLOP/s) or JSON.
 *
 * @example
 * ```ts ignore
 * import { bench } from "./bench.ts";
 * await bench.run(["--config", "configs/test-llama.yaml", "--seconds", "0.5"]);
 * await bench.run(["--model", "models/default", "--backends", "jit"]);
 * ```
 */
export const bench: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const { values: v, usage } = p;
    const list = v.backends?.split(",").map((s) => s.trim()).filter(Boolean);
    for (const b of list ?? []) {
      if (b !== "jit" && b !== "reference" && b !== "wasm") {
        throw new UsageError(`--backends: unknown backend '${b}' (reference, jit, wasm)`, usage);
      }
    }
    const backends = list as BenchBackend[] | undefined;
    if (v.config !== undefined && v.model !== undefined) {
      throw new UsageError("give --config FILE (random weights) or a model, not both", usage);
    }
    if (v.config === undefined && v.seconds !== undefined) {
      throw new UsageError(
        "--seconds applies to --config only; a checkpoint is timed with a fixed protocol",
        usage,
      );
    }
    if (v.config !== undefined && v.threads !== undefined) {
      throw new UsageError("--threads applies to a model, not to --config", usage);
    }
    if (v.config !== undefined && v.tokenizer !== undefined) {
      throw new UsageError("--tokenizer applies to a model, not to --config", usage);
    }
    const cacheTypeK = v["cache-type-k"], cacheTypeV = v["cache-type-v"];
    for (const [flag, t] of [["--cache-type-k", cacheTypeK], ["--cache-type-v", cacheTypeV]]) {
      if (t === "f32") continue;
      if (v.config !== undefined) {
        throw new UsageError(`${flag} applies to a model, not to --config`, usage);
      }
      if (backends === undefined || backends.some((b) => b !== "wasm")) {
        throw new UsageError(
          `${flag} ${t} needs --backends wasm (the reference and the JS JIT keep f32 caches)`,
          usage,
        );
      }
    }
    const json = v.json;
    let run: (onProgress: (e: BenchProgress) => void) => BenchResult;
    const fixed = v.config === undefined;
    if (v.config !== undefined) {
      const config = await loadConfig(v.config);
      run = (onProgress) => runBench(config, { seconds: v.seconds, backends, onProgress });
    } else {
      const path = v.model ?? await resolveDefaultModel(json);
      const threads = resolveThreads(v.threads);
      const want = backends ?? ["reference", "jit", "wasm"];
      // Read once, as stored (what loadModel runs on wasm); the reference and the JS JIT get
      // the same tensors dequantised to F32.
      const stored = await withProgress(
        json,
        (onProgress) =>
          loadCheckpoint(modelSource(path), {
            tokenizerPath: v.tokenizer,
            onProgress,
            stored: true,
          }),
        (c) => `loaded ${path} (${c.format})`,
      );
      const ckpt = want.some((b) => b !== "wasm")
        ? { ...stored, weights: dequantizeWeights(stored.weights) }
        : stored;
      const storedWeights = want.includes("wasm") ? stored.weights : undefined;
      run = (onProgress) =>
        runModelBench(ckpt, {
          backends,
          onProgress,
          storedWeights,
          threads,
          cacheTypeK,
          cacheTypeV,
        });
    }
    // A redrawn status line on a terminal; otherwise one summary line at the end.
    const prog = progress(json);
    let result;
    try {
      result = run((e) => prog.onProgress({ stage: stage(e, fixed) }));
    } catch (e) {
      prog.clear();
      throw e;
    }
    prog.done(`benchmarked ${result.backends.map((b) => b.backend).join(", ")}`);
    if (json) await outJson(result);
    else await out(formatBench(result) + "\n");
    return 0;
  },
};
