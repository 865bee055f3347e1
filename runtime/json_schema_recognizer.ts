/**
 * JSON-schema structured outputs, the byte side: {@linkcode JsonSchemaRecognizer} accepts
 * exactly the JSON texts that a compiled schema (runtime/json_schema.ts) allows, byte by
 * byte, with JSON mode's whitespace limits (none around the top-level value; between tokens
 * a run of at most one newline and 20 spaces or tabs, llama.cpp's json.gbnf `ws`), so that
 * {@linkcode JsonConstraint} can mask the tokens that cannot continue it.
 *
 * Strings must be valid UTF-8 (a token that splits a character is taken when the rest can
 * follow), so that lengths count code points as a decoder sees them.
 *
 * The state is a set of threads (a choice such as `anyOf` or an optional property keeps one
 * per branch still alive); a thread is a stack of frames, innermost first: a value to
 * start, an object or array and how far it got, a `:` to read, a string, number or literal
 * being read. Frames are immutable, so copying the state copies a list, and the
 * signature (each thread's frames and whitespace run) decides everything that can follow.
 *
 * @module
 */
import type { ByteRecognizer } from "./json_constraint.ts";
import { JSON_MAX_DEPTH } from "./json_constraint.ts";
import type { CompiledJsonSchema, SchemaNode } from "./json_schema.ts";
import {
  NUMBER_END,
  NUMBER_REJECT,
  numberComplete,
  numberStart,
  numberStep,
} from "./json_number.ts";

/** Frame kinds. */
const enum F {
  /** A value of `node` starts here. */
  Value,
  /** Inside an object: `a` = the next declared property's index, `b` = a {@linkcode P}. */
  Object,
  /** Inside an array: `a` = items so far (capped), `b` = a {@linkcode P}. */
  Array,
  /** A key was read: `:` next. */
  Colon,
  /**
   * Inside a string: `a` = code points (capped), `b` = 0, -1 after `\`, or hex digits left;
   * `c` = the first hex digit, or (b = 0) the UTF-8 character's state (`utf8Lead`).
   */
  String,
  /** Inside a number: `a` = an {@linkcode N}. */
  Number,
  /** Inside a literal: `a` = the next byte's index. */
  Literal,
}

/** Where a container is: just opened, after a member, after `,`. */
const enum P {
  Open,
  Comma,
  Next,
}

/** One frame of a thread's stack (immutable). */
class Frame {
  /** Open containers at and below this frame. */
  readonly depth: number;
  constructor(
    readonly k: F,
    readonly node: SchemaNode,
    readonly a: number,
    readonly b: number,
    readonly c: number,
    readonly next: Frame | null,
  ) {
    this.depth = (next?.depth ?? 0) + (k === F.Object || k === F.Array ? 1 : 0);
  }
}

/** One thread: its stack (null: the top-level value is complete) and whitespace run. */
class Thread {
  constructor(readonly top: Frame | null, readonly ws = 0, readonly nl = false) {}

  get signature(): string {
    let s = `${this.ws}${+this.nl}`;
    for (let f = this.top; f; f = f.next) s += `;${f.k}.${f.node.id}.${f.a}.${f.b}.${f.c}`;
    return s;
  }
}

const COLON: SchemaNode = { kind: "number", id: -1 }; // the node of Colon frames (unused)
const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]); // " \ / b f n r t
const isDigit = (b: number) => b >= 0x30 && b <= 0x39;
const hexValue = (b: number) =>
  isDigit(b) ? b - 0x30 : b >= 0x41 && b <= 0x46 ? b - 55 : b >= 0x61 && b <= 0x66 ? b - 87 : -1;

/**
 * A byte-level recogniser of the JSON texts valid for a schema (see the module doc). Copy
 * it with `clone()` to try bytes without committing.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileJsonSchema } from "./json_schema.ts";
 * import { JsonSchemaRecognizer } from "./json_schema_recognizer.ts";
 * const schema = compileJsonSchema({
 *   type: "object",
 *   properties: { name: { type: "string" }, age: { type: "integer" } },
 *   required: ["name"],
 * });
 * const bytes = (s: string) => new TextEncoder().encode(s);
 * const r = new JsonSchemaRecognizer(schema);
 * assert.ok(r.pushAll(bytes('{"name": "Ada", "age": 36}')));
 * assert.equal(r.complete, true);
 * assert.equal(new JsonSchemaRecognizer(schema).pushAll(bytes('{"age"')), false); // name first
 * assert.equal(new JsonSchemaRecognizer(schema).pushAll(bytes('{"name": 1')), false);
 * ```
 */
export class JsonSchemaRecognizer implements ByteRecognizer {
  #threads: readonly Thread[];
  readonly #schema: CompiledJsonSchema;

  /**
   * Creates a recogniser at the start of a document.
   *
   * @param schema A schema from `compileJsonSchema`.
   */
  constructor(schema: CompiledJsonSchema) {
    this.#schema = schema;
    this.#threads = [new Thread(new Frame(F.Value, schema.root, 0, 0, 0, null))];
  }

  /** A copy in the same state. */
  clone(): JsonSchemaRecognizer {
    return new JsonSchemaRecognizer(this.#schema).copyFrom(this);
  }

  /**
   * Puts this recogniser in `other`'s state (the frames are shared: they never change).
   *
   * @param other A recogniser of the same schema.
   * @returns This recogniser.
   */
  copyFrom(other: JsonSchemaRecognizer): this {
    this.#threads = other.#threads;
    return this;
  }

  /**
   * A key of the whole state: the schema's key and every thread's frames and whitespace
   * run (equal keys accept the same byte strings, whatever `tail`).
   *
   * @param _tail Unused (the key covers every frame).
   * @returns The key.
   */
  signature(_tail: number): string {
    const s = this.#threads.map((t) => t.signature);
    return `s${this.#schema.key}|${s.length > 1 ? s.sort().join("|") : s[0] ?? ""}`;
  }

  /** Whether a whole valid document has been read. */
  get complete(): boolean {
    return this.#threads.some((t) => t.top === null);
  }

  /**
   * Whether the text is a whole valid document but for a top-level number that could still
   * go on (`12` for `{"type": "integer"}`): the reply may end there.
   */
  get completeIfEnded(): boolean {
    return this.#threads.some((t) =>
      t.top === null ||
      (t.top.k === F.Number && t.top.next === null &&
        numberComplete(t.top.a))
    );
  }

  /**
   * Reads bytes.
   *
   * @param bytes UTF-8 bytes.
   * @returns Whether every byte could follow (false: the state is then undefined).
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
    const out: Thread[] = [];
    for (const t of this.#threads) step(t, b, out);
    if (out.length > 1) {
      const seen = new Map<string, Thread>();
      for (const t of out) seen.set(t.signature, t);
      this.#threads = seen.size === out.length ? out : [...seen.values()];
    } else this.#threads = out;
    return out.length > 0;
  }
}

/** Whitespace at a structural position: within JSON mode's limits, never at the top. */
function space(t: Thread, b: number, out: Thread[]): void {
  if ((t.top?.depth ?? 0) === 0 || b === 0x0d || (b === 0x0a && t.nl) || t.ws >= 21) return;
  out.push(new Thread(t.top, t.ws + 1, t.nl || b === 0x0a));
}

const push = (out: Thread[], top: Frame | null) => out.push(new Thread(top));

/** The threads after byte `b` (none: `b` cannot follow `t`). */
function step(t: Thread, b: number, out: Thread[]): void {
  const f = t.top;
  if (f === null) return; // complete: nothing may follow (not even whitespace)
  switch (f.k) {
    case F.Value:
      if (WS.has(b)) return space(t, b, out);
      return start(f.node, f.next, b, out);
    case F.Colon:
      if (WS.has(b)) return space(t, b, out);
      if (b === 0x3a) push(out, f.next);
      return;
    case F.Object:
      if (WS.has(b)) return space(t, b, out);
      return object(f, b, out);
    case F.Array:
      if (WS.has(b)) return space(t, b, out);
      return array(f, b, out);
    case F.String:
      return string(f, b, out);
    case F.Number:
      return number(t, f, b, out);
    case F.Literal: {
      const bytes = (f.node as Extract<SchemaNode, { kind: "literal" }>).bytes;
      if (b !== bytes[f.a]) return;
      push(
        out,
        f.a + 1 === bytes.length ? f.next : new Frame(F.Literal, f.node, f.a + 1, 0, 0, f.next),
      );
    }
  }
}

/** The first byte of a value of `node`, with `below` under it. */
function start(node: SchemaNode, below: Frame | null, b: number, out: Thread[]): void {
  switch (node.kind) {
    case "alt":
      for (const a of node.alts) start(a, below, b, out);
      return;
    case "object":
    case "array":
      if (b !== (node.kind === "object" ? 0x7b : 0x5b)) return;
      if ((below?.depth ?? 0) >= JSON_MAX_DEPTH) return;
      push(out, new Frame(node.kind === "object" ? F.Object : F.Array, node, 0, P.Open, 0, below));
      return;
    case "string":
      if (b === 0x22) push(out, new Frame(F.String, node, 0, 0, 0, below));
      return;
    case "number":
    case "integer": {
      const at = numberStart(b);
      if (at !== NUMBER_REJECT) push(out, new Frame(F.Number, node, at, 0, 0, below));
      return;
    }
    case "literal":
      if (b !== node.bytes[0]) return;
      push(out, node.bytes.length === 1 ? below : new Frame(F.Literal, node, 1, 0, 0, below));
  }
}

function object(f: Frame, b: number, out: Thread[]): void {
  const n = f.node as Extract<SchemaNode, { kind: "object" }>;
  const i = f.a;
  if (b === 0x7d) {
    if (f.b !== P.Next && i > n.lastRequired) push(out, f.next);
    return;
  }
  if (f.b === P.Comma) {
    if (b === 0x2c && (i < n.props.length || n.extra)) {
      push(out, new Frame(F.Object, n, i, P.Next, 0, f.next));
    }
    return;
  }
  if (b !== 0x22) return;
  // A key: any declared property from i on up to the first required one, in order.
  let j = i;
  for (; j < n.props.length; j++) {
    const p = n.props[j];
    const value = new Frame(
      F.Value,
      p.node,
      0,
      0,
      0,
      new Frame(F.Object, n, j + 1, P.Comma, 0, f.next),
    );
    push(out, new Frame(F.Literal, p.key, 1, 0, 0, new Frame(F.Colon, COLON, 0, 0, 0, value)));
    if (p.required) return;
  }
  if (n.extra) {
    const value = new Frame(
      F.Value,
      n.extra,
      0,
      0,
      0,
      new Frame(F.Object, n, j, P.Comma, 0, f.next),
    );
    push(out, new Frame(F.String, KEY, 0, 0, 0, new Frame(F.Colon, COLON, 0, 0, 0, value)));
  }
}

/** The node of a map's keys: any string. */
const KEY: SchemaNode = { kind: "string", id: -2, min: 0, max: Infinity };

function array(f: Frame, b: number, out: Thread[]): void {
  const n = f.node as Extract<SchemaNode, { kind: "array" }>;
  const count = f.a;
  if (b === 0x5d) {
    if (f.b !== P.Next && count >= n.min) push(out, f.next);
    return;
  }
  if (f.b === P.Comma) {
    if (b === 0x2c && count < n.max) push(out, new Frame(F.Array, n, count, P.Next, 0, f.next));
    return;
  }
  if (count >= n.max) return;
  // Counts past what decides anything (min when unbounded) are one state.
  const next = Math.min(count + 1, n.max === Infinity ? n.min : n.max);
  start(n.items, new Frame(F.Array, n, next, P.Comma, 0, f.next), b, out);
}

function string(f: Frame, b: number, out: Thread[]): void {
  const n = f.node as Extract<SchemaNode, { kind: "string" }>;
  const limited = n.min > 0 || n.max !== Infinity;
  /** One more code point, if the string may hold it (`c`: its UTF-8 state). */
  const char = (c = 0) => {
    if (f.a >= n.max) return;
    const a = limited ? Math.min(f.a + 1, n.max === Infinity ? n.min : n.max) : 0;
    push(out, new Frame(F.String, n, a, 0, c, f.next));
  };
  if (f.b === 0 && f.c > 0) {
    // Inside a UTF-8 character: `c` = continuation bytes left + 4 × the next byte's range.
    const [lo, hi] = UTF8_RANGES[f.c >> 2];
    if (b < lo || b > hi) return;
    push(out, new Frame(F.String, n, f.a, 0, (f.c & 3) - 1, f.next)); // then any 80-BF
  } else if (f.b === 0) {
    if (b === 0x22) {
      if (f.a >= n.min) push(out, f.next);
    } else if (b === 0x5c) {
      // An escape is one code point (the surrogates are refused below): room for it first.
      if (f.a < n.max) push(out, new Frame(F.String, n, f.a, -1, 0, f.next));
    } else if (b >= 0x20 && b < 0x80) char(0); // control characters must be escaped
    else if (b >= 0xc2 && b <= 0xf4) char(utf8Lead(b)); // else not a UTF-8 lead byte
  } else if (f.b === -1) {
    if (b === 0x75) push(out, new Frame(F.String, n, f.a, 4, 0, f.next));
    else if (ESCAPES.has(b)) char();
  } else {
    const h = hexValue(b);
    if (h < 0) return;
    // A counted string takes no surrogate escapes (\uD800-\uDFFF): one would count as two.
    if (limited && f.b === 3 && f.c === 0xd && h >= 8) return;
    if (f.b === 1) char();
    else push(out, new Frame(F.String, n, f.a, f.b - 1, f.c * 16 + h, f.next));
  }
}

/**
 * The continuation bytes a UTF-8 character may take (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), by range code: `[lo, hi]`.
 */
const UTF8_RANGES = [[0x80, 0xbf], [0xa0, 0xbf], [0x80, 0x9f], [0x90, 0xbf], [0x80, 0x8f]];

/** A lead byte's UTF-8 state: continuation bytes left + 4 × the first one's range code. */
function utf8Lead(b: number): number {
  if (b < 0xe0) return 1;
  if (b < 0xf0) return 2 + 4 * (b === 0xe0 ? 1 : b === 0xed ? 2 : 0);
  return 3 + 4 * (b === 0xf0 ? 3 : b === 0xf4 ? 4 : 0);
}

function number(t: Thread, f: Frame, b: number, out: Thread[]): void {
  const next = numberStep(f.a, b, f.node.kind === "integer");
  if (next === NUMBER_END) step(new Thread(f.next), b, out); // the enclosing context reads b
  else if (next === f.a) out.push(t);
  else if (next !== NUMBER_REJECT) push(out, new Frame(F.Number, f.node, next, 0, 0, f.next));
}
