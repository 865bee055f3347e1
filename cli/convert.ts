/**
 * `gollm convert`: any supported checkpoint → a gollm model directory.
 *
 * @module
 */
import { loadConfig, parameterCount } from "../core/config.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { choice, type Command, parse, str, UsageError } from "./args.ts";
import { err, formatBytes, formatCount } from "./output.ts";
import { withProgress } from "./progress_line.ts";

const HELP = `usage: gollm convert IN OUT [--dtype f32|f16|bf16] [--tokenizer PATH] [--force]

Converts any supported checkpoint (gollm or Hugging Face directory, GGUF file, llama2.c
.bin) into a gollm model directory OUT: config.yaml, model.safetensors and the tokenizer
file. OUT is written under a temporary name and renamed when complete.

arguments:
  IN                   the checkpoint to read
  OUT                  the directory to create

options:
  --dtype D            storage dtype: f32 (default), f16 or bf16
  --tokenizer PATH     tokenizer file (llama2.c .bin without tok{vocab}.bin or tokenizer.bin
                       beside it)
  --force              replace OUT if it exists
  -h, --help           show this help`;

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile) total += (await Deno.stat(`${dir}/${e.name}`)).size;
  }
  return total;
}

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
  name: "convert",
  summary: "any supported checkpoint -> gollm model directory (f32/f16/bf16)",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      dtype: { type: "string" },
      tokenizer: { type: "string" },
      force: { type: "boolean" },
    }, 2);
    if (!p) return 0;
    const { values: v, usage } = p;
    const [input, output] = p.positionals;
    if (input === undefined || output === undefined) {
      throw new UsageError("needs IN and OUT", usage);
    }
    const dtype = choice(v, "dtype", usage, ["f32", "f16", "bf16"] as const) ?? "f32";
    await withProgress(
      false,
      async (onProgress) => {
        const ckpt = await loadCheckpoint(input, {
          tokenizerPath: str(v, "tokenizer"),
          onProgress,
        });
        await writeGollmDir(ckpt, output, { dtype, overwrite: v.force === true, onProgress });
        return ckpt;
      },
      async (ckpt) =>
        `converted ${input} (${ckpt.format}) -> ${output}: ${
          formatCount(parameterCount(ckpt.config))
        } parameters, ${ckpt.weights.size} tensors, ${dtype}, tokenizer ${
          (await loadConfig(`${output}/config.yaml`)).tokenizer
        }, ${formatBytes(await dirBytes(output))}`,
    );
    err(`run it: deno run -A cli/main.ts generate --model ${output} --prompt "..."`);
    return 0;
  },
};
