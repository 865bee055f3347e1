/**
 * GGUF writer (version 3, little-endian), the inverse of the reader in formats/gguf/parse.ts:
 * metadata of every value type, tensor infos, data aligned to `general.alignment` (default 32)
 * and each tensor padded to it, as ggml/docs/gguf.md and ggml's `gguf_write_to_file` lay it out.
 *
 * ```
 * "GGUF"  u32 version=3  u64 n_tensors  u64 n_kv
 * n_kv      × { string key, u32 value_type, value }
 * n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 * zero padding to the alignment
 * tensor data, each at data_start + offset, each followed by zero padding to the alignment
 * ```
 *
 * The file is written to a temporary sibling and renamed over the target when complete (the
 * same discipline as core/files.ts `writeFileAtomic`), so a failed or interrupted write never
 * leaves a half-written model behind. Tensor data may be produced lazily, one tensor at a
 * time, so a quantiser never holds the whole output in memory.
 *
 * @module
 */
import { GollmError } from "../../core/errors.ts";
import type { ProgressCallback } from "../../core/progress.ts";
import { type GgmlType, rowBytes } from "../quant.ts";
import { GGUF_VALUE_TYPE } from "./parse.ts";

/** Scalar GGUF value types by name. */
export type GgufScalarType =
  | "u8"
  | "i8"
  | "u16"
  | "i16"
  | "u32"
  | "i32"
  | "f32"
  | "bool"
  | "string"
  | "u64"
  | "i64"
  | "f64";

/** A metadata value with its GGUF type: a scalar, or an array of one element type. */
export type GgufTypedValue =
  | { type: GgufScalarType; value: number | bigint | boolean | string }
  | { type: "array"; itemType: GgufScalarType | "array"; items: GgufTypedValue[] };

/** Builders for typed metadata values (`gguf.u32(4)`, `gguf.strings(["a", "b"])`). */
export const gguf = {
  /** uint8. */
  u8: (v: number): GgufTypedValue => ({ type: "u8", value: v }),
  /** int8. */
  i8: (v: number): GgufTypedValue => ({ type: "i8", value: v }),
  /** uint16. */
  u16: (v: number): GgufTypedValue => ({ type: "u16", value: v }),
  /** int16. */
  i16: (v: number): GgufTypedValue => ({ type: "i16", value: v }),
  /** uint32 (counts, sizes, token ids in llama.cpp's keys). */
  u32: (v: number): GgufTypedValue => ({ type: "u32", value: v }),
  /** int32. */
  i32: (v: number): GgufTypedValue => ({ type: "i32", value: v }),
  /** float32 (epsilons, RoPE base). */
  f32: (v: number): GgufTypedValue => ({ type: "f32", value: v }),
  /** bool. */
  bool: (v: boolean): GgufTypedValue => ({ type: "bool", value: v }),
  /** UTF-8 string. */
  string: (v: string): GgufTypedValue => ({ type: "string", value: v }),
  /** uint64 (number or bigint). */
  u64: (v: number | bigint): GgufTypedValue => ({ type: "u64", value: v }),
  /** int64 (number or bigint). */
  i64: (v: number | bigint): GgufTypedValue => ({ type: "i64", value: v }),
  /** float64. */
  f64: (v: number): GgufTypedValue => ({ type: "f64", value: v }),
  /** Array of strings. */
  strings: (v: readonly string[]): GgufTypedValue => ({
    type: "array",
    itemType: "string",
    items: v.map((s) => ({ type: "string", value: s })),
  }),
  /** Array of float32. */
  f32s: (v: ArrayLike<number>): GgufTypedValue => ({
    type: "array",
    itemType: "f32",
    items: Array.from(v, (x) => ({ type: "f32" as const, value: x })),
  }),
  /** Array of int32. */
  i32s: (v: ArrayLike<number>): GgufTypedValue => ({
    type: "array",
    itemType: "i32",
    items: Array.from(v, (x) => ({ type: "i32" as const, value: x })),
  }),
};

/** One tensor to write. */
export interface GgufWriteTensor {
  /** GGUF tensor name (`blk.0.attn_q.weight`), at most 63 bytes (ggml `GGML_MAX_NAME`). */
  name: string;
  /** Dimensions in torch order (outermost first); written reversed as ggml `ne`. */
  shape: readonly number[];
  /** Storage type. */
  type: GgmlType;
  /**
   * The bytes (rows of whole blocks), or a function producing them (or a promise of them) when
   * the writer gets to this tensor.
   */
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

/** What {@linkcode writeGguf} writes. */
export interface GgufWriteInput {
  /** Metadata in file order. `general.alignment` (u32, a power of two) sets the alignment. */
  metadata: ReadonlyMap<string, GgufTypedValue> | readonly [string, GgufTypedValue][];
  /** Tensors in file order. */
  tensors: readonly GgufWriteTensor[];
}

/** Options of {@linkcode writeGguf}. */
export interface WriteGgufOptions {
  /** Called before each tensor's data is produced and written (`fraction` = tensors done). */
  onProgress?: ProgressCallback;
}

const TYPE_ID: Record<GgufScalarType | "array", number> = {
  u8: GGUF_VALUE_TYPE.UINT8,
  i8: GGUF_VALUE_TYPE.INT8,
  u16: GGUF_VALUE_TYPE.UINT16,
  i16: GGUF_VALUE_TYPE.INT16,
  u32: GGUF_VALUE_TYPE.UINT32,
  i32: GGUF_VALUE_TYPE.INT32,
  f32: GGUF_VALUE_TYPE.FLOAT32,
  bool: GGUF_VALUE_TYPE.BOOL,
  string: GGUF_VALUE_TYPE.STRING,
  array: GGUF_VALUE_TYPE.ARRAY,
  u64: GGUF_VALUE_TYPE.UINT64,
  i64: GGUF_VALUE_TYPE.INT64,
  f64: GGUF_VALUE_TYPE.FLOAT64,
};

/** Integer ranges of the fixed-width types (checked before writing). */
const INT_RANGE: Partial<Record<GgufScalarType, [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};

/** Growable little-endian byte buffer for the header. */
class Out {
  buf = new Uint8Array(1 << 16);
  view = new DataView(this.buf.buffer);
  len = 0;
  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  put(f: (v: DataView, o: number) => void, n: number): void {
    this.reserve(n);
    f(this.view, this.len);
    this.len += n;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  u32(x: number): void {
    this.put((v, o) => v.setUint32(o, x, true), 4);
  }
  u64(x: number | bigint): void {
    this.put((v, o) => v.setBigUint64(o, BigInt(x), true), 8);
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
}

const fail = (path: string, msg: string) => new GollmError(`${path}: cannot write GGUF: ${msg}`);

function writeValue(out: Out, v: GgufTypedValue, key: string, path: string): void {
  if (v.type === "array") {
    out.u32(TYPE_ID[v.itemType]);
    out.u64(v.items.length);
    for (const item of v.items) {
      if (item.type !== v.itemType) {
        throw fail(path, `metadata '${key}': array of ${v.itemType} holds a ${item.type}`);
      }
      writeValue(out, item, key, path);
    }
    return;
  }
  const x = v.value;
  const bad = (want: string) =>
    fail(path, `metadata '${key}': ${v.type} value must be ${want}, got ${String(x)}`);
  switch (v.type) {
    case "string":
      if (typeof x !== "string") throw bad("a string");
      return out.string(x);
    case "bool":
      if (typeof x !== "boolean") throw bad("a boolean");
      return out.put((d, o) => d.setUint8(o, x ? 1 : 0), 1);
    case "f32":
    case "f64":
      if (typeof x !== "number") throw bad("a number");
      if (v.type === "f32") return out.put((d, o) => d.setFloat32(o, x, true), 4);
      return out.put((d, o) => d.setFloat64(o, x, true), 8);
    case "u64":
    case "i64": {
      if (typeof x !== "bigint" && !(typeof x === "number" && Number.isSafeInteger(x))) {
        throw bad("an integer");
      }
      const b = BigInt(x);
      const ok = v.type === "u64" ? b >= 0n && b < 1n << 64n : b >= -(1n << 63n) && b < 1n << 63n;
      if (!ok) throw bad(`in the ${v.type} range`);
      if (v.type === "u64") return out.put((d, o) => d.setBigUint64(o, b, true), 8);
      return out.put((d, o) => d.setBigInt64(o, b, true), 8);
    }
    default: {
      const [lo, hi] = INT_RANGE[v.type]!;
      if (typeof x !== "number" || !Number.isInteger(x) || x < lo || x > hi) {
        throw bad(`an integer in [${lo}, ${hi}]`);
      }
      const bytes = v.type.endsWith("8") ? 1 : v.type.endsWith("16") ? 2 : 4;
      out.put((d, o) => {
        if (bytes === 1) d.setUint8(o, x & 0xff);
        else if (bytes === 2) d.setUint16(o, x & 0xffff, true);
        else d.setUint32(o, x >>> 0, true);
      }, bytes);
    }
  }
}

/**
 * Writes a GGUF v3 file atomically (temporary sibling, then rename).
 *
 * @param path Output file.
 * @param input Metadata and tensors, in file order.
 * @param options Progress callback.
 * @returns The file size in bytes.
 * @throws {GollmError} naming the file and the key or tensor for: a duplicate key or tensor
 *   name, a value outside its type's range, a tensor name over 63 bytes, 0 or more than 4
 *   dimensions, a row length that is not a multiple of the type's block size, tensor data of
 *   the wrong byte length, a bad `general.alignment`, or an I/O error. Nothing is left at
 *   `path` (or beside it) on failure.
 *
 * @example
 * ```ts
 * import { gguf, writeGguf } from "./write.ts";
 * import { readGguf } from "./parse.ts";
 * import { ggmlTypeByName } from "../quant.ts";
 * const path = await Deno.makeTempFile({ suffix: ".gguf" });
 * await writeGguf(path, {
 *   metadata: [["general.architecture", gguf.string("llama")], ["llama.block_count", gguf.u32(1)]],
 *   tensors: [{ name: "norm.weight", shape: [4], type: ggmlTypeByName("F32")!,
 *     data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) }],
 * });
 * const g = await readGguf(path);
 * if (g.metadata.get("llama.block_count") !== 1 || g.tensors[0].ne[0] !== 4) throw new Error();
 * await Deno.remove(path);
 * ```
 */
export async function writeGguf(
  path: string,
  input: GgufWriteInput,
  options: WriteGgufOptions = {},
): Promise<number> {
  const metadata = [...input.metadata];
  const out = new Out();
  out.u32(0x46554747); // "GGUF"
  out.u32(3);
  out.u64(input.tensors.length);
  out.u64(metadata.length);
  let alignment = 32;
  const keys = new Set<string>();
  for (const [key, value] of metadata) {
    if (keys.has(key)) throw fail(path, `metadata key '${key}' appears twice`);
    keys.add(key);
    if (key === "general.alignment") {
      const a = value.type === "u32" ? value.value : undefined;
      if (typeof a !== "number" || a <= 0 || (a & (a - 1)) !== 0) {
        throw fail(path, `metadata 'general.alignment' must be a u32 power of two`);
      }
      alignment = a;
    }
    out.string(key);
    out.u32(TYPE_ID[value.type]);
    writeValue(out, value, key, path);
  }
  const names = new Set<string>();
  const sizes: number[] = [];
  let offset = 0;
  for (const t of input.tensors) {
    if (names.has(t.name)) throw fail(path, `tensor '${t.name}' appears twice`);
    names.add(t.name);
    if (new TextEncoder().encode(t.name).length > 63) {
      throw fail(path, `tensor name '${t.name}' is longer than 63 bytes (ggml GGML_MAX_NAME)`);
    }
    if (t.shape.length < 1 || t.shape.length > 4 || t.shape.some((d) => !(d >= 1))) {
      throw fail(path, `tensor '${t.name}' has shape [${t.shape}]: expected 1 to 4 dims ≥ 1`);
    }
    const cols = t.shape[t.shape.length - 1];
    if (cols % t.type.blockSize !== 0) {
      throw fail(
        path,
        `tensor '${t.name}': row length ${cols} is not a multiple of the ${t.type.name} block size ${t.type.blockSize}`,
      );
    }
    const size = (t.shape.reduce((a, b) => a * b, 1) / cols) * rowBytes(t.type, cols);
    out.string(t.name);
    out.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) out.u64(t.shape[d]);
    out.u32(t.type.id);
    out.u64(offset);
    sizes.push(size);
    offset += Math.ceil(size / alignment) * alignment;
  }
  out.bytes(new Uint8Array((alignment - (out.len % alignment)) % alignment));

  const slash = path.lastIndexOf("/");
  const tmp = `${slash >= 0 ? path.slice(0, slash + 1) : ""}.${path.slice(slash + 1)}.tmp-${
    crypto.randomUUID().slice(0, 8)
  }`;
  let file: Deno.FsFile | null = null;
  try {
    if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true });
    file = await Deno.open(tmp, { write: true, createNew: true });
    await writeAll(file, out.buf.subarray(0, out.len));
    let total = out.len;
    for (const [i, t] of input.tensors.entries()) {
      options.onProgress?.({ stage: `writing ${t.name}`, fraction: i / input.tensors.length });
      const data = typeof t.data === "function" ? await t.data() : t.data;
      if (data.length !== sizes[i]) {
        throw fail(
          path,
          `tensor '${t.name}' (${t.type.name} [${t.shape}]) has ${data.length} bytes of data, expected ${
            sizes[i]
          }`,
        );
      }
      await writeAll(file, data);
      const pad = (alignment - (data.length % alignment)) % alignment;
      if (pad) await writeAll(file, new Uint8Array(pad));
      total += data.length + pad;
    }
    file.close();
    file = null;
    await Deno.rename(tmp, path);
    options.onProgress?.({ stage: `wrote ${path}`, fraction: 1 });
    return total;
  } catch (e) {
    file?.close();
    await Deno.remove(tmp).catch(() => {});
    if (e instanceof GollmError) throw e;
    throw fail(path, (e as Error).message);
  }
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await file.write(data.subarray(o));
}
