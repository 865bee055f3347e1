/**
 * `gollm bench`: reference vs JIT (JS and WASM) prefill and decode speed on random weights.
 *
 * @module
 */
import { type BenchBackend, formatBench, runBench } from "../runtime/bench.ts";
import { loadConfig } from "../core/config.ts";
import { type Command, parse, UsageError } from "./args.ts";
import { out, outJson } from "./output.ts";
import { progress } from "./progress_line.ts";

const SPEC = {
  name: "bench",
  summary: "reference vs JIT (JS, WASM) tok/s and GFLOP/s on random weights",
  usage: "--config FILE [--seconds S] [--backends LIST] [--json]",
  description:
    `Runs a model config on random weights (no checkpoint needed) and prints, in one run, the
reference's, the JS JIT's and the WASM SIMD JIT's prefill and decode tok/s, their ratios,
and effective GFLOP/s (2 x multiply-adds per token x tok/s).`,
  options: {
    config: {
      type: "string",
      required: true,
      meta: "FILE",
      description: "model config (YAML), e.g. configs/gollm-85m.yaml",
    },
    seconds: {
      type: "number",
      min: 0,
      minExclusive: true,
      meta: "S",
      description: "time budget per measurement",
      defaultText: "the benchmark's own",
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

/**
 * The `bench` subcommand: parse → load the config → {@linkcode runBench} on random weights →
 * print the table (tok/s, GFLOP/s) or JSON.
 *
 * @example
 * ```ts ignore
 * import { bench } from "./bench.ts";
 * await bench.run(["--config", "configs/test-llama.yaml", "--seconds", "0.5"]);
 * ```
 */
export const bench: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const { values: v, usage } = p;
    const configPath = v.config, seconds = v.seconds;
    const list = v.backends?.split(",").map((s) => s.trim()).filter(Boolean);
    for (const b of list ?? []) {
      if (b !== "jit" && b !== "reference" && b !== "wasm") {
        throw new UsageError(`--backends: unknown backend '${b}' (reference, jit, wasm)`, usage);
      }
    }
    const config = await loadConfig(configPath);
    const json = v.json;
    // A redrawn status line on a terminal; otherwise one summary line at the end.
    const prog = progress(json);
    let result;
    try {
      result = runBench(config, {
        seconds,
        backends: list as BenchBackend[] | undefined,
        onProgress: ({ backend, phase, round, rounds }) =>
          prog.onProgress({
            stage: round === 0
              ? `bench ${backend}: setup and warm-up`
              : `bench ${backend}: ${phase}, round ${round} of ~${rounds}`,
          }),
      });
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
