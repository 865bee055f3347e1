/**
 * GGUF reader (llama.cpp's model file format, versions 2 and 3) and its mapping onto the
 * canonical config and tensor names of DESIGN.md, for the architectures `llama`
 * (Llama 1/2/3, Mistral-style), `qwen2` and `gpt2`.
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
 * RoPE: llama.cpp's `llama` architecture applies "normal" RoPE to adjacent pairs. GGUFs
 * converted from Hugging Face carry Q/K rows permuted by convert_hf_to_gguf.py so that this
 * equals HF's rotate-half; files converted from Meta/llama2.c weights are unpermuted and
 * interleaved natively. Either way the stored tensors with `rope_style: interleaved` compute
 * the source model. `qwen2` uses NEOX (rotate-half) RoPE on unpermuted weights → `half`.
 *
 * @module
 */
import type { Checkpoint } from "../checkpoint.ts";
import { type ModelConfig, parseConfig } from "../../core/config.ts";
import { FormatError, GollmError } from "../../core/errors.ts";
import { dequantize, type GgmlType, ggmlType } from "../quant.ts";
import { SentencePieceTokenizer } from "../../tokenizers/sentencepiece.ts";
import { PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "../../tokenizers/tiktoken.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";
import { checkWeights, expectedShapes, type Tensor, type Weights } from "../../core/weights.ts";

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
function nm(s: string): string {
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
  /** A uint64 that must be a safe integer (counts, sizes, offsets). */
  size(what: string): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError(this.file, `${what} is ${v} at offset ${this.pos}: too large`);
    }
    this.pos += 8;
    return Number(v);
  }
  string(what: string): string {
    const len = this.size(`${what} length`);
    this.need(len, what);
    const s = this.dec.decode(this.bytes.subarray(this.pos, this.pos + len));
    this.pos += len;
    return s;
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
  const v = r.view;
  const scalar = SCALAR_BYTES[type];
  if (scalar !== undefined) {
    r.need(scalar, `value of '${nm(key)}'`);
    const p = r.pos;
    r.pos += scalar;
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
    for (let i = 0; i < count; i++) out[i] = readValue(r, elemType, key, depth + 1);
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
 * ```ts ignore
 * import { parseGguf } from "./parse.ts";
 * const g = parseGguf(await Deno.readFile("stories260K.gguf"), "stories260K.gguf");
 * console.log(g.metadata.get("general.architecture")); // "llama"
 * ```
 */
export function parseGguf(bytes: Uint8Array, file: string): GgufFile {
  // With the whole file in memory the reader never runs out before the file does.
  return parseHeader(bytes, bytes.length, file);
}

/**
 * Reads a GGUF file's header (metadata and tensor infos) without loading the tensor data:
 * reads a prefix and doubles it until the header fits.
 *
 * @param path File path.
 * @returns The parsed header; `bytes` holds only the prefix read.
 * @throws {FormatError} as {@linkcode parseGguf}, or when the file cannot be read.
 *
 * @example
 * ```ts ignore
 * import { readGguf } from "./parse.ts";
 * const g = await readGguf("../shared/assets/stories260K/stories260K.gguf");
 * console.log(g.tensors.length); // 48
 * ```
 */
export async function readGguf(path: string): Promise<GgufFile> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  try {
    const fileSize = (await f.stat()).size;
    let want = Math.min(fileSize, 1 << 20);
    for (;;) {
      const buf = new Uint8Array(want);
      await f.seek(0, Deno.SeekMode.Start);
      let got = 0;
      while (got < want) {
        const n = await f.read(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      try {
        return parseHeader(buf.subarray(0, got), fileSize, path);
      } catch (e) {
        if (!(e instanceof NeedMore) || got < want) throw e;
        want = Math.min(fileSize, want * 2);
      }
    }
  } finally {
    f.close();
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
 * ```ts ignore
 * import { ggufTensor, parseGguf } from "./parse.ts";
 * const g = parseGguf(await Deno.readFile("m.gguf"), "m.gguf");
 * console.log(ggufTensor(g, g.tensors[0]).shape); // [512, 64]
 * ```
 */
export function ggufTensor(g: GgufFile, info: GgufTensorInfo): Tensor {
  if (!info.type.supported) {
    throw new FormatError(
      g.file,
      `tensor '${
        nm(info.name)
      }' has type ${info.type.name}, which is not supported (supported: F32, F16, BF16, Q8_0, Q4_0)`,
    );
  }
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

// ---------------------------------------------------------------------------------------
// Metadata accessors

function meta(g: GgufFile, key: string): GgufValue | undefined {
  return g.metadata.get(key);
}

function metaInt(g: GgufFile, key: string, fallback?: number): number {
  const v = meta(g, key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new FormatError(g.file, `metadata '${nm(key)}' is missing`);
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new FormatError(
      g.file,
      `metadata '${nm(key)}' must be a non-negative integer, got ${describe(v)}`,
    );
  }
  return v;
}

function metaFloat(g: GgufFile, key: string, fallback?: number): number {
  const v = meta(g, key);
  if (v === undefined) {
    if (fallback !== undefined) return fallback;
    throw new FormatError(g.file, `metadata '${nm(key)}' is missing`);
  }
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new FormatError(g.file, `metadata '${nm(key)}' must be a number, got ${describe(v)}`);
  }
  return v;
}

function metaBool(g: GgufFile, key: string, fallback: boolean): boolean {
  const v = meta(g, key);
  if (v === undefined) return fallback;
  if (typeof v !== "boolean") {
    throw new FormatError(g.file, `metadata '${nm(key)}' must be a bool, got ${describe(v)}`);
  }
  return v;
}

function metaString(g: GgufFile, key: string): string | undefined {
  const v = meta(g, key);
  if (v === undefined) return undefined;
  if (typeof v !== "string") {
    throw new FormatError(g.file, `metadata '${nm(key)}' must be a string, got ${describe(v)}`);
  }
  return v;
}

function metaArray<T>(
  g: GgufFile,
  key: string,
  check: (x: GgufValue) => x is GgufValue & T,
  what: string,
): T[] | undefined {
  const v = meta(g, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    throw new FormatError(g.file, `metadata '${nm(key)}' must be an array, got ${describe(v)}`);
  }
  for (let i = 0; i < v.length; i++) {
    if (!check(v[i])) {
      throw new FormatError(
        g.file,
        `metadata '${nm(key)}'[${i}] must be ${what}, got ${describe(v[i])}`,
      );
    }
  }
  return v as T[];
}

function describe(v: GgufValue): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  if (typeof v === "bigint") return `${v}n`;
  return String(v);
}

const isString = (x: GgufValue): x is string => typeof x === "string";
const isNumber = (x: GgufValue): x is number => typeof x === "number";
const isInt = (x: GgufValue): x is number => typeof x === "number" && Number.isInteger(x);

// ---------------------------------------------------------------------------------------
// Tokenizer from metadata

/** `tokenizer.ggml.pre` values → pre-tokenizer regex names of tokenizers/tiktoken.ts. */
const PRE_TOKENIZERS: Record<string, keyof typeof PRETOKENIZE_PATTERNS> = {
  "gpt-2": "gpt2",
  "gpt2": "gpt2",
  "llama-bpe": "llama3",
  "llama3": "llama3",
  "smaug-bpe": "llama3",
  "qwen2": "qwen2",
  "deepseek-r1-qwen": "qwen2",
};

/**
 * Builds the tokenizer a GGUF file's metadata describes, or null when it has none.
 *
 * - `tokenizer.ggml.model = "llama"`: {@linkcode SentencePieceTokenizer} from
 *   `tokenizer.ggml.tokens`, `.scores`, `.token_type`, `.bos_token_id`, `.eos_token_id`
 *   (+ `.eot_token_id`, `.eom_token_id` as extra stop ids), `.unknown_token_id`,
 *   `.add_bos_token` (default true), `.add_eos_token`, `.add_space_prefix` (default true).
 * - `"gpt2"`: byte-level BPE through `TiktokenTokenizer.fromByteLevelBpe` (ranks = ids, which
 *   holds for GPT-2, Llama-3 and Qwen2 vocabularies), control and user-defined tokens as
 *   specials, pre-tokenizer regex from `tokenizer.ggml.pre`, add_bos default false.
 * - `tokenizer.chat_template` becomes `chatTemplate`.
 *
 * @param g Parsed GGUF.
 * @returns The tokenizer, or null when `tokenizer.ggml.model` is absent or `"none"`.
 * @throws {FormatError} naming the file and metadata key for a malformed or unsupported
 *   tokenizer (unknown model or pre-tokenizer, bad arrays, ids out of range).
 *
 * @example
 * ```ts ignore
 * import { ggufTokenizer, readGguf } from "./parse.ts";
 * const tok = ggufTokenizer(await readGguf("ggml-vocab-llama-spm.gguf"))!;
 * console.log(tok.encode("Hello world", { bos: false })); // [15043, 3186]
 * ```
 */
export function ggufTokenizer(g: GgufFile): Tokenizer | null {
  const model = metaString(g, "tokenizer.ggml.model");
  if (model === undefined || model === "none" || model === "no_vocab") return null;
  const tokens = metaArray(g, "tokenizer.ggml.tokens", isString, "a string");
  if (!tokens || tokens.length === 0) {
    throw new FormatError(g.file, "metadata 'tokenizer.ggml.tokens' is missing or empty");
  }
  const n = tokens.length;
  const types = metaArray(g, "tokenizer.ggml.token_type", isInt, "an integer");
  if (types && types.length !== n) {
    throw new FormatError(
      g.file,
      `metadata 'tokenizer.ggml.token_type' has ${types.length} entries, expected ${n} (one per token)`,
    );
  }
  const optId = (key: string): number | null => {
    const v = meta(g, key);
    if (v === undefined) return null;
    if (typeof v !== "number" || !Number.isInteger(v)) {
      throw new FormatError(g.file, `metadata '${nm(key)}' must be an integer, got ${describe(v)}`);
    }
    if (v < 0 || v === 0xffffffff) return null; // llama.cpp's "none" (LLAMA_TOKEN_NULL)
    if (v >= n) {
      throw new FormatError(
        g.file,
        `metadata '${nm(key)}' = ${v} is outside the vocabulary [0, ${n})`,
      );
    }
    return v;
  };
  const chatTemplate = metaString(g, "tokenizer.chat_template");
  const eosIds: number[] = [];
  for (const key of ["eos_token_id", "eot_token_id", "eom_token_id"]) {
    const id = optId(`tokenizer.ggml.${key}`);
    if (id !== null && !eosIds.includes(id)) eosIds.push(id);
  }
  if (model === "llama") {
    const scores = metaArray(g, "tokenizer.ggml.scores", isNumber, "a number");
    if (scores && scores.length !== n) {
      throw new FormatError(
        g.file,
        `metadata 'tokenizer.ggml.scores' has ${scores.length} entries, expected ${n} (one per token)`,
      );
    }
    return new SentencePieceTokenizer({
      pieces: tokens,
      scores: scores ?? new Array(n).fill(0),
      types: types ?? undefined,
      bosId: optId("tokenizer.ggml.bos_token_id") ?? (n > 1 ? 1 : null),
      eosIds: eosIds.length > 0 ? eosIds : n > 2 ? [2] : [],
      unkId: optId("tokenizer.ggml.unknown_token_id") ?? 0,
      addBos: metaBool(g, "tokenizer.ggml.add_bos_token", true),
      addEos: metaBool(g, "tokenizer.ggml.add_eos_token", false),
      addSpacePrefix: metaBool(g, "tokenizer.ggml.add_space_prefix", true),
      chatTemplate,
    });
  }
  if (model === "gpt2") {
    const pre = metaString(g, "tokenizer.ggml.pre") ?? "gpt-2";
    const patternName = PRE_TOKENIZERS[pre];
    if (!patternName) {
      throw new FormatError(
        g.file,
        `metadata 'tokenizer.ggml.pre' = "${pre}" is not supported (supported: ${
          Object.keys(PRE_TOKENIZERS).join(", ")
        })`,
      );
    }
    const specials = new Map<string, number>();
    if (types) {
      for (let id = 0; id < n; id++) {
        if (types[id] === 3 || types[id] === 4) specials.set(tokens[id], id);
      }
    }
    const bosId = optId("tokenizer.ggml.bos_token_id");
    try {
      return TiktokenTokenizer.fromByteLevelBpe(
        tokens,
        specials,
        PRETOKENIZE_PATTERNS[patternName],
        {
          bosId,
          eosIds,
          addBos: metaBool(g, "tokenizer.ggml.add_bos_token", false),
          chatTemplate,
          source: g.file,
        },
      );
    } catch (e) {
      if (e instanceof GollmError) throw e;
      throw new FormatError(
        g.file,
        `byte-level BPE vocabulary is malformed: ${(e as Error).message}`,
      );
    }
  }
  throw new FormatError(
    g.file,
    `metadata 'tokenizer.ggml.model' = "${model}" is not supported (supported: llama, gpt2)`,
  );
}

// ---------------------------------------------------------------------------------------
// Architecture mapping

/** Per-block GGUF suffix → canonical suffix, for each architecture. */
const BLOCK_NAMES: Record<string, Record<string, string>> = {
  llama: {
    "attn_norm.weight": "attn_norm.weight",
    "attn_q.weight": "attn.wq.weight",
    "attn_q.bias": "attn.wq.bias",
    "attn_k.weight": "attn.wk.weight",
    "attn_k.bias": "attn.wk.bias",
    "attn_v.weight": "attn.wv.weight",
    "attn_v.bias": "attn.wv.bias",
    "attn_output.weight": "attn.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "ffn.w1.weight",
    "ffn_up.weight": "ffn.w3.weight",
    "ffn_down.weight": "ffn.w2.weight",
  },
  gpt2: {
    "attn_norm.weight": "attn_norm.weight",
    "attn_norm.bias": "attn_norm.bias",
    "attn_q.weight": "attn.wq.weight",
    "attn_q.bias": "attn.wq.bias",
    "attn_k.weight": "attn.wk.weight",
    "attn_k.bias": "attn.wk.bias",
    "attn_v.weight": "attn.wv.weight",
    "attn_v.bias": "attn.wv.bias",
    "attn_output.weight": "attn.wo.weight",
    "attn_output.bias": "attn.wo.bias",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_norm.bias": "ffn_norm.bias",
    "ffn_up.weight": "ffn.w1.weight",
    "ffn_up.bias": "ffn.w1.bias",
    "ffn_down.weight": "ffn.w2.weight",
    "ffn_down.bias": "ffn.w2.bias",
  },
};
BLOCK_NAMES.qwen2 = BLOCK_NAMES.llama;

const TOP_NAMES: Record<string, string> = {
  "token_embd.weight": "tok_embeddings.weight",
  "position_embd.weight": "pos_embeddings.weight",
  "output_norm.weight": "norm.weight",
  "output_norm.bias": "norm.bias",
  "output.weight": "output.weight",
};

/**
 * The GGUF tensor name that holds a canonical tensor (for error messages and writers).
 *
 * @param arch GGUF architecture (`llama`, `qwen2`, `gpt2`).
 * @param canonical Canonical name, e.g. `layers.3.ffn.w1.weight`.
 * @returns The GGUF name (`blk.3.ffn_gate.weight`), or undefined when there is none.
 *
 * @example
 * ```ts
 * import { ggufNameOf } from "./parse.ts";
 * console.log(ggufNameOf("llama", "layers.3.ffn.w1.weight")); // "blk.3.ffn_gate.weight"
 * ```
 */
export function ggufNameOf(arch: string, canonical: string): string | undefined {
  for (const [g, c] of Object.entries(TOP_NAMES)) if (c === canonical) return g;
  const m = /^layers\.(\d+)\.(.+)$/.exec(canonical);
  const table = BLOCK_NAMES[arch];
  if (!m || !table) return undefined;
  for (const [g, c] of Object.entries(table)) if (c === m[2]) return `blk.${m[1]}.${g}`;
  return undefined;
}

/** Features a file may use that the engine does not implement: refuse rather than be wrong. */
function rejectUnsupported(g: GgufFile, arch: string): void {
  const scaling = metaString(g, `${arch}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== "none") {
    const factor = meta(g, `${arch}.rope.scaling.factor`);
    if (!(scaling === "linear" && factor === 1)) {
      throw new FormatError(
        g.file,
        `metadata '${arch}.rope.scaling.type' = "${scaling}": RoPE scaling is not supported`,
      );
    }
  }
  if (g.tensors.some((t) => t.name === "rope_freqs.weight")) {
    throw new FormatError(
      g.file,
      "tensor 'rope_freqs.weight' (Llama-3.1-style RoPE frequency scaling) is not supported",
    );
  }
  const expertCount = meta(g, `${arch}.expert_count`);
  if (typeof expertCount === "number" && expertCount > 0) {
    throw new FormatError(
      g.file,
      `metadata '${arch}.expert_count' = ${expertCount}: mixture-of-experts models are not supported`,
    );
  }
  const window = meta(g, `${arch}.attention.sliding_window`);
  if (typeof window === "number" && window > 0) {
    const ctx = meta(g, `${arch}.context_length`);
    if (typeof ctx === "number" && window < ctx) {
      throw new FormatError(
        g.file,
        `metadata '${arch}.attention.sliding_window' = ${window} < context_length ${ctx}: sliding-window attention is not supported`,
      );
    }
  }
}

/**
 * Maps a parsed GGUF (read whole) onto a gollm {@linkcode Checkpoint}: config from
 * `{arch}.*` metadata, tensors dequantised to F32 under canonical names, tokenizer from
 * `tokenizer.ggml.*`.
 *
 * Config: `dim` = `embedding_length`, `n_layers` = `block_count`, `n_heads` =
 * `attention.head_count`, `n_kv_heads` = `attention.head_count_kv` (default n_heads),
 * `head_dim` = `attention.key_length` (default dim / n_heads; `rope.dimension_count` must
 * equal it), `hidden_dim` = `feed_forward_length`, `context_length`, `norm_eps` =
 * `attention.layer_norm_rms_epsilon` (gpt2: `attention.layer_norm_epsilon`), `rope_theta` =
 * `rope.freq_base` (default 10000), `vocab_size` from `token_embd.weight`, tied when
 * `output.weight` is absent; `llama` → `rope_style: interleaved`, `qwen2` → `half` with q/k/v
 * bias, `gpt2` → layernorm + gelu (a fused `attn_qkv` is split into wq/wk/wv).
 *
 * @param g Parsed GGUF holding the whole file.
 * @returns The checkpoint (`format: "gguf"`).
 * @throws {FormatError} for an unsupported architecture, a missing or malformed metadata
 *   key, a missing/unexpected/mis-shaped tensor, an unsupported tensor type or feature.
 * @throws {ConfigError} when the metadata describes an invalid config.
 *
 * @example
 * ```ts ignore
 * import { ggufToCheckpoint, parseGguf } from "./parse.ts";
 * const ck = ggufToCheckpoint(parseGguf(await Deno.readFile("m.gguf"), "m.gguf"));
 * console.log(ck.config.rope_style); // "interleaved"
 * ```
 */
export function ggufToCheckpoint(g: GgufFile): Checkpoint {
  const arch = metaString(g, "general.architecture");
  if (arch === undefined) {
    throw new FormatError(g.file, "metadata 'general.architecture' is missing");
  }
  if (!BLOCK_NAMES[arch]) {
    throw new FormatError(
      g.file,
      `metadata 'general.architecture' = "${arch}" is not supported (supported: llama, qwen2, gpt2)`,
    );
  }
  rejectUnsupported(g, arch);
  const infos = new Map(g.tensors.map((t) => [t.name, t]));
  const embd = infos.get("token_embd.weight");
  if (!embd) throw new FormatError(g.file, "tensor 'token_embd.weight' is missing");
  if (embd.ne.length !== 2) {
    throw new FormatError(
      g.file,
      `tensor 'token_embd.weight' must be 2-D, got ne [${embd.ne}]`,
    );
  }
  const k = (s: string) => `${arch}.${s}`;
  const dim = metaInt(g, k("embedding_length"));
  const nHeads = metaInt(g, k("attention.head_count"));
  const headDim = metaInt(g, k("attention.key_length"), nHeads > 0 ? Math.floor(dim / nHeads) : 0);
  const valueLength = metaInt(g, k("attention.value_length"), headDim);
  if (valueLength !== headDim) {
    throw new FormatError(
      g.file,
      `metadata '${
        k("attention.value_length")
      }' = ${valueLength} differs from key_length ${headDim}: not supported`,
    );
  }
  const gpt2 = arch === "gpt2";
  if (!gpt2) {
    const ropeDims = metaInt(g, k("rope.dimension_count"), headDim);
    if (ropeDims !== headDim) {
      throw new FormatError(
        g.file,
        `metadata '${
          k("rope.dimension_count")
        }' = ${ropeDims} differs from head_dim ${headDim}: partial RoPE is not supported`,
      );
    }
  }
  const tokenizer = ggufTokenizer(g);
  const tied = !infos.has("output.weight");
  const raw: Record<string, unknown> = {
    arch: gpt2 ? "gpt2" : "llama",
    vocab_size: embd.ne[1],
    dim,
    n_layers: metaInt(g, k("block_count")),
    n_heads: nHeads,
    n_kv_heads: metaInt(g, k("attention.head_count_kv"), nHeads),
    head_dim: headDim,
    hidden_dim: metaInt(g, k("feed_forward_length")),
    context_length: metaInt(g, k("context_length")),
    norm: gpt2 ? "layernorm" : "rmsnorm",
    norm_eps: gpt2
      ? metaFloat(g, k("attention.layer_norm_epsilon"))
      : metaFloat(g, k("attention.layer_norm_rms_epsilon")),
    rope_theta: metaFloat(g, k("rope.freq_base"), 10000),
    rope_style: arch === "llama" ? "interleaved" : "half",
    attn_bias: gpt2 || infos.has("blk.0.attn_q.bias"),
    mlp: gpt2 ? "gelu" : "swiglu",
    tie_embeddings: tied,
    tokenizer: tokenizer === null
      ? "none"
      : tokenizer instanceof SentencePieceTokenizer
      ? "tokenizer.bin"
      : "tokenizer.tiktoken",
  };
  if (raw.n_layers === 0 || raw.dim === 0 || nHeads === 0) {
    throw new FormatError(
      g.file,
      `metadata describes an empty model (block_count ${raw.n_layers}, embedding_length ${dim}, head_count ${nHeads})`,
    );
  }
  // Cheap consistency check before anything sized by block_count is built.
  let blocks = 0;
  for (const t of g.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) blocks = Math.max(blocks, Number(m[1]) + 1);
  }
  if (blocks !== raw.n_layers) {
    throw new FormatError(
      g.file,
      `metadata '${
        k("block_count")
      }' = ${raw.n_layers} but the tensors hold ${blocks} blocks (blk.0 .. blk.${blocks - 1})`,
    );
  }
  const config: ModelConfig = parseConfig(raw, g.file);
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) {
    throw new FormatError(
      g.file,
      `tokenizer has ${tokenizer.vocabSize} tokens but 'token_embd.weight' has only ${config.vocab_size} rows`,
    );
  }
  const weights = ggufWeights(g, arch, config);
  checkWeights(config, weights, g.file);
  return { format: "gguf", path: g.file, config, weights, tokenizer };
}

/** Dequantises and renames every tensor; checks shapes against the config first. */
function ggufWeights(g: GgufFile, arch: string, config: ModelConfig): Weights {
  const want = expectedShapes(config);
  const weights: Weights = new Map();
  const table = BLOCK_NAMES[arch];
  const q = config.n_heads * config.head_dim, kv = config.n_kv_heads * config.head_dim;
  const put = (info: GgufTensorInfo, canonical: string) => {
    const shape = want.get(canonical);
    if (!shape) {
      throw new FormatError(
        g.file,
        `tensor '${
          nm(info.name)
        }' (${canonical}) is not expected for this config (e.g. n_layers ${config.n_layers}, tie_embeddings ${config.tie_embeddings})`,
      );
    }
    const got = [...info.ne].reverse();
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new FormatError(
        g.file,
        `tensor '${
          nm(info.name)
        }' has shape [${got}] (ggml ne [${info.ne}]), expected [${shape}] for ${canonical}`,
      );
    }
    weights.set(canonical, ggufTensor(g, info));
  };
  for (const info of g.tensors) {
    const top = TOP_NAMES[info.name];
    if (top) {
      put(info, top);
      continue;
    }
    const m = /^blk\.(\d+)\.(.+)$/.exec(info.name);
    const suffix = m ? m[2] : "";
    if (m && (suffix === "attn_qkv.weight" || suffix === "attn_qkv.bias")) {
      // Fused QKV (gpt2 c_attn): rows are q then k then v.
      const isW = suffix.endsWith("weight");
      const rows = q + 2 * kv;
      const cols = isW ? config.dim : 1;
      const wantNe = isW ? [config.dim, rows] : [rows];
      if (info.ne.length !== wantNe.length || info.ne.some((d, i) => d !== wantNe[i])) {
        throw new FormatError(
          g.file,
          `tensor '${nm(info.name)}' has ggml ne [${info.ne}], expected [${wantNe}]`,
        );
      }
      const t = ggufTensor(g, info);
      const kind = isW ? "weight" : "bias";
      const parts: [string, number, number][] = [["wq", 0, q], ["wk", q, kv], ["wv", q + kv, kv]];
      for (const [name, r0, nr] of parts) {
        const canonical = `layers.${m[1]}.attn.${name}.${kind}`;
        if (!want.has(canonical)) {
          throw new FormatError(
            g.file,
            `tensor '${nm(info.name)}' is not expected for this config`,
          );
        }
        weights.set(canonical, {
          shape: isW ? [nr, cols] : [nr],
          data: t.data.slice(r0 * cols, (r0 + nr) * cols),
        });
      }
      continue;
    }
    const canonicalSuffix = m ? table[suffix] : undefined;
    if (!m || !canonicalSuffix) {
      throw new FormatError(
        g.file,
        `tensor '${nm(info.name)}' is not supported for architecture ${arch}`,
      );
    }
    put(info, `layers.${m[1]}.${canonicalSuffix}`);
  }
  for (const [canonical, shape] of want) {
    if (!weights.has(canonical)) {
      const name = ggufNameOf(arch, canonical) ?? canonical;
      throw new FormatError(
        g.file,
        `tensor '${nm(name)}' is missing (${canonical}, expected shape [${shape}])`,
      );
    }
  }
  return weights;
}

/**
 * Loads a GGUF checkpoint (architectures llama, qwen2, gpt2; tensor types F32, F16, BF16,
 * Q8_0, Q4_0 dequantised to F32).
 *
 * @param path File path.
 * @returns The checkpoint with config, canonical weights and the embedded tokenizer.
 * @throws {FormatError} naming the file for unreadable or malformed files and unsupported
 *   architectures, tensor types or features (see {@linkcode ggufToCheckpoint}).
 *
 * @example
 * ```ts ignore
 * import { loadGguf } from "./parse.ts";
 * const ck = await loadGguf("../shared/assets/stories260K/stories260K.gguf");
 * console.log(ck.config.n_kv_heads, ck.tokenizer?.encode("Once")); // 4 [1, 403]
 * ```
 */
export async function loadGguf(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  return ggufToCheckpoint(parseGguf(bytes, path));
}
