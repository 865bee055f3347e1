/**
 * `gollm logits`: the logits of every position for given tokens (parity checks, debugging
 * ports). Works on models without a tokenizer when given `--tokens`.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { type Command, int, parse, str, UsageError } from "./args.ts";
import { loadModelFlags, MODEL_OPTIONS, modelFlags } from "./model_flags.ts";
import { out, outJson } from "./output.ts";

const HELP = `usage: gollm logits [--model PATH] (--tokens IDS | --prompt TEXT) [--json] [options]

Runs the tokens through the model from position 0 and prints the logits of every position.
Text output shows each position's top entries (all of them with --full); --json prints
every value: {model, backend, tokens, vocab_size, logits: [[...vocab_size], ... per token]}.

options:
  --model PATH         model directory (gollm or Hugging Face), GGUF file or llama2.c .bin
                       (default: the shipped models/default)
  --tokens IDS         token ids, comma- or space-separated (no tokenizer needed)
  --prompt TEXT        text, encoded with the model's tokenizer
  --no-bos             with --prompt: do not prepend BOS
  --backend B          jit (default: generated JS), wasm (generated WASM SIMD) or reference
  --kv-capacity N      KV cache slots (default: the context length)
  --tokenizer PATH     tokenizer file to use with --prompt
  --top K              entries shown per position in text output (default 5)
  --full               text output: print every logit of every position
  --json               print one JSON object with all logits
  -h, --help           show this help`;

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
 * console.log(parseTokenList("1, 2 3", "usage: gollm logits")); // [1, 2, 3]
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
  name: "logits",
  summary: "logits of every position for token ids or a prompt",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      ...MODEL_OPTIONS,
      tokens: { type: "string" },
      prompt: { type: "string" },
      "no-bos": { type: "boolean" },
      top: { type: "string" },
      full: { type: "boolean" },
      json: { type: "boolean" },
    });
    if (!p) return 0;
    const { values: v, usage } = p;
    const tokensArg = str(v, "tokens"), prompt = str(v, "prompt");
    if ((tokensArg === undefined) === (prompt === undefined)) {
      throw new UsageError("give exactly one of --tokens IDS or --prompt TEXT", usage);
    }
    // With --tokens the tokenizer only labels the output: a missing one is no error.
    const flags = { ...modelFlags(v, usage), optionalTokenizer: prompt === undefined };
    const top = int(v, "top", usage, 1) ?? 5;
    const json = v.json === true;
    let ids = tokensArg !== undefined ? parseTokenList(tokensArg, usage) : [];
    const { model, path } = await loadModelFlags(flags, json);
    const tok = model.tokenizer;
    if (prompt !== undefined) {
      if (!tok) {
        throw new GollmError(
          `${path}: the model has no tokenizer (tokenizer: none); use --tokens IDS or --tokenizer PATH`,
        );
      }
      ids = tok.encode(prompt, { bos: v["no-bos"] === true ? false : tok.addBos });
      if (ids.length === 0) throw new GollmError("the prompt encodes to no tokens");
    }
    const V = model.config.vocab_size;
    for (const t of ids) {
      if (t >= V) throw new GollmError(`token id ${t} is outside the vocabulary [0, ${V})`);
    }
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
      if (v.full === true) lines.push("  " + Array.from(row, f32).join(" "));
    }
    await out(lines.join("\n") + "\n");
    return 0;
  },
};
