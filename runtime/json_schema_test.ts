/**
 * The schema recogniser keyword by keyword: valid documents are accepted whole (and every
 * prefix of them, byte by byte), invalid ones are refused at the exact byte where they
 * leave the schema. Then against an independent validator (ajv, from the npm registry) on
 * thousands of generated and mutated documents: "accepted whole" holds exactly when ajv
 * says valid. And the schemas the compiler refuses, each naming its path.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { compileJsonSchema, JsonSchemaError } from "./json_schema.ts";
import { JsonSchemaRecognizer } from "./json_schema_recognizer.ts";
import { JsonRecognizer } from "./json_constraint.ts";
import { Rng } from "./sampler.ts";

const enc = new TextEncoder();

/**
 * "complete" (a whole valid document if the text ends here: a top-level number too),
 * "prefix" (every byte taken, not whole), or the index of the first byte refused.
 */
function run(schema: unknown, text: string): string | number {
  const r = new JsonSchemaRecognizer(compileJsonSchema(schema));
  const bytes = enc.encode(text);
  for (let i = 0; i < bytes.length; i++) if (!r.push(bytes[i])) return i;
  return r.completeIfEnded ? "complete" : "prefix";
}

/**
 * Asserts that each valid text is complete and each bad one is refused at the byte marked
 * by `|` (the marker is removed), or gives the outcome paired with it.
 */
function check(schema: unknown, valid: string[], invalid: (string | [string, string])[]) {
  for (const v of valid) assert.equal(run(schema, v), "complete", `valid: ${v}`);
  for (const bad of invalid) {
    const [text, want] = Array.isArray(bad)
      ? bad
      : [bad.replace("|", ""), enc.encode(bad.slice(0, bad.indexOf("|"))).length];
    assert.equal(run(schema, text), want, `invalid: ${bad}`);
  }
}

const PERSON = {
  type: "object",
  properties: {
    name: { type: "string" },
    age: { type: "integer" },
    email: { type: "string" },
  },
  required: ["name", "age"],
};

Deno.test("JsonSchemaRecognizer accepts objects by properties and required, in the schema's order", () => {
  check(PERSON, [
    '{"name":"Ada","age":36}',
    '{"name": "Ada", "age": 36, "email": "a@b.c"}',
    '{\n  "name": "Ada",\n  "age": -1\n}',
  ], [
    '{"|age":36,"name":"Ada"}', // out of order: name comes first
    '{"name":"Ada"|}', // age is required
    "{|}",
    '{"name":"Ada","age":36,"|x":1}', // absent additionalProperties = false
    '{"name":"Ada","age":36,"email":"e"|,', // nothing left to add
    '{"name":|1,"age":2}',
    '{"nam|x":"Ada"}',
    "|[]",
    ['{"name":"Ada","age":36', "prefix"],
  ]);
  // Optional properties may be skipped, in order.
  const opt = { type: "object", properties: { a: { type: "null" }, b: { type: "null" } } };
  check(opt, ["{}", '{"a":null}', '{"b":null}', '{"a":null,"b":null}'], [
    '{"b":null|,"a":null}',
    '{"a":null,|}',
  ]);
});

Deno.test("JsonSchemaRecognizer accepts maps under additionalProperties and {} as any value", () => {
  const map = { type: "object", additionalProperties: { type: "integer" } };
  check(map, ["{}", '{"x":1,"y":2}', '{"":-3}'], ['{"x":|"1"}', '{"x":1|.5}']);
  check({ type: "object", additionalProperties: true }, ['{"x":[1,{"y":null}],"z":"w"}'], []);
  for (const any of [{}, true, { description: "anything" }]) {
    check(any, ['{"a":[1,2.5e3,"x\\n"]}', "[]", '"s"', "true", "null", "-0.5"], [
      "|x",
      "[1|}",
    ]);
  }
});

Deno.test("JsonSchemaRecognizer accepts arrays by items, minItems and maxItems", () => {
  const s = { type: "array", items: { type: "boolean" }, minItems: 1, maxItems: 3 };
  check(s, ["[true]", "[true,false,true]", "[ true , false ]"], [
    "[|]",
    "[true,false,true|,",
    "[|1]",
    "[true,|]",
    "[tru|x]",
  ]);
  check({ type: "array", maxItems: 0 }, ["[]"], ["[|1]"]);
  check({ type: "array" }, ["[]", '[1,"a",{"b":[null]}]'], []);
});

Deno.test("JsonSchemaRecognizer accepts strings by minLength and maxLength (code points)", () => {
  const s = { type: "string", minLength: 2, maxLength: 3 };
  check(s, ['"ab"', '"abc"', '"é€"', '"😀😀"', '"\\n\\u0041b"'], [
    '"a|"',
    '"abc|d"',
    '"é€😀|x"',
    '"\\n\\t\\"|x"',
    '"ab\\n|\\n"', // no escape past maxLength (it could not end)
    '"ab\\uD|83D\\uDE00"',
    '"\\u00|g1"',
  ]);
  check({ type: "string" }, ['""', '"\\uD83D\\uDE00 \\/"'], ['"a|\n"', '"\\|x"', "|'a'"]);
  // Strings are valid UTF-8: no stray continuation, overlong form, surrogate or cut character.
  const raw = (bytes: number[]) => {
    const r = new JsonSchemaRecognizer(compileJsonSchema({ type: "string" }));
    return bytes.findIndex((b) => !r.pushAll([b]));
  };
  assert.equal(raw([0x22, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80, 0x22]), -1); // "é😀"
  assert.equal(raw([0x22, 0x80]), 1);
  assert.equal(raw([0x22, 0xc0, 0x80]), 1);
  assert.equal(raw([0x22, 0xe0, 0x80]), 2);
  assert.equal(raw([0x22, 0xed, 0xa0, 0x80]), 2);
  assert.equal(raw([0x22, 0xf4, 0x90]), 2);
  assert.equal(raw([0x22, 0xc3, 0x22]), 2);
});

Deno.test("JsonSchemaRecognizer accepts numbers, integers, booleans and null", () => {
  check({ type: "number" }, ["0", "-0.5", "12e+3", "1E-2", "3.25"], ["0|1", "1.|e", "-|a", "|+1"]);
  check({ type: "integer" }, ["0", "-12", "7"], ["1|.0", "1|e3", "-|.5", "0|0"]);
  // A top-level number is never "complete" (a digit may follow), but may end there.
  const r = new JsonSchemaRecognizer(compileJsonSchema({ type: "integer" }));
  assert.ok(r.pushAll(enc.encode("12")));
  assert.equal(r.complete, false);
  assert.equal(r.completeIfEnded, true);
  check({ type: "boolean" }, ["true", "false"], ["|null", "tru|th"]);
  check({ type: "null" }, ["null"], ["nul|L", "|0"]);
  check({ properties: { n: { type: "integer" } } }, ['{"n":1}'], ['{"n":1|.5}']); // implied
});

Deno.test("JsonSchemaRecognizer accepts enum and const values as JSON.stringify writes them", () => {
  check({ enum: ["red", "green", 3, null, { a: [1] }] }, [
    '"red"',
    '"green"',
    "3",
    "null",
    '{"a":[1]}',
  ], ['"r|ad"', '"gree|"', "|4", "3|.0", '{"a":| [1]}', '"red|d"']);
  check({ const: "x" }, ['"x"'], ['"|y"']);
  // Values the rest of the schema refuses are dropped.
  check({ type: "string", enum: ["a", 1, "bb"], maxLength: 1 }, ['"a"'], ["|1", '"|bb"']);
});

Deno.test("JsonSchemaRecognizer accepts type lists, nullable, anyOf and oneOf", () => {
  check({ type: ["string", "null"] }, ['"x"', "null"], ["|1", "|true"]);
  check({ type: "integer", nullable: true }, ["3", "null"], ['|"3"']);
  const choice = {
    anyOf: [
      { type: "object", properties: { a: { type: "string" } }, required: ["a"] },
      { type: "object", properties: { a: { type: "number" }, b: { type: "null" } } },
    ],
  };
  check(choice, ['{"a":"x"}', '{"a":1,"b":null}', '{"a":1}', "{}"], [
    '{"a":"x"|,"b":null}',
    '{"a":|true}',
  ]);
  check({ oneOf: [{ type: "integer" }, { type: "boolean" }] }, ["1", "true"], ['|"1"']);
});

Deno.test("JsonSchemaRecognizer accepts $ref to $defs, definitions and # (recursion)", () => {
  const tree = {
    $defs: {
      node: {
        type: "object",
        properties: {
          v: { type: "number" },
          kids: { type: "array", items: { $ref: "#/$defs/node" } },
        },
        required: ["v", "kids"],
      },
    },
    $ref: "#/$defs/node",
  };
  check(tree, ['{"v":1,"kids":[{"v":2,"kids":[]},{"v":3,"kids":[{"v":4,"kids":[]}]}]}'], [
    '{"v":1,"kids":[{"v":2|}]}',
    '{"v":1,"kids":[{"v":|"2","kids":[]}]}',
  ]);
  const list = {
    type: "object",
    properties: { head: { type: "integer" }, tail: { anyOf: [{ $ref: "#" }, { type: "null" }] } },
    required: ["head", "tail"],
  };
  check(list, ['{"head":1,"tail":{"head":2,"tail":null}}'], ['{"head":1,"tail":|1}']);
  const defs = {
    definitions: { n: { type: "null" } },
    type: "array",
    items: { $ref: "#/definitions/n" },
  };
  check(defs, ["[null,null]"], ["[|0]"]);
});

Deno.test("JsonSchemaRecognizer keeps JSON mode's whitespace limits", () => {
  const s = { type: "array", items: { type: "integer" } };
  check(s, ["[1,\n" + " ".repeat(20) + "2]", "[ 1 ]", "[\t1]"], [
    "[\n|\n1]",
    "[" + " ".repeat(21) + "| 1]",
    "[|\r1]",
    "[1]| ",
  ]);
  assert.equal(run(s, " [1]"), 0);
});

Deno.test("JsonSchemaRecognizer state signatures: equal signatures accept the same bytes", () => {
  const schema = compileJsonSchema(PERSON);
  const a = new JsonSchemaRecognizer(schema), b = new JsonSchemaRecognizer(schema);
  a.pushAll(enc.encode('{"name":"Ada'));
  b.pushAll(enc.encode('{"name":"Bob'));
  assert.equal(a.signature(8), b.signature(8)); // inside an unbounded string: one state
  const c = new JsonSchemaRecognizer(schema);
  c.pushAll(enc.encode('{"name":"Ada","age":1'));
  assert.notEqual(a.signature(8), c.signature(8));
  // Two schemas never share a state's signature (the masks cache is shared).
  const other = new JsonSchemaRecognizer(compileJsonSchema({ ...PERSON, required: ["name"] }));
  other.pushAll(enc.encode('{"name":"Ada'));
  assert.notEqual(a.signature(8), other.signature(8));
  assert.notEqual(new JsonRecognizer().signature(8), a.signature(8));
  // A clone moves on alone.
  const d = a.clone();
  assert.ok(d.pushAll(enc.encode('"')));
  assert.notEqual(a.signature(8), d.signature(8));
});

Deno.test("compileJsonSchema refuses what it does not support, naming the path", () => {
  const refused: [unknown, RegExp][] = [
    [{ type: "string", pattern: "^a" }, /^schema: 'pattern' is not supported$/],
    [
      { properties: { a: { type: "string", format: "email" } } },
      /^schema\.properties\.a: 'format'/,
    ],
    [{ type: "integer", minimum: 0 }, /'minimum' is not supported/],
    [{ allOf: [{}] }, /^schema: 'allOf' is not supported$/],
    [{ type: "array", prefixItems: [{}] }, /'prefixItems' is not supported/],
    [{ type: "array", items: [{}] }, /^schema\.items: a list of schemas/],
    [{ type: "date" }, /^schema\.type: must be one of object, .*got "date"$/],
    [{ type: "object", properties: { a: {} }, additionalProperties: true }, /next to 'properties'/],
    [{ type: "object", properties: {}, required: ["a"] }, /^schema\.required: 'a' is not in/],
    [{ $ref: "https://x/y.json" }, /^schema\.\$ref: 'https:\/\/x\/y\.json' is not supported/],
    [{ $ref: "#/$defs/missing" }, /'#\/\$defs\/missing' is not defined/],
    [{ $defs: { a: { anyOf: [{ $ref: "#/$defs/a" }] } }, $ref: "#/$defs/a" }, /refers to itself/],
    [{ type: "string", minLength: 3, maxLength: 2 }, /minLength 3 > maxLength 2/],
    [{ type: "array", minItems: -1 }, /^schema\.minItems: must be a non-negative integer/],
    [{ enum: [] }, /^schema\.enum: must be a non-empty array/],
    [{ type: "string", enum: [1, 2] }, /^schema\.enum: no value is valid/],
    [{ anyOf: [] }, /^schema\.anyOf: must be a non-empty array/],
    [{ type: "string", anyOf: [{}] }, /'anyOf' with type is not supported/],
    [false, /^schema: a schema must be an object or true, got false$/],
    [{ items: { items: { minimum: 1 } } }, /^schema\.items\.items: 'minimum'/],
  ];
  for (const [schema, message] of refused) {
    assert.throws(() => compileJsonSchema(schema), (e) => {
      assert.ok(e instanceof JsonSchemaError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
  // Negative control: the supported neighbours compile.
  for (const ok of [{ type: "string", title: "t" }, { type: "array", items: {} }, { $defs: {} }]) {
    compileJsonSchema(ok);
  }
});

// ----- against ajv on generated documents -----

type Schema = Record<string, unknown>;

/** A value for `s` (raw schema), properties in its order; `bad` ∈ [0, 1] mutates it. */
function sample(s: Schema, root: Schema, rng: Rng, bad: number, depth = 0): unknown {
  const pick = (n: number) => rng.nextUint32() % n;
  if (rng.nextFloat() < bad) return [1, -2.5, "x", "", true, null, [], {}, { z: 1 }][pick(9)];
  if (s.$ref) {
    const name = String(s.$ref).split("/").pop()!;
    return sample(
      s.$ref === "#" ? root : (root.$defs as Record<string, Schema>)[name],
      root,
      rng,
      bad,
      depth + 1,
    );
  }
  if (s.anyOf) {
    return sample((s.anyOf as Schema[])[pick((s.anyOf as Schema[]).length)], root, rng, bad, depth);
  }
  if (s.enum) return (s.enum as unknown[])[pick((s.enum as unknown[]).length)];
  const types = [s.type].flat();
  const t = types[pick(types.length)];
  switch (t) {
    case "object": {
      const out: Record<string, unknown> = {};
      const req = (s.required ?? []) as string[];
      for (const [k, p] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
        const keep = req.includes(k) ? rng.nextFloat() > bad : depth < 3 && pick(2) === 0;
        if (keep) out[k] = sample(p, root, rng, bad, depth + 1);
      }
      if (rng.nextFloat() < bad) out[["extra", "name", "tags"][pick(3)]] = 1;
      return out;
    }
    case "array": {
      const n = depth > 3 ? 0 : pick(5);
      return Array.from({ length: n }, () => sample(s.items as Schema, root, rng, bad, depth + 1));
    }
    case "string":
      return ["", "a", "héllo", "tab\t", "😀", 'quote"', "abcdefgh"][pick(7)];
    case "integer":
      return [0, -3, 42, 2.5][pick(rng.nextFloat() < bad ? 4 : 3)];
    case "number":
      return [0, -3, 1.5, 2e-7, 1e21][pick(5)];
    case "boolean":
      return pick(2) === 0;
    default:
      return null;
  }
}

/** Random whitespace within JSON mode's limits after structural characters. */
function spaced(text: string, rng: Rng): string {
  let out = "", inString = false, escaped = false;
  for (const ch of text) {
    out += ch;
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (",:[{".includes(ch)) out += ["", " ", "\n  ", "\t"][rng.nextUint32() % 4];
  }
  return out;
}

const SCHEMAS: Schema[] = [
  {
    type: "object",
    properties: {
      name: { type: "string", minLength: 1, maxLength: 5 },
      age: { type: ["integer", "null"] },
      tags: { type: "array", items: { enum: ["a", "b", 1] }, maxItems: 3 },
      score: { type: "number" },
      ok: { type: "boolean" },
    },
    required: ["name", "tags"],
    additionalProperties: false, // as absent is read here; ajv reads absent as true
  },
  {
    $defs: {
      node: {
        type: "object",
        properties: {
          value: { type: "integer" },
          children: { type: "array", items: { $ref: "#/$defs/node" }, minItems: 0 },
        },
        required: ["value"],
        additionalProperties: false,
      },
    },
    $ref: "#/$defs/node",
  },
  {
    anyOf: [
      { type: "array", items: { type: "string", maxLength: 2 }, minItems: 1 },
      {
        type: "object",
        properties: { kind: { enum: ["x", "y"] }, n: { type: "number" } },
        required: ["kind"],
        additionalProperties: false,
      },
      { type: "null" },
    ],
  },
];

Deno.test("JsonSchemaRecognizer agrees with ajv on thousands of generated and mutated documents", () => {
  const ajv = new Ajv({ strict: false });
  const rng = new Rng(11);
  let valid = 0, invalid = 0;
  for (const schema of SCHEMAS) {
    const validate = ajv.compile(schema);
    const compiled = compileJsonSchema(schema);
    for (let i = 0; i < 1500; i++) {
      const value = sample(schema, schema, rng, i % 3 === 0 ? 0 : 0.15);
      const text = JSON.stringify(value);
      const want = validate(value) as boolean;
      for (const t of [text, spaced(text, rng)]) {
        const r = new JsonSchemaRecognizer(compiled);
        const got = r.pushAll(enc.encode(t)) && r.completeIfEnded;
        assert.equal(got, want, `${JSON.stringify(schema).slice(0, 60)}: ${t}`);
      }
      if (want) valid++;
      else invalid++;
    }
  }
  assert.ok(valid > 1000 && invalid > 500, `${valid} valid, ${invalid} invalid`);
});
