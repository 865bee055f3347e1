/**
 * The prompt of `gollm chat`: a conversation rendered with the chat template and encoded
 * (with special-token text in the messages kept as plain text under `--no-special`), and the
 * context shift that keeps a long conversation going.
 *
 * Context shift, as llama.cpp's (`n_keep` + discard) but at turn granularity: when the
 * rendered conversation no longer fits the context with room for a reply, the oldest turns
 * (a user message and the reply to it) are dropped, the system message is kept, and the
 * shorter conversation is prefilled again.
 *
 * @module
 */
import { type ChatMessage, renderChat } from "../tokenizers/chat_template.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/** How a conversation is turned into token ids. */
export interface ChatEncoding {
  /** The tokenizer. */
  tokenizer: Tokenizer;
  /** The Jinja chat template, or undefined for the plain `User:` / `Assistant:` format. */
  template: string | undefined;
  /**
   * Recognise special-token text in the messages (`<|im_end|>` typed by the user becomes
   * that token). The template's own special tokens are always recognised.
   */
  special: boolean;
}

// Private-use characters that mark where a message's content sits in the rendered text.
const OPEN = "\uE000", CLOSE = "\uE001";

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The texts of the special tokens that encoding `text` with `special: true` produces. */
function specialTexts(tok: Tokenizer, text: string): string[] {
  const found = new Set<string>();
  const dec = new TextDecoder();
  for (const id of new Set(tok.encode(text, { bos: false, special: true }))) {
    const piece = dec.decode(tok.tokenBytes(id));
    if (piece.length === 0 || found.has(piece)) continue;
    const asSpecial = tok.encode(piece, { bos: false, special: true });
    const asText = tok.encode(piece, { bos: false, special: false });
    if (sameIds(asSpecial, [id]) && !sameIds(asText, [id])) found.add(piece);
  }
  return [...found].sort((a, b) => b.length - a.length); // longest match first
}

/**
 * Renders `messages` with the template (adding the generation prompt) and encodes them:
 * BOS as the template or tokenizer asks, the template's special tokens as ids. With
 * `special: false`, special-token text inside a message is encoded as plain text: the
 * rendered text is cut at the template's special tokens only, and each run between them is
 * encoded as text (the same cut points whole-text encoding uses, so the ids are identical
 * whenever no message holds special-token text).
 *
 * @param enc Tokenizer, template, special handling.
 * @param messages The conversation (`system`, `user`, `assistant` messages).
 * @returns Token ids, ready for `Model.generate`.
 * @throws {GollmError} when the template fails to render.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
 * import { encodeChat } from "./chat_prompt.ts";
 * const bytes = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
 * const tok = TiktokenTokenizer.fromRanks(bytes, new Map([["<|eos|>", 256]]));
 * const template = "{% for m in messages %}{{ m.content }}<|eos|>{% endfor %}";
 * const messages = [{ role: "user" as const, content: "a<|eos|>" }];
 * // Default: the typed "<|eos|>" is the special token too.
 * assert.deepEqual(encodeChat({ tokenizer: tok, template, special: true }, messages), [97, 256, 256]);
 * // --no-special: the typed text stays text, the template's <|eos|> is still the token.
 * const ids = encodeChat({ tokenizer: tok, template, special: false }, messages);
 * const typed = [..."a<|eos|>"].map((c) => c.charCodeAt(0));
 * assert.deepEqual(ids, [...typed, 256]);
 * ```
 */
export function encodeChat(enc: ChatEncoding, messages: readonly ChatMessage[]): number[] {
  const tok = enc.tokenizer;
  const bosText = tok.bosId !== null ? tok.tokenPiece(tok.bosId) : "";
  const eosText = tok.eosIds.length > 0 ? tok.tokenPiece(tok.eosIds[0]) : "";
  const render = (msgs: readonly ChatMessage[]) =>
    renderChat(enc.template, [...msgs], {
      addGenerationPrompt: true,
      bosToken: bosText,
      eosToken: eosText,
    });
  // A template that writes BOS itself: encode without it and prepend the id once.
  const splitBos = (text: string): [string, boolean] =>
    bosText && text.startsWith(bosText) ? [text.slice(bosText.length), true] : [text, tok.addBos];
  const holdsSpecial = (m: ChatMessage) =>
    !sameIds(
      tok.encode(m.content, { bos: false, special: true }),
      tok.encode(m.content, { bos: false, special: false }),
    );

  if (enc.special || !messages.some(holdsSpecial)) {
    const [text, bos] = splitBos(render(messages));
    // Plain format under --no-special: nothing in it needs special tokens.
    return tok.encode(text, { bos, special: enc.special || enc.template !== undefined });
  }
  // Mark each message's content, find the template's own special tokens, cut there only.
  const clean = (s: string) => s.replaceAll(OPEN, "").replaceAll(CLOSE, "");
  const marked = messages.map((m) => ({ ...m, content: OPEN + clean(m.content) + CLOSE }));
  const [text, bos] = splitBos(render(marked));
  const templateText = text.replace(new RegExp(`${OPEN}[^${CLOSE}]*${CLOSE}`, "g"), "");
  const specials = enc.template === undefined ? [] : specialTexts(tok, templateText);
  const ids: number[] = bos && tok.bosId !== null ? [tok.bosId] : [];
  let run = "", inContent = false;
  const flush = () => {
    if (run) ids.push(...tok.encode(run, { bos: false, special: false }));
    run = "";
  };
  for (let i = 0; i < text.length;) {
    const ch = text[i];
    if (ch === OPEN || ch === CLOSE) {
      inContent = ch === OPEN;
      i++;
      continue;
    }
    const s = inContent ? undefined : specials.find((t) => text.startsWith(t, i));
    if (s === undefined) {
      run += ch;
      i++;
      continue;
    }
    flush();
    ids.push(...tok.encode(s, { bos: false, special: true }));
    i += s.length;
  }
  flush();
  return ids;
}

/** What {@linkcode fitConversation} did. */
export interface FitResult {
  /** The encoded conversation that fits (or the shortest one possible). */
  ids: number[];
  /** The conversation kept (the caller goes on from it). */
  messages: ChatMessage[];
  /** Turns dropped (user messages, each with the reply to it). */
  droppedTurns: number;
  /** Tokens of the whole conversation before dropping. */
  tokensBefore: number;
}

/**
 * Context shift: drops the oldest turns until the encoded conversation fits in `budget`
 * tokens. A leading system message and the last user message are always kept; when even
 * they do not fit, the shortest conversation is returned as it is (the caller reports it).
 *
 * @param enc Tokenizer, template, special handling.
 * @param messages The conversation, ending with the new user message.
 * @param budget Most prompt tokens (the context length less room for the reply).
 * @returns The ids, the kept messages, and how many turns were dropped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
 * import { fitConversation } from "./chat_prompt.ts";
 * const tok = TiktokenTokenizer.fromRanks(
 *   Array.from({ length: 256 }, (_, b) => new Uint8Array([b])),
 *   new Map(),
 * );
 * const enc = { tokenizer: tok, template: undefined, special: true };
 * const fit = fitConversation(enc, [
 *   { role: "system", content: "Be brief." },
 *   { role: "user", content: "Tell me a long story." },
 *   { role: "assistant", content: "Once upon a time ".repeat(10) },
 *   { role: "user", content: "Again?" },
 * ], 64);
 * assert.equal(fit.droppedTurns, 1);
 * assert.deepEqual(fit.messages.map((m) => m.role), ["system", "user"]);
 * assert.ok(fit.ids.length <= 64 && fit.tokensBefore > 64);
 * ```
 */
export function fitConversation(
  enc: ChatEncoding,
  messages: readonly ChatMessage[],
  budget: number,
): FitResult {
  let kept = [...messages];
  let ids = encodeChat(enc, kept);
  const tokensBefore = ids.length;
  let droppedTurns = 0;
  const first = kept[0]?.role === "system" ? 1 : 0;
  while (ids.length > budget) {
    // The oldest turn: from the first message after the system message up to the next
    // user message; the last user message is never dropped.
    let end = first + 1;
    while (end < kept.length && kept[end].role !== "user") end++;
    if (end >= kept.length) break;
    kept = [...kept.slice(0, first), ...kept.slice(end)];
    droppedTurns++;
    ids = encodeChat(enc, kept);
  }
  return { ids, messages: kept, droppedTurns, tokensBefore };
}
