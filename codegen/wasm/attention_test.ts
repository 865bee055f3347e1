/**
 * The paged attention kernel (attention.ts) against a float64 loop written from its contract
 * (vLLM PagedAttention's block table; ring slots and sliding windows as codegen/ops/
 * attention.ts): shuffled blocks, runs that end at block boundaries and at the ring's end,
 * windows, a soft-cap, every head grouping, and units split between two calls as two threads
 * split them; f16 K and/or V pools (read as the f16 values they hold), widened by the FP16
 * proposal and by the shift-and-rescale fallback. A wrong block table is the negative control.
 */
import assert from "node:assert/strict";
import { assertClose } from "../../tests/assert_close.ts";
import { rng } from "../../tests/ggml_blocks.ts";
import { assembleModule } from "../wasm_assemble.ts";
import { WasmFunc } from "../wasm_asm.ts";
import {
  attentionGroup,
  attentionScratchBytes,
  pagedAttentionKernel,
  type PagedAttentionShape,
} from "./attention.ts";
import { expKernel } from "./ops.ts";
import { fp16SimdSupported } from "../wasm_features.ts";

/** One step's rows: sequence, position; and each sequence's ring and window. */
interface Case {
  seq: number[];
  pos: number[];
  ring: number[];
  window: number[];
}

/** Float64 attention of every row and head, from the kernel's contract. */
function reference(
  s: PagedAttentionShape,
  c: Case,
  q: Float32Array,
  kp: Float32Array | Float16Array,
  vp: Float32Array | Float16Array,
  table: Int32Array,
): Float64Array {
  const { nHeads: Q, nKvHeads: K, headDim: hd, blockSize: B, blocksPerSeq: MB } = s;
  const out = new Float64Array(c.seq.length * Q * hd);
  for (let t = 0; t < c.seq.length; t++) {
    const sq = c.seq[t], p = c.pos[t], R = c.ring[sq];
    const W = Math.min(c.window[sq], s.layerWindow ?? Infinity);
    const start = Math.max(0, p - W + 1);
    for (let h = 0; h < Q; h++) {
      const kvh = Math.floor(h / (Q / K));
      const rows: number[] = [], scores: number[] = [];
      for (let u = start; u <= p; u++) {
        const slot = u % R;
        const row = table[sq * MB + Math.floor(slot / B)] * B + (slot % B);
        rows.push(row);
        let d = 0;
        for (let i = 0; i < hd; i++) {
          d += q[(t * Q + h) * hd + i] * kp[(row * K + kvh) * hd + i];
        }
        const x = d * s.scale;
        scores.push(s.softcap ? s.softcap * Math.tanh(x / s.softcap) : x);
      }
      const max = Math.max(...scores);
      const e = scores.map((x) => Math.exp(x - max));
      const sum = e.reduce((a, b) => a + b, 0);
      for (let i = 0; i < hd; i++) {
        let o = 0;
        rows.forEach((row, j) => (o += (e[j] / sum) * vp[(row * K + kvh) * hd + i]));
        out[(t * Q + h) * hd + i] = o;
      }
    }
  }
  return out;
}

/**
 * Runs the kernel on a case: units split at `cut` (two calls, as two threads); f16 pools per
 * `s.kType`/`s.vType`, widened with the FP16 proposal when `fp16`; `f32x4.relaxed_madd` when
 * `relaxed`.
 */
function run(
  s: PagedAttentionShape,
  c: Case,
  seed: number,
  cut: number,
  badTable = false,
  fp16 = false,
  relaxed = false,
) {
  const { nHeads: Q, nKvHeads: K, headDim: hd, blockSize: B, blocksPerSeq: MB } = s;
  const n = c.seq.length, seqs = c.ring.length, blocks = seqs * MB;
  const kb = s.kType === "f16" ? 2 : 4, vb = s.vType === "f16" ? 2 : 4;
  const at = { q: 0, kp: 0, vp: 0, pos: 0, seq: 0, table: 0, ring: 0, win: 0, o: 0, att: 0 };
  let end = 0;
  const put = (k: keyof typeof at, bytes: number) => {
    at[k] = end;
    end += Math.ceil(bytes / 64) * 64;
  };
  put("q", n * Q * hd * 4),
    put("kp", blocks * B * K * hd * kb),
    put("vp", blocks * B * K * hd * vb);
  put("pos", n * 4), put("seq", n * 4), put("table", blocks * 4), put("ring", seqs * 4);
  put("win", seqs * 4), put("o", n * Q * hd * 4), put("att", attentionScratchBytes(s));
  const pages = Math.ceil(end / 65536);
  const mem = new WebAssembly.Memory({ initial: pages });
  const kernel = pagedAttentionKernel(s, fp16, relaxed);
  // The kernel is internal to a step module: an exported wrapper calls it.
  const params = Array.from({ length: 12 }, (_, i) => [`a${i}`, "i32"] as [string, "i32"]);
  const wrapper = new WasmFunc("run", params);
  params.forEach(([p]) => wrapper.get(p));
  wrapper.call(kernel.name);
  const bytes = assembleModule([expKernel(), kernel, wrapper], pages);
  const e = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: mem } })
    .exports as Record<string, (...a: number[]) => void>;
  const f32 = (k: keyof typeof at, len: number) => new Float32Array(mem.buffer, at[k], len);
  const i32 = (k: keyof typeof at, len: number) => new Int32Array(mem.buffer, at[k], len);
  const r = rng(seed);
  const pool = (k: "kp" | "vp", bytes: number) =>
    bytes === 2
      ? new Float16Array(mem.buffer, at[k], blocks * B * K * hd)
      : f32(k, blocks * B * K * hd);
  const q = f32("q", n * Q * hd), kp = pool("kp", kb), vp = pool("vp", vb);
  for (const a of [q, kp, vp]) for (let i = 0; i < a.length; i++) a[i] = 2 * r() - 1;
  // Every sequence's blocks, shuffled over the pool.
  const order = Array.from({ length: blocks }, (_, i) => i);
  for (let i = blocks - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const table = i32("table", blocks);
  table.set(order);
  i32("pos", n).set(c.pos), i32("seq", n).set(c.seq);
  i32("ring", seqs).set(c.ring), i32("win", seqs).set(c.window);
  const want = reference(s, c, q, kp, vp, table);
  if (badTable) [table[0], table[1]] = [table[1], table[0]];
  const units = n * (Q / attentionGroup(Q, K));
  const args = [at.q, at.kp, at.vp, at.pos, at.seq, at.table, at.ring, at.win, at.o, at.att];
  e.run(...args, 0, cut);
  e.run(...args, cut, units);
  return { got: f32("o", n * Q * hd).slice(), want };
}

// Block size 4, 6 blocks per sequence (24 slots): rings of 24 (every block) and 10 (a
// sliding window whose ring ends mid-block, wrapping), positions at and across boundaries.
const CASE: Case = {
  seq: [0, 1, 1, 0, 1],
  pos: [0, 13, 3, 23, 22],
  ring: [24, 10],
  window: [24, 10],
};
const SHAPES: [string, Partial<PagedAttentionShape>][] = [
  ["12 heads, 4 KV heads (3 per unit)", { nHeads: 12, nKvHeads: 4, headDim: 8 }],
  ["8 heads, 2 KV heads (4 per unit), head_dim 6", { nHeads: 8, nKvHeads: 2, headDim: 6 }],
  ["4 heads, 1 KV head (2 per unit), head_dim 36", { nHeads: 4, nKvHeads: 1, headDim: 36 }],
  ["14 heads, 2 KV heads (1 per unit), head_dim 9", { nHeads: 14, nKvHeads: 2, headDim: 9 }],
  ["3 heads, 3 KV heads, head_dim 3", { nHeads: 3, nKvHeads: 3, headDim: 3 }],
  ["a layer window of 5 and a soft-cap", {
    nHeads: 6,
    nKvHeads: 2,
    headDim: 16,
    layerWindow: 5,
    softcap: 2,
  }],
];

/** A test geometry: block size 4, 6 blocks per sequence, scale 1 / sqrt(head_dim), then `part`. */
function shapeOf(part: Partial<PagedAttentionShape>): PagedAttentionShape {
  const hd = part.headDim!;
  return {
    nHeads: 1,
    nKvHeads: 1,
    headDim: hd,
    blockSize: 4,
    blocksPerSeq: 6,
    layerWindow: null,
    scale: 1 / Math.sqrt(hd),
    ...part,
  };
}

for (const [what, part] of SHAPES) {
  Deno.test(`pagedAttentionKernel() matches a float64 loop: ${what}`, () => {
    const hd = part.headDim!;
    const s = shapeOf(part);
    const units = CASE.seq.length * (s.nHeads / attentionGroup(s.nHeads, s.nKvHeads));
    const a = run(s, CASE, hd, 3);
    assertClose(a.got, a.want, 2e-6, what);
    // Another split of the units between the two calls gives the same bits.
    const b = run(s, CASE, hd, units - 1);
    assert.deepEqual(b.got, a.got);
    // With relaxed SIMD's fused multiply-add (what the runtime emits when it has it).
    const r = run(s, CASE, hd, 3, false, false, true);
    assertClose(r.got, r.want, 2e-6, `${what} (relaxed)`);
    // Negative control: two blocks of the table swapped after the reference was taken.
    const bad = run(s, CASE, hd, 3, true);
    assert.throws(() => assertClose(bad.got, bad.want, 1e-3));
  });
}

const F16_CASES: [string, Partial<PagedAttentionShape>][] = [
  ["f16 K and V, 12 heads, 4 KV heads", { nHeads: 12, nKvHeads: 4, headDim: 8 }],
  ["f16 K and V, head_dim 9 (scalar tails)", { nHeads: 14, nKvHeads: 2, headDim: 9 }],
  ["f16 K and V, head_dim 36, one KV head", { nHeads: 4, nKvHeads: 1, headDim: 36 }],
  ["f16 K, f32 V, head_dim 6", { nHeads: 8, nKvHeads: 2, headDim: 6, vType: "f32" }],
  ["f32 K, f16 V, head_dim 16, soft-cap", {
    nHeads: 6,
    nKvHeads: 2,
    headDim: 16,
    softcap: 2,
    kType: "f32",
  }],
];

for (const [what, part] of F16_CASES) {
  for (const fp16 of [false, true]) {
    Deno.test({
      name: `pagedAttentionKernel() reads an f16 cache (${
        fp16 ? "FP16 proposal" : "fallback"
      }): ${what}`,
      ignore: fp16 && !fp16SimdSupported(),
      fn() {
        const hd = part.headDim!;
        const s = shapeOf({ kType: "f16", vType: "f16", ...part });
        // The reference reads the f16 values the pools hold: only the kernel's own rounding
        // of f32 arithmetic remains.
        const a = run(s, CASE, hd, 3, false, fp16, fp16);
        assertClose(a.got, a.want, 2e-6, what);
        const bad = run(s, CASE, hd, 3, true, fp16);
        assert.throws(() => assertClose(bad.got, bad.want, 1e-3));
      },
    });
  }
}

Deno.test("attentionGroup() takes at most 4 heads that share a KV head, two units a row", () => {
  assert.deepEqual(
    [[12, 4], [32, 8], [32, 4], [16, 1], [4, 1], [2, 1], [28, 4], [8, 8]].map(([q, k]) =>
      attentionGroup(q, k)
    ),
    [3, 4, 4, 4, 2, 1, 1, 1],
  );
});
