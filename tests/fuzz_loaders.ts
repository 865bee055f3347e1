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

// Negative controls for tests/fuzz_harness_test.ts: each misbehaves in one way the harness
// must catch.

/** Never returns (a catastrophic loop). */
export function spin(_path: string): void {
  for (;;) { /* hang */ }
}

/** Grows resident memory without bound (2 GiB in 64 MiB steps). */
export function hog(_path: string): void {
  const keep: Uint8Array[] = [];
  for (let i = 0; i < 32; i++) keep.push(new Uint8Array(64 << 20).fill(1));
}

/** Fails with a plain TypeError, like an unchecked field access. */
export function typeError(path: string): void {
  if (path.length > 0) throw new TypeError("x.entries is not a function");
}

/** Fails with a GollmError whose message has a newline. */
export async function multiLine(path: string): Promise<void> {
  const { GollmError } = await import("../core/errors.ts");
  const e = new GollmError(`${path}: bad`);
  e.message = `${path}: bad\nsnippet`;
  throw e;
}

/** Fails with a GollmError that does not name the file. */
export async function anonymous(_path: string): Promise<void> {
  const { GollmError } = await import("../core/errors.ts");
  throw new GollmError("something is wrong");
}
