/**
 * Issue #12 item 2 end to end: a real GGUF (stories260K) whose `llama.context_length` says
 * 2^31 - 1 runs with a small KV cache, on every backend and through the CLI, because
 * nothing is sized by the context length but the KV ring; without `--kv-capacity` the ring
 * would be 2^31 - 1 slots, and the CLI says so in one line that names the option.
 */
import assert from "node:assert/strict";
import { compileModel } from "../codegen/compile.ts";
import { ResourceError } from "../core/errors.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { ASSETS, haveFiles, ROOT } from "./assets.ts";
import { BACKENDS } from "./forward_cases.ts";
import { greedy } from "./greedy_decode.ts";

const GGUF = `${ASSETS}/stories260K/stories260K.gguf`;
const have = haveFiles("long-context tests", [GGUF]);
const HUGE = 2 ** 31 - 1;

/** stories260K.gguf with `llama.context_length` (a u32) set to `value`, in a temp file. */
async function withContextLength(value: number): Promise<{ path: string; dir: string }> {
  const bytes = await Deno.readFile(GGUF);
  const key = new TextEncoder().encode("llama.context_length");
  let at = -1;
  search: for (let i = 0; i + key.length < bytes.length; i++) {
    for (let j = 0; j < key.length; j++) if (bytes[i + j] !== key[j]) continue search;
    at = i + key.length;
    break;
  }
  const view = new DataView(bytes.buffer);
  assert.ok(at > 0 && view.getUint32(at, true) === 4, "llama.context_length is a u32 (type 4)");
  assert.equal(view.getUint32(at + 4, true), 2048);
  view.setUint32(at + 4, value, true);
  const dir = await Deno.makeTempDir();
  const path = `${dir}/stories260K-ctx.gguf`;
  await Deno.writeFile(path, bytes);
  return { path, dir };
}

Deno.test({
  name: "a GGUF with context_length 2^31 - 1 runs with kvCapacity 256 on every backend",
  ignore: !have,
  fn: async () => {
    const { path, dir } = await withContextLength(HUGE);
    try {
      const ck = await loadGguf(path);
      const original = await loadGguf(GGUF);
      assert.equal(ck.config.context_length, HUGE);
      const bos = ck.tokenizer!.bosId!;
      const want = greedy(compileModel(original.config, original.weights), [bos], 60);
      for (const backend of BACKENDS) {
        const fp = backend.build(ck.config, ck.weights, { kvCapacity: 256 });
        assert.deepEqual(greedy(fp, [bos], 60), want, backend.name);
      }
      // By default the ring is the context length: a typed error, not a RangeError.
      assert.throws(() => compileModel(ck.config, ck.weights), ResourceError);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Runs the CLI; returns exit code, stdout and stderr. */
async function gollm(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/main.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name:
    "gollm generate on a context_length 2^31 - 1 GGUF: --kv-capacity 256 runs, else one error line",
  ignore: !have,
  fn: async () => {
    const { path, dir } = await withContextLength(HUGE);
    try {
      const args = [
        "generate",
        "--model",
        path,
        "--prompt",
        "Once",
        "-n",
        "12",
        "--temperature",
        "0",
      ];
      const ok = await gollm([...args, "--kv-capacity", "256"]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /^ upon a time/);
      const bad = await gollm(args);
      assert.notEqual(bad.code, 0);
      const errors = bad.stderr.split("\n").filter((l) => l.startsWith("error: "));
      assert.equal(errors.length, 1, bad.stderr);
      assert.match(errors[0], /kvCapacity 2147483647.*lower --kv-capacity/);
      assert.ok(!bad.stderr.includes("    at "), "no stack trace");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
