/**
 * `gollm generate`: stream a continuation of a prompt to stdout.
 *
 * @module
 */
import { type GenerateStats, loadModel } from "../engine/model.ts";
import {
  choice,
  type Command,
  defaultModelPath,
  err,
  int,
  out,
  parse,
  progress,
  SAMPLING_HELP,
  SAMPLING_OPTIONS,
  samplingOptions,
  str,
} from "./common.ts";

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
  --backend B          jit (default) or reference
  --kv-capacity N      KV cache slots (default: context length); beyond it the window slides
  --tokenizer PATH     tokenizer file (required for a llama2.c .bin without tokenizer.bin)
  --json               print one JSON object at the end instead of streaming:
                       {text, tokens, prefill_tokens, prefill_tok_s, decode_tokens,
                        decode_tok_s, stop_reason}
  -h, --help           show this help`;

const tokPerSec = (n: number, ms: number) => (ms > 0 ? (n * 1000) / ms : 0);
const round2 = (x: number) => Math.round(x * 100) / 100;

/** One-line speed summary written to stderr after generation. */
export function statsLine(s: GenerateStats): string {
  const pre = tokPerSec(s.prefillTokens, s.prefillMs);
  const dec = tokPerSec(s.decodeTokens, s.decodeMs);
  return `prefill: ${s.prefillTokens} tokens, ${pre.toFixed(1)} tok/s | decode: ` +
    `${s.decodeTokens} tokens, ${dec.toFixed(1)} tok/s | ${s.tokens.length} generated, ` +
    `stop: ${s.stopReason}`;
}

/** The `generate` subcommand. */
export const generate: Command = {
  name: "generate",
  summary: "stream a continuation of a prompt (prints tok/s to stderr)",
  help: HELP,
  async run(args) {
    const usage = HELP.split("\n")[0];
    const p = parse(HELP, args, {
      model: { type: "string" },
      prompt: { type: "string" },
      "max-tokens": { type: "string", short: "n" },
      ...SAMPLING_OPTIONS,
      stop: { type: "string", multiple: true },
      backend: { type: "string" },
      "kv-capacity": { type: "string" },
      tokenizer: { type: "string" },
      json: { type: "boolean" },
    });
    if (!p) return 0;
    const v = p.values;
    const sampling = samplingOptions(v, usage);
    const maxTokens = int(v, "max-tokens", usage, 0) ?? 256;
    const backend = choice(v, "backend", usage, ["jit", "reference"] as const) ?? "jit";
    const kvCapacity = int(v, "kv-capacity", usage, 1);
    const json = v.json === true;
    const path = str(v, "model") ?? defaultModelPath();

    const prog = progress();
    let model;
    try {
      model = await loadModel(path, {
        backend,
        kvCapacity,
        tokenizerPath: str(v, "tokenizer"),
        onProgress: prog.onProgress,
      });
    } catch (e) {
      prog.clear();
      throw e;
    }
    prog.done(`loaded ${path} (${model.checkpoint.format}, ${backend})`);

    let text = "";
    const tty = Deno.stdout.isTerminal();
    for await (
      const piece of model.generate(str(v, "prompt") ?? "", {
        ...sampling,
        maxTokens,
        stop: v.stop as string[] | undefined,
        onNotice: (msg) => err(`note: ${msg}`),
      })
    ) {
      if (json) text += piece;
      else await out(piece);
    }
    const s = model.stats;
    if (!s) return 0;
    if (json) {
      await out(
        JSON.stringify({
          text,
          tokens: s.tokens,
          prefill_tokens: s.prefillTokens,
          prefill_tok_s: round2(tokPerSec(s.prefillTokens, s.prefillMs)),
          decode_tokens: s.decodeTokens,
          decode_tok_s: round2(tokPerSec(s.decodeTokens, s.decodeMs)),
          stop_reason: s.stopReason,
        }) + "\n",
      );
    } else {
      if (tty) await out("\n");
      err(statsLine(s));
    }
    return 0;
  },
};
