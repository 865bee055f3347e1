/**
 * The bench's model files: the random-weight GGUF writer and its synthetic byte-level BPE are
 * read the same way by llama.cpp and by gollm (logits, tokenisation), the quantised files
 * hold the types asked for, and files are cached.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../core/config.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { readGguf } from "../formats/gguf/parse.ts";
import { createReference } from "../runtime/reference.ts";
import { assertClose } from "../tests/assert_close.ts";
import { llamaCppGenerate, llamaCppLogits } from "./llama_cpp.ts";
import { benchModels, byteLevelVocab, randomLlamaGguf } from "./make_model.ts";
import { PEER } from "./peer_for_tests.ts";

/** A small model with the g110M structure (GQA, tied embeddings, K-quant-sized rows). */
const SMALL = {
  arch: "llama",
  vocab_size: 512,
  dim: 256,
  n_layers: 2,
  n_heads: 4,
  n_kv_heads: 2,
  head_dim: 64,
  hidden_dim: 512,
  context_length: 128,
  norm: "rmsnorm",
  norm_eps: 1e-5,
  rope_theta: 500000,
  rope_style: "interleaved",
  attn_bias: false,
  mlp: "swiglu",
  tie_embeddings: true,
  tokenizer: "none",
};
const config = parseConfig(SMALL, "<small>");
const peerDir = PEER ?? "";

Deno.test("byteLevelVocab() has one token per id, merges building ids 256.., BOS and EOS last", () => {
  const v = byteLevelVocab(32768);
  assert.equal(v.tokens.length, 32768);
  assert.equal(v.merges.length, 32768 - 258);
  assert.equal(new Set(v.tokens).size, 32768, "token texts are unique");
  for (const [i, m] of v.merges.entries()) {
    const [a, b] = m.split(" ");
    assert.equal(v.tokens[256 + i], a + b);
  }
  assert.deepEqual([v.bosId, v.eosId], [32766, 32767]);
  assert.deepEqual(v.types.slice(-3), [1, 3, 3]);
  assert.throws(() => byteLevelVocab(100), /vocab_size must be in \[258, 65794\], got 100/);
});

Deno.test("randomLlamaGguf() writes what gollm reads back: config, tied or untied, tokenizer", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const tie of [true, false]) {
      const c = parseConfig({ ...SMALL, tie_embeddings: tie }, "<small>");
      const path = `${dir}/m-${tie}.gguf`;
      await Deno.writeFile(path, randomLlamaGguf(c, { seed: 5 }));
      const ck = await loadGguf(path);
      for (const k of ["vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "head_dim"]) {
        assert.equal(ck.config[k as keyof typeof c], c[k as keyof typeof c], k);
      }
      assert.equal(ck.config.hidden_dim, 512);
      assert.equal(ck.config.rope_theta, 500000);
      assert.equal(ck.config.tie_embeddings, tie);
      assert.equal(ck.tokenizer?.bosId, 510);
      // Weights: uniform with std 0.02, so |w| <= 0.02·√3; norms are 1.
      const wq = ck.weights.get("layers.0.attn.wq.weight")!.data;
      assert.ok(wq.every((x) => Math.abs(x) <= 0.02 * Math.sqrt(3) + 1e-7));
      assert.ok(ck.weights.get("norm.weight")!.data.every((x) => x === 1));
    }
    const bytes = randomLlamaGguf(config, { seed: 5 });
    assert.notDeepEqual(randomLlamaGguf(config, { seed: 6 }), bytes, "the seed changes weights");
    assert.throws(
      () => randomLlamaGguf(parseConfig({ ...SMALL, attn_bias: true }, "<b>")),
      /must be arch llama, norm rmsnorm, mlp swiglu, attn_bias false/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "a random GGUF gives llama.cpp's logits and tokens in gollm within 1e-3",
  ignore: PEER === null,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const path = `${dir}/small.gguf`;
      await Deno.writeFile(path, randomLlamaGguf(config, { seed: 7, std: 0.3 }));
      const ck = await loadGguf(path);
      // Tokenisation: llama.cpp's BPE (merges) and gollm's (ranks) on the synthetic vocabulary.
      const text = "hello world, a test";
      const g = await llamaCppGenerate(path, text, 0, { peerDir });
      assert.deepEqual(g.promptIds, ck.tokenizer!.encode(text));
      assert.equal(g.promptIds[0], 510); // BOS
      // Logits of every position.
      const tokens = [510, 7, 300, 42, 511, 99];
      const peer = await llamaCppLogits(path, tokens, { peerDir });
      const ref = createReference(ck.config, ck.weights);
      const ours = new Float32Array(tokens.length * 512);
      tokens.forEach((t, pos) => ours.set(ref.forward([t], pos), pos * 512));
      assert.ok(ours.some((x) => Math.abs(x) > 1), "logits are not all tiny");
      assertClose(peer.logits, ours, 1e-3, "llama.cpp vs gollm reference");
      // Negative control: another seed's logits are far from llama.cpp's.
      const other = randomLlamaGguf(config, { seed: 8, std: 0.3 });
      await Deno.writeFile(`${dir}/other.gguf`, other);
      const ck2 = await loadGguf(`${dir}/other.gguf`);
      const ref2 = createReference(ck2.config, ck2.weights);
      const theirs = new Float32Array(tokens.length * 512);
      tokens.forEach((t, pos) => theirs.set(ref2.forward([t], pos), pos * 512));
      assert.throws(() => assertClose(peer.logits, theirs, 1e-3), /max \|diff\|/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "benchModels() quantises with llama.cpp into F16, Q8_0 and Q4_K_M, once",
  ignore: PEER === null,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const configPath = `${dir}/small.yaml`;
      await Deno.writeTextFile(
        configPath,
        Object.entries(SMALL).map(([k, v]) => `${k}: ${v}`).join("\n") + "\n",
      );
      const files = await benchModels({ configPath, dir, seed: 3, peerDir });
      assert.deepEqual(Object.keys(files), ["F32", "F16", "Q8_0", "Q4_K_M"]);
      assert.match(files.Q4_K_M, /\/small-random-v1-s3-q4_k_m\.gguf$/);
      const types = async (path: string) => {
        const g = await readGguf(path);
        return new Set(g.tensors.filter((t) => t.ne.length === 2).map((t) => t.type.name));
      };
      assert.deepEqual(await types(files.F32), new Set(["F32"]));
      assert.deepEqual(await types(files.F16), new Set(["F16"]));
      assert.deepEqual(await types(files.Q8_0), new Set(["Q8_0"]));
      const k = await types(files.Q4_K_M); // the mix: Q4_K, with Q6_K for some tensors
      assert.ok(k.has("Q4_K") && k.has("Q6_K"), [...k].join(","));
      // Cached: a second call rewrites nothing.
      const before = (await Deno.stat(files.Q8_0)).mtime?.getTime();
      await benchModels({ configPath, dir, seed: 3, peerDir, types: ["Q8_0"] });
      assert.equal((await Deno.stat(files.Q8_0)).mtime?.getTime(), before);
      assert.ok([...Deno.readDirSync(dir)].every((e) => !e.name.includes(".tmp-")));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
