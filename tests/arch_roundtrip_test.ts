/**
 * The architectures of issue #10 survive gollm's own writers: each transformers fixture of
 * tests/fixtures/hf (python/hf_fixtures.py) converted to a gollm directory (`gollm convert`,
 * formats/gollm_dir.ts) and quantised to an F32 GGUF (`gollm quantize`, formats/quantize.ts)
 * loads back with the same config and gives transformers' logits within 1e-4. A config no
 * llama.cpp architecture computes is refused with one line naming the field.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parseConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { quantizeModel } from "../formats/quantize.ts";
import { ggufArchFor } from "../formats/gguf/arch.ts";
import { createReference } from "../runtime/reference.ts";
import { requireF32 } from "../core/weights.ts";
import { assertClose } from "./assert_close.ts";
import { archCase } from "./forward_cases.ts";

const FIX = fileURLToPath(new URL("./fixtures/hf", import.meta.url));
const TOL = 1e-4;

/** Fixture → the GGUF architecture quantizeModel writes it as. */
const ARCHS: Record<string, string> = {
  llama31: "llama",
  llama_yarn: "llama",
  llama_linear: "llama",
  qwen3: "qwen3",
  gemma2: "gemma2",
  gemma3: "gemma3",
  phi3: "phi3",
  qwen2_swa: "qwen2",
  mistral: "llama",
};

for (const [name, arch] of Object.entries(ARCHS)) {
  Deno.test(`${name}: gollm directory and F32 GGUF (${arch}) round trips keep transformers' logits`, async () => {
    const exp = JSON.parse(await Deno.readTextFile(`${FIX}/${name}/expected.json`));
    const check = (label: string, c: Awaited<ReturnType<typeof loadCheckpoint>>) => {
      const all = createReference(c.config, requireF32(c.weights, "the reference"))
        .forwardAll(exp.tokens, 0);
      const V = c.config.vocab_size;
      exp.tokens.forEach((_: number, t: number) =>
        assertClose(all.subarray(t * V, (t + 1) * V), exp.logits[t], TOL, `${label} position ${t}`)
      );
    };
    const hf = await loadCheckpoint(`${FIX}/${name}`);
    const tmp = await Deno.makeTempDir({ prefix: "gollm_arch_rt_" });
    try {
      await writeGollmDir(hf, `${tmp}/model`);
      const dir = await loadCheckpoint(`${tmp}/model`);
      assert.deepEqual(dir.config, hf.config); // config.yaml holds every field
      check("gollm directory", dir);

      const r = await quantizeModel(`${FIX}/${name}`, `${tmp}/m.gguf`, "f32", { threads: 1 });
      assert.equal(r.arch, arch);
      const g = await loadCheckpoint(`${tmp}/m.gguf`);
      for (
        const f of [
          "rope_dimension_count",
          "qk_norm",
          "post_norms",
          "mlp",
          "sliding_window",
          "layer_types",
          "attn_logit_softcapping",
          "final_logit_softcapping",
          "rope_local_base_freq",
          "query_pre_attn_scalar",
        ] as const
      ) {
        assert.deepEqual(g.config[f], hf.config[f], f);
      }
      check(`${arch} GGUF`, g);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

Deno.test("ggufArchFor() refuses a config no llama.cpp architecture computes, naming the field", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ mlp: "geglu" }, /^config field 'post_norms' is false with mlp geglu/],
    [{ post_norms: true }, /^config field 'mlp' is swiglu with Gemma's sandwich norms/],
    [
      { final_logit_softcapping: 30 },
      /^config field 'final_logit_softcapping' is set without Gemma/,
    ],
    [
      { rope_dimension_count: 8, rope_style: "interleaved" },
      /^config field 'rope_dimension_count' is 8 < head_dim with interleaved RoPE/,
    ],
  ];
  const base = archCase("qwen3 qk_norm GQA2");
  for (const [over, re] of cases) {
    const c = parseConfig({ ...base, qk_norm: false, ...over }, "<case>");
    assert.throws(
      () => ggufArchFor(c),
      (e: unknown) =>
        e instanceof GollmError && re.test(e.message) && !e.message.includes("\n") &&
        e.message.endsWith("no GGUF architecture of llama.cpp computes it"),
    );
  }
});
