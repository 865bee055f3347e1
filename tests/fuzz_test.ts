/**
 * Fuzz tests, one per reader (issue #12 "Proof", #7 item 7): each mutates a real or shipped
 * file many times with tests/fuzz_harness.ts and loads every mutant in a subprocess bounded
 * in time (30 s per case, generous for a loaded CI machine) and memory (1.5 GiB resident); every outcome must be success or a
 * typed GollmError whose message is one line and names the file. Seeded: a failure prints
 * `seed S case I (mutation)`, which reproduces alone with `only: I`. `GOLLM_FUZZ_SCALE=10`
 * runs ten times the cases. The tokenizer readers (tokenizer.json, tiktoken, tokenizer.bin) are
 * fuzzed, loaded and used, in tests/fuzz_tokenizers_test.ts.
 */
import { assertClean, fuzz, type FuzzTarget, ggufFields, llama2cFields } from "./fuzz_harness.ts";
import { ASSETS, haveFiles, ROOT } from "./assets.ts";
import { loadGollmDir, writeGollmDir } from "../formats/gollm_dir.ts";

const STORIES = `${ASSETS}/stories260K`;
const DEFAULT = `${ROOT}models/default`;
const HF = `${ROOT}tests/fixtures/hf/llama_gqa`;
const load: FuzzTarget["loader"] = {
  module: "formats/load.ts",
  fn: "loadCheckpoint",
  args: ["{path}"],
};
const loadAndUse: FuzzTarget["loader"] = { module: "tests/fuzz_loaders.ts", fn: "loadAndUse" };
const BYTES = ["bitflip", "overwrite", "truncate", "insert"] as const;
/** Size fields of config.yaml and config.json: where a huge value once hung the loader. */
const SIZE_KEYS = [
  "n_layers",
  "dim",
  "vocab_size",
  "hidden_dim",
  "context_length",
  "n_heads",
  "n_kv_heads",
  "head_dim",
  "num_hidden_layers",
  "hidden_size",
  "intermediate_size",
  "max_position_embeddings",
  "num_attention_heads",
  "num_key_value_heads",
];

Deno.test({
  name: "fuzz: loadCheckpoint() of mutated stories260K.gguf fails only with one-line GollmErrors",
  ignore: !haveFiles("GGUF fuzzing", [`${STORIES}/stories260K.gguf`]),
  fn: async () => {
    const report = await fuzz({
      name: "gguf",
      base: `${STORIES}/stories260K.gguf`,
      mutations: [...BYTES, "field", "field", "field"],
      hot: 30_000, // metadata (tokenizer arrays) and tensor infos
      fields: ggufFields,
      loader: load,
    }, { seed: 260, cases: 90 });
    assertClean(report, 40);
  },
});

Deno.test("fuzz: loadCheckpoint() of a mutated shipped gpt2 GGUF (fused attn_qkv) fails cleanly", async () => {
  const report = await fuzz({
    name: "gguf-gpt2",
    base: `${ROOT}tests/fixtures/gguf/gpt2.gguf`,
    mutations: [...BYTES, "field", "field", "field"],
    fields: ggufFields,
    loader: load,
  }, { seed: 2, cases: 60 });
  assertClean(report, 20);
});

Deno.test({
  name: "fuzz: loadCheckpoint() of a mutated llama2.c stories260K.bin fails cleanly",
  ignore: !haveFiles("llama2.c fuzzing", [`${STORIES}/stories260K.bin`]),
  fn: async () => {
    const report = await fuzz({
      name: "llama2c",
      base: `${STORIES}/stories260K.bin`,
      mutations: ["field", "field", "field", "truncate", "insert", "bitflip"],
      hot: 28,
      fields: llama2cFields,
      loader: { ...load, module: "formats/llama2c.ts", fn: "loadLlama2c" },
    }, { seed: 7, cases: 60 });
    assertClean(report, 30);
  },
});

Deno.test("fuzz: gollm directory with a mutated model.safetensors (header, __metadata__, data) fails cleanly", async () => {
  const report = await fuzz({
    name: "safetensors",
    base: DEFAULT,
    file: "model.safetensors",
    mutations: [...BYTES, "stjson", "stjson", "stjson", "field"],
    keys: ["dtype", "shape", "data_offsets", "format", "format_version"],
    hot: 4096,
    fields: () => [[0, 8]],
    loader: load,
  }, { seed: 100, cases: 70 });
  assertClean(report, 30);
});

Deno.test("fuzz: gollm directory with a mutated config.yaml fails cleanly", async () => {
  const report = await fuzz({
    name: "config.yaml",
    base: DEFAULT,
    file: "config.yaml",
    mutations: ["yaml", "yaml", "yaml", "bitflip", "truncate", "insert"],
    keys: SIZE_KEYS,
    loader: load,
  }, { seed: 11, cases: 70 });
  assertClean(report, 30);
});

Deno.test("fuzz: Hugging Face directory with a mutated config.json fails cleanly", async () => {
  const report = await fuzz({
    name: "config.json",
    base: HF,
    file: "config.json",
    mutations: ["json", "json", "json", "bitflip", "truncate", "insert"],
    keys: SIZE_KEYS,
    loader: load,
  }, { seed: 12, cases: 70 });
  assertClean(report, 30);
});

Deno.test("fuzz: Hugging Face directory with a mutated generation_config.json fails cleanly", async () => {
  const base = await Deno.makeTempDir();
  try {
    // The fixture's generation config with sampling fields, so mutations reach them.
    for (const e of Deno.readDirSync(HF)) {
      await Deno.symlink(`${HF}/${e.name}`, `${base}/${e.name}`);
    }
    await Deno.remove(`${base}/generation_config.json`);
    await Deno.writeTextFile(
      `${base}/generation_config.json`,
      JSON.stringify({
        bos_token_id: 1,
        eos_token_id: [2, 3],
        do_sample: true,
        temperature: 0.6,
        top_p: 0.9,
        top_k: 40,
      }),
    );
    const report = await fuzz({
      name: "generation_config.json",
      base,
      file: "generation_config.json",
      mutations: ["json", "json", "json", "json", "bitflip", "truncate"],
      keys: ["temperature", "top_p", "top_k", "do_sample", "eos_token_id"],
      loader: loadAndUse,
    }, { seed: 13, cases: 50 });
    assertClean(report, 10);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("fuzz: gollm directory with mutated __metadata__ (generation, extra_eos_ids) fails cleanly", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const ckpt = await loadGollmDir(DEFAULT);
    ckpt.generation = { temperature: 0.7, top_p: 0.9, top_k: 40 };
    ckpt.extraEosIds = [1, 2];
    await writeGollmDir(ckpt, `${tmp}/m`);
    const report = await fuzz({
      name: "gollm-metadata",
      base: `${tmp}/m`,
      file: "model.safetensors",
      mutations: ["stjson"],
      keys: ["temperature", "top_p", "top_k", "extra_eos_ids", "generation", "format_version"],
      loader: loadAndUse,
    }, { seed: 14, cases: 50 });
    assertClean(report, 10);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
