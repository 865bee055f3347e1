/**
 * Splitting input text at added-token texts (`<|begin_of_text|>`, `<|im_start|>`, ...), in
 * one left-to-right pass: at each position the longest added token that starts there wins
 * (leftmost-longest, as HF tokenizers' `AddedVocabulary` with `aho_corasick`
 * `MatchKind::LeftmostLongest` and llama.cpp's `tokenizer_st_partition`). A trie over UTF-16
 * code units makes the cost O(text length x longest token), independent of how many added
 * tokens there are.
 *
 * An added token with empty text can never be matched and is ignored here (it still has an
 * id and decodes to nothing): matching "" at every position would never advance.
 *
 * @module
 */

interface TrieNode {
  /** Child per UTF-16 code unit. */
  next: Map<number, TrieNode>;
  /** Id of the token that ends here, or -1. */
  id: number;
}

/**
 * A set of added tokens (text → id) and the leftmost-longest splitter over them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddedTokenMatcher } from "./special_tokens.ts";
 * const m = new AddedTokenMatcher([["<|a|>", 5], ["<|ab|>", 6], ["", 7]]);
 * const parts: (string | number)[] = [];
 * m.split("x<|ab|>y<|a|>", (s, e) => parts.push("x<|ab|>y<|a|>".slice(s, e)), (id) => parts.push(id));
 * assert.deepEqual(parts, ["x", 6, "y", 5]);
 * ```
 */
export class AddedTokenMatcher {
  /** Number of (non-empty) texts matched. */
  readonly size: number;
  #root: TrieNode = { next: new Map(), id: -1 };
  #first = new Set<number>(); // first code unit of every token

  /**
   * Builds the matcher.
   *
   * @param tokens Pairs of text and id. Empty texts are skipped; when one text appears
   *   twice, the first pair wins.
   */
  constructor(tokens: Iterable<readonly [string, number]>) {
    let size = 0;
    for (const [text, id] of tokens) {
      if (text.length === 0) continue;
      let node = this.#root;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        let child = node.next.get(c);
        if (!child) {
          child = { next: new Map(), id: -1 };
          node.next.set(c, child);
        }
        node = child;
      }
      if (node.id < 0) {
        node.id = id;
        size++;
      }
      this.#first.add(text.charCodeAt(0));
    }
    this.size = size;
  }

  /**
   * Splits `text` into plain runs and added tokens, calling `onText(start, end)` for each
   * non-empty run between matches and `onToken(id)` for each match, in order.
   *
   * @param text Input.
   * @param onText Receives the UTF-16 bounds of a plain run.
   * @param onToken Receives the id of a matched added token.
   */
  split(
    text: string,
    onText: (start: number, end: number) => void,
    onToken: (id: number) => void,
  ): void {
    let runStart = 0;
    let i = 0;
    const n = text.length;
    while (i < n) {
      if (!this.#first.has(text.charCodeAt(i))) {
        i++;
        continue;
      }
      let node: TrieNode | undefined = this.#root;
      let bestId = -1, bestEnd = -1;
      for (let j = i; j < n && node; j++) {
        node = node.next.get(text.charCodeAt(j));
        if (node && node.id >= 0) {
          bestId = node.id;
          bestEnd = j + 1;
        }
      }
      if (bestId < 0) {
        i++;
        continue;
      }
      if (i > runStart) onText(runStart, i);
      onToken(bestId);
      i = runStart = bestEnd;
    }
    if (runStart < n) onText(runStart, n);
  }
}
