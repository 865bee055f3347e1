/**
 * Loader calls for tests/fuzz_test.ts that go one step past reading: what a caller does
 * right after loading must not fail either (a reader that accepts a value the sampler or the
 * tokenizer later refuses has let bad input through).
 *
 * @module
 */
import { loadCheckpoint } from "../formats/load.ts";
import { resolveSamplerOptions } from "../runtime/sampler.ts";

/**
 * Loads a checkpoint, then resolves the sampler options from its generation defaults (as
 * `Model.generate` does) and round-trips a short text through its tokenizer.
 *
 * @param path A model directory or file.
 */
export async function loadAndUse(path: string): Promise<void> {
  const ckpt = await loadCheckpoint(path);
  const g = ckpt.generation ?? {};
  resolveSamplerOptions({ temperature: g.temperature, topP: g.top_p, topK: g.top_k, seed: 1 });
  const tok = ckpt.tokenizer;
  if (tok) tok.decode(tok.encode("Once upon a time, 🦙"));
}
