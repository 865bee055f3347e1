/**
 * `gollm kernels`: write the kernels the JIT generates for a config (`deno task generate`).
 *
 * @module
 */
import { emitKernels } from "../codegen/emit_js.ts";
import { emitWasmListing } from "../codegen/emit_wasm.ts";
import { loadConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import { type Command, int, parse, required, str } from "./args.ts";
import { err, formatBytes, out } from "./output.ts";
import { writeFileAtomic } from "../core/files.ts";

const HELP =
  `usage: gollm kernels --config FILE [--out FILE] [--wasm] [--kv-capacity N] [--prefill-chunk T]

Writes the TypeScript module the JIT generates for a model config: every shape, stride and
arena offset a literal, one function per layer, a decode step and a prefill step. This is
the same source the runtime compiles. With --wasm it writes instead the text listing
(WAT-like, with shape comments) of the WASM SIMD matrix kernels that --backend wasm
assembles. Without --out it goes to stdout.

options:
  --config FILE        model config (YAML)
  --out FILE           write here (atomically; parent directories are created)
  --wasm               write the WASM SIMD kernel listing instead of the TypeScript module
  --kv-capacity N      KV cache slots (default: the context length)
  --prefill-chunk T    tokens per prefill chunk (default 32)
  -h, --help           show this help`;

/**
 * The `kernels` subcommand: parse → load the config → {@linkcode emitKernels} → write the
 * module to `--out` (atomically) or stdout.
 *
 * @example
 * ```ts ignore
 * import { kernels } from "./kernels.ts";
 * await kernels.run(["--config", "configs/test-gpt2.yaml", "--out", "generated/k.ts"]);
 * ```
 */
export const kernels: Command = {
  name: "kernels",
  summary: "write the generated kernels for a config (deno task generate)",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      config: { type: "string" },
      out: { type: "string" },
      "kv-capacity": { type: "string" },
      "prefill-chunk": { type: "string" },
      wasm: { type: "boolean" },
    });
    if (!p) return 0;
    const { values: v, usage } = p;
    const configPath = required(v, "config", "FILE", usage);
    const kvCapacity = int(v, "kv-capacity", usage, 1);
    const prefillChunk = int(v, "prefill-chunk", usage, 1);
    const config = await loadConfig(configPath);
    if (kvCapacity !== undefined && kvCapacity > config.context_length) {
      throw new GollmError(
        `--kv-capacity ${kvCapacity} exceeds the context length ${config.context_length} of ${configPath}`,
      );
    }
    const source = v.wasm === true
      ? emitWasmListing(config, { kvCapacity, prefillChunk })
      : emitKernels(config, { kvCapacity, prefillChunk });
    const outPath = str(v, "out");
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
