/**
 * Whether a tokenizer fits a model's vocabulary, checked when a model is loaded so that a
 * mismatch names the tokenizer file instead of surfacing mid-generation as "token id N is
 * outside the vocabulary".
 *
 * The rule:
 * - every id the tokenizer can produce (ranks, special and added tokens, BOS, EOS; its
 *   `vocabSize` is the largest + 1) must be a row of the model's embedding: a tokenizer with
 *   more ids than `vocab_size` is rejected (`gpt2` named for a 4,096-id model);
 * - a tokenizer with fewer ids is accepted, because models pad their vocabulary (Qwen2:
 *   151,936 rows for 151,665 tokens; nanoGPT: 50,304 for GPT-2's 50,257). The model may
 *   still sample a padding id; the returned tokenizer decodes such ids to nothing (HF
 *   tokenizers skips ids it has no token for) and shows them as `<unused:N>`;
 * - with `exact` (GGUF, whose converter writes one token per embedding row, and which
 *   llama.cpp rejects otherwise) the counts must be equal, which catches a cut token list.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer.ts";

/** A tokenizer whose id range is widened to the model's: extra ids decode to nothing. */
class PaddedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly addBos: boolean;
  readonly stripLeadingSpace: boolean;
  readonly chatTemplate?: string;
  /** The tokenizer this pads. */
  readonly inner: Tokenizer;
  #empty = new Uint8Array(0);

  constructor(inner: Tokenizer, vocabSize: number) {
    this.inner = inner;
    this.vocabSize = vocabSize;
    this.bosId = inner.bosId;
    this.eosIds = inner.eosIds;
    this.addBos = inner.addBos;
    this.stripLeadingSpace = inner.stripLeadingSpace;
    if (inner.chatTemplate !== undefined) this.chatTemplate = inner.chatTemplate;
  }

  #padding(id: number): boolean {
    if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize)) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    return id >= this.inner.vocabSize;
  }

  encode(text: string, options?: EncodeOptions): number[] {
    return this.inner.encode(text, options);
  }

  decode(ids: readonly number[]): string {
    return this.inner.decode(ids.filter((id) => !this.#padding(id)));
  }

  tokenBytes(id: number): Uint8Array {
    return this.#padding(id) ? this.#empty : this.inner.tokenBytes(id);
  }

  tokenPiece(id: number): string {
    return this.#padding(id) ? `<unused:${id}>` : this.inner.tokenPiece(id);
  }

  toFile(): { name: string; bytes: Uint8Array } {
    return this.inner.toFile();
  }
}

/**
 * Checks that `tokenizer` fits a model with `vocabSize` embedding rows (rule in the module
 * doc) and returns the tokenizer to use with it: `tokenizer` itself when the sizes are equal,
 * else a view whose ids `[tokenizer.vocabSize, vocabSize)` decode to nothing.
 *
 * @param tokenizer The tokenizer.
 * @param vocabSize The model's `vocab_size` (rows of the token embedding).
 * @param file The tokenizer's file (or description), named in the error.
 * @param options `exact`: require equal sizes (GGUF).
 * @returns The tokenizer to pair with the model.
 * @throws {FormatError} naming `file` when the tokenizer has more ids than the model (or,
 *   with `exact`, a different number).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkTokenizerFits } from "./fit.ts";
 * import { TiktokenTokenizer } from "./tiktoken.ts";
 * const gpt2 = await TiktokenTokenizer.builtin("gpt2"); // 50257 ids
 * assert.throws(() => checkTokenizerFits(gpt2, 4096, "config.yaml"), /50257 ids/);
 * const padded = checkTokenizerFits(gpt2, 50304, "config.yaml");
 * assert.equal(padded.decode([15496, 50300]), "Hello");
 * ```
 */
export function checkTokenizerFits(
  tokenizer: Tokenizer,
  vocabSize: number,
  file: string,
  options: { exact?: boolean } = {},
): Tokenizer {
  const n = tokenizer.vocabSize;
  if (n > vocabSize || (options.exact && n !== vocabSize)) {
    throw new FormatError(
      file,
      `the tokenizer has ${n} ids but the model's vocabulary has ${vocabSize} rows` +
        (n > vocabSize
          ? ` (ids ${vocabSize}..${n - 1} could not be embedded)`
          : ` (a GGUF file must list one token per row)`),
    );
  }
  return n === vocabSize ? tokenizer : new PaddedTokenizer(tokenizer, vocabSize);
}
