/**
 * Command-line parsing shared by the `gollm` subcommands: the {@linkcode Command} shape,
 * strict argument parsing with usage errors, numeric and choice flag checks.
 *
 * @module
 */
import { parseArgs } from "node:util";

/**
 * A command-line mistake: printed as `error: ...` plus the usage line; exit status 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./args.ts";
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
 * import { type Command, parse } from "./args.ts";
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
 * import { parse } from "./args.ts";
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
 * import { str } from "./args.ts";
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
 * import { required } from "./args.ts";
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
 * import { int } from "./args.ts";
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
 * import { num } from "./args.ts";
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
 * import { choice } from "./args.ts";
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
