/**
 * The block code of the K-quants from a per-type {@linkcode KSpec} (`types_k.ts` has the
 * types): one 256-element super-block of R rows × C tokens against `q8_K` activations,
 * following ggml's `ggml_vec_dot_q{2..6}_K_q8_K`. Per sub-block (16 or 32 elements) an integer
 * dot product of the weight quants with the activation quants, multiplied by the sub-block's
 * integer scale and summed in int32 over the super-block; then one f32 scale `d_w · d_x` (and,
 * for the types with mins, `- dmin_w · d_x · Σ_j m_j · Σq_x(j)` from the activation block
 * sums).
 *
 * Three ways to sum the sub-blocks:
 * - layouts in the lane order (`lanes.ts`; `KSpec.lanes`: repacked Q4_K pairs, packed Q6_K):
 *   each dot product adds into an i32x4 holding one sub-block per lane, and one `i32x4.mul`
 *   by four scales ends each such sum;
 * - where the runtime's 32-bit relaxed dot product is x86 `vpdpbusd` (`BlockCtx.dotU8`),
 *   sub-blocks go in pairs ({@linkcode pairedDots}): one i32x4 of dot products per sub-block,
 *   the pair narrowed to i16 and scaled by one `i32x4.dot_i16x8_s`;
 * - elsewhere each sub-block is a 16-bit relaxed dot product (`pmaddubsw`) times its splat
 *   scale.
 *
 * @module
 */
import { WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { addScaled, type BlockCtx, type BlockEmitter, f16Vectors, need } from "./block_code.ts";
import { scaledDotI8, splatLane } from "./snippets.ts";
import type { WasmFunc } from "../wasm_asm.ts";
import { laneDot } from "./lanes.ts";

/** i8x16 splat constants the K kernels use, by local name. */
const CONSTS: Record<string, number> = {
  c0f: 0x0f,
  c03: 0x03,
  c04: 0x04,
  c10: 0x10,
  c30: 0x30,
  c3f: 0x3f,
};

/** Shuffle lanes broadcasting i16 lane j of one operand to all 8 lanes. */
export const splat16 = (j: number) => Array.from({ length: 16 }, (_, i) => 2 * j + (i & 1));

/** Byte lanes of the interleave of the low (`hi` = 0) or high 16-bit lanes of two operands. */
const unpack16 = (hi: number) =>
  Array.from({ length: 16 }, (_, i) => (i >> 1 & 1) * 16 + 8 * hi + 2 * (i >> 2) + (i & 1));

/** Byte lanes of the interleave of the low (`hi` = 0) or high 32-bit lanes of two operands. */
const unpack32 = (hi: number) =>
  Array.from({ length: 16 }, (_, i) => (i >> 2 & 1) * 16 + 8 * hi + 4 * (i >> 3) + (i & 3));

/**
 * Sets `sp{a}_{4h + q}` = `[s_j × 4, s_{j+1} × 4]` (i16x8, j = 8h + 2q) for q = 2·half and
 * 2·half + 1 from the i16x8 of scales 8h .. 8h + 7 on the stack: one interleave of 16-bit
 * lanes, then two of 32-bit lanes (x86 `punpck*`), 1.5 shuffles per pair of sub-blocks.
 * Each half is set just before its dot products, so fewer of the pairs are live at once (V8
 * spilled them to the stack): Q2_K matvec +8 %, Q3_K +3.5 %, Q6_K +0-1.5 % (16 sub-blocks, 8
 * pairs); Q4_K pairs +3 %, Q5_K +2.5 % (8 sub-blocks, 4 pairs, set in the prologue before).
 */
function scalePairs(f: WasmFunc, a: number, h: number, half: number): void {
  f.set("s16");
  const l = `sp${a}_${4 * h + 2 * half}`;
  f.get("s16").get("s16").shuffle(unpack16(half)).set(l);
  f.get(l).get(l).shuffle(unpack32(1)).set(`sp${a}_${4 * h + 2 * half + 1}`);
  f.get(l).get(l).shuffle(unpack32(0)).set(l);
}

/**
 * `isum += s_j · Σ x·w (sub-block j) + s_{j+1} · Σ x·w (sub-block j + 1)` with the i32
 * dot product that runs as one x86 `vpdpbusd` (`BlockCtx.dotU8`): each sub-block's vectors
 * go into one i32x4 (from zero), the two i32x4 narrow to one i16x8 (exact: a lane sums at
 * most 8 products of a quant below 32 and an activation of at most 128 in magnitude, or 4
 * of a quant below 64, so |lane| ≤ 32256), and one `i32x4.dot_i16x8_s` by
 * `[s_j × 4, s_{j+1} × 4]` scales and adds them (uses the v128 locals `dq0`, `dq1`). Per
 * pair of Q4_K sub-blocks that is 7 vector instructions where the 16-bit dot products with
 * one splat scale per sub-block took 14; the kernels gained less than that (3-8 % from
 * cache, Q3_K 29 %): they are not bound by vector instructions alone.
 *
 * @param f The function.
 * @param pairs Per sub-block, its `[x, w]` vectors: x pushed by a function (a local, or a load
 *   where it is used), w a local.
 * @param isum The i32x4 local the scaled sums are added to.
 * @param scalePair Pushes the i16x8 scales.
 * @param hi16 The second sub-block's quants are × 16 (`KSpec.hi16`): its sums are shifted
 *   right by 4 first (exact, they are multiples of 16).
 */
function pairedDots(
  f: WasmFunc,
  pairs: [[() => void, string][], [() => void, string][]],
  isum: string,
  scalePair: () => void,
  hi16 = false,
): void {
  pairs.forEach((sub, i) => {
    sub.forEach(([x, w], u) => {
      x();
      f.get(w);
      if (u === 0) f.zeroV128();
      else f.get(`dq${i}`);
      f.op("i32x4.relaxed_dot_i8x16_i7x16_add_s").set(`dq${i}`);
    });
  });
  f.get(isum).get("dq0").get("dq1");
  if (hi16) f.i32(4).op("i32x4.shr_s");
  f.op("i16x8.narrow_i32x4_s");
  scalePair();
  f.op("i32x4.dot_i16x8_s").op("i32x4.add").set(isum);
}

/** Per-type geometry and code of a K-quant ({@linkcode kType} turns it into block code). */
export interface KSpec {
  name: WeightTypeName;
  /** Vectors (16 elements each) per part. */
  vecs: number;
  /** Parts per super-block. */
  parts: number;
  /**
   * With `BlockCtx.dotU8`: `decode` leaves the second sub-block of each pair × 16 (Q4_K's high
   * nibbles masked in place, `q & 0xf0`: one `and` where a shift and an `and` took out `q >> 4`),
   * and {@linkcode pairedDots} (or the lane sums' `finish`) shifts its sums right by 4 (exact).
   */
  hi16?: boolean;
  /** Whether there is a dmin/min term. */
  mins: boolean;
  /** Byte offsets of the f16 super-block scale d and (with mins) dmin in a block. */
  scales: [number] | [number, number];
  /** Per-row prologue at weight offset o (sets dw{a}, dm{a}, sc{a}, ...). */
  prologue(k: BlockCtx, a: number, o: number): void;
  /** Decodes part p of row a into w{a}_0 .. w{a}_{vecs-1}. */
  decode(k: BlockCtx, a: number, o: number, p: number): void;
  /** Sub-block size (16 or 32). */
  sub: 16 | 32;
  /** Pushes sub-block j's scale of row a as an i16x8 splat. */
  scale(f: WasmFunc, a: number, j: number, o: number): void;
  /** Pushes the scales of sub-blocks 8h .. 8h + 7 of row a as an i16x8 (the paired path). */
  scales16(f: WasmFunc, a: number, h: number): void;
  /**
   * Element offset of vector i of part p (default: parts are contiguous); with `lanes` the
   * vector's activations are the lane copy's `LaneSums.vector` instead.
   */
  xOff?(p: number, i: number): number;
  /** Adjusts isum (offset) or sets mins{a}_{c} from the activation sums. */
  offsets(k: BlockCtx, a: number, c: number): void;
  /** Extra i32x4 constants (local name → lanes) set at entry. */
  consts?: Record<string, [number, number, number, number]>;
  /**
   * Sets the f32x4 locals `dsv{g}` with the R rows' d (and dmin) in the lanes
   * {@linkcode scaleLane} gives (default {@linkcode rowScales}: f16 at `scales`' offsets).
   */
  rowScales?(k: BlockCtx): void;
  /** The quants are in the lane order (`lanes.ts`): how the parts' vectors are summed. */
  lanes?: LaneSums;
}

/**
 * How a type in the lane order (`lanes.ts`) sums a super-block: each dot product adds into
 * one of four i32x4 locals `la{a}_{c}_{q}` whose lane l holds one sub-block, and `finish`
 * turns them into `isum{a}_{c}` with one `i32x4.mul` by the sub-blocks' scales per local.
 */
export interface LaneSums {
  /** The lane vector (0..15) vector i of part p decodes; its activations are the copy's. */
  vector(p: number, i: number): number;
  /** The local (0..3) it adds into. */
  acc(p: number, i: number): number;
  /**
   * Sets `isum{a}_{c}` for every token c from the locals (`scv0` .. `scv3` free); `hi16`:
   * {@linkcode KSpec.hi16} (with `dotU8` the high nibbles' sums are × 16).
   */
  finish(k: BlockCtx, a: number, hi16: boolean): void;
}

/**
 * The R rows' f16 super-block scales → f32 lanes of `dsv{g}`, four per vector (block_code.ts
 * `f16Vectors`): lane {@linkcode scaleLane}(a) holds row a's d, the next lane its dmin.
 */
function rowScales(k: BlockCtx, at: [number] | [number, number]): void {
  const offsets: number[] = [];
  for (let a = 0; a < k.R; a++) for (const o of at) offsets.push(a * k.rowBytes + o);
  f16Vectors(k, offsets, "dsv");
}

/** Index of row a's d among the f16 scales {@linkcode rowScales} converts (dmin: + 1). */
const scaleLane = (a: number, mins: boolean) => (mins ? 2 : 1) * a;

/**
 * Per token c: `dd{g} = dsv{g} · d_x` (its activation block's scale, splat), then for each
 * row a `acc{a}_{c} += f32(isum{a}_{c}) · (d_w · d_x)`, and with mins
 * `acc{a}_{c} -= f32(mins{a}_{c}) · (dmin_w · d_x)` (`f32x4.relaxed_nmadd` when relaxed:
 * the same bits as a fused multiply-add by the negated product). One vector product per
 * token and a lane splat per term, where scalar products took an extract, a product and a
 * splat each: Q4_K matvec +4 % (same-process A/B, one pinned core).
 */
function scaleAndAdd(k: BlockCtx, spec: KSpec): void {
  const { f, R, C } = k;
  const G = Math.ceil(scaleLane(R, spec.mins) / 4); // dsv vectors
  for (let c = 0; c < C; c++) {
    for (let g = 0; g < G; g++) {
      f.get(`dsv${g}`).get("pd").mem("v128.load32_splat", c * k.stride).op("f32x4.mul");
      f.set(`dd${g}`);
    }
    for (let a = 0; a < R; a++) {
      spec.offsets(k, a, c);
      const i = scaleLane(a, spec.mins), acc = `acc${a}_${c}`;
      splatLane(f, `dd${i >> 2}`, i & 3);
      addScaled(k, a, c, `isum${a}_${c}`, true);
      if (!spec.mins) continue;
      f.get(`mins${a}_${c}`).op("f32x4.convert_i32x4_s");
      splatLane(f, `dd${(i + 1) >> 2}`, (i + 1) & 3);
      if (k.relaxed) f.get(acc).op("f32x4.relaxed_nmadd").set(acc);
      else f.op("f32x4.mul").set("_s").get(acc).get("_s").op("f32x4.sub").set(acc);
    }
  }
}

/**
 * The block emitter of a K-quant type (module doc).
 *
 * @param spec The type's geometry and code.
 * @returns Its {@linkcode BlockEmitter} (`linear.ts` drives it).
 */
export function kType(spec: KSpec): BlockEmitter {
  const t = WEIGHT_TYPES[spec.name];
  const per = spec.vecs * 16; // elements per part
  const lanes = spec.lanes;
  const xOff = spec.xOff ?? ((p: number, i: number) => per * p + 16 * i);
  return {
    type: t,
    elems: 256,
    bytes: t.blockBytes,
    scalar: false,
    locals(f, R, C) {
      for (let a = 0; a < R; a++) {
        need(f, `sc${a}`, "v128");
        need(f, `sc16${a}_0`, "v128");
        need(f, `sc16${a}_1`, "v128");
        for (let q = 0; q < 8; q++) need(f, `sp${a}_${q}`, "v128");
        need(f, `qh${a}_0`, "v128");
        need(f, `qh${a}_1`, "v128");
        for (let i = 0; i < spec.vecs; i++) need(f, `w${a}_${i}`, "v128");
        for (let c = 0; c < C; c++) {
          need(f, `isum${a}_${c}`, "v128");
          if (spec.mins) need(f, `mins${a}_${c}`, "v128");
          if (lanes) { for (let q = 0; q < 4; q++) need(f, `la${a}_${c}_${q}`, "v128"); }
        }
      }
      for (let g = 0; g < Math.ceil(scaleLane(R, spec.mins) / 4); g++) need(f, `dd${g}`, "v128");
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < spec.vecs; i++) need(f, `x${c}_${i}`, "v128");
      }
      for (const l of ["u0", "u1", "u2"]) need(f, l, "i32");
      if (lanes) { for (let q = 0; q < 4; q++) need(f, `scv${q}`, "v128"); }
      for (const l of ["zero", "qh", "tmp", "s16", "_s", "dq0", "dq1", ...Object.keys(CONSTS)]) {
        need(f, l, "v128");
      }
      for (const l of Object.keys(spec.consts ?? {})) need(f, l, "v128");
    },
    init(f) {
      f.comment("constants: byte masks");
      for (const [n, v] of Object.entries(CONSTS)) f.i8x16(new Array(16).fill(v)).set(n);
      for (const [n, v] of Object.entries(spec.consts ?? {})) f.i32x4(...v).set(n);
    },
    block(k) {
      const { f, R, C } = k;
      if (lanes && k.laneOffset === null) {
        throw new RangeError(`${spec.name} in the lane order: the activations have no lane copy`);
      }
      // The lane order's vectors read the activations' lane copy (`lanes.ts`).
      const xAt = lanes ? (p: number, i: number) => k.laneOffset! + 16 * lanes.vector(p, i) : xOff;
      if (spec.rowScales) spec.rowScales(k);
      else rowScales(k, spec.scales);
      for (let a = 0; a < R; a++) {
        f.comment(`row ${a}: super-block scales`);
        spec.prologue(k, a, a * k.rowBytes);
        for (let c = 0; c < C; c++) {
          f.zeroV128().set(`isum${a}_${c}`);
          if (lanes) { for (let q = 0; q < 4; q++) f.zeroV128().set(`la${a}_${c}_${q}`); }
        }
      }
      // The scale pairs are set as the dots first need them (fewer live vectors to spill).
      const paired = new Set<string>(); // `${a}_${q >> 1}`: sp{a}_q set in this block
      for (let p = 0; p < spec.parts; p++) {
        // Fewer live vectors (V8 spilled them): one row of 4 vectors per part loads its x where
        // each dot product uses it (Q6_K matvec 1.05-1.10x), and a matvec of several rows
        // decodes and multiplies one row at a time, the x vectors loaded once (Q4_K pairs
        // 1.06x). Q2_K and Q3_K parts are 2 vectors: their x stay loaded up front.
        const inline = R === 1 && C === 1 && k.dotU8 && spec.vecs === 4;
        const x = (c: number, i: number) => () => {
          if (inline) f.get("px").mem("v128.load", c * k.stride + xAt(p, i));
          else f.get(`x${c}_${i}`);
        };
        const loadX = (c: number) => {
          if (inline) return;
          for (let i = 0; i < spec.vecs; i++) {
            f.get("px").mem("v128.load", c * k.stride + xAt(p, i)).set(`x${c}_${i}`);
          }
        };
        /** Row a's dot products with token c's part p, added into isum{a}_{c}. */
        const dots = (a: number, c: number) => {
          const isum = `isum${a}_${c}`;
          if (lanes) {
            for (let i = 0; i < spec.vecs; i++) {
              const w = () => f.get(`w${a}_${i}`);
              laneDot(f, x(c, i), w, `la${a}_${c}_${lanes.acc(p, i)}`, k.relaxed);
            }
            return;
          }
          const step = spec.sub / 16; // vectors per sub-block
          if (k.dotU8) {
            for (let v = 0; v < spec.vecs; v += 2 * step) {
              const j = Math.floor(xOff(p, v) / spec.sub);
              if (j % 2 || Math.floor(xOff(p, v + step) / spec.sub) !== j + 1) {
                throw new Error(`${spec.name}: sub-blocks ${j}, ${j + 1} are not a pair`);
              }
              const sub = (v0: number): [() => void, string][] =>
                Array.from({ length: step }, (_, u) => [x(c, v0 + u), `w${a}_${v0 + u}`]);
              const q = j >> 1;
              if (!paired.has(`${a}_${q >> 1}`)) {
                paired.add(`${a}_${q >> 1}`);
                spec.scales16(f, a, q >> 2);
                scalePairs(f, a, q >> 2, (q >> 1) & 1);
              }
              const sp = () => f.get(`sp${a}_${q}`);
              pairedDots(f, [sub(v), sub(v + step)], isum, sp, spec.hi16);
            }
            return;
          }
          for (let v = 0; v < spec.vecs; v += step) {
            const j = Math.floor(xOff(p, v) / spec.sub);
            const pairs: [string, string][] = [];
            for (let u = 0; u < step; u++) pairs.push([`x${c}_${v + u}`, `w${a}_${v + u}`]);
            f.get(isum);
            scaledDotI8(f, pairs, () => spec.scale(f, a, j, a * k.rowBytes), k.relaxed);
            f.op("i32x4.add").set(isum);
          }
        };
        if (C === 1) {
          for (let a = 0; a < R; a++) {
            spec.decode(k, a, a * k.rowBytes, p);
            if (a === 0) loadX(0);
            dots(a, 0);
          }
          continue;
        }
        for (let a = 0; a < R; a++) spec.decode(k, a, a * k.rowBytes, p);
        for (let c = 0; c < C; c++) {
          loadX(c);
          for (let a = 0; a < R; a++) dots(a, c);
        }
      }
      if (lanes) { for (let a = 0; a < R; a++) lanes.finish(k, a, spec.hi16 ?? false); }
      scaleAndAdd(k, spec);
    },
  };
}
