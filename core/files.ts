/**
 * Small file-system helpers shared by the readers, writers and the CLI: JSON files, file
 * checks, atomic writes.
 *
 * @module
 */
import { FormatError, GollmError } from "./errors.ts";

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

/**
 * Writes a file atomically: to a temporary sibling, then renamed over `path`. Creates the
 * parent directory; a failed write leaves no temporary file behind.
 *
 * @param path Target file.
 * @param data Text (written as UTF-8) or bytes.
 * @throws {GollmError} naming `path` when it cannot be written.
 *
 * @example
 * ```ts ignore
 * import { writeFileAtomic } from "./files.ts";
 * await writeFileAtomic("generated/k.ts", "export {};\n");
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const tmp = `${slash >= 0 ? path.slice(0, slash + 1) : ""}.${path.slice(slash + 1)}.tmp-${
    crypto.randomUUID().slice(0, 8)
  }`;
  try {
    await Deno.mkdir(dir, { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(tmp, data);
    else await Deno.writeFile(tmp, data);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new GollmError(`${path}: cannot be written: ${(e as Error).message}`);
  }
}
