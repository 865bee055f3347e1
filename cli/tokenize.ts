/**
 * `gollm tokenize`: token ids and pieces of a text under a model's tokenizer.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { loadCheckpointTokenizer } from "../formats/load.ts";
import { type Command, parse, required, str } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import { out, outJson } from "./output.ts";

const HELP = `usage: gollm tokenize [--model PATH] --text TEXT [--json] [options]

Encodes TEXT with the model's tokenizer and prints each id with its piece (a piece shows the
token's bytes the way the vocabulary spells them: Ġ or ▁ for a space, <0x0A> for a byte).

options:
  --model PATH         model directory (gollm or Hugging Face), GGUF file or llama2.c .bin
                       (default: the shipped models/default)
  --text TEXT          the text to encode
  --no-bos             do not prepend BOS (default: the tokenizer's add_bos)
  --special            recognise special-token text such as <|endoftext|>
  --tokenizer PATH     use this tokenizer file instead of the model's
  --json               print {ids, pieces} as one JSON object
  -h, --help           show this help`;

/**
 * The `tokenize` subcommand: parse → load only the tokenizer → encode → print ids and pieces
 * (text or JSON).
 *
 * @example
 * ```ts ignore
 * import { tokenize } from "./tokenize.ts";
 * await tokenize.run(["--text", "Hello world", "--json"]);
 * ```
 */
export const tokenize: Command = {
  name: "tokenize",
  summary: "token ids and pieces of a text",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      model: { type: "string" },
      text: { type: "string" },
      "no-bos": { type: "boolean" },
      special: { type: "boolean" },
      tokenizer: { type: "string" },
      json: { type: "boolean" },
    });
    if (!p) return 0;
    const v = p.values;
    const text = required(v, "text", "TEXT", p.usage);
    const path = str(v, "model") ?? await resolveDefaultModel(v.json === true);
    const tok = await loadCheckpointTokenizer(path, { tokenizerPath: str(v, "tokenizer") });
    if (!tok) {
      throw new GollmError(
        `${path}: the model has no tokenizer (tokenizer: none); pass --tokenizer PATH`,
      );
    }
    const ids = tok.encode(text, {
      bos: v["no-bos"] === true ? false : tok.addBos,
      special: v.special === true,
    });
    const pieces = ids.map((id) => tok.tokenPiece(id));
    if (v.json === true) {
      await outJson({ ids, pieces });
      return 0;
    }
    const w = Math.max(2, ...ids.map((id) => String(id).length));
    const lines = [`${ids.length} tokens`];
    ids.forEach((id, i) => lines.push(`${String(id).padStart(w)}  ${JSON.stringify(pieces[i])}`));
    await out(lines.join("\n") + "\n");
    return 0;
  },
};
