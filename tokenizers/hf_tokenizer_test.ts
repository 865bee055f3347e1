/**
 * HF tokenizer.json loading, checked against peers: llama.cpp's Llama-3 token vectors, the
 * Python `tokenizers` library (ids committed by python/hf_fixtures.py) and sentencepiece.
 */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import { loadHfTokenizer, parseHfTokenizer } from "./hf_tokenizer.ts";
import { TiktokenTokenizer } from "./tiktoken.ts";
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

interface Variant {
  name: string;
  patch: Record<string, unknown>;
  cases: { text: string; ids: number[] }[];
}
const CASES = JSON.parse(
  await Deno.readTextFile(`${ROOT}tests/fixtures/tokenizers/hf_tokenizer_cases.json`),
) as { variants: Variant[]; llama3?: { text: string; ids: number[] }[] };
const GPT2_JSON = JSON.parse(await Deno.readTextFile(`${FIX}/gpt2/tokenizer.json`));

for (const v of CASES.variants) {
  Deno.test(`parseHfTokenizer() matches Python tokenizers with ${v.name}, also after toFile()`, () => {
    const tok = parseHfTokenizer({ ...GPT2_JSON, ...v.patch }, `${v.name}/tokenizer.json`);
    // What `gollm convert` stores, read back: normalization, splits and added tokens survive.
    const file = tok.toFile();
    const back = TiktokenTokenizer.parseTiktoken(new TextDecoder().decode(file.bytes), file.name);
    for (const c of v.cases) {
      assert.deepEqual(tok.encode(c.text, { bos: false }), c.ids, `${v.name}: ${c.text}`);
      assert.deepEqual(back.encode(c.text, { bos: false }), c.ids, `${v.name} after toFile`);
    }
  });
}

Deno.test("parseHfTokenizer(): non-special added tokens stay matched with special: false; specials do not", () => {
  const v = CASES.variants.find((x) => x.name === "added_non_special")!;
  const tok = parseHfTokenizer({ ...GPT2_JSON, ...v.patch }, "t.json");
  const ids = tok.encode("<tool><|endoftext|>", { special: false });
  assert.equal(ids[0], 320);
  assert.ok(!ids.includes(0));
  assert.equal(tok.decode(ids), "<tool><|endoftext|>");
});

Deno.test({
  name: "loadHfTokenizer() recognises Llama-3 special-token text by default, as Python tokenizers",
  ignore: !haveLlama3 || CASES.llama3 === undefined,
  fn: async () => {
    const tok = (await loadHfTokenizer(LLAMA3))!;
    for (const c of CASES.llama3!) assert.deepEqual(tok.encode(c.text), c.ids, c.text);
    const first = CASES.llama3![0];
    assert.equal(first.ids.length, 6);
    // Negative control: special-token text as plain text gives other ids (12 of them).
    const plain = tok.encode(first.text, { special: false });
    assert.equal(plain.length, 12);
    assert.notDeepEqual(plain, first.ids);
  },
});

/** A minimal byte-level tokenizer.json (256 byte tokens) with `extra` fields. */
function byteLevelJson(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...GPT2_JSON, ...extra };
}

function rejects(json: unknown, re: RegExp): void {
  assert.throws(() => parseHfTokenizer(json, "bad/tokenizer.json"), (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    assert.ok(e.message.startsWith("bad/tokenizer.json: "), e.message);
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  });
}

Deno.test("parseHfTokenizer() rejects malformed added_tokens, ids and post_processor ids with FormatError", () => {
  rejects(
    byteLevelJson({ added_tokens: { 0: { id: 0, content: "x" } } }),
    /'added_tokens' must be a list/,
  );
  rejects(
    byteLevelJson({ added_tokens: [{ id: 1.5, content: "x" }] }),
    /added_tokens\[0\]\.id is 1\.5/,
  );
  const vocab = { ...GPT2_JSON.model.vocab, huge: 2 ** 31 };
  rejects(
    byteLevelJson({ model: { ...GPT2_JSON.model, vocab } }),
    /model\.vocab\["huge"\] is 2147483648; expected an integer id in \[0, 322\)/,
  );
  const spm = JSON.parse(await_sync(`${FIX}/llama_gqa/tokenizer.json`));
  for (const bad of [99999999, -5, 1.5]) {
    const pp = structuredClone(spm.post_processor);
    pp.special_tokens["<s>"].ids = [bad];
    rejects({ ...spm, post_processor: pp }, /post_processor\.special_tokens\["<s>"\]\.ids\[0\] is/);
  }
});

function await_sync(path: string): string {
  return Deno.readTextFileSync(path);
}

Deno.test("parseHfTokenizer(): an empty added token is never matched and encoding stays linear", () => {
  const tok = parseHfTokenizer(
    byteLevelJson({
      added_tokens: [...GPT2_JSON.added_tokens, { id: 320, content: "", special: true }],
    }),
    "t.json",
  );
  const text = "<|endoftext|>ab".repeat(20_000);
  const ids = tok.encode(text, { special: true });
  assert.equal(tok.decode(ids), text);
  assert.ok(!ids.includes(320));
});

Deno.test("parseHfTokenizer(): a catastrophic Split regex runs in linear time and keeps unmatched text", () => {
  const v = CASES.variants.find((x) => x.name === "split_catastrophic")!;
  const tok = parseHfTokenizer({ ...GPT2_JSON, ...v.patch }, "t.json");
  const text = "a".repeat(100_000); // a backtracking engine never returns on this
  assert.equal(tok.decode(tok.encode(text)), text);
  rejects(
    byteLevelJson({
      pre_tokenizer: {
        type: "Sequence",
        pretokenizers: [
          { type: "Split", pattern: { Regex: "(a)\\1" }, behavior: "Isolated" },
          { type: "ByteLevel", use_regex: false },
        ],
      },
    }),
    /Split regex is not usable: backreference/,
  );
});

Deno.test("loadHfTokenizer() says what is wrong with a chat_template.jinja that is a directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gollm_hf_tok_" });
  try {
    await Deno.copyFile(`${FIX}/gpt2/tokenizer.json`, `${dir}/tokenizer.json`);
    await Deno.mkdir(`${dir}/chat_template.jinja`);
    await assert.rejects(
      loadHfTokenizer(dir),
      (e: unknown) =>
        e instanceof FormatError &&
        /chat_template\.jinja: cannot read chat template: it is a directory/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
