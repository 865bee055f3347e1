/**
 * perplexity(): llama.cpp's chunking, BOS replacement and second-half scoring, checked against
 * a direct computation from whole-chunk logits; batches, chunk limits, progress and errors.
 * (tests/perplexity_pytorch_test.ts compares with PyTorch on real models.)
 */
import assert from "node:assert/strict";
import { parseConfigYaml } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import { randomWeights } from "../core/weights.ts";
import { byteTokenizer } from "../tests/model_fixtures.ts";
import { createModel, type Model } from "./model.ts";
import { perplexity, type PerplexityModel, type PerplexityProgress } from "./perplexity.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const config = parseConfigYaml(
  await Deno.readTextFile(`${ROOT}configs/test-llama.yaml`),
  "test-llama.yaml",
); // vocab 96, context 64
const weights = randomWeights(config, 3);
const model = createModel(config, weights, null, { backend: "reference" });

/** Seeded ids in [0, vocab). */
function ids(n: number, seed = 7): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) >>> 0;
    return (s >>> 8) % config.vocab_size;
  });
}

/** The spec, computed directly: each chunk's full logits, log-softmax, second half. */
function direct(m: Model, tokens: number[], ctx: number, chunks: number, bos: number | null) {
  const V = config.vocab_size, first = Math.floor(ctx / 2);
  let nll = 0, n = 0;
  for (let i = 0; i < chunks; i++) {
    const x = tokens.slice(i * ctx, (i + 1) * ctx);
    if (bos !== null) x[0] = bos;
    const logits = m.forwardAll(x, 0); // (ctx, vocab)
    for (let j = first; j < ctx - 1; j++) {
      const row = Array.from(logits.subarray(j * V, (j + 1) * V));
      const lse = Math.log(row.reduce((s, v) => s + Math.exp(v), 0));
      nll += lse - row[x[j + 1]];
      n++;
    }
  }
  return { ppl: Math.exp(nll / n), n };
}

/** A model that records the token rows and positions it is given. */
function spy(m: PerplexityModel, calls: { tokens: number[]; pos: number; all: boolean }[]) {
  return {
    config: m.config,
    tokenizer: m.tokenizer,
    kvCapacity: m.kvCapacity,
    forward(t: ArrayLike<number>, pos = 0) {
      calls.push({ tokens: Array.from(t), pos, all: false });
      return m.forward(t, pos);
    },
    forwardAll(t: ArrayLike<number>, pos = 0) {
      calls.push({ tokens: Array.from(t), pos, all: true });
      return m.forwardAll(t, pos);
    },
  };
}

Deno.test("perplexity() equals the direct computation: chunks of ctx, BOS first, second half scored", () => {
  const tokens = ids(150);
  const r = perplexity(model, tokens, { ctx: 32, bos: 5 });
  const d = direct(model, tokens, 32, 4, 5);
  assert.equal(r.chunks, 4); // floor(150 / 32); the 22 tokens left over are not used
  assert.equal(r.ctx, 32);
  assert.equal(r.tokensScored, d.n);
  assert.equal(r.tokensScored, 4 * (32 - 16 - 1));
  assert.ok(Math.abs(r.ppl - d.ppl) / d.ppl < 1e-9, `${r.ppl} vs ${d.ppl}`);
  assert.ok(Math.abs(Math.log(r.ppl) - r.nll) < 1e-12);
  // Negative controls: no BOS, or a different chunk length, give another value.
  assert.ok(Math.abs(direct(model, tokens, 32, 4, null).ppl - r.ppl) / r.ppl > 1e-6);
  assert.ok(Math.abs(direct(model, tokens, 30, 4, 5).ppl - r.ppl) / r.ppl > 1e-6);
  // An odd ctx: first = floor(ctx / 2) = 12, positions 13..24 scored.
  const odd = perplexity(model, tokens, { ctx: 25, bos: 5, chunks: 3 });
  assert.equal(odd.tokensScored, 3 * 12);
  assert.ok(Math.abs(odd.ppl - direct(model, tokens, 25, 3, 5).ppl) < 1e-9 * odd.ppl);
});

Deno.test("perplexity() runs each chunk from position 0 with BOS over its first token", () => {
  const tokens = ids(100);
  const calls: { tokens: number[]; pos: number; all: boolean }[] = [];
  perplexity(spy(model, calls), tokens, { ctx: 20, bos: 1, batch: 6 });
  // Each chunk: the first half [0, 10) in forward calls of <= 6 tokens (no logits kept),
  // then positions 10..18 in forwardAll calls of <= 6; position 19 never needs to run.
  const perChunk = [
    { pos: 0, n: 6, all: false },
    { pos: 6, n: 4, all: false },
    { pos: 10, n: 6, all: true },
    { pos: 16, n: 3, all: true },
  ];
  assert.equal(calls.length, 5 * perChunk.length);
  calls.forEach((c, k) => {
    const i = Math.floor(k / perChunk.length), want = perChunk[k % perChunk.length];
    assert.deepEqual([c.pos, c.tokens.length, c.all], [want.pos, want.n, want.all], `call ${k}`);
    const expected = tokens.slice(i * 20 + c.pos, i * 20 + c.pos + c.tokens.length);
    if (c.pos === 0) expected[0] = 1;
    assert.deepEqual(c.tokens, expected, `chunk ${i} at ${c.pos}`);
  });
  // bos: null leaves the first token as it is.
  calls.length = 0;
  perplexity(spy(model, calls), tokens, { ctx: 20, bos: null, chunks: 2 });
  assert.deepEqual(calls.filter((c) => c.pos === 0).map((c) => c.tokens[0]), [
    tokens[0],
    tokens[20],
  ]);
});

Deno.test("perplexity() takes BOS from a tokenizer that adds it, none otherwise", () => {
  const tok = byteTokenizer(); // BOS 256, adds BOS
  assert.ok(tok.addBos && tok.bosId === 256);
  const c = { ...config, vocab_size: 258 };
  const m = createModel(c, randomWeights(c, 1), tok, { backend: "reference" });
  const tokens = ids(60);
  const calls: { tokens: number[]; pos: number; all: boolean }[] = [];
  perplexity(spy(m, calls), tokens, { ctx: 30 });
  assert.deepEqual(calls.filter((c) => c.pos === 0).map((c) => c.tokens[0]), [256, 256]);
  calls.length = 0;
  perplexity(spy(model, calls), tokens, { ctx: 30 }); // no tokenizer: nothing replaced
  assert.deepEqual(calls.filter((c) => c.pos === 0).map((c) => c.tokens[0]), [
    tokens[0],
    tokens[30],
  ]);
});

Deno.test("perplexity() does not depend on the batch; chunks caps the run; onChunk reports each chunk", () => {
  const tokens = ids(200);
  const jit = createModel(config, weights, null, { backend: "jit" });
  const events: PerplexityProgress[] = [];
  const full = perplexity(jit, tokens, { ctx: 64, onChunk: (e) => events.push(e) });
  for (const batch of [1, 7, 63, 1000]) {
    const r = perplexity(jit, tokens, { ctx: 64, batch });
    assert.ok(Math.abs(r.ppl - full.ppl) / full.ppl < 1e-6, `batch ${batch}: ${r.ppl}`);
  }
  assert.equal(full.chunks, 3);
  assert.deepEqual(events.map((e) => [e.chunk, e.chunks, e.tokensScored]), [
    [1, 3, 31],
    [2, 3, 62],
    [3, 3, 93],
  ]);
  assert.equal(events[2].ppl, full.ppl);
  assert.ok(events.every((e, i) => i === 0 || e.elapsedMs >= events[i - 1].elapsedMs));
  const two = perplexity(jit, tokens, { ctx: 64, chunks: 2 });
  assert.equal(two.chunks, 2);
  assert.ok(Math.abs(two.ppl - events[1].ppl) / two.ppl < 1e-6);
  assert.equal(perplexity(jit, tokens, { ctx: 64, chunks: 99 }).chunks, 3);
  // The reference and the JIT agree.
  const ref = perplexity(model, tokens, { ctx: 64 });
  assert.ok(Math.abs(ref.ppl - full.ppl) / full.ppl < 1e-4);
});

Deno.test("perplexity() refuses a short text, a bad ctx, chunks, batch or bos with one line", () => {
  const tokens = ids(100);
  const fails = (options: Parameters<typeof perplexity>[2], re: RegExp, t = tokens, m = model) =>
    assert.throws(() => perplexity(m, t, options), (e: Error) => {
      assert.ok(e instanceof GollmError, String(e));
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  fails({ ctx: 64 }, /the text has 100 tokens; a context of 64 needs at least 128 \(2 x ctx\)/);
  fails({ ctx: 2 }, /ctx must be an integer in \[3, 64\] \(the model's context length\), got 2/);
  fails({ ctx: 65 }, /got 65/);
  fails({ ctx: 10.5 }, /got 10\.5/);
  const small = createModel(config, weights, null, { backend: "reference", kvCapacity: 16 });
  fails(
    { ctx: 32 },
    /ctx 32 exceeds the model's KV capacity 16; load it with kvCapacity >= 32/,
    tokens,
    small,
  );
  assert.equal(perplexity(small, tokens, { bos: null }).ctx, 16); // default: what the ring holds
  fails({ ctx: 16, chunks: 0 }, /chunks must be a positive integer, got 0/);
  fails({ ctx: 16, batch: -1 }, /batch must be a positive integer, got -1/);
  fails({ ctx: 16, bos: 96 }, /bos 96 is outside the vocabulary \[0, 96\)/);
  fails({ ctx: 16 }, /token id 96/, [...tokens.slice(0, 20), 96, ...tokens.slice(21, 40)]);
});
