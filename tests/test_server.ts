/**
 * A `gollm serve` for the server tests (serve_test.ts, serve_n_test.ts, serve_schema_test.ts):
 * `createServer` over the shipped default model (loaded once per test file) on 127.0.0.1 at
 * a free port, with the official `openai` client pointed at it and the request log kept.
 *
 * @module
 */
import OpenAI from "openai";
import { loadCheckpoint } from "../formats/load.ts";
import type { Checkpoint } from "../formats/checkpoint.ts";
import { type BatchModelOptions, createBatchModel } from "../runtime/batch_model.ts";
import { createServer, type GollmServer, type ServerOptions } from "../server/http.ts";
import { ROOT } from "./assets.ts";

/** The model every server here runs. */
export const MODEL = `${ROOT}models/default`;
let ckpt: Checkpoint | null = null;

/** The default model's checkpoint, loaded once per test file. */
export async function defaultCheckpoint(): Promise<Checkpoint> {
  return ckpt ??= await loadCheckpoint(MODEL);
}

/** A running test server. */
export interface Running {
  server: GollmServer;
  /** Bytes of one KV block of the served model. */
  blockBytes: number;
  url: string;
  client: OpenAI;
  logs: string[];
  close(): Promise<void>;
}

/** Starts a server on 127.0.0.1 (a free port) over the default model. */
/**
 * Starts a server: `parallel` sequence slots, a context of 256, 32 rows per step.
 *
 * @param options Server options (API key, limits, ...).
 * @param parallel Sequence slots.
 * @param cache KV cache element types.
 * @returns The server, its URL, an `openai` client and its log lines.
 */
export async function startServer(
  options: ServerOptions = {},
  parallel = 8,
  cache: Pick<BatchModelOptions, "cacheTypeK" | "cacheTypeV"> = {},
): Promise<Running> {
  const ckpt = await defaultCheckpoint();
  const model = createBatchModel(ckpt.config, ckpt.weights, ckpt.tokenizer, {
    parallel,
    ctxSize: 256,
    batchSize: 32,
    offload: true, // as `gollm serve`: steps on worker threads, HTTP on this one
    ...cache,
  }, { format: ckpt.format, path: ckpt.path });
  const logs: string[] = [];
  const server = createServer(model, { log: (l) => logs.push(l), ...options });
  const listening = Promise.withResolvers<number>();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: ({ port }) => listening.resolve(port) },
    server,
  );
  const url = `http://127.0.0.1:${await listening.promise}`;
  const client = new OpenAI({
    baseURL: `${url}/v1`,
    apiKey: options.apiKey ?? "none",
    maxRetries: 0,
  });
  return {
    server,
    blockBytes: model.batch.blockBytes,
    url,
    client,
    logs,
    async close() {
      await server.shutdown(1000);
      await http.shutdown();
    },
  };
}
