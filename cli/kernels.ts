/**
 * `gollm kernels`: write the kernels the JIT generates for a config (`deno task generate`).
 *
 * @module
 */
import { emitKernels } from "../codegen/emit_js.ts";
import { emitWasmListing } from "../codegen/emit_wasm.ts";
import { loadConfig } from "../core/config.ts";
import { type Command, parse } from "./args.ts";
import { checkKvCapacity, KV_CAPACITY_OPTION, PREFILL_CHUNK_OPTION } from "./model_flags.ts";
import { err, formatBytes, out } from "./output.ts";
import { writeFileAtomic } from "../core/files.ts";

const SPEC = {
  name: "kernels",
  summary: "write the generated kernels for a config (deno task generate)",
  usage: "--config FILE [--out FILE] [--wasm] [--kv-capacity N] [--prefill-chunk T]",
  description:
    `Writes the TypeScript module the JIT generates for a model config: every shape, stride and
arena offset a literal, one function per layer, a decode step and a prefill step. This is
the same source the runtime compiles. With --wasm it writes instead the text listing
(WAT-like, with shape comments) of the WASM SIMD matrix kernels that --backend wasm
assembles. Without --out it goes to stdout.`,
  options: {
    config: { type: "string", required: true, meta: "FILE", description: "model config (YAML)" },
    out: {
      type: "string",
      meta: "FILE",
      description: "write here (atomically; parent directories are created)",
    },
    wasm: {
      type: "bool",
      description: "write the WASM SIMD kernel listing instead of the TypeScript module",
    },
    ...KV_CAPACITY_OPTION,
    ...PREFILL_CHUNK_OPTION,
  },
} as const;

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
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const { values: v, usage } = p;
    const configPath = v.config;
    const kvCapacity = v["kv-capacity"], prefillChunk = v["prefill-chunk"];
    const config = await loadConfig(configPath);
    checkKvCapacity(kvCapacity, config.context_length, configPath, usage);
    const source = v.wasm
      ? emitWasmListing(config, { kvCapacity, prefillChunk })
      : emitKernels(config, { kvCapacity, prefillChunk });
    const outPath = v.out;
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
