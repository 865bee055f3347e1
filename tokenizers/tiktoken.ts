/**
 * Byte-level BPE tokenizer with tiktoken semantics (rank = merge priority), encoding through
 * npm `js-tiktoken` (the `Tiktoken` class of its `lite` build, fed our own ranks), decoding
 * through a precomputed byte table.
 *
 * Sources of a vocabulary:
 * - the built-in encodings `gpt2`, `cl100k_base`, `o200k_base` (js-tiktoken's rank data);
 * - a gollm `.tiktoken` file: standard tiktoken lines `<base64 bytes> <rank>`, plus
 *   `#pattern <regex>` (pre-tokenizer; default: gpt2's), special tokens as `<text> <id>`
 *   where `<text>` is not base64 (e.g. `<|eos|> 4097`), and the extensions
 *   `#special <base64 of the UTF-8 text> <id>` (a special whose text would read as base64 or
 *   holds a space), `#bos <id>`, `#eos <id> [<id> ...]`, `#add_bos true|false`; lines starting
 *   with `# ` are comments;
 * - a byte-level BPE vocabulary given as GPT-2 byte-to-unicode strings indexed by id (GGUF
 *   `tokenizer.ggml.model = gpt2`, HF `tokenizer.json` with a ByteLevel pre-tokenizer), taking
 *   rank = id. That equals merge order for GPT-2 (id = 256 + merge index), Llama-3 and Qwen2,
 *   whose vocabularies are tiktoken rank files; the tests check it against llama.cpp's vectors.
 *
 * Pre-tokenizer patterns are matched with `\s` meaning Unicode White_Space, as in tiktoken,
 * HF `tokenizers` and llama.cpp (see {@linkcode unicodeWhitespacePattern}).
 *
 * BOS/EOS, when not given, are inferred from the special-token names: BOS `<|bos|>`,
 * `<|begin_of_text|>`, `<s>`; EOS every one of `<|eos|>`, `<|endoftext|>`, `<|end_of_text|>`,
 * `<|eot_id|>`, `</s>` that is present.
 *
 * Follows openai/tiktoken (`tiktoken/load.py` for the file format, `core.py` for special
 * handling) and openai/gpt-2 `src/encoder.py`.
 *
 * @module
 */
import { Tiktoken, type TiktokenBPE } from "js-tiktoken/lite";
import { byteLevelToBytes, bytesToByteLevel } from "./byte_level.ts";
import { FormatError, GollmError } from "../core/errors.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer.ts";

/**
 * Pre-tokenizer regexes (JavaScript `u`-flag syntax), as used by llama.cpp
 * (`src/llama-vocab.cpp`) and the models' own tokenizers:
 * - `gpt2`: GPT-2 / r50k (openai/gpt-2 `encoder.py`).
 * - `llama3`: Llama-3 (`tokenizer.json` Split pattern, llama.cpp `LLAMA3`); identical to
 *   `cl100k` with the `(?i:...)` contractions spelled out.
 * - `qwen2`: Qwen2 (like llama3 but one digit per piece, `\p{N}`).
 * - `cl100k`: cl100k_base (same as `llama3`).
 */
export const PRETOKENIZE_PATTERNS: Readonly<
  Record<"gpt2" | "llama3" | "qwen2" | "cl100k", string>
> = (() => {
  const contractions = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
  const llama3 = contractions +
    String
      .raw`|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  return {
    gpt2: String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
    llama3,
    qwen2: contractions +
      String
        .raw`|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
    cl100k: llama3,
  };
})();

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
}

const BOS_NAMES = ["<|bos|>", "<|begin_of_text|>", "<s>"];
const EOS_NAMES = ["<|eos|>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "</s>"];

/** Largest vocabulary accepted (ids are < 2^24; real vocabularies stay far below). */
const MAX_VOCAB = 1 << 24;

const KIND_NORMAL = 0, KIND_SPECIAL = 1, KIND_LITERAL = 2, KIND_UNUSED = 3;

function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToBase64(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.length; i++) bin += String.fromCharCode(b[i]);
  return btoa(bin);
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function inferBos(specials: ReadonlyMap<string, number>): number | null {
  for (const n of BOS_NAMES) if (specials.has(n)) return specials.get(n)!;
  return null;
}

function inferEos(specials: ReadonlyMap<string, number>): number[] {
  const out: number[] = [];
  for (const n of EOS_NAMES) if (specials.has(n)) out.push(specials.get(n)!);
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

/**
 * Rewrites `\s` / `\S` in a regex source as `\p{White_Space}` / `\P{White_Space}`: the
 * Unicode White_Space property that tiktoken (Rust `regex`), HF `tokenizers` (Oniguruma) and
 * llama.cpp use. JavaScript's `\s` differs on two code points: it includes U+FEFF and
 * excludes U+0085.
 *
 * @param pattern Regex source (JavaScript `u`-flag syntax).
 * @returns The same regex with Unicode White_Space semantics.
 *
 * @example
 * ```ts
 * import { unicodeWhitespacePattern } from "./tiktoken.ts";
 * console.log(unicodeWhitespacePattern(String.raw`\s+(?!\S)`)); // \p{White_Space}+(?!\P{White_Space})
 * ```
 */
export function unicodeWhitespacePattern(pattern: string): string {
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c !== "\\" || i + 1 >= pattern.length) {
      out += c;
      continue;
    }
    const next = pattern[++i];
    if (next === "s") out += "\\p{White_Space}";
    else if (next === "S") out += "\\P{White_Space}";
    else out += c + next;
  }
  return out;
}

type BuiltinData = TiktokenBPE & { explicit_n_vocab?: number };
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

/**
 * A byte-level BPE tokenizer (tiktoken semantics) implementing {@linkcode Tokenizer}.
 * Immutable; create one with {@linkcode TiktokenTokenizer.builtin},
 * {@linkcode TiktokenTokenizer.fromFile}, {@linkcode TiktokenTokenizer.fromRanks} or
 * {@linkcode TiktokenTokenizer.fromByteLevelBpe}.
 *
 * `tokenBytes` and `decode` use one byte blob with per-id offsets: O(token length), no
 * per-token allocation beyond the returned view. The js-tiktoken encoder is built on the
 * first `encode` call (decode-only users never pay for it).
 *
 * @example
 * ```ts
 * import { TiktokenTokenizer } from "./tiktoken.ts";
 * const tok = await TiktokenTokenizer.builtin("gpt2");
 * const ids = tok.encode("Hello world");
 * console.log(ids, tok.decode(ids)); // [ 15496, 995 ] Hello world
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
  /** Pre-tokenizer regex (JavaScript `u`-flag syntax). */
  readonly pattern: string;
  /** Special tokens: text → id. */
  readonly specialTokens: ReadonlyMap<string, number>;

  #blob: Uint8Array; // concatenated bytes of every id
  #offsets: Int32Array; // (vocabSize + 1) start of id i in #blob
  #kind: Uint8Array; // (vocabSize) KIND_*
  #builtin: BuiltinData | null;
  #encoder: Tiktoken | null = null;
  #source: string;

  private constructor(
    bytesById: (Uint8Array | undefined)[],
    kinds: Uint8Array,
    specials: Map<string, number>,
    pattern: string,
    opts: TiktokenOptions,
    builtin: BuiltinData | null,
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
    try {
      new RegExp(pattern, "u");
    } catch (e) {
      throw new GollmError(
        `${this.#source}: pre-tokenizer pattern is not a valid regex: ${(e as Error).message}`,
      );
    }
    this.pattern = pattern;
    this.#builtin = builtin;
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
    ranks: (Uint8Array | undefined)[],
    literals: Map<number, Uint8Array>,
    specials: Map<string, number>,
    pattern: string,
    opts: TiktokenOptions,
    builtin: BuiltinData | null = null,
  ): TiktokenTokenizer {
    const src = opts.source ?? "<tokenizer>";
    let n = ranks.length;
    for (const id of specials.values()) n = Math.max(n, id + 1);
    for (const id of literals.keys()) n = Math.max(n, id + 1);
    if (n > MAX_VOCAB) {
      throw new GollmError(`${src}: vocabulary of ${n} ids exceeds the limit of ${MAX_VOCAB}`);
    }
    const bytes: (Uint8Array | undefined)[] = new Array(n);
    const kinds = new Uint8Array(n).fill(KIND_UNUSED);
    const single = new Uint8Array(256);
    for (let id = 0; id < ranks.length; id++) {
      const b = ranks[id];
      if (!b || b.length === 0) continue;
      bytes[id] = b;
      kinds[id] = KIND_NORMAL;
      if (b.length === 1) single[b[0]] = 1;
    }
    const enc = new TextEncoder();
    for (const [text, id] of specials) {
      if (!Number.isInteger(id) || id < 0) {
        throw new GollmError(`${src}: special token ${JSON.stringify(text)} has invalid id ${id}`);
      }
      if (kinds[id] === KIND_SPECIAL) {
        throw new GollmError(`${src}: special tokens share id ${id}`);
      }
      bytes[id] = enc.encode(text);
      kinds[id] = KIND_SPECIAL;
    }
    for (const [id, b] of literals) {
      if (kinds[id] === KIND_SPECIAL) continue;
      bytes[id] = b;
      kinds[id] = KIND_LITERAL;
    }
    const missing = [...single.keys()].filter((b) => !single[b]);
    if (missing.length > 0) {
      throw new GollmError(
        `${src}: byte-level BPE ranks must include all 256 single bytes; missing ${missing.length}` +
          ` (first: 0x${missing[0].toString(16).padStart(2, "0")})`,
      );
    }
    return new TiktokenTokenizer(bytes, kinds, specials, pattern, opts, builtin);
  }

  /**
   * One of js-tiktoken's built-in encodings. Cached: repeated calls share one instance.
   * `gpt2`: 50257 ids, EOS `<|endoftext|>` 50256, no BOS; `cl100k_base`: EOS 100257;
   * `o200k_base`: EOS 199999.
   *
   * @param name `gpt2`, `cl100k_base` or `o200k_base`.
   * @returns The tokenizer.
   * @throws {GollmError} for an unknown name.
   *
   * @example
   * ```ts
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * console.log(tok.eosIds, tok.bosId); // [ 50256 ] null
   * ```
   */
  static builtin(name: string): Promise<TiktokenTokenizer> {
    let p = builtinCache.get(name);
    if (!p) {
      p = (async () => {
        const data = await importBuiltin(name);
        const ranks = parseJsTiktokenRanks(data.bpe_ranks);
        const specials = new Map(Object.entries(data.special_tokens));
        return TiktokenTokenizer.#build(ranks, new Map(), specials, data.pat_str, {
          source: `built-in tokenizer '${name}'`,
        }, data);
      })();
      p.catch(() => builtinCache.delete(name));
      builtinCache.set(name, p);
    }
    return p;
  }

  /**
   * Parses the text of a gollm `.tiktoken` file (see the module doc for the format).
   *
   * @param text File contents.
   * @param file File name for error messages.
   * @returns The tokenizer.
   * @throws {FormatError} naming the file and line for a malformed line, duplicate id,
   *   invalid pattern, or ranks missing single bytes.
   *
   * @example
   * ```ts
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const lines = [];
   * for (let b = 0; b < 256; b++) lines.push(`${btoa(String.fromCharCode(b))} ${b}`);
   * lines.push(`${btoa("ab")} 256`, "<|eos|> 257");
   * const tok = TiktokenTokenizer.parseTiktoken(lines.join("\n"), "t.tiktoken");
   * console.log(tok.encode("abab"), tok.eosIds); // [ 256, 256 ] [ 257 ]
   * ```
   */
  static parseTiktoken(text: string, file: string): TiktokenTokenizer {
    const ranks: Uint8Array[] = [];
    const specials = new Map<string, number>();
    const opts: TiktokenOptions = { source: file };
    let pattern = PRETOKENIZE_PATTERNS.gpt2;
    const used = new Set<number>();
    const parseId = (s: string, lineNo: number): number => {
      if (!/^\d+$/.test(s)) {
        throw new FormatError(
          file,
          `line ${lineNo}: expected a non-negative integer id, got '${s}'`,
        );
      }
      return Number(s);
    };
    const claim = (id: number, lineNo: number) => {
      if (used.has(id)) throw new FormatError(file, `line ${lineNo}: id ${id} is used twice`);
      used.add(id);
    };
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const lineNo = i + 1;
      const line = lines[i].endsWith("\r") ? lines[i].slice(0, -1) : lines[i];
      if (line.length === 0 || line.startsWith("# ")) continue;
      if (line.startsWith("#")) {
        const sp = line.indexOf(" ");
        const directive = sp < 0 ? line : line.slice(0, sp);
        const rest = sp < 0 ? "" : line.slice(sp + 1);
        switch (directive) {
          case "#pattern":
            pattern = rest;
            try {
              new RegExp(pattern, "u");
            } catch (e) {
              throw new FormatError(
                file,
                `line ${lineNo}: #pattern is not a valid regex: ${(e as Error).message}`,
              );
            }
            break;
          case "#special": {
            const m = /^(\S+) (\d+)$/.exec(rest);
            if (!m || !BASE64_RE.test(m[1])) {
              throw new FormatError(file, `line ${lineNo}: expected '#special <base64> <id>'`);
            }
            const id = parseId(m[2], lineNo);
            claim(id, lineNo);
            specials.set(new TextDecoder().decode(base64ToBytes(m[1])), id);
            break;
          }
          case "#bos":
            opts.bosId = rest === "none" ? null : parseId(rest, lineNo);
            break;
          case "#eos":
            opts.eosIds = rest === "" ? [] : rest.split(" ").map((s) => parseId(s, lineNo));
            break;
          case "#add_bos":
            if (rest !== "true" && rest !== "false") {
              throw new FormatError(file, `line ${lineNo}: #add_bos must be true or false`);
            }
            opts.addBos = rest === "true";
            break;
          default:
            throw new FormatError(
              file,
              `line ${lineNo}: unknown directive '${directive}' (known: #pattern, #special, ` +
                `#bos, #eos, #add_bos; comments start with '# ')`,
            );
        }
        continue;
      }
      const sp = line.lastIndexOf(" ");
      if (sp <= 0) {
        throw new FormatError(
          file,
          `line ${lineNo}: expected '<base64 token> <rank>' or '<special text> <id>', got ` +
            JSON.stringify(line.slice(0, 60)),
        );
      }
      const tokenText = line.slice(0, sp);
      const id = parseId(line.slice(sp + 1), lineNo);
      claim(id, lineNo);
      if (BASE64_RE.test(tokenText)) ranks[id] = base64ToBytes(tokenText);
      else specials.set(tokenText, id);
    }
    try {
      return TiktokenTokenizer.#build(ranks, new Map(), specials, pattern, opts);
    } catch (e) {
      if (e instanceof GollmError && !(e instanceof FormatError)) {
        throw new FormatError(file, e.message.replace(`${file}: `, ""));
      }
      throw e;
    }
  }

  /**
   * Reads a gollm `.tiktoken` file (see the module doc).
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
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      throw new FormatError(path, `cannot read tokenizer file: ${(e as Error).message}`);
    }
    return TiktokenTokenizer.parseTiktoken(text, path);
  }

  /**
   * A tokenizer from tiktoken ranks.
   *
   * @param ranks Either a map from base64 token bytes to rank (as in a `.tiktoken` file), or
   *   an array of token bytes indexed by rank (holes allowed). Must cover all 256 bytes.
   * @param specials Special tokens, text → id (ids must not collide with ranks).
   * @param pattern Pre-tokenizer regex (default {@linkcode PRETOKENIZE_PATTERNS}.gpt2).
   * @param opts BOS/EOS/addBos/chat template (inferred from special names when unset).
   * @returns The tokenizer.
   * @throws {GollmError} for a duplicate rank, an invalid pattern or missing single bytes.
   *
   * @example
   * ```ts
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const ranks = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
   * ranks.push(new TextEncoder().encode("hi"));
   * const tok = TiktokenTokenizer.fromRanks(ranks, new Map([["<|bos|>", 257]]));
   * console.log(tok.encode("hi"), tok.bosId); // [ 257, 256 ] 257
   * ```
   */
  static fromRanks(
    ranks: ReadonlyMap<string, number> | readonly (Uint8Array | undefined)[],
    specials: ReadonlyMap<string, number> = new Map(),
    pattern: string = PRETOKENIZE_PATTERNS.gpt2,
    opts: TiktokenOptions = {},
  ): TiktokenTokenizer {
    let byRank: (Uint8Array | undefined)[];
    if (Array.isArray(ranks)) {
      byRank = [...ranks];
    } else {
      byRank = [];
      for (const [b64, rank] of ranks as ReadonlyMap<string, number>) {
        if (!Number.isInteger(rank) || rank < 0) {
          throw new GollmError(`${opts.source ?? "fromRanks"}: invalid rank ${rank} for ${b64}`);
        }
        if (byRank[rank]) {
          throw new GollmError(`${opts.source ?? "fromRanks"}: rank ${rank} is used twice`);
        }
        byRank[rank] = base64ToBytes(b64);
      }
    }
    return TiktokenTokenizer.#build(byRank, new Map(), new Map(specials), pattern, opts);
  }

  /**
   * A tokenizer from a byte-level BPE vocabulary (GPT-2 `encoder.json`, GGUF
   * `tokenizer.ggml.tokens` of a `gpt2` model, HF `tokenizer.json` `model.vocab`), taking
   * rank = id. Ids listed in `specials` become special tokens; a token that is not a valid
   * byte-level string (characters outside the GPT-2 byte map) is kept as a literal piece
   * (decoded as its UTF-8 text, never produced by `encode`).
   *
   * @param tokens Byte-to-unicode strings indexed by id (`"Ġthe"`).
   * @param specials Special tokens, text → id (may point into `tokens` or past its end).
   * @param pattern Pre-tokenizer regex, e.g. {@linkcode PRETOKENIZE_PATTERNS}.llama3.
   * @param opts BOS/EOS/addBos/chat template (inferred from special names when unset).
   * @returns The tokenizer.
   * @throws {GollmError} when the single bytes are not all present or the pattern is invalid.
   *
   * @example
   * ```ts ignore
   * import { PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "./tiktoken.ts";
   * const enc = JSON.parse(await Deno.readTextFile("encoder.json")) as Record<string, number>;
   * const tokens: string[] = [];
   * for (const [t, id] of Object.entries(enc)) tokens[id] = t;
   * const tok = TiktokenTokenizer.fromByteLevelBpe(tokens,
   *   new Map([["<|endoftext|>", 50256]]), PRETOKENIZE_PATTERNS.gpt2, { bosId: null, addBos: false });
   * ```
   */
  static fromByteLevelBpe(
    tokens: readonly string[],
    specials: ReadonlyMap<string, number>,
    pattern: string,
    opts: TiktokenOptions = {},
  ): TiktokenTokenizer {
    const specialIds = new Set(specials.values());
    const byRank: (Uint8Array | undefined)[] = new Array(tokens.length);
    const literals = new Map<number, Uint8Array>();
    const enc = new TextEncoder();
    for (let id = 0; id < tokens.length; id++) {
      const t = tokens[id];
      if (t === undefined || specialIds.has(id)) continue;
      const b = byteLevelToBytes(t);
      if (b === null || b.length === 0) literals.set(id, enc.encode(t));
      else byRank[id] = b;
    }
    return TiktokenTokenizer.#build(byRank, literals, new Map(specials), pattern, opts);
  }

  #checkId(id: number): void {
    if (!(id >= 0 && id < this.vocabSize && Number.isInteger(id))) {
      throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  #getEncoder(): Tiktoken {
    if (this.#encoder) return this.#encoder;
    // Longest special first, so one special that prefixes another never shadows it.
    const specials: Record<string, number> = {};
    for (const [t, id] of [...this.specialTokens].sort((a, b) => b[0].length - a[0].length)) {
      specials[t] = id;
    }
    if (this.#builtin) {
      this.#encoder = new Tiktoken({
        ...this.#builtin,
        pat_str: unicodeWhitespacePattern(this.#builtin.pat_str),
        special_tokens: specials,
      });
      return this.#encoder;
    }
    // js-tiktoken's compressed rank text: `<prefix> <first rank> <b64> <b64> ...` per run of
    // consecutive ranks. A byte string that appears twice keeps its lowest rank.
    const lines: string[] = [];
    const seen = new Set<string>();
    let run: string[] = [];
    let runStart = -1;
    const flush = () => {
      if (run.length > 0) lines.push(`r ${runStart} ${run.join(" ")}`);
      run = [];
    };
    for (let id = 0; id < this.vocabSize; id++) {
      if (this.#kind[id] !== KIND_NORMAL) {
        flush();
        continue;
      }
      const b64 = bytesToBase64(this.#blob.subarray(this.#offsets[id], this.#offsets[id + 1]));
      if (seen.has(b64)) {
        flush();
        continue;
      }
      seen.add(b64);
      if (run.length === 0) runStart = id;
      run.push(b64);
    }
    flush();
    this.#encoder = new Tiktoken({
      pat_str: unicodeWhitespacePattern(this.pattern),
      special_tokens: specials,
      bpe_ranks: lines.join("\n"),
    });
    return this.#encoder;
  }

  /**
   * Encodes text to ids.
   *
   * @param text Any Unicode text.
   * @param options `bos` (default `addBos`; ignored without a BOS id), `eos` (append the
   *   first EOS id), `special` (recognise special-token text; default false: encoded as
   *   plain text).
   * @returns Token ids.
   *
   * @example
   * ```ts
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * console.log(tok.encode("a<|endoftext|>", { special: true })); // [ 64, 50256 ]
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if ((options.bos ?? this.addBos) && this.bosId !== null) out.push(this.bosId);
    const ids = this.#getEncoder().encode(text, options.special ? "all" : [], []);
    for (let i = 0; i < ids.length; i++) out.push(ids[i]);
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
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * console.log(tok.decode([15496, 995])); // "Hello world"
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
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * console.log(tok.tokenBytes(995)); // Uint8Array(6) [ 32, 119, 111, 114, 108, 100 ]
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
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * console.log(tok.tokenPiece(995)); // "Ġworld"
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
   * Serialises as a gollm `tokenizer.tiktoken` file: `#pattern`, then `<base64> <rank>`
   * lines in rank order, then special tokens (`<text> <id>`, or `#special <base64> <id>` for
   * text that would read as base64, holds whitespace or starts with `#`), and `#bos`, `#eos`,
   * `#add_bos` only where they differ from what the special names imply. Literal (non
   * byte-level) pieces are written as specials.
   *
   * @returns `{name: "tokenizer.tiktoken", bytes}`.
   *
   * @example
   * ```ts
   * import { TiktokenTokenizer } from "./tiktoken.ts";
   * const tok = await TiktokenTokenizer.builtin("gpt2");
   * const { name, bytes } = tok.toFile();
   * const back = TiktokenTokenizer.parseTiktoken(new TextDecoder().decode(bytes), name);
   * console.log(back.encode("Hello world")); // [ 15496, 995 ]
   * ```
   */
  toFile(): { name: string; bytes: Uint8Array } {
    const lines = [`#pattern ${this.pattern}`];
    const specialLines: string[] = [];
    const dec = new TextDecoder();
    const specials = new Map<string, number>();
    for (let id = 0; id < this.vocabSize; id++) {
      const bytes = this.#blob.subarray(this.#offsets[id], this.#offsets[id + 1]);
      const kind = this.#kind[id];
      if (kind === KIND_NORMAL) {
        lines.push(`${bytesToBase64(bytes)} ${id}`);
      } else if (kind === KIND_SPECIAL || kind === KIND_LITERAL) {
        const text = dec.decode(bytes);
        specials.set(text, id);
        const plain = text.length > 0 && !BASE64_RE.test(text) && !/\s/.test(text) &&
          !text.startsWith("#");
        specialLines.push(plain ? `${text} ${id}` : `#special ${bytesToBase64(bytes)} ${id}`);
      }
    }
    lines.push(...specialLines);
    if (inferBos(specials) !== this.bosId) lines.push(`#bos ${this.bosId ?? "none"}`);
    const eos = inferEos(specials);
    if (eos.length !== this.eosIds.length || eos.some((e, i) => e !== this.eosIds[i])) {
      lines.push(`#eos ${this.eosIds.join(" ")}`.trimEnd());
    }
    if ((this.bosId !== null) !== this.addBos) lines.push(`#add_bos ${this.addBos}`);
    return {
      name: "tokenizer.tiktoken",
      bytes: new TextEncoder().encode(lines.join("\n") + "\n"),
    };
  }
}
