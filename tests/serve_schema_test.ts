/**
 * `gollm serve` structured outputs end to end on 127.0.0.1 with the shipped default model,
 * through the official `openai` npm client: `response_format: {"type": "json_schema"}` on
 * chat and completions gives replies that `JSON.parse` and that ajv (an independent
 * validator) finds valid, streamed or not; a schema keyword outside the subset is a 400
 * naming it (`param: "response_format"`) and the server keeps serving.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { compileJsonSchema } from "../runtime/json_schema.ts";
import { startServer } from "./test_server.ts";

const SCHEMA = {
  type: "object",
  properties: {
    city: { type: "string", minLength: 1, maxLength: 10 },
    temperature: { type: "number" },
    unit: { enum: ["C", "F"] },
    tags: { type: "array", items: { type: "string", maxLength: 6 }, maxItems: 2 },
    sunny: { type: ["boolean", "null"] },
  },
  required: ["city", "temperature", "unit"],
  additionalProperties: false,
};

const FORMAT = {
  type: "json_schema" as const,
  json_schema: { name: "weather", schema: SCHEMA, strict: true },
};

Deno.test("response_format json_schema: replies validate against the schema (ajv); a bad keyword is a 400", async () => {
  const s = await startServer({}, 4);
  const validate = new Ajv({ strict: false }).compile(SCHEMA);
  try {
    const ask = (seed: number, format = true) => ({
      model: "default",
      messages: [{ role: "user" as const, content: "The weather in Paris, as JSON." }],
      max_tokens: 120,
      temperature: 1,
      seed,
      ...(format ? { response_format: FORMAT } : {}),
    });
    let stopped = 0;
    for (let seed = 1; seed <= 4; seed++) {
      const c = (await s.client.chat.completions.create(ask(seed))).choices[0];
      const text = c.message.content ?? "";
      if (c.finish_reason !== "stop") continue;
      stopped++;
      assert.ok(validate(JSON.parse(text)), `seed ${seed}: ${text}`);
    }
    assert.ok(stopped >= 3, `${stopped} of 4 replies completed`);
    // Streamed: the same text for the same seed.
    const want = (await s.client.chat.completions.create(ask(1))).choices[0].message.content;
    let streamed = "";
    for await (const chunk of await s.client.chat.completions.create({ ...ask(1), stream: true })) {
      streamed += chunk.choices[0]?.delta?.content ?? "";
    }
    assert.equal(streamed, want);
    // /v1/completions takes the same response_format.
    const done = (await s.client.completions.create({
      model: "default",
      prompt: "Weather report:",
      max_tokens: 120,
      temperature: 1,
      seed: 2,
      // The client types response_format on chat only; the server takes it here too.
      ...({ response_format: FORMAT } as Record<string, unknown>),
    })).choices[0];
    const prefix = compileJsonSchema(SCHEMA).recognizer();
    assert.ok(prefix.pushAll(new TextEncoder().encode(done.text)), done.text);
    assert.equal(done.finish_reason === "stop", prefix.complete, done.text);
    if (prefix.complete) assert.ok(validate(JSON.parse(done.text)), done.text);
    // Negative control: without the schema the same request is no valid document.
    const free = (await s.client.chat.completions.create(ask(1, false))).choices[0].message;
    assert.throws(() => {
      if (!validate(JSON.parse(free.content ?? ""))) throw new Error("invalid");
    });
    // A keyword outside the subset: 400 naming its path; the server keeps serving.
    const bad = structuredClone(FORMAT);
    (bad.json_schema.schema.properties.city as Record<string, unknown>).pattern = "^[A-Z]";
    await assert.rejects(
      s.client.chat.completions.create({ ...ask(1), response_format: bad }),
      (e: unknown) => {
        assert.ok(e instanceof OpenAI.BadRequestError, String(e));
        assert.equal(e.status, 400);
        assert.equal(e.param, "response_format");
        assert.match(
          e.message,
          /response_format\.json_schema\.schema\.properties\.city: 'pattern' is not supported/,
        );
        return true;
      },
    );
    const res = await fetch(`${s.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        ...ask(1),
        response_format: { type: "json_schema", json_schema: {} },
      }),
    });
    assert.equal(res.status, 400);
    assert.match(
      (await res.json()).error.message,
      /'response_format\.json_schema\.schema' is required/,
    );
    const again = (await s.client.chat.completions.create(ask(1))).choices[0].message.content;
    assert.equal(again, want);
  } finally {
    await s.close();
  }
});
