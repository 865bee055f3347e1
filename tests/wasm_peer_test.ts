/**
 * The WASM backend against llama.cpp on GGUF files made by llama.cpp's own quantiser
 * (`llama_model_quantize` through the peer harness, bench/llama_cpp.ts): measured against
 * the exact answer — the reference forward (runtime/reference.ts) on the file's weights
 * dequantised to F32 — gollm's logits are no further than llama.cpp's, in max |Δ| and in
 * greedy-id agreement. Karpathy's stories260K (../shared/assets); skipped with a printed
 * reason when the asset or the peer is absent.
 */
import assert from "node:assert/strict";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { loadModel } from "../runtime/model.ts";
import { createReference } from "../runtime/reference.ts";
import { llamaCppLogits, llamaCppQuantize } from "../bench/llama_cpp.ts";
import { PEER } from "../bench/peer_for_tests.ts";
import { ASSETS, haveFiles } from "./assets.ts";
import { argmax } from "./greedy_decode.ts";

const GGUF = `${ASSETS}/stories260K/stories260K.gguf`;
const ignore = !haveFiles("wasm backend vs llama.cpp", [GGUF]) || PEER === null;

/** max |a - b| and the rows (of `vocab`) whose argmax agree. */
function compare(a: Float32Array, b: Float32Array, vocab: number) {
  let max = 0, agree = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  for (let r = 0; r < a.length / vocab; r++) {
    const row = (x: Float32Array) => x.subarray(r * vocab, (r + 1) * vocab);
    if (argmax(row(a)) === argmax(row(b))) agree++;
  }
  return { max, agree };
}

for (const type of ["Q8_0", "Q4_K_M"]) {
  Deno.test({
    name:
      `wasm backend on llama.cpp's ${type} stories260K is no further from the exact logits than llama.cpp`,
    ignore,
    fn: async () => {
      const dir = await Deno.makeTempDir();
      try {
        const file = `${dir}/stories260K-${type}.gguf`;
        await llamaCppQuantize(GGUF, file, type, { peerDir: PEER!, threads: 1 });
        const ck = await loadGguf(file); // the file's weights, dequantised to F32
        const V = ck.config.vocab_size;
        // BOS + "Once upon a time", then 27 greedy ids of the exact model: 32 positions.
        const ref = createReference(ck.config, ck.weights);
        const tokens = [1, 403, 407, 261, 378];
        const exact = new Float32Array(32 * V);
        for (let pos = 0; pos < 32; pos++) {
          const l = ref.forward([tokens[pos]], pos);
          exact.set(l, pos * V);
          if (pos + 1 >= tokens.length) tokens.push(argmax(l));
        }
        tokens.length = 32;
        using m = await loadModel(file, { backend: "wasm", threads: 1 });
        const ours = m.forwardAll(tokens, 0);
        const peer = (await llamaCppLogits(file, tokens, { peerDir: PEER! })).logits;
        const g = compare(ours, exact, V), p = compare(peer, exact, V);
        console.log(
          `${type}: max |Δ| to exact: gollm ${g.max.toFixed(4)}, llama.cpp ${p.max.toFixed(4)}; ` +
            `argmax agreement: gollm ${g.agree}/32, llama.cpp ${p.agree}/32`,
        );
        assert.ok(g.max <= p.max, `gollm max |Δ| ${g.max} > llama.cpp's ${p.max}`);
        assert.ok(g.agree >= p.agree, `gollm agrees at ${g.agree}, llama.cpp at ${p.agree}`);
        // Negative control: a forward pass with the RoPE pairs the other way fails the check.
        const wrong = createReference({ ...ck.config, rope_style: "half" }, ck.weights);
        const w = new Float32Array(32 * V);
        tokens.forEach((t, pos) => w.set(wrong.forward([t], pos), pos * V));
        assert.ok(compare(w, exact, V).max > p.max, "a wrong forward is further than llama.cpp");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
