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
import {
  type NormalizationForm,
  PRETOKENIZE_PATTERNS,
  PreTokenizer,
  type PreTokenizerSpec,
  type PreTokenizerStep,
  SPLIT_BEHAVIORS,
  type SplitBehavior,
} from "./pretokenizer.ts";
import {
  checkRegularFile,
  optionalFile,
  readTokenizerJson,
  readTokenizerText,
} from "./read_file.ts";
import { SentencePieceTokenizer, SPM_TOKEN_TYPE } from "./sentencepiece.ts";
import { TiktokenTokenizer } from "./tiktoken.ts";
import type { Tokenizer } from "./tokenizer.ts";

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
 * import assert from "node:assert/strict";
 * import { parseHfTokenizerConfig } from "./hf_tokenizer.ts";
 * const c = parseHfTokenizerConfig({ bos_token: "<s>", add_bos_token: true }, "tokenizer_config.json");
 * assert.deepEqual([c.bosToken, c.addBos], ["<s>", true]);
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

/** A JSON value, short, for messages. */
function describeJson(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return JSON.stringify(v)?.slice(0, 40) ?? String(v);
}

/**
 * The normalization and pre-tokenizer steps of a byte-level tokenizer.json: `Split` steps
 * as they are, `ByteLevel` as a prefix space (`add_prefix_space`) then GPT-2's split
 * (`use_regex`), a single NFC/NFD/NFKC/NFKD normalizer.
 */
function byteLevelSpec(norms: Json[], pres: Json[], file: string): PreTokenizerSpec {
  let normalize: NormalizationForm | undefined;
  for (const n of norms) {
    if (!["NFC", "NFD", "NFKC", "NFKD"].includes(String(n.type)) || normalize !== undefined) {
      throw new FormatError(
        file,
        `normalizer ${JSON.stringify(n.type)} is not supported for byte-level BPE ` +
          `(supported: one of NFC, NFD, NFKC, NFKD)`,
      );
    }
    normalize = n.type as NormalizationForm;
  }
  const out: PreTokenizerStep[] = [];
  for (const [i, p] of pres.entries()) {
    if (p.type === "ByteLevel") {
      if (p.add_prefix_space === true) out.push({ type: "prefix_space" });
      if (p.use_regex !== false) {
        out.push({
          type: "split",
          pattern: PRETOKENIZE_PATTERNS.gpt2,
          behavior: "Isolated",
          invert: false,
        });
      }
      continue;
    }
    if (p.type !== "Split") {
      throw new FormatError(
        file,
        `pre_tokenizer ${JSON.stringify(p.type)} is not supported with ByteLevel ` +
          `(supported: Split, ByteLevel)`,
      );
    }
    const re = patternOf(p.pattern);
    const behavior = p.behavior ?? "Isolated";
    if (re === undefined || !SPLIT_BEHAVIORS.includes(behavior as SplitBehavior)) {
      throw new FormatError(
        file,
        `pre_tokenizer step ${i} (Split) needs a pattern {String} or {Regex} and a behavior ` +
          `among ${SPLIT_BEHAVIORS.join(", ")}`,
      );
    }
    const pattern = isObj(p.pattern) && typeof p.pattern.String === "string"
      ? re.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
      : re;
    const step: PreTokenizerStep = {
      type: "split",
      pattern,
      behavior: behavior as SplitBehavior,
      invert: p.invert === true,
    };
    try {
      new PreTokenizer({ steps: [step] });
    } catch (e) {
      throw new FormatError(
        file,
        `pre_tokenizer Split regex is not usable: ${(e as Error).message.replace(/\n/g, " ")}`,
      );
    }
    out.push(step);
  }
  return normalize === undefined ? { steps: out } : { normalize, steps: out };
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
 * @returns A {@linkcode TiktokenTokenizer} (byte-level BPE; normalization, Split steps and
 *   ByteLevel's prefix space carried in its pre-tokenizer) or
 *   {@linkcode SentencePieceTokenizer} (SentencePiece-style BPE).
 * @throws {FormatError} naming `file` and the field for anything unsupported or malformed:
 *   a model type other than BPE, an unknown normalizer / pre-tokenizer step, an invalid or
 *   unsupported Split regex, a vocabulary that is neither byte-level nor `▁`-based,
 *   `added_tokens` that is not a list, an id outside [0, vocab entries + added tokens).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BYTE_TO_UNICODE } from "./byte_level.ts";
 * import { parseHfTokenizer } from "./hf_tokenizer.ts";
 * // A byte-level BPE tokenizer.json: 256 byte tokens, one merge ("h" + "i"), one special.
 * const vocab: Record<string, number> = {};
 * BYTE_TO_UNICODE.forEach((u, b) => (vocab[u] = b));
 * vocab["hi"] = 256;
 * const tok = parseHfTokenizer({
 *   model: { type: "BPE", vocab, merges: ["h i"] },
 *   pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, use_regex: true },
 *   added_tokens: [{ id: 257, content: "<|end|>", special: true }],
 * }, "tokenizer.json");
 * assert.deepEqual(tok.encode("hi<|end|>"), [256, 257]);
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

  // Vocabulary, index = id; added tokens may extend past it. Ids must be dense: each is
  // bounded by the number of entries (a sparse id such as 2^31 would make a huge array).
  const vocabEntries = Object.entries(model.vocab);
  const rawAdded = json.added_tokens ?? [];
  if (!Array.isArray(rawAdded)) {
    throw new FormatError(
      file,
      `field 'added_tokens' must be a list of {id, content}, got ${describeJson(rawAdded)}`,
    );
  }
  const idLimit = vocabEntries.length + rawAdded.length;
  const checkId = (id: unknown, where: string): number => {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= idLimit) {
      throw new FormatError(
        file,
        `${where} is ${describeJson(id)}; expected an integer id in [0, ${idLimit}) ` +
          `(the vocabulary has ${vocabEntries.length} entries and ${rawAdded.length} added tokens)`,
      );
    }
    return id;
  };
  const pieces: string[] = [];
  for (const [piece, id] of vocabEntries) {
    pieces[checkId(id, `model.vocab[${JSON.stringify(piece)}]`)] = piece;
  }
  const added: { id: number; content: string; special: boolean }[] = [];
  for (const [i, t] of rawAdded.entries()) {
    if (!isObj(t) || typeof t.content !== "string") {
      throw new FormatError(file, `added_tokens[${i}] needs a numeric 'id' and string 'content'`);
    }
    added.push({
      id: checkId(t.id, `added_tokens[${i}].id`),
      content: t.content,
      special: t.special !== false,
    });
  }
  const idOf = (text: string | undefined): number | null => {
    if (text === undefined) return null;
    const a = added.find((t) => t.content === text);
    if (a) return a.id;
    const v = Object.hasOwn(model.vocab as Json, text) ? (model.vocab as Json)[text] : undefined;
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
      templateBos = ids.length > 0
        ? checkId(ids[0], `post_processor.special_tokens[${JSON.stringify(name)}].ids[0]`)
        : idOf(name);
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
    const specials = new Map<string, number>();
    const nonSpecial = new Map<string, number>();
    for (const t of added) (t.special ? specials : nonSpecial).set(t.content, t.id);
    return TiktokenTokenizer.fromByteLevelBpe(pieces, specials, byteLevelSpec(norms, pres, file), {
      bosId,
      eosIds,
      addBos,
      added: nonSpecial,
      source: file,
      ...(config.chatTemplate !== undefined ? { chatTemplate: config.chatTemplate } : {}),
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
  let stat: Deno.FileInfo | null = null;
  try {
    stat = await Deno.stat(path);
  } catch {
    // checkRegularFile below says what is wrong with the path.
  }
  if (stat?.isDirectory) {
    dir = path.replace(/\/+$/, "") || "/";
    tokFile = `${dir}/tokenizer.json`;
    if (!(await optionalFile(tokFile, "tokenizer file"))) return null;
  } else {
    await checkRegularFile(path, "tokenizer file");
    tokFile = path;
    const slash = path.lastIndexOf("/");
    dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  }
  const cfgFile = `${dir}/tokenizer_config.json`;
  const config = (await optionalFile(cfgFile, "tokenizer config"))
    ? parseHfTokenizerConfig(await readTokenizerJson(cfgFile, "tokenizer config"), cfgFile)
    : {};
  const jinja = `${dir}/chat_template.jinja`;
  if (await optionalFile(jinja, "chat template")) {
    config.chatTemplate = await readTokenizerText(jinja, "chat template");
  }
  return parseHfTokenizer(await readTokenizerJson(tokFile), tokFile, config);
}
