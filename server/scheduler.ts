/**
 * Continuous batching over a {@linkcode BatchForward} (Yu et al. 2022, "Orca: A Distributed
 * Serving System for Transformer-Based Generative Models"; vLLM v1's scheduler; llama.cpp's
 * server loop): requests join and leave between steps, and every step runs ONE batched
 * forward over all running sequences, so the weights are read once per step for all of them.
 *
 * One step:
 * ```
 * 1. drop cancelled sequences (their blocks return to the pool)
 * 2. decode rows    one row per running sequence whose prompt is done (a new block when its
 *                   last one is full; if the pool is empty, preempt the newest sequence)
 * 3. prefill rows   the rest of the token budget (maxRows) goes to prompts in progress,
 *                   oldest first, in chunks (chunked prefill)
 * 4. admission      waiting requests, first come first served, while a sequence slot is free,
 *                   budget is left and the pool holds their whole prompt (prefix-cache hits
 *                   are mapped, not recomputed); the first one that does not fit waits
 * 5. forward        one BatchForward.step (stepAsync when the batch has it) over the rows;
 *                   logits only for each sequence whose last known token is in the step
 * 6. sample         each such sequence with its own seeded Sampler; stream; finish on EOS,
 *                   a stop string, max tokens; full blocks enter the prefix cache
 * ```
 * then it runs the next step. With `stepAsync` (a batch model built with `offload`, as `gollm
 * serve` builds it) the step runs on worker threads and the event loop goes on meanwhile;
 * otherwise the loop yields to it between steps (server/yielder.ts), so HTTP stays live.
 *
 * Preemption (vLLM v1's policy): when a running sequence needs a block and none is free, the
 * most recently admitted running sequence is preempted by recompute: its blocks are freed
 * (their full blocks stay in the prefix cache), and it returns to the front of the queue with
 * its prompt and the tokens generated so far as the new prompt; its sampler keeps its state,
 * so its text is the same as if it had never been preempted. Admission needs the prompt's
 * blocks only (not max_tokens' worth), so the pool is shared by what sequences actually use.
 *
 * Several choices per request (`n` > 1, {@linkcode Scheduler.submitGroup}, server/choices.ts;
 * vLLM's parallel sampling): the group is admitted when n slots are free; choice 0 prefills
 * the prompt and holds the other slots; at its first sample the others fork from its
 * blocks (the full prompt blocks are shared by reference count, the tail recomputed) and
 * run on as sequences of their own.
 *
 * Speculative decoding (`speculative` option, server/speculative.ts): after the decode rows, a
 * decoding sequence may add drafted tokens as verify rows (its rows are consecutive
 * positions, every one an out row), and `Sequence.verify` keeps what runtime/speculative.ts
 * `verifyDraft` accepts (the rejection sampling of Leviathan et al. 2023, over the request's
 * own sampler) plus one token of the model's, so a step yields 1 + accepted tokens. Greedy
 * output is identical to plain decoding; sampled tokens keep the model's distribution. The
 * K/V written for rejected drafts lie past the sequence's computed tokens and are
 * overwritten by the next step; their blocks stay with the sequence, which fills them next.
 *
 * The same seed and request give the same text whatever else the server runs, with
 * speculation too, given the same speculative settings (proposer, draft model, `maxDraft`,
 * and `maxRows`, which caps a draft). A sampled sequence's draft depends on the sequence
 * alone: k <= min(maxDraft, maxRows − 1, room in its context and max tokens), a draft model
 * draws with a seed derived from the request's seed and the position
 * (`Sequence.draftSampling`), and a draft that does not fit the step's rows waits for the
 * next step rather than being cut (its blocks are taken as a decode row's, preempting if
 * needed). The verify draws use the request's sampler stream in order. The text differs
 * from decoding without speculation (the stream is used differently), never in
 * distribution. Greedy drafts are cut to fit freely: greedy output does not depend on k.
 * Decoders are served longest-unserved first, so a waiting draft runs at the next step or
 * soon after, at the cost of a step for plain decoders behind it.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { BatchForward } from "../core/forward.ts";
import type { Draft } from "../runtime/speculative.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import { BlockManager, NULL_BLOCK } from "./block_manager.ts";
import { type GenerationHandle, type GenerationRequest, Sequence } from "./sequence.ts";
import { checkProposal, type Proposer } from "./speculative.ts";
import { Yielder } from "./yielder.ts";
import {
  QueueFullError,
  type SchedulerOptions,
  type SchedulerStats,
  type SpeculativeOptions,
} from "./scheduler_options.ts";

export { QueueFullError } from "./scheduler_options.ts";
export type { SchedulerOptions, SchedulerStats, SpeculativeOptions } from "./scheduler_options.ts";

/** One scheduled sequence of a step. */
interface Planned {
  s: Sequence;
  n: number; // rows: tokens[computed .. computed + n), or the last token + draft
  draft: Draft | null; // drafted tokens verified in this step
  out: number; // index of its first out row, -1 for none
}

/**
 * The continuous-batching scheduler: submit requests, read their streams; one loop steps
 * the batched forward while there is work.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { compileBatch } from "../codegen/compile.ts";
 * import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
 * import { Scheduler } from "./scheduler.ts";
 * const yaml = await Deno.readTextFile("configs/test-llama.yaml");
 * const c = { ...parseConfigYaml(yaml, "t.yaml"), vocab_size: 256 }; // one id per byte
 * const tok = TiktokenTokenizer.fromRanks(Array.from({ length: 256 }, (_, b) => new Uint8Array([b])), new Map());
 * const batch = compileBatch(c, randomWeights(c, 1), { maxSeqs: 4, numBlocks: 17, maxRows: 16 });
 * const s = new Scheduler(batch, tok, []);
 * const a = s.submit({ prompt: [1, 2, 3], maxTokens: 5, sampling: { temperature: 0 } });
 * const b = s.submit({ prompt: [4, 5], maxTokens: 3, sampling: { temperature: 0.8, seed: 7 } });
 * const [ra, rb] = await Promise.all([a.result, b.result]);
 * assert.deepEqual([ra.completionTokens, rb.completionTokens], [5, 3]);
 * assert.equal(ra.finishReason, "length");
 * ```
 */
export class Scheduler {
  /** The model config. */
  readonly config: ModelConfig;
  /** Tokens one sequence holds at most (prompt and generated). */
  readonly ctxSize: number;
  /** Requests that may wait at most. */
  readonly maxQueue: number;
  /** The block pool (exposed for stats and tests). */
  readonly blocks: BlockManager;
  readonly #batch: BatchForward;
  readonly #tokenizer: Tokenizer;
  readonly #eosIds: readonly number[];
  #nextId = 1;
  #waiting: Sequence[] = [];
  #running: Sequence[] = []; // admission order: the last is preempted first
  #freeSlots: number[];
  #table: Int32Array; // (maxBlocksPerSeq) a block table padded with the null block
  #looping = false;
  #idle: (() => void)[] = [];
  #closed = false;
  #stats = {
    steps: 0,
    rows: 0,
    sampledTokens: 0,
    preemptions: 0,
    draftedTokens: 0,
    acceptedTokens: 0,
    draftWaits: 0,
    forkedChoices: 0,
  };
  readonly #spec: SpeculativeOptions | null;
  // Step rows, reused: (maxRows) each.
  #tok: Int32Array;
  #pos: Int32Array;
  #seq: Int32Array;
  #out: Int32Array;

  /**
   * Creates the scheduler over a batched forward; no step runs until a request arrives.
   *
   * @param batch The batched forward (its `numBlocks` is the pool, block 0 the null block;
   *   `maxSeqs` the running sequences at most, `maxRows` the token budget per step).
   * @param tokenizer For the streamed text.
   * @param eosIds Ids that end a sequence.
   * @param options Context size, queue length, prefix caching.
   * @throws {GollmError} when `ctxSize` is out of range or the pool cannot hold one
   *   sequence of `ctxSize` tokens.
   */
  constructor(
    batch: BatchForward,
    tokenizer: Tokenizer,
    eosIds: readonly number[],
    options: SchedulerOptions = {},
  ) {
    this.config = batch.config;
    this.#batch = batch;
    this.#tokenizer = tokenizer;
    this.#eosIds = eosIds;
    const bs = batch.blockSize;
    const most = Math.min(batch.maxBlocksPerSeq * bs, batch.config.context_length);
    this.ctxSize = options.ctxSize ?? most;
    if (!Number.isInteger(this.ctxSize) || this.ctxSize < 2 || this.ctxSize > most) {
      throw new GollmError(
        `ctxSize must be an integer in [2, ${most}] (the block table holds ` +
          `${batch.maxBlocksPerSeq} blocks of ${bs}; context_length ${batch.config.context_length}), ` +
          `got ${options.ctxSize}`,
      );
    }
    if (batch.numBlocks - 1 < Math.ceil(this.ctxSize / bs)) {
      throw new GollmError(
        `a KV pool of ${batch.numBlocks} blocks (one is the null block) cannot hold one ` +
          `sequence of ${this.ctxSize} tokens (${Math.ceil(this.ctxSize / bs)} blocks of ${bs}); ` +
          `give more blocks or a smaller context`,
      );
    }
    this.maxQueue = options.maxQueue ?? 256;
    this.#spec = options.speculative ?? null;
    if (this.#spec) {
      const { proposers, maxDraft } = this.#spec;
      if (!Number.isInteger(maxDraft) || maxDraft < 1) {
        throw new GollmError(`maxDraft must be a positive integer, got ${maxDraft}`);
      }
      if (Array.isArray(proposers) && proposers.length < batch.maxSeqs) {
        throw new GollmError(
          `speculative: ${proposers.length} proposers for ${batch.maxSeqs} sequence slots`,
        );
      }
    }
    this.blocks = new BlockManager({
      numBlocks: batch.numBlocks,
      blockSize: bs,
      prefixCaching: options.prefixCaching,
    });
    this.#freeSlots = Array.from({ length: batch.maxSeqs }, (_, s) => batch.maxSeqs - 1 - s);
    this.#table = new Int32Array(batch.maxBlocksPerSeq).fill(NULL_BLOCK);
    const T = batch.maxRows;
    this.#tok = new Int32Array(T);
    this.#pos = new Int32Array(T);
    this.#seq = new Int32Array(T);
    this.#out = new Int32Array(T);
  }

  /** Sequences running at most (the batch's sequence slots). */
  get maxSeqs(): number {
    return this.#batch.maxSeqs;
  }

  /** Token rows per step at most (the token budget). */
  get maxRows(): number {
    return this.#batch.maxRows;
  }

  /** A snapshot of the counters. */
  get stats(): SchedulerStats {
    return {
      running: this.#running.length,
      waiting: this.#waiting.length,
      freeBlocks: this.blocks.numFreeBlocks,
      usableBlocks: this.blocks.usableBlocks,
      ...this.#stats,
      prefixCache: this.blocks.stats,
    };
  }

  /**
   * Queues a request; the loop starts if idle.
   *
   * @param request Prompt ids, sampling, limits, stop strings, signal.
   * @returns The handle to read its stream and result from.
   * @throws {QueueFullError} when `maxQueue` requests are waiting.
   * @throws {GollmError} for an empty prompt, an id outside the vocabulary, a `maxTokens`
   *   that is not a positive integer, or a prompt + maxTokens over `ctxSize`; after
   *   {@linkcode Scheduler.close}.
   */
  submit(request: GenerationRequest): GenerationHandle {
    return this.submitGroup([request])[0];
  }

  /**
   * Queues the choices of one request (`n` > 1; server/choices.ts): requests with the same
   * prompt, each with its own sampling (seed), limits and constraint. The prompt is
   * prefilled once, by choice 0; the others then share its full blocks
   * ({@linkcode BlockManager.fork}) and run as sequences of their own. They are admitted
   * together (n free sequence slots) and count as one waiting request.
   *
   * @param requests The choices, 1 to `maxSeqs` of them, with equal prompts.
   * @returns One handle per choice, in order.
   * @throws {QueueFullError} when `maxQueue` requests are waiting.
   * @throws {GollmError} as {@linkcode Scheduler.submit} for any choice; for no choices,
   *   more than `maxSeqs`, or prompts that differ.
   */
  submitGroup(requests: readonly GenerationRequest[]): GenerationHandle[] {
    if (this.#closed) throw new GollmError("the scheduler is shut down");
    const n = requests.length;
    if (n < 1 || n > this.maxSeqs) {
      throw new GollmError(
        `a request's choices must number 1 to ${this.maxSeqs} (the sequence slots, since ` +
          `they run at once), got ${n}`,
      );
    }
    const prompt = requests[0].prompt;
    for (const r of requests) this.#check(r);
    requests.forEach((r, i) => {
      if (r.prompt.length !== prompt.length || r.prompt.some((t, k) => t !== prompt[k])) {
        throw new GollmError(`the prompt of choice ${i} differs from choice 0's`);
      }
    });
    if (this.#waiting.length >= this.maxQueue) throw new QueueFullError(this.maxQueue);
    const seqs = requests.map((r) =>
      new Sequence(this.#nextId++, r, this.#tokenizer, this.#eosIds)
    );
    seqs[0].children.push(...seqs.slice(1));
    this.#waiting.push(seqs[0]);
    this.#kick();
    return seqs.map((x) => x.handle);
  }

  /** The checks of one request (see {@linkcode Scheduler.submit}). */
  #check(request: GenerationRequest): void {
    const { prompt, maxTokens } = request;
    const V = this.config.vocab_size;
    if (prompt.length === 0) throw new GollmError("prompt: no tokens");
    for (let i = 0; i < prompt.length; i++) {
      const t = prompt[i];
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new GollmError(`prompt[${i}] = ${t} is outside the vocabulary [0, ${V})`);
      }
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new GollmError(`maxTokens must be a positive integer, got ${maxTokens}`);
    }
    if (prompt.length + maxTokens > this.ctxSize) {
      throw new GollmError(
        `the prompt (${prompt.length} tokens) and maxTokens (${maxTokens}) exceed the ` +
          `context of ${this.ctxSize} tokens`,
      );
    }
  }

  /** Resolves when no request is waiting or running. */
  idle(): Promise<void> {
    if (!this.#looping) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /**
   * Stops taking requests and cancels every waiting and running one (their results resolve
   * with finish reason `abort`); resolves when the loop has stopped.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const s of [...this.#running, ...this.#waiting]) s.abort();
    await this.idle();
    this.#dropAborted();
  }

  #kick(): void {
    if (this.#looping) return;
    this.#looping = true;
    this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      // The first step waits for a turn of the event loop too: submit() returns at once,
      // and requests that arrive together start in the same step.
      const y = new Yielder();
      await new Promise((r) => setTimeout(r, 0));
      // With stepAsync the event loop runs during each step: no turns between steps.
      const offloaded = this.#batch.stepAsync !== undefined;
      while (this.#running.length > 0 || this.#waiting.length > 0) {
        await this.#step();
        if (!offloaded) await y.yield();
      }
    } finally {
      this.#looping = false;
      for (const r of this.#idle.splice(0)) r();
    }
  }

  /** Points the sequence's slot at its current block table (padded with the null block). */
  #install(s: Sequence): void {
    const t = this.blocks.table(s.id), table = this.#table;
    table.fill(NULL_BLOCK);
    for (let i = 0; i < t.length; i++) table[i] = t[i];
    const ring = table.length * this.#batch.blockSize;
    this.#batch.setSequence(s.slot, table, ring, this.config.context_length);
  }

  /** Releases a running sequence's slot (and those held for its choices) and blocks. */
  #release(s: Sequence): void {
    const i = this.#running.indexOf(s);
    if (i >= 0) this.#running.splice(i, 1);
    if (s.slot >= 0) this.#freeSlots.push(s.slot);
    this.#freeSlots.push(...s.reservedSlots.splice(0));
    s.slot = -1;
    this.blocks.free(s.id);
  }

  #dropAborted(): void {
    for (const s of this.#running.filter((x) => x.aborted || x.finishReason !== null)) {
      s.abort();
      this.#release(s);
    }
    this.#waiting = this.#waiting.filter((s) => {
      if (!s.aborted && s.finishReason === null) return true;
      s.abort();
      this.blocks.free(s.id);
      return false;
    });
  }

  /** Preempts by recompute: blocks freed (full ones stay cached), back to the queue front. */
  #preempt(s: Sequence): void {
    this.#release(s);
    s.computed = 0;
    s.preemptions++;
    this.#stats.preemptions++;
    this.#waiting.unshift(s);
  }

  /**
   * Makes room for a decode row's token (or `tokens` tokens: a draft's too): new blocks
   * when the sequence's last one is full, preempting the most recently admitted sequences
   * while the pool is empty.
   *
   * @returns false when `s` itself was preempted.
   */
  #reserve(s: Sequence, tokens = s.tokens.length): boolean {
    const had = this.blocks.table(s.id).length;
    while (!this.blocks.grow(s.id, tokens)) {
      const victim = this.#running[this.#running.length - 1];
      this.#preempt(victim);
      if (victim === s) return false;
    }
    if (this.blocks.table(s.id).length !== had) this.#install(s);
    return true;
  }

  /**
   * Builds, runs and samples one step (see the module doc). With `stepAsync` the event
   * loop runs while the step does: requests come in (queued for the next step) and
   * clients go (their sequences finish when the step is done, then are dropped).
   */
  async #step(): Promise<void> {
    this.#dropAborted();
    const T = this.#batch.maxRows;
    const plan: Planned[] = [];
    let budget = T;
    // Decode rows first: one per sequence whose prompt is done.
    for (let i = 0; i < this.#running.length && budget > 0;) {
      const s = this.#running[i];
      if (s.tokens.length - s.computed !== 1) {
        i++;
        continue;
      }
      if (!this.#reserve(s)) continue; // s was preempted: index i holds the next sequence
      plan.push({ s, n: 1, draft: null, out: -1 });
      budget--;
      i++;
    }
    // Speculation: decoders add their drafted tokens as verify rows.
    if (this.#spec) budget = this.#speculate(plan, budget);
    // Prefill chunks of prompts in progress, oldest first.
    for (const s of this.#running) {
      const left = s.tokens.length - s.computed;
      if (budget === 0) break;
      if (left < 2) continue;
      const n = Math.min(left, budget);
      plan.push({ s, n, draft: null, out: -1 });
      budget -= n;
    }
    // Admission.
    while (
      budget > 0 && this.#waiting.length > 0 && this.#freeSlots.length > 0 && !this.#closed
    ) {
      const s = this.#waiting[0];
      if (this.#freeSlots.length < 1 + s.children.length) break; // a request's n choices
      const got = this.blocks.allocatePrompt(s.id, s.tokens);
      if (!got) break;
      this.#waiting.shift();
      if (s.cachedTokens < 0) s.cachedTokens = got.cachedTokens;
      s.computed = got.cachedTokens;
      s.slot = this.#freeSlots.pop()!;
      for (const _ of s.children) s.reservedSlots.push(this.#freeSlots.pop()!);
      this.#running.push(s);
      this.#install(s);
      const n = Math.min(s.tokens.length - s.computed, budget);
      plan.push({ s, n, draft: null, out: -1 });
      budget -= n;
    }
    if (plan.length === 0) return;

    // Rows: each sequence's tokens[computed .. computed + n) (then its drafted tokens); an out
    // row where that reaches its last known token, and every verify row.
    let rows = 0, outs = 0;
    for (const p of plan) {
      const { s, n, draft } = p;
      for (let t = 0; t < n; t++) {
        this.#tok[rows] = draft && t > 0 ? draft.tokens[t - 1] : s.tokens[s.computed + t];
        this.#pos[rows] = s.computed + t;
        this.#seq[rows] = s.slot;
        if (draft) this.#out[outs++] = rows;
        rows++;
      }
      if (draft) p.out = outs - n;
      else if (s.computed + n === s.tokens.length) {
        p.out = outs;
        this.#out[outs++] = rows - 1;
      }
    }
    let logits: Float32Array;
    try {
      const input = {
        tokens: this.#tok.subarray(0, rows),
        positions: this.#pos.subarray(0, rows),
        seqs: this.#seq.subarray(0, rows),
        outRows: this.#out.subarray(0, outs),
      };
      logits = this.#batch.stepAsync ? await this.#batch.stepAsync(input) : this.#batch.step(input);
    } catch (e) {
      // The step's K/V may be half written: fail every sequence in it, keep serving others.
      for (const { s } of plan) {
        s.fail(e);
        this.#release(s);
      }
      return;
    }
    this.#stats.steps++;
    this.#stats.rows += rows;
    const V = this.config.vocab_size;
    const row = (i: number) => logits.subarray(i * V, (i + 1) * V); // (vocab_size)
    for (const p of plan) {
      const s = p.s;
      if (s.finishReason !== null) continue; // ended during the step (close()): dropped next
      if (p.out < 0) { // a prefill chunk that does not reach the prompt's end
        s.computed += p.n;
        this.blocks.commit(s.id, s.tokens, s.computed);
        continue;
      }
      let done = false;
      try {
        if (p.draft) {
          // Row i's input is draft i (row 0: the last token); its K/V count once every
          // draft up to i is accepted.
          const k = p.draft.tokens.length;
          const rows = logits.subarray(p.out * V, (p.out + k + 1) * V); // (k + 1, vocab_size)
          const r = s.verify(rows, p.draft.tokens, p.draft.probs);
          done = r.done;
          this.#stats.sampledTokens += r.chosen;
          this.#stats.draftedTokens += k;
          this.#stats.acceptedTokens += r.accepted;
          s.computed += 1 + r.accepted;
        } else {
          s.computed += p.n;
          done = s.accept(row(p.out));
          this.#stats.sampledTokens++;
        }
      } catch (e) {
        s.fail(e);
        this.#release(s);
        continue;
      }
      this.blocks.commit(s.id, s.tokens, s.computed);
      if (s.children.length > 0) this.#fork(s); // its prompt is computed: n > 1
      if (!done && s.tokens.length >= this.ctxSize) {
        s.finishLength();
        done = true;
      }
      if (done) this.#release(s);
    }
  }

  /**
   * Starts the other choices of a request whose prompt choice 0 just computed
   * (server/choices.ts): each maps the parent's full prompt blocks, takes a held slot and
   * runs from the prompt's tail. One the pool cannot take now queues as a plain request.
   */
  #fork(parent: Sequence): void {
    const queued: Sequence[] = [];
    for (const c of parent.children.splice(0)) {
      const got = this.blocks.fork(c.id, parent.id, c.tokens.length);
      const slot = parent.reservedSlots.pop()!;
      if (!got) {
        this.#freeSlots.push(slot);
        queued.push(c);
        continue;
      }
      this.#stats.forkedChoices++;
      c.cachedTokens = c.computed = got.cachedTokens;
      c.slot = slot;
      this.#running.push(c);
      this.#install(c);
    }
    this.#waiting.unshift(...queued);
  }

  /**
   * Adds drafts to the step's decode rows (see the module doc). Decoders are served longest
   * unserved first: each takes its base rows while they fit (1, or 1 + its whole draft for a
   * sampled sequence) or waits for the next step; then greedy ones extend their drafts into
   * the rows left. The longest-waiting decoder always fits (k + 1 <= maxRows), so none
   * waits forever.
   *
   * @param plan The step so far: its decode rows (n = 1), nothing else yet.
   * @param budget Rows left in the step.
   * @returns The rows left.
   */
  #speculate(plan: Planned[], budget: number): number {
    const decoders = plan.slice().sort((a, b) => a.s.servedStep - b.s.servedStep); // stable
    let free = budget + decoders.length;
    const kept = new Set<Planned>();
    for (const p of decoders) {
      const s = p.s;
      if (s.slot < 0) continue; // preempted for an earlier sequence's blocks
      const draft = s.greedy || !s.speculable ? null : this.#proposeSampled(s);
      const k = draft ? draft.tokens.length : 0;
      if (1 + k > free) {
        if (k > 0) this.#stats.draftWaits++;
        continue;
      }
      if (k > 0) {
        if (!this.#reserve(s, s.tokens.length + k)) continue; // s itself was preempted
        p.draft = draft;
        p.n += k;
      }
      free -= p.n;
      kept.add(p);
    }
    for (const p of decoders) {
      if (free === 0) break;
      if (!kept.has(p) || p.s.slot < 0 || !p.s.greedy || !p.s.speculable) continue;
      const draft = this.#proposeGreedy(p.s, free);
      if (!draft) continue;
      p.draft = draft;
      p.n += draft.tokens.length;
      free -= draft.tokens.length;
    }
    // Decoders that wait or were preempted leave the step.
    let used = 0;
    for (let i = plan.length - 1; i >= 0; i--) {
      const p = plan[i];
      if (kept.has(p) && p.s.slot >= 0) {
        used += p.n;
        p.s.servedStep = this.#stats.steps + 1;
      } else plan.splice(i, 1);
    }
    return budget + decoders.length - used;
  }

  /** The proposer of a running sequence's slot. */
  #proposer(s: Sequence): Proposer {
    const ps = this.#spec!.proposers;
    return Array.isArray(ps) ? ps[s.slot] : ps as Proposer;
  }

  /**
   * The draft of a greedy decoding sequence: at most `maxDraft`, the rows left in the step,
   * the room left in its context and its max tokens, and the blocks free without preemption.
   */
  #proposeGreedy(s: Sequence, budget: number): Draft | null {
    const len = s.tokens.length;
    const room = Math.min(
      this.#spec!.maxDraft,
      budget,
      this.ctxSize - len,
      s.request.maxTokens - s.generated - 1,
    );
    if (room < 1) return null;
    const proposer = this.#proposer(s);
    const draft = checkProposal(proposer, proposer.propose(s.tokens, room), room, this.config);
    if (draft.tokens.length === 0) return null;
    const had = this.blocks.table(s.id).length;
    if (!this.blocks.grow(s.id, len + draft.tokens.length)) return null;
    if (this.blocks.table(s.id).length !== had) this.#install(s);
    return draft;
  }

  /**
   * The draft of a sampled decoding sequence, a function of the sequence alone (k <=
   * min(maxDraft, maxRows − 1, the room left in its context and max tokens)); null when it
   * has nothing to draft. It runs whole or waits: never cut to fit a step.
   */
  #proposeSampled(s: Sequence): Draft | null {
    const room = Math.min(
      this.#spec!.maxDraft,
      this.#batch.maxRows - 1,
      this.ctxSize - s.tokens.length,
      s.request.maxTokens - s.generated - 1,
    );
    if (room < 1) return null;
    const proposer = this.#proposer(s);
    const proposed = proposer.propose(s.tokens, room, s.draftSampling);
    const draft = checkProposal(proposer, proposed, room, this.config);
    return draft.tokens.length > 0 ? draft : null;
  }
}
