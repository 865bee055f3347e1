/**
 * Resolves a config's `tokenizer` field (DESIGN.md "ModelConfig") to a {@linkcode Tokenizer}:
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
import { FormatError, GollmError } from "../core/errors.ts";
import { readLlama2cTokenizer } from "./sentencepiece.ts";
import { loadHfTokenizer } from "./hf_tokenizer.ts";
import { BUILTIN_ENCODINGS, TiktokenTokenizer } from "./tiktoken.ts";
import type { Tokenizer } from "./tokenizer.ts";

function joinPath(dir: string, name: string): string {
  if (name.startsWith("/") || dir === "" || dir === ".") return name;
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** Throws a FormatError naming `path` unless it is a readable regular file. */
async function requireFile(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FormatError(path, "tokenizer file does not exist");
    }
    throw new FormatError(path, `cannot read tokenizer file: ${(e as Error).message}`);
  }
  if (!info.isFile) throw new FormatError(path, "tokenizer path is not a regular file");
}

/**
 * Loads the tokenizer a config names.
 *
 * @param spec The config's `tokenizer` value: `none`, a built-in encoding name (`gpt2`,
 *   `cl100k_base`, `o200k_base`), or a file path (absolute, or relative to `baseDir`)
 *   ending in `.tiktoken`, `.bin` (llama2.c) or named `tokenizer.json` (Hugging Face).
 * @param baseDir Directory that relative paths are resolved against (the config's dir).
 * @returns The tokenizer, or null for `none`.
 * @throws {FormatError} when the file is missing, unreadable or malformed (names the file).
 * @throws {GollmError} when the file kind is not recognised.
 *
 * @example
 * ```ts
 * import { loadTokenizer } from "./tokenizer_file.ts";
 * const tok = await loadTokenizer("gpt2", ".");
 * console.log(tok?.encode("Hello")); // [ 15496 ]
 * ```
 */
export async function loadTokenizer(spec: string, baseDir: string): Promise<Tokenizer | null> {
  if (spec === "none") return null;
  if (BUILTIN_ENCODINGS.includes(spec)) return await TiktokenTokenizer.builtin(spec);
  const path = joinPath(baseDir, spec);
  const name = path.slice(path.lastIndexOf("/") + 1);
  if (name.endsWith(".tiktoken")) {
    await requireFile(path);
    return await TiktokenTokenizer.fromFile(path);
  }
  if (name.endsWith(".bin")) {
    await requireFile(path);
    return await readLlama2cTokenizer(path);
  }
  if (name === "tokenizer.json") {
    await requireFile(path);
    return await loadHfTokenizer(path);
  }
  throw new GollmError(
    `${path}: unknown tokenizer kind; expected none, ${BUILTIN_ENCODINGS.join(", ")}, ` +
      `a .tiktoken file, a llama2.c .bin file or tokenizer.json`,
  );
}
