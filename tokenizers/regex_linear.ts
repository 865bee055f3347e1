/**
 * A regex matcher whose running time is linear in the text, for pre-tokenizer patterns that
 * come from files (a tokenizer.json `Split`, a `.tiktoken` `#pattern`): a backtracking
 * matcher with the same leftmost-first semantics as JavaScript's `RegExp`, that remembers
 * every (instruction, position) it has already explored without success and never explores
 * it again. With no backreferences and no loop whose body can match the empty string, the
 * outcome of a state depends only on its instruction and position, so the whole scan of a
 * text with m join states costs O(m x n) steps, however the pattern is written: `(a|a)*b`
 * on 100 kB of `a` finishes in milliseconds where a backtracking engine never returns.
 *
 * Follows J. Davis, F. Servant, D. Lee, "Using Selective Memoization to Defeat Regular
 * Expression Denial of Service (ReDoS)", IEEE S&P 2021 (memoize at join states), on a
 * Thompson-style instruction list (R. Cox, "Regular Expression Matching: the Virtual Machine
 * Approach", 2009).
 *
 * Supported: alternation, groups (capturing, `(?:`, named, `(?i:` / `(?-i:` modifiers),
 * greedy and lazy quantifiers, character classes and escapes (each single-character matcher
 * is tested with a one-character JavaScript regex, so `\p{...}` and class semantics are
 * JavaScript's), `.`, `^`, `$`, `\b`, `\B`, and lookarounds whose body is fixed-length (an
 * alternation of sequences of single characters, e.g. `(?!\S)`). Rejected with a
 * {@linkcode PatternError}: backreferences, loops over a body that can match empty,
 * variable-length lookarounds, patterns that compile to more than 20,000 instructions.
 *
 * @module
 */

/** A pattern uses a construct {@linkcode LinearRegex} does not support. */
export class PatternError extends Error {
  /**
   * @param message What is unsupported.
   */
  constructor(message: string) {
    super(message);
    this.name = "PatternError";
  }
}

type Node =
  | { t: "set"; set: number }
  | { t: "seq"; items: Node[] }
  | { t: "alt"; options: Node[] }
  | { t: "rep"; body: Node; min: number; max: number; greedy: boolean }
  | { t: "look"; body: Node; behind: boolean; negate: boolean }
  | { t: "bol"; multiline: boolean }
  | { t: "eol"; multiline: boolean }
  | { t: "wordb"; negate: boolean };

/** Instruction opcodes. */
const CHAR = 0, SPLIT = 1, JMP = 2, MATCH = 3, BOL = 4, EOL = 5, WORDB = 6, NWORDB = 7, LOOK = 8;
const MAX_PROGRAM = 20_000;
const SYNTAX = new Set("^$\\.*+?()[]{}|/-".split(""));

/** One single-character matcher, with a cache of its answers. */
class CharSet {
  #re: RegExp;
  #bmp = new Int8Array(0x10000).fill(-1); // (65536) 1 in, 0 out, -1 not yet tested
  #astral = new Map<number, boolean>();
  constructor(source: string, flags: string) {
    this.#re = new RegExp(`^(?:${source})$`, flags);
  }
  has(cp: number): boolean {
    if (cp < 0x10000) {
      const v = this.#bmp[cp];
      if (v >= 0) return v === 1;
      const r = this.#re.test(String.fromCharCode(cp));
      this.#bmp[cp] = r ? 1 : 0;
      return r;
    }
    let r = this.#astral.get(cp);
    if (r === undefined) {
      r = this.#re.test(String.fromCodePoint(cp));
      this.#astral.set(cp, r);
    }
    return r;
  }
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
}

/** Recursive-descent parser of JavaScript `u`-mode regex syntax into {@linkcode Node}s. */
class Parser {
  #src: string;
  #pos = 0;
  sets: CharSet[] = [];
  #setIds = new Map<string, number>();
  constructor(src: string) {
    this.#src = src;
  }

  parse(): Node {
    const node = this.#alt({ i: false, m: false, s: false });
    if (this.#pos < this.#src.length) throw new PatternError(`unexpected ')' at ${this.#pos}`);
    return node;
  }

  #set(source: string, f: Flags): Node {
    const flags = "u" + (f.i ? "i" : "") + (f.s ? "s" : "");
    const key = `${flags}/${source}`;
    let id = this.#setIds.get(key);
    if (id === undefined) {
      id = this.sets.length;
      this.sets.push(new CharSet(source, flags));
      this.#setIds.set(key, id);
    }
    return { t: "set", set: id };
  }

  #alt(f: Flags): Node {
    const options = [this.#seq(f)];
    while (this.#src[this.#pos] === "|") {
      this.#pos++;
      options.push(this.#seq(f));
    }
    return options.length === 1 ? options[0] : { t: "alt", options };
  }

  #seq(f: Flags): Node {
    const items: Node[] = [];
    while (this.#pos < this.#src.length) {
      const c = this.#src[this.#pos];
      if (c === "|" || c === ")") break;
      const atom = this.#atom(f);
      items.push(this.#quantified(atom));
    }
    return items.length === 1 ? items[0] : { t: "seq", items };
  }

  #quantified(atom: Node): Node {
    const s = this.#src;
    let min: number, max: number;
    const c = s[this.#pos];
    if (c === "*") [min, max] = [0, Infinity];
    else if (c === "+") [min, max] = [1, Infinity];
    else if (c === "?") [min, max] = [0, 1];
    else if (c === "{") {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.#pos));
      if (!m) return atom;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
      this.#pos += m[0].length - 1;
    } else return atom;
    this.#pos++;
    let greedy = true;
    if (s[this.#pos] === "?") {
      greedy = false;
      this.#pos++;
    }
    return { t: "rep", body: atom, min, max, greedy };
  }

  #atom(f: Flags): Node {
    const s = this.#src;
    const c = s[this.#pos];
    if (c === "^") {
      this.#pos++;
      return { t: "bol", multiline: f.m };
    }
    if (c === "$") {
      this.#pos++;
      return { t: "eol", multiline: f.m };
    }
    if (c === ".") {
      this.#pos++;
      return this.#set(".", f);
    }
    if (c === "[") {
      let j = this.#pos + 1;
      while (j < s.length && s[j] !== "]") j += s[j] === "\\" ? 2 : 1;
      const src = s.slice(this.#pos, j + 1);
      this.#pos = j + 1;
      return this.#set(src, f);
    }
    if (c === "(") return this.#group(f);
    if (c === "\\") return this.#escape(f);
    const cp = s.codePointAt(this.#pos)!;
    const ch = String.fromCodePoint(cp);
    this.#pos += ch.length;
    return this.#set(SYNTAX.has(ch) ? "\\" + ch : ch, f);
  }

  #group(f: Flags): Node {
    const s = this.#src;
    this.#pos++; // (
    let look: { behind: boolean; negate: boolean } | null = null;
    let inner = f;
    if (s[this.#pos] === "?") {
      const rest = s.slice(this.#pos + 1);
      const mod = /^([ims]*)(?:-([ims]*))?:/.exec(rest);
      if (rest.startsWith("=") || rest.startsWith("!")) {
        look = { behind: false, negate: rest[0] === "!" };
        this.#pos += 2;
      } else if (rest.startsWith("<=") || rest.startsWith("<!")) {
        look = { behind: true, negate: rest[1] === "!" };
        this.#pos += 3;
      } else if (rest.startsWith("<")) {
        this.#pos = s.indexOf(">", this.#pos) + 1; // named group
      } else if (mod) {
        inner = { ...f };
        for (const k of mod[1]) inner[k as keyof Flags] = true;
        for (const k of mod[2] ?? "") inner[k as keyof Flags] = false;
        this.#pos += 1 + mod[0].length;
      } else {
        throw new PatternError(`unsupported group '(?${rest.slice(0, 2)}'`);
      }
    }
    const body = this.#alt(inner);
    if (s[this.#pos] !== ")") throw new PatternError("unterminated group");
    this.#pos++;
    return look ? { t: "look", body, ...look } : body;
  }

  #escape(f: Flags): Node {
    const s = this.#src;
    const c = s[this.#pos + 1];
    if (c === undefined) throw new PatternError("pattern ends with '\\'");
    if (c === "b" || c === "B") {
      this.#pos += 2;
      return { t: "wordb", negate: c === "B" };
    }
    if (/[1-9]/.test(c) || (c === "k" && s[this.#pos + 2] === "<")) {
      throw new PatternError(`backreference '\\${c}' is not supported`);
    }
    let len = 2;
    if ((c === "p" || c === "P") && s[this.#pos + 2] === "{") {
      len = s.indexOf("}", this.#pos) + 1 - this.#pos;
    } else if (c === "u" && s[this.#pos + 2] === "{") {
      len = s.indexOf("}", this.#pos) + 1 - this.#pos;
    } else if (c === "u") {
      len = 6;
      if (/^\\u[dD][89abAB]..\\u[dD][c-fC-F]/.test(s.slice(this.#pos, this.#pos + 12))) len = 12;
    } else if (c === "x") len = 4;
    else if (c === "c") len = 3;
    const src = s.slice(this.#pos, this.#pos + len);
    this.#pos += len;
    return this.#set(src, f);
  }
}

function nullable(n: Node): boolean {
  switch (n.t) {
    case "set":
      return false;
    case "seq":
      return n.items.every(nullable);
    case "alt":
      return n.options.some(nullable);
    case "rep":
      return n.min === 0 || nullable(n.body);
    default:
      return true;
  }
}

/** A lookaround body as alternatives of fixed sequences of set ids, or null if not one. */
function fixedAlternatives(n: Node): number[][] | null {
  if (n.t === "set") return [[n.set]];
  if (n.t === "seq") {
    let out: number[][] = [[]];
    for (const item of n.items) {
      const sub = fixedAlternatives(item);
      if (!sub) return null;
      out = out.flatMap((a) => sub.map((b) => [...a, ...b]));
      if (out.length > 64) return null;
    }
    return out;
  }
  if (n.t === "alt") {
    const out: number[][] = [];
    for (const o of n.options) {
      const sub = fixedAlternatives(o);
      if (!sub) return null;
      out.push(...sub);
    }
    return out.length > 64 ? null : out;
  }
  return null;
}

interface Look {
  behind: boolean;
  negate: boolean;
  options: number[][];
}

/**
 * A compiled pattern with linear-time scanning ({@linkcode LinearRegex.scan}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LinearRegex } from "./regex_linear.ts";
 * const re = new LinearRegex("(a|a)*b|a");
 * const found: string[] = [];
 * const text = "a".repeat(100_000) + "b";
 * re.scan(text, (s, e) => found.push(text.slice(s, e)));
 * assert.equal(found.length, 1);
 * assert.equal(found[0].length, 100_001);
 * ```
 */
export class LinearRegex {
  /** The pattern source. */
  readonly source: string;
  #op: number[] = [];
  #x: number[] = [];
  #y: number[] = [];
  #sets: CharSet[];
  #looks: Look[] = [];
  #memoSlot: Int32Array; // (program length) memo row of each join state, -1 if none
  #memoRows: number;
  #word: CharSet;

  /**
   * Compiles a pattern (JavaScript `u`-flag syntax).
   *
   * @param pattern Regex source.
   * @throws {PatternError} for an unsupported construct (see the module doc).
   * @throws {SyntaxError} when the pattern is not a valid JavaScript regex.
   */
  constructor(pattern: string) {
    new RegExp(pattern, "u"); // syntax errors as the engine reports them
    this.source = pattern;
    const parser = new Parser(pattern);
    const root = parser.parse();
    this.#sets = parser.sets;
    this.#word = new CharSet("\\w", "u");
    this.#compile(root);
    this.#emit(MATCH, 0, 0);
    // Join states: targets of more than one edge. Memoizing them bounds the work.
    const indeg = new Int32Array(this.#op.length + 1);
    indeg[0] = 2; // every attempt enters here
    for (let pc = 0; pc < this.#op.length; pc++) {
      const op = this.#op[pc];
      if (op === SPLIT) {
        indeg[this.#x[pc]]++;
        indeg[this.#y[pc]]++;
      } else if (op === JMP) indeg[this.#x[pc]]++;
      else if (op !== MATCH) indeg[pc + 1]++;
    }
    this.#memoSlot = new Int32Array(this.#op.length).fill(-1);
    let rows = 0;
    for (let pc = 0; pc < this.#op.length; pc++) if (indeg[pc] > 1) this.#memoSlot[pc] = rows++;
    this.#memoRows = rows;
  }

  #emit(op: number, x: number, y: number): number {
    if (this.#op.length >= MAX_PROGRAM) {
      throw new PatternError(`pattern compiles to more than ${MAX_PROGRAM} instructions`);
    }
    this.#op.push(op);
    this.#x.push(x);
    this.#y.push(y);
    return this.#op.length - 1;
  }

  #compile(n: Node): void {
    switch (n.t) {
      case "set":
        this.#emit(CHAR, n.set, 0);
        return;
      case "seq":
        for (const item of n.items) this.#compile(item);
        return;
      case "alt": {
        const jumps: number[] = [];
        for (let k = 0; k < n.options.length; k++) {
          if (k + 1 < n.options.length) {
            const split = this.#emit(SPLIT, 0, 0);
            this.#x[split] = split + 1;
            this.#compile(n.options[k]);
            jumps.push(this.#emit(JMP, 0, 0));
            this.#y[split] = this.#op.length;
          } else this.#compile(n.options[k]);
        }
        for (const j of jumps) this.#x[j] = this.#op.length;
        return;
      }
      case "rep": {
        if (n.max === Infinity && nullable(n.body)) {
          throw new PatternError("a repeated group that can match the empty string");
        }
        for (let k = 0; k < n.min; k++) this.#compile(n.body);
        if (n.max === Infinity) {
          const split = this.#emit(SPLIT, 0, 0);
          this.#compile(n.body);
          this.#emit(JMP, split, 0);
          this.#setBranch(split, split + 1, this.#op.length, n.greedy);
        } else {
          const splits: number[] = [];
          for (let k = n.min; k < n.max; k++) {
            splits.push(this.#emit(SPLIT, 0, 0));
            this.#compile(n.body);
          }
          for (const s of splits) this.#setBranch(s, s + 1, this.#op.length, n.greedy);
        }
        return;
      }
      case "look": {
        const options = fixedAlternatives(n.body);
        if (!options) {
          throw new PatternError("a lookaround whose body is not of fixed length");
        }
        this.#looks.push({ behind: n.behind, negate: n.negate, options });
        this.#emit(LOOK, this.#looks.length - 1, 0);
        return;
      }
      case "bol":
        this.#emit(BOL, n.multiline ? 1 : 0, 0);
        return;
      case "eol":
        this.#emit(EOL, n.multiline ? 1 : 0, 0);
        return;
      case "wordb":
        this.#emit(n.negate ? NWORDB : WORDB, 0, 0);
        return;
    }
  }

  #setBranch(split: number, body: number, exit: number, greedy: boolean): void {
    this.#x[split] = greedy ? body : exit;
    this.#y[split] = greedy ? exit : body;
  }

  #look(look: Look, text: string, pos: number): boolean {
    let ok = false;
    for (const seq of look.options) {
      let p = pos, k = 0;
      if (look.behind) {
        for (k = seq.length - 1; k >= 0 && p > 0; k--) {
          let cp = text.charCodeAt(p - 1);
          let w = 1;
          if (cp >= 0xdc00 && cp <= 0xdfff && p > 1) {
            const hi = text.charCodeAt(p - 2);
            if (hi >= 0xd800 && hi <= 0xdbff) {
              cp = 0x10000 + ((hi - 0xd800) << 10) + (cp - 0xdc00);
              w = 2;
            }
          }
          if (!this.#sets[seq[k]].has(cp)) break;
          p -= w;
        }
        if (k < 0) ok = true;
      } else {
        for (k = 0; k < seq.length && p < text.length; k++) {
          const cp = text.codePointAt(p)!;
          if (!this.#sets[seq[k]].has(cp)) break;
          p += cp > 0xffff ? 2 : 1;
        }
        if (k === seq.length) ok = true;
      }
      if (ok) break;
    }
    return ok !== look.negate;
  }

  #isWord(text: string, p: number): boolean {
    return p >= 0 && p < text.length && this.#word.has(text.charCodeAt(p));
  }

  /**
   * Calls `onMatch(start, end)` for each successive non-overlapping match in `text`, left
   * to right, as `text.matchAll(new RegExp(pattern, "gu"))` would (after an empty match the
   * search resumes one code point later). O(program size x text length) time, and one bit
   * per (join state, position) of memory.
   *
   * @param text Input.
   * @param onMatch Receives the UTF-16 bounds of each match.
   */
  scan(text: string, onMatch: (start: number, end: number) => void): void {
    const n = text.length;
    const stride = n + 1;
    const memo = new Uint8Array(Math.ceil((this.#memoRows * stride) / 8));
    const op = this.#op, x = this.#x, y = this.#y, slot = this.#memoSlot, sets = this.#sets;
    let stack = new Int32Array(64);
    let from = 0;
    while (from <= n) {
      let start = from, end = -1;
      for (; start <= n; start += start < n && text.codePointAt(start)! > 0xffff ? 2 : 1) {
        // One attempt at `start`: depth-first in priority order, with an explicit stack.
        let sp = 0;
        stack[sp++] = 0;
        stack[sp++] = start;
        attempt: while (sp > 0) {
          let pos = stack[--sp];
          let pc = stack[--sp];
          for (;;) {
            const row = slot[pc];
            if (row >= 0) {
              const bit = row * stride + pos;
              if (memo[bit >> 3] & (1 << (bit & 7))) break;
              memo[bit >> 3] |= 1 << (bit & 7);
            }
            switch (op[pc]) {
              case CHAR: {
                if (pos >= n) break;
                const cp = text.codePointAt(pos)!;
                if (!sets[x[pc]].has(cp)) break;
                pos += cp > 0xffff ? 2 : 1;
                pc++;
                continue;
              }
              case SPLIT:
                if (sp + 2 > stack.length) {
                  const bigger = new Int32Array(stack.length * 2);
                  bigger.set(stack);
                  stack = bigger;
                }
                stack[sp++] = y[pc];
                stack[sp++] = pos;
                pc = x[pc];
                continue;
              case JMP:
                pc = x[pc];
                continue;
              case MATCH:
                end = pos;
                break attempt;
              case BOL:
                if (pos === 0 || (x[pc] === 1 && /[\n\r\u2028\u2029]/.test(text[pos - 1]))) {
                  pc++;
                  continue;
                }
                break;
              case EOL:
                if (pos === n || (x[pc] === 1 && /[\n\r\u2028\u2029]/.test(text[pos]))) {
                  pc++;
                  continue;
                }
                break;
              case WORDB:
              case NWORDB:
                if (
                  (this.#isWord(text, pos - 1) !== this.#isWord(text, pos)) === (op[pc] === WORDB)
                ) {
                  pc++;
                  continue;
                }
                break;
              case LOOK:
                if (this.#look(this.#looks[x[pc]], text, pos)) {
                  pc++;
                  continue;
                }
                break;
            }
            break; // this thread failed: backtrack
          }
        }
        if (end >= 0) break;
      }
      if (end < 0) return;
      // States on the successful path end at `end` and did not fail: forget them there.
      for (let r = 0; r < this.#memoRows; r++) {
        const bit = r * stride + end;
        memo[bit >> 3] &= ~(1 << (bit & 7));
      }
      onMatch(start, end);
      from = end > start ? end : end + (end < n && text.codePointAt(end)! > 0xffff ? 2 : 1);
    }
  }
}
