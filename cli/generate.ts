/**
 * `gollm generate`: stream a continuation of a prompt to stdout.
 *
 * @module
 */
import type { GenerateStats } from "../runtime/model.ts";
import { type Command, int, parse, str } from "./args.ts";
import {
  loadModelFlags,
  MODEL_OPTIONS,
  modelFlags,
  SAMPLING_HELP,
  SAMPLING_OPTIONS,
  samplingOptions,
} from "./model_flags.ts";
import { err, out, outJson } from "./output.ts";

const HELP = `usage: gollm generate [--model PATH] [--prompt TEXT] [-n N] [options]

Streams a continuation of the prompt to stdout (the prompt itself is not echoed) and prints
prefill and decode speed to stderr at the end. Stops at EOS, after N tokens, or at a stop
string (which is not printed).

options:
  --model PATH         model directory (gollm or Hugging Face), GGUF file or llama2.c .bin
                       (default: the shipped models/default)
  --prompt TEXT        text to continue (default: empty, i.e. start from BOS)
  -n, --max-tokens N   most tokens to generate (default 256)
${SAMPLING_HELP}
  --stop TEXT          stop when TEXT appears (repeatable)
  --backend B          jit (default: generated JS), wasm (generated WASM SIMD) or reference
  --kv-capacity N      KV cache slots (default: context length); beyond it the window slides
  --tokenizer PATH     tokenizer file (required for a llama2.c .bin unless tok{vocab}.bin or
                       tokenizer.bin sits beside it)
  --json               print one JSON object at the end instead of streaming:
                       {text, tokens, prefill_tokens, prefill_tok_s, decode_tokens,
                        decode_tok_s, stop_reason}
  -h, --help           show this help`;

const tokPerSec = (n: number, ms: number) => (ms > 0 ? (n * 1000) / ms : 0);
const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * One-line speed summary written to stderr after generation (tok/s = tokens / wall seconds).
 *
 * @param s Stats of the finished generation.
 * @returns E.g. `prefill: 5 tokens, 53.9 tok/s | decode: 59 tokens, 539.7 tok/s | 60 generated, stop: max_tokens`.
 *
 * @example
 * ```ts
 * import { statsLine } from "./generate.ts";
 * console.log(statsLine({
 *   promptTokens: 2, prefillTokens: 2, prefillMs: 10, decodeTokens: 3, decodeMs: 30,
 *   tokens: [5, 6, 7, 8], stopReason: "max_tokens",
 * })); // prefill: 2 tokens, 200.0 tok/s | decode: 3 tokens, 100.0 tok/s | 4 generated, ...
 * ```
 */
export function statsLine(s: GenerateStats): string {
  const pre = tokPerSec(s.prefillTokens, s.prefillMs);
  const dec = tokPerSec(s.decodeTokens, s.decodeMs);
  return `prefill: ${s.prefillTokens} tokens, ${pre.toFixed(1)} tok/s | decode: ` +
    `${s.decodeTokens} tokens, ${dec.toFixed(1)} tok/s | ${s.tokens.length} generated, ` +
    `stop: ${s.stopReason}`;
}

/**
 * The `generate` subcommand: parse → load → stream the continuation to stdout (ending it
 * with a newline, as llama2.c does) → stats line on stderr; or one JSON object with --json.
 *
 * @example
 * ```ts ignore
 * import { generate } from "./generate.ts";
 * await generate.run(["--prompt", "Once upon a time", "-n", "20", "--seed", "1"]);
 * ```
 */
export const generate: Command = {
  name: "generate",
  summary: "stream a continuation of a prompt (prints tok/s to stderr)",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      ...MODEL_OPTIONS,
      prompt: { type: "string" },
      "max-tokens": { type: "string", short: "n" },
      ...SAMPLING_OPTIONS,
      stop: { type: "string", multiple: true },
      json: { type: "boolean" },
    });
    if (!p) return 0;
    const { values: v, usage } = p;
    const sampling = samplingOptions(v, usage);
    const maxTokens = int(v, "max-tokens", usage, 0) ?? 256;
    const flags = modelFlags(v, usage);
    const json = v.json === true;
    const { model } = await loadModelFlags(flags);

    let text = "", endsWithNewline = false;
    for await (
      const piece of model.generate(str(v, "prompt") ?? "", {
        ...sampling,
        maxTokens,
        stop: v.stop as string[] | undefined,
        onNotice: (msg) => err(`note: ${msg}`),
      })
    ) {
      if (json) text += piece;
      else {
        await out(piece);
        endsWithNewline = piece.endsWith("\n");
      }
    }
    const s = model.stats;
    if (!s) return 0;
    if (json) {
      await outJson({
        text,
        tokens: s.tokens,
        prefill_tokens: s.prefillTokens,
        prefill_tok_s: round2(tokPerSec(s.prefillTokens, s.prefillMs)),
        decode_tokens: s.decodeTokens,
        decode_tok_s: round2(tokPerSec(s.decodeTokens, s.decodeMs)),
        stop_reason: s.stopReason,
      });
    } else {
      // End the text with a newline (llama2.c prints one too) so the stats line on stderr
      // starts on its own line in a terminal and piped output is a complete line.
      if (!endsWithNewline) await out("\n");
      err(statsLine(s));
    }
    return 0;
  },
};
