/**
 * Where the tests find the repository and the real (uncommitted) assets, and how they skip
 * when an asset is absent.
 *
 * Assets live in `$GOLLM_ASSETS`, default `../shared/assets` relative to the repository root
 * (see that directory's README); they are never copied into the repository. A test that needs
 * one uses `Deno.test({ ignore: !haveFiles(...), ... })`, which prints why it is skipped.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** Repository root (the parent of tests/), with a trailing slash. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** The real-asset directory: `$GOLLM_ASSETS`, else `<root>/../shared/assets`. */
export const ASSETS: string = Deno.env.get("GOLLM_ASSETS") ?? `${ROOT}../shared/assets`;

/**
 * Whether `path` exists and is a regular file (false for directories and on any stat error).
 * @example
 * ```ts ignore
 * if (isFile(`${ASSETS}/stories260K/tok512.bin`)) { ... }
 * ```
 */
export function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Whether every path in `paths` is a regular file; when not, prints one line
 * `skip <what>: missing <paths> (set GOLLM_ASSETS)` so the skipped test says why.
 *
 * @param what What is skipped, e.g. "stories260K parity tests".
 * @param paths Files the test needs (absolute, usually under {@linkcode ASSETS}).
 * @returns true when all are present.
 * @example
 * ```ts ignore
 * const have = haveFiles("tok512 tests", [`${ASSETS}/stories260K/tok512.bin`]);
 * Deno.test({ name: "...", ignore: !have, fn: () => {} });
 * ```
 */
export function haveFiles(what: string, paths: readonly string[]): boolean {
  const missing = paths.filter((p) => !isFile(p));
  if (missing.length > 0) {
    console.log(`skip ${what}: missing ${missing.join(", ")} (set GOLLM_ASSETS)`);
  }
  return missing.length === 0;
}

/**
 * stories260K's published temperature-0 output (`stories260K/stories260K.md`): the code block
 * after "Sampling this model at temperature 0.0", without its `$ ./run` line and its final
 * newline. The greedy runs of the tests must reproduce a prefix of it.
 *
 * @returns The text.
 * @throws {Error} when the file is absent or its block does not start with `$ ./run`.
 * @example
 * ```ts ignore
 * const text = await publishedStoriesText(); // "Once upon a time, there was a little girl..."
 * ```
 */
export async function publishedStoriesText(): Promise<string> {
  const md = await Deno.readTextFile(`${ASSETS}/stories260K/stories260K.md`);
  const after = md.slice(md.indexOf("Sampling this model at temperature 0.0"));
  const lines = after.split("```")[1].split("\n").slice(1); // drop the newline after the fence
  if (!lines[0].startsWith("$ ./run")) {
    throw new Error(`stories260K.md: unexpected block start: ${lines[0]}`);
  }
  return lines.slice(1).join("\n").replace(/\n$/, "");
}
