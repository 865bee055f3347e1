/**
 * Resolves a config's `tokenizer` field (DESIGN.md "ModelConfig") to a {@linkcode Tokenizer}:
 * `none`, a built-in tiktoken encoding name, or a file relative to the config's directory,
 * dispatched by its name:
 *
 * | spec                        | reader                                             |
 * |-----------------------------|----------------------------------------------------|
 * | `none`                      | no tokenizer (`null`)                              |
 * | `gpt2`, `cl100k_base`, `o200k_base` | `TiktokenTokenizer.builtin` (engine/tiktoken.ts) |
 * | `*.tiktoken`                | `TiktokenTokenizer.fromFile` (gollm rank file)     |
 * | `*.bin` (`tokenizer.bin`)   | llama2.c tokenizer, `parseLlama2cTokenizer` (engine/sentencepiece.ts) |
 * | `tokenizer.json`            | Hugging Face tokenizer directory (engine/hf_tokenizer.ts) |
 *
 * @module
 */
import { FormatError, GollmError } from "./errors.ts";
import { parseLlama2cTokenizer } from "./sentencepiece.ts";
import { BUILTIN_ENCODINGS, TiktokenTokenizer } from "./tiktoken.ts";
import type { Tokenizer } from "./tokenizer.ts";

function joinPath(dir: string, name: string): string {
  if (name.startsWith("/") || dir === "" || dir === ".") return name;
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FormatError(path, "tokenizer file does not exist");
    }
    throw new FormatError(path, `cannot read tokenizer file: ${(e as Error).message}`);
  }
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
    return await TiktokenTokenizer.fromFile(path);
  }
  if (name.endsWith(".bin")) {
    return parseLlama2cTokenizer(await readBytes(path), path);
  }
  if (name === "tokenizer.json") {
    // Hugging Face tokenizer.json needs tokenizer_config.json beside it: engine/hf_tokenizer.ts.
    await readBytes(path); // a missing file is reported as such
    throw new GollmError(
      `${path}: tokenizer.json support is not built into loadTokenizer yet ` +
        `(engine/hf_tokenizer.ts loadHfTokenizer)`,
    );
  }
  throw new GollmError(
    `${path}: unknown tokenizer kind; expected none, ${BUILTIN_ENCODINGS.join(", ")}, ` +
      `a .tiktoken file, a llama2.c .bin file or tokenizer.json`,
  );
}
