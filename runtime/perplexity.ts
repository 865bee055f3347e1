/**
 * Perplexity of a model on a text, with the method of llama.cpp's `llama-perplexity`
 * (tools/perplexity/perplexity.cpp, `perplexity()`):
 *
 * ```
 * tokens = encode(text, BOS as the tokenizer adds it, special-token text as plain text)
 * for chunk i in 0 .. min(chunks, floor(n / ctx)) - 1:        # ctx tokens each, no overlap
 *   x = tokens[i·ctx .. (i+1)·ctx);  x[0] = BOS                 # when the tokenizer adds BOS
 *   logits = forward(x) from an empty KV cache                # positions 0 .. ctx-1
 *   for j in first .. ctx-2, first = floor(ctx / 2):          # the second half is scored
 *     nll += logsumexp(logits[j]) - logits[j][x[j+1]]
 * ppl = exp(nll / count),  count = chunks · (ctx - first - 1)
 * ```
 *
 * Every scored token has at least `first` tokens of context; the first half of each chunk
 * only provides it. llama.cpp's default context is 512 tokens; the text must hold at least
 * `2 · ctx` tokens.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { Model } from "./model.ts";

/** llama.cpp's default `--ctx-size` for `llama-perplexity`. */
export const PERPLEXITY_DEFAULT_CTX = 512;

/** The smallest ctx that scores a token: first = 1, and position 1 predicts position 2. */
export const PERPLEXITY_MIN_CTX = 3;

/** What {@linkcode perplexity} needs of a model: its config, tokenizer and forward passes. */
export type PerplexityModel = Pick<
  Model,
  "config" | "tokenizer" | "kvCapacity" | "forward" | "forwardAll"
>;

/** Options of {@linkcode perplexity}. */
export interface PerplexityOptions {
  /**
   * Tokens per chunk (llama.cpp `--ctx-size`), in `[3, min(context_length, kvCapacity)]`.
   * Default: {@linkcode defaultPerplexityCtx}.
   */
  ctx?: number;
  /** Score at most this many chunks (llama.cpp `--chunks`). Default: every whole chunk. */
  chunks?: number;
  /**
   * Tokens per forward call (llama.cpp `--batch-size`): bounds the logits held at once to
   * `batch × vocab_size` floats. Larger than ctx means ctx. Default ctx. The result does
   * not depend on it beyond float rounding.
   */
  batch?: number;
  /**
   * The id written over the first token of every chunk, or null for none. Default: the
   * tokenizer's BOS when it adds one (`tokenizer.addBos`), as llama.cpp's `add_bos`.
   */
  bos?: number | null;
  /** Called after each chunk with the running estimate (llama.cpp prints `[i]ppl,`). */
  onChunk?: (progress: PerplexityProgress) => void;
}

/** Where {@linkcode perplexity} is: passed to `onChunk` after each chunk. */
export interface PerplexityProgress {
  /** Chunks done (1-based index of the chunk just scored). */
  chunk: number;
  /** Chunks in the run. */
  chunks: number;
  /** exp(mean nll) over the tokens scored so far. */
  ppl: number;
  /** Tokens scored so far. */
  tokensScored: number;
  /** Wall time since the first chunk started, milliseconds. */
  elapsedMs: number;
}

/** The result of {@linkcode perplexity}. */
export interface PerplexityResult {
  /** exp(nll): the perplexity. */
  ppl: number;
  /** Mean negative log-likelihood of the scored tokens, nats per token. */
  nll: number;
  /** Tokens scored: `chunks · (ctx - floor(ctx/2) - 1)`. */
  tokensScored: number;
  /** Chunks scored. */
  chunks: number;
  /** Tokens per chunk. */
  ctx: number;
  /**
   * Standard error of the ppl estimate, `ppl · sqrt(var(nll) / (count - 1))` (llama.cpp's
   * `Final estimate: PPL = ppl +/- pplStderr`); 0 with fewer than two scored tokens.
   */
  pplStderr: number;
}

/**
 * The default chunk length: llama.cpp's 512, or the model's context when that is shorter.
 *
 * @param contextLength The model's `context_length`.
 * @returns `min(512, contextLength)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultPerplexityCtx } from "./perplexity.ts";
 * assert.equal(defaultPerplexityCtx(256), 256);
 * assert.equal(defaultPerplexityCtx(131072), 512);
 * ```
 */
export function defaultPerplexityCtx(contextLength: number): number {
  return Math.min(PERPLEXITY_DEFAULT_CTX, contextLength);
}

/**
 * Tokenises a text for {@linkcode perplexity} as llama.cpp does (`common_tokenize(ctx, text,
 * add_special = true, parse_special = false)`): the whole text as one sequence, BOS first
 * when the tokenizer adds one, special-token text (`<|endoftext|>`) as plain text.
 *
 * @param tokenizer The model's tokenizer.
 * @param text The text.
 * @returns Token ids.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
 * import { perplexityTokens } from "./perplexity.ts";
 * const tok = await TiktokenTokenizer.builtin("gpt2"); // adds no BOS
 * assert.deepEqual(perplexityTokens(tok, "Hello world"), [15496, 995]);
 * assert.ok(!perplexityTokens(tok, "a<|endoftext|>").includes(50256)); // plain text, not the token
 * ```
 */
export function perplexityTokens(tokenizer: Tokenizer, text: string): number[] {
  return tokenizer.encode(text, { bos: tokenizer.addBos, special: false });
}

/** nll of `target` under one row of logits: `logsumexp(row) - row[target]` (in float64). */
function tokenNll(row: Float32Array, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) if (row[v] > max) max = row[v];
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v] - max);
  return max + Math.log(sum) - row[target];
}

/**
 * Perplexity of `model` on `tokens` with llama.cpp's method (see the module doc): chunks of
 * `ctx` tokens, BOS written over each chunk's first token, the second half of each chunk
 * scored, `ppl = exp(mean nll)`. Each chunk runs from an empty KV cache (position 0).
 *
 * @param model The model (its KV capacity must hold `ctx` tokens).
 * @param tokens The text's token ids (e.g. {@linkcode perplexityTokens}), at least `2 · ctx`.
 * @param options Chunk length, chunk limit, batch, BOS, progress callback.
 * @returns ppl, mean nll (nats/token), tokens scored, chunks, ctx and the standard error.
 * @throws {GollmError} for a ctx outside `[3, context_length]` or above the model's KV
 *   capacity, a non-positive `chunks` or `batch`, a BOS id outside the vocabulary, fewer
 *   than `2 · ctx` tokens (the message says how many are needed), or a token id outside
 *   the vocabulary.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createModel } from "./model.ts";
 * import { perplexity } from "./perplexity.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const model = createModel(c, randomWeights(c, 1), null);
 * const tokens = Array.from({ length: 100 }, (_, i) => (i * 7) % c.vocab_size);
 * const r = perplexity(model, tokens, { ctx: 32, bos: 1 });
 * assert.equal(r.chunks, 3); // floor(100 / 32)
 * assert.equal(r.tokensScored, 3 * (32 - 16 - 1));
 * assert.ok(Math.abs(r.ppl - Math.exp(r.nll)) < 1e-9 && r.ppl > 1);
 * ```
 */
export function perplexity(
  model: PerplexityModel,
  tokens: ArrayLike<number>,
  options: PerplexityOptions = {},
): PerplexityResult {
  const c = model.config, V = c.vocab_size;
  const ctx = options.ctx ?? defaultPerplexityCtx(Math.min(c.context_length, model.kvCapacity));
  if (!Number.isInteger(ctx) || ctx < PERPLEXITY_MIN_CTX || ctx > c.context_length) {
    throw new GollmError(
      `perplexity: ctx must be an integer in [${PERPLEXITY_MIN_CTX}, ${c.context_length}] ` +
        `(the model's context length), got ${ctx}`,
    );
  }
  if (ctx > model.kvCapacity) {
    throw new GollmError(
      `perplexity: ctx ${ctx} exceeds the model's KV capacity ${model.kvCapacity}; load it ` +
        `with kvCapacity >= ${ctx} (a shorter ring would slide the attention window)`,
    );
  }
  for (const [name, v] of [["chunks", options.chunks], ["batch", options.batch]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
      throw new GollmError(`perplexity: ${name} must be a positive integer, got ${v}`);
    }
  }
  const bos = options.bos !== undefined
    ? options.bos
    : model.tokenizer?.addBos
    ? model.tokenizer.bosId
    : null;
  if (bos !== null && (!Number.isInteger(bos) || bos < 0 || bos >= V)) {
    throw new GollmError(`perplexity: bos ${bos} is outside the vocabulary [0, ${V})`);
  }
  if (tokens.length < 2 * ctx) {
    throw new GollmError(
      `perplexity: the text has ${tokens.length} tokens; a context of ${ctx} needs at least ` +
        `${2 * ctx} (2 x ctx)`,
    );
  }
  const batch = Math.min(options.batch ?? ctx, ctx);
  const chunks = Math.min(options.chunks ?? Infinity, Math.floor(tokens.length / ctx));
  const first = Math.floor(ctx / 2); // positions first .. ctx-2 predict the scored tokens

  const x = new Array<number>(ctx); // (ctx) the chunk's ids
  let nll = 0, nll2 = 0, count = 0;
  const t0 = performance.now();
  for (let i = 0; i < chunks; i++) {
    const start = i * ctx;
    for (let j = 0; j < ctx; j++) x[j] = tokens[start + j];
    if (bos !== null) x[0] = bos;
    // The first half is context only: run it for its K/V, without logits.
    for (let p = 0; p < first; p += batch) {
      model.forward(x.slice(p, Math.min(first, p + batch)), p);
    }
    // Positions first .. ctx-2: logits (n, vocab_size), row r predicts x[p + r + 1].
    for (let p = first; p < ctx - 1; p += batch) {
      const n = Math.min(batch, ctx - 1 - p);
      const logits = model.forwardAll(x.slice(p, p + n), p); // (n, vocab_size)
      for (let r = 0; r < n; r++) {
        const v = tokenNll(logits.subarray(r * V, (r + 1) * V), x[p + r + 1]);
        nll += v;
        nll2 += v * v;
        count++;
      }
    }
    options.onChunk?.({
      chunk: i + 1,
      chunks,
      ppl: Math.exp(nll / count),
      tokensScored: count,
      elapsedMs: performance.now() - t0,
    });
  }
  const mean = nll / count;
  const ppl = Math.exp(mean);
  const variance = nll2 / count - mean * mean;
  const pplStderr = count > 1 && variance > 0 ? ppl * Math.sqrt(variance / (count - 1)) : 0;
  return { ppl, nll: mean, tokensScored: count, chunks, ctx, pplStderr };
}
