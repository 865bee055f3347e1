import assert from "node:assert/strict";
import { type CommandSpec, helpText, parse, UsageError } from "./args.ts";
import { chat } from "./chat.ts";
import { generate } from "./generate.ts";
import { main } from "./main.ts";

const SPEC = {
  name: "x",
  summary: "test command",
  usage: "[PATH] [options]",
  description: "Tests the parser.",
  positionals: [{ name: "PATH", description: "the model", option: "model" }],
  options: {
    model: { type: "string", meta: "PATH", description: "the model" },
    temperature: { type: "number", min: 0, meta: "T", description: "temperature" },
    "max-tokens": { type: "int", short: "n", min: 0, default: 256, description: "most tokens" },
    stop: { type: "string", repeatable: true, description: "stop string" },
    backend: { type: "choice", choices: ["jit", "reference"], default: "jit", description: "b" },
    json: { type: "bool", description: "json" },
  },
} as const satisfies CommandSpec;

function usageError(args: string[], re: RegExp): void {
  assert.throws(() => parse(SPEC, args), (e: unknown) => {
    assert.ok(e instanceof UsageError, `UsageError expected, got ${e}`);
    assert.match(e.message, re);
    assert.equal(e.usage, "usage: gollm x [PATH] [options]");
    return true;
  });
}

Deno.test("parse() fills defaults and converts values by type", () => {
  const p = parse(SPEC, [])!;
  assert.deepEqual(p.values, {
    model: undefined,
    temperature: undefined,
    "max-tokens": 256,
    stop: [],
    backend: "jit",
    json: false,
  });
  const q = parse(SPEC, ["--temperature=0.5", "-n", "3", "--stop", "a", "--stop", "b", "--json"])!;
  assert.equal(q.values.temperature, 0.5);
  assert.equal(q.values["max-tokens"], 3);
  assert.deepEqual(q.values.stop, ["a", "b"]);
  assert.equal(q.values.json, true);
  assert.equal(parse(SPEC, ["-n7"])!.values["max-tokens"], 7);
  assert.equal(parse(SPEC, ["-n", "1", "-n", "2"])!.values["max-tokens"], 2); // last wins
});

Deno.test("parse() takes a negative number after a space as the value, then range-checks it", () => {
  usageError(["--temperature", "-1"], /^--temperature must be a number >= 0, got '-1'$/);
  usageError(["-n", "-3"], /^--max-tokens must be an integer >= 0, got '-3'$/);
  usageError(["--temperature", "-.5"], /^--temperature must be a number >= 0, got '-.5'$/);
  // A value that looks like an option is a missing value; '=' passes anything.
  usageError(["--stop", "--json"], /^option '--stop' needs a value$/);
  assert.deepEqual(parse(SPEC, ["--stop=--json"])!.values.stop, ["--json"]);
  assert.deepEqual(parse(SPEC, ["--stop", "-"])!.values.stop, ["-"]);
});

Deno.test("parse() rejects malformed values, unknown options and surplus arguments", () => {
  usageError(["-n", "1.5"], /^--max-tokens must be an integer >= 0, got '1.5'$/);
  usageError(["-n", "1e3"], /^--max-tokens must be an integer/);
  usageError(["-n", "99999999999999999999"], /^--max-tokens must be an integer/);
  usageError(["--temperature", "Infinity"], /^--temperature must be a number >= 0/);
  usageError(["--temperature", ""], /^--temperature must be a number >= 0, got ''$/);
  usageError(["--backend", "gpu"], /^--backend must be one of jit, reference, got 'gpu'$/);
  usageError(["--json=1"], /^option '--json' does not take a value$/);
  usageError(["--nope"], /^unknown option '--nope'$/);
  usageError(["-q"], /^unknown option '-q'$/);
  usageError(["a", "b"], /^unexpected argument 'b'$/);
  usageError(["--temperature"], /^option '--temperature' needs a value$/);
});

Deno.test("parse() lets a positional stand for its option, but not both", () => {
  assert.equal(parse(SPEC, ["m.gguf"])!.values.model, "m.gguf");
  assert.equal(parse(SPEC, ["--model", "m.gguf"])!.values.model, "m.gguf");
  assert.deepEqual(parse(SPEC, ["--", "-odd-name"])!.values.model, "-odd-name");
  usageError(
    ["a.gguf", "--model", "b.gguf"],
    /^give the PATH as an argument or as --model, not both/,
  );
});

Deno.test("parse() fills the next positional when an earlier one is given as its option", () => {
  const spec = {
    ...SPEC,
    positionals: [
      { name: "IN", description: "in", option: "model", required: true },
      { name: "OUT", description: "out", required: true },
    ],
    options: { model: { type: "string", meta: "PATH", description: "m" } },
  } as const satisfies CommandSpec;
  const both = parse(spec, ["--model", "a", "b"])!;
  assert.deepEqual([both.values.model, both.positionals], ["a", ["b"]]);
  const positional = parse(spec, ["a", "b"])!;
  assert.deepEqual([positional.values.model, positional.positionals], ["a", ["b"]]);
  assert.throws(() => parse(spec, ["--model", "a"]), /^UsageError: missing OUT$/);
  assert.throws(() => parse(spec, ["b"]), /^UsageError: missing OUT$/);
  assert.throws(
    () => parse(spec, ["x", "b", "--model", "a"]),
    /^UsageError: give the IN as an argument or as --model, not both \('x' and 'a'\)$/,
  );
});

Deno.test("parse() reports a missing required option or positional", () => {
  const spec = {
    ...SPEC,
    positionals: [{ name: "IN", description: "in", required: true }],
    options: { config: { type: "string", meta: "FILE", required: true, description: "c" } },
  } as const satisfies CommandSpec;
  assert.throws(() => parse(spec, ["a"]), /^UsageError: --config FILE is required$/);
  assert.throws(() => parse(spec, ["--config", "c"]), /^UsageError: missing IN$/);
  assert.deepEqual(parse(spec, ["a", "--config", "c"])!.positionals, ["a"]);
});

Deno.test("helpText() lists every option of the spec with its placeholder and default", () => {
  for (const cmd of [generate, chat]) {
    const text = helpText(cmd.spec);
    for (const [name, o] of Object.entries(cmd.spec.options)) {
      const flag = o.type === "bool" ? `--${name}` : `--${name} `;
      assert.ok(text.includes(flag), `${cmd.spec.name} --help lacks ${flag}`);
      // Every option the help shows is one the parser accepts.
      if (o.type === "bool") assert.ok(parse(cmd.spec, [`--${name}`]) !== null);
    }
    assert.match(text, /^ {2}-n, --max-tokens N {3}most tokens/m);
    assert.doesNotMatch(text, /.{97,}/, "no help line is longer than 96 columns");
  }
  assert.match(helpText(SPEC), /\n {2}PATH {17}the model \(same as --model\)\n/);
});

Deno.test("main() maps UsageError to exit 2 and GollmError to exit 1 by type", async () => {
  assert.equal(await main(["generate", "--top-k", "-3"]), 2);
  assert.equal(await main(["inspect", "/nonexistent/model.gguf"]), 1);
  assert.equal(await main(["nope"]), 2);
});
