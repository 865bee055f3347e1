/**
 * The mix rules are checked against llama.cpp's own `llama_model_quantize` in
 * formats/quantize_test.ts (every tensor of three models in 17 file types); these cases pin
 * the rules that those small models cannot reach (many layers, 70B, GQA ratios).
 */
import assert from "node:assert/strict";
import { GollmError } from "../../core/errors.ts";
import { FILE_TYPES, fileType, type MixModel, tensorType, useMoreBits } from "./mix.ts";

const m32: MixModel = {
  arch: "llama",
  nLayers: 32,
  nHeads: 32,
  nKvHeads: 8,
  tiedEmbeddings: false,
};
const type = (name: string, ft: string, m = m32, shape = [4096, 4096]) =>
  tensorType(name, shape, fileType(ft), m)?.name ?? null;

Deno.test("tensorType() follows llama_tensor_get_type for a 32-layer GQA model", () => {
  const more = [...Array(32).keys()].filter((i) => useMoreBits(i, 32));
  assert.deepStrictEqual(more, [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
  for (let i = 0; i < 32; i++) {
    const v = `blk.${i}.attn_v.weight`, d = `blk.${i}.ffn_down.weight`;
    assert.equal(type(v, "q4_k_m"), more.includes(i) ? "Q6_K" : "Q4_K", v);
    assert.equal(type(d, "q5_k_m"), more.includes(i) ? "Q6_K" : "Q5_K", d);
    assert.equal(type(v, "q4_k_s"), i < 4 ? "Q5_K" : "Q4_K", v);
    assert.equal(type(d, "q4_k_s"), i < 4 ? "Q5_K" : "Q4_K", d);
    assert.equal(type(d, "q3_k_m"), i < 2 ? "Q5_K" : "Q4_K", d);
    assert.equal(type(v, "q2_k"), "Q4_K", v); // n_gqa = 4
    assert.equal(type(`blk.${i}.attn_q.weight`, "q4_k_m"), "Q4_K");
    assert.equal(type(`blk.${i}.ffn_up.weight`, "q6_k"), "Q6_K");
  }
  assert.equal(type("token_embd.weight", "q4_k_m"), "Q4_K");
  assert.equal(type("output.weight", "q4_k_m"), "Q6_K");
  assert.equal(type("output.weight", "q8_0"), "Q8_0");
  assert.equal(type("output.weight", "q4_0"), "Q6_K");
  assert.equal(type("token_embd.weight", "q4_0", { ...m32, tiedEmbeddings: true }), "Q6_K");
  assert.equal(type("blk.0.attn_v.weight", "q2_k", { ...m32, nKvHeads: 32 }), "Q3_K");
  assert.equal(type("blk.0.attn_output.weight", "q3_k_l"), "Q5_K");
  assert.equal(type("blk.0.ffn_norm.weight", "q4_k_m", m32, [4096]), null);
  assert.equal(type("blk.0.ffn_gate.weight", "f16"), "F16");
  assert.equal(type("blk.0.ffn_gate.weight", "bf16"), "BF16");
  // Llama-2-70B: 80 layers with GQA lifts Q3_K/Q4_K attn_v to Q5_K.
  const m70 = { ...m32, nLayers: 80, nHeads: 64, nKvHeads: 8 };
  assert.equal(type("blk.10.attn_v.weight", "q4_k_s", m70), "Q5_K");
});

Deno.test("tensorType() falls back like tensor_type_fallback and refuses where llama.cpp does", () => {
  assert.equal(type("blk.0.ffn_down.weight", "q4_k_m", m32, [4096, 11008 + 32]), "Q8_0");
  assert.equal(type("blk.5.ffn_down.weight", "q4_k_m", m32, [4096, 11008 + 32]), "Q5_0");
  assert.equal(type("blk.1.ffn_down.weight", "q5_k_s", m32, [4096, 11008 + 32]), "Q5_1");
  assert.equal(type("blk.1.ffn_down.weight", "q3_k_s", m32, [4096, 11008 + 32]), "Q4_0");
  assert.equal(type("blk.1.ffn_down.weight", "q4_k_m", m32, [4096, 100]), "F16");
  assert.throws(() => type("blk.1.ffn_down.weight", "q8_0", m32, [4096, 100]), GollmError);
});

Deno.test("fileType() knows llama-quantize's names and ids", () => {
  assert.deepStrictEqual(
    FILE_TYPES.map((f) => `${f.name}=${f.id}`).join(" "),
    "f32=0 f16=1 q4_0=2 q4_1=3 q8_0=7 q5_0=8 q5_1=9 q2_k=10 q3_k_s=11 q3_k_m=12 q3_k_l=13 " +
      "q4_k_s=14 q4_k_m=15 q5_k_s=16 q5_k_m=17 q6_k=18 bf16=32",
  );
  assert.throws(() => fileType("iq2_xs"), /quantisation type 'iq2_xs' is not supported/);
});
