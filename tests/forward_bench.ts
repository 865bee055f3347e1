/**
 * `deno bench tests/forward_bench.ts`: decode and prefill of every backend of
 * tests/forward_cases.ts `BACKENDS` (reference, jit, wasm) on random weights, for a small
 * test config and for configs/gollm-85m.yaml. Each group has the reference as its baseline,
 * so `deno bench` prints the speed-up of the generated backends.
 *
 * Set GOLLM_BENCH_SMALL_ONLY=1 to skip the 85M model (it needs ~0.5 GB and a minute).
 */
import { loadConfig, type ModelConfig } from "../core/config.ts";
import { randomWeights } from "../core/weights.ts";
import { BACKENDS } from "./forward_cases.ts";

const root = new URL("../configs/", import.meta.url);
const smallOnly = Deno.env.get("GOLLM_BENCH_SMALL_ONLY") === "1";
const configs: [string, ModelConfig, { n: number; prefill: number }][] = [
  ["test-llama", await loadConfig(new URL("test-llama.yaml", root).pathname), {
    n: 200,
    prefill: 32,
  }],
];
if (!smallOnly) {
  configs.push([
    "gollm-85m",
    await loadConfig(new URL("gollm-85m.yaml", root).pathname),
    { n: 8, prefill: 32 },
  ]);
}

for (const [name, config, { n, prefill }] of configs) {
  const kvCapacity = 128;
  const weights = randomWeights(config, 1);
  const prompt = Array.from({ length: prefill }, (_, i) => (i * 7919) % config.vocab_size);
  for (const { name: backend, build } of BACKENDS) {
    const fp = build(config, weights, { kvCapacity });
    fp.forward(prompt, 0); // warm-up and a filled cache
    let pos = prefill;
    Deno.bench({
      name: `${name} decode 1 token (${backend})`,
      group: `${name} decode`,
      baseline: backend === "reference",
      n: n * 4,
      warmup: 2,
      fn() {
        fp.forward([pos % config.vocab_size], pos);
        pos = pos + 1 >= kvCapacity * 2 ? prefill : pos + 1; // stays past the ring's wrap
      },
    });
    Deno.bench({
      name: `${name} prefill ${prefill} tokens (${backend})`,
      group: `${name} prefill`,
      baseline: backend === "reference",
      n,
      warmup: 1,
      fn() {
        fp.forward(prompt, 0);
      },
    });
  }
}
