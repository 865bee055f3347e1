/**
 * Test helper: serialises GGUF files byte by byte following ggml/docs/gguf.md, so tests can
 * make well-formed and deliberately broken files (bad magic, unsupported tensor types,
 * missing tensors) and vocab-only GGUFs. Cross-checked against the Python `gguf` package
 * in formats/gguf/parse_test.ts (files it writes parse the same way).
 *
 * @module
 */
import { GGUF_VALUE_TYPE, readGgufStream } from "../formats/gguf/parse.ts";
import { ByteReader } from "../core/model_bytes.ts";

/** A typed metadata value: scalar (`type` a GGUF_VALUE_TYPE id) or array. */
export type BuilderValue =
  | { type: number; value: number | bigint | boolean | string }
  | { type: typeof GGUF_VALUE_TYPE.ARRAY; elemType: number; values: BuilderValue[] };

/** One tensor to write: name, ggml `ne`, ggml type id and its raw bytes. */
export interface BuilderTensor {
  /** GGUF tensor name. */
  name: string;
  /** ggml dims, fastest first. */
  ne: number[];
  /** ggml type id (0 F32, 1 F16, 2 Q4_0, 8 Q8_0, 30 BF16, ...). */
  type: number;
  /** Raw data bytes. */
  data: Uint8Array;
}

/** Shorthands for typed metadata values. */
export const v = {
  u32: (x: number): BuilderValue => ({ type: GGUF_VALUE_TYPE.UINT32, value: x }),
  i32: (x: number): BuilderValue => ({ type: GGUF_VALUE_TYPE.INT32, value: x }),
  f32: (x: number): BuilderValue => ({ type: GGUF_VALUE_TYPE.FLOAT32, value: x }),
  f64: (x: number): BuilderValue => ({ type: GGUF_VALUE_TYPE.FLOAT64, value: x }),
  u64: (x: bigint): BuilderValue => ({ type: GGUF_VALUE_TYPE.UINT64, value: x }),
  i64: (x: bigint): BuilderValue => ({ type: GGUF_VALUE_TYPE.INT64, value: x }),
  bool: (x: boolean): BuilderValue => ({ type: GGUF_VALUE_TYPE.BOOL, value: x }),
  str: (x: string): BuilderValue => ({ type: GGUF_VALUE_TYPE.STRING, value: x }),
  strs: (xs: readonly string[]): BuilderValue => ({
    type: GGUF_VALUE_TYPE.ARRAY,
    elemType: GGUF_VALUE_TYPE.STRING,
    values: xs.map((x) => ({ type: GGUF_VALUE_TYPE.STRING, value: x })),
  }),
  f32s: (xs: ArrayLike<number>): BuilderValue => ({
    type: GGUF_VALUE_TYPE.ARRAY,
    elemType: GGUF_VALUE_TYPE.FLOAT32,
    values: Array.from(xs, (x) => ({ type: GGUF_VALUE_TYPE.FLOAT32, value: x })),
  }),
  i32s: (xs: ArrayLike<number>): BuilderValue => ({
    type: GGUF_VALUE_TYPE.ARRAY,
    elemType: GGUF_VALUE_TYPE.INT32,
    values: Array.from(xs, (x) => ({ type: GGUF_VALUE_TYPE.INT32, value: x })),
  }),
};

class Out {
  chunks: Uint8Array[] = [];
  size = 0;
  push(b: Uint8Array) {
    this.chunks.push(b);
    this.size += b.length;
  }
  num(bytes: number, f: (d: DataView) => void) {
    const b = new Uint8Array(bytes);
    f(new DataView(b.buffer));
    this.push(b);
  }
  u32(x: number) {
    this.num(4, (d) => d.setUint32(0, x, true));
  }
  u64(x: number | bigint) {
    this.num(8, (d) => d.setBigUint64(0, BigInt(x), true));
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.push(b);
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

function writeValue(o: Out, val: BuilderValue): void {
  if ("values" in val) {
    o.u32(val.elemType);
    o.u64(val.values.length);
    for (const x of val.values) writeValue(o, x);
    return;
  }
  const x = val.value;
  switch (val.type) {
    case 0:
    case 1:
    case 7:
      o.num(1, (d) => d.setUint8(0, typeof x === "boolean" ? (x ? 1 : 0) : Number(x)));
      return;
    case 2:
      return o.num(2, (d) => d.setUint16(0, Number(x), true));
    case 3:
      return o.num(2, (d) => d.setInt16(0, Number(x), true));
    case 4:
      return o.num(4, (d) => d.setUint32(0, Number(x), true));
    case 5:
      return o.num(4, (d) => d.setInt32(0, Number(x), true));
    case 6:
      return o.num(4, (d) => d.setFloat32(0, Number(x), true));
    case 8:
      return o.str(String(x));
    case 10:
      return o.num(8, (d) => d.setBigUint64(0, BigInt(x as number | bigint), true));
    case 11:
      return o.num(8, (d) => d.setBigInt64(0, BigInt(x as number | bigint), true));
    case 12:
      return o.num(8, (d) => d.setFloat64(0, Number(x), true));
  }
  throw new Error(`builder: unknown value type ${val.type}`);
}

/**
 * Serialises a GGUF file.
 *
 * @param kv Metadata entries in order (key, typed value).
 * @param tensors Tensors in order; data placed at aligned offsets.
 * @param opts `version` (default 3), `alignment` (default 32, must match any
 *   `general.alignment` entry).
 * @returns The file bytes.
 */
export function buildGguf(
  kv: [string, BuilderValue][],
  tensors: BuilderTensor[] = [],
  opts: { version?: number; alignment?: number } = {},
): Uint8Array {
  const align = opts.alignment ?? 32;
  const o = new Out();
  o.push(new TextEncoder().encode("GGUF"));
  o.u32(opts.version ?? 3);
  o.u64(tensors.length);
  o.u64(kv.length);
  for (const [k, val] of kv) {
    o.str(k);
    o.u32("values" in val ? GGUF_VALUE_TYPE.ARRAY : val.type);
    writeValue(o, val);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(offset);
    offset += Math.ceil(t.data.length / align) * align;
  }
  tensors.forEach((t, i) => {
    o.str(t.name);
    o.u32(t.ne.length);
    for (const n of t.ne) o.u64(n);
    o.u32(t.type);
    o.u64(offsets[i]);
  });
  const pad = (Math.ceil(o.size / align) * align) - o.size;
  o.push(new Uint8Array(pad));
  tensors.forEach((t) => {
    o.push(t.data);
    const p = Math.ceil(t.data.length / align) * align - t.data.length;
    o.push(new Uint8Array(p));
  });
  return o.bytes();
}

/**
 * Raw little-endian F32 bytes of values.
 * @param xs Values.
 * @returns 4 bytes per value.
 */
export function f32Bytes(xs: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(xs).buffer);
}

/**
 * A GGUF whose tensor data is moved `by` bytes toward the front, the same length: the header
 * still parses and (for F32 data moved by a multiple of 4) every value stays finite, but no
 * tensor holds its own weights any more. Negative control of the tests that load bytes.
 *
 * @param bytes A whole GGUF file.
 * @param by Bytes to move.
 * @returns A changed copy.
 * @example
 * ```ts ignore
 * const broken = await shiftTensorData(await Deno.readFile("m.gguf"), 64);
 * ```
 */
export async function shiftTensorData(bytes: Uint8Array, by: number): Promise<Uint8Array> {
  const g = await readGgufStream(ByteReader.fromBytes(bytes, "shiftTensorData"));
  const out = bytes.slice();
  out.copyWithin(g.dataOffset, g.dataOffset + by);
  return out;
}
