/**
 * `gollm serve` on the whole-step WASM backend with threads: a Q8_0 GGUF of the shipped
 * default model (quantised here) loads with its weights as stored on 2 threads (the loaded
 * line says so), answers like `gollm generate --temperature 0` on the same file, and exits
 * 0 on SIGTERM; `createServer`'s shutdown stops the model's threads.
 */
import assert from "node:assert/strict";
import { quantizeModel } from "../formats/quantize.ts";
import { loadBatchModel } from "../runtime/batch_model.ts";
import { createServer } from "../server/http.ts";
import { ROOT } from "./assets.ts";

/** A Q8_0 GGUF of models/default in a temp dir, removed after `fn`. */
async function withQ8(fn: (file: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/default.q8_0.gguf`;
    await quantizeModel(`${ROOT}models/default`, file, "Q8_0", { threads: 1 });
    await fn(file);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `gollm generate FILE --temperature 0 --json` on the wasm backend: its text. */
async function generateText(file: string, prompt: string, n: number): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}cli/main.ts`,
      "generate",
      file,
      "--backend",
      "wasm",
      "--threads",
      "2",
      "--prompt",
      prompt,
      "-n",
      `${n}`,
      "--temperature",
      "0",
      "--json",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)).text;
}

Deno.test("gollm serve FILE.q8_0.gguf --threads 2 loads on wasm with 2 threads, answers as generate, exits 0 on SIGTERM", async () => {
  await withQ8(async (file) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cli/main.ts`,
        "serve",
        file,
        "--port",
        "0",
        "--parallel",
        "2",
        "--threads",
        "2",
        "--alias",
        "q8",
      ],
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let err = "", url = "";
    try {
      while (!url) {
        const { value, done } = await reader.read();
        if (done) break;
        err += value;
        url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)?.[1] ?? "";
      }
      assert.ok(url, err);
      assert.match(err, /loaded \S+default\.q8_0\.gguf \(gguf, wasm, 2 threads\)/);
      const prompt = "Once upon a time";
      const res = await fetch(`${url}/v1/completions`, {
        method: "POST",
        body: JSON.stringify({ model: "q8", prompt, max_tokens: 16, temperature: 0 }),
      });
      assert.equal(res.status, 200);
      const text = (await res.json()).choices[0].text;
      assert.equal(text, await generateText(file, prompt, 16));
    } finally {
      child.kill("SIGTERM");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        err += value;
      }
    }
    assert.equal((await child.status).code, 0, err);
    assert.match(err, /gollm serve: stopped/);
  });
});

Deno.test("createServer() shutdown stops the threads of a wasm model", async () => {
  await withQ8(async (file) => {
    const model = await loadBatchModel(file, { parallel: 2, ctxSize: 64, threads: 2 });
    assert.deepEqual([model.backend, model.threads], ["wasm", 2]);
    const server = createServer(model, { modelName: "q8", log: () => {} });
    const res = await server(
      new Request("http://x/v1/completions", {
        method: "POST",
        body: JSON.stringify({ model: "q8", prompt: "We", max_tokens: 4, temperature: 0 }),
      }),
    );
    assert.equal((await res.json()).usage.completion_tokens, 4);
    await server.shutdown(1000);
    model.batch.setSequence(0, [1], 16, model.config.context_length);
    assert.throws(
      () => model.batch.step({ tokens: [1], positions: [0], seqs: [0], outRows: [0] }),
      /closed/,
    );
  });
});
