import assert from "node:assert/strict";
import { parseConfigYaml } from "./config.ts";
import { FormatError } from "./errors.ts";
import { loadGollmDir, writeGollmDir } from "../formats/gollm_dir.ts";
import { writeSafetensors } from "../formats/safetensors.ts";
import {
  checkWeights,
  expectedShapes,
  type F32Weights as Weights,
  randomWeights,
} from "./weights.ts";

const llama = parseConfigYaml(Deno.readTextFileSync("configs/test-llama.yaml"), "test-llama.yaml");
const gpt2 = parseConfigYaml(Deno.readTextFileSync("configs/test-gpt2.yaml"), "test-gpt2.yaml");

function copy(w: Weights): Weights {
  return new Map([...w].map(([k, t]) => [k, { shape: [...t.shape], data: t.data.slice() }]));
}

Deno.test("expectedShapes() lists the canonical names of core/tensor_names.ts for each arch", () => {
  const l = expectedShapes(llama);
  assert.deepEqual(l.get("layers.1.attn.wk.weight"), [24, 48]); // (n_kv_heads*head_dim, dim)
  assert.deepEqual(l.get("layers.0.ffn.w3.weight"), [80, 48]);
  assert.deepEqual(l.get("output.weight"), [96, 48]); // untied
  assert.equal(l.has("pos_embeddings.weight"), false);
  assert.equal(l.has("layers.0.attn.wq.bias"), false);
  const g = expectedShapes(gpt2);
  assert.deepEqual(g.get("pos_embeddings.weight"), [64, 48]);
  assert.deepEqual(g.get("layers.0.attn.wo.bias"), [48]);
  assert.deepEqual(g.get("layers.1.ffn_norm.bias"), [48]);
  assert.equal(g.has("layers.0.ffn.w3.weight"), false);
  assert.equal(g.has("output.weight"), false); // tied
});

Deno.test("checkWeights() names a missing, mis-shaped or unexpected tensor", () => {
  const good = randomWeights(llama, 3);
  checkWeights(llama, good, "m.safetensors");

  const missing = copy(good);
  missing.delete("layers.1.ffn.w2.weight");
  assert.throws(
    () => checkWeights(llama, missing, "m.safetensors"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message ===
        "m.safetensors: tensor 'layers.1.ffn.w2.weight' is missing (expected shape [48,80])",
  );

  const wrong = copy(good);
  wrong.set("layers.0.attn.wk.weight", { shape: [48, 48], data: new Float32Array(48 * 48) });
  assert.throws(
    () => checkWeights(llama, wrong, "m.safetensors"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message ===
        "m.safetensors: tensor 'layers.0.attn.wk.weight' has shape [48,48], expected [24,48] from the config",
  );

  const extra = copy(good);
  extra.set("layers.2.attn_norm.weight", { shape: [48], data: new Float32Array(48) });
  assert.throws(
    () => checkWeights(llama, extra, "m.safetensors"),
    /tensor 'layers\.2\.attn_norm\.weight' is not expected by the config/,
  );
});

Deno.test("loadGollmDir() rejects a model.safetensors whose tensor shape disagrees with config.yaml", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const weights = randomWeights(llama, 5);
    await writeGollmDir(
      { format: "gollm", path: "<test>", config: llama, weights, tokenizer: null },
      `${tmp}/m`,
      { dtype: "f32" },
    );
    // Overwrite the weights with a file whose w1 has the wrong number of rows.
    const bad = copy(weights);
    bad.set("layers.1.ffn.w1.weight", { shape: [64, 48], data: new Float32Array(64 * 48) });
    await writeSafetensors(`${tmp}/m/model.safetensors`, bad, {
      dtype: "F32",
      metadata: { format: "gollm", format_version: "1" },
    });
    await assert.rejects(
      () => loadGollmDir(`${tmp}/m`),
      (e: unknown) =>
        e instanceof FormatError && e.message.includes("model.safetensors") &&
        e.message.includes("'layers.1.ffn.w1.weight' has shape [64,48], expected [80,48]"),
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("randomWeights() is deterministic per seed and passes checkWeights()", () => {
  const a = randomWeights(gpt2, 9), b = randomWeights(gpt2, 9), c = randomWeights(gpt2, 10);
  checkWeights(gpt2, a, "<random>");
  assert.deepEqual(a.get("layers.0.attn.wq.weight")!.data, b.get("layers.0.attn.wq.weight")!.data);
  assert.notDeepEqual(
    a.get("layers.0.attn.wq.weight")!.data,
    c.get("layers.0.attn.wq.weight")!.data,
  );
});

Deno.test("checkWeights() compares tensor counts before enumerating 10^8 declared layers", () => {
  const weights = randomWeights(llama, 1);
  const huge = { ...llama, n_layers: 100_000_000 };
  const t0 = performance.now();
  assert.throws(
    () => checkWeights(huge, weights, "m.safetensors"),
    (e: unknown) =>
      e instanceof FormatError &&
      e.message ===
        "m.safetensors: holds 21 tensors (layers 0..1) but the config's n_layers 100000000 needs 900000003",
  );
  console.log(`rejected in ${(performance.now() - t0).toFixed(1)} ms`);
});
