/**
 * Chat prompts: renders a model's Jinja chat template (from `tokenizer_config.json`,
 * `chat_template.jinja` or GGUF `tokenizer.chat_template`) with `@huggingface/jinja`, the
 * same way transformers' `apply_chat_template` does, or a plain fallback format when the
 * model has no template.
 *
 * Reference: transformers `utils/chat_template_utils.py` (`render_jinja_template`: Jinja2
 * with `trim_blocks=True, lstrip_blocks=True`, globals `raise_exception` and
 * `strftime_now`, variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`).
 *
 * @module
 */
import { Template } from "@huggingface/jinja";
import { GollmError } from "../core/errors.ts";

/** One chat message. */
export interface ChatMessage {
  /** `system`, `user` or `assistant` (templates may accept others, e.g. `tool`). */
  role: string;
  /** The message text. */
  content: string;
}

/** Options of {@linkcode renderChat}. */
export interface RenderChatOptions {
  /** Append the header that starts the assistant's reply. */
  addGenerationPrompt: boolean;
  /** The BOS token text (`<|begin_of_text|>`, `<s>`), or "" when the model has none. */
  bosToken?: string;
  /** The EOS token text (`<|end_of_text|>`, `</s>`), or "". */
  eosToken?: string;
  /** Extra template variables (e.g. `tools`, `date_string`). */
  extra?: Record<string, unknown>;
}

const templateCache = new Map<string, Template>();

function parseTemplate(source: string): Template {
  let t = templateCache.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new GollmError(`chat template cannot be parsed: ${(e as Error).message}`);
    }
    if (templateCache.size > 16) templateCache.clear();
    templateCache.set(source, t);
  }
  return t;
}

/**
 * The fallback format used when a model has no chat template: the BOS text, then each
 * message as `Role: content` followed by a blank line, then `Assistant:` when a generation
 * prompt is requested. Roles are capitalised (`System`, `User`, `Assistant`).
 *
 * ```text
 * <bos>System: You are terse.
 *
 * User: Hi
 *
 * Assistant:
 * ```
 */
function renderPlain(messages: readonly ChatMessage[], opts: RenderChatOptions): string {
  let s = opts.bosToken ?? "";
  for (const m of messages) {
    const role = m.role.length > 0 ? m.role[0].toUpperCase() + m.role.slice(1) : m.role;
    s += `${role}: ${m.content}\n\n`;
  }
  if (opts.addGenerationPrompt) s += "Assistant:";
  return s;
}

/**
 * Renders a conversation into the prompt text a chat model expects.
 *
 * With a template: Jinja rendering as transformers' `apply_chat_template(tokenize=False)`
 * (trim_blocks + lstrip_blocks; the library's `raise_exception(msg)` and `strftime_now(fmt)`
 * globals). Without one: the plain
 * format `Role: content\n\n` per message (preceded by `bosToken`), ending with
 * `Assistant:` when `addGenerationPrompt`.
 *
 * The result usually starts with the BOS text already, so encode it with
 * `tokenizer.encode(text, { bos: false, special: true })`.
 *
 * @param template The Jinja chat template, or undefined/"" for the plain fallback.
 * @param messages The conversation, oldest first.
 * @param options Generation prompt flag and the BOS/EOS token texts the template may use.
 * @returns The prompt text.
 * @throws {GollmError} when the template cannot be parsed or fails to render, including
 *   `raise_exception` (e.g. roles that do not alternate): the message carries its text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderChat } from "./chat_template.ts";
 * const tpl = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}" +
 *   "{% if add_generation_prompt %}<|assistant|>{% endif %}";
 * const text = renderChat(tpl, [{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * assert.equal(text, "<|user|>Hi\n<|assistant|>");
 * ```
 */
export function renderChat(
  template: string | undefined,
  messages: readonly ChatMessage[],
  options: RenderChatOptions,
): string {
  if (template === undefined || template.trim() === "") return renderPlain(messages, options);
  const t = parseTemplate(template);
  try {
    return t.render({
      ...options.extra,
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: options.addGenerationPrompt,
      bos_token: options.bosToken ?? "",
      eos_token: options.eosToken ?? "",
    });
  } catch (e) {
    if (e instanceof GollmError) throw e;
    throw new GollmError(`chat template failed to render: ${(e as Error).message}`);
  }
}
