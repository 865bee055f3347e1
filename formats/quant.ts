/**
 * ggml tensor types: the table of every `ggml_type` a GGUF file may name, and conversion
 * of their blocks to and from F32 (ggml/src/ggml-common.h block layouts; the reference
 * `dequantize_row_*` and `quantize_row_*_ref` of ggml/src/ggml-quants.c).
 *
 * | id | name | block | bytes | bits/weight | dequantize | quantize | layout |
 * |---:|------|------:|------:|------:|:--:|:--:|--------|
 * |  0 | F32  |   1 |   4 | 32    | ✓ | ✓ | IEEE single |
 * |  1 | F16  |   1 |   2 | 16    | ✓ | ✓ | IEEE half (round to nearest even) |
 * | 30 | BF16 |   1 |   2 | 16    | ✓ | ✓ | upper half of an F32 (round to nearest even) |
 * |  2 | Q4_0 |  32 |  18 | 4.5   | ✓ | ✓ | formats/quant/legacy.ts |
 * |  3 | Q4_1 |  32 |  20 | 5     | ✓ | ✓ | formats/quant/legacy.ts |
 * |  6 | Q5_0 |  32 |  22 | 5.5   | ✓ | ✓ | formats/quant/legacy.ts |
 * |  7 | Q5_1 |  32 |  24 | 6     | ✓ | ✓ | formats/quant/legacy.ts |
 * |  8 | Q8_0 |  32 |  34 | 8.5   | ✓ | ✓ | formats/quant/legacy.ts |
 * |  9 | Q8_1 |  32 |  36 | 9     | ✓ | ✓ | formats/quant/legacy.ts (activations) |
 * | 10 | Q2_K | 256 |  84 | 2.625 | ✓ | ✓ | formats/quant/kquants.ts |
 * | 11 | Q3_K | 256 | 110 | 3.4375| ✓ | ✓ | formats/quant/kquants.ts |
 * | 12 | Q4_K | 256 | 144 | 4.5   | ✓ | ✓ | formats/quant/kquants.ts |
 * | 13 | Q5_K | 256 | 176 | 5.5   | ✓ | ✓ | formats/quant/kquants.ts |
 * | 14 | Q6_K | 256 | 210 | 6.5625| ✓ | ✓ | formats/quant/kquants.ts |
 * | 15 | Q8_K | 256 | 292 | 9.125 | ✓ | ✓ | formats/quant/kquants.ts (activations) |
 *
 * IQ1_S/M, IQ2_XXS/XS/S, IQ3_XXS/S, IQ4_NL/XS, TQ1_0, TQ2_0, MXFP4, I8..I64 and F64 are in
 * the table (so a header parses and errors can name them) but are refused:
 * {@linkcode requireSupported} raises a one-line error naming the tensor and the type.
 *
 * K-quant quantisers run the search llama.cpp uses without an importance matrix
 * (`make_qkx2_quants`, `make_qx_quants`, `make_q3_quants`), in F32 arithmetic, so their
 * blocks equal `llama-quantize`'s bit for bit.
 *
 * @module
 */
import { bf16ToF32, f16Table, f32BitsToBf16Bits, f32BitsToF16Bits } from "../core/numbers.ts";
import { FormatError } from "../core/errors.ts";
import * as legacy from "./quant/legacy.ts";
import * as k from "./quant/kquants.ts";

/** A ggml tensor type: its GGUF id, name, and storage geometry. */
export interface GgmlType {
  /** The `ggml_type` enum value stored in GGUF tensor infos. */
  id: number;
  /** Name as llama.cpp prints it (`F32`, `Q8_0`, ...). */
  name: string;
  /** Elements per block (1 for plain float types). */
  blockSize: number;
  /** Bytes per block. */
  blockBytes: number;
  /** Whether {@linkcode dequantize} (and {@linkcode quantize}) support it. */
  supported: boolean;
}

type Row = { dequantize: legacy.DequantizeRow; quantize: legacy.QuantizeRow };

/** Block codecs by type name (the plain float types are handled inline). */
const CODECS: Record<string, Row> = {
  Q4_0: { dequantize: legacy.dequantizeRowQ4_0, quantize: legacy.quantizeRowQ4_0 },
  Q4_1: { dequantize: legacy.dequantizeRowQ4_1, quantize: legacy.quantizeRowQ4_1 },
  Q5_0: { dequantize: legacy.dequantizeRowQ5_0, quantize: legacy.quantizeRowQ5_0 },
  Q5_1: { dequantize: legacy.dequantizeRowQ5_1, quantize: legacy.quantizeRowQ5_1 },
  Q8_0: { dequantize: legacy.dequantizeRowQ8_0, quantize: legacy.quantizeRowQ8_0 },
  Q8_1: { dequantize: legacy.dequantizeRowQ8_1, quantize: legacy.quantizeRowQ8_1 },
  Q2_K: { dequantize: k.dequantizeRowQ2_K, quantize: k.quantizeRowQ2_K },
  Q3_K: { dequantize: k.dequantizeRowQ3_K, quantize: k.quantizeRowQ3_K },
  Q4_K: { dequantize: k.dequantizeRowQ4_K, quantize: k.quantizeRowQ4_K },
  Q5_K: { dequantize: k.dequantizeRowQ5_K, quantize: k.quantizeRowQ5_K },
  Q6_K: { dequantize: k.dequantizeRowQ6_K, quantize: k.quantizeRowQ6_K },
  Q8_K: { dequantize: k.dequantizeRowQ8_K, quantize: k.quantizeRowQ8_K },
};

const FLOATS = new Set(["F32", "F16", "BF16"]);

/** Every ggml type a GGUF file may name, by id (ggml.h `enum ggml_type`). */
export const GGML_TYPES: readonly GgmlType[] = ([
  [0, "F32", 1, 4],
  [1, "F16", 1, 2],
  [2, "Q4_0", 32, 18],
  [3, "Q4_1", 32, 20],
  [6, "Q5_0", 32, 22],
  [7, "Q5_1", 32, 24],
  [8, "Q8_0", 32, 34],
  [9, "Q8_1", 32, 36],
  [10, "Q2_K", 256, 84],
  [11, "Q3_K", 256, 110],
  [12, "Q4_K", 256, 144],
  [13, "Q5_K", 256, 176],
  [14, "Q6_K", 256, 210],
  [15, "Q8_K", 256, 292],
  [16, "IQ2_XXS", 256, 66],
  [17, "IQ2_XS", 256, 74],
  [18, "IQ3_XXS", 256, 98],
  [19, "IQ1_S", 256, 50],
  [20, "IQ4_NL", 32, 18],
  [21, "IQ3_S", 256, 110],
  [22, "IQ2_S", 256, 82],
  [23, "IQ4_XS", 256, 136],
  [24, "I8", 1, 1],
  [25, "I16", 1, 2],
  [26, "I32", 1, 4],
  [27, "I64", 1, 8],
  [28, "F64", 1, 8],
  [29, "IQ1_M", 256, 56],
  [30, "BF16", 1, 2],
  [34, "TQ1_0", 256, 54],
  [35, "TQ2_0", 256, 66],
  [39, "MXFP4", 32, 17],
] as const).map(([id, name, blockSize, blockBytes]) =>
  Object.freeze({
    id,
    name,
    blockSize,
    blockBytes,
    supported: FLOATS.has(name) || name in CODECS,
  })
);

const BY_ID = new Map(GGML_TYPES.map((t) => [t.id, t]));
const BY_NAME = new Map(GGML_TYPES.map((t) => [t.name, t]));

/** Names of the supported types, for error messages (`F32, F16, BF16, Q4_0, ...`). */
export const SUPPORTED_GGML_TYPES: string = GGML_TYPES.filter((t) => t.supported).map((t) => t.name)
  .join(", ");

/**
 * Looks up a ggml type by its GGUF id.
 *
 * @param id The `ggml_type` value.
 * @returns Its description, or undefined for an id ggml does not define.
 *
 * @example
 * ```ts
 * import { ggmlType } from "./quant.ts";
 * if (ggmlType(8)?.name !== "Q8_0" || ggmlType(12)?.blockBytes !== 144) throw new Error();
 * ```
 */
export function ggmlType(id: number): GgmlType | undefined {
  return BY_ID.get(id);
}

/**
 * Looks up a ggml type by name, case-insensitively (`q4_k` → Q4_K).
 *
 * @param name Type name as llama.cpp prints it.
 * @returns Its description, or undefined for an unknown name.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "./quant.ts";
 * if (ggmlTypeByName("q6_k")?.id !== 14) throw new Error();
 * ```
 */
export function ggmlTypeByName(name: string): GgmlType | undefined {
  return BY_NAME.get(name.toUpperCase());
}

/**
 * Throws unless gollm can convert `type` (a clear refusal for IQ*, TQ*, MXFP4, integer types).
 *
 * @param type The tensor's type.
 * @param file File named in the error.
 * @param tensor Tensor named in the error.
 * @throws {FormatError} `<file>: tensor '<tensor>' has type IQ2_XS (id 17), which is not
 *   supported (supported: ...)`.
 *
 * @example
 * ```ts
 * import { ggmlType, requireSupported } from "./quant.ts";
 * requireSupported(ggmlType(14)!, "m.gguf", "output.weight"); // Q6_K: fine
 * let msg = "";
 * try {
 *   requireSupported(ggmlType(17)!, "m.gguf", "blk.0.ffn_down.weight");
 * } catch (e) {
 *   msg = (e as Error).message;
 * }
 * if (!msg.includes("'blk.0.ffn_down.weight' has type IQ2_XS")) throw new Error(msg);
 * ```
 */
export function requireSupported(type: GgmlType, file: string, tensor: string): void {
  if (type.supported) return;
  throw new FormatError(
    file,
    `tensor '${tensor}' has type ${type.name} (id ${type.id}), which is not supported (supported: ${SUPPORTED_GGML_TYPES})`,
  );
}

/**
 * Byte offsets of the F16 scale fields in one block of each block type (ggml-common.h:
 * `d`, and `m`/`dmin`/`s` where the type has one), the fields {@linkcode checkFinite}
 * checks.
 */
export const F16_SCALES: Readonly<Record<string, readonly number[]>> = {
  Q4_0: [0],
  Q4_1: [0, 2],
  Q5_0: [0],
  Q5_1: [0, 2],
  Q8_0: [0],
  Q8_1: [0, 2],
  Q2_K: [80, 82],
  Q3_K: [108],
  Q4_K: [0, 2],
  Q5_K: [0, 2],
  Q6_K: [208],
};

/**
 * The byte offset of the first block whose f16 at byte `f0 - 1` or `f1 - 1` is NaN or ±Inf
 * (its 5 exponent bits, 0x7c of the high byte, all set), or past the last whole block. A
 * small function of its own so that V8 optimises the loop once for every tensor (inlined
 * in checkFinite it ran interpreted on the first tensors: 1.6 s for a 100 MB Q8_0 file).
 */
function firstSuspectBlock(bytes: Uint8Array, B: number, f0: number, f1: number): number {
  const end = bytes.length - B;
  let o = 0;
  while (o <= end && (bytes[o + f0] & 0x7c) !== 0x7c && (bytes[o + f1] & 0x7c) !== 0x7c) o += B;
  return o;
}

/**
 * Checks that every scale of a tensor's blocks (and every value of an F32/F16/BF16 tensor) is
 * finite, as ggml's `ggml_validate_row_data` does before llama.cpp uses a file.
 *
 * @param type The tensor's type (supported).
 * @param bytes Its data: whole blocks.
 * @param file File named in the error.
 * @param tensor Tensor named in the error.
 * @throws {FormatError} `<file>: tensor '<tensor>' block 12 has a non-finite scale d (NaN)`
 *   (or `element 7 is Infinity` for float types).
 *
 * @example
 * ```ts
 * import { checkFinite, ggmlTypeByName } from "./quant.ts";
 * const block = new Uint8Array(34);
 * checkFinite(ggmlTypeByName("Q8_0")!, block, "m.gguf", "t"); // d = 0: fine
 * block[0] = 0x00; block[1] = 0x7e; // d = NaN
 * let msg = "";
 * try { checkFinite(ggmlTypeByName("Q8_0")!, block, "m.gguf", "t"); } catch (e) { msg = (e as Error).message; }
 * if (msg !== "m.gguf: tensor 't' block 0 has a non-finite scale d (NaN)") throw new Error(msg);
 * ```
 */
export function checkFinite(type: GgmlType, bytes: Uint8Array, file: string, tensor: string): void {
  const fail = (what: string, v: number) =>
    new FormatError(file, `tensor '${tensor}' ${what} (${v})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lut = f16Table();
  if (type.name === "F32" || type.name === "Q8_K") {
    const step = type.name === "F32" ? 4 : type.blockBytes;
    for (let o = 0; o + 4 <= bytes.length; o += step) {
      const v = view.getFloat32(o, true);
      if (!Number.isFinite(v)) {
        throw fail(
          type.name === "F32"
            ? `element ${o / 4} is non-finite`
            : `block ${o / step} has a non-finite scale d`,
          v,
        );
      }
    }
    return;
  }
  if (type.name === "F16" || type.name === "BF16") {
    for (let i = 0; 2 * i + 1 < bytes.length; i++) {
      const h = view.getUint16(2 * i, true);
      const v = type.name === "F16" ? lut[h] : bf16ToF32(h);
      if (!Number.isFinite(v)) throw fail(`element ${i} is non-finite`, v);
    }
    return;
  }
  const fields = F16_SCALES[type.name];
  if (!fields) throw new RangeError(`ggml type ${type.name} cannot be checked`);
  // Fast scan: an f16 is NaN or ±Inf exactly when its 5 exponent bits (bits 10..14, in
  // the high byte 0x7c) are all set; only a block that has one is decoded for the message.
  const B = type.blockBytes;
  let o = firstSuspectBlock(bytes, B, fields[0] + 1, (fields[1] ?? fields[0]) + 1);
  for (let b = o / B; o + B <= bytes.length; b++, o += B) {
    for (const f of fields) {
      const v = lut[view.getUint16(o + f, true)];
      if (!Number.isFinite(v)) {
        const name = f === fields[0]
          ? "d"
          : type.name.endsWith("_K")
          ? "dmin"
          : type.name === "Q8_1"
          ? "s"
          : "m";
        throw fail(`block ${b} has a non-finite scale ${name}`, v);
      }
    }
  }
}

/**
 * Bytes of one row of `n` elements (ggml `ggml_row_size`).
 *
 * @param type The type.
 * @param n Elements in the row (a multiple of `type.blockSize`).
 * @returns `n / blockSize * blockBytes`.
 * @throws {RangeError} when `n` is not a multiple of the block size.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName, rowBytes } from "./quant.ts";
 * if (rowBytes(ggmlTypeByName("Q4_K")!, 512) !== 288) throw new Error();
 * ```
 */
export function rowBytes(type: GgmlType, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n % type.blockSize !== 0) {
    throw new RangeError(`${n} elements is not a multiple of ${type.name} block ${type.blockSize}`);
  }
  return (n / type.blockSize) * type.blockBytes;
}

/**
 * Dequantises `n` elements of a ggml tensor to F32 (`dequantize_row_*`).
 *
 * @param type The ggml type (must be `supported`).
 * @param bytes The tensor's bytes (at least `rowBytes(type, n)`), blocks in storage order.
 * @param n Element count (a multiple of `type.blockSize`).
 * @returns `n` F32 values in storage order.
 * @throws {RangeError} for an unsupported type, a bad count or too few bytes (callers
 *   check these first and raise FormatError naming the file and tensor).
 *
 * @example
 * ```ts
 * import { dequantize, ggmlType } from "./quant.ts";
 * const block = new Uint8Array(34);
 * block[1] = 0x3c; // d = 1.0 (f16 0x3c00)
 * block[2] = 5; block[3] = 0xff; // qs[0] = 5, qs[1] = -1
 * const x = dequantize(ggmlType(8)!, block, 32);
 * if (x[0] !== 5 || x[1] !== -1 || x[2] !== 0) throw new Error(String(x));
 * ```
 */
export function dequantize(type: GgmlType, bytes: Uint8Array, n: number): Float32Array {
  if (!type.supported) throw new RangeError(`ggml type ${type.name} cannot be dequantised`);
  const need = rowBytes(type, n);
  if (bytes.length < need) {
    throw new RangeError(`${type.name}: ${n} elements need ${need} bytes, got ${bytes.length}`);
  }
  const out = new Float32Array(n); // (n)
  const src = bytes.subarray(0, need);
  switch (type.name) {
    case "F32":
      if (src.byteOffset % 4 === 0) {
        out.set(new Float32Array(src.buffer, src.byteOffset, n));
      } else {
        out.set(new Float32Array(src.slice().buffer));
      }
      return out;
    case "F16": {
      const lut = f16Table();
      for (let i = 0; i < n; i++) out[i] = lut[src[2 * i] | (src[2 * i + 1] << 8)];
      return out;
    }
    case "BF16":
      for (let i = 0; i < n; i++) out[i] = bf16ToF32(src[2 * i] | (src[2 * i + 1] << 8));
      return out;
  }
  CODECS[type.name].dequantize(src, out);
  return out;
}

/**
 * Quantises F32 values into a ggml type's blocks (`quantize_row_*_ref`, as `llama-quantize`
 * does without an importance matrix; F16/BF16 round to nearest even).
 *
 * @param type The target type (must be `supported`).
 * @param data Values in storage order; the length must be a multiple of `type.blockSize`
 *   (blocks never straddle rows when each row is).
 * @returns `rowBytes(type, data.length)` bytes.
 * @throws {RangeError} for an unsupported type or a length that is not a multiple of the block.
 *
 * @example
 * ```ts
 * import { dequantize, ggmlTypeByName, quantize } from "./quant.ts";
 * const t = ggmlTypeByName("Q4_0")!;
 * const x = Float32Array.from({ length: 32 }, (_, i) => i - 16);
 * const y = dequantize(t, quantize(t, x), 32);
 * if (Math.max(...x.map((v, i) => Math.abs(v - y[i]))) > 1.01) throw new Error();
 * ```
 */
export function quantize(type: GgmlType, data: Float32Array): Uint8Array {
  if (!type.supported) throw new RangeError(`ggml type ${type.name} cannot be quantised`);
  const out = new Uint8Array(rowBytes(type, data.length));
  switch (type.name) {
    case "F32":
      out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      return out;
    case "F16":
    case "BF16": {
      const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
      const conv = type.name === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
      for (let i = 0; i < data.length; i++) {
        const h = conv(bits[i]);
        out[2 * i] = h & 0xff;
        out[2 * i + 1] = h >> 8;
      }
      return out;
    }
  }
  CODECS[type.name].quantize(data, out);
  return out;
}
