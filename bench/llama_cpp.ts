/**
 * llama.cpp as gollm's peer: install it, benchmark it, read its logits, greedy-decode with
 * it, and quantise with its own quantiser. Used by `deno task bench:peers` (bench/peers.ts)
 * and by the parity tests.
 *
 * The peer is the npm package `node-llama-cpp` (pinned in bench/peer/package.json and its
 * lock) with its prebuilt Linux x64 CPU binary only: no optional GPU packages, no install
 * scripts, no build, no download (`NODE_LLAMA_CPP_SKIP_DOWNLOAD=true`,
 * `getLlama({ gpu: false, build: "never" })`, `UV_THREADPOOL_SIZE=1`). It is installed once
 * into a cache folder outside the repository ({@linkcode peerCacheDir}); after that it works
 * offline. Each call runs bench/llama_cpp_runner.ts in its own Deno process, so the peer's
 * peak RSS is its own and a crash in the native code cannot take the caller down.
 *
 * ```
 * deno run -A bench/llama_cpp.ts install                 # prints the peer folder (CI step)
 * deno run -A bench/llama_cpp.ts quantize IN.gguf OUT.gguf Q4_K_M
 * deno run -A bench/llama_cpp.ts generate FILE.gguf "Once upon a time" [N]
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { GollmError } from "../core/errors.ts";
import {
  type BenchProtocol,
  type EngineBench,
  type ResolvedProtocol,
  resolveProtocol,
} from "./protocol.ts";
import type { RunnerRequest } from "./llama_cpp_runner.ts";
import { runRunner } from "./subprocess.ts";

/**
 * A failure of the peer harness before the peer runs: npm unreachable, a missing file, a bad
 * option. (A failure of the peer's own process is a RunnerError from bench/subprocess.ts.)
 */
export class PeerError extends GollmError {
  /**
   * Creates a peer error.
   * @param message One line: what failed, where, and why.
   */
  constructor(message: string) {
    super(message);
    this.name = "PeerError";
  }
}

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const PACKAGE_DIR = `${BENCH_DIR}peer`;
const RUNNER = `${BENCH_DIR}llama_cpp_runner.ts`;
/** Where the prebuilt CPU binaries sit inside an installed peer folder. */
const BIN_SUBDIR = "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";

/**
 * The cache folder of the benchmark: `$GOLLM_CACHE`, else `$XDG_CACHE_HOME/gollm`, else
 * `~/.cache/gollm`. The peer goes to `<cache>/peers/`, the bench models to
 * `<cache>/bench-models/` (bench/make_model.ts); nothing is written inside the repository.
 *
 * @returns An absolute path (not created here).
 * @throws {PeerError} when none of `GOLLM_CACHE`, `XDG_CACHE_HOME` and `HOME` is set.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { peerCacheDir } from "./llama_cpp.ts";
 * assert.ok(peerCacheDir().startsWith("/"));
 * ```
 */
export function peerCacheDir(): string {
  const own = Deno.env.get("GOLLM_CACHE");
  if (own) return own;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/gollm`;
  const home = Deno.env.get("HOME");
  if (home) return `${home}/.cache/gollm`;
  throw new PeerError("peer cache: set GOLLM_CACHE, XDG_CACHE_HOME or HOME");
}

/** Options of {@linkcode installPeer}. */
export interface InstallPeerOptions {
  /** Parent folder of installed peers (default `<peerCacheDir()>/peers`). */
  dir?: string;
  /** npm registry URL (default: npm's own configuration). */
  registry?: string;
  /** Receives one line per step (`installing node-llama-cpp ...`). */
  onProgress?: (message: string) => void;
  /** Run npm when the peer is not installed yet (default true); false: fail instead. */
  installIfMissing?: boolean;
  /** Extra npm flags (e.g. `--fetch-retries=0`, `--cache=DIR`). */
  npmFlags?: string[];
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The one line of npm's output that says why it failed. */
function npmReason(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.replace(/^npm (error|ERR!)\s*/, "").trim())
    .filter((l) => l.length > 0 && !l.startsWith("A complete log") && !l.startsWith("Log files"));
  const net = lines.find((l) =>
    /ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET|network/i.test(l)
  );
  return net ?? lines.find((l) => !/^code\s/.test(l)) ?? lines[0] ?? "no output";
}

/**
 * Installs the peer (npm `node-llama-cpp` with its prebuilt Linux x64 CPU binary) into the
 * cache, once: `npm install --omit=optional --ignore-scripts` of bench/peer/package.json and
 * its lock, in a temporary folder renamed into place when complete. The folder name holds a
 * hash of the package files, so a change of pinned versions installs anew. Idempotent: a
 * complete install is returned without running npm (offline).
 *
 * This is the CI install step: `deno run -A bench/llama_cpp.ts install` (or call it).
 *
 * @param options Cache folder, registry, progress.
 * @returns The installed peer folder (it holds `node_modules/`).
 * @throws {PeerError} on a platform other than Linux x64, when the peer is missing and
 *   `installIfMissing` is false, when npm is missing, when npm
 *   cannot reach the registry (one line with npm's reason) or the prebuilt binary is absent
 *   after install. Nothing half-installed is left behind.
 * @example
 * ```ts ignore
 * const peer = await installPeer({ onProgress: console.error });
 * ```
 */
export async function installPeer(options: InstallPeerOptions = {}): Promise<string> {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new PeerError(
      `installPeer: the llama.cpp peer is pinned to its Linux x64 CPU binary; this is ${Deno.build.os} ${Deno.build.arch}`,
    );
  }
  const pkg = await Deno.readFile(`${PACKAGE_DIR}/package.json`);
  const lock = await Deno.readFile(`${PACKAGE_DIR}/package-lock.json`);
  const both = new Uint8Array(pkg.length + lock.length);
  both.set(pkg);
  both.set(lock, pkg.length);
  const key = (await sha256Hex(both)).slice(0, 12);
  const parent = options.dir ?? `${peerCacheDir()}/peers`;
  const dir = `${parent}/llama-cpp-${key}`;
  if (await exists(`${dir}/installed.json`)) return dir;
  if (options.installIfMissing === false) {
    throw new PeerError(`installPeer: not installed in ${dir} (run: deno task peers:install)`);
  }

  const tmp = `${parent}/.llama-cpp-${key}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.mkdir(tmp, { recursive: true });
    await Deno.writeFile(`${tmp}/package.json`, pkg);
    await Deno.writeFile(`${tmp}/package-lock.json`, lock);
    options.onProgress?.(`installing node-llama-cpp (CPU binary only) into ${dir}`);
    const args = [
      "install",
      "--omit=optional",
      "--ignore-scripts",
      "--no-audit",
      "--no-fund",
      "--no-save",
      "--fetch-retries=1",
      "--fetch-timeout=60000",
      ...(options.registry ? [`--registry=${options.registry}`] : []),
      ...(options.npmFlags ?? []),
    ];
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("npm", {
        args,
        cwd: tmp,
        env: { NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (e) {
      throw new PeerError(`installPeer: cannot run npm (${(e as Error).message.split("\n")[0]})`);
    }
    if (!out.success) {
      const reason = npmReason(new TextDecoder().decode(out.stderr));
      throw new PeerError(
        `installPeer: npm install of node-llama-cpp failed (is the npm registry reachable?): ${reason}`,
      );
    }
    if (!(await exists(`${tmp}/${BIN_SUBDIR}/llama-addon.node`))) {
      throw new PeerError(`installPeer: npm installed no prebuilt CPU binary at ${BIN_SUBDIR}`);
    }
    await Deno.writeTextFile(
      `${tmp}/installed.json`,
      JSON.stringify({ package: "node-llama-cpp", key, installed: new Date().toISOString() }),
    );
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      // Another process finished the same install first: use it.
      if (!(await exists(`${dir}/installed.json`))) throw e;
    }
    return dir;
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** Options shared by the calls that run the peer. */
export interface PeerCallOptions {
  /** An installed peer folder (default: {@linkcode installPeer}'s, installing if needed). */
  peerDir?: string;
  /** Receives the peer's progress lines (`llama.cpp decode run 1/3`, ...). */
  onProgress?: (message: string) => void;
  /** CPUs to pin the peer's process to (a `taskset -c` list); default not pinned. */
  cpus?: string;
}

/** Runs one request in a fresh runner process; returns its parsed JSON reply. */
function runPeer<T>(
  req: RunnerRequest,
  onProgress?: (m: string) => void,
  cpus?: string,
): Promise<T> {
  return runRunner<T>(RUNNER, req, {
    cpus,
    // No deno.json (its import map would hide node_modules); resolve from the peer's own
    // node_modules folder, as Node would.
    denoFlags: ["-A", "--quiet", "--no-config", "--no-lock", "--node-modules-dir=manual"],
    env: { NODE_LLAMA_CPP_SKIP_DOWNLOAD: "true", UV_THREADPOOL_SIZE: "1" },
    onProgress,
    what: `llama.cpp ${req.cmd} on ${"file" in req ? req.file : req.input}`,
  });
}

async function checkFile(what: string, path: string): Promise<void> {
  try {
    if ((await Deno.stat(path)).isFile) return;
  } catch {
    // fall through
  }
  throw new PeerError(`${what}: ${path} is not a file`);
}

/**
 * Benchmarks llama.cpp on a GGUF file with the protocol of bench/protocol.ts: decode = BOS
 * then `decodeSteps` greedy steps from an empty cache; prefill = one `prefillTokens`-token
 * prompt in one call (`batchSize` = the prompt); `warmup` untimed runs, median of `runs`.
 *
 * @param file A GGUF file llama.cpp can load.
 * @param protocol Threads (`n_threads` = `n_threads_batch`), steps, prompt length, runs.
 * @param options Peer folder, progress, CPUs to pin to.
 * @returns Decode and prefill tok/s, each run's milliseconds, load time and the peer
 *   process's peak RSS (bytes, VmHWM; it counts the mmap-ed weights it touched).
 * @throws {PeerError} for a missing file, a bad protocol value, or a failure of the peer.
 * @example
 * ```ts ignore
 * const r = await llamaCppBench("g110m-q8_0.gguf", { threads: 2 });
 * console.log(r.decodeTokS, r.prefillTokS, r.peakRssBytes);
 * ```
 */
export async function llamaCppBench(
  file: string,
  protocol: BenchProtocol = {},
  options: PeerCallOptions = {},
): Promise<EngineBench> {
  let p: ResolvedProtocol;
  try {
    p = resolveProtocol(protocol);
  } catch (e) {
    throw new PeerError(`llamaCppBench: ${(e as Error).message}`);
  }
  await checkFile("llamaCppBench", file);
  const peerDir = options.peerDir ?? await installPeer();
  return await runPeer<EngineBench>(
    { cmd: "bench", peerDir, file, protocol: p },
    options.onProgress,
    options.cpus,
  );
}

/** The result of {@linkcode llamaCppLogits}. */
export interface PeerLogits {
  /** Logits per position: the vocabulary size as llama.cpp sees it. */
  vocabSize: number;
  /** `(tokens.length, vocabSize)` row-major: row i is the next-token logits after `tokens[0..i]`. */
  logits: Float32Array;
}

/**
 * The logits llama.cpp computes at every position of `tokens` (one sequence from position
 * 0, one batch, 1 thread), for parity tests.
 *
 * @param file A GGUF file.
 * @param tokens Token ids (include BOS yourself when the model expects it).
 * @param options Peer folder.
 * @returns `(n, vocabSize)` logits, row-major.
 * @throws {PeerError} for a missing file, an empty token list or a failure of the peer (an
 *   id outside the vocabulary is reported by llama.cpp).
 * @example
 * ```ts ignore
 * const { logits, vocabSize } = await llamaCppLogits("stories260K.gguf", [1, 403, 407]);
 * ```
 */
export async function llamaCppLogits(
  file: string,
  tokens: readonly number[],
  options: PeerCallOptions = {},
): Promise<PeerLogits> {
  if (tokens.length === 0) throw new PeerError("llamaCppLogits: tokens is empty");
  await checkFile("llamaCppLogits", file);
  const peerDir = options.peerDir ?? await installPeer();
  const r = await runPeer<{ vocabSize: number; logits: number[][] }>(
    { cmd: "logits", peerDir, file, tokens: [...tokens] },
    options.onProgress,
  );
  const out = new Float32Array(tokens.length * r.vocabSize);
  r.logits.forEach((row, i) => out.set(row, i * r.vocabSize));
  return { vocabSize: r.vocabSize, logits: out };
}

/** The result of {@linkcode llamaCppGenerate}. */
export interface PeerGeneration {
  /** The prompt as llama.cpp tokenised it, BOS first when the model has one. */
  promptIds: number[];
  /** The generated ids (greedy). */
  ids: number[];
  /** The generated ids detokenised by llama.cpp. */
  text: string;
}

/**
 * Greedy (temperature 0) continuation of a text prompt by llama.cpp: BOS + llama.cpp's
 * tokenisation of `prompt`, then `maxTokens` argmax steps (it does not stop at EOS).
 *
 * @param file A GGUF file with a tokenizer.
 * @param prompt Text.
 * @param maxTokens Tokens to generate (>= 0).
 * @param options Peer folder.
 * @returns Prompt ids, generated ids and text.
 * @throws {PeerError} for a missing file, a bad `maxTokens` or a failure of the peer.
 * @example
 * ```ts ignore
 * const g = await llamaCppGenerate("stories260K.gguf", "Once upon a time", 40);
 * console.log(g.text); // ", there was a little girl named Lily. ..."
 * ```
 */
export async function llamaCppGenerate(
  file: string,
  prompt: string,
  maxTokens: number,
  options: PeerCallOptions = {},
): Promise<PeerGeneration> {
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new PeerError(`llamaCppGenerate: maxTokens must be an integer >= 0, got ${maxTokens}`);
  }
  await checkFile("llamaCppGenerate", file);
  const peerDir = options.peerDir ?? await installPeer();
  return await runPeer<PeerGeneration>(
    { cmd: "generate", peerDir, file, prompt, maxTokens },
    options.onProgress,
  );
}

/**
 * llama.cpp's file types (`enum llama_ftype` in include/llama.h), by the names
 * `llama-quantize` accepts. Quantised types keep 1-D tensors (norms) in F32, and the
 * K-quant mixes choose per tensor (e.g. Q4_K_M puts some ffn_down / attn_v rows in Q6_K).
 */
export const LLAMA_FTYPES: Readonly<Record<string, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q5_1: 9,
  Q2_K: 10,
  Q3_K_S: 11,
  Q3_K_M: 12,
  Q3_K_L: 13,
  Q4_K_S: 14,
  Q4_K_M: 15,
  Q5_K_S: 16,
  Q5_K_M: 17,
  Q6_K: 18,
  BF16: 32,
};

/**
 * Quantises a GGUF with llama.cpp's own quantiser: `llama_model_quantize` of the libllama
 * inside the installed peer, called through Deno FFI in a runner process (params from
 * `llama_model_quantize_default_params()`, with `ftype` and `nthread` set). The output is
 * written to a temporary sibling and renamed into place, so a failure leaves nothing.
 *
 * @param input Source GGUF (F32 or F16 weights).
 * @param output Destination GGUF (overwritten).
 * @param type A key of {@linkcode LLAMA_FTYPES}, case-insensitive (`q4_k_m`).
 * @param options Peer folder, `threads` for the quantiser (default 2).
 * @throws {PeerError} for an unknown type, a missing input, or llama.cpp refusing the file
 *   (its last log line is in the message).
 * @example
 * ```ts ignore
 * await llamaCppQuantize("g110m-f32.gguf", "g110m-q4_k_m.gguf", "Q4_K_M");
 * ```
 */
export async function llamaCppQuantize(
  input: string,
  output: string,
  type: string,
  options: PeerCallOptions & { threads?: number } = {},
): Promise<void> {
  const ftype = LLAMA_FTYPES[type.toUpperCase()];
  if (ftype === undefined) {
    throw new PeerError(
      `llamaCppQuantize: type '${type}' is not one of ${Object.keys(LLAMA_FTYPES).join(", ")}`,
    );
  }
  await checkFile("llamaCppQuantize", input);
  const peerDir = options.peerDir ?? await installPeer();
  const slash = output.lastIndexOf("/");
  const tmp = `${output.slice(0, slash + 1)}.${output.slice(slash + 1)}.tmp-${
    crypto.randomUUID().slice(0, 8)
  }`;
  try {
    await runPeer({
      cmd: "quantize",
      peerDir,
      libDir: `${peerDir}/${BIN_SUBDIR}`,
      input,
      output: tmp,
      ftype,
      threads: options.threads ?? 2,
    }, options.onProgress);
    await Deno.rename(tmp, output);
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

async function main(args: string[]): Promise<void> {
  const [cmd, ...rest] = args;
  const log = (m: string) => console.error(m);
  if (cmd === "install" && rest.length === 0) {
    console.log(await installPeer({ onProgress: log }));
  } else if (cmd === "quantize" && rest.length === 3) {
    await llamaCppQuantize(rest[0], rest[1], rest[2], { onProgress: log });
    console.log(rest[1]);
  } else if (cmd === "generate" && (rest.length === 2 || rest.length === 3)) {
    const g = await llamaCppGenerate(rest[0], rest[1], Number(rest[2] ?? 64));
    console.log(g.text);
  } else {
    console.error(
      "usage: deno run -A bench/llama_cpp.ts install | quantize IN OUT TYPE | generate FILE PROMPT [N]",
    );
    Deno.exit(2);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    if (!(e instanceof GollmError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  }
}
