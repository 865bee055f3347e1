/**
 * `gollm quantize` (cli/quantize.ts) as a user runs it: stories260K quantised to q4_k_m still
 * tells the published story (stories260K.md, the F32 model's greedy text, written by its
 * author), and every mistake is one `error:` line with nothing left behind. That the blocks
 * equal llama.cpp's own quantiser is formats/quantize_test.ts's job.
 */
import assert from "node:assert/strict";
import { readGguf } from "../formats/gguf/parse.ts";
import {
  type Case,
  DEFAULT,
  NEEDS_STORIES,
  ROOT,
  runCases,
  scriptedDir,
  STORIES_DIR,
} from "./cli_cases.ts";
import { publishedStoriesText } from "./assets.ts";

const STORIES = `${STORIES_DIR}/stories260K.gguf`;

/** Runs `gollm ARGS` and returns its exit status, stdout and stderr. */
async function gollm(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/main.ts`, ...args],
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: r.code, stdout: text(r.stdout), stderr: text(r.stderr) };
}

/** Whether `stdout` (at least 100 characters, less generate's final newline) starts the story. */
function tellsThePublishedStory(stdout: string, published: string): boolean {
  const got = stdout.replace(/\n$/, "");
  return got.length >= 100 && published.startsWith(got);
}

Deno.test({
  name:
    "gollm quantize stories260K --type q4_k_m writes a GGUF that greedily tells the published story",
  ignore: NEEDS_STORIES !== undefined,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "gollm_quantize_" });
    try {
      const out = `${tmp}/stories260K.q4_k_m.gguf`;
      const q = await gollm([
        "quantize",
        "--model",
        STORIES,
        out,
        "--type",
        "q4_k_m",
        "--threads",
        "2",
      ]);
      assert.equal(q.code, 0, q.stderr);
      assert.match(
        q.stderr.trim(),
        /^quantized .*stories260K\.gguf \(1\.19 MB\) -> .*stories260K\.q4_k_m\.gguf \(q4_k_m, \d+\.\d kB\): 292,800 parameters, \d+\.\d\d bits per weight in \d+\.\d\d s$/,
      );
      const g = await readGguf(out);
      assert.equal(g.metadata.get("general.file_type"), 15); // LLAMA_FTYPE_MOSTLY_Q4_K_M
      assert.equal(g.metadata.get("general.architecture"), "llama");
      // Rows of 64 are shorter than a K-quant block: llama.cpp's fallbacks Q5_0/Q8_0/F16.
      assert.ok(g.tensors.some((t) => t.type.name === "Q5_0"));
      assert.ok((await Deno.stat(out)).size < (await Deno.stat(STORIES)).size / 3);

      // 40 greedy tokens from BOS: the quantisation error does not change one of them.
      const published = await publishedStoriesText();
      const gen = await gollm(["generate", out, "-n", "40", "--temperature", "0"]);
      assert.equal(gen.code, 0, gen.stderr);
      assert.ok(tellsThePublishedStory(gen.stdout, published), JSON.stringify(gen.stdout));

      // Negative control: the same check fails on a file whose output norm is zeroed.
      const bytes = await Deno.readFile(out);
      const norm = g.tensors.find((t) => t.name === "output_norm.weight")!;
      bytes.fill(0, norm.fileOffset, norm.fileOffset + norm.nbytes);
      await Deno.writeFile(`${tmp}/broken.gguf`, bytes);
      const bad = await gollm(["generate", `${tmp}/broken.gguf`, "-n", "40", "--temperature", "0"]);
      assert.equal(tellsThePublishedStory(bad.stdout, published), false, bad.stdout);

      // An existing OUT is kept without --force, replaced with it.
      const again = await gollm(["quantize", STORIES, out, "--type", "q8_0"]);
      assert.equal(again.code, 1);
      assert.match(
        again.stderr,
        /^error: .*q4_k_m\.gguf already exists; pass --force to replace it\n$/,
      );
      assert.equal((await readGguf(out)).metadata.get("general.file_type"), 15);
      const forced = await gollm(["quantize", STORIES, out, "--type", "q6_k", "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.equal((await readGguf(out)).metadata.get("general.file_type"), 18);
      assert.deepEqual([...Deno.readDirSync(tmp)].map((e) => e.name).sort(), [
        "broken.gguf",
        "stories260K.q4_k_m.gguf",
      ]);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("gollm convert --model IN OUT is accepted like the other commands", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "gollm_convert_" });
  try {
    const r = await gollm(["convert", "--model", DEFAULT, `${tmp}/out`, "--dtype", "f16"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^converted .*models\/default \(gollm\) -> .*\/out: /);
    assert.ok((await Deno.stat(`${tmp}/out/config.yaml`)).isFile);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

const CASES: Case[] = [
  {
    name: "quantize --type q4_k (not a file type name) is refused before loading",
    args: ["quantize", DEFAULT, "$T/o.gguf", "--type", "q4_k"],
    code: 2,
    error: /^error: --type must be one of f32, f16, q4_0, .*, q4_k_m, .*, bf16, got 'q4_k'$/,
    beforeLoading: true,
  },
  {
    name: "quantize of a missing IN with a bad --type is a usage error first",
    args: ["quantize", "$T/missing", "$T/o.gguf", "--type", "iq2_xxs"],
    code: 2,
    error: /^error: --type must be one of .*, got 'iq2_xxs'$/,
    beforeLoading: true,
  },
  {
    name: "quantize without --type",
    args: ["quantize", DEFAULT, "$T/o.gguf"],
    code: 2,
    error: /^error: --type T is required$/,
    beforeLoading: true,
  },
  {
    name: "quantize --threads 0",
    args: ["quantize", DEFAULT, "$T/o.gguf", "--type", "q8_0", "--threads", "0"],
    code: 2,
    error: /^error: --threads must be an integer in \[1, 256\], got '0'$/,
    beforeLoading: true,
  },
  {
    name: "quantize with one argument",
    args: ["quantize", DEFAULT, "--type", "q8_0"],
    code: 2,
    error: /^error: missing OUT$/,
  },
  {
    name: "quantize IN OUT --model IN2 gives IN twice",
    args: ["quantize", DEFAULT, "$T/o.gguf", "--model", DEFAULT, "--type", "q8_0"],
    code: 2,
    error: /^error: give the IN as an argument or as --model, not both/,
  },
  {
    name: "quantize to an existing OUT without --force",
    args: ["quantize", DEFAULT, "$T/o.gguf", "--type", "q8_0"],
    setup: (tmp) => Deno.writeTextFile(`${tmp}/o.gguf`, "keep me\n"),
    code: 1,
    error: /^error: .*\/o\.gguf already exists; pass --force to replace it$/,
    beforeLoading: true,
  },
  {
    name: "quantize of a missing checkpoint leaves nothing behind",
    args: ["quantize", "$T/missing", "$T/o.gguf", "--type", "q8_0"],
    code: 1,
    error: /^error: .*missing: no such file or directory/,
  },
  {
    name: "quantize a model with a NaN weight into a new directory leaves nothing behind",
    args: ["quantize", "$T/m", "$T/new/sub/o.gguf", "--type", "f16"],
    setup: (tmp) =>
      scriptedDir(`${tmp}/m`, (w) => (w.get("layers.0.attn.wq.weight")!.data[5] = NaN)),
    code: 1,
    error:
      /^error: .*\/m: tensor 'blk\.0\.attn_q\.weight' holds NaN at element \d+; cannot quantise a non-finite weight$/,
  },
  {
    name: "quantize to an OUT under /proc",
    args: ["quantize", DEFAULT, "/proc/gollm-quantize-test.gguf", "--type", "q8_0"],
    code: 1,
    error:
      /^error: \/proc\/gollm-quantize-test\.gguf: cannot be written: \/proc is a kernel file system$/,
  },
  {
    name: "quantize --force onto the input file",
    args: ["quantize", "$T/s.gguf", "$T/s.gguf", "--type", "q8_0", "--force"],
    setup: (tmp) => Deno.copyFile(`${ROOT}tests/fixtures/gguf/llama.gguf`, `${tmp}/s.gguf`),
    code: 1,
    error: /^error: .*\/s\.gguf: is the input checkpoint; write the GGUF elsewhere$/,
    beforeLoading: true,
  },
  {
    name:
      "quantize stories260K --type q8_0: ffn_down rows of 172 fit no Q8_0 block (as in llama.cpp)",
    args: ["quantize", STORIES, "$T/o.gguf", "--type", "q8_0"],
    code: 1,
    error:
      /^error: .*stories260K\.gguf: q8_0: tensor 'blk\.0\.ffn_down\.weight': row length 172 is not a multiple of the Q8_0 block size 32 and Q8_0 has no fallback type/,
    skip: NEEDS_STORIES,
  },
];

Deno.test("gollm quantize: every bad command line or input gives one error line and leaves nothing behind", async (t) => {
  await runCases(t, CASES);
});
