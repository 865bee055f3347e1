/**
 * Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) → a gollm {@linkcode Tokenizer}.
 *
 * Two families of BPE vocabularies are supported, mapped onto the two BPE implementations
 * gollm already has:
 *
 * - **Byte-level BPE** (GPT-2, Llama-3, Qwen2, ...): `model.type: "BPE"` with a `ByteLevel`
 *   pre-tokenizer. Becomes a {@linkcode TiktokenTokenizer} via
 *   `TiktokenTokenizer.fromByteLevelBpe` with rank = id (for these vocabularies merge order
 *   equals id order). The pre-tokenizer regex is the `Split` pattern of the pre-tokenizer
 *   when there is one (Llama-3, Qwen2), else GPT-2's. `added_tokens` become special tokens.
 * - **SentencePiece-style BPE** (Llama-2, Mistral, TinyLlama): `▁` for spaces (normalizer
 *   `Prepend("▁")` + `Replace(" ", "▁")`, or a `Metaspace` pre-tokenizer), byte fallback
 *   `<0xNN>`. Becomes a {@linkcode SentencePieceTokenizer}; since `tokenizer.json` carries
 *   merges but no scores, each piece's score is minus the rank of the first merge that
 *   produces it (pieces no merge produces score below every merge), so score-ordered
 *   merging equals rank-ordered merging.
 *
 * The pure-TypeScript `@huggingface/tokenizers` (npm, 0.2.0) was evaluated: it encodes the
 * Llama-3 tokenizer.json correctly, but it exposes no per-token bytes, scores or rank files,
 * which the {@linkcode Tokenizer} interface needs (`tokenBytes` for streaming, `toFile` for
 * `gollm convert`); reusing gollm's two BPE engines keeps one implementation per algorithm.
 *
 * Reference: huggingface/tokenizers `tokenizers/src/{models/bpe,pre_tokenizers,normalizers,
 * processors}` and transformers' `convert_slow_tokenizer.py` (LlamaConverter, GPT2Converter).
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { isFile, readJson } from "../core/files.ts";
import { SentencePieceTokenizer, SPM_TOKEN_TYPE } from "./sentencepiece.ts";
import { PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "./tiktoken.ts";
import type { EncodeOptions, Tokenizer } from "./tokenizer.ts";

/** What gollm reads from a `tokenizer_config.json` (and `chat_template.jinja`). */
export interface HfTokenizerConfig {
  /** Jinja chat template (`chat_template`; the `default` one when it is a list). */
  chatTemplate?: string;
  /** `bos_token` text (string or AddedToken `{content}`). */
  bosToken?: string;
  /** `eos_token` text. */
  eosToken?: string;
  /** `add_bos_token`, when set. */
  addBos?: boolean;
  /** `add_eos_token`, when set. */
  addEos?: boolean;
}

type Json = Record<string, unknown>;

function isObj(v: unknown): v is Json {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function tokenText(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (isObj(v) && typeof v.content === "string") return v.content;
  return undefined;
}

/**
 * Reads the fields gollm uses from a parsed `tokenizer_config.json`.
 *
 * @param raw The parsed JSON object (or undefined when the file is absent).
 * @param file The file, named in errors.
 * @returns The chat template, BOS/EOS token texts and add_bos/add_eos flags that are set.
 * @throws {FormatError} when `raw` is not an object or `chat_template` is neither a string
 *   nor a list of `{name, template}`.
 *
 * @example
 * ```ts
 * import { parseHfTokenizerConfig } from "./hf_tokenizer.ts";
 * const c = parseHfTokenizerConfig({ bos_token: "<s>", add_bos_token: true }, "tokenizer_config.json");
 * console.log(c.bosToken, c.addBos); // <s> true
 * ```
 */
export function parseHfTokenizerConfig(raw: unknown, file: string): HfTokenizerConfig {
  if (raw === undefined) return {};
  if (!isObj(raw)) throw new FormatError(file, "must be a JSON object");
  const out: HfTokenizerConfig = {};
  const ct = raw.chat_template;
  if (typeof ct === "string") out.chatTemplate = ct;
  else if (Array.isArray(ct)) {
    const named = ct.filter((t) => isObj(t) && typeof t.template === "string") as Json[];
    const pick = named.find((t) => t.name === "default") ?? named[0];
    if (pick) out.chatTemplate = pick.template as string;
  } else if (ct !== undefined && ct !== null) {
    throw new FormatError(
      file,
      "field 'chat_template' must be a string or a list of {name, template}",
    );
  }
  const bos = tokenText(raw.bos_token), eos = tokenText(raw.eos_token);
  if (bos !== undefined) out.bosToken = bos;
  if (eos !== undefined) out.eosToken = eos;
  if (typeof raw.add_bos_token === "boolean") out.addBos = raw.add_bos_token;
  if (typeof raw.add_eos_token === "boolean") out.addEos = raw.add_eos_token;
  return out;
}

/** Flattens a `Sequence` normalizer / pre-tokenizer / decoder into its steps. */
function steps(v: unknown, key: string): Json[] {
  if (!isObj(v)) return [];
  if (v.type === "Sequence" && Array.isArray(v[key])) {
    return (v[key] as unknown[]).flatMap((s) => steps(s, key));
  }
  return [v];
}

function patternOf(v: unknown): string | undefined {
  if (!isObj(v)) return undefined;
  if (typeof v.String === "string") return v.String;
  if (typeof v.Regex === "string") return v.Regex;
  return undefined;
}

/** The merges list as pairs (accepts `"a b"` strings and `[a, b]` arrays). */
function mergePairs(model: Json, file: string): [string, string][] {
  const merges = model.merges ?? [];
  if (!Array.isArray(merges)) throw new FormatError(file, "field 'model.merges' must be a list");
  return merges.map((m, i) => {
    if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
    if (typeof m === "string") {
      const sp = m.indexOf(" ", 1);
      if (sp > 0) return [m.slice(0, sp), m.slice(sp + 1)];
    }
    throw new FormatError(file, `model.merges[${i}] is not a pair: ${JSON.stringify(m)}`);
  });
}

/** A tokenizer that rewrites the input text before encoding (NFC, ByteLevel add_prefix_space). */
class PreprocessedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: readonly number[];
  readonly addBos: boolean;
  readonly stripLeadingSpace: boolean;
  readonly chatTemplate?: string;
  #inner: Tokenizer;
  #pre: (s: string) => string;
  constructor(inner: Tokenizer, pre: (s: string) => string) {
    this.#inner = inner;
    this.#pre = pre;
    this.vocabSize = inner.vocabSize;
    this.bosId = inner.bosId;
    this.eosIds = inner.eosIds;
    this.addBos = inner.addBos;
    this.stripLeadingSpace = inner.stripLeadingSpace;
    if (inner.chatTemplate !== undefined) this.chatTemplate = inner.chatTemplate;
  }
  encode(text: string, options?: EncodeOptions): number[] {
    return this.#inner.encode(this.#pre(text), options);
  }
  decode(ids: readonly number[]): string {
    return this.#inner.decode(ids);
  }
  tokenBytes(id: number): Uint8Array {
    return this.#inner.tokenBytes(id);
  }
  tokenPiece(id: number): string {
    return this.#inner.tokenPiece(id);
  }
  toFile(): { name: string; bytes: Uint8Array } {
    return this.#inner.toFile();
  }
}

const EOS_NAMES = [
  "<|eos|>",
  "<|endoftext|>",
  "<|end_of_text|>",
  "<|eot_id|>",
  "<|im_end|>",
  "</s>",
];

/**
 * Builds a {@linkcode Tokenizer} from a parsed HF `tokenizer.json` and (optionally) its
 * `tokenizer_config.json`.
 *
 * BOS: `tokenizer_config.bos_token` (else the first special token of a `TemplateProcessing`
 * post-processor, else `<s>` / `<|begin_of_text|>` when present). Whether `encode` adds it:
 * `add_bos_token` when set, else whether the post-processor's `single` template starts with
 * a special token. EOS ids: `eos_token` plus the usual end tokens present among the added
 * tokens (`<|eot_id|>`, `<|im_end|>`, `<|endoftext|>`, ...).
 *
 * @param json Parsed tokenizer.json.
 * @param file Its path, named in errors.
 * @param config Parsed tokenizer_config fields ({@linkcode parseHfTokenizerConfig}).
 * @returns A {@linkcode TiktokenTokenizer} (byte-level BPE) or
 *   {@linkcode SentencePieceTokenizer} (SentencePiece-style BPE), wrapped when the
 *   normalizer is NFC or ByteLevel adds a prefix space.
 * @throws {FormatError} naming `file` and the field for anything unsupported: a model type
 *   other than BPE, an unknown normalizer / pre-tokenizer step, an invalid Split regex, a
 *   vocabulary that is neither byte-level nor `▁`-based.
 *
 * @example
 * ```ts ignore
 * import { parseHfTokenizer } from "./hf_tokenizer.ts";
 * const json = JSON.parse(await Deno.readTextFile("tokenizer.json"));
 * const tok = parseHfTokenizer(json, "tokenizer.json", {});
 * console.log(tok.encode("Hello world"));
 * ```
 */
export function parseHfTokenizer(
  json: unknown,
  file: string,
  config: HfTokenizerConfig = {},
): Tokenizer {
  if (!isObj(json)) throw new FormatError(file, "must be a JSON object");
  const model = json.model;
  if (!isObj(model)) throw new FormatError(file, "field 'model' is missing");
  if (
    model.type !== "BPE" && !(model.type === undefined && isObj(model.vocab) && "merges" in model)
  ) {
    throw new FormatError(
      file,
      `field 'model.type' is ${JSON.stringify(model.type)}; only "BPE" tokenizers are supported`,
    );
  }
  if (!isObj(model.vocab)) throw new FormatError(file, "field 'model.vocab' must be an object");
  if (model.continuing_subword_prefix || model.end_of_word_suffix) {
    throw new FormatError(
      file,
      "fields 'model.continuing_subword_prefix' / 'end_of_word_suffix' are not supported",
    );
  }

  // Vocabulary, index = id; added tokens may extend past it.
  const pieces: string[] = [];
  for (const [piece, id] of Object.entries(model.vocab)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      throw new FormatError(file, `model.vocab[${JSON.stringify(piece)}] has invalid id ${id}`);
    }
    pieces[id] = piece;
  }
  const added: { id: number; content: string; special: boolean }[] = [];
  for (const [i, t] of ((json.added_tokens ?? []) as unknown[]).entries()) {
    if (!isObj(t) || typeof t.id !== "number" || typeof t.content !== "string") {
      throw new FormatError(file, `added_tokens[${i}] needs a numeric 'id' and string 'content'`);
    }
    added.push({ id: t.id, content: t.content, special: t.special !== false });
  }
  const idOf = (text: string | undefined): number | null => {
    if (text === undefined) return null;
    const a = added.find((t) => t.content === text);
    if (a) return a.id;
    const v = (model.vocab as Json)[text];
    return typeof v === "number" ? v : null;
  };

  // BOS / add_bos from the post-processor template.
  let templateBos: number | null = null;
  let templateAddsBos = false;
  for (const p of steps(json.post_processor, "processors")) {
    if (p.type !== "TemplateProcessing" || !Array.isArray(p.single)) continue;
    const first = p.single[0];
    if (isObj(first) && isObj(first.SpecialToken)) {
      const name = String(first.SpecialToken.id);
      const st = isObj(p.special_tokens) ? p.special_tokens[name] : undefined;
      const ids = isObj(st) && Array.isArray(st.ids) ? st.ids : [];
      templateBos = typeof ids[0] === "number" ? ids[0] : idOf(name);
      templateAddsBos = templateBos !== null;
    }
  }
  const bosId = idOf(config.bosToken) ?? templateBos ?? idOf("<s>") ?? idOf("<|begin_of_text|>");
  const addBos = bosId !== null && (config.addBos ?? templateAddsBos);
  const eosIds: number[] = [];
  for (const name of [config.eosToken, ...EOS_NAMES]) {
    const id = idOf(name);
    if (id !== null && !eosIds.includes(id)) eosIds.push(id);
  }

  const norms = steps(json.normalizer, "normalizers");
  const pres = steps(json.pre_tokenizer, "pretokenizers");
  const byteLevel = pres.find((p) => p.type === "ByteLevel");
  const metaspace = pres.find((p) => p.type === "Metaspace");
  const prepend = norms.find((n) => n.type === "Prepend");
  const replaceSpace = norms.find((n) =>
    n.type === "Replace" && patternOf(n.pattern) === " " && n.content === "\u2581"
  );

  if (byteLevel) {
    let nfc = false;
    for (const n of norms) {
      if (n.type === "NFC") nfc = true;
      else {throw new FormatError(
          file,
          `normalizer '${n.type}' is not supported for byte-level BPE`,
        );}
    }
    let pattern: string | undefined;
    for (const p of pres) {
      if (p.type === "ByteLevel") {
        if (p.use_regex !== false && pattern === undefined) pattern = PRETOKENIZE_PATTERNS.gpt2;
        continue;
      }
      if (p.type !== "Split") {
        throw new FormatError(file, `pre_tokenizer '${p.type}' is not supported with ByteLevel`);
      }
      const re = patternOf(p.pattern);
      if (re === undefined || p.invert === true || (p.behavior ?? "Isolated") !== "Isolated") {
        throw new FormatError(
          file,
          `pre_tokenizer Split must have a pattern with behavior "Isolated" and invert false`,
        );
      }
      if (pattern !== undefined && pattern !== PRETOKENIZE_PATTERNS.gpt2) {
        throw new FormatError(file, "pre_tokenizer has more than one Split; not supported");
      }
      pattern = isObj(p.pattern) && typeof p.pattern.String === "string"
        ? re.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        : re;
    }
    pattern ??= PRETOKENIZE_PATTERNS.gpt2;
    try {
      new RegExp(pattern, "gu");
    } catch (e) {
      throw new FormatError(
        file,
        `pre_tokenizer Split regex is not valid in JavaScript: ${(e as Error).message}`,
      );
    }
    const specials = new Map<string, number>();
    for (const t of added) specials.set(t.content, t.id);
    const tok = TiktokenTokenizer.fromByteLevelBpe(pieces, specials, pattern, {
      bosId,
      eosIds,
      addBos,
      source: file,
      ...(config.chatTemplate !== undefined ? { chatTemplate: config.chatTemplate } : {}),
    });
    const prefixSpace = byteLevel.add_prefix_space === true;
    if (!nfc && !prefixSpace) return tok;
    return new PreprocessedTokenizer(tok, (s) => {
      if (nfc) s = s.normalize("NFC");
      // tokenizers ByteLevel: a space is added when the text does not start with one.
      if (prefixSpace && s.length > 0 && !s.startsWith(" ")) s = " " + s;
      return s;
    });
  }

  // SentencePiece-style BPE.
  if (!(metaspace || (prepend && replaceSpace) || replaceSpace)) {
    throw new FormatError(
      file,
      "pre_tokenizer has no ByteLevel step and the normalizer does not map ' ' to '\u2581'; " +
        "this BPE vocabulary is neither byte-level nor SentencePiece-style",
    );
  }
  for (const n of norms) {
    if (n !== prepend && n !== replaceSpace) {
      throw new FormatError(
        file,
        `normalizer '${n.type}' is not supported for SentencePiece-style BPE`,
      );
    }
  }
  for (const p of pres) {
    if (p !== metaspace) {
      throw new FormatError(
        file,
        `pre_tokenizer '${p.type}' is not supported for SentencePiece-style BPE`,
      );
    }
  }
  const addSpacePrefix = prepend !== undefined
    ? prepend.prepend === "\u2581"
    : metaspace !== undefined
    ? (metaspace.prepend_scheme ?? (metaspace.add_prefix_space === false ? "never" : "always")) !==
      "never"
    : false;

  for (const t of added) pieces[t.id] ??= t.content;
  for (let i = 0; i < pieces.length; i++) {
    if (pieces[i] === undefined) {
      throw new FormatError(file, `no token has id ${i} (vocabulary has a hole)`);
    }
  }
  const merges = mergePairs(model, file);
  const ids = new Map<string, number>();
  pieces.forEach((p, i) => {
    if (!ids.has(p)) ids.set(p, i);
  });
  const scores = new Float32Array(pieces.length).fill(NaN);
  merges.forEach(([a, b], rank) => {
    const id = ids.get(a + b);
    if (id !== undefined && Number.isNaN(scores[id])) scores[id] = -rank;
  });
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) scores[i] = -(merges.length + i);
  }
  const types = new Uint8Array(pieces.length).fill(SPM_TOKEN_TYPE.normal);
  const unkId = typeof model.unk_token === "string" ? idOf(model.unk_token) : null;
  for (let i = 0; i < pieces.length; i++) {
    if (model.byte_fallback === true && /^<0x[0-9A-F]{2}>$/.test(pieces[i])) {
      types[i] = SPM_TOKEN_TYPE.byte;
    }
  }
  if (unkId !== null) types[unkId] = SPM_TOKEN_TYPE.unknown;
  // HF matches every added token's text in the input; special ones only matter for
  // decoding. gollm: special → control (matched with `special: true`), others user-defined.
  for (const t of added) {
    types[t.id] = t.special ? SPM_TOKEN_TYPE.control : SPM_TOKEN_TYPE.userDefined;
  }
  return new SentencePieceTokenizer({
    pieces,
    scores,
    types,
    bosId,
    eosIds,
    unkId,
    addBos,
    addEos: config.addEos ?? false,
    addSpacePrefix,
    ...(config.chatTemplate !== undefined ? { chatTemplate: config.chatTemplate } : {}),
  });
}

/**
 * Loads a Hugging Face tokenizer: `tokenizer.json`, plus `tokenizer_config.json` and
 * `chat_template.jinja` from the same directory when present (the `.jinja` file wins over
 * `tokenizer_config.chat_template`, as in transformers ≥ 4.50).
 *
 * @param path A model directory, or the path of a `tokenizer.json`.
 * @returns The tokenizer, or null when `path` is a directory without `tokenizer.json`.
 * @throws {FormatError} when a file cannot be read, is not JSON, or describes an
 *   unsupported tokenizer (see {@linkcode parseHfTokenizer}); names the file and field.
 *
 * @example
 * ```ts ignore
 * import { loadHfTokenizer } from "./hf_tokenizer.ts";
 * const tok = await loadHfTokenizer("../shared/assets/tokenizers/llama3");
 * console.log(tok!.encode("Hello world")); // [9906, 1917]
 * ```
 */
export async function loadHfTokenizer(path: string): Promise<Tokenizer | null> {
  let dir: string, tokFile: string;
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(path);
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  if (stat.isDirectory) {
    dir = path;
    tokFile = `${path.replace(/\/+$/, "")}/tokenizer.json`;
    if (!(await isFile(tokFile))) return null;
  } else {
    tokFile = path;
    const slash = path.lastIndexOf("/");
    dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  }
  const cfgFile = `${dir}/tokenizer_config.json`;
  const config = (await isFile(cfgFile))
    ? parseHfTokenizerConfig(await readJson(cfgFile), cfgFile)
    : {};
  const jinja = `${dir}/chat_template.jinja`;
  if (await isFile(jinja)) config.chatTemplate = await Deno.readTextFile(jinja);
  return parseHfTokenizer(await readJson(tokFile), tokFile, config);
}
