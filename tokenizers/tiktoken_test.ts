/**
 * TiktokenTokenizer against peers nobody here wrote: llama.cpp's tokenizer test vectors
 * (GPT-2 and Llama-3), OpenAI's published tiktoken ids, the Rust `tiktoken` (Python package)
 * on random text; plus file loaders (GPT-2 encoder.json, Llama-3 tokenizer.json, the gollm
 * .tiktoken format), unicode round trips, special tokens, and `loadTokenizer` dispatch.
 */
import assert from "node:assert/strict";
import { BYTE_TO_UNICODE, byteLevelToBytes, bytesToByteLevel } from "./byte_level.ts";
import { FormatError, GollmError } from "../core/errors.ts";
import { PRETOKENIZE_PATTERNS, TiktokenTokenizer, unicodeWhitespacePattern } from "./tiktoken.ts";
import { loadTokenizer } from "./tokenizer_file.ts";
import { ASSETS, haveFiles, isFile } from "../tests/assets.ts";
import { pythonSkipReason } from "../tests/python_probe.ts";

const VEC = `${ASSETS}/tokenizer-vectors`;

/** llama.cpp test-tokenizer-0 inputs: split on the separator; the file ends with one. */
function readVectors(outFile: string): { inputs: string[]; expected: number[][] } {
  const inputs = Deno.readTextFileSync(`${VEC}/ggml-vocab-gpt-2.gguf.inp`).split(
    "\n__ggml_vocab_test__\n",
  );
  assert.equal(inputs.pop(), "", "the .inp file ends with a separator");
  const lines = Deno.readTextFileSync(outFile).split("\n");
  const expected = inputs.map((_, i) =>
    lines[i].trim() === "" ? [] : lines[i].trim().split(" ").map(Number)
  );
  return { inputs, expected };
}

function assertVectors(tok: TiktokenTokenizer, outFile: string): number {
  const { inputs, expected } = readVectors(outFile);
  for (let i = 0; i < inputs.length; i++) {
    assert.deepEqual(
      tok.encode(inputs[i], { bos: false }),
      expected[i],
      `vector ${i}: ${JSON.stringify(inputs[i])}`,
    );
  }
  return inputs.length;
}

const GPT2_FILES = [
  `${ASSETS}/tokenizers/gpt2/encoder.json`,
  `${ASSETS}/tokenizers/gpt2/vocab.bpe`,
];

async function gpt2FromFiles(): Promise<TiktokenTokenizer> {
  const encoder = JSON.parse(await Deno.readTextFile(GPT2_FILES[0])) as Record<string, number>;
  const tokens: string[] = [];
  const specials = new Map<string, number>();
  for (const [t, id] of Object.entries(encoder)) {
    if (t === "<|endoftext|>") specials.set(t, id);
    tokens[id] = t;
  }
  return TiktokenTokenizer.fromByteLevelBpe(tokens, specials, PRETOKENIZE_PATTERNS.gpt2, {
    bosId: null,
    addBos: false,
    source: GPT2_FILES[0],
  });
}

/** Varied text for round trips and cross-checks. */
const SAMPLES = [
  "",
  "Hello world",
  " leading space and trailing   ",
  "emoji 😀 family 👨‍👩‍👧‍👦 flags 🇯🇵🇺🇳 skin 👍🏽",
  "CJK 中文字符测试 日本語のテキスト 한국어 텍스트",
  "combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0328\u0350, Hangul jamo \u1100\u1161\u11a8",
  "RTL: שלום עולם مرحبا بالعالم",
  "code: for (let i = 0; i < n; i++) { x[i] += y[i] * 2; } // done\n\tindented\r\n",
  "whitespace runs:    \n\n\n   \t\t  end\u00a0nbsp\u2003emsp\u3000ideographic",
  "numbers 1234567890 3.14159 1e-10 ١٢٣ ½ ⅞",
  "contractions: I'm you'll they'd WE'RE it's 'S",
  "null\u0000byte and bell\u0007 and BOM\ufeff and NEL\u0085",
  "<|endoftext|> looks special but is text by default",
  "math ∑∫√∞ ≤≥ ⊂⊃ and arrows →⇒⟶",
  "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𓀀",
];

Deno.test({
  name: "TiktokenTokenizer.builtin('gpt2') reproduces llama.cpp's GPT-2 test vectors",
  ignore: !haveFiles("gpt2 vectors", [
    `${VEC}/ggml-vocab-gpt-2.gguf.inp`,
    `${VEC}/ggml-vocab-gpt-2.gguf.out`,
  ]),
  fn: async () => {
    const tok = await TiktokenTokenizer.builtin("gpt2");
    assert.equal(assertVectors(tok, `${VEC}/ggml-vocab-gpt-2.gguf.out`), 46);
  },
});

Deno.test({
  name:
    "fromByteLevelBpe() on GPT-2 encoder.json equals the built-in gpt2 (rank = id = merge order)",
  ignore: !haveFiles("gpt2 encoder.json/vocab.bpe", GPT2_FILES),
  fn: async () => {
    // rank = id holds for GPT-2: the token made by merge line i has id 256 + i.
    const encoder = JSON.parse(await Deno.readTextFile(GPT2_FILES[0])) as Record<string, number>;
    const merges = (await Deno.readTextFile(GPT2_FILES[1])).split("\n").filter((l) =>
      l && !l.startsWith("#version")
    );
    assert.equal(merges.length, 50000);
    merges.forEach((line, i) => {
      const [a, b] = line.split(" ");
      assert.equal(encoder[a + b], 256 + i, `merge ${i}: ${line}`);
    });
    const fromFiles = await gpt2FromFiles();
    const builtin = await TiktokenTokenizer.builtin("gpt2");
    assert.equal(fromFiles.vocabSize, builtin.vocabSize);
    assert.deepEqual(fromFiles.eosIds, [50256]);
    for (let id = 0; id < builtin.vocabSize; id++) {
      assert.deepEqual(fromFiles.tokenBytes(id), builtin.tokenBytes(id), `id ${id}`);
    }
    for (const s of SAMPLES) assert.deepEqual(fromFiles.encode(s), builtin.encode(s), s);
    if (isFile(`${VEC}/ggml-vocab-gpt-2.gguf.out`)) {
      assertVectors(fromFiles, `${VEC}/ggml-vocab-gpt-2.gguf.out`);
    }
  },
});

const LLAMA3 = `${ASSETS}/tokenizers/llama3/tokenizer.json`;
Deno.test({
  name: "fromByteLevelBpe() on the Llama-3 tokenizer.json reproduces llama.cpp's llama-bpe vectors",
  ignore: !haveFiles("llama3 vectors", [
    LLAMA3,
    `${VEC}/ggml-vocab-llama-bpe.gguf.out`,
    `${VEC}/ggml-vocab-gpt-2.gguf.inp`,
  ]),
  fn: async () => {
    const j = JSON.parse(await Deno.readTextFile(LLAMA3));
    const tokens: string[] = [];
    for (const [t, id] of Object.entries(j.model.vocab as Record<string, number>)) tokens[id] = t;
    const specials = new Map<string, number>();
    for (const a of j.added_tokens as { content: string; id: number }[]) {
      specials.set(a.content, a.id);
    }
    const tok = TiktokenTokenizer.fromByteLevelBpe(tokens, specials, PRETOKENIZE_PATTERNS.llama3, {
      source: LLAMA3,
    });
    assert.equal(tok.vocabSize, 128256);
    assert.equal(tok.bosId, 128000);
    assert.deepEqual(tok.eosIds, [128001, 128009]);
    assert.equal(tok.addBos, true);
    assert.equal(assertVectors(tok, `${VEC}/ggml-vocab-llama-bpe.gguf.out`), 46);
    assert.deepEqual(tok.encode("hi", { bos: true }), [128000, 6151]);
    assert.deepEqual(tok.encode("<|eot_id|>", { bos: false, special: true }), [128009]);
    for (const s of SAMPLES) assert.equal(tok.decode(tok.encode(s)), s);
  },
});

Deno.test("built-in cl100k_base and o200k_base give OpenAI's published ids", async () => {
  const gpt2 = await TiktokenTokenizer.builtin("gpt2");
  assert.deepEqual(gpt2.encode("hello world"), [31373, 995]);
  const cl = await TiktokenTokenizer.builtin("cl100k_base");
  assert.deepEqual(cl.encode("hello world"), [15339, 1917]);
  assert.deepEqual(cl.encode("<|endoftext|>", { special: true }), [100257]);
  assert.deepEqual(cl.eosIds, [100257]);
  assert.equal(cl.bosId, null);
  const o2 = await TiktokenTokenizer.builtin("o200k_base");
  assert.deepEqual(o2.encode("hello world"), [24912, 2375]);
  assert.deepEqual(o2.eosIds, [199999]);
  assert.equal(o2.vocabSize, 200019);
  for (const tok of [gpt2, cl, o2]) {
    for (const s of SAMPLES) assert.equal(tok.decode(tok.encode(s)), s, s);
  }
  await assert.rejects(TiktokenTokenizer.builtin("p99k"), GollmError);
});

// Differential test against the Rust tiktoken core (Python package), built offline from
// the same GPT-2 ranks.
const pyReason = await pythonSkipReason("tiktoken");
if (pyReason) console.log(`skipping tiktoken differential test: ${pyReason}`);

const PY_TIKTOKEN = String.raw`
import json, sys, tiktoken
enc = json.load(open(sys.argv[1]))
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
u2b = {chr(c): b for b, c in zip(bs, cs)}
ranks = {bytes(u2b[ch] for ch in t): i for t, i in enc.items() if t != "<|endoftext|>"}
e = tiktoken.Encoding("gpt2-local", pat_str=sys.argv[2], mergeable_ranks=ranks,
                      special_tokens={"<|endoftext|>": 50256})
print(json.dumps([e.encode(s, disallowed_special=()) for s in json.load(sys.stdin)]))
`;

Deno.test({
  name:
    "builtin gpt2 equals the Rust tiktoken core on 3000 random strings (unicode whitespace too)",
  ignore: pyReason !== null || !haveFiles("gpt2 encoder.json", GPT2_FILES),
  fn: async () => {
    const alphabet = [
      " ",
      "  ",
      "\n",
      "\t",
      "\r\n",
      "\u0085",
      "\u00a0",
      "\ufeff",
      "\u2028",
      "\u3000",
      "\u000b",
      "\u001c",
      "'s",
      "'S",
      "'ll",
      "a",
      "Z",
      "é",
      "ß",
      "ǅ",
      "7",
      "٣",
      "½",
      "⑦",
      "!",
      "...",
      "😀",
      "👍🏽",
      "中文",
      "한국",
      "\u0301",
      "e\u0301",
      "ـ",
      "\u200d",
      "—",
      "€",
      "\u0000",
      "{",
      "}",
      "()",
      "=>",
      "ab",
      "The",
      " the",
    ];
    let s = 12345;
    const rnd = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return (s >>> 0) / 4294967296;
    };
    const cases: string[] = [];
    for (let i = 0; i < 3000; i++) {
      let t = "";
      const n = 1 + Math.floor(rnd() * 14);
      for (let k = 0; k < n; k++) t += alphabet[Math.floor(rnd() * alphabet.length)];
      cases.push(t);
    }
    const want = await rustTiktokenGpt2(cases);
    const tok = await TiktokenTokenizer.builtin("gpt2");
    for (let i = 0; i < cases.length; i++) {
      assert.deepEqual(tok.encode(cases[i], { special: false }), want[i], JSON.stringify(cases[i]));
    }
  },
});

/** Ids from the Rust tiktoken core for GPT-2 ranks built from encoder.json. */
async function rustTiktokenGpt2(cases: string[]): Promise<number[][]> {
  const child = new Deno.Command("python3", {
    args: ["-c", PY_TIKTOKEN, GPT2_FILES[0], PRETOKENIZE_PATTERNS.gpt2],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(cases)));
  await w.close();
  const out = await child.output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)) as number[][];
}

Deno.test({
  name: "builtin gpt2 equals the Rust tiktoken core on long words (the O(n log n) heap merge)",
  ignore: pyReason !== null || !haveFiles("gpt2 encoder.json", GPT2_FILES),
  fn: async () => {
    let seed = 5;
    const rnd = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 4294967296;
    };
    const b64 = btoa(String.fromCharCode(...Array.from({ length: 30_000 }, () => rnd() * 256)));
    const cases = [
      "a".repeat(1000),
      "a".repeat(10_000),
      "ab".repeat(5000),
      "x" + "yz".repeat(3000) + "x",
      b64,
      b64.replace(/[^A-Za-z]/g, ""), // one 30 kB word
      "9".repeat(20_000),
      " ".repeat(5000) + "end",
      "😀".repeat(3000),
      "é".repeat(4000),
    ];
    const want = await rustTiktokenGpt2(cases);
    const tok = await TiktokenTokenizer.builtin("gpt2");
    for (let i = 0; i < cases.length; i++) {
      assert.deepEqual(tok.encode(cases[i]), want[i], `case ${i} (${cases[i].length} chars)`);
    }
  },
});

Deno.test("unicodeWhitespacePattern() rewrites only unescaped \\s and \\S", () => {
  assert.equal(
    unicodeWhitespacePattern(String.raw`[^\s\p{L}]+|\s+(?!\S)|\\s|\d`),
    String.raw`[^\p{White_Space}\p{L}]+|\p{White_Space}+(?!\P{White_Space})|\\s|\d`,
  );
});

Deno.test("encode() recognises special tokens unless special: false; eos/bos options", async () => {
  const tok = await TiktokenTokenizer.builtin("gpt2");
  const plain = tok.encode("a<|endoftext|>b", { special: false });
  assert.ok(!plain.includes(50256));
  assert.equal(tok.decode(plain), "a<|endoftext|>b");
  assert.deepEqual(tok.encode("a<|endoftext|>b"), [64, 50256, 65]);
  assert.deepEqual(tok.encode("a<|endoftext|>b", { special: true }), [64, 50256, 65]);
  assert.deepEqual(tok.encode("a", { eos: true }), [64, 50256]);
  assert.deepEqual(tok.encode("a", { bos: true }), [64]); // gpt2 has no BOS
  assert.equal(tok.bosId, null);
  assert.equal(tok.addBos, false);
  assert.equal(tok.stripLeadingSpace, false);
  assert.equal(tok.decode([64, 50256, 65]), "a<|endoftext|>b");
  assert.equal(tok.tokenPiece(50256), "<|endoftext|>");
  assert.equal(tok.tokenPiece(995), "Ġworld");
  assert.deepEqual([...tok.tokenBytes(995)], [...new TextEncoder().encode(" world")]);
  assert.throws(() => tok.tokenBytes(50257), RangeError);
  assert.throws(() => tok.decode([-1]), RangeError);
  assert.throws(() => tok.tokenPiece(1.5), RangeError);
  // Half a character decodes to U+FFFD; the whole character decodes cleanly.
  const ids = tok.encode("😀");
  assert.ok(ids.length > 1);
  assert.equal(tok.decode(ids.slice(0, 1)), "\ufffd");
  assert.equal(tok.decode(ids), "😀");
});

function tinyTokenizer(): TiktokenTokenizer {
  const ranks: Uint8Array[] = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
  const te = new TextEncoder();
  for (const m of ["th", "the", " the", "ab", "é", "😀"]) ranks.push(te.encode(m));
  const specials = new Map<string, number>([
    ["<|bos|>", 300],
    ["<|eos|>", 301],
    ["ABCD", 302], // reads as base64: must be escaped in the file
    ["<| two words |>", 303],
    ["#hash", 304],
  ]);
  return TiktokenTokenizer.fromRanks(ranks, specials, PRETOKENIZE_PATTERNS.qwen2, {
    chatTemplate: "{{ x }}",
  });
}

Deno.test(".tiktoken toFile() → parseTiktoken() round-trips ranks, specials, pattern and BOS/EOS", async () => {
  const tok = tinyTokenizer();
  assert.equal(tok.vocabSize, 305);
  assert.equal(tok.bosId, 300);
  assert.deepEqual(tok.eosIds, [301]);
  assert.equal(tok.addBos, true);
  assert.equal(tok.tokenPiece(280), "<unused:280>");
  assert.equal(tok.tokenBytes(280).length, 0);
  assert.deepEqual(tok.encode("the"), [300, 257]);
  assert.deepEqual(tok.encode("ABCD<|eos|>", { bos: false, special: true }), [302, 301]);
  const { name, bytes } = tok.toFile();
  assert.equal(name, "tokenizer.tiktoken");
  const text = new TextDecoder().decode(bytes);
  assert.ok(text.startsWith(`#pattern ${PRETOKENIZE_PATTERNS.qwen2}\n`));
  assert.ok(text.includes("\n<|eos|> 301\n"));
  assert.ok(text.includes(`\n#special ${btoa("ABCD")} 302\n`));
  const back = TiktokenTokenizer.parseTiktoken(text, "tiny.tiktoken");
  assert.equal(back.vocabSize, tok.vocabSize);
  assert.equal(back.pattern, tok.pattern);
  assert.equal(back.bosId, 300);
  assert.deepEqual(back.eosIds, [301]);
  assert.deepEqual([...back.specialTokens].sort(), [...tok.specialTokens].sort());
  for (let id = 0; id < tok.vocabSize; id++) {
    assert.deepEqual(back.tokenBytes(id), tok.tokenBytes(id));
  }
  for (const s of [...SAMPLES, "the the ABCD <|bos|>#hash 123456"]) {
    for (const special of [false, true]) {
      assert.deepEqual(back.encode(s, { special }), tok.encode(s, { special }), s);
    }
    assert.equal(back.decode(back.encode(s, { bos: false, special: false })), s);
  }
  // Explicit BOS/EOS/addBos that the names do not imply survive through directives.
  const custom = TiktokenTokenizer.fromRanks(
    Array.from({ length: 256 }, (_, b) => new Uint8Array([b])),
    new Map([["<|im_end|>", 256], ["<|start|>", 257]]),
    undefined,
    { bosId: 257, eosIds: [256], addBos: false },
  );
  const again = TiktokenTokenizer.parseTiktoken(
    new TextDecoder().decode(custom.toFile().bytes),
    "c.tiktoken",
  );
  assert.deepEqual([again.bosId, again.eosIds, again.addBos], [257, [256], false]);
  // Through the file system and loadTokenizer (relative to the base dir).
  const dir = await Deno.makeTempDir({ prefix: "gollm_tiktoken_test_" });
  try {
    await Deno.writeFile(`${dir}/tokenizer.tiktoken`, bytes);
    const loaded = await loadTokenizer("tokenizer.tiktoken", dir);
    assert.ok(loaded);
    assert.deepEqual(loaded.encode("the"), tok.encode("the"));
    // The built-in gpt2 survives the file format too.
    const gpt2 = await TiktokenTokenizer.builtin("gpt2");
    await Deno.writeFile(`${dir}/g.tiktoken`, gpt2.toFile().bytes);
    const g = await TiktokenTokenizer.fromFile(`${dir}/g.tiktoken`);
    assert.deepEqual([g.vocabSize, g.bosId, g.eosIds, g.addBos], [50257, null, [50256], false]);
    for (const s of SAMPLES) assert.deepEqual(g.encode(s), gpt2.encode(s));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseTiktoken() rejects malformed files with the file and line", () => {
  const bytes = Array.from({ length: 256 }, (_, b) => `${btoa(String.fromCharCode(b))} ${b}`);
  const bad = (extra: string[], re: RegExp, base = bytes) => {
    assert.throws(
      () => TiktokenTokenizer.parseTiktoken([...base, ...extra].join("\n"), "bad.tiktoken"),
      (e: unknown) => {
        assert.ok(e instanceof FormatError, String(e));
        assert.ok(e.message.startsWith("bad.tiktoken: "), e.message);
        assert.match(e.message, re);
        return true;
      },
    );
  };
  bad(["aGk= x"], /line 257: expected a non-negative integer id/);
  bad(["aGk= 5"], /line 257: id 5 is used twice/);
  bad(["aGk= 2147483648"], /line 257: id 2147483648 is too large/);
  bad(["<|x|> 100000000000000000000"], /line 257: id 100000000000000000000 is too large/);
  bad(["#merge a b"], /line 257: unknown directive '#merge'/);
  bad(["#pattern (unclosed"], /line 257: pattern is not usable: Invalid regular expression/);
  bad(["#pattern (a)\\1"], /line 257: pattern is not usable: backreference/);
  bad(["#split Sideways false a"], /line 257: expected '#split </);
  bad(["#normalize NFX"], /line 257: #normalize must be one of NFC/);
  bad(["#add_bos maybe"], /#add_bos must be true or false/);
  bad(["#special !!! 300"], /line 257: expected '#special <base64> <id>'/);
  bad(["justonefield"], /line 257: expected '<base64 token> <rank>'/);
  bad(
    [],
    /must include all 256 single bytes; missing 1 \(first: 0x41\)/,
    bytes.filter((_, b) => b !== 0x41),
  );
  bad(["#bos 999"], /BOS id 999 is outside the vocabulary/);
  // Comments, blank lines and CRLF are fine.
  const ok = TiktokenTokenizer.parseTiktoken(
    ["# comment", "", ...bytes, "<|eos|> 256\r"].join("\n"),
    "ok",
  );
  assert.deepEqual(ok.eosIds, [256]);
});

Deno.test("loadTokenizer() dispatches by spec and names missing files", async () => {
  assert.equal(await loadTokenizer("none", "/nonexistent"), null);
  assert.equal(
    await loadTokenizer("gpt2", "/nonexistent"),
    await TiktokenTokenizer.builtin("gpt2"),
  );
  await assert.rejects(loadTokenizer("missing.tiktoken", "/nonexistent/dir"), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.ok(e.message.startsWith("/nonexistent/dir/missing.tiktoken: "), e.message);
    return true;
  });
  await assert.rejects(loadTokenizer("tokenizer.bin", "/nonexistent"), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.match(e.message, /^\/nonexistent\/tokenizer\.bin: tokenizer file does not exist/);
    return true;
  });
  await assert.rejects(loadTokenizer("vocab.txt", "/x"), /\/x\/vocab.txt: unknown tokenizer kind/);
  await assert.rejects(loadTokenizer("tokenizer.json", "/nonexistent"), FormatError);
  if (isFile(LLAMA3)) {
    const t = await loadTokenizer("tokenizer.json", `${ASSETS}/tokenizers/llama3`);
    assert.equal(t?.vocabSize, 128256);
    assert.deepEqual(t?.encode("Hello world", { bos: false }), [9906, 1917]);
  } else {
    console.log(`skipping the tokenizer.json dispatch check: missing ${LLAMA3}`);
  }
  const tok512 = `${ASSETS}/stories260K/tok512.bin`;
  if (isFile(tok512)) {
    const t = await loadTokenizer(tok512, "/ignored-for-absolute-paths");
    assert.equal(t?.vocabSize, 512);
    assert.equal(t?.bosId, 1);
  } else {
    console.log(`skipping the tokenizer.bin dispatch check: missing ${tok512}`);
  }
});

Deno.test("byte-level map: GPT-2 bytes_to_unicode values and round trips", () => {
  assert.equal(BYTE_TO_UNICODE[0x20], "Ġ");
  assert.equal(BYTE_TO_UNICODE[0x0a], "Ċ");
  assert.equal(BYTE_TO_UNICODE[0x00], "Ā");
  assert.equal(BYTE_TO_UNICODE[0x41], "A");
  assert.equal(BYTE_TO_UNICODE[0xad], "Ń"); // soft hyphen is remapped
  assert.equal(BYTE_TO_UNICODE[0xff], "ÿ");
  assert.equal(new Set(BYTE_TO_UNICODE).size, 256);
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(byteLevelToBytes(bytesToByteLevel(all)), all);
  assert.equal(byteLevelToBytes("€"), null);
  assert.equal(byteLevelToBytes(" "), null); // a raw space is not a byte-level char
});

Deno.test("parseTiktoken(): text a #pattern does not match is kept, and a catastrophic #pattern runs in linear time", () => {
  const bytes = Array.from({ length: 256 }, (_, b) => `${btoa(String.fromCharCode(b))} ${b}`);
  const digitsOnly = TiktokenTokenizer.parseTiktoken(
    ["#pattern \\d+", ...bytes].join("\n"),
    "d.tiktoken",
  );
  const ids = digitsOnly.encode("Once upon a time");
  assert.equal(ids.length, 16);
  assert.equal(digitsOnly.decode(ids), "Once upon a time");
  const evil = TiktokenTokenizer.parseTiktoken(
    ["#pattern (a|a)*b", ...bytes].join("\n"),
    "e.tiktoken",
  );
  const text = "a".repeat(100_000);
  assert.equal(evil.decode(evil.encode(text)), text);
});

Deno.test("parseTiktoken(): #added tokens are matched even with special: false; #literal pieces never", () => {
  const bytes = Array.from({ length: 256 }, (_, b) => `${btoa(String.fromCharCode(b))} ${b}`);
  const te = new TextEncoder();
  const b64 = (s: string) => btoa(String.fromCharCode(...te.encode(s)));
  const tok = TiktokenTokenizer.parseTiktoken(
    [...bytes, `#added ${b64("<tool>")} 256`, "<|eos|> 257", `#literal ${b64("[PAD]")} 258`].join(
      "\n",
    ),
    "a.tiktoken",
  );
  assert.deepEqual(tok.encode("<tool><|eos|>", { special: false }).slice(0, 1), [256]);
  assert.ok(!tok.encode("<tool><|eos|>", { special: false }).includes(257));
  assert.deepEqual(tok.encode("<tool><|eos|>"), [256, 257]);
  assert.ok(!tok.encode("[PAD]").includes(258));
  assert.equal(tok.decode([258]), "[PAD]");
  const again = TiktokenTokenizer.parseTiktoken(new TextDecoder().decode(tok.toFile().bytes), "b");
  assert.deepEqual([...again.addedTokens], [["<tool>", 256]]);
  assert.equal(again.tokenPiece(258), "[PAD]");
  assert.ok(!again.encode("[PAD]").includes(258));
});
