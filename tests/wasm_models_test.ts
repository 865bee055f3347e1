/**
 * The WASM backend through `loadModel` on files: the GGUF read straight into its memory
 * (runtime/wasm_load.ts). Karpathy's stories260K (../shared/assets; skipped with a printed
 * reason when absent) reproduces the published greedy text at F32 on 1 and 2 threads; the
 * Q4_K_M file quantizeModel makes of it (llama.cpp-identical mix; dim 64 is no whole K-quant
 * block, so Q5_0, Q8_0 and F16 stand in) gives logits within 3% of each position's
 * largest |logit| of the reference running on the same file's dequantised weights, and
 * the same greedy id at >= 38 of 40 positions; bad files fail with one line naming the
 * file and tensor.
 */
import assert from "node:assert/strict";
import { WasmUnsupportedError } from "../codegen/emit_wasm.ts";
import { FormatError, GollmError } from "../core/errors.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { parseGguf } from "../formats/gguf/parse.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { createModel, loadModel } from "../runtime/model.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { ggmlTypeByName } from "../formats/quant.ts";
import { dequantizeWeights, quantizeTensor } from "../formats/quant/tensor.ts";
import { cfg } from "./forward_cases.ts";
import { createReference } from "../runtime/reference.ts";
import { assertClose } from "./assert_close.ts";
import { ASSETS, haveFiles, publishedStoriesText } from "./assets.ts";
import { argmax, greedyText } from "./greedy_decode.ts";

const DIR = `${ASSETS}/stories260K`;
const have = haveFiles(
  "stories260K through the wasm backend",
  ["stories260K.gguf", "stories260K.md"].map((f) => `${DIR}/${f}`),
);

Deno.test({
  name:
    "loadModel() (auto: wasm, 1 and 2 threads) on stories260K.gguf reproduces the published text",
  ignore: !have,
  fn: async () => {
    const expected = await publishedStoriesText();
    for (const threads of [1, 2]) {
      using m = await loadModel(`${DIR}/stories260K.gguf`, { threads });
      assert.equal(m.backend, "wasm");
      assert.equal(m.threads, threads);
      const text = greedyText(m, m.tokenizer!, 200);
      assert.ok(text.length > 400, `only ${text.length} chars`);
      assert.equal(text, expected.slice(0, text.length), `${threads} thread(s)`);
    }
  },
});

// Q8_0 cannot hold stories260K (hidden 172 is not a multiple of 32; llama.cpp has no
// fallback for it either); Q4_K_M falls back to Q5_0, Q8_0 and F16 for such rows.
for (const type of ["Q4_K_M"]) {
  Deno.test({
    name:
      `loadModel() wasm on a ${type} stories260K (quantizeModel) is within tolerance of its dequantised weights`,
    ignore: !have,
    fn: async () => {
      const dir = await Deno.makeTempDir();
      try {
        const file = `${dir}/s.${type}.gguf`;
        await quantizeModel(`${DIR}/stories260K.gguf`, file, type, { threads: 1 });
        const types = new Set(
          parseGguf(await Deno.readFile(file), file).tensors.map((t) => t.type.name),
        );
        assert.ok(types.has("Q5_0") && types.has("F16"), [...types].join(","));
        using m = await loadModel(file, { backend: "wasm", threads: 2 });
        const ck = await loadGguf(file); // the same file dequantised to F32
        const ref = createReference(ck.config, ck.weights);
        // 40 greedy steps of the reference; both run the same ids.
        let id = ck.tokenizer!.bosId!, agree = 0;
        for (let pos = 0; pos < 40; pos++) {
          const want = ref.forward([id], pos), got = m.forward([id], pos);
          // 3% of the position's largest |logit| (the int8 activation rounding; see
          // tests/wasm_backend_test.ts), stories260K's logits reach ±10.
          const scale = want.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
          assertClose(got, want, 0.03 * scale, `${type} position ${pos}`);
          if (argmax(got) === argmax(want)) agree++;
          id = argmax(want);
        }
        assert.ok(agree >= 38, `greedy ids agree at ${agree} of 40 positions`);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

/** A copy of stories260K.gguf with `edit` applied to its bytes, written to a temp file. */
async function edited(edit: (bytes: Uint8Array, file: string) => Uint8Array): Promise<string> {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/bad.gguf`;
  await Deno.writeFile(file, edit(await Deno.readFile(`${DIR}/stories260K.gguf`), file));
  return file;
}

Deno.test({
  name: "loadModel() wasm names the file and tensor of a non-finite value, a truncated file",
  ignore: !have,
  fn: async () => {
    // A NaN in an F32 tensor (stories260K.gguf is F32): found while the data is in memory.
    const nan = await edited((b, f) => {
      const t = parseGguf(b, f).tensors.find((t) => t.name === "blk.2.ffn_down.weight")!;
      new DataView(b.buffer).setFloat32(t.fileOffset + 4 * 7, NaN, true);
      return b;
    });
    await assert.rejects(
      () => loadModel(nan, { backend: "wasm" }),
      (e) =>
        e instanceof FormatError && e.message.startsWith(nan) &&
        /tensor 'blk\.2\.ffn_down\.weight' element 7 is non-finite/.test(e.message),
    );
    const cut = await edited((b) => b.subarray(0, b.length - 1000));
    const cleanup = () =>
      Promise.all(
        [nan, cut].map((f) => Deno.remove(f.replace(/\/bad\.gguf$/, ""), { recursive: true })),
      );
    await assert.rejects(
      () => loadModel(cut, { backend: "auto" }),
      (e) =>
        e instanceof FormatError && e.message.startsWith(cut) &&
        /corrupt or truncated: tensor '[^']+' .* needs bytes/.test(e.message),
    );
    await cleanup();
    await assert.rejects(
      () => loadModel(`${DIR}/stories260K.gguf`, { threads: 65 }),
      (e) => e instanceof GollmError && e.message === "threads must be an integer in 1..64, got 65",
    );
  },
});

Deno.test("createModel() auto falls back to jit for a tensor type without WASM kernels; wasm refuses", () => {
  // Q8_1 (llama.cpp's activation type) dequantises, but no WASM matrix kernel reads it.
  const c = cfg("llama", { dim: 64, n_heads: 4, n_kv_heads: 2, hidden_dim: 128 });
  const f32 = randomWeights(c, 3);
  const w: Weights = new Map(f32);
  w.set(
    "layers.1.ffn.w2.weight",
    quantizeTensor(f32.get("layers.1.ffn.w2.weight")!, ggmlTypeByName("Q8_1")!),
  );
  using auto = createModel(c, w, null, { backend: "auto" });
  assert.equal(auto.backend, "jit");
  const ref = createReference(c, dequantizeWeights(w));
  assertClose(auto.forward([1, 2, 3]), ref.forward([1, 2, 3], 0), 1e-4);
  assert.throws(
    () => createModel(c, w, null, { backend: "wasm" }),
    (e) =>
      e instanceof WasmUnsupportedError &&
      /tensor 'layers\.1\.ffn\.w2\.weight' has type Q8_1, which the wasm backend has no kernels/
        .test(e.message),
  );
  // F32 weights of the same config: auto picks wasm.
  using fast = createModel(c, f32, null, { threads: 1 });
  assert.equal(fast.backend, "wasm");
});
