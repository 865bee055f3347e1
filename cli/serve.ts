/**
 * `gollm serve`: an OpenAI-compatible HTTP server with continuous batching, a paged KV
 * cache and prefix caching (server/).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { loadBatchModel } from "../runtime/batch_model.ts";
import { loadCheckpoint } from "../formats/load.ts";
import { createServer } from "../server/http.ts";
import type { SpeculativeOptions } from "../server/scheduler.ts";
import { draftModelProposers, NgramProposer } from "../server/speculative.ts";
import { type Command, parse, UsageError } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import {
  CACHE_TYPE_OPTIONS,
  checkCacheTypeFlags,
  loadedLine,
  MODEL_OPTION,
  MODEL_POSITIONAL,
  modelSource,
  THREADS_OPTION,
  TOKENIZER_OPTION,
} from "./model_flags.ts";
import { err, formatBytes } from "./output.ts";
import { withProgress } from "./progress_line.ts";

const SPEC = {
  name: "serve",
  summary: "OpenAI-compatible HTTP server (continuous batching, paged KV, prefix cache)",
  usage: "[PATH] [--host H] [--port N] [--parallel N] [--ctx-size N] [options]",
  description: `Serves the model over HTTP with OpenAI's API: POST /v1/chat/completions (through the
model's chat template), POST /v1/completions, GET /v1/models, and llama.cpp's GET /health,
POST /tokenize, POST /detokenize. Requests are batched continuously: every step runs one
forward over all running sequences (a decode row each, plus prefill chunks of new prompts),
their K/V live in one pool of blocks, and prompts that start alike share their cached
blocks. Ctrl-C (SIGINT) or SIGTERM stops taking requests, lets running ones finish for up to
10 s, and exits.`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...MODEL_OPTION,
    backend: {
      type: "choice",
      choices: ["auto", "wasm", "jit"],
      default: "auto",
      meta: "B",
      description: "auto (wasm when it runs the model, else jit), wasm (the whole step in " +
        "generated WASM SIMD, weights as stored, threads; it scales with the rows of a " +
        "batched step) or jit (generated JS kernels, one thread)",
    },
    threads: { ...THREADS_OPTION.threads, short: "t" }, // -t as llama-server
    ...CACHE_TYPE_OPTIONS,
    ...TOKENIZER_OPTION,
    host: { type: "string", default: "127.0.0.1", meta: "H", description: "address to listen on" },
    port: { type: "int", min: 0, max: 65535, default: 8080, description: "port (0: any free one)" },
    parallel: {
      type: "int",
      short: "p",
      min: 1,
      default: 4,
      description:
        "sequences decoded at once (more wait in the queue); the most choices (n) a request may ask",
    },
    "ctx-size": {
      type: "int",
      short: "c",
      min: 2,
      description: "tokens one sequence holds at most, prompt and reply",
      defaultText: "the model's context length",
    },
    "batch-size": {
      type: "int",
      short: "b",
      min: 1,
      description: "token rows per step: decode rows plus prefill chunks",
      defaultText: "max(32, --parallel)",
    },
    "kv-blocks": {
      type: "int",
      min: 1,
      description: "KV blocks of 16 tokens in the pool, shared by all sequences",
      defaultText: "--parallel full contexts",
    },
    "kv-memory": {
      type: "number",
      min: 0,
      minExclusive: true,
      meta: "MIB",
      description: "size the KV pool from a memory budget in MiB instead of --kv-blocks",
    },
    "api-key": {
      type: "string",
      meta: "KEY",
      description: "require 'Authorization: Bearer KEY' (all but /health)",
      defaultText: "$GOLLM_API_KEY, else none",
    },
    alias: {
      type: "string",
      meta: "NAME",
      description: "the model id clients send as 'model'",
      defaultText: "the model's file or folder name",
    },
    timeout: {
      type: "number",
      min: 0,
      minExclusive: true,
      default: 600,
      meta: "S",
      description: "seconds a request may take before it is cancelled (408)",
    },
    "max-queue": {
      type: "int",
      min: 0,
      default: 256,
      description: "requests waiting for a slot at most; more get 503 with Retry-After",
    },
    "no-prefix-cache": { type: "bool", description: "do not share cached prompt blocks" },
    draft: {
      type: "string",
      meta: "PATH",
      description: "a draft model with the model's vocabulary: it proposes tokens that " +
        "requests verify in one step (speculative decoding)",
    },
    ngram: {
      type: "bool",
      description: "propose drafts by prompt lookup (the last tokens' earlier continuation) " +
        "instead of a draft model",
    },
    "draft-max": {
      type: "int",
      min: 1,
      default: 4,
      description: "most tokens drafted per sequence and step",
    },
  },
  epilog: `example:
  gollm serve models/default --parallel 8 &
  curl -s localhost:8080/v1/completions -H 'content-type: application/json' \\
    -d '{"model": "default", "prompt": "Once upon a time", "max_tokens": 32}'`,
} as const;

/**
 * The `serve` subcommand: parse → load → listen → one line with the URL on stderr; runs
 * until SIGINT/SIGTERM.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./serve.ts";
 * await serve.run(["models/default", "--port", "8080"]);
 * ```
 */
export const serve: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const v = p.values;
    checkCacheTypeFlags(v, p.usage);
    const path = v.model ?? await resolveDefaultModel();
    const ctxSize = v["ctx-size"];
    const model = await withProgress(
      false,
      (onProgress) =>
        loadBatchModel(modelSource(path), {
          backend: v.backend,
          threads: v.threads,
          parallel: v.parallel,
          ctxSize,
          batchSize: v["batch-size"],
          kvBlocks: v["kv-blocks"],
          kvMemoryBytes: v["kv-memory"] === undefined
            ? undefined
            : Math.floor(v["kv-memory"] * 1024 * 1024),
          cacheTypeK: v["cache-type-k"],
          cacheTypeV: v["cache-type-v"],
          tokenizerPath: v.tokenizer,
          offload: true, // HTTP goes on while a step runs on the worker threads
          onProgress,
          onConfig: (c) => {
            if (ctxSize !== undefined && ctxSize > c.context_length) {
              throw new UsageError(
                `--ctx-size ${ctxSize} exceeds the context length ${c.context_length} of ${path}`,
                p.usage,
              );
            }
          },
        }),
      (m) => loadedLine(path, m),
    );
    let speculative: SpeculativeOptions | undefined;
    if (v.draft !== undefined && v.ngram) {
      throw new UsageError("give --draft PATH or --ngram, not both", p.usage);
    }
    if (v.ngram) speculative = { proposers: new NgramProposer(1, 3), maxDraft: v["draft-max"] };
    if (v.draft !== undefined) {
      const draftPath = v.draft;
      const draft = await withProgress(
        false,
        () => loadCheckpoint(modelSource(draftPath)),
        () => `loaded draft ${draftPath}`,
      );
      speculative = {
        proposers: draftModelProposers(
          model.config,
          { ...draft, path: draftPath },
          model.batch.maxSeqs,
          model.ctxSize,
        ),
        maxDraft: v["draft-max"],
      };
    }
    const draftName = v.ngram ? "prompt lookup (ngram 1..3)" : `draft model ${v.draft}`;
    if (!model.tokenizer) {
      err(`note: ${path} has no tokenizer: only token-id prompts on /v1/completions work`);
    }
    const server = createServer(model, {
      modelName: v.alias,
      apiKey: v["api-key"] ?? Deno.env.get("GOLLM_API_KEY"),
      timeoutMs: v.timeout * 1000,
      maxQueue: v["max-queue"],
      prefixCaching: !v["no-prefix-cache"],
      log: err,
      speculative,
    });
    const b = model.batch;
    const pool = b.numBlocks - 1;
    const listening = Promise.withResolvers<void>();
    let http: Deno.HttpServer;
    try {
      http = Deno.serve({
        hostname: v.host,
        port: v.port,
        onListen: ({ hostname, port }) => {
          const host = hostname.includes(":") ? `[${hostname}]` : hostname;
          err(
            `gollm serve: listening on http://${host}:${port} (model '${server.modelName}', ` +
              `${b.maxSeqs} slots, ctx ${model.ctxSize}, ${b.maxRows} rows/step, KV pool ` +
              `${pool} blocks of ${b.blockSize} = ${formatBytes(pool * b.blockBytes)}${
                speculative ? `; drafts: ${draftName}` : ""
              })`,
          );
          listening.resolve();
        },
      }, server);
    } catch (e) {
      if (e instanceof Deno.errors.AddrInUse || e instanceof Deno.errors.PermissionDenied) {
        throw new GollmError(`cannot listen on ${v.host}:${v.port}: ${(e as Error).message}`);
      }
      throw e;
    }
    await listening.promise;
    let stopping = false;
    const stop = (signal: Deno.Signal) => {
      if (stopping) {
        err(`${signal} again: exiting now`);
        Deno.exit(130);
      }
      stopping = true;
      err(`${signal}: shutting down (running requests get up to 10 s; ${signal} again exits)`);
      server.shutdown(10_000).then(() => http.shutdown());
    };
    const onInt = () => stop("SIGINT"), onTerm = () => stop("SIGTERM");
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    await http.finished;
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
    err("gollm serve: stopped");
    return 0;
  },
};
