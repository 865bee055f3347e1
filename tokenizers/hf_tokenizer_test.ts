/**
 * HF tokenizer.json loading, checked against peers: llama.cpp's Llama-3 token vectors, the
 * Python `tokenizers` library (ids committed by python/hf_fixtures.py) and sentencepiece.
 */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import { loadHfTokenizer, parseHfTokenizer } from "./hf_tokenizer.ts";
import { StreamDecoder } from "./tokenizer.ts";
import { ASSETS, haveFiles, ROOT } from "../tests/assets.ts";

const FIX = `${ROOT}tests/fixtures/hf`;
const LLAMA3 = `${ASSETS}/tokenizers/llama3`;
const VECTORS = `${ASSETS}/tokenizer-vectors`;

const haveLlama3 = haveFiles("Llama-3 tokenizer tests", [`${LLAMA3}/tokenizer.json`]);
const haveVectors = haveLlama3 &&
  haveFiles("llama.cpp Llama-3 vectors", [
    `${VECTORS}/ggml-vocab-llama-bpe.gguf.out`,
    `${VECTORS}/ggml-vocab-llama-spm.gguf.inp`,
  ]);

interface Case {
  text: string;
  ids: number[];
  ids_no_special?: number[];
}

Deno.test({
  name: "loadHfTokenizer() reproduces llama.cpp's Llama-3 vectors (ggml-vocab-llama-bpe)",
  ignore: !haveVectors,
  fn: async () => {
    const tok = (await loadHfTokenizer(LLAMA3))!;
    assert.equal(tok.vocabSize, 128256);
    assert.equal(tok.bosId, 128000);
    assert.equal(tok.addBos, false); // post_processor is ByteLevel: no BOS, like the vectors
    // The .inp file is shared by all vocabularies (identical copies); any one will do.
    const inp = await Deno.readTextFile(`${VECTORS}/ggml-vocab-llama-spm.gguf.inp`);
    const inputs = inp.split("\n__ggml_vocab_test__\n");
    const out = (await Deno.readTextFile(`${VECTORS}/ggml-vocab-llama-bpe.gguf.out`)).split("\n");
    // Trailing separator/newline leaves one empty last element in each.
    if (inputs.at(-1) === "") inputs.pop();
    const expected = out.slice(0, inputs.length).map((l) =>
      l.trim() === "" ? [] : l.trim().split(/\s+/).map(Number)
    );
    assert.equal(inputs.length, 46);
    let ok = 0;
    for (let i = 0; i < inputs.length; i++) {
      const ids = tok.encode(inputs[i], { bos: false });
      assert.deepEqual(ids, expected[i], `input ${i}: ${JSON.stringify(inputs[i])}`);
      assert.equal(tok.decode(ids), inputs[i], `round trip of input ${i}`);
      ok++;
    }
    assert.equal(ok, 46);
  },
});

Deno.test({
  name: "loadHfTokenizer() matches Python tokenizers on Llama-3 multilingual text",
  ignore: !haveLlama3,
  fn: async () => {
    const tok = (await loadHfTokenizer(`${LLAMA3}/tokenizer.json`))!;
    const fx = JSON.parse(await Deno.readTextFile(`${FIX}/llama3_tokenizer.json`));
    assert.ok(fx.cases.length >= 8);
    for (const c of fx.cases as Case[]) {
      // HF always recognises added tokens in text: gollm's `special: true`.
      assert.deepEqual(tok.encode(c.text, { bos: false, special: true }), c.ids, c.text);
    }
    // Chat template and EOS set from tokenizer_config.json / added tokens.
    assert.ok(tok.chatTemplate?.includes("<|start_header_id|>"));
    assert.ok(tok.eosIds.includes(128001) && tok.eosIds.includes(128009));
    // Streaming decode of a multilingual string never splits characters.
    const text = fx.cases[4].text as string;
    const d = new StreamDecoder(tok);
    let s = "";
    for (const id of tok.encode(text, { bos: false })) s += d.push(id);
    assert.equal(s + d.flush(), text);
  },
});

for (const name of ["llama_gqa", "gpt2"]) {
  Deno.test(`loadHfTokenizer() matches Python tokenizers on the ${name} fixture vocabulary`, async () => {
    const tok = (await loadHfTokenizer(`${FIX}/${name}`))!;
    const fx = JSON.parse(await Deno.readTextFile(`${FIX}/${name}/expected.json`));
    for (const c of fx.tokenizer_cases as Case[]) {
      assert.deepEqual(
        tok.encode(c.text, { special: true }),
        c.ids,
        `${name}: ${JSON.stringify(c.text)}`,
      );
      assert.deepEqual(
        tok.encode(c.text, { bos: false, special: true }),
        c.ids_no_special,
        `${name} without BOS: ${JSON.stringify(c.text)}`,
      );
    }
    const prompt = fx.prompt as string;
    assert.deepEqual(tok.encode(prompt), fx.tokens);
    assert.equal(tok.decode(fx.tokens), prompt);
  });
}

Deno.test("loadHfTokenizer() picks the SentencePiece engine for ▁ vocabularies and tiktoken for byte-level", async () => {
  const sp = (await loadHfTokenizer(`${FIX}/llama_gqa/tokenizer.json`))!;
  assert.equal(sp.constructor.name, "SentencePieceTokenizer");
  assert.equal(sp.addBos, true);
  assert.equal(sp.bosId, 1);
  assert.deepEqual([...sp.eosIds], [2]);
  assert.equal(sp.stripLeadingSpace, true);
  const bl = (await loadHfTokenizer(`${FIX}/gpt2`))!;
  assert.equal(bl.constructor.name, "TiktokenTokenizer");
  assert.equal(bl.addBos, false);
  assert.equal(bl.vocabSize, 320);
  assert.deepEqual([...bl.eosIds], [0]);
});

Deno.test("loadHfTokenizer() returns null for a model directory without tokenizer.json", async () => {
  assert.equal(await loadHfTokenizer(`${FIX}/qwen2`), null);
});

Deno.test("parseHfTokenizer() rejects unsupported tokenizer.json with the file and field", () => {
  const base = { model: { type: "BPE", vocab: { a: 0 }, merges: [] } };
  assert.throws(
    () => parseHfTokenizer({ model: { type: "Unigram", vocab: [] } }, "x/tokenizer.json"),
    (e: unknown) =>
      e instanceof FormatError && e.message.startsWith("x/tokenizer.json: field 'model.type'") &&
      e.message.includes("Unigram"),
  );
  assert.throws(
    () => parseHfTokenizer({ ...base, pre_tokenizer: { type: "Whitespace" } }, "t.json"),
    (e: unknown) =>
      e instanceof FormatError && e.message.includes("neither byte-level nor SentencePiece"),
  );
  assert.throws(
    () =>
      parseHfTokenizer({
        ...base,
        pre_tokenizer: {
          type: "Sequence",
          pretokenizers: [{ type: "Digits" }, { type: "ByteLevel", use_regex: false }],
        },
      }, "t.json"),
    (e: unknown) =>
      e instanceof FormatError && e.message.includes('pre_tokenizer "Digits" is not supported'),
  );
  assert.throws(
    () =>
      parseHfTokenizer({
        ...base,
        pre_tokenizer: {
          type: "Sequence",
          pretokenizers: [
            { type: "Split", pattern: { Regex: "(?<x" }, behavior: "Isolated" },
            { type: "ByteLevel", use_regex: false },
          ],
        },
      }, "t.json"),
    (e: unknown) => e instanceof FormatError && e.message.includes("Split regex is not usable"),
  );
  assert.throws(() => parseHfTokenizer([], "t.json"), FormatError);
});
