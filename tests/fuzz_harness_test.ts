import assert from "node:assert/strict";
import {
  assertClean,
  fuzz,
  type FuzzTarget,
  ggufFields,
  llama2cFields,
  mutate,
} from "./fuzz_harness.ts";
import { ROOT } from "./assets.ts";

const BASE = `${ROOT}tests/fixtures/gguf/llama.gguf`;
const target = (fn: string): FuzzTarget => ({
  name: fn,
  base: BASE,
  mutations: ["bitflip"],
  loader: { module: "tests/fuzz_loaders.ts", fn },
});

Deno.test("fuzz() fails a case that hangs, exhausts memory, throws a non-GollmError, a multi-line or an anonymous one", async () => {
  const cases: [string, RegExp][] = [
    ["spin", /seed 1 case 0 \(bitflip @\d+.*\): no result after 1500 ms \(hang\)/],
    ["hog", /seed 1 case 0 .*: (resident memory \d+ MiB > 300|child exited)/],
    ["typeError", /not a GollmError: TypeError: x\.entries is not a function/],
    ["multiLine", /multi-line message/],
    ["anonymous", /message does not name .*case0-llama\.gguf: something is wrong/],
  ];
  for (const [fn, re] of cases) {
    const report = await fuzz(target(fn), {
      seed: 1,
      cases: 1,
      timeoutMs: fn === "hog" ? 120_000 : 1500,
      maxRssMb: 300,
      heapMb: 2048,
    });
    assert.equal(report.results.length, 1, fn);
    assert.equal(report.results[0].outcome, "fail", fn);
    assert.throws(() => assertClean(report), re, fn);
  }
});

Deno.test("fuzz() continues after a killed case with the next one in a fresh child", async () => {
  const report = await fuzz(target("spin"), { seed: 3, cases: 2, timeoutMs: 800 });
  assert.deepEqual(report.results.map((r) => [r.i, r.outcome]), [[0, "fail"], [1, "fail"]]);
});

Deno.test("mutate() is reproducible per (seed, case) and the field finders locate header fields", async () => {
  const base = await Deno.readFile(BASE);
  const t = { mutations: ["bitflip", "overwrite", "truncate", "insert", "field"] as const };
  const spec = { mutations: [...t.mutations], fields: ggufFields };
  for (let i = 0; i < 20; i++) {
    assert.deepEqual(mutate(base, spec, 9, i), mutate(base, spec, 9, i));
  }
  assert.notDeepEqual(mutate(base, spec, 9, 0).bytes, mutate(base, spec, 10, 0).bytes);
  // The GGUF walker reaches every tensor info: 2 fields per dim + type + offset each.
  const fields = ggufFields(base);
  const dv = new DataView(base.buffer);
  assert.ok(fields.length > 3 + Number(dv.getBigUint64(16, true)));
  assert.deepEqual(llama2cFields(new Uint8Array(28)).map(([o]) => o), [0, 4, 8, 12, 16, 20, 24]);
});
