/**
 * The continuous-batching scheduler on the shipped default model: batched greedy ids equal
 * the plain-loop reference run alone, a prefix-cache hit gives the reference's logprobs,
 * seeded sampling gives the same text under load and after preemption, cancelled and
 * finished sequences return every block, stop strings cut text and tokens.
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { type BatchModelOptions, createBatchModel } from "../runtime/batch_model.ts";
import { createReference } from "../runtime/reference.ts";
import { assertClose } from "../tests/assert_close.ts";
import { ROOT } from "../tests/assets.ts";
import { greedy } from "../tests/greedy_decode.ts";
import { QueueFullError, Scheduler, type SchedulerOptions } from "./scheduler.ts";
import type { GeneratedToken, GenerationHandle, GenerationRequest } from "./sequence.ts";

let ckpt: Checkpoint | null = null;
async function checkpoint(): Promise<Checkpoint> {
  return ckpt ??= await loadCheckpoint(`${ROOT}models/default`);
}

async function scheduler(
  layout: BatchModelOptions,
  options: SchedulerOptions = {},
): Promise<Scheduler> {
  const c = await checkpoint();
  const m = createBatchModel(c.config, c.weights, c.tokenizer, layout);
  return new Scheduler(m.batch, c.tokenizer!, m.eosIds, { ctxSize: m.ctxSize, ...options });
}

/** Reads a handle to the end: text, tokens, result. */
async function collect(h: GenerationHandle) {
  let text = "";
  const tokens: GeneratedToken[] = [];
  for await (const c of h) {
    text += c.text;
    tokens.push(...c.tokens);
  }
  return { text, tokens, result: await h.result };
}

const PROMPTS = [
  "Once upon a time",
  "The people of the United States",
  "We",
  "In the year of our Lord one thousand eight hundred and",
  "Congress shall",
  "Our economy is growing, and",
  "Mr. Speaker, Mr. Vice President, members of Congress, distinguished guests",
  "Tonight",
];

Deno.test("Scheduler decodes 8 different prompts in one batch with the greedy ids of each alone", async () => {
  const c = await checkpoint();
  const tok = c.tokenizer!;
  const s = await scheduler({ parallel: 8, ctxSize: 128, batchSize: 16 });
  const prompts = PROMPTS.map((p) => tok.encode(p));
  const n = 20;
  const outs = await Promise.all(
    prompts.map((prompt) =>
      collect(s.submit({ prompt, maxTokens: n, ignoreEos: true, sampling: { temperature: 0 } }))
    ),
  );
  // Batching happened: steps ran rows of several sequences, prompts were chunked.
  const st = s.stats;
  assert.ok(st.rows / st.steps > 4, `${st.rows} rows in ${st.steps} steps`);
  const ref = createReference(c.config, c.weights, { kvCapacity: 128 });
  prompts.forEach((prompt, i) => {
    const want = greedy(ref, prompt, n);
    assert.deepEqual(outs[i].tokens.map((t) => t.id), want, `prompt ${i}: ${PROMPTS[i]}`);
    assert.equal(outs[i].text, tok.decode(want).replace(/^ /, tok.stripLeadingSpace ? "" : " "));
  });
  // Negative control: the reference of another prompt gives other ids.
  assert.notDeepEqual(outs[0].tokens.map((t) => t.id), greedy(ref, prompts[1], n));
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});

/** log softmax of logits, as a map id -> logprob for the given ids. */
function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let z = 0;
  for (const x of logits) z += Math.exp(x - max);
  return Float64Array.from(logits, (x) => x - max - Math.log(z));
}

Deno.test("Scheduler: a prefix-cache hit gives the logprobs of a cold prefill and is counted", async () => {
  const c = await checkpoint();
  const tok = c.tokenizer!;
  const s = await scheduler({ parallel: 4, ctxSize: 128, batchSize: 16 });
  const system = "Mr. Speaker, Mr. Vice President, members of Congress, distinguished guests, " +
    "and fellow citizens: tonight I report to you on the state of the Union";
  const a = tok.encode(`${system}. Our economy`);
  const b = tok.encode(`${system}, and on the work`);
  const shared = a.findIndex((t, i) => t !== b[i]);
  assert.ok(shared >= 32, `the prompts share ${shared} tokens`);
  const ask = (prompt: number[]): GenerationRequest => ({
    prompt,
    maxTokens: 1,
    logprobs: 20,
    sampling: { temperature: 0 },
  });
  const cold = await collect(s.submit(ask(a)));
  assert.equal(cold.result.cachedTokens, 0);
  const warm = await collect(s.submit(ask(a)));
  const other = await collect(s.submit(ask(b)));
  const blocks = (n: number) => Math.floor(n / 16) * 16;
  assert.equal(warm.result.cachedTokens, blocks(a.length - 1));
  assert.equal(other.result.cachedTokens, blocks(shared));
  assert.equal(
    s.stats.prefixCache.hitTokens,
    warm.result.cachedTokens + other.result.cachedTokens,
  );
  // Logprobs against the plain-loop reference of each whole prompt.
  const ref = (p: number[]) =>
    logSoftmax(createReference(c.config, c.weights, { kvCapacity: 128 }).forward(p, 0));
  const check = (got: GeneratedToken, want: Float64Array, what: string) => {
    const top = got.top!;
    assert.equal(top.length, 20);
    assertClose(top.map((t) => t.logprob), top.map((t) => want[t.id]), 1e-4, what);
    const best = [...want.keys()].sort((x, y) => want[y] - want[x]).slice(0, 20);
    assert.deepEqual(top.map((t) => t.id), best, `${what}: the 20 most likely ids`);
  };
  const refA = ref(a);
  check(cold.tokens[0], refA, "cold prefill");
  check(warm.tokens[0], refA, "prefix-cache hit, same prompt");
  check(other.tokens[0], ref(b), "prefix-cache hit, shared system prompt");
  assertClose(
    warm.tokens[0].top!.map((t) => t.logprob),
    cold.tokens[0].top!.map((t) => t.logprob),
    1e-5,
    "hit vs cold",
  );
  // Negative control: the other prompt's logprobs are not the first one's.
  assert.throws(() => check(other.tokens[0], refA, "b against a"));
});

Deno.test("Scheduler: the same seed gives the same text alone, under load and after preemption", async () => {
  const c = await checkpoint();
  const tok = c.tokenizer!;
  const sampling = {
    temperature: 0.9,
    topP: 0.95,
    topK: 50,
    frequencyPenalty: 0.3,
    presencePenalty: 0.2,
    seed: 1234,
  };
  const req = (seed = 1234): GenerationRequest => ({
    prompt: tok.encode(PROMPTS[3]),
    maxTokens: 48,
    ignoreEos: true,
    sampling: { ...sampling, seed },
  });
  const alone = await collect((await scheduler({ parallel: 1, ctxSize: 128 })).submit(req()));
  assert.equal(alone.result.completionTokens, 48);

  // Under load: 7 other requests, submitted before and after it at different times.
  const s = await scheduler({ parallel: 8, ctxSize: 128, batchSize: 24 });
  const others: Promise<unknown>[] = [];
  const other = (i: number) =>
    others.push(collect(s.submit({
      prompt: tok.encode(PROMPTS[i]),
      maxTokens: 10 + 7 * i,
      sampling: { temperature: 1, seed: i },
    })));
  for (let i = 0; i < 4; i++) other(i);
  await new Promise((r) => setTimeout(r, 30));
  const loaded = collect(s.submit(req()));
  for (let i = 4; i < 7; i++) {
    await new Promise((r) => setTimeout(r, 10));
    other(i);
  }
  assert.equal((await loaded).text, alone.text);
  await Promise.all(others);

  // Preemption: a pool of 12 blocks for 4 sequences of 60+ tokens (4 blocks each).
  const small = await scheduler({ parallel: 4, ctxSize: 128, kvBlocks: 12 });
  const runs = await Promise.all(
    [req(), req(7), req(), req(8)].map((r) => collect(small.submit(r))),
  );
  assert.ok(small.stats.preemptions > 0, "no preemption happened");
  assert.equal(runs[0].text, alone.text);
  assert.equal(runs[2].text, alone.text);
  assert.equal(small.stats.freeBlocks, small.stats.usableBlocks);
  // Negative control: another seed gives another text.
  assert.notEqual(runs[1].text, alone.text);
});

Deno.test("Scheduler frees the blocks of a cancelled sequence at the next step", async () => {
  const c = await checkpoint();
  const s = await scheduler({ parallel: 2, ctxSize: 128 });
  const ctl = new AbortController();
  const h = s.submit({
    prompt: c.tokenizer!.encode(PROMPTS[1]),
    maxTokens: 100,
    ignoreEos: true,
    sampling: { temperature: 0 },
    signal: ctl.signal,
  });
  let chunks = 0;
  for await (const _ of h) {
    if (++chunks === 3) {
      assert.ok(s.stats.freeBlocks < s.stats.usableBlocks);
      ctl.abort();
    }
  }
  const r = await h.result;
  assert.equal(r.finishReason, "abort");
  assert.ok(r.completionTokens < 100);
  await s.idle();
  assert.equal(s.stats.running, 0);
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});

Deno.test("Scheduler cuts text and tokens at a stop string; finishes on EOS with 'stop'", async () => {
  const c = await checkpoint();
  const tok = c.tokenizer!;
  const s = await scheduler({ parallel: 2, ctxSize: 128 });
  const prompt = tok.encode(PROMPTS[5]);
  const base = { prompt, maxTokens: 40, ignoreEos: true, sampling: { temperature: 0 } };
  const full = await collect(s.submit(base));
  const stop = full.text.slice(12, 17);
  const cut = await collect(s.submit({ ...base, stop: ["never appears", stop] }));
  const at = full.text.indexOf(stop);
  assert.equal(cut.text, full.text.slice(0, at));
  assert.equal(cut.result.finishReason, "stop");
  // The tokens returned decode to the text returned (up to a token the cut splits).
  const ids = cut.tokens.map((t) => t.id);
  assert.ok(full.text.slice(0, at).startsWith(tok.decode(ids)));
  assert.deepEqual(ids, full.tokens.slice(0, ids.length).map((t) => t.id));
  // EOS: a greedy run that stops by itself reports 'stop' with fewer than maxTokens.
  const eos = await collect(s.submit({ prompt, maxTokens: 120, sampling: { temperature: 0 } }));
  if (eos.result.completionTokens < 120) assert.equal(eos.result.finishReason, "stop");
  else assert.equal(eos.result.finishReason, "length");
});

Deno.test("Scheduler.submit() refuses a full queue and requests over the context", async () => {
  const s = await scheduler({ parallel: 1, ctxSize: 64 }, { maxQueue: 1 });
  const req = { prompt: [1, 2, 3], maxTokens: 4, sampling: { temperature: 0 } };
  const a = s.submit(req);
  assert.throws(() => s.submit(req), QueueFullError);
  assert.throws(() => s.submit({ ...req, maxTokens: 62 }), /exceed the context of 64 tokens/);
  assert.throws(() => s.submit({ ...req, prompt: [1, 99999] }), /prompt\[1\] = 99999/);
  assert.throws(() => s.submit({ ...req, maxTokens: 0 }), GollmError);
  await a.result;
  await s.close();
  assert.throws(() => s.submit(req), /shut down/);
});
