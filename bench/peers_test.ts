import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { formatPeers, type PeerReport } from "./peers.ts";
import { type EngineBench, resolveProtocol } from "./protocol.ts";

const protocol = resolveProtocol();

function bench(engine: string, threads: number, decode: number, prefill: number): EngineBench {
  return {
    engine,
    variant: engine === "gollm" ? "gollm wasm" : "node-llama-cpp 3.22.1",
    file: "/m.gguf",
    threads,
    threadsUsed: engine === "gollm" ? 1 : threads,
    decodeTokS: decode,
    prefillTokS: prefill,
    decodeMs: [1, 2, 3],
    prefillMs: [1, 2, 3],
    loadMs: 10,
    peakRssBytes: 250e6,
    greedyIds: [],
    protocol: { ...protocol, threads },
  };
}

Deno.test("formatPeers() prints ratios, RSS, reused gollm figures and engine errors", () => {
  const g1 = bench("gollm", 1, 28, 130);
  const report: PeerReport = {
    machine: "test CPU, 2 logical cores",
    backend: "wasm",
    cacheType: "f32",
    protocol,
    loadAverage: { start: "1.00 1.00 1.00", end: "2.00 1.50 1.00" },
    pinnedCpu: 1,
    rows: [
      {
        type: "Q8_0",
        threads: 1,
        file: "/m.gguf",
        fileBytes: 108e6,
        gollm: g1,
        gollmReused: false,
        llamaCpp: bench("llama.cpp", 1, 112, 1040),
        load: { gollm: "1.10", llamaCpp: "1.00" },
        decodeRatio: 0.25,
        prefillRatio: 0.125,
        greedyAgree: 200,
      },
      {
        type: "Q8_0",
        threads: 2,
        file: "/m.gguf",
        fileBytes: 108e6,
        gollm: g1,
        gollmReused: true,
        llamaCpp: bench("llama.cpp", 2, 200, 2080),
        load: { gollm: "-", llamaCpp: "1.20" },
        decodeRatio: 0.14,
        prefillRatio: 0.0625,
        greedyAgree: 200,
      },
      {
        type: "Q4_K_M",
        threads: 1,
        file: "/k.gguf",
        fileBytes: 67e6,
        gollm: {
          error: "/k.gguf: tensor 'token_embd.weight' has type Q6_K, which is not supported",
        },
        gollmReused: false,
        llamaCpp: bench("llama.cpp", 1, 150, 900),
        load: { gollm: "1.30", llamaCpp: "1.20" },
        decodeRatio: null,
        prefillRatio: null,
        greedyAgree: null,
      },
    ],
  };
  const text = formatPeers(report);
  const lines = text.split("\n");
  const row = (type: string, threads: string) =>
    lines.find((l) => l.startsWith(type) && l.split(/\s+/)[1] === threads)!.split(/\s+/);
  assert.deepEqual(row("Q8_0", "1").slice(0, 7), [
    "Q8_0",
    "1",
    "108",
    "MB",
    "28.0",
    "112",
    "0.25x",
  ]);
  assert.ok(row("Q8_0", "2").includes("28.0*"), "reused gollm figures are marked");
  assert.ok(row("Q4_K_M", "1").includes("n/a"));
  assert.ok(row("Q8_0", "1").includes("200/200"));
  assert.match(text, /load average 1\.00 1\.00 1\.00 at start, 2\.00 1\.50 1\.00 at end/);
  assert.match(text, /1-thread runs of both engines pinned to CPU 1 \(taskset\)/);
  assert.match(formatPeers({ ...report, pinnedCpu: null }), /not pinned to a CPU/);
  assert.match(text, /^\* gollm has no threads option yet/m);
  assert.match(
    text,
    /^note: gollm on Q4_K_M: \/k\.gguf: tensor 'token_embd\.weight' has type Q6_K/m,
  );
  assert.match(text, /decode = BOS \+ 200 greedy steps .* one 256-token prompt .* median of 3/);
  assert.match(text, /KV 512 slots \(gollm f32, llama\.cpp f16\)/);
  assert.match(formatPeers({ ...report, cacheType: "f16" }), /\(gollm f16, llama\.cpp f16\)/);
});

Deno.test("bench/peers.ts rejects bad options with one error line before running anything", async () => {
  const script = fileURLToPath(new URL("./peers.ts", import.meta.url));
  const run = async (args: string[]) => {
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: o.code, err: new TextDecoder().decode(o.stderr) };
  };
  const threads = await run(["--threads", "0"]);
  assert.equal(threads.code, 1);
  assert.equal(threads.err, "error: --threads: expected an integer >= 1, got '0'\n");
  const types = await run(["--types", "Q9_9"]);
  assert.equal(types.code, 1);
  assert.match(types.err, /^error: --types: 'Q9_9' is not one of F32, F16, .*Q4_K_M/);
  const cpu = await run(["--cpu", "99"]);
  assert.equal(cpu.code, 1);
  assert.match(cpu.err, /^error: --cpu: expected a CPU in 0\.\.\d+ or none, got 99\n$/);
  const cache = await run(["--cache-type", "q8_0"]);
  assert.equal(cache.code, 1);
  assert.equal(cache.err, "error: --cache-type: expected f32 or f16, got 'q8_0'\n");
  const unknown = await run(["--bogus"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /^error: .*--bogus.*\nusage: deno task bench:peers/);
});
