/**
 * The HTTP side of `gollm serve`: a `Deno.serve` handler with OpenAI's endpoints and
 * llama.cpp's extras, over the continuous-batching {@linkcode Scheduler}.
 *
 * ```
 * GET  /health                 {"status": "ok"} (503 while shutting down)
 * GET  /v1/models              the one model
 * POST /v1/chat/completions    through the chat template; SSE with "stream": true
 * POST /v1/completions         text or token-id prompt; SSE with "stream": true
 * POST /tokenize               {"content", "add_special"?, "with_pieces"?} -> {"tokens"}
 * POST /detokenize             {"tokens"} -> {"content"}
 * ```
 *
 * Every error is `{"error": {"message", "type", "param", "code"}}` with its status: 400 bad
 * JSON or field, 401 bad API key, 404 unknown model or path, 405 wrong method, 408 request
 * timeout, 413 body too large, 500 a failed step, 503 (with `Retry-After`) queue full or
 * shutting down. A client that disconnects cancels its request; the scheduler frees its
 * blocks at the next step. One log line per request: method, path, status, tokens, ms.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import type { BatchModel } from "../runtime/batch_model.ts";
import type { SamplerOptions } from "../runtime/sampler.ts";
import { JsonConstraint } from "../runtime/json_constraint.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { ApiError, type CommonParams, parseChatRequest, parseCompletionRequest } from "./openai.ts";
import { chatPromptIds, completionPromptIds, PLAIN_CHAT_STOPS } from "./prompt.ts";
import {
  apiFinishReason,
  chatChunk,
  chatCompletion,
  chatLogprobs,
  completionLogprobs,
  modelList,
  type ResponseHead,
  textChunk,
  textCompletion,
  TokenTexts,
  usage,
  usageChunk,
} from "./responses.ts";
import {
  QueueFullError,
  Scheduler,
  type SchedulerStats,
  type SpeculativeOptions,
} from "./scheduler.ts";
import { choiceSeed, interleaveChoices } from "./choices.ts";
import type {
  GeneratedToken,
  GenerationHandle,
  GenerationRequest,
  GenerationResult,
} from "./sequence.ts";
import { detokenize, NO_TOKENIZER, tokenize } from "./tokenize.ts";

/** Options of {@linkcode createServer}. */
export interface ServerOptions {
  /** The model id clients name in `model` (default: the checkpoint's file or folder name). */
  modelName?: string;
  /** Require `Authorization: Bearer KEY` on every endpoint but `/health`. */
  apiKey?: string;
  /** Largest request body in bytes (default 2 MiB). */
  maxBodyBytes?: number;
  /** Requests waiting for a sequence slot at most; more get 503 (default 256). */
  maxQueue?: number;
  /** Milliseconds a request may take before it is cancelled with 408 (default 600000). */
  timeoutMs?: number;
  /** Share full prompt blocks by hash (default true). */
  prefixCaching?: boolean;
  /** Receives one line per finished request (default: stderr). */
  log?: (line: string) => void;
  /** Speculative decoding of greedy and sampled requests (server/speculative.ts proposers). */
  speculative?: SpeculativeOptions;
}

/** What {@linkcode createServer} returns: a `Deno.serve` handler with a scheduler and shutdown. */
export interface GollmServer {
  /** The handler: pass it to `Deno.serve`. */
  (request: Request): Promise<Response>;
  /** The scheduler under it (stats, tests). */
  readonly scheduler: Scheduler;
  /** The model id served. */
  readonly modelName: string;
  /**
   * Stops taking requests (503 from then on), lets running ones finish for up to `graceMs`
   * (default 10000), cancels the rest, then stops the model's worker threads
   * (`BatchModel.close`; the model cannot serve again).
   */
  shutdown(graceMs?: number): Promise<void>;
}

const JSON_HEADERS = { "content-type": "application/json" };

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

function errorResponse(e: ApiError): Response {
  const headers: Record<string, string> = e.status === 503 ? { "retry-after": "1" } : {};
  if (e.status === 401) headers["www-authenticate"] = "Bearer";
  return json(e.toJSON(), e.status, headers);
}

/** Constant-time comparison of two strings (the API key). */
function sameKey(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Reads the body as JSON under the size limit: 413 over it, 400 for bad JSON. */
async function readJson(request: Request, maxBytes: number): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  const tooLarge = () =>
    new ApiError(413, `the request body is larger than ${maxBytes} bytes`, null, "body_too_large");
  if (declared > maxBytes) throw tooLarge();
  const parts: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const part of request.body) {
      size += part.length;
      if (size > maxBytes) throw tooLarge();
      parts.push(part);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") throw new ApiError(400, "the request body is empty; send a JSON object");
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`);
  }
}

const randomId = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0"))
    .join("");

/** What the log line of a request adds: its tokens, and (streams) when it ended. */
interface Note {
  tokens: string;
  ended?: () => void;
}

/** A request ready for the scheduler, with what the response needs. */
interface Prepared {
  prompt: number[];
  params: CommonParams;
  stop: string[];
  maxTokens: number;
}

/**
 * Creates the server's request handler over a serving model: builds a
 * {@linkcode Scheduler} on the model's batched forward and routes requests to it.
 *
 * @param model The serving model (runtime/batch_model.ts); it needs a tokenizer for text.
 * @param options Model id, API key, limits, log.
 * @returns The handler (with `scheduler`, `modelName` and `shutdown`).
 * @throws {GollmError} for a bad option, or a pool/context the scheduler refuses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createBatchModel } from "../runtime/batch_model.ts";
 * import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
 * import { createServer } from "./http.ts";
 * const yaml = await Deno.readTextFile("configs/test-llama.yaml");
 * const c = { ...parseConfigYaml(yaml, "t.yaml"), vocab_size: 256 };
 * const tok = TiktokenTokenizer.fromRanks(Array.from({ length: 256 }, (_, b) => new Uint8Array([b])), new Map());
 * const model = createBatchModel(c, randomWeights(c, 1), tok, { parallel: 2 });
 * const server = createServer(model, { modelName: "tiny", log: () => {} });
 * // Deno.serve({ port: 8080 }, server) would listen; here the handler is called directly.
 * const res = await server(new Request("http://x/v1/completions", {
 *   method: "POST",
 *   body: JSON.stringify({ model: "tiny", prompt: "Hi", max_tokens: 4, temperature: 0 }),
 * }));
 * const body = await res.json();
 * assert.equal(body.object, "text_completion");
 * assert.equal(body.usage.completion_tokens, 4);
 * assert.equal(body.choices[0].finish_reason, "length");
 * await server.shutdown();
 * ```
 */
export function createServer(model: BatchModel, options: ServerOptions = {}): GollmServer {
  const modelName = options.modelName ??
    (model.checkpoint.path.replace(/\/+$/, "").split("/").pop() || "gollm");
  const maxBody = options.maxBodyBytes ?? 2 * 1024 * 1024;
  const timeoutMs = options.timeoutMs ?? 600_000;
  const log = options.log ?? ((line: string) => console.error(line));
  const scheduler = new Scheduler(model.batch, model.tokenizer ?? NO_TOKENIZER, model.eosIds, {
    ctxSize: model.ctxSize,
    maxQueue: options.maxQueue,
    prefixCaching: options.prefixCaching,
    speculative: options.speculative,
  });
  const created = Math.floor(Date.now() / 1000);
  const texts = model.tokenizer ? new TokenTexts(model.tokenizer) : null;
  const g = model.generation;
  const C = scheduler.ctxSize;
  // JSON mode's (and schemas') token bytes and masks by state, shared by the requests.
  const tokenBytes: Uint8Array[] = [], jsonMasks = new Map<string, Uint8Array>();
  let draining = false;

  const needTokenizer = (): Tokenizer => {
    if (!model.tokenizer) {
      throw new ApiError(400, "the model has no tokenizer; only token-id prompts work", null);
    }
    return model.tokenizer;
  };

  /** The limit checks shared by chat and completions. */
  const prepare = (
    prompt: number[],
    params: CommonParams,
    field: string,
    extraStops: readonly string[] = [],
  ): Prepared => {
    if (params.model !== modelName) {
      throw new ApiError(
        404,
        `the model '${params.model}' does not exist; this server serves '${modelName}'`,
        "model",
        "model_not_found",
      );
    }
    const V = model.config.vocab_size;
    for (const id of Object.keys(params.logitBias ?? {})) {
      if (Number(id) >= V) {
        throw new ApiError(
          400,
          `'logit_bias' key ${id} is not a token id in [0, ${V})`,
          "logit_bias",
          "invalid_value",
        );
      }
    }
    if (prompt.length >= C) {
      throw new ApiError(
        400,
        `this model's context is ${C} tokens; the ${field} is ${prompt.length} tokens, leaving no room for a reply`,
        field,
        "context_length_exceeded",
      );
    }
    if (params.maxTokens !== undefined && prompt.length + params.maxTokens > C) {
      const key = "max_tokens";
      throw new ApiError(
        400,
        `this model's context is ${C} tokens; the request asks for ${
          prompt.length + params.maxTokens
        } ` +
          `(${prompt.length} in the ${field}, ${params.maxTokens} for the reply); lower max_tokens`,
        key,
        "context_length_exceeded",
      );
    }
    if (params.logprobs !== undefined && !texts) needTokenizer();
    if (params.n > scheduler.maxSeqs) {
      throw new ApiError(
        400,
        `'n' must be at most ${scheduler.maxSeqs} (the server's sequence slots, --parallel; ` +
          `a request's choices run at once), got ${params.n}`,
        "n",
        "invalid_value",
      );
    }
    return {
      prompt,
      params,
      stop: [...params.stop, ...extraStops],
      maxTokens: params.maxTokens ?? C - prompt.length,
    };
  };

  /** Submits the request's `n` choices (server/choices.ts): choice i samples with seed + i. */
  const submit = (p: Prepared, signal: AbortSignal): GenerationHandle[] => {
    const q = p.params;
    const sampling: SamplerOptions = {
      temperature: q.temperature ?? g.temperature ?? 1,
      topP: q.topP ?? g.top_p ?? 1,
      topK: q.topK ?? g.top_k ?? 0,
      minP: q.minP ?? 0,
      repeatPenalty: q.repetitionPenalty ?? 1,
      frequencyPenalty: q.frequencyPenalty ?? 0,
      presencePenalty: q.presencePenalty ?? 0,
      seed: q.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
      logitBias: q.logitBias,
    };
    try {
      const choices = Array.from({ length: q.n }, (_, i): GenerationRequest => ({
        prompt: p.prompt,
        sampling: { ...sampling, seed: choiceSeed(sampling.seed!, i) },
        // One constraint per choice: each walks its own reply (JSON mode or a schema).
        constraint: q.jsonObject || q.jsonSchema
          ? new JsonConstraint(needTokenizer(), tokenBytes, jsonMasks, q.jsonSchema?.recognizer())
          : undefined,
        maxTokens: p.maxTokens,
        stop: p.stop,
        ignoreEos: q.ignoreEos,
        logprobs: q.logprobs,
        signal,
      }));
      return scheduler.submitGroup(choices);
    } catch (e) {
      if (e instanceof QueueFullError) {
        throw new ApiError(503, e.message, null, "server_busy", "server_error");
      }
      throw e instanceof GollmError && !(e instanceof ApiError) ? new ApiError(400, e.message) : e;
    }
  };

  /** Runs a generation for a client: cancels on disconnect or timeout. */
  const generate = async (
    chat: boolean,
    p: Prepared,
    request: Request,
    note: Note,
  ): Promise<Response> => {
    // One controller cancels every choice: on timeout, on a disconnect (the request's
    // signal while a whole response is computed; the stream's cancel when streaming).
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, timeoutMs);
    const onDisconnect = () => ctl.abort();
    const stream = p.params.stream;
    if (!stream) request.signal.addEventListener("abort", onDisconnect);
    const done = () => {
      clearTimeout(timer);
      request.signal.removeEventListener("abort", onDisconnect);
    };
    let handles: GenerationHandle[];
    try {
      handles = submit(p, ctl.signal);
    } catch (e) {
      done();
      throw e;
    }
    const head: ResponseHead = {
      id: `${chat ? "chatcmpl" : "cmpl"}-${randomId()}`,
      created: Math.floor(Date.now() / 1000),
      model: modelName,
    };
    const lp = p.params.logprobs;
    const timeoutError = () =>
      new ApiError(
        408,
        `the request took longer than the timeout of ${timeoutMs / 1000} s`,
        null,
        "timeout",
        "timeout_error",
      );
    // Usage: the prompt once (choice 0 prefilled it), completion tokens over every choice.
    const summary = (rs: readonly GenerationResult[]) => {
      const r = rs[0];
      const completion = rs.reduce((sum, x) => sum + x.completionTokens, 0);
      note.tokens = `${r.promptTokens}+${completion} tokens${
        r.cachedTokens ? ` (${r.cachedTokens} cached)` : ""
      }${rs.length > 1 ? ` (n=${rs.length})` : ""}`;
      return usage(r.promptTokens, completion, r.cachedTokens);
    };

    if (!stream) {
      const read = async (h: GenerationHandle) => {
        let text = "";
        const tokens: GeneratedToken[] = [];
        for await (const c of h) {
          text += c.text;
          tokens.push(...c.tokens);
        }
        return { text, tokens, result: await h.result };
      };
      let outs: Awaited<ReturnType<typeof read>>[];
      try {
        outs = await Promise.all(handles.map(read));
      } finally {
        done();
      }
      const rs = outs.map((o) => o.result);
      const u = summary(rs);
      if (rs.some((r) => r.finishReason === "abort")) {
        if (timedOut) throw timeoutError();
        return new Response(null, { status: 499 }); // the client is gone
      }
      if (chat) {
        return json(chatCompletion(
          head,
          outs.map((o) => ({
            text: o.text,
            finish: apiFinishReason(o.result.finishReason),
            logprobs: lp === undefined ? null : chatLogprobs(o.tokens, texts!),
          })),
          u,
        ));
      }
      return json(textCompletion(
        head,
        outs.map((o) => ({
          text: o.text,
          finish: apiFinishReason(o.result.finishReason),
          logprobs: lp === undefined ? null : completionLogprobs(o.tokens, texts!, 0, lp > 0),
        })),
        u,
      ));
    }

    // Streaming: SSE `data: {...}` events, one choice per chunk (choices interleaved as
    // their tokens come), each choice's last chunk with its finish_reason; with
    // include_usage one usage chunk once every choice is done; then `data: [DONE]`.
    const enc = new TextEncoder();
    const withUsage = p.params.includeUsage;
    let open = true; // false once the client is gone
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        const write = (text: string) => {
          if (!open) return;
          try {
            controller.enqueue(enc.encode(text));
          } catch {
            open = false;
            ctl.abort();
          }
        };
        const send = (o: unknown) => write(`data: ${JSON.stringify(o)}\n\n`);
        try {
          if (chat) {
            handles.forEach((_, i) =>
              send(chatChunk(head, i, { role: "assistant", content: "" }, null, null, withUsage))
            );
          }
          const offsets = handles.map(() => 0); // completion text before each choice's chunk
          const results: GenerationResult[] = [];
          for await (const e of interleaveChoices(handles)) {
            const i = e.index;
            if ("result" in e) {
              results[i] = e.result;
              if (e.result.finishReason === "abort") continue;
              const finish = apiFinishReason(e.result.finishReason);
              if (chat) send(chatChunk(head, i, {}, finish, null, withUsage));
              else send(textChunk(head, i, "", finish, null, withUsage));
              continue;
            }
            const c = e.chunk;
            if (chat) {
              const l = lp === undefined ? null : chatLogprobs(c.tokens, texts!);
              send(chatChunk(head, i, { content: c.text }, null, l, withUsage));
            } else {
              const l = lp === undefined
                ? null
                : completionLogprobs(c.tokens, texts!, offsets[i], lp > 0);
              send(textChunk(head, i, c.text, null, l, withUsage));
            }
            offsets[i] += c.text.length;
          }
          const u = summary(results);
          if (results.some((r) => r.finishReason === "abort")) {
            if (timedOut) send(timeoutError().toJSON());
            else note.tokens += " (client disconnected)";
          } else if (withUsage) {
            send(usageChunk(head, chat ? "chat.completion.chunk" : "text_completion", u));
          }
          write("data: [DONE]\n\n");
        } catch (e) {
          const err = e instanceof ApiError ? e : new ApiError(
            500,
            `generation failed: ${(e as Error).message}`,
            null,
            null,
            "server_error",
          );
          note.tokens += " (failed)";
          send(err.toJSON());
          write("data: [DONE]\n\n");
        }
        done();
        try {
          if (open) controller.close();
        } catch { /* cancelled meanwhile */ }
        note.ended?.();
      },
      cancel() {
        open = false;
        ctl.abort(); // the client disconnected: free every choice at the next step
      },
    });
    return new Response(body, {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      },
    });
  };

  const route = async (request: Request, note: Note): Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = request.method;
    const routes: Record<string, string> = {
      "/health": "GET",
      "/v1/models": "GET",
      "/v1/chat/completions": "POST",
      "/v1/completions": "POST",
      "/tokenize": "POST",
      "/detokenize": "POST",
    };
    const want = routes[path];
    if (!want) throw new ApiError(404, `no such endpoint: ${method} ${path}`, null, "not_found");
    if (method !== want) {
      throw new ApiError(405, `${path} takes ${want}, got ${method}`, null, "method_not_allowed");
    }
    if (path === "/health") {
      if (draining) {
        throw new ApiError(
          503,
          "the server is shutting down",
          null,
          "shutting_down",
          "server_error",
        );
      }
      return json({ status: "ok" });
    }
    if (options.apiKey !== undefined) {
      const auth = request.headers.get("authorization") ?? "";
      const m = /^Bearer\s+(.+)$/i.exec(auth);
      if (!m || !sameKey(m[1].trim(), options.apiKey)) {
        throw new ApiError(
          401,
          m ? "incorrect API key provided" : "missing API key: send 'Authorization: Bearer KEY'",
          null,
          "invalid_api_key",
        );
      }
    }
    if (draining) {
      throw new ApiError(503, "the server is shutting down", null, "shutting_down", "server_error");
    }
    if (path === "/v1/models") return json(modelList(modelName, created, C));
    const body = await readJson(request, maxBody);
    if (path === "/v1/chat/completions") {
      const r = parseChatRequest(body);
      const tok = needTokenizer();
      const plain = !tok.chatTemplate;
      return await generate(
        true,
        prepare(chatPromptIds(tok, r.messages), r, "messages", plain ? PLAIN_CHAT_STOPS : []),
        request,
        note,
      );
    }
    if (path === "/v1/completions") {
      const r = parseCompletionRequest(body);
      return await generate(
        false,
        prepare(completionPromptIds(model.tokenizer, model.config, r.prompt), r, "prompt"),
        request,
        note,
      );
    }
    if (path === "/tokenize") return json(tokenize(needTokenizer(), body));
    return json(detokenize(needTokenizer(), body));
  };

  const handler = async (request: Request): Promise<Response> => {
    const t0 = performance.now();
    const note: Note = { tokens: "" };
    const streamEnded = new Promise<void>((r) => (note.ended = r));
    let res: Response;
    try {
      res = await route(request, note);
    } catch (e) {
      if (e instanceof ApiError) res = errorResponse(e);
      else {
        const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
        res = errorResponse(
          new ApiError(500, `internal error: ${msg}`, null, null, "server_error"),
        );
      }
    }
    const path = new URL(request.url).pathname;
    const line = () =>
      `${new Date().toISOString()} ${request.method} ${path} ${res.status}` +
      `${note.tokens ? " " + note.tokens : ""} ${Math.round(performance.now() - t0)} ms`;
    if (res.body && res.headers.get("content-type") === "text/event-stream") {
      streamEnded.then(() => log(line())); // when the stream ends, with its token counts
      return res;
    }
    log(line());
    return res;
  };

  const shutdown = async (graceMs = 10_000): Promise<void> => {
    draining = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      scheduler.idle(),
      new Promise<void>((r) => (timer = setTimeout(r, graceMs))),
    ]);
    clearTimeout(timer);
    await scheduler.close(); // the loop has stopped: no step runs on the threads any more
    model.close();
  };

  return Object.assign(handler, {
    scheduler,
    modelName,
    shutdown,
  });
}

/** Stats of a server's scheduler (see {@linkcode SchedulerStats}). */
export type ServerStats = SchedulerStats;
