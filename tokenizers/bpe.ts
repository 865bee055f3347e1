/**
 * Byte-level BPE merging with tiktoken semantics, in O(n log n) per pre-tokenized piece.
 *
 * A piece (the UTF-8 bytes of one pre-tokenizer match) starts as one part per byte. While
 * some pair of adjacent parts concatenates to a mergeable token, the pair whose token has
 * the lowest rank is merged (ties: the leftmost pair). Each final part is one token id
 * (rank = id). This is `_byte_pair_merge` of openai/tiktoken `src/lib.rs`; the pair choice
 * runs on a min-heap of candidate pairs keyed by (rank, position) over a doubly linked list
 * of parts, with lazy invalidation (a popped entry whose pair changed since it was pushed is
 * skipped), as HF tokenizers' `Word::merge_all` (`tokenizers/src/models/bpe/word.rs`) does.
 * Short pieces (the common case) use tiktoken's linear scan, which is faster for them; both
 * paths give identical ids (checked in bpe_test.ts against a naive reference).
 *
 * Rank lookups use an open-addressing hash table over the token bytes (FNV-1a), so a lookup
 * allocates nothing and costs O(token length); a candidate longer than the longest token is
 * rejected without hashing.
 *
 * @module
 */

/** Pieces up to this many bytes use the linear-scan merge; longer ones use the heap. */
const SMALL_PIECE = 48;

/** Positions are packed below the rank in one float64 heap key: rank * 2^29 + position. */
const POS_BITS = 2 ** 29;

/** Largest rank a table holds (ranks and positions must pack into 53 bits). */
export const MAX_RANK: number = 2 ** 24 - 1;

/** Largest piece (bytes) one merge handles. */
export const MAX_PIECE_BYTES: number = POS_BITS - 1;

const NONE = 0x7fffffff; // "no pair" rank

function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/**
 * The mergeable tokens of a byte-level BPE vocabulary: byte string → rank, as a hash table
 * over one byte blob, plus the merge itself ({@linkcode BytePairEncoder.encodePiece}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BytePairEncoder } from "./bpe.ts";
 * const te = new TextEncoder();
 * const tokens = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
 * tokens.push(te.encode("ab"), te.encode("abc")); // ranks 256, 257
 * const bpe = new BytePairEncoder(tokens);
 * const out: number[] = [];
 * const piece = te.encode("abcab");
 * bpe.encodePiece(piece, 0, piece.length, out);
 * assert.deepEqual(out, [257, 256]);
 * ```
 */
export class BytePairEncoder {
  /** Number of mergeable tokens in the table. */
  readonly size: number;
  /** Length in bytes of the longest mergeable token. */
  readonly maxTokenBytes: number;

  #blob: Uint8Array; // concatenated bytes of every mergeable token
  #start: Int32Array; // (rank count) start of rank r in #blob, -1 for a hole
  #len: Int32Array; // (rank count) byte length of rank r
  #table: Int32Array; // (power of two) open addressing: rank or -1
  #mask: number;
  #single = new Int32Array(256).fill(-1); // rank of each single byte

  // Scratch buffers of the merge, grown on demand and reused across calls.
  #next = new Int32Array(64); // (n + 1) start of the part after the part starting at i
  #prev = new Int32Array(64); // (n + 1) start of the part before
  #pairRank = new Int32Array(64); // (n) rank of (part at i) + (next part), NONE if none
  #heap = new Float64Array(192); // (<= 3n) keys rank * 2^29 + i

  /**
   * Builds the table.
   *
   * @param tokens Token bytes indexed by rank (`undefined` or empty for ids that are not
   *   mergeable, e.g. special tokens). When two ranks hold the same bytes the lower wins.
   * @throws {RangeError} when a rank exceeds {@linkcode MAX_RANK} or a single byte has no
   *   rank (every byte must be encodable).
   */
  constructor(tokens: readonly (Uint8Array | undefined)[]) {
    const n = tokens.length;
    if (n - 1 > MAX_RANK) throw new RangeError(`BPE rank ${n - 1} exceeds ${MAX_RANK}`);
    let total = 0, count = 0, maxLen = 0;
    for (let r = 0; r < n; r++) {
      const t = tokens[r];
      if (t && t.length > 0) {
        total += t.length;
        count++;
        if (t.length > maxLen) maxLen = t.length;
      }
    }
    this.#blob = new Uint8Array(total);
    this.#start = new Int32Array(n).fill(-1);
    this.#len = new Int32Array(n);
    let cap = 16;
    while (cap < count * 2) cap *= 2;
    this.#table = new Int32Array(cap).fill(-1);
    this.#mask = cap - 1;
    let off = 0, kept = 0;
    for (let r = 0; r < n; r++) {
      const t = tokens[r];
      if (!t || t.length === 0) continue;
      this.#blob.set(t, off);
      if (this.#lookup(this.#blob, off, off + t.length) >= 0) continue; // duplicate bytes
      this.#start[r] = off;
      this.#len[r] = t.length;
      off += t.length;
      let slot = fnv1a(t, 0, t.length) & this.#mask;
      while (this.#table[slot] >= 0) slot = (slot + 1) & this.#mask;
      this.#table[slot] = r;
      if (t.length === 1) this.#single[t[0]] = r;
      kept++;
    }
    this.size = kept;
    this.maxTokenBytes = maxLen;
    const missing = this.#single.indexOf(-1);
    if (missing >= 0) {
      throw new RangeError(
        `no rank for the single byte 0x${missing.toString(16).padStart(2, "0")}`,
      );
    }
  }

  /**
   * The rank of `bytes[start, end)` when it is a mergeable token, else -1. O(end - start).
   *
   * @param bytes Buffer holding the candidate.
   * @param start First byte.
   * @param end One past the last byte.
   * @returns The rank, or -1.
   */
  rankOf(bytes: Uint8Array, start: number, end: number): number {
    return end - start > this.maxTokenBytes ? -1 : this.#lookup(bytes, start, end);
  }

  #lookup(bytes: Uint8Array, start: number, end: number): number {
    const len = end - start;
    const blob = this.#blob;
    let slot = fnv1a(bytes, start, end) & this.#mask;
    for (;;) {
      const r = this.#table[slot];
      if (r < 0) return -1;
      if (this.#len[r] === len) {
        const s = this.#start[r];
        let i = 0;
        while (i < len && blob[s + i] === bytes[start + i]) i++;
        if (i === len) return r;
      }
      slot = (slot + 1) & this.#mask;
    }
  }

  /**
   * Merges one piece and appends its token ids to `out`.
   *
   * @param bytes Buffer holding the piece's UTF-8 bytes.
   * @param start First byte of the piece.
   * @param end One past its last byte.
   * @param out Receives the ids, left to right.
   * @throws {RangeError} for a piece longer than {@linkcode MAX_PIECE_BYTES}.
   */
  encodePiece(bytes: Uint8Array, start: number, end: number, out: number[]): void {
    const n = end - start;
    if (n <= 0) return;
    if (n === 1) {
      out.push(this.#single[bytes[start]]);
      return;
    }
    const whole = this.rankOf(bytes, start, end);
    if (whole >= 0) {
      out.push(whole);
      return;
    }
    if (n > MAX_PIECE_BYTES) throw new RangeError(`BPE piece of ${n} bytes is too long`);
    this.#grow(n);
    if (n <= SMALL_PIECE) this.#mergeScan(bytes, start, n);
    else this.#mergeHeap(bytes, start, n);
    const next = this.#next;
    for (let i = 0; i < n; i = next[i]) out.push(this.#lookup(bytes, start + i, start + next[i]));
  }

  #grow(n: number): void {
    if (this.#next.length > n) return;
    const cap = Math.max(n + 1, this.#next.length * 2);
    this.#next = new Int32Array(cap);
    this.#prev = new Int32Array(cap);
    this.#pairRank = new Int32Array(cap);
    this.#heap = new Float64Array(3 * cap);
  }

  /** Rank of the pair starting at part `i` (relative offsets), NONE when not a token. */
  #pair(bytes: Uint8Array, base: number, i: number, n: number): number {
    const j = this.#next[i];
    if (j >= n) return NONE;
    const r = this.rankOf(bytes, base + i, base + this.#next[j]);
    return r < 0 ? NONE : r;
  }

  /** tiktoken's scan: each step finds the lowest-ranked pair by walking all parts. */
  #mergeScan(bytes: Uint8Array, base: number, n: number): void {
    const next = this.#next, pr = this.#pairRank;
    for (let i = 0; i < n; i++) next[i] = i + 1;
    for (let i = 0; i < n; i++) pr[i] = this.#pair(bytes, base, i, n);
    for (;;) {
      let best = NONE, at = -1, before = -1;
      for (let i = 0, p = -1; i < n; p = i, i = next[i]) {
        if (pr[i] < best) {
          best = pr[i];
          at = i;
          before = p;
        }
      }
      if (at < 0) return;
      next[at] = next[next[at]];
      pr[at] = this.#pair(bytes, base, at, n);
      if (before >= 0) pr[before] = this.#pair(bytes, base, before, n);
    }
  }

  /** The heap merge: O(n log n) for a piece of n bytes. */
  #mergeHeap(bytes: Uint8Array, base: number, n: number): void {
    const next = this.#next, prev = this.#prev, pr = this.#pairRank;
    const heap = this.#heap; // (3n) holds at most n - 1 + 2 per merge entries
    let size = 0;
    for (let i = 0; i < n; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    for (let i = 0; i + 1 < n; i++) {
      pr[i] = this.#pair(bytes, base, i, n);
      if (pr[i] !== NONE) size = heapPush(heap, size, pr[i] * POS_BITS + i);
    }
    pr[n - 1] = NONE;
    while (size > 0) {
      const key = heap[0];
      size = heapPop(heap, size);
      const rank = Math.floor(key / POS_BITS);
      const i = key - rank * POS_BITS;
      // Stale: part i was merged into its left neighbour, or its pair changed since.
      if (pr[i] !== rank) continue;
      const j = next[i];
      const k = next[j];
      next[i] = k;
      if (k < n) prev[k] = i;
      pr[j] = NONE; // j no longer starts a part
      pr[i] = this.#pair(bytes, base, i, n);
      if (pr[i] !== NONE) size = heapPush(heap, size, pr[i] * POS_BITS + i);
      const h = prev[i];
      if (h >= 0) {
        pr[h] = this.#pair(bytes, base, h, n);
        if (pr[h] !== NONE) size = heapPush(heap, size, pr[h] * POS_BITS + h);
      }
    }
  }
}

/** Pushes `key` on the min-heap `heap[0, size)`; returns the new size. */
function heapPush(heap: Float64Array, size: number, key: number): number {
  let i = size;
  while (i > 0) {
    const p = (i - 1) >> 1;
    if (heap[p] <= key) break;
    heap[i] = heap[p];
    i = p;
  }
  heap[i] = key;
  return size + 1;
}

/** Removes the minimum of the min-heap `heap[0, size)`; returns the new size. */
function heapPop(heap: Float64Array, size: number): number {
  const last = heap[--size];
  let i = 0;
  for (;;) {
    let c = 2 * i + 1;
    if (c >= size) break;
    if (c + 1 < size && heap[c + 1] < heap[c]) c++;
    if (heap[c] >= last) break;
    heap[i] = heap[c];
    i = c;
  }
  heap[i] = last;
  return size;
}

/**
 * Writes the UTF-8 encoding of `text[start, end)` into `buf` (lone surrogates become
 * U+FFFD, as `TextEncoder` does). `buf` must hold at least `3 * (end - start)` bytes.
 *
 * @param text Source string.
 * @param start First UTF-16 unit.
 * @param end One past the last unit.
 * @param buf Destination.
 * @returns Number of bytes written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { utf8Into } from "./bpe.ts";
 * const buf = new Uint8Array(12);
 * const n = utf8Into("aé😀", 0, 4, buf);
 * assert.deepEqual(buf.subarray(0, n), new TextEncoder().encode("aé😀"));
 * ```
 */
export function utf8Into(text: string, start: number, end: number, buf: Uint8Array): number {
  let o = 0;
  for (let i = start; i < end; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      buf[o++] = c;
    } else if (c < 0x800) {
      buf[o++] = 0xc0 | (c >> 6);
      buf[o++] = 0x80 | (c & 63);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < end ? text.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          buf[o++] = 0xf0 | (cp >> 18);
          buf[o++] = 0x80 | ((cp >> 12) & 63);
          buf[o++] = 0x80 | ((cp >> 6) & 63);
          buf[o++] = 0x80 | (cp & 63);
          i++;
          continue;
        }
        c = 0xfffd;
      }
      buf[o++] = 0xe0 | (c >> 12);
      buf[o++] = 0x80 | ((c >> 6) & 63);
      buf[o++] = 0x80 | (c & 63);
    }
  }
  return o;
}
