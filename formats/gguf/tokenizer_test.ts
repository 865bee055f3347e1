/**
 * `ggufTokenizer()` (formats/gguf/parse.ts) on full-size vocabularies, checked against llama.cpp's
 * tokenizer test vectors and transformers' chat rendering.
 *
 * The shared vocab-only GGUFs (tokenizer-vectors/ggml-vocab-*.gguf) are damaged upstream, so
 * the vocab-only GGUFs are built here, in a temp dir, laid out the way llama.cpp's
 * convert_hf_to_gguf.py writes them (`_set_vocab_sentencepiece`, `_set_vocab_gpt2`): from
 * Llama-2's llama2.c tokenizer.bin (pieces + scores) and from Llama-3's HF tokenizer.json.
 * Nothing derived from the assets is committed.
 */
import assert from "node:assert/strict";
import { renderChat } from "../../tokenizers/chat_template.ts";
import { readGguf } from "./parse.ts";
import { ggufTokenizer } from "./tokenizer.ts";
import { readLlama2cTokenizer } from "../../tokenizers/sentencepiece.ts";
import { SentencePieceTokenizer, SPM_TOKEN_TYPE } from "../../tokenizers/sentencepiece.ts";
import { TiktokenTokenizer } from "../../tokenizers/tiktoken.ts";
import { ASSETS, haveFiles, ROOT } from "../../tests/assets.ts";
import { type BuilderValue, buildGguf, v } from "../../tests/gguf_builder.ts";
import { readVectors } from "../../tests/tokenizer_vectors.ts";

const LLAMA2_BIN = `${ASSETS}/tokenizers/llama2/tokenizer.bin`;
const LLAMA3 = `${ASSETS}/tokenizers/llama3`;
const VECTORS = `${ASSETS}/tokenizer-vectors`;
// All .inp files are identical copies (PROVENANCE.txt); llama-bpe ships only its .out.
const INP = `${VECTORS}/ggml-vocab-llama-spm.gguf.inp`;

const haveSpm = haveFiles("GGUF SentencePiece tokenizer vectors", [
  LLAMA2_BIN,
  INP,
  `${VECTORS}/ggml-vocab-llama-spm.gguf.out`,
]);
const haveBpe = haveFiles("GGUF Llama-3 BPE tokenizer vectors", [
  `${LLAMA3}/tokenizer.json`,
  INP,
  `${VECTORS}/ggml-vocab-llama-bpe.gguf.out`,
]);
const haveTemplate = haveFiles("GGUF chat template test", [
  `${LLAMA3}/tokenizer.json`,
  `${LLAMA3}/tokenizer_config.json`,
]);

/** Writes `kv` as a vocab-only GGUF (no tensors) in a fresh temp dir and reads it back. */
async function roundTrip(kv: [string, BuilderValue][]) {
  const dir = await Deno.makeTempDir({ prefix: "gollm_gguf_tok_" });
  try {
    const path = `${dir}/vocab.gguf`;
    await Deno.writeFile(path, buildGguf(kv));
    return await readGguf(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** llama.cpp token type of a Llama-2 piece (equal to sentencepiece's is_* flags here). */
function spmType(id: number, piece: string): number {
  if (id === 0) return SPM_TOKEN_TYPE.unknown;
  if (id === 1 || id === 2) return SPM_TOKEN_TYPE.control;
  if (/^<0x[0-9A-F]{2}>$/.test(piece)) return SPM_TOKEN_TYPE.byte;
  return SPM_TOKEN_TYPE.normal;
}

/** Metadata of the Llama-2 vocab-only GGUF, from llama2.c's tokenizer.bin. */
async function llamaSpmKv(): Promise<[string, BuilderValue][]> {
  const src = await readLlama2cTokenizer(LLAMA2_BIN);
  const pieces = src.pieces;
  return [
    ["general.architecture", v.str("llama")],
    ["general.name", v.str("llama-spm")],
    ["tokenizer.ggml.model", v.str("llama")],
    ["tokenizer.ggml.tokens", v.strs(pieces)],
    ["tokenizer.ggml.scores", v.f32s(src.scores)],
    ["tokenizer.ggml.token_type", v.i32s(pieces.map((p, id) => spmType(id, p)))],
    ["tokenizer.ggml.bos_token_id", v.u32(1)],
    ["tokenizer.ggml.eos_token_id", v.u32(2)],
    ["tokenizer.ggml.unknown_token_id", v.u32(0)],
    ["tokenizer.ggml.add_bos_token", v.bool(true)],
    ["tokenizer.ggml.add_eos_token", v.bool(false)],
  ];
}

/** Metadata of the Llama-3 vocab-only GGUF, from tokenizer.json (+ an optional template). */
async function llamaBpeKv(chatTemplate?: string): Promise<[string, BuilderValue][]> {
  const j = JSON.parse(await Deno.readTextFile(`${LLAMA3}/tokenizer.json`)) as {
    model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
    added_tokens: { id: number; content: string; special: boolean }[];
  };
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [t, id] of Object.entries(j.model.vocab)) {
    tokens[id] = t;
    types[id] = SPM_TOKEN_TYPE.normal;
  }
  for (const a of j.added_tokens) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? SPM_TOKEN_TYPE.control : SPM_TOKEN_TYPE.userDefined;
  }
  assert.equal(tokens.length, 128256);
  assert.ok(tokens.every((t) => typeof t === "string"), "no holes in the id range");
  // Newer tokenizer.json files store merges as pairs; GGUF stores "a b".
  const merges = j.model.merges.map((m) => typeof m === "string" ? m : m.join(" "));
  const kv: [string, BuilderValue][] = [
    ["general.architecture", v.str("llama")],
    ["general.name", v.str("llama-bpe")],
    ["tokenizer.ggml.model", v.str("gpt2")],
    ["tokenizer.ggml.pre", v.str("llama-bpe")],
    ["tokenizer.ggml.tokens", v.strs(tokens)],
    ["tokenizer.ggml.token_type", v.i32s(types)],
    ["tokenizer.ggml.merges", v.strs(merges)],
    ["tokenizer.ggml.bos_token_id", v.u32(128000)],
    ["tokenizer.ggml.eos_token_id", v.u32(128001)],
    ["tokenizer.ggml.add_bos_token", v.bool(true)],
  ];
  if (chatTemplate !== undefined) kv.push(["tokenizer.chat_template", v.str(chatTemplate)]);
  return kv;
}

Deno.test({
  name: "ggufTokenizer() on a Llama-2 vocab-only GGUF reproduces llama.cpp's llama-spm vectors",
  ignore: !haveSpm,
  fn: async () => {
    const g = await roundTrip(await llamaSpmKv());
    const tok = ggufTokenizer(g);
    assert.ok(tok instanceof SentencePieceTokenizer, "tokenizer.ggml.model llama → SentencePiece");
    assert.equal(tok.vocabSize, 32000);
    assert.equal(tok.bosId, 1);
    assert.deepEqual(tok.eosIds, [2]);
    assert.equal(tok.unkId, 0);
    assert.equal(tok.addBos, true);
    assert.equal(tok.chatTemplate, undefined);
    assert.equal(tok.types[0x0a + 3], SPM_TOKEN_TYPE.byte); // <0x0A>
    const cases = await readVectors(INP, `${VECTORS}/ggml-vocab-llama-spm.gguf.out`);
    assert.equal(cases.length, 46);
    // test-tokenizer-0 tokenizes with add_special = false: the vectors carry no BOS.
    assert.ok(cases.every(([, ids]) => ids[0] !== 1), "vectors carry no BOS");
    for (const [text, ids] of cases) {
      assert.deepEqual(tok.encode(text, { bos: false }), ids, `input ${JSON.stringify(text)}`);
      assert.equal(tok.decode(ids), text, `decode of ${JSON.stringify(text)}`);
    }
    // add_bos_token: the default encode puts BOS first.
    assert.deepEqual(tok.encode("Hello world"), [1, ...tok.encode("Hello world", { bos: false })]);
  },
});

Deno.test({
  name: "ggufTokenizer() on a Llama-3 vocab-only GGUF reproduces llama.cpp's llama-bpe vectors",
  ignore: !haveBpe,
  fn: async () => {
    const g = await roundTrip(await llamaBpeKv());
    const tok = ggufTokenizer(g);
    assert.ok(tok instanceof TiktokenTokenizer, "tokenizer.ggml.model gpt2 → byte-level BPE");
    assert.equal(tok.vocabSize, 128256);
    assert.equal(tok.bosId, 128000);
    assert.deepEqual(tok.eosIds, [128001]);
    assert.equal(tok.addBos, true);
    const cases = await readVectors(INP, `${VECTORS}/ggml-vocab-llama-bpe.gguf.out`);
    assert.equal(cases.length, 46);
    for (const [text, ids] of cases) {
      assert.deepEqual(tok.encode(text, { bos: false }), ids, `input ${JSON.stringify(text)}`);
      assert.equal(tok.decode(ids), text, `decode of ${JSON.stringify(text)}`);
    }
    // Control tokens (token_type 3) are specials: matched unless `special: false`.
    assert.deepEqual(tok.encode("<|eot_id|>", { bos: false }), [128009]);
    assert.ok(!tok.encode("<|eot_id|>", { bos: false, special: false }).includes(128009));
    assert.deepEqual(tok.encode("hi"), [128000, 6151]);
  },
});

Deno.test({
  name: "ggufTokenizer() carries tokenizer.chat_template and renderChat() matches transformers",
  ignore: !haveTemplate,
  fn: async () => {
    const cfg = JSON.parse(await Deno.readTextFile(`${LLAMA3}/tokenizer_config.json`)) as {
      chat_template: string;
    };
    const template = cfg.chat_template;
    assert.ok(template.includes("<|start_header_id|>"));
    const tok = ggufTokenizer(await roundTrip(await llamaBpeKv(template)))!;
    assert.equal(tok.chatTemplate, template);
    // Expected strings: transformers' apply_chat_template (python/hf_fixtures.py).
    const fixture = JSON.parse(
      await Deno.readTextFile(`${ROOT}tests/fixtures/hf/chat_templates.json`),
    ) as {
      renders: {
        template: string;
        messages: { role: string; content: string }[];
        add_generation_prompt: boolean;
        bos_token: string;
        eos_token: string;
        expected: string;
      }[];
    };
    const renders = fixture.renders.filter((r) => r.template === "llama3");
    assert.equal(renders.length, 4);
    for (const r of renders) {
      // BOS/EOS text from the GGUF's own ids, as `gollm chat` does.
      const bosToken = tok.tokenPiece(tok.bosId!);
      const eosToken = tok.tokenPiece(tok.eosIds[0]);
      assert.equal(bosToken, r.bos_token);
      assert.equal(eosToken, r.eos_token);
      const text = renderChat(tok.chatTemplate, r.messages, {
        addGenerationPrompt: r.add_generation_prompt,
        bosToken,
        eosToken,
      });
      assert.equal(text, r.expected, JSON.stringify(r.messages));
      const ids = tok.encode(text, { bos: false, special: true });
      assert.deepEqual(ids.slice(0, 2), [128000, 128006]); // <|begin_of_text|><|start_header_id|>
      // decode() drops BOS (the Tokenizer contract) and gives the rest back verbatim.
      assert.equal(tok.decode(ids), text.slice(bosToken.length));
    }
  },
});
