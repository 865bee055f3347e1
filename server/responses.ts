/**
 * OpenAI's API, response side: the JSON objects of chat completions
 * (`chat.completion`, `chat.completion.chunk`), completions (`text_completion`, whole and
 * streamed), `usage`, `logprobs` in both shapes, and the model list
 * (platform.openai.com/docs/api-reference/chat/object, .../completions/object).
 *
 * @module
 */
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { FinishReason, GeneratedToken } from "./sequence.ts";

/** `usage` of a response (`prompt_tokens_details.cached_tokens`: prefix-cache hits). */
export interface Usage {
  /** Prompt tokens. */
  prompt_tokens: number;
  /** Generated tokens. */
  completion_tokens: number;
  /** Their sum. */
  total_tokens: number;
  /** Prompt tokens served from the prefix cache. */
  prompt_tokens_details: { cached_tokens: number };
}

/**
 * Builds `usage`.
 *
 * @param prompt Prompt tokens.
 * @param completion Generated tokens.
 * @param cached Prompt tokens the prefix cache served.
 * @returns The usage object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { usage } from "./responses.ts";
 * assert.equal(usage(5, 7, 0).total_tokens, 12);
 * ```
 */
export function usage(prompt: number, completion: number, cached: number): Usage {
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cached },
  };
}

/** OpenAI's finish reason of a finished sequence (abort never reaches a response). */
export type ApiFinishReason = "stop" | "length";

/** Maps the scheduler's finish reason (`abort` cannot reach a client) to OpenAI's. */
export function apiFinishReason(r: FinishReason): ApiFinishReason {
  return r === "length" ? "length" : "stop";
}

/** The most negative logprob sent: JSON has no -Infinity (vLLM sends -9999.0 too). */
const MIN_LOGPROB = -9999;
const clampLp = (x: number) => (x > MIN_LOGPROB ? x : MIN_LOGPROB);

/** Token text and bytes for logprobs (a token holding part of a character shows U+FFFD). */
export class TokenTexts {
  #tok: Tokenizer;
  #dec = new TextDecoder();
  #cache = new Map<number, string>();

  /**
   * Creates the cache of token texts.
   * @param tokenizer The model's tokenizer.
   */
  constructor(tokenizer: Tokenizer) {
    this.#tok = tokenizer;
  }

  /** The token's text. */
  text(id: number): string {
    let s = this.#cache.get(id);
    if (s === undefined) {
      s = this.#dec.decode(this.#tok.tokenBytes(id));
      this.#cache.set(id, s);
    }
    return s;
  }

  /** The token's UTF-8 bytes as numbers. */
  bytes(id: number): number[] {
    return Array.from(this.#tok.tokenBytes(id));
  }
}

/** One entry of chat `logprobs.content`. */
export interface ChatLogprob {
  /** Token text. */
  token: string;
  /** Its logprob. */
  logprob: number;
  /** Its UTF-8 bytes. */
  bytes: number[];
  /** The most likely alternatives. */
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

/**
 * Chat `logprobs.content` entries of generated tokens.
 *
 * @param tokens Tokens with logprobs.
 * @param texts Token texts.
 * @returns One entry per token.
 */
export function chatLogprobs(tokens: readonly GeneratedToken[], texts: TokenTexts): ChatLogprob[] {
  return tokens.map((t) => ({
    token: texts.text(t.id),
    logprob: clampLp(t.logprob ?? 0),
    bytes: texts.bytes(t.id),
    top_logprobs: (t.top ?? []).map((a) => ({
      token: texts.text(a.id),
      logprob: clampLp(a.logprob),
      bytes: texts.bytes(a.id),
    })),
  }));
}

/** Completions `logprobs` (the legacy shape). */
export interface CompletionLogprobs {
  /** Token texts. */
  tokens: string[];
  /** Their logprobs. */
  token_logprobs: number[];
  /** Per token, the alternatives as `{text: logprob}` (null when none were asked). */
  top_logprobs: Record<string, number>[] | null;
  /** Character offset of each token in the completion text. */
  text_offset: number[];
}

/**
 * Completions `logprobs` of generated tokens.
 *
 * @param tokens Tokens with logprobs.
 * @param texts Token texts.
 * @param offset Characters of completion text before the first token (streaming).
 * @param top Whether alternatives were asked (`logprobs` > 0).
 * @returns The logprobs object.
 */
export function completionLogprobs(
  tokens: readonly GeneratedToken[],
  texts: TokenTexts,
  offset: number,
  top: boolean,
): CompletionLogprobs {
  const text_offset: number[] = [];
  let at = offset;
  for (const t of tokens) {
    text_offset.push(at);
    at += texts.text(t.id).length;
  }
  return {
    tokens: tokens.map((t) => texts.text(t.id)),
    token_logprobs: tokens.map((t) => clampLp(t.logprob ?? 0)),
    top_logprobs: top
      ? tokens.map((t) =>
        Object.fromEntries((t.top ?? []).map((a) => [texts.text(a.id), clampLp(a.logprob)]))
      )
      : null,
    text_offset,
  };
}

/** Fields every response object starts with. */
export interface ResponseHead {
  /** `chatcmpl-...` or `cmpl-...`. */
  id: string;
  /** Unix seconds of the request. */
  created: number;
  /** The model id. */
  model: string;
}

/** One finished choice of a whole response (`n` > 1 gives several, server/choices.ts). */
export interface ChoiceOutput<L> {
  /** The choice's text. */
  text: string;
  /** Its finish reason. */
  finish: ApiFinishReason;
  /** Its logprobs (chat: `logprobs.content` entries), or null when not asked. */
  logprobs: L | null;
}

/**
 * A whole `chat.completion` object.
 *
 * @param head Id, creation time, model.
 * @param choices The assistant's replies; choice i gets `index` i.
 * @param u Usage (prompt tokens once, completion tokens summed over the choices).
 * @returns The response object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chatCompletion, usage } from "./responses.ts";
 * const head = { id: "chatcmpl-1", created: 0, model: "m" };
 * const choice = { text: "Hi", finish: "stop" as const, logprobs: null };
 * const r = chatCompletion(head, [choice, choice], usage(3, 2, 0));
 * assert.deepEqual((r.choices as { index: number }[]).map((c) => c.index), [0, 1]);
 * ```
 */
export function chatCompletion(
  head: ResponseHead,
  choices: readonly ChoiceOutput<ChatLogprob[]>[],
  u: Usage,
): Record<string, unknown> {
  return {
    ...head,
    object: "chat.completion",
    choices: choices.map((c, index) => ({
      index,
      message: { role: "assistant", content: c.text },
      logprobs: c.logprobs && { content: c.logprobs },
      finish_reason: c.finish,
    })),
    usage: u,
  };
}

/**
 * One `chat.completion.chunk` (streaming) of one choice. A choice's first chunk carries
 * `role`, its last one `finish_reason`; with `include_usage`, every chunk has `usage: null`
 * and a final chunk with empty `choices` carries the usage.
 *
 * @param head Id, creation time, model.
 * @param index The choice (0 .. n-1).
 * @param delta The delta (`{role}`, `{content}` or `{}`).
 * @param finish Finish reason of the choice's last chunk, else null.
 * @param logprobs Entries of the tokens in this chunk, or null.
 * @param withUsage Whether `include_usage` was asked (adds `usage: null`).
 * @returns The chunk object.
 */
export function chatChunk(
  head: ResponseHead,
  index: number,
  delta: Record<string, string>,
  finish: ApiFinishReason | null,
  logprobs: ChatLogprob[] | null,
  withUsage: boolean,
): Record<string, unknown> {
  return {
    ...head,
    object: "chat.completion.chunk",
    choices: [{
      index,
      delta,
      logprobs: logprobs && { content: logprobs },
      finish_reason: finish,
    }],
    ...(withUsage ? { usage: null } : {}),
  };
}

/**
 * A whole `text_completion` object.
 *
 * @param head Id, creation time, model.
 * @param choices The completions; choice i gets `index` i.
 * @param u Usage (prompt tokens once, completion tokens summed over the choices).
 * @returns The response object.
 */
export function textCompletion(
  head: ResponseHead,
  choices: readonly ChoiceOutput<CompletionLogprobs>[],
  u: Usage,
): Record<string, unknown> {
  return {
    ...head,
    object: "text_completion",
    choices: choices.map((c, index) => ({
      index,
      text: c.text,
      logprobs: c.logprobs,
      finish_reason: c.finish,
    })),
    usage: u,
  };
}

/**
 * One streamed `text_completion` chunk of one choice (the whole object's shape).
 *
 * @param head Id, creation time, model.
 * @param index The choice (0 .. n-1).
 * @param text This chunk's text.
 * @param finish Finish reason of the choice's last chunk, else null.
 * @param logprobs The logprobs object of this chunk's tokens, or null.
 * @param withUsage Whether `include_usage` was asked (adds `usage: null`).
 * @returns The chunk object.
 */
export function textChunk(
  head: ResponseHead,
  index: number,
  text: string,
  finish: ApiFinishReason | null,
  logprobs: CompletionLogprobs | null,
  withUsage: boolean,
): Record<string, unknown> {
  return {
    ...head,
    object: "text_completion",
    choices: [{ index, text, logprobs, finish_reason: finish }],
    ...(withUsage ? { usage: null } : {}),
  };
}

/**
 * The final usage chunk of a stream with `include_usage` (empty `choices`).
 *
 * @param head Id, creation time, model.
 * @param object `chat.completion.chunk` or `text_completion`.
 * @param u Usage.
 * @returns The chunk object.
 */
export function usageChunk(head: ResponseHead, object: string, u: Usage): Record<string, unknown> {
  return { ...head, object, choices: [], usage: u };
}

/**
 * `GET /v1/models`: the one model served.
 *
 * @param id The model id.
 * @param created Unix seconds the server started.
 * @param maxModelLen Tokens one sequence may hold (vLLM's `max_model_len`).
 * @returns The list object.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { modelList } from "./responses.ts";
 * const l = modelList("default", 0, 256);
 * assert.equal(l.data[0].id, "default");
 * assert.equal(l.object, "list");
 * ```
 */
export function modelList(
  id: string,
  created: number,
  maxModelLen: number,
): {
  object: "list";
  data: { id: string; object: "model"; created: number; owned_by: string; max_model_len: number }[];
} {
  return {
    object: "list",
    data: [{ id, object: "model", created, owned_by: "gollm", max_model_len: maxModelLen }],
  };
}
