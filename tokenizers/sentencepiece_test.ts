/**
 * SentencePiece-style BPE (tokenizers/sentencepiece.ts) against peers: llama.cpp's tokenizer
 * vectors for the Llama SentencePiece vocabulary, ids from Google's `sentencepiece` library
 * (tests/fixtures/spm/make_spm_ids.py), and hand-built vocabularies for the algorithm's rules.
 */
import assert from "node:assert/strict";
import { FormatError } from "../core/errors.ts";
import {
  encodeLlama2cTokenizer,
  parseLlama2cTokenizer,
  readLlama2cTokenizer,
  SentencePieceTokenizer,
} from "./sentencepiece.ts";
import { StreamDecoder } from "./tokenizer.ts";
import { ASSETS, haveFiles, isFile, ROOT } from "../tests/assets.ts";
import { readVectors } from "../tests/tokenizer_vectors.ts";

const LLAMA2_BIN = `${ASSETS}/tokenizers/llama2/tokenizer.bin`;
const VECTORS = `${ASSETS}/tokenizer-vectors`;
const TOK512 = `${ASSETS}/stories260K/tok512.bin`;

const haveLlama2 = haveFiles("Llama-2 vocabulary tests", [LLAMA2_BIN]);
const haveVectors = haveLlama2 &&
  haveFiles("llama.cpp SPM vectors", [`${VECTORS}/ggml-vocab-llama-spm.gguf.out`]);
const haveTok512 = haveFiles("tok512 tests", [TOK512]);

Deno.test({
  name: "SentencePieceTokenizer.encode() reproduces llama.cpp's llama-spm vectors exactly on " +
    "Llama-2 tokenizer.bin (the shared GGUF copy is corrupted)",
  ignore: !haveVectors,
  fn: async () => {
    // ggml-vocab-llama-spm.gguf is the Llama-1/2 32000-piece vocabulary; llama2.c's
    // tokenizer.bin carries the same pieces and scores (the shared GGUF copy is damaged, see
    // gguf_test.ts, so the vocabulary comes from here; gguf_tokenizer_test.ts rebuilds the
    // GGUF from it).
    console.log(
      `vocabulary from ${LLAMA2_BIN}: the shared ggml-vocab-llama-spm.gguf is a ` +
        `UTF-8-mangled copy`,
    );
    const tok = await readLlama2cTokenizer(LLAMA2_BIN);
    assert.equal(tok.vocabSize, 32000);
    const cases = await readVectors(
      `${VECTORS}/ggml-vocab-llama-spm.gguf.inp`,
      `${VECTORS}/ggml-vocab-llama-spm.gguf.out`,
    );
    assert.equal(cases.length, 46);
    assert.ok(cases.every(([, ids]) => ids[0] !== tok.bosId), "vectors carry no BOS");
    for (const [text, ids] of cases) {
      assert.deepEqual(tok.encode(text, { bos: false }), ids, `input ${JSON.stringify(text)}`);
      // SentencePiece is lossless: decoding gives the input back (dummy prefix removed).
      assert.equal(tok.decode(ids), text, `decode of ${JSON.stringify(text)}`);
    }
  },
});

Deno.test({
  name: "SentencePieceTokenizer.encode() equals Google sentencepiece on prose, code, multilingual",
  ignore: !haveLlama2,
  fn: async () => {
    const tok = await readLlama2cTokenizer(LLAMA2_BIN);
    const fx = JSON.parse(
      await Deno.readTextFile(`${ROOT}tests/fixtures/spm/spm_ids.json`),
    ) as { cases: { file?: string; start?: number; end?: number; text?: string; ids: number[] }[] };
    assert.equal(fx.cases.length, 7);
    for (const c of fx.cases) {
      let text = c.text;
      if (text === undefined) {
        const path = `${ASSETS}/${c.file}`;
        if (!isFile(path)) {
          console.log(`skip case ${c.file}: not found`);
          continue;
        }
        // Python slices by code point.
        text = Array.from(await Deno.readTextFile(path)).slice(c.start, c.end).join("");
      }
      // sentencepiece's encode() adds no BOS.
      assert.deepEqual(tok.encode(text, { bos: false }), c.ids, c.file ?? JSON.stringify(text));
    }
  },
});

Deno.test({
  name: "SentencePieceTokenizer.encode() is lossless on 300 KB of prose (time printed)",
  ignore: !haveLlama2 ||
    !haveFiles("the 300 KB prose test", [`${ASSETS}/text/moby-dick/moby-dick.txt`]),
  fn: async () => {
    const tok = await readLlama2cTokenizer(LLAMA2_BIN);
    const text = (await Deno.readTextFile(`${ASSETS}/text/moby-dick/moby-dick.txt`)).slice(
      0,
      300_000,
    );
    const t0 = performance.now();
    const ids = tok.encode(text);
    const ms = performance.now() - t0;
    console.log(`encoded ${text.length} chars -> ${ids.length} ids in ${ms.toFixed(0)} ms`);
    assert.equal(ids[0], 1);
    assert.equal(tok.decode(ids), text);
    // Merges shrink the text: English prose averages several characters per token.
    assert.ok(ids.length < text.length / 2, `${ids.length} ids for ${text.length} chars`);
  },
});

/** A toy vocabulary: unk/bos/eos, a few bytes, letters and scored merges. */
function toy(extra: [string, number][] = []): SentencePieceTokenizer {
  const base: [string, number][] = [
    ["<unk>", 0],
    ["<s>", 0],
    ["</s>", 0],
    ["<0x0A>", 0],
    ["<0xC3>", 0],
    ["<0xA9>", 0],
    ["▁", -1],
    ["a", -2],
    ["b", -3],
    ["c", -4],
  ];
  const all = [...base, ...extra];
  return new SentencePieceTokenizer({
    pieces: all.map(([p]) => p),
    scores: all.map(([, s]) => s),
    bosId: 1,
    eosIds: [2],
    unkId: 0,
  });
}

Deno.test("SentencePieceTokenizer.encode() merges the highest-scoring pair first", () => {
  // "▁abc": candidate pairs ▁a (-5), ab (-10), bc (-1). Score order merges bc first, which
  // blocks ab; a left-to-right greedy merge would give [▁a, b, c] or [▁, ab, c] instead.
  const tok = toy([["ab", -10], ["bc", -1], ["▁a", -5]]);
  const id = (p: string) => tok.pieceId(p)!;
  assert.deepEqual(tok.encode("abc", { bos: false }), [id("▁a"), id("bc")]);
  // Equal scores: the leftmost pair wins ("aaa" → [▁, aa, a] with ▁a absent).
  const tie = toy([["aa", -5]]);
  assert.deepEqual(tie.encode("aaa", { bos: false }), [6, tie.pieceId("aa")!, 7]);
});

Deno.test("SentencePieceTokenizer.encode() falls back to byte tokens and decodes them back", () => {
  const tok = toy();
  // 'é' (C3 A9) is not a piece but both its bytes are; '\n' is <0x0A>; 'z' has no byte
  // token in this toy vocabulary → <unk>.
  assert.deepEqual(tok.encode("aé\nz", { bos: false }), [6, 7, 4, 5, 3, 0]);
  assert.equal(tok.decode([6, 7, 4, 5, 3]), "aé\n");
  assert.deepEqual(tok.tokenBytes(4), Uint8Array.of(0xc3));
  assert.equal(tok.tokenPiece(4), "<0xC3>");
  // A character split over two tokens streams out whole.
  const d = new StreamDecoder(tok);
  assert.equal(d.push(1) + d.push(6) + d.push(7), "a");
  assert.equal(d.push(4), "");
  assert.equal(d.push(5), "é");
  assert.equal(d.flush(), "");
});

Deno.test("SentencePieceTokenizer.encode() handles BOS, EOS, specials and the dummy prefix", () => {
  const tok = toy([["▁a", -5]]);
  assert.equal(tok.addBos, true);
  assert.deepEqual(tok.encode("a"), [1, 10]);
  assert.deepEqual(tok.encode("a", { bos: false, eos: true }), [10, 2]);
  assert.deepEqual(tok.encode(""), [1]);
  assert.deepEqual(tok.encode("", { bos: false }), []);
  // With `special: false`, "</s>" is plain text (no '<' piece, no byte token → unk).
  assert.ok(!tok.encode("a</s>", { bos: false, special: false }).includes(2));
  // By default the control token is matched and the text after it gets a new dummy prefix,
  // as llama.cpp does.
  assert.deepEqual(tok.encode("a</s>a", { bos: false }), [10, 2, 10]);
  // decode drops BOS, strips one leading space, renders EOS as its text.
  assert.equal(tok.decode([1, 10, 6, 7]), "a a");
  assert.equal(tok.decode([10, 2]), "a</s>");
  assert.throws(() => tok.tokenBytes(99), RangeError);
  assert.throws(() => tok.decode([-1]), RangeError);
});

Deno.test({
  name: "encodeLlama2cTokenizer() reproduces tok512.bin and Llama-2 tokenizer.bin byte for byte",
  ignore: !haveTok512 || !haveLlama2,
  fn: async () => {
    for (const path of [TOK512, LLAMA2_BIN]) {
      const original = await Deno.readFile(path);
      const tok = parseLlama2cTokenizer(original, path);
      assert.equal(tok.bosId, 1);
      assert.deepEqual(tok.eosIds, [2]);
      assert.equal(tok.unkId, 0);
      assert.equal(tok.tokenPiece(1), "<s>");
      const written = encodeLlama2cTokenizer(tok);
      assert.equal(written.length, original.length, path);
      assert.ok(written.every((b, i) => b === original[i]), `${path}: bytes differ`);
      const file = tok.toFile();
      assert.equal(file.name, "tokenizer.bin");
      assert.equal(file.bytes.length, original.length);
    }
  },
});

Deno.test({
  name: "readLlama2cTokenizer() encodes stories260K's vocabulary like llama2.c",
  ignore: !haveTok512,
  fn: async () => {
    const tok = await readLlama2cTokenizer(TOK512);
    assert.equal(tok.vocabSize, 512);
    // llama2.c run.c: BOS, then the dummy-prefix space merged into "▁Once" etc.
    const ids = tok.encode("Once upon a time");
    assert.deepEqual(ids.map((i) => tok.tokenPiece(i)), ["<s>", "▁Once", "▁upon", "▁a", "▁time"]);
    assert.equal(tok.decode(ids), "Once upon a time");
  },
});

Deno.test("parseLlama2cTokenizer() rejects truncated and malformed files with FormatError", () => {
  const tok = toy([["▁a", -5]]);
  const good = encodeLlama2cTokenizer(tok);
  for (const cut of [0, 2, 5, 13, good.length - 1]) {
    assert.throws(
      () => parseLlama2cTokenizer(good.subarray(0, cut), "cut.bin"),
      (e: unknown) => e instanceof FormatError && e.message.startsWith("cut.bin: "),
      `cut at ${cut}`,
    );
  }
  const bad = good.slice();
  new DataView(bad.buffer).setInt32(8, -7, true); // length of token 0
  assert.throws(() => parseLlama2cTokenizer(bad, "neg.bin"), /neg\.bin: token 0: length -7/);
});
