/**
 * One request's sequence inside the scheduler: its tokens, its own seeded sampler, the
 * streaming text (UTF-8 safe, stop strings held back), logprobs, and the channel its
 * caller reads chunks from.
 *
 * ```
 * tokens   [ prompt ............ | generated ....... ]
 *            0 .. computed-1: K/V in the cache; computed .. len-1: rows still to run
 * ```
 *
 * A sequence samples only from the logits of its last token (an out row); the sampled id
 * is appended and becomes the next step's row. Text is released as it is decoded, except
 * a tail that could start a stop string (runtime/generation.ts `stopPrefixHold`).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { findStop, stopPrefixHold } from "../runtime/generation.ts";
import { type ResolvedSamplerOptions, Sampler, type SamplerOptions } from "../runtime/sampler.ts";
import type { TokenConstraint } from "../runtime/json_constraint.ts";
import { type TokenDistribution, verifyDraft } from "../runtime/speculative.ts";
import { StreamDecoder, type Tokenizer } from "../tokenizers/tokenizer.ts";

/** What a caller asks the scheduler to generate. */
export interface GenerationRequest {
  /** Prompt token ids (BOS included when wanted), each in `[0, vocab_size)`, at least one. */
  prompt: readonly number[];
  /** Sampling options; give `seed` for reproducible text (default: random). */
  sampling?: SamplerOptions;
  /** Most tokens to generate (prompt + maxTokens must fit the context). */
  maxTokens: number;
  /** Stop when any of these strings appears; it is not returned. */
  stop?: readonly string[];
  /** Keep going past EOS ids (benchmarks). Default false. */
  ignoreEos?: boolean;
  /**
   * Return each generated token's logprob (log-softmax of the raw logits) and the
   * `logprobs` most likely alternatives (0..20); undefined: none.
   */
  logprobs?: number;
  /** Aborting cancels the request; its blocks are freed at the next step. */
  signal?: AbortSignal;
  /**
   * Which tokens may come next (JSON mode: runtime/json_constraint.ts): the logits are
   * masked before sampling, the reply ends (`stop`) when it is complete, and the sequence
   * is not drafted for (speculative decoding skips it).
   */
  constraint?: TokenConstraint;
}

/** A token id with its log-probability (natural log). */
export interface TokenLogprob {
  /** Token id. */
  id: number;
  /** `log softmax(logits)[id]` of the raw logits (before penalties and temperature). */
  logprob: number;
}

/** One generated token as returned to the caller. */
export interface GeneratedToken {
  /** Token id. */
  id: number;
  /** Its logprob, when the request asked for logprobs. */
  logprob?: number;
  /** The most likely tokens at that position, descending, when `logprobs` > 0. */
  top?: TokenLogprob[];
}

/** A piece of the stream: released text and the tokens whose text it completes. */
export interface GenerationChunk {
  /** Text (possibly empty; never half a UTF-8 character). */
  text: string;
  /** Tokens whose text is fully in this and earlier chunks, in order. */
  tokens: GeneratedToken[];
}

/** Why a sequence finished, in OpenAI's words (`abort`: cancelled, nothing is sent). */
export type FinishReason = "stop" | "length" | "abort";

/** The summary of a finished sequence. */
export interface GenerationResult {
  /** `stop` (EOS or a stop string), `length` (max tokens or the context), `abort`. */
  finishReason: FinishReason;
  /** Prompt tokens. */
  promptTokens: number;
  /** Tokens generated (EOS excluded). */
  completionTokens: number;
  /** Prompt tokens whose prefill the prefix cache skipped. */
  cachedTokens: number;
  /** Milliseconds from submission to the first generated token (NaN if none). */
  ttftMs: number;
}

/**
 * A submitted request: iterate it for the chunks (text and tokens), await `result` for the
 * summary. Breaking out of the iteration does not cancel; abort the request's signal.
 */
export interface GenerationHandle extends AsyncIterable<GenerationChunk> {
  /** The scheduler's id of the request. */
  readonly id: number;
  /** Resolves when the sequence finishes; rejects when it failed (the step threw). */
  readonly result: Promise<GenerationResult>;
}

/** An unbounded single-consumer queue of chunks that ends with a result or an error. */
class Channel {
  #items: GenerationChunk[] = [];
  #wake: (() => void) | null = null;
  #done = false;
  #error: unknown = null;

  push(c: GenerationChunk): void {
    if (c.text.length === 0 && c.tokens.length === 0) return;
    this.#items.push(c);
    this.#wake?.();
  }

  end(error: unknown = null): void {
    this.#done = true;
    this.#error = error;
    this.#wake?.();
  }

  async *iterate(): AsyncGenerator<GenerationChunk> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#done) {
        if (this.#error) throw this.#error;
        return;
      }
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = null;
    }
  }
}

/**
 * The `k` largest logprobs of `logits` with the chosen token's, from one log-softmax
 * (f64) over the raw logits.
 */
function logprobsOf(logits: Float32Array, chosen: number, k: number): GeneratedToken {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  const lse = max + Math.log(z);
  const top: TokenLogprob[] = [];
  if (k > 0) {
    // Insertion into a k-long descending list; most logits fail the first comparison.
    const ids = new Int32Array(k).fill(-1), vals = new Float64Array(k).fill(-Infinity);
    for (let i = 0; i < logits.length; i++) {
      const x = logits[i];
      if (!(x > vals[k - 1]) && ids[k - 1] >= 0) continue;
      let j = k - 1;
      while (j > 0 && (x > vals[j - 1] || ids[j - 1] < 0)) {
        vals[j] = vals[j - 1];
        ids[j] = ids[j - 1];
        j--;
      }
      vals[j] = x;
      ids[j] = i;
    }
    for (let j = 0; j < k && ids[j] >= 0; j++) top.push({ id: ids[j], logprob: vals[j] - lse });
  }
  return { id: chosen, logprob: logits[chosen] - lse, ...(k > 0 ? { top } : {}) };
}

/** A pending token and the decoded text length once it was added. */
interface Pending {
  token: GeneratedToken;
  end: number;
}

/**
 * One request's sequence (scheduler-internal; exported for the scheduler and its tests).
 */
export class Sequence {
  /** Prompt and generated ids. */
  readonly tokens: number[];
  /** Prompt length. */
  readonly promptLen: number;
  /** Tokens whose K/V are in the cache. */
  computed = 0;
  /** Sequence slot of the batched forward while running, else -1. */
  slot = -1;
  /** Prompt tokens the prefix cache served at the first admission. */
  cachedTokens = -1;
  /** Times it was preempted. */
  preemptions = 0;
  /** The scheduler's step count when it last got a decode row (speculation serves the oldest first). */
  servedStep = 0;
  /** Set once finished. */
  finishReason: FinishReason | null = null;
  /**
   * The other choices of its request (`n` > 1, server/choices.ts) while they wait for this
   * one's prompt: forked from its blocks once the prompt is computed, then emptied. They
   * are cancelled or failed with it before that.
   */
  readonly children: Sequence[] = [];
  /** Sequence slots the scheduler holds for {@linkcode Sequence.children} while it runs. */
  readonly reservedSlots: number[] = [];
  readonly #sampler: Sampler;
  readonly #decoder: StreamDecoder;
  readonly #channel = new Channel();
  readonly #stops: readonly string[];
  readonly #eos: ReadonlySet<number>;
  readonly #submitted = performance.now();
  #ttft = NaN;
  #resolve!: (r: GenerationResult) => void;
  #reject!: (e: unknown) => void;
  #pendingText = ""; // decoded text not yet released (could start a stop string)
  #pendingTokens: Pending[] = [];
  #masked = new Float32Array(0); // (vocab) logits under the constraint
  #total = 0; // decoded text length so far
  #released = 0; // text length released so far
  readonly handle: GenerationHandle;

  /**
   * Creates the sequence and its handle; nothing runs until the scheduler admits it.
   * @param id Request id.
   * @param request The request (validated by the scheduler).
   * @param tokenizer For the streaming text.
   * @param eosIds Ids that end the sequence (unless `ignoreEos`).
   */
  constructor(
    readonly id: number,
    readonly request: GenerationRequest,
    tokenizer: Tokenizer,
    eosIds: readonly number[],
  ) {
    this.tokens = [...request.prompt];
    this.promptLen = this.tokens.length;
    this.#sampler = new Sampler(request.sampling);
    this.#decoder = new StreamDecoder(tokenizer);
    for (const t of request.prompt) this.#decoder.push(t); // context for the first piece
    this.#stops = request.stop ?? [];
    this.#eos = new Set(request.ignoreEos ? [] : eosIds);
    const result = new Promise<GenerationResult>((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
    result.catch(() => {}); // a caller that only iterates sees the error there
    const channel = this.#channel;
    this.handle = {
      id,
      result,
      [Symbol.asyncIterator]: () => channel.iterate(),
    };
  }

  /** Tokens generated so far. */
  get generated(): number {
    return this.tokens.length - this.promptLen;
  }

  /** Whether the caller cancelled. */
  get aborted(): boolean {
    return this.request.signal?.aborted ?? false;
  }

  /**
   * Samples the next token from the logits of the sequence's last token and streams it.
   *
   * @param logits `(vocab_size)` logits (a view into the arena; read, not kept).
   * @returns true when the sequence finished (EOS, a stop string, max tokens).
   * @throws {GollmError} when every logit is NaN or -Infinity (broken weights).
   */
  accept(logits: Float32Array): boolean {
    const c = this.request.constraint;
    if (!c) {
      const id = this.#checked(() => this.#sampler.sample(logits, this.tokens));
      return this.#append(id, logits);
    }
    // Constrained: sample from a masked copy (the arena's logits stay as they are).
    if (this.#masked.length !== logits.length) this.#masked = new Float32Array(logits.length);
    this.#masked.set(logits);
    if (c.mask(this.#masked) === 0) {
      throw new GollmError(`request ${this.id}: no token can continue the constrained reply`);
    }
    const id = this.#checked(() => this.#sampler.sample(this.#masked, this.tokens));
    c.advance(id);
    if (this.#append(id, logits)) return true;
    if (!c.complete) return false;
    this.#finish("stop"); // the object is whole: the reply ends (held text is flushed)
    return true;
  }

  /** Whether the scheduler may draft for this sequence (not under a constraint). */
  get speculable(): boolean {
    return this.request.constraint === undefined;
  }

  /**
   * Verifies drafted tokens with the request's sampler (runtime/speculative.ts
   * `verifyDraft`: the rejection sampling of Leviathan et al. 2023, greedy or sampled) and
   * streams the tokens it keeps: the accepted drafts, then one token of the target's own,
   * each through the same stop checks as {@linkcode Sequence.accept}.
   *
   * @param logits `(k + 1, vocab_size)` row-major logits of the rows `[last, d1 .. dk]`.
   * @param drafts `(k)` drafted ids.
   * @param probs `(k)` the distribution q each draft was drawn from, or null (one-hot: a
   *   deterministic proposer).
   * @returns `accepted`: drafts kept (their K/V are valid); `chosen`: tokens taken from
   *   the verification (an EOS included); `done`: the sequence finished.
   * @throws {GollmError} when a row's logits are all NaN or -Infinity; {RangeError} for a
   *   draft outside the vocabulary or with q(d) = 0.
   */
  verify(
    logits: Float32Array,
    drafts: readonly number[],
    probs: readonly TokenDistribution[] | null,
  ): { accepted: number; chosen: number; done: boolean } {
    const r = this.#checked(() => verifyDraft(logits, drafts, probs, this.#sampler, this.tokens));
    const V = logits.length / (drafts.length + 1);
    for (let i = 0; i < r.tokens.length; i++) {
      if (this.#append(r.tokens[i], logits.subarray(i * V, (i + 1) * V))) {
        return { accepted: Math.min(i, r.accepted), chosen: i + 1, done: true };
      }
    }
    return { accepted: r.accepted, chosen: r.tokens.length, done: false };
  }

  /** Runs a sampling call, naming the request when the logits are all NaN or -Infinity. */
  #checked<T>(f: () => T): T {
    try {
      return f();
    } catch (e) {
      if (!(e instanceof RangeError) || !e.message.startsWith("sampler:")) throw e;
      throw new GollmError(
        `request ${this.id}: the logits at position ${this.tokens.length - 1} are all NaN or ` +
          `-Infinity; the model's weights hold NaN or Inf values`,
        { cause: e },
      );
    }
  }

  /**
   * Appends a chosen token and streams it.
   *
   * @param id The token.
   * @param logits `(vocab_size)` the logits it was chosen from (for logprobs).
   * @returns true when the sequence finished (EOS, a stop string, max tokens).
   */
  #append(id: number, logits: Float32Array): boolean {
    if (Number.isNaN(this.#ttft)) this.#ttft = performance.now() - this.#submitted;
    if (this.#eos.has(id)) {
      this.#finish("stop");
      return true;
    }
    this.tokens.push(id);
    const k = this.request.logprobs;
    const token: GeneratedToken = k === undefined ? { id } : logprobsOf(logits, id, k);
    const piece = this.#decoder.push(id);
    this.#pendingText += piece;
    this.#total += piece.length;
    this.#pendingTokens.push({ token, end: this.#total });
    const at = findStop(this.#pendingText, this.#stops);
    if (at >= 0) {
      this.#release(this.#released + at, true);
      this.#finish("stop");
      return true;
    }
    if (this.generated >= this.request.maxTokens) {
      this.#finish("length");
      return true;
    }
    const hold = stopPrefixHold(this.#pendingText, this.#stops);
    this.#release(this.#total - hold, false);
    return false;
  }

  /**
   * Releases the pending text up to absolute offset `upTo` and the tokens whose text ends
   * there; with `cut` (a stop string starts at `upTo`) the rest is dropped, and tokens that
   * carry only the first bytes of a character past the cut go with that character.
   */
  #release(upTo: number, cut: boolean): void {
    const n = upTo - this.#released;
    const text = this.#pendingText.slice(0, n);
    let k = 0;
    const p = this.#pendingTokens;
    while (k < p.length && p[k].end <= upTo) k++;
    if (cut) {
      const before = (j: number) => (j > 0 ? p[j - 1].end : this.#released);
      while (k > 0 && p[k - 1].end === before(k - 1) && p[k - 1].end === upTo) k--;
    }
    const tokens = p.splice(0, k).map((x) => x.token);
    this.#pendingText = this.#pendingText.slice(n);
    this.#released = upTo;
    if (cut) {
      this.#pendingText = "";
      this.#pendingTokens = [];
    }
    this.#channel.push({ text, tokens });
  }

  /** Ends the sequence: flushes held text (not after a stop string) and resolves. */
  #finish(reason: FinishReason): void {
    if (this.finishReason !== null) return;
    if (reason !== "abort") {
      const tail = this.#decoder.flush();
      const rest = this.#pendingText + tail;
      const at = findStop(rest, this.#stops);
      this.#total += tail.length;
      if (at >= 0) {
        this.#pendingText = rest;
        this.#release(this.#released + at, true);
        reason = "stop";
      } else if (rest.length > 0 || this.#pendingTokens.length > 0) {
        this.#pendingText = rest;
        this.#release(this.#total, false);
      }
    }
    this.finishReason = reason;
    this.#channel.end();
    this.#resolve({
      finishReason: reason,
      promptTokens: this.promptLen,
      completionTokens: this.generated,
      cachedTokens: Math.max(0, this.cachedTokens),
      ttftMs: this.#ttft,
    });
  }

  /** Whether it samples greedily (temperature 0): a draft is kept iff it is the argmax. */
  get greedy(): boolean {
    return this.#sampler.options.temperature === 0;
  }

  /**
   * The sampling options a draft model draws the drafts after the current tokens with: the
   * request's chain (temperature, top-k/p, min-p, penalties) and a seed derived from the
   * request's seed and the sequence length. A draft is then a function of the sequence
   * alone, not of the drafts drawn or discarded before, so seeded text does not depend on
   * what else the server runs.
   */
  get draftSampling(): ResolvedSamplerOptions {
    const o = this.#sampler.options;
    const seed = (BigInt(o.seed) * 0x9e3779b1n + BigInt(this.tokens.length) + 1n) % 2n ** 53n;
    return { ...o, seed: Number(seed) };
  }

  /** Finishes with `length` (the context is full). */
  finishLength(): void {
    this.#finish("length");
  }

  /** Finishes a cancelled sequence (and its unforked choices): nothing more is streamed. */
  abort(): void {
    this.#finish("abort");
    for (const c of this.children.splice(0)) c.abort();
  }

  /**
   * Fails the sequence (and its unforked choices): the iteration and `result` reject with
   * `error`.
   *
   * @param error Why (a step that threw).
   */
  fail(error: unknown): void {
    for (const c of this.children.splice(0)) c.fail(error);
    if (this.finishReason !== null) return;
    this.finishReason = "abort";
    this.#channel.end(error);
    this.#reject(error);
  }
}
