/**
 * `gollm bench`: reference vs JIT (JS and WASM) prefill and decode speed on random weights.
 *
 * @module
 */
import { type BenchBackend, formatBench, runBench } from "../runtime/bench.ts";
import { loadConfig } from "../core/config.ts";
import { type Command, num, parse, required, str, UsageError } from "./args.ts";
import { out, outJson } from "./output.ts";
import { progress } from "./progress_line.ts";

const HELP = `usage: gollm bench --config FILE [--seconds S] [--backends LIST] [--json]

Runs a model config on random weights (no checkpoint needed) and prints, in one run, the
reference's, the JS JIT's and the WASM SIMD JIT's prefill and decode tok/s, their ratios,
and effective GFLOP/s (2 x multiply-adds per token x tok/s).

options:
  --config FILE        model config (YAML), e.g. configs/gollm-85m.yaml
  --seconds S          time budget per measurement (default: the benchmark's own)
  --backends LIST      comma-separated subset of reference,jit,wasm (default all three)
  --json               print the result as one JSON object
  -h, --help           show this help`;

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
  name: "bench",
  summary: "reference vs JIT (JS, WASM) tok/s and GFLOP/s on random weights",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      config: { type: "string" },
      seconds: { type: "string" },
      backends: { type: "string" },
      json: { type: "boolean" },
    });
    if (!p) return 0;
    const { values: v, usage } = p;
    const configPath = required(v, "config", "FILE", usage);
    const seconds = num(v, "seconds", usage, 0);
    if (seconds === 0) throw new UsageError("--seconds must be > 0", usage);
    const list = str(v, "backends")?.split(",").map((s) => s.trim()).filter(Boolean);
    for (const b of list ?? []) {
      if (b !== "jit" && b !== "reference" && b !== "wasm") {
        throw new UsageError(`--backends: unknown backend '${b}' (reference, jit, wasm)`, usage);
      }
    }
    const config = await loadConfig(configPath);
    const json = v.json === true;
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
