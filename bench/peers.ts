/**
 * `deno task bench:peers`: gollm against llama.cpp on the same GGUF files, in the same run
 * (issue #8, item 6).
 *
 * For each type (default F16, Q8_0, Q4_K_M of a random-weight g110M, made by
 * bench/make_model.ts and quantised by llama.cpp's own quantiser) at 1 and 2 threads, it
 * prints gollm's and llama.cpp's decode and prefill tok/s, their ratios (gollm / llama.cpp),
 * each engine's peak RSS and the machine's load average when each engine ran. The engines
 * alternate, one process per timed run (llama.cpp, gollm, llama.cpp, ... `--runs` times, each
 * process after its own warm-up), so a burst of load on this shared machine falls on both
 * engines rather than on all of one engine's runs; the figures are the medians. `--json`
 * prints one JSON object instead. Progress goes to stderr. Each engine runs in its own
 * process (bench/gollm.ts, bench/llama_cpp.ts) with the protocol of bench/protocol.ts. The
 * 1-thread runs of both engines are pinned to one CPU (`taskset -c`, the last CPU unless
 * `--cpu N`; `--cpu none` leaves them free): a VM's vCPUs can differ by 2x.
 *
 * ```
 * deno task bench:peers [--types F16,Q8_0,Q4_K_M] [--threads 1,2] [--seed 1]
 *   [--decode-steps 200] [--prefill-tokens 256] [--warmup 1] [--runs 3]
 *   [--backend wasm] [--cache-type f32|f16] [--cpu N|none] [--json] [--save REPORT.json]
 * ```
 *
 * `--save` also writes the JSON report to a file (after every finished row, so a stopped run
 * keeps what it measured) while the table goes to stdout. All 1-thread rows run first. The KV
 * cache has 512 slots, or as many as a longer run needs (`--decode-steps 2000`: 2048, decode
 * at long context, where attention reads the whole cache every step).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import { writeFileAtomic } from "../core/files.ts";
import { randomWeights } from "../core/weights.ts";
import { type Backend, createModel } from "../runtime/model.ts";
import type { KvCacheType } from "../core/forward.ts";
import { V8_FLAGS } from "../codegen/wasm_features.ts";
import { gollmBench } from "./gollm.ts";
import { installPeer, LLAMA_FTYPES, llamaCppBench } from "./llama_cpp.ts";
import { BENCH_TYPES, benchModels } from "./make_model.ts";
import { tasksetAvailable } from "./subprocess.ts";
import {
  type EngineBench,
  loadAverage,
  median,
  type ResolvedProtocol,
  resolveProtocol,
} from "./protocol.ts";

/** One (type, threads) row of the comparison. */
export interface PeerRow {
  /** llama.cpp file type, e.g. `Q8_0`. */
  type: string;
  /** Threads requested of both engines. */
  threads: number;
  /** The GGUF file both engines ran. */
  file: string;
  /** Its size in bytes. */
  fileBytes: number;
  /** gollm's figures, or why it could not run the file. */
  gollm: EngineBench | { error: string };
  /** True when gollm has no threads option and these are its 1-thread figures again. */
  gollmReused: boolean;
  /** llama.cpp's figures, or why it could not run the file. */
  llamaCpp: EngineBench | { error: string };
  /** 1-minute load average just before each engine ran. */
  load: { gollm: string; llamaCpp: string };
  /** gollm decode tok/s ÷ llama.cpp's, or null when either failed. */
  decodeRatio: number | null;
  /** gollm prefill tok/s ÷ llama.cpp's, or null when either failed. */
  prefillRatio: number | null;
  /** Leading greedy ids on which both engines agree (of `decodeSteps`). */
  greedyAgree: number | null;
}

/** The whole report (`--json`). */
export interface PeerReport {
  /** CPU model and logical cores. */
  machine: string;
  /** gollm's backend. */
  backend: Backend;
  /** gollm's KV cache type (K and V; llama.cpp runs its default, f16). */
  cacheType: KvCacheType;
  /** The protocol both engines followed. */
  protocol: ResolvedProtocol;
  /** Load average (1, 5, 15 min) before and after the run. */
  loadAverage: { start: string; end: string };
  /**
   * The CPU both engines' 1-thread runs were pinned to (`taskset -c`), or null when not
   * pinned (no taskset, or `--cpu none`).
   */
  pinnedCpu: number | null;
  /** One row per (type, threads). */
  rows: PeerRow[];
}

const ok = (r: EngineBench | { error: string }): r is EngineBench => !("error" in r);

/** Whether this gollm's Model takes a thread count (probed on a tiny in-memory model). */
function gollmHasThreads(): boolean {
  const c = parseConfig({
    arch: "llama",
    vocab_size: 8,
    dim: 8,
    n_layers: 1,
    n_heads: 1,
    n_kv_heads: 1,
    head_dim: 8,
    hidden_dim: 8,
    context_length: 4,
    norm: "rmsnorm",
    norm_eps: 1e-5,
    rope_theta: 10000,
    rope_style: "half",
    attn_bias: false,
    mlp: "swiglu",
    tie_embeddings: true,
    tokenizer: "none",
  }, "<threads probe>");
  const options = { backend: "wasm" as const, threads: 2 };
  const m = createModel(c, randomWeights(c, 1), null, options);
  const threads = (m as unknown as { threads?: unknown }).threads;
  (m as unknown as { close?: () => void }).close?.();
  return threads === 2;
}

function machine(): string {
  let cpu = "unknown CPU";
  try {
    cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpu;
  } catch { /* not Linux */ }
  return `${cpu}, ${navigator.hardwareConcurrency} logical cores`;
}

/**
 * One engine's figures over its alternating rounds (one process each, one timed run each):
 * the median of the runs, the largest peak RSS, the median load time, the first run's greedy
 * ids; the protocol as asked (`runs` timed runs). The first failed round's error, if any.
 */
function mergeRuns(
  rounds: (EngineBench | { error: string })[],
  runs: number,
): EngineBench | { error: string } {
  const failed = rounds.find((r) => !ok(r));
  if (failed) return failed;
  const list = rounds as EngineBench[];
  const first = list[0];
  const decodeMs = list.flatMap((r) => r.decodeMs);
  const prefillMs = list.flatMap((r) => r.prefillMs);
  const p = first.protocol;
  return {
    ...first,
    decodeTokS: p.decodeSteps / (median(decodeMs) / 1000),
    prefillTokS: p.prefillTokens / (median(prefillMs) / 1000),
    decodeMs,
    prefillMs,
    loadMs: median(list.map((r) => r.loadMs)),
    peakRssBytes: Math.max(...list.map((r) => r.peakRssBytes)),
    protocol: { ...p, runs },
  };
}

async function attempt(
  run: () => Promise<EngineBench>,
): Promise<EngineBench | { error: string }> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof GollmError)) throw e;
    return { error: e.message };
  }
}

/** Options of {@linkcode runPeers}. */
export interface RunPeersOptions {
  /** Types (keys of LLAMA_FTYPES; default F16, Q8_0, Q4_K_M). */
  types?: readonly string[];
  /** Thread counts (default [1, 2]). */
  threads?: readonly number[];
  /** Weight seed of the bench model (default 1). */
  seed?: number;
  /** The protocol (threads are taken from `threads`). */
  protocol?: Omit<Parameters<typeof resolveProtocol>[0], "threads">;
  /** gollm backend (default `wasm`). */
  backend?: Backend;
  /** gollm's KV cache type for K and V (default f32). */
  cacheType?: KvCacheType;
  /** Receives one line per step. */
  onProgress?: (message: string) => void;
  /** Called with the report so far after each finished row (to save partial results). */
  onRow?: (report: PeerReport) => void | Promise<void>;
  /**
   * The CPU to pin both engines' 1-thread runs to, or null for none (default: the last
   * CPU, where `taskset` exists). The vCPUs of a VM need not be equal: on this project's
   * machine one of the two decoded g110M about 2x slower than the other, so unpinned
   * single-thread runs landed on either and their ratios scattered.
   */
  cpu?: number | null;
}

/**
 * Runs the comparison: installs the peer, makes the files, then for each type and thread
 * count benchmarks llama.cpp and gollm (each in its own process).
 *
 * @param options Types, threads, seed, protocol, backend, progress.
 * @returns The report.
 * @throws {GollmError} when the peer cannot be installed or the files cannot be made (an
 *   engine failing on one file is recorded in its row instead).
 * @example
 * ```ts ignore
 * const report = await runPeers({ types: ["Q8_0"], threads: [1] });
 * console.log(formatPeers(report));
 * ```
 */
export async function runPeers(options: RunPeersOptions = {}): Promise<PeerReport> {
  const log = options.onProgress ?? (() => {});
  const types = (options.types ?? BENCH_TYPES).map((t) => t.toUpperCase());
  for (const t of types) {
    if (LLAMA_FTYPES[t] === undefined) {
      throw new GollmError(`--types: '${t}' is not one of ${Object.keys(LLAMA_FTYPES).join(", ")}`);
    }
  }
  const threadList = options.threads ?? [1, 2];
  const lastCpu = Math.max(0, (navigator.hardwareConcurrency ?? 1) - 1);
  const cpu = options.cpu === undefined ? lastCpu : options.cpu;
  if (cpu !== null && !(Number.isInteger(cpu) && cpu >= 0 && cpu <= lastCpu)) {
    throw new GollmError(`--cpu: expected a CPU in 0..${lastCpu} or none, got ${cpu}`);
  }
  const backend = options.backend ?? "wasm";
  const protocol = resolveProtocol({ ...options.protocol, threads: 1 });
  const start = loadAverage();
  const peerDir = await installPeer({ onProgress: log });
  const files = await benchModels({ types, seed: options.seed, peerDir, onProgress: log });
  const threadsOption = gollmHasThreads();
  const pinnedCpu = cpu !== null && await tasksetAvailable() ? cpu : null;
  const cacheType = options.cacheType ?? "f32";
  const report: PeerReport = {
    machine: machine(),
    backend,
    cacheType,
    protocol,
    loadAverage: { start, end: start },
    pinnedCpu,
    rows: [],
  };
  const total = types.length * threadList.length;
  // gollm's 1-thread figures per type, reused for more threads while gollm has no threads
  // option. Thread counts run in the outer loop, so every 1-thread row is done first.
  const gollmOne = new Map<string, EngineBench | { error: string }>();
  for (const threads of [...threadList].sort((a, b) => a - b)) {
    for (const type of types) {
      const file = files[type];
      const fileBytes = (await Deno.stat(file)).size;
      const step = `[${report.rows.length + 1}/${total}] ${type}, ${threads} thread${
        threads > 1 ? "s" : ""
      }`;
      const onProgress = (m: string) => log(`${step}: ${m}`);
      // The engines alternate, one process per timed run (llama.cpp, gollm, llama.cpp, ...),
      // so a burst of load from another tenant of this shared machine falls on both rather
      // than on all of one engine's runs.
      const p1 = { ...protocol, threads, runs: 1 };
      const reuse: boolean = !threadsOption && threads > 1 && gollmOne.has(type);
      const runsL: (EngineBench | { error: string })[] = [];
      const runsG: (EngineBench | { error: string })[] = [];
      const loadsL: string[] = [], loadsG: string[] = [];
      for (let round = 0; round < protocol.runs; round++) {
        const tag = protocol.runs > 1 ? ` (round ${round + 1}/${protocol.runs})` : "";
        const onRound = (m: string) => onProgress(m + tag);
        loadsL.push(loadAverage().split(" ")[0]);
        // 1 thread: both engines on the same CPU; more threads: not pinned.
        const cpus = threads === 1 && pinnedCpu !== null ? String(pinnedCpu) : undefined;
        runsL.push(
          await attempt(() => llamaCppBench(file, p1, { peerDir, onProgress: onRound, cpus })),
        );
        if (reuse) continue;
        loadsG.push(loadAverage().split(" ")[0]);
        runsG.push(
          await attempt(() =>
            gollmBench(file, p1, { backend, onProgress: onRound, cpus, cacheType })
          ),
        );
      }
      const llamaCpp = mergeRuns(runsL, protocol.runs);
      const gollm: EngineBench | { error: string } = reuse ? gollmOne.get(type)! : mergeRuns(
        runsG,
        protocol.runs,
      );
      const highest = (xs: string[]) => Math.max(...xs.map(Number)).toFixed(2);
      const loadL = highest(loadsL), loadG = reuse ? "" : highest(loadsG);
      if (!gollmOne.has(type)) gollmOne.set(type, gollm);
      const both = ok(gollm) && ok(llamaCpp);
      let agree: number | null = null;
      if (both) {
        agree = 0;
        while (
          agree < gollm.greedyIds.length && gollm.greedyIds[agree] === llamaCpp.greedyIds[agree]
        ) agree++;
      }
      const row: PeerRow = {
        type,
        threads,
        file,
        fileBytes,
        gollm,
        gollmReused: reuse,
        llamaCpp,
        load: { gollm: reuse ? "-" : loadG, llamaCpp: loadL },
        decodeRatio: both ? gollm.decodeTokS / llamaCpp.decodeTokS : null,
        prefillRatio: both ? gollm.prefillTokS / llamaCpp.prefillTokS : null,
        greedyAgree: agree,
      };
      report.rows.push(row);
      report.rows.sort((a, b) =>
        types.indexOf(a.type) - types.indexOf(b.type) || a.threads - b.threads
      );
      report.loadAverage.end = loadAverage();
      log(`${step}: done: ${summary(row)}`);
      await options.onRow?.(report);
    }
  }
  return report;
}

/** One line per finished row, for progress logs. */
function summary(row: PeerRow): string {
  const fig = (r: EngineBench | { error: string }) =>
    ok(r)
      ? `decode ${tokS(r.decodeTokS)}, prefill ${tokS(r.prefillTokS)} tok/s, RSS ${
        mb(r.peakRssBytes)
      }`
      : `error: ${r.error}`;
  return `gollm ${fig(row.gollm)}${row.gollmReused ? " (1 thread)" : ""}; llama.cpp ${
    fig(row.llamaCpp)
  }; ratios ${ratio(row.decodeRatio)} / ${ratio(row.prefillRatio)}`;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const tokS = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));
const seconds = (ms: number) => (ms / 1000).toFixed(2);
const ratio = (x: number | null) => (x === null ? "-" : `${x.toFixed(2)}x`);

/**
 * Formats a report as an aligned text table, with the protocol, machine, load averages,
 * footnotes and the engines' errors below it.
 *
 * @param r The report of {@linkcode runPeers}.
 * @returns Lines of text (no trailing newline).
 * @example
 * ```ts ignore
 * console.log(formatPeers(await runPeers()));
 * ```
 */
export function formatPeers(r: PeerReport): string {
  const head = [
    "type",
    "threads",
    "file",
    "decode gollm",
    "decode llama.cpp",
    "ratio",
    "prefill gollm",
    "prefill llama.cpp",
    "ratio",
    "RSS gollm",
    "RSS llama.cpp",
    "greedy =",
    "load s g/l",
    "loadavg g/l",
  ];
  const notes: string[] = [];
  const cells = r.rows.map((row) => {
    const g = row.gollm, l = row.llamaCpp;
    const mark = row.gollmReused ? "*" : ok(g) && g.threadsUsed !== row.threads ? "†" : "";
    if (!ok(g)) notes.push(`gollm on ${row.type}: ${g.error}`);
    if (!ok(l)) notes.push(`llama.cpp on ${row.type} (${row.threads} threads): ${l.error}`);
    return [
      row.type,
      String(row.threads),
      mb(row.fileBytes),
      ok(g) ? tokS(g.decodeTokS) + mark : "n/a",
      ok(l) ? tokS(l.decodeTokS) : "n/a",
      ratio(row.decodeRatio),
      ok(g) ? tokS(g.prefillTokS) + mark : "n/a",
      ok(l) ? tokS(l.prefillTokS) : "n/a",
      ratio(row.prefillRatio),
      ok(g) ? mb(g.peakRssBytes) : "n/a",
      ok(l) ? mb(l.peakRssBytes) : "n/a",
      row.greedyAgree === null ? "-" : `${row.greedyAgree}/${r.protocol.decodeSteps}`,
      `${ok(g) && !row.gollmReused ? seconds(g.loadMs) : "-"}/${ok(l) ? seconds(l.loadMs) : "-"}`,
      `${row.load.gollm}/${row.load.llamaCpp}`,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c.map((x, i) => (i < 2 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
  const llamaVariant = r.rows.map((x) => x.llamaCpp).find(ok)?.variant ?? "llama.cpp";
  const p = r.protocol;
  const out = [
    `gollm (${r.backend}, ${V8_FLAGS}) vs llama.cpp (${llamaVariant}) on the same GGUF files; tok/s, ratio = gollm / llama.cpp`,
    `protocol: decode = BOS + ${p.decodeSteps} greedy steps from an empty cache; prefill = one ${p.prefillTokens}-token prompt in one call; ${p.warmup} warm-up, median of ${p.runs}; KV ${p.contextSize} slots (gollm ${
      r.cacheType ?? "f32"
    }, llama.cpp f16); the engines alternate, each timed run in its own process after its own warm-up`,
    `machine: ${r.machine}; load average ${r.loadAverage.start} at start, ${r.loadAverage.end} at end; ${
      r.pinnedCpu === null
        ? "not pinned to a CPU"
        : `1-thread runs of both engines pinned to CPU ${r.pinnedCpu} (taskset)`
    }`,
    "",
    line(head),
    line(head.map((_, i) => "-".repeat(widths[i]))),
    ...cells.map(line),
    "",
    "RSS: peak resident set (VmHWM) of each engine's own process; llama.cpp's counts the mmap-ed file pages it touched.",
    "greedy =: leading greedy ids both engines agree on; load s: median wall time from the call to a model ready for its first token (gollm: loadModel, header to warm-up; llama.cpp: loadModel + createContext); loadavg g/l: highest 1-min load average before a gollm / llama.cpp run.",
    "targets (issue #8): decode >= 1.0x at 1 and 2 threads; prefill >= 0.5x (F16), >= 0.3x (quantised); load of a 100M-parameter file < 1 s.",
  ];
  if (r.rows.some((x) => x.gollmReused)) {
    out.push("* gollm has no threads option yet: its 1-thread figures, repeated for comparison.");
  }
  if (r.rows.some((x) => ok(x.gollm) && !x.gollmReused && x.gollm.threadsUsed !== x.threads)) {
    out.push("† gollm used fewer threads than requested.");
  }
  for (const n of new Set(notes)) out.push(`note: ${n}`);
  return out.join("\n");
}

function parseList(flag: string, value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const xs = value.split(",").map((x) => x.trim()).filter((x) => x.length > 0);
  if (xs.length === 0) {
    throw new GollmError(`${flag}: expected a comma-separated list, got '${value}'`);
  }
  return xs;
}

function parseIntFlag(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw new GollmError(`${flag}: expected an integer >= ${min}, got '${value}'`);
  }
  return n;
}

const USAGE = `usage: deno task bench:peers [--types F16,Q8_0,Q4_K_M] [--threads 1,2] [--seed N]
  [--decode-steps N] [--prefill-tokens N] [--warmup N] [--runs N] [--backend jit|wasm]
  [--cache-type f32|f16] [--cpu N|none] [--json] [--save REPORT.json]
  --cache-type: gollm's KV cache type (llama.cpp always runs its default, f16)
  --cpu: the CPU both engines' 1-thread runs are pinned to (taskset; default the last one)`;

async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      types: { type: "string" },
      threads: { type: "string" },
      seed: { type: "string" },
      "decode-steps": { type: "string" },
      "prefill-tokens": { type: "string" },
      warmup: { type: "string" },
      runs: { type: "string" },
      backend: { type: "string" },
      "cache-type": { type: "string" },
      cpu: { type: "string" },
      json: { type: "boolean" },
      save: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const backend = (values.backend ?? "wasm") as Backend;
  if (backend !== "wasm" && backend !== "jit") {
    throw new GollmError(`--backend: expected jit or wasm, got '${values.backend}'`);
  }
  const cacheType = (values["cache-type"] ?? "f32") as KvCacheType;
  if (cacheType !== "f32" && cacheType !== "f16") {
    throw new GollmError(`--cache-type: expected f32 or f16, got '${values["cache-type"]}'`);
  }
  const report = await runPeers({
    cacheType,
    types: parseList("--types", values.types),
    threads: parseList("--threads", values.threads)?.map((t) => parseIntFlag("--threads", t, 1)!),
    seed: parseIntFlag("--seed", values.seed, 0),
    cpu: values.cpu === "none" ? null : parseIntFlag("--cpu", values.cpu, 0),
    backend,
    protocol: {
      decodeSteps: parseIntFlag("--decode-steps", values["decode-steps"], 1),
      prefillTokens: parseIntFlag("--prefill-tokens", values["prefill-tokens"], 1),
      warmup: parseIntFlag("--warmup", values.warmup, 0),
      runs: parseIntFlag("--runs", values.runs, 1),
    },
    onProgress: (m) => console.error(m),
    onRow: async (partial) => {
      if (values.save) await writeFileAtomic(values.save, JSON.stringify(partial, null, 2) + "\n");
    },
  });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatPeers(report));
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof GollmError || e instanceof RangeError || e instanceof TypeError) {
      console.error(`error: ${e.message.split("\n")[0]}`);
      if (!(e instanceof GollmError)) console.error(USAGE);
      Deno.exit(e instanceof GollmError ? 1 : 2);
    }
    throw e;
  }
}
