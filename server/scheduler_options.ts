/**
 * What the `Scheduler` (server/scheduler.ts) is built with and what it reports: its
 * options (context, queue, prefix caching, speculative decoding), its counters, and the
 * error of a full queue.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import type { PrefixCacheStats } from "./block_manager.ts";
import type { Proposer } from "./speculative.ts";

/** Options of `Scheduler` (server/scheduler.ts). */
export interface SchedulerOptions {
  /**
   * Tokens one sequence holds at most, prompt and generated (default and maximum: what a
   * block table holds, `maxBlocksPerSeq · blockSize`, capped at `context_length`).
   */
  ctxSize?: number;
  /** Requests waiting for a slot at most; more are refused (default 256). */
  maxQueue?: number;
  /** Share full prompt blocks by hash (default true). */
  prefixCaching?: boolean;
  /** Draft tokens for decoding sequences and verify them in the same step (default: none). */
  speculative?: SpeculativeOptions;
}

/** Speculative decoding of greedy and sampled sequences (server/speculative.ts). */
export interface SpeculativeOptions {
  /** One proposer for every sequence, or one per sequence slot (a draft model's cache). */
  proposers: Proposer | readonly Proposer[];
  /** Most tokens drafted per sequence and step (the verify rows are this + 1). */
  maxDraft: number;
}

/** Counters of a running scheduler. */
export interface SchedulerStats {
  /** Sequences running (holding a slot). */
  running: number;
  /** Requests waiting for a slot or for blocks. */
  waiting: number;
  /** Blocks that can be allocated now (free or evictable cached). */
  freeBlocks: number;
  /** Blocks the pool can ever allocate (the null block excluded). */
  usableBlocks: number;
  /** Steps run. */
  steps: number;
  /** Token rows run over all steps. */
  rows: number;
  /** Tokens sampled over all sequences. */
  sampledTokens: number;
  /** Preemptions (sequences sent back to the queue). */
  preemptions: number;
  /** Tokens drafted for verification (speculative decoding). */
  draftedTokens: number;
  /** Of them, tokens the model agreed with (acceptance rate = accepted / drafted). */
  acceptedTokens: number;
  /** Times a sampled sequence's draft did not fit the rows left in a step, so it waited. */
  draftWaits: number;
  /**
   * Choices of `n` > 1 requests that started from their first choice's prompt blocks
   * (server/choices.ts); a choice the pool could not take at the fork queued as a plain
   * request instead and is not counted.
   */
  forkedChoices: number;
  /** Prefix-cache counters. */
  prefixCache: PrefixCacheStats;
}

/** A request refused because the queue is full: HTTP 503 with `Retry-After`. */
export class QueueFullError extends GollmError {
  /**
   * Creates the error.
   * @param maxQueue The queue length limit.
   */
  constructor(readonly maxQueue: number) {
    super(`the server is busy: ${maxQueue} requests are waiting already (maxQueue); retry later`);
    this.name = "QueueFullError";
  }
}
