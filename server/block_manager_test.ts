/**
 * BlockManager: all-or-nothing allocation, reference counts, prefix hits through the hash
 * chain (and not past a difference), LRU eviction of unused cached blocks, freeing.
 */
import assert from "node:assert/strict";
import { BlockManager, NULL_BLOCK } from "./block_manager.ts";

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

Deno.test("BlockManager.allocatePrompt() is all or nothing and never hands out the null block", () => {
  const m = new BlockManager({ numBlocks: 6, blockSize: 4 }); // 5 usable
  assert.equal(m.numFreeBlocks, 5);
  assert.deepEqual(m.allocatePrompt(1, range(0, 12)), { cachedTokens: 0 }); // 3 blocks
  assert.equal(m.numFreeBlocks, 2);
  assert.equal(m.allocatePrompt(2, range(100, 9)), null); // needs 3, 2 free: nothing taken
  assert.equal(m.numFreeBlocks, 2);
  assert.equal(m.table(2).length, 0);
  assert.ok(m.allocatePrompt(2, range(100, 8)));
  assert.equal(m.numFreeBlocks, 0);
  const all = [...m.table(1), ...m.table(2)];
  assert.equal(new Set(all).size, 5);
  assert.ok(!all.includes(NULL_BLOCK));
  assert.equal(m.grow(2, 9), false); // full
  m.free(1);
  assert.equal(m.grow(2, 9), true);
  assert.equal(m.table(2).length, 3);
  m.free(2);
  m.free(2); // twice is harmless
  assert.equal(m.numFreeBlocks, 5);
});

Deno.test("BlockManager maps a cached prefix by hash chain, counts references, and leaves the last token", () => {
  const m = new BlockManager({ numBlocks: 20, blockSize: 4 });
  const a = range(1, 14); // 3 full blocks + 2 tokens
  m.allocatePrompt(1, a);
  m.commit(1, a, 14);
  assert.equal(m.cachedBlocks, 3);
  // Same first 9 tokens: blocks 0 and 1 hit (8 tokens), block 2 differs at its 2nd token.
  const b = [...a.slice(0, 9), 99, 98, 97];
  assert.deepEqual(m.allocatePrompt(2, b), { cachedTokens: 8 });
  assert.deepEqual(m.table(2).slice(0, 2), m.table(1).slice(0, 2));
  assert.notEqual(m.table(2)[2], m.table(1)[2]);
  // A prompt equal to a's first 12 tokens hits 2 blocks, not 3: its last token is computed.
  assert.deepEqual(m.allocatePrompt(3, a.slice(0, 12)), { cachedTokens: 8 });
  // The same block 1 tokens after a different block 0: no hit (the hash chains the prefix).
  const c = [50, 51, 52, 53, ...a.slice(4, 8), 7];
  assert.deepEqual(m.allocatePrompt(4, c), { cachedTokens: 0 });
  // Shared blocks stay owned until every sequence is freed.
  const shared = m.table(1)[0];
  m.free(1);
  m.free(2);
  assert.ok(!m.table(3).includes(-1));
  const free = m.numFreeBlocks;
  m.free(3);
  assert.ok(m.numFreeBlocks > free);
  assert.equal(m.stats.hitTokens, 16);
  assert.ok(m.table(4).every((b) => b !== shared));
});

Deno.test("BlockManager evicts uncached blocks first, then the least recently freed cached ones", () => {
  const m = new BlockManager({ numBlocks: 7, blockSize: 2 }); // 6 usable
  const p = [1, 2, 3, 4, 5]; // 2 full blocks + 1
  m.allocatePrompt(1, p);
  m.commit(1, p, 5);
  const [c0, c1] = m.table(1);
  m.free(1); // c0, c1 cached; u (partial) uncached
  const q = [9, 8, 7, 6, 5];
  m.allocatePrompt(2, q);
  m.commit(2, q, 5);
  m.free(2); // 2 more cached blocks, freed later than c0, c1
  assert.equal(m.cachedBlocks, 4);
  // 2 fresh blocks: the 2 uncached ones go first, no cached prefix is lost.
  m.allocatePrompt(3, [40, 41, 42, 43]);
  assert.equal(m.cachedBlocks, 4);
  assert.equal(m.stats.evictedBlocks, 0);
  // 2 more: the oldest cached blocks go, end of the prefix first (c1 before c0).
  m.allocatePrompt(4, [60, 61]);
  assert.deepEqual(m.table(4), [c1]);
  m.allocatePrompt(5, [70, 71]);
  assert.deepEqual(m.table(5), [c0]);
  assert.equal(m.stats.evictedBlocks, 2);
  // q still hits; p no longer does.
  m.free(3);
  assert.deepEqual(m.allocatePrompt(6, q), { cachedTokens: 4 });
  m.free(4);
  m.free(5);
  assert.deepEqual(m.allocatePrompt(7, p.slice(0, 3)), { cachedTokens: 0 });
});

Deno.test("BlockManager takes a free cached hit out of the free queue (counted once)", () => {
  const m = new BlockManager({ numBlocks: 4, blockSize: 2 }); // 3 usable
  const p = [1, 2, 3, 4, 5];
  m.allocatePrompt(1, p);
  m.commit(1, p, 5);
  m.free(1);
  assert.equal(m.numFreeBlocks, 3);
  // 2 hits sitting in the free queue + 1 fresh block = all 3.
  assert.deepEqual(m.allocatePrompt(2, [1, 2, 3, 4, 9]), { cachedTokens: 4 });
  assert.equal(m.numFreeBlocks, 0);
  // Negative control: 2 hits + 2 fresh blocks do not fit; nothing is taken.
  m.free(2);
  assert.equal(m.allocatePrompt(3, [1, 2, 3, 4, 9, 9, 9]), null);
  assert.equal(m.numFreeBlocks, 3);
  assert.equal(m.cachedBlocks, 2);
});

Deno.test("BlockManager without prefix caching never hits; resetPrefixCache() drops unused blocks", () => {
  const off = new BlockManager({ numBlocks: 8, blockSize: 2, prefixCaching: false });
  off.allocatePrompt(1, [1, 2, 3]);
  off.commit(1, [1, 2, 3], 3);
  off.free(1);
  assert.deepEqual(off.allocatePrompt(2, [1, 2, 3]), { cachedTokens: 0 });
  const on = new BlockManager({ numBlocks: 8, blockSize: 2 });
  on.allocatePrompt(1, [1, 2, 3]);
  on.commit(1, [1, 2, 3], 3);
  on.allocatePrompt(2, [5, 6, 7]);
  on.commit(2, [5, 6, 7], 3);
  on.free(1);
  assert.equal(on.resetPrefixCache(), 1); // sequence 2's block is still owned
  assert.equal(on.cachedBlocks, 1);
  assert.deepEqual(on.allocatePrompt(3, [1, 2, 3]), { cachedTokens: 0 });
});
