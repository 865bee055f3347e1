/**
 * `deno task setup:python`: creates `.venv/` with `python3 -m venv` and installs
 * python/requirements.txt into it (torch CPU build, numpy, safetensors, transformers,
 * tokenizers, tiktoken, pyyaml, tqdm, gguf, jinja2, pytest). The other Python tasks use
 * `.venv/bin/python` once it exists. Output of pip is shown live.
 *
 * @module
 */
import { fail, ROOT } from "./python.ts";

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
