/**
 * GGUF reader (llama.cpp's model file format, versions 2 and 3): header, metadata values,
 * tensor infos, and one tensor's data dequantised to F32. Typed metadata getters are in
 * metadata.ts, the embedded tokenizer in tokenizer.ts, the mapping onto gollm's config and
 * tensor names in checkpoint.ts.
 *
 * File layout (ggml/docs/gguf.md; little-endian):
 * ```
 * "GGUF"  uint32 version  uint64 n_tensors  uint64 n_kv
 * n_kv    × { string key, uint32 value_type, value }
 * n_tensors × { string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml_type, uint64 offset }
 * padding to general.alignment (default 32)
 * tensor data (each at data_start + offset)
 * ```
 * `string` = uint64 byte length + UTF-8 bytes; an array value = uint32 element type,
 * uint64 count, elements. `ne` is ggml order, fastest dimension first: a torch
 * `(out, in)` matrix has `ne = [in, out]`.
 *
 * @module
 */
import { FormatError } from "../../core/errors.ts";
import { checkRegularFile } from "../../core/files.ts";
import { ByteReader } from "../../core/model_bytes.ts";
import { dequantize, type GgmlType, ggmlType, requireSupported } from "../quant.ts";
import type { F32Tensor as Tensor } from "../../core/weights.ts";

/**
 * A GGUF metadata value. Integers are numbers (64-bit ones beyond ±2^53 are bigints),
 * floats numbers, `bool` booleans, strings strings, arrays (possibly nested) arrays.
 */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** GGUF metadata value type ids (`gguf_type`). */
export const GGUF_VALUE_TYPE = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** One tensor's entry in the GGUF header. */
export interface GgufTensorInfo {
  /** GGUF tensor name (`blk.0.attn_q.weight`). */
  name: string;
  /** Dimensions in ggml order (fastest first): reverse of the torch shape. */
  ne: number[];
  /** The ggml type. */
  type: GgmlType;
  /** Offset relative to the start of the data section (as stored). */
  offset: number;
  /** Absolute byte offset of the tensor's data in the file. */
  fileOffset: number;
  /** Size of the tensor's data in bytes. */
  nbytes: number;
}

/** A parsed GGUF header (and, when read whole, the file bytes). */
export interface GgufFile {
  /** The path (or description) it was read from. */
  file: string;
  /** Format version (2 or 3). */
  version: number;
  /** Metadata in file order. */
  metadata: Map<string, GgufValue>;
  /** Tensor infos in file order. */
  tensors: GgufTensorInfo[];
  /** `general.alignment` (default 32). */
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
  /** Total file size in bytes. */
  fileSize: number;
  /** The whole file, or only a header prefix when read with {@linkcode readGguf}. */
  bytes: Uint8Array;
}

const MAX_DIMS = 4;
const MAX_NESTING = 8;
const MAGIC = 0x46554747; // "GGUF" little-endian

/**
 * A key or tensor name for an error message: as is when short and printable, else escaped
 * and cut (a corrupt length can make a "name" swallow the rest of the file).
 */
export function nm(s: string): string {
  if (/^[\x20-\x7e]{0,100}$/.test(s)) return s;
  const cut = s.length > 60 ? s.slice(0, 60) + "…" : s;
  return JSON.stringify(cut).slice(1, -1);
}

/** Thrown internally when the buffer ends before the (larger) file does. */
class NeedMore extends Error {}

class Reader {
  pos = 0;
  readonly view: DataView;
  readonly dec = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
  constructor(readonly bytes: Uint8Array, readonly fileSize: number, readonly file: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(n: number, what: string): void {
    if (this.pos + n <= this.bytes.length) return;
    if (this.pos + n <= this.fileSize) throw new NeedMore();
    throw new FormatError(
      this.file,
      `corrupt or truncated: ${what} needs ${n} bytes at offset ${this.pos} but the file has ${this.fileSize}`,
    );
  }
  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++];
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  /**
   * A uint64 that must be a safe integer (counts, sizes, offsets); `what + suffix` names it
   * in the error (joined only then: this runs for every string of a 100k-token vocabulary).
   */
  size(what: string, suffix = ""): number {
    this.need(8, what);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    if (hi > 0x1fffff) {
      const v = (BigInt(hi) << 32n) | BigInt(lo);
      throw new FormatError(this.file, `${what}${suffix} is ${v} at offset ${this.pos}: too large`);
    }
    this.pos += 8;
    return hi * 0x100000000 + lo;
  }
  string(what: string): string {
    const len = this.size(what, " length");
    this.need(len, what);
    const p = this.pos;
    this.pos += len;
    // Short ASCII strings (most vocabulary pieces) without a call into the runtime's decoder.
    if (len <= 32) {
      const b = this.bytes;
      let ascii = true;
      for (let i = p; i < p + len; i++) if (b[i] >= 0x80) ascii = false;
      if (ascii) {
        return String.fromCharCode.apply(null, b.subarray(p, p + len) as unknown as number[]);
      }
    }
    return this.dec.decode(this.bytes.subarray(p, p + len));
  }
}

const SCALAR_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

function toNumber(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v;
}

/** The shortest decimal that reads back as the same float32 (1e-5, not 9.99999974e-6). */
function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let p = 1; p < 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

function readValue(r: Reader, type: number, key: string, depth: number): GgufValue {
  if (SCALAR_BYTES[type] !== undefined) {
    r.need(SCALAR_BYTES[type], `value of '${nm(key)}'`);
    return readScalar(r, type);
  }
  return readComposite(r, type, key, depth);
}

/** A scalar of `type` at `r.pos` (the caller has checked its bytes are there). */
function readScalar(r: Reader, type: number): GgufValue {
  const v = r.view;
  const p = r.pos;
  r.pos += SCALAR_BYTES[type];
  switch (type) {
    case 0:
      return v.getUint8(p);
    case 1:
      return v.getInt8(p);
    case 2:
      return v.getUint16(p, true);
    case 3:
      return v.getInt16(p, true);
    case 4:
      return v.getUint32(p, true);
    case 5:
      return v.getInt32(p, true);
    case 6:
      return shortestF32(v.getFloat32(p, true));
    case 7:
      return v.getUint8(p) !== 0;
    case 10:
      return toNumber(v.getBigUint64(p, true));
    case 11:
      return toNumber(v.getBigInt64(p, true));
    default:
      return v.getFloat64(p, true);
  }
}

/** A string or an array value. */
function readComposite(r: Reader, type: number, key: string, depth: number): GgufValue {
  if (type === GGUF_VALUE_TYPE.STRING) return r.string(`value of '${nm(key)}'`);
  if (type === GGUF_VALUE_TYPE.ARRAY) {
    if (depth >= MAX_NESTING) {
      throw new FormatError(
        r.file,
        `metadata '${nm(key)}': arrays nested deeper than ${MAX_NESTING}`,
      );
    }
    const elemType = r.u32(`array type of '${nm(key)}'`);
    const count = r.size(`array length of '${nm(key)}'`);
    const minBytes = elemType === GGUF_VALUE_TYPE.STRING
      ? 8
      : elemType === GGUF_VALUE_TYPE.ARRAY
      ? 12
      : SCALAR_BYTES[elemType];
    if (minBytes === undefined) {
      throw new FormatError(
        r.file,
        `metadata '${nm(key)}': unknown array element type ${elemType}`,
      );
    }
    if (r.pos + count * minBytes > r.fileSize) {
      throw new FormatError(
        r.file,
        `corrupt or truncated: metadata '${nm(key)}' claims ${count} elements, which need ≥ ${
          count * minBytes
        } bytes at offset ${r.pos} but the file has ${r.fileSize}`,
      );
    }
    const out: GgufValue[] = new Array(count);
    if (elemType === GGUF_VALUE_TYPE.STRING) {
      const what = `value of '${nm(key)}'`; // once per array, not per element
      for (let i = 0; i < count; i++) out[i] = r.string(what);
    } else if (SCALAR_BYTES[elemType] !== undefined) {
      r.need(count * minBytes, `values of '${nm(key)}'`); // once for the whole array
      for (let i = 0; i < count; i++) out[i] = readScalar(r, elemType);
    } else {
      for (let i = 0; i < count; i++) out[i] = readValue(r, elemType, key, depth + 1);
    }
    return out;
  }
  throw new FormatError(r.file, `metadata '${nm(key)}': unknown value type ${type}`);
}

function parseHeader(bytes: Uint8Array, fileSize: number, file: string): GgufFile {
  const r = new Reader(bytes, fileSize, file);
  if (fileSize < 4) {
    throw new FormatError(
      file,
      `truncated: a GGUF header needs at least 24 bytes but the file has ${fileSize}`,
    );
  }
  r.need(4, "magic");
  const magic = r.view.getUint32(0, true);
  if (magic !== MAGIC) {
    const got = [...bytes.subarray(0, 4)].map((b) =>
      b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`
    ).join("");
    const legacy = ["GGML", "GGJT", "GGLA", "lmgg", "tjgg", "algg"].includes(got)
      ? " (a pre-GGUF llama.cpp file; convert it to GGUF with llama.cpp)"
      : "";
    throw new FormatError(file, `bad magic: expected 'GGUF', got '${got}'${legacy}`);
  }
  r.pos = 4;
  const version = r.u32("version");
  if (version !== 2 && version !== 3) {
    if ((version & 0xffff) === 0 && [2, 3].includes(version >>> 24)) {
      throw new FormatError(file, `big-endian GGUF v${version >>> 24} is not supported`);
    }
    throw new FormatError(
      file,
      `unsupported GGUF version ${version}: expected 2 or 3${
        version === 1 ? " (v1 is obsolete)" : ""
      }`,
    );
  }
  const nTensors = r.size("tensor count");
  const nKv = r.size("metadata count");
  // Each KV is at least 8 + 4 + 1 bytes, each tensor info at least 8 + 4 + 4 + 8 bytes.
  if (24 + nKv * 13 + nTensors * 24 > fileSize) {
    throw new FormatError(
      file,
      `corrupt or truncated: ${nKv} metadata entries and ${nTensors} tensors need more bytes than the file has (${fileSize})`,
    );
  }
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.string(`metadata key #${i}`);
    const type = r.u32(`value type of '${nm(key)}'`);
    const value = readValue(r, type, key, 0);
    if (metadata.has(key)) throw new FormatError(file, `metadata key '${nm(key)}' appears twice`);
    metadata.set(key, value);
  }
  let alignment = 32;
  if (metadata.has("general.alignment")) {
    const a = metadata.get("general.alignment");
    if (typeof a !== "number" || !Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) {
      throw new FormatError(
        file,
        `metadata 'general.alignment' must be a power of two, got ${String(a)}`,
      );
    }
    alignment = a;
  }
  const tensors: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = r.string(`tensor #${i} name`);
    if (names.has(name)) throw new FormatError(file, `tensor '${nm(name)}' appears twice`);
    names.add(name);
    const nDims = r.u32(`tensor '${nm(name)}' n_dims`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw new FormatError(
        file,
        `tensor '${nm(name)}': n_dims must be 1..${MAX_DIMS}, got ${nDims}`,
      );
    }
    const ne: number[] = [];
    let count = 1;
    for (let d = 0; d < nDims; d++) {
      const n = r.size(`tensor '${nm(name)}' ne[${d}]`);
      ne.push(n);
      count *= n;
    }
    if (!Number.isSafeInteger(count)) {
      throw new FormatError(file, `tensor '${nm(name)}': shape [${ne}] is too large`);
    }
    const typeId = r.u32(`tensor '${nm(name)}' type`);
    const type = ggmlType(typeId);
    if (!type) throw new FormatError(file, `tensor '${nm(name)}': unknown ggml type id ${typeId}`);
    if (ne[0] % type.blockSize !== 0) {
      throw new FormatError(
        file,
        `tensor '${nm(name)}': ne[0] = ${
          ne[0]
        } is not a multiple of the ${type.name} block size ${type.blockSize}`,
      );
    }
    const offset = r.size(`tensor '${nm(name)}' offset`);
    if (offset % alignment !== 0) {
      throw new FormatError(
        file,
        `tensor '${nm(name)}': offset ${offset} is not a multiple of the alignment ${alignment}`,
      );
    }
    const nbytes = (count / type.blockSize) * type.blockBytes;
    tensors.push({ name, ne, type, offset, fileOffset: 0, nbytes });
  }
  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  for (const t of tensors) {
    t.fileOffset = dataOffset + t.offset;
    if (t.fileOffset + t.nbytes > fileSize) {
      throw new FormatError(
        file,
        `corrupt or truncated: tensor '${
          nm(t.name)
        }' (${t.type.name} [${t.ne}]) needs bytes ${t.fileOffset}..${
          t.fileOffset + t.nbytes
        } but the file has ${fileSize}`,
      );
    }
  }
  return { file, version, metadata, tensors, alignment, dataOffset, fileSize, bytes };
}

/**
 * Parses a whole GGUF file held in memory.
 *
 * @param bytes The file contents.
 * @param file Path or description, named in errors.
 * @returns Header, metadata, tensor infos, and `bytes` for {@linkcode ggufTensor}.
 * @throws {FormatError} for a wrong magic, an unsupported version, a truncated header or
 *   data section, an unknown value or tensor type, a misaligned offset, duplicates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseGguf } from "./parse.ts";
 * const file = "tests/fixtures/gguf/llama.gguf"; // written by llama.cpp's gguf package
 * const g = parseGguf(await Deno.readFile(file), file);
 * assert.equal(g.metadata.get("general.architecture"), "llama");
 * assert.throws(() => parseGguf(new TextEncoder().encode("GGML...."), "old.bin"), /bad magic/);
 * ```
 */
export function parseGguf(bytes: Uint8Array, file: string): GgufFile {
  // With the whole file in memory the reader never runs out before the file does.
  return parseHeader(bytes, bytes.length, file);
}

/**
 * Reads a GGUF file's header (metadata and tensor infos) without loading the tensor data:
 * {@linkcode readGgufStream} on the file (a prefix, doubled until the header fits).
 *
 * @param path File path.
 * @returns The parsed header; `bytes` holds only the prefix read.
 * @throws {FormatError} as {@linkcode parseGguf}, or when the file cannot be read.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readGguf } from "./parse.ts";
 * const g = await readGguf("tests/fixtures/gguf/llama.gguf");
 * assert.equal(g.tensors.length, 21);
 * assert.ok(g.bytes.length <= g.fileSize);
 * ```
 */
export async function readGguf(path: string): Promise<GgufFile> {
  const fileSize = checkRegularFile(path, "GGUF file").size; // stat first: never open a FIFO
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  // The file as a stream (closed when the stream ends or is cancelled).
  const reader = new ByteReader(path, fileSize, f.readable);
  try {
    return await readGgufStream(reader);
  } finally {
    await reader.cancel();
  }
}

/**
 * Reads a GGUF header from the front of a stream (an HTTP body, a Blob, bytes in memory:
 * core/model_bytes.ts): a prefix first, then more until the header fits. The reader is
 * left after the prefix, which may run into the data section: `bytes` holds all of it
 * (`bytes.length` = `reader.position`), so the data's first bytes are
 * `bytes.subarray(dataOffset)`. With no size from the source, `fileSize` is where the last
 * tensor's data ends.
 *
 * @param reader The source, at its start.
 * @returns The parsed header; `bytes` the prefix read.
 * @throws {FormatError} as {@linkcode parseGguf} (naming `reader.name`), and when the
 *   stream fails.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteReader } from "../../core/model_bytes.ts";
 * import { readGgufStream } from "./parse.ts";
 * const file = "tests/fixtures/gguf/llama.gguf";
 * const r = ByteReader.fromBytes(await Deno.readFile(file), "llama.gguf");
 * const g = await readGgufStream(r);
 * assert.equal(g.tensors.length, 21);
 * assert.equal(g.bytes.length, r.position);
 * ```
 */
export async function readGgufStream(reader: ByteReader): Promise<GgufFile> {
  const size = reader.size;
  let buf = new Uint8Array(Math.min(size ?? Infinity, 1 << 20));
  let got = await reader.read(buf);
  for (;;) {
    const ended = got < buf.length; // the source ended inside the buffer
    try {
      const g = parseHeader(buf.subarray(0, got), ended ? got : size ?? Infinity, reader.name);
      if (size !== undefined) return g;
      let end = g.dataOffset;
      for (const t of g.tensors) end = Math.max(end, t.fileOffset + t.nbytes);
      return { ...g, fileSize: end };
    } catch (e) {
      if (!(e instanceof NeedMore) || ended) throw e;
    }
    const more = new Uint8Array(Math.min(size ?? Infinity, buf.length * 2));
    more.set(buf);
    buf = more;
    got += await reader.read(buf.subarray(got));
  }
}

/**
 * One tensor dequantised to F32, with its torch-order shape (`ne` reversed).
 *
 * @param g A GGUF file parsed whole ({@linkcode parseGguf}).
 * @param info The tensor's info (from `g.tensors`).
 * @returns `{shape, data}` row-major.
 * @throws {FormatError} naming the file and tensor for an unsupported type (Q4_K, ...) or
 *   when `g.bytes` does not hold the tensor.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufTensor, parseGguf } from "./parse.ts";
 * const file = "tests/fixtures/gguf/llama.gguf";
 * const g = parseGguf(await Deno.readFile(file), file);
 * assert.equal(g.tensors[0].name, "token_embd.weight");
 * assert.deepEqual(ggufTensor(g, g.tensors[0]).shape, [96, 32]); // ne [32, 96] reversed
 * ```
 */
export function ggufTensor(g: GgufFile, info: GgufTensorInfo): Tensor {
  requireSupported(info.type, g.file, nm(info.name));
  if (info.fileOffset + info.nbytes > g.bytes.length) {
    throw new FormatError(
      g.file,
      `tensor '${nm(info.name)}' data (bytes ${info.fileOffset}..${
        info.fileOffset + info.nbytes
      }) was not read: use parseGguf on the whole file`,
    );
  }
  const n = info.ne.reduce((a, b) => a * b, 1);
  const data = dequantize(
    info.type,
    g.bytes.subarray(info.fileOffset, info.fileOffset + info.nbytes),
    n,
  );
  return { shape: [...info.ne].reverse(), data };
}
