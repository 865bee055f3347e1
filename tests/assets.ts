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
