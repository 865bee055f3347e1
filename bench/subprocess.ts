/**
 * Runs a benchmark runner script in its own Deno process (so its peak RSS is its own and a
 * crash cannot take the caller down) and reads back its one-line JSON reply.
 *
 * The runner protocol: the request is one JSON argument; the reply is one JSON line on
 * stdout; `progress: ...` lines on stderr are progress; a failure is an `error: ...` line on
 * stderr and a non-zero exit status.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";

/** A runner process failed; the message is one line naming what failed and why. */
export class RunnerError extends GollmError {
  /**
   * Creates a runner error.
   * @param message One line: what failed, on which file, and the runner's reason.
   */
  constructor(message: string) {
    super(message);
    this.name = "RunnerError";
  }
}

/**
 * The main of a runner script, the runner protocol above: parses the request from the first
 * argument, runs `run` on it, prints its reply as one JSON line on stdout and exits with 0;
 * when it throws, prints `error: ` and the first line of the message on stderr and exits
 * with 1.
 *
 * @param run The runner's work: request in, reply out.
 * @returns Never: the process exits.
 * @example
 * ```ts ignore
 * if (import.meta.main) await runnerMain((r: { n: number }) => ({ twice: 2 * r.n }));
 * ```
 */
export async function runnerMain<Req, Rep>(
  run: (request: Req) => Rep | Promise<Rep>,
): Promise<never> {
  try {
    console.log(JSON.stringify(await run(JSON.parse(Deno.args[0]) as Req)));
    Deno.exit(0);
  } catch (e) {
    console.error(`error: ${(e instanceof Error ? e.message : String(e)).split("\n")[0]}`);
    Deno.exit(1);
  }
}

/** Options of {@linkcode runRunner}. */
export interface RunRunnerOptions {
  /** Flags for `deno run` before the script (default `["-A"]`). */
  denoFlags?: string[];
  /** Extra environment variables of the runner process. */
  env?: Record<string, string>;
  /** Receives the runner's `progress:` lines. */
  onProgress?: (message: string) => void;
  /** Prefix of error messages, e.g. `llama.cpp bench on m.gguf`. */
  what: string;
  /**
   * CPUs to pin the runner to, a `taskset -c` list (`"1"`, `"0,1"`); needs `taskset`
   * ({@linkcode tasksetAvailable}). Undefined: not pinned.
   */
  cpus?: string;
}

let taskset: boolean | undefined;

/**
 * Whether `taskset` (util-linux) runs here, so runners can be pinned to CPUs. Checked once.
 *
 * @returns True on Linux with util-linux installed.
 * @example
 * ```ts ignore
 * if (await tasksetAvailable()) console.log("runners can be pinned");
 * ```
 */
export async function tasksetAvailable(): Promise<boolean> {
  if (taskset === undefined) {
    try {
      const out = await new Deno.Command("taskset", {
        args: ["-c", "0", "true"],
        stdout: "null",
        stderr: "null",
      })
        .output();
      taskset = out.success;
    } catch {
      taskset = false;
    }
  }
  return taskset;
}

/**
 * Runs `deno run <flags> <script> <JSON request>` (under `taskset -c <cpus>` when asked) and
 * parses its JSON reply.
 *
 * @param script Absolute path of the runner script.
 * @param request The request object (serialised as the one argument).
 * @param options Flags, environment, progress, message prefix, CPUs to pin to.
 * @returns The parsed reply.
 * @throws {RunnerError} `<what>: <reason>` with the runner's `error:` line, plus the last
 *   line of other output that mentions an error (a native library's log), when the runner
 *   fails or prints no JSON.
 * @example
 * ```ts ignore
 * const r = await runRunner<{ ok: boolean }>("/abs/runner.ts", { cmd: "x" }, { what: "x" });
 * ```
 */
export async function runRunner<T>(
  script: string,
  request: unknown,
  options: RunRunnerOptions,
): Promise<T> {
  const args = ["run", ...(options.denoFlags ?? ["-A"]), script, JSON.stringify(request)];
  const pin = options.cpus !== undefined && await tasksetAvailable();
  const child = new Deno.Command(pin ? "taskset" : Deno.execPath(), {
    args: pin ? ["-c", options.cpus!, Deno.execPath(), ...args] : args,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const other: string[] = [];
  const readErr = (async () => {
    let buf = "";
    const take = (line: string) => {
      if (line.startsWith("progress: ")) options.onProgress?.(line.slice(10));
      else if (line.trim()) other.push(line);
    };
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        take(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    }
    take(buf);
  })();
  const [status, text] = await Promise.all([child.status, new Response(child.stdout).text()]);
  await readErr;
  if (!status.success) {
    const err = other.findLast((l) => l.startsWith("error: "))?.slice(7) ?? other.at(-1) ??
      `exit status ${status.code}`;
    const cause = other.findLast((l) =>
      !l.startsWith("error: ") && /error|fail|invalid|exception/i.test(l)
    );
    throw new RunnerError(`${options.what}: ${err}${cause ? ` (${cause.trim()})` : ""}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RunnerError(`${options.what}: the runner printed no JSON result`);
  }
}
