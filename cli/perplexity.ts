/**
 * `gollm perplexity`: a model's perplexity on a text file, with llama.cpp's
 * `llama-perplexity` method (runtime/perplexity.ts).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { readTextBounded } from "../core/files.ts";
import { loadModel } from "../runtime/model.ts";
import {
  defaultPerplexityCtx,
  perplexity as runPerplexity,
  PERPLEXITY_DEFAULT_CTX,
  PERPLEXITY_MIN_CTX,
  type PerplexityProgress,
  type PerplexityResult,
  perplexityTokens,
} from "../runtime/perplexity.ts";
import { type Command, parse, UsageError } from "./args.ts";
import { resolveDefaultModel } from "./default_model.ts";
import {
  checkCacheTypeFlags,
  MODEL_OPTIONS,
  MODEL_POSITIONAL,
  modelSource,
} from "./model_flags.ts";
import { err, formatCount, out, outJson } from "./output.ts";
import { progress, withProgress } from "./progress_line.ts";

const { "kv-capacity": _kv, ...LOAD_OPTIONS } = MODEL_OPTIONS; // the KV ring is --ctx

const SPEC = {
  name: "perplexity",
  summary: "perplexity of a model on a text file (llama.cpp's llama-perplexity method)",
  usage: "[PATH] --file FILE [--ctx N] [--chunks K] [--batch B] [--json] [options]",
  description:
    `Tokenises the file once as one sequence (BOS first when the tokenizer adds one; special-token
text is plain text), cuts it into chunks of --ctx tokens, writes BOS over the first token of
each chunk, runs each chunk from an empty KV cache and scores the second half of it: every
token at positions ctx/2 + 1 .. ctx - 1 given all the tokens before it in the chunk.
ppl = exp(mean negative log-likelihood), as llama.cpp's llama-perplexity computes it. The
file needs at least 2 x ctx tokens. Progress and the running estimate go to stderr ([1]ppl,
[2]ppl, ... as llama.cpp prints them; a status line on a terminal); the result goes to
stdout: "Final estimate: PPL = X +/- Y" and the counts, or with --json one object
{ppl, nll, tokens_scored, chunks, ctx, ppl_stderr} (nll: mean nats per scored token;
ppl_stderr: the +/- of the text output) and nothing on stderr.`,
  positionals: [MODEL_POSITIONAL],
  options: {
    ...LOAD_OPTIONS,
    file: {
      type: "string",
      required: true,
      meta: "FILE",
      description: "the text file (UTF-8), e.g. wikitext-2's wiki.test.raw",
    },
    ctx: {
      type: "int",
      min: PERPLEXITY_MIN_CTX,
      meta: "N",
      description: "tokens per chunk, at most the model's context length",
      defaultText: `${PERPLEXITY_DEFAULT_CTX} or the model's context length when shorter`,
    },
    chunks: {
      type: "int",
      min: 1,
      meta: "K",
      description: "score at most K chunks",
      defaultText: "every whole chunk of the file",
    },
    batch: {
      type: "int",
      min: 1,
      meta: "B",
      description: "tokens per forward call (bounds the logits held at once to B x vocab); " +
        "above --ctx means --ctx",
      defaultText: "--ctx",
    },
    json: { type: "bool", description: "print one JSON object and nothing on stderr" },
  },
} as const;

/**
 * The result as `--json` prints it: the five fields of issue #10 in this order, then
 * `ppl_stderr`.
 *
 * @param r The perplexity result.
 * @returns `{ppl, nll, tokens_scored, chunks, ctx, ppl_stderr}`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { perplexityJson } from "./perplexity.ts";
 * const j = perplexityJson({ ppl: 2, nll: Math.log(2), tokensScored: 10, chunks: 2, ctx: 12, pplStderr: 0.1 });
 * assert.deepEqual(Object.keys(j), ["ppl", "nll", "tokens_scored", "chunks", "ctx", "ppl_stderr"]);
 * ```
 */
export function perplexityJson(r: PerplexityResult): Record<string, number> {
  return {
    ppl: r.ppl,
    nll: r.nll,
    tokens_scored: r.tokensScored,
    chunks: r.chunks,
    ctx: r.ctx,
    ppl_stderr: r.pplStderr,
  };
}

/** `1m 05s` / `42 s`. */
function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s} s`;
}

/**
 * The `perplexity` subcommand: read the file → load the model with a KV ring of ctx →
 * tokenise → {@linkcode runPerplexity} → print the estimate (or JSON).
 *
 * @example
 * ```ts ignore
 * import { perplexity } from "./perplexity.ts";
 * await perplexity.run(["models/default", "--file", "wiki.test.raw", "--chunks", "4"]);
 * ```
 */
export const perplexity: Command = {
  spec: SPEC,
  async run(args) {
    const p = parse(SPEC, args);
    if (!p) return 0;
    const { values: v, usage } = p;
    checkCacheTypeFlags(v, usage);
    const json = v.json, file = v.file;
    // The text first: a missing or empty file fails before the model loads.
    const text = await readTextBounded(file, "text file");
    if (text.length === 0) {
      throw new GollmError(`${file}: the text file is empty; perplexity needs text to score`);
    }
    const path = v.model ?? await resolveDefaultModel(json);
    let ctx = 0;
    const model = await withProgress(
      json,
      (onProgress) =>
        // loadModel: a GGUF goes straight into the wasm backend's memory as stored (what
        // generate runs, at the file's size); jit and reference get F32. The cache is sized
        // from the config, once the header is read.
        loadModel(modelSource(path), {
          backend: v.backend,
          threads: v.threads,
          tokenizerPath: v.tokenizer,
          cacheTypeK: v["cache-type-k"],
          cacheTypeV: v["cache-type-v"],
          onProgress,
          kvCapacity: (config) => {
            const n = config.context_length;
            if (v.ctx !== undefined && v.ctx > n) {
              throw new UsageError(
                `--ctx ${v.ctx} exceeds the context length ${n} of ${path}; give at most ${n}`,
                usage,
              );
            }
            return (ctx = v.ctx ?? defaultPerplexityCtx(n));
          },
        }),
      (m) =>
        `loaded ${path} (${m.checkpoint.format}, ${m.backend}` +
        (m.threads > 1 ? `, ${m.threads} threads)` : ")"),
    );
    const tok = model.tokenizer;
    if (!tok) {
      throw new GollmError(
        `${path}: the model has no tokenizer (tokenizer: none); perplexity needs one to ` +
          `tokenise ${file} (pass --tokenizer PATH)`,
      );
    }
    const tokens = perplexityTokens(tok, text);
    if (tokens.length < 2 * ctx) {
      throw new GollmError(
        `${file}: tokenises to ${tokens.length} tokens; a context of ${ctx} needs at least ` +
          `${2 * ctx} (2 x ctx); give a longer text or a smaller --ctx`,
      );
    }
    const chunks = Math.min(v.chunks ?? Infinity, Math.floor(tokens.length / ctx));
    const first = Math.floor(ctx / 2);
    if (!json) {
      err(
        `perplexity: ${formatCount(tokens.length)} tokens; ${chunks} chunks of ${ctx}, ` +
          `scoring positions ${first + 1}..${ctx - 1} of each (${ctx - first - 1} tokens)`,
      );
    }

    // Progress: a status line on a terminal, else llama.cpp's "[1]5.1234,[2]5.0012,...".
    const tty = !json && Deno.stderr.isTerminal();
    const status = progress(!tty);
    const encoder = new TextEncoder();
    const onChunk = (e: PerplexityProgress) => {
      if (json) return;
      if (tty) {
        const eta = e.elapsedMs / e.chunk * (e.chunks - e.chunk);
        status.onProgress({
          stage: `perplexity: chunk ${e.chunk}/${e.chunks}, ppl ${e.ppl.toFixed(4)}, ` +
            `ETA ${duration(eta)}`,
        });
      } else Deno.stderr.writeSync(encoder.encode(`[${e.chunk}]${e.ppl.toFixed(4)},`));
    };
    let r: PerplexityResult;
    try {
      r = runPerplexity(model, tokens, { ctx, chunks, batch: v.batch, onChunk });
    } catch (e) {
      status.clear();
      if (!json && !tty) err("");
      throw e;
    }
    if (tty) status.done(`scored ${r.chunks} chunks`);
    else if (!json) err("");

    if (json) await outJson(perplexityJson(r));
    else {
      await out(
        `Final estimate: PPL = ${r.ppl.toFixed(4)} +/- ${r.pplStderr.toFixed(5)}\n` +
          `nll ${r.nll.toFixed(6)} nats/token over ${formatCount(r.tokensScored)} tokens ` +
          `(${r.chunks} chunks of ${r.ctx}, second half of each scored)\n`,
      );
    }
    return 0;
  },
};
