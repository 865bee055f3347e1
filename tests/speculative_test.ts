/**
 * Speculative decoding on real models: the shipped default model with its shipped draft
 * model and with n-gram drafting gives the same greedy ids as plain decoding; stories260K
 * (Karpathy's, nobody here wrote it) with n-gram drafting reproduces the published llama2.c
 * greedy text; the draft model is the default model's vocabulary and fits the size limit.
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { type GenerateOptions, loadModel, type Model } from "../runtime/model.ts";
import { NgramProposer } from "../runtime/speculative_ngram.ts";
import { NgramProposer as ServerNgram } from "../server/speculative.ts";
import { ASSETS, haveFiles, ROOT } from "./assets.ts";

const PROMPTS = [
  "The state of the Union",
  "Fellow citizens of the Senate and of the House of Representatives:",
  "In the year that has passed since",
];

async function greedy(model: Model, prompt: string, options: GenerateOptions = {}) {
  let text = "";
  for await (const p of model.generate(prompt, { temperature: 0, ...options })) text += p;
  return { text, stats: model.stats! };
}

Deno.test("the default model with models/draft or n-gram drafts gives plain greedy's ids", async () => {
  const target = await loadModel(`${ROOT}models/default`);
  const draft = await loadModel(`${ROOT}models/draft`);
  let accepted = 0, drafted = 0;
  for (const prompt of PROMPTS) {
    const plain = await greedy(target, prompt, { maxTokens: 120 });
    assert.equal(plain.stats.tokens.length, 120);
    for (const [name, d] of [["draft model", draft], ["n-gram", new NgramProposer()]] as const) {
      const spec = await greedy(target, prompt, { maxTokens: 120, draft: d, draftMax: 6 });
      assert.deepEqual(spec.stats.tokens, plain.stats.tokens, `${name}: ${prompt}`);
      assert.equal(spec.text, plain.text);
      const s = spec.stats.speculative!;
      assert.ok(s.tokensPerStep > 1, `${name} saves target steps: ${s.tokensPerStep}`);
      if (name === "draft model") {
        accepted += s.accepted;
        drafted += s.drafted;
      }
    }
  }
  console.log(`models/draft greedy acceptance: ${accepted}/${drafted}`);
});

Deno.test("the server's greedy proposers (token arrays) draft for generate() too", async () => {
  const target = await loadModel(`${ROOT}models/default`);
  const prompt = PROMPTS[0];
  const plain = await greedy(target, prompt, { maxTokens: 60 });
  const spec = await greedy(target, prompt, { maxTokens: 60, draft: new ServerNgram(1, 3) });
  assert.deepEqual(spec.stats.tokens, plain.stats.tokens);
  assert.ok(spec.stats.speculative!.accepted > 0);
  // With sampling, an array is a deterministic draft (q one-hot): the run completes, seeded.
  const a = await greedy(target, prompt, {
    maxTokens: 40,
    temperature: 0.8,
    seed: 3,
    draft: new ServerNgram(),
  });
  const b = await greedy(target, prompt, {
    maxTokens: 40,
    temperature: 0.8,
    seed: 3,
    draft: new ServerNgram(),
  });
  assert.deepEqual(a.stats.tokens, b.stats.tokens);
});

Deno.test("models/draft: same tokenizer as the default model, a smaller config, at most 2 MB", async () => {
  const dir = `${ROOT}models/draft`;
  const a = await Deno.readFile(`${dir}/tokenizer.tiktoken`);
  const b = await Deno.readFile(`${ROOT}models/default/tokenizer.tiktoken`);
  assert.deepEqual(a, b);
  let bytes = 0;
  for (const e of Deno.readDirSync(dir)) bytes += Deno.statSync(`${dir}/${e.name}`).size;
  assert.ok(bytes <= 2_000_000, `${bytes} bytes`);
  const draft = await loadModel(dir, { warmup: false });
  const target = await loadModel(`${ROOT}models/default`, { warmup: false });
  assert.ok(draft.config.dim < target.config.dim && draft.config.n_layers < target.config.n_layers);
  assert.equal(draft.config.vocab_size, target.config.vocab_size);
});

Deno.test("a draft model with another vocabulary is refused with one line naming both", async () => {
  const target = await loadModel(`${ROOT}models/default`, { warmup: false });
  const have = haveFiles("stories260K draft mismatch", [`${ASSETS}/stories260K/stories260K.bin`]);
  if (!have) return;
  const other = await loadModel(`${ASSETS}/stories260K/stories260K.bin`, {
    tokenizerPath: `${ASSETS}/stories260K/tok512.bin`,
    warmup: false,
  });
  assert.throws(
    () => target.generate("x", { draft: other }),
    (e: Error) =>
      e instanceof GollmError && !e.message.includes("\n") &&
      e.message.startsWith(`draft model ${ASSETS}/stories260K/stories260K.bin: its vocabulary `) &&
      e.message.includes("vocab_size 512 vs 4096"),
  );
});

const DIR = `${ASSETS}/stories260K`;
const have260k = haveFiles(
  "stories260K speculative parity",
  ["stories260K.bin", "tok512.bin", "stories260K.md"].map((f) => `${DIR}/${f}`),
);

Deno.test({
  name: "stories260K with n-gram drafts reproduces the published llama2.c greedy text",
  ignore: !have260k,
  fn: async () => {
    const md = await Deno.readTextFile(`${DIR}/stories260K.md`);
    const block = md.slice(md.indexOf("Sampling this model at temperature 0.0")).split("```")[1];
    const published = block.split("\n").slice(2).join("\n"); // after the fence and `$ ./run`
    assert.ok(published.startsWith("Once upon a time, there was a little girl named Lily."));
    const m = await loadModel(`${DIR}/stories260K.bin`, { tokenizerPath: `${DIR}/tok512.bin` });
    const plain = await greedy(m, "", { maxTokens: 200 });
    for (const draftMax of [2, 8]) {
      const spec = await greedy(m, "", { maxTokens: 200, draft: new NgramProposer(), draftMax });
      assert.ok(spec.text.length > 400, `${spec.text.length} chars`);
      assert.equal(spec.text, published.slice(0, spec.text.length));
      assert.deepEqual(spec.stats.tokens, plain.stats.tokens);
      const s = spec.stats.speculative!;
      console.log(
        `stories260K, n-gram, draftMax ${draftMax}: ${s.accepted}/${s.drafted} accepted, ` +
          `${s.tokensPerStep.toFixed(2)} tokens per target step`,
      );
    }
  },
});
