/**
 * Reading tokenizer files (and the chat templates beside them) safely: only regular files
 * are opened (a FIFO would block forever, `/dev/zero` never ends), the size is bounded, and
 * every failure is one {@linkcode FormatError} line that says what is wrong with the path.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { checkRegularFile as checkFile, parseJson, readFileBounded } from "../core/files.ts";

/** Largest tokenizer file read (bytes). Real ones are far smaller (Gemma's tokenizer.json:
 * 33 MB). */
export const MAX_TOKENIZER_FILE_BYTES: number = 512 * 1024 * 1024;

/**
 * Checks that `path` is a regular file of bounded size, without opening it.
 *
 * @param path The file.
 * @param what What it is, for messages (`"tokenizer file"`, `"chat template"`).
 * @returns Its size in bytes.
 * @throws {FormatError} naming `path`: it does not exist, is a directory, is not a regular
 *   file (FIFO, socket, device), sits under a path component that is not a directory, or is
 *   larger than {@linkcode MAX_TOKENIZER_FILE_BYTES}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkRegularFile } from "./read_file.ts";
 * await assert.rejects(checkRegularFile("/dev/zero", "tokenizer file"), /not a regular file/);
 * await assert.rejects(checkRegularFile("/tmp", "tokenizer file"), /it is a directory/);
 * ```
 */
export async function checkRegularFile(path: string, what: string): Promise<number> {
  if (path.endsWith("/")) {
    throw new FormatError(path, `${what} path ends with '/'; it must name a file`);
  }
  try {
    await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new FormatError(path, `${what} does not exist`);
    if (e instanceof Deno.errors.NotADirectory) {
      throw new FormatError(path, `${what} does not exist (a parent in the path is a file)`);
    }
  }
  const { size } = checkFile(path, what); // a directory, FIFO, device: one line naming it
  if (size > MAX_TOKENIZER_FILE_BYTES) {
    throw new FormatError(
      path,
      `${what} is ${size} bytes, more than the ${MAX_TOKENIZER_FILE_BYTES} a tokenizer ` +
        `file may have`,
    );
  }
  return size;
}

/**
 * Whether an optional file is present: false when nothing is at `path`, true for a regular
 * file; anything else there (a directory, a FIFO) is an error rather than silently ignored.
 *
 * @param path The file.
 * @param what What it is, for messages.
 * @returns Whether it exists.
 * @throws {FormatError} as {@linkcode checkRegularFile}, except for a missing file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { optionalFile } from "./read_file.ts";
 * assert.equal(await optionalFile("/nonexistent/chat_template.jinja", "chat template"), false);
 * ```
 */
export async function optionalFile(path: string, what: string): Promise<boolean> {
  if (path.endsWith("/")) await checkRegularFile(path, what);
  try {
    await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return false;
    }
  }
  await checkRegularFile(path, what);
  return true;
}

/**
 * Reads a tokenizer file's bytes after {@linkcode checkRegularFile}.
 *
 * @param path The file.
 * @param what What it is, for messages. Default `"tokenizer file"`.
 * @returns The bytes.
 * @throws {FormatError} naming the file.
 *
 * @example
 * ```ts ignore
 * const bytes = await readTokenizerBytes("tok512.bin");
 * ```
 */
export async function readTokenizerBytes(
  path: string,
  what = "tokenizer file",
): Promise<Uint8Array> {
  await checkRegularFile(path, what);
  return await readFileBounded(path, what);
}

/**
 * Reads a tokenizer file as UTF-8 text (a leading byte-order mark is dropped).
 *
 * @param path The file.
 * @param what What it is, for messages. Default `"tokenizer file"`.
 * @returns The text.
 * @throws {FormatError} naming the file.
 *
 * @example
 * ```ts ignore
 * const text = await readTokenizerText("tokenizer.tiktoken");
 * ```
 */
export async function readTokenizerText(path: string, what = "tokenizer file"): Promise<string> {
  return new TextDecoder().decode(await readTokenizerBytes(path, what));
}

/**
 * Reads and parses a JSON tokenizer file (tokenizer.json, tokenizer_config.json).
 *
 * @param path The file.
 * @param what What it is, for messages. Default `"tokenizer file"`.
 * @returns The parsed value (unvalidated).
 * @throws {FormatError} naming the file, on one line, when it cannot be read or parsed.
 *
 * @example
 * ```ts ignore
 * const json = await readTokenizerJson("tokenizer.json");
 * ```
 */
export async function readTokenizerJson(path: string, what = "tokenizer file"): Promise<unknown> {
  return parseJson(await readTokenizerText(path, what), path);
}
