/**
 * The schema recogniser under `JsonConstraint` over the default model's tokenizer: masks
 * cached by state signature equal masks computed anew (with JSON mode's states in the same
 * cache), and `Model.generate({ jsonSchema })` on the shipped default model writes text that
 * `JSON.parse`s and that ajv (an independent validator) finds valid, for several seeds at
 * temperature 1. Negative controls: JSON mode and free text do not satisfy the schema.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { JsonConstraint } from "./json_constraint.ts";
import { compileJsonSchema } from "./json_schema.ts";
import { JsonSchemaRecognizer } from "./json_schema_recognizer.ts";
import { Rng, Sampler } from "./sampler.ts";
import { loadCheckpointTokenizer } from "../formats/load.ts";

const enc = new TextEncoder();

/** A person: every field bounded, so that replies end within a few dozen tokens. */
const PERSON = {
  type: "object",
  properties: {
    name: { type: "string", minLength: 1, maxLength: 12 },
    age: { type: "integer" },
    role: { enum: ["admin", "user", "guest"] },
    pets: { type: "array", items: { type: "string", maxLength: 8 }, maxItems: 2 },
    verified: { type: ["boolean", "null"] },
  },
  required: ["name", "age", "role", "pets"],
};

Deno.test("JsonConstraint with a schema: cached masks equal fresh ones; sampled text stays a prefix", async () => {
  const tok = (await loadCheckpointTokenizer("models/default"))!;
  const schema = compileJsonSchema(PERSON);
  const cache: Uint8Array[] = [], masks = new Map<string, Uint8Array>();
  const rng = new Rng(5);
  let completed = 0;
  for (let run = 0; run < 12; run++) {
    // JSON mode shares the cache: its states must not be taken for the schema's.
    new JsonConstraint(tok, cache, masks).mask(new Float32Array(tok.vocabSize));
    const c = new JsonConstraint(tok, cache, masks, schema.recognizer());
    const fresh = new JsonConstraint(tok, cache, new Map(), schema.recognizer());
    const sampler = new Sampler({ temperature: 1, seed: run });
    const ids: number[] = [];
    for (let step = 0; step < 150 && !c.complete; step++) {
      const logits = new Float32Array(tok.vocabSize);
      for (let i = 0; i < logits.length; i++) logits[i] = rng.nextFloat() * 4;
      for (const ch of ['"', "]", ","]) {
        for (const id of tok.encode(ch, { bos: false })) logits[id] += 8 * rng.nextFloat();
      }
      const copy = logits.slice();
      assert.ok(c.mask(logits) > 0, "some token may always come next");
      fresh.mask(copy);
      assert.deepEqual(logits, copy, `step ${step}: a cached mask differs from a fresh one`);
      const id = sampler.sample(logits);
      c.advance(id);
      fresh.advance(id);
      ids.push(id);
    }
    const bytes = new Uint8Array(ids.flatMap((id) => [...tok.tokenBytes(id)]));
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); // valid UTF-8
    assert.ok(new JsonSchemaRecognizer(schema).pushAll(bytes), text);
    if (c.complete) {
      completed++;
      assert.ok(new Ajv({ strict: false }).validate(PERSON, JSON.parse(text)), text);
    }
  }
  assert.ok(completed >= 6, `only ${completed} of 12 replies completed`);
});

Deno.test("Model.generate({ jsonSchema }) writes JSON valid for the schema (ajv) and stops at its end", async () => {
  const { loadModel } = await import("./model.ts");
  using model = await loadModel("models/default", { threads: 1 });
  const validate = new Ajv({ strict: false }).compile(PERSON);
  const run = async (seed: number, options: { jsonSchema?: typeof PERSON; jsonMode?: boolean }) => {
    let text = "", stop = "";
    for await (
      const piece of model.generate("The user record, as JSON:", {
        maxTokens: 160,
        temperature: 1,
        topP: 1,
        seed,
        ...options,
        onStats: (s) => (stop = s.stopReason),
      })
    ) text += piece;
    return { text, stop };
  };
  let done = 0;
  for (let seed = 1; seed <= 5; seed++) {
    const { text, stop } = await run(seed, { jsonSchema: PERSON });
    const r = new JsonSchemaRecognizer(compileJsonSchema(PERSON));
    assert.ok(r.pushAll(enc.encode(text)), `seed ${seed}: ${JSON.stringify(text)}`);
    assert.equal(stop === "stop", r.complete, `seed ${seed}: ${stop}`);
    if (stop !== "stop") continue;
    done++;
    const value = JSON.parse(text);
    assert.ok(validate(value), `seed ${seed}: ${text}: ${JSON.stringify(validate.errors)}`);
  }
  assert.ok(done >= 4, `${done} of 5 replies completed`);
  // Negative controls: neither JSON mode's reply nor free text is a prefix of the schema's.
  for (const options of [{ jsonMode: true }, {}]) {
    const { text } = await run(1, options);
    const r = new JsonSchemaRecognizer(compileJsonSchema(PERSON));
    assert.equal(r.pushAll(enc.encode(text)), false, text);
  }
  // A schema outside the subset is refused at the call, naming the path.
  assert.throws(
    () => model.generate("x", { jsonSchema: { type: "string", pattern: "a+" } }),
    /^JsonSchemaError: jsonSchema: 'pattern' is not supported$/,
  );
  assert.throws(() => model.generate("x", { jsonSchema: {}, jsonMode: true }), /jsonMode/);
});

Deno.test("JsonConstraint with a schema allows EOS only where a top-level number may end", async () => {
  const tok = (await loadCheckpointTokenizer("models/default"))!;
  const eos = tok.eosIds[0];
  const digit = tok.encode("7", { bos: false })[0];
  const logits = () => new Float32Array(tok.vocabSize);
  const c = new JsonConstraint(
    tok,
    [],
    new Map(),
    compileJsonSchema({ type: "integer" }).recognizer(),
  );
  const first = logits();
  c.mask(first);
  assert.equal(first[eos], -Infinity); // nothing written yet: no EOS
  assert.equal(first[digit], 0);
  c.advance(digit);
  const next = logits();
  c.mask(next);
  assert.equal(next[eos], 0); // "7" is a whole integer: EOS may end it
  assert.equal(next[digit], 0); // or it goes on
  assert.equal(c.complete, false);
  c.advance(eos);
  assert.equal(c.complete, true);
  // Negative control: inside an object a number cannot end the reply.
  const o = new JsonConstraint(
    tok,
    [],
    new Map(),
    compileJsonSchema({ type: "object", properties: { a: { type: "integer" } } }).recognizer(),
  );
  for (const id of tok.encode('{"a":7', { bos: false })) o.advance(id);
  const inObject = logits();
  o.mask(inObject);
  assert.equal(inObject[eos], -Infinity);
  assert.throws(() => o.advance(eos), RangeError);
  // JSON mode never ends on EOS (its top level is an object).
  const j = new JsonConstraint(tok);
  const jl = logits();
  j.mask(jl);
  assert.equal(jl[eos], -Infinity);
});
