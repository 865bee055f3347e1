/**
 * `n` > 1 (several choices per request) through `gollm serve`'s HTTP handler and the
 * official `openai` npm client, on the shipped default model: greedy choices equal the n = 1
 * reply, seeded choices equal n = 1 requests with seed + i, the prompt's blocks are held
 * once while the choices run, streams carry every choice (with logprobs and one usage
 * chunk), an aborted stream frees every block, and `n` over the slots is a 400 naming `n`.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startServer } from "./test_server.ts";

/** Polls until `cond` holds (at most `ms`). */
async function until(cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** 40 tokens with the default tokenizer: 2 full blocks of 16 and 8 in a third. */
const PROMPT = "Mr. Speaker, Mr. Vice President, members of Congress, distinguished guests, " +
  "and fellow citizens: tonight I report to you on the state of";

Deno.test("n = 3 at temperature 0: three choices equal the n = 1 reply; usage counts the prompt once", async () => {
  const s = await startServer({}, 4);
  try {
    const req = { model: "default", prompt: PROMPT, max_tokens: 24, temperature: 0 };
    const one = await s.client.completions.create(req);
    const three = await s.client.completions.create({ ...req, n: 3 });
    assert.deepEqual(three.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of three.choices) {
      assert.equal(c.text, one.choices[0].text);
      assert.equal(c.finish_reason, one.choices[0].finish_reason);
    }
    assert.equal(three.usage!.prompt_tokens, one.usage!.prompt_tokens);
    assert.equal(three.usage!.completion_tokens, 3 * one.usage!.completion_tokens);
    assert.equal(
      three.usage!.total_tokens,
      three.usage!.prompt_tokens + three.usage!.completion_tokens,
    );
    // Chat, with logprobs per choice.
    const msg = [{ role: "user" as const, content: "What is the state of the Union?" }];
    const chat1 = await s.client.chat.completions.create({
      model: "default",
      messages: msg,
      max_tokens: 16,
      temperature: 0,
    });
    const chat3 = await s.client.chat.completions.create({
      model: "default",
      messages: msg,
      max_tokens: 16,
      temperature: 0,
      n: 3,
      logprobs: true,
      top_logprobs: 2,
    });
    assert.deepEqual(chat3.choices.map((c) => c.index), [0, 1, 2]);
    for (const c of chat3.choices) {
      assert.equal(c.message.content, chat1.choices[0].message.content);
      const lp = c.logprobs!.content!;
      assert.equal(lp.length, chat1.usage!.completion_tokens);
      assert.ok(lp.every((t) => t.top_logprobs.length === 2));
    }
    assert.equal(chat3.usage!.completion_tokens, 3 * chat1.usage!.completion_tokens);
    assert.ok(s.logs.some((l) => /completions 200 \d+\+\d+ tokens.*\(n=3\)/.test(l)), s.logs[0]);
    // JSON mode: each choice has a constraint of its own, and each reply is a JSON object.
    const json = await s.client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: "Describe the Union as JSON." }],
      max_tokens: 120,
      temperature: 1,
      seed: 2,
      n: 2,
      response_format: { type: "json_object" },
    });
    for (const c of json.choices) {
      if (c.finish_reason === "stop") assert.equal(typeof JSON.parse(c.message.content!), "object");
      else assert.match(c.message.content!, /^\s*\{/);
    }
  } finally {
    await s.close();
  }
});

Deno.test("n = 4 with a seed: choice i equals an n = 1 request with seed + i; the prompt's blocks are held once", async () => {
  const s = await startServer({}, 4);
  try {
    const req = {
      model: "default",
      prompt: PROMPT,
      max_tokens: 24,
      temperature: 1,
      seed: 777,
      ignore_eos: true,
    };
    const want: string[] = [];
    for (let i = 0; i < 4; i++) {
      want.push((await s.client.completions.create({ ...req, seed: 777 + i })).choices[0].text);
    }
    assert.equal(new Set(want).size, 4, "four seeds, four texts");
    // While the 4 choices run, the pool holds the 2 full prompt blocks once and each
    // choice's own blocks: at most 2 + 4 · 2 blocks (40 + 24 tokens: 4 blocks each), where
    // 4 separate copies would hold 4 · 4.
    const st = () => s.server.scheduler.stats;
    s.server.scheduler.blocks.resetPrefixCache();
    assert.equal(st().freeBlocks, st().usableBlocks);
    let peak = 0, sampling = true;
    const watch = (async () => {
      while (sampling) {
        peak = Math.max(peak, st().usableBlocks - st().freeBlocks);
        await new Promise((r) => setTimeout(r, 0));
      }
    })();
    const forked = st().forkedChoices;
    const four = await s.client.completions.create({ ...req, n: 4 });
    sampling = false;
    await watch;
    assert.deepEqual(four.choices.map((c) => c.text), want);
    assert.equal(st().forkedChoices - forked, 3);
    assert.ok(peak > 4 && peak <= 2 + 4 * 2, `${peak} blocks in use at the peak`);
    await until(() => st().running === 0);
    assert.equal(st().freeBlocks, st().usableBlocks);
  } finally {
    await s.close();
  }
});

Deno.test("streaming n = 2 through the openai client: two whole texts, logprobs per choice, one usage chunk", async () => {
  const s = await startServer({}, 4);
  try {
    const messages = [{ role: "user" as const, content: "Tell me about the economy." }];
    const base = { model: "default", messages, max_tokens: 20, temperature: 0.9, seed: 5 };
    const whole = await s.client.chat.completions.create({ ...base, n: 2 });
    const texts = ["", ""], roles = ["", ""];
    const finish: (string | null)[] = [null, null];
    const usages: OpenAI.CompletionUsage[] = [];
    const stream = await s.client.chat.completions.create({
      ...base,
      n: 2,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      if (chunk.usage) {
        usages.push(chunk.usage);
        assert.equal(chunk.choices.length, 0);
      }
      for (const c of chunk.choices) {
        texts[c.index] += c.delta.content ?? "";
        roles[c.index] ||= c.delta.role ?? "";
        finish[c.index] = c.finish_reason ?? finish[c.index];
      }
    }
    assert.deepEqual(texts, whole.choices.map((c) => c.message.content));
    assert.notEqual(texts[0], texts[1]);
    assert.deepEqual(roles, ["assistant", "assistant"]);
    assert.deepEqual(finish, whole.choices.map((c) => c.finish_reason));
    assert.equal(usages.length, 1);
    assert.deepEqual(usages[0].completion_tokens, whole.usage!.completion_tokens);
    // Completions: per-choice logprobs whose tokens spell each choice's text.
    const parts = [[] as string[], [] as string[]], ctexts = ["", ""];
    const cs = await s.client.completions.create({
      model: "default",
      prompt: PROMPT,
      max_tokens: 16,
      temperature: 1,
      seed: 3,
      n: 2,
      logprobs: 1,
      stream: true,
    });
    for await (const chunk of cs) {
      for (const c of chunk.choices) {
        ctexts[c.index] += c.text;
        parts[c.index].push(...(c.logprobs?.tokens ?? []));
      }
    }
    const cwhole = await s.client.completions.create({
      model: "default",
      prompt: PROMPT,
      max_tokens: 16,
      temperature: 1,
      seed: 3,
      n: 2,
    });
    assert.deepEqual(ctexts, cwhole.choices.map((c) => c.text));
    for (let i = 0; i < 2; i++) {
      if (cwhole.choices[i].finish_reason === "length") assert.equal(parts[i].join(""), ctexts[i]);
    }
  } finally {
    await s.close();
  }
});

Deno.test("an aborted n = 3 stream frees every choice's blocks; n over the slots is a 400 naming 'n'", async () => {
  const s = await startServer({}, 4);
  try {
    const st = () => s.server.scheduler.stats;
    const ctl = new AbortController();
    const stream = await s.client.completions.create({
      model: "default",
      prompt: PROMPT,
      max_tokens: 200,
      ignore_eos: true,
      n: 3,
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming, { signal: ctl.signal });
    const seen = new Set<number>();
    try {
      for await (const chunk of stream) {
        for (const c of chunk.choices) seen.add(c.index);
        if (seen.size === 3) ctl.abort();
      }
    } catch (e) {
      assert.ok(e instanceof Error && /abort/i.test(e.name + e.message), String(e));
    }
    assert.equal(seen.size, 3);
    await until(() => st().running === 0 && st().waiting === 0);
    assert.equal(st().freeBlocks, st().usableBlocks);
    assert.ok(st().sampledTokens < 3 * 150, `${st().sampledTokens} tokens sampled`);
    await until(() => s.logs.some((l) => l.includes("(client disconnected)")));

    // Over the 4 slots: 400 naming n, through fetch and through the client.
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "default", prompt: "We", max_tokens: 4, n: 5 }),
    });
    const body = await res.json();
    assert.equal(res.status, 400);
    assert.equal(body.error.param, "n");
    assert.match(body.error.message, /'n' must be at most 4 .*got 5/);
    await assert.rejects(
      s.client.chat.completions.create({
        model: "default",
        messages: [{ role: "user", content: "Hi" }],
        n: 129,
      }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === "n",
    );
    // Still serving, with n at the limit.
    const ok = await s.client.completions.create({
      model: "default",
      prompt: "We",
      max_tokens: 4,
      n: 4,
    });
    assert.equal(ok.choices.length, 4);
    await until(() => st().running === 0);
    assert.equal(st().freeBlocks, st().usableBlocks);
  } finally {
    await s.close();
  }
});
