/**
 * The Hugging Face fixtures of python/hf_fixtures.py (tests/fixtures/hf/NAME/): the directory,
 * and what transformers computed on it (`expected.json`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { ForwardPass } from "../core/forward.ts";
import { assertClose } from "./assert_close.ts";
import { TOL } from "./forward_cases.ts";
import { greedy } from "./greedy_decode.ts";

/** The fixtures' directory (tests/fixtures/hf). */
export const HF_FIXTURES = fileURLToPath(new URL("./fixtures/hf", import.meta.url));

/** What transformers computed on a fixture: its prompt ids, logits and greedy ids. */
export interface Expected {
  /** Prompt ids. */
  tokens: number[];
  /** transformers' logits at every prompt position: (n, vocab_size). */
  logits: number[][];
  /** transformers' greedy continuation of the prompt. */
  greedy: number[];
}

/**
 * Reads `expected.json` of the fixture `name`.
 *
 * @param name Fixture directory name, e.g. `llama_gqa`.
 * @returns Its expected tokens, logits and greedy ids.
 */
export async function expected(name: string): Promise<Expected> {
  return JSON.parse(await Deno.readTextFile(`${HF_FIXTURES}/${name}/expected.json`));
}

/**
 * Asserts that a forward pass gives transformers' logits at every prompt position (within
 * docs/DESIGN.md's F32 tolerance {@linkcode TOL}) and its greedy continuation.
 *
 * @param fp The model (a `Model` or any forward pass over the fixture's weights).
 * @param exp What transformers computed ({@linkcode expected}).
 * @param label Names the case in a failure.
 * @throws {AssertionError} `max |diff| ...` for a logit row past the tolerance, or a
 *   different greedy continuation.
 */
export function checkTransformers(fp: ForwardPass, exp: Expected, label: string): void {
  const V = fp.config.vocab_size;
  const all = fp.forwardAll(exp.tokens, 0); // (n, vocab)
  exp.logits.forEach((row, t) =>
    assertClose(all.subarray(t * V, (t + 1) * V), row, TOL, `${label} position ${t}`)
  );
  assert.deepEqual(greedy(fp, exp.tokens, exp.greedy.length), exp.greedy, `${label} greedy`);
}
