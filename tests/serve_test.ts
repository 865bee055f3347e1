/**
 * `gollm serve` end to end on 127.0.0.1 with the shipped default model: the official
 * `openai` npm client (chat and completions, streaming and not, logprobs, logit_bias), greedy text equal
 * to `gollm generate --temperature 0` (with the f32 and with the f16 KV cache), 32 concurrent
 * streams, an aborted stream returning its
 * blocks, malformed requests answered with the right 4xx while the server keeps serving,
 * the same seed under load, and the CLI's listening line and graceful SIGTERM.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { kvBlockBytes } from "../core/forward.ts";
import { ROOT } from "./assets.ts";
import { defaultCheckpoint, MODEL, startServer } from "./test_server.ts";
import { JsonRecognizer } from "../runtime/json_constraint.ts";

/** Runs `gollm generate --temperature 0 --json [extra]` on a prompt. */
async function gollmGenerate(
  prompt: string,
  n: number,
  stop: string[] = [],
  extra: string[] = [],
): Promise<string> {
  const args = [
    "run",
    "-A",
    `${ROOT}cli/main.ts`,
    "generate",
    MODEL,
    "--prompt",
    prompt,
    "-n",
    `${n}`,
  ];
  args.push("--temperature", "0", "--json", ...stop.flatMap((s) => ["--stop", s]), ...extra);
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)).text;
}

/** `gollm generate --temperature 0 --json [extra]`: the generated token ids and text. */
async function gollmTokens(
  prompt: string,
  n: number,
  extra: string[] = [],
): Promise<{ tokens: number[]; text: string }> {
  const args = ["run", "-A", `${ROOT}cli/main.ts`, "generate", MODEL, "--prompt", prompt];
  args.push("-n", `${n}`, "--temperature", "0", "--json", ...extra);
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Polls until `cond` holds (at most `ms`). */
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("openai client: completions and chat, streaming and not, equal gollm generate --temperature 0", async () => {
  const s = await startServer();
  try {
    const prompt = "The state of the Union is";
    const want = await gollmGenerate(prompt, 24);
    const c = await s.client.completions.create({
      model: "default",
      prompt,
      max_tokens: 24,
      temperature: 0,
    });
    assert.equal(c.object, "text_completion");
    assert.equal(c.choices[0].text, want);
    assert.equal(c.usage?.completion_tokens, 24);
    assert.equal(c.choices[0].finish_reason, "length");
    // Streamed: the same text in pieces.
    let streamed = "", finish: string | null = null;
    const stream = await s.client.completions.create({
      model: "default",
      prompt,
      max_tokens: 24,
      temperature: 0,
      stream: true,
    });
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(streamed, want);
    assert.equal(finish, "length");

    // Chat: the plain User/Assistant format (the default model has no template).
    const question = "What is the state of the economy?";
    const wantChat = await gollmGenerate(`User: ${question}\n\nAssistant:`, 20, [
      "\nUser:",
      "\nSystem:",
    ]);
    const chat = await s.client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: question }],
      max_completion_tokens: 20,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const msg = chat.choices[0];
    assert.equal(msg.message.role, "assistant");
    assert.equal(msg.message.content, wantChat);
    const lp = msg.logprobs!.content!;
    assert.equal(lp.length, chat.usage!.completion_tokens);
    assert.ok(lp.every((t) => t.top_logprobs.length === 3 && t.logprob <= 0));
    assert.ok(lp.every((t) => t.top_logprobs[0].logprob >= t.logprob - 1e-6)); // greedy: the top
    if (msg.finish_reason === "length") assert.equal(lp.map((t) => t.token).join(""), wantChat);
    // Chat streamed with usage.
    let text = "", role = "", usage: OpenAI.CompletionUsage | null | undefined = null;
    const cs = await s.client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: question }],
      max_tokens: 20,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of cs) {
      role ||= chunk.choices[0]?.delta.role ?? "";
      text += chunk.choices[0]?.delta.content ?? "";
      usage = chunk.usage ?? usage;
    }
    assert.equal(role, "assistant");
    assert.equal(text, wantChat);
    assert.equal(usage?.completion_tokens, chat.usage!.completion_tokens);
    assert.ok(usage!.prompt_tokens > 5);
    // The same long prompt again: its full blocks come from the prefix cache.
    const long = "Mr. Speaker, Mr. Vice President, members of Congress, distinguished guests " +
      "and fellow citizens: the state of our Union is";
    const first = await s.client.completions.create({
      model: "default",
      prompt: long,
      max_tokens: 2,
    });
    const again = await s.client.completions.create({
      model: "default",
      prompt: long,
      max_tokens: 2,
    });
    assert.equal(first.usage?.prompt_tokens_details?.cached_tokens, 0);
    assert.ok(
      again.usage!.prompt_tokens_details!.cached_tokens! >= 16,
      JSON.stringify(again.usage),
    );
    assert.ok(
      s.server.scheduler.stats.prefixCache.hitTokens >=
        again.usage!.prompt_tokens_details!.cached_tokens!,
    );
    const models = await s.client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), ["default"]);
    // One log line per request with method, path, status, tokens and time.
    assert.ok(
      s.logs.some((l) => /POST \/v1\/completions 200 \d+\+24 tokens \d+ ms$/.test(l)),
      s.logs.join("\n"),
    );
  } finally {
    await s.close();
  }
});

Deno.test("openai client on an f16 KV cache equals gollm generate --cache-type-k/-v f16", async () => {
  const f16 = { cacheTypeK: "f16", cacheTypeV: "f16" } as const;
  const s = await startServer({}, 4, f16);
  try {
    const prompt = "The state of the Union is";
    const want = await gollmGenerate(prompt, 24, [], [
      "--cache-type-k",
      "f16",
      "--cache-type-v",
      "f16",
    ]);
    const c = await s.client.completions.create({
      model: "default",
      prompt,
      max_tokens: 24,
      temperature: 0,
    });
    assert.equal(c.choices[0].text, want);
    assert.equal(
      s.blockBytes,
      kvBlockBytes((await defaultCheckpoint()).config, 16, f16),
      "the pool is f16",
    );
  } finally {
    await s.close();
  }
});

Deno.test("logit_bias through the openai client bans and forces tokens as gollm generate --logit-bias", async () => {
  const s = await startServer();
  try {
    const prompt = "Once upon a time";
    const plain = await gollmTokens(prompt, 8);
    const complete = async (bias: Record<string, number>, max = 8) =>
      (await s.client.completions.create({
        model: "default",
        prompt,
        max_tokens: max,
        temperature: 0,
        logit_bias: bias,
      })).choices[0].text;
    // Ban the greedy first token: another one comes first, in the server and the CLI alike.
    const first = plain.tokens[0];
    const banned = await gollmTokens(prompt, 8, ["--logit-bias", `${first}-100`]);
    assert.notEqual(banned.tokens[0], first);
    assert.equal(await complete({ [first]: -100 }), banned.text);
    assert.notEqual(banned.text, plain.text); // negative control: the bias changed the text
    // Force a token: it is every token generated.
    const forced = plain.tokens[3];
    const cli = await gollmTokens(prompt, 4, ["--logit-bias", `${forced}+100`]);
    assert.deepEqual(cli.tokens, [forced, forced, forced, forced]);
    assert.equal(await complete({ [forced]: 100 }, 4), cli.text);
  } finally {
    await s.close();
  }
});

Deno.test("response_format json_object: replies are JSON objects, ending when the object closes", async () => {
  const s = await startServer();
  try {
    const tok = (await defaultCheckpoint()).tokenizer!;
    const [quote] = tok.encode('"', { bos: false }), [close] = tok.encode("}", { bos: false });
    const ask = (seed: number, json = true) => ({
      model: "default",
      prompt: "Here is the data as JSON:",
      max_tokens: 48,
      temperature: 0.9,
      seed,
      // The default model writes prose: nudge it towards closing its strings and object.
      logit_bias: { [quote]: 3, [close]: 3 },
      ...(json ? { response_format: { type: "json_object" as const } } : {}),
    });
    const prefix = (t: string) =>
      new JsonRecognizer({ object: true }).pushAll(new TextEncoder().encode(t));
    let stopped = 0;
    for (let seed = 1; seed <= 6; seed++) {
      const c = (await s.client.completions.create(ask(seed))).choices[0];
      assert.ok(
        prefix(c.text),
        `seed ${seed}: not a JSON object's prefix: ${JSON.stringify(c.text)}`,
      );
      if (c.finish_reason === "stop") {
        stopped++;
        const v = JSON.parse(c.text); // V8's parser: the independent check
        assert.ok(v !== null && typeof v === "object" && !Array.isArray(v), c.text);
      }
    }
    assert.ok(stopped >= 1, "no reply completed its object");
    // Streamed: the same text for the same seed.
    const want = (await s.client.completions.create(ask(1))).choices[0].text;
    let streamed = "";
    for await (const chunk of await s.client.completions.create({ ...ask(1), stream: true })) {
      streamed += chunk.choices[0]?.text ?? "";
    }
    assert.equal(streamed, want);
    // Negative control: the same request without JSON mode is no JSON object.
    const free = (await s.client.completions.create(ask(1, false))).choices[0].text;
    assert.equal(prefix(free), false, free);
    // A json_schema without its schema is refused naming the field.
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        ...ask(1),
        response_format: { type: "json_schema", json_schema: {} },
      }),
    });
    const body = await res.json();
    assert.equal(res.status, 400);
    assert.equal(body.error.param, "response_format");
  } finally {
    await s.close();
  }
});

Deno.test("32 concurrent streams all complete; the pool is whole afterwards", async () => {
  const s = await startServer();
  try {
    const runs = Array.from({ length: 32 }, async (_, i) => {
      const stream = await s.client.completions.create({
        model: "default",
        prompt: `Number ${i}: we the people`,
        max_tokens: 12,
        temperature: 0.8,
        seed: i,
        ignore_eos: true,
        stream: true,
      } as OpenAI.CompletionCreateParamsStreaming);
      let pieces = 0, finish: string | null = null;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.text) pieces++;
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      return { pieces, finish };
    });
    const done = await Promise.all(runs);
    assert.equal(done.filter((d) => d.finish === "length").length, 32);
    assert.ok(done.every((d) => d.pieces > 0));
    const st = s.server.scheduler.stats;
    assert.equal(st.freeBlocks, st.usableBlocks);
    assert.ok(st.rows / st.steps > 4, `batched: ${st.rows} rows in ${st.steps} steps`);
  } finally {
    await s.close();
  }
});

Deno.test("an aborted stream frees its blocks; the same seed gives the same text under load", async () => {
  const s = await startServer();
  try {
    const ctl = new AbortController();
    const stream = await s.client.chat.completions.create({
      model: "default",
      messages: [{ role: "user", content: "Tell me a long story." }],
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    } as OpenAI.ChatCompletionCreateParamsStreaming, { signal: ctl.signal });
    let n = 0;
    try {
      for await (const _ of stream) if (++n === 4) ctl.abort();
    } catch (e) {
      assert.ok(e instanceof Error && /abort/i.test(e.name + e.message), String(e));
    }
    assert.equal(n, 4);
    const st = () => s.server.scheduler.stats;
    await until(() => st().running === 0 && st().waiting === 0);
    assert.equal(st().freeBlocks, st().usableBlocks);
    assert.ok(st().sampledTokens < 100, `${st().sampledTokens} tokens sampled`);
    await until(() => s.logs.some((l) => l.includes("(client disconnected)")));
    assert.ok(
      s.logs.some((l) =>
        /POST \/v1\/chat\/completions 200 \d+\+\d+ tokens \(client disconnected\)/.test(l)
      ),
      s.logs.join("\n"),
    );

    // A whole (not streamed) response whose client goes away: cancelled too.
    const before = st().sampledTokens;
    const gone = new AbortController();
    const pending = fetch(`${s.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "default", prompt: "We", max_tokens: 240, ignore_eos: true }),
      signal: gone.signal,
    }).catch((e) => e);
    await until(() => st().sampledTokens > before + 2);
    gone.abort();
    assert.ok((await pending) instanceof Error);
    await until(() => st().running === 0 && st().waiting === 0);
    assert.equal(st().freeBlocks, st().usableBlocks);
    assert.ok(st().sampledTokens - before < 200, `${st().sampledTokens - before} tokens sampled`);
    assert.ok(s.logs.some((l) => / 499 \d+\+\d+ tokens/.test(l)), s.logs.join("\n"));

    const req = {
      model: "default",
      prompt: "In the year of our Lord",
      max_tokens: 32,
      temperature: 1,
      top_p: 0.9,
      seed: 99,
      ignore_eos: true,
    };
    const alone = (await s.client.completions.create(req)).choices[0].text;
    const others = Array.from(
      { length: 7 },
      (_, i) =>
        s.client.completions.create({
          ...req,
          seed: i,
          prompt: `Congress ${i} shall`,
          max_tokens: 10 + 5 * i,
        }),
    );
    const loaded = (await s.client.completions.create(req)).choices[0].text;
    await Promise.all(others);
    assert.equal(loaded, alone);
    const reseeded = (await s.client.completions.create({ ...req, seed: 100 })).choices[0].text;
    assert.notEqual(reseeded, alone); // negative control
  } finally {
    await s.close();
  }
});

Deno.test("malformed requests get the right 4xx with OpenAI's error shape; the server keeps serving", async () => {
  const s = await startServer({ apiKey: "sekrit", maxBodyBytes: 4096 }, 2);
  const post = (path: string, body: string, key: string | null = "sekrit") =>
    fetch(`${s.url}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(key ? { authorization: `Bearer ${key}` } : {}),
      },
      body,
    });
  const expect = async (res: Response, status: number, param: string | null, match: RegExp) => {
    const body = await res.json();
    assert.equal(res.status, status, JSON.stringify(body));
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(body.error.param, param, JSON.stringify(body));
    assert.match(body.error.message, match);
    return res;
  };
  const ok = { model: "default", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 };
  const chat = (extra: Record<string, unknown>) =>
    post("/v1/chat/completions", JSON.stringify({ ...ok, ...extra }));
  try {
    await expect(await post("/v1/chat/completions", "{not json"), 400, null, /not valid JSON/);
    await expect(
      await post("/v1/chat/completions", "[1, 2]"),
      400,
      null,
      /JSON object, got an array/,
    );
    await expect(
      await chat({ temperature: "hot" }),
      400,
      "temperature",
      /'temperature' must be a number in \[0, 2\], got "hot"/,
    );
    await expect(await chat({ temperature: 3 }), 400, "temperature", /got 3/);
    await expect(await chat({ top_p: 0 }), 400, "top_p", /\(0, 1\]/);
    await expect(await chat({ max_tokens: 1.5 }), 400, "max_tokens", /an integer/);
    await expect(await chat({ max_tokens: 1000 }), 400, "max_tokens", /context is 256 tokens/);
    await expect(await chat({ messages: "Hi" }), 400, "messages", /array/);
    await expect(
      await chat({ messages: [{ role: "wizard", content: "x" }] }),
      400,
      "messages[0].role",
      /one of/,
    );
    await expect(
      await chat({ top_logprobs: 25, logprobs: true }),
      400,
      "top_logprobs",
      /\[0, 20\]/,
    );
    await expect(await chat({ stop: [""] }), 400, "stop[0]", /non-empty/);
    await expect(await chat({ n: 3 }), 400, "n", /'n' must be at most 2 .*got 3/);
    await expect(await chat({ logit_bias: [1] }), 400, "logit_bias", /an object, got \[1\]/);
    await expect(await chat({ logit_bias: { abc: 1 } }), 400, "logit_bias", /token ids/);
    await expect(
      await chat({ logit_bias: { "5": 101 } }),
      400,
      "logit_bias[5]",
      /'logit_bias\[5\]' must be a number in \[-100, 100\], got 101/,
    );
    await expect(
      await chat({ logit_bias: { "99999": 1 } }),
      400,
      "logit_bias",
      /'logit_bias' key 99999 is not a token id in \[0, 4096\)/,
    );
    await expect(await chat({ model: "gpt-4" }), 404, "model", /'gpt-4' does not exist/);
    await expect(
      await post("/v1/completions", JSON.stringify({ model: "default" })),
      400,
      "prompt",
      /required/,
    );
    await expect(
      await post("/v1/completions", JSON.stringify({ model: "default", prompt: [1, 5000] })),
      400,
      "prompt[1]",
      /outside the vocabulary/,
    );
    await expect(
      await post("/v1/chat/completions", JSON.stringify(ok), null),
      401,
      null,
      /missing API key/,
    );
    await expect(
      await post("/v1/chat/completions", JSON.stringify(ok), "wrong"),
      401,
      null,
      /incorrect API key/,
    );
    await expect(
      await post("/v1/completions", JSON.stringify({ model: "default", prompt: "x".repeat(5000) })),
      413,
      null,
      /larger than 4096 bytes/,
    );
    await expect(await post("/v1/nothing", "{}"), 404, null, /no such endpoint/);
    await expect(
      await fetch(`${s.url}/v1/completions`, { headers: { authorization: "Bearer sekrit" } }),
      405,
      null,
      /takes POST/,
    );
    // The openai client surfaces the same error.
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "sekrit", maxRetries: 0 });
    await assert.rejects(
      client.chat.completions.create(
        { ...ok, n: 3 } as OpenAI.ChatCompletionCreateParamsNonStreaming,
      ),
      (e: unknown) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === "n",
    );
    // Still serving; /health needs no key; tokenize/detokenize round-trip.
    const good = await (await chat({ temperature: 0 })).json();
    assert.equal(good.object, "chat.completion");
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
    const t = await (await post(
      "/tokenize",
      JSON.stringify({ content: "We the people", with_pieces: true }),
    )).json();
    assert.equal(t.tokens.map((x: { piece: string }) => x.piece).join(""), "We the people");
    const ids = t.tokens.map((x: { id: number }) => x.id);
    assert.deepEqual(await (await post("/detokenize", JSON.stringify({ tokens: ids }))).json(), {
      content: "We the people",
    });
    await expect(
      await post("/detokenize", JSON.stringify({ tokens: [-1] })),
      400,
      "tokens[0]",
      /not a token id/,
    );
  } finally {
    await s.close();
  }
});

Deno.test("a full queue is 503 with Retry-After; a slow request times out with 408", async () => {
  const s = await startServer({ maxQueue: 0, timeoutMs: 200 }, 1);
  try {
    const res = await fetch(`${s.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "default", prompt: "Hi", max_tokens: 2 }),
    });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal((await res.json()).error.code, "server_busy");
  } finally {
    await s.close();
  }
  const t = await startServer({ timeoutMs: 150 }, 1);
  try {
    const res = await fetch(`${t.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ model: "default", prompt: "Hi", max_tokens: 250, ignore_eos: true }),
    });
    assert.equal(res.status, 408);
    assert.match((await res.json()).error.message, /timeout of 0.15 s/);
    const st = t.server.scheduler.stats;
    await until(() => t.server.scheduler.stats.running === 0);
    assert.equal(st.usableBlocks, t.server.scheduler.stats.freeBlocks);
  } finally {
    await t.close();
  }
});

Deno.test("gollm serve prints its URL, serves, and exits 0 on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}cli/main.ts`, "serve", MODEL, "--port", "0", "--parallel", "2"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  let url = "";
  while (!url) {
    const { value, done } = await reader.read();
    if (done) break;
    err += value;
    url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err)?.[1] ?? "";
  }
  assert.ok(url, err);
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({ model: "default", prompt: "We", max_tokens: 3 }),
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).usage.completion_tokens <= 3, true);
  child.kill("SIGTERM");
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    err += value;
  }
  const status = await child.status;
  assert.equal(status.code, 0, err);
  assert.match(err, /POST \/v1\/completions 200/);
  assert.match(err, /SIGTERM: shutting down/);
  assert.match(err, /stopped/);
});

Deno.test("gollm serve: bad flags are one error line with the right exit status", async () => {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}cli/main.ts`, "serve", MODEL, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const lines = new TextDecoder().decode(out.stderr).trimEnd().split("\n")
      .filter((l) => !l.startsWith("loaded "));
    return { code: out.code, first: lines[0], lines };
  };
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const cases: [string[], number, RegExp][] = [
      [["--port", "70000"], 2, /--port must be an integer in \[0, 65535\], got '70000'/],
      [["--ctx-size", "1000"], 2, /--ctx-size 1000 exceeds the context length 256/],
      [["--threads", "0"], 2, /--threads must be an integer in \[1, 64\], got '0'/],
      [["--threads", "65"], 2, /--threads must be an integer in \[1, 64\], got '65'/],
      [["--backend", "reference"], 2, /--backend must be one of auto, wasm, jit/],
      [["--draft", "models/default", "--ngram"], 2, /--draft PATH or --ngram, not both/],
      [["--kv-blocks", "3"], 1, /a KV pool of 3 blocks .* cannot hold one sequence of 256 tokens/],
      [["--draft", `${ROOT}no/such/model`], 1, /no\/such\/model/],
      [["--port", `${(busy.addr as Deno.NetAddr).port}`], 1, /cannot listen on 127\.0\.0\.1:\d+/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(...args)));
    results.forEach((r, i) => {
      const [args, code, re] = cases[i];
      assert.equal(r.code, code, `${args.join(" ")}: ${r.lines.join("\n")}`);
      assert.match(r.first, /^error: /, args.join(" "));
      assert.match(r.first, re, args.join(" "));
      assert.ok(!r.lines.some((l) => /^\s+at /.test(l)), `no stack trace: ${r.lines.join("\n")}`);
    });
  } finally {
    busy.close();
  }
});
