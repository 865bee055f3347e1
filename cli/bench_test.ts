/**
 * `gollm bench --model` as a subprocess: the JSON shape on a real checkpoint (the shipped
 * default model), and one `error:` line with exit 2 for flags that do not go together.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}cli/main.ts`;
const MODEL = `${ROOT}models/default`; // context_length 256

async function gollm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, stdout: d.decode(r.stdout), stderr: d.decode(r.stderr) };
}

Deno.test("gollm bench --model times a checkpoint with the fixed protocol; --json", async () => {
  const r = await gollm(["bench", "--model", MODEL, "--backends", "jit", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  const j = JSON.parse(r.stdout);
  assert.deepEqual(Object.keys(j), [
    "config",
    "params",
    "prefillTokens",
    "decodeTokens",
    "backends",
    "ratio",
    "wasmRatio",
    "wasmVsJit",
    "checkpoint",
  ]);
  assert.equal(j.params, 3_443_136);
  assert.deepEqual([j.prefillTokens, j.decodeTokens], [256, 200]);
  assert.deepEqual(j.checkpoint, {
    path: MODEL,
    format: "gollm",
    bos: 4094, // <|bos|>
    warmup: 1,
    runs: 3,
    kvCapacity: 256,
    seed: 1,
    threads: Math.min(64, navigator.hardwareConcurrency), // --threads: the core count
    wasmWeights: "f32", // the wasm backend did not run
    cacheTypeK: "f32",
    cacheTypeV: "f32",
  });
  assert.deepEqual(Object.keys(j.backends[0]), [
    "backend",
    "setupMs",
    "prefillTokPerS",
    "decodeTokPerS",
    "prefillGflops",
    "decodeGflops",
    "rounds",
  ]);
  assert.equal(j.backends[0].backend, "jit");
  assert.ok(j.backends[0].prefillTokPerS > 0 && j.backends[0].decodeTokPerS > 0);
  // Text output: the table, and the load and bench lines on stderr.
  const t = await gollm(["bench", MODEL, "--backends", "reference"]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(
    t.stderr,
    /^loaded .*models\/default \(gollm\) in [\d.]+ s\nbenchmarked reference in /,
  );
  assert.match(t.stdout, /weights: .*models\/default \(gollm\); one thread\ndecode: BOS, then 200/);
  assert.match(t.stdout, /\nreference +\d+\.\d+ +\d/);
});

Deno.test("gollm bench --model: the wasm backend runs the weights as stored on --threads", async () => {
  const r = await gollm(["bench", MODEL, "--backends", "wasm", "--threads", "2", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual([j.checkpoint.threads, j.checkpoint.wasmWeights], [2, "stored"]);
  assert.ok(j.backends[0].decodeTokPerS > 0);
  const t = await gollm(["bench", MODEL, "--backends", "jit,wasm", "--threads", "1"]);
  assert.equal(t.code, 0, t.stderr);
  assert.match(
    t.stdout,
    /; wasm on 1 thread\(s\) with the weights as stored, the others on one\ndecode: /,
  ); // An f16 K and V cache (llama.cpp's -ctk f16 -ctv f16), on the wasm backend alone.
  const h = await gollm([
    "bench",
    MODEL,
    "--backends",
    "wasm",
    "--threads",
    "1",
    "--cache-type-k",
    "f16",
    "--cache-type-v",
    "f16",
    "--json",
  ]);
  assert.equal(h.code, 0, h.stderr);
  const hj = JSON.parse(h.stdout);
  assert.deepEqual([hj.checkpoint.cacheTypeK, hj.checkpoint.cacheTypeV], ["f16", "f16"]);
  assert.ok(hj.backends[0].decodeTokPerS > 0);
});

Deno.test("gollm bench: --config with a model, --seconds with a model: exit 2, one error line", async () => {
  const cases: [string[], RegExp][] = [
    [["--config", "configs/test-llama.yaml", "--model", MODEL], /give --config FILE .* not both/],
    [[MODEL, "--seconds", "1"], /--seconds applies to --config only/],
    [["--config", "configs/test-llama.yaml", "--tokenizer", "x"], /--tokenizer applies to a model/],
    [["--backends", "gpu"], /--backends: unknown backend 'gpu'/],
    [["--config", "configs/test-llama.yaml", "--threads", "2"], /--threads applies to a model/],
    [[MODEL, "--cache-type-k", "f16"], /--cache-type-k f16 needs --backends wasm/],
    [
      [MODEL, "--backends", "jit,wasm", "--cache-type-v", "f16"],
      /--cache-type-v f16 needs --backends wasm/,
    ],
    [
      ["--config", "configs/test-llama.yaml", "--cache-type-k", "f16"],
      /--cache-type-k applies to a model/,
    ],
  ];
  const results = await Promise.all(cases.map(([args]) => gollm(["bench", ...args])));
  cases.forEach(([args, error], i) => {
    const r = results[i], what = `${args.join(" ")}: ${r.stderr}`;
    assert.equal(r.code, 2, what);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 2, what);
    assert.match(lines[0], error, what);
    assert.match(lines[1], /^usage: gollm bench /, what);
  });
});
