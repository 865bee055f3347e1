/**
 * llama.cpp serving many sequences from one context, the peer of `deno task bench:serve`,
 * run as its own process by bench/serve.ts (the runner protocol of bench/subprocess.ts):
 *
 * ```
 * deno run -A --no-config --node-modules-dir=manual bench/llama_cpp_serve_runner.ts '<request JSON>'
 * ```
 *
 * node-llama-cpp `createContext({ sequences: S })` gives S sequences over one KV cache;
 * sequences that evaluate at the same time are batched into one `llama_decode` per step
 * (node-llama-cpp's batching), as llama.cpp's server does with `--parallel S`. Every
 * sequence greedy-decodes `tokens` tokens after its own prompt, all started together;
 * TTFT is the time from the start to a sequence's first token, and the aggregate rate is
 * all generated tokens over the wall time of the run. One untimed warm-up run first.
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { runnerMain } from "./subprocess.ts";

/** The request bench/serve.ts sends. */
export interface ServeRunnerRequest {
  /** An installed peer folder (bench/llama_cpp.ts `installPeer`). */
  peerDir: string;
  /** The GGUF file. */
  file: string;
  /** Prompts as token ids, one per sequence (their count is the number of sequences). */
  prompts: number[][];
  /** Tokens each sequence generates. */
  tokens: number;
  /** llama.cpp threads (`n_threads` = `n_threads_batch`). */
  threads: number;
  /** Tokens of context per sequence. */
  ctxPerSeq: number;
}

/** The reply: per-sequence first-token times and the run's wall time. */
export interface ServeRunnerReply {
  /** Milliseconds from the start to each sequence's first token. */
  ttftMs: number[];
  /** Wall milliseconds from the start to the last sequence's last token. */
  wallMs: number;
  /** Tokens generated over all sequences. */
  generated: number;
  /** Threads llama.cpp used. */
  threadsUsed: number;
}

type Token = number;
interface LlamaSequence {
  evaluate(tokens: Token[], options?: { temperature?: number }): AsyncGenerator<Token>;
  clearHistory(): Promise<void>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  readonly currentThreads: number;
  dispose(): Promise<void>;
}
interface LlamaModel {
  createContext(options: Record<string, unknown>): Promise<LlamaContext>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(options: { modelPath: string }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}

const progress = (msg: string) => console.error(`progress: ${msg}`);

async function run(r: ServeRunnerRequest): Promise<ServeRunnerReply> {
  const entry = `${r.peerDir}/node_modules/node-llama-cpp/dist/index.js`;
  const mod = await import(pathToFileURL(entry).href);
  const llama: Llama = await mod.getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: "error",
    maxThreads: 0,
  });
  const model = await llama.loadModel({ modelPath: r.file });
  const S = r.prompts.length;
  const ctx = await model.createContext({
    contextSize: S * r.ctxPerSeq,
    sequences: S,
    batchSize: 512,
    threads: { ideal: r.threads, min: r.threads },
  });
  const seqs = Array.from({ length: S }, () => ctx.getSequence());
  const once = async (): Promise<ServeRunnerReply> => {
    await Promise.all(seqs.map((s) => s.clearHistory()));
    const ttftMs: number[] = new Array(S).fill(NaN);
    let generated = 0;
    const t0 = performance.now();
    await Promise.all(seqs.map(async (s, i) => {
      let n = 0;
      for await (const _ of s.evaluate(r.prompts[i], { temperature: 0 })) {
        if (n === 0) ttftMs[i] = performance.now() - t0;
        generated++;
        if (++n >= r.tokens) break;
      }
    }));
    return { ttftMs, wallMs: performance.now() - t0, generated, threadsUsed: ctx.currentThreads };
  };
  progress(`llama.cpp ${S} sequence(s): warm-up`);
  await once();
  progress(`llama.cpp ${S} sequence(s): run`);
  const reply = await once();
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return reply;
}

if (import.meta.main) await runnerMain(run);
