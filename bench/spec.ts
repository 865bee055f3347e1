/**
 * `deno task bench:spec`: the speed-up of speculative decoding on the default model
 * (models/default), greedy, with its draft model (models/draft) and with n-gram prompt
 * lookup, against plain decoding of the same prompts in the same run.
 *
 * For each backend, every prompt is generated once per mode to warm the kernels (the
 * multi-row verify steps too), then `--rounds` times per mode, the modes interleaved so
 * that a busy machine slows them alike. Printed per mode:
 * - decode tok/s over wall time (`decodeTokens / decodeMs`, totals over all runs) and over
 *   CPU time (process CPU while generating: steadier on a shared machine), and each as a
 *   speed-up over plain decoding;
 * - the acceptance rate (drafts accepted / drafted) and the tokens per target step (the
 *   speed-up in target forward passes);
 * - whether the greedy output equals plain decoding's (it must).
 *
 * Then what a step costs, which decides the wall-time speed-up: the CPU time of one target
 * step of n rows (a verify of n - 1 drafts) relative to a one-row decode step, and of one
 * draft-model decode step. Speculation pays when `tokens per step / (cost(k + 1 rows) +
 * k · draft cost)` exceeds 1: the rows of a step must cost much less than separate steps
 * (memory-bound decoding of large models), and the draft little.
 *
 * Usage: deno task bench:spec [--backends jit,wasm] [--tokens 200] [--rounds 3]
 *   [--draft-max 4] [--json]
 *        deno task bench:spec --cost-config configs/gollm-85m.yaml [--backends wasm]
 *   (only the step-cost table, for that config on random weights: how much a larger,
 *   memory-bound model leaves for speculation to win)
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { parseConfigYaml } from "../core/config.ts";
import { randomWeights } from "../core/weights.ts";
import {
  type Backend,
  createModel,
  type GenerateOptions,
  loadModel,
  type Model,
} from "../runtime/model.ts";
import { NgramProposer } from "../runtime/speculative_ngram.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Prompts in the style of the corpus (State of the Union addresses). */
const PROMPTS = [
  "The state of the Union",
  "Fellow citizens of the Senate and of the House of Representatives:",
  "Our foreign relations with",
  "The Congress has passed laws to",
];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    backends: { type: "string", default: "jit,wasm" },
    tokens: { type: "string", default: "200" },
    rounds: { type: "string", default: "3" },
    "draft-max": { type: "string", default: "4" },
    json: { type: "boolean", default: false },
    "cost-config": { type: "string" },
  },
});
const backends = values.backends.split(",") as Backend[];
const maxTokens = Number(values.tokens), rounds = Number(values.rounds);
const draftMax = Number(values["draft-max"]);

/** Totals of one mode over its runs. */
interface Totals {
  decodeTokens: number;
  decodeMs: number;
  cpuMs: number;
  steps: number;
  drafted: number;
  accepted: number;
  identical: boolean;
}

/** One greedy generation: its ids, decode figures and CPU time. */
async function once(model: Model, prompt: string, options: GenerateOptions) {
  const c0 = process.cpuUsage();
  for await (const _ of model.generate(prompt, { temperature: 0, maxTokens, ...options })) {
    // the text is not needed: the ids are in the stats
  }
  const c = process.cpuUsage(c0);
  const s = model.stats!;
  return { s, cpuMs: (c.user + c.system) / 1000 };
}

type Mode = "plain" | "draft model" | "n-gram lookup";
const MODES: Mode[] = ["plain", "draft model", "n-gram lookup"];

/** CPU ms of one forward of `n` rows at position 64, the least disturbed of repeated runs. */
function stepCpuMs(model: Model, n: number): number {
  const tokens = Array.from({ length: 64 + n }, (_, i) => (i * 37) % 4000);
  model.forward(tokens.slice(0, 64), 0);
  let best = Infinity;
  for (let rep = 0; rep < 7; rep++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < 10; i++) model.forwardAll(tokens.slice(64), 64);
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / 1000 / 10);
  }
  return best;
}
const ROWS = [1, 2, 3, 5, 9];

if (values["cost-config"]) {
  const file = values["cost-config"];
  const c = parseConfigYaml(await Deno.readTextFile(file), file);
  const w = randomWeights(c, 1);
  console.log(`${file} on random weights: CPU time of one target step of n rows`);
  for (const backend of backends) {
    const m = createModel(c, w, null, { backend, kvCapacity: Math.min(256, c.context_length) });
    const one = stepCpuMs(m, 1);
    console.log(
      `${backend.padEnd(8)} decode ${one.toFixed(2)} ms  ` +
        ROWS.slice(1).map((n) => `${n} rows ${(stepCpuMs(m, n) / one).toFixed(2)}x`).join("  "),
    );
  }
  Deno.exit(0);
}

const results: Record<string, Record<Mode, Totals & { tokS: number; cpuTokS: number }>> = {};
const costs: Record<string, { rows: Record<number, number>; draft: number }> = {};
for (const backend of backends) {
  const target = await loadModel(`${ROOT}models/default`, { backend });
  const draft = await loadModel(`${ROOT}models/draft`, { backend });
  const options: Record<Mode, GenerateOptions> = {
    plain: {},
    "draft model": { draft, draftMax },
    "n-gram lookup": { draft: new NgramProposer(), draftMax },
  };
  const plainIds = new Map<string, string>();
  for (const prompt of PROMPTS) {
    for (const mode of MODES) {
      const { s } = await once(target, prompt, options[mode]); // warm-up
      if (mode === "plain") plainIds.set(prompt, s.tokens.join());
    }
  }
  const totals = Object.fromEntries(MODES.map((m) => [m, {
    decodeTokens: 0,
    decodeMs: 0,
    cpuMs: 0,
    steps: 0,
    drafted: 0,
    accepted: 0,
    identical: true,
  }])) as Record<Mode, Totals>;
  for (let r = 0; r < rounds; r++) {
    for (const prompt of PROMPTS) {
      for (let i = 0; i < MODES.length; i++) {
        const mode = MODES[(i + r) % MODES.length]; // rotate the order between rounds
        const { s, cpuMs } = await once(target, prompt, options[mode]);
        const t = totals[mode];
        t.decodeTokens += s.decodeTokens;
        t.decodeMs += s.decodeMs;
        t.cpuMs += cpuMs;
        t.steps += s.speculative?.steps ?? s.decodeTokens;
        t.drafted += s.speculative?.drafted ?? 0;
        t.accepted += s.speculative?.accepted ?? 0;
        t.identical &&= s.tokens.join() === plainIds.get(prompt);
      }
    }
  }
  const rows: Record<number, number> = {};
  for (const n of ROWS) rows[n] = stepCpuMs(target, n);
  costs[backend] = { rows, draft: stepCpuMs(draft, 1) };
  results[backend] = Object.fromEntries(MODES.map((m) => {
    const t = totals[m];
    return [m, {
      ...t,
      tokS: t.decodeTokens / t.decodeMs * 1000,
      cpuTokS: t.decodeTokens / t.cpuMs * 1000,
    }];
  })) as (typeof results)[string];
}

if (values.json) {
  console.log(JSON.stringify({ maxTokens, rounds, draftMax, prompts: PROMPTS, results, costs }));
} else {
  const load = Deno.loadavg().map((x) => x.toFixed(1)).join(" ");
  console.log(
    `default model (3.4M params) greedy, ${PROMPTS.length} prompts × ${maxTokens} tokens × ` +
      `${rounds} rounds per mode; draft: models/draft; --draft-max ${draftMax} (adaptive); ` +
      `load average ${load} on ${navigator.hardwareConcurrency} CPUs`,
  );
  const pad = (x: string, n: number) => x.padStart(n);
  console.log(
    "\nbackend  mode            decode tok/s  speed-up  CPU tok/s  speed-up  acceptance  " +
      "tokens/step  same ids",
  );
  for (const [backend, r] of Object.entries(results)) {
    for (const m of MODES) {
      const x = r[m], p = r.plain;
      console.log(
        `${backend.padEnd(8)} ${m.padEnd(15)} ${pad(x.tokS.toFixed(1), 12)} ` +
          `${pad((x.tokS / p.tokS).toFixed(2) + "x", 9)} ${pad(x.cpuTokS.toFixed(1), 10)} ` +
          `${pad((x.cpuTokS / p.cpuTokS).toFixed(2) + "x", 9)} ` +
          `${pad(m === "plain" ? "-" : (x.accepted / x.drafted * 100).toFixed(1) + " %", 11)} ` +
          `${pad((x.decodeTokens / x.steps).toFixed(2), 12)} ${pad(x.identical ? "yes" : "NO", 9)}`,
      );
    }
  }
  console.log(
    "\ncost of one step, CPU time relative to a one-row target decode step (min of 7 × 10):",
  );
  console.log(
    "backend  decode ms  " + ROWS.slice(1).map((n) => `${n} rows`.padStart(7)).join(" ") +
      "  draft-model decode",
  );
  for (const [backend, c] of Object.entries(costs)) {
    const one = c.rows[1];
    console.log(
      `${backend.padEnd(8)} ${one.toFixed(2).padStart(9)}  ` +
        ROWS.slice(1).map((n) => `${(c.rows[n] / one).toFixed(2)}x`.padStart(7)).join(" ") +
        `  ${(c.draft / one).toFixed(2)}x`.padStart(20),
    );
  }
}
