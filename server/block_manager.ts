/**
 * The KV block pool of the server: a free queue of blocks, a block table per sequence,
 * reference counts, and automatic prefix caching (vLLM v1's `KVCacheManager` /
 * `BlockPool`, Kwon et al. 2023 "Efficient Memory Management for Large Language Model
 * Serving with PagedAttention").
 *
 * ```
 * block 0            the null block: never allocated; pads the unused tail of a table
 * blocks 1..N-1      in a table (ref > 0), or in the free queue (ref 0)
 * free queue         head: evicted first ... tail: most recently freed
 *                    blocks without a hash enter at the head, cached blocks at the tail (LRU)
 * cache              hash(parent hash, block tokens) -> block, for every full computed block
 * ```
 *
 * Prefix caching: a full block of a sequence whose K/V are computed gets the hash of its
 * tokens chained to the hash of the block before it (64 bits), so equal hashes mean equal
 * token prefixes (vLLM's scheme; the block's own tokens are also kept and compared on a hit,
 * so only two prefixes whose 64-bit chain hashes collide could share a block wrongly). A new
 * prompt looks its full blocks up in order and maps every hit into its table (ref + 1),
 * skipping that part of the prefill; at least its last token is always computed, since its
 * logits are needed. A block whose last owner finishes keeps its hash
 * and K/V in the free queue until it is allocated again (LRU eviction), so a prompt that
 * starts like a finished one still hits. Shared blocks are never written again (a sequence
 * writes only its own last, partial block), so sharing needs no copy-on-write.
 *
 * Forking (several choices of one request, `n` > 1; vLLM's parallel sampling, where a
 * SequenceGroup's children share the prompt's blocks): {@linkcode BlockManager.fork} maps
 * a parent's leading full blocks into a child's table (ref + 1), so the prompt's K/V are
 * held once for all choices. The fork happens at a block boundary: the child gets fresh
 * blocks for the prompt's tail past the last shared full block (at least its last token,
 * as for a prefix-cache hit) and recomputes it, rather than copying a partially filled
 * block on write. The tail is under one block of prefill per child (at most `blockSize`
 * tokens), and no kernel has to copy K/V between blocks.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";

/** The block id that pads block tables: never allocated, never read (vLLM's null block). */
export const NULL_BLOCK = 0;

/** Options of {@linkcode BlockManager}. */
export interface BlockManagerOptions {
  /** Blocks in the pool, the null block included (at least 2). */
  numBlocks: number;
  /** Tokens per block. */
  blockSize: number;
  /** Keep and share full computed blocks by hash (default true). */
  prefixCaching?: boolean;
}

/** Counters of the prefix cache. */
export interface PrefixCacheStats {
  /** Prompt tokens looked up (the full blocks of every admitted prompt). */
  queriedTokens: number;
  /** Of them, tokens whose K/V came from the cache (their prefill was skipped). */
  hitTokens: number;
  /** Blocks that held a cached prefix and were evicted to be reused. */
  evictedBlocks: number;
}

/** What {@linkcode BlockManager.allocatePrompt} did. */
export interface PromptAllocation {
  /** Leading prompt tokens whose K/V are already in the mapped blocks (a multiple of blockSize). */
  cachedTokens: number;
}

/** One sequence's blocks and the hashes of its committed full blocks. */
interface SeqBlocks {
  blocks: number[]; // block table, position order
  hashes: string[]; // hashes[i]: chain hash of full block i (only committed blocks)
}

/**
 * A 64-bit chain hash of a block, as 16 hex digits: two independent 32-bit lanes of
 * murmur3-style mixing over the parent hash and the block's token ids.
 */
function chainHash(parent: string, tokens: ArrayLike<number>, from: number, to: number): string {
  let h1 = 0x9747b28c, h2 = 0x85ebca6b;
  const mix = (h: number, k: number, m: number) => {
    k = Math.imul(k, m);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    return (Math.imul(h, 5) + 0xe6546b64) | 0;
  };
  for (let i = 0; i < parent.length; i++) {
    const c = parent.charCodeAt(i);
    h1 = mix(h1, c, 0xcc9e2d51);
    h2 = mix(h2, c, 0x2b3c4d5f);
  }
  for (let i = from; i < to; i++) {
    h1 = mix(h1, tokens[i], 0xcc9e2d51);
    h2 = mix(h2, tokens[i] ^ 0x5bd1e995, 0x2b3c4d5f);
  }
  const fin = (h: number, n: number) => {
    h ^= n;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return ((h ^ (h >>> 16)) >>> 0).toString(16).padStart(8, "0");
  };
  return fin(h1, to - from) + fin(h2, parent.length);
}

/**
 * The block pool: allocation, per-sequence block tables, reference counts, prefix caching
 * and LRU eviction. Sequences are named by any integer id chosen by the caller.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BlockManager } from "./block_manager.ts";
 * const m = new BlockManager({ numBlocks: 9, blockSize: 4 }); // 8 usable blocks
 * const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
 * assert.deepEqual(m.allocatePrompt(1, prompt), { cachedTokens: 0 });
 * assert.equal(m.table(1).length, 3); // ceil(10 / 4)
 * m.commit(1, prompt, 10); // K/V of 10 tokens computed: blocks 0 and 1 are full
 * m.free(1);
 * assert.equal(m.numFreeBlocks, 8); // freed, but blocks 0 and 1 keep their K/V and hash
 * // A prompt that starts with the same 8 tokens maps those blocks and skips them.
 * assert.deepEqual(m.allocatePrompt(2, [...prompt.slice(0, 8), 42]), { cachedTokens: 8 });
 * assert.equal(m.stats.hitTokens, 8);
 * ```
 */
export class BlockManager {
  /** Blocks in the pool, the null block included. */
  readonly numBlocks: number;
  /** Tokens per block. */
  readonly blockSize: number;
  /** Whether full blocks are cached and shared by hash. */
  readonly prefixCaching: boolean;
  #ref: Int32Array; // (numBlocks) owners of each block
  #hash: (string | null)[]; // (numBlocks) chain hash of a cached block, else null
  #tokens: (Int32Array | null)[]; // (numBlocks) the tokens of a cached block, for verification
  #cache = new Map<string, number>(); // chain hash -> block
  #prev: Int32Array; // (numBlocks) free queue links (-1: none)
  #next: Int32Array; // (numBlocks)
  #inQueue: Uint8Array; // (numBlocks) 1 while in the free queue
  #head = -1;
  #tail = -1;
  #numFree = 0;
  #seqs = new Map<number, SeqBlocks>();
  #stats: PrefixCacheStats = { queriedTokens: 0, hitTokens: 0, evictedBlocks: 0 };

  /**
   * Creates the pool with every block but the null block free.
   *
   * @param options Pool size, block size, prefix caching.
   * @throws {GollmError} when `numBlocks` is not an integer >= 2 or `blockSize` not a
   *   positive integer.
   */
  constructor(options: BlockManagerOptions) {
    const { numBlocks, blockSize } = options;
    if (!Number.isInteger(numBlocks) || numBlocks < 2) {
      throw new GollmError(
        `numBlocks must be an integer >= 2 (one is the null block), got ${numBlocks}`,
      );
    }
    if (!Number.isInteger(blockSize) || blockSize < 1) {
      throw new GollmError(`blockSize must be a positive integer, got ${blockSize}`);
    }
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.prefixCaching = options.prefixCaching ?? true;
    this.#ref = new Int32Array(numBlocks);
    this.#hash = new Array(numBlocks).fill(null);
    this.#tokens = new Array(numBlocks).fill(null);
    this.#prev = new Int32Array(numBlocks).fill(-1);
    this.#next = new Int32Array(numBlocks).fill(-1);
    this.#inQueue = new Uint8Array(numBlocks);
    for (let b = 1; b < numBlocks; b++) this.#pushTail(b);
  }

  /** Blocks with no owner (free, or cached and evictable): what can be allocated now. */
  get numFreeBlocks(): number {
    return this.#numFree;
  }

  /** Blocks that can ever be allocated: `numBlocks - 1` (the null block excluded). */
  get usableBlocks(): number {
    return this.numBlocks - 1;
  }

  /** Blocks held by the prefix cache (owned or free). */
  get cachedBlocks(): number {
    return this.#cache.size;
  }

  /** A copy of the prefix-cache counters. */
  get stats(): PrefixCacheStats {
    return { ...this.#stats };
  }

  /** Blocks needed to hold `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /**
   * The block table of a sequence (position order; do not modify).
   *
   * @param seq Sequence id.
   * @returns Its blocks (empty for an unknown sequence).
   */
  table(seq: number): readonly number[] {
    return this.#seqs.get(seq)?.blocks ?? [];
  }

  // --- the free queue (a doubly linked list over block ids) --------------------------------

  #unlink(b: number): void {
    const p = this.#prev[b], n = this.#next[b];
    if (p >= 0) this.#next[p] = n;
    else this.#head = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail = p;
    this.#prev[b] = this.#next[b] = -1;
    this.#inQueue[b] = 0;
    this.#numFree--;
  }

  #pushTail(b: number): void {
    this.#prev[b] = this.#tail;
    this.#next[b] = -1;
    if (this.#tail >= 0) this.#next[this.#tail] = b;
    else this.#head = b;
    this.#tail = b;
    this.#inQueue[b] = 1;
    this.#numFree++;
  }

  #pushHead(b: number): void {
    this.#next[b] = this.#head;
    this.#prev[b] = -1;
    if (this.#head >= 0) this.#prev[this.#head] = b;
    else this.#tail = b;
    this.#head = b;
    this.#inQueue[b] = 1;
    this.#numFree++;
  }

  /** Takes the block at the head of the free queue, evicting its cached prefix. */
  #popFree(): number {
    const b = this.#head;
    this.#unlink(b);
    const h = this.#hash[b];
    if (h !== null) {
      if (this.#cache.get(h) === b) this.#cache.delete(h);
      this.#hash[b] = null;
      this.#tokens[b] = null;
      this.#stats.evictedBlocks++;
    }
    this.#ref[b] = 1;
    return b;
  }

  /** Takes a reference to a block (a cache hit), removing it from the free queue if there. */
  #take(b: number): void {
    if (this.#inQueue[b]) this.#unlink(b);
    this.#ref[b]++;
  }

  // --- sequences ----------------------------------------------------------------------------

  /** The cached blocks of the longest cached prefix of `tokens` (full blocks, chained). */
  #lookup(tokens: ArrayLike<number>, maxBlocks: number): { blocks: number[]; hashes: string[] } {
    const blocks: number[] = [], hashes: string[] = [];
    if (!this.prefixCaching) return { blocks, hashes };
    const bs = this.blockSize;
    let parent = "";
    for (let i = 0; i < maxBlocks; i++) {
      const h = chainHash(parent, tokens, i * bs, (i + 1) * bs);
      const b = this.#cache.get(h);
      if (b === undefined) break;
      const own = this.#tokens[b]!;
      let same = true;
      for (let t = 0; t < bs && same; t++) same = own[t] === tokens[i * bs + t];
      if (!same) break; // a hash collision: treat as a miss
      blocks.push(b);
      hashes.push(h);
      parent = h;
    }
    return { blocks, hashes };
  }

  /**
   * Admits a sequence: maps the cached blocks of its longest cached prefix (leaving at least
   * the last token to compute) and allocates new blocks for the rest of `tokens`. All or
   * nothing: when the free blocks do not suffice, nothing changes and null is returned.
   *
   * @param seq A sequence id not in use.
   * @param tokens The tokens whose K/V the sequence will hold first (its prompt).
   * @returns How many leading tokens are cached, or null when the pool is short.
   * @throws {GollmError} when `seq` already has blocks or `tokens` is empty.
   */
  allocatePrompt(seq: number, tokens: ArrayLike<number>): PromptAllocation | null {
    if (this.#seqs.has(seq)) throw new GollmError(`allocatePrompt: sequence ${seq} has blocks`);
    if (tokens.length === 0) throw new GollmError("allocatePrompt: the prompt is empty");
    const bs = this.blockSize;
    const { blocks, hashes } = this.#lookup(tokens, Math.floor((tokens.length - 1) / bs));
    const fresh = this.blocksFor(tokens.length) - blocks.length;
    // Hits that sit in the free queue stop being free when taken.
    let hitsFree = 0;
    for (const b of blocks) if (this.#inQueue[b]) hitsFree++;
    if (fresh + hitsFree > this.#numFree) return null;
    for (const b of blocks) this.#take(b);
    for (let i = 0; i < fresh; i++) blocks.push(this.#popFree());
    this.#seqs.set(seq, { blocks, hashes });
    if (this.prefixCaching) {
      this.#stats.queriedTokens += Math.floor(tokens.length / bs) * bs;
      this.#stats.hitTokens += hashes.length * bs;
    }
    return { cachedTokens: hashes.length * bs };
  }

  /**
   * Forks a sequence: the child maps the parent's leading full blocks that lie before the
   * last of its `numTokens` tokens (ref + 1 each; the parent must hold their K/V, computed
   * from the same tokens as the child's) and gets fresh blocks for the rest, which it
   * recomputes. All or nothing: when the free blocks do not suffice, nothing changes.
   *
   * @param child A sequence id not in use.
   * @param parent A sequence with blocks whose first `numTokens` tokens are the child's.
   * @param numTokens The child's tokens (its prompt), at least 1.
   * @returns `cachedTokens`: leading tokens whose K/V the shared blocks hold (a multiple
   *   of blockSize, below `numTokens`); null when the pool is short.
   * @throws {GollmError} when `child` already has blocks, `parent` has none, or
   *   `numTokens` < 1.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { BlockManager } from "./block_manager.ts";
   * const m = new BlockManager({ numBlocks: 9, blockSize: 4 });
   * const prompt = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
   * m.allocatePrompt(1, prompt); // 3 blocks: 2 full, 1 partial
   * assert.deepEqual(m.fork(2, 1, prompt.length), { cachedTokens: 8 });
   * assert.deepEqual(m.table(2).slice(0, 2), m.table(1).slice(0, 2)); // held once
   * assert.equal(m.refCount(m.table(1)[0]), 2);
   * assert.notEqual(m.table(2)[2], m.table(1)[2]); // its own tail block
   * assert.equal(m.numFreeBlocks, 8 - 4);
   * ```
   */
  fork(child: number, parent: number, numTokens: number): PromptAllocation | null {
    if (this.#seqs.has(child)) throw new GollmError(`fork: sequence ${child} has blocks`);
    const p = this.#get(parent, "fork");
    if (!Number.isInteger(numTokens) || numTokens < 1) {
      throw new GollmError(`fork: numTokens must be a positive integer, got ${numTokens}`);
    }
    const bs = this.blockSize;
    const shared = Math.min(Math.floor((numTokens - 1) / bs), p.blocks.length);
    const fresh = this.blocksFor(numTokens) - shared;
    if (fresh > this.#numFree) return null;
    const blocks = p.blocks.slice(0, shared);
    for (const b of blocks) this.#ref[b]++; // held by the parent: not in the free queue
    for (let i = 0; i < fresh; i++) blocks.push(this.#popFree());
    this.#seqs.set(child, { blocks, hashes: p.hashes.slice(0, shared) });
    return { cachedTokens: shared * bs };
  }

  /**
   * Owners of a block: the sequences whose tables hold it (0: free or cached and unused).
   *
   * @param block A block id in `[0, numBlocks)`.
   * @returns Its reference count.
   */
  refCount(block: number): number {
    return this.#ref[block];
  }

  /**
   * Grows a sequence's table to hold `numTokens` tokens. All or nothing.
   *
   * @param seq A sequence with blocks.
   * @param numTokens Tokens it must hold.
   * @returns false when the free blocks do not suffice (nothing allocated).
   * @throws {GollmError} for an unknown sequence.
   */
  grow(seq: number, numTokens: number): boolean {
    const s = this.#get(seq, "grow");
    const need = this.blocksFor(numTokens) - s.blocks.length;
    if (need <= 0) return true;
    if (need > this.#numFree) return false;
    for (let i = 0; i < need; i++) s.blocks.push(this.#popFree());
    return true;
  }

  /**
   * Records that the K/V of the sequence's first `numComputed` tokens are in its blocks:
   * every full block among them enters the prefix cache under its chain hash (unless an
   * equal block is cached already).
   *
   * @param seq A sequence with blocks.
   * @param tokens The sequence's tokens (at least `numComputed`).
   * @param numComputed Tokens whose K/V are computed.
   * @throws {GollmError} for an unknown sequence.
   */
  commit(seq: number, tokens: ArrayLike<number>, numComputed: number): void {
    if (!this.prefixCaching) return;
    const s = this.#get(seq, "commit");
    const bs = this.blockSize;
    const full = Math.min(Math.floor(numComputed / bs), s.blocks.length);
    for (let i = s.hashes.length; i < full; i++) {
      const h = chainHash(i > 0 ? s.hashes[i - 1] : "", tokens, i * bs, (i + 1) * bs);
      s.hashes.push(h);
      const b = s.blocks[i];
      if (this.#hash[b] === null && !this.#cache.has(h)) {
        this.#cache.set(h, b);
        this.#hash[b] = h;
        this.#tokens[b] = Int32Array.from({ length: bs }, (_, t) => tokens[i * bs + t]);
      }
    }
  }

  /**
   * Releases a sequence's blocks (finished, aborted or preempted). Blocks no one else holds
   * return to the free queue: cached ones at the tail, last block first, so the end of a
   * prefix is evicted before its start (vLLM's order); uncached ones at the head. Unknown
   * sequences are ignored (freeing twice is harmless).
   *
   * @param seq Sequence id.
   */
  free(seq: number): void {
    const s = this.#seqs.get(seq);
    if (!s) return;
    this.#seqs.delete(seq);
    for (let i = s.blocks.length - 1; i >= 0; i--) {
      const b = s.blocks[i];
      if (--this.#ref[b] > 0) continue;
      if (this.#hash[b] !== null) this.#pushTail(b);
      else this.#pushHead(b);
    }
  }

  /**
   * Drops every cached block that no sequence holds (vLLM's `reset_prefix_cache`).
   *
   * @returns How many blocks were dropped from the cache.
   */
  resetPrefixCache(): number {
    let n = 0;
    for (const [h, b] of this.#cache) {
      if (this.#ref[b] > 0) continue;
      this.#cache.delete(h);
      this.#hash[b] = null;
      this.#tokens[b] = null;
      this.#unlink(b);
      this.#pushHead(b);
      n++;
    }
    return n;
  }

  #get(seq: number, what: string): SeqBlocks {
    const s = this.#seqs.get(seq);
    if (!s) throw new GollmError(`${what}: sequence ${seq} has no blocks`);
    return s;
  }
}
