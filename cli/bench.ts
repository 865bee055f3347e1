/**
 * `gollm bench`: reference vs JIT prefill and decode speed on random weights.
 *
 * @module
 */
import { formatBench, runBench } from "../codegen/bench.ts";
import { loadConfig } from "../engine/config.ts";
import { type Command, num, out, parse, str, UsageError } from "./common.ts";

const HELP = `usage: gollm bench --config FILE [--seconds S] [--backends jit,reference] [--json]

Runs a model config on random weights (no checkpoint needed) and prints, in one run, the
reference's and the JIT's prefill and decode tok/s, their ratio, and effective GFLOP/s
(2 x multiply-adds per token x tok/s).

options:
  --config FILE        model config (YAML), e.g. configs/gollm-85m.yaml
  --seconds S          time budget per measurement (default: the benchmark's own)
  --backends LIST      comma-separated subset of jit,reference (default both)
  --json               print the result as one JSON object
  -h, --help           show this help`;

/** The `bench` subcommand. */
export const bench: Command = {
  name: "bench",
  summary: "reference vs JIT tok/s and GFLOP/s on random weights",
  help: HELP,
  async run(args) {
    const usage = HELP.split("\n")[0];
    const p = parse(HELP, args, {
      config: { type: "string" },
      seconds: { type: "string" },
      backends: { type: "string" },
      json: { type: "boolean" },
    });
    if (!p) return 0;
    const configPath = str(p.values, "config");
    if (configPath === undefined) throw new UsageError("--config FILE is required", usage);
    const seconds = num(p.values, "seconds", usage, 0);
    if (seconds === 0) throw new UsageError("--seconds must be > 0", usage);
    const list = str(p.values, "backends")?.split(",").map((s) => s.trim()).filter(Boolean);
    for (const b of list ?? []) {
      if (b !== "jit" && b !== "reference") {
        throw new UsageError(`--backends: unknown backend '${b}' (jit, reference)`, usage);
      }
    }
    const config = await loadConfig(configPath);
    const result = await runBench(config, {
      seconds,
      backends: list as ("jit" | "reference")[] | undefined,
    });
    await out(
      p.values.json === true ? JSON.stringify(result) + "\n" : formatBench(result) + "\n",
    );
    return 0;
  },
};
