/**
 * Shared helpers for the Deno tasks that drive the Python side (python/*.py): find the
 * interpreter (`.venv/bin/python` when present, else `python3`), check that the needed
 * modules are installed, and run a script with inherited stdio so tqdm progress shows live.
 *
 * Every failure a user can fix is one line on stderr (`error: ...`) naming the command that
 * fixes it, and a non-zero exit.
 *
 * @module
 */

/** Repository root (the parent of tasks/). */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** The command that installs the Python side. */
export const SETUP_HINT = "deno task setup:python";

/** Modules every training/export script imports (checked before the script starts). */
export const TRAIN_MODULES: readonly string[] = [
  "torch",
  "numpy",
  "yaml",
  "safetensors",
  "tokenizers",
  "tiktoken",
  "tqdm",
];

/** Prints `error: <message>` on stderr and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The Python interpreter to use: `<root>/.venv/bin/python` when that exists (made by
 * `deno task setup:python`), else `python3` from PATH.
 *
 * @returns The interpreter path or command name.
 * @example
 * ```ts ignore
 * console.log(findPython()); // ".../.venv/bin/python" or "python3"
 * ```
 */
export function findPython(): string {
  const venv = `${ROOT}.venv/bin/python`;
  return exists(venv) ? venv : "python3";
}

/**
 * Checks that `python` runs and can import `modules` (without importing them: `find_spec`).
 * Exits with a one-line error naming the install command when not.
 *
 * @param python Interpreter path or name.
 * @param modules Module names to look for.
 * @example
 * ```ts ignore
 * await requireModules(findPython(), ["torch"]);
 * ```
 */
export async function requireModules(python: string, modules: readonly string[]): Promise<void> {
  const probe = "import importlib.util, sys\n" +
    "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))";
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, { args: ["-c", probe, ...modules], stderr: "piped" })
      .output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      fail(
        `${python} not found: install Python 3.10+ (e.g. \`apt-get install python3 python3-venv\`), then run \`${SETUP_HINT}\``,
      );
    }
    throw e;
  }
  if (!out.success) {
    fail(`${python} does not run (exit ${out.code}); install Python 3.10+, then \`${SETUP_HINT}\``);
  }
  const missing = new TextDecoder().decode(out.stdout).trim();
  if (missing) {
    const names = missing.split(" ").map((m) => m === "yaml" ? "pyyaml" : m).join(", ");
    fail(
      `${python} lacks ${names}: run \`${SETUP_HINT}\` (pip install -r python/requirements.txt)`,
    );
  }
}

/**
 * Runs `python/<script>` with `args` from the repository root, stdio inherited (live
 * progress), after {@linkcode requireModules}. Resolves to the script's exit code.
 *
 * @param script File name under python/, e.g. `train.py`.
 * @param args Command-line arguments passed through.
 * @param modules Modules to require first.
 * @returns The exit code.
 * @example
 * ```ts ignore
 * Deno.exit(await runPython("train.py", ["--config", "configs/tiny.yaml"]));
 * ```
 */
export async function runPython(
  script: string,
  args: readonly string[],
  modules: readonly string[] = TRAIN_MODULES,
): Promise<number> {
  const python = findPython();
  await requireModules(python, modules);
  const child = new Deno.Command(python, {
    args: [`${ROOT}python/${script}`, ...args],
    cwd: ROOT,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    env: { PYTHONUNBUFFERED: "1" },
  }).spawn();
  const status = await child.status;
  return status.code;
}

/**
 * Entry point shared by the thin task scripts: runs the script with `Deno.args` and exits
 * with its code.
 *
 * @param script File name under python/.
 * @example
 * ```ts ignore
 * if (import.meta.main) await main("export.py");
 * ```
 */
export async function main(script: string): Promise<never> {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  Deno.exit(await runPython(script, args));
}
