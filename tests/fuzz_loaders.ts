/**
 * Loader calls for tests/fuzz_test.ts that go one step past reading: what a caller does
 * right after loading must not fail either (a reader that accepts a value the sampler or the
 * tokenizer later refuses has let bad input through).
 *
 * @module
 */
import { loadCheckpoint } from "../formats/load.ts";
import { resolveSamplerOptions } from "../runtime/sampler.ts";
import { loadTokenizer } from "../tokenizers/tokenizer_file.ts";

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

/** Texts every fuzzed tokenizer encodes: plain, special-token text of the common families, a
 * long word (BPE merging must stay near-linear), digits, bytes outside UTF-8's ASCII. */
export const FUZZ_TEXTS: readonly string[] = [
  "Once upon a time, 🦙 said: “héllo”\n\tworld  ",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
  "<s>[INST] hi [/INST]</s><unk><|endoftext|><|bos|><|eos|>",
  "a".repeat(3000),
  "Zm9vYmFy".repeat(300) + " 12345678901234567890",
  "",
];

/**
 * Loads a tokenizer file the way a model's config names it (tokenizers/tokenizer_file.ts),
 * then encodes {@linkcode FUZZ_TEXTS} (special-token text recognised and not, plus the
 * tokenizer's own special tokens between words) and decodes every result: a tokenizer that
 * loads must also encode and decode whatever it is given.
 *
 * @param name The file name (`tokenizer.json`, `x.tiktoken`, `x.bin`).
 * @param dir Its directory.
 */
export async function loadAndEncode(name: string, dir: string): Promise<void> {
  const tok = await loadTokenizer(name, dir);
  if (tok === null) return;
  const specials = [tok.bosId, ...tok.eosIds].filter((id): id is number => id !== null);
  const own = specials.map((id) => new TextDecoder().decode(tok.tokenBytes(id))).join(" x ");
  for (const text of [...FUZZ_TEXTS, `before ${own} after`]) {
    for (const special of [true, false]) {
      const ids = tok.encode(text, { special });
      for (const id of ids) {
        if (!(Number.isInteger(id) && id >= 0 && id < tok.vocabSize)) {
          throw new Error(`encode produced id ${id} outside [0, ${tok.vocabSize})`);
        }
      }
      tok.decode(ids);
    }
  }
  for (let id = 0; id < tok.vocabSize; id += Math.max(1, tok.vocabSize >> 6)) tok.tokenPiece(id);
}

// Negative controls for tests/fuzz_harness_test.ts: each misbehaves in one way the harness
// must catch.

/**
 * A naive tiktoken reader: compiles each `#pattern` line with JS `RegExp` (a backtracking
 * engine) and runs it over {@linkcode FUZZ_TEXTS}. tests/fuzz_tokenizers_test.ts shows that a
 * catastrophic pattern hangs it, and that the harness catches the hang.
 */
export async function naiveTiktokenRegex(name: string, dir: string): Promise<void> {
  const text = await Deno.readTextFile(`${dir}/${name}`);
  for (const line of text.split("\n")) {
    if (!line.startsWith("#pattern ")) continue;
    const re = new RegExp(line.slice(9), "gu");
    for (const t of FUZZ_TEXTS) [...t.matchAll(re)];
  }
}

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
