import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { writeGollmDir } from "../formats/gollm_dir.ts";
import { detectFormat, loadCheckpoint } from "../formats/load.ts";
import { createModel, type GenerateOptions, loadModel, type Model } from "./model.ts";
import { randomWeights } from "../core/weights.ts";
import { assertClose } from "../tests/assert_close.ts";
import {
  BOS,
  byteTokenizer,
  chain,
  EOS,
  scriptedWeights,
  tinyConfig,
} from "../tests/model_fixtures.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz";

/** A llama (or gpt2) model whose greedy output follows `next`. */
function scripted(
  next: Map<number, number>,
  opts: { arch?: "llama" | "gpt2"; context?: number; kvCapacity?: number; jit?: boolean } = {},
): Model {
  const c = tinyConfig(opts.arch ?? "llama", { context_length: opts.context ?? 32 });
  return createModel(c, scriptedWeights(c, next), byteTokenizer(), {
    backend: opts.jit ? "jit" : "reference",
    kvCapacity: opts.kvCapacity,
  });
}

/** The alphabet as a cycle (z → a): never reaches EOS. */
function cycle(): Map<number, number> {
  const m = chain(ALPHABET);
  m.set("z".charCodeAt(0), "a".charCodeAt(0));
  return m;
}

async function collect(
  model: Model,
  prompt: string | number[],
  options: GenerateOptions = {},
): Promise<{ pieces: string[]; notices: string[] }> {
  const pieces: string[] = [], notices: string[] = [];
  for await (
    const p of model.generate(prompt, {
      temperature: 0,
      onNotice: (n) => notices.push(n),
      ...options,
    })
  ) {
    pieces.push(p);
  }
  return { pieces, notices };
}

Deno.test("generate() stops at EOS and does not emit it", async () => {
  const m = scripted(chain("abcdef", EOS));
  const { pieces } = await collect(m, "a");
  assert.equal(pieces.join(""), "bcdef");
  assert.equal(m.stats!.stopReason, "eos");
  assert.deepEqual(m.stats!.tokens, [..."bcdef"].map((ch) => ch.charCodeAt(0)));
  assert.equal(m.stats!.promptTokens, 2); // BOS + "a"
  assert.equal(m.stats!.prefillTokens, 2);
});

Deno.test("generate() stops after maxTokens", async () => {
  const m = scripted(cycle());
  const { pieces } = await collect(m, "x", { maxTokens: 0 });
  assert.deepEqual(pieces, []);
  const r = await collect(m, "w", { maxTokens: 7 });
  assert.equal(r.pieces.join(""), "xyzabcd");
  assert.equal(m.stats!.stopReason, "max_tokens");
  assert.equal(m.stats!.tokens.length, 7);
  assert.equal(m.stats!.decodeTokens, 6); // the last token is never run
});

Deno.test("generate() with an empty prompt starts from BOS", async () => {
  const m = scripted(new Map([[BOS, "a".charCodeAt(0)], ...chain("abc", EOS)]));
  const { pieces } = await collect(m, "");
  assert.equal(pieces.join(""), "abc");
  assert.equal(m.stats!.promptTokens, 1);
});

Deno.test("generate() stops at a stop string, never emits it, and holds back its prefix", async () => {
  const m = scripted(cycle());
  let r = await collect(m, "a", { stop: ["ghi"], maxTokens: 50 });
  assert.equal(r.pieces.join(""), "bcdef");
  assert.equal(m.stats!.stopReason, "stop");
  // A stop string spanning tokens; the earliest of several wins.
  r = await collect(m, "a", { stop: ["xyz", "cd"], maxTokens: 50 });
  assert.equal(r.pieces.join(""), "b");
  // "de" could start "dex": held back until "f" shows it is not a stop, then released.
  r = await collect(m, "a", { stop: ["dex"], maxTokens: 7 });
  assert.deepEqual(r.pieces, ["b", "c", "def", "g", "h"]);
  assert.equal(m.stats!.stopReason, "max_tokens");
  // Text held back at the end (a partial stop string) is emitted when generation ends.
  r = await collect(m, "a", { stop: ["efx"], maxTokens: 5 });
  assert.equal(r.pieces.join(""), "bcdef");
});

Deno.test("generate() past kvCapacity slides the window and reports it once", async () => {
  const m = scripted(cycle(), { kvCapacity: 8 });
  assert.equal(m.kvCapacity, 8);
  const r = await collect(m, "a", { maxTokens: 20 });
  assert.equal(r.pieces.join(""), "bcdefghijklmnopqrstu");
  assert.equal(r.notices.length, 1);
  assert.match(r.notices[0], /KV capacity \(8 tokens\).*sliding window/);
  // Within the capacity: no notice.
  const r2 = await collect(m, "a", { maxTokens: 4 });
  assert.deepEqual(r2.notices, []);
});

Deno.test("generate() on gpt2 stops at context_length with a notice", async () => {
  const m = scripted(cycle(), { arch: "gpt2", context: 16 });
  const r = await collect(m, "a", { maxTokens: 50 });
  assert.equal(m.stats!.stopReason, "context");
  assert.equal(m.stats!.tokens.length, 15); // BOS + "a" at positions 0, 1; tokens run up to 15
  assert.equal(r.pieces.join(""), ALPHABET.slice(1, 16));
  assert.equal(r.notices.length, 1);
  assert.match(r.notices[0], /context length \(16 tokens\)/);
});

Deno.test("generate() rejects a prompt longer than the context unless the window slides", async () => {
  const long = "a".repeat(40); // 41 tokens with BOS, context 32
  const m = scripted(cycle());
  assert.throws(
    () => m.generate(long),
    (e) =>
      e instanceof GollmError &&
      /prompt is 41 tokens, longer than the context length 32/.test(e.message),
  );
  const g = scripted(cycle(), { arch: "gpt2" });
  assert.throws(() => g.generate(long), /longer than the context length 32/);
  const gSmall = scripted(cycle(), { arch: "gpt2", kvCapacity: 8 });
  assert.throws(() => gSmall.generate(long), /learned positions/);
  // llama with kvCapacity < context: runs with sliding-window attention and says so.
  const s = scripted(cycle(), { kvCapacity: 8 });
  const r = await collect(s, long, { maxTokens: 3 });
  assert.equal(r.pieces.join(""), "bcd");
  assert.equal(r.notices.length, 1);
  assert.equal(s.stats!.prefillTokens, 41);
});

Deno.test("generate() with the same seed gives the same text; a new seed another", async () => {
  const c = tinyConfig("llama", { dim: 32, hidden_dim: 48, n_layers: 2 });
  const w = randomWeights(c, 3);
  const make = () => createModel(c, w, byteTokenizer(), { backend: "reference" });
  const opts = { temperature: 1, topP: 1, maxTokens: 24, seed: 42 };
  const m1 = make(), m2 = make();
  const a = (await collect(m1, "hello", opts)).pieces.join("");
  const ids = m1.stats!.tokens;
  const b = (await collect(m2, "hello", opts)).pieces.join("");
  assert.equal(a, b);
  assert.equal(ids.length, 24);
  const other = await collect(make(), "hello", { ...opts, seed: 43 });
  assert.equal(make().stats, null); // no generation yet
  assert.notEqual(other.pieces.join(""), a);
  // The same model again reuses the cached prompt prefix and still gives the same text.
  const again = (await collect(m1, "hello", opts)).pieces.join("");
  assert.equal(again, a);
  assert.equal(m1.stats!.promptTokens, 6);
  assert.equal(m1.stats!.prefillTokens, 1);
  // A prompt that diverges from the cached one: only the new suffix runs, same result as fresh.
  const fresh = (await collect(make(), "help!", opts)).pieces.join("");
  const reused = (await collect(m1, "help!", opts)).pieces.join("");
  assert.equal(reused, fresh);
  assert.equal(m1.stats!.prefillTokens, 2); // "p!" after the shared BOS "hel"
  // The same on the JIT backend (prefill chunk 4, so the reused prefix and the new suffix
  // straddle chunk boundaries).
  const jit = () => createModel(c, w, byteTokenizer(), { backend: "jit", prefillChunk: 4 });
  const j1 = jit();
  const short = { ...opts, maxTokens: 8 };
  await collect(j1, "hello world", short);
  const jitReused = (await collect(j1, "hello there", short)).pieces.join("");
  assert.equal(j1.stats!.prefillTokens, 5); // "there" after BOS "hello "
  assert.equal(jitReused, (await collect(jit(), "hello there", short)).pieces.join(""));
});

Deno.test("generate() on the JIT backend follows the same script as the reference", async () => {
  const next = chain("the quick", EOS);
  const ref = await collect(scripted(next, { kvCapacity: 8 }), "t");
  const jit = await collect(scripted(next, { kvCapacity: 8, jit: true }), "t");
  assert.equal(ref.pieces.join(""), "he quick");
  assert.equal(jit.pieces.join(""), ref.pieces.join(""));
});

Deno.test("generate() stops when its signal is aborted and refuses concurrent calls", async () => {
  const m = scripted(cycle());
  const ctl = new AbortController();
  const pieces: string[] = [];
  for await (const p of m.generate("a", { temperature: 0, maxTokens: 20, signal: ctl.signal })) {
    pieces.push(p);
    if (pieces.length === 3) ctl.abort();
  }
  assert.equal(pieces.join(""), "bcd");
  assert.equal(m.stats!.stopReason, "aborted");

  const it = m.generate("a", { temperature: 0, maxTokens: 5 })[Symbol.asyncIterator]();
  await it.next();
  await assert.rejects(
    async () => {
      for await (const _ of m.generate("a", { maxTokens: 2 })) { /* consume */ }
    },
    /another generation is running/,
  );
  assert.throws(() => m.forward([1]), /generate\(\) call is running/);
  await it.return?.(undefined);
  assert.equal(m.forward([1, 2]).length, 258);
});

Deno.test("generate() needs a tokenizer; forward() works without one", () => {
  const c = tinyConfig("llama", { dim: 32, hidden_dim: 48 });
  const m = createModel(c, randomWeights(c, 5), null, { backend: "reference" });
  assert.throws(() => m.generate("hi"), /has no tokenizer/);
  // The message tells CLI users the flag and library users the option.
  assert.throws(() => m.generate("hi"), /--tokenizer PATH.*tokenizerPath.*forward\(\)/);
  const last = m.forward([1, 2, 3]);
  const all = m.forwardAll([1, 2, 3]);
  assert.equal(all.length, 3 * c.vocab_size);
  assertClose(all.subarray(2 * c.vocab_size), last, 1e-6);
  assert.throws(
    () => m.forward([300]),
    (e) => e instanceof GollmError && /outside the vocabulary/.test(e.message),
  );
  assert.throws(
    () => createModel(c, randomWeights(c, 5), null, { kvCapacity: 33 }),
    /kvCapacity 33 exceeds the model's context length 32/,
  );
});

Deno.test("forward() writes into a given out array: the same logits, no new array", () => {
  const c = tinyConfig("llama", { dim: 32, hidden_dim: 48 });
  const m = createModel(c, randomWeights(c, 5), null, { backend: "jit" });
  const fresh = m.forward([1, 2, 3]);
  const out = new Float32Array(c.vocab_size).fill(NaN);
  assert.equal(m.forward([1, 2, 3], 0, out), out);
  assert.deepEqual(out, fresh);
  assert.notEqual(m.forward([4], 3), m.forward([4], 3)); // without out: a new array each time
  assert.throws(
    () => m.forward([1], 0, new Float32Array(c.vocab_size - 1)),
    (e) => e instanceof GollmError && /out has length \d+, expected vocab_size \d+/.test(e.message),
  );
});

Deno.test("loadModel() runs a gollm directory written by writeGollmDir()", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const c = tinyConfig("llama");
    const next = chain("golem", EOS);
    await writeGollmDir(
      {
        format: "gollm",
        path: "<test>",
        config: c,
        weights: scriptedWeights(c, next),
        tokenizer: byteTokenizer(),
      },
      `${tmp}/m`,
    );
    const m = await loadModel(`${tmp}/m`, { backend: "jit" });
    assert.equal(m.checkpoint.format, "gollm");
    assert.equal(m.backend, "jit");
    assert.deepEqual(m.eosIds, [EOS]);
    const r = await collect(m, "g");
    assert.equal(r.pieces.join(""), "olem");
    await assert.rejects(loadModel(`${tmp}/nope`), /no such file or directory/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadCheckpoint() detects each format and names a path that matches none", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const tmp = await Deno.makeTempDir();
  try {
    await writeGollmDir(
      {
        format: "gollm",
        path: "<t>",
        config: tinyConfig("gpt2", { dim: 16, hidden_dim: 8 }),
        weights: randomWeights(tinyConfig("gpt2", { dim: 16, hidden_dim: 8 }), 1),
        tokenizer: null,
      },
      `${tmp}/g`,
    );
    assert.equal(await detectFormat(`${tmp}/g`), "gollm");
    await Deno.mkdir(`${tmp}/hf`);
    await Deno.writeTextFile(`${tmp}/hf/config.json`, "{}");
    assert.equal(await detectFormat(`${tmp}/hf`), "hf");
    await Deno.writeFile(`${tmp}/x.gguf`, new TextEncoder().encode("GGUF\x03\0\0\0"));
    assert.equal(await detectFormat(`${tmp}/x.gguf`), "gguf");
    await Deno.writeFile(`${tmp}/junk.bin`, new Uint8Array([1, 2, 3]));
    assert.equal(await detectFormat(`${tmp}/junk.bin`), "llama2c");
    // A .gguf name or a legacy ggml magic goes to the GGUF reader, which names the bad magic.
    await Deno.writeFile(
      `${tmp}/bad.gguf`,
      new TextEncoder().encode("GGUX\x03\0\0\0" + "\0".repeat(40)),
    );
    assert.equal(await detectFormat(`${tmp}/bad.gguf`), "gguf");
    await Deno.writeFile(`${tmp}/old.model`, new TextEncoder().encode("tjgg" + "\0".repeat(40)));
    assert.equal(await detectFormat(`${tmp}/old.model`), "gguf");
    await Deno.writeTextFile(`${tmp}/notes.txt`, "# notes\nnot a model at all, just some text\n");
    // Real loaders behind the detection (committed fixtures of the HF and GGUF readers).
    for (
      const [path, format] of [[`${root}tests/fixtures/hf/gpt2`, "hf"], [
        `${root}tests/fixtures/gguf/llama.gguf`,
        "gguf",
      ]]
    ) {
      try {
        Deno.statSync(path);
      } catch {
        console.log(`skipped ${path}: fixture absent`);
        continue;
      }
      const ck = await loadCheckpoint(path);
      assert.equal(ck.format, format);
      assert.ok(ck.weights.size > 0);
    }
    // Bad inputs: one clear GollmError each.
    const bad: [string, RegExp][] = [
      [`${tmp}/missing`, /missing: no such file or directory/],
      [tmp + "/g/model.safetensors", /lone \.safetensors file carries no config/],
      [root + "core", /neither config\.yaml \(gollm model\) nor config\.json/],
      [`${tmp}/junk.bin`, /junk\.bin/],
      [`${tmp}/bad.gguf`, /bad\.gguf: bad magic: expected 'GGUF', got 'GGUX'$/],
      [`${tmp}/old.model`, /old\.model: bad magic: .*'tjgg' \(a pre-GGUF llama\.cpp file/],
      [
        `${tmp}/notes.txt`,
        /notes\.txt: not a recognised model file \(starts with '# no'; expected a GGUF file, a llama2\.c \.bin checkpoint, or a model directory\)$/,
      ],
      [`${root}README.md`, /README\.md: not a recognised model file \(starts with '# go'/],
    ];
    for (const [path, re] of bad) {
      const e = await loadCheckpoint(path).then(() => null, (e) => e);
      assert.ok(e instanceof GollmError, `GollmError expected for ${path}, got ${e}`);
      assert.match(e.message, re);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("generate() with a stop string ends stats.tokens before the stop, agreeing with the text", async () => {
  const m = scripted(cycle());
  const r = await collect(m, "a", { stop: ["ghi"], maxTokens: 50 });
  assert.equal(r.pieces.join(""), "bcdef");
  assert.deepEqual(m.stats!.tokens, [..."bcdef"].map((ch) => ch.charCodeAt(0)));
  assert.equal(byteTokenizer().decode(m.stats!.tokens), r.pieces.join(""));
  // A stop string found only when generation ends (held back, then matched at the end).
  const r2 = await collect(m, "a", { stop: ["def"], maxTokens: 5 });
  assert.equal(r2.pieces.join(""), "bc");
  assert.deepEqual(m.stats!.tokens, [..."bc"].map((ch) => ch.charCodeAt(0)));
  assert.equal(m.stats!.stopReason, "stop");
});

Deno.test("generate() recognises special-token text in a text prompt unless special is false", async () => {
  const m = scripted(new Map([[BOS, "a".charCodeAt(0)], ...chain("abc", EOS)]));
  const r = await collect(m, "<|bos|>", { addBos: false });
  assert.equal(m.stats!.promptTokens, 1); // the one BOS token
  assert.equal(r.pieces.join(""), "abc");
  await collect(m, "<|bos|>", { addBos: false, special: false, maxTokens: 1 });
  assert.equal(m.stats!.promptTokens, "<|bos|>".length); // its 7 bytes
});

Deno.test("generate() refuses repeatPenalty 0 and topP 0 at the call, naming the option", () => {
  const m = scripted(cycle());
  assert.throws(
    () => m.generate("a", { repeatPenalty: 0 }),
    /repeatPenalty must be a number in \(0, /,
  );
  assert.throws(() => m.generate("a", { topP: 0 }), /topP must be a number in \(0, 1\]/);
});

Deno.test("createModel() reports NaN weights at the warm-up pass, generate() at the first sample", async () => {
  const c = tinyConfig("llama");
  const w = scriptedWeights(c, chain("abc", EOS));
  w.get("norm.weight")!.data[3] = NaN; // one value, as in a damaged output_norm.weight
  const source = { format: "gguf" as const, path: "damaged.gguf" };
  const e = (() => {
    try {
      createModel(c, w, byteTokenizer(), { backend: "reference" }, source);
    } catch (e) {
      return e;
    }
  })();
  assert.ok(e instanceof GollmError, `GollmError expected, got ${e}`);
  assert.match(e.message, /^damaged\.gguf: \d+ of 258 logits of the first forward pass are NaN/);
  // Without the warm-up the sampler's check is reported, still typed and naming the file.
  for (const backend of ["reference", "jit"] as const) {
    const m = createModel(c, w, byteTokenizer(), { backend, warmup: false }, source);
    await assert.rejects(
      () => collect(m, "a"),
      (err: unknown) =>
        err instanceof GollmError &&
        /^damaged\.gguf: the logits at position 1 are all NaN or -Infinity/.test(err.message),
    );
  }
});

Deno.test("loadModel() calls onConfig with the config before building the forward pass", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const c = tinyConfig("llama");
    await writeGollmDir({
      format: "gollm",
      path: "<t>",
      config: c,
      weights: randomWeights(c, 3),
      tokenizer: byteTokenizer(),
    }, `${tmp}/m`);
    let seen = 0;
    await assert.rejects(
      () =>
        loadModel(`${tmp}/m`, {
          kvCapacity: 64, // above the context: createModel would refuse it
          onConfig: (cfg) => {
            seen = cfg.context_length;
            throw new GollmError("stopped by onConfig");
          },
        }),
      /stopped by onConfig/,
    );
    assert.equal(seen, 32);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("loadModel() sizes the KV cache by a function of the config, which may stop the load", async () => {
  // The GGUF path (straight into WASM memory) and the checkpoint path (a gollm directory).
  for (
    const [source, backend] of [["tests/fixtures/gguf/llama.gguf", "wasm"], [
      "models/default",
      "jit",
    ]] as const
  ) {
    const seen: number[] = [];
    using m = await loadModel(source, {
      backend,
      threads: 1,
      kvCapacity: (c) => {
        seen.push(c.context_length);
        return c.context_length / 4;
      },
    });
    assert.equal(seen.length, 1, source);
    assert.equal(m.kvCapacity, seen[0] / 4, source);
    await assert.rejects(
      loadModel(source, {
        backend,
        kvCapacity: () => {
          throw new GollmError("too long for this test");
        },
      }),
      /too long for this test/,
    );
  }
});
