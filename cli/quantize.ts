/**
 * `gollm quantize IN OUT.gguf --type T`: any supported checkpoint → a GGUF file in one of
 * `llama-quantize`'s file types, block for block what llama.cpp writes (formats/quantize.ts).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { pathExists, sizeOnDisk } from "../core/files.ts";
import { quantizeModel, type QuantizeModelResult } from "../formats/quantize.ts";
import { FILE_TYPES } from "../formats/quant/mix.ts";
import { type Command, parse } from "./args.ts";
import { checkOutput, CHECKPOINT_IN, CHECKPOINT_IN_OPTION } from "./convert.ts";
import { TOKENIZER_OPTION } from "./model_flags.ts";
import { formatBytes, formatCount } from "./output.ts";
import { withProgress } from "./progress_line.ts";

/** Whether two paths name the same file (device and inode). */
async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([Deno.stat(a), Deno.stat(b)]);
    return x.dev === y.dev && x.ino !== null && x.ino === y.ino;
  } catch {
    return false;
  }
}

/** Most worker threads `--threads` accepts (far above any core count here). */
const MAX_THREADS = 256;

const SPEC = {
  name: "quantize",
  summary: "any supported checkpoint -> GGUF file quantised as llama-quantize does",
  usage: "IN OUT.gguf --type T [--threads N] [--tokenizer PATH] [--force]",
  description:
    `Quantises any supported checkpoint (gollm or Hugging Face directory, GGUF file, llama2.c
.bin) into a GGUF file OUT that llama.cpp reads: llama-quantize's per-tensor type mix for
the file type T (e.g. q4_k_m keeps some attn_v/ffn_down rows in Q6_K, output.weight in Q6_K)
and ggml's reference block quantisers without an importance matrix, so the blocks equal
llama-quantize's on the same F32 weights. OUT is written under a temporary name and renamed
when complete, so a failed run leaves nothing behind. Prints one summary line: sizes in and
out, bits per weight, seconds.`,
  positionals: [
    CHECKPOINT_IN,
    { name: "OUT", description: "the GGUF file to write", required: true },
  ],
  options: {
    ...CHECKPOINT_IN_OPTION,
    type: {
      type: "choice",
      choices: FILE_TYPES.map((f) => f.name),
      required: true,
      meta: "T",
      description: `file type, as llama-quantize names it: ${
        FILE_TYPES.map((f) => f.name).join(", ")
      }`,
    },
    threads: {
      type: "int",
      min: 1,
      max: MAX_THREADS,
      meta: "N",
      defaultText: "the number of cores",
      description: "worker threads for the block quantisers (the bytes do not depend on it)",
    },
    ...TOKENIZER_OPTION,
    force: { type: "bool", description: "replace OUT if it exists" },
  },
} as const;

/**
 * The summary line of a quantisation (`withProgress` appends the time):
 * `quantized IN (1.13 MB) -> OUT (q4_k_m, 0.25 MB): 260,096 parameters, 5.21 bits per weight`.
 * Bits per weight count the tensor data only, as `llama-quantize` reports them.
 *
 * @param input The input path.
 * @param inBytes Its size on disk.
 * @param r What {@linkcode quantizeModel} returned.
 * @returns One line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quantizeSummary } from "./quantize.ts";
 * import { ggmlTypeByName } from "../formats/quant.ts";
 * const q8 = ggmlTypeByName("Q8_0")!; // 34 bytes per 32 weights
 * const line = quantizeSummary("m", 4096, {
 *   path: "m.gguf", fileType: { name: "q8_0", id: 7, defaultType: "Q8_0" }, arch: "llama",
 *   tensors: [{ name: "w", shape: [1024], type: q8, bytes: 1088 }],
 *   fileBytes: 1500, parameters: 1024, seconds: 0.5,
 * });
 * assert.equal(line, "quantized m (4.10 kB) -> m.gguf (q8_0, 1.50 kB): 1,024 parameters, 8.50 bits per weight");
 * ```
 */
export function quantizeSummary(input: string, inBytes: number, r: QuantizeModelResult): string {
  const dataBytes = r.tensors.reduce((a, t) => a + t.bytes, 0);
  const bpw = r.parameters > 0 ? (8 * dataBytes) / r.parameters : 0;
  return `quantized ${input} (${formatBytes(inBytes)}) -> ${r.path} (${r.fileType.name}, ${
    formatBytes(r.fileBytes)
  }): ${formatCount(r.parameters)} parameters, ${bpw.toFixed(2)} bits per weight`;
}

/**
 * The `quantize` subcommand: parse (the type is checked before anything is read) → refuse an
 * existing OUT without `--force` → {@linkcode quantizeModel} under a progress line → one
 * summary line on stderr.
 *
 * @example
 * ```ts ignore
 * import { quantize } from "./quantize.ts";
 * await quantize.run(["models/default", "default.q4_k_m.gguf", "--type", "q4_k_m"]);
 * ```
 */
export const quantize: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const v = p.values;
    const input = v.model!; // IN or --model IN (required)
    const [output] = p.positionals;
    await checkOutput(output, v.force);
    if ((await pathExists(output)) && (await sameFile(input, output))) {
      throw new GollmError(`${output}: is the input checkpoint; write the GGUF elsewhere`);
    }
    const inBytes = await pathExists(input) ? await sizeOnDisk(input) : 0;
    await withProgress(
      false,
      (onProgress) =>
        quantizeModel(input, output, v.type, {
          tokenizerPath: v.tokenizer,
          threads: v.threads,
          onProgress,
        }),
      (r) => quantizeSummary(input, inBytes, r),
    );
    return 0;
  },
};
