/**
 * GGUF parsing (formats/gguf/parse.ts, formats/quant.ts) against independent peers: files
 * written by llama.cpp's `gguf` Python package (tests/fixtures/gguf/make_gguf_fixtures.py),
 * llama.cpp's vocab-only GGUFs and GPT-2 tokenizer vectors, and hand-built quantised blocks.
 */
import assert from "node:assert/strict";
import { ggufTensor, parseGguf, readGguf } from "./parse.ts";
import { ggufTokenizer } from "./tokenizer.ts";
import { FormatError } from "../../core/errors.ts";
import { f16ToF32 } from "../../core/numbers.ts";
import { dequantize, ggmlType } from "../quant.ts";
import { ASSETS, haveFiles, isFile, ROOT } from "../../tests/assets.ts";
import { buildGguf, v } from "../../tests/gguf_builder.ts";
import { readVectors } from "../../tests/tokenizer_vectors.ts";
import { assertClose } from "../../tests/assert_close.ts";

const FIX = `${ROOT}tests/fixtures/gguf`;
const VECTORS = `${ASSETS}/tokenizer-vectors`;
const GPT2 = `${ASSETS}/tokenizers/gpt2`;

const haveGpt2 = haveFiles("GPT-2 vectors", [
  `${VECTORS}/ggml-vocab-gpt-2.gguf.out`,
  `${GPT2}/encoder.json`,
]);

const isFormatError = (file: string, re: RegExp) => (e: unknown) =>
  e instanceof FormatError && e.message.startsWith(`${file}: `) && re.test(e.message);

Deno.test("parseGguf() reads every metadata value type, nested arrays and alignment (gguf-py file)", async () => {
  const g = parseGguf(await Deno.readFile(`${FIX}/types.gguf`), "types.gguf");
  assert.equal(g.version, 3);
  assert.equal(g.alignment, 64);
  assert.equal(g.dataOffset % 64, 0);
  const m = g.metadata;
  assert.equal(m.get("general.architecture"), "test");
  assert.equal(m.get("t.u8"), 200);
  assert.equal(m.get("t.i8"), -100);
  assert.equal(m.get("t.u16"), 60000);
  assert.equal(m.get("t.i16"), -30000);
  assert.equal(m.get("t.u32"), 4000000000);
  assert.equal(m.get("t.i32"), -2000000000);
  assert.equal(m.get("t.f32"), 0.1); // float32 0.1 shown as its shortest decimal
  assert.equal(m.get("t.u64"), 2n ** 63n + 5n); // beyond 2^53: bigint
  assert.equal(m.get("t.i64"), -(2 ** 40));
  assert.equal(m.get("t.f64"), 1 / 3);
  assert.equal(m.get("t.bool"), true);
  assert.equal(m.get("t.str"), "héllo ▁wörld 🦙");
  assert.deepEqual(m.get("t.arr_i32"), [1, -2, 3]);
  assert.deepEqual(m.get("t.arr_str"), ["a", "", "ü"]);
  assert.deepEqual(m.get("t.arr_nested"), [[1, 2], [3]]);
  assert.deepEqual(
    g.tensors.map((t) => [t.name, t.type.name, t.ne]),
    [
      ["f32", "F32", [64, 4]],
      ["f16", "F16", [64, 4]],
      ["bf16", "BF16", [64, 4]],
      ["q8_0", "Q8_0", [64, 4]],
      ["q4_0", "Q4_0", [64, 4]],
    ],
  );
  // readGguf (header only) agrees with the whole-file parse.
  const h = await readGguf(`${FIX}/types.gguf`);
  assert.deepEqual([...h.metadata], [...g.metadata]);
  assert.equal(h.dataOffset, g.dataOffset);
});

Deno.test("ggufTensor() dequantises F32/F16/BF16/Q8_0/Q4_0 exactly like gguf-py's dequantize", async () => {
  const g = parseGguf(await Deno.readFile(`${FIX}/types.gguf`), "types.gguf");
  const want = JSON.parse(await Deno.readTextFile(`${FIX}/types.json`)).tensors as Record<
    string,
    { shape: number[]; values: number[] }
  >;
  for (const info of g.tensors) {
    const t = ggufTensor(g, info);
    assert.deepEqual(t.shape, want[info.name].shape, info.name);
    assertClose(t.data, want[info.name].values, 0, info.name); // bit-exact
  }
});

Deno.test("dequantize() decodes hand-built Q8_0 and Q4_0 blocks per ggml-common.h", () => {
  // Q8_0: f16 d = 0.5 (0x3800), qs = -16..15.
  const q8 = new Uint8Array(34);
  new DataView(q8.buffer).setUint16(0, 0x3800, true);
  for (let j = 0; j < 32; j++) new DataView(q8.buffer).setInt8(2 + j, j - 16);
  const x8 = dequantize(ggmlType(8)!, q8, 32);
  assert.deepEqual([...x8], Array.from({ length: 32 }, (_, j) => 0.5 * (j - 16)));
  // Q4_0: d = -2 (0xC000); byte j holds element j (low nibble) and j + 16 (high nibble).
  const q4 = new Uint8Array(18);
  new DataView(q4.buffer).setUint16(0, 0xc000, true);
  for (let j = 0; j < 16; j++) q4[2 + j] = (j & 0xf) | ((15 - j) << 4);
  const x4 = dequantize(ggmlType(2)!, q4, 32);
  for (let j = 0; j < 16; j++) {
    assert.equal(x4[j], (j - 8) * -2, `low nibble ${j}`);
    assert.equal(x4[j + 16], (15 - j - 8) * -2, `high nibble ${j}`);
  }
  // Two blocks in a row use their own scales.
  const two = new Uint8Array(36);
  two.set(q4, 0);
  two.set(q4, 18);
  new DataView(two.buffer).setUint16(18, 0x3c00, true); // second d = 1
  const x = dequantize(ggmlType(2)!, two, 64);
  assert.equal(x[32], -8);
  assert.equal(x[0], 16);
  assert.equal(f16ToF32(0x0001), 2 ** -24); // subnormal
  assert.equal(f16ToF32(0x7c00), Infinity);
});

/** A vocab-only GGUF as llama.cpp's converter writes it for GPT-2, from OpenAI's files. */
async function gpt2VocabGguf(): Promise<Uint8Array> {
  const enc = JSON.parse(await Deno.readTextFile(`${GPT2}/encoder.json`)) as Record<string, number>;
  const tokens: string[] = [];
  for (const [t, id] of Object.entries(enc)) tokens[id] = t;
  const merges = (await Deno.readTextFile(`${GPT2}/vocab.bpe`)).split("\n").slice(1).filter((l) =>
    l.length > 0
  );
  return buildGguf([
    ["general.architecture", v.str("gpt2")],
    ["tokenizer.ggml.model", v.str("gpt2")],
    ["tokenizer.ggml.pre", v.str("gpt-2")],
    ["tokenizer.ggml.tokens", v.strs(tokens)],
    ["tokenizer.ggml.token_type", v.i32s(tokens.map((t) => t === "<|endoftext|>" ? 3 : 1))],
    ["tokenizer.ggml.merges", v.strs(merges)],
    ["tokenizer.ggml.bos_token_id", v.u32(50256)],
    ["tokenizer.ggml.eos_token_id", v.u32(50256)],
  ]);
}

/**
 * The shared copies of llama.cpp's vocab-only GGUFs were stored through a text filter: every
 * byte that is not valid UTF-8 became U+FFFD (EF BF BD), so the whole file decodes as UTF-8,
 * which no real GGUF with binary numbers does. Such a copy must be rejected, not misread.
 */
function isUtf8Mangled(bytes: Uint8Array): boolean {
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "ggufTokenizer() reproduces llama.cpp's GPT-2 vectors from GGUF tokenizer metadata",
  ignore: !haveGpt2,
  fn: async () => {
    const assetPath = `${VECTORS}/ggml-vocab-gpt-2.gguf`;
    let bytes: Uint8Array | null = isFile(assetPath) ? await Deno.readFile(assetPath) : null;
    let file = assetPath;
    if (bytes && isUtf8Mangled(bytes)) {
      console.log(
        `${assetPath} is a UTF-8-mangled copy; checking it is rejected and using ` +
          `the same vocabulary rebuilt from ${GPT2}`,
      );
      const damaged = bytes;
      assert.throws(() => parseGguf(damaged, assetPath), isFormatError(assetPath, /./));
      bytes = null;
    }
    if (!bytes) {
      bytes = await gpt2VocabGguf();
      file = "<gpt2 vocab gguf>";
    }
    const g = parseGguf(bytes, file);
    assert.equal(g.tensors.length, 0);
    assert.equal((g.metadata.get("tokenizer.ggml.merges") as string[]).length, 50000);
    const tok = ggufTokenizer(g)!;
    assert.equal(tok.vocabSize, 50257);
    assert.deepEqual(tok.eosIds, [50256]);
    assert.equal(tok.addBos, false);
    const cases = await readVectors(
      `${VECTORS}/ggml-vocab-gpt-2.gguf.inp`,
      `${VECTORS}/ggml-vocab-gpt-2.gguf.out`,
    );
    assert.equal(cases.length, 46);
    for (const [text, ids] of cases) {
      assert.deepEqual(tok.encode(text, { bos: false }), ids, `input ${JSON.stringify(text)}`);
      assert.equal(tok.decode(ids), text);
    }
  },
});

Deno.test({
  name: "parseGguf() rejects the UTF-8-mangled shared copy of ggml-vocab-llama-spm.gguf",
  ignore: !haveFiles("the mangled llama-spm GGUF check", [`${VECTORS}/ggml-vocab-llama-spm.gguf`]),
  fn: async () => {
    const path = `${VECTORS}/ggml-vocab-llama-spm.gguf`;
    const bytes = await Deno.readFile(path);
    if (!isUtf8Mangled(bytes)) {
      // An intact copy: its tokenizer must then reproduce the vectors directly.
      const tok = ggufTokenizer(parseGguf(bytes, path))!;
      const cases = await readVectors(`${path}.inp`, `${path}.out`);
      for (const [text, ids] of cases) assert.deepEqual(tok.encode(text, { bos: false }), ids);
      return;
    }
    assert.throws(
      () => parseGguf(bytes, path),
      isFormatError(path, /corrupt or truncated: .* needs? .*but the file has \d+/),
    );
  },
});
