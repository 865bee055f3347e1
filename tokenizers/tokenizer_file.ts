/**
 * Resolves a config's `tokenizer` field (core/config.ts `ModelConfig`) to a {@linkcode Tokenizer}:
 * `none`, a built-in tiktoken encoding name, or a file relative to the config's directory,
 * dispatched by its name:
 *
 * | spec                        | reader                                             |
 * |-----------------------------|----------------------------------------------------|
 * | `none`                      | no tokenizer (`null`)                              |
 * | `gpt2`, `cl100k_base`, `o200k_base` | `TiktokenTokenizer.builtin` (tokenizers/tiktoken.ts) |
 * | `*.tiktoken`                | `TiktokenTokenizer.fromFile` (gollm rank file)     |
 * | `*.bin` (`tokenizer.bin`)   | llama2.c tokenizer, `readLlama2cTokenizer` (sentencepiece.ts) |
 * | `tokenizer.json`            | Hugging Face tokenizer, `loadHfTokenizer` (tokenizers/hf_tokenizer.ts; reads `tokenizer_config.json` beside it) |
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { basename, isAbsolute, join } from "../core/files.ts";
import { checkRegularFile } from "./read_file.ts";
import { readLlama2cTokenizer } from "./sentencepiece.ts";
import { loadHfTokenizer } from "./hf_tokenizer.ts";
import { BUILTIN_ENCODINGS, TiktokenTokenizer } from "./tiktoken.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Loads the tokenizer a config names.
 *
 * @param spec The config's `tokenizer` value: `none`, a built-in encoding name (`gpt2`,
 *   `cl100k_base`, `o200k_base`), or a file path (absolute, or relative to `baseDir`)
 *   ending in `.tiktoken`, `.bin` (llama2.c) or named `tokenizer.json` (Hugging Face).
 * @param baseDir Directory that relative paths are resolved against (the config's dir).
 * @returns The tokenizer, or null for `none`.
 * @throws {FormatError} when the file is missing, not a regular file, unreadable or
 *   malformed (names the file).
 * @throws {GollmError} when the file kind is not recognised.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer_file.ts";
 * import assert from "node:assert/strict";
 * const tok = await loadTokenizer("gpt2", ".");
 * assert.deepEqual(tok?.encode("Hello"), [15496]);
 * ```
 */
export async function loadTokenizer(spec: string, baseDir: string): Promise<Tokenizer | null> {
  if (spec === "none") return null;
  if (BUILTIN_ENCODINGS.includes(spec)) return await TiktokenTokenizer.builtin(spec);
  const path = isAbsolute(spec) ? spec : join(baseDir, spec); // keeps a trailing '/'
  const name = basename(path); // without a trailing '/'; the reader refuses one
  const known = name.endsWith(".tiktoken") || name.endsWith(".bin") || name === "tokenizer.json";
  if (known) await checkRegularFile(path, "tokenizer file");
  if (name.endsWith(".tiktoken")) return await TiktokenTokenizer.fromFile(path);
  if (name.endsWith(".bin")) return await readLlama2cTokenizer(path);
  if (name === "tokenizer.json") return await loadHfTokenizer(path);
  throw new GollmError(
    `${path}: unknown tokenizer kind; expected none, ${BUILTIN_ENCODINGS.join(", ")}, ` +
      `a .tiktoken file, a llama2.c .bin file or tokenizer.json`,
  );
}
