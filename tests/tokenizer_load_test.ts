/**
 * loadCheckpoint() and the tokenizer beside a model, on the shipped default model (4,096
 * ids): the tokenizer must fit the model (tokenizers/fit.ts), and a tokenizer path or chat
 * template that is not a regular file is one FormatError naming it.
 */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { ROOT } from "./assets.ts";

const MODEL = `${ROOT}models/default`;

/** A copy of the default model directory whose config names `tokenizer` (files linked). */
async function withTokenizer(tokenizer: string, tiktokenLines?: number): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gollm_fit_" });
  await Deno.symlink(`${MODEL}/model.safetensors`, `${dir}/model.safetensors`);
  const config = await Deno.readTextFile(`${MODEL}/config.yaml`);
  await Deno.writeTextFile(
    `${dir}/config.yaml`,
    config.replace(/^tokenizer: .*$/m, `tokenizer: ${JSON.stringify(tokenizer)}`),
  );
  const lines = (await Deno.readTextFile(`${MODEL}/tokenizer.tiktoken`)).split("\n");
  await Deno.writeTextFile(
    `${dir}/tokenizer.tiktoken`,
    lines.slice(0, tiktokenLines ?? lines.length).join("\n"),
  );
  return dir;
}

Deno.test("loadCheckpoint() rejects a built-in tokenizer larger than the model, naming config.yaml", async () => {
  const dir = await withTokenizer("gpt2");
  try {
    await assert.rejects(loadCheckpoint(dir), (e: unknown) => {
      assert.ok(e instanceof FormatError, String(e));
      assert.match(e.message, /config\.yaml \(tokenizer: gpt2\): the tokenizer has 50257 ids/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() rejects a --tokenizer override larger than the model, naming it", async () => {
  const dir = await withTokenizer("tokenizer.tiktoken");
  try {
    const big = `${dir}/big.tiktoken`;
    const text = await Deno.readTextFile(`${MODEL}/tokenizer.tiktoken`);
    await Deno.writeTextFile(big, text + "<|extra|> 5000\n");
    await assert.rejects(
      loadCheckpoint(dir, { tokenizerPath: big }),
      (e: unknown) =>
        e instanceof FormatError && e.message.startsWith(`${big}: the tokenizer has 5001 ids`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() accepts a cut tiktoken file and decodes the ids it lacks to nothing", async () => {
  const dir = await withTokenizer("tokenizer.tiktoken", 700);
  try {
    const ck = await loadCheckpoint(dir);
    const tok = ck.tokenizer!;
    assert.equal(tok.vocabSize, 4096);
    assert.equal(tok.decode([4000, 4095]), "");
    assert.equal(tok.tokenPiece(4000), "<unused:4000>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCheckpoint() names a tokenizer path with a trailing slash and a chat template that is a directory", async () => {
  const dir = await withTokenizer("tokenizer.tiktoken/");
  try {
    await assert.rejects(
      loadCheckpoint(dir),
      (e: unknown) =>
        e instanceof FormatError &&
        /tokenizer\.tiktoken\/: tokenizer file path ends with '\/'/.test(e.message),
    );
    const config = await Deno.readTextFile(`${dir}/config.yaml`);
    await Deno.writeTextFile(
      `${dir}/config.yaml`,
      config.replace("tokenizer.tiktoken/", "tokenizer.tiktoken"),
    );
    await Deno.mkdir(`${dir}/chat_template.jinja`);
    await assert.rejects(
      loadCheckpoint(dir),
      (e: unknown) =>
        e instanceof FormatError &&
        /chat_template\.jinja: cannot read chat template: it is a directory/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
