/**
 * `deno task setup:python [-- --cpu]`: creates `.venv/` with `python3 -m venv` and installs
 * python/requirements.txt into it (torch, numpy, safetensors, transformers, tokenizers,
 * tiktoken, pyyaml, tqdm, gguf, jinja2, pytest). The other Python tasks use
 * `.venv/bin/python` once it exists. Output of pip is shown live.
 *
 * `--cpu` first installs torch's CPU-only build from PyTorch's own index
 * ({@linkcode TORCH_CPU_INDEX}), which skips the multi-GB CUDA libraries a plain
 * `pip install torch` pulls on Linux. It needs that index to be reachable, so it is opt-in:
 * the default path (and CI) installs only from the configured pip index.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fail, ROOT } from "./python.ts";

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
  if (values.cpu) {
    console.log(`installing torch's CPU build into .venv (--index-url ${TORCH_CPU_INDEX})`);
    const code = await run(venvPython, [
      "-m",
      "pip",
      "install",
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
    "-r",
    "python/requirements.txt",
  ]);
  if (code !== 0) fail(`pip install -r python/requirements.txt failed (exit ${code})`);
  console.log("python side ready: .venv/bin/python");
}
