/**
 * Prompt ids of the API's requests: a chat conversation through the model's chat template
 * (tokenizers/chat_template.ts, as transformers' `apply_chat_template`), or a completion
 * prompt as text or token ids.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { renderChat } from "../tokenizers/chat_template.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { type ApiChatMessage, ApiError } from "./openai.ts";

/**
 * Stop strings of the plain `User:` / `Assistant:` format (a model without a chat template):
 * the reply ends where the model starts the next turn, as `gollm chat` does.
 */
export const PLAIN_CHAT_STOPS: readonly string[] = ["\nUser:", "\nSystem:"];

/**
 * Renders and encodes a conversation with the generation prompt: the template's special
 * tokens (and any special-token text in the messages) become their ids; BOS is prepended
 * once, whether the template writes it or the tokenizer adds it (as `gollm chat` encodes).
 *
 * @param tok The tokenizer (its `chatTemplate`, or the plain format without one).
 * @param messages The conversation.
 * @returns Prompt ids.
 * @throws {ApiError} 400 when the template fails to render (e.g. roles that do not alternate).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
 * import { chatPromptIds } from "./prompt.ts";
 * const tok = TiktokenTokenizer.fromRanks(Array.from({ length: 256 }, (_, b) => new Uint8Array([b])), new Map());
 * const ids = chatPromptIds(tok, [{ role: "user", content: "Hi" }]);
 * assert.equal(new TextDecoder().decode(new Uint8Array(ids)), "User: Hi\n\nAssistant:");
 * ```
 */
export function chatPromptIds(tok: Tokenizer, messages: readonly ApiChatMessage[]): number[] {
  const bosText = tok.bosId !== null ? tok.tokenPiece(tok.bosId) : "";
  const eosText = tok.eosIds.length > 0 ? tok.tokenPiece(tok.eosIds[0]) : "";
  let text: string;
  try {
    text = renderChat(tok.chatTemplate, messages, {
      addGenerationPrompt: true,
      bosToken: bosText,
      eosToken: eosText,
    });
  } catch (e) {
    throw new ApiError(400, `messages: ${(e as Error).message}`, "messages");
  }
  const templateBos = bosText !== "" && text.startsWith(bosText);
  if (templateBos) text = text.slice(bosText.length);
  return tok.encode(text, { bos: templateBos || tok.addBos, special: true });
}

/**
 * The ids of a completion prompt: text encoded as `gollm generate` encodes it (BOS as the
 * tokenizer adds it, special-token text recognised; an empty text is BOS alone), or token
 * ids checked against the vocabulary.
 *
 * @param tok The tokenizer, or null (token ids only).
 * @param config The model config (vocabulary size).
 * @param prompt Text or ids.
 * @returns Prompt ids (at least one).
 * @throws {ApiError} 400 for an id outside the vocabulary, an empty prompt with no BOS, or
 *   text on a model without a tokenizer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { completionPromptIds } from "./prompt.ts";
 * const config = { vocab_size: 10 } as Parameters<typeof completionPromptIds>[1];
 * assert.deepEqual(completionPromptIds(null, config, [1, 2]), [1, 2]);
 * assert.throws(() => completionPromptIds(null, config, [1, 10]), /'prompt\[1\]' = 10 is outside/);
 * ```
 */
export function completionPromptIds(
  tok: Tokenizer | null,
  config: ModelConfig,
  prompt: string | readonly number[],
): number[] {
  if (typeof prompt !== "string") {
    const V = config.vocab_size;
    prompt.forEach((t, i) => {
      if (t >= V) {
        throw new ApiError(
          400,
          `'prompt[${i}]' = ${t} is outside the vocabulary [0, ${V})`,
          `prompt[${i}]`,
          "invalid_value",
        );
      }
    });
    if (prompt.length === 0) {
      throw new ApiError(
        400,
        "'prompt' must hold at least one token id",
        "prompt",
        "invalid_value",
      );
    }
    return [...prompt];
  }
  if (!tok) {
    throw new ApiError(400, "the model has no tokenizer: give 'prompt' as token ids", "prompt");
  }
  const ids = tok.encode(prompt, { bos: tok.addBos, special: true });
  if (ids.length > 0) return ids;
  if (tok.bosId === null) {
    throw new ApiError(
      400,
      "'prompt' is empty and the tokenizer has no BOS token to start from",
      "prompt",
      "invalid_value",
    );
  }
  return [tok.bosId];
}
