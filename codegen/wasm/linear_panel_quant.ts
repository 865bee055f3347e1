/**
 * What the quantised panel kinds (`linear_panel_q8.ts`, `linear_panel_q4k.ts`,
 * `linear_panel_q6k.ts`) share: the loop that fills a panel block by block for the two
 * groups of 4 rows, the micro-kernel's loop over blocks with its activation pointers, and
 * the dot products of one run of 4-column groups.
 *
 * Locals they use besides the driver's (`linear_panel.ts`): `pd` (i32, the token's
 * activation record), `ia{c}_{0,1}` (i32x4 sums of token c, rows 0..3 and 4..7) and
 * `is{c}_{0,1}` (the K-quants' super-block sums).
 *
 * @module
 */
import type { WasmFunc } from "../wasm_asm.ts";
import { lanes32 } from "./snippets.ts";
import { type ActLayout, actLayout, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { blockStride, type PanelKind, type RowLayout, rowPointers } from "./linear_panel.ts";

/** How a quantised type's blocks map to panel blocks. */
export interface QuantPanelShape {
  /** Blocks per row. */
  nb: number;
  /** Bytes per weight block. */
  blockBytes: number;
  /** Bytes per panel block (8 rows). */
  panelBlock: number;
  /** The activation row layout (quants, then records). */
  act: ActLayout;
}

/**
 * The shape and the fixed fields of a quantised panel kind.
 *
 * @param type The weight type.
 * @param K Input features.
 * @param tokens Tokens per register block.
 * @param panelBlock Bytes per panel block (8 rows).
 * @returns The shape, the activation row stride S and the kind's tokens, panelBytes,
 *   xStride and xDesc.
 * @throws {RangeError} when K is not a multiple of the type's block size.
 */
export function quantPanelBase(
  type: WeightTypeName,
  K: number,
  tokens: number,
  panelBlock: number,
): {
  shape: QuantPanelShape;
  S: number;
  base: Pick<PanelKind, "tokens" | "panelBytes" | "xStride" | "xDesc">;
} {
  const t = WEIGHT_TYPES[type];
  if (K % t.blockElems !== 0) {
    throw new RangeError(`${type} panel: K ${K} is not a multiple of ${t.blockElems}`);
  }
  const act = actLayout(t.act, K), nb = K / t.blockElems;
  return {
    shape: { nb, blockBytes: t.blockBytes, panelBlock, act },
    S: act.stride,
    base: {
      tokens,
      panelBytes: nb * panelBlock,
      xStride: act.stride,
      xDesc: `${t.act} rows (stride ${act.stride})`,
    },
  };
}

/** Calls `fn(c, v)` for every token c < C and row group v (rows 0..3, 4..7). */
export function eachAcc(C: number, fn: (c: number, v: number) => void): void {
  for (let c = 0; c < C; c++) for (const v of [0, 1]) fn(c, v);
}

/**
 * Declares `pd`, the quant vectors `xv{c}` and the sums `ia{c}_{v}` (and with `superSums`
 * `is{c}_{v}`) for C tokens.
 *
 * @param f The function.
 * @param C Tokens per register block.
 * @param superSums Also the super-block sums of the K-quants.
 */
export function quantPanelLocals(f: WasmFunc, C: number, superSums: boolean): void {
  f.local("pd", "i32");
  for (let c = 0; c < C; c++) f.local(`xv${c}`, "v128");
  eachAcc(C, (c, v) => {
    f.local(`ia${c}_${v}`, "v128");
    if (superSums) f.local(`is${c}_${v}`, "v128");
  });
}

/**
 * The panel fill's loops: for rows 0..3 and then 4..7 (`p0..p3` from `rowPointers`, `pp` at
 * the group's 16-byte half of each panel vector pair), `body()` once per weight block, then
 * every pointer moves one block on.
 *
 * @param f The function.
 * @param l Where the rows are (row-major or interleaved, `linear_panel.ts` `RowLayout`).
 * @param s The shape.
 * @param body Writes one block of the 4 rows at `p0..p3` into their halves at `pp`.
 * @param pairs The rows are read in pairs (`rowPointers`).
 */
export function fillBlocks(
  f: WasmFunc,
  l: RowLayout,
  s: QuantPanelShape,
  body: () => void,
  pairs = false,
): void {
  const stride = blockStride(l, s.blockBytes);
  for (let G = 0; G < 2; G++) {
    f.comment(`rows ${4 * G} .. ${4 * G + 3}`);
    rowPointers(f, 4 * G, l, pairs);
    f.get("panel").i32(16 * G).op("i32.add").set("pp");
    f.get("p0").i32(s.nb * stride).op("i32.add").set("pend");
    f.loop(`panel_rows${4 * G}`);
    body();
    for (let i = 0; i < 4; i++) f.get(`p${i}`).i32(stride).op("i32.add").set(`p${i}`);
    f.get("pp").i32(s.panelBlock).op("i32.add").set("pp");
    f.get("p0").get("pend").op("i32.lt_u").brIf(`panel_rows${4 * G}`);
    f.end();
  }
}

/**
 * The micro-kernel's loop over blocks: `acc{c}_{v}` zeroed, then `body()` once per block
 * with `pp` at its panel block, `px` at token 0's quants of it and `pd` at token 0's record.
 *
 * @param f The function.
 * @param C Tokens in the register block.
 * @param s The shape.
 * @param body One block's work.
 */
export function microBlocks(f: WasmFunc, C: number, s: QuantPanelShape, body: () => void): void {
  eachAcc(C, (c, v) => f.zeroV128().set(`acc${c}_${v}`));
  f.get("panel").set("pp").get("xt").set("px");
  f.get("xt").i32(s.act.metaOffset).op("i32.add").set("pd");
  f.get("panel").i32(s.nb * s.panelBlock).op("i32.add").set("pend");
  f.loop(`blocks${C}`);
  body();
  f.get("pp").i32(s.panelBlock).op("i32.add").set("pp");
  f.get("px").i32(s.act.blockElems).op("i32.add").set("px");
  f.get("pd").i32(s.act.metaBytes).op("i32.add").set("pd");
  f.get("pp").get("pend").op("i32.lt_u").brIf(`blocks${C}`);
  f.end();
}

/**
 * `ia{c}_{v} += Σ x · w` over the 4-column groups `first .. first + count - 1` of the
 * block: per group two panel vectors (rows 0..3, 4..7 at `pp + at + 32 · group`), and per
 * token its 4 quants splat from the token's 16 quants of 4 groups (one `v128.load` per 4
 * groups in `xv{c}`, then an i32 lane shuffle, x86 `pshufd`: a load per group each carried
 * a bounds check; Q8_0 2048x768 at 16 rows +3-5 %) and two relaxed dot products.
 *
 * @param f The function.
 * @param C Tokens.
 * @param S Bytes per activation row.
 * @param first First group (a multiple of 4: one load covers 4 groups).
 * @param count Groups (a multiple of 4).
 * @param at Byte offset of the quants in the panel block.
 * @throws {RangeError} when `first` or `count` is not a multiple of 4.
 */
export function groupDots(
  f: WasmFunc,
  C: number,
  S: number,
  first: number,
  count: number,
  at: number,
): void {
  if (first % 4 || count % 4) throw new RangeError(`groupDots: groups ${first} + ${count}`);
  for (let g4 = first; g4 < first + count; g4 += 4) {
    for (let c = 0; c < C; c++) {
      f.get("px").mem("v128.load", c * S + 4 * g4, { align: 0 }).set(`xv${c}`);
    }
    for (let gi = g4; gi < g4 + 4; gi++) {
      f.get("pp").mem("v128.load", at + 32 * gi).set("w0");
      f.get("pp").mem("v128.load", at + 32 * gi + 16).set("w1");
      for (let c = 0; c < C; c++) {
        const l = gi - g4;
        f.get(`xv${c}`).get(`xv${c}`).shuffle(lanes32([l, l, l, l])).set("xs");
        for (const v of [0, 1]) {
          const ia = `ia${c}_${v}`;
          f.get("xs").get(`w${v}`).get(ia).op("i32x4.relaxed_dot_i8x16_i7x16_add_s").set(ia);
        }
      }
    }
  }
}

/**
 * A super-block's scaled sums of a K-quant panel: `is{c}_{v} = Σ_j sc_j · Σ x·q` over its
 * 256 / `elems` sub-blocks, each one {@linkcode groupDots} run into `ia{c}_{v}` (its
 * `elems / 4` groups of the quants at `pp + quantsAt`) times its i32 scale vectors at
 * `pp + scalesAt + 32j` ({@linkcode scaleInto}).
 *
 * @param f The function.
 * @param C Tokens.
 * @param S Bytes per activation row.
 * @param elems Elements per sub-block (32: Q4_K/Q5_K; 16: Q2_K/Q3_K/Q6_K).
 * @param quantsAt Byte offset of the quants in the panel block.
 * @param scalesAt Byte offset of the scale vectors.
 * @param q What the stored quants are, for the comments (`q`, `(q + 32)`).
 */
export function subBlockSums(
  f: WasmFunc,
  C: number,
  S: number,
  elems: 16 | 32,
  quantsAt: number,
  scalesAt: number,
  q: string,
): void {
  const groups = elems / 4;
  eachAcc(C, (c, v) => f.zeroV128().set(`is${c}_${v}`));
  for (let j = 0; j < 256 / elems; j++) {
    f.comment(`sub-block ${j}: Σ x·${q} per row, times sc_${j}`);
    eachAcc(C, (c, v) => f.zeroV128().set(`ia${c}_${v}`));
    groupDots(f, C, S, groups * j, groups, quantsAt);
    scaleInto(f, C, scalesAt + 32 * j);
  }
}

/**
 * `is{c}_{v} += ia{c}_{v} · scale` with the rows' i32 scale vectors at `pp + at` (rows
 * 0..3) and `pp + at + 16` (rows 4..7).
 *
 * @param f The function.
 * @param C Tokens.
 * @param at Byte offset of the scale vectors in the panel block.
 */
export function scaleInto(f: WasmFunc, C: number, at: number): void {
  f.get("pp").mem("v128.load", at).set("w0").get("pp").mem("v128.load", at + 16).set("w1");
  eachAcc(C, (c, v) => {
    f.get(`is${c}_${v}`).get(`ia${c}_${v}`).get(`w${v}`).op("i32x4.mul").op("i32x4.add");
    f.set(`is${c}_${v}`);
  });
}

/**
 * `ia{c}_{v} = Σ_k pair_k · (Σq_x pair k)`: per k the rows' i16 pairs at `pp + at + 32k`
 * (and + 16) and one `v128.load32_splat` of the token's i16 pair of activation sums at
 * `pd + xAt + 4k`, two sub-blocks per `i32x4.dot_i16x8_s`.
 *
 * @param f The function.
 * @param C Tokens.
 * @param S Bytes per activation row.
 * @param count Pairs.
 * @param at Byte offset of the pairs in the panel block.
 * @param xAt Byte offset of the i16 sums in the activation record.
 */
export function pairDots(
  f: WasmFunc,
  C: number,
  S: number,
  count: number,
  at: number,
  xAt: number,
): void {
  eachAcc(C, (c, v) => f.zeroV128().set(`ia${c}_${v}`));
  for (let k = 0; k < count; k++) {
    f.get("pp").mem("v128.load", at + 32 * k).set("w0");
    f.get("pp").mem("v128.load", at + 32 * k + 16).set("w1");
    for (let c = 0; c < C; c++) {
      f.get("pd").mem("v128.load32_splat", c * S + xAt + 4 * k, { align: 0 }).set("xs");
      for (const v of [0, 1]) {
        const ia = `ia${c}_${v}`;
        f.get(ia).get(`w${v}`).get("xs").op("i32x4.dot_i16x8_s").op("i32x4.add").set(ia);
      }
    }
  }
}

/**
 * The last step of a super-block with mins (Q4_K, Q5_K, Q2_K): `acc{c}_{v} += f32(is) · d ·
 * d_x - f32(ia) · dmin · d_x`, with the rows' d and dmin f32x4 pairs at `pp + dAt` and
 * `pp + dminAt` (rows 0..3, then 4..7) and `d_x` the f32 at the start of token c's record.
 *
 * @param f The function.
 * @param C Tokens.
 * @param S Bytes per activation row.
 * @param dAt Byte offset of the d vectors in the panel block.
 * @param dminAt Byte offset of the dmin vectors.
 */
export function addWithMins(f: WasmFunc, C: number, S: number, dAt: number, dminAt: number): void {
  f.comment("acc += f32(sum) · d · d_x - f32(mins) · dmin · d_x");
  for (const [at, sum, sub] of [[dAt, "is", false], [dminAt, "ia", true]] as const) {
    f.get("pp").mem("v128.load", at).set("w0").get("pp").mem("v128.load", at + 16).set("w1");
    for (let c = 0; c < C; c++) {
      f.get("pd").mem("v128.load32_splat", c * S).set("xs");
      for (const v of [0, 1]) {
        const acc = `acc${c}_${v}`;
        f.get(acc).get(`${sum}${c}_${v}`).op("f32x4.convert_i32x4_s");
        f.get(`w${v}`).get("xs").op("f32x4.mul").op("f32x4.mul");
        f.op(sub ? "f32x4.sub" : "f32x4.add").set(acc);
      }
    }
  }
}
