/**
 * Quantised tensors as a type: the in-memory form a weight keeps when it is NOT dequantised
 * at load (the proposal of issue #8 item 1), and the helpers the loaders and kernels need.
 *
 * A {@linkcode QuantTensor} holds ggml's row layout unchanged: `shape` is torch order
 * (outermost first, like core/weights.ts `Tensor`), a row is the last dimension (ggml `ne[0]`),
 * and `bytes` is the rows one after another, each `rowBytes(type, cols)` long, each row a run of
 * whole blocks (formats/quant.ts has the block layouts). A `(out, in)` Linear weight in Q4_K is
 * `out` rows of `in / 256` blocks of 144 bytes: exactly the GGUF tensor data, so a loader can
 * copy (or map) file bytes straight into WASM memory, and the embedding lookup dequantises one
 * row with {@linkcode dequantizeRows}.
 *
 * @module
 */
import { FormatError } from "../../core/errors.ts";
import type {
  F32Tensor as Tensor,
  F32Weights,
  Tensor as StoredOrF32,
  Weights,
} from "../../core/weights.ts";
import { dequantize, type GgmlType, ggmlType, quantize, rowBytes } from "../quant.ts";

/** A tensor stored in a ggml type: `shape` torch order, `bytes` rows of whole blocks. */
export interface QuantTensor {
  /** Dimensions, outermost first; the last is the row length (ggml `ne[0]`). */
  shape: number[];
  /** Storage type (F32, F16, BF16 or a block type). */
  type: GgmlType;
  /** `rows × rowBytes(type, cols)` bytes, row-major. */
  bytes: Uint8Array;
}

/** Row length (the last dimension) and row count of a shape. */
function rowsCols(shape: readonly number[]): [rows: number, cols: number] {
  const cols = shape.length === 0 ? 1 : shape[shape.length - 1];
  return [shape.slice(0, -1).reduce((a, b) => a * b, 1), cols];
}

/**
 * Bytes of one row of `t` (ggml `nb[1]`).
 *
 * @param t The tensor.
 * @returns `rowBytes(t.type, cols)`.
 * @throws {RangeError} when the row length is not a multiple of the block size.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "../quant.ts";
 * import { quantTensorRowBytes } from "./tensor.ts";
 * const t = { shape: [8, 512], type: ggmlTypeByName("Q8_0")!, bytes: new Uint8Array(8 * 544) };
 * if (quantTensorRowBytes(t) !== 544) throw new Error();
 * ```
 */
export function quantTensorRowBytes(t: QuantTensor): number {
  return rowBytes(t.type, rowsCols(t.shape)[1]);
}

/**
 * Average storage bits per weight of a type (`8 · blockBytes / blockSize`: Q4_K 4.5, Q8_0 8.5).
 *
 * @param type The type.
 * @returns Bits per weight.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "../quant.ts";
 * import { bitsPerWeight } from "./tensor.ts";
 * if (bitsPerWeight(ggmlTypeByName("Q6_K")!) !== 6.5625) throw new Error();
 * ```
 */
export function bitsPerWeight(type: GgmlType): number {
  return (8 * type.blockBytes) / type.blockSize;
}

/**
 * Checks that a quantised tensor's bytes match its shape and type.
 *
 * @param t The tensor.
 * @param file File named in errors.
 * @param name Tensor named in errors.
 * @throws {FormatError} when the row length is not a multiple of the block size or the data
 *   is not exactly `rows × rowBytes` bytes (truncated or oversized).
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "../quant.ts";
 * import { checkQuantTensor } from "./tensor.ts";
 * const t = { shape: [2, 32], type: ggmlTypeByName("Q4_0")!, bytes: new Uint8Array(35) };
 * let msg = "";
 * try { checkQuantTensor(t, "m.gguf", "output.weight"); } catch (e) { msg = (e as Error).message; }
 * if (!msg.includes("holds 35 bytes, expected 36")) throw new Error(msg);
 * ```
 */
export function checkQuantTensor(t: QuantTensor, file: string, name: string): void {
  const [rows, cols] = rowsCols(t.shape);
  if (cols % t.type.blockSize !== 0) {
    throw new FormatError(
      file,
      `tensor '${name}': row length ${cols} is not a multiple of the ${t.type.name} block size ${t.type.blockSize}`,
    );
  }
  const want = rows * rowBytes(t.type, cols);
  if (t.bytes.length !== want) {
    throw new FormatError(
      file,
      `tensor '${name}' (${t.type.name} [${t.shape}]) holds ${t.bytes.length} bytes, expected ${want}`,
    );
  }
}

/**
 * Dequantises rows `[r0, r1)` of a quantised tensor (the embedding lookup: one row).
 *
 * @param t The tensor (rows of whole blocks).
 * @param r0 First row.
 * @param r1 End row (exclusive).
 * @returns `((r1 − r0) · cols)` F32 values, row-major.
 * @throws {RangeError} for a row range outside `[0, rows]` or bytes too short.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "../quant.ts";
 * import { dequantizeRows, quantizeTensor } from "./tensor.ts";
 * const data = Float32Array.from({ length: 3 * 32 }, (_, i) => Math.floor(i / 32));
 * const q = quantizeTensor({ shape: [3, 32], data }, ggmlTypeByName("Q8_0")!);
 * const row = dequantizeRows(q, 2, 3);
 * if (row.length !== 32 || Math.abs(row[0] - 2) > 0.01) throw new Error(String(row));
 * ```
 */
export function dequantizeRows(t: QuantTensor, r0: number, r1: number): Float32Array {
  const [rows, cols] = rowsCols(t.shape);
  if (!(Number.isInteger(r0) && Number.isInteger(r1) && 0 <= r0 && r0 <= r1 && r1 <= rows)) {
    throw new RangeError(`rows [${r0}, ${r1}) are outside [0, ${rows}) of shape [${t.shape}]`);
  }
  const rb = rowBytes(t.type, cols);
  return dequantize(t.type, t.bytes.subarray(r0 * rb, r1 * rb), (r1 - r0) * cols);
}

/**
 * Quantises an F32 tensor row by row into `type` (as `llama-quantize` does without an
 * importance matrix).
 *
 * @param t The F32 tensor.
 * @param type Target type; the row length must be a multiple of its block size.
 * @returns The quantised tensor (same shape).
 * @throws {RangeError} for an unsupported type or a row length that is not a block multiple.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "../quant.ts";
 * import { quantizeTensor } from "./tensor.ts";
 * const q = quantizeTensor({ shape: [4, 256], data: new Float32Array(1024) }, ggmlTypeByName("Q4_K")!);
 * if (q.bytes.length !== 4 * 144) throw new Error();
 * ```
 */
export function quantizeTensor(t: Tensor, type: GgmlType): QuantTensor {
  const [, cols] = rowsCols(t.shape);
  rowBytes(type, cols); // throws for a row that is not a whole number of blocks
  return { shape: [...t.shape], type, bytes: quantize(type, t.data) };
}

/**
 * Dequantises a whole tensor to F32 (what the loaders do today for every tensor).
 *
 * @param t The quantised tensor.
 * @returns `{shape, data}` row-major F32.
 * @throws {RangeError} for an unsupported type or too few bytes.
 *
 * @example
 * ```ts
 * import { ggmlTypeByName } from "../quant.ts";
 * import { dequantizeTensor, quantizeTensor } from "./tensor.ts";
 * const data = new Float32Array(64).fill(0.5);
 * const t = dequantizeTensor(quantizeTensor({ shape: [2, 32], data }, ggmlTypeByName("F16")!));
 * if (t.data[63] !== 0.5 || t.shape[1] !== 32) throw new Error();
 * ```
 */
export function dequantizeTensor(t: QuantTensor): Tensor {
  const [rows, cols] = rowsCols(t.shape);
  return { shape: [...t.shape], data: dequantize(t.type, t.bytes, rows * cols) };
}

/**
 * One tensor as F32: a stored one (F16, BF16, ggml blocks) dequantised, an F32 one as is.
 *
 * @param t The tensor.
 * @returns Its F32 form (`t` itself when already F32).
 * @throws {RangeError} for a stored type this build cannot dequantise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggmlTypeByName } from "../quant.ts";
 * import { tensorToF32 } from "./tensor.ts";
 * const bf16 = { shape: [2], type: ggmlTypeByName("BF16")!, bytes: new Uint8Array([0, 0x3f, 0, 0xc0]) };
 * assert.deepEqual([...tensorToF32(bf16).data], [0.5, -2]);
 * ```
 */
export function tensorToF32(t: StoredOrF32): Tensor {
  if (t.type === undefined) return t;
  const type = ggmlType(t.type.id);
  if (!type) throw new RangeError(`unknown ggml type id ${t.type.id}`);
  return dequantizeTensor({ shape: t.shape, type, bytes: t.bytes });
}

/**
 * The weights as F32: stored tensors (F16, BF16, ggml blocks) dequantised, F32 ones kept
 * (the same arrays). What the reference and the JS kernels need; it costs 4 bytes per
 * weight, 4-8x the memory of a quantised file.
 *
 * @param weights Canonical weights, F32 or stored.
 * @returns A new map, every tensor F32.
 * @throws {RangeError} for a stored type this build cannot dequantise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggmlTypeByName } from "../quant.ts";
 * import { dequantizeWeights, quantizeTensor } from "./tensor.ts";
 * // Q8_0: one f16 scale d = max|x| / 127 per 32 values; 127 gives d = 1 exactly.
 * const q = quantizeTensor({ shape: [1, 32], data: new Float32Array(32).fill(127) }, ggmlTypeByName("Q8_0")!);
 * const w = dequantizeWeights(new Map([["x.weight", q]]));
 * assert.equal(w.get("x.weight")!.data[5], 127);
 * ```
 */
export function dequantizeWeights(weights: Weights): F32Weights {
  const out: F32Weights = new Map();
  for (const [name, t] of weights) {
    if (t.type !== undefined && !ggmlType(t.type.id)) {
      throw new RangeError(`tensor '${name}' has unknown ggml type id ${t.type.id}`);
    }
    out.set(name, tensorToF32(t));
  }
  return out;
}
