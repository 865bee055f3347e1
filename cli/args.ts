/**
 * Command-line parsing for the `gollm` subcommands. Each command declares ONE
 * {@linkcode CommandSpec}: its options with type, range, default and description, and its
 * positional arguments. Both the parser ({@linkcode parse}) and the `--help` text
 * ({@linkcode helpText}) are generated from it, so they cannot disagree.
 *
 * Parsing rules (getopt_long with argparse's treatment of negative numbers):
 * - `--name VALUE`, `--name=VALUE`, `-n VALUE`, `-nVALUE`; `--` ends the options.
 * - The argument after an option that takes a value is its value unless it looks like an
 *   option: it starts with `-` and is not a number (`--temperature -1` is a value;
 *   `--prompt --json` is a missing value; write `--prompt=-x` for text starting with `-`).
 * - Every value is checked against its spec (integer, number, range, choice) before the
 *   command runs, and reported in the CLI's own option names:
 *   `--top-k must be an integer >= 0, got '-3'`.
 * - A positional argument may stand for an option (`gollm inspect PATH` = `--model PATH`).
 *
 * @module
 */

/**
 * A command-line mistake: printed as `error: ...` plus the usage line; exit status 2.
 * Not a {@linkcode GollmError}: cli/main.ts maps exit codes by error type (GollmError → 1,
 * UsageError → 2).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./args.ts";
 * const e = new UsageError("unknown option '--x'", "usage: gollm generate [options]");
 * assert.equal(e.usage, "usage: gollm generate [options]");
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

/** The kind of value an option takes. */
export type OptionType = "string" | "int" | "number" | "bool" | "choice";

/** One option of a command (its long name is the key in {@linkcode CommandSpec.options}). */
export interface OptionSpec {
  /** Value kind: text, integer, finite number, flag (no value), or one of `choices`. */
  readonly type: OptionType;
  /** One-letter alias (`n` for `-n`). */
  readonly short?: string;
  /** Placeholder of the value in help and messages (`PATH`, `N`). Default by type. */
  readonly meta?: string;
  /** One sentence for `--help` (wrapped to the help's width). */
  readonly description: string;
  /** The value when the option is absent (shown in help as `(default X)`). */
  readonly default?: string | number | boolean;
  /** Help text for a default that is not a constant (`the model's, else 0.8`). */
  readonly defaultText?: string;
  /** Lower bound of an int/number value (inclusive unless `minExclusive`). */
  readonly min?: number;
  /** Upper bound of an int/number value (inclusive unless `maxExclusive`). */
  readonly max?: number;
  /** The lower bound itself is not allowed (`--top-p` in (0, 1]). */
  readonly minExclusive?: boolean;
  /** The upper bound itself is not allowed. */
  readonly maxExclusive?: boolean;
  /** The allowed values of a `choice` option. */
  readonly choices?: readonly string[];
  /** May be given several times; the value is the list (empty when absent). */
  readonly repeatable?: boolean;
  /** Must be given (`--config FILE is required`). */
  readonly required?: boolean;
}

/** A positional argument. */
export interface PositionalSpec {
  /** Its name in usage and help (`PATH`, `IN`). */
  readonly name: string;
  /** One sentence for `--help`. */
  readonly description: string;
  /** The option it stands for (`model`: `inspect PATH` = `inspect --model PATH`). */
  readonly option?: string;
  /** Must be given (when it stands for an option: it or the option). */
  readonly required?: boolean;
}

/** Everything about one command's command line: parser and `--help` come from it. */
export interface CommandSpec {
  /** Its name (`generate`). */
  readonly name: string;
  /** One line for `gollm --help`. */
  readonly summary: string;
  /** The usage line after `usage: gollm NAME ` (`[PATH] [--prompt TEXT] [options]`). */
  readonly usage: string;
  /** What the command does: a paragraph for `--help` (kept as written). */
  readonly description: string;
  /** Positional arguments in order (default: none). */
  readonly positionals?: readonly PositionalSpec[];
  /** Options by long name (`-h, --help` is added). */
  readonly options: Readonly<Record<string, OptionSpec>>;
  /** Extra help text printed after the options (kept as written). */
  readonly epilog?: string;
}

type BaseValue<O> = O extends { type: "int" | "number" } ? number
  : O extends { type: "bool" } ? boolean
  : O extends { choices: readonly (infer C)[] } ? C
  : string;

/** The parsed value of one option: lists for repeatable ones, undefined when absent. */
export type OptionValue<O> = O extends { type: "bool" } ? boolean
  : O extends { repeatable: true } ? BaseValue<O>[]
  : O extends { default: string | number | boolean } ? BaseValue<O>
  : O extends { required: true } ? BaseValue<O>
  : BaseValue<O> | undefined;

/** Parsed option values by long name, typed from the spec. */
export type Values<S extends Readonly<Record<string, OptionSpec>>> = {
  -readonly [K in keyof S]: OptionValue<S[K]>;
};

/** What {@linkcode parse} returns. */
export interface Parsed<S extends Readonly<Record<string, OptionSpec>>> {
  /** Option values by long name, checked and converted; defaults filled in. */
  values: Values<S>;
  /** Positional arguments that stand for no option, in order. */
  positionals: string[];
  /** The usage line, for later {@linkcode UsageError}s. */
  usage: string;
}

/**
 * One `gollm` subcommand (cli/main.ts dispatches on `spec.name`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Command, parse } from "./args.ts";
 * const spec = {
 *   name: "hello",
 *   summary: "print a greeting",
 *   usage: "[--times N]",
 *   description: "Greets.",
 *   options: { times: { type: "int", min: 1, default: 1, description: "how often" } },
 * } as const;
 * let said = 0;
 * const hello: Command = {
 *   spec,
 *   run(args) {
 *     const p = parse(spec, args);
 *     if (p) said += p.values.times;
 *     return Promise.resolve(0);
 *   },
 * };
 * await hello.run(["--times", "3"]);
 * assert.equal(said, 3);
 * ```
 */
export interface Command {
  /** The command line it takes. */
  readonly spec: CommandSpec;
  /**
   * Runs it.
   * @param args Arguments after the subcommand name.
   * @returns The exit status.
   * @throws {UsageError} for a command-line mistake (exit 2).
   * @throws {GollmError} for a user error such as a bad model file (exit 1).
   */
  run(args: string[]): Promise<number>;
}

const HELP_OPTION: OptionSpec = { type: "bool", short: "h", description: "show this help" };
const COLUMN = 23; // help: descriptions start here
const WIDTH = 96; // help: wrap descriptions to this many columns

function metaOf(spec: OptionSpec): string {
  if (spec.meta) return spec.meta;
  switch (spec.type) {
    case "int":
      return "N";
    case "number":
      return "X";
    case "choice":
      return (spec.choices ?? []).join("|");
    default:
      return "TEXT";
  }
}

/** `>= 0`, `> 0`, `in (0, 1]`, or "" without bounds. */
function rangeText(spec: OptionSpec): string {
  const { min, max } = spec;
  if (min !== undefined && max !== undefined) {
    return `in ${spec.minExclusive ? "(" : "["}${min}, ${max}${spec.maxExclusive ? ")" : "]"}`;
  }
  if (min !== undefined) return `${spec.minExclusive ? ">" : ">="} ${min}`;
  if (max !== undefined) return `${spec.maxExclusive ? "<" : "<="} ${max}`;
  return "";
}

function inRange(spec: OptionSpec, x: number): boolean {
  const { min, max } = spec;
  if (min !== undefined && (spec.minExclusive ? !(x > min) : !(x >= min))) return false;
  if (max !== undefined && (spec.maxExclusive ? !(x < max) : !(x <= max))) return false;
  return true;
}

const INT_RE = /^[+-]?\d+$/;
const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Converts and checks one option value against its spec.
 *
 * @param name Long option name (for the message).
 * @param spec Its spec.
 * @param raw The text given.
 * @param usage Usage line for the error.
 * @returns The value: a number for int/number, the text otherwise.
 * @throws {UsageError} `--NAME must be an integer >= 0, got '-3'` and the like.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkValue } from "./args.ts";
 * const topP = { type: "number", min: 0, max: 1, minExclusive: true, description: "p" } as const;
 * assert.equal(checkValue("top-p", topP, "0.9", "usage"), 0.9);
 * assert.throws(() => checkValue("top-p", topP, "0", "usage"), /--top-p must be a number in \(0, 1\], got '0'/);
 * ```
 */
export function checkValue(
  name: string,
  spec: OptionSpec,
  raw: string,
  usage: string,
): string | number {
  const range = rangeText(spec);
  const fail = (what: string): never => {
    throw new UsageError(
      `--${name} must be ${what}${range ? " " + range : ""}, got '${raw}'`,
      usage,
    );
  };
  switch (spec.type) {
    case "int": {
      const n = Number(raw);
      if (!INT_RE.test(raw.trim()) || !Number.isSafeInteger(n) || !inRange(spec, n)) {
        return fail("an integer");
      }
      return n;
    }
    case "number": {
      const n = Number(raw);
      if (!NUMBER_RE.test(raw.trim()) || !Number.isFinite(n) || !inRange(spec, n)) {
        return fail("a number");
      }
      return n;
    }
    case "choice":
      if (!(spec.choices ?? []).includes(raw)) {
        throw new UsageError(
          `--${name} must be one of ${(spec.choices ?? []).join(", ")}, got '${raw}'`,
          usage,
        );
      }
      return raw;
    default:
      return raw;
  }
}

/** Whether `arg` reads as an option rather than a value: `-x`, `--x`, but not `-3`, `-.5`, `-`. */
function looksLikeOption(arg: string): boolean {
  return arg.length > 1 && arg.startsWith("-") && !NUMBER_RE.test(arg);
}

/**
 * Parses `args` against `spec`. `--help`/`-h` prints {@linkcode helpText} to stdout and
 * returns null. Values are converted and range-checked here, before the command loads
 * anything; absent options get their spec default (false for flags, [] for repeatable).
 *
 * @param spec The command's spec.
 * @param args Arguments after the subcommand name.
 * @returns Values, the positionals that stand for no option, the usage line; or null after
 *   printing the help.
 * @throws {UsageError} for an unknown option, a missing or superfluous value, a value of the
 *   wrong type or out of range, a missing required option, a surplus positional, or a
 *   positional given together with the option it stands for.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parse } from "./args.ts";
 * const spec = {
 *   name: "x",
 *   summary: "",
 *   usage: "[PATH] [options]",
 *   description: "",
 *   positionals: [{ name: "PATH", description: "model", option: "model" }],
 *   options: {
 *     model: { type: "string", meta: "PATH", description: "model" },
 *     temperature: { type: "number", min: 0, description: "T" },
 *     "max-tokens": { type: "int", short: "n", min: 0, default: 256, description: "N" },
 *   },
 * } as const;
 * const p = parse(spec, ["m.gguf", "--temperature", "0.5"])!;
 * assert.deepEqual(p.values, { model: "m.gguf", temperature: 0.5, "max-tokens": 256 });
 * assert.throws(
 *   () => parse(spec, ["--temperature", "-1"]),
 *   /--temperature must be a number >= 0, got '-1'/,
 * );
 * ```
 */
export function parse<S extends CommandSpec>(
  spec: S,
  args: readonly string[],
): Parsed<S["options"]> | null {
  const usage = usageLine(spec);
  const options: Record<string, OptionSpec> = { ...spec.options, help: HELP_OPTION };
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) byShort.set(o.short, name);
  const raw = new Map<string, string[]>(); // long name -> values given (flags: "")
  const positionals: string[] = [];

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!looksLikeOption(arg)) {
      positionals.push(arg);
      continue;
    }
    let name: string, inline: string | undefined, shown: string;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      shown = `--${name}`;
      if (!Object.hasOwn(options, name)) throw new UsageError(`unknown option '${shown}'`, usage);
    } else {
      const long = byShort.get(arg[1]);
      if (long === undefined) throw new UsageError(`unknown option '${arg.slice(0, 2)}'`, usage);
      name = long;
      shown = arg.slice(0, 2);
      inline = arg.length > 2 ? arg.slice(2).replace(/^=/, "") : undefined;
    }
    const o = options[name];
    if (o.type === "bool") {
      if (inline !== undefined) {
        throw new UsageError(`option '${shown}' does not take a value`, usage);
      }
      raw.set(name, [""]);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      const next = args[i + 1];
      if (next === undefined || looksLikeOption(next)) {
        throw new UsageError(`option '${shown}' needs a value`, usage);
      }
      value = next;
      i++;
    }
    const list = raw.get(name) ?? [];
    if (o.repeatable) list.push(value);
    else list[0] = value; // the last one given wins, as in getopt
    raw.set(name, list);
  }

  if (raw.has("help")) {
    console.log(helpText(spec));
    return null;
  }

  // Positionals fill the specs in order. One that stands for an option given as an option is
  // skipped when the rest still fit (`convert --model IN OUT`); otherwise giving both is a
  // mistake (`inspect PATH --model PATH`).
  const rest: string[] = [];
  const posSpecs = spec.positionals ?? [];
  const open = posSpecs.filter((ps) => !(ps.option && raw.has(ps.option)));
  const targets = positionals.length <= open.length ? open : posSpecs;
  const filled = new Set<PositionalSpec>();
  positionals.forEach((p, k) => {
    const ps = targets[k];
    if (ps === undefined) throw new UsageError(`unexpected argument '${p}'`, usage);
    if (ps.option === undefined) rest.push(p);
    else if (raw.has(ps.option)) {
      throw new UsageError(
        `give the ${ps.name} as an argument or as --${ps.option}, not both ` +
          `('${p}' and '${raw.get(ps.option)![0]}')`,
        usage,
      );
    } else raw.set(ps.option, [p]);
    filled.add(ps);
  });
  for (const ps of posSpecs) {
    if (ps.required && !filled.has(ps) && !(ps.option && raw.has(ps.option))) {
      throw new UsageError(`missing ${ps.name}`, usage);
    }
  }

  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const given = raw.get(name);
    if (o.type === "bool") values[name] = given !== undefined;
    else if (given === undefined) {
      if (o.required) throw new UsageError(`--${name} ${metaOf(o)} is required`, usage);
      values[name] = o.repeatable ? [] : o.default;
    } else {
      const checked = given.map((v) => checkValue(name, o, v, usage));
      values[name] = o.repeatable ? checked : checked[0];
    }
  }
  return { values: values as Values<S["options"]>, positionals: rest, usage };
}

/**
 * The usage line of a command: `usage: gollm NAME USAGE`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { usageLine } from "./args.ts";
 * const spec = { name: "bench", summary: "", usage: "--config FILE", description: "", options: {} };
 * assert.equal(usageLine(spec), "usage: gollm bench --config FILE");
 * ```
 */
export function usageLine(spec: CommandSpec): string {
  return `usage: gollm ${spec.name} ${spec.usage}`;
}

/** Wraps `text` into lines of at most `width - indent` characters after the first. */
function wrap(text: string, first: number): string[] {
  const lines: string[] = [];
  let line = "", room = WIDTH - first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = WIDTH - COLUMN;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines;
}

function helpRow(label: string, text: string): string {
  const head = `  ${label}`;
  const pad = head.length + 1 >= COLUMN ? `${head}\n${" ".repeat(COLUMN)}` : head.padEnd(COLUMN);
  const body = wrap(text, COLUMN);
  return pad + body.join(`\n${" ".repeat(COLUMN)}`);
}

/** The help line text of one option: description plus `(default X)`. */
function optionHelp(o: OptionSpec): string {
  let text = o.description;
  if (o.defaultText !== undefined) text += ` (default: ${o.defaultText})`;
  else if (o.default !== undefined && o.type !== "bool") text += ` (default ${o.default})`;
  if (o.repeatable) text += " (repeatable)";
  return text;
}

/**
 * The `--help` text of a command, generated from its spec: usage line, description,
 * arguments, options (each with its value placeholder, description and default), epilog.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { helpText } from "./args.ts";
 * const text = helpText({
 *   name: "x",
 *   summary: "",
 *   usage: "[options]",
 *   description: "Does x.",
 *   options: { "top-k": { type: "int", min: 0, default: 0, meta: "K", description: "keep K" } },
 * });
 * assert.match(text, /^usage: gollm x \[options\]\n\nDoes x\.\n/);
 * assert.match(text, /\n  --top-k K            keep K \(default 0\)\n/);
 * assert.match(text, /\n  -h, --help           show this help$/);
 * ```
 */
export function helpText(spec: CommandSpec): string {
  const parts = [usageLine(spec), "", spec.description];
  const pos = spec.positionals ?? [];
  if (pos.length > 0) {
    parts.push("", "arguments:");
    for (const p of pos) {
      parts.push(
        helpRow(p.name, p.option ? `${p.description} (same as --${p.option})` : p.description),
      );
    }
  }
  parts.push("", "options:");
  for (const [name, o] of Object.entries({ ...spec.options, help: HELP_OPTION })) {
    const flag = `${o.short ? `-${o.short}, ` : ""}--${name}${
      o.type === "bool" ? "" : ` ${metaOf(o)}`
    }`;
    parts.push(helpRow(flag, optionHelp(o)));
  }
  if (spec.epilog) parts.push("", spec.epilog);
  return parts.join("\n");
}
