/**
 * Fuzz tests of the tokenizer readers (issue #12 "Proof"): tokenizer.json (the real Llama-3
 * one and two shipped ones), a tiktoken file (the default model's) and a llama2.c
 * tokenizer.bin (stories260K's tok512.bin). Each mutant is LOADED AND USED in a subprocess
 * bounded in time and memory (tests/fuzz_harness.ts): tests/fuzz_loaders.ts `loadAndEncode`
 * loads it as a model config names it, encodes a few texts (special-token text, a 3,000-byte
 * word, digits), and decodes them. Every outcome must be success or a typed one-line
 * GollmError naming the file. Seeded: a failure prints `seed S case I (mutation)`, which
 * reproduces alone with `only: I`. `GOLLM_FUZZ_SCALE=10` runs ten times the cases.
 */
import assert from "node:assert/strict";
import { assertClean, fuzz, type FuzzTarget } from "./fuzz_harness.ts";
import { ASSETS, haveFiles, ROOT } from "./assets.ts";

const LLAMA3 = `${ASSETS}/tokenizers/llama3`;
const TOK512 = `${ASSETS}/stories260K/tok512.bin`;
const BYTES = ["bitflip", "overwrite", "truncate", "insert"] as const;

/** `loadAndEncode(name, dir)` for a directory base (the mutated entry keeps its name). */
const inDir = (name: string): FuzzTarget["loader"] => ({
  module: "tests/fuzz_loaders.ts",
  fn: "loadAndEncode",
  args: [name, "{path}"],
});
/** `loadAndEncode(name, dir)` for a file base (the case file is `case<i>-<name>`). */
const asFile: FuzzTarget["loader"] = {
  module: "tests/fuzz_loaders.ts",
  fn: "loadAndEncode",
  args: ["{name}", "{dir}"],
};

/**
 * Regex patterns a tokenizer file may carry that an engine must refuse or bound:
 * catastrophic backtracking, unbalanced syntax, unknown classes, lookbehind, back
 * references, huge repeats, and patterns that match nothing or the empty string.
 */
const PATTERNS = [
  "(a|a)*b",
  "(a*)*$",
  "(x+x+)+y",
  "([a-z]+)*[0-9]",
  "[",
  "(?<=a)b",
  "\\p{Foo}",
  "\\1(a)",
  "a{1000000}",
  "(?:)",
  "",
  "$^",
  "zzzz",
  ".*",
  "\\s*",
];

/** tokenizer.json values: patterns, ids far outside the vocabulary, odd token texts. */
const JSON_VALUES: unknown[] = [
  ...PATTERNS,
  ...PATTERNS.map((p) => ({ Regex: p })),
  2147483648,
  99999999,
  -5,
  1.5,
  "",
  " ",
  "<s>",
  "\u0000",
  "\ud800",
  { type: "Split", pattern: { Regex: "(a|a)*b" }, behavior: "Isolated", invert: false },
  { type: "Unknown" },
  { "": 1 },
];

/** Keys of tokenizer.json where a bad value once got through (#12 items 3, 4, 7, 11, 12). */
const JSON_KEYS = [
  "added_tokens",
  "id",
  "content",
  "special",
  "normalized",
  "Regex",
  "String",
  "pattern",
  "behavior",
  "invert",
  "type",
  "pre_tokenizer",
  "pretokenizers",
  "normalizer",
  "post_processor",
  "special_tokens",
  "ids",
  "tokens",
  "single",
  "SpecialToken",
  "vocab",
  "merges",
  "unk_token",
  "byte_fallback",
  "add_prefix_space",
  "use_regex",
  "ignore_merges",
  "prepend",
  "content",
];

/** tiktoken lines (tokenizers/tiktoken_file.ts): directives with bad or pathological values. */
const TIKTOKEN_LINES = [
  ...PATTERNS.map((p) => `#pattern ${p}`),
  "#split Isolated true (a|a)*b",
  "#split Removed false \\s+",
  "#split Bogus false x",
  "#special  5",
  "#special  4095",
  "#special IA== 4095",
  "#added YQ== 4094",
  "#added  7",
  "#literal //79 4093",
  "#bos 99999999",
  "#bos none",
  "#eos 4096 4097",
  "#eos",
  "#add_bos maybe",
  "#normalize NFKC",
  "#normalize XYZ",
  "#prefix_space",
  "#pretokenizer none",
  "#frobnicate",
  "<|endoftext|> 4095",
  "<|x|> 16777216",
  " 12",
  "YQ== 0",
  "YQ==",
  "=== 5",
];

Deno.test({
  name:
    "fuzz: the Llama-3 tokenizer.json, mutated, loads and encodes or fails with one-line GollmErrors",
  ignore: !haveFiles("Llama-3 tokenizer.json fuzzing", [`${LLAMA3}/tokenizer.json`]),
  fn: async () => {
    const report = await fuzz({
      name: "tokenizer.json (Llama-3)",
      base: LLAMA3,
      file: "tokenizer.json",
      mutations: ["json", "json", "json", "json", "truncate", "insert"],
      keys: JSON_KEYS,
      values: JSON_VALUES,
      hot: 200_000,
      loader: inDir("tokenizer.json"),
    }, { seed: 3, cases: 14, batch: 14 });
    assertClean(report, 4);
  },
});

for (
  const [fixture, kind, seed] of [["llama_gqa", "SentencePiece-style", 31], [
    "gpt2",
    "byte-level",
    32,
  ]] as const
) {
  Deno.test(`fuzz: a shipped ${kind} tokenizer.json, mutated, loads and encodes or fails cleanly`, async () => {
    const report = await fuzz({
      name: `tokenizer.json (${fixture})`,
      base: `${ROOT}tests/fixtures/hf/${fixture}`,
      file: "tokenizer.json",
      mutations: ["json", "json", "json", "json", "bitflip", "truncate", "insert"],
      keys: JSON_KEYS,
      values: JSON_VALUES,
      loader: inDir("tokenizer.json"),
    }, { seed, cases: 60 });
    assertClean(report, 15);
  });
}

Deno.test("fuzz: the default model's tokenizer.tiktoken, mutated line by line, loads and encodes or fails cleanly", async () => {
  const report = await fuzz({
    name: "tokenizer.tiktoken",
    base: `${ROOT}models/default/tokenizer.tiktoken`,
    mutations: ["lines", "lines", "lines", "lines", "lines", "bitflip", "truncate", "insert"],
    lines: TIKTOKEN_LINES,
    hot: 200, // the #pattern line and the first ranks; the specials are at the end
    loader: asFile,
  }, { seed: 33, cases: 80 });
  assertClean(report, 20);
});

Deno.test({
  name: "fuzz: stories260K's tok512.bin, mutated byte by byte, loads and encodes or fails cleanly",
  ignore: !haveFiles("tokenizer.bin fuzzing", [TOK512]),
  fn: async () => {
    const report = await fuzz({
      name: "tok512.bin",
      base: TOK512,
      mutations: [...BYTES, "overwrite", "overwrite"],
      hot: 6227,
      loader: asFile,
    }, { seed: 34, cases: 70 });
    assertClean(report, 15);
  },
});

Deno.test("fuzz: a tiktoken reader with a backtracking regex engine hangs on the same mutants (negative control)", async () => {
  const target = (fn: string): FuzzTarget => ({
    name: `tokenizer.tiktoken (${fn})`,
    base: `${ROOT}models/default/tokenizer.tiktoken`,
    mutations: ["lines"],
    lines: ["#pattern (a|a)*b"],
    hot: 1, // the #pattern line
    loader: { ...asFile, fn },
  });
  const naive = await fuzz(target("naiveTiktokenRegex"), { seed: 6, cases: 6, timeoutMs: 3000 });
  const hung = naive.results.filter((r) => r.outcome === "fail");
  assert.ok(hung.length > 0, "the naive reader survived every mutant");
  for (const r of hung) {
    assert.match(r.mutation, /#pattern \(a\|a\)\*b/);
    assert.match(r.detail, /no result after 3000 ms \(hang\)/);
  }
  // gollm's reader on the very same mutants: linear-time regex engine, no hang.
  assertClean(await fuzz(target("loadAndEncode"), { seed: 6, cases: 6 }), 0);
});
