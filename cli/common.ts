/**
 * Shared pieces of the `gollm` subcommands: strict argument parsing with usage errors,
 * numeric flag checks, progress on stderr, output helpers, the default model path.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GollmError } from "../core/errors.ts";
import { type Backend, type GenerateOptions, loadModel, type Model } from "../runtime/model.ts";
import type { ProgressCallback } from "../core/progress.ts";
import { defaultModelCacheDir, defaultModelVersion, fetchDefaultModel } from "./default_model.ts";

/**
 * A command-line mistake: printed as `error: ...` plus the usage line; exit status 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./common.ts";
 * const e = new UsageError("unknown option '--x'", "usage: gollm generate [options]");
 * console.log(e.message, e.usage);
 * ```
 */
export class UsageError extends Error {
  /** The usage line of the command that was misused. */
  readonly usage: string;
  /**
   * Creates the error.
   * @param message What is wrong, e.g. `unknown option '--x'`.
   * @param usage The command's usage line.
   */
  constructor(message: string, usage: string) {
    super(message);
    this.name = "UsageError";
    this.usage = usage;
  }
}

/**
 * One `gollm` subcommand (cli/main.ts dispatches on `name`).
 *
 * @example
 * ```ts
 * import { type Command, parse } from "./common.ts";
 * const hello: Command = {
 *   name: "hello",
 *   summary: "print hello",
 *   help: "usage: gollm hello\n\n  -h, --help           show this help",
 *   async run(args) {
 *     if (!parse(this.help, args, {})) return 0;
 *     console.log("hello");
 *     return 0;
 *   },
 * };
 * await hello.run([]);
 * ```
 */
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
   * @throws {UsageError} for a command-line mistake (exit 2).
   * @throws {GollmError} for a user error such as a bad model file (exit 1).
   */
  run(args: string[]): Promise<number>;
}

/** Option specs as `node:util` parseArgs takes them (`{name: {type, short?, multiple?}}`). */
export type OptionSpecs = Record<
  string,
  { type: "string" | "boolean"; short?: string; multiple?: boolean }
>;

/** Parsed values: strings, booleans, or string lists for `multiple` options. */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** What {@linkcode parse} returns: the values, the positionals and the usage line. */
export interface Parsed {
  /** Option values by long name. */
  values: Values;
  /** Positional arguments (at most the number allowed). */
  positionals: string[];
  /** The command's usage line (first line of its help), for later {@linkcode UsageError}s. */
  usage: string;
}

/**
 * Parses `args` strictly with `node:util` parseArgs. `--help`/`-h` prints the help to stdout
 * and returns null.
 *
 * @param help The command's help text (first line: usage).
 * @param args Arguments.
 * @param options Option specs (help is added).
 * @param positionals How many positional arguments are allowed (default 0).
 * @returns Values, positionals and usage line, or null when help was printed.
 * @throws {UsageError} for an unknown option, a missing value, or extra positionals.
 *
 * @example
 * ```ts
 * import { parse } from "./common.ts";
 * const p = parse("usage: gollm x [--n N]", ["--n", "3"], { n: { type: "string" } });
 * console.log(p?.values.n); // "3"
 * ```
 */
export function parse(
  help: string,
  args: string[],
  options: OptionSpecs,
  positionals = 0,
): Parsed | null {
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
  return { values: parsed.values as Values, positionals: parsed.positionals, usage };
}

/**
 * Reads a string option.
 *
 * @returns The value, or undefined when absent.
 *
 * @example
 * ```ts
 * import { str } from "./common.ts";
 * console.log(str({ model: "m" }, "model")); // "m"
 * ```
 */
export function str(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * Reads a string option that must be given (`--config FILE is required`).
 *
 * @param values Parsed values.
 * @param name Long option name.
 * @param meta The value's placeholder in the message (`FILE`).
 * @param usage Usage line for the error.
 * @returns The value.
 * @throws {UsageError} when the option is absent.
 *
 * @example
 * ```ts
 * import { required } from "./common.ts";
 * console.log(required({ config: "c.yaml" }, "config", "FILE", "usage: gollm x")); // "c.yaml"
 * ```
 */
export function required(values: Values, name: string, meta: string, usage: string): string {
  const v = str(values, name);
  if (v === undefined) throw new UsageError(`--${name} ${meta} is required`, usage);
  return v;
}

/**
 * Reads an integer option.
 *
 * @returns The integer, or undefined when absent.
 * @throws {UsageError} when it is not an integer >= min.
 *
 * @example
 * ```ts
 * import { int } from "./common.ts";
 * console.log(int({ n: "12" }, "n", "usage: gollm x", 1)); // 12
 * ```
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
 *
 * @returns The number, or undefined when absent.
 * @throws {UsageError} when it is not a finite number within [min, max].
 *
 * @example
 * ```ts
 * import { num } from "./common.ts";
 * console.log(num({ "top-p": "0.9" }, "top-p", "usage: gollm x", 0, 1)); // 0.9
 * ```
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
 *
 * @returns The value, or undefined when absent.
 * @throws {UsageError} for any other value.
 *
 * @example
 * ```ts
 * import { choice } from "./common.ts";
 * console.log(choice({ dtype: "f16" }, "dtype", "usage: gollm x", ["f32", "f16"] as const));
 * ```
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

/**
 * Writes text to stdout (all of it, awaiting the OS).
 *
 * @throws {Deno.errors.BrokenPipe} when the reader went away (cli/main.ts exits 0 then).
 *
 * @example
 * ```ts
 * import { out } from "./common.ts";
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
 * import { outJson } from "./common.ts";
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
 * import { err } from "./common.ts";
 * err("note: something");
 * ```
 */
export function err(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/**
 * The shipped default model directory of a local checkout, resolved from this module's
 * location (any cwd). For a module run from a URL (JSR) use {@linkcode resolveDefaultModel}.
 *
 * @returns An absolute path to `models/default`.
 * @throws {GollmError} when this module is not a local file or the directory is missing.
 *
 * @example
 * ```ts ignore
 * import { defaultModelPath } from "./common.ts";
 * console.log(defaultModelPath()); // /.../models/default
 * ```
 */
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

/**
 * The default model's directory, wherever this module runs from: `models/default` beside it
 * in a local checkout; when run from a URL (`deno run jsr:@gollm/cli ...`), the same files
 * downloaded once from `../models/default/` relative to this module into
 * `~/.cache/gollm/default-<version>` (see cli/default_model.ts), with a progress line.
 *
 * @param quiet Print no progress (e.g. with `--json`).
 * @returns A local directory path.
 * @throws {GollmError} when the local directory is missing, or the download fails.
 *
 * @example
 * ```ts ignore
 * import { resolveDefaultModel } from "./common.ts";
 * console.log(await resolveDefaultModel()); // /.../models/default
 * ```
 */
export async function resolveDefaultModel(quiet = false): Promise<string> {
  const base = new URL("../models/default/", import.meta.url);
  if (base.protocol === "file:") return defaultModelPath();
  const dir = defaultModelCacheDir(await defaultModelVersion(base));
  return await withProgress(
    quiet,
    (onProgress) => fetchDefaultModel(base, dir, { onProgress }),
    (d) => `default model ${base.href} -> ${d}`,
  );
}

/**
 * Human-readable byte count, SI units (1 kB = 1000 B).
 *
 * @example
 * ```ts
 * import { formatBytes } from "./common.ts";
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
 * import { formatCount } from "./common.ts";
 * console.log(formatCount(85312256)); // "85,312,256"
 * ```
 */
export function formatCount(n: number): string {
  return n.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/**
 * A progress display on stderr: a redrawn status line on a terminal, silence otherwise.
 *
 * @example
 * ```ts
 * import { progress } from "./common.ts";
 * const p = progress();
 * p.onProgress({ stage: "reading", fraction: 0.5 });
 * p.done("loaded x"); // stderr: "loaded x in 0.00 s"
 * ```
 */
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
 * @returns The display; end it with `done` or `clear`.
 *
 * @example
 * ```ts
 * import { progress } from "./common.ts";
 * const p = progress(true); // quiet: nothing is printed
 * p.onProgress({ stage: "compiling kernels" });
 * p.clear();
 * ```
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

/**
 * Runs `work` under a {@linkcode progress} display: on success prints `summary(result)` with
 * the elapsed time (`loaded m in 0.12 s`), on error clears the display and rethrows.
 *
 * @param quiet Print nothing (e.g. with `--json`).
 * @param work The long job; receives the progress callback to pass to loaders.
 * @param summary The summary line for the result (may read files; counted in the time).
 * @returns What `work` returned.
 * @throws Whatever `work` or `summary` throws.
 *
 * @example
 * ```ts ignore
 * import { withProgress } from "./common.ts";
 * import { loadCheckpoint } from "../formats/load.ts";
 * const ckpt = await withProgress(
 *   false,
 *   (onProgress) => loadCheckpoint("models/default", { onProgress }),
 *   (c) => `loaded ${c.path}`,
 * );
 * ```
 */
export async function withProgress<T>(
  quiet: boolean,
  work: (onProgress: ProgressCallback) => Promise<T>,
  summary: (result: T) => string | Promise<string>,
): Promise<T> {
  const prog = progress(quiet);
  let result: T, line: string;
  try {
    result = await work(prog.onProgress);
    line = await summary(result);
  } catch (e) {
    prog.clear();
    throw e;
  }
  prog.done(line);
  return result;
}

/** Option specs of the flags that pick and load a model (generate, chat, logits). */
export const MODEL_OPTIONS: OptionSpecs = {
  model: { type: "string" },
  backend: { type: "string" },
  "kv-capacity": { type: "string" },
  tokenizer: { type: "string" },
};

/** The {@linkcode MODEL_OPTIONS} values, checked; `model` is resolved when loading. */
export interface ModelFlags {
  /** `--model` (undefined: the shipped default, resolved by {@linkcode loadModelFlags}). */
  model?: string;
  /** `--backend` (default `jit`). */
  backend: Backend;
  /** `--kv-capacity`, in tokens (>= 1). */
  kvCapacity?: number;
  /** `--tokenizer`. */
  tokenizerPath?: string;
  /**
   * Load a model directory whose tokenizer file is missing or malformed without a tokenizer
   * (set by commands that only need token ids, e.g. `logits --tokens`). Default false.
   */
  optionalTokenizer?: boolean;
}

/**
 * Reads and checks the {@linkcode MODEL_OPTIONS} flags (backend first, then kv capacity).
 *
 * @throws {UsageError} for a backend other than jit/reference or a kv capacity below 1.
 *
 * @example
 * ```ts
 * import { modelFlags } from "./common.ts";
 * console.log(modelFlags({ "kv-capacity": "64" }, "usage: gollm x")); // backend "jit", kvCapacity 64
 * ```
 */
export function modelFlags(values: Values, usage: string): ModelFlags {
  return {
    model: str(values, "model"),
    backend: choice(values, "backend", usage, ["jit", "reference", "wasm"] as const) ?? "jit",
    kvCapacity: int(values, "kv-capacity", usage, 1),
    tokenizerPath: str(values, "tokenizer"),
  };
}

/**
 * Loads the model the flags name (default: the shipped models/default) under a progress
 * display that ends with `loaded PATH (format, backend) in T s` on stderr.
 *
 * @param flags From {@linkcode modelFlags}.
 * @param quiet Print nothing (e.g. with `--json`).
 * @returns The model and the path it was loaded from.
 * @throws {GollmError} for a missing default model or a missing/malformed checkpoint.
 *
 * @example
 * ```ts ignore
 * import { loadModelFlags, modelFlags } from "./common.ts";
 * const { model, path } = await loadModelFlags(modelFlags({}, "usage: gollm x"));
 * console.log(path, model.config.n_layers);
 * ```
 */
export async function loadModelFlags(
  flags: ModelFlags,
  quiet = false,
): Promise<{ model: Model; path: string }> {
  const path = flags.model ?? await resolveDefaultModel(quiet);
  const { backend, kvCapacity, tokenizerPath, optionalTokenizer } = flags;
  const model = await withProgress(
    quiet,
    (onProgress) =>
      loadModel(path, { backend, kvCapacity, tokenizerPath, optionalTokenizer, onProgress }),
    (m) => `loaded ${path} (${m.checkpoint.format}, ${backend})`,
  );
  return { model, path };
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

/** The sampling fields of {@linkcode GenerateOptions} that the sampling flags set. */
export type SamplingFlags = Pick<
  GenerateOptions,
  "temperature" | "topK" | "topP" | "minP" | "repeatPenalty" | "seed"
>;

/**
 * Reads the sampling flags into `GenerateOptions` fields (undefined where not given).
 *
 * @throws {UsageError} for a value out of range (top-p must be in (0, 1]).
 *
 * @example
 * ```ts
 * import { samplingOptions } from "./common.ts";
 * console.log(samplingOptions({ temperature: "0", seed: "7" }, "usage: gollm x"));
 * ```
 */
export function samplingOptions(values: Values, usage: string): SamplingFlags {
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
