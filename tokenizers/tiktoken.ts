/**
 * Byte-level BPE tokenizer with tiktoken semantics (rank = merge priority): added tokens are
 * split out of the text first (tokenizers/special_tokens.ts), each segment is normalized and
 * pre-tokenized (tokenizers/pretokenizer.ts), and each piece is merged in O(n log n)
 * (tokenizers/bpe.ts). Decoding reads a precomputed byte table.
 *
 * Sources of a vocabulary:
 * - the built-in encodings `gpt2`, `cl100k_base`, `o200k_base` (npm `js-tiktoken`'s rank
 *   data; js-tiktoken's encoder is not used);
 * - a gollm `.tiktoken` file (tokenizers/tiktoken_file.ts);
 * - a byte-level BPE vocabulary given as GPT-2 byte-to-unicode strings indexed by id (GGUF
 *   `tokenizer.ggml.model = gpt2`, HF `tokenizer.json` with a ByteLevel pre-tokenizer), taking
 *   rank = id. That equals merge order for GPT-2 (id = 256 + merge index), Llama-3 and Qwen2,
 *   whose vocabularies are tiktoken rank files; the tests check it against llama.cpp's vectors.
 *
 * Added tokens come in two kinds, as in llama.cpp (`CONTROL` vs `USER_DEFINED`) and HF
 * (`special: true` vs `false`): special tokens are recognised in input text unless
 * `encode(text, { special: false })`; non-special added tokens are always recognised.
 *
 * BOS/EOS, when not given, are inferred from the special-token names: BOS `<|bos|>`,
 * `<|begin_of_text|>`, `<s>`; EOS every one of `<|eos|>`, `<|endoftext|>`, `<|end_of_text|>`,
 * `<|eot_id|>`, `</s>` that is present.
 *
 * Follows openai/tiktoken (`src/lib.rs` for the merge, `core.py` for special handling) and
 * openai/gpt-2 `src/encoder.py`.
 *
 * @module
 */
import { BytePairEncoder, utf8Into } from "./bpe.ts";
import { byteLevelInto, bytesToByteLevel } from "./byte_level.ts";
import { FormatError, GollmError } from "../core/errors.ts";
import {
  PRETOKENIZE_PATTERNS,
  PreTokenizer,
  type PreTokenizerSpec,
  unicodeWhitespacePattern,
} from "./pretokenizer.ts";
import { AddedTokenMatcher } from "./special_tokens.ts";
import { readTokenizerText } from "./read_file.ts";
import { formatTiktokenText, parseTiktokenText } from "./tiktoken_file.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer.ts";

export { PRETOKENIZE_PATTERNS, unicodeWhitespacePattern };

/** Names accepted by {@linkcode TiktokenTokenizer.builtin} (and a config's `tokenizer`). */
export const BUILTIN_ENCODINGS: readonly string[] = ["gpt2", "cl100k_base", "o200k_base"];

/** BOS/EOS/template settings shared by the constructors. Unset fields are inferred. */
export interface TiktokenOptions {
  /** BOS id, or null for none. Default: inferred from special-token names. */
  bosId?: number | null;
  /** EOS ids. Default: inferred from special-token names. */
  eosIds?: readonly number[];
  /** Whether `encode` prepends BOS by default. Default: `bosId !== null`. */
  addBos?: boolean;
  /** A Jinja chat template to carry along. */
  chatTemplate?: string;
  /** Where the vocabulary came from, named in error messages (a file path or description). */
  source?: string;
  /**
   * Non-special added tokens, text → id: always recognised in input text (HF added tokens
   * with `special: false`, GGUF `USER_DEFINED` tokens). Default: none.
   */
  added?: ReadonlyMap<string, number>;
}

const BOS_NAMES = ["<|bos|>", "<|begin_of_text|>", "<s>"];
const EOS_NAMES = ["<|eos|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "</s>"];

/** Largest vocabulary accepted (ids are < 2^24; real vocabularies stay far below). */
const MAX_VOCAB = 1 << 24;

/** What an id is: a mergeable token, a special, a non-byte-level piece, a hole, an added. */
const KIND_NORMAL = 0, KIND_SPECIAL = 1, KIND_LITERAL = 2, KIND_UNUSED = 3, KIND_ADDED = 4;

function inferBos(specials: ReadonlyMap<string, number>): number | null {
  for (const n of BOS_NAMES) if (specials.has(n)) return specials.get(n)!;
  return null;
}

function inferEos(specials: ReadonlyMap<string, number>): number[] {
  const out: number[] = [];
  for (const n of EOS_NAMES) if (specials.has(n)) out.push(specials.get(n)!);
  return out;
}

function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Parses js-tiktoken's compressed rank text (lines `<prefix> <first rank> <b64> <b64> ...`,
 * consecutive ranks) into bytes by rank.
 */
function parseJsTiktokenRanks(text: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const parts = line.split(" ");
    const offset = Number.parseInt(parts[1], 10);
    for (let i = 2; i < parts.length; i++) out[offset + i - 2] = base64ToBytes(parts[i]);
  }
  return out;
}

interface BuiltinData {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}
const builtinCache = new Map<string, Promise<TiktokenTokenizer>>();

async function importBuiltin(name: string): Promise<BuiltinData> {
  switch (name) {
    case "gpt2":
      return (await import("js-tiktoken/ranks/gpt2")).default;
    case "cl100k_base":
      return (await import("js-tiktoken/ranks/cl100k_base")).default;
    case "o200k_base":
      return (await import("js-tiktoken/ranks/o200k_base")).default;
  }
  throw new GollmError(
    `unknown built-in tokenizer '${name}' (known: ${BUILTIN_ENCODINGS.join(", ")})`,
  );
}

/** A pattern string → the one-step spec that splits with it (Isolated). */
function specOf(pattern: string | PreTokenizerSpec): PreTokenizerSpec {
  if (typeof pattern !== "string") return pattern;
  return { steps: [{ type: "split", pattern, behavior: "Isolated", invert: false }] };
}

/**
 * A byte-level BPE tokenizer (tiktoken semantics) implementing {@linkcode Tokenizer}.
 * Immutable; create one with {@linkcode TiktokenTokenizer.builtin},
 * {@linkcode TiktokenTokenizer.fromFile}, {@linkcode TiktokenTokenizer.fromRanks} or
 * {@linkcode TiktokenTokenizer.fromByteLevelBpe}.
 *
 * `tokenBytes` and `decode` use one byte blob with per-id offsets: O(token length), no
 * per-token allocation beyond the returned view. The merge table and the added-token
 * matchers are built on the first `encode` call (decode-only users never pay for them).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TiktokenTokenizer } from "./tiktoken.ts";
 * const tok = await TiktokenTokenizer.builtin("gpt2");
 * const ids = tok.encode("Hello world");
 * assert.deepEqual(ids, [15496, 995]);
 * assert.equal(tok.decode(ids), "Hello world");
 * ```
 */
export class TiktokenTokenizer implements Tokenizer {
  /** Number of ids (max rank or special id + 1; unassigned ids in between decode to nothing). */
  readonly vocabSize: number;
  /** BOS id or null. */
  readonly bosId: number | null;
  /** EOS ids (generation stops at any). */
  readonly eosIds: readonly number[];
  /** Whether `encode` prepends BOS by default. */
  readonly addBos: boolean;
  /** Always false: byte-level BPE has no dummy-prefix space. */
  readonly stripLeadingSpace = false;
  /** Chat template carried from the model files, if any. */
  readonly chatTemplate?: string;
  /** The first pre-tokenizer split regex (JavaScript `u`-flag syntax), "" when none. */
  readonly pattern: string;
  /** Normalization and pre-tokenizer steps. */
  readonly preTokenizer: PreTokenizerSpec;
  /** Special tokens: text → id (recognised in input unless `special: false`). */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Non-special added tokens: text → id (always recognised in input). */
  readonly addedTokens: ReadonlyMap<string, number>;

  #blob: Uint8Array; // concatenated bytes of every id
  #offsets: Int32Array; // (vocabSize + 1) start of id i in #blob
  #kind: Uint8Array; // (vocabSize) KIND_*
  #pre: PreTokenizer;
  #bpe: BytePairEncoder | null = null;
  #matchAll: AddedTokenMatcher | null = null; // specials + added
  #matchAdded: AddedTokenMatcher | null = null; // added only
  #scratch = new Uint8Array(1024); // UTF-8 bytes of the current piece
  #source: string;

  private constructor(
    bytesById: (Uint8Array | undefined)[],
    kinds: Uint8Array,
    specials: Map<string, number>,
    added: Map<string, number>,
    pre: PreTokenizerSpec,
    opts: TiktokenOptions,
  ) {
    this.#source = opts.source ?? "<tokenizer>";
    const n = kinds.length;
    this.vocabSize = n;
    let total = 0;
    for (let i = 0; i < n; i++) total += bytesById[i]?.length ?? 0;
    this.#blob = new Uint8Array(total);
    this.#offsets = new Int32Array(n + 1);
    let off = 0;
    for (let i = 0; i < n; i++) {
      this.#offsets[i] = off;
      const b = bytesById[i];
      if (b) {
        this.#blob.set(b, off);
        off += b.length;
      }
    }
    this.#offsets[n] = off;
    this.#kind = kinds;
    this.specialTokens = specials;
    this.addedTokens = added;
    try {
      this.#pre = new PreTokenizer(pre);
    } catch (e) {
      throw new GollmError(
        `${this.#source}: pre-tokenizer pattern is not usable: ${(e as Error).message}`,
      );
    }
    this.preTokenizer = pre;
    const first = pre.steps.find((s) => s.type === "split");
    this.pattern = first?.type === "split" ? first.pattern : "";
    const check = (id: number, what: string) => {
      if (!Number.isInteger(id) || id < 0 || id >= n) {
        throw new GollmError(`${this.#source}: ${what} ${id} is outside the vocabulary [0, ${n})`);
      }
    };
    this.bosId = opts.bosId !== undefined ? opts.bosId : inferBos(specials);
    if (this.bosId !== null) check(this.bosId, "BOS id");
    this.eosIds = [...(opts.eosIds ?? inferEos(specials))];
    for (const e of this.eosIds) check(e, "EOS id");
    this.addBos = opts.addBos ?? this.bosId !== null;
    if (opts.chatTemplate !== undefined) this.chatTemplate = opts.chatTemplate;
  }

  /**
   * Builds the tokenizer from bytes indexed by rank plus specials (shared by the public
   * constructors). Ranks must cover all 256 single bytes.
   */
  static #build(
    ranks: readonly (Uint8Array | undefined)[],
    literals: Map<number, Uint8Array>,
    specials: Map<string, number>,
    pre: PreTokenizerSpec,
    opts: TiktokenOptions,
  ): TiktokenTokenizer {
    const src = opts.source ?? "<tokenizer>";
    const added = new Map(opts.added ?? []);
    let n = ranks.length;
    for (const [what, map] of [["special", specials], ["added", added]] as const) {
      for (const [text, id] of map) {
        if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) {
          throw new GollmError(
            `${src}: ${what} token ${JSON.stringify(text)} has invalid id ${id} ` +
              `(expected an integer in [0, ${MAX_VOCAB}))`,
          );
        }
        n = Math.max(n, id + 1);
      }
    }
    for (const id of literals.keys()) n = Math.max(n, id + 1);
    if (n > MAX_VOCAB) {
      throw new GollmError(`${src}: vocabulary of ${n} ids exceeds the limit of ${MAX_VOCAB}`);
    }
    const bytes: (Uint8Array | undefined)[] = new Array(n);
    const kinds = new Uint8Array(n).fill(KIND_UNUSED);
    for (let id = 0; id < ranks.length; id++) {
      const b = ranks[id];
      if (!b || b.length === 0) continue;
      bytes[id] = b;
      kinds[id] = KIND_NORMAL;
    }
    const enc = new TextEncoder();
    for (
      const [what, map, kind] of [
        ["special", specials, KIND_SPECIAL],
        ["added", added, KIND_ADDED],
      ] as const
    ) {
      for (const [text, id] of map) {
        if (kinds[id] === KIND_SPECIAL || kinds[id] === KIND_ADDED) {
          throw new GollmError(`${src}: ${what} token ${JSON.stringify(text)} reuses id ${id}`);
        }
        bytes[id] = enc.encode(text);
        kinds[id] = kind;
      }
    }
    for (const [id, b] of literals) {
      if (kinds[id] === KIND_SPECIAL || kinds[id] === KIND_ADDED) continue;
      bytes[id] = b;
      kinds[id] = KIND_LITERAL;
    }
    const single = new Uint8Array(256);
    for (let id = 0; id < n; id++) {
      if (kinds[id] === KIND_NORMAL && bytes[id]!.length === 1) single[bytes[id]![0]] = 1;
    }
    const missing = [...single.keys()].filter((b) => !single[b]);
    if (missing.length > 0) {
      throw new GollmError(
        `${src}: byte-level BPE ranks must include all 256 single bytes; missing ${missing.length}` +
          ` (first: 0x${missing[0].toString(16).padStart(2, "0")})`,
      );
    }
    return new TiktokenTokenizer(bytes, kinds, specials, added, pre, opts);
  }

  /**
   * One of the built-in encodings (js-tiktoken's rank data). Cached: repeated calls share
   * one instance. `gpt2`: 50257 ids, EOS `<|endoftext|>` 50256, no BOS; `cl100k_base`:
   * EOS 100257; `o200k_base`: EOS 199999.
   *
   * @param name `gpt2`, `cl100k_base` or `o200k_base`.
   * @returns The tokenizer.
   * @throws {GollmError} for an unknown name.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * assert.deepEqual([tok.eosIds, tok.bosId], [[50256], null]);
   * ```
   */
  static builtin(name: string): Promise<TiktokenTokenizer> {
    let p = builtinCache.get(name);
    if (!p) {
      p = (async () => {
        const data = await importBuiltin(name);
        const ranks = parseJsTiktokenRanks(data.bpe_ranks);
        const specials = new Map(Object.entries(data.special_tokens));
        return TiktokenTokenizer.#build(ranks, new Map(), specials, specOf(data.pat_str), {
          source: `built-in tokenizer '${name}'`,
        });
      })();
      p.catch(() => builtinCache.delete(name));
      builtinCache.set(name, p);
    }
    return p;
  }

  /**
   * Parses the text of a gollm `.tiktoken` file (format: tokenizers/tiktoken_file.ts).
   *
   * @param text File contents.
   * @param file File name for error messages.
   * @returns The tokenizer.
   * @throws {FormatError} naming the file and line for a malformed line, duplicate id,
   *   invalid pattern, or ranks missing single bytes.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const lines = [];
   * for (let b = 0; b < 256; b++) lines.push(`${btoa(String.fromCharCode(b))} ${b}`);
   * lines.push(`${btoa("ab")} 256`, "<|eos|> 257");
   * const tok = TiktokenTokenizer.parseTiktoken(lines.join("\n"), "t.tiktoken");
   * assert.deepEqual(tok.encode("abab"), [256, 256]);
   * assert.deepEqual(tok.eosIds, [257]);
   * ```
   */
  static parseTiktoken(text: string, file: string): TiktokenTokenizer {
    const c = parseTiktokenText(text, file);
    const opts: TiktokenOptions = { source: file, added: c.added };
    if (c.bosId !== undefined) opts.bosId = c.bosId;
    if (c.eosIds !== undefined) opts.eosIds = c.eosIds;
    if (c.addBos !== undefined) opts.addBos = c.addBos;
    try {
      return TiktokenTokenizer.#build(c.ranks, c.literals, c.specials, c.preTokenizer, opts);
    } catch (e) {
      if (e instanceof GollmError && !(e instanceof FormatError)) {
        throw new FormatError(file, e.message.replace(`${file}: `, ""));
      }
      throw e;
    }
  }

  /**
   * Reads a gollm `.tiktoken` file.
   *
   * @param path File path.
   * @returns The tokenizer.
   * @throws {FormatError} when the file cannot be read or is malformed.
   *
   * @example
   * ```ts ignore
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.fromFile("models/default/tokenizer.tiktoken");
   * ```
   */
  static async fromFile(path: string): Promise<TiktokenTokenizer> {
    return TiktokenTokenizer.parseTiktoken(await readTokenizerText(path), path);
  }

  /**
   * A tokenizer from tiktoken ranks.
   *
   * @param ranks Either a map from base64 token bytes to rank (as in a `.tiktoken` file), or
   *   an array of token bytes indexed by rank (holes allowed). Must cover all 256 bytes.
   * @param specials Special tokens, text → id (ids must not collide with ranks).
   * @param pattern Pre-tokenizer regex (default {@linkcode PRETOKENIZE_PATTERNS}.gpt2), or a
   *   full {@linkcode PreTokenizerSpec}.
   * @param opts BOS/EOS/addBos/chat template/added tokens (inferred from names when unset).
   * @returns The tokenizer.
   * @throws {GollmError} for a duplicate rank, an invalid pattern or missing single bytes.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const ranks = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
   * ranks.push(new TextEncoder().encode("hi"));
   * const tok = TiktokenTokenizer.fromRanks(ranks, new Map([["<|bos|>", 257]]));
   * assert.deepEqual(tok.encode("hi"), [257, 256]);
   * assert.equal(tok.bosId, 257);
   * ```
   */
  static fromRanks(
    ranks: ReadonlyMap<string, number> | readonly (Uint8Array | undefined)[],
    specials: ReadonlyMap<string, number> = new Map(),
    pattern: string | PreTokenizerSpec = PRETOKENIZE_PATTERNS.gpt2,
    opts: TiktokenOptions = {},
  ): TiktokenTokenizer {
    let byRank: (Uint8Array | undefined)[];
    if (Array.isArray(ranks)) {
      byRank = [...ranks];
    } else {
      byRank = [];
      const src = opts.source ?? "fromRanks";
      for (const [b64, rank] of ranks as ReadonlyMap<string, number>) {
        if (!Number.isInteger(rank) || rank < 0 || rank >= MAX_VOCAB) {
          throw new GollmError(`${src}: invalid rank ${rank} for ${b64}`);
        }
        if (byRank[rank]) throw new GollmError(`${src}: rank ${rank} is used twice`);
        byRank[rank] = base64ToBytes(b64);
      }
    }
    return TiktokenTokenizer.#build(byRank, new Map(), new Map(specials), specOf(pattern), opts);
  }

  /**
   * A tokenizer from a byte-level BPE vocabulary (GPT-2 `encoder.json`, GGUF
   * `tokenizer.ggml.tokens` of a `gpt2` model, HF `tokenizer.json` `model.vocab`), taking
   * rank = id. Ids listed in `specials` (or `opts.added`) become added tokens; a token that
   * is not a valid byte-level string (characters outside the GPT-2 byte map) is kept as a
   * literal piece (decoded as its UTF-8 text, never produced by `encode`).
   *
   * @param tokens Byte-to-unicode strings indexed by id (`"Ġthe"`).
   * @param specials Special tokens, text → id (may point into `tokens` or past its end).
   * @param pattern Pre-tokenizer regex, e.g. {@linkcode PRETOKENIZE_PATTERNS}.llama3, or a
   *   full {@linkcode PreTokenizerSpec}.
   * @param opts BOS/EOS/addBos/chat template/added tokens (inferred from names when unset).
   * @returns The tokenizer.
   * @throws {GollmError} when the single bytes are not all present or the pattern is invalid.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BYTE_TO_UNICODE } from "./byte_level.ts";
   * import { PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "./tiktoken.ts";
   * const tokens = [...BYTE_TO_UNICODE, "Ġt", "Ġth"];
   * const tok = TiktokenTokenizer.fromByteLevelBpe(tokens, new Map([["<|eos|>", 258]]),
   *   PRETOKENIZE_PATTERNS.gpt2, { bosId: null, addBos: false });
   * assert.deepEqual(tok.encode(" th<|eos|>"), [257, 258]);
   * ```
   */
  static fromByteLevelBpe(
    tokens: readonly string[],
    specials: ReadonlyMap<string, number>,
    pattern: string | PreTokenizerSpec,
    opts: TiktokenOptions = {},
  ): TiktokenTokenizer {
    const addedIds = new Set([...specials.values(), ...(opts.added?.values() ?? [])]);
    const byRank: (Uint8Array | undefined)[] = new Array(tokens.length);
    const literals = new Map<number, Uint8Array>();
    const enc = new TextEncoder();
    // Every token's bytes in one buffer (a byte-level string has one byte per character).
    let total = 0;
    for (let id = 0; id < tokens.length; id++) total += tokens[id]?.length ?? 0;
    const blob = new Uint8Array(total);
    let at = 0;
    for (let id = 0; id < tokens.length; id++) {
      const t = tokens[id];
      if (t === undefined || addedIds.has(id)) continue;
      const end = t.length === 0 ? -1 : byteLevelInto(t, blob, at);
      if (end < 0) literals.set(id, enc.encode(t));
      else {
        byRank[id] = blob.subarray(at, end);
        at = end;
      }
    }
    return TiktokenTokenizer.#build(byRank, literals, new Map(specials), specOf(pattern), opts);
  }

  #checkId(id: number): void {
    if (!(id >= 0 && id < this.vocabSize && Number.isInteger(id))) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /** The merge table, built on first use from the mergeable ids. */
  #getBpe(): BytePairEncoder {
    if (this.#bpe) return this.#bpe;
    const tokens: (Uint8Array | undefined)[] = new Array(this.vocabSize);
    for (let id = 0; id < this.vocabSize; id++) {
      if (this.#kind[id] === KIND_NORMAL) {
        tokens[id] = this.#blob.subarray(this.#offsets[id], this.#offsets[id + 1]);
      }
    }
    this.#bpe = new BytePairEncoder(tokens);
    return this.#bpe;
  }

  #matcher(special: boolean): AddedTokenMatcher {
    if (!this.#matchAdded) {
      this.#matchAdded = new AddedTokenMatcher(this.addedTokens);
      this.#matchAll = new AddedTokenMatcher([...this.addedTokens, ...this.specialTokens]);
    }
    return special ? this.#matchAll! : this.#matchAdded;
  }

  /** Pre-tokenizes and merges text that holds no added token, appending ids to `out`. */
  #encodeOrdinary(text: string, out: number[]): void {
    const bpe = this.#getBpe();
    this.#pre.split(text, (s, a, b) => {
      if (this.#scratch.length < 3 * (b - a)) this.#scratch = new Uint8Array(3 * (b - a));
      const n = utf8Into(s, a, b, this.#scratch);
      bpe.encodePiece(this.#scratch, 0, n, out);
    });
  }

  /**
   * Encodes text to ids. Added tokens are split out first (longest match at each position),
   * then each segment between them is normalized, pre-tokenized and merged.
   *
   * @param text Any Unicode text (lone surrogates are encoded as U+FFFD).
   * @param options `bos` (default `addBos`; ignored without a BOS id), `eos` (append the
   *   first EOS id), `special` (recognise special-token text; default true, as HF tokenizers
   *   and llama.cpp do; false encodes it as plain text). Non-special added tokens are always
   *   recognised.
   * @returns Token ids.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * assert.deepEqual(tok.encode("a<|endoftext|>"), [64, 50256]);
   * assert.ok(!tok.encode("a<|endoftext|>", { special: false }).includes(50256));
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if ((options.bos ?? this.addBos) && this.bosId !== null) out.push(this.bosId);
    const matcher = this.#matcher(options.special ?? true);
    if (matcher.size === 0) this.#encodeOrdinary(text, out);
    else {
      matcher.split(
        text,
        (s, e) => this.#encodeOrdinary(text.slice(s, e), out),
        (id) => out.push(id),
      );
    }
    if (options.eos && this.eosIds.length > 0) out.push(this.eosIds[0]);
    return out;
  }

  /**
   * Decodes ids to text: BOS is dropped, special tokens appear as their text, invalid UTF-8
   * (e.g. half a character) becomes U+FFFD.
   *
   * @param ids Token ids.
   * @returns The text.
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * assert.equal(tok.decode([15496, 995]), "Hello world");
   * ```
   */
  decode(ids: readonly number[]): string {
    let total = 0;
    for (const id of ids) {
      this.#checkId(id);
      if (id !== this.bosId) total += this.#offsets[id + 1] - this.#offsets[id];
    }
    const buf = new Uint8Array(total);
    let off = 0;
    for (const id of ids) {
      if (id === this.bosId) continue;
      const a = this.#offsets[id], b = this.#offsets[id + 1];
      buf.set(this.#blob.subarray(a, b), off);
      off += b - a;
    }
    return new TextDecoder().decode(buf);
  }

  /**
   * The raw bytes of one token (special tokens: their UTF-8 text; BOS: empty; unassigned
   * ids: empty). O(1): a view into the tokenizer's byte table — do not mutate.
   *
   * @param id Token id.
   * @returns The bytes.
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * assert.deepEqual([...tok.tokenBytes(995)], [32, 119, 111, 114, 108, 100]); // " world"
   * ```
   */
  tokenBytes(id: number): Uint8Array {
    this.#checkId(id);
    if (id === this.bosId) return this.#blob.subarray(0, 0);
    return this.#blob.subarray(this.#offsets[id], this.#offsets[id + 1]);
  }

  /**
   * Display form of one token: the GPT-2 byte-level string (`Ġworld`), a special token's
   * text, or `<unused:ID>` for an unassigned id.
   *
   * @param id Token id.
   * @returns The piece.
   * @throws {RangeError} for an id outside `[0, vocabSize)`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * assert.equal(tok.tokenPiece(995), "Ġworld");
   * ```
   */
  tokenPiece(id: number): string {
    this.#checkId(id);
    const bytes = this.#blob.subarray(this.#offsets[id], this.#offsets[id + 1]);
    switch (this.#kind[id]) {
      case KIND_NORMAL:
        return bytesToByteLevel(bytes);
      case KIND_UNUSED:
        return `<unused:${id}>`;
      default:
        return new TextDecoder().decode(bytes);
    }
  }

  /**
   * Serialises as a gollm `tokenizer.tiktoken` file (tokenizers/tiktoken_file.ts): the
   * pre-tokenizer and normalization, ranks, special and added tokens, and `#bos`, `#eos`,
   * `#add_bos` where they differ from what the special names imply, and literal (non
   * byte-level) pieces as `#literal`.
   *
   * @returns `{name: "tokenizer.tiktoken", bytes}`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * const { name, bytes } = tok.toFile();
   * const back = TiktokenTokenizer.parseTiktoken(new TextDecoder().decode(bytes), name);
   * assert.deepEqual(back.encode("Hello world"), [15496, 995]);
   * ```
   */
  toFile(): { name: string; bytes: Uint8Array } {
    const ranks: (Uint8Array | undefined)[] = [];
    const specials = new Map<string, number>();
    const literals = new Map<number, Uint8Array>();
    const dec = new TextDecoder();
    for (let id = 0; id < this.vocabSize; id++) {
      const bytes = this.#blob.subarray(this.#offsets[id], this.#offsets[id + 1]);
      const kind = this.#kind[id];
      if (kind === KIND_NORMAL) ranks[id] = bytes;
      else if (kind === KIND_SPECIAL) specials.set(dec.decode(bytes), id);
      else if (kind === KIND_LITERAL) literals.set(id, bytes);
    }
    const eos = inferEos(specials);
    const text = formatTiktokenText({
      ranks,
      specials,
      added: new Map(this.addedTokens),
      literals,
      preTokenizer: this.preTokenizer,
      ...(inferBos(specials) !== this.bosId ? { bosId: this.bosId } : {}),
      ...(eos.length !== this.eosIds.length || eos.some((e, i) => e !== this.eosIds[i])
        ? { eosIds: [...this.eosIds] }
        : {}),
      ...((this.bosId !== null) !== this.addBos ? { addBos: this.addBos } : {}),
    });
    return { name: "tokenizer.tiktoken", bytes: new TextEncoder().encode(text) };
  }
}
