/**
 * The `gollm` command line: `deno run -A cli/main.ts <command> [options]`, also the
 * package's `./cli` export.
 *
 * Exit status: 0 success; 1 a user error (a {@linkcode GollmError}: bad model, config or
 * file), printed as one `error: ...` line without a stack trace; 2 a command-line mistake
 * (unknown command or option, bad flag value), printed with the usage line.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { bench } from "./bench.ts";
import { chat } from "./chat.ts";
import { type Command, UsageError } from "./args.ts";
import { err } from "./output.ts";
import { convert } from "./convert.ts";
import { generate } from "./generate.ts";
import { inspect } from "./inspect.ts";
import { kernels } from "./kernels.ts";
import { logits } from "./logits.ts";
import { serve } from "./serve.ts";
import { tokenize } from "./tokenize.ts";

const COMMANDS: Command[] = [
  generate,
  chat,
  serve,
  inspect,
  logits,
  tokenize,
  convert,
  kernels,
  bench,
];

const USAGE = "usage: gollm <command> [options]   (gollm <command> --help for its options)";

/**
 * The top-level help text: usage line and one line per command (`name  summary`).
 *
 * @example
 * ```ts
 * import { mainHelp } from "./main.ts";
 * import assert from "node:assert/strict";
 * assert.match(mainHelp(), /^gollm: run decoder-only transformer/);
 * assert.match(mainHelp(), /\n {2}generate +stream a continuation/);
 * ```
 */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length));
  return [
    "gollm: run decoder-only transformer language models in Deno, with a tensor JIT",
    "",
    USAGE,
    "",
    "commands:",
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}  ${c.spec.summary}`),
    "",
    "models: a gollm model directory, a Hugging Face directory (config.json + safetensors),",
    "a GGUF file, or a llama2.c .bin checkpoint (with --tokenizer PATH unless tok{vocab}.bin or",
    "tokenizer.bin sits beside it).",
  ].join("\n");
}

/**
 * Runs the `gollm` command line.
 *
 * @param args Command-line arguments (`Deno.args`).
 * @returns The exit status (0 ok, 1 user error, 2 usage error).
 * @throws Anything that is not a GollmError: a bug, reported with its stack.
 *
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * Deno.exit(await main(["inspect", "models/default"]));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined) {
    err(mainHelp());
    return 2;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(mainHelp());
    return 0;
  }
  const cmd = COMMANDS.find((c) => c.spec.name === name);
  try {
    if (!cmd) {
      throw new UsageError(
        name.startsWith("-") ? `unknown option '${name}'` : `unknown command '${name}'`,
        USAGE,
      );
    }
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      err(`error: ${e.message}`);
      err(e.usage);
      return 2;
    }
    // The reader of stdout went away (`gollm generate | head`): stop quietly.
    if (e instanceof Deno.errors.BrokenPipe) return 0;
    if (e instanceof GollmError) {
      err(`error: ${e.message.split("\n")[0]}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
