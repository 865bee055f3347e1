/** AddedTokenMatcher (tokenizers/special_tokens.ts): leftmost-longest, empty texts skipped,
 * one pass over the text however many tokens share a prefix. */
import assert from "node:assert/strict";
import { AddedTokenMatcher } from "./special_tokens.ts";

function parts(m: AddedTokenMatcher, text: string): (string | number)[] {
  const out: (string | number)[] = [];
  m.split(text, (s, e) => out.push(text.slice(s, e)), (id) => out.push(id));
  return out;
}

Deno.test("AddedTokenMatcher.split() takes the longest token at the leftmost position", () => {
  const m = new AddedTokenMatcher([["<|a|>", 1], ["<|a|><|b|>", 2], ["<|b|>", 3], ["<", 4]]);
  assert.deepEqual(parts(m, "x<|a|><|b|>y<|b|><|a|"), ["x", 2, "y", 3, 4, "|a|"]);
  assert.deepEqual(parts(m, ""), []);
  assert.deepEqual(parts(m, "plain"), ["plain"]);
});

Deno.test("AddedTokenMatcher skips empty texts and keeps the first id of a repeated text", () => {
  const m = new AddedTokenMatcher([["", 9], ["ab", 1], ["ab", 2]]);
  assert.equal(m.size, 1);
  assert.deepEqual(parts(m, "xaby"), ["x", 1, "y"]);
});

Deno.test("AddedTokenMatcher.split() is one pass over 1 MB of near-misses among 256 tokens", () => {
  const tokens: [string, number][] = [];
  for (let i = 0; i < 256; i++) tokens.push([`<|reserved_special_token_${i}|>`, i]);
  const m = new AddedTokenMatcher(tokens);
  const text = "<|reserved_special_token_".repeat(40_000); // every position starts a near-miss
  let runs = 0;
  m.split(text, () => runs++, () => assert.fail("no token is complete"));
  assert.equal(runs, 1);
});
