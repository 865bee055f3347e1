/**
 * The weight types the WASM kernels read, with ggml's block geometry (ggml/src/ggml-common.h)
 * and the activation format each one's integer dot product pairs with (as llama.cpp's
 * `vec_dot_type`): F32/F16/BF16 weights multiply f32 activations; the 32-element blocks
 * (Q4_0 ... Q8_0) multiply activations quantised per 32 (`q8_0`); the K-quants (256-element
 * super-blocks) multiply activations quantised per 256 (`q8_K`).
 *
 * Byte layouts (little-endian; offsets in bytes inside one block):
 * - `Q4_0` 18: d f16 @0, qs[16] @2 — x[j] = (lo(qs[j]) - 8)·d, x[j+16] = (hi(qs[j]) - 8)·d
 * - `Q4_1` 20: d @0, m @2, qs[16] @4 — x = q·d + m
 * - `Q5_0` 22: d @0, qh u32 @2, qs[16] @6 — q = nibble | bit j of qh << 4, x = (q - 16)·d
 * - `Q5_1` 24: d @0, m @2, qh @4, qs[16] @8 — x = q·d + m
 * - `Q8_0` 34: d @0, qs i8[32] @2 — x = q·d
 * - `Q2_K` 84: scales[16] @0 (lo 4 bits scale, hi 4 bits min), qs[64] @16 (2 bits), d @80,
 *   dmin @82 — x = d·sc·q - dmin·m per 16
 * - `Q3_K` 110: hmask[32] @0, qs[64] @32, scales[12] @96 (16 × 6 bits, minus 32), d @108
 *   — x = d·sc·(q2 - 4·!hbit) per 16
 * - `Q4_K` 144: d @0, dmin @2, scales[12] @4 (8 scales + 8 mins, 6 bits), qs[128] @16
 *   — x = d·sc·q - dmin·m per 32
 * - `Q5_K` 176: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48 — as Q4_K, q 5 bits
 * - `Q6_K` 210: ql[128] @0, qh[64] @128, scales i8[16] @192, d @208 — x = d·sc·(q - 32)
 *   per 16
 *
 * @module
 */
import { pairUnit } from "./q4k_pairs.ts";

/** Activation format a weight type's kernels read: f32 rows, or quantised rows. */
export type ActFormat = "f32" | "q8_0" | "q8_K";

/** A weight type the kernels support. */
export interface WeightType {
  /** Name as llama.cpp prints it (`Q4_K`); kernel names use it lower-cased. */
  name: WeightTypeName;
  /** The `ggml_type` id stored in GGUF tensor infos. */
  id: number;
  /** Elements per block (1 for float types). */
  blockElems: number;
  /** Bytes per block. */
  blockBytes: number;
  /** The activation format its matrix products read. */
  act: ActFormat;
}

/** Names of the supported weight types. */
export type WeightTypeName =
  | "F32"
  | "F16"
  | "BF16"
  | "Q4_0"
  | "Q4_1"
  | "Q5_0"
  | "Q5_1"
  | "Q8_0"
  | "Q2_K"
  | "Q3_K"
  | "Q4_K"
  | "Q5_K"
  | "Q6_K";

/** Every supported weight type, by name. */
export const WEIGHT_TYPES: Record<WeightTypeName, WeightType> = Object.fromEntries(
  (
    [
      ["F32", 0, 1, 4, "f32"],
      ["F16", 1, 1, 2, "f32"],
      ["BF16", 30, 1, 2, "f32"],
      ["Q4_0", 2, 32, 18, "q8_0"],
      ["Q4_1", 3, 32, 20, "q8_0"],
      ["Q5_0", 6, 32, 22, "q8_0"],
      ["Q5_1", 7, 32, 24, "q8_0"],
      ["Q8_0", 8, 32, 34, "q8_0"],
      ["Q2_K", 10, 256, 84, "q8_K"],
      ["Q3_K", 11, 256, 110, "q8_K"],
      ["Q4_K", 12, 256, 144, "q8_K"],
      ["Q5_K", 13, 256, 176, "q8_K"],
      ["Q6_K", 14, 256, 210, "q8_K"],
    ] as [WeightTypeName, number, number, number, ActFormat][]
  ).map(([name, id, blockElems, blockBytes, act]) => [
    name,
    { name, id, blockElems, blockBytes, act },
  ]),
) as Record<WeightTypeName, WeightType>;

/**
 * Bytes of one row of `K` elements of a weight type.
 *
 * @param t The type.
 * @param K Elements per row (a multiple of `t.blockElems`).
 * @returns `K / blockElems · blockBytes`.
 * @throws {RangeError} when K is not a multiple of the block size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rowBytes, WEIGHT_TYPES } from "./blocks.ts";
 * assert.equal(rowBytes(WEIGHT_TYPES.Q4_K, 768), 432);
 * ```
 */
export function rowBytes(t: WeightType, K: number): number {
  if (!Number.isInteger(K) || K <= 0 || K % t.blockElems !== 0) {
    throw new RangeError(`${t.name}: row length ${K} is not a multiple of ${t.blockElems}`);
  }
  return (K / t.blockElems) * t.blockBytes;
}

/**
 * Layout of one quantised activation row (what the activation quantiser writes and the
 * integer kernels read): `K` int8 quants, then one metadata record per block.
 * - `q8_0` (blocks of 32), 28 bytes per block: `d` f32 @0, `s = d · Σq` f32 @4 (the offset
 *   and min terms of Q4_0 … Q5_1), i32x4 @8 whose lane i is `-128 ·` the sum of quants
 *   4i..4i+3 and 16+4i..16+4i+3 (the lanes of a relaxed dot product over the block's two
 *   16-byte halves): the correction of Q8_0's u8 dot product (`types_q32.ts`), and i32 @24
 *   `-128 · Σq`, the lanes' total (the panel's per-row form, `linear_panel_q8.ts`); both
 *   computed once per token and block here rather than once per register block of rows.
 * - `q8_K` (blocks of 256), 64 bytes per block: `d` f32 @0, Σq per 16 as i16[16] @16,
 *   Σq per 32 as i16[8] @48; after the records, the K quants again in the lane order of
 *   `lanes.ts` (`laneOffset`), which the repacked Q4_K pairs and packed Q6_K read.
 * - `f32`: the row itself, `4·K` bytes.
 */
export interface ActLayout {
  /** The format. */
  format: ActFormat;
  /** Elements per row. */
  K: number;
  /** Elements per block (32, 256; 1 for f32). */
  blockElems: number;
  /** Metadata bytes per block (0 for f32). */
  metaBytes: number;
  /** Byte offset of the metadata records from the row start (`K`; 0 for f32). */
  metaOffset: number;
  /**
   * Byte offset from the row start of the quants' copy in the lane order (`lanes.ts`), block
   * b at `laneOffset + 256 b`: `q8_K` only (null for the others).
   */
  laneOffset: number | null;
  /** Bytes per row, a multiple of 16. */
  stride: number;
}

/** Bytes of the metadata record of one q8_0 activation block (32 quants; {@linkcode ActLayout}). */
export const Q8_0_RECORD_BYTES = 28;
/** Bytes of the metadata record of one q8_K activation block (256 quants). */
const Q8_K_RECORD_BYTES = 64;

/**
 * The activation row layout of a format for rows of `K` elements.
 *
 * @param format The format.
 * @param K Elements per row (a multiple of the format's block size).
 * @returns The layout.
 * @throws {RangeError} when K is not a multiple of the block size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { actLayout } from "./blocks.ts";
 * assert.equal(actLayout("q8_0", 768).stride, 1440); // 768 quants + 24 blocks × 28 bytes
 * ```
 */
export function actLayout(format: ActFormat, K: number): ActLayout {
  if (format === "f32") {
    return {
      format,
      K,
      blockElems: 1,
      metaBytes: 0,
      metaOffset: 0,
      laneOffset: null,
      stride: 4 * K,
    };
  }
  const blockElems = format === "q8_0" ? 32 : 256;
  const metaBytes = format === "q8_0" ? Q8_0_RECORD_BYTES : Q8_K_RECORD_BYTES;
  if (!Number.isInteger(K) || K <= 0 || K % blockElems !== 0) {
    throw new RangeError(
      `${format} activations: row length ${K} is not a multiple of ${blockElems}`,
    );
  }
  const records = K + (K / blockElems) * metaBytes;
  const laneOffset = format === "q8_K" ? records : null;
  const bytes = records + (laneOffset === null ? 0 : K);
  return {
    format,
    K,
    blockElems,
    metaBytes,
    metaOffset: K,
    laneOffset,
    stride: Math.ceil(bytes / 16) * 16,
  };
}

/**
 * Whether the kernels have a layout repacked at load for a matrix of this type and
 * interleave (`interleave.ts`): Q6_K (`q6k_pack.ts`), and Q4_K and Q5_K interleaved in pairs
 * (`q4k_pairs.ts`). The load repacks every such matrix that only the kernels read.
 *
 * @param type The weight type.
 * @param interleave Rows per interleaved group (1: row-major).
 * @returns Whether there is a repacked layout.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasPackedLayout } from "./blocks.ts";
 * assert.equal(hasPackedLayout("Q4_K", 2), true);
 * assert.equal(hasPackedLayout("Q4_K", 1), false);
 * ```
 */
export function hasPackedLayout(type: WeightTypeName, interleave: number): boolean {
  return type === "Q6_K" || (pairUnit(type) !== undefined && interleave === 2);
}

/**
 * Throws unless `packed` (a layout repacked at load) is one the kernels have
 * ({@linkcode hasPackedLayout}).
 *
 * @param what The caller, for the message.
 * @param type The weight type.
 * @param interleave Rows per interleaved group.
 * @param packed Whether the layout is repacked.
 * @throws {RangeError} naming the type and interleave.
 */
export function checkPacked(
  what: string,
  type: WeightTypeName,
  interleave: number,
  packed: boolean,
): void {
  if (packed && !hasPackedLayout(type, interleave)) {
    throw new RangeError(
      `${what}: packed ${type} with interleave ${interleave}: only Q6_K, and Q4_K/Q5_K in pairs`,
    );
  }
}
