/**
 * safetensors: hand-built files of every dtype read correctly (aligned and unaligned),
 * F32/F16/BF16 write→read round trips with tricky values, F16 rounding against V8's own
 * `Float16Array`, BF16 rounding against its definition, every malformed-file error, the
 * atomic write, and (when Python has `safetensors` + `torch`) parity both ways with the
 * reference implementation.
 */
import assert from "node:assert/strict";
import { FormatError, GollmError } from "../core/errors.ts";
import { f32BitsToBf16Bits, f32BitsToF16Bits } from "../core/numbers.ts";
import { parseSafetensors, readSafetensors, writeSafetensors } from "./safetensors.ts";
import type { F32Tensor as Tensor } from "../core/weights.ts";
import { assertClose } from "../tests/assert_close.ts";
import { tensorToF32 } from "./quant/tensor.ts";
import { pythonSkipReason } from "../tests/python_probe.ts";

const enc = new TextEncoder();

/** Builds a safetensors file by hand: `header` JSON padded to `headerLen`, then `data`. */
function build(header: unknown, data: Uint8Array, headerLen?: number): Uint8Array {
  let json = typeof header === "string" ? header : JSON.stringify(header);
  if (headerLen !== undefined) json = json.padEnd(headerLen, " ");
  const h = enc.encode(json);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function le(values: number[], kind: "f32" | "f64" | "u16" | "i32" | "i64"): Uint8Array {
  const size = { f32: 4, f64: 8, u16: 2, i32: 4, i64: 8 }[kind];
  const dv = new DataView(new ArrayBuffer(values.length * size));
  values.forEach((v, i) => {
    if (kind === "f32") dv.setFloat32(i * size, v, true);
    else if (kind === "f64") dv.setFloat64(i * size, v, true);
    else if (kind === "u16") dv.setUint16(i * size, v, true);
    else if (kind === "i32") dv.setInt32(i * size, v, true);
    else dv.setBigInt64(i * size, BigInt(v), true);
  });
  return new Uint8Array(dv.buffer);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function f32Bits(x: number): number {
  return new Uint32Array(new Float32Array([x]).buffer)[0];
}

function bitsToF32(b: number): number {
  return new Float32Array(new Uint32Array([b]).buffer)[0];
}

/** Tricky F32 values: signed zeros, infinities, NaN, subnormals, extremes, rounding cases. */
const TRICKY = [
  0,
  -0,
  1,
  -1,
  0.1,
  -2.5,
  Math.PI,
  Infinity,
  -Infinity,
  NaN,
  65504,
  65519.99,
  65520,
  -65536,
  1e-8,
  5.960464477539063e-8, // 2^-24, smallest f16 subnormal
  2.9802322387695312e-8, // 2^-25: tie between 0 and 2^-24 → 0
  2.980232594040899e-8, // just above 2^-25 → 2^-24
  6.097555160522461e-5, // largest f16 subnormal
  6.103515625e-5, // smallest f16 normal
  1.401298464324817e-45, // smallest f32 subnormal
  3.4028234663852886e38, // f32 max
  1 + 2 ** -11, // f16 tie → 1 (even)
  1 + 3 * 2 ** -11, // f16 tie → 1 + 2^-9 (even)
  1 + 2 ** -8, // bf16 tie → 1 (even)
  1 + 3 * 2 ** -8, // bf16 tie → 1 + 2^-6 (even)
  bitsToF32(0x7f7fffff),
  bitsToF32(0x3f807fff),
  bitsToF32(0x3f808000),
  bitsToF32(0x3f818000),
  bitsToF32(0x7fc00001), // NaN with payload
];

let tmpDir: string | null = null;
async function tmp(): Promise<string> {
  if (tmpDir === null) {
    const dir = await Deno.makeTempDir({ prefix: "gollm_safetensors_test_" });
    tmpDir = dir;
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  }
  return tmpDir;
}

function expectFormatError(fn: () => unknown, ...includes: (string | RegExp)[]): FormatError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
    assert.ok(e.message.startsWith("bad.safetensors: "), e.message);
    assert.ok(!e.message.includes("\n"), "one line");
    for (const s of includes) {
      if (typeof s === "string") assert.ok(e.message.includes(s), `${e.message} lacks ${s}`);
      else assert.match(e.message, s);
    }
    return e;
  }
  assert.fail("expected a FormatError");
}

Deno.test("f32BitsToF16Bits() matches V8's Float16Array on every f16 value, midpoint and random bits", () => {
  const f16 = new Float16Array(1), f16bits = new Uint16Array(f16.buffer);
  const check = (x: number) => {
    f16[0] = x;
    const want = f16bits[0];
    const got = f32BitsToF16Bits(f32Bits(x));
    if (Number.isNaN(x)) {
      assert.ok((got & 0x7c00) === 0x7c00 && (got & 0x3ff) !== 0, `NaN → ${got.toString(16)}`);
      return;
    }
    if (got !== want) {
      assert.fail(
        `x=${x} (bits ${f32Bits(x).toString(16)}): got ${got.toString(16)} want ${
          want.toString(16)
        }`,
      );
    }
  };
  const h = new Uint16Array(1), hv = new Float16Array(h.buffer);
  for (let b = 0; b < 0x10000; b++) {
    h[0] = b;
    const v = hv[0];
    check(v);
    if ((b & 0x7fff) < 0x7c00) {
      // Midpoint to the next f16 up (in magnitude), exactly and one f32 ulp either side.
      h[0] = b + 1;
      const next = hv[0];
      const mid = Math.fround((v + next) / 2);
      if ((b & 0x7fff) < 0x7bff) {
        check(mid);
        check(bitsToF32(f32Bits(mid) + 1));
        check(bitsToF32(f32Bits(mid) - 1));
      }
    }
  }
  let s = 0x9e3779b9;
  for (let i = 0; i < 200000; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    check(bitsToF32(s >>> 0));
  }
  for (const x of TRICKY) check(x);
});

Deno.test("f32BitsToBf16Bits() rounds to the nearest bf16, ties to even", () => {
  const check = (bits: number) => {
    const x = bitsToF32(bits);
    const got = f32BitsToBf16Bits(bits);
    if (Number.isNaN(x)) {
      assert.ok((got & 0x7f80) === 0x7f80 && (got & 0x7f) !== 0, "NaN stays NaN");
      return;
    }
    const lo = (bits >>> 16) & 0xffff, hi = (lo + 1) & 0xffff; // truncation and next up
    const vlo = bitsToF32(lo << 16);
    // Past the largest finite bf16 the next step up is ±2^128 (which IEEE rounds to ±inf).
    const vhi = (hi & 0x7fff) === 0x7f80 ? Math.sign(vlo) * 2 ** 128 : bitsToF32(hi << 16);
    const dlo = Math.abs(x - vlo), dhi = Math.abs(vhi - x);
    let want: number;
    if ((lo & 0x7f80) === 0x7f80) want = lo; // ±inf stays
    else if (dlo < dhi) want = lo;
    else if (dhi < dlo) want = hi;
    else want = lo & 1 ? hi : lo;
    assert.equal(
      got,
      want,
      `bits ${bits.toString(16)}: got ${got.toString(16)} want ${want.toString(16)}`,
    );
  };
  let s = 12345;
  for (let i = 0; i < 200000; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    check(s >>> 0);
    check(((s >>> 0) & 0xffff0000 | 0x8000) >>> 0); // exact ties
  }
  for (const x of TRICKY) check(f32Bits(x));
  assert.equal(f32BitsToBf16Bits(f32Bits(1)), 0x3f80);
  assert.equal(f32BitsToBf16Bits(0x3f808000), 0x3f80); // tie → even
  assert.equal(f32BitsToBf16Bits(0x3f818000), 0x3f82); // tie → even (up)
  assert.equal(f32BitsToBf16Bits(0x7f7fffff), 0x7f80); // rounds to +inf
});

Deno.test("parseSafetensors() reads hand-built files of every dtype, aligned and unaligned", () => {
  const f32 = [1.5, -2, 3.25, NaN, -0, Infinity];
  const data = concat(
    le(f32, "f32"), // a: F32 [2,3]
    le([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0x8000], "u16"), // b: F16
    le([0x3f80, 0x4049, 0xc2f7, 0x0000], "u16"), // c: BF16
    le([0.1, -1e300], "f64"), // d: F64 (-1e300 → -inf in f32)
    le([-7, 2147483647], "i32"), // e: I32
    le([-5, 2 ** 40], "i64"), // f: I64
    new Uint8Array([0, 1, 255]), // g: U8
    new Uint8Array([1, 0]), // h: BOOL
  );
  const header = {
    __metadata__: { format: "gollm", format_version: "1" },
    a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 24] },
    b: { dtype: "F16", shape: [6], data_offsets: [24, 36] },
    c: { dtype: "BF16", shape: [2, 2], data_offsets: [36, 44] },
    d: { dtype: "F64", shape: [2], data_offsets: [44, 60] },
    e: { dtype: "I32", shape: [2], data_offsets: [60, 68] },
    f: { dtype: "I64", shape: [2], data_offsets: [68, 84] },
    g: { dtype: "U8", shape: [3], data_offsets: [84, 87] },
    h: { dtype: "BOOL", shape: [2], data_offsets: [87, 89] },
    s: { dtype: "F32", shape: [0, 4], data_offsets: [89, 89] },
  };
  // Header lengths that put the data at every alignment mod 8 (F32 aligned and not).
  const base = JSON.stringify(header).length;
  for (let pad = 0; pad < 8; pad++) {
    const file = build(header, data, base + pad);
    // Also parse from a view at an odd byte offset of a larger buffer.
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    for (const bytes of [file, shifted.subarray(3)]) {
      const { tensors, metadata, dtypes } = parseSafetensors(bytes, "hand.safetensors");
      assert.deepEqual(metadata, { format: "gollm", format_version: "1" });
      assert.deepEqual([...tensors.keys()], ["a", "b", "c", "d", "e", "f", "g", "h", "s"]);
      assert.deepEqual(tensors.get("a")!.shape, [2, 3]);
      assert.deepEqual([...tensors.get("a")!.data], f32);
      assert.ok(Object.is(tensors.get("a")!.data[4], -0));
      assert.deepEqual([...tensors.get("b")!.data], [1, -2, 65504, 2 ** -24, Infinity, -0]);
      assert.deepEqual([...tensors.get("c")!.data], [1, 3.140625, -123.5, 0]);
      assert.deepEqual([...tensors.get("d")!.data], [Math.fround(0.1), -Infinity]);
      assert.deepEqual([...tensors.get("e")!.data], [-7, 2147483648]);
      assert.deepEqual([...tensors.get("f")!.data], [-5, 2 ** 40]);
      assert.deepEqual([...tensors.get("g")!.data], [0, 1, 255]);
      assert.deepEqual([...tensors.get("h")!.data], [1, 0]);
      assert.deepEqual(tensors.get("s")!.shape, [0, 4]);
      assert.equal(tensors.get("s")!.data.length, 0);
      assert.equal(dtypes.get("b"), "F16");
      // The result owns its data (no view into the file buffer).
      assert.notEqual(tensors.get("a")!.data.buffer, bytes.buffer);
    }
  }
});

Deno.test("writeSafetensors() → readSafetensors() round-trips F32 exactly and F16/BF16 with RNE", async () => {
  const dir = await tmp();
  let s = 7;
  const rand = Array.from({ length: 1001 }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 4294967296 - 0.5) * 100;
  });
  const tensors = new Map<string, Tensor>([
    ["tricky", { shape: [TRICKY.length], data: new Float32Array(TRICKY) }],
    ["layers.0.attn.wq.weight", {
      shape: [7, 143],
      data: new Float32Array(rand.concat(rand).slice(0, 1001)),
    }],
    ["scalar", { shape: [], data: new Float32Array([42]) }],
    ["empty", { shape: [3, 0], data: new Float32Array(0) }],
  ]);
  const meta = { format: "gollm", format_version: "1", note: "ünïcode ✓" };
  for (const dtype of ["F32", "F16", "BF16"] as const) {
    const path = `${dir}/rt_${dtype}.safetensors`;
    await writeSafetensors(path, tensors, { dtype, metadata: meta });
    const raw = await Deno.readFile(path);
    const headerLen = Number(new DataView(raw.buffer).getBigUint64(0, true));
    assert.equal((8 + headerLen) % 8, 0, "data section is 8-byte aligned");
    const back = await readSafetensors(path);
    assert.deepEqual(back.metadata, meta);
    assert.deepEqual([...back.tensors.keys()], [...tensors.keys()]);
    for (const [name, t] of tensors) {
      const got = back.tensors.get(name)!;
      assert.deepEqual(got.shape, t.shape, name);
      assert.equal(back.dtypes.get(name), dtype);
      const want = Array.from(t.data, (x) => {
        if (dtype === "F32") return x;
        if (dtype === "F16") return Math.f16round(x);
        return bitsToF32(f32BitsToBf16Bits(f32Bits(x)) << 16);
      });
      for (let i = 0; i < want.length; i++) {
        if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got.data[i]), `${name}[${i}] NaN`);
        else {assert.ok(
            Object.is(got.data[i], want[i]),
            `${dtype} ${name}[${i}]: ${got.data[i]} vs ${want[i]}`,
          );}
      }
      if (dtype === "F32") {
        // Bit-exact, NaN payload included.
        assert.deepEqual(
          new Uint32Array(got.data.buffer, got.data.byteOffset, got.data.length),
          new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length),
        );
      } else {
        const rel = dtype === "F16" ? 2 ** -11 : 2 ** -8;
        const w = tensors.get("layers.0.attn.wq.weight")!.data;
        const g = back.tensors.get("layers.0.attn.wq.weight")!.data;
        assertClose(g, w, 50 * rel, `${dtype} relative rounding`);
      }
    }
  }
  // Overwriting an existing file replaces it.
  const path = `${dir}/rt_F32.safetensors`;
  await writeSafetensors(path, new Map([["x", { shape: [1], data: new Float32Array([3]) }]]), {
    dtype: "F32",
  });
  const again = await readSafetensors(path);
  assert.deepEqual([...again.tensors.keys()], ["x"]);
  assert.deepEqual(again.metadata, {});
});

Deno.test("parseSafetensors() rejects truncated and corrupt files, naming the file and tensor", () => {
  const ok = { w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] } };
  const data = le([1, 2, 3, 4], "f32");
  const parse = (b: Uint8Array) => () => parseSafetensors(b, "bad.safetensors");
  expectFormatError(parse(new Uint8Array(5)), "truncated", "need at least 8");
  const good = build(ok, data);
  parseSafetensors(good, "good.safetensors"); // sanity
  // Truncated: header length runs past EOF; data cut short.
  expectFormatError(parse(good.subarray(0, 20)), /header length \d+ runs past the end/);
  expectFormatError(
    parse(good.subarray(0, good.length - 1)),
    "tensor 'w'",
    "run past the data section",
  );
  // Header length absurdly large (u64 > 2^53).
  const huge = good.slice();
  new DataView(huge.buffer).setBigUint64(0, 2n ** 63n, true);
  expectFormatError(parse(huge), "runs past the end");
  // Corrupt JSON / not an object / invalid UTF-8.
  expectFormatError(parse(build('{"w": {"dtype": "F32",', data)), "corrupt safetensors header");
  expectFormatError(parse(build("[1, 2, 3]", new Uint8Array(0))), "must be a JSON object");
  const badUtf8 = build('{"w":1}', new Uint8Array(0));
  badUtf8[9] = 0xff;
  expectFormatError(parse(badUtf8), "corrupt safetensors header");
  // Unsupported dtype names the tensor.
  expectFormatError(
    parse(build({ q: { dtype: "F8_E4M3", shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4))),
    "tensor 'q'",
    'unsupported dtype "F8_E4M3"',
  );
  expectFormatError(
    parse(build({ q: { dtype: 5, shape: [1], data_offsets: [0, 4] } }, data)),
    "tensor 'q'",
  );
  // Shape / offsets malformed.
  expectFormatError(
    parse(build({ w: { dtype: "F32", shape: [2, -2], data_offsets: [0, 16] } }, data)),
    "tensor 'w'",
    "shape",
  );
  expectFormatError(
    parse(build({ w: { dtype: "F32", shape: [4], data_offsets: [0] } }, data)),
    "tensor 'w'",
    "data_offsets",
  );
  expectFormatError(
    parse(build({ w: { dtype: "F32", shape: [4], data_offsets: [0, 32] } }, data)),
    "tensor 'w'",
    "run past the data section",
  );
  expectFormatError(
    parse(build({ w: { dtype: "F32", shape: [4], data_offsets: [16, 0] } }, data)),
    "tensor 'w'",
    "end before begin",
  );
  // Offsets inconsistent with dtype × shape (a wrong dtype for the bytes).
  expectFormatError(
    parse(build({ w: { dtype: "F16", shape: [4], data_offsets: [0, 16] } }, data)),
    "tensor 'w'",
    "F16 shape [4] needs 8 bytes",
  );
  // Overlap, gap, trailing bytes.
  expectFormatError(
    parse(build({
      a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
      b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
    }, data)),
    "tensor 'b'",
    "overlap",
  );
  expectFormatError(
    parse(build({
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
    }, data)),
    "tensor 'b'",
    "gap",
  );
  expectFormatError(
    parse(build({ a: { dtype: "F32", shape: [3], data_offsets: [0, 12] } }, data)),
    "trailing or missing bytes",
  );
  // Metadata must map strings to strings.
  expectFormatError(parse(build({ __metadata__: { v: 1 }, ...ok }, data)), "__metadata__ 'v'");
  // Tensors listed out of offset order are fine when they tile the data.
  const swapped = parseSafetensors(
    build({
      b: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
    }, data),
    "swapped.safetensors",
  );
  assert.deepEqual([...swapped.tensors.get("b")!.data], [3, 4]);
});

Deno.test("readSafetensors() names the file when it is missing or truncated on disk", async () => {
  const dir = await tmp();
  const missing = `${dir}/nope.safetensors`;
  await assert.rejects(readSafetensors(missing), (e: unknown) => {
    assert.ok(e instanceof FormatError);
    assert.ok(e.message.startsWith(`${missing}: cannot read`), e.message);
    return true;
  });
  const path = `${dir}/cut.safetensors`;
  const t = new Map([["norm.weight", { shape: [64], data: new Float32Array(64).fill(1) }]]);
  await writeSafetensors(path, t, { dtype: "F32" });
  const bytes = await Deno.readFile(path);
  for (const cut of [3, 12, bytes.length - 100, bytes.length - 1]) {
    await Deno.writeFile(path, bytes.subarray(0, cut));
    await assert.rejects(readSafetensors(path), (e: unknown) => {
      assert.ok(e instanceof FormatError, String(e));
      assert.ok(e.message.startsWith(`${path}: `), e.message);
      return true;
    });
  }
});

Deno.test("writeSafetensors() leaves no file behind when it fails", async () => {
  const dir = await tmp();
  const sub = `${dir}/atomic`;
  await Deno.mkdir(sub);
  const listing = async () => {
    const names: string[] = [];
    for await (const e of Deno.readDir(sub)) names.push(e.name);
    return names.sort();
  };
  const t = new Map([["x", { shape: [4], data: new Float32Array([1, 2, 3, 4]) }]]);
  // The destination is a directory: the rename fails after the temp file is written.
  await Deno.mkdir(`${sub}/model.safetensors`);
  await assert.rejects(
    writeSafetensors(`${sub}/model.safetensors`, t, { dtype: "F16" }),
    (e: unknown) => e instanceof GollmError && e.message.includes(`${sub}/model.safetensors`),
  );
  assert.deepEqual(await listing(), ["model.safetensors"]);
  // Data length that does not match the shape: refused before anything is written.
  await assert.rejects(
    writeSafetensors(
      `${sub}/bad.safetensors`,
      new Map([["x", { shape: [5], data: new Float32Array(4) }]]),
      {
        dtype: "F32",
      },
    ),
    /tensor 'x' has shape \[5\]/,
  );
  // A missing directory.
  await assert.rejects(
    writeSafetensors(`${sub}/no/such/dir.safetensors`, t, { dtype: "F32" }),
    GollmError,
  );
  assert.deepEqual(await listing(), ["model.safetensors"]);
  // An existing good file survives a failed overwrite.
  const good = `${sub}/good.safetensors`;
  await writeSafetensors(good, t, { dtype: "F32" });
  await assert.rejects(
    writeSafetensors(good, new Map([["y", { shape: [2], data: new Float32Array(3) }]]), {
      dtype: "F32",
    }),
    GollmError,
  );
  assert.deepEqual([...(await readSafetensors(good)).tensors.keys()], ["x"]);
  assert.deepEqual(await listing(), ["good.safetensors", "model.safetensors"]);
});

// --- parity with the Python reference (huggingface/safetensors + torch) ---------------------

const pySkip = await pythonSkipReason("safetensors, torch");
if (pySkip) console.log(`skipping safetensors Python parity test: ${pySkip}`);

const PY_SCRIPT = String.raw`
import json, sys, struct, torch
from safetensors.torch import load_file, save_file
from safetensors import safe_open
ours, theirs, vals_json = sys.argv[1], sys.argv[2], sys.argv[3]
bits = json.load(open(vals_json))
src = torch.tensor(bits, dtype=torch.int64).to(torch.int32).view(torch.float32)
report = {}
for dt_name, dt in [("F32", torch.float32), ("F16", torch.float16), ("BF16", torch.bfloat16)]:
    path = ours + "_" + dt_name + ".safetensors"
    t = load_file(path)["v"]
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    want = src.to(dt)
    assert t.dtype == dt, (t.dtype, dt)
    if dt == torch.float32:
        same = torch.equal(t.view(torch.int32), want.view(torch.int32))
    else:
        a, b = t.view(torch.int16), want.view(torch.int16)
        nan = torch.isnan(want)
        same = torch.equal(a[~nan], b[~nan]) and bool(torch.isnan(t[nan]).all())
    report[dt_name] = {"same": bool(same), "meta": meta}
torch.manual_seed(0)
save_file({
    "f32": torch.randn(3, 5),
    "f16": torch.randn(7).to(torch.float16),
    "bf16": torch.randn(2, 3).to(torch.bfloat16),
    "f64": torch.randn(4, dtype=torch.float64),
    "i64": torch.arange(-3, 3, dtype=torch.int64),
    "u8": torch.tensor([0, 7, 255], dtype=torch.uint8),
}, theirs, metadata={"format": "pt", "who": "python"})
expect = {}
for k, v in load_file(theirs).items():
    f = v.to(torch.float32).contiguous()
    expect[k] = {"shape": list(v.shape), "bits": f.view(torch.int32).flatten().tolist()}
report["expect"] = expect
print(json.dumps(report))
`;

Deno.test({
  name: "safetensors files match the Python reference both ways (torch rounding, metadata, dtypes)",
  ignore: pySkip !== null,
  fn: async () => {
    const dir = await tmp();
    let s = 99;
    const bits: number[] = TRICKY.map(f32Bits);
    for (let i = 0; i < 5000; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      bits.push(s >>> 0);
    }
    const values = new Float32Array(new Uint32Array(bits).buffer);
    const t = new Map([["v", { shape: [values.length], data: values }]]);
    for (const dtype of ["F32", "F16", "BF16"] as const) {
      await writeSafetensors(`${dir}/ours_${dtype}.safetensors`, t, {
        dtype,
        metadata: { format: "gollm", dtype },
      });
    }
    await Deno.writeTextFile(`${dir}/bits.json`, JSON.stringify(bits.map((b) => b | 0)));
    const theirs = `${dir}/theirs.safetensors`;
    const out = await new Deno.Command("python3", {
      args: ["-c", PY_SCRIPT, `${dir}/ours`, theirs, `${dir}/bits.json`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const report = JSON.parse(new TextDecoder().decode(out.stdout));
    for (const dtype of ["F32", "F16", "BF16"]) {
      assert.ok(report[dtype].same, `${dtype}: our rounding differs from torch's`);
      assert.deepEqual(report[dtype].meta, { format: "gollm", dtype });
    }
    const back = await readSafetensors(theirs);
    assert.deepEqual(back.metadata, { format: "pt", who: "python" });
    for (
      const [name, want] of Object.entries(report.expect) as [
        string,
        { shape: number[]; bits: number[] },
      ][]
    ) {
      const got = back.tensors.get(name);
      assert.ok(got, `tensor ${name} missing`);
      assert.deepEqual(got.shape, want.shape, name);
      assert.deepEqual(
        Array.from(new Int32Array(got.data.buffer, got.data.byteOffset, got.data.length)),
        want.bits,
        name,
      );
    }
  },
});

Deno.test("parseSafetensors() with stored keeps F16/BF16 as views in ggml's layout and refuses a NaN element", () => {
  const data = concat(
    le([0x3c00, 0xc000, 0x7bff, 0x0001], "u16"), // b: F16 [2,2]
    le([0x3f80, 0x4049], "u16"), // c: BF16 [2]
    le([1.5, -2], "f32"), // a: F32 [2]
  );
  const header = {
    b: { dtype: "F16", shape: [2, 2], data_offsets: [0, 8] },
    c: { dtype: "BF16", shape: [1, 2], data_offsets: [8, 12] },
    a: { dtype: "F32", shape: [2], data_offsets: [12, 20] },
  };
  const file = build(header, data);
  const whole = parseSafetensors(file, "t.safetensors");
  const { tensors } = parseSafetensors(file, "t.safetensors", { stored: true });
  const b = tensors.get("b")!, c = tensors.get("c")!;
  assert.deepEqual([b.type?.name, c.type?.name, tensors.get("a")!.type], [
    "F16",
    "BF16",
    undefined,
  ]);
  // The bytes are the file's, and dequantise to what the F32 read gives.
  assert.equal(b.bytes!.buffer, file.buffer);
  // A vector (a norm) is F32 even when stored: as a GGUF holds it.
  const vec = build(
    { v: { dtype: "BF16", shape: [2], data_offsets: [0, 4] } },
    le([0x3f80, 0x4049], "u16"),
  );
  assert.equal(
    parseSafetensors(vec, "v.safetensors", { stored: true }).tensors.get("v")!.type,
    undefined,
  );
  assert.deepEqual(tensorToF32(b).data, whole.tensors.get("b")!.data);
  assert.deepEqual(tensorToF32(c).data, whole.tensors.get("c")!.data);
  // A NaN element (BF16 0x7fc1) is refused when stored, naming the file and tensor.
  const nan = file.slice();
  new DataView(nan.buffer).setUint16(nan.length - 12 + 2, 0x7fc1, true);
  assert.ok(Number.isNaN(parseSafetensors(nan, "t.safetensors").tensors.get("c")!.data[1]));
  assert.throws(
    () => parseSafetensors(nan, "t.safetensors", { stored: true }),
    (e) =>
      e instanceof FormatError &&
      /^t\.safetensors: tensor 'c' .*non-finite \(NaN\)/.test(e.message),
  );
});
