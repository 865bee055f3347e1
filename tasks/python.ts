/**
 * Shared helpers for the Deno tasks that drive the Python side (python/*.py): choose the
 * interpreter, check that the needed modules are installed, and run a script with inherited
 * stdio so tqdm progress shows live.
 *
 * The interpreter is `.venv/bin/python` (made by `deno task setup:python`) when it has every
 * module the script needs. A `.venv` that lacks some (a setup that stopped halfway, e.g.
 * offline) is passed over for `python3` when that has them, with one `note:` line; when
 * neither has them the task stops with one line saying how to finish the setup.
 *
 * Ctrl-C: the terminal delivers SIGINT to Python itself; the task also forwards a SIGINT it
 * receives alone (e.g. `kill -INT`), then waits for Python to finish (training saves a
 * checkpoint first) and exits with Python's status (130 after an interrupt). Scripts run
 * through python/task_entry.py, which turns an unhandled Ctrl-C into one line.
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

/** A problem with the Python installation that the user must fix (one line). */
export class PythonSetupError extends Error {
  /** @param message One line naming the interpreter, what is missing and the fix. */
  constructor(message: string) {
    super(message);
    this.name = "PythonSetupError";
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** pip package names for import names that differ. */
function pipName(module: string): string {
  return module === "yaml" ? "pyyaml" : module;
}

/**
 * The subset of `modules` that `python` cannot import (found with `importlib.util.find_spec`,
 * nothing is imported), or null when `python` does not run at all.
 *
 * @param python Interpreter path or command name.
 * @param modules Module names to look for.
 * @returns The missing module names, in the order given; null when `python` cannot be run.
 * @example
 * ```ts ignore
 * console.log(await missingModules("python3", ["torch", "no_such_module"])); // ["no_such_module"]
 * ```
 */
export async function missingModules(
  python: string,
  modules: readonly string[],
): Promise<string[] | null> {
  // sys.path[0] is "" (the current directory) with -c: drop it, or the repository's own
  // tokenizers/ folder would pass for the `tokenizers` package.
  const probe = "import importlib.util, sys\n" +
    "sys.path = [p for p in sys.path if p not in ('', '.')]\n" +
    "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))";
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, {
      args: ["-c", probe, ...modules],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch {
    return null;
  }
  if (!out.success) return null;
  const text = new TextDecoder().decode(out.stdout).trim();
  return text ? text.split(" ") : [];
}

/** The interpreter {@linkcode choosePython} picked, and a note to print when it passed one over. */
export interface PythonChoice {
  /** Interpreter path or command name. */
  python: string;
  /** One `note: ...` line when `.venv` was passed over for `python3`; else undefined. */
  note?: string;
}

/**
 * Chooses the interpreter for a script that imports `modules`: `<root>/.venv/bin/python` when
 * it exists and has them all; else `python3` when it has them all (with a note when a `.venv`
 * was passed over).
 *
 * @param modules The modules the script needs.
 * @param root The repository root (where `.venv/` would be).
 * @param system The system interpreter to fall back to.
 * @returns The interpreter and an optional note.
 * @throws {PythonSetupError} when no interpreter has every module (or none runs): one line
 *   naming what each one lacks and the command that finishes the setup (offline it installs
 *   from the local mirror or wheel folder pip is configured with).
 * @example
 * ```ts ignore
 * const { python, note } = await choosePython(["torch"]);
 * if (note) console.error(note);
 * ```
 */
export async function choosePython(
  modules: readonly string[],
  root: string = ROOT,
  system = "python3",
): Promise<PythonChoice> {
  const venv = `${root.endsWith("/") ? root : root + "/"}.venv/bin/python`;
  let venvLacks: string[] | null | undefined; // undefined: there is no .venv
  if (exists(venv)) {
    venvLacks = await missingModules(venv, modules);
    if (venvLacks !== null && venvLacks.length === 0) return { python: venv };
  }
  const sysLacks = await missingModules(system, modules);
  const what = (lacks: string[] | null) =>
    lacks === null ? "does not run" : `lacks ${lacks.map(pipName).join(", ")}`;
  if (sysLacks !== null && sysLacks.length === 0) {
    if (venvLacks === undefined) return { python: system };
    return {
      python: system,
      note: `note: ${venv} ${what(venvLacks)}; using ${system}, which has them ` +
        `(\`${SETUP_HINT}\` finishes .venv; \`rm -rf .venv\` silences this)`,
    };
  }
  const venvPart = venvLacks === undefined ? "" : `${venv} ${what(venvLacks)} and `;
  throw new PythonSetupError(
    `${venvPart}${system} ${what(sysLacks)}: run \`${SETUP_HINT}\` (pip install -r ` +
      `python/requirements.txt into .venv; offline it uses the local mirror or wheel folder ` +
      `in \`pip config list\`)`,
  );
}

/**
 * Runs `python/<script>` with `args` from the repository root, stdio inherited (live
 * progress), through python/task_entry.py, with the interpreter {@linkcode choosePython}
 * picks. A SIGINT the task receives is forwarded to Python. Resolves to the script's exit
 * code (128 + signal number when a signal ended it).
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
  let choice: PythonChoice;
  try {
    choice = await choosePython(modules);
  } catch (e) {
    if (e instanceof PythonSetupError) fail(e.message);
    throw e;
  }
  if (choice.note) console.error(choice.note);
  const child = new Deno.Command(choice.python, {
    args: [`${ROOT}python/task_entry.py`, script, ...args],
    cwd: ROOT,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    env: { PYTHONUNBUFFERED: "1" },
  }).spawn();
  const forward = () => {
    try {
      child.kill("SIGINT");
    } catch {
      // already exited
    }
  };
  Deno.addSignalListener("SIGINT", forward);
  try {
    const status = await child.status;
    return status.signal !== null ? 128 + signalNumber(status.signal) : status.code;
  } finally {
    Deno.removeSignalListener("SIGINT", forward);
  }
}

function signalNumber(signal: Deno.Signal): number {
  const numbers: Partial<Record<Deno.Signal, number>> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGQUIT: 3,
    SIGKILL: 9,
    SIGTERM: 15,
  };
  return numbers[signal] ?? 1;
}

/**
 * Entry point shared by the thin task scripts: runs the script with `Deno.args` and exits
 * with its code.
 *
 * @param script File name under python/.
 * @param modules Modules the script needs (checked before it starts).
 * @example
 * ```ts ignore
 * if (import.meta.main) await main("export.py");
 * ```
 */
export async function main(
  script: string,
  modules: readonly string[] = TRAIN_MODULES,
): Promise<never> {
  const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  Deno.exit(await runPython(script, args, modules));
}
