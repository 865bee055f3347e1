/**
 * `gollm chat`: an interactive, streaming chat with a model, through its chat template (or
 * the plain `User:` / `Assistant:` fallback).
 *
 * @module
 */
import type { ChatMessage } from "../tokenizers/chat_template.ts";
import { GollmError } from "../core/errors.ts";
import { type Command, parse } from "./args.ts";
import { fitConversation } from "./chat_prompt.ts";
import {
  loadModelFlags,
  MODEL_OPTIONS,
  MODEL_POSITIONAL,
  NO_SPECIAL_OPTION,
  SAMPLING_OPTIONS,
  samplingOptions,
} from "./model_flags.ts";
import { err, note, out } from "./output.ts";
import {
  checkSpeculativeFlags,
  SPECULATIVE_OPTIONS,
  speculativeFlags,
  speculativeLine,
} from "./speculative_flags.ts";

const SPEC = {
  name: "chat",
  summary: "interactive streaming chat (/reset; Ctrl-C stops a reply)",
  usage: "[PATH] [--system TEXT] [-n N] [options]",
  description:
    `Interactive chat. Type a message and press Enter; the reply streams back. The prompt is the
whole conversation rendered with the model's chat template (or, without one, "User: ..." /
"Assistant:" lines). When it outgrows the context, the oldest turns are dropped (the system
message is kept) with a note. Ctrl-C stops the current reply (press it again at the prompt,
or Ctrl-D, to quit). With messages piped in (stdin not a terminal), the exit status is 1 when
a message was dropped with an error.`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...MODEL_OPTIONS,
    system: { type: "string", description: "a system message at the start of the conversation" },
    "max-tokens": {
      type: "int",
      short: "n",
      min: 1,
      default: 512,
      meta: "N",
      description: "most tokens per reply",
    },
    ...SAMPLING_OPTIONS,
    ...NO_SPECIAL_OPTION,
    ...SPECULATIVE_OPTIONS,
  },
  epilog: `commands inside the chat:
  /reset               forget the conversation (keeps --system)
  /exit, /quit         leave`,
} as const;

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
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const v = p.values;
    checkSpeculativeFlags(v, p.usage);
    const sampling = samplingOptions(v, p.usage);
    const maxTokens = v["max-tokens"];
    const { model, path } = await loadModelFlags(v, p.usage);
    const speculative = await speculativeFlags(v, model, p.usage);
    const system = v.system;
    const tok = model.tokenizer;
    if (!tok) {
      throw new GollmError(`${path}: the model has no tokenizer (tokenizer: none); chat needs one`);
    }
    const template = tok.chatTemplate;
    const enc = { tokenizer: tok, template, special: !v["no-special"] };
    // Without a template the model sees plain "User:" / "Assistant:" turns; stop at the next.
    const stop = template ? [] : ["\nUser:", "\nSystem:"];
    // Room kept for the reply when the conversation is shifted: a quarter of the context.
    const C = model.config.context_length;
    const budget = C - Math.min(maxTokens, Math.floor(C / 4));
    const interactive = Deno.stdin.isTerminal();
    err(
      `chat with ${path} (${template ? "its chat template" : "plain User/Assistant format"})` +
        ` - /reset clears, Ctrl-C stops a reply, Ctrl-D or /exit quits`,
    );

    const start = (): ChatMessage[] => (system ? [{ role: "system", content: system }] : []);
    let messages = start();
    let controller: AbortController | null = null;
    let failed = false; // a message was dropped: a script piping messages exits 1
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
          const fit = fitConversation(enc, [...messages, { role: "user", content: line }], budget);
          if (fit.droppedTurns > 0) {
            note(
              `the conversation (${fit.tokensBefore} tokens) outgrew the context (${C} tokens ` +
                `less ${C - budget} for the reply): dropped the oldest ${fit.droppedTurns} ` +
                `turn${fit.droppedTurns > 1 ? "s" : ""}${
                  system ? ", kept the system message" : ""
                }` +
                ` (${fit.ids.length} tokens prefilled again)`,
            );
          }
          messages = fit.messages;
          controller = new AbortController();
          let reply = "";
          try {
            for await (
              const piece of model.generate(fit.ids, {
                ...sampling,
                maxTokens,
                stop,
                signal: controller.signal,
                onNotice: note,
                ...speculative,
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
            failed = true;
            messages.pop();
            controller = null;
            if (interactive) await out("> ");
            continue;
          }
          const aborted = controller.signal.aborted;
          controller = null;
          await out("\n");
          if (aborted) err("(reply stopped)");
          const spec = model.stats?.speculative;
          if (spec) err(`(${speculativeLine(spec)})`);
          messages.push({ role: "assistant", content: reply.trim() });
        }
        if (interactive) await out("> ");
      }
    } finally {
      Deno.removeSignalListener("SIGINT", onSigint);
    }
    if (interactive) await out("\n");
    return failed && !interactive ? 1 : 0;
  },
};
