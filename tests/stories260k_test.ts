/**
 * End-to-end parity with a real pretrained model nobody here wrote: Karpathy's stories260K,
 * loaded from the llama2.c checkpoint (+ tok512.bin) and from the GGUF, must reproduce the
 * published greedy output in stories260K.md character for character.
 */
import assert from "node:assert/strict";
import { compileModel } from "../codegen/compile.ts";
import { loadGguf } from "../formats/gguf/checkpoint.ts";
import { loadLlama2c } from "../formats/llama2c.ts";
import { createReference } from "../runtime/reference.ts";
import { ASSETS, haveFiles, publishedStoriesText } from "./assets.ts";
import { greedyText } from "./greedy_decode.ts";

const DIR = `${ASSETS}/stories260K`;

const have = haveFiles(
  "stories260K parity",
  ["stories260K.bin", "tok512.bin", "stories260K.gguf", "stories260K.md"].map((f) => `${DIR}/${f}`),
);

for (const source of ["stories260K.bin + tok512.bin", "stories260K.gguf"]) {
  Deno.test({
    name: `compileModel() on ${source} greedily reproduces the published stories260K text`,
    ignore: !have,
    fn: async () => {
      const expected = await publishedStoriesText();
      assert.ok(expected.startsWith("Once upon a time, there was a little girl named Lily."));
      const ck = source.endsWith(".gguf")
        ? await loadGguf(`${DIR}/stories260K.gguf`)
        : await loadLlama2c(`${DIR}/stories260K.bin`, { tokenizerPath: `${DIR}/tok512.bin` });
      assert.equal(ck.config.rope_style, "interleaved");
      assert.equal(ck.config.n_kv_heads, 4);
      const jit = greedyText(compileModel(ck.config, ck.weights), ck.tokenizer!, 200);
      // 200 tokens is less than the 256 steps published: the output is a proper prefix.
      assert.ok(jit.length > 400, `only ${jit.length} chars generated`);
      assert.equal(jit, expected.slice(0, jit.length));
      // The plain reference forward pass and the WASM SIMD backend agree token for token.
      assert.equal(greedyText(createReference(ck.config, ck.weights), ck.tokenizer!, 200), jit);
      assert.equal(
        greedyText(compileModel(ck.config, ck.weights, { backend: "wasm" }), ck.tokenizer!, 200),
        jit,
      );
    },
  });
}
