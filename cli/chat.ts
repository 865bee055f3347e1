/**
 * `gollm chat`: an interactive, streaming chat with a model, through its chat template (or
 * the plain `User:` / `Assistant:` fallback).
 *
 * @module
 */
import { type ChatMessage, renderChat } from "../tokenizers/chat_template.ts";
import { GollmError } from "../core/errors.ts";
import { type Command, int, parse, str } from "./args.ts";
import {
  loadModelFlags,
  MODEL_OPTIONS,
  modelFlags,
  SAMPLING_HELP,
  SAMPLING_OPTIONS,
  samplingOptions,
} from "./model_flags.ts";
import { err, out } from "./output.ts";

const HELP = `usage: gollm chat [--model PATH] [--system TEXT] [-n N] [options]

Interactive chat. Type a message and press Enter; the reply streams back. The prompt is the
whole conversation rendered with the model's chat template (or, without one, "User: ..." /
"Assistant:" lines). Ctrl-C stops the current reply (press it again at the prompt, or
Ctrl-D, to quit).

commands inside the chat:
  /reset               forget the conversation (keeps --system)
  /exit, /quit         leave

options:
  --model PATH         model directory (gollm or Hugging Face), GGUF file or llama2.c .bin
                       (default: the shipped models/default)
  --system TEXT        a system message at the start of the conversation
  -n, --max-tokens N   most tokens per reply (default 512)
${SAMPLING_HELP}
  --backend B          jit (default: generated JS), wasm (generated WASM SIMD) or reference
  --kv-capacity N      KV cache slots (default: the context length)
  --tokenizer PATH     tokenizer file (llama2.c .bin without tok{vocab}.bin or tokenizer.bin
                       beside it)
  -h, --help           show this help`;

/** Lines of a byte stream (without the line break; a last unterminated line included). */
async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i).replace(/\r$/, "");
      buf = buf.slice(i + 1);
    }
  }
  buf += dec.decode();
  if (buf.length > 0) yield buf;
}

/**
 * The `chat` subcommand: parse → load → read lines from stdin, render the conversation with
 * the chat template and stream each reply to stdout.
 *
 * @example
 * ```ts ignore
 * import { chat } from "./chat.ts";
 * await chat.run(["--system", "You are terse.", "-n", "64"]);
 * ```
 */
export const chat: Command = {
  name: "chat",
  summary: "interactive streaming chat (/reset; Ctrl-C stops a reply)",
  help: HELP,
  async run(args) {
    const p = parse(HELP, args, {
      ...MODEL_OPTIONS,
      system: { type: "string" },
      "max-tokens": { type: "string", short: "n" },
      ...SAMPLING_OPTIONS,
    });
    if (!p) return 0;
    const { values: v, usage } = p;
    const sampling = samplingOptions(v, usage);
    const maxTokens = int(v, "max-tokens", usage, 1) ?? 512;
    const { model, path } = await loadModelFlags(modelFlags(v, usage));
    const system = str(v, "system");
    const tok = model.tokenizer;
    if (!tok) {
      throw new GollmError(`${path}: the model has no tokenizer (tokenizer: none); chat needs one`);
    }
    const template = tok.chatTemplate;
    const bosText = tok.bosId !== null ? tok.tokenPiece(tok.bosId) : "";
    const eosText = tok.eosIds.length > 0 ? tok.tokenPiece(tok.eosIds[0]) : "";
    // Without a template the model sees plain "User:" / "Assistant:" turns; stop at the next.
    const stop = template ? [] : ["\nUser:", "\nSystem:"];
    const interactive = Deno.stdin.isTerminal();
    err(
      `chat with ${path} (${template ? "its chat template" : "plain User/Assistant format"})` +
        ` - /reset clears, Ctrl-C stops a reply, Ctrl-D or /exit quits`,
    );

    const start = (): ChatMessage[] => (system ? [{ role: "system", content: system }] : []);
    let messages = start();
    let controller: AbortController | null = null;
    const onSigint = () => {
      if (controller) {
        controller.abort();
      } else {
        err("");
        Deno.exit(130);
      }
    };
    Deno.addSignalListener("SIGINT", onSigint);
    try {
      if (interactive) await out("> ");
      for await (const raw of readLines(Deno.stdin.readable)) {
        const line = raw.trim();
        if (line === "/exit" || line === "/quit") break;
        if (line === "/reset") {
          messages = start();
          err("(conversation cleared)");
        } else if (line.length > 0) {
          messages.push({ role: "user", content: line });
          let text = renderChat(template, messages, {
            addGenerationPrompt: true,
            bosToken: bosText,
            eosToken: eosText,
          });
          let bos = tok.addBos;
          if (bosText && text.startsWith(bosText)) {
            text = text.slice(bosText.length);
            bos = true;
          }
          controller = new AbortController();
          let reply = "";
          try {
            for await (
              const piece of model.generate(text, {
                ...sampling,
                maxTokens,
                stop,
                addBos: bos,
                special: true,
                signal: controller.signal,
                onNotice: (msg) => err(`note: ${msg}`),
              })
            ) {
              // Drop the whitespace a model puts after "Assistant:" before the reply.
              const shown = reply.length === 0 ? piece.trimStart() : piece;
              reply += shown;
              if (shown) await out(shown);
            }
          } catch (e) {
            if (!(e instanceof GollmError)) throw e;
            err(`error: ${e.message}`);
            err("(the message was dropped; /reset starts a new conversation)");
            messages.pop();
            controller = null;
            if (interactive) await out("> ");
            continue;
          }
          const aborted = controller.signal.aborted;
          controller = null;
          await out("\n");
          if (aborted) err("(reply stopped)");
          messages.push({ role: "assistant", content: reply.trim() });
        }
        if (interactive) await out("> ");
      }
    } finally {
      Deno.removeSignalListener("SIGINT", onSigint);
    }
    if (interactive) await out("\n");
    return 0;
  },
};
