/**
 * `gollm perplexity` as a subprocess on the shipped default model: the text and JSON output,
 * the llama.cpp-style progress on a non-terminal stderr, and one `error:` line with exit 1
 * or 2 for each bad input (checked before loading where the model is not needed); a Q8_0
 * GGUF of it (quantised here) runs on the wasm backend with its weights as stored and the
 * given --threads.
 */
import assert from "node:assert/strict";
import { quantizeModel } from "../formats/quantize.ts";
import { loadModel } from "../runtime/model.ts";
import { perplexity, perplexityTokens } from "../runtime/perplexity.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}cli/main.ts`;
const MODEL = `${ROOT}models/default`; // context_length 256

const TEXT = Array.from(
  { length: 12 },
  (_, i) =>
    `Fellow-citizens of the Senate and House of Representatives: in the ${i + 1}th year of ` +
    `the Union the revenue of the Treasury rose, the Army and the Navy were kept in good ` +
    `order, and the Congress will, I trust, give its attention to the public lands.\n`,
).join("");

async function gollm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, stdout: d.decode(r.stdout), stderr: d.decode(r.stderr) };
}

Deno.test("gollm perplexity prints the estimate, llama.cpp's running values and JSON", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/text.txt`;
    await Deno.writeTextFile(file, TEXT);
    const model = await loadModel(MODEL, { kvCapacity: 64 });
    const want = perplexity(model, perplexityTokens(model.tokenizer!, TEXT), { ctx: 64 });
    assert.ok(want.chunks >= 3, `${want.chunks} chunks`);

    const text = await gollm(["perplexity", MODEL, "--file", file, "--ctx", "64"]);
    assert.equal(text.code, 0, text.stderr);
    const lines = text.stderr.trimEnd().split("\n");
    assert.match(
      lines[0],
      /^loaded .*models\/default \(gollm, wasm(, \d+ threads)?\) in [\d.]+ s$/,
    );
    assert.match(
      lines[1],
      new RegExp(
        `^perplexity: [\\d,]+ tokens; ${want.chunks} chunks of 64, scoring positions ` +
          `33\\.\\.63 of each \\(31 tokens\\)$`,
      ),
    );
    const running = lines[2].split(",").filter(Boolean);
    assert.equal(running.length, want.chunks, lines[2]);
    assert.equal(running.at(-1), `[${want.chunks}]${want.ppl.toFixed(4)}`);
    const [estimate, counts] = text.stdout.trimEnd().split("\n");
    assert.equal(
      estimate,
      `Final estimate: PPL = ${want.ppl.toFixed(4)} +/- ${want.pplStderr.toFixed(5)}`,
    );
    assert.match(counts, new RegExp(`over ${want.tokensScored} tokens \\(${want.chunks} chunks`));

    const json = await gollm([
      "perplexity",
      "--model",
      MODEL,
      "--file",
      file,
      "--ctx=64",
      "--json",
      "--chunks",
      "2",
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.equal(json.stderr, "");
    const j = JSON.parse(json.stdout);
    assert.deepEqual(Object.keys(j), [
      "ppl",
      "nll",
      "tokens_scored",
      "chunks",
      "ctx",
      "ppl_stderr",
    ]);
    assert.deepEqual([j.chunks, j.ctx, j.tokens_scored], [2, 64, 62]);
    const two = perplexity(model, perplexityTokens(model.tokenizer!, TEXT), { ctx: 64, chunks: 2 });
    assert.ok(Math.abs(j.ppl - two.ppl) < 1e-9 * two.ppl && Math.abs(j.nll - two.nll) < 1e-9);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gollm perplexity runs a quantised GGUF's weights as stored on the wasm backend", async () => {
  // A Q8_0 file's ggml blocks run as stored (int8 activations, as generate runs them) give
  // a perplexity a little off the dequantised-F32 one (4e-5 relative here): the CLI's
  // numbers for --backend wasm and auto must be loadModel's on the wasm backend (which keeps
  // the blocks), not the F32 ones; --threads reaches the model (the loaded line) and 1 and 2
  // threads give the same bits.
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/model.q8_0.gguf`, text = `${dir}/text.txt`;
    await quantizeModel(MODEL, file, "Q8_0", { threads: 1 });
    await Deno.writeTextFile(text, TEXT);
    const score = async (backend: "wasm" | "jit") => {
      using m = await loadModel(file, { backend, threads: 1, kvCapacity: 64 });
      assert.equal(m.backend, backend);
      return perplexity(m, perplexityTokens(m.tokenizer!, TEXT), { ctx: 64, chunks: 2 });
    };
    const stored = await score("wasm"), f32 = await score("jit");
    const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.abs(b);
    // The two paths must be told apart, or the checks below would not see a revert.
    assert.ok(
      Math.abs(stored.nll - f32.nll) > 1e-6,
      `stored nll ${stored.nll}, F32 nll ${f32.nll}`,
    );

    const args = ["perplexity", file, "--file", text, "--ctx", "64", "--chunks", "2"];
    const [wasm1, wasm2, auto1, auto2, jit] = await Promise.all([
      gollm([...args, "--backend", "wasm", "--threads", "1", "--json"]),
      gollm([...args, "--backend", "wasm", "--threads", "2", "--json"]),
      gollm([...args, "--threads", "1"]),
      gollm([...args, "--threads", "2"]),
      gollm([...args, "--backend", "jit", "--json"]),
    ]);
    for (const r of [wasm1, wasm2, auto1, auto2, jit]) assert.equal(r.code, 0, r.stderr);

    const w = JSON.parse(wasm1.stdout);
    assert.deepEqual([w.chunks, w.ctx, w.tokens_scored], [2, 64, 62]);
    assert.ok(
      near(w.ppl, stored.ppl) && near(w.nll, stored.nll),
      `--backend wasm: ppl ${w.ppl}, nll ${w.nll}; loadModel(wasm), weights as stored: ` +
        `ppl ${stored.ppl}, nll ${stored.nll}; dequantised F32: ppl ${f32.ppl}, nll ${f32.nll}`,
    );
    assert.deepEqual(JSON.parse(wasm2.stdout), w, "--threads 2 against --threads 1");
    const j = JSON.parse(jit.stdout);
    assert.ok(
      near(j.ppl, f32.ppl) && near(j.nll, f32.nll),
      `--backend jit: ppl ${j.ppl}; loadModel(jit), F32: ppl ${f32.ppl}`,
    );

    // auto resolves to wasm and keeps the blocks too; the loaded line shows --threads.
    assert.match(auto1.stderr.split("\n")[0], /^loaded .*model\.q8_0\.gguf \(gguf, wasm\) in /);
    assert.match(
      auto2.stderr.split("\n")[0],
      /^loaded .*model\.q8_0\.gguf \(gguf, wasm, 2 threads\) in /,
    );
    assert.equal(auto2.stdout, auto1.stdout);
    assert.match(
      auto1.stdout,
      new RegExp(
        `^Final estimate: PPL = ${stored.ppl.toFixed(4)} .*\nnll ${stored.nll.toFixed(6)} `,
      ),
      `auto: ${auto1.stdout}; weights as stored: nll ${stored.nll}, F32: nll ${f32.nll}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("gollm perplexity: one error line, exit 2 for flags, exit 1 for files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/empty.txt`, "");
    await Deno.writeTextFile(`${dir}/short.txt`, "The state of the Union is strong.");
    await Deno.writeTextFile(`${dir}/text.txt`, TEXT);
    const cases: [string[], number, RegExp, boolean][] = [
      // [args, exit status, the error line, loaded before the error]
      [["--file", `${dir}/none.txt`], 1, /none\.txt: cannot read text file: no such file$/, false],
      [["--file", `${dir}/empty.txt`], 1, /empty\.txt: the text file is empty/, false],
      [["--file", dir], 1, /cannot read text file: it is a directory, not a regular file$/, false],
      [[], 2, /^error: --file FILE is required$/, false],
      [
        ["--file", `${dir}/text.txt`, "--ctx", "2"],
        2,
        /--ctx must be an integer >= 3, got '2'$/,
        false,
      ],
      [
        ["--file", `${dir}/text.txt`, "--chunks", "0"],
        2,
        /--chunks must be an integer >= 1/,
        false,
      ],
      [["--file", `${dir}/text.txt`, "--batch", "x"], 2, /--batch must be an integer >= 1/, false],
      [
        ["--file", `${dir}/text.txt`, "--ctx", "300"],
        2,
        /--ctx 300 exceeds the context length 256 of .*models\/default; give at most 256$/,
        false,
      ],
      [
        ["--file", `${dir}/short.txt`],
        1,
        /short\.txt: tokenises to \d+ tokens; a context of 256 needs at least 512 \(2 x ctx\)/,
        true,
      ],
      [
        ["--file", `${dir}/text.txt`, "--kv-capacity", "64"],
        2,
        /unknown option '--kv-capacity'/,
        false,
      ],
    ];
    const results = await Promise.all(
      cases.map(([args]) => gollm(["perplexity", "--model", MODEL, ...args])),
    );
    cases.forEach(([args, code, error, loaded], i) => {
      const r = results[i], what = `${args.join(" ")}: ${r.stderr}`;
      assert.equal(r.code, code, what);
      assert.equal(r.stdout, "", what);
      const lines = r.stderr.trimEnd().split("\n");
      const errors = lines.filter((l) => l.startsWith("error: "));
      assert.equal(errors.length, 1, what);
      assert.match(errors[0], error, what);
      assert.doesNotMatch(r.stderr, /^\s+at /m, what);
      assert.equal(lines.some((l) => l.startsWith("loaded ")), loaded, what);
      if (code === 2) assert.match(lines.at(-1)!, /^usage: gollm perplexity /, what);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
