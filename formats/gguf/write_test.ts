/**
 * GGUF writer (formats/gguf/write.ts) against gollm's reader and gguf-py's GGUFReader, and its
 * refusals. llama.cpp reading our files is covered by formats/quantize_test.ts (its
 * `llama_model_quantize` runs on files this writer made).
 */
import assert from "node:assert/strict";
import { GollmError } from "../../core/errors.ts";
import { ggmlTypeByName, quantize } from "../quant.ts";
import { parseGguf, readGguf } from "./parse.ts";
import { gguf, type GgufTypedValue, type GgufWriteTensor, writeGguf } from "./write.ts";
import { pythonSkipReason } from "../../tests/python_probe.ts";

const tmp = await Deno.makeTempDir({ prefix: "gollm-write-test-" });

const METADATA: [string, GgufTypedValue][] = [
  ["general.architecture", gguf.string("llama")],
  ["general.alignment", gguf.u32(64)],
  ["t.u8", gguf.u8(255)],
  ["t.i8", gguf.i8(-128)],
  ["t.u16", gguf.u16(65535)],
  ["t.i16", gguf.i16(-32768)],
  ["t.u32", gguf.u32(4294967295)],
  ["t.i32", gguf.i32(-2147483648)],
  ["t.f32", gguf.f32(1e-5)],
  ["t.bool", gguf.bool(true)],
  ["t.string", gguf.string("héllo ✓")],
  ["t.u64", gguf.u64(2n ** 63n + 5n)],
  ["t.i64", gguf.i64(-(2n ** 40n))],
  ["t.f64", gguf.f64(Math.PI)],
  ["t.strings", gguf.strings(["a", "", "ĠHello"])],
  ["t.f32s", gguf.f32s([0.5, -2])],
  ["t.i32s", gguf.i32s([1, -1])],
  [
    "t.nested",
    { type: "array", itemType: "array", items: [gguf.i32s([1, 2]), gguf.i32s([])] },
  ],
];

function tensors(): GgufWriteTensor[] {
  const x = Float32Array.from({ length: 2 * 256 }, (_, i) => Math.sin(i));
  return [
    {
      name: "a.f32",
      shape: [3],
      type: ggmlTypeByName("F32")!,
      data: new Uint8Array(new Float32Array([1, 2, 3]).buffer),
    },
    {
      name: "b.q4k",
      shape: [2, 256],
      type: ggmlTypeByName("Q4_K")!,
      data: () => quantize(ggmlTypeByName("Q4_K")!, x),
    },
    {
      name: "c.q8",
      shape: [2, 2, 32],
      type: ggmlTypeByName("Q8_0")!,
      data: quantize(ggmlTypeByName("Q8_0")!, x.subarray(0, 128)),
    },
  ];
}

Deno.test("writeGguf() writes every metadata value type, aligned tensors, and reads back", async () => {
  const path = `${tmp}/all.gguf`;
  const events: string[] = [];
  const size = await writeGguf(path, { metadata: METADATA, tensors: tensors() }, {
    onProgress: (e) => events.push(e.stage),
  });
  assert.equal(size, (await Deno.stat(path)).size);
  assert.deepStrictEqual(events.slice(0, 3), ["writing a.f32", "writing b.q4k", "writing c.q8"]);
  const g = parseGguf(await Deno.readFile(path), path);
  assert.equal(g.version, 3);
  assert.equal(g.alignment, 64);
  const m = Object.fromEntries(g.metadata);
  assert.deepStrictEqual(m, {
    "general.architecture": "llama",
    "general.alignment": 64,
    "t.u8": 255,
    "t.i8": -128,
    "t.u16": 65535,
    "t.i16": -32768,
    "t.u32": 4294967295,
    "t.i32": -2147483648,
    "t.f32": 1e-5,
    "t.bool": true,
    "t.string": "héllo ✓",
    "t.u64": 2n ** 63n + 5n,
    "t.i64": -(2 ** 40), // the reader gives safe 64-bit integers as numbers
    "t.f64": Math.PI,
    "t.strings": ["a", "", "ĠHello"],
    "t.f32s": [0.5, -2],
    "t.i32s": [1, -1],
    "t.nested": [[1, 2], []],
  });
  assert.deepStrictEqual(g.tensors.map((t) => [t.name, t.type.name, t.ne]), [
    ["a.f32", "F32", [3]],
    ["b.q4k", "Q4_K", [256, 2]],
    ["c.q8", "Q8_0", [32, 2, 2]],
  ]);
  for (const [i, t] of g.tensors.entries()) {
    assert.equal(t.fileOffset % 64, 0, t.name);
    const want = tensors()[i].data;
    const bytes = typeof want === "function" ? want() : want;
    assert.deepStrictEqual(g.bytes.subarray(t.fileOffset, t.fileOffset + t.nbytes), bytes);
  }
  assert.deepStrictEqual([...(await readGguf(path)).metadata.keys()], METADATA.map(([k]) => k));
});

const pyWhy = await pythonSkipReason("gguf, numpy");
Deno.test({
  name: "writeGguf() output reads in gguf-py's GGUFReader with the same values",
  ignore: pyWhy !== null,
  async fn() {
    const path = `${tmp}/py.gguf`;
    await writeGguf(path, {
      metadata: METADATA.filter(([k]) => k !== "t.nested"),
      tensors: tensors(),
    });
    const script = `
import sys, json
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
def val(f):
    v = f.contents()
    return str(v) if isinstance(v, int) and abs(v) > 2**53 else v
print(json.dumps({"meta": {f.name: val(f) for f in r.fields.values() if not f.name.startswith("GGUF.")},
  "tensors": [[t.name, t.tensor_type.name, [int(x) for x in t.shape], int(t.data_offset)] for t in r.tensors]}))
`;
    const r = await new Deno.Command("python3", { args: ["-c", script, path] }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    const py = JSON.parse(new TextDecoder().decode(r.stdout));
    assert.equal(py.meta["t.u64"], String(2n ** 63n + 5n));
    assert.equal(py.meta["t.string"], "héllo ✓");
    assert.deepStrictEqual(py.meta["t.strings"], ["a", "", "ĠHello"]);
    assert.equal(Math.fround(py.meta["t.f32"]), Math.fround(1e-5));
    assert.equal(py.meta["t.i16"], -32768);
    assert.equal(py.meta["t.bool"], true);
    const g = await readGguf(path);
    assert.deepStrictEqual(
      py.tensors,
      g.tensors.map((t) => [t.name, t.type.name, t.ne, t.fileOffset]),
    );
  },
});

Deno.test("writeGguf() refuses bad input naming the key or tensor and leaves no file behind", async () => {
  const path = `${tmp}/bad.gguf`;
  const cases: [Parameters<typeof writeGguf>[1], RegExp][] = [
    [
      { metadata: [["k", gguf.u8(1)], ["k", gguf.u8(2)]], tensors: [] },
      /metadata key 'k' appears twice/,
    ],
    [
      { metadata: [["k", gguf.u8(256)]], tensors: [] },
      /metadata 'k': u8 value must be an integer in \[0, 255\], got 256/,
    ],
    [
      { metadata: [["general.alignment", gguf.u32(48)]], tensors: [] },
      /'general.alignment' must be a u32 power of two/,
    ],
    [
      { metadata: [], tensors: [{ ...tensors()[1], data: () => new Uint8Array(10) }] },
      /tensor 'b.q4k' \(Q4_K \[2,256\]\) has 10 bytes of data, expected 288/,
    ],
    [
      { metadata: [], tensors: [{ ...tensors()[2], shape: [2, 2, 48] }] },
      /tensor 'c.q8': row length 48 is not a multiple of the Q8_0 block size 32/,
    ],
    [
      { metadata: [], tensors: [{ ...tensors()[0], name: "x".repeat(64) }] },
      /longer than 63 bytes/,
    ],
    [{ metadata: [], tensors: [tensors()[0], tensors()[0]] }, /tensor 'a.f32' appears twice/],
  ];
  for (const [input, re] of cases) {
    await assert.rejects(
      () => writeGguf(path, input),
      (e: unknown) => e instanceof GollmError && re.test(e.message) && e.message.startsWith(path),
    );
  }
  const left = [...Deno.readDirSync(tmp)].map((e) => e.name).filter((n) => n.includes("bad"));
  assert.deepStrictEqual(left, []);
});

Deno.test({
  name: "cleanup",
  fn: () => Deno.remove(tmp, { recursive: true }),
  sanitizeResources: false,
});
