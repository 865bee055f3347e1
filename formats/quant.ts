/**
 * ggml tensor types and their dequantisation to F32: F32, F16, BF16, Q8_0 and Q4_0 (the
 * block formats of ggml/src/ggml-common.h and the reference `dequantize_row_*` in
 * ggml/src/ggml-quants.c).
 *
 * @module
 */
import { bf16ToF32, f16Table } from "../core/numbers.ts";

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
  /** Whether {@linkcode dequantize} supports it. */
  supported: boolean;
}

const TYPES: GgmlType[] = [
  [0, "F32", 1, 4, true],
  [1, "F16", 1, 2, true],
  [2, "Q4_0", 32, 18, true],
  [3, "Q4_1", 32, 20, false],
  [6, "Q5_0", 32, 22, false],
  [7, "Q5_1", 32, 24, false],
  [8, "Q8_0", 32, 34, true],
  [9, "Q8_1", 32, 36, false],
  [10, "Q2_K", 256, 84, false],
  [11, "Q3_K", 256, 110, false],
  [12, "Q4_K", 256, 144, false],
  [13, "Q5_K", 256, 176, false],
  [14, "Q6_K", 256, 210, false],
  [15, "Q8_K", 256, 292, false],
  [16, "IQ2_XXS", 256, 66, false],
  [17, "IQ2_XS", 256, 74, false],
  [18, "IQ3_XXS", 256, 98, false],
  [19, "IQ1_S", 256, 50, false],
  [20, "IQ4_NL", 32, 18, false],
  [21, "IQ3_S", 256, 110, false],
  [22, "IQ2_S", 256, 82, false],
  [23, "IQ4_XS", 256, 136, false],
  [24, "I8", 1, 1, false],
  [25, "I16", 1, 2, false],
  [26, "I32", 1, 4, false],
  [27, "I64", 1, 8, false],
  [28, "F64", 1, 8, false],
  [29, "IQ1_M", 256, 56, false],
  [30, "BF16", 1, 2, true],
  [34, "TQ1_0", 256, 54, false],
  [35, "TQ2_0", 256, 66, false],
  [39, "MXFP4", 32, 17, false],
].map(([id, name, blockSize, blockBytes, supported]) => ({
  id: id as number,
  name: name as string,
  blockSize: blockSize as number,
  blockBytes: blockBytes as number,
  supported: supported as boolean,
}));

const BY_ID = new Map(TYPES.map((t) => [t.id, t]));

/**
 * Looks up a ggml type by its GGUF id.
 *
 * @param id The `ggml_type` value.
 * @returns Its description, or undefined for an id ggml does not define.
 *
 * @example
 * ```ts
 * import { ggmlType } from "./quant.ts";
 * console.log(ggmlType(8)?.name); // "Q8_0"
 * ```
 */
export function ggmlType(id: number): GgmlType | undefined {
  return BY_ID.get(id);
}

/**
 * Dequantises `n` elements of a ggml tensor to F32.
 *
 * Layouts (little-endian), per ggml-common.h:
 * - `F32`: 4-byte floats; `F16`: IEEE half; `BF16`: upper half of an F32.
 * - `Q8_0`: blocks of 32 — `f16 d; int8 qs[32]`; `x[j] = d * qs[j]` (34 bytes).
 * - `Q4_0`: blocks of 32 — `f16 d; uint8 qs[16]`; `x[j] = ((qs[j] & 0xF) - 8) * d`,
 *   `x[j + 16] = ((qs[j] >> 4) - 8) * d` (18 bytes).
 *
 * @param type The ggml type (must be `supported`).
 * @param bytes The tensor's bytes (at least `n / blockSize * blockBytes`).
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
 * console.log(dequantize(ggmlType(8)!, block, 32).slice(0, 3)); // Float32Array [5, -1, 0]
 * ```
 */
export function dequantize(type: GgmlType, bytes: Uint8Array, n: number): Float32Array {
  if (!type.supported) throw new RangeError(`ggml type ${type.name} cannot be dequantised`);
  if (n % type.blockSize !== 0) {
    throw new RangeError(`${n} elements is not a multiple of ${type.name} block ${type.blockSize}`);
  }
  const need = (n / type.blockSize) * type.blockBytes;
  if (bytes.length < need) {
    throw new RangeError(`${type.name}: ${n} elements need ${need} bytes, got ${bytes.length}`);
  }
  const out = new Float32Array(n); // (n)
  const view = new DataView(bytes.buffer, bytes.byteOffset, need);
  switch (type.name) {
    case "F32":
      if (bytes.byteOffset % 4 === 0) {
        out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
      } else {
        for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      }
      break;
    case "F16": {
      const lut = f16Table();
      for (let i = 0; i < n; i++) out[i] = lut[view.getUint16(2 * i, true)];
      break;
    }
    case "BF16":
      for (let i = 0; i < n; i++) out[i] = bf16ToF32(view.getUint16(2 * i, true));
      break;
    case "Q8_0": {
      const lut = f16Table();
      for (let b = 0, o = 0; b < n / 32; b++, o += 34) {
        const d = lut[view.getUint16(o, true)];
        for (let j = 0; j < 32; j++) out[32 * b + j] = d * view.getInt8(o + 2 + j);
      }
      break;
    }
    case "Q4_0": {
      const lut = f16Table();
      for (let b = 0, o = 0; b < n / 32; b++, o += 18) {
        const d = lut[view.getUint16(o, true)];
        for (let j = 0; j < 16; j++) {
          const q = bytes[o + 2 + j];
          out[32 * b + j] = ((q & 0x0f) - 8) * d;
          out[32 * b + j + 16] = ((q >> 4) - 8) * d;
        }
      }
      break;
    }
  }
  return out;
}
