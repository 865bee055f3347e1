/**
 * The one implementation of {@linkcode Model}: a forward pass (any backend) with its KV
 * cache, and generation on it: prefill (reusing the cached prefix of the previous prompt),
 * then sample → decode step → stream decoder, with stop strings held back and the sliding
 * window noticed (runtime/model.ts builds it).
 *
 * @module
 */
import type { CompiledModel } from "../codegen/compile.ts";
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { ForwardPass } from "../core/forward.ts";
import type { GenerationDefaults } from "../formats/checkpoint.ts";
import { checkInt, checkNum, checkPromptLength, findStop, stopPrefixHold } from "./generation.ts";
import type {
  Backend,
  CheckpointInfo,
  GenerateOptions,
  GenerateStats,
  Model,
  ModelOptions,
} from "./model.ts";
import { Sampler } from "./sampler.ts";
import { JsonConstraint } from "./json_constraint.ts";
import { type CompiledJsonSchema, compileJsonSchema } from "./json_schema.ts";
import {
  checkSpeculativeOptions,
  type SpeculativeDecoder,
  speculativeDecoder,
} from "./speculative_decode.ts";
import { singleSequenceBlocks } from "../core/single_sequence.ts";
import { StreamDecoder, type Tokenizer } from "../tokenizers/tokenizer.ts";

/** A forward pass, with the threads and `close()` of the wasm backend when it has them. */
export type ModelPass = ForwardPass & { close?: () => void; threads?: number };

/** {@linkcode Model} over a forward pass (see the module doc). */
export class GollmModel implements Model {
  readonly kvCapacity: number;
  readonly eosIds: readonly number[];
  #pass: ForwardPass;
  #ring: number; // tokens in each layer's KV ring (>= kvCapacity)
  #generation: GenerationDefaults;
  #stats: GenerateStats | null = null;
  #busy = false;
  /** Tokens whose K/V sit in the cache at positions 0..n-1 (valid while n <= kvCapacity). */
  #cached: number[] = [];
  #jsonBytes: Uint8Array[] = []; // JSON mode's token bytes (filled by its first use)
  #jsonMasks = new Map<string, Uint8Array>(); // JSON mode's masks by state, across calls

  #close: () => void;

  constructor(
    readonly config: ModelConfig,
    pass: ModelPass,
    readonly tokenizer: Tokenizer | null,
    readonly checkpoint: CheckpointInfo,
    readonly backend: Backend,
    options: ModelOptions,
  ) {
    this.#pass = pass;
    this.threads = pass.threads ?? 1;
    this.#close = pass.close ?? (() => {});
    this.kvCapacity = pass.kvCapacity;
    this.#ring = kvRing(pass);
    this.eosIds = [...new Set([...(tokenizer?.eosIds ?? []), ...(options.extraEosIds ?? [])])];
    this.#generation = options.generation ?? {};
  }

  readonly threads: number;

  get stats(): GenerateStats | null {
    return this.#stats;
  }

  close(): void {
    this.#close();
  }

  [Symbol.dispose](): void {
    this.#close();
  }

  /**
   * Runs the pass (`forward`: last-token logits, a view into the arena; `forwardAll`: an
   * `(n, vocab)` copy) and keeps `#cached` in step with the KV cache. The view is returned
   * as is: the decode loop samples straight from the arena without copying the logits.
   */
  #run(tokens: ArrayLike<number>, pos: number, all = false): Float32Array {
    let out: Float32Array;
    try {
      out = all ? this.#pass.forwardAll(tokens, pos) : this.#pass.forward(tokens, pos);
    } catch (e) {
      this.#cached.length = 0; // the pass may have written part of the cache
      throw e instanceof RangeError ? new GollmError(e.message) : e;
    }
    const cached = this.#cached;
    if (pos > cached.length || pos + tokens.length > this.kvCapacity) {
      cached.length = 0; // a gap, or the ring wrapped: the cache no longer holds a prefix
    } else {
      cached.length = pos;
      for (let i = 0; i < tokens.length; i++) cached.push(tokens[i]);
    }
    return out;
  }

  /**
   * Samples the next id (or takes it from a speculative round); logits with no finite value
   * mean broken weights: say which file.
   */
  #sample(
    sampler: Sampler,
    logits: Float32Array,
    history: number[],
    pos: number,
    spec?: SpeculativeDecoder,
  ): number {
    try {
      return spec ? spec.next(history) : sampler.sample(logits, history);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
      throw new GollmError(
        `${this.checkpoint.path}: the logits at position ${pos - 1} are all NaN or -Infinity; ` +
          `the model's weights hold NaN or Inf values`,
        { cause: e },
      );
    }
  }

  #idle(method: string): void {
    if (this.#busy) throw new GollmError(`${method}: a generate() call is running on this model`);
  }

  forward(tokens: ArrayLike<number>, pos = 0, out?: Float32Array): Float32Array {
    this.#idle("forward");
    const V = this.config.vocab_size;
    if (out !== undefined && out.length !== V) {
      throw new GollmError(`forward: out has length ${out.length}, expected vocab_size ${V}`);
    }
    const logits = this.#run(tokens, pos);
    if (out === undefined) return new Float32Array(logits);
    out.set(logits);
    return out;
  }

  forwardAll(tokens: ArrayLike<number>, pos = 0): Float32Array {
    this.#idle("forwardAll");
    return this.#run(tokens, pos, true);
  }

  canRollback(from: number, last: number): boolean {
    // The newest position whose slot `last` overwrote must be older than `from`'s window.
    return last < from || last - this.#ring < Math.max(0, from - this.kvCapacity + 1);
  }

  /** Encodes and validates the prompt; throws the documented errors. */
  #promptIds(
    prompt: string | readonly number[],
    options: GenerateOptions,
    tokenizer: Tokenizer,
  ): number[] {
    const c = this.config;
    let ids = typeof prompt === "string"
      ? tokenizer.encode(prompt, {
        bos: options.addBos ?? tokenizer.addBos,
        special: options.special ?? true,
      })
      : [...prompt];
    if (ids.length === 0) {
      if (tokenizer.bosId === null) {
        throw new GollmError(
          "the prompt is empty and the tokenizer has no BOS token to start from; give a prompt",
        );
      }
      ids = [tokenizer.bosId];
    }
    checkPromptLength(c, this.kvCapacity, ids.length);
    for (const t of ids) {
      if (!Number.isInteger(t) || t < 0 || t >= c.vocab_size) {
        throw new GollmError(`prompt token id ${t} is outside the vocabulary [0, ${c.vocab_size})`);
      }
    }
    return ids;
  }

  generate(
    prompt: string | readonly number[],
    options: GenerateOptions = {},
  ): AsyncIterable<string> {
    // Validate eagerly so errors surface at the call, not at the first iteration.
    checkInt("maxTokens", options.maxTokens, 0);
    checkNum("temperature", options.temperature, 0);
    checkInt("topK", options.topK, 0);
    checkNum("topP", options.topP, 0, 1, true);
    checkNum("minP", options.minP, 0, 1);
    checkNum("repeatPenalty", options.repeatPenalty, 0, Infinity, true);
    if (options.stop?.some((s) => s.length === 0)) {
      throw new GollmError("stop strings must not be empty");
    }
    checkSpeculativeOptions(this, options);
    if (options.jsonMode && options.draft) {
      throw new GollmError("jsonMode: speculative decoding (draft) does not run in JSON mode");
    }
    if (options.jsonSchema !== undefined && (options.jsonMode || options.draft)) {
      throw new GollmError(
        `jsonSchema: not with ${options.jsonMode ? "jsonMode (give one)" : "a draft"}`,
      );
    }
    const schema = options.jsonSchema === undefined
      ? undefined
      : compileJsonSchema(options.jsonSchema, "jsonSchema");
    if (!this.tokenizer) {
      throw new GollmError(
        `${this.checkpoint.path}: the model has no tokenizer (tokenizer: none); generate needs ` +
          `one to produce text (from the CLI pass --tokenizer PATH; from code give ` +
          `loadModel() a tokenizerPath, or use forward() with token ids)`,
      );
    }
    const ids = this.#promptIds(prompt, options, this.tokenizer);
    const g = this.#generation;
    const sampler = new Sampler({
      temperature: options.temperature ?? g.temperature ?? 0.8,
      topK: options.topK ?? g.top_k ?? 0,
      topP: options.topP ?? g.top_p ?? 0.95,
      minP: options.minP ?? 0,
      repeatPenalty: options.repeatPenalty ?? 1,
      seed: options.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
      logitBias: options.logitBias,
    });
    const V = this.config.vocab_size;
    for (const [id] of sampler.options.logitBias) {
      if (id >= V) {
        throw new GollmError(`logitBias: token id ${id} is outside the vocabulary (0..${V - 1})`);
      }
    }
    return this.#generate(ids, options, this.tokenizer, sampler, schema);
  }

  async *#generate(
    ids: number[],
    options: GenerateOptions,
    tokenizer: Tokenizer,
    sampler: Sampler,
    schema?: CompiledJsonSchema,
  ): AsyncGenerator<string> {
    if (this.#busy) throw new GollmError("generate: another generation is running on this model");
    this.#busy = true;
    try {
      yield* this.#loop(ids, options, tokenizer, sampler, schema);
    } finally {
      this.#busy = false;
    }
  }

  async *#loop(
    ids: number[],
    options: GenerateOptions,
    tokenizer: Tokenizer,
    sampler: Sampler,
    schema?: CompiledJsonSchema,
  ): AsyncGenerator<string> {
    const c = this.config;
    const cap = this.kvCapacity;
    const maxTokens = options.maxTokens ?? 256;
    const stops = options.stop ?? [];
    const eos = new Set(this.eosIds);
    const notices = new Set<string>();
    const notice = (key: string, msg: string) => {
      if (!notices.has(key)) {
        notices.add(key);
        options.onNotice?.(msg);
      }
    };
    // Built once: once the window slides, every step asks for this notice.
    const slideMsg =
      `the sequence passed the KV capacity (${cap} tokens): the oldest tokens now fall out ` +
      `of attention (sliding window)`;
    const stats: GenerateStats = {
      promptTokens: ids.length,
      prefillTokens: 0,
      prefillMs: 0,
      decodeTokens: 0,
      decodeMs: 0,
      tokens: [],
      stopReason: "max_tokens",
    };

    // Prefill, reusing the cached prefix of the previous sequence when it matches.
    let start = 0;
    const cached = this.#cached;
    if (ids.length <= cap) {
      while (start < cached.length && start < ids.length - 1 && cached[start] === ids[start]) {
        start++;
      }
    }
    if (ids.length > cap) notice("slide", slideMsg);
    const t0 = performance.now();
    let logits = this.#run(ids.slice(start), start);
    stats.prefillTokens = ids.length - start;
    stats.prefillMs = performance.now() - t0;

    const decoder = new StreamDecoder(tokenizer);
    for (const id of ids) decoder.push(id); // context for the first piece (dummy-prefix space)
    const history = [...ids]; // prompt + generated ids, for the repetition penalty
    const step = [0]; // the one-token input of a decode step, reused (no array per token)
    const verify = (tokens: number[], at: number) => this.#run(tokens, at, true);
    const target = { config: c, forwardAll: verify, canRollback: this.canRollback.bind(this) };
    const spec = speculativeDecoder(target, options, sampler);
    if (spec) stats.speculative = spec.stats;
    // JSON mode or a schema: the logits are masked (in a copy) before sampling, the value's
    // end stops.
    const json = options.jsonMode || schema
      ? new JsonConstraint(
        tokenizer,
        this.#jsonBytes,
        this.#jsonMasks,
        schema?.recognizer(),
      )
      : null;
    const masked = json ? new Float32Array(c.vocab_size) : null; // (vocab) masked logits
    // Decoded text not yet emitted (it could start a stop string). Everything but the longest
    // stop-string prefix is yielded each step, so it stays shorter than the longest stop string
    // plus one piece and the stop checks below cost O(stops) per token, not O(text so far).
    let pending = "";
    // Decoded text length after each generated token, to cut stats.tokens at a stop string.
    let total = 0;
    const ends: number[] = [];
    const cutTokensAt = (stopStart: number) => {
      let k = 0;
      while (k < ends.length && ends[k] <= stopStart) k++;
      // A token whose bytes only start a character (no text yet) goes with that character.
      while (k > 0 && ends[k - 1] === (k > 1 ? ends[k - 2] : 0)) k--;
      stats.tokens.length = k;
    };
    let started = false; // the first token comes from the prefill's logits
    // Decode time counts sampling and forward passes, not the consumer's work between pieces.
    let td = performance.now(), timing = true;
    const pause = () => {
      if (timing) stats.decodeMs += performance.now() - td;
      timing = false;
    };
    const resume = () => {
      td = performance.now();
      timing = true;
    };
    let finished = false;
    try {
      while (!finished) {
        if (maxTokens === 0) break;
        if (options.signal?.aborted) {
          stats.stopReason = "aborted";
          break;
        }
        const pos = history.length; // position of the next token (the one before has not run)
        if (started && !spec) {
          step[0] = history[pos - 1];
          logits = this.#run(step, pos - 1); // an arena view: sampled without a copy
        }
        if (started) stats.decodeTokens++;
        if (json && masked) {
          masked.set(logits);
          if (json.mask(masked) === 0) {
            throw new GollmError(`${schema ? "jsonSchema" : "jsonMode"}: no token can continue`);
          }
        }
        const next = this.#sample(
          sampler,
          masked ?? logits,
          history,
          pos,
          started ? spec?.decoder : undefined,
        );
        started = true;
        json?.advance(next);
        if (eos.has(next)) {
          stats.stopReason = "eos";
          break;
        }
        stats.tokens.push(next);
        history.push(next);
        const piece = decoder.push(next);
        pending += piece;
        total += piece.length;
        if (stops.length > 0) ends.push(total);
        const at = findStop(pending, stops);
        if (at >= 0) {
          stats.stopReason = "stop";
          cutTokensAt(total - pending.length + at);
          const out = pending.slice(0, at);
          pending = "";
          finished = true;
          pause();
          if (out) yield out;
          break;
        }
        if (json?.complete) {
          stats.stopReason = "stop";
          break;
        }
        if (stats.tokens.length >= maxTokens) {
          stats.stopReason = "max_tokens";
          break;
        }
        const hold = stopPrefixHold(pending, stops);
        if (pending.length > hold) {
          const out = pending.slice(0, pending.length - hold);
          pending = pending.slice(pending.length - hold);
          pause();
          yield out;
          resume();
        }
        if (c.arch === "gpt2" && pos >= c.context_length) {
          stats.stopReason = "context";
          notice(
            "context",
            `reached the context length (${c.context_length} tokens); gpt2 has learned ` +
              `positions and cannot go further, stopping`,
          );
          break;
        }
        if (pos >= cap) notice("slide", slideMsg);
      }
      if (!finished) {
        const tail = decoder.flush();
        let rest = pending + tail;
        total += tail.length;
        const at = findStop(rest, stops);
        if (at >= 0) {
          cutTokensAt(total - rest.length + at);
          rest = rest.slice(0, at);
          stats.stopReason = "stop";
        }
        pause();
        if (rest) yield rest;
      }
    } finally {
      pause();
      this.#stats = stats;
      options.onStats?.(stats);
    }
  }
}

/** Tokens in each KV ring: window + one step in blocks (compiled), the window (reference). */
function kvRing(pass: ForwardPass): number {
  const batch = (pass as Partial<CompiledModel>).batch;
  if (!batch) return pass.kvCapacity;
  return singleSequenceBlocks(pass.kvCapacity, batch.maxRows, batch.blockSize) * batch.blockSize;
}
