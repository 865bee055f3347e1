/**
 * SentencePiece-style BPE tokenizer (score-ordered merges with byte fallback), the
 * tokenizer of Llama-1/2, Mistral, TinyLlama and the llama2.c models, read from GGUF
 * metadata (`tokenizer.ggml.model = "llama"`), llama2.c `tokenizer.bin` files or HF
 * Llama-2-style vocabularies.
 *
 * The encoder follows llama.cpp's `llm_tokenizer_spm` (src/llama-vocab.cpp), which equals
 * llama2.c run.c `encode()` and SentencePiece's BPE model:
 * 1. a dummy-prefix space is prepended (at the start of the text and after each special
 *    token), every `' '` becomes `'▁'` (U+2581);
 * 2. the text is split into Unicode characters (symbols in a doubly linked list);
 * 3. every adjacent pair whose concatenation is a vocabulary piece goes into a max-heap
 *    keyed by that piece's score (ties: leftmost first); the best pair is merged and its
 *    new neighbours pushed, until no pair is left — O(n log n), no rescans;
 * 4. each final symbol maps to its piece id, or, when it is not a piece, to the byte
 *    tokens `<0xNN>` of its UTF-8 bytes (byte fallback; `unkId` when the vocabulary has no
 *    byte tokens).
 *
 * The pure-TypeScript npm package `@huggingface/tokenizers` (0.2.0) was evaluated first: its
 * BPE model takes a rank-ordered `merges` list from a `tokenizer.json` (and its Unigram
 * model is a Viterbi segmenter, not BPE), so it cannot take the pieces + scores that GGUF
 * and llama2.c vocabularies carry without synthesising a merges list whose tie order would
 * have to match SentencePiece's; this file implements the score-ordered algorithm directly.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { readTokenizerBytes } from "./read_file.ts";
import { AddedTokenMatcher } from "./special_tokens.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer.ts";

/** SentencePiece token types (`tokenizer.ggml.token_type`, sentencepiece_model.proto). */
export const SPM_TOKEN_TYPE = {
  /** An ordinary piece. */
  normal: 1,
  /** The unknown token (`<unk>`). */
  unknown: 2,
  /** A control token (`<s>`, `</s>`): never produced from text unless `special`. */
  control: 3,
  /** A user-defined token: always matched as a whole in the input text. */
  userDefined: 4,
  /** An unused slot. */
  unused: 5,
  /** A byte token `<0xNN>` (byte fallback). */
  byte: 6,
} as const;

/** Everything that defines a SentencePiece-style BPE vocabulary. */
export interface SentencePieceVocab {
  /** Pieces, index = id, with `'▁'` (U+2581) standing for a space. */
  pieces: readonly string[];
  /** Merge score of each piece (higher merges first), same length as `pieces`. */
  scores: ArrayLike<number>;
  /**
   * SentencePiece token type of each piece ({@linkcode SPM_TOKEN_TYPE}); when absent,
   * inferred: `<0xNN>` → byte, `unkId` → unknown, bos/eos → control, else normal.
   */
  types?: ArrayLike<number>;
  /** BOS id (null: none). */
  bosId: number | null;
  /** EOS ids (generation stops at any). */
  eosIds: readonly number[];
  /** Unknown-token id (null: none). */
  unkId: number | null;
  /** Whether `encode` prepends BOS by default. Default true. */
  addBos?: boolean;
  /** Whether `encode` appends EOS by default (GGUF `add_eos_token`). Default false. */
  addEos?: boolean;
  /** Prepend the dummy-prefix space (SentencePiece `add_dummy_prefix`). Default true. */
  addSpacePrefix?: boolean;
  /** The model's Jinja chat template, when it has one. */
  chatTemplate?: string;
}

const SPACE = "\u2581";
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

/**
 * A SentencePiece-style BPE tokenizer behind the common {@linkcode Tokenizer} interface.
 *
 * Decoding: `'▁'` → space, byte tokens `<0xNN>` → that raw byte, BOS → nothing, other
 * control/unknown tokens → their text; `stripLeadingSpace` is true (the dummy prefix).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SentencePieceTokenizer } from "./sentencepiece.ts";
 * const tok = new SentencePieceTokenizer({
 *   pieces: ["<unk>", "<s>", "</s>", "▁", "h", "i", "▁h", "▁hi"],
 *   scores: [0, 0, 0, -1, -2, -3, -4, -5],
 *   bosId: 1, eosIds: [2], unkId: 0,
 * });
 * assert.deepEqual(tok.encode("hi"), [1, 7]);
 * assert.equal(tok.decode([1, 7]), "hi");
 * ```
 */
export class SentencePieceTokenizer implements Tokenizer {
  /** Number of ids. */
  readonly vocabSize: number;
  /** BOS id, or null. */
  readonly bosId: number | null;
  /** EOS ids. */
  readonly eosIds: readonly number[];
  /** Unknown-token id, or null. */
  readonly unkId: number | null;
  /** Whether `encode` prepends BOS by default. */
  readonly addBos: boolean;
  /** Whether `encode` appends EOS by default. */
  readonly addEos: boolean;
  /** Whether the dummy-prefix space is prepended. */
  readonly addSpacePrefix: boolean;
  /** Always true: the decoder drops the dummy-prefix space of the first piece. */
  readonly stripLeadingSpace = true;
  /** The chat template, when the model has one. */
  readonly chatTemplate?: string;

  #pieces: string[];
  #scores: Float32Array;
  #types: Uint8Array;
  #ids = new Map<string, number>();
  #bytes: Uint8Array[];
  #byteIds = new Int32Array(256).fill(-1);
  /** Texts matched as whole tokens: user-defined always, control only with `special`. */
  #userDefined: [string, number][] = [];
  #control: [string, number][] = [];
  #matchUser: AddedTokenMatcher | null = null;
  #matchAll: AddedTokenMatcher | null = null;

  /**
   * Builds the tokenizer from a vocabulary (piece → id map, byte-token table, specials).
   *
   * @param vocab Pieces, scores, types and special ids.
   * @throws {RangeError} when arrays disagree in length or a special id is out of range
   *   (readers turn their own checks into FormatError first).
   */
  constructor(vocab: SentencePieceVocab) {
    const n = vocab.pieces.length;
    if (vocab.scores.length !== n) {
      throw new RangeError(`scores has ${vocab.scores.length} entries, pieces ${n}`);
    }
    if (vocab.types && vocab.types.length !== n) {
      throw new RangeError(`types has ${vocab.types.length} entries, pieces ${n}`);
    }
    const inRange = (id: number | null) =>
      id === null || (Number.isInteger(id) && id >= 0 && id < n);
    for (const id of [vocab.bosId, vocab.unkId, ...vocab.eosIds]) {
      if (!inRange(id)) throw new RangeError(`special id ${id} outside [0, ${n})`);
    }
    this.vocabSize = n;
    this.bosId = vocab.bosId;
    this.eosIds = [...vocab.eosIds];
    this.unkId = vocab.unkId;
    this.addBos = vocab.addBos ?? true;
    this.addEos = vocab.addEos ?? false;
    this.addSpacePrefix = vocab.addSpacePrefix ?? true;
    if (vocab.chatTemplate !== undefined) this.chatTemplate = vocab.chatTemplate;
    this.#pieces = [...vocab.pieces];
    this.#scores = Float32Array.from(vocab.scores);
    this.#types = new Uint8Array(n);
    this.#bytes = new Array(n);
    for (let id = 0; id < n; id++) {
      const piece = this.#pieces[id];
      const byteMatch = BYTE_PIECE.exec(piece);
      let type = vocab.types ? vocab.types[id] : SPM_TOKEN_TYPE.normal;
      if (!vocab.types) {
        if (byteMatch) type = SPM_TOKEN_TYPE.byte;
        else if (id === vocab.unkId) type = SPM_TOKEN_TYPE.unknown;
        else if (id === vocab.bosId || vocab.eosIds.includes(id)) type = SPM_TOKEN_TYPE.control;
      }
      this.#types[id] = type;
      // First occurrence wins, like SentencePiece (duplicates are malformed anyway).
      if (!this.#ids.has(piece)) this.#ids.set(piece, id);
      if (type === SPM_TOKEN_TYPE.byte && byteMatch) {
        const b = parseInt(byteMatch[1], 16);
        this.#bytes[id] = Uint8Array.of(b);
        if (this.#byteIds[b] < 0) this.#byteIds[b] = id;
      } else if (id === vocab.bosId) {
        this.#bytes[id] = new Uint8Array(0);
      } else {
        this.#bytes[id] = utf8.encode(piece.replaceAll(SPACE, " "));
      }
      // An empty piece can never be matched in text (special_tokens.ts skips it).
      // Control and unknown texts are matched with `special`, as llama.cpp's
      // tokenizer_st_partition does with parse_special.
      if (type === SPM_TOKEN_TYPE.userDefined) this.#userDefined.push([piece, id]);
      else if (type === SPM_TOKEN_TYPE.control || type === SPM_TOKEN_TYPE.unknown) {
        this.#control.push([piece, id]);
      }
    }
  }

  /** The piece strings, index = id (`'▁'` for spaces). */
  get pieces(): readonly string[] {
    return this.#pieces;
  }

  /** The merge scores, index = id. */
  get scores(): Float32Array {
    return this.#scores;
  }

  /** The SentencePiece token types, index = id ({@linkcode SPM_TOKEN_TYPE}). */
  get types(): Uint8Array {
    return this.#types;
  }

  /**
   * Encodes text like llama.cpp `llama_tokenize` with a SentencePiece vocabulary.
   *
   * @param text Any Unicode text (lone surrogates become U+FFFD).
   * @param options `bos` (default `addBos`), `eos` (default `addEos`), `special`: match
   *   control-token text such as `</s>` (default true, as llama.cpp's `parse_special` in
   *   its chat and server; user-defined tokens are always matched).
   * @returns Token ids.
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if ((options.bos ?? this.addBos) && this.bosId !== null) out.push(this.bosId);
    text = text.toWellFormed();
    let prevSpecial = true; // the dummy prefix goes at the start and after specials
    if (text.length > 0) {
      for (const frag of this.#partition(text, options.special ?? true)) {
        if (typeof frag === "number") {
          out.push(frag);
          prevSpecial = true;
        } else {
          const t = (this.addSpacePrefix && prevSpecial ? " " : "") + frag;
          this.#encodeFragment(t.replaceAll(" ", SPACE), out);
          prevSpecial = false;
        }
      }
    }
    if ((options.eos ?? this.addEos) && this.eosIds.length > 0) out.push(this.eosIds[0]);
    return out;
  }

  /** Splits text at added-token occurrences (longest match first at each position). */
  #partition(text: string, special: boolean): (string | number)[] {
    if (!this.#matchUser) {
      this.#matchUser = new AddedTokenMatcher(this.#userDefined);
      this.#matchAll = new AddedTokenMatcher([...this.#userDefined, ...this.#control]);
    }
    const matcher = special ? this.#matchAll! : this.#matchUser;
    if (matcher.size === 0) return [text];
    const out: (string | number)[] = [];
    matcher.split(text, (s, e) => out.push(text.slice(s, e)), (id) => out.push(id));
    return out;
  }

  /** Score-ordered BPE over one fragment (already escaped), appending ids to `out`. */
  #encodeFragment(text: string, out: number[]): void {
    // Symbols: UTF-16 start offset and length of each Unicode character, linked list.
    const starts: number[] = [];
    for (let i = 0; i < text.length;) {
      starts.push(i);
      const c = text.charCodeAt(i);
      i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
    }
    const n = starts.length;
    const start = Int32Array.from(starts); // (n) UTF-16 offset of symbol i
    const len = new Int32Array(n); // (n) UTF-16 length of symbol i; 0 once merged away
    const prev = new Int32Array(n); // (n) previous live symbol or -1
    const next = new Int32Array(n); // (n) next live symbol or -1
    for (let i = 0; i < n; i++) {
      len[i] = (i + 1 < n ? start[i + 1] : text.length) - start[i];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    const heap = new BigramHeap();
    const tryAdd = (left: number, right: number) => {
      if (left < 0 || right < 0) return;
      const size = len[left] + len[right];
      const id = this.#ids.get(text.substr(start[left], size));
      if (id === undefined) return;
      heap.push(this.#scores[id], left, right, size);
    };
    for (let i = 1; i < n; i++) tryAdd(i - 1, i);
    while (heap.size > 0) {
      const { left, right, size } = heap.pop();
      // Stale entry: one side was merged into something else since it was pushed.
      if (len[left] === 0 || len[right] === 0 || len[left] + len[right] !== size) continue;
      len[left] += len[right];
      len[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }
    for (let i = n > 0 ? 0 : -1; i !== -1; i = next[i]) {
      const piece = text.substr(start[i], len[i]);
      const id = this.#ids.get(piece);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      for (const b of utf8.encode(piece)) {
        const byteId = this.#byteIds[b];
        if (byteId >= 0) out.push(byteId);
        else if (this.unkId !== null) out.push(this.unkId);
      }
    }
  }

  /**
   * Decodes ids to text: pieces with `'▁'` → space, byte tokens joined into UTF-8 (invalid
   * sequences → U+FFFD), BOS dropped, one leading space removed (dummy prefix).
   * @param ids Token ids.
   * @returns The text.
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   */
  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const id of ids) {
      const b = this.tokenBytes(id);
      parts.push(b);
      total += b.length;
    }
    const all = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    const text = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(all);
    return text.startsWith(" ") ? text.slice(1) : text;
  }

  /**
   * Raw bytes of one token: `<0xNN>` → that byte; BOS → empty; other pieces → UTF-8 of the
   * piece with `'▁'` as space.
   * @param id Token id.
   * @returns The bytes (shared; do not mutate).
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   */
  tokenBytes(id: number): Uint8Array {
    this.#check(id);
    return this.#bytes[id];
  }

  /**
   * The piece as stored in the vocabulary (`▁the`, `<0x0A>`, `<s>`).
   * @param id Token id.
   * @returns The piece.
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   */
  tokenPiece(id: number): string {
    this.#check(id);
    return this.#pieces[id];
  }

  /**
   * The id of a piece, or undefined.
   * @param piece A piece as stored (`▁the`).
   * @returns Its id.
   */
  pieceId(piece: string): number | undefined {
    return this.#ids.get(piece);
  }

  /**
   * Serialises as a llama2.c `tokenizer.bin` (see `writeLlama2cTokenizer` in
   * formats/llama2c.ts for the layout).
   * @returns `{ name: "tokenizer.bin", bytes }`.
   */
  toFile(): { name: string; bytes: Uint8Array } {
    return { name: "tokenizer.bin", bytes: encodeLlama2cTokenizer(this) };
  }

  #check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new RangeError(`token id ${id} outside [0, ${this.vocabSize})`);
    }
  }
}

/** Max-heap of candidate merges: higher score first, then smaller left index. */
class BigramHeap {
  #score: number[] = [];
  #left: number[] = [];
  #right: number[] = [];
  #size: number[] = [];

  get size(): number {
    return this.#score.length;
  }

  #before(i: number, j: number): boolean {
    const a = this.#score[i], b = this.#score[j];
    return a > b || (a === b && this.#left[i] < this.#left[j]);
  }

  #swap(i: number, j: number): void {
    for (const arr of [this.#score, this.#left, this.#right, this.#size]) {
      const t = arr[i];
      arr[i] = arr[j];
      arr[j] = t;
    }
  }

  push(score: number, left: number, right: number, size: number): void {
    this.#score.push(score);
    this.#left.push(left);
    this.#right.push(right);
    this.#size.push(size);
    let i = this.#score.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#before(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }

  pop(): { left: number; right: number; size: number } {
    const top = { left: this.#left[0], right: this.#right[0], size: this.#size[0] };
    const last = this.#score.length - 1;
    this.#swap(0, last);
    this.#score.pop();
    this.#left.pop();
    this.#right.pop();
    this.#size.pop();
    const n = this.#score.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let best = i;
      if (l < n && this.#before(l, best)) best = l;
      if (r < n && this.#before(r, best)) best = r;
      if (best === i) break;
      this.#swap(i, best);
      i = best;
    }
    return top;
  }
}

/**
 * Serialises a SentencePiece vocabulary in llama2.c `tokenizer.bin` layout (what llama2.c
 * `tokenizer.py export()` writes): int32 `max_token_length`, then per id: float32 score,
 * int32 byte length, the UTF-8 bytes of the piece with `'▁'` written as a space; BOS and EOS
 * are written as `"\n<s>\n"` / `"\n</s>\n"` like llama2.c's export. Little-endian.
 *
 * @param tok The tokenizer.
 * @returns The file bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SentencePieceTokenizer, encodeLlama2cTokenizer } from "./sentencepiece.ts";
 * const tok = new SentencePieceTokenizer({ pieces: ["<unk>", "<s>", "</s>", "▁a"],
 *   scores: [0, 0, 0, -1], bosId: 1, eosIds: [2], unkId: 0 });
 * assert.equal(encodeLlama2cTokenizer(tok).length, 54);
 * ```
 */
export function encodeLlama2cTokenizer(tok: SentencePieceTokenizer): Uint8Array {
  const encoded = tok.pieces.map((p, id) => {
    if (id === tok.bosId && p === "<s>") return utf8.encode("\n<s>\n");
    if (tok.eosIds.includes(id) && p === "</s>") return utf8.encode("\n</s>\n");
    return utf8.encode(p.replaceAll(SPACE, " "));
  });
  const total = 4 + encoded.reduce((a, b) => a + 8 + b.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setInt32(0, encoded.reduce((m, b) => Math.max(m, b.length), 0), true);
  let o = 4;
  encoded.forEach((b, id) => {
    view.setFloat32(o, tok.scores[id], true);
    view.setInt32(o + 4, b.length, true);
    out.set(b, o + 8);
    o += 8 + b.length;
  });
  return out;
}

/**
 * Parses llama2.c `tokenizer.bin` bytes (layout of {@linkcode encodeLlama2cTokenizer}) into
 * a tokenizer. The vocabulary size is not stored: pieces are read to the end of the file.
 * Spaces become `'▁'`; `"\n<s>\n"` / `"\n</s>\n"` become `<s>` / `</s>`. Ids follow the
 * llama2.c convention: unk 0, BOS 1, EOS 2 (when the vocabulary has them).
 *
 * @param bytes File contents.
 * @param file Path, named in errors.
 * @returns The tokenizer (addBos true, dummy prefix on).
 * @throws {FormatError} on truncation, a negative length, or a non-finite score.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SentencePieceTokenizer, encodeLlama2cTokenizer, parseLlama2cTokenizer } from "./sentencepiece.ts";
 * const tok = new SentencePieceTokenizer({ pieces: ["<unk>", "<s>", "</s>", "▁a"],
 *   scores: [0, 0, 0, -1], bosId: 1, eosIds: [2], unkId: 0 });
 * const back = parseLlama2cTokenizer(encodeLlama2cTokenizer(tok), "t.bin");
 * assert.deepEqual(back.encode("a"), [1, 3]);
 * ```
 */
export function parseLlama2cTokenizer(bytes: Uint8Array, file: string): SentencePieceTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) {
    throw new FormatError(
      file,
      `tokenizer header truncated: expected 4 bytes, got ${bytes.length}`,
    );
  }
  const maxLen = view.getInt32(0, true);
  if (maxLen < 0 || maxLen > bytes.length) {
    throw new FormatError(
      file,
      `not a llama2.c tokenizer.bin file: its header max_token_length is ${maxLen}, ` +
        `expected 0..${bytes.length} (the file size)`,
    );
  }
  const dec = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  const pieces: string[] = [];
  const scores: number[] = [];
  let o = 4;
  while (o < bytes.length) {
    const id = pieces.length;
    if (o + 8 > bytes.length) {
      throw new FormatError(
        file,
        `token ${id}: truncated entry at byte ${o}: expected 8 header bytes, got ${
          bytes.length - o
        }`,
      );
    }
    const score = view.getFloat32(o, true);
    const len = view.getInt32(o + 4, true);
    if (!Number.isFinite(score)) throw new FormatError(file, `token ${id}: score is ${score}`);
    if (len < 0 || len > maxLen) {
      throw new FormatError(
        file,
        `token ${id}: length ${len} at byte ${o + 4} outside [0, max_token_length ${maxLen}]`,
      );
    }
    if (o + 8 + len > bytes.length) {
      throw new FormatError(
        file,
        `token ${id}: truncated: expected ${len} bytes at ${o + 8}, file has ${bytes.length}`,
      );
    }
    let piece = dec.decode(bytes.subarray(o + 8, o + 8 + len));
    if (piece === "\n<s>\n") piece = "<s>";
    else if (piece === "\n</s>\n") piece = "</s>";
    pieces.push(piece.replaceAll(" ", SPACE));
    scores.push(score);
    o += 8 + len;
  }
  if (pieces.length === 0) throw new FormatError(file, "tokenizer holds no tokens");
  const has = (id: number, want: string) => pieces.length > id && pieces[id] === want;
  return new SentencePieceTokenizer({
    pieces,
    scores,
    bosId: has(1, "<s>") ? 1 : null,
    eosIds: has(2, "</s>") ? [2] : [],
    unkId: has(0, "<unk>") ? 0 : null,
  });
}

/**
 * Reads a llama2.c `tokenizer.bin` (int32 max_token_length, then per token: f32 score, int32
 * byte length, bytes) into a {@linkcode SentencePieceTokenizer} (unk 0, BOS 1, EOS 2; spaces
 * become `'▁'`).
 *
 * @param path File path.
 * @returns The tokenizer.
 * @throws {FormatError} when the file cannot be read or is malformed/truncated.
 *
 * @example
 * ```ts ignore
 * import { readLlama2cTokenizer } from "./sentencepiece.ts";
 * const tok = await readLlama2cTokenizer("../shared/assets/stories260K/tok512.bin");
 * console.log(tok.encode("Once upon a time")); // [1, 403, 407, 261, 378]
 * ```
 */
export async function readLlama2cTokenizer(path: string): Promise<SentencePieceTokenizer> {
  return parseLlama2cTokenizer(await readTokenizerBytes(path), path);
}
