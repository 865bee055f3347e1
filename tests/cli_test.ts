import assert from "node:assert/strict";
import { loadConfig, parameterCount } from "../core/config.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { createModel } from "../runtime/model.ts";
import { expectedShapes, randomWeights } from "../core/weights.ts";
import { assertClose } from "./assert_close.ts";
import { byteTokenizer, chain, EOS, scriptedWeights, tinyConfig } from "./model_fixtures.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = `${ROOT}cli/main.ts`;
const COMMANDS = [
  "generate",
  "chat",
  "serve",
  "inspect",
  "logits",
  "tokenize",
  "convert",
  "quantize",
  "kernels",
  "bench",
  "perplexity",
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A cli/main.ts ...args` from `cwd` (default the repo root). */
async function gollm(args: string[], opts: { stdin?: string; cwd?: string } = {}): Promise<Run> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: opts.cwd ?? ROOT,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const r = await child.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

function assertOneErrorLine(r: Run, code: number, re: RegExp): void {
  assert.equal(r.code, code, `exit status (stderr: ${r.stderr})`);
  // A "loaded ..." summary may precede an error found after loading.
  const lines = r.stderr.trimEnd().split("\n").filter((l) => !l.startsWith("loaded "));
  assert.match(lines[0], /^error: /);
  assert.match(lines[0], re);
  assert.ok(!/\n\s+at /.test(r.stderr), `no stack trace expected:\n${r.stderr}`);
  if (code === 1) assert.equal(lines.length, 1, `one line expected:\n${r.stderr}`);
}

/** A scripted model directory (greedy "hello"-free chain) with the byte tokenizer. */
async function scriptedDir(dir: string, script: string | Map<number, number>): Promise<void> {
  const c = tinyConfig("llama");
  await writeGollmDir({
    format: "gollm",
    path: "<test>",
    config: c,
    weights: scriptedWeights(c, typeof script === "string" ? chain(script, EOS) : script),
    tokenizer: byteTokenizer(),
  }, dir);
}

Deno.test("gollm --help lists every command, and each command has --help", async () => {
  const top = await gollm(["--help"]);
  assert.equal(top.code, 0);
  for (const c of COMMANDS) assert.match(top.stdout, new RegExp(`^  ${c} `, "m"));
  const results = await Promise.all(COMMANDS.map((c) => gollm([c, "--help"])));
  results.forEach((r, i) => {
    assert.equal(r.code, 0, COMMANDS[i]);
    assert.match(r.stdout, new RegExp(`^usage: gollm ${COMMANDS[i]} `), COMMANDS[i]);
    assert.match(r.stdout, /-h, --help/);
  });
});

Deno.test("gollm with an unknown option or command exits 2 with the usage line", async () => {
  const [flag, cmd, value, none] = await Promise.all([
    gollm(["generate", "--x"]),
    gollm(["frobnicate"]),
    gollm(["logits", "--tokens", "1", "--top", "abc"]),
    gollm([]),
  ]);
  assert.equal(flag.code, 2);
  assert.equal(
    flag.stderr,
    "error: unknown option '--x'\n" +
      "usage: gollm generate [PATH] [--prompt TEXT] [-n N] [options]\n",
  );
  assert.equal(flag.stdout, "");
  assertOneErrorLine(cmd, 2, /unknown command 'frobnicate'/);
  assertOneErrorLine(value, 2, /--top must be an integer >= 1, got 'abc'/);
  assert.match(value.stderr.split("\n")[1], /^usage: gollm logits /);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /usage: gollm <command>/);
});

Deno.test("gollm with a bad model path exits 1 with one error line and no stack trace", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${tmp}/config.yaml`, "arch: llama\ndim: -3\n");
    const [missing, emptyDir, badConfig] = await Promise.all([
      gollm(["generate", "--model", `${tmp}/nope`, "--prompt", "hi"]),
      gollm(["inspect", ROOT + "configs"]),
      gollm(["logits", "--model", tmp, "--tokens", "1"]),
    ]);
    assertOneErrorLine(missing, 1, /nope: no such file or directory/);
    assertOneErrorLine(emptyDir, 1, /neither config\.yaml .* nor config\.json/);
    assertOneErrorLine(badConfig, 1, /config\.yaml: field '.*'/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm names a .gguf with a bad magic and a non-model file in one line", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // stories260K.gguf with its magic damaged: reported by the GGUF reader, not as llama2.c.
    const bytes = new Uint8Array(64);
    bytes.set(new TextEncoder().encode("GGUX"));
    bytes.set([3, 0, 0, 0], 4);
    await Deno.writeFile(`${tmp}/stories260K.gguf`, bytes);
    await Deno.writeTextFile(`${tmp}/notes.md`, "# My notes\nThis is not a model.\n");
    const [gguf, text, readme] = await Promise.all([
      gollm(["generate", "--model", `${tmp}/stories260K.gguf`, "--prompt", "hi"]),
      gollm(["generate", "--model", `${tmp}/notes.md`, "--prompt", "hi"]),
      gollm(["inspect", "README.md"]),
    ]);
    assertOneErrorLine(gguf, 1, /stories260K\.gguf: bad magic: expected 'GGUF', got 'GGUX'$/);
    assertOneErrorLine(
      text,
      1,
      /notes\.md: not a recognised model file \(starts with '# My'; expected a GGUF file, a llama2\.c \.bin checkpoint, or a model directory\)$/,
    );
    assertOneErrorLine(readme, 1, /README\.md: not a recognised model file \(starts with '# go'/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm logits --tokens works when the tokenizer file config.yaml names is missing", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/m`, "hi");
    await Deno.remove(`${tmp}/m/tokenizer.tiktoken`);
    const [ids, prompt] = await Promise.all([
      gollm(["logits", "--model", `${tmp}/m`, "--tokens", "104,105", "--json"]),
      gollm(["logits", "--model", `${tmp}/m`, "--prompt", "hi"]),
    ]);
    assert.equal(ids.code, 0, ids.stderr);
    const out = JSON.parse(ids.stdout);
    assert.deepEqual(out.tokens, [104, 105]);
    assert.equal(out.logits.length, 2);
    // The scripted model predicts 'i' after 'h'.
    const row = out.logits[0] as number[];
    assert.equal(row.indexOf(Math.max(...row)), "i".charCodeAt(0));
    // --prompt needs the tokenizer: the missing file is named.
    assertOneErrorLine(
      prompt,
      1,
      /config\.yaml: field 'tokenizer' names "tokenizer\.tiktoken" but .* does not exist/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm bench prints the table, with one summary line on a non-terminal stderr", async () => {
  const r = await gollm(["bench", "--config", "configs/test-llama.yaml", "--seconds", "0.05"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^reference +[\d.]+/m);
  assert.match(r.stdout, /^jit +[\d.]+/m);
  assert.match(r.stdout, /^wasm +[\d.]+/m);
  // Not a terminal: no redrawn status line, just the summary.
  assert.equal(r.stderr.includes("\r"), false, r.stderr);
  assert.match(r.stderr, /^benchmarked reference, jit, wasm in [\d.]+ s\n$/);
});

Deno.test("gollm logits --tokens works on a directory with tokenizer none", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const c = tinyConfig("gpt2", { dim: 32, hidden_dim: 40, n_layers: 2 });
    const w = randomWeights(c, 9);
    await writeGollmDir(
      { format: "gollm", path: "<t>", config: c, weights: w, tokenizer: null },
      `${tmp}/m`,
    );
    assert.equal((await loadConfig(`${tmp}/m/config.yaml`)).tokenizer, "none");
    const tokens = [3, 141, 7, 200];
    const [json, text, noTok] = await Promise.all([
      gollm(["logits", "--model", `${tmp}/m`, "--tokens", tokens.join(","), "--json"]),
      gollm([
        "logits",
        "--model",
        `${tmp}/m`,
        "--tokens",
        "3 141",
        "--top",
        "2",
        "--backend",
        "reference",
      ]),
      gollm(["logits", "--model", `${tmp}/m`, "--prompt", "hi"]),
    ]);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout);
    assert.deepEqual(out.tokens, tokens);
    assert.equal(out.vocab_size, c.vocab_size);
    assert.equal(out.logits.length, tokens.length);
    const ref = createModel(c, w, null, { backend: "reference" }).forwardAll(tokens);
    assertClose(out.logits.flat(), ref, 1e-4, "CLI logits vs reference forward");
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^position 0: token 3\n {2}top: \d+ -?\d/);
    assert.match(text.stdout, /\nposition 1: token 141\n/);
    assertOneErrorLine(noTok, 1, /has no tokenizer/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm generate --json, tokenize and inspect on a model directory", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/m`, "hi stop");
    const [gen, stream, tok, insp] = await Promise.all([
      gollm(["generate", "--model", `${tmp}/m`, "--prompt", "h", "--temperature", "0", "--json"]),
      gollm([
        "generate",
        "--model",
        `${tmp}/m`,
        "--prompt",
        "h",
        "--temperature",
        "0",
        "--stop",
        "to",
      ]),
      gollm(["tokenize", "--model", `${tmp}/m`, "--text", "hé", "--json"]),
      gollm(["inspect", `${tmp}/m`, "--kv-capacity", "16", "--json"]),
    ]);
    assert.equal(gen.code, 0, gen.stderr);
    const g = JSON.parse(gen.stdout);
    assert.deepEqual(Object.keys(g), [
      "text",
      "tokens",
      "prefill_tokens",
      "prefill_tok_s",
      "decode_tokens",
      "decode_tok_s",
      "stop_reason",
    ]);
    assert.equal(g.text, "i stop");
    assert.equal(g.stop_reason, "eos");
    assert.deepEqual(g.tokens, [..."i stop"].map((ch) => ch.charCodeAt(0)));
    assert.equal(g.prefill_tokens, 2);
    assert.equal(stream.code, 0, stream.stderr);
    assert.equal(stream.stdout, "i s\n"); // the newline ends the text (not part of the stats)
    assert.match(
      stream.stderr,
      /prefill: 2 tokens, [\d.]+ tok\/s \| decode: \d+ tokens, [\d.]+ tok\/s/,
    );
    assert.equal(tok.code, 0, tok.stderr);
    assert.deepEqual(JSON.parse(tok.stdout), {
      ids: [256, 104, 195, 169],
      pieces: ["<|bos|>", "h", "Ã", "©"],
    });
    assert.equal(insp.code, 0, insp.stderr);
    const info = JSON.parse(insp.stdout);
    const c = tinyConfig("llama");
    assert.equal(info.format, "gollm");
    assert.equal(info.parameters, parameterCount(c));
    assert.equal(info.memory.kv_capacity, 16);
    // A ring of kv_capacity 16 + one 16-row step, in blocks of 16 tokens.
    assert.equal(info.memory.kv_bytes, 2 * c.n_layers * 32 * c.n_kv_heads * c.head_dim * 4);
    assert.equal(info.memory.weights_bytes, 4 * parameterCount(c));
    // A gollm directory is F32 as stored: both figures agree, tensor by tensor.
    assert.equal(info.memory.weights_stored_bytes, info.memory.weights_bytes);
    for (const t of info.tensors) {
      assert.deepEqual([t.type, t.bytes], ["F32", 4 * t.params], t.name);
    }
    assert.ok(info.memory.arena_bytes > info.memory.kv_bytes);
    assert.equal(info.tensors.length, expectedShapes(c).size);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm generate ends its plain-text stdout with exactly one newline", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/m`, "help\n");
    const greedy = ["--model", `${tmp}/m`, "--temperature", "0"];
    const [short, full, empty] = await Promise.all([
      gollm(["generate", ...greedy, "--prompt", "h", "-n", "2"]),
      gollm(["generate", ...greedy, "--prompt", "h"]),
      gollm(["generate", ...greedy, "--prompt", "h", "-n", "0"]),
    ]);
    for (const r of [short, full, empty]) assert.equal(r.code, 0, r.stderr);
    assert.equal(short.stdout, "el\n"); // text without a newline: one is added
    assert.equal(full.stdout, "elp\n"); // text ending in one: none added
    assert.equal(empty.stdout, "\n");
    assert.match(short.stderr, /^prefill: .* stop: max_tokens$/m);
    assert.match(full.stderr, /^prefill: .* stop: eos$/m);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm generate past --kv-capacity prints the sliding-window note once", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/m`, "abcdefghijklmnopqrstuvwxyz");
    const r = await gollm([
      "generate",
      "--model",
      `${tmp}/m`,
      "--prompt",
      "a",
      "--temperature",
      "0",
      "--kv-capacity",
      "8",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "bcdefghijklmnopqrstuvwxyz\n");
    const notes = r.stderr.split("\n").filter((l) => l.startsWith("note: "));
    assert.equal(notes.length, 1, r.stderr);
    assert.match(notes[0], /KV capacity \(8 tokens\).*sliding window/);
    // Checked once the config is read, before compiling, in the CLI's own option name.
    const big = await gollm(["generate", "--model", `${tmp}/m`, "--kv-capacity", "64"]);
    assertOneErrorLine(big, 2, /^error: --kv-capacity 64 exceeds the context length 32 of /);
    assert.doesNotMatch(big.stderr, /^loaded /m);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm convert round-trips a model directory to f16 and it generates the same", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/src`, "convert");
    const conv = await gollm(["convert", `${tmp}/src`, `${tmp}/out`, "--dtype", "f16"]);
    assert.equal(conv.code, 0, conv.stderr);
    assert.match(conv.stderr, /converted .* \(gollm\) -> .*out: .* f16/);
    const names = [...Deno.readDirSync(`${tmp}/out`)].map((e) => e.name).sort();
    assert.deepEqual(names, ["config.yaml", "model.safetensors", "tokenizer.tiktoken"]);
    const again = await gollm(["convert", `${tmp}/src`, `${tmp}/out`]);
    assertOneErrorLine(again, 1, /already exists/);
    const [a, b] = await Promise.all([
      gollm(["generate", "--model", `${tmp}/src`, "--prompt", "c", "--temperature", "0"]),
      gollm(["generate", "--model", `${tmp}/out`, "--prompt", "c", "--temperature", "0"]),
    ]);
    assert.equal(a.stdout, "onvert\n");
    assert.equal(b.stdout, a.stdout);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm kernels --out writes the generated module atomically", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const r = await gollm([
      "kernels",
      "--config",
      `${ROOT}configs/test-gpt2.yaml`,
      "--out",
      `${tmp}/sub/k.ts`,
    ], { cwd: tmp });
    assert.equal(r.code, 0, r.stderr);
    const src = await Deno.readTextFile(`${tmp}/sub/k.ts`);
    assert.match(src, /export function createKernels\(/);
    assert.match(r.stderr, /^wrote .*k\.ts \(\d+ lines/);
    assert.deepEqual([...Deno.readDirSync(`${tmp}/sub`)].map((e) => e.name), ["k.ts"]);
    const missing = await gollm(["kernels", "--config", `${tmp}/none.yaml`]);
    assertOneErrorLine(missing, 1, /none\.yaml: cannot read config file: /);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm kernels --wasm prints the whole-step WASM module: a function per layer and op", async () => {
  const r = await gollm(["kernels", "--config", `${ROOT}configs/test-llama.yaml`, "--wasm"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^;; Generated by gollm codegen\/emit_wasm\.ts/);
  // test-llama: dim 48, kv_dim 24, hidden 80, vocab 96 (untied output); F32 rows interleaved
  // in groups of 4 (codegen/wasm/interleave.ts).
  for (const f of ["48x48", "24x48", "80x48", "48x80"].map((s) => `matvec_f32_${s}_i4`)) {
    assert.match(r.stdout, new RegExp(`\\(func \\$${f} \\(export "${f}"\\)`), f);
  }
  for (const f of ["layer0_attn", "layer1_ffn", "lm_head", "prefill_layer1_attn", "step"]) {
    assert.match(r.stdout, new RegExp(`\\(func \\$${f}[ )]`), f);
  }
  assert.match(r.stdout, /call \$attention_4x2x12_b16/);
});

Deno.test("gollm bench --backends rejects an unknown backend with the usage line", async () => {
  const r = await gollm([
    "bench",
    "--config",
    `${ROOT}configs/test-llama.yaml`,
    "--backends",
    "jit,gpu",
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown backend 'gpu' \(reference, jit, wasm\)/);
  assert.match(r.stderr, /usage: gollm bench/);
});

Deno.test("gollm chat streams replies, handles /reset and ends at end of input", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // Plain fallback format: the prompt ends with "Assistant:", so the script starts at ':'.
    await scriptedDir(`${tmp}/m`, ": ok");
    const r = await gollm(["chat", "--model", `${tmp}/m`, "--temperature", "0"], {
      stdin: "hello\n/reset\nhi again\n",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "ok\nok\n");
    assert.match(r.stderr, /plain User\/Assistant format/);
    assert.match(r.stderr, /\(conversation cleared\)/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm chat: Ctrl-C (SIGINT) stops the reply, not the program", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // ':' (end of "Assistant:") -> a -> b -> ... -> z -> a ...: a reply that never ends.
    const script = chain(":abcdefghijklmnopqrstuvwxyz");
    script.set("z".charCodeAt(0), "a".charCodeAt(0));
    await scriptedDir(`${tmp}/m`, script);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "chat", "--model", `${tmp}/m`, "-n", "1000000"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const stdin = child.stdin.getWriter();
    await stdin.write(new TextEncoder().encode("go\n"));
    // Wait until the reply is streaming, then interrupt it.
    const reader = child.stdout.getReader();
    let seen = "";
    while (seen.length < 200) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    child.kill("SIGINT");
    await stdin.write(new TextEncoder().encode("/exit\n"));
    await stdin.close();
    while (!(await reader.read()).done) { /* drain */ }
    const [status, stderr] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
    ]);
    assert.equal(status.code, 0, stderr);
    assert.match(seen, /^abcdefghijklmnopqrstuvwxyzabc/);
    assert.match(stderr, /\(reply stopped\)/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm generate without --model uses models/default from any directory", {
  ignore: !(() => {
    try {
      return Deno.statSync(`${ROOT}models/default/config.yaml`).isFile;
    } catch {
      console.log("skipped: models/default is not there yet (the Python helper ships it)");
      return false;
    }
  })(),
}, async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const r = await gollm(["generate", "--prompt", "The", "-n", "5", "--seed", "1"], { cwd: tmp });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /models\/default/);
    assert.match(r.stderr, /decode: \d+ tokens/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

const ASSETS = Deno.env.get("GOLLM_ASSETS") ?? `${ROOT}../shared/assets`;
const STORIES = `${ASSETS}/stories260K`;
const haveStories = ["stories260K.gguf", "stories260K.bin", "tok512.bin", "stories260K.md"].every(
  (f) => {
    try {
      return Deno.statSync(`${STORIES}/${f}`).isFile;
    } catch {
      return false;
    }
  },
);
if (!haveStories) console.log(`skipped stories260K CLI test: ${STORIES} is absent (GOLLM_ASSETS)`);

Deno.test({
  name: "gollm generate prints the published stories260K text from .gguf, .bin and a converted dir",
  ignore: !haveStories,
  async fn() {
    const md = await Deno.readTextFile(`${STORIES}/stories260K.md`);
    const from = md.indexOf("-t 0.0\n") + "-t 0.0\n".length;
    const published = md.slice(from, md.indexOf("```", from));
    const tmp = await Deno.makeTempDir();
    try {
      const greedy = ["--temperature", "0", "-n", "200"];
      const conv = await gollm(["convert", `${STORIES}/stories260K.bin`, `${tmp}/s`]);
      assert.equal(conv.code, 0, conv.stderr);
      const runs = await Promise.all([
        gollm(["generate", "--model", `${STORIES}/stories260K.gguf`, ...greedy]),
        gollm([
          "generate",
          "--model",
          `${STORIES}/stories260K.bin`,
          "--tokenizer",
          `${STORIES}/tok512.bin`,
          ...greedy,
        ]),
        gollm(["generate", "--model", `${tmp}/s`, ...greedy]),
      ]);
      for (const r of runs) {
        assert.equal(r.code, 0, r.stderr);
        // The text, then the newline generate adds (the published text goes on there).
        assert.ok(r.stdout.endsWith("\n"), "stdout ends with a newline");
        const text = r.stdout.slice(0, -1);
        assert.ok(text.length > 400, `200 tokens of text expected, got ${text.length}`);
        assert.equal(text, published.slice(0, text.length));
        assert.match(r.stderr, /decode: 199 tokens/);
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("gollm chat renders through the model's chat template (chatml from chat_template.jinja)", async () => {
  const fixture = JSON.parse(
    await Deno.readTextFile(`${ROOT}tests/fixtures/hf/chat_templates.json`),
  ) as { templates: Record<string, string> };
  const chatml = fixture.templates.chatml; // a real template (transformers' chatml)
  const tmp = await Deno.makeTempDir();
  try {
    // The rendered prompt ends "<|im_start|>assistant\n": the script starts at '\n'. The plain
    // fallback would end at ':' (unscripted), so "ok" appears only through the template.
    const c = tinyConfig("llama", { context_length: 128 });
    await writeGollmDir({
      format: "gollm",
      path: "<test>",
      config: c,
      weights: scriptedWeights(c, chain("\nok", EOS)),
      tokenizer: byteTokenizer(chatml),
    }, `${tmp}/m`);
    assert.equal(await Deno.readTextFile(`${tmp}/m/chat_template.jinja`), chatml);
    const r = await gollm(["chat", "--model", `${tmp}/m`, "--temperature", "0", "-n", "8"], {
      stdin: "hello\n",
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /its chat template/);
    assert.doesNotMatch(r.stderr, /plain User\/Assistant format/);
    assert.equal(r.stdout, "ok\n");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm chat drops the oldest turns when the conversation outgrows the context", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // Each reply is 27 tokens; context 32: the second turn no longer fits with the first.
    await scriptedDir(`${tmp}/m`, ": abcdefghijklmnopqrstuvwxyz");
    const r = await gollm(["chat", `${tmp}/m`, "--temperature", "0"], {
      stdin: "hello\nhi\nagain\n",
    });
    assert.equal(r.code, 0, r.stderr);
    const reply = "abcdefghijklmnopqrstuvwxyz";
    assert.equal(r.stdout, `${reply}\n${reply}\n${reply}\n`);
    assert.doesNotMatch(r.stderr, /^error:/m);
    const shifts = r.stderr.split("\n").filter((l) => /^note: the conversation/.test(l));
    assert.equal(shifts.length, 2, r.stderr);
    assert.match(
      shifts[0],
      /^note: the conversation \(\d+ tokens\) outgrew the context \(32 tokens less 8 for the reply\): dropped the oldest 1 turn \(\d+ tokens prefilled again\)$/,
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm generate on a terminal ends the streamed line before a note", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/m`, "abcdefghijklmnopqrstuvwxyz");
    const argv = [Deno.execPath(), "run", "-A", MAIN, "generate", `${tmp}/m`, "--prompt", "a"]
      .concat(["--temperature", "0", "--kv-capacity", "8"]);
    const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    // `script` runs it with stdout and stderr on one pseudo-terminal, as in an interactive shell.
    const r = await new Deno.Command("script", {
      args: ["-qec", quoted, "/dev/null"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const screen = new TextDecoder().decode(r.stdout).replaceAll("\r\n", "\n");
    assert.equal(r.code, 0, screen);
    const lines = screen.split("\n");
    const note = lines.findIndex((l) => l.includes("note: "));
    assert.ok(note > 0, screen);
    assert.match(lines[note], /^note: the sequence passed the KV capacity \(8 tokens\)/, screen);
    // The streamed text resumes below the note: it reads whole across the two lines.
    assert.equal(lines[note - 1] + lines[note + 1], "bcdefghijklmnopqrstuvwxyz", screen);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm generate --json with --stop: tokens end where the text does", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await scriptedDir(`${tmp}/m`, "abcdefghijklmnopqrstuvwxyz");
    const r = await gollm([
      "generate",
      `${tmp}/m`,
      "--prompt",
      "a",
      "--temperature",
      "0",
      "--stop",
      "fgh",
      "--json",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.text, "bcde");
    assert.equal(out.stop_reason, "stop");
    assert.deepEqual(out.tokens, [..."bcde"].map((c) => c.charCodeAt(0)));
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm tokenize, generate and logits read special-token text unless --no-special", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    // <|eos|> (257) is followed by 'o' 'k' in the script; its 7 bytes end in '>', unscripted.
    await scriptedDir(`${tmp}/m`, new Map([[257, 111], [111, 107], [107, 257]]));
    const m = `${tmp}/m`;
    const [tok, tokPlain, tokOld, gen, genPlain, lg, lgPlain] = await Promise.all([
      gollm(["tokenize", m, "--text", "<|eos|>", "--no-bos", "--json"]),
      gollm(["tokenize", m, "--text", "<|eos|>", "--no-bos", "--json", "--no-special"]),
      gollm(["tokenize", m, "--text", "<|eos|>", "--no-bos", "--json", "--special"]),
      gollm(["generate", m, "--prompt", "<|eos|>", "--temperature", "0", "-n", "2", "--json"]),
      gollm(["generate", m, "--prompt", "<|eos|>", "--temperature", "0", "-n", "2", "--json"]
        .concat(["--no-special"])),
      gollm(["logits", m, "--prompt", "<|eos|>", "--no-bos", "--json"]),
      gollm(["logits", m, "--prompt", "<|eos|>", "--no-bos", "--json", "--no-special"]),
    ]);
    for (const r of [tok, tokPlain, tokOld, gen, genPlain, lg, lgPlain]) {
      assert.equal(r.code, 0, r.stderr);
    }
    const bytes = [..."<|eos|>"].map((c) => c.charCodeAt(0));
    assert.deepEqual(JSON.parse(tok.stdout).ids, [257]);
    assert.deepEqual(JSON.parse(tokOld.stdout).ids, [257]);
    assert.deepEqual(JSON.parse(tokPlain.stdout).ids, bytes);
    assert.equal(JSON.parse(gen.stdout).text, "ok");
    assert.notEqual(JSON.parse(genPlain.stdout).text, "ok");
    assert.deepEqual(JSON.parse(lg.stdout).tokens, [257]);
    assert.deepEqual(JSON.parse(lgPlain.stdout).tokens, bytes);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("gollm inspect takes the model as PATH or --model, and defaults to models/default", async () => {
  const [pos, opt, dflt] = await Promise.all([
    gollm(["inspect", "models/default", "--json"]),
    gollm(["inspect", "--model", "models/default", "--json"]),
    gollm(["inspect", "--json"]),
  ]);
  for (const r of [pos, opt, dflt]) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(pos.stdout).config, JSON.parse(opt.stdout).config);
  assert.deepEqual(JSON.parse(dflt.stdout).config, JSON.parse(opt.stdout).config);
});
