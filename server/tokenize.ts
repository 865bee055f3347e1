/**
 * llama.cpp's extras of `gollm serve`: `POST /tokenize` and `POST /detokenize`, and the
 * stand-in tokenizer of a model served without one (token-id prompts only).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { ApiError } from "./openai.ts";

/** `POST /tokenize` (llama.cpp): `{content, add_special?, with_pieces?}` -> `{tokens}`. */
export function tokenize(
  tok: Tokenizer,
  body: unknown,
): { tokens: (number | { id: number; piece: string })[] } {
  const o = body as Record<string, unknown>;
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new ApiError(400, "the request body must be a JSON object");
  }
  if (typeof o.content !== "string") {
    throw new ApiError(
      400,
      `'content' must be a string, got ${JSON.stringify(o.content) ?? "nothing"}`,
      "content",
      "invalid_type",
    );
  }
  for (const k of ["add_special", "with_pieces"]) {
    if (o[k] !== undefined && typeof o[k] !== "boolean") {
      throw new ApiError(
        400,
        `'${k}' must be a boolean, got ${JSON.stringify(o[k])}`,
        k,
        "invalid_type",
      );
    }
  }
  const ids = tok.encode(o.content, { bos: o.add_special === true && tok.addBos, special: true });
  if (o.with_pieces !== true) return { tokens: ids };
  const dec = new TextDecoder();
  return { tokens: ids.map((id) => ({ id, piece: dec.decode(tok.tokenBytes(id)) })) };
}

/** `POST /detokenize` (llama.cpp): `{tokens}` -> `{content}`. */
export function detokenize(tok: Tokenizer, body: unknown): { content: string } {
  const o = body as Record<string, unknown>;
  const t = (typeof o === "object" && o !== null) ? o.tokens : undefined;
  if (!Array.isArray(t)) {
    throw new ApiError(
      400,
      `'tokens' must be an array of token ids, got ${JSON.stringify(t) ?? "nothing"}`,
      "tokens",
      "invalid_type",
    );
  }
  t.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) {
      throw new ApiError(
        400,
        `'tokens[${i}]' = ${JSON.stringify(id)} is not a token id in [0, ${tok.vocabSize})`,
        `tokens[${i}]`,
        "invalid_value",
      );
    }
  });
  return { content: tok.decode(t) };
}

/** Stands in for a missing tokenizer: the scheduler decodes nothing for token-id clients. */
export const NO_TOKENIZER: Tokenizer = {
  vocabSize: 0,
  bosId: null,
  eosIds: [],
  addBos: false,
  stripLeadingSpace: false,
  encode: () => [],
  decode: () => "",
  tokenBytes: () => new Uint8Array(0),
  tokenPiece: () => "",
  toFile: () => {
    throw new GollmError("no tokenizer");
  },
};
