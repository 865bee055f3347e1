/**
 * BytePairEncoder (tokenizers/bpe.ts): the heap merge and the linear-scan merge both equal a
 * naive transcription of tiktoken's `_byte_pair_merge` on random pieces, and long pieces
 * (the heap path) run without recursion.
 */
import assert from "node:assert/strict";
import { BytePairEncoder, utf8Into } from "./bpe.ts";

/** tiktoken `_byte_pair_merge`, literally: rescan for the lowest-ranked pair each step. */
function naiveMerge(ranks: Map<string, number>, piece: Uint8Array): number[] {
  let parts: number[][] = [...piece].map((b) => [b]);
  const key = (bytes: number[]) => bytes.join(",");
  for (;;) {
    let best = Infinity, at = -1;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = ranks.get(key([...parts[i], ...parts[i + 1]]));
      if (r !== undefined && r < best) {
        best = r;
        at = i;
      }
    }
    if (at < 0) break;
    parts = [...parts.slice(0, at), [...parts[at], ...parts[at + 1]], ...parts.slice(at + 2)];
  }
  return parts.map((p) => ranks.get(key(p))!);
}

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

Deno.test("BytePairEncoder.encodePiece() equals tiktoken's naive merge on random vocabularies and pieces", () => {
  const rnd = rng(7);
  for (let trial = 0; trial < 20; trial++) {
    // Small alphabet so merges chain; tokens grown by concatenating existing ones.
    const tokens: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
    const ranks = new Map<string, number>();
    tokens.forEach((t, r) => ranks.set([...t].join(","), r));
    const alphabet = [97, 98, 99, 100];
    const pool = alphabet.map((b) => tokens[b]);
    while (tokens.length < 256 + 60) {
      const a = pool[Math.floor(rnd() * pool.length)], b = pool[Math.floor(rnd() * pool.length)];
      const t = new Uint8Array([...a, ...b]);
      const k = [...t].join(",");
      if (ranks.has(k) || t.length > 12) continue;
      ranks.set(k, tokens.length);
      tokens.push(t);
      pool.push(t);
    }
    const bpe = new BytePairEncoder(tokens);
    for (let c = 0; c < 40; c++) {
      const n = 1 + Math.floor(rnd() * 200); // both sides of the 48-byte scan/heap switch
      const piece = Uint8Array.from({ length: n }, () => alphabet[Math.floor(rnd() * 4)]);
      const out: number[] = [];
      bpe.encodePiece(piece, 0, n, out);
      assert.deepEqual(out, naiveMerge(ranks, piece), `trial ${trial} piece ${c}`);
    }
  }
});

Deno.test("BytePairEncoder.encodePiece() merges a 4 MB piece (no recursion, no quadratic scan)", () => {
  const tokens: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
  tokens.push(Uint8Array.of(97, 97), Uint8Array.of(97, 97, 97, 97)); // "aa" 256, "aaaa" 257
  const bpe = new BytePairEncoder(tokens);
  const piece = new Uint8Array(4_000_001).fill(97);
  const out: number[] = [];
  bpe.encodePiece(piece, 0, piece.length, out);
  assert.equal(out.length, 1_000_001);
  assert.ok(out.slice(0, -1).every((id) => id === 257));
  assert.equal(out.at(-1), 97);
});

Deno.test("BytePairEncoder keeps the lower rank of duplicate bytes and requires every single byte", () => {
  const tokens: (Uint8Array | undefined)[] = Array.from(
    { length: 256 },
    (_, b) => Uint8Array.of(b),
  );
  tokens.push(Uint8Array.of(1, 2), undefined, Uint8Array.of(1, 2));
  const bpe = new BytePairEncoder(tokens);
  assert.equal(bpe.rankOf(Uint8Array.of(1, 2), 0, 2), 256);
  assert.equal(bpe.size, 257);
  assert.throws(() => new BytePairEncoder(tokens.slice(1)), /no rank for the single byte 0x00/);
});

Deno.test("utf8Into() equals TextEncoder, lone surrogates included", () => {
  const buf = new Uint8Array(64);
  for (const s of ["", "abc", "é中😀", "a\ud800b", "\udc00", "x\ud83d", "\u0085\u2028"]) {
    const n = utf8Into(s, 0, s.length, buf);
    assert.deepEqual(buf.subarray(0, n), new TextEncoder().encode(s), JSON.stringify(s));
  }
});
