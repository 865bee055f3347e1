/**
 * JSON mode (OpenAI's `response_format: {"type": "json_object"}`, llama.cpp's JSON grammar):
 * a byte-level recogniser of JSON (RFC 8259) that says which tokens may come next, so that
 * sampling only ever picks a token whose bytes keep the text a prefix of a JSON object, and
 * generation ends when the object is complete.
 *
 * - {@linkcode JsonRecognizer}: a pushdown automaton over UTF-8 bytes, one state per lexical
 *   position and a stack of open containers. `push(byte)` says whether the byte can follow;
 *   a number ends at the first byte that cannot continue it, which is then read in the
 *   enclosing context. Inside strings any byte ≥ 0x20 other than `"` and `\` is content
 *   (so multi-byte UTF-8 passes through as the tokenizer splits it); escapes are `\"`,
 *   `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t` and `\uXXXX`.
 * - {@linkcode JsonConstraint}: the recogniser over a tokenizer's tokens (their raw bytes,
 *   `Tokenizer.tokenBytes`). `mask(logits)` sets the logit of every token that cannot come
 *   next to -Infinity (EOS and byte-less tokens too: the object ends generation by itself,
 *   and EOS is allowed only where a top-level number could end the text);
 *   `advance(id)` reads the chosen token. It runs any {@linkcode ByteRecognizer}: JSON
 *   mode's, or a schema's (runtime/json_schema_recognizer.ts).
 *
 * @module
 */
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import {
  NUMBER_END,
  NUMBER_REJECT,
  numberComplete,
  numberStart,
  numberStep,
} from "./json_number.ts";

/** Lexical positions of {@linkcode JsonRecognizer}. */
const enum S {
  /** A value must start here (after `:`, `,` in an array, or at the top). */
  Value,
  /** After `{`: a key or `}`. */
  KeyOrEnd,
  /** After `,` in an object: a key. */
  Key,
  /** After a key: `:`. */
  Colon,
  /** After `[`: a value or `]`. */
  ValueOrEnd,
  /** After a value inside a container: `,` or the container's end. */
  CommaOrEnd,
  /** Inside a string. */
  Str,
  /** After `\` in a string. */
  Esc,
  /** Inside `\uXXXX`: `hex` digits left. */
  Hex,
  /** Inside a number (json_number.ts): its position in `count`. */
  Num,
  /** Inside `true`, `false` or `null`: `literal[litPos]` next. */
  Lit,
  /** The top-level value is complete: only whitespace. */
  Done,
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const isHex = (b: number) => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]); // " \ / b f n r t
const LITERALS: Record<number, Uint8Array> = {
  0x74: new TextEncoder().encode("true"),
  0x66: new TextEncoder().encode("false"),
  0x6e: new TextEncoder().encode("null"),
};
/** Most containers open at once (deeper input is refused, as JSON.parse would overflow). */
export const JSON_MAX_DEPTH = 128;

/**
 * What {@linkcode JsonConstraint} needs of a byte-level recogniser: JSON mode's
 * {@linkcode JsonRecognizer}, or a schema's (`JsonSchemaRecognizer`).
 */
export interface ByteRecognizer {
  /** A copy in the same state. */
  clone(): ByteRecognizer;
  /**
   * Puts this recogniser in `other`'s state.
   * @param other A recogniser of the same kind (a clone of this one).
   */
  copyFrom(other: ByteRecognizer): ByteRecognizer;
  /**
   * Reads bytes.
   * @param bytes UTF-8 bytes.
   * @returns Whether every byte could follow (false: the state is then undefined).
   */
  pushAll(bytes: ArrayLike<number>): boolean;
  /**
   * A key of the state: equal keys accept the same byte strings of up to `tail` bytes.
   * @param tail The longest byte string that will be tried.
   */
  signature(tail: number): string;
  /** Whether a whole document has been read (generation stops). */
  readonly complete: boolean;
  /** Whether the text is whole but for a top-level number that could go on (EOS may end it). */
  readonly completeIfEnded: boolean;
}

/**
 * A JSON prefix recogniser over bytes (see the module doc). Copy it with `clone()` to try
 * bytes without committing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonRecognizer } from "./json_constraint.ts";
 * const r = new JsonRecognizer({ object: true });
 * assert.ok(r.pushAll(new TextEncoder().encode('{"a": [1, 2.5e3, "x\\n"]')));
 * assert.equal(r.complete, false);
 * assert.ok(r.pushAll(new TextEncoder().encode("}")));
 * assert.equal(r.complete, true);
 * assert.equal(new JsonRecognizer({ object: true }).push(0x5b), false); // '[': not an object
 * ```
 */
export class JsonRecognizer implements ByteRecognizer {
  #state: S = S.Value;
  /** Open containers, innermost last: 0x7b `{` or 0x5b `[`. */
  #stack: number[] = [];
  /** Whether the string being read is an object key. */
  #key = false;
  /** `\u` hex digits left, or the literal's next index. */
  #count = 0;
  #literal: Uint8Array = LITERALS[0x74];
  /** The top-level value must be an object (JSON mode). */
  readonly #object: boolean;
  /** Whitespace limited as llama.cpp's json.gbnf limits it (see the constructor). */
  readonly #tight: boolean;
  /** Whitespace bytes in the current run between tokens, and whether it held a newline. */
  #ws = 0;
  #newline = false;

  /**
   * Creates a recogniser at the start of a document.
   *
   * @param options `object`: the top-level value must be an object (default false: any
   *   value). `tightWhitespace`: none before the top-level value and, between tokens, a run
   *   of at most one newline and 20 spaces or tabs (llama.cpp's grammars/json.gbnf `ws`), so
   *   that a model cannot fill its reply with blank lines (default false: any whitespace,
   *   as JSON.parse takes).
   */
  constructor(options: { object?: boolean; tightWhitespace?: boolean } = {}) {
    this.#object = options.object ?? false;
    this.#tight = options.tightWhitespace ?? false;
  }

  /** A copy in the same state. */
  clone(): JsonRecognizer {
    const r = new JsonRecognizer({ object: this.#object, tightWhitespace: this.#tight });
    return r.copyFrom(this);
  }

  /**
   * Puts this recogniser in `other`'s state (no allocation once its stack is as deep).
   *
   * @param other A recogniser of the same kind.
   * @returns This recogniser.
   */
  copyFrom(other: JsonRecognizer): this {
    this.#state = other.#state;
    this.#stack.length = other.#stack.length;
    for (let i = 0; i < other.#stack.length; i++) this.#stack[i] = other.#stack[i];
    this.#key = other.#key;
    this.#count = other.#count;
    this.#literal = other.#literal;
    this.#ws = other.#ws;
    this.#newline = other.#newline;
    return this;
  }

  /**
   * A key of everything that decides which byte strings of at most `tail` bytes this
   * recogniser accepts: the lexical state, the string/escape/literal counters, the
   * whitespace run, the depth, and the innermost `tail` containers (a string of `tail`
   * bytes closes at most that many). Equal keys accept the same strings.
   *
   * @param tail The longest byte string that will be tried.
   * @returns The key.
   */
  signature(tail: number): string {
    const st = this.#stack;
    const inner = String.fromCharCode(...st.slice(Math.max(0, st.length - tail)));
    return `${this.#state},${+this.#key},${this.#count},${this.#literal[0]},${this.#ws},` +
      `${+this.#newline},${st.length},${inner}`;
  }

  /** Whitespace between tokens: within the limits (tight), else always. */
  #space(b: number): boolean {
    if (!this.#tight) return true;
    if (this.#stack.length === 0) return false; // none around the top-level value
    if (b === 0x0a) {
      if (this.#newline) return false;
      this.#newline = true;
    } else if (b === 0x0d) return false;
    return ++this.#ws <= 21; // a newline and 20 spaces or tabs
  }

  /** Whether a whole top-level value has been read (only whitespace may follow). */
  get complete(): boolean {
    return this.#state === S.Done;
  }

  /**
   * Reads bytes.
   *
   * @param bytes UTF-8 bytes.
   * @returns Whether every byte could follow (false: the state is then undefined; use a clone).
   */
  pushAll(bytes: ArrayLike<number>): boolean {
    for (let i = 0; i < bytes.length; i++) if (!this.push(bytes[i])) return false;
    return true;
  }

  /**
   * Reads one byte.
   *
   * @param b A byte (0..255).
   * @returns Whether it can follow what was read (false: the state is then undefined).
   */
  push(b: number): boolean {
    if (this.#ws > 0 && !WS.has(b)) {
      this.#ws = 0;
      this.#newline = false;
    }
    switch (this.#state) {
      case S.Value:
        if (WS.has(b)) return this.#space(b);
        return this.#startValue(b);
      case S.ValueOrEnd:
        if (WS.has(b)) return this.#space(b);
        if (b === 0x5d) return this.#close(0x5b);
        return this.#startValue(b);
      case S.KeyOrEnd:
        if (WS.has(b)) return this.#space(b);
        if (b === 0x7d) return this.#close(0x7b);
        return this.#startKey(b);
      case S.Key:
        if (WS.has(b)) return this.#space(b);
        return this.#startKey(b);
      case S.Colon:
        if (WS.has(b)) return this.#space(b);
        if (b !== 0x3a) return false;
        this.#state = S.Value;
        return true;
      case S.CommaOrEnd: {
        if (WS.has(b)) return this.#space(b);
        const top = this.#stack[this.#stack.length - 1];
        if (b === 0x2c) {
          this.#state = top === 0x7b ? S.Key : S.Value;
          return true;
        }
        if ((b === 0x7d && top === 0x7b) || (b === 0x5d && top === 0x5b)) return this.#close(top);
        return false;
      }
      case S.Str:
        if (b === 0x22) {
          if (this.#key) {
            this.#key = false;
            this.#state = S.Colon;
            return true;
          }
          return this.#endValue();
        }
        if (b === 0x5c) {
          this.#state = S.Esc;
          return true;
        }
        return b >= 0x20; // control characters must be escaped
      case S.Esc:
        if (b === 0x75) {
          this.#state = S.Hex;
          this.#count = 4;
          return true;
        }
        if (!ESCAPES.has(b)) return false;
        this.#state = S.Str;
        return true;
      case S.Hex:
        if (!isHex(b)) return false;
        if (--this.#count === 0) this.#state = S.Str;
        return true;
      case S.Num: {
        const next = numberStep(this.#count, b);
        if (next === NUMBER_REJECT) return false;
        if (next === NUMBER_END) return this.#endNumber(b);
        this.#count = next;
        return true;
      }
      case S.Lit:
        if (b !== this.#literal[this.#count]) return false;
        if (++this.#count === this.#literal.length) return this.#endValue();
        return true;
      case S.Done:
        return WS.has(b) && this.#space(b);
    }
  }

  /** The first byte of a value. */
  #startValue(b: number): boolean {
    const top = this.#stack.length === 0;
    if (top && this.#object && b !== 0x7b) return false;
    if (b === 0x7b || b === 0x5b) {
      if (this.#stack.length >= JSON_MAX_DEPTH) return false;
      this.#stack.push(b);
      this.#state = b === 0x7b ? S.KeyOrEnd : S.ValueOrEnd;
      return true;
    }
    if (b === 0x22) {
      this.#key = false;
      this.#state = S.Str;
      return true;
    }
    const num = numberStart(b);
    if (num !== NUMBER_REJECT) {
      this.#state = S.Num;
      this.#count = num;
    } else if (LITERALS[b]) {
      this.#literal = LITERALS[b];
      this.#count = 1;
      this.#state = S.Lit;
    } else return false;
    return true;
  }

  /** The opening quote of a key. */
  #startKey(b: number): boolean {
    if (b !== 0x22) return false;
    this.#key = true;
    this.#state = S.Str;
    return true;
  }

  /** Closes the innermost container (`open` is its opening byte). */
  #close(open: number): boolean {
    if (this.#stack.pop() !== open) return false;
    return this.#endValue();
  }

  /** A value ended: back in its container, or done at the top. */
  #endValue(): boolean {
    this.#state = this.#stack.length === 0 ? S.Done : S.CommaOrEnd;
    return true;
  }

  /** A number ended at byte `b`, which the enclosing context then reads. */
  #endNumber(b: number): boolean {
    this.#endValue();
    return this.push(b);
  }

  /**
   * Whether the text read so far is a whole value except for a number that could still
   * go on (`{"a": 1` is not; `7` at the top is, as JSON.parse reads it).
   */
  get completeIfEnded(): boolean {
    if (this.#state === S.Done) return true;
    return this.#state === S.Num && numberComplete(this.#count) && this.#stack.length === 0;
  }
}

/**
 * A rule on which tokens may come next (JSON mode): the server's sequences mask the logits
 * with it before sampling and end the reply when it is complete.
 */
export interface TokenConstraint {
  /**
   * Sets the logit of every token that cannot come next to -Infinity.
   * @param logits `(vocab_size)` logits, changed in place.
   * @returns How many tokens may come next.
   */
  mask(logits: Float32Array): number;
  /**
   * Reads the chosen token.
   * @param id A token `mask` allowed.
   */
  advance(id: number): void;
  /** Whether the text is complete (the reply ends). */
  readonly complete: boolean;
}

/**
 * JSON mode (or a schema) over a tokenizer: which tokens may come next, as a mask on the
 * logits (see the module doc). Build one per request; the token bytes are shared through
 * `cache`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { JsonConstraint } from "./json_constraint.ts";
 * import { loadCheckpointTokenizer } from "../formats/load.ts";
 * const tok = (await loadCheckpointTokenizer("models/default"))!;
 * const c = new JsonConstraint(tok);
 * const logits = new Float32Array(tok.vocabSize);
 * c.mask(logits);
 * const open = tok.encode("{", { bos: false })[0];
 * assert.equal(logits[open], 0); // '{' may start the object
 * assert.equal(logits[tok.encode("a", { bos: false })[0]], -Infinity);
 * c.advance(open);
 * assert.equal(c.complete, false);
 * ```
 */
export class JsonConstraint implements TokenConstraint {
  #r: ByteRecognizer;
  #try: ByteRecognizer; // scratch: one token read
  #bytes: readonly Uint8Array[];
  /** EOS ids: allowed only where the text could end (`completeIfEnded`). */
  #eos: number[];
  /** An EOS was read: the text ended. */
  #ended = false;
  /** The longest token's bytes (for the state's signature). */
  #longest: number;
  /** Masks by state signature (most steps inside a string repeat one): 1 = allowed. */
  #masks: Map<string, Uint8Array>;

  /**
   * Creates the constraint at the start of the reply.
   *
   * @param tokenizer The model's tokenizer (its `tokenBytes`).
   * @param cache Token bytes by id, shared between requests (filled here when empty).
   * @param masks Masks by state, shared between requests of one tokenizer (up to 256 kept);
   *   a schema's states are keyed by its hash, so requests of any schemas may share it.
   * @param recognizer The recogniser at the start of the reply (default JSON mode's: an
   *   object, tight whitespace); e.g. `new JsonSchemaRecognizer(compileJsonSchema(s))`.
   */
  constructor(
    tokenizer: Tokenizer,
    cache: Uint8Array[] = [],
    masks: Map<string, Uint8Array> = new Map(),
    recognizer: ByteRecognizer = new JsonRecognizer({ object: true, tightWhitespace: true }),
  ) {
    this.#r = recognizer;
    this.#try = recognizer.clone();
    this.#eos = [...new Set(tokenizer.eosIds)].filter((id) => id < tokenizer.vocabSize);
    if (cache.length !== tokenizer.vocabSize) {
      cache.length = 0;
      const eos = new Set(tokenizer.eosIds);
      for (let id = 0; id < tokenizer.vocabSize; id++) {
        // EOS and byte-less tokens (BOS) never come: the object's end ends the reply.
        cache.push(eos.has(id) || id === tokenizer.bosId ? EMPTY : tokenizer.tokenBytes(id));
      }
    }
    this.#bytes = cache;
    this.#longest = cache.reduce((a, b) => Math.max(a, b.length), 0);
    this.#masks = masks;
  }

  /** Whether the document is complete (generation should stop). */
  get complete(): boolean {
    return this.#ended || this.#r.complete;
  }

  /**
   * Sets the logit of every token that cannot come next to -Infinity.
   *
   * @param logits `(vocab_size)` logits, changed in place (pass a copy of the arena's).
   * @returns How many tokens may come next.
   */
  mask(logits: Float32Array): number {
    const key = this.#r.signature(this.#longest);
    let ok = this.#masks.get(key);
    if (!ok) {
      ok = new Uint8Array(this.#bytes.length);
      for (let id = 0; id < ok.length; id++) {
        const b = this.#bytes[id];
        ok[id] = b.length > 0 && this.#try.copyFrom(this.#r).pushAll(b) ? 1 : 0;
      }
      if (this.#masks.size >= MASK_CACHE) this.#masks.delete(this.#masks.keys().next().value!);
      this.#masks.set(key, ok);
    }
    // EOS may end a top-level number (a schema's `{"type": "integer"}`), nothing else.
    const eos = this.#r.completeIfEnded && !this.#r.complete
      ? this.#eos.map((id) => logits[id])
      : [];
    let allowed = eos.length;
    const n = Math.min(logits.length, ok.length);
    for (let id = 0; id < n; id++) {
      if (ok[id]) allowed++;
      else logits[id] = -Infinity;
    }
    for (let id = n; id < logits.length; id++) logits[id] = -Infinity;
    eos.forEach((x, i) => (logits[this.#eos[i]] = x));
    return allowed;
  }

  /**
   * Reads the chosen token.
   *
   * @param id A token `mask` allowed.
   * @throws {RangeError} when its bytes cannot follow (it was not allowed).
   */
  advance(id: number): void {
    if (this.#eos.includes(id) && this.#r.completeIfEnded && !this.#r.complete) {
      this.#ended = true;
      return;
    }
    if (!this.#r.pushAll(this.#bytes[id] ?? EMPTY) || (this.#bytes[id]?.length ?? 0) === 0) {
      throw new RangeError(`JSON mode: token ${id} cannot follow the text so far`);
    }
  }
}

const EMPTY = new Uint8Array(0);
/** Masks kept per constraint cache (the oldest goes first). */
const MASK_CACHE = 256;
