/**
 * The llama.cpp side of the peer harness, run as its own process by bench/llama_cpp.ts:
 *
 * ```
 * deno run -A bench/llama_cpp_runner.ts '<request JSON>'
 * ```
 *
 * It loads node-llama-cpp from the installed peer folder (`request.peerDir`) with the
 * prebuilt CPU binary only (`getLlama({ gpu: false, build: "never" })`), runs one request and
 * prints one JSON line on stdout. Progress lines go to stderr as `progress: ...`; a failure
 * is one `error: ...` line on stderr and exit status 1. Deno loads the package's Node-API
 * addon directly (tried first, as the brief asked, and it works), so no Node.js is needed.
 *
 * Requests ({@linkcode RunnerRequest}):
 * - `bench`: the protocol of bench/protocol.ts on one file → {@linkcode EngineBench};
 * - `logits`: the logits of every position of a token sequence → `{ vocabSize, logits }`;
 * - `generate`: greedy continuation of a text prompt → `{ promptIds, ids, text }`;
 * - `quantize`: llama.cpp's own quantiser (`llama_model_quantize` in the package's
 *   libllama, called through Deno FFI) → `{ out }`.
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import {
  type EngineBench,
  median,
  peakRssBytes,
  prefillPrompt,
  type ResolvedProtocol,
} from "./protocol.ts";
import { runnerMain } from "./subprocess.ts";

/** One request to the runner; `peerDir` is the folder installPeer() returned. */
export type RunnerRequest =
  | { cmd: "bench"; peerDir: string; file: string; protocol: ResolvedProtocol }
  | { cmd: "logits"; peerDir: string; file: string; tokens: number[] }
  | { cmd: "generate"; peerDir: string; file: string; prompt: string; maxTokens: number }
  | {
    cmd: "quantize";
    peerDir: string;
    libDir: string;
    input: string;
    output: string;
    ftype: number;
    threads: number;
  };

// ---------------------------------------------------------------------------------------
// The slice of node-llama-cpp's API used here (it is imported from a runtime path, so it
// has no static types). Names and meanings follow node-llama-cpp 3.x's .d.ts files.

type Token = number;
interface LlamaSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: Token[], options?: { temperature?: number }): AsyncGenerator<Token>;
  controlledEvaluate(
    input: (Token | [Token, { generateNext: Record<string, unknown> }])[],
  ): Promise<(undefined | { next: { token?: Token; logits?: Map<Token, number> } })[]>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  readonly currentThreads: number;
  readonly flashAttention: boolean | "auto";
  dispose(): Promise<void>;
}
interface LlamaModel {
  readonly tokens: { readonly bos: Token | null };
  tokenize(text: string): Token[];
  detokenize(tokens: readonly Token[]): string;
  createContext(options: Record<string, unknown>): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(options: { modelPath: string; useMmap?: boolean }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(options: Record<string, unknown>): Promise<Llama>;
}

/** Loads node-llama-cpp from the peer folder with the prebuilt CPU binary only. */
async function getLlama(peerDir: string): Promise<Llama> {
  const entry = `${peerDir}/node_modules/node-llama-cpp/dist/index.js`;
  const mod = (await import(pathToFileURL(entry).href)) as NodeLlamaCpp;
  return await mod.getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: "error",
    maxThreads: 0, // no global cap: the context's `threads` is the number used
  });
}

const progress = (msg: string) => console.error(`progress: ${msg}`);

/** Greedy decode of `steps` tokens after BOS from an empty cache; returns ids and ms. */
async function decodeRun(
  seq: LlamaSequence,
  bos: Token,
  steps: number,
): Promise<{ ids: number[]; ms: number }> {
  await seq.clearHistory();
  const ids: number[] = [];
  const t0 = performance.now();
  for await (const id of seq.evaluate([bos], { temperature: 0 })) {
    ids.push(id);
    if (ids.length >= steps) break;
  }
  return { ids, ms: performance.now() - t0 };
}

/** One prefill of `prompt` in one call from an empty cache, with the last position's logits. */
async function prefillRun(seq: LlamaSequence, prompt: Token[]): Promise<number> {
  await seq.clearHistory();
  const last = prompt[prompt.length - 1];
  const input: (Token | [Token, { generateNext: Record<string, unknown> }])[] = [
    ...prompt.slice(0, -1),
    [last, { generateNext: { token: true, options: { temperature: 0 } } }],
  ];
  const t0 = performance.now();
  const out = await seq.controlledEvaluate(input);
  const ms = performance.now() - t0;
  if (out[prompt.length - 1]?.next.token === undefined) {
    throw new Error("prefill: llama.cpp returned no token for the last position");
  }
  return ms;
}

async function bench(
  r: Extract<RunnerRequest, { cmd: "bench" }>,
  version: string,
): Promise<EngineBench> {
  const p = r.protocol;
  const llama = await getLlama(r.peerDir);
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: r.file });
  const ctx = await model.createContext({
    contextSize: p.contextSize,
    batchSize: p.prefillTokens,
    sequences: 1,
    threads: { ideal: p.threads, min: p.threads },
  });
  const seq = ctx.getSequence();
  const loadMs = performance.now() - t0;
  const bos = model.tokens.bos;
  if (bos === null) throw new Error(`${r.file}: the model has no BOS token`);
  // The vocabulary size as llama.cpp sees it: the number of logits after BOS (untimed).
  const probe = await seq.controlledEvaluate([[bos, { generateNext: { logits: true } }]]);
  const vocab = probe[0]?.next.logits?.size ?? 0;
  if (vocab <= 0) throw new Error(`${r.file}: llama.cpp returned no logits`);

  const decodeMs: number[] = [];
  let greedyIds: number[] = [];
  for (let i = 0; i < p.warmup + p.runs; i++) {
    progress(`llama.cpp decode ${i < p.warmup ? "warm-up" : `run ${i - p.warmup + 1}/${p.runs}`}`);
    const { ids, ms } = await decodeRun(seq, bos, p.decodeSteps);
    if (i >= p.warmup) decodeMs.push(ms);
    if (i === p.warmup) greedyIds = ids;
  }
  const prompt = prefillPrompt(p.prefillTokens, vocab, bos, p.seed);
  const prefillMs: number[] = [];
  for (let i = 0; i < p.warmup + p.runs; i++) {
    progress(
      `llama.cpp prefill ${i < p.warmup ? "warm-up" : `run ${i - p.warmup + 1}/${p.runs}`}`,
    );
    const ms = await prefillRun(seq, prompt);
    if (i >= p.warmup) prefillMs.push(ms);
  }
  const threadsUsed = ctx.currentThreads;
  const flashAttention = ctx.flashAttention;
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return {
    engine: "llama.cpp",
    variant: `node-llama-cpp ${version}, CPU, flash_attn ${flashAttention}`,
    file: r.file,
    threads: p.threads,
    threadsUsed,
    decodeTokS: p.decodeSteps / (median(decodeMs) / 1000),
    prefillTokS: p.prefillTokens / (median(prefillMs) / 1000),
    decodeMs,
    prefillMs,
    loadMs,
    peakRssBytes: peakRssBytes(),
    greedyIds,
    protocol: p,
  };
}

async function logits(r: Extract<RunnerRequest, { cmd: "logits" }>) {
  const llama = await getLlama(r.peerDir);
  const model = await llama.loadModel({ modelPath: r.file });
  // F32 KV cache (llama.cpp's default is F16) and no flash attention: the logits of the
  // file's weights in F32, for parity tests against an F32 reference.
  const ctx = await model.createContext({
    contextSize: Math.max(16, r.tokens.length),
    batchSize: Math.max(1, r.tokens.length),
    sequences: 1,
    threads: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const out = await ctx.getSequence().controlledEvaluate(
    r.tokens.map((t) => [t, { generateNext: { logits: true } }]),
  );
  const rows: number[][] = [];
  let vocabSize = -1;
  out.forEach((o, i) => {
    const map = o?.next.logits;
    if (!map) throw new Error(`llama.cpp returned no logits for position ${i}`);
    if (vocabSize < 0) vocabSize = map.size;
    if (map.size !== vocabSize) {
      throw new Error(`position ${i}: ${map.size} logits, not ${vocabSize}`);
    }
    const row = new Array<number>(vocabSize).fill(NaN);
    for (const [id, v] of map) row[id] = v;
    rows.push(row);
  });
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return { vocabSize, logits: rows };
}

async function generate(r: Extract<RunnerRequest, { cmd: "generate" }>) {
  const llama = await getLlama(r.peerDir);
  const model = await llama.loadModel({ modelPath: r.file });
  const ctx = await model.createContext({ contextSize: 512, sequences: 1, threads: 1 });
  const bos = model.tokens.bos;
  const promptIds = [...(bos === null ? [] : [bos]), ...model.tokenize(r.prompt)];
  const ids: number[] = [];
  if (r.maxTokens > 0) {
    for await (const id of ctx.getSequence().evaluate(promptIds, { temperature: 0 })) {
      ids.push(id);
      if (ids.length >= r.maxTokens) break;
    }
  }
  const text = model.detokenize(ids);
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return { promptIds, ids, text };
}

/**
 * llama.cpp's quantiser through Deno FFI. `llama_model_quantize_params` of the packaged
 * llama.cpp (include/llama.h): int32 nthread @0, int32 ftype @4, int32 output_tensor_type @8,
 * int32 token_embedding_type @12, 6 bools @16..21, 4 pointers @24..55, size_t max_buf_size
 * @56 (64 bytes). The defaults come from `llama_model_quantize_default_params()`.
 */
function quantize(r: Extract<RunnerRequest, { cmd: "quantize" }>) {
  const libs = [...Deno.readDirSync(r.libDir)].map((e) => e.name);
  const name = libs.find((n) => /^libllama(\.v[\d.]+)?\.so$/.test(n));
  if (!name) throw new Error(`${r.libDir}: no libllama*.so in the installed peer`);
  const lib = Deno.dlopen(`${r.libDir}/${name}`, {
    llama_backend_init: { parameters: [], result: "void" },
    llama_model_quantize_default_params: {
      parameters: [],
      result: {
        struct: [
          "i32",
          "i32",
          "i32",
          "i32", // nthread, ftype, output_tensor_type, token_embedding_type
          "u8",
          "u8",
          "u8",
          "u8",
          "u8",
          "u8", // allow_requantize .. dry_run
          "pointer",
          "pointer",
          "pointer",
          "pointer", // imatrix, kv_overrides, tt_overrides, prune_layers
          "usize", // max_buf_size
        ],
      },
    },
    llama_model_quantize: { parameters: ["buffer", "buffer", "buffer"], result: "u32" },
  });
  lib.symbols.llama_backend_init();
  const params = lib.symbols.llama_model_quantize_default_params();
  if (params.byteLength !== 64) {
    throw new Error(`llama_model_quantize_params is ${params.byteLength} bytes, expected 64`);
  }
  const view = new DataView(params.buffer, params.byteOffset, params.byteLength);
  view.setInt32(0, r.threads, true); // nthread
  view.setInt32(4, r.ftype, true); // ftype
  const cstr = (s: string) => new TextEncoder().encode(`${s}\0`);
  const rc = lib.symbols.llama_model_quantize(cstr(r.input), cstr(r.output), params);
  lib.close();
  if (rc !== 0) throw new Error(`llama_model_quantize returned ${rc}`);
  return { out: r.output };
}

async function main(r: RunnerRequest): Promise<unknown> {
  const pkg = JSON.parse(
    Deno.readTextFileSync(`${r.peerDir}/node_modules/node-llama-cpp/package.json`),
  ) as { version: string };
  let result: unknown;
  if (r.cmd === "bench") result = await bench(r, pkg.version);
  else if (r.cmd === "logits") result = await logits(r);
  else if (r.cmd === "generate") result = await generate(r);
  else if (r.cmd === "quantize") result = quantize(r);
  else throw new Error(`unknown request ${JSON.stringify((r as { cmd: unknown }).cmd)}`);
  return result;
}

if (import.meta.main) await runnerMain(main);
