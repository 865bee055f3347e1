/**
 * `gollm convert`: any supported checkpoint → a gollm model directory.
 *
 * @module
 */
import { loadConfig, parameterCount } from "../core/config.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { GollmError } from "../core/errors.ts";
import { join, pathExists, sizeOnDisk } from "../core/files.ts";
import { type Command, type OptionSpec, parse, type PositionalSpec } from "./args.ts";
import { modelSource, TOKENIZER_OPTION } from "./model_flags.ts";
import { err, formatBytes, formatCount } from "./output.ts";
import { withProgress } from "./progress_line.ts";

/** `IN`, the checkpoint a converter reads (`convert`, `quantize`); it stands for `--model`. */
export const CHECKPOINT_IN: PositionalSpec = {
  name: "IN",
  description: "the checkpoint to read: gollm or Hugging Face directory, GGUF, llama2.c .bin",
  option: "model",
  required: true,
};

/** `--model IN`, the same as the `IN` argument. */
export const CHECKPOINT_IN_OPTION = {
  model: { type: "string", meta: "IN", description: "the checkpoint to read" },
} as const satisfies Record<string, OptionSpec>;

/**
 * Refuses an existing `OUT` unless `--force` was given, before a long read (the writers check
 * again when they write, atomically).
 *
 * @throws {GollmError} `<OUT> already exists; pass --force to replace it`.
 */
export async function checkOutput(output: string, force: boolean): Promise<void> {
  if (!force && (await pathExists(output))) {
    throw new GollmError(`${output} already exists; pass --force to replace it`);
  }
}

const SPEC = {
  name: "convert",
  summary: "any supported checkpoint -> gollm model directory (f32/f16/bf16)",
  usage: "IN OUT [--dtype f32|f16|bf16] [--tokenizer PATH] [--force]",
  description:
    `Converts any supported checkpoint (gollm or Hugging Face directory, GGUF file, llama2.c
.bin) into a gollm model directory OUT: config.yaml, model.safetensors and the tokenizer
file. OUT is written under a temporary name and renamed when complete, so a failed
conversion leaves nothing behind.`,
  positionals: [
    CHECKPOINT_IN,
    { name: "OUT", description: "the directory to create", required: true },
  ],
  options: {
    ...CHECKPOINT_IN_OPTION,
    dtype: {
      type: "choice",
      choices: ["f32", "f16", "bf16"],
      default: "f32",
      meta: "D",
      description: "storage dtype: f32, f16 or bf16",
    },
    ...TOKENIZER_OPTION,
    force: { type: "bool", description: "replace OUT if it exists" },
  },
} as const;

/**
 * The `convert` subcommand: parse → load any checkpoint → {@linkcode writeGollmDir} (atomic)
 * → one summary line (parameters, tensors, dtype, tokenizer, bytes on disk) on stderr.
 *
 * @example
 * ```ts ignore
 * import { convert } from "./convert.ts";
 * await convert.run(["stories260K.bin", "out/stories", "--tokenizer", "tok512.bin"]);
 * ```
 */
export const convert: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const v = p.values;
    const input = v.model!; // IN or --model IN (required)
    const [output] = p.positionals;
    const dtype = v.dtype;
    await checkOutput(output, v.force);
    await withProgress(
      false,
      async (onProgress) => {
        const ckpt = await loadCheckpoint(modelSource(input), {
          tokenizerPath: v.tokenizer,
          onProgress,
        });
        // OS errors (OUT under a file, in /proc, the cwd) are one line naming OUT.
        await writeGollmDir(ckpt, output, { dtype, overwrite: v.force, onProgress });
        return ckpt;
      },
      async (ckpt) =>
        `converted ${input} (${ckpt.format}) -> ${output}: ${
          formatCount(parameterCount(ckpt.config))
        } parameters, ${ckpt.weights.size} tensors, ${dtype}, tokenizer ${
          (await loadConfig(join(output, "config.yaml"))).tokenizer
        }, ${formatBytes(await sizeOnDisk(output))}`,
    );
    err(`run it: deno run -A cli/main.ts generate --model ${output} --prompt "..."`);
    return 0;
  },
};
