/**
 * Several choices per request (`Scheduler.submitGroup`, server/choices.ts) on the shipped
 * default model: greedy choices equal one greedy run, seeded choices equal separate runs
 * with the derived seeds, the prompt's blocks are held once (reference counts) and every
 * block returns after completion and after a cancel, a short pool queues a child as a
 * plain request, and speculative decoding (n-gram, draft model) drafts for the choices.
 */
import assert from "node:assert/strict";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { type BatchModelOptions, createBatchModel } from "../runtime/batch_model.ts";
import { ROOT } from "../tests/assets.ts";
import { Scheduler, type SchedulerOptions } from "./scheduler.ts";
import type { GenerationHandle, GenerationRequest } from "./sequence.ts";
import { draftModelProposers, NgramProposer } from "./speculative.ts";
import { randomWeights } from "../core/weights.ts";

let ckpt: Checkpoint | null = null;
async function scheduler(
  layout: BatchModelOptions,
  options: SchedulerOptions = {},
): Promise<Scheduler> {
  const c = ckpt ??= await loadCheckpoint(`${ROOT}models/default`);
  const m = createBatchModel(c.config, c.weights, c.tokenizer, layout);
  return new Scheduler(m.batch, c.tokenizer!, m.eosIds, { ctxSize: m.ctxSize, ...options });
}

async function collect(h: GenerationHandle) {
  let text = "";
  const ids: number[] = [];
  for await (const c of h) {
    text += c.text;
    ids.push(...c.tokens.map((t) => t.id));
  }
  return { text, ids, result: await h.result };
}

/** 40 tokens with the default tokenizer: 2 full blocks of 16 and 8 in a third. */
const PROMPT = "Mr. Speaker, Mr. Vice President, members of Congress, distinguished guests, " +
  "and fellow citizens: tonight I report to you on the state of";

async function prompt(): Promise<number[]> {
  ckpt ??= await loadCheckpoint(`${ROOT}models/default`);
  const ids = ckpt.tokenizer!.encode(PROMPT);
  assert.ok(ids.length > 32 && ids.length % 16 !== 0, `${ids.length} prompt tokens`);
  return ids;
}

/** Polls until `cond` holds (at most `ms`). */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 1));
  }
}

Deno.test("submitGroup(): 3 greedy choices equal one greedy run; the prompt's full blocks are held once", async () => {
  const ids = await prompt();
  const s = await scheduler({ parallel: 4, ctxSize: 128 });
  const req: GenerationRequest = {
    prompt: ids,
    maxTokens: 40,
    ignoreEos: true,
    sampling: { temperature: 0 },
  };
  const one = await collect(s.submit(req));
  s.blocks.resetPrefixCache(); // the choices prefill the prompt themselves
  const free0 = s.stats.freeBlocks;
  assert.equal(free0, s.stats.usableBlocks);
  const handles = s.submitGroup([req, req, req]);
  const outs = Promise.all(handles.map(collect));
  // Once every choice holds blocks (the children were forked): the 2 full prompt blocks
  // are in all 3 tables with 3 owners; each choice has its own blocks past them.
  await until(() => handles.every((h) => s.blocks.table(h.id).length > 0));
  const tables = handles.map((h) => [...s.blocks.table(h.id)]);
  const shared = tables[0].slice(0, 2);
  for (const t of tables) assert.deepEqual(t.slice(0, 2), shared);
  for (const b of shared) assert.equal(s.blocks.refCount(b), 3);
  const own = tables.flatMap((t) => t.slice(2));
  assert.equal(new Set(own).size, own.length, "blocks past the shared prompt are not shared");
  for (const b of own) assert.equal(s.blocks.refCount(b), 1);
  assert.equal(free0 - s.stats.freeBlocks, 2 + own.length, "blocks in use");
  const got = await outs;
  for (const o of got) {
    assert.deepEqual(o.ids, one.ids);
    assert.equal(o.text, one.text);
    assert.equal(o.result.completionTokens, 40);
    assert.equal(o.result.promptTokens, ids.length);
  }
  assert.equal(s.stats.forkedChoices, 2);
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
  assert.equal(s.stats.running, 0);
});

Deno.test("submitGroup(): seeded choices equal separate requests with seed + i, under load", async () => {
  const ids = await prompt();
  const seed = 4321;
  const req = (i: number): GenerationRequest => ({
    prompt: ids,
    maxTokens: 32,
    ignoreEos: true,
    sampling: { temperature: 1, topP: 0.95, frequencyPenalty: 0.2, seed: seed + i },
  });
  const alone = await scheduler({ parallel: 1, ctxSize: 128 });
  const want: string[] = [];
  for (let i = 0; i < 4; i++) want.push((await collect(alone.submit(req(i)))).text);
  assert.equal(new Set(want).size, 4, "4 seeds, 4 texts");
  // The group, with other requests around it, on a server without prefix caching.
  const s = await scheduler({ parallel: 6, ctxSize: 128, batchSize: 16 }, {
    prefixCaching: false,
  });
  const other = (p: string, n: number) =>
    collect(s.submit({
      prompt: ckpt!.tokenizer!.encode(p),
      maxTokens: n,
      sampling: { temperature: 1, seed: n },
    }));
  const others = [other("Once upon a time", 30)];
  const group = Promise.all(s.submitGroup([0, 1, 2, 3].map(req)).map(collect));
  others.push(other("We the people", 12));
  const got = (await group).map((o) => o.text);
  await Promise.all(others);
  assert.deepEqual(got, want);
  // Negative control: one seed for every choice gives one text four times, not `want`.
  const same = await Promise.all(s.submitGroup([0, 0, 0, 0].map(req)).map(collect));
  assert.deepEqual(same.map((o) => o.text), [want[0], want[0], want[0], want[0]]);
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});

Deno.test("submitGroup(): a cancel stops every choice and frees every block, before and after the fork", async () => {
  const ids = await prompt();
  const s = await scheduler({ parallel: 3, ctxSize: 128 });
  const ask = (signal: AbortSignal): GenerationRequest => ({
    prompt: ids,
    maxTokens: 80,
    ignoreEos: true,
    sampling: { temperature: 0.8, seed: 1 },
    signal,
  });
  // After the fork: cancel once every choice streamed something.
  const ctl = new AbortController();
  const handles = s.submitGroup([ask(ctl.signal), ask(ctl.signal), ask(ctl.signal)]);
  const outs = Promise.all(handles.map(collect));
  await until(() => handles.every((h) => s.blocks.table(h.id).length > 0));
  assert.ok(s.stats.freeBlocks < s.stats.usableBlocks);
  ctl.abort();
  for (const o of await outs) {
    assert.equal(o.result.finishReason, "abort");
    assert.ok(o.result.completionTokens < 80);
  }
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
  // Before the fork: the group waits behind a request holding a slot, then is cancelled.
  const busy = s.submit({ ...ask(new AbortController().signal), maxTokens: 30 });
  const ctl2 = new AbortController();
  const waiting = s.submitGroup([ask(ctl2.signal), ask(ctl2.signal), ask(ctl2.signal)]);
  const wOuts = Promise.all(waiting.map(collect));
  await until(() => s.stats.running === 1 && s.stats.waiting === 1);
  ctl2.abort();
  for (const o of await wOuts) {
    assert.equal(o.result.finishReason, "abort");
    assert.equal(o.result.completionTokens, 0);
  }
  assert.equal((await collect(busy)).result.completionTokens, 30);
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});

Deno.test("submitGroup(): a cancel during choice 0's prefill returns the slots held for the others", async () => {
  const ids = await prompt();
  const long = [...ids, ...ids, ...ids, ...ids, ...ids]; // 200 tokens: 67 prefill steps of 3
  const s = await scheduler({ parallel: 3, ctxSize: 256, batchSize: 3 });
  const ask = (signal?: AbortSignal): GenerationRequest => ({
    prompt: long,
    maxTokens: 4,
    sampling: { temperature: 0 },
    signal,
  });
  const ctl = new AbortController();
  const handles = s.submitGroup([ask(ctl.signal), ask(ctl.signal), ask(ctl.signal)]);
  const outs = Promise.all(handles.map(collect));
  await until(() => s.stats.running === 1);
  ctl.abort();
  for (const o of await outs) assert.equal(o.result.finishReason, "abort");
  assert.equal(s.stats.forkedChoices, 0, "cancelled before the fork");
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
  // All 3 slots are free again: a group of 3 is admitted and finishes.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, no) =>
    timer = setTimeout(() => no(new Error("stuck")), 1e4)
  );
  const group = Promise.all(s.submitGroup([ask(), ask(), ask()]).map(collect));
  const again = await Promise.race([group, stuck]).finally(() => clearTimeout(timer));
  assert.equal(again.length, 3);
  assert.equal(s.stats.forkedChoices, 2);
});

Deno.test("submitGroup(): a pool short at the fork queues the child as a plain request; same text", async () => {
  const ids = await prompt(); // 40 tokens: 3 blocks, the whole pool
  const req: GenerationRequest = {
    prompt: ids,
    maxTokens: 8,
    ignoreEos: true,
    sampling: { temperature: 0 },
  };
  const s = await scheduler({ parallel: 2, ctxSize: 48, kvBlocks: 3 });
  const one = await collect(s.submit(req));
  const outs = await Promise.all(s.submitGroup([req, req]).map(collect));
  for (const o of outs) assert.deepEqual(o.ids, one.ids);
  assert.equal(s.stats.forkedChoices, 0, "the child was queued, not forked");
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});

Deno.test("submitGroup(): refuses more choices than slots and prompts that differ", async () => {
  const s = await scheduler({ parallel: 2, ctxSize: 64 });
  const req = { prompt: [1, 2, 3], maxTokens: 4, sampling: { temperature: 0 } };
  assert.throws(() => s.submitGroup([req, req, req]), /must number 1 to 2 .* got 3/);
  assert.throws(() => s.submitGroup([]), /got 0/);
  assert.throws(() => s.submitGroup([req, { ...req, prompt: [1, 2, 4] }]), /choice 1 differs/);
  const ok = await Promise.all(s.submitGroup([req, req]).map(collect));
  assert.equal(ok.length, 2);
});

Deno.test("submitGroup() with speculative decoding: greedy choices are drafted for and equal plain decoding", async () => {
  const ids = await prompt();
  const req: GenerationRequest = {
    prompt: ids,
    maxTokens: 40,
    ignoreEos: true,
    sampling: { temperature: 0 },
  };
  const plain = await collect((await scheduler({ parallel: 1, ctxSize: 128 })).submit(req));
  const s = await scheduler({ parallel: 3, ctxSize: 128 }, {
    speculative: { proposers: new NgramProposer(1, 3), maxDraft: 4 },
  });
  const outs = await Promise.all(s.submitGroup([req, req, req]).map(collect));
  for (const o of outs) assert.deepEqual(o.ids, plain.ids);
  assert.ok(s.stats.draftedTokens > 0, "nothing was drafted");
  assert.equal(s.stats.forkedChoices, 2);
});

Deno.test("submitGroup() with a draft model: sampled choices equal separate requests with the same seeds", async () => {
  const ids = await prompt();
  const c = ckpt!;
  // A 1-layer model on the default model's vocabulary: a poor but valid draft.
  const small = { ...c.config, dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 2, head_dim: 16 };
  small.hidden_dim = 64;
  const draft = { config: small, weights: randomWeights(small, 5), path: "random draft" };
  const spec = () => ({ proposers: draftModelProposers(c.config, draft, 3, 128), maxDraft: 2 });
  const req = (seed: number): GenerationRequest => ({
    prompt: ids,
    maxTokens: 24,
    ignoreEos: true,
    sampling: { temperature: 0.8, seed },
  });
  const alone = await scheduler({ parallel: 3, ctxSize: 128 }, { speculative: spec() });
  const want: string[] = [];
  for (const seed of [11, 12, 13]) want.push((await collect(alone.submit(req(seed)))).text);
  const s = await scheduler({ parallel: 3, ctxSize: 128 }, { speculative: spec() });
  const outs = await Promise.all(s.submitGroup([req(11), req(12), req(13)]).map(collect));
  assert.deepEqual(outs.map((o) => o.text), want);
  assert.ok(s.stats.draftedTokens > 0 && s.stats.acceptedTokens > 0, "no draft was verified");
  assert.equal(s.stats.forkedChoices, 2);
  await s.idle();
  assert.equal(s.stats.freeBlocks, s.stats.usableBlocks);
});
