/**
 * `gollm kernels`: write the kernels the JIT generates for a config (`deno task generate`).
 *
 * @module
 */
import { emitKernels } from "../codegen/emit_js.ts";
import { loadConfig } from "../engine/config.ts";
import { GollmError } from "../engine/errors.ts";
import {
  type Command,
  err,
  formatBytes,
  int,
  out,
  parse,
  str,
  UsageError,
  writeFileAtomic,
} from "./common.ts";

const HELP = `usage: gollm kernels --config FILE [--out FILE] [--kv-capacity N] [--prefill-chunk T]

Writes the TypeScript module the JIT generates for a model config: every shape, stride and
arena offset a literal, one function per layer, a decode step and a prefill step. This is
the same source the runtime compiles. Without --out it goes to stdout.

options:
  --config FILE        model config (YAML)
  --out FILE           write here (atomically; parent directories are created)
  --kv-capacity N      KV cache slots (default: the context length)
  --prefill-chunk T    tokens per prefill chunk (default 32)
  -h, --help           show this help`;

/** The `kernels` subcommand. */
export const kernels: Command = {
  name: "kernels",
  summary: "write the generated kernels for a config (deno task generate)",
  help: HELP,
  async run(args) {
    const usage = HELP.split("\n")[0];
    const p = parse(HELP, args, {
      config: { type: "string" },
      out: { type: "string" },
      "kv-capacity": { type: "string" },
      "prefill-chunk": { type: "string" },
    });
    if (!p) return 0;
    const configPath = str(p.values, "config");
    if (configPath === undefined) throw new UsageError("--config FILE is required", usage);
    const kvCapacity = int(p.values, "kv-capacity", usage, 1);
    const prefillChunk = int(p.values, "prefill-chunk", usage, 1);
    const config = await loadConfig(configPath);
    if (kvCapacity !== undefined && kvCapacity > config.context_length) {
      throw new GollmError(
        `--kv-capacity ${kvCapacity} exceeds the context length ${config.context_length} of ${configPath}`,
      );
    }
    const source = emitKernels(config, { kvCapacity, prefillChunk });
    const outPath = str(p.values, "out");
    if (outPath === undefined) {
      await out(source);
      return 0;
    }
    await writeFileAtomic(outPath, source);
    const lines = source.split("\n").length - (source.endsWith("\n") ? 1 : 0);
    err(
      `wrote ${outPath} (${lines} lines, ${formatBytes(new TextEncoder().encode(source).length)})`,
    );
    return 0;
  },
};
