import assert from "node:assert/strict";
import { parseConfigYaml } from "./config.ts";
import {
  expectedTensorCount,
  ggufPattern,
  HF_BASE_PREFIX,
  layersHeld,
  patternOf,
  TENSOR_NAMES,
  tensorName,
  tensorRows,
} from "./tensor_names.ts";
import { expectedShapes } from "./weights.ts";

const llama = parseConfigYaml(Deno.readTextFileSync("configs/test-llama.yaml"), "test-llama.yaml");
const gpt2 = parseConfigYaml(Deno.readTextFileSync("configs/test-gpt2.yaml"), "test-gpt2.yaml");

/**
 * llama.cpp's names (src/llama-arch.cpp `LLM_TENSOR_NAMES`, archs LLM_ARCH_LLAMA and
 * LLM_ARCH_GPT2, with `.weight`/`.bias` as `LLM_TN` appends them): an independent list.
 */
const LLAMA_CPP = {
  llama: [
    "token_embd",
    "output_norm",
    "output",
    "blk.%d.attn_norm",
    "blk.%d.attn_q",
    "blk.%d.attn_k",
    "blk.%d.attn_v",
    "blk.%d.attn_output",
    "blk.%d.ffn_norm",
    "blk.%d.ffn_gate",
    "blk.%d.ffn_down",
    "blk.%d.ffn_up",
  ],
  gpt2: [
    "token_embd",
    "position_embd",
    "output_norm",
    "output",
    "blk.%d.attn_norm",
    "blk.%d.attn_qkv",
    "blk.%d.attn_output",
    "blk.%d.ffn_norm",
    "blk.%d.ffn_up",
    "blk.%d.ffn_down",
  ],
};

Deno.test("TENSOR_NAMES rows are unique and every GGUF name is one llama.cpp uses", () => {
  const names = TENSOR_NAMES.map((r) => r.name);
  assert.equal(new Set(names).size, names.length);
  for (const [arch, c] of [["llama", llama], ["gpt2", gpt2]] as const) {
    const known = new Set(LLAMA_CPP[arch].map((n) => n.replace("%d", "{i}")));
    const rows = tensorRows({ ...c, tie_embeddings: false });
    const gguf = rows.map((r) => ggufPattern(r, c.mlp));
    assert.equal(new Set(gguf).size, gguf.length, `${arch}: GGUF names collide`);
    for (const r of rows) {
      const stem = (arch === "gpt2" && r.ggufFused ? r.ggufFused.name : ggufPattern(r, c.mlp))
        .replace(/\.(weight|bias)$/, "");
      assert.ok(known.has(stem), `${arch}: ${r.name} -> ${stem} is not a llama.cpp name`);
    }
  }
});

Deno.test("expectedTensorCount() equals the size of expectedShapes() without enumerating layers", () => {
  for (const c of [llama, gpt2, { ...llama, tie_embeddings: true, attn_bias: true }]) {
    assert.equal(expectedTensorCount(c), expectedShapes(c).size);
  }
  const huge = { ...llama, n_layers: 100_000_000 };
  const t0 = performance.now();
  assert.equal(expectedTensorCount(huge), 3 + 9 * 100_000_000); // embeddings, norm, output
  console.log(`expectedTensorCount(1e8 layers): ${(performance.now() - t0).toFixed(2)} ms`);
});

Deno.test("tensorName() gives canonical names; patternOf()/layersHeld() read them back", () => {
  assert.equal(tensorName("attn_k", 7), "layers.7.attn.wk.weight");
  assert.equal(tensorName("attn_norm", 2, "bias"), "layers.2.attn_norm.bias");
  assert.equal(tensorName("output"), "output.weight");
  assert.throws(() => tensorName("ffn_w3", 0, "bias"), RangeError);
  assert.deepEqual(patternOf("layers.12.ffn.w2.weight"), ["layers.{i}.ffn.w2.weight", 12]);
  assert.equal(
    layersHeld(
      ["blk.0.attn_q.weight", "blk.9.ffn_up.weight", "blk.3.x"],
      new Set(["blk.{i}.ffn_up.weight"]),
    ),
    10,
  );
});

Deno.test("llama2.c positions are a permutation of the 12 arrays in both versions", () => {
  const rows = tensorRows({ ...llama, tie_embeddings: false });
  for (const v of [0, 1]) {
    const pos = rows.map((r) => r.llama2c![v]).sort((a, b) => a - b);
    assert.deepEqual(pos, [...Array(12).keys()]);
  }
});

Deno.test("every HF source name starts with its family's base prefix or is lm_head", () => {
  for (const r of TENSOR_NAMES) {
    for (const [family, s] of Object.entries(r.hf)) {
      const base = HF_BASE_PREFIX[family as keyof typeof HF_BASE_PREFIX];
      assert.ok(s.name.startsWith(base) || s.name === "lm_head.weight", s.name);
    }
  }
});
