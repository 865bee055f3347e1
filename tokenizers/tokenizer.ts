/**
 * The Tokenizer interface every tokenizer implements (tiktoken-style byte-level BPE,
 * SentencePiece-style BPE, HF tokenizer.json), and the streaming decoder built on it.
 *
 * @module
 */

/** Options of {@linkcode Tokenizer.encode}. */
export interface EncodeOptions {
  /** Prepend the BOS id (when the tokenizer has one). Default: the tokenizer's `addBos`. */
  bos?: boolean;
  /** Append the EOS id. Default: false. */
  eos?: boolean;
  /**
   * Recognise special-token text (`<|endoftext|>`, `<|begin_of_text|>`, ...) in the input and
   * emit its id. Default: true, as HF tokenizers and llama.cpp do; false encodes it as
   * ordinary text. Non-special added tokens (HF `special: false`, GGUF user-defined) are
   * recognised either way.
   */
  special?: boolean;
}

/**
 * A tokenizer: text ⇄ token ids.
 *
 * Decoding is byte-based: `tokenBytes(id)` gives the raw UTF-8 bytes of one token, so a
 * streaming decoder can join bytes across tokens and never split a multi-byte character.
 */
export interface Tokenizer {
  /** Number of ids, special tokens included (ids are in `[0, vocabSize)`). */
  readonly vocabSize: number;
  /** Beginning-of-sequence id, or null when the vocabulary has none. */
  readonly bosId: number | null;
  /** End-of-sequence ids; generation stops at any of them (may be empty). */
  readonly eosIds: readonly number[];
  /** Whether `encode` prepends BOS by default (SentencePiece/Llama: true; GPT-2: false). */
  readonly addBos: boolean;
  /**
   * When true, the decoder drops one leading space from the first decoded piece (the
   * SentencePiece dummy prefix). False for byte-level BPE.
   */
  readonly stripLeadingSpace: boolean;
  /**
   * Encodes text to ids.
   * @param text Input text (any Unicode).
   * @param options BOS/EOS and special-token handling.
   * @returns Token ids.
   */
  encode(text: string, options?: EncodeOptions): number[];
  /**
   * Decodes ids to text (invalid UTF-8 becomes U+FFFD; BOS is dropped; special tokens other
   * than BOS are rendered as their text).
   * @param ids Token ids.
   * @returns The text.
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   */
  decode(ids: readonly number[]): string;
  /**
   * The raw bytes one token stands for (special tokens: their UTF-8 text; BOS: empty).
   * @param id Token id.
   * @returns The bytes (do not mutate).
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   */
  tokenBytes(id: number): Uint8Array;
  /** Human-readable piece for display (`gollm tokenize`), e.g. `Ġthe` or `▁the` or `<0x0A>`. */
  tokenPiece(id: number): string;
  /** The model's Jinja chat template, when its files carry one. */
  readonly chatTemplate?: string;
  /**
   * Serialises the tokenizer into the one file a gollm model directory stores
   * (`tokenizer.tiktoken` for byte-level BPE, `tokenizer.bin` in llama2.c format for
   * SentencePiece-style BPE); `gollm convert` writes it and names it in config.yaml.
   * @returns The file name and its bytes.
   */
  toFile(): { name: string; bytes: Uint8Array };
}

/**
 * Incremental decoder for streaming: push token ids one at a time and get back the text
 * that is complete so far. Bytes of a character split across tokens are held until the
 * character is whole, so output never contains a broken character.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StreamDecoder } from "./tokenizer.ts";
 * import { TiktokenTokenizer } from "./tiktoken.ts";
 * const tok = await TiktokenTokenizer.builtin("gpt2");
 * const d = new StreamDecoder(tok);
 * const pieces = tok.encode("héllo 😀").map((id) => d.push(id));
 * assert.ok(pieces.every((p) => !p.includes("\ufffd"))); // never half a character
 * assert.equal(pieces.join("") + d.flush(), "héllo 😀");
 * ```
 */
export class StreamDecoder {
  #tok: Tokenizer;
  #utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  #atStart = true;

  /**
   * Creates a decoder for one stream of tokens.
   *
   * @param tokenizer The tokenizer whose `tokenBytes` is used.
   */
  constructor(tokenizer: Tokenizer) {
    this.#tok = tokenizer;
  }

  /**
   * Adds one token and returns the text it completes (possibly empty).
   * @param id Token id.
   * @returns Newly completed text.
   * @throws {RangeError} for an id outside the vocabulary.
   */
  push(id: number): string {
    if (id === this.#tok.bosId) return "";
    let text = this.#utf8.decode(this.#tok.tokenBytes(id), { stream: true });
    if (this.#atStart && text.length > 0) {
      this.#atStart = false;
      if (this.#tok.stripLeadingSpace && text.startsWith(" ")) text = text.slice(1);
    }
    return text;
  }

  /**
   * Ends the stream: returns any held bytes (an incomplete character becomes U+FFFD).
   * @returns The remaining text.
   */
  flush(): string {
    return this.#utf8.decode();
  }
}
