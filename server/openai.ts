/**
 * OpenAI's API, request side: validation of `POST /v1/chat/completions` and
 * `POST /v1/completions` bodies into typed requests, and the error shape
 * `{"error": {"message", "type", "param", "code"}}` (platform.openai.com/docs/api-reference;
 * field ranges as OpenAI documents them, extras as vLLM and llama.cpp's server name them:
 * `top_k`, `min_p`, `repetition_penalty`, `ignore_eos`).
 *
 * Every bad field is an {@linkcode ApiError} (HTTP 400) naming the field, what it must be
 * and what it was. Unknown fields are ignored (as vLLM does); known fields gollm cannot
 * honour (`tools`, `echo`, `suffix`, `best_of` > 1, a `response_format` other than `text`,
 * `json_object` and `json_schema`, and a `json_schema` whose schema leaves the subset of
 * runtime/json_schema.ts: `pattern`, `format`, `minimum`, `allOf`, ... named by their path)
 * are refused rather than silently dropped. `n` (choices per request) is taken in [1, 128] as
 * OpenAI documents it; the server refuses more than its sequence slots (`--parallel`).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import {
  type CompiledJsonSchema,
  compileJsonSchema,
  JsonSchemaError,
} from "../runtime/json_schema.ts";

/** An API error: HTTP status and OpenAI's error fields. */
export class ApiError extends GollmError {
  /**
   * Creates the error.
   * @param status HTTP status (400 bad field, 401 bad key, 404 unknown model or path, 413
   *   body too large, 503 busy...).
   * @param message One line naming the field, expected vs actual.
   * @param param The request field at fault, or null.
   * @param code A short machine-readable code (`invalid_value`, `model_not_found`...), or null.
   * @param type OpenAI's error type (default `invalid_request_error`).
   */
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = "invalid_request_error",
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** The JSON body: `{"error": {"message", "type", "param", "code"}}`. */
  toJSON(): {
    error: { message: string; type: string; param: string | null; code: string | null };
  } {
    return {
      error: { message: this.message, type: this.type, param: this.param, code: this.code },
    };
  }
}

/** A chat message as the API takes it (content parts flattened to text). */
export interface ApiChatMessage {
  /** `system`, `developer` (treated as system), `user`, `assistant` or `tool`. */
  role: string;
  /** The text. */
  content: string;
}

/** The sampling and limit fields shared by chat and completions, validated. */
export interface CommonParams {
  /** The `model` field. */
  model: string;
  /**
   * `n`: choices to generate, in [1, 128] (default 1); each samples on its own
   * (server/choices.ts). The server caps it at its sequence slots.
   */
  n: number;
  /** `max_completion_tokens` ?? `max_tokens` (undefined: up to the context). */
  maxTokens?: number;
  /** `temperature` in [0, 2]. */
  temperature?: number;
  /** `top_p` in (0, 1]. */
  topP?: number;
  /** `top_k` (0 or -1: off). */
  topK?: number;
  /** `min_p` in [0, 1]. */
  minP?: number;
  /** `frequency_penalty` in [-2, 2]. */
  frequencyPenalty?: number;
  /** `presence_penalty` in [-2, 2]. */
  presencePenalty?: number;
  /** `repetition_penalty` > 0 (1 = off). */
  repetitionPenalty?: number;
  /** `seed`: an integer (safe range). */
  seed?: number;
  /**
   * `logit_bias`: token id → bias in [-100, 100] added to its logit (ids are checked
   * against the vocabulary by the server); undefined when absent or empty.
   */
  logitBias?: Record<number, number>;
  /** `stop`: up to 16 non-empty strings. */
  stop: string[];
  /** `stream`. */
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
  /** Top alternatives per token when logprobs are wanted (0..20); undefined: no logprobs. */
  logprobs?: number;
  /** `ignore_eos`. */
  ignoreEos: boolean;
  /**
   * `response_format: {"type": "json_object"}`: the reply is a JSON object (JSON mode,
   * runtime/json_constraint.ts), ending when the object is complete.
   */
  jsonObject: boolean;
  /**
   * `response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}`:
   * the reply is a JSON text valid for the schema (structured outputs,
   * runtime/json_schema.ts), ending when the value is complete; undefined otherwise.
   */
  jsonSchema?: CompiledJsonSchema;
}

/** A validated chat completion request. */
export interface ChatRequest extends CommonParams {
  /** The conversation. */
  messages: ApiChatMessage[];
}

/** A validated completion request. */
export interface CompletionRequest extends CommonParams {
  /** The prompt: text, or token ids. */
  prompt: string | number[];
}

type Json = Record<string, unknown>;

const typeName = (v: unknown) =>
  v === null
    ? "null"
    : Array.isArray(v)
    ? "an array"
    : typeof v === "object"
    ? "an object"
    : typeof v;

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
};

/** 400 naming the field: `'temperature' must be a number in [0, 2], got 3`. */
function bad(param: string, want: string, got: unknown, code = "invalid_value"): never {
  throw new ApiError(400, `'${param}' must be ${want}, got ${show(got)}`, param, code);
}

function unsupported(param: string, what: string): never {
  throw new ApiError(
    400,
    `'${param}': ${what} is not supported by gollm`,
    param,
    "unsupported_value",
  );
}

/** The body as an object, or 400. */
function asObject(body: unknown): Json {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(400, `the request body must be a JSON object, got ${typeName(body)}`);
  }
  return body as Json;
}

function num(
  o: Json,
  key: string,
  min: number,
  max: number,
  opts: { minExclusive?: boolean; int?: boolean } = {},
): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  const range = `${opts.minExclusive ? "(" : "["}${min}, ${max === Infinity ? "inf)" : max + "]"}`;
  const want = `${opts.int ? "an integer" : "a number"} in ${range}`;
  if (typeof v !== "number" || !Number.isFinite(v)) bad(key, want, v, "invalid_type");
  if (opts.int && !Number.isInteger(v)) bad(key, want, v, "invalid_type");
  if ((opts.minExclusive ? v <= min : v < min) || v > max) bad(key, want, v);
  return v;
}

function bool(o: Json, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") bad(key, "a boolean", v, "invalid_type");
  return v;
}

/**
 * `logit_bias` (OpenAI: a JSON object from token ids, as strings, to biases in [-100, 100]):
 * the map, or undefined when absent, null or empty.
 */
function biasMap(v: unknown): Record<number, number> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) bad("logit_bias", "an object", v, "invalid_type");
  const out: Record<number, number> = {};
  for (const [key, b] of Object.entries(v as Json)) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(key)) {
      bad("logit_bias", "keyed by token ids (integers >= 0 as strings)", key);
    }
    if (typeof b !== "number" || !Number.isFinite(b) || b < -100 || b > 100) {
      bad(
        `logit_bias[${key}]`,
        "a number in [-100, 100]",
        b,
        typeof b === "number" ? undefined : "invalid_type",
      );
    }
    out[Number(key)] = b as number;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Validates `model` and the fields shared by chat and completions. */
function common(o: Json, chat: boolean): CommonParams {
  const model = o.model;
  if (model === undefined) {
    throw new ApiError(400, "'model' is required", "model", "missing_required_parameter");
  }
  if (typeof model !== "string") bad("model", "a string", model, "invalid_type");
  const n = num(o, "n", 1, 128, { int: true }) ?? 1;
  const bestOf = num(o, "best_of", 1, 128, { int: true });
  if (bestOf !== undefined && bestOf > 1) unsupported("best_of", `best_of = ${bestOf}`);
  const logitBias = biasMap(o.logit_bias);
  for (const key of ["tools", "functions"]) {
    const v = o[key];
    if (Array.isArray(v) && v.length > 0) unsupported(key, "tool calling");
  }
  const { jsonObject, jsonSchema } = responseFormat(o.response_format);
  const maxTokens = num(o, "max_tokens", 1, Infinity, { int: true });
  const maxCompletion = num(o, "max_completion_tokens", 1, Infinity, { int: true });
  let top = num(o, "top_k", -1, Infinity, { int: true });
  if (top === -1) top = 0; // vLLM's "off"
  const seed = num(o, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, { int: true });
  // stop: a string, an array of strings, or null.
  let stop: string[] = [];
  const s = o.stop;
  if (typeof s === "string") stop = [s];
  else if (Array.isArray(s)) stop = s as string[];
  else if (s !== undefined && s !== null) {
    bad("stop", "a string or an array of strings", s, "invalid_type");
  }
  if (stop.length > 16) bad("stop", "at most 16 strings", `${stop.length} strings`);
  stop.forEach((x, i) => {
    if (typeof x !== "string" || x.length === 0) bad(`stop[${i}]`, "a non-empty string", x);
  });
  const stream = bool(o, "stream") ?? false;
  let includeUsage = false;
  const so = o.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) {
      throw new ApiError(
        400,
        "'stream_options' is only allowed when 'stream' is true",
        "stream_options",
      );
    }
    if (typeof so !== "object" || Array.isArray(so)) {
      bad("stream_options", "an object", so, "invalid_type");
    }
    includeUsage = bool(so as Json, "include_usage") ?? false;
  }
  // logprobs: chat has a boolean and top_logprobs; completions an integer.
  let logprobs: number | undefined;
  if (chat) {
    const want = bool(o, "logprobs") ?? false;
    const top = num(o, "top_logprobs", 0, 20, { int: true });
    if (top !== undefined && !want) {
      throw new ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
    }
    if (want) logprobs = top ?? 0;
  } else {
    logprobs = num(o, "logprobs", 0, 20, { int: true });
  }
  return {
    model,
    n,
    maxTokens: maxCompletion ?? maxTokens,
    temperature: num(o, "temperature", 0, 2),
    topP: num(o, "top_p", 0, 1, { minExclusive: true }),
    topK: top,
    minP: num(o, "min_p", 0, 1),
    frequencyPenalty: num(o, "frequency_penalty", -2, 2),
    presencePenalty: num(o, "presence_penalty", -2, 2),
    repetitionPenalty: num(o, "repetition_penalty", 0, Infinity, { minExclusive: true }),
    seed,
    logitBias,
    stop,
    stream,
    includeUsage,
    logprobs,
    ignoreEos: bool(o, "ignore_eos") ?? false,
    jsonObject,
    jsonSchema,
  };
}

/**
 * `response_format`: `{"type": "text"}`, `{"type": "json_object"}` (JSON mode) or
 * `{"type": "json_schema", "json_schema": {"name", "schema", "strict"?}}` (OpenAI's
 * Structured Outputs; the schema compiled here, so a keyword outside the subset is a 400
 * naming its path: `response_format.json_schema.schema.properties.age: 'pattern' is not
 * supported`). `strict` may be false, but the reply is held to the schema all the same.
 */
function responseFormat(rf: unknown): { jsonObject: boolean; jsonSchema?: CompiledJsonSchema } {
  if (rf === undefined || rf === null) return { jsonObject: false };
  const t = (rf as Json)?.type;
  if (typeof rf !== "object" || Array.isArray(rf) || !FORMATS.includes(t as string)) {
    unsupported(
      "response_format",
      `response_format ${show(rf)} (only {"type": "text"}, {"type": "json_object"} and ` +
        `{"type": "json_schema", "json_schema": {...}})`,
    );
  }
  if (t !== "json_schema") return { jsonObject: t === "json_object" };
  const where = "response_format.json_schema";
  const wrong = (field: string, want: string, got: unknown): never => {
    throw new ApiError(
      400,
      `'${field}' must be ${want}, got ${show(got)}`,
      "response_format",
      "invalid_type",
    );
  };
  const js = (rf as Json).json_schema;
  if (typeof js !== "object" || js === null || Array.isArray(js)) wrong(where, "an object", js);
  const { name, schema, strict } = js as Json;
  if (name !== undefined && typeof name !== "string") wrong(`${where}.name`, "a string", name);
  if (strict !== undefined && strict !== null && typeof strict !== "boolean") {
    wrong(`${where}.strict`, "a boolean", strict);
  }
  if (schema === undefined) {
    throw new ApiError(
      400,
      `'${where}.schema' is required`,
      "response_format",
      "missing_required_parameter",
    );
  }
  try {
    return { jsonObject: false, jsonSchema: compileJsonSchema(schema, `${where}.schema`) };
  } catch (e) {
    if (!(e instanceof JsonSchemaError)) throw e;
    throw new ApiError(400, e.message, "response_format", "unsupported_value");
  }
}

const FORMATS = ["text", "json_object", "json_schema"];

const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

/** A message's content: a string, or an array of `{type: "text", text}` parts joined. */
function contentText(v: unknown, where: string, role: string): string {
  if (typeof v === "string") return v;
  if ((v === null || v === undefined) && role === "assistant") return "";
  if (!Array.isArray(v)) bad(where, "a string or an array of text parts", v, "invalid_type");
  return v.map((part, j) => {
    const p = part as Json;
    if (typeof p !== "object" || p === null || p.type !== "text" || typeof p.text !== "string") {
      if (typeof p === "object" && p !== null && typeof p.type === "string" && p.type !== "text") {
        unsupported(`${where}[${j}].type`, `content of type '${p.type}'`);
      }
      bad(`${where}[${j}]`, `a text part {"type": "text", "text": "..."}`, part, "invalid_type");
    }
    return p.text as string;
  }).join("");
}

/**
 * Validates a chat completion request body.
 *
 * @param body The parsed JSON body.
 * @returns The typed request (`developer` messages become `system`).
 * @throws {ApiError} 400 naming the first bad field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ApiError, parseChatRequest } from "./openai.ts";
 * const r = parseChatRequest({ model: "m", messages: [{ role: "user", content: "Hi" }], top_logprobs: 2, logprobs: true });
 * assert.equal(r.logprobs, 2);
 * assert.throws(
 *   () => parseChatRequest({ model: "m", messages: [], temperature: 3 }),
 *   (e: unknown) => e instanceof ApiError && e.param === "messages",
 * );
 * assert.throws(
 *   () => parseChatRequest({ model: "m", messages: [{ role: "user", content: "x" }], temperature: "hot" }),
 *   /'temperature' must be a number in \[0, 2\], got "hot"/,
 * );
 * ```
 */
export function parseChatRequest(body: unknown): ChatRequest {
  const o = asObject(body);
  const raw = o.messages;
  if (raw === undefined) {
    throw new ApiError(400, "'messages' is required", "messages", "missing_required_parameter");
  }
  if (!Array.isArray(raw) || raw.length === 0) {
    bad(
      "messages",
      "a non-empty array of messages",
      raw,
      Array.isArray(raw) ? "invalid_value" : "invalid_type",
    );
  }
  const messages = raw.map((m, i): ApiChatMessage => {
    const where = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) {
      bad(where, "an object", m, "invalid_type");
    }
    const role = (m as Json).role;
    if (typeof role !== "string" || !ROLES.has(role)) {
      bad(`${where}.role`, `one of ${[...ROLES].join(", ")}`, role);
    }
    const content = contentText((m as Json).content, `${where}.content`, role);
    return { role: role === "developer" ? "system" : role, content };
  });
  return { ...common(o, true), messages };
}

/**
 * Validates a completion request body. `prompt` is a string, an array of token ids, or a
 * one-element array of either (several prompts in one request are refused).
 *
 * @param body The parsed JSON body.
 * @returns The typed request.
 * @throws {ApiError} 400 naming the first bad field.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCompletionRequest } from "./openai.ts";
 * assert.deepEqual(parseCompletionRequest({ model: "m", prompt: [[1, 2, 3]] }).prompt, [1, 2, 3]);
 * assert.equal(parseCompletionRequest({ model: "m", prompt: ["Hi"], logprobs: 3 }).logprobs, 3);
 * assert.equal(parseCompletionRequest({ model: "m", prompt: "x", n: 2 }).n, 2);
 * assert.throws(() => parseCompletionRequest({ model: "m", prompt: "x", n: 0 }), /'n' must be/);
 * ```
 */
export function parseCompletionRequest(body: unknown): CompletionRequest {
  const o = asObject(body);
  let p = o.prompt;
  if (p === undefined) {
    throw new ApiError(400, "'prompt' is required", "prompt", "missing_required_parameter");
  }
  const want = "a string, an array of token ids, or a one-element array of either";
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === "string" || Array.isArray(p[0]))) {
    p = p[0];
  } else if (
    Array.isArray(p) && p.length > 1 && p.every((x) => typeof x === "string" || Array.isArray(x))
  ) {
    unsupported("prompt", `a batch of ${p.length} prompts (send one request per prompt)`);
  }
  if (Array.isArray(p)) {
    p.forEach((t, i) => {
      if (!Number.isInteger(t) || (t as number) < 0) {
        bad(`prompt[${i}]`, "a token id (an integer >= 0)", t);
      }
    });
  } else if (typeof p !== "string") bad("prompt", want, p, "invalid_type");
  if (o.echo === true) unsupported("echo", "echo");
  if (typeof o.suffix === "string" && o.suffix.length > 0) {
    unsupported("suffix", "a suffix (insertion)");
  }
  return { ...common(o, false), prompt: p as string | number[] };
}
