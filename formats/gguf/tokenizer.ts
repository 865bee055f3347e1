/**
 * The tokenizer a GGUF file embeds in its `tokenizer.ggml.*` metadata (llama.cpp
 * src/llama-vocab.cpp `llama_vocab::load`): SentencePiece (`llama`) or byte-level BPE
 * (`gpt2`), with special ids and the chat template.
 *
 * @module
 */
import { FormatError, GollmError } from "../../core/errors.ts";
import { SentencePieceTokenizer } from "../../tokenizers/sentencepiece.ts";
import { PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "../../tokenizers/tiktoken.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";
import { type GgufFile, nm } from "./parse.ts";
import {
  describe,
  isInt,
  isNumber,
  isString,
  meta,
  metaArray,
  metaBool,
  metaString,
} from "./metadata.ts";

/** `tokenizer.ggml.pre` values → pre-tokenizer regex names of tokenizers/tiktoken.ts. */
const PRE_TOKENIZERS: Record<string, keyof typeof PRETOKENIZE_PATTERNS> = {
  "gpt-2": "gpt2",
  "gpt2": "gpt2",
  "llama-bpe": "llama3",
  "llama3": "llama3",
  "smaug-bpe": "llama3",
  "qwen2": "qwen2",
  "deepseek-r1-qwen": "qwen2",
};

/**
 * Builds the tokenizer a GGUF file's metadata describes, or null when it has none.
 *
 * - `tokenizer.ggml.model = "llama"`: {@linkcode SentencePieceTokenizer} from
 *   `tokenizer.ggml.tokens`, `.scores`, `.token_type`, `.bos_token_id`, `.eos_token_id`
 *   (+ `.eot_token_id`, `.eom_token_id` as extra stop ids), `.unknown_token_id`,
 *   `.add_bos_token` (default true), `.add_eos_token`, `.add_space_prefix` (default true).
 * - `"gpt2"`: byte-level BPE through `TiktokenTokenizer.fromByteLevelBpe` (ranks = ids, which
 *   holds for GPT-2, Llama-3 and Qwen2 vocabularies), control tokens as specials and
 *   user-defined tokens as always-matched added tokens, pre-tokenizer regex from
 *   `tokenizer.ggml.pre`, add_bos default false.
 * - `tokenizer.chat_template` becomes `chatTemplate`.
 *
 * @param g Parsed GGUF.
 * @returns The tokenizer, or null when `tokenizer.ggml.model` is absent or `"none"`.
 * @throws {FormatError} naming the file and metadata key for a malformed or unsupported
 *   tokenizer (unknown model or pre-tokenizer, bad arrays, ids out of range).
 *
 * @example
 * ```ts ignore
 * // Needs the shared assets (../shared/assets/tokenizer-vectors).
 * import { readGguf } from "./parse.ts";
 * import { ggufTokenizer } from "./tokenizer.ts";
 * const tok = ggufTokenizer(await readGguf("ggml-vocab-llama-spm.gguf"))!;
 * console.log(tok.encode("Hello world", { bos: false })); // [15043, 3186]
 * ```
 */
export function ggufTokenizer(g: GgufFile): Tokenizer | null {
  const model = metaString(g, "tokenizer.ggml.model");
  if (model === undefined || model === "none" || model === "no_vocab") return null;
  const tokens = metaArray(g, "tokenizer.ggml.tokens", isString, "a string");
  if (!tokens || tokens.length === 0) {
    throw new FormatError(g.file, "metadata 'tokenizer.ggml.tokens' is missing or empty");
  }
  const n = tokens.length;
  const types = metaArray(g, "tokenizer.ggml.token_type", isInt, "an integer");
  if (types && types.length !== n) {
    throw new FormatError(
      g.file,
      `metadata 'tokenizer.ggml.token_type' has ${types.length} entries, expected ${n} (one per token)`,
    );
  }
  const optId = (key: string): number | null => {
    const v = meta(g, key);
    if (v === undefined) return null;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      throw new FormatError(g.file, `metadata '${nm(key)}' must be an integer, got ${describe(v)}`);
    }
    if (v < 0 || v === 0xffffffff) return null; // llama.cpp's "none" (LLAMA_TOKEN_NULL)
    if (v >= n) {
      throw new FormatError(
        g.file,
        `metadata '${nm(key)}' = ${v} is outside the vocabulary [0, ${n})`,
      );
    }
    return v;
  };
  const chatTemplate = metaString(g, "tokenizer.chat_template");
  const eosIds: number[] = [];
  for (const key of ["eos_token_id", "eot_token_id", "eom_token_id"]) {
    const id = optId(`tokenizer.ggml.${key}`);
    if (id !== null && !eosIds.includes(id)) eosIds.push(id);
  }
  if (model === "llama") {
    const scores = metaArray(g, "tokenizer.ggml.scores", isNumber, "a number");
    if (scores && scores.length !== n) {
      throw new FormatError(
        g.file,
        `metadata 'tokenizer.ggml.scores' has ${scores.length} entries, expected ${n} (one per token)`,
      );
    }
    return new SentencePieceTokenizer({
      pieces: tokens,
      scores: scores ?? new Array(n).fill(0),
      types: types ?? undefined,
      bosId: optId("tokenizer.ggml.bos_token_id") ?? (n > 1 ? 1 : null),
      eosIds: eosIds.length > 0 ? eosIds : n > 2 ? [2] : [],
      unkId: optId("tokenizer.ggml.unknown_token_id") ?? 0,
      addBos: metaBool(g, "tokenizer.ggml.add_bos_token", true),
      addEos: metaBool(g, "tokenizer.ggml.add_eos_token", false),
      addSpacePrefix: metaBool(g, "tokenizer.ggml.add_space_prefix", true),
      chatTemplate,
    });
  }
  if (model === "gpt2") {
    const pre = metaString(g, "tokenizer.ggml.pre") ?? "gpt-2";
    const patternName = PRE_TOKENIZERS[pre];
    if (!patternName) {
      throw new FormatError(
        g.file,
        `metadata 'tokenizer.ggml.pre' = "${pre}" is not supported (supported: ${
          Object.keys(PRE_TOKENIZERS).join(", ")
        })`,
      );
    }
    // CONTROL (3) tokens are specials (matched unless `special: false`), USER_DEFINED (4)
    // always matched, as llama.cpp's tokenizer_st_partition does.
    const specials = new Map<string, number>();
    const added = new Map<string, number>();
    if (types) {
      for (let id = 0; id < n; id++) {
        if (types[id] === 3) specials.set(tokens[id], id);
        else if (types[id] === 4) added.set(tokens[id], id);
      }
    }
    const bosId = optId("tokenizer.ggml.bos_token_id");
    try {
      return TiktokenTokenizer.fromByteLevelBpe(
        tokens,
        specials,
        PRETOKENIZE_PATTERNS[patternName],
        {
          bosId,
          eosIds,
          addBos: metaBool(g, "tokenizer.ggml.add_bos_token", false),
          chatTemplate,
          source: g.file,
          added,
        },
      );
    } catch (e) {
      if (e instanceof GollmError) throw e;
      throw new FormatError(
        g.file,
        `byte-level BPE vocabulary is malformed: ${(e as Error).message}`,
      );
    }
  }
  throw new FormatError(
    g.file,
    `metadata 'tokenizer.ggml.model' = "${model}" is not supported (supported: llama, gpt2)`,
  );
}
