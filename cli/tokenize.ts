/**
 * `gollm tokenize`: token ids and pieces of a text under a model's tokenizer.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { loadCheckpointTokenizer } from "../formats/load.ts";
import { type Command, parse, UsageError } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import {
  MODEL_OPTION,
  MODEL_POSITIONAL,
  modelSource,
  NO_SPECIAL_OPTION,
  TOKENIZER_OPTION,
} from "./model_flags.ts";
import { out, outJson } from "./output.ts";

const SPEC = {
  name: "tokenize",
  summary: "token ids and pieces of a text",
  usage: "[PATH] --text TEXT [--json] [options]",
  description:
    `Encodes TEXT with the model's tokenizer and prints each id with its piece (a piece shows the
token's bytes the way the vocabulary spells them: Ġ or ▁ for a space, <0x0A> for a byte).
Special-token text such as <|endoftext|> becomes that token unless --no-special is given.`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...MODEL_OPTION,
    text: { type: "string", required: true, description: "the text to encode" },
    "no-bos": {
      type: "bool",
      description: "do not prepend BOS (default: as the tokenizer's add_bos says)",
    },
    ...NO_SPECIAL_OPTION,
    special: {
      type: "bool",
      description: "recognise special-token text: the default now, accepted for old scripts",
    },
    ...TOKENIZER_OPTION,
    json: { type: "bool", description: "print {ids, pieces} as one JSON object" },
  },
} as const;

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
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const v = p.values;
    if (v.special && v["no-special"]) {
      throw new UsageError("give --special or --no-special, not both", p.usage);
    }
    const path = v.model ?? await resolveDefaultModel(v.json);
    const tok = await loadCheckpointTokenizer(modelSource(path), { tokenizerPath: v.tokenizer });
    if (!tok) {
      throw new GollmError(
        `${path}: the model has no tokenizer (tokenizer: none); pass --tokenizer PATH`,
      );
    }
    const ids = tok.encode(v.text, {
      bos: v["no-bos"] ? false : tok.addBos,
      special: !v["no-special"],
    });
    const pieces = ids.map((id) => tok.tokenPiece(id));
    if (v.json) {
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
