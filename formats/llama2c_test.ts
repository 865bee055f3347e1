/**
 * llama2.c checkpoints (formats/llama2c.ts): the real legacy stories260K.bin, and v0 (unshared
 * classifier) / v1 files laid out in the order of llama2.c's export.py, plus bad input.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../core/config.ts";
import { FormatError } from "../core/errors.ts";
import { LLAMA2C_MAGIC, loadLlama2c, parseLlama2c } from "./llama2c.ts";
import { type F32Weights as Weights, randomWeights } from "../core/weights.ts";
import { ASSETS, haveFiles } from "../tests/assets.ts";
import { assertClose } from "../tests/assert_close.ts";

const DIR = `${ASSETS}/stories260K`;

const have = haveFiles("stories260K.bin tests", [`${DIR}/stories260K.bin`, `${DIR}/tok512.bin`]);

const isFormatError = (file: string, re: RegExp) => (e: unknown) =>
  e instanceof FormatError && e.message.startsWith(`${file}: `) && re.test(e.message);

Deno.test({
  name: "loadLlama2c() reads stories260K.bin (legacy v0) and finds tok512.bin beside it",
  ignore: !have,
  fn: async () => {
    const ck = await loadLlama2c(`${DIR}/stories260K.bin`);
    assert.equal(ck.format, "llama2c");
    const c = ck.config;
    assert.deepEqual(
      [c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.context_length],
      [64, 172, 5, 8, 4, 512, 512],
    );
    assert.equal(c.tie_embeddings, true);
    assert.equal(c.rope_style, "interleaved");
    assert.equal(ck.tokenizer!.vocabSize, 512);
    // First embedding values straight from the file (byte 28 onwards).
    const raw = await Deno.readFile(`${DIR}/stories260K.bin`);
    const first = new DataView(raw.buffer).getFloat32(28, true);
    assert.equal(ck.weights.get("tok_embeddings.weight")!.data[0], first);
    // The final norm sits right before the freq_cis block; read it by offset.
    const normAt = 28 + 4 * (512 * 64 + 5 * (64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 +
              3 * 172 * 64));
    assert.equal(
      ck.weights.get("norm.weight")!.data[0],
      new DataView(raw.buffer).getFloat32(normAt, true),
    );
  },
});

/** Serialises weights in llama2.c export.py order (legacy_export / version1_export). */
function exportLlama2c(w: Weights, h: number[], version: 0 | 1, shared: boolean): Uint8Array {
  const [dim, , L, nHeads, , vocab, seqLen] = h;
  const layers = (name: string) =>
    Array.from({ length: L }, (_, i) => w.get(`layers.${i}.${name}`)!.data);
  const parts: Float32Array[] = [];
  const header = new Uint8Array(version === 0 ? 28 : 256);
  const dv = new DataView(header.buffer);
  let at = 0;
  if (version === 1) {
    dv.setUint32(0, LLAMA2C_MAGIC, true);
    dv.setInt32(4, 1, true);
    at = 8;
  }
  h.forEach((x, i) => dv.setInt32(at + 4 * i, i === 5 && version === 0 && !shared ? -x : x, true));
  if (version === 1) dv.setUint8(at + 28, shared ? 1 : 0);
  const mats = ["attn.wq.weight", "attn.wk.weight", "attn.wv.weight", "attn.wo.weight"];
  const ffn = ["ffn.w1.weight", "ffn.w2.weight", "ffn.w3.weight"];
  if (version === 0) {
    parts.push(w.get("tok_embeddings.weight")!.data, ...layers("attn_norm.weight"));
    for (const m of mats) parts.push(...layers(m));
    parts.push(...layers("ffn_norm.weight"));
    for (const m of ffn) parts.push(...layers(m));
    parts.push(w.get("norm.weight")!.data);
    const freq = seqLen * (dim / nHeads) / 2;
    parts.push(new Float32Array(freq).fill(7), new Float32Array(freq).fill(8));
  } else {
    parts.push(...layers("attn_norm.weight"), ...layers("ffn_norm.weight"));
    parts.push(w.get("norm.weight")!.data, w.get("tok_embeddings.weight")!.data);
    for (const m of [...mats, ...ffn]) parts.push(...layers(m));
  }
  if (!shared) parts.push(w.get("output.weight")!.data);
  const floats = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(header.length + 4 * floats);
  out.set(header);
  let o = header.length;
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), o);
    o += p.byteLength;
  }
  assert.equal(vocab, w.get("tok_embeddings.weight")!.shape[0]);
  return out;
}

const base = {
  arch: "llama",
  vocab_size: 40,
  dim: 16,
  n_layers: 2,
  n_heads: 4,
  n_kv_heads: 2,
  hidden_dim: 24,
  context_length: 12,
  norm: "rmsnorm",
  norm_eps: 1e-5,
  rope_style: "interleaved",
  mlp: "swiglu",
};
const header = [16, 24, 2, 4, 2, 40, 12];

Deno.test("parseLlama2c() reads v0 with an unshared classifier and v1 in export.py's order", () => {
  for (const version of [0, 1] as const) {
    for (const shared of [true, false]) {
      const c = parseConfig({ ...base, tie_embeddings: shared }, "<test>");
      const w = randomWeights(c, 11 + version);
      const bytes = exportLlama2c(w, header, version, shared);
      const { header: h, weights } = parseLlama2c(bytes, "m.bin");
      assert.equal(h.version, version);
      assert.equal(h.shared_classifier, shared);
      assert.equal(h.vocab_size, 40);
      assert.deepEqual([...weights.keys()].sort(), [...w.keys()].sort());
      for (const [name, t] of w) {
        assert.deepEqual(weights.get(name)!.shape, t.shape, name);
        assertClose(weights.get(name)!.data, t.data, 0, `v${version} ${name}`);
      }
    }
  }
});

Deno.test("loadLlama2c() rejects truncated, oversized and unsupported files with FormatError", async () => {
  const c = parseConfig({ ...base, tie_embeddings: true }, "<test>");
  const good = exportLlama2c(randomWeights(c, 3), header, 0, true);
  assert.throws(
    () => parseLlama2c(good.subarray(0, good.length - 4), "t.bin"),
    isFormatError(
      "t.bin",
      new RegExp(`truncated: .* implies ${good.length} bytes, file has ${good.length - 4}`),
    ),
  );
  const big = new Uint8Array(good.length + 8);
  big.set(good);
  assert.throws(
    () => parseLlama2c(big, "big.bin"),
    isFormatError(
      "big.bin",
      new RegExp(`too large: .* implies ${good.length} bytes, file has ${good.length + 8}`),
    ),
  );
  assert.throws(
    () => parseLlama2c(good.subarray(0, 10), "h.bin"),
    isFormatError("h.bin", /truncated header: expected 28 bytes, got 10/),
  );
  const v2 = exportLlama2c(randomWeights(c, 3), header, 1, true);
  new DataView(v2.buffer).setInt32(4, 2, true);
  assert.throws(
    () => parseLlama2c(v2, "q8.bin"),
    isFormatError("q8.bin", /version 2 is not supported/),
  );
  const zero = good.slice();
  new DataView(zero.buffer).setInt32(8, 0, true); // n_layers
  assert.throws(
    () => parseLlama2c(zero, "z.bin"),
    isFormatError("z.bin", /n_layers must be a positive integer, got 0/),
  );
  // An explicit tokenizer that does not exist, or whose size differs from the vocabulary.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/m.bin`, good);
    await assert.rejects(
      loadLlama2c(`${dir}/m.bin`, { tokenizerPath: `${dir}/nope.bin` }),
      isFormatError(`${dir}/nope.bin`, /tokenizer file does not exist/),
    );
    // Without any tokenizer file the checkpoint loads for token-id use.
    assert.equal((await loadLlama2c(`${dir}/m.bin`)).tokenizer, null);
    if (have) {
      await Deno.copyFile(`${DIR}/tok512.bin`, `${dir}/tokenizer.bin`);
      await assert.rejects(
        loadLlama2c(`${dir}/m.bin`),
        isFormatError(
          `${dir}/tokenizer.bin`,
          /tokenizer has 512 tokens but the checkpoint .* has vocab_size 40/,
        ),
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
