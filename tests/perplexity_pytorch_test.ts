/**
 * Proof of `gollm perplexity` (issue #10, item 3): gollm's perplexity equals the same
 * computation in PyTorch on the same token ids within 1e-4 relative, for the shipped default
 * model and Karpathy's stories260K, on WikiText-2 (raw test split) and TinyStories.
 *
 * The PyTorch side (python/perplexity_ref.py) is independent: it loads the checkpoint itself
 * (the gollm directory's safetensors, or the llama2.c `.bin` parsed in Python) into the
 * float64 mirror python/model.py, and does its own chunking, BOS replacement and
 * second-half scoring from llama.cpp's spec. Both sides get the same ids: gollm's tokens of
 * the first 20,000 characters of each text (3 chunks are scored), and for the command line
 * the ids of a whole small file. Negative controls: PyTorch scoring the whole chunk, or
 * not writing BOS over each chunk's first token, differs from gollm by more than the
 * tolerance, so the comparison can fail.
 *
 * Skipped with a printed reason when the assets, the default model or torch are absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ASSETS, haveFiles, ROOT } from "./assets.ts";
import { pythonSkipReason } from "./python_probe.ts";
import { loadModel } from "../runtime/model.ts";
import { perplexity, perplexityTokens } from "../runtime/perplexity.ts";

const TOL = 1e-4; // relative, on ppl
const CHUNKS = 3;
const PREFIX = 20_000; // characters of each text: enough tokens for 3 chunks of 512

const MODELS = {
  default: `${ROOT}models/default`,
  stories260K: `${ASSETS}/stories260K/stories260K.bin`,
};
const TEXTS = {
  "wikitext-2": `${ASSETS}/text/wikitext-2/wiki.test.raw`,
  tinystories: `${ASSETS}/text/tinystories/tinystories_train_head_944KB.txt`,
};
const SMALL_TEXT = `${ASSETS}/text/tinystories/cs336_tinystories_sample.txt`;

const haveAssets = haveFiles("perplexity vs PyTorch", [
  `${MODELS.default}/model.safetensors`,
  MODELS.stories260K,
  `${ASSETS}/stories260K/tok512.bin`,
  ...Object.values(TEXTS),
  SMALL_TEXT,
]);
const noTorch = await pythonSkipReason("torch, safetensors, yaml");
if (noTorch) console.log(`skip perplexity vs PyTorch: ${noTorch}`);

interface Job {
  model: string;
  tokens: number[];
  ctx: number;
  chunks: number;
  bos: number | null;
  score?: "all";
  replace_bos?: false;
}
interface RefResult {
  ppl: number;
  nll: number;
  tokens_scored: number;
  chunks: number;
  ctx: number;
}

/** Runs python/perplexity_ref.py on the jobs (one process; models loaded once). */
async function pytorch(jobs: Job[]): Promise<RefResult[]> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/jobs.json`, JSON.stringify(jobs));
    const r = await new Deno.Command("python3", {
      args: [`${ROOT}python/perplexity_ref.py`, `${dir}/jobs.json`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    assert.ok(r.success, `python/perplexity_ref.py failed: ${stderr}`);
    return JSON.parse(new TextDecoder().decode(r.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

Deno.test({
  name:
    "perplexity() equals PyTorch within 1e-4 (default model, stories260K; WikiText-2, TinyStories)",
  ignore: !haveAssets || noTorch !== null,
  async fn() {
    const cases: { what: string; ours: number[]; jobs: Job[] }[] = [];
    for (const [name, path] of Object.entries(MODELS)) {
      for (const backend of ["jit", "wasm"] as const) {
        const model = await loadModel(path, { backend });
        const tok = model.tokenizer!;
        for (const [textName, file] of Object.entries(TEXTS)) {
          const text = (await Deno.readTextFile(file)).slice(0, PREFIX);
          const ids = perplexityTokens(tok, text);
          const r = perplexity(model, ids, { chunks: CHUNKS });
          assert.equal(r.chunks, CHUNKS);
          assert.equal(r.ctx, Math.min(512, model.config.context_length));
          assert.equal(ids[0], tok.bosId, `${name}: the text starts with BOS`);
          if (backend === "wasm") {
            // The same ids on both backends: compare with the jit case instead of PyTorch.
            const jit = cases.find((c) => c.what === `${name} jit on ${textName}`)!;
            assert.ok(relDiff(r.ppl, jit.ours[0]) < TOL, `${name} wasm vs jit: ${r.ppl}`);
            continue;
          }
          const job: Job = { model: path, tokens: ids, ctx: r.ctx, chunks: CHUNKS, bos: tok.bosId };
          cases.push({
            what: `${name} ${backend} on ${textName}`,
            ours: [r.ppl, r.nll, r.tokensScored],
            jobs: [job, { ...job, score: "all" }, { ...job, replace_bos: false }],
          });
        }
      }
    }
    const results = await pytorch(cases.flatMap((c) => c.jobs));
    cases.forEach((c, i) => {
      const [ref, whole, noBos] = results.slice(3 * i, 3 * i + 3);
      const [ppl, nll, scored] = c.ours;
      console.log(
        `${c.what}: gollm ppl ${ppl.toFixed(6)}, PyTorch ${ref.ppl.toFixed(6)} ` +
          `(rel. diff ${relDiff(ppl, ref.ppl).toExponential(1)}); whole chunk ` +
          `${whole.ppl.toFixed(4)}, no BOS ${noBos.ppl.toFixed(4)}`,
      );
      assert.equal(scored, ref.tokens_scored, `${c.what}: tokens scored`);
      assert.ok(relDiff(ppl, ref.ppl) < TOL, `${c.what}: ppl ${ppl} vs PyTorch ${ref.ppl}`);
      assert.ok(Math.abs(nll - ref.nll) < TOL, `${c.what}: nll ${nll} vs PyTorch ${ref.nll}`);
      // Negative controls: each mistake moves the estimate beyond the tolerance.
      assert.ok(relDiff(ppl, whole.ppl) > TOL, `${c.what}: whole-chunk scoring ${whole.ppl}`);
      assert.ok(relDiff(ppl, noBos.ppl) > TOL, `${c.what}: no BOS replacement ${noBos.ppl}`);
    });
  },
});

Deno.test({
  name: "gollm perplexity --json on a whole file equals PyTorch on the file's ids",
  ignore: !haveAssets || noTorch !== null,
  async fn() {
    const model = await loadModel(MODELS.stories260K, { backend: "reference", warmup: false });
    const ids = perplexityTokens(model.tokenizer!, await Deno.readTextFile(SMALL_TEXT));
    const r = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${ROOT}cli/main.ts`,
        "perplexity",
        MODELS.stories260K,
        "--file",
        SMALL_TEXT,
        "--json",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(r.stderr);
    assert.equal(r.code, 0, stderr);
    assert.equal(stderr, "", "--json prints nothing on stderr");
    const out = JSON.parse(new TextDecoder().decode(r.stdout));
    assert.deepEqual(Object.keys(out), [
      "ppl",
      "nll",
      "tokens_scored",
      "chunks",
      "ctx",
      "ppl_stderr",
    ]);
    const chunks = Math.floor(ids.length / 512);
    assert.ok(chunks >= 2, `${SMALL_TEXT}: ${ids.length} tokens`);
    const [ref] = await pytorch([
      { model: MODELS.stories260K, tokens: ids, ctx: 512, chunks, bos: model.tokenizer!.bosId },
    ]);
    assert.equal(out.chunks, chunks);
    assert.equal(out.ctx, 512);
    assert.equal(out.tokens_scored, ref.tokens_scored);
    assert.ok(relDiff(out.ppl, ref.ppl) < TOL, `CLI ppl ${out.ppl} vs PyTorch ${ref.ppl}`);
  },
});
