/**
 * Output of the `gollm` subcommands: stdout text and JSON, stderr lines (`note:` lines that
 * keep a terminal's streamed text intact), and the formatting of byte counts and integers.
 *
 * @module
 */

const encoder = new TextEncoder();
/** Whether everything written to stdout so far ends with a line break (or nothing was). */
let stdoutAtLineStart = true;

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
  if (text.length > 0) stdoutAtLineStart = text.endsWith("\n");
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
 * Whether a stderr line must first end the line stdout is in the middle of: only when both
 * go to a terminal (then they share the screen) and stdout's last line is unfinished.
 * Piped output is never touched.
 *
 * @param atLineStart Whether stdout's text so far ends with a line break.
 * @param stdoutTty Whether stdout is a terminal.
 * @param stderrTty Whether stderr is a terminal.
 * @returns True when a line break should go to stdout first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { breakLineFirst } from "./output.ts";
 * assert.equal(breakLineFirst(false, true, true), true); // "Once upon a" + note
 * assert.equal(breakLineFirst(false, false, true), false); // stdout piped: left alone
 * assert.equal(breakLineFirst(true, true, true), false);
 * ```
 */
export function breakLineFirst(
  atLineStart: boolean,
  stdoutTty: boolean,
  stderrTty: boolean,
): boolean {
  return !atLineStart && stdoutTty && stderrTty;
}

/**
 * Writes `note: MESSAGE` to stderr on a line of its own: on a terminal where streamed text
 * is mid-line, the line is ended first (the text then goes on below the note).
 *
 * @param message One line.
 *
 * @example
 * ```ts
 * import { note } from "./output.ts";
 * note("the sequence passed the KV capacity");
 * ```
 */
export function note(message: string): void {
  if (breakLineFirst(stdoutAtLineStart, Deno.stdout.isTerminal(), Deno.stderr.isTerminal())) {
    Deno.stdout.writeSync(encoder.encode("\n"));
    stdoutAtLineStart = true;
  }
  err(`note: ${message}`);
}

/**
 * Human-readable byte count, SI units (1 kB = 1000 B).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./output.ts";
 * import assert from "node:assert/strict";
 * assert.equal(formatBytes(1_500_000), "1.50 MB");
 * assert.equal(formatBytes(999), "999 B");
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
 * import assert from "node:assert/strict";
 * assert.equal(formatCount(85312256), "85,312,256");
 * ```
 */
export function formatCount(n: number): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}
