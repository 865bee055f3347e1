/**
 * safetensors read and write (https://github.com/huggingface/safetensors, format spec in its
 * README): an 8-byte little-endian u64 header length N, N bytes of JSON header
 * `{"__metadata__": {str: str}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}}`,
 * then the data section. Offsets are relative to the data section; tensors are row-major,
 * little-endian, and tile the data section without gaps or overlaps.
 *
 * Reading converts every supported dtype to F32 (`F32Tensor`; with `stored`, F16 and BF16
 * stay as stored); writing stores F32, F16 or BF16 (round to nearest, ties to even) through
 * a temporary file that is renamed into place, so a failed write never leaves a half file.
 *
 * @module
 */
import { FormatError, GollmError } from "../core/errors.ts";
import { checkRegularFile, readFileBounded, readFull, writeFileAtomic } from "../core/files.ts";
import { f16Table, f16ToF32, f32BitsToBf16Bits, f32BitsToF16Bits } from "../core/numbers.ts";
import type { F32Tensor, Tensor } from "../core/weights.ts";
import { checkFinite, ggmlTypeByName } from "./quant.ts";

/** Dtypes this reader converts to F32. */
export type SafetensorsDtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Dtypes {@linkcode writeSafetensors} can store. */
export type SafetensorsWriteDtype = "F32" | "F16" | "BF16";

const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Header values larger than this are refused (same limit as the Rust reference: 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The result of {@linkcode parseSafetensors}: `T` is F32 tensors, or with `stored: true` F32
 * and F16/BF16 tensors as stored.
 */
export interface SafetensorsFile<T extends Tensor = F32Tensor> {
  /** Every tensor (converted to F32, or F16/BF16 kept as stored), in header order. */
  tensors: Map<string, T>;
  /** The `__metadata__` string map (empty when absent). */
  metadata: Record<string, string>;
  /** The stored dtype of each tensor (before conversion to F32). */
  dtypes: Map<string, SafetensorsDtype>;
}

// ---------------------------------------------------------------------------------------
// Reading

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return JSON.stringify(v).slice(0, 60);
  if (typeof v === "object") return "an object";
  return JSON.stringify(v);
}

interface Entry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Copies `n` elements of `size` bytes at absolute offset `off` of `bytes` into a fresh,
 * aligned ArrayBuffer (little-endian host: raw copy; the typed views then read them).
 */
function alignedCopy(bytes: Uint8Array, off: number, nbytes: number): ArrayBuffer {
  const buf = new ArrayBuffer(nbytes);
  new Uint8Array(buf).set(bytes.subarray(off, off + nbytes));
  return buf;
}

/** Options of {@linkcode parseSafetensors} and {@linkcode readSafetensors}. */
export interface ReadSafetensorsOptions {
  /**
   * Keep F16 and BF16 matrices (2 or more dimensions) as stored (views on the file's bytes
   * in ggml's F16/BF16 layout, every element checked finite) instead of converting them to
   * F32: what the wasm backend runs, at half the memory. Vectors (norms, biases) and other
   * dtypes are converted to F32 either way, as a GGUF holds them. Default false.
   */
  stored?: boolean;
}

function convert(bytes: Uint8Array, off: number, e: Entry, n: number): Float32Array {
  const nbytes = e.end - e.begin;
  const absOff = bytes.byteOffset + off;
  if (!LITTLE_ENDIAN_HOST) return convertDataView(bytes, off, e.dtype, n);
  switch (e.dtype) {
    case "F32":
      if (absOff % 4 === 0) return new Float32Array(bytes.buffer, absOff, n).slice();
      return new Float32Array(alignedCopy(bytes, off, nbytes));
    case "F16": {
      const src = absOff % 2 === 0
        ? new Uint16Array(bytes.buffer, absOff, n)
        : new Uint16Array(alignedCopy(bytes, off, nbytes));
      const table = f16Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case "BF16": {
      const src = absOff % 2 === 0
        ? new Uint16Array(bytes.buffer, absOff, n)
        : new Uint16Array(alignedCopy(bytes, off, nbytes));
      const out = new Float32Array(n);
      const out32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) out32[i] = src[i] << 16;
      return out;
    }
    case "F64":
      return Float32Array.from(new Float64Array(alignedCopy(bytes, off, nbytes)));
    case "I64":
      return Float32Array.from(new BigInt64Array(alignedCopy(bytes, off, nbytes)), Number);
    case "U64":
      return Float32Array.from(new BigUint64Array(alignedCopy(bytes, off, nbytes)), Number);
    case "I32":
      return Float32Array.from(new Int32Array(alignedCopy(bytes, off, nbytes)));
    case "U32":
      return Float32Array.from(new Uint32Array(alignedCopy(bytes, off, nbytes)));
    case "I16":
      return Float32Array.from(new Int16Array(alignedCopy(bytes, off, nbytes)));
    case "U16":
      return Float32Array.from(new Uint16Array(alignedCopy(bytes, off, nbytes)));
    case "I8":
      return Float32Array.from(new Int8Array(bytes.buffer, absOff, n));
    case "U8":
    case "BOOL":
      return Float32Array.from(bytes.subarray(off, off + n));
  }
}

/** Portable (big-endian host) path: one DataView read per element. */
function convertDataView(
  bytes: Uint8Array,
  off: number,
  dtype: SafetensorsDtype,
  n: number,
): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + off);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case "F64":
        out[i] = dv.getFloat64(8 * i, true);
        break;
      case "F32":
        out[i] = dv.getFloat32(4 * i, true);
        break;
      case "F16":
        out[i] = f16ToF32(dv.getUint16(2 * i, true));
        break;
      case "BF16":
        out[i] = new Float32Array(new Uint32Array([dv.getUint16(2 * i, true) << 16]).buffer)[0];
        break;
      case "I64":
        out[i] = Number(dv.getBigInt64(8 * i, true));
        break;
      case "U64":
        out[i] = Number(dv.getBigUint64(8 * i, true));
        break;
      case "I32":
        out[i] = dv.getInt32(4 * i, true);
        break;
      case "U32":
        out[i] = dv.getUint32(4 * i, true);
        break;
      case "I16":
        out[i] = dv.getInt16(2 * i, true);
        break;
      case "U16":
        out[i] = dv.getUint16(2 * i, true);
        break;
      case "I8":
        out[i] = dv.getInt8(i);
        break;
      case "U8":
      case "BOOL":
        out[i] = dv.getUint8(i);
        break;
    }
  }
  return out;
}

/**
 * Parses and checks the header of a safetensors file of `fileSize` bytes from `bytes`, its
 * first `8 + header length` bytes or more: every entry's dtype, shape and offsets, and that
 * the tensors tile the data section.
 */
function parseHeader(
  bytes: Uint8Array,
  fileSize: number,
  file: string,
): { entries: Entry[]; metadata: Record<string, string>; dataStart: number } {
  if (fileSize < 8) {
    throw new FormatError(
      file,
      `truncated safetensors file: ${fileSize} bytes, need at least 8 for the header length`,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) {
    throw new FormatError(
      file,
      `truncated or corrupt safetensors file: header length ${n64} runs past the end of the ` +
        `file (${fileSize} bytes)`,
    );
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) {
    throw new FormatError(file, `safetensors header length ${n} exceeds ${MAX_HEADER_BYTES}`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw new FormatError(
      file,
      `corrupt safetensors header (not valid UTF-8 JSON): ${(e as Error).message}`,
    );
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new FormatError(
      file,
      `safetensors header must be a JSON object, got ${describe(header)}`,
    );
  }
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw new FormatError(file, `__metadata__ must be an object, got ${describe(raw)}`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new FormatError(file, `__metadata__ '${k}' must be a string, got ${describe(v)}`);
        }
        // defineProperty: a key "__proto__" is data, not the object's prototype.
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new FormatError(file, `${where}: header entry must be an object, got ${describe(raw)}`);
    }
    const info = raw as Record<string, unknown>;
    const dtype = info.dtype;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_BYTES, dtype)) {
      throw new FormatError(
        file,
        `${where}: unsupported dtype ${describe(dtype)} (supported: ${
          Object.keys(DTYPE_BYTES).join(", ")
        })`,
      );
    }
    const shape = info.shape;
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new FormatError(
        file,
        `${where}: shape must be a list of non-negative integers, got ${describe(shape)}`,
      );
    }
    const offs = info.data_offsets;
    if (
      !Array.isArray(offs) || offs.length !== 2 ||
      !offs.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new FormatError(
        file,
        `${where}: data_offsets must be [begin, end] non-negative integers, got ${describe(offs)}`,
      );
    }
    const [begin, end] = offs as number[];
    if (end < begin) {
      throw new FormatError(file, `${where}: data_offsets [${begin}, ${end}] end before begin`);
    }
    if (end > dataLen) {
      throw new FormatError(
        file,
        `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLen} bytes); ` +
          `the file is truncated or corrupt`,
      );
    }
    const size = DTYPE_BYTES[dtype as SafetensorsDtype];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (count * size !== end - begin) {
      throw new FormatError(
        file,
        `${where}: ${dtype} shape [${shape}] needs ${count * size} bytes, data_offsets ` +
          `[${begin}, ${end}] hold ${end - begin}`,
      );
    }
    entries.push({ name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end });
  }
  // The tensors must tile the data section: sorted by offset, each starts where the last ended.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.begin !== pos) {
      throw new FormatError(
        file,
        `tensor '${e.name}': data_offsets [${e.begin}, ${e.end}] ${
          e.begin < pos ? "overlap the previous tensor" : "leave a gap after the previous tensor"
        } (expected begin ${pos})`,
      );
    }
    pos = e.end;
  }
  if (pos !== dataLen) {
    throw new FormatError(
      file,
      `data section is ${dataLen} bytes but the tensors cover ${pos} (trailing or missing bytes)`,
    );
  }
  return { entries, metadata, dataStart };
}

/**
 * Parses a whole safetensors file held in memory. Every tensor is converted to F32
 * (F64, F32, F16, BF16, signed/unsigned 8–64-bit integers and BOOL are accepted).
 *
 * Checks: the 8-byte length against the file size; the header is a JSON object; each
 * entry has a known dtype, a shape of non-negative integers and `data_offsets` inside the
 * data section whose length equals `product(shape) × dtype size`; the tensors tile the data
 * section in offset order with no gap, overlap or trailing bytes (like the Rust reference's
 * `validate`); `__metadata__` maps strings to strings.
 *
 * @param bytes The file contents (may be a view into a larger buffer).
 * @param file The file name, used in error messages.
 * @returns Tensors (F32, header order), metadata and the stored dtypes.
 * @throws {FormatError} naming `file` (and the tensor, when one is at fault) for a
 *   truncated file, corrupt header, unsupported dtype or inconsistent offsets.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSafetensors } from "./safetensors.ts";
 * const header = new TextEncoder().encode('{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}');
 * const bytes = new Uint8Array(8 + header.length + 8);
 * new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
 * bytes.set(header, 8);
 * new DataView(bytes.buffer).setFloat32(8 + header.length, 1.5, true);
 * assert.deepEqual(parseSafetensors(bytes, "x.safetensors").tensors.get("x")!.data,
 *   new Float32Array([1.5, 0]));
 * assert.throws(() => parseSafetensors(bytes.subarray(0, 20), "x.safetensors"),
 *   /x.safetensors: truncated or corrupt/);
 * ```
 */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile;
/**
 * {@linkcode parseSafetensors} with options: `stored` keeps F16 and BF16 tensors as stored.
 *
 * @param bytes The whole file.
 * @param file Its name, for error messages.
 * @param options `stored`.
 * @returns Tensors (F32, or F16/BF16 as stored), metadata and the stored dtypes.
 * @throws {FormatError} as the two-argument form, and for a non-finite F16/BF16 element.
 */
export function parseSafetensors(
  bytes: Uint8Array,
  file: string,
  options: ReadSafetensorsOptions,
): SafetensorsFile<Tensor>;
export function parseSafetensors(
  bytes: Uint8Array,
  file: string,
  options: ReadSafetensorsOptions = {},
): SafetensorsFile<Tensor> {
  const { entries, metadata, dataStart } = parseHeader(bytes, bytes.length, file);
  const tensors = new Map<string, Tensor>();
  const dtypes = new Map<string, SafetensorsDtype>();
  for (const e of entries) {
    const count = e.shape.reduce((a, b) => a * b, 1);
    dtypes.set(e.name, e.dtype);
    const half = e.dtype === "F16" || e.dtype === "BF16";
    if (options.stored && LITTLE_ENDIAN_HOST && half && e.shape.length >= 2) {
      // ggml's F16/BF16 are the same little-endian halves, one per element, row-major.
      const type = ggmlTypeByName(e.dtype)!;
      const view = bytes.subarray(dataStart + e.begin, dataStart + e.end);
      checkFinite(type, view, file, e.name);
      tensors.set(e.name, { shape: [...e.shape], type, bytes: view });
      continue;
    }
    tensors.set(e.name, {
      shape: [...e.shape],
      data: convert(bytes, dataStart + e.begin, e, count),
    });
  }
  return { tensors, metadata, dtypes };
}

/**
 * Reads and parses a safetensors file (see {@linkcode parseSafetensors}).
 *
 * @param path File path.
 * @returns Tensors converted to F32, metadata and stored dtypes.
 * @throws {FormatError} when the file cannot be read or is malformed (names the file).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensors } from "./safetensors.ts";
 * const { tensors, metadata } = await readSafetensors("models/default/model.safetensors");
 * assert.equal(metadata.format, "gollm");
 * assert.deepEqual(tensors.get("norm.weight")!.shape, [192]);
 * ```
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile>;
/**
 * {@linkcode readSafetensors} with options: `stored` keeps F16 and BF16 tensors as stored.
 *
 * @param path File path.
 * @param options `stored`.
 * @returns Tensors (F32, or F16/BF16 as stored), metadata and stored dtypes.
 * @throws {FormatError} as the one-argument form, and for a non-finite F16/BF16 element.
 */
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsOptions,
): Promise<SafetensorsFile<Tensor>>;
export async function readSafetensors(
  path: string,
  options: ReadSafetensorsOptions = {},
): Promise<SafetensorsFile<Tensor>> {
  return parseSafetensors(await readFileBounded(path, "safetensors file"), path, options);
}

/** One tensor as a safetensors header describes it (no data read). */
export interface SafetensorsEntry {
  /** Stored dtype. */
  dtype: SafetensorsDtype;
  /** Shape, outermost first. */
  shape: number[];
}

/**
 * Reads only the header of a safetensors file (8 bytes, then the JSON header): each
 * tensor's dtype and shape and the metadata, with every check of
 * {@linkcode parseSafetensors} that the header alone allows (offsets inside the file and
 * tiling its data section). What `gollm inspect` needs of a multi-GB checkpoint.
 *
 * @param path File path.
 * @returns Entries by name (header order) and the `__metadata__` strings.
 * @throws {FormatError} when the file cannot be read or its header is malformed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensorsHeader } from "./safetensors.ts";
 * const h = await readSafetensorsHeader("models/default/model.safetensors");
 * assert.equal(h.metadata.format, "gollm");
 * assert.deepEqual(h.tensors.get("norm.weight"), { dtype: "F16", shape: [192] });
 * ```
 */
export async function readSafetensorsHeader(
  path: string,
): Promise<{ tensors: Map<string, SafetensorsEntry>; metadata: Record<string, string> }> {
  const size = checkRegularFile(path, "safetensors file").size; // stat first: never a FIFO
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  try {
    const len = await readFull(f, new Uint8Array(Math.min(8, size)));
    const n = len.length === 8 ? new DataView(len.buffer).getBigUint64(0, true) : 0n;
    // A length past the file or the limit is reported by parseHeader from the 8 bytes.
    const want = n <= BigInt(Math.min(size - 8, MAX_HEADER_BYTES)) ? Number(n) : 0;
    const head = new Uint8Array(len.length + want);
    head.set(len);
    head.set(await readFull(f, new Uint8Array(want)), len.length);
    const { entries, metadata } = parseHeader(head, size, path);
    return {
      tensors: new Map(entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape }])),
      metadata,
    };
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------------------------------
// Writing

/** Options of {@linkcode writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Stored dtype of every tensor (F16 and BF16 round to nearest, ties to even). */
  dtype: SafetensorsWriteDtype;
  /** Strings stored in `__metadata__` (e.g. `{format: "gollm", format_version: "1"}`). */
  metadata?: Record<string, string>;
}

function encodeTensor(t: F32Tensor, dtype: SafetensorsWriteDtype): Uint8Array {
  const src = t.data;
  if (dtype === "F32") {
    const out = new Float32Array(src.length);
    out.set(src);
    if (!LITTLE_ENDIAN_HOST) {
      const dv = new DataView(out.buffer);
      for (let i = 0; i < src.length; i++) dv.setFloat32(4 * i, src[i], true);
    }
    return new Uint8Array(out.buffer);
  }
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const bytes = new Uint8Array(2 * src.length);
  const conv = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < src.length; i++) {
    const h = conv(bits[i]);
    bytes[2 * i] = h & 0xff;
    bytes[2 * i + 1] = h >>> 8;
  }
  return bytes;
}

/**
 * Builds the bytes of a safetensors file (header padded with spaces to a multiple of 8 so
 * the data section is 8-byte aligned; tensors stored in map order).
 *
 * @param tensors Tensors to store (`data.length` must equal the product of `shape`).
 * @param options Stored dtype and metadata.
 * @returns The file's header (length prefix + JSON) and each tensor's bytes, in order.
 * @throws {GollmError} when a tensor's data length does not match its shape.
 */
function encodeSafetensors(
  tensors: Map<string, F32Tensor>,
  options: WriteSafetensorsOptions,
): Uint8Array[] {
  const size = options.dtype === "F32" ? 4 : 2;
  const header: Record<string, unknown> = {};
  if (options.metadata && Object.keys(options.metadata).length > 0) {
    header.__metadata__ = options.metadata;
  }
  let off = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") {
      throw new GollmError("writeSafetensors: a tensor cannot be named '__metadata__'");
    }
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new GollmError(
        `writeSafetensors: tensor '${name}' has shape [${t.shape}] (${count} values) but holds ` +
          `${t.data.length}`,
      );
    }
    header[name] = {
      dtype: options.dtype,
      shape: t.shape,
      data_offsets: [off, off + count * size],
    };
    off += count * size;
  }
  let json = JSON.stringify(header);
  const jsonBytesLen = new TextEncoder().encode(json).length;
  json += " ".repeat((8 - (jsonBytesLen % 8)) % 8);
  const jsonBytes = new TextEncoder().encode(json);
  const head = new Uint8Array(8 + jsonBytes.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(jsonBytes.length), true);
  head.set(jsonBytes, 8);
  const parts: Uint8Array[] = [head];
  for (const t of tensors.values()) parts.push(encodeTensor(t, options.dtype));
  return parts;
}

/**
 * Writes tensors to a safetensors file atomically: the bytes go to a temporary file in the
 * same directory, which is renamed onto `path` only when complete; on any failure the
 * temporary file is removed and `path` is untouched.
 *
 * @param path Destination file.
 * @param tensors Tensors to store, in the order they will be laid out.
 * @param options `dtype` (`F32`, `F16` or `BF16`; F16/BF16 round to nearest, ties to even)
 *   and optional string `metadata`.
 * @throws {GollmError} when a tensor's data length does not match its shape, or the file
 *   cannot be written (the message names `path`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/model.safetensors`,
 *   new Map([["norm.weight", { shape: [2], data: new Float32Array([1, 2]) }]]),
 *   { dtype: "F16", metadata: { format: "gollm" } });
 * const back = await readSafetensors(`${dir}/model.safetensors`);
 * assert.deepEqual(back.tensors.get("norm.weight")!.data, new Float32Array([1, 2]));
 * assert.equal(back.dtypes.get("norm.weight"), "F16");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, F32Tensor>,
  options: WriteSafetensorsOptions,
): Promise<void> {
  if (!["F32", "F16", "BF16"].includes(options.dtype)) {
    throw new GollmError(
      `writeSafetensors: dtype must be F32, F16 or BF16, got ${JSON.stringify(options.dtype)}`,
    );
  }
  await writeFileAtomic(path, encodeSafetensors(tensors, options), { createParent: false });
}
