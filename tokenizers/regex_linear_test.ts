/**
 * LinearRegex (tokenizers/regex_linear.ts) finds the same matches as JavaScript's RegExp on
 * random text for the model patterns and a set of constructs, finishes on patterns that
 * backtrack catastrophically, and rejects what it cannot bound.
 */
import assert from "node:assert/strict";
import { LinearRegex, PatternError } from "./regex_linear.ts";
import { PRETOKENIZE_PATTERNS, unicodeWhitespacePattern } from "./pretokenizer.ts";

function scanAll(re: LinearRegex, text: string): [number, number][] {
  const out: [number, number][] = [];
  re.scan(text, (s, e) => out.push([s, e]));
  return out;
}

const O200K = String
  .raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
const PATTERNS = [
  ...Object.values(PRETOKENIZE_PATTERNS),
  O200K,
  "a|b",
  "x*?y",
  "\\bfoo\\b|\\Bo",
  "^a|b$",
  "(?<=a)b|(?<!a)c",
  "[a-c]{2,3}",
  "(?:ab)+c?",
  "(?i:AB)|(?-i:x)",
  ".",
  "\\u{1F600}+|\\uD83D\\uDE00",
  "(a|ab)(c|bcd)(d*)",
  "(?:)",
  "x??",
  "(?<name>a)b",
];
const ALPHABET = [
  " ",
  "  ",
  "\n",
  "\t",
  "\r\n",
  "\u0085",
  "\u00a0",
  "a",
  "A",
  "Z",
  "é",
  "7",
  "٣",
  "!",
  "'s",
  "'LL",
  "😀",
  "中文",
  "\u0301",
  "ab",
  "abc",
  "bcd",
  "foo",
  "b",
  "c",
  "d",
  "x",
  "y",
  "\ud800",
];

Deno.test("LinearRegex.scan() finds the same matches as RegExp matchAll on random text", () => {
  let s = 99;
  const rnd = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  for (const p of PATTERNS) {
    const src = unicodeWhitespacePattern(p);
    const lin = new LinearRegex(src);
    const nat = new RegExp(src, "gu");
    for (let k = 0; k < 400; k++) {
      let t = "";
      const n = Math.floor(rnd() * 24);
      for (let i = 0; i < n; i++) t += ALPHABET[Math.floor(rnd() * ALPHABET.length)];
      const want = [...t.matchAll(nat)].map((m) => [m.index!, m.index! + m[0].length]);
      assert.deepEqual(scanAll(lin, t), want, `${p} on ${JSON.stringify(t)}`);
    }
  }
});

Deno.test("LinearRegex.scan() finishes on patterns that backtrack catastrophically", () => {
  // Each of these takes exponential or high-polynomial time in a backtracking engine on
  // this text; here every (state, position) is explored at most once.
  const text = "a".repeat(50_000) + "!";
  for (const p of ["(a|a)*b", "(a+)+b", "(a|aa)+$x", "a*a*a*a*b", "(?:a?){20}a{20}b"]) {
    assert.deepEqual(scanAll(new LinearRegex(p), text), [], p);
  }
  assert.deepEqual(scanAll(new LinearRegex("(a|a)*b|a"), "aaa"), [[0, 1], [1, 2], [2, 3]]);
});

Deno.test("new LinearRegex() rejects what it cannot bound with PatternError, bad syntax with SyntaxError", () => {
  for (
    const [p, re] of [
      ["(a)\\1", /backreference/],
      ["(?<x>a)\\k<x>", /backreference/],
      ["(a*)*", /repeated group that can match the empty string/],
      ["(?=a+)b", /lookaround whose body is not of fixed length/],
      ["a{25000}", /more than 20000 instructions/],
    ] as const
  ) {
    assert.throws(
      () => new LinearRegex(p),
      (e: unknown) => e instanceof PatternError && re.test(e.message),
      p,
    );
  }
  assert.throws(() => new LinearRegex("(unclosed"), SyntaxError);
});
