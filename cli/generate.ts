/**
 * `gollm generate`: stream a continuation of a prompt to stdout.
 *
 * @module
 */
import { readJson } from "../core/files.ts";
import { compileJsonSchema } from "../runtime/json_schema.ts";
import type { GenerateStats } from "../runtime/model.ts";
import { type Command, parse, UsageError } from "./args.ts";
import {
  loadModelFlags,
  MODEL_OPTIONS,
  MODEL_POSITIONAL,
  NO_SPECIAL_OPTION,
  SAMPLING_OPTIONS,
  samplingOptions,
} from "./model_flags.ts";
import { err, note, out, outJson } from "./output.ts";
import {
  checkSpeculativeFlags,
  SPECULATIVE_OPTIONS,
  speculativeFlags,
  speculativeJson,
  speculativeLine,
} from "./speculative_flags.ts";

const SPEC = {
  name: "generate",
  summary: "stream a continuation of a prompt (prints tok/s to stderr)",
  usage: "[PATH] [--prompt TEXT] [-n N] [options]",
  description:
    `Streams a continuation of the prompt to stdout (the prompt itself is not echoed) and prints
prefill and decode speed to stderr at the end. Stops at EOS, after N tokens, or at a stop
string (which is not printed). A prompt longer than the context length is refused, unless
--kv-capacity is below it (LLaMA-style models then run it through the sliding window).`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...MODEL_OPTIONS,
    prompt: {
      type: "string",
      description: "text to continue",
      defaultText: "empty, i.e. start from BOS",
    },
    "max-tokens": {
      type: "int",
      short: "n",
      min: 0,
      default: 256,
      meta: "N",
      description: "most tokens to generate",
    },
    ...SAMPLING_OPTIONS,
    stop: {
      type: "string",
      repeatable: true,
      description: "stop when TEXT appears; it is not printed",
    },
    ...NO_SPECIAL_OPTION,
    ...SPECULATIVE_OPTIONS,
    "json-mode": {
      type: "bool",
      description: "JSON mode: only tokens that keep the reply a JSON object are sampled, and " +
        "it stops when the object closes (as the server's response_format json_object; not " +
        "with --draft or --ngram)",
    },
    "json-schema": {
      type: "string",
      meta: "FILE",
      description: "structured output: only tokens that keep the reply a JSON text valid for " +
        "the JSON Schema in FILE are sampled, and it stops when the value is complete (as the " +
        "server's response_format json_schema: properties in the schema's order; not with " +
        "--json-mode, --draft or --ngram)",
    },
    json: {
      type: "bool",
      description: "print one JSON object at the end instead of streaming: {text, tokens, " +
        "prefill_tokens, prefill_tok_s, decode_tokens, decode_tok_s, stop_reason} (and " +
        "speculative: {proposer, draft_max, steps, drafted, accepted, acceptance_rate, " +
        "tokens_per_step, draft_ms} with --draft or --ngram); with a stop string, tokens " +
        "end before the token that reaches into it",
    },
  },
  epilog: `speed: prefill tok/s = prompt tokens run / wall time of the prefill forward pass; decode
tok/s = decode steps / wall time of sampling and the decode steps. Loading runs one warm-up
pass (as llama.cpp does), so compiling the kernels is not timed; V8 may still be optimising
them during the first prompt, so a short one can read low (gollm bench: steady state).
With --draft or --ngram the stats add the drafts accepted and the tokens per target step
(decode tok/s then counts every generated token).`,
} as const;

/** The JSON Schema in `file`, checked against the subset (runtime/json_schema.ts). */
async function readSchema(file: string): Promise<Record<string, unknown> | boolean> {
  const schema = await readJson(file);
  compileJsonSchema(schema, `${file}: schema`); // throws JsonSchemaError naming the path
  return schema as Record<string, unknown> | boolean;
}

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
 * import assert from "node:assert/strict";
 * import { statsLine } from "./generate.ts";
 * const line = statsLine({
 *   promptTokens: 2, prefillTokens: 2, prefillMs: 10, decodeTokens: 3, decodeMs: 30,
 *   tokens: [5, 6, 7, 8], stopReason: "max_tokens",
 * });
 * assert.equal(
 *   line,
 *   "prefill: 2 tokens, 200.0 tok/s | decode: 3 tokens, 100.0 tok/s | 4 generated, stop: max_tokens",
 * );
 * ```
 */
export function statsLine(s: GenerateStats): string {
  const pre = tokPerSec(s.prefillTokens, s.prefillMs);
  const dec = tokPerSec(s.decodeTokens, s.decodeMs);
  return `prefill: ${s.prefillTokens} tokens, ${pre.toFixed(1)} tok/s | decode: ` +
    `${s.decodeTokens} tokens, ${dec.toFixed(1)} tok/s | ${s.tokens.length} generated, ` +
    `stop: ${s.stopReason}` + (s.speculative ? ` | ${speculativeLine(s.speculative)}` : "");
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
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const v = p.values;
    checkSpeculativeFlags(v, p.usage);
    const sampling = samplingOptions(v, p.usage); // bad flags fail before the model loads
    if (v["json-mode"] && (v.draft !== undefined || v.ngram)) {
      throw new UsageError("--json-mode does not run with --draft or --ngram", p.usage);
    }
    const schemaFile = v["json-schema"];
    if (schemaFile !== undefined && (v["json-mode"] || v.draft !== undefined || v.ngram)) {
      throw new UsageError(
        "--json-schema does not run with --json-mode, --draft or --ngram",
        p.usage,
      );
    }
    // Read and checked before the model loads: a bad file fails at once, naming it.
    const jsonSchema = schemaFile === undefined ? undefined : await readSchema(schemaFile);
    const json = v.json;
    const { model } = await loadModelFlags(v, p.usage);
    const speculative = await speculativeFlags(v, model, p.usage);

    let text = "", endsWithNewline = false;
    for await (
      const piece of model.generate(v.prompt ?? "", {
        ...sampling,
        maxTokens: v["max-tokens"],
        stop: v.stop,
        jsonMode: v["json-mode"],
        jsonSchema,
        special: !v["no-special"],
        onNotice: note,
        ...speculative,
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
        ...(s.speculative ? { speculative: speculativeJson(s.speculative) } : {}),
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
