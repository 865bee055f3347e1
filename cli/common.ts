/**
 * Shared pieces of the `gollm` subcommands: strict argument parsing with usage errors,
 * numeric flag checks, progress on stderr, output helpers, the default model path.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GollmError } from "../engine/errors.ts";
import type { ProgressCallback } from "../engine/progress.ts";

/** A command-line mistake: printed as `error: ...` plus the usage line; exit status 2. */
export class UsageError extends Error {
  /** The usage line of the command that was misused. */
  readonly usage: string;
  /**
   * @param message What is wrong, e.g. `unknown option '--x'`.
   * @param usage The command's usage line.
   */
  constructor(message: string, usage: string) {
    super(message);
    this.name = "UsageError";
    this.usage = usage;
  }
}

/** One `gollm` subcommand. */
export interface Command {
  /** Its name (`generate`). */
  name: string;
  /** One-line summary for `gollm --help`. */
  summary: string;
  /** Full help text; its first line is the usage line. */
  help: string;
  /**
   * Runs it.
   * @param args Arguments after the subcommand name.
   * @returns The exit status.
   */
  run(args: string[]): Promise<number>;
}

/** Option specs as `node:util` parseArgs takes them. */
export type OptionSpecs = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: boolean }
>;

/** Parsed values: strings, booleans, or string lists for `multiple` options. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/**
 * Parses `args` strictly. `--help`/`-h` prints the help to stdout and returns null.
 *
 * @param help The command's help text (first line: usage).
 * @param args Arguments.
 * @param options Option specs (help is added).
 * @param positionals How many positional arguments are allowed (default 0).
 * @returns Values and positionals, or null when help was printed.
 * @throws {UsageError} for an unknown option, a missing value, or extra positionals.
 */
export function parse(
  help: string,
  args: string[],
  options: OptionSpecs,
  positionals = 0,
): { values: Values; positionals: string[] } | null {
  const usage = help.split("\n")[0];
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      strict: true,
      allowPositionals: positionals > 0,
    });
  } catch (e) {
    const err = e as Error & { code?: string };
    const quoted = err.message.match(/'([^']*)'/)?.[1] ?? "";
    switch (err.code) {
      case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
        throw new UsageError(`unknown option '${quoted}'`, usage);
      case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
        throw new UsageError(`unexpected argument '${quoted}'`, usage);
      case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE": {
        const name = quoted.split(" ")[0];
        throw new UsageError(
          /does not take/.test(err.message)
            ? `option '${name}' does not take a value`
            : `option '${name}' needs a value`,
          usage,
        );
      }
      default:
        throw new UsageError(err.message, usage);
    }
  }
  if (parsed.values.help) {
    console.log(help);
    return null;
  }
  if (parsed.positionals.length > positionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals]}'`, usage);
  }
  return { values: parsed.values as Values, positionals: parsed.positionals };
}

/** Reads a string option (undefined when absent). */
export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * Reads an integer option.
 * @throws {UsageError} when it is not an integer >= min.
 */
export function int(
  values: Values,
  name: string,
  usage: string,
  min = 0,
): number | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`, usage);
  }
  return n;
}

/**
 * Reads a number option.
 * @throws {UsageError} when it is not a finite number within [min, max].
 */
export function num(
  values: Values,
  name: string,
  usage: string,
  min = 0,
  max = Infinity,
): number | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    const range = max === Infinity ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new UsageError(`--${name} must be a number ${range}, got '${v}'`, usage);
  }
  return n;
}

/**
 * Reads an option restricted to a few values.
 * @throws {UsageError} for any other value.
 */
export function choice<T extends string>(
  values: Values,
  name: string,
  usage: string,
  allowed: readonly T[],
): T | undefined {
  const v = str(values, name);
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) {
    throw new UsageError(`--${name} must be one of ${allowed.join(", ")}, got '${v}'`, usage);
  }
  return v as T;
}

const encoder = new TextEncoder();

/** Writes text to stdout (all of it, awaiting the OS). */
export async function out(text: string): Promise<void> {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += await Deno.stdout.write(bytes.subarray(off));
}

/** Writes one line to stderr. */
export function err(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/** The shipped default model directory, resolved from this module's location (any cwd). */
export function defaultModelPath(): string {
  const url = new URL("../models/default", import.meta.url);
  if (url.protocol !== "file:") {
    throw new GollmError(
      `no --model given and the default model is only available from a local checkout ` +
        `(this module runs from ${url.origin}); pass --model PATH`,
    );
  }
  const path = decodeURIComponent(url.pathname);
  try {
    Deno.statSync(`${path}/config.yaml`);
  } catch {
    throw new GollmError(
      `no --model given and the default model ${path} is missing; pass --model PATH`,
    );
  }
  return path;
}

/** Human-readable byte count (`1.5 MB`, SI units). */
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

/** Integer with thousands separators (`85,312,256`). */
export function formatCount(n: number): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A progress display on stderr: a redrawn status line on a terminal, silence otherwise. */
export interface Progress {
  /** Pass to loaders. */
  onProgress: ProgressCallback;
  /** Ends the display and prints one summary line (`label in 1.23 s`). */
  done(summary: string): void;
  /** Ends the display without a summary (on error). */
  clear(): void;
}

/**
 * Starts a progress display. On a terminal each event redraws one status line with the
 * elapsed time; otherwise only `done`'s summary line is printed.
 *
 * @param quiet Print nothing at all (not even the summary).
 */
export function progress(quiet = false): Progress {
  const tty = !quiet && Deno.stderr.isTerminal();
  const t0 = performance.now();
  let shown = false;
  let stage = "";
  let timer: ReturnType<typeof setInterval> | undefined;
  const draw = () => {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${stage} (${secs} s)`));
    shown = true;
  };
  const clear = () => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    if (shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    shown = false;
  };
  return {
    onProgress: (e) => {
      if (!tty) return;
      const pct = e.fraction === undefined ? "" : ` ${Math.round(e.fraction * 100)}%`;
      stage = `${e.stage}${pct}`;
      draw();
      if (timer === undefined) {
        // Keep the elapsed time moving during long asynchronous reads.
        timer = setInterval(draw, 250);
        const t = timer as unknown;
        if (typeof t === "number") Deno.unrefTimer(t);
        else (t as { unref?: () => void }).unref?.();
      }
    },
    done: (summary) => {
      clear();
      if (!quiet) err(`${summary} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    },
    clear,
  };
}

/** Common help lines for the sampling options of generate and chat. */
export const SAMPLING_HELP =
  `  --temperature T      softmax temperature; 0 = greedy (default: model's, else 0.8)
  --top-k K            keep the K most likely tokens (0 = off)
  --top-p P            nucleus sampling mass in (0, 1] (default: model's, else 0.95)
  --min-p P            drop tokens below P x the top probability (default 0 = off)
  --repeat-penalty R   penalise tokens already in the context (default 1 = off)
  --seed S             PRNG seed: the same seed gives the same text (default: random)`;

/** Option specs of the sampling flags. */
export const SAMPLING_OPTIONS: OptionSpecs = {
  temperature: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  seed: { type: "string" },
};

/** Reads the sampling flags into `GenerateOptions` fields. */
export function samplingOptions(values: Values, usage: string): {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  seed?: number;
} {
  const topP = num(values, "top-p", usage, 0, 1);
  if (topP === 0) throw new UsageError("--top-p must be in (0, 1], got '0'", usage);
  return {
    temperature: num(values, "temperature", usage, 0),
    topK: int(values, "top-k", usage, 0),
    topP,
    minP: num(values, "min-p", usage, 0, 1),
    repeatPenalty: num(values, "repeat-penalty", usage, 0),
    seed: int(values, "seed", usage, 0),
  };
}

/**
 * Writes a file atomically: to a temporary sibling, then renamed over `path`. Creates the
 * parent directory.
 * @throws {GollmError} naming `path` when it cannot be written.
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
