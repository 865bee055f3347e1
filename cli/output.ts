/**
 * Output of the `gollm` subcommands: stdout text and JSON, stderr lines, and the formatting
 * of byte counts and integers.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Writes text to stdout (all of it, awaiting the OS).
 *
 * @throws {Deno.errors.BrokenPipe} when the reader went away (cli/main.ts exits 0 then).
 *
 * @example
 * ```ts
 * import { out } from "./output.ts";
 * await out("hello\n");
 * ```
 */
export async function out(text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
}

/**
 * Writes `value` to stdout as one line of JSON.
 *
 * @example
 * ```ts
 * import { outJson } from "./output.ts";
 * await outJson({ ids: [1, 2] }); // {"ids":[1,2]}
 * ```
 */
export function outJson(value: unknown): Promise<void> {
  return out(JSON.stringify(value) + "\n");
}

/**
 * Writes one line to stderr.
 *
 * @example
 * ```ts
 * import { err } from "./output.ts";
 * err("note: something");
 * ```
 */
export function err(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * Human-readable byte count, SI units (1 kB = 1000 B).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./output.ts";
 * console.log(formatBytes(1_500_000)); // "1.50 MB"
 * ```
 */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n / 1000, i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/**
 * Integer with thousands separators.
 *
 * @example
 * ```ts
 * import { formatCount } from "./output.ts";
 * console.log(formatCount(85312256)); // "85,312,256"
 * ```
 */
export function formatCount(n: number): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
