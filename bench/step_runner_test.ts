import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { V8_FLAGS } from "../codegen/wasm_features.ts";
import { ASSETS, haveFiles } from "../tests/assets.ts";
import type { StepRunnerReply, StepRunnerRequest } from "./step_runner.ts";

const GGUF = `${ASSETS}/stories260K/stories260K.gguf`;
const haveStories = haveFiles("bench/step_runner.ts tests", [GGUF]);

const request: StepRunnerRequest = {
  file: GGUF,
  backend: "wasm",
  threads: 2,
  parallel: 4,
  ctxSize: 32,
  batchSize: 8,
  cacheType: "f32",
  rows: [1, 4],
  start: 8,
  steps: 4,
  rounds: 1,
};

async function run(req: StepRunnerRequest) {
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      V8_FLAGS,
      fileURLToPath(new URL("./step_runner.ts", import.meta.url)),
      JSON.stringify(req),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(o.stderr).split("\n");
  return {
    code: o.code,
    out: new TextDecoder().decode(o.stdout),
    errors: err.filter((l) => l.startsWith("error: ")),
  };
}

Deno.test({
  name: "bench/step_runner.ts times decode steps of each row count on worker threads",
  ignore: !haveStories,
  fn: async () => {
    const r = await run(request);
    assert.equal(r.code, 0, r.errors.join("\n"));
    const reply = JSON.parse(r.out) as StepRunnerReply;
    assert.deepEqual(reply.steps.map((s) => s.rows), [1, 4]);
    for (const s of reply.steps) assert.ok(Number.isFinite(s.ms) && s.ms > 0, `${s.ms}`);
  },
});

Deno.test({
  name: "bench/step_runner.ts refuses rows beyond its slots and steps beyond the context",
  ignore: !haveStories,
  fn: async () => {
    const rows = await run({ ...request, rows: [1, 5] });
    assert.equal(rows.code, 1);
    assert.deepEqual(rows.errors, ["error: rows: expected integers 1..parallel (4), got 5"]);
    const ctx = await run({ ...request, start: 30 });
    assert.equal(ctx.code, 1);
    assert.deepEqual(ctx.errors, ["error: start + steps: expected <= ctxSize (32), got 34"]);
  },
});
