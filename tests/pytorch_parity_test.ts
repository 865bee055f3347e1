/**
 * Ring 2 of docs/DESIGN.md "Tests": the Deno engine against PyTorch.
 *
 * Every directory under tests/fixtures/pytorch/ (made by `deno task fixtures`, i.e.
 * python/fixtures.py) holds a gollm model (config.yaml, model.safetensors, maybe
 * tokenizer.tiktoken) and expected.json with PyTorch's logits for a token sequence and a
 * greedy continuation. Every backend of tests/forward_cases.ts `BACKENDS` (the reference
 * forward, runtime/reference.ts; the JS kernels and the WASM SIMD backend,
 * codegen/compile.ts) must match within 1e-4 and produce the same greedy ids. A negative
 * control shows the check fails for a model one setting off. `tiny_trained/` is configs/tiny.yaml trained on the sotu corpus and exported by
 * python/export.py (end-to-end parity); its tokenizer must also give the ids the Python
 * `tiktoken` package gave.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../core/config.ts";
import type { ForwardPass } from "../core/forward.ts";
import { readSafetensors } from "../formats/safetensors.ts";
import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
import { compileModel } from "../codegen/compile.ts";
import { assertClose } from "./assert_close.ts";
import { BACKENDS } from "./forward_cases.ts";
import { greedy } from "./greedy_decode.ts";

const FIXTURES = new URL("./fixtures/pytorch/", import.meta.url).pathname;
const TOL = 1e-4; // the F32 logit tolerance of docs/DESIGN.md "Tests" (tests/forward_cases.ts TOL)

interface Expected {
  name: string;
  tokens: number[];
  vocab_size: number;
  /** (tokens.length, vocab_size) row-major PyTorch logits. */
  logits: number[];
  greedy_prompt: number[];
  greedy_ids: number[];
  prompt?: string;
  tokenizer_cases?: { text: string; ids: number[] }[];
}

function fixtureNames(): string[] {
  const names: string[] = [];
  try {
    for (const e of Deno.readDirSync(FIXTURES)) if (e.isDirectory) names.push(e.name);
  } catch {
    // no fixtures directory: the test below fails with a clear message
  }
  return names.sort();
}

async function loadFixture(name: string) {
  const dir = join(FIXTURES, name);
  const config = await loadConfig(join(dir, "config.yaml"));
  const { tensors, metadata } = await readSafetensors(join(dir, "model.safetensors"));
  const expected = JSON.parse(await Deno.readTextFile(join(dir, "expected.json"))) as Expected;
  return { dir, config, weights: tensors, metadata, expected };
}

function checkForward(fp: ForwardPass, e: Expected, what: string): void {
  const n = e.tokens.length, v = e.vocab_size;
  // Prefill of the whole sequence: every position's logits.
  assertClose(fp.forwardAll(e.tokens, 0), e.logits, TOL, `${what}: forwardAll logits`);
  // Decode path: one token at a time through the KV cache.
  for (let i = 0; i < n; i++) {
    const row = fp.forward([e.tokens[i]], i);
    assertClose(row, e.logits.slice(i * v, (i + 1) * v), TOL, `${what}: decode logits at pos ${i}`);
  }
  assert.deepEqual(
    greedy(fp, e.greedy_prompt, e.greedy_ids.length),
    e.greedy_ids,
    `${what}: greedy ids`,
  );
}

Deno.test("pytorch fixtures exist", () => {
  const names = fixtureNames();
  assert.ok(
    names.length >= 6,
    `expected PyTorch fixtures under ${FIXTURES} (run \`deno task fixtures\`), found ${names.length}`,
  );
});

for (const name of fixtureNames()) {
  for (const backend of BACKENDS) {
    Deno.test(`${backend.name} matches PyTorch logits and greedy ids: ${name}`, async () => {
      const { config, weights, metadata, expected } = await loadFixture(name);
      assert.equal(metadata.format, "gollm");
      checkForward(backend.build(config, weights), expected, `${name} ${backend.name}`);
    });
  }
}

Deno.test("checkForward() fails for a model one setting off the fixture's", async () => {
  // Negative controls: the parity check can fail. The fixture's logits are not flat, and a
  // flipped RoPE pairing, a different norm epsilon or one perturbed weight is caught.
  const { config, weights, expected } = await loadFixture("llama_gqa_half_tied");
  const spread = Math.max(...expected.logits) - Math.min(...expected.logits);
  assert.ok(spread > 1, `PyTorch logits span ${spread}`);
  const flipped = { ...config, rope_style: "interleaved" as const };
  assert.throws(() => checkForward(compileModel(flipped, weights), expected, "rope"), /logits/);
  const eps = { ...config, norm_eps: 1e-2 };
  assert.throws(() => checkForward(compileModel(eps, weights), expected, "eps"), /logits/);
  const off = new Map(weights);
  const t = weights.get("layers.0.ffn.w2.weight")!;
  const data = t.data.slice();
  data[0] += 0.01;
  off.set("layers.0.ffn.w2.weight", { ...t, data });
  assert.throws(() => checkForward(compileModel(config, off), expected, "weight"), /logits/);
});

Deno.test("TiktokenTokenizer.fromFile() gives the Python tiktoken ids for a trained BPE", async () => {
  const { dir, config, expected } = await loadFixture("tiny_trained");
  const tok = await TiktokenTokenizer.fromFile(join(dir, config.tokenizer));
  assert.ok(expected.tokenizer_cases && expected.tokenizer_cases.length > 0);
  for (const { text, ids } of expected.tokenizer_cases) {
    // The Python side encodes special-token text as plain text (tiktoken encode_ordinary).
    assert.deepEqual(
      tok.encode(text, { bos: false, special: false }),
      ids,
      `encode(${JSON.stringify(text)})`,
    );
    assert.equal(tok.decode(ids), text, `decode of ${JSON.stringify(text)}`);
  }
  // The prompt was encoded with BOS first, which is what encode() does by default here.
  assert.deepEqual(tok.encode(expected.prompt!), expected.tokens, "prompt ids");
  assert.equal(tok.bosId, tok.specialTokens.get("<|bos|>"));
  assert.deepEqual(tok.eosIds, [tok.specialTokens.get("<|eos|>")]);
});

Deno.test("trained tiny model: Deno greedy text equals PyTorch's over 50 tokens", async () => {
  const { dir, config, weights, expected } = await loadFixture("tiny_trained");
  const tok = await TiktokenTokenizer.fromFile(join(dir, config.tokenizer));
  const ids = tok.encode(expected.prompt!);
  const out = greedy(compileModel(config, weights), ids, 50);
  assert.deepEqual(out, expected.greedy_ids);
});

const DEFAULT_MODEL = new URL("../models/default/", import.meta.url).pathname;
const DEFAULT_EXPECTED = join(FIXTURES, "default_model.json");
const haveDefault = (() => {
  try {
    Deno.statSync(join(DEFAULT_MODEL, "config.yaml"));
    Deno.statSync(DEFAULT_EXPECTED);
    return true;
  } catch {
    return false;
  }
})();
if (!haveDefault) {
  console.log("skipping shipped-model parity: models/default or its fixture is absent");
}

Deno.test({
  name: "shipped models/default: tokenizer ids, logits and greedy ids equal PyTorch's",
  ignore: !haveDefault,
  fn: async () => {
    const config = await loadConfig(join(DEFAULT_MODEL, "config.yaml"));
    const { tensors, dtypes } = await readSafetensors(join(DEFAULT_MODEL, "model.safetensors"));
    assert.equal(dtypes.get("tok_embeddings.weight"), "F16");
    const e = JSON.parse(await Deno.readTextFile(DEFAULT_EXPECTED)) as {
      prompt: string;
      tokens: number[];
      last_logits: number[];
      greedy_ids: number[];
      tokenizer_cases: { text: string; ids: number[] }[];
    };
    const tok = await TiktokenTokenizer.fromFile(join(DEFAULT_MODEL, config.tokenizer));
    for (const { text, ids } of e.tokenizer_cases) {
      // The Python side encodes special-token text as plain text (tiktoken encode_ordinary).
      assert.deepEqual(
        tok.encode(text, { bos: false, special: false }),
        ids,
        `encode(${JSON.stringify(text)})`,
      );
    }
    assert.deepEqual(tok.encode(e.prompt), e.tokens);
    const m = compileModel(config, tensors);
    assertClose(m.forward(e.tokens, 0), e.last_logits, TOL, "last-position logits");
    assert.deepEqual(greedy(m, e.tokens, e.greedy_ids.length), e.greedy_ids);
  },
});
