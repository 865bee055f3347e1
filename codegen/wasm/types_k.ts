/**
 * The K-quants (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; 256-element super-blocks) as {@linkcode KSpec}s
 * for the block code of `k_block.ts`: where each type keeps its scales and quants, and how
 * they are decoded into vectors of 16 quants (ggml-common.h, `dequantize_row_q{2..6}_K`).
 *
 * Quants are kept unsigned (Q3_K: `q2 | hbit << 2` in 0..7, offset 4; Q6_K: 0..63, offset
 * 32), so they are the i7 operand of the relaxed dot product; the offsets enter as
 * `- offset · Σ_j sc_j · Σq_x(j)` with the per-16 activation sums.
 *
 * Bit fields are moved with 16-bit shifts (`i16x8.shr_u`, `i16x8.shl`) and then masked:
 * WASM's byte shifts have no x86 instruction and cost a shift, a mask splat and an `and`,
 * while the mask that follows here already drops the bits a 16-bit shift carries across
 * bytes.
 *
 * @module
 */
import { type BlockCtx, type BlockEmitter, need } from "./block_code.ts";
import { f16HalvesToF32, lanes32 } from "./snippets.ts";
import type { WasmFunc } from "../wasm_asm.ts";
import { pushPackedVector, q6kLaneVector, q6kPartOffset } from "./q6k_pack.ts";
import { PAIR_UNITS } from "./q4k_pairs.ts";
import { type KSpec, kType, type LaneSums, splat16 } from "./k_block.ts";

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
  lanes: Q4K_LANES,
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

/**
 * Q4_K and Q5_K pairs in the lane order (`q4k_pairs.ts`): part p's low nibbles are lane
 * vectors 2p and 2p + 1 (sub-blocks 0..3, one per lane), its high nibbles 8 + 2p and 9 + 2p
 * (sub-blocks 4..7; Q4_K's × 16 with `dotU8`, as `Q4K_LIKE`'s decode leaves them: `hi16`).
 * Two locals each, by the part's parity, so that no chain of dependent dot products is longer
 * than four.
 */
const Q4K_LANES: LaneSums = {
  vector: (p, i) => 8 * (i >> 1) + 2 * p + (i & 1),
  acc: (p, i) => 2 * (i >> 1) + (p & 1),
  finish(k, a, hi16) {
    const f = k.f;
    f.comment(`row ${a}: isum = Σ lanes · [sc0..sc3] + Σ lanes · [sc4..sc7]`);
    f.get(`sc${a}`).op("i16x8.extend_low_i8x16_u").set("s16");
    f.get("s16").op("i32x4.extend_low_i16x8_u").set("scv0");
    f.get("s16").op("i32x4.extend_high_i16x8_u").set("scv1");
    for (let c = 0; c < k.C; c++) {
      const la = (q: number) => `la${a}_${c}_${q}`;
      f.get(la(0)).get(la(1)).op("i32x4.add").get("scv0").op("i32x4.mul");
      f.get(la(2)).get(la(3)).op("i32x4.add").get("scv1").op("i32x4.mul");
      if (hi16 && k.dotU8) f.i32(4).op("i32x4.shr_s"); // the high nibbles were × 16 (exact)
      f.op("i32x4.add").set(`isum${a}_${c}`);
    }
  },
};

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
  lanes: {
    vector: q6kLaneVector,
    // Vector i of every part is lane vector 4i + p: sub-blocks 8 (i >> 1) + 2l + (i & 1).
    acc: (_p, i) => i,
    finish(k, a) {
      const f = k.f;
      f.comment(`row ${a}: isum = Σ_i lanes_i · [sc_j: j = 8 (i >> 1) + 2l + (i & 1)]`);
      for (let i = 0; i < 4; i++) {
        // The i16 scales as i32 lanes hold the pairs (sc_2l, sc_2l+1): low and high halves.
        f.get(`sc16${a}_${i >> 1}`);
        if (!(i & 1)) f.i32(16).op("i32x4.shl");
        f.i32(16).op("i32x4.shr_s").set(`scv${i}`);
      }
      for (let c = 0; c < k.C; c++) {
        for (let i = 0; i < 4; i++) {
          f.get(`la${a}_${c}_${i}`).get(`scv${i}`).op("i32x4.mul");
          if (i) f.op("i32x4.add");
        }
        f.set(`isum${a}_${c}`);
      }
    },
  },
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
