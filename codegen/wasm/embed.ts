/**
 * The embedding lookup for weights in any supported type: `embed_<type>_D(e, token, y)`
 * dequantises row `token` of `token_embd` (vocab, D) into f32 y (D), element by element
 * from ggml's block layouts (the same formulas as `dequantize_row_*` in ggml-quants.c; see
 * `blocks.ts`). One row per token, so it is scalar code written to be read.
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";
import { checkPacked, rowBytes, WEIGHT_TYPES, type WeightTypeName } from "./blocks.ts";
import { f16Scalar } from "./snippets.ts";
import { pairUnit } from "./q4k_pairs.ts";

/** Pushes byte `b + off + index` (index an i32 expression pusher) as u8. */
function byteAt(f: WasmFunc, off: number, index: () => void): void {
  f.get("b");
  index();
  f.op("i32.add").wmem("i32.load8_u", off);
}

/** Pushes ((byteAt >> shift) & mask). */
function bits(f: WasmFunc, off: number, index: () => void, shift: () => void, mask: number) {
  byteAt(f, off, index);
  const before = f.body.length;
  shift();
  if (f.body.length !== before) f.op("i32.shr_u");
  f.i32(mask).op("i32.and");
}

/**
 * Sets `sc` and `m` of sub-block i of row `par` of a repacked Q4_K/Q5_K pair (`q4k_pairs.ts`,
 * rows of `unit` bytes per super-block) and `pg` to the pair's super-block (`b - unit · par`):
 * row 0 `P[i] & 63`, `P[8 + i] & 63`; row 1 the nibble k & 1 of `Q[k >> 1]` | `(P[k] >> 6) <<
 * 4`, k = i and 8 + i (P at `unit`, Q at 8).
 */
function pairScaleMin(f: WasmFunc, unit: number): void {
  f.comment("repacked pair (q4k_pairs.ts): pg = its super-block; row par's sc, m");
  f.get("b").get("par").i32(unit).op("i32.mul").op("i32.sub").set("pg");
  const at = (off: number, index: () => void) => {
    f.get("pg");
    index();
    f.op("i32.add").wmem("i32.load8_u", off);
  };
  const i = () => f.get("i"), half = () => f.get("i").i32(1).op("i32.shr_u");
  f.get("par").if();
  for (const [q, p, l] of [[8, unit, "sc"], [12, unit + 8, "m"]] as const) {
    at(q, half);
    f.get("i").i32(1).op("i32.and").i32(2).op("i32.shl").op("i32.shr_u").i32(15).op("i32.and");
    at(p, i);
    f.i32(6).op("i32.shr_u").i32(4).op("i32.shl").op("i32.or").set(l);
  }
  f.else();
  at(unit, i);
  f.i32(63).op("i32.and").set("sc");
  at(unit + 8, i);
  f.i32(63).op("i32.and").set("m");
  f.end();
}

const get = (f: WasmFunc, l: string) => () => {
  f.get(l);
};
const expr = (f: WasmFunc, code: (f: WasmFunc) => void) => () => code(f);

/**
 * The name of a row dequantiser: `embed_<type>_D[_mN][_iI][_p]` (memory N, rows interleaved in
 * groups of I, repacked).
 *
 * @param type Weight type of the table.
 * @param D Row length.
 * @param memory The memory the table is in.
 * @param interleave Rows per interleaved group.
 * @param packed Repacked (`q6k_pack.ts`, `q4k_pairs.ts`).
 * @returns The function name.
 */
export function embedName(
  type: WeightTypeName,
  D: number,
  memory = 0,
  interleave = 1,
  packed = false,
): string {
  return `embed_${type.toLowerCase()}_${D}${memory ? `_m${memory}` : ""}` +
    (interleave > 1 ? `_i${interleave}` : "") + (packed ? "_p" : "");
}

/**
 * Builds the row dequantiser of a type.
 *
 * @param type Weight type of `token_embd`.
 * @param D Row length (a multiple of the block size).
 * @param memory The memory the table is in (multi-memory; y is in memory 0).
 * @param interleave Rows per interleaved group of the table (`interleave.ts`; 1: row-major).
 * @param unit Bytes of one unit of an interleaved row (with `interleave` > 1): 8 elements of a
 *   float type, one block of a block type (`linear.ts` `interleaveUnit`).
 * @param packed The table's super-blocks are repacked: Q6_K (`q6k_pack.ts`), Q4_K or Q5_K
 *   in pairs (`q4k_pairs.ts`).
 * @returns {@linkcode embedName}`(e, token, y)`: byte offsets of the table and of y.
 * @throws {RangeError} for `packed` with another type (or Q4_K/Q5_K not interleaved in pairs).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { embedKernel } from "./embed.ts";
 * assert.equal(embedKernel("Q6_K", 256).name, "embed_q6_k_256");
 * ```
 */
export function embedKernel(
  type: WeightTypeName,
  D: number,
  memory = 0,
  interleave = 1,
  unit = 0,
  packed = false,
): WasmFunc {
  checkPacked("embedKernel", type, interleave, packed);
  const t = WEIGHT_TYPES[type];
  const rb = rowBytes(t, D), I = interleave;
  const f = new WasmFunc(embedName(type, D, memory, I, packed), [
    ["e", "i32"],
    ["token", "i32"],
    ["y", "i32"],
  ]);
  f.weightMemory = memory;
  for (const l of ["b", "j", "q", "sc", "m", "i", "out"]) f.local(l, "i32");
  f.local("d", "f32").local("dm", "f32");
  f.comment(`y (${D}) = dequantise(e[token]), ${t.name} rows of ${rb} bytes`);
  if (I > 1) {
    f.comment(`rows interleaved in groups of ${I}, ${unit} bytes per row and unit`);
    f.get("e").get("token").i32(-I).op("i32.and").i32(rb).op("i32.mul").op("i32.add");
    f.get("token").i32(I - 1).op("i32.and").i32(unit).op("i32.mul").op("i32.add").set("b");
  } else f.get("e").get("token").i32(rb).op("i32.mul").op("i32.add").set("b");
  const pair = packed ? pairUnit(type) : undefined; // a repacked pair's row block (q4k_pairs.ts)
  const pairs = pair !== undefined;
  if (pairs) f.local("par", "i32").local("pg", "i32").get("token").i32(1).op("i32.and").set("par");
  /** Pushes the address of element j of a float row: unit j >> 3 of the row, then j & 7. */
  const elem = (width: number) => {
    f.get("b");
    if (I > 1) {
      f.get("j").i32(3).op("i32.shr_u").i32(I * unit).op("i32.mul").op("i32.add");
      f.get("j").i32(7).op("i32.and").i32(width).op("i32.mul").op("i32.add");
    } else f.get("j").i32(width).op("i32.mul").op("i32.add");
  };
  f.get("y").set("out");
  const qk = t.blockElems;
  const store = (value: () => void) => {
    f.get("out").get("j").i32(4).op("i32.mul").op("i32.add");
    value();
    f.mem("f32.store");
  };
  if (qk === 1) {
    f.comment("element by element");
    f.loop("elems");
    store(() => {
      if (type === "F32") {
        elem(4);
        f.wmem("f32.load");
      } else if (type === "BF16") {
        elem(2);
        f.wmem("i32.load16_u").i32(16).op("i32.shl").op("f32.reinterpret_i32");
      } else {
        elem(2);
        f.set("i");
        f16Scalar(f, "i", 0);
      }
    });
    f.get("j").i32(1).op("i32.add").tee("j").i32(D).op("i32.lt_u").brIf("elems").end();
    return f;
  }
  f.comment(`block by block (${qk} elements, ${t.blockBytes} bytes), element j of the block`);
  f.loop("blocks");
  f.i32(0).set("j");
  f.loop("elems");
  const value = () => {
    switch (type) {
      case "Q8_0":
        f16Scalar(f, "b", 0);
        f.get("b").get("j").op("i32.add").wmem("i32.load8_s", 2).op("f32.convert_i32_s").op(
          "f32.mul",
        );
        return;
      case "Q4_0":
      case "Q4_1":
      case "Q5_0":
      case "Q5_1": {
        const hasM = type.endsWith("_1"), five = type.startsWith("Q5");
        const qs = 2 + (hasM ? 2 : 0) + (five ? 4 : 0), qh = hasM ? 4 : 2;
        f.comment("q = j < 16 ? lo(qs[j]) : hi(qs[j - 16])" + (five ? " | bit j of qh << 4" : ""));
        bits(
          f,
          qs,
          expr(f, (f) => f.get("j").i32(15).op("i32.and")),
          expr(f, (f) => f.get("j").i32(4).op("i32.shr_u").i32(2).op("i32.shl")),
          15,
        );
        if (five) {
          f.get("b").wmem("i32.load", qh, { align: 0 }).get("j").op("i32.shr_u").i32(1).op(
            "i32.and",
          );
          f.i32(4).op("i32.shl").op("i32.or");
        }
        if (!hasM) f.i32(five ? 16 : 8).op("i32.sub");
        f.op("f32.convert_i32_s");
        f16Scalar(f, "b", 0);
        f.op("f32.mul");
        if (hasM) {
          f16Scalar(f, "b", 2);
          f.op("f32.add");
        }
        return;
      }
      case "Q2_K":
        f.comment("q = (qs[32·(j/128) + j%32] >> 2·((j/32)%4)) & 3; sc = scales[j/16]");
        byteAt(f, 0, expr(f, (f) => f.get("j").i32(4).op("i32.shr_u")));
        f.set("sc");
        bits(
          f,
          16,
          expr(
            f,
            (f) =>
              f.get("j").i32(7).op("i32.shr_u").i32(32).op("i32.mul").get("j").i32(31).op("i32.and")
                .op("i32.add"),
          ),
          expr(
            f,
            (f) => f.get("j").i32(5).op("i32.shr_u").i32(3).op("i32.and").i32(2).op("i32.mul"),
          ),
          3,
        );
        f.get("sc").i32(15).op("i32.and").op("i32.mul").op("f32.convert_i32_s");
        f16Scalar(f, "b", 80);
        f.op("f32.mul");
        f16Scalar(f, "b", 82);
        f.get("sc").i32(4).op("i32.shr_u").op("f32.convert_i32_s").op("f32.mul").op("f32.sub");
        return;
      case "Q3_K":
        f.comment("sc_j16 = (lo 4 bits | hi 2 bits << 4) - 32; q = 2 bits - (hmask bit ? 0 : 4)");
        f.get("j").i32(4).op("i32.shr_u").set("i");
        bits(
          f,
          96,
          expr(f, (f) => f.get("i").i32(7).op("i32.and")),
          expr(f, (f) => f.get("i").i32(3).op("i32.shr_u").i32(2).op("i32.shl")),
          15,
        );
        bits(
          f,
          104,
          expr(f, (f) => f.get("i").i32(3).op("i32.and")),
          expr(f, (f) => f.get("i").i32(2).op("i32.shr_u").i32(1).op("i32.shl")),
          3,
        );
        f.i32(4).op("i32.shl").op("i32.or").i32(32).op("i32.sub").set("sc");
        bits(
          f,
          32,
          expr(
            f,
            (f) =>
              f.get("j").i32(7).op("i32.shr_u").i32(32).op("i32.mul").get("j").i32(31).op("i32.and")
                .op("i32.add"),
          ),
          expr(
            f,
            (f) => f.get("j").i32(5).op("i32.shr_u").i32(3).op("i32.and").i32(2).op("i32.mul"),
          ),
          3,
        );
        bits(
          f,
          0,
          expr(f, (f) => f.get("j").i32(31).op("i32.and")),
          expr(f, (f) => f.get("j").i32(5).op("i32.shr_u")),
          1,
        );
        f.i32(1).op("i32.xor").i32(2).op("i32.shl").op("i32.sub");
        f.get("sc").op("i32.mul").op("f32.convert_i32_s");
        f16Scalar(f, "b", 108);
        f.op("f32.mul");
        return;
      case "Q4_K":
      case "Q5_K": {
        const five = type === "Q5_K", qs = five ? 48 : 16;
        f.comment(
          "sub-block i = j/32: scale, min (get_scale_min_k4); q nibble" +
            (five ? " | qh bit i << 4" : ""),
        );
        f.get("j").i32(5).op("i32.shr_u").set("i");
        if (pairs) {
          pairScaleMin(f, pair!);
          f.get("pg").get("par").i32(2).op("i32.shl").op("i32.add").set("pg"); // row's d at pg
        } else {
          f.get("i").i32(4).op("i32.lt_u");
          f.if();
          bits(f, 4, get(f, "i"), () => {}, 63);
          f.set("sc");
          bits(f, 8, get(f, "i"), () => {}, 63);
          f.set("m");
          f.else();
          bits(f, 8, get(f, "i"), () => {}, 15);
          bits(f, 0, get(f, "i"), () => f.i32(6), 3);
          f.i32(4).op("i32.shl").op("i32.or").set("sc");
          bits(f, 8, get(f, "i"), () => f.i32(4), 15);
          bits(f, 4, get(f, "i"), () => f.i32(6), 3);
          f.i32(4).op("i32.shl").op("i32.or").set("m");
          f.end();
        }
        if (pairs) {
          f.comment(
            "repacked quants in the lane order (lanes.ts): byte 16 (j >> 2 & 7) + " +
              "4 (j >> 5 & 3) + (j & 3), nibble j >> 7",
          );
          bits(
            f,
            qs,
            expr(f, (f) => {
              f.get("j").i32(2).op("i32.shr_u").i32(7).op("i32.and").i32(16).op("i32.mul");
              f.get("j").i32(5).op("i32.shr_u").i32(3).op("i32.and").i32(4).op("i32.mul");
              f.op("i32.add").get("j").i32(3).op("i32.and").op("i32.add");
            }),
            expr(f, (f) => f.get("j").i32(7).op("i32.shr_u").i32(4).op("i32.mul")),
            15,
          );
        } else {
          bits(
            f,
            qs,
            expr(
              f,
              (f) =>
                f.get("j").i32(6).op("i32.shr_u").i32(32).op("i32.mul").get("j").i32(31).op(
                  "i32.and",
                ).op("i32.add"),
            ),
            expr(
              f,
              (f) => f.get("j").i32(5).op("i32.shr_u").i32(1).op("i32.and").i32(4).op("i32.mul"),
            ),
            15,
          );
        }
        if (five && pairs) {
          f.comment(
            "its qh bit in the lane order: byte 16 (j >> 2 & 1) + 4 (j >> 5 & 3) + (j & 3), " +
              "bit 2 (j >> 3 & 3) + (j >> 7)",
          );
          const byte = expr(f, (f) => {
            f.get("j").i32(2).op("i32.shr_u").i32(1).op("i32.and").i32(16).op("i32.mul");
            f.get("j").i32(5).op("i32.shr_u").i32(3).op("i32.and").i32(4).op("i32.mul");
            f.op("i32.add").get("j").i32(3).op("i32.and").op("i32.add");
          });
          bits(f, 16, byte, () => {
            f.get("j").i32(3).op("i32.shr_u").i32(3).op("i32.and").i32(1).op("i32.shl");
            f.get("j").i32(7).op("i32.shr_u").op("i32.add");
          }, 1);
          f.i32(4).op("i32.shl").op("i32.or");
        } else if (five) {
          bits(f, 16, expr(f, (f) => f.get("j").i32(31).op("i32.and")), get(f, "i"), 1);
          f.i32(4).op("i32.shl").op("i32.or");
        }
        f.get("sc").op("i32.mul").op("f32.convert_i32_s");
        f16Scalar(f, pairs ? "pg" : "b", 0);
        f.op("f32.mul");
        f16Scalar(f, pairs ? "pg" : "b", 2);
        f.get("m").op("f32.convert_i32_s").op("f32.mul").op("f32.sub");
        return;
      }
      case "Q6_K":
        if (packed) {
          f.comment(
            "packed (q6k_pack.ts), lane vector 8 (j >> 7) + (j >> 2 & 7) (lanes.ts): byte q = " +
              "48 · part (j >> 2 & 3) + 4 (j >> 5 & 3) + (j & 3) of vector i = 2 (j >> 7) + " +
              "(j >> 4 & 1): i < 3 its low 6 bits, else the top 2 bits of vectors 0, 1, 2; " +
              "minus 32; scale int8 per 16",
          );
          f.get("j").i32(2).op("i32.shr_u").i32(3).op("i32.and").i32(48).op("i32.mul");
          f.get("j").i32(5).op("i32.shr_u").i32(3).op("i32.and").i32(4).op("i32.mul");
          f.op("i32.add").get("j").i32(3).op("i32.and").op("i32.add").set("q");
          f.get("j").i32(7).op("i32.shr_u").i32(2).op("i32.mul");
          f.get("j").i32(4).op("i32.shr_u").i32(1).op("i32.and").op("i32.add").set("i");
          f.get("i").i32(3).op("i32.lt_u").if();
          bits(
            f,
            0,
            expr(f, (f) => f.get("q").get("i").i32(16).op("i32.mul").op("i32.add")),
            () => {},
            63,
          );
          f.set("m").else();
          bits(f, 0, get(f, "q"), () => f.i32(6), 3);
          bits(f, 16, get(f, "q"), () => f.i32(6), 3);
          f.i32(2).op("i32.shl").op("i32.or");
          bits(f, 32, get(f, "q"), () => f.i32(6), 3);
          f.i32(4).op("i32.shl").op("i32.or").set("m").end();
          f.get("m").i32(32).op("i32.sub");
          f.get("b").get("j").i32(4).op("i32.shr_u").op("i32.add").wmem("i32.load8_s", 192);
          f.op("i32.mul").op("f32.convert_i32_s");
          f16Scalar(f, "b", 208);
          f.op("f32.mul");
          return;
        }
        f.comment("q = ql nibble | qh 2 bits << 4, minus 32; scale int8 per 16");
        bits(
          f,
          0,
          expr(
            f,
            (f) =>
              f.get("j").i32(7).op("i32.shr_u").i32(64).op("i32.mul").get("j").i32(63).op("i32.and")
                .op("i32.add"),
          ),
          expr(
            f,
            (f) => f.get("j").i32(6).op("i32.shr_u").i32(1).op("i32.and").i32(4).op("i32.mul"),
          ),
          15,
        );
        bits(
          f,
          128,
          expr(
            f,
            (f) =>
              f.get("j").i32(7).op("i32.shr_u").i32(32).op("i32.mul").get("j").i32(31).op("i32.and")
                .op("i32.add"),
          ),
          expr(
            f,
            (f) => f.get("j").i32(5).op("i32.shr_u").i32(3).op("i32.and").i32(2).op("i32.mul"),
          ),
          3,
        );
        f.i32(4).op("i32.shl").op("i32.or").i32(32).op("i32.sub");
        f.get("b").get("j").i32(4).op("i32.shr_u").op("i32.add").wmem("i32.load8_s", 192);
        f.op("i32.mul").op("f32.convert_i32_s");
        f16Scalar(f, "b", 208);
        f.op("f32.mul");
        return;
    }
  };
  store(value);
  f.get("j").i32(1).op("i32.add").tee("j").i32(qk).op("i32.lt_u").brIf("elems").end();
  f.get("b").i32(I > 1 ? I * unit : t.blockBytes).op("i32.add").set("b");
  f.get("out").i32(qk * 4).op("i32.add").tee("out").get("y").i32(D * 4).op("i32.add");
  f.op("i32.lt_u").brIf("blocks").end();
  return f;
}
