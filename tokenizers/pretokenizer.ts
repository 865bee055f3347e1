/**
 * Pre-tokenization: how text is cut into pieces before byte-level BPE merges each piece.
 *
 * A {@linkcode PreTokenizerSpec} is an optional Unicode normalization (HF `NFC`, `NFD`,
 * `NFKC`, `NFKD` normalizers) and a list of steps, applied in order to every piece the
 * previous step produced, as HF tokenizers' `Sequence` pre-tokenizer does:
 * - `split`: the regex's matches and the text between them become pieces according to the
 *   HF `SplitDelimiterBehavior` (`Isolated` keeps both, `Removed` drops the matches,
 *   `MergedWithPrevious` / `MergedWithNext` glue a match to the neighbouring gap,
 *   `Contiguous` joins adjacent matches); `invert` swaps matches and gaps. Text no match
 *   covers is never dropped silently: it is a piece of its own (`Isolated`) unless the
 *   behaviour says otherwise. Follows `tokenizers/src/tokenizer/normalizer.rs` `split`.
 * - `prefix_space`: a space is prepended to a piece that does not start with one (HF
 *   `ByteLevel` `add_prefix_space`).
 *
 * Regexes use JavaScript `u`-flag syntax with `\s` meaning Unicode White_Space, as in
 * tiktoken, HF tokenizers and llama.cpp ({@linkcode unicodeWhitespacePattern}). The
 * patterns of known models ({@linkcode PRETOKENIZE_PATTERNS}, tiktoken's encodings, the
 * Llama-3 and Qwen2 tokenizer.json Split regexes) run on the JavaScript engine; any other
 * pattern, which may come from a file, runs on {@linkcode LinearRegex}, whose time is
 * linear in the text whatever the pattern (a backtracking engine can take exponential time
 * on a pattern such as `(a|a)*b`).
 *
 * @module
 */
import { LinearRegex } from "./regex_linear.ts";

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

/** Patterns verified to run in linear time on the JavaScript engine (the test suite and
 * `deno task bench:tokenizer` exercise them on adversarial text). */
const KNOWN_PATTERNS: ReadonlySet<string> = (() => {
  const tail = String
    .raw`|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  const ci = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
  const cs = "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)";
  const letters = String.raw`[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`;
  const lower = String.raw`[\p{Ll}\p{Lm}\p{Lo}\p{M}]`;
  const o200k = String.raw`[^\r\n\p{L}\p{N}]?${letters}*${lower}+${cs}?|` +
    String.raw`[^\r\n\p{L}\p{N}]?${letters}+${lower}*${cs}?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+` +
    String.raw`[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
  return new Set([
    ...Object.values(PRETOKENIZE_PATTERNS),
    ci + tail, // Llama-3 tokenizer.json
    cs + tail, // tiktoken cl100k_base
    ci + tail.replace(String.raw`\p{N}{1,3}`, String.raw`\p{N}`), // Qwen2 tokenizer.json
    o200k, // tiktoken o200k_base
    // GPT-2's pattern as gollm's trainer writes it (python/tokenizer.py GPT2_PATTERN).
    String.raw`'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`,
  ]);
})();

/** HF tokenizers' `SplitDelimiterBehavior`. */
export type SplitBehavior =
  | "Removed"
  | "Isolated"
  | "MergedWithPrevious"
  | "MergedWithNext"
  | "Contiguous";

/** The split behaviours, as spelled in tokenizer.json. */
export const SPLIT_BEHAVIORS: readonly SplitBehavior[] = [
  "Removed",
  "Isolated",
  "MergedWithPrevious",
  "MergedWithNext",
  "Contiguous",
];

/** One pre-tokenizer step (see the module doc). */
export type PreTokenizerStep =
  | { type: "split"; pattern: string; behavior: SplitBehavior; invert: boolean }
  | { type: "prefix_space" };

/** Unicode normalization forms a tokenizer may ask for. */
export type NormalizationForm = "NFC" | "NFD" | "NFKC" | "NFKD";

/** Normalization plus pre-tokenizer steps (see the module doc). */
export interface PreTokenizerSpec {
  /** Unicode normalization applied to each text segment first, or undefined for none. */
  normalize?: NormalizationForm;
  /** Steps, in order. No steps: the whole segment is one piece. */
  steps: readonly PreTokenizerStep[];
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
 * import assert from "node:assert/strict";
 * import { unicodeWhitespacePattern } from "./pretokenizer.ts";
 * assert.equal(
 *   unicodeWhitespacePattern(String.raw`\s+(?!\S)`),
 *   String.raw`\p{White_Space}+(?!\P{White_Space})`,
 * );
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

/** Finds successive matches: `scan(text, onMatch)` like `text.matchAll(/.../gu)`. */
interface Scanner {
  scan(text: string, onMatch: (start: number, end: number) => void): void;
}

/** JavaScript's engine: a sticky regex for back-to-back matches, a global one for gaps. */
class NativeScanner implements Scanner {
  #sticky: RegExp;
  #global: RegExp;
  constructor(source: string) {
    this.#sticky = new RegExp(source, "uy");
    this.#global = new RegExp(source, "gu");
  }
  scan(text: string, onMatch: (start: number, end: number) => void): void {
    const sticky = this.#sticky, global = this.#global;
    let pos = 0;
    while (pos <= text.length) {
      let start = pos, end: number;
      sticky.lastIndex = pos;
      if (sticky.test(text)) {
        end = sticky.lastIndex;
      } else {
        global.lastIndex = pos;
        const m = global.exec(text);
        if (!m) return;
        start = m.index;
        end = start + m[0].length;
      }
      onMatch(start, end);
      pos = end > start ? end : end + (text.codePointAt(end)! > 0xffff ? 2 : 1);
    }
  }
}

/**
 * Whether `pattern` runs on the JavaScript regex engine (a known model pattern) rather than
 * on {@linkcode LinearRegex}.
 *
 * @param pattern Regex source as written in the tokenizer (before the `\s` rewrite).
 * @returns true for the known patterns.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isKnownPattern, PRETOKENIZE_PATTERNS } from "./pretokenizer.ts";
 * assert.equal(isKnownPattern(PRETOKENIZE_PATTERNS.llama3), true);
 * assert.equal(isKnownPattern("(a|a)*b"), false);
 * ```
 */
export function isKnownPattern(pattern: string): boolean {
  return KNOWN_PATTERNS.has(pattern);
}

/**
 * Compiles a pattern for scanning: the JavaScript engine for a known pattern, else
 * {@linkcode LinearRegex}.
 *
 * @throws {SyntaxError} for an invalid regex.
 * @throws {PatternError} for a construct LinearRegex does not support.
 */
function compileScanner(pattern: string): Scanner {
  const source = unicodeWhitespacePattern(pattern);
  return isKnownPattern(pattern) ? new NativeScanner(source) : new LinearRegex(source);
}

type Span = [start: number, end: number, isMatch: boolean];

/** HF `split`: spans of matches and gaps → the pieces a behaviour keeps (may be empty). */
function applyBehavior(spans: Span[], behavior: SplitBehavior): [number, number][] {
  const out: [number, number][] = [];
  let previousMatch = false;
  switch (behavior) {
    case "Isolated":
      for (const [s, e] of spans) out.push([s, e]);
      return out;
    case "Removed":
      for (const [s, e, m] of spans) if (!m) out.push([s, e]);
      return out;
    case "MergedWithPrevious":
      for (const [s, e, m] of spans) {
        if (m && !previousMatch && out.length > 0) out[out.length - 1][1] = e;
        else out.push([s, e]);
        previousMatch = m;
      }
      return out;
    case "MergedWithNext":
      for (let k = spans.length - 1; k >= 0; k--) {
        const [s, e, m] = spans[k];
        if (m && !previousMatch && out.length > 0) out[out.length - 1][0] = s;
        else out.push([s, e]);
        previousMatch = m;
      }
      return out.reverse();
    case "Contiguous":
      for (const [s, e, m] of spans) {
        if (m === previousMatch && out.length > 0) out[out.length - 1][1] = e;
        else out.push([s, e]);
        previousMatch = m;
      }
      return out;
  }
}

/**
 * A compiled {@linkcode PreTokenizerSpec}: cuts a text segment into the pieces BPE merges.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PreTokenizer, PRETOKENIZE_PATTERNS } from "./pretokenizer.ts";
 * const pre = new PreTokenizer({
 *   steps: [{ type: "split", pattern: PRETOKENIZE_PATTERNS.gpt2, behavior: "Isolated", invert: false }],
 * });
 * assert.deepEqual(pre.pieces("Hello world!!"), ["Hello", " world", "!!"]);
 * const digits = new PreTokenizer({
 *   steps: [{ type: "split", pattern: "\\d+", behavior: "Isolated", invert: false }],
 * });
 * assert.deepEqual(digits.pieces("ab12cd"), ["ab", "12", "cd"]); // gaps are kept
 * ```
 */
export class PreTokenizer {
  /** The spec this was compiled from. */
  readonly spec: PreTokenizerSpec;
  #scanners: (Scanner | null)[];

  /**
   * Compiles every split pattern.
   *
   * @param spec Normalization and steps.
   * @throws {SyntaxError} for an invalid regex.
   * @throws {PatternError} for a regex construct that cannot run in linear time
   *   (backreferences, a repeated group that can match empty, a variable-length lookaround).
   */
  constructor(spec: PreTokenizerSpec) {
    this.spec = spec;
    this.#scanners = spec.steps.map((s) => s.type === "split" ? compileScanner(s.pattern) : null);
  }

  /**
   * Normalizes one segment (the text between added tokens) and calls `onPiece(s, start,
   * end)` for each non-empty piece `s.slice(start, end)`, in order.
   *
   * @param text The segment.
   * @param onPiece Receives a string and the bounds of one piece in it.
   */
  split(text: string, onPiece: (s: string, start: number, end: number) => void): void {
    const form = this.spec.normalize;
    if (form !== undefined) text = text.normalize(form);
    this.#step(0, text, 0, text.length, onPiece);
  }

  /**
   * The pieces of a segment, as strings (convenience form of {@linkcode PreTokenizer.split}).
   *
   * @param text The segment.
   * @returns Its pieces.
   */
  pieces(text: string): string[] {
    const out: string[] = [];
    this.split(text, (s, a, b) => out.push(s.slice(a, b)));
    return out;
  }

  #step(
    k: number,
    s: string,
    a: number,
    b: number,
    onPiece: (s: string, start: number, end: number) => void,
  ): void {
    if (a >= b) return;
    const steps = this.spec.steps;
    if (k === steps.length) {
      onPiece(s, a, b);
      return;
    }
    const step = steps[k];
    if (step.type === "prefix_space") {
      if (s.charCodeAt(a) === 0x20) this.#step(k + 1, s, a, b, onPiece);
      else {
        const t = " " + s.slice(a, b);
        this.#step(k + 1, t, 0, t.length, onPiece);
      }
      return;
    }
    if (a !== 0 || b !== s.length) {
      s = s.slice(a, b);
      a = 0;
      b = s.length;
    }
    const scanner = this.#scanners[k]!;
    if (step.behavior === "Isolated" && !step.invert) {
      let prev = 0;
      scanner.scan(s, (ms, me) => {
        if (ms > prev) this.#step(k + 1, s, prev, ms, onPiece);
        if (me > ms) this.#step(k + 1, s, ms, me, onPiece);
        prev = me;
      });
      if (prev < b) this.#step(k + 1, s, prev, b, onPiece);
      return;
    }
    const spans: Span[] = [];
    let prev = 0;
    scanner.scan(s, (ms, me) => {
      if (ms > prev) spans.push([prev, ms, step.invert]);
      spans.push([ms, me, !step.invert]);
      prev = me;
    });
    if (prev < b) spans.push([prev, b, step.invert]);
    for (const [ps, pe] of applyBehavior(spans, step.behavior)) {
      this.#step(k + 1, s, ps, pe, onPiece);
    }
  }
}
