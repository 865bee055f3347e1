/**
 * Block code of the K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; 256-element super-blocks)
 * against `q8_K` activations, following ggml's `ggml_vec_dot_q{2..6}_K_q8_K`: per
 * sub-block (16 or 32 elements) an integer dot product of the weight quants with the
 * activation quants, multiplied by the sub-block's integer scale and summed in int32 over
 * the super-block; then one f32 scale `d_w · d_x` (and, for the types with mins,
 * `- dmin_w · d_x · Σ_j m_j · Σq_x(j)` from the activation block sums).
 *
 * Quants are kept unsigned (Q3_K: `q2 | hbit << 2` in 0..7, offset 4; Q6_K: 0..63, offset
 * 32), so they are the i7 operand of the relaxed dot product; the offsets enter as
 * `- offset · Σ_j sc_j · Σq_x(j)` with the per-16 activation sums.
 *
 * Where the runtime's 32-bit relaxed dot product is x86 `vpdpbusd` (`BlockCtx.dotU8`),
 * sub-blocks go in pairs ({@linkcode pairedDots}): one i32x4 of dot products per sub-block,
 * the pair narrowed to i16 and scaled by one `i32x4.dot_i16x8_s`. Elsewhere each sub-block
 * is a 16-bit relaxed dot product (`pmaddubsw`) times its splat scale.
 *
 * Bit fields are moved with 16-bit shifts (`i16x8.shr_u`, `i16x8.shl`) and then masked:
 * WASM's byte shifts have no x86 instruction and cost a shift, a mask splat and an `and`,
 * while the mask that follows here already drops the bits a 16-bit shift carries across
 * bytes.
 *
 * @module
 */
import { WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { addScaled, type BlockCtx, type BlockEmitter, f16Vectors, need } from "./block_code.ts";
import { f16HalvesToF32, lanes32, scaledDotI8, splatLane } from "./snippets.ts";
import type { WasmFunc } from "../wasm_asm.ts";
import { pushPackedVector, q6kPartOffset } from "./q6k_pack.ts";
import { PAIR_UNITS } from "./q4k_pairs.ts";

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
const splat16 = (j: number) => Array.from({ length: 16 }, (_, i) => 2 * j + (i & 1));

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

/** Per-type geometry and code. */
interface KSpec {
  name: WeightTypeName;
  /** Vectors (16 elements each) per part. */
  vecs: number;
  /** Parts per super-block. */
  parts: number;
  /**
   * With `BlockCtx.dotU8`: `decode` leaves the second sub-block of each pair × 16 (Q4_K's high
   * nibbles masked in place, `q & 0xf0`: one `and` where a shift and an `and` took out `q >> 4`),
   * and {@linkcode pairedDots} shifts its sums right by 4 (exact) before narrowing them.
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
  /** Element offset of vector i of part p (default: parts are contiguous). */
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
}

/** `isum -= (Σ_j sc_j · bsum16_j) << shift`, sc{a} holding 16 signed i8 scales. */
function signedOffset(k: BlockCtx, a: number, c: number, scv: string, shift: number): void {
  const f = k.f, o = c * k.stride;
  f.comment(`offset: - ${1 << shift} · Σ_j sc_j · Σq_x(j) over the 16 sub-blocks`);
  f.get(`isum${a}_${c}`);
  f.get(scv).op("i16x8.extend_low_i8x16_s").get("pd").mem("v128.load", o + 16);
  f.op("i32x4.dot_i16x8_s");
  f.get(scv).op("i16x8.extend_high_i8x16_s").get("pd").mem("v128.load", o + 32);
  f.op("i32x4.dot_i16x8_s").op("i32x4.add").i32(shift).op("i32x4.shl");
  f.op("i32x4.sub").set(`isum${a}_${c}`);
}

/** Pushes ((v >> from) & 1) moved to bit `to` as i8x16 (v a local), masked by `mask`. */
function moveBits(f: WasmFunc, v: string, from: number, to: number, mask: string): void {
  f.get(v);
  if (to > from) f.i32(to - from).op("i16x8.shl");
  else if (from > to) f.i32(from - to).op("i16x8.shr_u");
  f.get(mask).op("v128.and");
}

/** i32x4 constants of the Q4_K/Q5_K scale unpacking, by local name. */
export const SCALE_MIN_CONSTS: Record<string, [number, number, number, number]> = {
  k_w3: [0, 0, 0, -1],
  k_lo: [0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f],
  k_hi: [0, 0x30303030, 0, 0x30303030],
};

/**
 * Scale-word unpacking of Q4_K/Q5_K (ggml `get_scale_min_k4`) on the 3 words u0, u1, u2 of
 * `scales[12]` (at `addr + o + 4`, weight memory) into the v128 local `dst`, all four result
 * words at once (uses the locals `tmp`, `qh` and {@linkcode SCALE_MIN_CONSTS}): sc0..3 =
 * u0 & 0x3f3f3f3f, sc4..7 = (u2 & 0x0f0f0f0f) | ((u0 >> 6) & 0x03030303) << 4, m0..3 =
 * u1 & 0x3f3f3f3f, m4..7 =
 * ((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 6) & 0x03030303) << 4 (`(u >> 6 & 3) << 4` per byte
 * is `u >> 2 & 0x30`).
 */
export function unpackScaleMin(f: WasmFunc, dst: string, o: number, addr = "pw"): void {
  f.comment("scales[12] → sc0..7 (bytes 0..7), m0..7 (bytes 8..15)");
  f.get(addr).wmem("v128.load", o + 4, { align: 0 }).set("tmp");
  f.comment("[u0, u2, u1, u2 >> 4] & [3f.., 0f.., 3f.., 0f..]");
  f.get("tmp").get("tmp").shuffle(lanes32([0, 2, 1, 2])).set("qh");
  f.get("qh").i32(4).op("i32x4.shr_u").get("qh").get("k_w3").op("v128.bitselect");
  f.get("k_lo").op("v128.and");
  f.comment("| [u0, u0, u1, u1] >> 2 & [0, 30.., 0, 30..]");
  f.get("tmp").get("tmp").shuffle(lanes32([0, 0, 1, 1])).i32(2).op("i32x4.shr_u");
  f.get("k_hi").op("v128.and").op("v128.or").set(dst);
}

/**
 * Scale unpacking of a repacked Q4_K/Q5_K row pair (`q4k_pairs.ts`) at `addr + o` (row 0's
 * block, weight memory) into the v128 locals `dst0` and `dst1` (sc0..7 in bytes 0..7, m0..7 in
 * bytes 8..15 of each row): `dst0 = P & 0x3f`; `dst1 = ((x | x << 4) & 0x0f) | (P >> 2 & 0x30)`, x the
 * 8 bytes of Q widened to 16-bit lanes. 9 operations for both rows (uses the locals `tmp`,
 * `qh`, `c3f`, `c0f`, `c30`).
 *
 * @param f The function.
 * @param dst0 The v128 local row 0's scales go to.
 * @param dst1 The v128 local row 1's scales go to.
 * @param o Byte offset of the pair's super-block from `addr`.
 * @param addr The i32 local holding the address.
 * @param unit Bytes of one row's super-block (`q4k_pairs.ts` `PAIR_UNITS`): P's offset.
 */
export function unpackPairScales(
  f: WasmFunc,
  dst0: string,
  dst1: string,
  o: number,
  addr: string,
  unit: number,
): void {
  f.comment("row pair's scales (q4k_pairs.ts): P & 3f; Q nibbles | (P >> 6) << 4");
  f.get(addr).wmem("v128.load", o + unit, { align: 0 }).set("tmp");
  f.get("tmp").get("c3f").op("v128.and").set(dst0);
  f.get(addr).wmem("v128.load8x8_u", o + 8, { align: 0 }).set("qh");
  f.get("qh").get("qh").i32(4).op("i16x8.shl").op("v128.or").get("c0f").op("v128.and");
  f.get("tmp").i32(2).op("i16x8.shr_u").get("c30").op("v128.and").op("v128.or").set(dst1);
}

/**
 * Scale unpacking of Q3_K (ggml `dequantize_row_q3_K`'s `aux` words) on the 3 words u0, u1,
 * u2 of `scales[12]` (at `addr + o + 96`, weight memory) into the v128 local `dst`: 16 signed
 * 6-bit scales, byte j = ((low nibble j) | (2 bits of u2) << 4) - 32, word by word
 * (uses the i32 locals `u0`, `u1`, `u2`).
 *
 * @param f The function.
 * @param dst The v128 local the 16 scales go to.
 * @param o Byte offset of the block from `addr`.
 * @param addr The i32 local holding the block's address.
 */
export function unpackQ3Scales(f: WasmFunc, dst: string, o: number, addr = "pw"): void {
  f.comment("scales[12] → 16 signed 6-bit scales (bytes 0..15), minus 32");
  f.get(addr).wmem("i32.load", o + 96, { align: 0 }).set("u0");
  f.get(addr).wmem("i32.load", o + 100, { align: 0 }).set("u1");
  f.get(addr).wmem("i32.load", o + 104, { align: 0 }).set("u2");
  const word = (src: string, lowShift: number, hiShift: number) => {
    f.get(src);
    if (lowShift) f.i32(lowShift).op("i32.shr_u");
    f.i32(0x0f0f0f0f).op("i32.and").get("u2");
    if (hiShift) f.i32(hiShift).op("i32.shr_u");
    f.i32(0x03030303).op("i32.and").i32(4).op("i32.shl").op("i32.or");
  };
  word("u0", 0, 0);
  f.op("i32x4.splat");
  word("u1", 0, 2);
  f.lane("i32x4.replace_lane", 1);
  word("u0", 4, 4);
  f.lane("i32x4.replace_lane", 2);
  word("u1", 4, 6);
  f.lane("i32x4.replace_lane", 3);
  f.i8x16(new Array(16).fill(32)).op("i8x16.sub").set(dst);
}

/**
 * The Q4_K/Q5_K prologue after the scales: i16 scales for the 16-bit path, Q5_K's `qh` bits.
 */
function q4kLikeRest(k: BlockCtx, a: number, o: number, name: "Q4_K" | "Q5_K"): void {
  const f = k.f;
  if (!k.dotU8) f.get(`sc${a}`).op("i16x8.extend_low_i8x16_u").set(`sc16${a}_0`);
  if (name === "Q5_K") {
    f.get("pw").wmem("v128.load", o + 16).set(`qh${a}_0`);
    f.get("pw").wmem("v128.load", o + 32).set(`qh${a}_1`);
  }
}

/** Mins term of Q4_K/Q5_K: mins{a}_{c} = Σ_j m_j · Σq_x(j) (per 32). */
function minsPer32(k: BlockCtx, a: number, c: number): void {
  const f = k.f;
  f.get(`sc${a}`).op("i16x8.extend_high_i8x16_u").get("pd").mem("v128.load", c * k.stride + 48);
  f.op("i32x4.dot_i16x8_s").set(`mins${a}_${c}`);
}

function Q4K_LIKE(name: "Q4_K" | "Q5_K"): KSpec {
  const hi16 = name === "Q4_K"; // KSpec.hi16: the decode and pairedDots both follow it
  return {
    name,
    vecs: 4,
    parts: 4,
    mins: true,
    sub: 32,
    scales: [0, 2],
    prologue(k, a, o) {
      unpackScaleMin(k.f, `sc${a}`, o);
      q4kLikeRest(k, a, o, name);
    },
    decode(k, a, o, p) {
      const f = k.f, qs = o + (name === "Q4_K" ? 16 : 48) + 32 * p;
      f.comment(`row ${a}, elements ${64 * p} .. ${64 * p + 63}: low nibbles, then high nibbles`);
      f.get("pw").wmem("v128.load", qs).set(`w${a}_2`);
      f.get("pw").wmem("v128.load", qs + 16).set(`w${a}_3`);
      f.get(`w${a}_2`).get("c0f").op("v128.and").set(`w${a}_0`);
      f.get(`w${a}_3`).get("c0f").op("v128.and").set(`w${a}_1`);
      if (hi16 && k.dotU8) {
        // KSpec.hi16: 16 × the high nibbles, the u8 operand; pairedDots divides their sums by 16.
        f.get(`w${a}_2`).get("c0f").op("v128.andnot").set(`w${a}_2`);
        f.get(`w${a}_3`).get("c0f").op("v128.andnot").set(`w${a}_3`);
      } else {
        f.get(`w${a}_2`).i32(4).op("i16x8.shr_u").get("c0f").op("v128.and").set(`w${a}_2`);
        f.get(`w${a}_3`).i32(4).op("i16x8.shr_u").get("c0f").op("v128.and").set(`w${a}_3`);
      }
      if (name === "Q5_K") {
        for (let i = 0; i < 4; i++) {
          const bit = 2 * p + (i >> 1);
          f.get(`w${a}_${i}`);
          moveBits(f, `qh${a}_${i & 1}`, bit, 4, "c10");
          f.op("v128.or").set(`w${a}_${i}`);
        }
      }
    },
    scale(f, a, j) {
      f.get(`sc16${a}_0`).get(`sc16${a}_0`).shuffle(splat16(j));
    },
    scales16(f, a) {
      f.get(`sc${a}`).op("i16x8.extend_low_i8x16_u"); // where used: one vector less to keep
    },
    offsets: minsPer32,
    consts: SCALE_MIN_CONSTS,
    hi16,
  };
}

/**
 * Q4_K or Q5_K repacked in row pairs at load (`q4k_pairs.ts`): R even, rows a and a + 1 one
 * pair. The pair's four f16 scales are one 8-byte load, its 16 six-bit scales and mins one
 * {@linkcode unpackPairScales}; the quants (and Q5_K's `qh`) are where ggml stores them.
 */
const PAIRS_DEF = (name: "Q4_K" | "Q5_K"): KSpec => ({
  ...Q4K_LIKE(name),
  prologue(k, a, o) {
    if (k.R % 2) throw new RangeError(`${name} pairs: ${k.R} rows per register block, not even`);
    if (a % 2 === 0) unpackPairScales(k.f, `sc${a}`, `sc${a + 1}`, o, "pw", PAIR_UNITS[name]);
    q4kLikeRest(k, a, o, name);
  },
  rowScales(k) {
    for (let a = 0; a < k.R; a += 2) {
      need(k.f, `dsv${a >> 1}`, "v128");
      need(k.f, "_h4", "v128");
      k.f.comment(`rows ${a}, ${a + 1}: f16 d, dmin, d, dmin at byte ${a * k.rowBytes}`);
      k.f.get("pw").wmem("v128.load64_zero", a * k.rowBytes, { align: 0 }).set("_h4");
      f16HalvesToF32(k.f, `dsv${a >> 1}`, k.fp16);
    }
  },
});

const Q6_K_DEF: KSpec = {
  name: "Q6_K",
  vecs: 4,
  parts: 4,
  mins: false,
  sub: 16,
  scales: [208],
  prologue(k, a, o) {
    const f = k.f;
    f.get("pw").wmem("v128.load", o + 192).set(`sc${a}`);
    f.comment(`row ${a}: the 16 sub-block scales as i16 (8 per vector), splat by a shuffle each`);
    f.get(`sc${a}`).op("i16x8.extend_low_i8x16_s").set(`sc16${a}_0`);
    f.get(`sc${a}`).op("i16x8.extend_high_i8x16_s").set(`sc16${a}_1`);
  },
  decode(k, a, o, p) {
    // Part p = (g, s0): chunks s0 and s0 + 2 of half g share their ql and qh bytes.
    const f = k.f, g = p >> 1, s0 = p & 1;
    f.comment(`row ${a}, chunks ${4 * g + s0} and ${4 * g + s0 + 2}: ql nibble | qh 2 bits << 4`);
    for (const v of [0, 1]) {
      // Chunks s0 and s0 + 2 share these ql bytes (low and high nibbles) and qh bytes.
      f.get("pw").wmem("v128.load", o + 64 * g + 32 * s0 + 16 * v).set("tmp");
      f.get("pw").wmem("v128.load", o + 128 + 32 * g + 16 * v).set("qh");
      for (const [i, s] of [[0, s0], [2, s0 + 2]]) {
        const w = `w${a}_${i + v}`;
        f.get("tmp");
        if (s >> 1) f.i32(4).op("i16x8.shr_u");
        f.get("c0f").op("v128.and");
        // ((qh >> 2s) & 3) << 4 = qh moved by 4 - 2s, masked to 0x30.
        f.get("qh");
        if (2 * s < 4) f.i32(4 - 2 * s).op("i16x8.shl");
        else if (2 * s > 4) f.i32(2 * s - 4).op("i16x8.shr_u");
        f.get("c30").op("v128.and").op("v128.or").set(w);
      }
    }
  },
  xOff: q6kPartOffset,
  scale(f, a, j) {
    f.get(`sc16${a}_${j >> 3}`).get(`sc16${a}_${j >> 3}`).shuffle(splat16(j & 7));
  },
  scales16(f, a, h) {
    f.get(`sc16${a}_${h}`);
  },
  offsets(k, a, c) {
    signedOffset(k, a, c, `sc${a}`, 5);
  },
};

/**
 * Q6_K with its quants packed at load (`q6k_pack.ts`): part p's four vectors w0..w3 (the
 * elements of `xOff(p, i)`) are three vectors at 48p: `A = w0 | (w3 & 3) << 6`,
 * `B = w1 | (w3 >> 2 & 3) << 6`, `C = w2 | (w3 >> 4) << 6`; scales and d where they were.
 */
const Q6_K_PACKED_DEF: KSpec = {
  ...Q6_K_DEF,
  decode(k, a, o, p) {
    const f = k.f, w = (i: number) => `w${a}_${i}`;
    f.comment(`row ${a}, part ${p}: w0..w2 = the low 6 bits of A, B, C; w3 = their top 2 bits`);
    for (const i of [0, 1, 2]) f.get("pw").wmem("v128.load", o + 48 * p + 16 * i).set(w(i));
    for (const i of [3, 0, 1, 2]) { // w3 first, from A, B, C as loaded
      pushPackedVector(f, i, (j) => f.get(w(j)));
      f.set(w(i));
    }
  },
};

const Q3_K_DEF: KSpec = {
  name: "Q3_K",
  vecs: 2,
  parts: 8,
  mins: false,
  sub: 16,
  scales: [108],
  prologue(k, a, o) {
    const f = k.f;
    unpackQ3Scales(f, `sc${a}`, o);
    f.get("pw").wmem("v128.load", o).set(`qh${a}_0`);
    f.get("pw").wmem("v128.load", o + 16).set(`qh${a}_1`);
  },
  decode(k, a, o, p) {
    const f = k.f, g = p >> 2, s = p & 3;
    f.comment(`row ${a}, elements ${32 * p} .. ${32 * p + 31}: 2 bits | hmask bit ${p} << 2`);
    for (const v of [0, 1]) {
      f.get("pw").wmem("v128.load", o + 32 + 32 * g + 16 * v);
      if (s) f.i32(2 * s).op("i16x8.shr_u");
      f.get("c03").op("v128.and");
      moveBits(f, `qh${a}_${v}`, p, 2, "c04");
      f.op("v128.or").set(`w${a}_${v}`);
    }
  },
  scale(f, a, j) {
    f.get(`sc${a}`).get(`sc${a}`).shuffle(new Array(16).fill(j)).i32(8).op("i16x8.shr_s");
  },
  scales16(f, a, h) {
    f.get(`sc${a}`).op(h ? "i16x8.extend_high_i8x16_s" : "i16x8.extend_low_i8x16_s");
  },
  offsets(k, a, c) {
    signedOffset(k, a, c, `sc${a}`, 2);
  },
};

const Q2_K_DEF: KSpec = {
  name: "Q2_K",
  vecs: 2,
  parts: 8,
  mins: true,
  sub: 16,
  scales: [80, 82],
  prologue(k, a, o) {
    const f = k.f;
    f.get("pw").wmem("v128.load", o).set(`sc${a}`);
    f.get(`sc${a}`).get("c0f").op("v128.and").set("tmp");
    f.get("tmp").op("i16x8.extend_low_i8x16_u").set(`sc16${a}_0`);
    f.get("tmp").op("i16x8.extend_high_i8x16_u").set(`sc16${a}_1`);
  },
  decode(k, a, o, p) {
    const f = k.f, g = p >> 2, s = p & 3;
    f.comment(`row ${a}, elements ${32 * p} .. ${32 * p + 31}: bits ${2 * s}..${2 * s + 1}`);
    for (const v of [0, 1]) {
      f.get("pw").wmem("v128.load", o + 16 + 32 * g + 16 * v);
      if (s) f.i32(2 * s).op("i16x8.shr_u");
      f.get("c03").op("v128.and").set(`w${a}_${v}`);
    }
  },
  scale(f, a, j) {
    f.get(`sc16${a}_${j >> 3}`).get(`sc16${a}_${j >> 3}`).shuffle(splat16(j & 7));
  },
  scales16(f, a, h) {
    f.get(`sc16${a}_${h}`);
  },
  offsets(k, a, c) {
    const f = k.f, o = c * k.stride;
    f.comment("mins: Σ_j m_j · Σq_x(j) over the 16 sub-blocks");
    f.get(`sc${a}`).i32(4).op("i16x8.shr_u").get("c0f").op("v128.and").set("qh");
    f.get("qh").op("i16x8.extend_low_i8x16_u").get("pd").mem("v128.load", o + 16);
    f.op("i32x4.dot_i16x8_s");
    f.get("qh").op("i16x8.extend_high_i8x16_u").get("pd").mem("v128.load", o + 32);
    f.op("i32x4.dot_i16x8_s").op("i32x4.add").set(`mins${a}_${c}`);
  },
};

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

function kType(spec: KSpec): BlockEmitter {
  const t = WEIGHT_TYPES[spec.name];
  const per = spec.vecs * 16; // elements per part
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
        }
      }
      for (let g = 0; g < Math.ceil(scaleLane(R, spec.mins) / 4); g++) need(f, `dd${g}`, "v128");
      for (let c = 0; c < C; c++) {
        for (let i = 0; i < spec.vecs; i++) need(f, `x${c}_${i}`, "v128");
      }
      for (const l of ["u0", "u1", "u2"]) need(f, l, "i32");
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
      if (spec.rowScales) spec.rowScales(k);
      else rowScales(k, spec.scales);
      for (let a = 0; a < R; a++) {
        f.comment(`row ${a}: super-block scales`);
        spec.prologue(k, a, a * k.rowBytes);
        for (let c = 0; c < C; c++) f.zeroV128().set(`isum${a}_${c}`);
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
          if (inline) f.get("px").mem("v128.load", c * k.stride + xOff(p, i));
          else f.get(`x${c}_${i}`);
        };
        const loadX = (c: number) => {
          if (inline) return;
          for (let i = 0; i < spec.vecs; i++) {
            f.get("px").mem("v128.load", c * k.stride + xOff(p, i)).set(`x${c}_${i}`);
          }
        };
        /** Row a's dot products with token c's part p, added into isum{a}_{c}. */
        const dots = (a: number, c: number) => {
          const isum = `isum${a}_${c}`;
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
      scaleAndAdd(k, spec);
    },
  };
}

/** Q2_K: 2-bit quants, 4-bit scale and min per 16. */
export const Q2_K: BlockEmitter = kType(Q2_K_DEF);
/** Q3_K: 3-bit quants (2 bits + hmask), 6-bit signed scale per 16. */
export const Q3_K: BlockEmitter = kType(Q3_K_DEF);
/** Q4_K: 4-bit quants, 6-bit scale and min per 32. */
export const Q4_K: BlockEmitter = kType(Q4K_LIKE("Q4_K"));
/** Q5_K: 5-bit quants (nibble + qh bit), 6-bit scale and min per 32. */
export const Q5_K: BlockEmitter = kType(Q4K_LIKE("Q5_K"));
/** Q6_K: 6-bit quants (ql nibble + 2 qh bits), 8-bit signed scale per 16. */
export const Q6_K: BlockEmitter = kType(Q6_K_DEF);
/** Q4_K repacked in row pairs at load (`q4k_pairs.ts`): both rows' scales in 9 operations. */
export const Q4_K_PAIRS: BlockEmitter = kType(PAIRS_DEF("Q4_K"));
/** Q5_K repacked in row pairs at load (`q4k_pairs.ts`), as {@linkcode Q4_K_PAIRS}. */
export const Q5_K_PAIRS: BlockEmitter = kType(PAIRS_DEF("Q5_K"));
/** Q6_K with its quants packed at load (`q6k_pack.ts`): 3 vectors per 4 decoded. */
export const Q6_K_PACKED: BlockEmitter = kType(Q6_K_PACKED_DEF);
