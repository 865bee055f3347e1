/**
 * The matrix-product driver: one generated function per (weight type, shape, kind), the
 * register blocking of every type, the row range that lets threads split the rows.
 *
 * - `matvec_<type>_MxK(w, x, y, r0, r1)`: decode, y (M) = W (M, K) · x (K) for rows
 *   r0 .. r1 - 1 (R rows per register block);
 * - `matmul_<type>_MxK(w, x, y, r0, r1, n)`: prefill / batches, y (n, M) = x (n, K) · Wᵀ,
 *   R weight rows × C tokens per register block, weight row blocks outside and tokens
 *   inside, so a block of R weight rows is read from memory once per call and every
 *   weight block is decoded once per C tokens.
 *
 * Software prefetch: WASM has no prefetch instruction, and the kernels' many instructions
 * per weight byte keep few cache misses in flight, so weights streamed from DRAM came at
 * 1.5-3 GB/s while a bare read got 10-25 GB/s. Each register block of rows first loads one
 * word per 64-byte line of the weights up to {@linkcode TOUCH_AHEAD} bytes past its rows
 * (a touch pointer that runs ahead of the rows computed, folded into a local so the loads
 * are not dead code): those misses overlap each other and the block's arithmetic, and the
 * rows arrive from cache (bench/kernels.ts; touching whole 8 KiB chunks before computing
 * them reached 10 GB/s on Q4_K, running 2 KiB ahead 14 GB/s).
 *
 * `x` is f32 rows (F32/F16/BF16 weights) or quantised activation rows (`blocks.ts`
 * `actLayout`, written by `quantize.ts`); W is in ggml's block layout (row r at
 * `w + r · rowBytes`), or with `_iI` its rows are interleaved in groups of I (`interleave.ts`:
 * block j of row r at `w + (r & ~(I-1)) · rowBytes + (j · I + (r & (I-1))) · unit`; a matvec's
 * register block is then one stream, read without touches); y is f32. Suffixes: `_bias` adds a
 * bias (M) (param `bias` after `w`), `_acc` adds into y (a residual). Each (row, token) result is a sum of per-block
 * f32 terms in lane order, so it does not depend on r0/r1: any split of the rows between
 * threads gives identical results.
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { actLayout, checkPacked, rowBytes, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import type { BlockCtx, BlockEmitter } from "./block_code.ts";
import { hsumF32, keepTouchLive, touchLines } from "./snippets.ts";
import { Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 } from "./types_q32.ts";
import { Q2_K, Q3_K, Q4_K, Q4_K_PAIRS, Q5_K, Q5_K_PAIRS, Q6_K, Q6_K_PACKED } from "./types_k.ts";
import { BF16, F16, F32 } from "./types_float.ts";
import { pairUnit } from "./q4k_pairs.ts";
import {
  emitPanelMatmul,
  PANEL_MIN_TOKENS,
  PANEL_ROWS,
  type PanelKind,
  type PanelSpec,
} from "./linear_panel.ts";
import { Q4_PANEL_MIN_TOKENS, Q8_PANEL_MIN_TOKENS, q8PanelKind } from "./linear_panel_q8.ts";
import { Q4K_PANEL_MIN_TOKENS, q4kPanelKind } from "./linear_panel_q4k.ts";
import { q6kPanelKind } from "./linear_panel_q6k.ts";

/** How far (bytes) the touch pointer runs ahead of the rows being computed. */
export const TOUCH_AHEAD = 2048;

/** The block code of every supported type. */
export const EMITTERS: Record<WeightTypeName, BlockEmitter> = {
  F32,
  F16,
  BF16,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q2_K,
  Q3_K,
  Q4_K,
  Q5_K,
  Q6_K,
};

/** The block code of the layouts repacked at load (`blocks.ts` `hasPackedLayout`). */
const PACKED_EMITTERS: Partial<Record<WeightTypeName, BlockEmitter>> = {
  Q4_K: Q4_K_PAIRS,
  Q5_K: Q5_K_PAIRS,
  Q6_K: Q6_K_PACKED,
};

/** One matrix-product kernel to generate. */
export interface LinearSpec {
  /** Weight type. */
  type: WeightTypeName;
  /** Output features (rows of W). */
  M: number;
  /** Input features (columns of W; a multiple of the type's block size). */
  K: number;
  /** `matvec` (one token) or `matmul` (n tokens). */
  kind: "matvec" | "matmul";
  /** Add a bias (M) (default false). */
  bias?: boolean;
  /** Add into y instead of storing (default false). */
  accumulate?: boolean;
  /** Use relaxed SIMD (default false; see `relaxedSimdSupported`). */
  relaxed?: boolean;
  /**
   * F16 weights: convert with the FP16 proposal's `f32x4.promote_low_f16x8` (default false;
   * see `fp16SimdSupported`).
   */
  fp16?: boolean;
  /**
   * With `relaxed`: the runtime's relaxed dot product takes its i7 operand as u8, exactly
   * (default false; see `relaxedDotU8`).
   */
  dotU8?: boolean;
  /**
   * Weight rows per register block (default per type and kind; matvecs: `MATVEC_BLOCKS`, or
   * `interleave` when it is > 1). With `interleave` > 1 it must divide it.
   */
  rows?: number;
  /**
   * W is row-interleaved in groups of this many rows (`interleave.ts`; default 1: row-major
   * as stored); {@linkcode interleaveRows} gives the layout's choice. Needs K a multiple of
   * the type's block and M of it; r0 and r1 must be multiples of it (or M). Names get `_iI`.
   */
  interleave?: number;
  /**
   * W's super-blocks are repacked at load (names get `_p`): Q6_K's quants (`q6k_pack.ts`), or
   * the scales of Q4_K or Q5_K rows interleaved in pairs (`q4k_pairs.ts`; `interleave` 2, an
   * even number of rows per register block, r0 and r1 even).
   */
  packed?: boolean;
  /** Tokens per register block of a matmul (default per type). */
  tokens?: number;
  /** The memory W is in (multi-memory; default 0; kernel names get `_m1`, ...). */
  memory?: number;
  /**
   * Touch distance in bytes (default {@linkcode TOUCH_AHEAD}, or per type and row length for
   * matvecs; 0: no software prefetch).
   */
  touchAhead?: number;
  /**
   * F32/F16/BF16 matmul: convert 8 weight rows at a time to f32 once, transposed into a
   * panel (param `panel` after `n`: `linear_panel.ts` `panelScratchBytes` of this thread's scratch),
   * and run an 8-row × 6-token outer-product micro-kernel over all n tokens from it
   * (`linear_panel.ts`); Q8_0 with `relaxed` and `dotU8`, Q4_0/Q4_1/Q5_0/Q5_1 with `relaxed`:
   * repack 8 rows in groups of 4 quants and run an 8-row × 3-token micro-kernel
   * (`linear_panel_q8.ts`); Q2_K..Q6_K with `relaxed`: unpack 8 rows' quants and scales
   * (`linear_panel_q4k.ts`, `linear_panel_q6k.ts`). Default false; see
   * {@linkcode panelSupported}. The results agree with the in-register kernels to rounding,
   * not bit for bit.
   */
  panel?: boolean;
}

/** What a weight type's panel needs from the runtime, and its kind. */
interface PanelEntry {
  /** `relaxed`: relaxed SIMD; `dotU8`: relaxed SIMD whose dot product reads u8 (VNNI). */
  needs: "none" | "relaxed" | "dotU8";
  /** The fewest rows a step sends through the panel (measured crossovers; see each file). */
  minTokens: number;
  /**
   * The panel and micro-kernel (default: the float types' of `linear_panel.ts`); `packed`:
   * the weights' layout of `LinearSpec.packed`.
   */
  kind?: (K: number, fp16: boolean, packed: boolean) => PanelKind;
}

/** A panel that needs relaxed SIMD, from `minTokens` rows. */
const relaxedPanel = (minTokens: number, kind: PanelEntry["kind"]): PanelEntry => ({
  needs: "relaxed",
  minTokens,
  kind,
});

/** The weight types that have a panel (`linear_panel*.ts`). */
const PANELS: Partial<Record<WeightTypeName, PanelEntry>> = {
  F32: { needs: "none", minTokens: PANEL_MIN_TOKENS },
  F16: { needs: "none", minTokens: PANEL_MIN_TOKENS },
  BF16: { needs: "none", minTokens: PANEL_MIN_TOKENS },
  Q8_0: { needs: "dotU8", minTokens: Q8_PANEL_MIN_TOKENS, kind: (K, h) => q8PanelKind(K, h) },
  Q4_0: relaxedPanel(Q4_PANEL_MIN_TOKENS, (K, h) => q8PanelKind(K, h, "Q4_0")),
  Q4_1: relaxedPanel(Q4_PANEL_MIN_TOKENS, (K, h) => q8PanelKind(K, h, "Q4_1")),
  Q5_0: relaxedPanel(Q4_PANEL_MIN_TOKENS, (K, h) => q8PanelKind(K, h, "Q5_0")),
  Q5_1: relaxedPanel(Q4_PANEL_MIN_TOKENS, (K, h) => q8PanelKind(K, h, "Q5_1")),
  Q2_K: relaxedPanel(Q4K_PANEL_MIN_TOKENS, (K, h) => q6kPanelKind(K, h, "Q2_K")),
  Q3_K: relaxedPanel(Q4K_PANEL_MIN_TOKENS, (K, h) => q6kPanelKind(K, h, "Q3_K")),
  Q4_K: relaxedPanel(Q4K_PANEL_MIN_TOKENS, (K, h, packed) => q4kPanelKind(K, h, false, packed)),
  Q5_K: relaxedPanel(Q4K_PANEL_MIN_TOKENS, (K, h, packed) => q4kPanelKind(K, h, true, packed)),
  Q6_K: relaxedPanel(Q4K_PANEL_MIN_TOKENS, (K, h, packed) => q6kPanelKind(K, h, "Q6_K", packed)),
};

/**
 * Whether a spec may take `panel`: a matmul of F32/F16/BF16 weights, of Q8_0 weights with
 * `relaxed` and `dotU8` (`linear_panel_q8.ts`), or of the other block types with
 * `relaxed` (`linear_panel_q8.ts`, `linear_panel_q4k.ts`, `linear_panel_q6k.ts`).
 *
 * @param s The spec.
 * @returns Whether `emitLinear({ ...s, panel: true })` emits a panel kernel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { panelSupported } from "./linear.ts";
 * assert.ok(panelSupported({ type: "F16", M: 8, K: 64, kind: "matmul" }));
 * assert.ok(!panelSupported({ type: "Q8_0", M: 8, K: 64, kind: "matmul" }));
 * ```
 */
export function panelSupported(s: LinearSpec): boolean {
  const p = PANELS[s.type];
  if (s.kind !== "matmul" || p === undefined) return false;
  if (p.needs === "none") return true;
  return (s.relaxed ?? false) && (p.needs === "relaxed" || (s.dotU8 ?? false));
}

/**
 * The fewest rows (tokens) of a step worth the type's panel: below it the step calls the
 * in-register kernel (`renderers.ts`), whose decoding per register block then costs less
 * than filling the panel.
 *
 * @param type A weight type.
 * @returns The threshold, or Infinity for a type without a panel.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { panelMinTokens } from "./linear.ts";
 * assert.equal(panelMinTokens("F16"), 6);
 * assert.equal(panelMinTokens("Q5_1"), 2);
 * ```
 */
export function panelMinTokens(type: WeightTypeName): number {
  return PANELS[type]?.minTokens ?? Infinity;
}

/**
 * Default register blocking: [matvec rows, matmul rows, matmul tokens] (the fastest of
 * R ∈ {1, 2, 4, 8} rows and C ∈ {2, 4, 8} tokens on the g110M shapes, one thread; more
 * than about 16 live v128 locals spill, since V8 allocates only xmm0-xmm15).
 */
const BLOCKING: Record<WeightTypeName, [number, number, number]> = {
  F32: [4, 2, 8],
  F16: [4, 2, 8],
  BF16: [4, 2, 8],
  Q4_0: [2, 2, 4],
  Q4_1: [2, 2, 4],
  Q5_0: [2, 2, 4],
  Q5_1: [2, 2, 4],
  Q8_0: [4, 2, 8],
  Q2_K: [2, 2, 4],
  Q3_K: [2, 2, 4],
  Q4_K: [2, 2, 4],
  Q5_K: [2, 2, 4],
  Q6_K: [2, 2, 4],
};

/**
 * Matvec register blocks by type and row length: from `minRowBytes` bytes per weight row, R
 * rows at a time and the touch distance (else `BLOCKING`'s rows and {@linkcode TOUCH_AHEAD}).
 *
 * - Float types and Q8_0, long rows: the default blocks read R rows' streams side by side and
 *   touch their lines in one burst per register block; past a few KiB per block that was
 *   slower (our reading: a touch is a load, which retires only when its line arrives, so a
 *   long burst stalls the loop). g110M-like shapes, one pinned core, GB/s of weights, default
 *   → these: F16 768x2048 ~15.5 → ~17.8 (768x1024 ~17.1 → ~19.0, but 2048x768 ~21.5 → ~18.4,
 *   hence the bound); F32 2048x768 ~20.7 → ~23.3 (768x512 ~25.6 → ~22.8); BF16 the same
 *   bound as F16 since its one-token blocks convert by a shift and a mask (2048x768 ~12.0 →
 *   ~18.8-21.2, 768x2048 ~18.3 either way); Q8_0 768x2048 ~19.5 → ~22.8, 768x1536 ~22.9 →
 *   ~24.0.
 * - K-quants, Q5_0, Q5_1 (every row length) and Q4_1 (long rows): ONE row at a time and
 *   no touch: one sequential stream, which the hardware prefetcher keeps ahead of kernels
 *   that spend this many instructions per weight byte. Two rows side by side without touches
 *   fell to 4-7 GB/s (the prefetcher losing the interleaved streams), and with touches ran
 *   below one untouched row. ~21 MB matrices streamed from DRAM, one pinned core (AMD EPYC,
 *   Zen 4), GB/s of weights, 2 rows touched 2 KiB ahead → 1 row untouched: Q4_K K=768 13.8 →
 *   15.5, K=3072 14.4 → 16.3, K=11008 11.4 → 16.8; Q6_K K=768 13.5 → 16.1, K=4096 12.2 →
 *   16.5; Q5_K K=4096 10.3 → 14.2; Q3_K K=4096 6.2 → 6.6; Q5_0 K=4096 8.4 → 8.6, K=768 8.9 →
 *   8.5; Q4_1 K=4096 9.7 → 12.3, but K=768 12.5 → 11.8, hence the bound; Q4_0 stays (K=4096
 *   12.3 → 11.0, K=768 12.0 → 11.1). The Q4_K_M g110M file decodes ~8 % faster on one thread (190 → 206 tok/s).
 */
const MATVEC_BLOCKS: Partial<
  Record<WeightTypeName, { minRowBytes: number; rows: number; touchAhead: number }>
> = {
  F32: { minRowBytes: 3072, rows: 8, touchAhead: 0 },
  F16: { minRowBytes: 2048, rows: 8, touchAhead: 0 },
  BF16: { minRowBytes: 2048, rows: 8, touchAhead: 0 },
  Q8_0: { minRowBytes: 1024, rows: 2, touchAhead: TOUCH_AHEAD },
  Q4_1: { minRowBytes: 2048, rows: 1, touchAhead: 0 },
  Q5_0: { minRowBytes: 0, rows: 1, touchAhead: 0 },
  Q5_1: { minRowBytes: 0, rows: 1, touchAhead: 0 },
  Q2_K: { minRowBytes: 0, rows: 1, touchAhead: 0 },
  Q3_K: { minRowBytes: 0, rows: 1, touchAhead: 0 },
  Q4_K: { minRowBytes: 0, rows: 1, touchAhead: 0 },
  Q5_K: { minRowBytes: 0, rows: 1, touchAhead: 0 },
  Q6_K: { minRowBytes: 0, rows: 1, touchAhead: 0 },
};

/**
 * Rows per interleaved group by weight type (`interleave.ts`), and so per register block of
 * their matvecs: 4 for the float types and Q8_0 (interleaved, 4 beat 8, and Q8_0's 2, for every
 * row length: one pinned core, g110M shapes streamed, GB/s of weights, 8 or 2 → 4 rows: F16
 * 768x2048 28.4 → 34.0, 2048x768 30.2 → 32.0; BF16 768x2048 26.6 → 30.2; Q8_0 768x2048 (2 rows)
 * 25.4-28.2 → 27.6-30.6, 32768x768 28.6 → 31.2; F32 even, 35-36), 2 for Q4_K (its row pairs
 * share the activation loads: 1 row → 2, 1.03-1.05x; 4 rows 0.87-0.97x), Q5_K and Q6_K (once
 * their matvecs decoded one row at a time with the activations loaded once, `types_k.ts`: Q6_K
 * packed 32768x768 1.02-1.03x, Q5_K 1.01x, before their pairs' scales were repacked; before
 * that schedule, 0.99-1.01x). Q2_K, Q3_K and the 4- and 5-bit types stay row-major: one row at
 * a time is one stream already.
 */
const INTERLEAVED: Partial<Record<WeightTypeName, number>> = {
  F32: 4,
  F16: 4,
  BF16: 4,
  Q8_0: 4,
  Q4_K: 2,
  Q5_K: 2,
  Q6_K: 2,
};

/**
 * Rows per interleaved group of a matrix in the memory (`interleave.ts`): the type's
 * {@linkcode INTERLEAVED} rows when M is a multiple of them and K has no partial block; 1
 * (row-major, as stored) otherwise.
 *
 * @param type The weight type.
 * @param M Rows (output features).
 * @param K Columns (input features).
 * @returns 1, 2 or 4.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { interleaveRows } from "./linear.ts";
 * assert.equal(interleaveRows("F16", 2048, 768), 4);
 * assert.equal(interleaveRows("Q4_K", 2048, 768), 2);
 * assert.equal(interleaveRows("Q6_K", 2048, 768), 2);
 * assert.equal(interleaveRows("Q3_K", 2048, 768), 1); // one row at a time, one stream already
 * assert.equal(interleaveRows("F16", 6, 768), 1); // M not a multiple of 4
 * ```
 */
export function interleaveRows(type: WeightTypeName, M: number, K: number): number {
  const I = INTERLEAVED[type] ?? 1;
  return K % EMITTERS[type].elems === 0 && M % I === 0 ? I : 1;
}

/**
 * Bytes of one unit of an interleaved row (`interleave.ts`): the weight bytes one block of
 * the type's kernels reads of a row (8 elements of the float types, a Q8_0 block).
 *
 * @param type The weight type.
 * @returns Bytes.
 */
export function interleaveUnit(type: WeightTypeName): number {
  return EMITTERS[type].bytes;
}

/**
 * The kernel name of a spec: `matvec_q4_k_2048x768`, `matmul_f16_768x768_bias_acc`.
 *
 * @param s The spec.
 * @returns The function (and export) name.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { linearName } from "./linear.ts";
 * assert.equal(linearName({ type: "Q8_0", M: 2048, K: 768, kind: "matvec" }), "matvec_q8_0_2048x768");
 * ```
 */
export function linearName(s: LinearSpec): string {
  return `${s.kind}_${s.type.toLowerCase()}_${s.M}x${s.K}` + (s.bias ? "_bias" : "") +
    (s.accumulate ? "_acc" : "") + (s.memory ? `_m${s.memory}` : "") +
    ((s.interleave ?? 1) > 1 ? `_i${s.interleave}` : "") + (s.packed ? "_p" : "") +
    (s.panel ? "_panel" : "");
}

/**
 * Emits one matrix-product kernel (see the module doc for its parameters).
 *
 * @param s The spec.
 * @returns The function.
 * @throws {RangeError} when K is not a multiple of the type's block size or M, K are not
 *   positive integers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { emitLinear } from "./linear.ts";
 * const f = emitLinear({ type: "Q4_K", M: 8, K: 256, kind: "matvec" });
 * assert.ok(f.text().startsWith("(func $matvec_q4_k_8x256"));
 * ```
 */
export function emitLinear(s: LinearSpec): WasmFunc {
  checkPacked("linear", s.type, s.interleave ?? 1, s.packed ?? false);
  const em = s.packed ? PACKED_EMITTERS[s.type]! : EMITTERS[s.type];
  const t = WEIGHT_TYPES[s.type];
  const { M, K } = s;
  if (!Number.isInteger(M) || M <= 0) throw new RangeError(`linear: bad M ${M}`);
  const rb = rowBytes(t, K);
  const act = actLayout(t.act, K);
  const nb = Math.floor(K / em.elems);
  const tail = K - nb * em.elems;
  const mm = s.kind === "matmul";
  const [mvR, mmR, mmC] = BLOCKING[s.type];
  const long = mm ? undefined : MATVEC_BLOCKS[s.type];
  const isLong = long !== undefined && rb >= long.minRowBytes;
  const I = s.interleave ?? 1;
  const R = s.rows ?? (mm ? mmR : I > 1 ? I : isLong ? long.rows : mvR);
  const C = mm ? s.tokens ?? mmC : 1;
  const bad = (I & (I - 1)) !== 0 || M % I !== 0 || tail !== 0 || I % R !== 0 ||
    (s.panel && PANEL_ROWS % I !== 0);
  if (I > 1 && bad) {
    throw new RangeError(
      `linear: interleave ${I} needs a power of two dividing M ${M} (and a panel's 8 rows), ` +
        `K ${K} a multiple of ${em.elems} and ${R} rows per register block dividing it`,
    );
  }
  const unit = em.bytes; // bytes of one block of one row
  const step = I * unit; // from one block of a row to its next
  const relaxed = s.relaxed ?? false;
  const panel = s.panel ?? false;
  if (panel && !panelSupported(s)) {
    throw new RangeError(
      "linear: a panel is for F32/F16/BF16 matmuls, Q8_0 ones with the u8 dot product and " +
        `relaxed ones of the other block types, not ${s.kind} ${s.type}`,
    );
  }
  if (panel) {
    const ps: PanelSpec = {
      name: linearName(s),
      type: s.type,
      M,
      K,
      bias: s.bias ?? false,
      accumulate: s.accumulate ?? false,
      relaxed,
      fp16: s.fp16 ?? false,
      memory: s.memory ?? 0,
      interleave: I,
      unit,
    };
    const kind = PANELS[s.type]!.kind;
    return kind
      ? emitPanelMatmul(ps, kind(K, s.fp16 ?? false, s.packed ?? false))
      : emitPanelMatmul(ps);
  }
  const params: [string, "i32"][] = [["w", "i32"]];
  if (s.bias) params.push(["bias", "i32"]);
  params.push(["x", "i32"], ["y", "i32"], ["r0", "i32"], ["r1", "i32"]);
  if (mm) params.push(["n", "i32"]);
  const f = new WasmFunc(linearName(s), params);
  f.weightMemory = s.memory ?? 0;
  const locals = ["r", "wr", "yr", "br", "xt", "yt", "t", "pw", "px", "pd", "wend"];
  for (const l of [...locals, "touch", "pt", "tend", "tnext"]) {
    f.local(l, "i32");
  }
  for (let a = 0; a < R; a++) {
    for (let c = 0; c < C; c++) {
      f.local(`acc${a}_${c}`, "v128");
      if (em.pairAcc) f.local(`accp${a}_${c}`, "v128");
      if (em.scalar || tail) f.local(`sacc${a}_${c}`, "f32");
    }
  }
  em.locals(f, R, C);
  const xDesc = t.act === "f32" ? `f32` : `${t.act} rows (stride ${act.stride})`;
  f.comment(
    mm
      ? `y (n, ${M}) ${s.accumulate ? "+" : ""}= x (n, ${K}) · Wᵀ${s.bias ? " + bias" : ""}, ` +
        `W (${M}, ${K}) ${t.name} (${rb} bytes per row), x ${xDesc}; rows r0 .. r1 - 1`
      : `y (${M}) ${s.accumulate ? "+" : ""}= W (${M}, ${K}) · x (${K})${
        s.bias ? " + bias" : ""
      }, ` +
        `W ${t.name} (${rb} bytes per row), x ${xDesc}; rows r0 .. r1 - 1`,
  );
  em.init(f);
  const ctx = (Rr: number, Cc: number): BlockCtx => ({
    f,
    R: Rr,
    C: Cc,
    rowBytes: I > 1 ? unit : rb, // row a of a register block at pw + a · rowBytes
    stride: act.stride,
    relaxed,
    fp16: s.fp16 ?? false,
    dotU8: relaxed && (s.dotU8 ?? false),
    laneOffset: act.laneOffset,
  });

  /** The register block of Rr rows (at wr, yt) × Cc tokens (at xt). */
  const registerBlock = (Rr: number, Cc: number) => {
    const k = ctx(Rr, Cc);
    const pair = em.pairAcc?.(k) ?? false;
    f.comment(
      `register block: ${Rr} row(s) × ${Cc} token(s)`,
    );
    for (let a = 0; a < Rr; a++) {
      for (let c = 0; c < Cc; c++) {
        f.zeroV128().set(`acc${a}_${c}`);
        if (pair) f.zeroV128().set(`accp${a}_${c}`);
        if (em.scalar || tail) f.f32(0).set(`sacc${a}_${c}`);
      }
    }
    f.get("wr").set("pw").get("xt").set("px");
    if (act.format !== "f32") f.get("xt").i32(act.metaOffset).op("i32.add").set("pd");
    if (nb > 0) {
      f.get("wr").i32(nb * step).op("i32.add").set("wend");
      f.comment(`${nb} block(s) of ${em.elems}`);
      f.loop("blocks");
      em.block(k);
      f.get("pw").i32(step).op("i32.add").set("pw");
      f.get("px").i32(act.format === "f32" ? em.elems * 4 : em.elems).op("i32.add").set(
        "px",
      );
      if (act.format !== "f32") f.get("pd").i32(act.metaBytes).op("i32.add").set("pd");
      f.get("pw").get("wend").op("i32.lt_u").brIf("blocks");
      f.end();
    }
    if (tail) em.tail!(k, tail);
    for (let c = 0; c < Cc; c++) {
      for (let a = 0; a < Rr; a++) {
        const off = c * M * 4 + a * 4;
        f.get("yt");
        if (pair) {
          f.get(`acc${a}_${c}`).get(`accp${a}_${c}`).op("f32x4.add").set(`acc${a}_${c}`);
        }
        hsumF32(f, `acc${a}_${c}`);
        const scale = em.accScale?.(k);
        if (scale !== undefined) f.f32(scale).op("f32.mul");
        if (em.scalar || tail) f.get(`sacc${a}_${c}`).op("f32.add");
        if (s.bias) f.get("br").mem("f32.load", a * 4).op("f32.add");
        if (s.accumulate) f.get("yt").mem("f32.load", off).op("f32.add");
        f.mem("f32.store", off);
      }
    }
  };

  /** All tokens for the Rr rows at wr. */
  const tokens = (Rr: number) => {
    f.get("x").set("xt").get("yr").set("yt");
    if (!mm) {
      registerBlock(Rr, 1);
      return;
    }
    f.i32(0).set("t");
    // Blocks of C tokens, then smaller blocks for the rest, so a step of a few rows (a
    // speculative verify, a server's few streams) decodes the weights fewer times: float types
    // halve down to 1 (F16, n = 4: 1.23 → 0.55 ms on 2048x768); the integer types keep a
    // 4-token block only (their 2-token block measured slower than two 1-token passes).
    const sizes = [C];
    if (t.act === "f32") {
      while (sizes[sizes.length - 1] > 1) sizes.push(Math.floor(sizes[sizes.length - 1] / 2));
    } else {
      if (C > 4) sizes.push(4);
      if (C > 1) sizes.push(1);
    }
    for (const Cc of sizes) {
      f.block(`tok${Cc}_done`).loop(`tok${Cc}`);
      f.get("t").i32(Cc).op("i32.add").get("n").op("i32.gt_u").brIf(`tok${Cc}_done`);
      registerBlock(Rr, Cc);
      f.get("t").i32(Cc).op("i32.add").set("t");
      f.get("xt").i32(Cc * act.stride).op("i32.add").set("xt");
      f.get("yt").i32(Cc * M * 4).op("i32.add").set("yt");
      f.br(`tok${Cc}`).end().end();
    }
  };

  // An interleaved matvec reads one sequential stream: the hardware prefetcher's, no touches.
  const ahead = s.touchAhead ?? (I > 1 && !mm ? 0 : isLong ? long.touchAhead : TOUCH_AHEAD);
  f.get("r0").set("r");
  if (ahead > 0) {
    f.comment("touch pointer pt: the next 64-byte line of W not yet touched; tend: W's end");
    f.get("w").get("r0").i32(rb).op("i32.mul").op("i32.add").set("pt");
    f.get("w").get("r1").i32(rb).op("i32.mul").op("i32.add").set("tend");
  }
  // A repacked Q4_K/Q5_K block reads its rows in pairs: no single-row loop (r0, r1 are even).
  const pairs = s.packed && pairUnit(s.type) !== undefined;
  for (const Rr of pairs ? [R] : R > 1 ? [R, 1] : [1]) {
    f.comment(`rows ${Rr} at a time`);
    f.block(`rows${Rr}_done`).loop(`rows${Rr}`);
    f.get("r").i32(Rr).op("i32.add").get("r1").op("i32.gt_u").brIf(`rows${Rr}_done`);
    if (ahead > 0) {
      f.comment(
        `touch every line up to ${ahead} bytes past rows r .. r + ${Rr - 1} (not past tend), ` +
          "one load per line, so their cache misses overlap the arithmetic",
      );
      f.get("w").get("r").i32(Rr).op("i32.add").i32(rb).op("i32.mul").op("i32.add");
      f.i32(ahead).op("i32.add").tee("tnext").get("tend").get("tnext").get("tend");
      f.op("i32.lt_u").op("select").set("tnext");
      touchLines(f, "pt", "tnext", "touch_lines");
    }
    if (I > 1) {
      f.comment(
        `row r: its group of ${I} at (r & ~${I - 1}) · ${rb}, then (r & ${I - 1}) · ${unit}`,
      );
      f.get("w").get("r").i32(-I).op("i32.and").i32(rb).op("i32.mul").op("i32.add");
      f.get("r").i32(I - 1).op("i32.and").i32(unit).op("i32.mul").op("i32.add").set("wr");
    } else f.get("w").get("r").i32(rb).op("i32.mul").op("i32.add").set("wr");
    f.get("y").get("r").i32(4).op("i32.mul").op("i32.add").set("yr");
    if (s.bias) f.get("bias").get("r").i32(4).op("i32.mul").op("i32.add").set("br");
    tokens(Rr);
    f.get("r").i32(Rr).op("i32.add").set("r");
    f.br(`rows${Rr}`).end().end();
  }
  keepTouchLive(f);
  return f;
}
