/**
 * `gollm generate --json-schema FILE` as a subprocess on the shipped default model: the text
 * it prints with `--json` parses and is valid for the schema (ajv, an independent validator),
 * for several seeds at temperature 1; without the flag the same command writes no such text.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { DEFAULT, ROOT } from "./cli_cases.ts";

const SCHEMA = {
  type: "object",
  properties: {
    title: { type: "string", minLength: 1, maxLength: 16 },
    pages: { type: "integer" },
    genre: { enum: ["fiction", "poetry", "history"] },
  },
  required: ["title", "pages", "genre"],
  additionalProperties: false,
};

/** `gollm generate --json` with extra flags: its `text` and `stop_reason`. */
async function generate(extra: string[]): Promise<{ text: string; stop_reason: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--experimental-wasm-fp16",
      `${ROOT}cli/main.ts`,
      "generate",
      DEFAULT,
      "--prompt",
      "The book, as JSON:",
      "-n",
      "100",
      "--temperature",
      "1",
      "--json",
      ...extra,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("gollm generate --json-schema prints JSON valid for the schema (ajv)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/book.json`;
    await Deno.writeTextFile(file, JSON.stringify(SCHEMA));
    const validate = new Ajv({ strict: false }).compile(SCHEMA);
    let stopped = 0;
    for (const seed of ["1", "2", "3"]) {
      const r = await generate(["--seed", seed, "--json-schema", file]);
      if (r.stop_reason !== "stop") continue;
      stopped++;
      assert.ok(validate(JSON.parse(r.text)), `seed ${seed}: ${r.text}`);
    }
    assert.ok(stopped >= 2, `${stopped} of 3 replies completed`);
    // Negative control: the same command without the schema is no valid document.
    const free = await generate(["--seed", "1"]);
    assert.throws(() => assert.ok(validate(JSON.parse(free.text))), free.text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
