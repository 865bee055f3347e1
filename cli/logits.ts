/**
 * `gollm logits`: the logits of every position for given tokens (parity checks, debugging
 * ports). Works on models without a tokenizer when given `--tokens`.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { checkPromptLength } from "../runtime/generation.ts";
import { type Command, parse, UsageError } from "./args.ts";
import {
  loadModelFlags,
  MODEL_OPTIONS,
  MODEL_POSITIONAL,
  NO_SPECIAL_OPTION,
} from "./model_flags.ts";
import { out, outJson } from "./output.ts";

const SPEC = {
  name: "logits",
  summary: "logits of every position for token ids or a prompt",
  usage: "[PATH] (--tokens IDS | --prompt TEXT) [--json] [options]",
  description:
    `Runs the tokens through the model from position 0 and prints the logits of every position.
Text output shows each position's top entries (all of them with --full); --json prints
every value: {model, backend, tokens, vocab_size, logits: [[...vocab_size], ... per token]}.
The same length rule as generate: at most the context length, unless --kv-capacity is below
it (LLaMA-style models then run through the sliding window).`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...MODEL_OPTIONS,
    tokens: {
      type: "string",
      meta: "IDS",
      description: "token ids, comma- or space-separated (no tokenizer needed)",
    },
    prompt: { type: "string", description: "text, encoded with the model's tokenizer" },
    "no-bos": { type: "bool", description: "with --prompt: do not prepend BOS" },
    ...NO_SPECIAL_OPTION,
    top: {
      type: "int",
      min: 1,
      default: 5,
      meta: "K",
      description: "entries shown per position in text output",
    },
    full: { type: "bool", description: "text output: print every logit of every position" },
    json: { type: "bool", description: "print one JSON object with all logits" },
  },
} as const;

/** Float32 value as the shortest decimal that reads back to the same float32. */
function f32(x: number): number {
  for (let p = 6; p < 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return Number(x.toPrecision(9));
}

/**
 * Parses `--tokens`: ids separated by commas and/or whitespace.
 *
 * @param text E.g. `1,2,3` or `1 2 3`.
 * @param usage Usage line for errors.
 * @returns The ids (not yet checked against the vocabulary).
 * @throws {UsageError} for an empty list or an entry that is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { parseTokenList } from "./logits.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseTokenList("1, 2 3", "usage: gollm logits"), [1, 2, 3]);
 * assert.throws(() => parseTokenList("1,-2", "usage: gollm logits"), /'-2' is not a non-negative/);
 * ```
 */
export function parseTokenList(text: string, usage: string): number[] {
  const parts = text.split(/[\s,]+/).filter((s) => s.length > 0);
  if (parts.length === 0) throw new UsageError("--tokens needs at least one id", usage);
  return parts.map((s) => {
    if (!/^\d+$/.test(s)) {
      throw new UsageError(`--tokens: '${s}' is not a non-negative integer`, usage);
    }
    return Number(s);
  });
}

/**
 * The `logits` subcommand: parse → load → `forwardAll` from position 0 → print each
 * position's `(vocab_size)` logits (top entries, every value with --full, or JSON).
 *
 * @example
 * ```ts ignore
 * import { logits } from "./logits.ts";
 * await logits.run(["--model", "models/default", "--tokens", "1,2,3", "--json"]);
 * ```
 */
export const logits: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const { values: v, usage } = p;
    const tokensArg = v.tokens, prompt = v.prompt;
    if ((tokensArg === undefined) === (prompt === undefined)) {
      throw new UsageError("give exactly one of --tokens IDS or --prompt TEXT", usage);
    }
    const top = v.top, json = v.json;
    let ids = tokensArg !== undefined ? parseTokenList(tokensArg, usage) : [];
    // With --tokens the tokenizer only labels the output: a missing one is no error.
    const { model, path } = await loadModelFlags(v, usage, {
      quiet: json,
      optionalTokenizer: prompt === undefined,
    });
    const tok = model.tokenizer;
    if (prompt !== undefined) {
      if (!tok) {
        throw new GollmError(
          `${path}: the model has no tokenizer (tokenizer: none); use --tokens IDS or --tokenizer PATH`,
        );
      }
      ids = tok.encode(prompt, {
        bos: v["no-bos"] ? false : tok.addBos,
        special: !v["no-special"],
      });
      if (ids.length === 0) throw new GollmError("the prompt encodes to no tokens");
    }
    const V = model.config.vocab_size;
    for (const t of ids) {
      if (t >= V) throw new GollmError(`token id ${t} is outside the vocabulary [0, ${V})`);
    }
    checkPromptLength(model.config, model.kvCapacity, ids.length, "the input");
    const all = model.forwardAll(ids, 0); // (n, vocab)

    if (json) {
      const rows: number[][] = [];
      for (let i = 0; i < ids.length; i++) {
        rows.push(Array.from(all.subarray(i * V, (i + 1) * V), f32));
      }
      await outJson({
        model: path,
        backend: model.backend,
        tokens: ids,
        vocab_size: V,
        logits: rows,
      });
      return 0;
    }
    const piece = (id: number) => (tok ? ` ${JSON.stringify(tok.tokenPiece(id))}` : "");
    const lines: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const row = all.subarray(i * V, (i + 1) * V);
      const order = Array.from(row.keys()).sort((a, b) => row[b] - row[a]).slice(0, top);
      lines.push(`position ${i}: token ${ids[i]}${piece(ids[i])}`);
      lines.push(
        "  top: " + order.map((id) => `${id}${piece(id)} ${f32(row[id])}`).join(", "),
      );
      if (v.full) lines.push("  " + Array.from(row, f32).join(" "));
    }
    await out(lines.join("\n") + "\n");
    return 0;
  },
};
