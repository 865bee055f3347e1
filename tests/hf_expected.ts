/**
 * The Hugging Face fixtures of python/hf_fixtures.py (tests/fixtures/hf/NAME/): the directory,
 * and what transformers computed on it (`expected.json`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";

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
