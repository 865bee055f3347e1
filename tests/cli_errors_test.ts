/**
 * Table-driven CLI error test (issue #12 "Proof", #7 item 5): each bad command line runs as a
 * subprocess (tests/cli_cases.ts) and must exit non-zero (2 for a command-line mistake, 1 for
 * a user error) with exactly one `error:` line on stderr (plus the usage line for exit 2, and
 * at most a `loaded ...` summary), no stack trace, and nothing left behind where it was to
 * write. Bad model, tokenizer and config FILES are in tests/cli_input_errors_test.ts.
 */
import assert from "node:assert/strict";
import { readGguf } from "../mod.ts";
import {
  type Case,
  checkOutcome,
  DEFAULT,
  NEEDS_STORIES,
  ROOT,
  runCases,
  scriptedDir,
  STORIES_DIR,
} from "./cli_cases.ts";

const CASES: Case[] = [
  // Negative numbers parse as values and are range-checked naming the option.
  {
    name: "generate --temperature -1",
    args: ["generate", "--temperature", "-1"],
    code: 2,
    error: /^error: --temperature must be a number >= 0, got '-1'$/,
    beforeLoading: true,
  },
  {
    name: "generate --top-k -3",
    args: ["generate", "--top-k", "-3"],
    code: 2,
    error: /^error: --top-k must be an integer >= 0, got '-3'$/,
    beforeLoading: true,
  },
  {
    name: "generate --seed -5",
    args: ["generate", "--seed", "-5"],
    code: 2,
    error: /^error: --seed must be an integer >= 0, got '-5'$/,
    beforeLoading: true,
  },
  {
    name: "chat --temperature -0.5",
    args: ["chat", "--temperature", "-0.5"],
    code: 2,
    error: /^error: --temperature must be a number >= 0, got '-0.5'$/,
    beforeLoading: true,
  },
  // KV cache types: f16 pools exist in the wasm backend only; other values are refused.
  {
    name: "generate --backend jit --cache-type-k f16",
    args: ["generate", "--backend", "jit", "--cache-type-k", "f16", "--prompt", "hi"],
    code: 2,
    error: /^error: --cache-type-k f16 needs --backend wasm or auto, got jit$/,
    beforeLoading: true,
  },
  {
    name: "serve --backend jit --cache-type-v f16",
    args: ["serve", "--backend", "jit", "--cache-type-v", "f16", "--port", "0"],
    code: 2,
    error: /^error: --cache-type-v f16 needs --backend wasm or auto, got jit$/,
    beforeLoading: true,
  },
  {
    name: "chat --cache-type-v q8_0",
    args: ["chat", "--cache-type-v", "q8_0"],
    code: 2,
    error: /^error: --cache-type-v must be one of f32, f16, got 'q8_0'$/,
    beforeLoading: true,
  },
  // Out-of-range values: exit 2 before loading, in the CLI's own option names.
  {
    name: "generate --repeat-penalty 0",
    args: ["generate", "--repeat-penalty", "0", "--prompt", "hi"],
    code: 2,
    error: /^error: --repeat-penalty must be a number > 0, got '0'$/,
    beforeLoading: true,
  },
  {
    name: "generate --top-p 0",
    args: ["generate", "--top-p", "0"],
    code: 2,
    error: /^error: --top-p must be a number in \(0, 1\], got '0'$/,
    beforeLoading: true,
  },
  {
    name: "generate --min-p 1.5",
    args: ["generate", "--min-p", "1.5"],
    code: 2,
    error: /^error: --min-p must be a number in \[0, 1\], got '1.5'$/,
    beforeLoading: true,
  },
  {
    name: "generate -n 2.5",
    args: ["generate", "-n", "2.5"],
    code: 2,
    error: /^error: --max-tokens must be an integer >= 0, got '2.5'$/,
    beforeLoading: true,
  },
  {
    name: "generate --temperature 0x10 (not a decimal number)",
    args: ["generate", "--temperature", "0x10"],
    code: 2,
    error: /^error: --temperature must be a number >= 0, got '0x10'$/,
    beforeLoading: true,
  },
  {
    name: "generate --kv-capacity 0",
    args: ["generate", "--kv-capacity", "0"],
    code: 2,
    error: /^error: --kv-capacity must be an integer >= 1, got '0'$/,
    beforeLoading: true,
  },
  {
    name: "generate --kv-capacity 300 on a 256-context model",
    args: ["generate", DEFAULT, "--kv-capacity", "300", "--prompt", "hi"],
    code: 2,
    error: /^error: --kv-capacity 300 exceeds the context length 256 of .*models\/default/,
    beforeLoading: true,
  },
  {
    name: "logits --kv-capacity 300 on a 256-context model",
    args: ["logits", DEFAULT, "--kv-capacity", "300", "--tokens", "1"],
    code: 2,
    error: /^error: --kv-capacity 300 exceeds the context length 256/,
    beforeLoading: true,
  },
  {
    name: "inspect --kv-capacity 300 on a 256-context model",
    args: ["inspect", DEFAULT, "--kv-capacity", "300"],
    code: 2,
    error: /^error: --kv-capacity 300 exceeds the context length 256/,
  },
  {
    name: "generate --logit-bias 12 (no sign and bias)",
    args: ["generate", DEFAULT, "--logit-bias", "12"],
    code: 2,
    error: /^error: --logit-bias: '12' is not ID\+BIAS or ID-BIAS \(e\.g\. 15043\+1, 2-inf\)$/,
    beforeLoading: true,
  },
  {
    name: "generate --json-mode --ngram",
    args: ["generate", DEFAULT, "--json-mode", "--ngram"],
    code: 2,
    error: /^error: --json-mode does not run with --draft or --ngram$/,
    beforeLoading: true,
  },
  {
    name: "generate --json-schema with a missing file",
    args: ["generate", DEFAULT, "--json-schema", "$T/missing.json"],
    code: 1,
    error: /^error: .*missing\.json: cannot read JSON file: no such file/,
    beforeLoading: true,
  },
  {
    name: "generate --json-schema with a file that is not JSON",
    args: ["generate", DEFAULT, "--json-schema", "$T/s.json"],
    code: 1,
    error: /^error: .*s\.json: is not valid JSON: /,
    setup: (tmp) => Deno.writeTextFile(`${tmp}/s.json`, "{type: object}"),
    beforeLoading: true,
  },
  {
    name: "generate --json-schema with a keyword outside the subset",
    args: ["generate", DEFAULT, "--json-schema", "$T/s.json"],
    code: 1,
    error: /^error: .*s\.json: schema\.properties\.age: 'minimum' is not supported$/,
    setup: (tmp) =>
      Deno.writeTextFile(
        `${tmp}/s.json`,
        '{"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}}',
      ),
    beforeLoading: true,
  },
  {
    name: "generate --json-schema with an array for a schema",
    args: ["generate", DEFAULT, "--json-schema", "$T/s.json"],
    code: 1,
    error: /^error: .*s\.json: schema: a schema must be an object or true, got \[1\]$/,
    setup: (tmp) => Deno.writeTextFile(`${tmp}/s.json`, "[1]"),
    beforeLoading: true,
  },
  {
    name: "generate --json-schema --json-mode",
    args: ["generate", DEFAULT, "--json-schema", "$T/s.json", "--json-mode"],
    code: 2,
    error: /^error: --json-schema does not run with --json-mode, --draft or --ngram$/,
    beforeLoading: true,
  },
  {
    name: "generate --threads 0",
    args: ["generate", "--threads", "0"],
    code: 2,
    error: /^error: --threads must be an integer in \[1, 64\], got '0'$/,
    beforeLoading: true,
  },
  {
    name: "chat --threads 65",
    args: ["chat", "--threads", "65"],
    code: 2,
    error: /^error: --threads must be an integer in \[1, 64\], got '65'$/,
    beforeLoading: true,
  },
  {
    name: "generate --backend gpu",
    args: ["generate", "--backend", "gpu"],
    code: 2,
    error: /^error: --backend must be one of auto, wasm, jit, reference, got 'gpu'$/,
    beforeLoading: true,
  },
  {
    name: "chat -n 0",
    args: ["chat", "-n", "0"],
    code: 2,
    error: /^error: --max-tokens must be an integer >= 1, got '0'$/,
    beforeLoading: true,
  },
  // Option syntax.
  {
    name: "generate --prompt without a value",
    args: ["generate", "--prompt"],
    code: 2,
    error: /^error: option '--prompt' needs a value$/,
    beforeLoading: true,
  },
  {
    name: "generate --prompt followed by another option",
    args: ["generate", "--prompt", "--json"],
    code: 2,
    error: /^error: option '--prompt' needs a value$/,
    beforeLoading: true,
  },
  {
    name: "generate --json=yes",
    args: ["generate", "--json=yes"],
    code: 2,
    error: /^error: option '--json' does not take a value$/,
    beforeLoading: true,
  },
  {
    name: "generate --frobnicate",
    args: ["generate", "--frobnicate"],
    code: 2,
    error: /^error: unknown option '--frobnicate'$/,
    beforeLoading: true,
  },
  {
    name: "an unknown command",
    args: ["frobnicate"],
    code: 2,
    error: /^error: unknown command 'frobnicate'$/,
  },
  // PATH or --model, not both; surplus arguments.
  {
    name: "inspect PATH --model PATH",
    args: ["inspect", DEFAULT, "--model", DEFAULT],
    code: 2,
    error: /^error: give the PATH as an argument or as --model, not both/,
  },
  {
    name: "generate PATH extra",
    args: ["generate", DEFAULT, "extra"],
    code: 2,
    error: /^error: unexpected argument 'extra'$/,
    beforeLoading: true,
  },
  // Command-specific checks.
  {
    name: "logits without --tokens or --prompt",
    args: ["logits"],
    code: 2,
    error: /^error: give exactly one of --tokens IDS or --prompt TEXT$/,
  },
  {
    name: "logits --tokens 1,x",
    args: ["logits", "--tokens", "1,x"],
    code: 2,
    error: /^error: --tokens: 'x' is not a non-negative integer$/,
  },
  {
    name: "tokenize --special --no-special",
    args: ["tokenize", "--text", "a", "--special", "--no-special"],
    code: 2,
    error: /^error: give --special or --no-special, not both$/,
  },
  {
    name: "tokenize without --text",
    args: ["tokenize"],
    code: 2,
    error: /^error: --text TEXT is required$/,
  },
  {
    name: "convert with one argument",
    args: ["convert", DEFAULT],
    code: 2,
    error: /^error: missing OUT$/,
  },
  {
    name: "convert --dtype f8",
    args: ["convert", DEFAULT, "$T/out", "--dtype", "f8"],
    code: 2,
    error: /^error: --dtype must be one of f32, f16, bf16, got 'f8'$/,
  },
  {
    name: "kernels without --config",
    args: ["kernels", "--out", "$T/k.ts"],
    code: 2,
    error: /^error: --config FILE is required$/,
  },
  {
    name: "kernels --kv-capacity 1000 on a 64-context config",
    args: [
      "kernels",
      "--config",
      `${ROOT}configs/test-llama.yaml`,
      "--kv-capacity",
      "1000",
      "--out",
      "$T/k.ts",
    ],
    code: 2,
    error: /^error: --kv-capacity 1000 exceeds the context length 64 of .*test-llama\.yaml/,
  },
  {
    name: "bench --seconds 0",
    args: ["bench", "--config", `${ROOT}configs/test-llama.yaml`, "--seconds", "0"],
    code: 2,
    error: /^error: --seconds must be a number > 0, got '0'$/,
  },
  // User errors (exit 1): one line naming the file or option.
  {
    name: "convert into an existing directory names --force",
    args: ["convert", DEFAULT, "$T/out"],
    setup: (tmp) => Deno.mkdir(`${tmp}/out`),
    code: 1,
    error: /^error: .*\/out already exists; pass --force to replace it$/,
  },
  {
    name: "convert of a missing checkpoint leaves nothing behind",
    args: ["convert", "$T/missing", "$T/out"],
    code: 1,
    error: /^error: .*missing: no such file or directory/,
  },
  {
    name: "convert to an OUT under a file",
    args: ["convert", DEFAULT, "$T/file/out"],
    setup: (tmp) => Deno.writeTextFile(`${tmp}/file`, "not a directory\n"),
    code: 1,
    error: /^error: .*\/file\/out: cannot be written: /,
  },
  {
    name: "convert to an OUT under /proc",
    args: ["convert", DEFAULT, "/proc/gollm-convert-test"],
    code: 1,
    error: /^error: \/proc\/gollm-convert-test.*: cannot be written: /,
  },
  {
    name: "kernels of a missing config leaves nothing behind",
    args: ["kernels", "--config", "$T/none.yaml", "--out", "$T/k.ts"],
    code: 1,
    error: /^error: .*none\.yaml: cannot read config file/,
  },
  {
    name: "generate --model of a missing path",
    args: ["generate", "--model", "$T/nope", "--prompt", "hi"],
    code: 1,
    error: /^error: .*nope: no such file or directory/,
  },
  {
    name: "generate with a prompt longer than the context",
    args: ["generate", "$T/m", "--prompt", "x".repeat(40)],
    setup: (tmp) => scriptedDir(`${tmp}/m`),
    code: 1,
    error: /^error: the prompt is 41 tokens, longer than the context length 32/,
  },
  {
    name: "logits of 300 tokens on a 256-context model (the rule generate applies)",
    args: ["logits", DEFAULT, "--tokens", Array(300).fill(1).join(",")],
    code: 1,
    error: /^error: the input is 300 tokens, longer than the context length 256/,
  },
  {
    name: "logits --prompt of 96 kB on a 256-context model is refused at once",
    args: ["logits", DEFAULT, "--prompt", "Once upon a time there was a cat. ".repeat(2900)],
    code: 1,
    error: /^error: the input is \d{5} tokens, longer than the context length 256/,
  },
  {
    name: "generate on a model directory whose weights hold a NaN",
    args: ["generate", "$T/m", "--prompt", "h"],
    setup: (tmp) => scriptedDir(`${tmp}/m`, (w) => (w.get("norm.weight")!.data[0] = NaN)),
    code: 1,
    error: /^error: .*\/m: \d+ of 258 logits of the first forward pass are NaN or infinite/,
  },
  {
    name: "generate on stories260K.gguf with one output_norm.weight value NaN",
    args: ["generate", "$T/stories260K.gguf", "--prompt", "Once"],
    setup: async (tmp) => {
      const src = `${STORIES_DIR}/stories260K.gguf`;
      const t = (await readGguf(src)).tensors.find((t) => t.name === "output_norm.weight")!;
      assert.equal(t.type.name, "F32");
      const bytes = await Deno.readFile(src);
      new DataView(bytes.buffer).setFloat32(t.fileOffset, NaN, true);
      await Deno.writeFile(`${tmp}/stories260K.gguf`, bytes);
    },
    code: 1,
    // The wasm backend (auto) reads the file's tensors as stored and checks them at load.
    error:
      /^error: .*stories260K\.gguf: tensor 'output_norm\.weight' element 0 is non-finite \(NaN\)$/,
    skip: NEEDS_STORIES,
  },
];

Deno.test("gollm: every bad command line gives one error line, exit 1 or 2", async (t) => {
  await runCases(t, CASES);
});

Deno.test("checkOutcome() fails a stack trace, a second error line, a wrong exit status", () => {
  // Negative controls: the checks above can fail.
  const c: Case = { name: "x", args: [], code: 1, error: /^error: bad$/ };
  checkOutcome(c, { code: 1, stderr: "loaded m in 0.1 s\nerror: bad\n", ms: 1 });
  assert.throws(() => checkOutcome(c, { code: 2, stderr: "error: bad\n", ms: 1 }));
  assert.throws(() => checkOutcome(c, { code: 1, stderr: "error: bad\nerror: bad\n", ms: 1 }));
  assert.throws(() =>
    checkOutcome(c, { code: 1, stderr: "error: bad\n    at main (file:///x.ts:1:1)\n", ms: 1 })
  );
  assert.throws(() => checkOutcome(c, { code: 1, stderr: "error: bad\nnote: more\n", ms: 1 }));
  const usage: Case = { ...c, code: 2, beforeLoading: true };
  checkOutcome(usage, { code: 2, stderr: "error: bad\nusage: gollm x\n", ms: 1 });
  assert.throws(() => checkOutcome(usage, { code: 2, stderr: "error: bad\n", ms: 1 }));
  assert.throws(() =>
    checkOutcome(usage, { code: 2, stderr: "loaded m in 1 s\nerror: bad\nusage: gollm x\n", ms: 1 })
  );
  // A case that must succeed fails on an error line or a non-zero exit; `allow` admits lines.
  const ok: Case = { name: "y", args: [], code: 0 };
  checkOutcome(ok, { code: 0, stderr: "loaded m\nprefill: 2 tokens\n", ms: 1 });
  assert.throws(() => checkOutcome(ok, { code: 0, stderr: "error: bad\n", ms: 1 }));
  assert.throws(() => checkOutcome(ok, { code: 1, stderr: "", ms: 1 }));
  assert.throws(() => checkOutcome(ok, { code: 0, stderr: "", ms: 5, limit: 5 }));
  const chatty: Case = { ...c, allow: /^chat with / };
  checkOutcome(chatty, { code: 1, stderr: "chat with m\nerror: bad\n", ms: 1 });
  assert.throws(() => checkOutcome(chatty, { code: 1, stderr: "hello\nerror: bad\n", ms: 1 }));
});
