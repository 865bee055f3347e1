/**
 * JSON mode's recogniser against V8's `JSON.parse` (the independent oracle): every prefix of
 * a valid document is accepted and the whole is complete; on thousands of mutated documents
 * "accepted whole and complete" holds exactly when `JSON.parse` succeeds. Then the constraint
 * over the default model's tokenizer: sampling from random logits under the mask only ever
 * writes a prefix of a JSON object, and every completed reply parses to an object.
 */
import assert from "node:assert/strict";
import { JsonConstraint, JsonRecognizer } from "./json_constraint.ts";
import { Rng, Sampler } from "./sampler.ts";
import { loadCheckpointTokenizer } from "../formats/load.ts";

const enc = new TextEncoder();

/** A random JSON value (depth-limited), as JSON.stringify writes it, with random spacing. */
function randomJson(rng: Rng, depth = 0): string {
  const pick = (n: number) => rng.nextUint32() % n;
  const ws = () => [" ", "", "\n", "\t", "  ", ""][pick(6)];
  const k = depth > 3 ? 2 + pick(4) : pick(6);
  switch (k) {
    case 0: {
      const n = pick(4);
      const items = Array.from({ length: n }, () => `${ws()}${randomJson(rng, depth + 1)}${ws()}`);
      return `[${items.join(",")}${n ? "" : ws()}]`;
    }
    case 1: {
      const n = pick(4);
      const items = Array.from(
        { length: n },
        () =>
          `${ws()}${JSON.stringify(word(rng))}${ws()}:${ws()}${randomJson(rng, depth + 1)}${ws()}`,
      );
      return `{${items.join(",")}${n ? "" : ws()}}`;
    }
    case 2:
      return JSON.stringify(word(rng));
    case 3:
      return JSON.stringify([0, -0.5, 12, 3.25e-7, -1e21, 1e300, 7][pick(7)]);
    case 4:
      return ["true", "false", "null"][pick(3)];
    default:
      return ["0", "-12", "4.5", "6E+2", "-0.0e-1", "31"][pick(6)];
  }
}

function word(rng: Rng): string {
  const parts = ["a", "é", "\\", '"', "\n", "\u0001", "😀", "key", " ", "/", "\t", "ü"];
  return Array.from({ length: rng.nextUint32() % 5 }, () => parts[rng.nextUint32() % parts.length])
    .join("");
}

const parses = (s: string) => {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
};

/** Whether the recogniser reads all of `s` and could end there. */
function recognises(s: string, object = false): boolean {
  const r = new JsonRecognizer({ object });
  return r.pushAll(enc.encode(s)) && r.completeIfEnded;
}

Deno.test("JsonRecognizer accepts every prefix of valid JSON and completes at its end", () => {
  const rng = new Rng(1);
  for (let i = 0; i < 500; i++) {
    const doc = randomJson(rng);
    assert.ok(parses(doc), doc);
    const bytes = enc.encode(doc);
    const r = new JsonRecognizer();
    for (let j = 0; j < bytes.length; j++) {
      assert.ok(r.push(bytes[j]), `${JSON.stringify(doc)} refused at byte ${j}`);
    }
    assert.ok(r.completeIfEnded, `${JSON.stringify(doc)} not complete`);
    // Object mode: exactly the documents whose top-level value is an object.
    assert.equal(recognises(doc, true), doc.trimStart().startsWith("{"), doc);
  }
});

Deno.test("JsonRecognizer agrees with JSON.parse on mutated documents", () => {
  const rng = new Rng(2);
  const alphabet = '{}[]:,"\\ 0123456789.eE+-truefalsn\n\tabu/';
  let valid = 0, invalid = 0;
  for (let i = 0; i < 4000; i++) {
    let doc = randomJson(rng);
    // 1-3 ASCII edits: insert, delete or replace one character.
    for (let e = 1 + (rng.nextUint32() % 3); e > 0; e--) {
      const at = rng.nextUint32() % (doc.length + 1);
      const ch = alphabet[rng.nextUint32() % alphabet.length];
      const op = rng.nextUint32() % 3;
      doc = op === 0
        ? doc.slice(0, at) + ch + doc.slice(at)
        : op === 1
        ? doc.slice(0, at) + doc.slice(at + 1)
        : doc.slice(0, at) + ch + doc.slice(at + 1);
    }
    const want = parses(doc);
    assert.equal(recognises(doc), want, `${JSON.stringify(doc)}: JSON.parse says ${want}`);
    if (want) valid++;
    else invalid++;
  }
  assert.ok(valid > 300 && invalid > 1500, `${valid} valid, ${invalid} invalid`);
});

Deno.test("JsonRecognizer refuses what JSON forbids", () => {
  for (
    const bad of [
      "01",
      "1.",
      ".5",
      "+1",
      "1e",
      "[1,]",
      '{"a":1,}',
      "{a:1}",
      "'x'",
      "tru",
      '"\\x"',
      '"\\u12G4"',
      "[}",
      "nul l",
      '"a\u0001"',
    ]
  ) {
    assert.equal(recognises(bad), false, bad);
    assert.equal(parses(bad), false, bad); // the oracle agrees
  }
  assert.equal(recognises("[".repeat(200) + "]".repeat(200)), false); // deeper than 128
});

Deno.test("JsonRecognizer with tightWhitespace allows llama.cpp's json.gbnf spacing only", () => {
  const tight = (t: string) =>
    new JsonRecognizer({ object: true, tightWhitespace: true }).pushAll(enc.encode(t));
  assert.ok(tight('{\n  "a": [1, 2],\n\t"b": " \\n "}'));
  assert.ok(tight("{" + " ".repeat(20) + "}") && tight("{\n" + " ".repeat(20) + "}"));
  for (const bad of [" {}", "{\n\n}", "{" + " ".repeat(22) + "}", "{\r\n}", "{} "]) {
    assert.equal(tight(bad), false, JSON.stringify(bad));
    assert.ok(recognises(bad, true) && parses(bad), JSON.stringify(bad)); // valid JSON all the same
  }
});

Deno.test("JsonConstraint: sampling random logits under the mask writes JSON objects only", async () => {
  const tok = (await loadCheckpointTokenizer("models/default"))!;
  const cache: Uint8Array[] = [], masks = new Map<string, Uint8Array>();
  const rng = new Rng(3);
  let completed = 0;
  for (let run = 0; run < 40; run++) {
    const c = new JsonConstraint(tok, cache, masks); // masks shared across the runs
    const fresh = new JsonConstraint(tok, cache, new Map()); // the same, masks computed anew
    const sampler = new Sampler({ temperature: 1, seed: run });
    const ids: number[] = [];
    for (let step = 0; step < 120 && !c.complete; step++) {
      // A "model" whose logits favour JSON punctuation now and then, so objects close.
      const logits = new Float32Array(tok.vocabSize);
      for (let i = 0; i < logits.length; i++) logits[i] = rng.nextFloat() * 4;
      for (const ch of ['"', "}", ":", ",", "[", "]", "{", "1"]) {
        for (const id of tok.encode(ch, { bos: false })) logits[id] += 6 * rng.nextFloat();
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
    const text = new TextDecoder().decode(
      new Uint8Array(ids.flatMap((id) => [...tok.tokenBytes(id)])),
    );
    const r = new JsonRecognizer({ object: true });
    assert.ok(r.pushAll(enc.encode(text)), `not a JSON prefix: ${JSON.stringify(text)}`);
    if (c.complete) {
      completed++;
      const v = JSON.parse(text);
      assert.ok(v !== null && typeof v === "object" && !Array.isArray(v), text);
    }
  }
  assert.ok(completed >= 5, `only ${completed} of 40 replies completed`);
  // Negative control: the same sampling without the mask does not write JSON.
  const free = new Sampler({ temperature: 1, seed: 0 });
  const ids = Array.from({ length: 20 }, () => {
    const logits = new Float32Array(tok.vocabSize);
    for (let i = 0; i < logits.length; i++) logits[i] = rng.nextFloat() * 4;
    return free.sample(logits);
  });
  assert.equal(new JsonRecognizer({ object: true }).pushAll(enc.encode(tok.decode(ids))), false);
});

Deno.test("Model.generate({ jsonMode }) writes JSON objects and stops when the object closes", async () => {
  const { loadModel } = await import("./model.ts");
  using model = await loadModel("models/default", { threads: 1 });
  const tok = model.tokenizer!;
  const [quote] = tok.encode('"', { bos: false }), [close] = tok.encode("}", { bos: false });
  const run = async (seed: number, jsonMode: boolean) => {
    let text = "", stop = "";
    for await (
      const piece of model.generate("Here is the data as JSON:", {
        maxTokens: 48,
        temperature: 0.9,
        topP: 1,
        seed,
        jsonMode,
        logitBias: { [quote]: 7, [close]: 7 }, // the default model writes prose: nudge it
        onStats: (s) => (stop = s.stopReason),
      })
    ) text += piece;
    return { text, stop };
  };
  let closed = 0;
  for (let seed = 1; seed <= 6; seed++) {
    const { text, stop } = await run(seed, true);
    const r = new JsonRecognizer({ object: true });
    assert.ok(r.pushAll(enc.encode(text)), `seed ${seed}: ${JSON.stringify(text)}`);
    assert.equal(stop === "stop", r.complete, `seed ${seed}: ${stop}`);
    if (stop === "stop") {
      closed++;
      assert.equal(typeof JSON.parse(text), "object");
    }
  }
  assert.ok(closed >= 2, `${closed} of 6 replies closed their object`);
  // Negative control: without JSON mode the same call writes prose.
  const free = await run(1, false);
  assert.equal(new JsonRecognizer({ object: true }).pushAll(enc.encode(free.text)), false);
});
