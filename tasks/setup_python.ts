/**
 * `deno task setup:python [-- --cpu]`: creates `.venv/` with `python3 -m venv` and installs
 * python/requirements.txt into it (torch, numpy, safetensors, transformers, tokenizers,
 * tiktoken, pyyaml, tqdm, gguf, jinja2, peft, pytest). The other Python tasks use
 * `.venv/bin/python` once it exists. Output of pip is shown live.
 *
 * `--cpu` first installs torch's CPU-only build from PyTorch's own index
 * ({@linkcode TORCH_CPU_INDEX}), which skips the multi-GB CUDA libraries a plain
 * `pip install torch` pulls on Linux. It needs that index to be reachable, so it is opt-in:
 * the default path (and CI) installs only from the configured pip index.
 *
 * When pip is configured with a local package source (a `file:` or localhost index, or a
 * find-links folder: see {@linkcode localPipSource}), pip runs with `--retries 0`: pip still
 * asks its default index first, and on a machine without internet each of the ~40 packages
 * would otherwise wait through five retries (minutes in all) before pip uses the local one.
 * `PIP_RETRIES` set in the environment wins.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fail, ROOT } from "./python.ts";

/**
 * The first local package source in `pip config list` output (`file:` URLs, absolute or
 * relative paths, `localhost` / `127.x` URLs under `index-url`, `extra-index-url` or
 * `find-links`), or null when there is none.
 *
 * @param pipConfigList The output of `python -m pip config list`, lines such as
 *   `global.extra-index-url='file:///opt/pypi/simple'` or `:env:.find-links='/opt/wheels'`.
 * @returns The local source, e.g. `file:///opt/pypi/simple`, or null.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(localPipSource(":env:.find-links='/opt/wheels'"), "/opt/wheels");
 * assert.equal(localPipSource("global.index-url='https://pypi.org/simple'"), null);
 * ```
 */
export function localPipSource(pipConfigList: string): string | null {
  for (const line of pipConfigList.split("\n")) {
    const m = /^[^=]*\.(index-url|extra-index-url|find-links)='(.*)'\s*$/.exec(line.trim());
    if (!m) continue;
    for (const v of m[2].split(/\s+/)) {
      if (/^(file:|\/|\.\.?\/)/.test(v) || /^https?:\/\/(localhost|127\.[0-9.]+)(:|\/|$)/.test(v)) {
        return v;
      }
    }
  }
  return null;
}

/**
 * The extra pip arguments for this machine: `["--retries", "0"]` when pip has a local package
 * source (see {@linkcode localPipSource}) and `PIP_RETRIES` is not set, else none.
 *
 * @param python The interpreter whose pip to ask.
 * @returns The arguments and, when they are used, a note saying why.
 */
export async function pipRetryArgs(python: string): Promise<{ args: string[]; note?: string }> {
  if (Deno.env.get("PIP_RETRIES") !== undefined) return { args: [] };
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(python, {
      args: ["-m", "pip", "config", "list"],
      stdout: "piped",
      stderr: "null",
    }).output();
  } catch {
    return { args: [] };
  }
  const local = localPipSource(new TextDecoder().decode(out.stdout));
  if (local === null) return { args: [] };
  return {
    args: ["--retries", "0"],
    note: `pip has a local package source (${local}): --retries 0, so an unreachable ` +
      `default index costs one failed request per package, not five retries`,
  };
}

/** PyTorch's package index of CPU-only wheels, used by `--cpu`. */
export const TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu";

/** The `--help` text. */
export const USAGE = `usage: deno task setup:python [-- --cpu]

Creates .venv/ (python3 -m venv) and installs python/requirements.txt into it.

options:
  --cpu        first install torch's CPU-only build
               (pip install torch --index-url ${TORCH_CPU_INDEX}),
               skipping the CUDA libraries; needs that index to be reachable
  -h, --help   show this help`;

async function run(cmd: string, args: string[]): Promise<number> {
  try {
    const child = new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    return (await child.status).code;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      fail(
        `${cmd} not found: install Python 3.10+ with venv (e.g. \`apt-get install python3 python3-venv\`)`,
      );
    }
    throw e;
  }
}

if (import.meta.main) {
  const argv = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
  let values: { cpu?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { cpu: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    }));
  } catch (e) {
    console.error(USAGE.split("\n")[0]);
    fail((e as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const venvPython = `${ROOT}.venv/bin/python`;
  let haveVenv = false;
  try {
    Deno.statSync(venvPython);
    haveVenv = true;
  } catch {
    // create it below
  }
  if (!haveVenv) {
    console.log("creating .venv (python3 -m venv .venv)");
    const code = await run("python3", ["-m", "venv", ".venv"]);
    if (code !== 0) {
      fail(
        "python3 -m venv failed: install the venv module (e.g. `apt-get install python3-venv`)",
      );
    }
  }
  const retry = await pipRetryArgs(venvPython);
  if (retry.note) console.log(`note: ${retry.note}`);
  if (values.cpu) {
    console.log(`installing torch's CPU build into .venv (--index-url ${TORCH_CPU_INDEX})`);
    const code = await run(venvPython, [
      "-m",
      "pip",
      "install",
      ...retry.args,
      "torch",
      "--index-url",
      TORCH_CPU_INDEX,
    ]);
    if (code !== 0) {
      fail(
        `pip install torch --index-url ${TORCH_CPU_INDEX} failed (exit ${code}); run without --cpu to install torch from the default index`,
      );
    }
  }
  console.log("installing python/requirements.txt into .venv");
  const code = await run(venvPython, [
    "-m",
    "pip",
    "install",
    ...retry.args,
    "-r",
    "python/requirements.txt",
  ]);
  if (code !== 0) fail(`pip install -r python/requirements.txt failed (exit ${code})`);
  console.log("python side ready: .venv/bin/python");
}
