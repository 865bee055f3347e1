/**
 * Small file-system helpers shared by the checkpoint and tokenizer loaders.
 *
 * @module
 */
import { FormatError } from "./errors.ts";

/**
 * Reads and parses a JSON file.
 *
 * @param path The file to read.
 * @returns The parsed value (unvalidated: callers check its shape).
 * @throws {FormatError} `<path>: cannot be read: ...` or `<path>: is not valid JSON: ...`.
 * @example
 * ```ts ignore
 * const raw = await readJson("models/qwen/config.json");
 * ```
 */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(path, `is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * Whether `path` exists and is a regular file (false for directories and on any stat error,
 * e.g. a missing file or no permission).
 *
 * @example
 * ```ts ignore
 * if (await isFile(`${dir}/tokenizer.json`)) { ... }
 * ```
 */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}
