/**
 * `deno task bench:serve`: `gollm serve` under 1, 4, 16 and 32 concurrent streams, and
 * llama.cpp serving 16 sequences from one context on the same file (issue #9's benchmark).
 *
 * ```
 * deno task bench:serve [--streams 1,4,16,32] [--tokens 64] [--backend auto|wasm|jit]
 *                       [--threads 1] [--peer-streams 1,16] [--no-peer] [--cpu N|none]
 *                       [--cache-type f32|f16] [--rounds 3] [--json]
 * ```
 *
 * The file: the g110M shape (configs/gollm-85m.yaml) with random weights (bench/make_model.ts,
 * seed 1), quantised to Q8_0 by gollm's own `quantizeModel` (formats/quantize.ts), cached in
 * `<cache>/bench-models/` outside the repository.
 *
 * gollm: `gollm serve FILE --threads N` in its own process (`--parallel` = the most streams,
 * context 128 per sequence, 64 rows per step; the Q8_0 weights stay Q8_0 in the WASM
 * memory); the bench process is the client. Each stream is one
 * `POST /v1/completions` with `stream: true`, a 16-token prompt (BOS + seeded random ids,
 * different per stream), `max_tokens` 64, `temperature` 0, `ignore_eos`; all streams of a
 * level start together. TTFT = request sent to first SSE chunk (one chunk per token);
 * aggregate tok/s = all generated tokens / wall time from the first request to the last
 * `[DONE]` (prefill included, as vLLM's "output token throughput"). An untimed warm-up
 * first runs every level once with 8 tokens per stream; then `--rounds` rounds (default 3)
 * run every level in turn, and each level reports its round of median aggregate tok/s (one
 * 64-token stream lasts ~0.3 s: a single round moved by 25 % from run to run).
 *
 * The bound, after the server has stopped: bench/step_runner.ts times the engine's decode
 * steps of 1 and 16 rows with the server's options, without HTTP or sampling. A server step
 * of 16 streams cannot take less than the engine's 16-row step, so 16 × 1000 / (its ms) is
 * the most tokens per second 16 streams can generate, and its ratio to the 1-stream rate
 * bounds the ratio issue #9's target asks for (5x) from above.
 *
 * The peer: bench/llama_cpp_serve_runner.ts (node-llama-cpp, `createContext({ sequences })`,
 * the same prompts, 64 greedy tokens each) at the same thread count (`--threads`, default 1).
 * With one thread the server and the peer run pinned to the same CPU (`taskset -c`, the last
 * CPU unless `--cpu N`; `--cpu none`: not pinned), the client (this process) on any.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { quantizeModel } from "../formats/quantize.ts";
import { installPeer, peerCacheDir } from "./llama_cpp.ts";
import type { ServeRunnerReply, ServeRunnerRequest } from "./llama_cpp_serve_runner.ts";
import type { StepRunnerReply, StepRunnerRequest } from "./step_runner.ts";
import { benchModels } from "./make_model.ts";
import { loadAverage, prefillPrompt } from "./protocol.ts";
import { runRunner, tasksetAvailable } from "./subprocess.ts";
import { V8_FLAGS } from "../codegen/wasm_features.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CTX = 128; // tokens per sequence: 16 prompt + 64 generated fit
const PROMPT = 16;
const VOCAB = 32768; // configs/gollm-85m.yaml
const BOS = VOCAB - 2; // bench/make_model.ts byteLevelVocab: BOS is the second to last id

/** One concurrency level's figures. */
export interface LevelResult {
  /** Concurrent streams (sequences). */
  streams: number;
  /** Generated tokens over all streams / wall seconds. */
  aggTokS: number;
  /** Median time to first token, ms. */
  ttftP50: number;
  /** 99th percentile time to first token, ms. */
  ttftP99: number;
  /** Wall time of the level, ms. */
  wallMs: number;
}

/** Nearest-rank percentile. */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function level(streams: number, ttft: number[], wallMs: number, generated: number): LevelResult {
  return {
    streams,
    aggTokS: (generated * 1000) / wallMs,
    ttftP50: percentile(ttft, 50),
    ttftP99: percentile(ttft, 99),
    wallMs,
  };
}

/** The Q8_0 file, made with gollm's quantiser from the cached random F32 file. */
async function benchFile(progress: (m: string) => void): Promise<string> {
  const { F32 } = await benchModels({ types: [], onProgress: progress });
  const out = `${peerCacheDir()}/bench-models/${
    F32.replace(/^.*\//, "").replace(/-f32\.gguf$/, "")
  }-q8_0-gollm.gguf`;
  try {
    await Deno.stat(out);
  } catch {
    progress(`quantising to Q8_0 with gollm's quantizeModel: ${out}`);
    await quantizeModel(F32, out, "Q8_0");
  }
  return out;
}

/** Starts `gollm serve` on a free port; resolves with its URL and a stop function. */
async function startServer(
  file: string,
  parallel: number,
  backend: string,
  threads: number,
  cpus: string | undefined,
  cacheType: string,
) {
  const deno = [
    "run",
    "-A",
    V8_FLAGS,
    `${ROOT}cli/main.ts`,
    "serve",
    file,
    "--port",
    "0",
    "--parallel",
    `${parallel}`,
    "--ctx-size",
    `${CTX}`,
    "--batch-size",
    "64",
    "--backend",
    backend,
    "--threads",
    `${threads}`,
    "--alias",
    "bench",
    "--cache-type-k",
    cacheType,
    "--cache-type-v",
    cacheType,
  ];
  const child = new Deno.Command(cpus === undefined ? Deno.execPath() : "taskset", {
    args: cpus === undefined ? deno : ["-c", cpus, Deno.execPath(), ...deno],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  let url = "";
  while (!url) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`gollm serve exited: ${err.trim().split("\n").at(-1)}`);
    err += value;
    url = /listening on (http:\/\/[^ ]+)/.exec(err)?.[1] ?? "";
  }
  // `loaded FILE (gguf, wasm, 2 threads) in 0.3 s`: what the server resolved.
  const loaded = /loaded \S+ \(([^)]*)\)/.exec(err)?.[1] ?? "?";
  const drain = (async () => {
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
  })();
  return {
    url,
    loaded,
    async stop() {
      child.kill("SIGTERM");
      await drain;
      await child.status;
    },
  };
}

/** One stream: TTFT (first SSE chunk) and generated tokens (from usage). */
async function stream(url: string, prompt: number[], tokens: number, t0: number) {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "bench",
      prompt,
      max_tokens: tokens,
      temperature: 0,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = NaN, buf = "", generated = 0;
  for await (const chunk of res.body.pipeThrough(new TextDecoderStream())) {
    if (Number.isNaN(ttft)) ttft = performance.now() - t0;
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, i).replace(/^data: /, "");
      buf = buf.slice(i + 2);
      if (line === "[DONE]") continue;
      const o = JSON.parse(line);
      if (o.error) throw new Error(o.error.message);
      if (o.usage) generated = o.usage.completion_tokens;
    }
  }
  return { ttft, generated };
}

async function gollmLevel(url: string, streams: number, tokens: number): Promise<LevelResult> {
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from(
      { length: streams },
      (_, i) => stream(url, prefillPrompt(PROMPT, VOCAB, BOS, 100 + i), tokens, t0),
    ),
  );
  const wall = performance.now() - t0;
  return level(streams, runs.map((r) => r.ttft), wall, runs.reduce((a, r) => a + r.generated, 0));
}

async function peerLevel(
  file: string,
  streams: number,
  tokens: number,
  threads: number,
  peerDir: string,
  progress: (m: string) => void,
  cpus: string | undefined,
): Promise<LevelResult> {
  const req: ServeRunnerRequest = {
    peerDir,
    file,
    prompts: Array.from({ length: streams }, (_, i) => prefillPrompt(PROMPT, VOCAB, BOS, 100 + i)),
    tokens,
    threads,
    ctxPerSeq: CTX,
  };
  const r = await runRunner<ServeRunnerReply>(
    fileURLToPath(new URL("./llama_cpp_serve_runner.ts", import.meta.url)),
    req,
    {
      denoFlags: ["-A", "--quiet", "--no-config", "--no-lock", "--node-modules-dir=manual"],
      env: { NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true", UV_THREADPOOL_SIZE: "1" },
      onProgress: progress,
      cpus,
      what: `llama.cpp ${streams} sequences on ${file}`,
    },
  );
  return level(streams, r.ttftMs, r.wallMs, r.generated);
}

/** The engine's decode steps alone (bench/step_runner.ts) with the server's options. */
async function engineSteps(
  file: string,
  backend: string,
  threads: number,
  parallel: number,
  cacheType: "f32" | "f16",
  rounds: number,
  progress: (m: string) => void,
  cpus: string | undefined,
): Promise<StepRunnerReply> {
  const req: StepRunnerRequest = {
    file,
    backend: backend as StepRunnerRequest["backend"],
    threads,
    parallel,
    ctxSize: CTX,
    batchSize: 64,
    cacheType,
    rows: [1, 16].filter((n) => n <= parallel),
    start: PROMPT,
    steps: 64,
    rounds,
  };
  return await runRunner<StepRunnerReply>(
    fileURLToPath(new URL("./step_runner.ts", import.meta.url)),
    req,
    {
      denoFlags: ["-A", V8_FLAGS],
      onProgress: progress,
      what: `engine steps on ${file}`,
      cpus,
    },
  );
}

const fmt = (r: LevelResult) =>
  `${String(r.streams).padStart(7)}  ${r.aggTokS.toFixed(1).padStart(9)}  ${
    r.ttftP50.toFixed(0).padStart(8)
  }  ${r.ttftP99.toFixed(0).padStart(8)}  ${(r.wallMs / 1000).toFixed(1).padStart(6)}`;

if (import.meta.main) {
  const args = Deno.args;
  const opt = (name: string, def: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : def;
  };
  const list = (s: string) => s.split(",").map((x) => Number(x.trim()));
  const levels = list(opt("streams", "1,4,16,32"));
  const peerLevels = list(opt("peer-streams", "1,16"));
  const tokens = Number(opt("tokens", "64"));
  const rounds = Number(opt("rounds", "3"));
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error(`error: --rounds: expected an integer >= 1, got '${opt("rounds", "3")}'`);
    Deno.exit(1);
  }
  const backend = opt("backend", "auto");
  const threads = Number(opt("threads", "1"));
  const cacheType = opt("cache-type", "f32");
  if (cacheType !== "f32" && cacheType !== "f16") {
    console.error(`error: --cache-type: expected f32 or f16, got '${cacheType}'`);
    Deno.exit(1);
  }
  const json = args.includes("--json");
  const log = (m: string) => console.error(m);

  const file = await benchFile(log);
  log(
    `bench:serve on ${file} (backend ${backend}, ${threads} thread(s)), load average ` +
      loadAverage(),
  );
  // One thread: the server and the peer on the same CPU (the last; a VM's vCPUs can differ
  // by 2x), the client free; more threads: nothing pinned. `--cpu none` pins nothing.
  const cpuOpt = opt("cpu", "");
  const lastCpu = Math.max(0, (navigator.hardwareConcurrency ?? 1) - 1);
  const cpus = threads === 1 && cpuOpt !== "none" && await tasksetAvailable()
    ? cpuOpt || String(lastCpu)
    : undefined;
  log(cpus === undefined ? "not pinned to a CPU" : `server and peer pinned to CPU ${cpus}`);
  const server = await startServer(file, Math.max(...levels), backend, threads, cpus, cacheType);
  log(`gollm serve loaded ${server.loaded}`);
  const gollm: LevelResult[] = [];
  try {
    // Warm-up: every level once, 8 tokens per stream, so each level's kernels (the 1-row
    // matvecs, the in-register matmuls of a few rows, the panels) are optimised before any
    // is timed; a level that ran on V8's baseline code first measured slow.
    for (const n of levels) {
      log(`gollm serve: warm-up, ${n} stream(s) x 8 tokens`);
      await gollmLevel(server.url, n, 8);
    }
    // Rounds alternate between the levels, so a burst of load from another process falls
    // on several; each level reports its round of median aggregate tok/s.
    const runs: LevelResult[][] = levels.map(() => []);
    for (let r = 1; r <= rounds; r++) {
      for (const [i, n] of levels.entries()) {
        log(`gollm serve: ${n} stream(s) x ${tokens} tokens, round ${r}/${rounds}`);
        runs[i].push(await gollmLevel(server.url, n, tokens));
      }
    }
    for (const rs of runs) {
      gollm.push([...rs].sort((a, b) => a.aggTokS - b.aggTokS)[(rs.length - 1) >> 1]);
    }
  } finally {
    await server.stop();
  }
  const steps = await engineSteps(
    file,
    backend,
    threads,
    Math.max(...levels),
    cacheType,
    rounds,
    log,
    cpus,
  );
  const stepMs = (rows: number) => steps.steps.find((x) => x.rows === rows)?.ms ?? NaN;
  const peer: LevelResult[] = [];
  if (!args.includes("--no-peer")) {
    log(`llama.cpp, load average ${loadAverage()}`);
    const peerDir = await installPeer({ onProgress: log });
    for (const n of peerLevels) {
      peer.push(await peerLevel(file, n, tokens, threads, peerDir, log, cpus));
    }
  }
  const one = (rs: LevelResult[]) => rs.find((r) => r.streams === 1)?.aggTokS ?? NaN;
  const ratio = (rs: LevelResult[]) => (rs.find((r) => r.streams === 16)?.aggTokS ?? NaN) / one(rs);
  // The most 16 streams can generate: one 16-row engine step per 16 tokens.
  const bound16 = 16000 / stepMs(16);
  if (json) {
    console.log(
      JSON.stringify({
        file,
        backend,
        loaded: server.loaded,
        tokens,
        gollm,
        peer,
        engineSteps: steps.steps,
        bound16: { tokS: bound16, ratio: bound16 / one(gollm) },
        threads,
        cpus,
        cacheType,
      }),
    );
  } else {
    const head = "streams  agg tok/s  TTFT p50  TTFT p99  wall s";
    console.log(
      `gollm serve (${server.loaded}; --threads ${threads}; KV ${cacheType}, llama.cpp's f16), ` +
        `g110M Q8_0, ${tokens} tokens/stream${
          cpus === undefined ? "" : `; server and peer pinned to CPU ${cpus}`
        }`,
    );
    console.log(head);
    for (const r of gollm) console.log(fmt(r));
    console.log(`16 streams / 1 stream: ${ratio(gollm).toFixed(2)}x (target >= 5x)`);
    // The bound needs a 16-row step (levels up to 16 streams or more).
    if (Number.isFinite(bound16)) {
      console.log(
        `engine alone (no HTTP, no sampling): a decode step of 1 row ${stepMs(1).toFixed(2)} ` +
          `ms, of 16 rows ${stepMs(16).toFixed(2)} ms; 16 streams can generate at most ` +
          `${bound16.toFixed(1)} tok/s = ${(bound16 / one(gollm)).toFixed(2)}x the 1-stream rate`,
      );
    }
    if (peer.length > 0) {
      console.log(`\nllama.cpp (node-llama-cpp, ${threads} thread(s), N sequences in one context)`);
      console.log(head);
      for (const r of peer) console.log(fmt(r));
      console.log(`16 sequences / 1 sequence: ${ratio(peer).toFixed(2)}x`);
      const g16 = gollm.find((r) => r.streams === 16), p16 = peer.find((r) => r.streams === 16);
      if (g16 && p16) {
        console.log(`gollm / llama.cpp at 16 streams: ${(g16.aggTokS / p16.aggTokS).toFixed(2)}x`);
      }
    }
  }
}
