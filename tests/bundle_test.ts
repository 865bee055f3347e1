/**
 * The single-file build the README documents: `deno bundle cli/main.ts -o dist/gollm.js`.
 * The bundle, run from another directory, must give the same greedy text as the checkout's
 * `cli/main.ts` (same program: this is a packaging test, not a parity test), with the wasm
 * backend's worker threads (whose module travels inside the bundle), and print its help.
 *
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
const MODEL = `${ROOT}models/default`;

async function run(args: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("deno bundle cli/main.ts: the bundle runs --help and generates what cli/main.ts does", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const bundled = await run(["bundle", `${ROOT}cli/main.ts`, "-o", `${tmp}/gollm.js`], ROOT);
    assert.equal(bundled.code, 0, bundled.stderr);
    const help = await run(["run", "-A", `${tmp}/gollm.js`, "--help"], tmp);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^usage: gollm <command>/m);
    const args = ["generate", "--model", MODEL, "--prompt", "The Congress", "-n", "12"];
    const greedy = [...args, "--temperature", "0", "--threads", "2"];
    const fromBundle = await run(["run", "-A", `${tmp}/gollm.js`, ...greedy], tmp);
    assert.equal(fromBundle.code, 0, fromBundle.stderr);
    assert.match(fromBundle.stderr, /^loaded .* \(gollm, wasm, 2 threads\) in /m);
    const fromSource = await run(["run", "-A", `${ROOT}cli/main.ts`, ...greedy], ROOT);
    assert.equal(fromSource.code, 0, fromSource.stderr);
    assert.ok(fromBundle.stdout.trim().length > 0, "the bundle generated text");
    assert.equal(fromBundle.stdout, fromSource.stdout);
    // A bad flag is one error line from the bundle too (exit 2, no stack trace).
    const bad = await run(["run", "-A", `${tmp}/gollm.js`, "generate", "--top-p", "2"], tmp);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr.trim().split("\n").filter((l) => l.startsWith("error:")).length, 1);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
