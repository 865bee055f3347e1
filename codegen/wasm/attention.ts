/**
 * Paged causal attention in WASM SIMD (vLLM PagedAttention, Kwon et al. 2023): one row ×
 * head unit at a time reads its sequence's keys and values through the block table.
 *
 * For a unit (row t at position p of sequence s, query head h, KV head h / (Q / K)):
 *
 * 1. scores: `att[j] = scale · q · k[start + j]` for the `len` visible positions (a soft-cap
 *    `C · tanh(score / C)` where the model has one), and their max;
 * 2. `e_j = exp(att[j] - max)`, four at a time by the vector `exp_f32x4`, and `sum = Σ e_j`;
 * 3. `o[t][h] = (Σ_j e_j · v[start + j]) · (1 / sum)`.
 *
 * Positions are walked as runs of consecutive pool rows: a run ends at a block boundary, at
 * the end of the ring (sliding windows wrap) or at the last position, so the block table is
 * read once per block, not once per position. Within a run the row pointer steps by one KV
 * row (`n_kv_heads · head_dim` elements: f32, or f16 in an f16 cache, widened 4 at a time as
 * they are read). A run starts by loading one byte of every cache line of its rows (a
 * software prefetch: the misses of the whole run are then in flight together).
 *
 * Scores are computed four rows at a time (head_dim a multiple of 4): one f32x4 running sum
 * per row, each q vector loaded once for the four rows, and the four sums' lanes added by a
 * 4 × 4 transpose into one f32x4 of scores, stored and max-ed at once (the rows of a run
 * past a multiple of four, and odd head_dims, take the one-row path: four partial sums, then
 * the lanes). The weighted sum of values serves all Gs heads of the unit from each V vector
 * it loads: Gs · CW f32x4 accumulators of the outputs stay in registers over the run (CW =
 * 8 for one head, 12 / Gs otherwise), one pass per 4 · CW output floats. With relaxed SIMD
 * the multiply-adds are `f32x4.relaxed_madd`. Measured on g110M's geometry (12 × 4 × 64, one
 * row at position 1000, 12 layers, one core): 3.1 → 2.6 ms per token with an f32 cache,
 * 2.8 → 2.1 ms with an f16 one.
 *
 * Results differ from codegen/ops/attention.ts (the JS kernel: one running sum per dot
 * product, `e_j / sum` per position) by rounding only.
 *
 * @module
 */
import type { GraphNode } from "../graph.ts";
import { WasmFunc } from "../wasm_asm.ts";
import { nameNumber } from "../ops/renderer.ts";
import { type KvCacheType, kvTypeBytes } from "../../core/forward.ts";
import { f16RescaleLocals, f16Scalar, hsumF32, lanes32, loadF16x4 } from "./snippets.ts";
import { i32s, kvTypeSuffix, loadI32, poolRow } from "./step_ops.ts";

/** Attention geometry (one layer). */
export interface PagedAttentionShape {
  /** Query heads. */
  nHeads: number;
  /** KV heads (divides nHeads). */
  nKvHeads: number;
  /** head_dim. */
  headDim: number;
  /** Tokens per block. */
  blockSize: number;
  /** Columns of the block table. */
  blocksPerSeq: number;
  /** The layer's own sliding window, or null. */
  layerWindow: number | null;
  /** Score scale (`1 / sqrt(head_dim)`; Gemma: `query_pre_attn_scalar^-0.5`). */
  scale: number;
  /** Scores become `softcap · tanh(score / softcap)` (Gemma 2); absent or null = none. */
  softcap?: number | null;
  /** Element type of the K pool (absent: f32). */
  kType?: KvCacheType;
  /** Element type of the V pool (absent: f32). */
  vType?: KvCacheType;
}

/**
 * The geometry of a graph's attention node.
 *
 * @param node The node (codegen/graph.ts).
 * @returns Its {@linkcode PagedAttentionShape}.
 */
export function attentionShape({ attrs: a }: GraphNode<"attention">): PagedAttentionShape {
  return {
    nHeads: a.n_heads,
    nKvHeads: a.n_kv_heads,
    headDim: a.head_dim,
    blockSize: a.block_size,
    blocksPerSeq: a.blocks_per_seq,
    layerWindow: a.layer_window,
    scale: a.scale,
    softcap: a.softcap ?? null,
    kType: a.k_type ?? "f32",
    vType: a.v_type ?? "f32",
  };
}

/** Output f32x4 accumulators held in registers by one pass of the value sum. */
const ATTENTION_VALUE_VECTORS = 8;

/**
 * The name of {@linkcode pagedAttentionKernel}: `attention_QxKxD_bB`, then `_wL` (a layer
 * window), `_sS` (a scale other than `1 / sqrt(head_dim)`), `_capC` (a soft-cap), as
 * codegen/ops/attention.ts names the JS kernel, then the f16 cache's suffix (`_f16kv`,
 * `_kf16`, `_vf16`: step_ops.ts `kvTypeSuffix`).
 *
 * @param s The geometry.
 * @returns The name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pagedAttentionName } from "./attention.ts";
 * const s = { nHeads: 8, nKvHeads: 4, headDim: 16, blockSize: 16, blocksPerSeq: 4,
 *   layerWindow: 4096, scale: 0.25, softcap: 50 };
 * assert.equal(pagedAttentionName(s), "attention_8x4x16_b16_w4096_cap50");
 * ```
 */
export function pagedAttentionName(s: PagedAttentionShape): string {
  return `attention_${s.nHeads}x${s.nKvHeads}x${s.headDim}_b${s.blockSize}` +
    (s.layerWindow === null ? "" : `_w${s.layerWindow}`) +
    (s.scale === 1 / Math.sqrt(s.headDim) ? "" : `_s${nameNumber(s.scale)}`) +
    (s.softcap == null ? "" : `_cap${nameNumber(s.softcap)}`) + kvTypeSuffix(s.kType, s.vType);
}

/** The most query heads one unit of {@linkcode pagedAttentionKernel} handles. */
const ATTENTION_GROUP_MAX = 4;

/**
 * Query heads per attention unit: the largest divisor of `n_heads / n_kv_heads` (the heads that
 * share a KV head) that is at most {@linkcode ATTENTION_GROUP_MAX} and leaves at least two
 * units per row (so two threads share even one row's decode).
 *
 * @param nHeads Query heads.
 * @param nKvHeads KV heads (divides nHeads).
 * @returns Heads per unit (1 .. 4).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionGroup } from "./attention.ts";
 * assert.equal(attentionGroup(12, 4), 3); // g110M: 3 query heads per KV head
 * assert.equal(attentionGroup(4, 1), 2); // one KV head: two units per row
 * assert.equal(attentionGroup(14, 2), 1); // 7 heads per KV head: no divisor in 2 .. 4
 * ```
 */
export function attentionGroup(nHeads: number, nKvHeads: number): number {
  const G = nHeads / nKvHeads;
  for (let g = Math.min(ATTENTION_GROUP_MAX, G); g > 1; g--) {
    if (G % g === 0 && nHeads / g >= 2) return g;
  }
  return 1;
}

/**
 * Bytes of one thread's attention scratch: {@linkcode attentionGroup} rows of scores over the
 * longest ring, each with 4 floats of slack for the vector exp.
 *
 * @param s The geometry.
 * @returns `Gs · (blocksPerSeq · blockSize + 4) · 4`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { attentionScratchBytes } from "./attention.ts";
 * const s = { nHeads: 12, nKvHeads: 4, headDim: 64, blockSize: 16, blocksPerSeq: 8,
 *   layerWindow: null, scale: 0.125 };
 * assert.equal(attentionScratchBytes(s), 3 * (128 + 4) * 4);
 * ```
 */
export function attentionScratchBytes(s: PagedAttentionShape): number {
  return attentionGroup(s.nHeads, s.nKvHeads) * scoreRowBytes(s);
}

/** Bytes of one head's score row in the scratch. */
const scoreRowBytes = (s: PagedAttentionShape) => (s.blocksPerSeq * s.blockSize + 4) * 4;

/**
 * Walks the unit's visible positions as runs of consecutive pool rows (module doc): for each
 * run, `pk0` is the byte address of its first row in `pool` plus the KV head's offset `kvh`,
 * `j` the index of its first position, `n` its length; `run()` emits the work of the run.
 */
function walkRuns(
  f: WasmFunc,
  label: string,
  pool: string,
  kvh: string,
  B: number,
  rowBytes: number,
  headBytes: number,
  run: () => void,
): void {
  f.get("start").get("R").op("i32.rem_u").set("slot");
  f.i32(0).set("j");
  f.loop(`${label}_runs`);
  f.comment(
    `a run: slots slot .. slot + n - 1 of one block, n = min(${B} - slot % ${B}, R - slot, ` +
      `len - j)`,
  );
  f.i32(B).get("slot").i32(B - 1).op("i32.and").op("i32.sub").set("n");
  f.get("R").get("slot").op("i32.sub").tee("m");
  f.get("n").get("m").get("n").op("i32.lt_u").op("select").set("n");
  f.get("len").get("j").op("i32.sub").tee("m");
  f.get("n").get("m").get("n").op("i32.lt_u").op("select").set("n");
  f.comment(`pk0 = ${pool} + (table[s][slot / ${B}] · ${B} + slot % ${B}) · ${rowBytes} + ${kvh}`);
  f.get(pool);
  poolRow(f, "bt", "slot", B);
  f.i32(rowBytes).op("i32.mul").op("i32.add").get(kvh).op("i32.add").set("pk0");
  touchRun(f, label, rowBytes, headBytes);
  run();
  f.get("slot").get("n").op("i32.add").tee("slot").get("R").op("i32.eq");
  f.if().i32(0).set("slot").end();
  f.get("j").get("n").op("i32.add").tee("j").get("len").op("i32.lt_u").brIf(`${label}_runs`);
  f.end();
}

/**
 * Loads one byte of every 64-byte line of the run's n rows (the KV head's `headBytes` of each),
 * folded into the local `touch`: the run's cache misses are then all in flight at once instead
 * of one row's at a time (the hardware prefetchers of the machine this was measured on do not
 * fetch ahead of strided rows).
 */
function touchRun(f: WasmFunc, label: string, rowBytes: number, headBytes: number): void {
  const offsets: number[] = [];
  for (let b = 0; b < headBytes; b += 64) offsets.push(b);
  if (headBytes % 64) offsets.push(headBytes - 1);
  f.comment(`touch the run's rows: bytes ${offsets.join(", ")} of each`);
  f.get("pk0").set("pk").get("pk0").get("n").i32(rowBytes).op("i32.mul").op("i32.add").set("pend");
  f.loop(`${label}_touch`);
  f.get("touch");
  for (const [i, o] of offsets.entries()) {
    f.get("pk").mem("i32.load8_u", o);
    if (i) f.op("i32.add");
  }
  f.op("i32.xor").set("touch");
  f.get("pk").i32(rowBytes).op("i32.add").tee("pk").get("pend").op("i32.lt_u").brIf(
    `${label}_touch`,
  );
  f.end();
}

/** `pk = pk0`; `pa` = `att_g[j]` (score row at scratch offset `att`), `pend` = `pa + 4 · n`. */
function startRows(f: WasmFunc, att: number): void {
  f.get("pk0").set("pk");
  f.get("att").get("j").i32(2).op("i32.shl").op("i32.add");
  if (att) f.i32(att).op("i32.add");
  f.tee("pa").get("n").i32(2).op("i32.shl").op("i32.add").set("pend");
}

/**
 * Loops over the rows of the current run for head g's scores: `pk` from `pk0` by one KV row,
 * `pa` over `att_g[j .. j + n - 1]`; `body()` emits one row.
 */
function runRows(f: WasmFunc, label: string, att: number, rowBytes: number, body: () => void) {
  startRows(f, att);
  f.loop(label);
  body();
  f.get("pk").i32(rowBytes).op("i32.add").set("pk");
  f.get("pa").i32(4).op("i32.add").tee("pa").get("pend").op("i32.lt_u").brIf(label);
  f.end();
}

/**
 * Loops over the rows of the current run for head g's scores four at a time, then one at a
 * time: `pk` from `pk0`, `pa` over `att_g[j .. j + n - 1]`; `body4()` emits rows pk .. pk + 3
 * rows (scores pa .. pa + 3), `body1()` one row.
 */
function runRows4(
  f: WasmFunc,
  label: string,
  att: number,
  rowBytes: number,
  body4: () => void,
  body1: () => void,
) {
  startRows(f, att);
  f.block(`${label}_4_done`).loop(`${label}_4`);
  f.get("pend").get("pa").op("i32.sub").i32(16).op("i32.lt_s").brIf(`${label}_4_done`);
  body4();
  f.get("pk").i32(4 * rowBytes).op("i32.add").set("pk");
  f.get("pa").i32(16).op("i32.add").set("pa");
  f.br(`${label}_4`).end().end();
  f.block(`${label}_1_done`).loop(`${label}_1`);
  f.get("pa").get("pend").op("i32.ge_u").brIf(`${label}_1_done`);
  body1();
  f.get("pk").i32(rowBytes).op("i32.add").set("pk");
  f.get("pa").i32(4).op("i32.add").set("pa");
  f.br(`${label}_1`).end().end();
}

/**
 * Pushes the f32x4 of k (or v) elements 4i .. 4i + 3 at `pk + off`: an f32 load, or (f16
 * pool) 4 halves widened (snippets.ts `loadF16x4`).
 */
function loadKv4(f: WasmFunc, type: KvCacheType, i: number, fp16: boolean, off = 0): void {
  if (type === "f16") loadF16x4(f, "pk", off + 8 * i, fp16);
  else f.get("pk").mem("v128.load", off + 16 * i);
}

/**
 * Pushes the f32x4 `[q_g · k_r for r = 0..3]` of the four consecutive rows at `pk` (hd a
 * multiple of 4): per row one f32x4 running sum over the head (`f32x4.relaxed_madd` when
 * `relaxed`), each q vector loaded once for the four rows; then the four sums' lanes added
 * by a 4 × 4 transpose (`(l0 + l2) + (l1 + l3)` per row). Uses the v128 locals s0..s3, `qv`.
 */
function dotQK4(
  f: WasmFunc,
  hd: number,
  qo: number,
  type: KvCacheType,
  fp16: boolean,
  relaxed: boolean,
  rowBytes: number,
): void {
  for (let i = 0; i < hd / 4; i++) {
    f.get("qh").mem("v128.load", qo + 16 * i).set("qv");
    for (let r = 0; r < 4; r++) {
      const acc = `s${r}`;
      if (i === 0) {
        f.get("qv");
        loadKv4(f, type, i, fp16, r * rowBytes);
        f.op("f32x4.mul").set(acc);
      } else if (relaxed) {
        f.get("qv");
        loadKv4(f, type, i, fp16, r * rowBytes);
        f.get(acc).op("f32x4.relaxed_madd").set(acc);
      } else {
        f.get(acc).get("qv");
        loadKv4(f, type, i, fp16, r * rowBytes);
        f.op("f32x4.mul").op("f32x4.add").set(acc);
      }
    }
  }
  f.comment("[Σ s0, Σ s1, Σ s2, Σ s3]: lanes (0 + 2, 1 + 3) of each pair, then across");
  f.get("s0").get("s1").shuffle(lanes32([0, 1, 4, 5]));
  f.get("s0").get("s1").shuffle(lanes32([2, 3, 6, 7])).op("f32x4.add").set("s0");
  f.get("s2").get("s3").shuffle(lanes32([0, 1, 4, 5]));
  f.get("s2").get("s3").shuffle(lanes32([2, 3, 6, 7])).op("f32x4.add").set("s2");
  f.get("s0").get("s2").shuffle(lanes32([0, 2, 4, 6]));
  f.get("s0").get("s2").shuffle(lanes32([1, 3, 5, 7])).op("f32x4.add");
}

/** Pushes the f32 of k (or v) element i at `pk` (an f16 pool's widened exactly). */
function loadKv1(f: WasmFunc, type: KvCacheType, i: number): void {
  if (type === "f16") f16Scalar(f, "pk", 2 * i, 0);
  else f.get("pk").mem("f32.load", 4 * i);
}

/**
 * Pushes `q_g · k` over `hd` floats at `qh + qo` and `pk` (k of `type`): four f32x4 partial
 * sums (vector i into sum i % 4), added pairwise, then the lanes, then the scalar tail of
 * hd % 4.
 */
function dotQK(f: WasmFunc, hd: number, qo: number, type: KvCacheType, fp16: boolean): void {
  const V = Math.floor(hd / 4);
  const sums = Math.min(4, V);
  for (let i = 0; i < V; i++) {
    const s = `s${i % 4}`;
    if (i >= sums) f.get(s);
    f.get("qh").mem("v128.load", qo + 16 * i);
    loadKv4(f, type, i, fp16);
    f.op("f32x4.mul");
    if (i >= sums) f.op("f32x4.add");
    f.set(s);
  }
  if (sums === 0) f.f32(0);
  else {
    if (sums === 4) {
      f.get("s0").get("s1").op("f32x4.add").get("s2").get("s3").op("f32x4.add").op("f32x4.add");
      f.set("s0");
    } else for (let i = 1; i < sums; i++) f.get("s0").get(`s${i}`).op("f32x4.add").set("s0");
    hsumF32(f, "s0");
  }
  for (let i = 4 * V; i < hd; i++) {
    f.get("qh").mem("f32.load", qo + 4 * i);
    loadKv1(f, type, i);
    f.op("f32.mul").op("f32.add");
  }
}

/**
 * `attention_QxKxD_bB[_wL][_sS][_capC](q, kp, vp, pos, seq, table, ring, window, o, att, u0,
 * u1)`: paged causal attention for the units u0 .. u1 - 1. A unit is row `t = u / U` and the
 * Gs = {@linkcode attentionGroup} query heads `h0 = (u % U) · Gs .. h0 + Gs - 1` (U = Q / Gs),
 * which read one KV head, `h0 / (Q / K)`: each run of KV rows (module doc) serves all Gs heads
 * while it is in cache. Row t (sequence s, position p) reads positions
 * `max(0, p - W + 1) .. p`, `W = min(window[s], L)`, position u at ring slot `u % ring[s]`,
 * pool row `table[s][slot / B] · B + slot % B`. A score is `q · k · scale`, or with a
 * soft-cap C `C · tanh(q · k · (scale / C))` (Gemma 2; tanh by the vector exp,
 * `1 - 2 / (e^(2u) + 1)`). q (n, Q · D) and o (n, Q · D) f32 rows; kp, vp (blocks · B, K · D)
 * f32, or f16 (`s.kType`/`s.vType`; widened exactly when read); pos, seq (n) and ring,
 * window (seqs) int32; table (seqs, MB) int32. `att` is one thread's scratch of
 * {@linkcode attentionScratchBytes}.
 *
 * @param s The geometry (B a power of two).
 * @param fp16 Widen f16 K/V with the FP16 proposal's `f32x4.promote_low_f16x8` (default
 *   false: the shift-and-rescale of snippets.ts).
 * @param relaxed Multiply-add with `f32x4.relaxed_madd` (default false: a multiply and an add).
 * @returns The function (it calls `exp_f32x4`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { pagedAttentionKernel } from "./attention.ts";
 * const f = pagedAttentionKernel({ nHeads: 12, nKvHeads: 4, headDim: 64, blockSize: 16,
 *   blocksPerSeq: 8, layerWindow: null, scale: 0.125 });
 * assert.equal(f.name, "attention_12x4x64_b16");
 * ```
 */
export function pagedAttentionKernel(
  s: PagedAttentionShape,
  fp16 = false,
  relaxed = false,
): WasmFunc {
  const { nHeads: Q, nKvHeads: K, headDim: hd, blockSize: B, blocksPerSeq: MB } = s;
  const G = Q / K, qDim = Q * hd, kvDim = K * hd, LW = s.layerWindow;
  const kType = s.kType ?? "f32", vType = s.vType ?? "f32";
  const kb = kvTypeBytes(kType), vb = kvTypeBytes(vType);
  const Gs = attentionGroup(Q, K), U = Q / Gs, S = scoreRowBytes(s);
  const V = Math.floor(hd / 4);
  const cap = s.softcap ?? null;
  const f = new WasmFunc(
    pagedAttentionName(s),
    [
      ["q", "i32"],
      ["kp", "i32"],
      ["vp", "i32"],
      ["pos", "i32"],
      ["seq", "i32"],
      ["table", "i32"],
      ["ring", "i32"],
      ["window", "i32"],
      ["o", "i32"],
      ["att", "i32"],
      ["u0", "i32"],
      ["u1", "i32"],
    ],
    [],
    { export: false },
  );
  // the KV head's byte offset in a K row and in a V row (one local when they are the same)
  const kvhK = kb === vb ? "kvh" : "kvhk", kvhV = kb === vb ? "kvh" : "kvhv";
  i32s(f, "u", "t", "h0", "p", "sq", "R", "w", "start", "len", "bt", "qh", kvhK, "oh");
  if (kvhV !== kvhK) i32s(f, kvhV);
  i32s(f, "slot", "j", "n", "m", "pk0", "pk", "pa", "pend", "touch");
  f.local("score", "f32");
  for (let g = 0; g < Gs; g++) f.local(`max${g}`, "f32").local(`inv${g}`, "f32");
  for (const l of ["s0", "s1", "s2", "s3", "vacc", "va", "qv"]) f.local(l, "v128");
  for (let g = 0; g < Gs; g++) f.local(`vmax${g}`, "v128");
  // value sum: CW output vectors of each of the Gs heads in registers per pass
  const CW = Math.min(V, Gs === 1 ? ATTENTION_VALUE_VECTORS : Math.floor(12 / Gs));
  for (let g = 0; g < Gs; g++) {
    f.local(`e${g}`, "v128");
    for (let i = 0; i < CW; i++) f.local(`o${g}_${i}`, "v128");
  }
  for (let i = 4 * V; i < hd; i++) f.local(`os${i}`, "f32");
  if (!fp16 && (kType === "f16" || vType === "f16")) f16RescaleLocals(f);
  f.comment(
    `o (n, ${qDim}) = softmax(` + (cap === null ? "" : `${cap} · tanh(`) +
      `q · kᵀ · ${s.scale}` + (cap === null ? "" : ` / ${cap})`) +
      `) · v per head; heads h0 .. h0 + ${Gs - 1} read KV head h0 / ${G}`,
  );
  f.comment(
    `row t (sequence s = seq[t], position p = pos[t]) sees positions max(0, p - W + 1) .. p, ` +
      (LW === null ? "W = window[s]" : `W = min(window[s], ${LW})`) +
      `; position u at ring slot u % ring[s], pool row table[s][slot / ${B}] · ${B} + ` +
      `slot % ${B} of kp/vp (blocks · ${B}, ${kvDim})` +
      (kType === "f32" && vType === "f32" ? "" : ` (K ${kType}, V ${vType})`) +
      `; table (seqs, ${MB}); head g's scores at att + ${S} · g`,
  );
  f.get("u0").set("u");
  f.block("units_done").loop("units");
  f.get("u").get("u1").op("i32.ge_s").brIf("units_done");
  f.comment(`unit u: row t = u / ${U}, heads h0 = (u - t · ${U}) · ${Gs} .. h0 + ${Gs - 1}`);
  f.get("u").i32(U).op("i32.div_u").set("t");
  f.get("u").get("t").i32(U).op("i32.mul").op("i32.sub").i32(Gs).op("i32.mul").set("h0");
  loadI32(f, "pos", "t");
  f.set("p");
  loadI32(f, "seq", "t");
  f.set("sq");
  loadI32(f, "ring", "sq");
  f.set("R");
  loadI32(f, "window", "sq");
  f.set("w");
  if (LW !== null) {
    f.get("w").i32(LW).get("w").i32(LW).op("i32.lt_s").op("select").set("w");
  }
  f.comment("start = p >= w ? p - w + 1 : 0; len = p - start + 1");
  f.get("p").get("w").op("i32.sub").i32(1).op("i32.add").i32(0);
  f.get("p").get("w").op("i32.ge_s").op("select").set("start");
  f.get("p").get("start").op("i32.sub").i32(1).op("i32.add").set("len");
  f.get("table").get("sq").i32(MB * 4).op("i32.mul").op("i32.add").set("bt");
  f.get("t").i32(qDim * 4).op("i32.mul").get("h0").i32(hd * 4).op("i32.mul").op("i32.add");
  f.tee("oh").get("q").op("i32.add").set("qh");
  f.get("oh").get("o").op("i32.add").set("oh");
  f.get("h0").i32(G).op("i32.div_u").i32(hd * kb).op("i32.mul").set(kvhK);
  if (kvhV !== kvhK) f.get("h0").i32(G).op("i32.div_u").i32(hd * vb).op("i32.mul").set(kvhV);

  f.comment(
    (cap === null
      ? "scores: att_g[j] = q_g · k[start + j] · scale"
      : `scores: att_g[j] = ${cap} · tanh(q_g · k[start + j] · ${s.scale / cap})`) +
      ", and their max, each run of keys for every head g",
  );
  for (let g = 0; g < Gs; g++) f.f32(-Infinity).set(`max${g}`);
  for (let g = 0; g < Gs; g++) f.f32x4(-Infinity).set(`vmax${g}`);
  const kRow = kvDim * kb;
  /** score (f32 on the stack) → soft-capped when the model has one; scalar or f32x4. */
  const capScores = (vec: boolean) => {
    const c = (x: number) => (vec ? f.f32x4(x) : f.f32(x));
    const op = (o: string) => f.op(vec ? `f32x4.${o}` : `f32.${o}`);
    if (cap === null) {
      c(s.scale);
      op("mul");
      return;
    }
    c(s.scale / cap);
    op("mul");
    f.set(vec ? "va" : "score");
    f.comment(`score = ${cap} · (1 - 2 / (exp(2 · score) + 1))`);
    c(cap), c(1), c(2);
    if (vec) f.get("va").get("va").op("f32x4.add").call("exp_f32x4");
    else {f.get("score").get("score").op("f32.add").op("f32x4.splat").call("exp_f32x4").extractLane(
        0,
      );}
    c(1), op("add"), op("div"), op("sub"), op("mul");
  };
  walkRuns(f, "scores", "kp", kvhK, B, kRow, hd * kb, () => {
    for (let g = 0; g < Gs; g++) {
      f.comment(`head ${g}: q at qh + ${g * hd * 4}, scores at att + ${g * S} + 4 · j`);
      const one = () => {
        dotQK(f, hd, g * hd * 4, kType, fp16);
        capScores(false);
        f.set("score");
        f.get("pa").get("score").mem("f32.store");
        f.get(`max${g}`).get("score").op("f32.max").set(`max${g}`);
      };
      if (hd % 4) {
        runRows(f, `scores${g}`, g * S, kRow, one);
        continue;
      }
      runRows4(f, `scores${g}`, g * S, kRow, () => {
        f.comment("four rows at once: their scores in one f32x4");
        dotQK4(f, hd, g * hd * 4, kType, fp16, relaxed, kRow);
        capScores(true);
        f.set("va");
        f.get("pa").get("va").mem("v128.store");
        f.get(`vmax${g}`).get("va").op("f32x4.max").set(`vmax${g}`);
      }, one);
    }
  });
  for (let g = 0; g < Gs; g++) {
    f.get(`max${g}`).get(`vmax${g}`).extractLane(0).get(`vmax${g}`).extractLane(1).op("f32.max");
    f.get(`vmax${g}`).extractLane(2).get(`vmax${g}`).extractLane(3).op("f32.max").op("f32.max");
    f.op("f32.max").set(`max${g}`);
  }

  for (let g = 0; g < Gs; g++) {
    f.comment(`head ${g}: e = exp(score - max), 4 at a time (4 floats of slack); inv = 1 / Σ e`);
    f.zeroV128().set("vacc");
    f.get("att").i32(g * S).op("i32.add").tee("pa").get("len").i32(2).op("i32.shl");
    f.op("i32.add").set("pend");
    f.loop(`exps${g}`);
    f.get("pa").get("pa").mem("v128.load").get(`max${g}`).op("f32x4.splat").op("f32x4.sub");
    f.call("exp_f32x4").tee("va").mem("v128.store");
    f.comment("lanes past len do not count");
    f.get("vacc").get("va").get("pend").get("pa").op("i32.sub").i32(2).op("i32.shr_s");
    f.op("i32x4.splat").i32x4(0, 1, 2, 3).op("i32x4.gt_s").op("v128.and").op("f32x4.add");
    f.set("vacc");
    f.get("pa").i32(16).op("i32.add").tee("pa").get("pend").op("i32.lt_u").brIf(`exps${g}`);
    f.end();
    f.f32(1);
    hsumF32(f, "vacc");
    f.op("f32.div").set(`inv${g}`);
  }

  f.comment(`o[t][h0 .. h0 + ${Gs - 1}] = 0, then += e_j · v[start + j] run by run`);
  for (let g = 0; g < Gs; g++) {
    for (let i = 0; i < V; i++) f.get("oh").zeroV128().mem("v128.store", g * hd * 4 + 16 * i);
    for (let i = 4 * V; i < hd; i++) f.get("oh").f32(0).mem("f32.store", g * hd * 4 + 4 * i);
  }
  walkRuns(f, "values", "vp", kvhV, B, kvDim * vb, hd * vb, () => {
    for (let c0 = 0; c0 < V; c0 += CW) {
      const c1 = Math.min(V, c0 + CW);
      f.comment(
        `o[${4 * c0} .. ${4 * c1 - 1}] of heads 0 .. ${Gs - 1}: ${Gs * (c1 - c0)} f32x4 ` +
          `accumulators, each v vector loaded once for the ${Gs} head(s)`,
      );
      for (let g = 0; g < Gs; g++) {
        for (let i = c0; i < c1; i++) {
          f.get("oh").mem("v128.load", g * hd * 4 + 16 * i).set(`o${g}_${i - c0}`);
        }
      }
      runRows(f, `values_${c0}`, 0, kvDim * vb, () => {
        for (let g = 0; g < Gs; g++) f.get("pa").mem("v128.load32_splat", g * S).set(`e${g}`);
        for (let i = c0; i < c1; i++) {
          loadKv4(f, vType, i, fp16);
          f.set("va");
          for (let g = 0; g < Gs; g++) {
            const acc = `o${g}_${i - c0}`;
            if (relaxed) f.get("va").get(`e${g}`).get(acc).op("f32x4.relaxed_madd").set(acc);
            else f.get(acc).get("va").get(`e${g}`).op("f32x4.mul").op("f32x4.add").set(acc);
          }
        }
      });
      for (let g = 0; g < Gs; g++) {
        for (let i = c0; i < c1; i++) {
          f.get("oh").get(`o${g}_${i - c0}`).mem("v128.store", g * hd * 4 + 16 * i);
        }
      }
    }
    for (let g = 0; g < Gs; g++) {
      const og = g * hd * 4;
      if (hd % 4) {
        f.comment(`head ${g}, o[${4 * V} .. ${hd - 1}]: one f32 each`);
        for (let i = 4 * V; i < hd; i++) f.get("oh").mem("f32.load", og + 4 * i).set(`os${i}`);
        runRows(f, `values${g}_tail`, g * S, kvDim * vb, () => {
          for (let i = 4 * V; i < hd; i++) {
            f.get(`os${i}`);
            loadKv1(f, vType, i);
            f.get("pa").mem("f32.load").op("f32.mul").op("f32.add").set(`os${i}`);
          }
        });
        for (let i = 4 * V; i < hd; i++) f.get("oh").get(`os${i}`).mem("f32.store", og + 4 * i);
      }
    }
  });
  f.comment("o ·= 1 / Σ e, per head");
  for (let g = 0; g < Gs; g++) {
    for (let i = 0; i < V; i++) {
      const at = g * hd * 4 + 16 * i;
      f.get("oh").get("oh").mem("v128.load", at).get(`inv${g}`).op("f32x4.splat");
      f.op("f32x4.mul").mem("v128.store", at);
    }
    for (let i = 4 * V; i < hd; i++) {
      const at = g * hd * 4 + 4 * i;
      f.get("oh").get("oh").mem("f32.load", at).get(`inv${g}`).op("f32.mul").mem("f32.store", at);
    }
  }
  f.get("u").i32(1).op("i32.add").set("u").br("units");
  f.end().end();
  f.comment("keep the touch loads live: an empty range (u1 < u0) would store their fold");
  f.get("u1").get("u0").op("i32.lt_s").if().get("o").get("touch").mem("i32.store").end();
  return f;
}
