/**
 * The gollm `.tiktoken` file: standard tiktoken rank lines plus directives, read and
 * written as plain data (the tokenizer itself is tokenizers/tiktoken.ts).
 *
 * ```text
 * <base64 bytes> <rank>          a mergeable token (tiktoken `load.py` format)
 * <text> <id>                    a special token whose text is not base64 (`<|eos|> 4097`)
 * #special <base64 text> <id>    a special token (any text: spaces, base64-like, empty)
 * #added <base64 text> <id>      a non-special added token: always matched in input text
 * #literal <base64 bytes> <id>   a vocabulary piece that is not byte-level text: decoded as
 *                                these bytes, never produced by encode (GGUF oddities)
 * #pattern <regex>               a pre-tokenizer split, behaviour Isolated
 * #split <behavior> <invert> <regex>   a split with an HF behaviour (Removed, Isolated,
 *                                MergedWithPrevious, MergedWithNext, Contiguous), invert
 *                                true|false
 * #prefix_space                  prepend a space to a piece that lacks one (ByteLevel
 *                                add_prefix_space)
 * #pretokenizer none             no pre-tokenizer steps (each segment is one piece)
 * #normalize NFC|NFD|NFKC|NFKD   Unicode normalization of input text
 * #bos <id>|none, #eos <id> ..., #add_bos true|false
 * # comment
 * ```
 *
 * Pre-tokenizer directives apply in file order; a file with none gets GPT-2's pattern.
 * Follows openai/tiktoken `tiktoken/load.py` for the rank lines.
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

/** Everything a `.tiktoken` file holds. */
export interface TiktokenFileContents {
  /** Mergeable token bytes indexed by rank (holes allowed). */
  ranks: (Uint8Array | undefined)[];
  /** Special tokens, text → id (matched in input only when asked for). */
  specials: Map<string, number>;
  /** Non-special added tokens, text → id (always matched). */
  added: Map<string, number>;
  /** Pieces that decode to these bytes but are never produced, id → bytes. */
  literals: Map<number, Uint8Array>;
  /** Normalization and pre-tokenizer steps. */
  preTokenizer: PreTokenizerSpec;
  /** BOS id (null: none); undefined: inferred from the special names. */
  bosId?: number | null;
  /** EOS ids; undefined: inferred. */
  eosIds?: number[];
  /** Whether encode adds BOS; undefined: whenever there is a BOS. */
  addBos?: boolean;
}

const NORMAL_FORMS: readonly NormalizationForm[] = ["NFC", "NFD", "NFKC", "NFKD"];

/** Ids are below 2^24 (tokenizers/bpe.ts MAX_RANK + 1). */
const MAX_ID = 1 << 24;

/** Canonical base64 (the empty string included). */
export const BASE64_RE: RegExp = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes base64 to bytes. */
export function base64ToBytes(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Encodes bytes as base64. */
export function bytesToBase64(b: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    bin += String.fromCharCode(...b.subarray(i, Math.min(b.length, i + 0x8000)));
  }
  return btoa(bin);
}

/**
 * Parses the text of a `.tiktoken` file (format in the module doc).
 *
 * @param text File contents.
 * @param file File name for error messages.
 * @returns The ranks, specials, added tokens, pre-tokenizer and BOS/EOS settings.
 * @throws {FormatError} naming the file and line for a malformed line, a duplicate id, or an
 *   invalid or unsupported regex.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTiktokenText } from "./tiktoken_file.ts";
 * const c = parseTiktokenText("YQ== 0\n#normalize NFC\n#added IHg= 5\n<|eos|> 6\n", "t.tiktoken");
 * assert.deepEqual([...c.ranks[0]!], [97]);
 * assert.equal(c.preTokenizer.normalize, "NFC");
 * assert.deepEqual([...c.added], [[" x", 5]]);
 * assert.deepEqual([...c.specials], [["<|eos|>", 6]]);
 * ```
 */
export function parseTiktokenText(text: string, file: string): TiktokenFileContents {
  const out: TiktokenFileContents = {
    ranks: [],
    specials: new Map(),
    added: new Map(),
    literals: new Map(),
    preTokenizer: { steps: [] },
  };
  const steps: PreTokenizerStep[] = [];
  let sawSteps = false;
  const used = new Set<number>();
  const fail = (lineNo: number, what: string): never => {
    throw new FormatError(file, `line ${lineNo}: ${what}`);
  };
  const parseId = (s: string, lineNo: number): number => {
    if (!/^\d+$/.test(s)) fail(lineNo, `expected a non-negative integer id, got '${s}'`);
    const id = Number(s);
    if (id >= MAX_ID) fail(lineNo, `id ${s} is too large (ids are below ${MAX_ID})`);
    return id;
  };
  const claim = (id: number, lineNo: number) => {
    if (used.has(id)) fail(lineNo, `id ${id} is used twice`);
    used.add(id);
  };
  const addStep = (step: PreTokenizerStep, lineNo: number) => {
    try {
      new PreTokenizer({ steps: [step] });
    } catch (e) {
      fail(lineNo, `pattern is not usable: ${(e as Error).message}`);
    }
    steps.push(step);
    sawSteps = true;
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
          addStep({ type: "split", pattern: rest, behavior: "Isolated", invert: false }, lineNo);
          break;
        case "#split": {
          const m = /^(\w+) (true|false) (.*)$/.exec(rest);
          if (!m || !SPLIT_BEHAVIORS.includes(m[1] as SplitBehavior)) {
            fail(
              lineNo,
              `expected '#split <${SPLIT_BEHAVIORS.join("|")}> <true|false> <regex>'`,
            );
          }
          addStep({
            type: "split",
            pattern: m![3],
            behavior: m![1] as SplitBehavior,
            invert: m![2] === "true",
          }, lineNo);
          break;
        }
        case "#prefix_space":
          steps.push({ type: "prefix_space" });
          sawSteps = true;
          break;
        case "#pretokenizer":
          if (rest !== "none") fail(lineNo, "expected '#pretokenizer none'");
          sawSteps = true;
          break;
        case "#normalize":
          if (!NORMAL_FORMS.includes(rest as NormalizationForm)) {
            fail(lineNo, `#normalize must be one of ${NORMAL_FORMS.join(", ")}, got '${rest}'`);
          }
          out.preTokenizer = { ...out.preTokenizer, normalize: rest as NormalizationForm };
          break;
        case "#special":
        case "#added": {
          const m = /^(\S*) (\d+)$/.exec(rest);
          if (!m || !BASE64_RE.test(m[1])) fail(lineNo, `expected '${directive} <base64> <id>'`);
          const id = parseId(m![2], lineNo);
          claim(id, lineNo);
          const t = new TextDecoder().decode(base64ToBytes(m![1]));
          (directive === "#special" ? out.specials : out.added).set(t, id);
          break;
        }
        case "#literal": {
          const m = /^(\S*) (\d+)$/.exec(rest);
          if (!m || !BASE64_RE.test(m[1])) fail(lineNo, "expected '#literal <base64> <id>'");
          const id = parseId(m![2], lineNo);
          claim(id, lineNo);
          out.literals.set(id, base64ToBytes(m![1]));
          break;
        }
        case "#bos":
          out.bosId = rest === "none" ? null : parseId(rest, lineNo);
          break;
        case "#eos":
          out.eosIds = rest === "" ? [] : rest.split(" ").map((s) => parseId(s, lineNo));
          break;
        case "#add_bos":
          if (rest !== "true" && rest !== "false") fail(lineNo, "#add_bos must be true or false");
          out.addBos = rest === "true";
          break;
        default:
          fail(
            lineNo,
            `unknown directive '${directive}' (known: #pattern, #split, #prefix_space, ` +
              `#pretokenizer, #normalize, #special, #added, #literal, #bos, #eos, #add_bos; comments ` +
              `start with '# ')`,
          );
      }
      continue;
    }
    const sp = line.lastIndexOf(" ");
    if (sp <= 0) {
      fail(
        lineNo,
        `expected '<base64 token> <rank>' or '<special text> <id>', got ` +
          JSON.stringify(line.slice(0, 60)),
      );
    }
    const tokenText = line.slice(0, sp);
    const id = parseId(line.slice(sp + 1), lineNo);
    claim(id, lineNo);
    if (BASE64_RE.test(tokenText)) out.ranks[id] = base64ToBytes(tokenText);
    else out.specials.set(tokenText, id);
  }
  out.preTokenizer = {
    ...out.preTokenizer,
    steps: sawSteps ? steps : [{
      type: "split",
      pattern: PRETOKENIZE_PATTERNS.gpt2,
      behavior: "Isolated",
      invert: false,
    }],
  };
  return out;
}

/** Lines of the pre-tokenizer directives for a spec. */
function preTokenizerLines(spec: PreTokenizerSpec): string[] {
  const lines: string[] = [];
  if (spec.steps.length === 0) lines.push("#pretokenizer none");
  for (const s of spec.steps) {
    if (s.type === "prefix_space") lines.push("#prefix_space");
    else if (s.behavior === "Isolated" && !s.invert) lines.push(`#pattern ${s.pattern}`);
    else lines.push(`#split ${s.behavior} ${s.invert} ${s.pattern}`);
  }
  if (spec.normalize !== undefined) lines.push(`#normalize ${spec.normalize}`);
  return lines;
}

/**
 * One line for a special or added token: `<text> <id>` when the text reads unambiguously
 * as a special, else the base64 directive.
 */
function tokenLine(text: string, id: number, special: boolean): string {
  const plain = special && text.length > 0 && !BASE64_RE.test(text) && !/\s/.test(text) &&
    !text.startsWith("#");
  if (plain) return `${text} ${id}`;
  return `${special ? "#special" : "#added"} ${
    bytesToBase64(new TextEncoder().encode(text))
  } ${id}`;
}

/**
 * Writes a `.tiktoken` file (the inverse of {@linkcode parseTiktokenText}): pre-tokenizer
 * directives, rank lines in id order, specials and added tokens, then `#bos` / `#eos` /
 * `#add_bos` for the fields that are set.
 *
 * @param c The contents.
 * @returns The file text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTiktokenText, parseTiktokenText } from "./tiktoken_file.ts";
 * const text = formatTiktokenText({
 *   ranks: [Uint8Array.of(97)], specials: new Map([["<|eos|>", 1]]), added: new Map(), literals: new Map(),
 *   preTokenizer: { steps: [], normalize: "NFC" },
 * });
 * assert.equal(text, "#pretokenizer none\n#normalize NFC\nYQ== 0\n<|eos|> 1\n");
 * assert.deepEqual(parseTiktokenText(text, "x").preTokenizer, { steps: [], normalize: "NFC" });
 * ```
 */
export function formatTiktokenText(c: TiktokenFileContents): string {
  const lines = preTokenizerLines(c.preTokenizer);
  for (let id = 0; id < c.ranks.length; id++) {
    const b = c.ranks[id];
    if (b && b.length > 0) lines.push(`${bytesToBase64(b)} ${id}`);
  }
  const extra: [number, string][] = [];
  for (const [t, id] of c.specials) extra.push([id, tokenLine(t, id, true)]);
  for (const [t, id] of c.added) extra.push([id, tokenLine(t, id, false)]);
  for (const [id, b] of c.literals) extra.push([id, `#literal ${bytesToBase64(b)} ${id}`]);
  extra.sort((a, b) => a[0] - b[0]);
  for (const [, l] of extra) lines.push(l);
  if (c.bosId !== undefined) lines.push(`#bos ${c.bosId ?? "none"}`);
  if (c.eosIds !== undefined) lines.push(`#eos ${c.eosIds.join(" ")}`.trimEnd());
  if (c.addBos !== undefined) lines.push(`#add_bos ${c.addBos}`);
  return lines.join("\n") + "\n";
}
