/**
 * Step 9 of the guide: quantisation. A real Q8_0 block and a real Q4_K block of stories260K,
 * byte by byte, decoded by a few lines of our own and checked against gollm's codecs
 * (formats/quant.ts, the same blocks llama.cpp writes) and against gguf-py's decoder (the
 * committed fixtures of tests/fixtures/ggml_blocks); what rounding every weight does to the
 * model; the dot product in integers as the WASM kernels do it (and its u8 form); the lane
 * order of gollm's repacked K-quants, summed against ggml's order on the Q4_K block; and a
 * measurement, on this machine, of why decode waits on memory.
 *
 * Run: `deno run -A docs/guide/09_quantization.ts` (page: docs/guide/09_quantization.md).
 *
 * @module
 */
import { parseConfig } from "../../core/config.ts";
import { f16ToF32, f32BitsToF16Bits } from "../../core/numbers.ts";
import { expectedShapes, type F32Weights as Weights } from "../../core/weights.ts";
import { compileModel } from "../../codegen/compile.ts";
import { dequantize, ggmlTypeByName, quantize } from "../../formats/quant.ts";
import { emitLinear } from "../../codegen/wasm/linear.ts";
import { buildKernelModule } from "../../codegen/wasm/module.ts";
import { quantizeKernel } from "../../codegen/wasm/quantize.ts";
import { packQ4KPairsInPlace } from "../../codegen/wasm/q4k_pairs.ts";
import { relaxedDotU8, relaxedSimdSupported } from "../../codegen/wasm_features.ts";
import { createReference } from "../../runtime/reference.ts";
import {
  check,
  control,
  fixed,
  int,
  loadGuideModel,
  maxAbsDiff,
  measured,
  ROOT,
  sci,
  section,
  table,
  vec,
  weight,
} from "./lib.ts";

// #region q8_0
/** Q8_0, 32 weights in 34 bytes: d (f16) = max |x| / 127, then 32 int8 q = round(x / d). */
export function encodeQ8_0(x: Float32Array): Uint8Array {
  const block = new Uint8Array(34), view = new DataView(block.buffer);
  const amax = Math.max(...x.map(Math.abs));
  const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
  view.setUint16(0, f16Bits(d), true); // bytes 0..1: the scale, half precision
  for (let j = 0; j < 32; j++) {
    const v = Math.fround(x[j] * id);
    view.setInt8(2 + j, Math.sign(v) * Math.round(Math.abs(v))); // bytes 2..33; ties away from 0
  }
  return block;
}

/** Decodes one Q8_0 block: x[j] = q[j] · d. */
export function decodeQ8_0(block: Uint8Array): Float32Array {
  const view = new DataView(block.buffer, block.byteOffset, 34);
  const d = f16ToF32(view.getUint16(0, true));
  return Float32Array.from({ length: 32 }, (_, j) => view.getInt8(2 + j) * d);
}
// #endregion q8_0

// #region q4_k
/** Group j's 6-bit scale and 6-bit min, packed in the 12 bytes at 4..15 (ggml get_scale_min_k4). */
export function scaleMinK4(b: Uint8Array, j: number): [number, number] {
  const s = b.subarray(4, 16);
  if (j < 4) return [s[j] & 63, s[j + 4] & 63];
  return [(s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4)];
}

/**
 * Decodes one Q4_K super-block (256 weights in 144 bytes): d, dmin (f16) at 0 and 2; 8 groups
 * of 32, group j with scale d · sc_j and offset dmin · m_j; 4-bit q in bytes 16..143, where
 * byte 16 + 32·(j >> 1) + l holds group j's weight l in its low nibble (j even) or its high
 * nibble (j odd).
 */
export function decodeQ4_K(b: Uint8Array): Float32Array {
  const view = new DataView(b.buffer, b.byteOffset, 144);
  const d = f16ToF32(view.getUint16(0, true)), dmin = f16ToF32(view.getUint16(2, true));
  const y = new Float32Array(256);
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(b, j);
    for (let l = 0; l < 32; l++) {
      const byte = b[16 + 32 * (j >> 1) + l];
      const q = j % 2 === 0 ? byte & 0xf : byte >> 4;
      y[32 * j + l] = d * sc * q - dmin * m;
    }
  }
  return y;
}
// #endregion q4_k

// #region int8dot
/** q8_0 activations as the kernels quantise them: d = max |x| / 127 (f32), q = round(x / d). */
export function quantizeActs(x: Float32Array): { d: number; q: Int8Array } {
  const amax = Math.max(...x.map(Math.abs));
  const d = Math.fround(amax / 127), id = amax > 0 ? Math.fround(127 / amax) : 0;
  const even = (v: number) => v - Math.floor(v) === 0.5 ? 2 * Math.round(v / 2) : Math.round(v);
  return { d, q: Int8Array.from(x, (v) => even(Math.fround(v * id))) }; // ties to even
}

/** Σ w·x of a Q8_0 block and a q8_0 block as the kernels do it: 32 integer products, summed,
 * then one multiply by both scales. */
export function dotQ8_0(w: Uint8Array, x: { d: number; q: Int8Array }) {
  const view = new DataView(w.buffer, w.byteOffset, 34);
  let isum = 0;
  for (let j = 0; j < 32; j++) isum += view.getInt8(2 + j) * x.q[j];
  return { isum, value: isum * f16ToF32(view.getUint16(0, true)) * x.d };
}

/** The same integer sum with each weight read as an unsigned byte, q xor 0x80 = q + 128 (what
 * x86's vpdpbusd multiplies), corrected by 128 · Σ x. */
export function dotQ8_0AsU8(w: Uint8Array, xq: Int8Array): number {
  let s = 0, sx = 0;
  for (let j = 0; j < 32; j++) {
    s += (w[2 + j] ^ 0x80) * xq[j]; // 0..255 times -127..127
    sx += xq[j];
  }
  return s - 128 * sx;
}
// #endregion int8dot

// #region lanes
/** The quants of a Q4_K block, element order (0..15), and its 8 group scales. */
export function q4kQuants(b: Uint8Array): { q: Uint8Array; sc: number[] } {
  const q = Uint8Array.from({ length: 256 }, (_, e) => {
    const byte = b[16 + 32 * (e >> 6) + (e & 31)];
    return (e >> 5) % 2 === 0 ? byte & 0xf : byte >> 4;
  });
  return { q, sc: Array.from({ length: 8 }, (_, j) => scaleMinK4(b, j)[0]) };
}

/** Σ_j sc_j · Σ q·x over group j, in ggml's order: each 16-byte vector lies inside one group,
 * so each group's sum is finished (its lanes added, times its scale) on its own. */
export function groupSums(q: Uint8Array, x: Int8Array, sc: number[]): number {
  let isum = 0;
  for (let j = 0; j < 8; j++) {
    let s = 0;
    for (let l = 0; l < 32; l++) s += q[32 * j + l] * x[32 * j + l];
    isum += sc[j] * s;
  }
  return isum;
}

/** Byte j of vector v in the lane order (gollm's codegen/wasm/lanes.ts): lane l = j >> 2 holds
 * 4 elements of group l of the vector's half (vectors 0..7: groups 0..3; 8..15: groups 4..7). */
export const laneElement = (v: number, j: number) =>
  128 * (v >> 3) + 32 * (j >> 2) + 4 * (v & 7) + (j & 3);

/** The same sum in the lane order: 16 dot products (one per vector, each adding 4 bytes into
 * each of 4 lanes) into two 4-lane sums, then one multiply of each by 4 scales. */
export function laneSums(q: Uint8Array, x: Int8Array, sc: number[]) {
  const acc = [new Int32Array(4), new Int32Array(4)]; // i32x4 × 2: one group per lane
  for (let v = 0; v < 16; v++) {
    for (let j = 0; j < 16; j++) acc[v >> 3][j >> 2] += q[laneElement(v, j)] * x[laneElement(v, j)];
  }
  let isum = 0;
  for (let h = 0; h < 2; h++) for (let l = 0; l < 4; l++) isum += acc[h][l] * sc[4 * h + l];
  return { acc, isum };
}
// #endregion lanes

/** f16 bits of an f32 value (round to nearest even). */
function f16Bits(x: number): number {
  return f32BitsToF16Bits(new Uint32Array(Float32Array.of(x).buffer)[0]);
}

const hexBytes = (b: Uint8Array) => Array.from(b, (v) => v.toString(16).padStart(2, "0")).join(" ");
const rms = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s / a.length);
};

/**
 * A fixture of tests/fixtures/ggml_blocks: random blocks (python/ggml_block_fixtures.py) and
 * gguf-py's decoding of them.
 */
async function fixture(name: string): Promise<[Uint8Array, Float32Array]> {
  const dir = `${ROOT}tests/fixtures/ggml_blocks/${name}`;
  const bytes = await Deno.readFile(`${dir}.bin`);
  return [bytes, new Float32Array((await Deno.readFile(`${dir}.f32`)).buffer)];
}

async function main() {
  section("bytes per weight");
  const model = await loadGuideModel();
  const c = model.config;
  let params = 0;
  for (const t of model.weights.values()) params += t.data.length;
  const sizes: (string | number)[][] = [
    ["type", "block", "bytes", "bits/weight", model.name, "an 8.03 B model"],
  ];
  for (const t of ["F32", "F16", "Q8_0", "Q4_K"].map((n) => ggmlTypeByName(n)!)) {
    const bits = (8 * t.blockBytes) / t.blockSize;
    const ours = `${fixed((params * bits) / 8 / 1e6, 2)} MB`;
    const big = `${fixed((8.03e9 * bits) / 8 / 1e9, 2)} GB`;
    sizes.push([t.name, t.blockSize, t.blockBytes, fixed(bits, 2), ours, big]);
  }
  table(sizes);

  section("a real Q8_0 block");
  const q8 = ggmlTypeByName("Q8_0")!;
  const w1 = weight(model, "layers.0.ffn.w1.weight");
  const x = w1.subarray(0, 32); // the first 32 weights of layer 0's w1
  const ours = encodeQ8_0(x);
  const back = decodeQ8_0(ours);
  const amax = Math.max(...x.map(Math.abs));
  const d = f16ToF32(f16Bits(amax / 127)); // the scale as stored
  const qs = Array.from(new Int8Array(ours.buffer, 2, 8)).join(", ");
  console.log(`layers.0.ffn.w1.weight[0][0..31]: ${vec(x, 6)}`);
  console.log(`max |x| = ${fixed(amax, 6)} -> d = max / 127 = ${fixed(amax / 127, 8)}`);
  console.log(`  as f16: ${fixed(d, 8)}`);
  console.log(`bytes 0..1   d (f16, little-endian): ${hexBytes(ours.subarray(0, 2))}`);
  console.log(`bytes 2..33  q (int8): ${hexBytes(ours.subarray(2, 14))} ...`);
  console.log(`             as numbers: [${qs}, ...]`);
  console.log(`decoded q · d: ${vec(back, 6)}`);
  console.log(`largest error ${sci(maxAbsDiff(x, back))}; half a step, d / 2 = ${sci(d / 2)}`);
  const gollmBytes = quantize(q8, x);
  const claim = "our Q8_0 bytes are gollm's (llama.cpp's quantize_row_q8_0_ref)";
  check(claim, hexBytes(ours) === hexBytes(gollmBytes), "34 bytes identical");
  const same = maxAbsDiff(back, dequantize(q8, ours, 32)) === 0;
  check("our decode is gollm's dequantize", same, "32 values identical");
  const [fb, ff] = await fixture("Q8_0");
  const fixtureDecoded = new Float32Array(ff.length);
  for (let b = 0; b < ff.length / 32; b++) {
    fixtureDecoded.set(decodeQ8_0(fb.subarray(34 * b, 34 * b + 34)), 32 * b);
  }
  const py = maxAbsDiff(fixtureDecoded, ff) === 0;
  check(
    "our decode equals gguf-py's on 16 committed blocks",
    py,
    "tests/fixtures/ggml_blocks/Q8_0",
  );
  const flipped = ours.slice();
  flipped[2] ^= 0x80; // the sign bit of q[0]
  const x0 = decodeQ8_0(flipped)[0];
  control("one flipped bit in the first q", x0 !== back[0], `x[0] becomes ${fixed(x0, 4)}`);

  section("a real Q4_K block");
  const q4 = ggmlTypeByName("Q4_K")!;
  const x4 = w1.subarray(0, 256); // rows 0..3 of w1 (4 × 64 weights)
  const blk = quantize(q4, x4); // llama.cpp's quantize_row_q4_K_ref search, in gollm
  const view = new DataView(blk.buffer);
  const d4 = f16ToF32(view.getUint16(0, true)), dmin = f16ToF32(view.getUint16(2, true));
  console.log("layers.0.ffn.w1.weight, first 256 weights (rows 0..3) -> 144 bytes");
  console.log(`bytes 0..1    d    (f16): ${hexBytes(blk.subarray(0, 2))} = ${fixed(d4, 8)}`);
  console.log(`bytes 2..3    dmin (f16): ${hexBytes(blk.subarray(2, 4))} = ${fixed(dmin, 8)}`);
  console.log(
    `bytes 4..15   scales, 8 × (6-bit scale, 6-bit min): ${hexBytes(blk.subarray(4, 16))}`,
  );
  console.log(`bytes 16..143 q, 4 bits each: ${hexBytes(blk.subarray(16, 24))} ...`);
  const dec4 = decodeQ4_K(blk);
  const groups: (string | number)[][] = [
    ["group", "weights", "sc", "m", "step d·sc", "offset dmin·m", "x range", "rms error"],
  ];
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(blk, j);
    const g = x4.subarray(32 * j, 32 * j + 32), got = dec4.subarray(32 * j, 32 * j + 32);
    const range = `${fixed(Math.min(...g), 3)}..${fixed(Math.max(...g), 3)}`;
    const weights = `${32 * j}..${32 * j + 31}`;
    groups.push([
      j,
      weights,
      sc,
      m,
      fixed(d4 * sc, 5),
      fixed(dmin * m, 5),
      range,
      sci(rms(g, got)),
    ]);
  }
  table(groups);
  const gollm4 = dequantize(q4, blk, 256);
  const dq = maxAbsDiff(dec4, gollm4);
  check("our Q4_K decode is gollm's dequantize", dq < 1e-6, `256 values, max |diff| ${sci(dq)}`);
  const [kb, kf] = await fixture("Q4_K");
  const kDecoded = new Float32Array(kf.length);
  for (let b = 0; b < kf.length / 256; b++) {
    kDecoded.set(decodeQ4_K(kb.subarray(144 * b, 144 * b + 144)), 256 * b);
  }
  const dk = maxAbsDiff(kDecoded, kf);
  check(
    "our Q4_K decode equals gguf-py's on 2 committed blocks",
    dk < 1e-6,
    `max |diff| ${sci(dk)}`,
  );
  const swapped = blk.slice();
  swapped[4] = blk[8]; // group 0's scale byte replaced by its min byte
  swapped[8] = blk[4];
  const ds = maxAbsDiff(decodeQ4_K(swapped), gollm4);
  control("scale and min bytes exchanged", ds > 1e-3, `max |diff| ${fixed(ds, 4)}`);

  section("the dot product in integers");
  // The activations: the first 32 numbers of token 1's embedding row.
  const act = weight(model, "tok_embeddings.weight").subarray(c.dim, c.dim + 32);
  const exactDot = decodeQ8_0(ours).reduce((s, w, j) => s + w * act[j], 0);
  const xa = quantizeActs(act);
  const { isum, value } = dotQ8_0(ours, xa);
  console.log(`w: the Q8_0 block above; x: tok_embeddings.weight[1][0..31]`);
  console.log(
    `x as q8_0: d = ${fixed(xa.d, 8)}, q = [${Array.from(xa.q.subarray(0, 8)).join(", ")}, ...]`,
  );
  console.log(`Σ q_w · q_x = ${isum} (an integer: 32 int8 products)`);
  console.log(`· d_w · d_x = ${fixed(value, 6)}; in floats, Σ w · x = ${fixed(exactDot, 6)}`);
  const rel = Math.abs(value - exactDot) / act.reduce((s, v, j) => s + Math.abs(v * back[j]), 0);
  check("rounding x to int8 costs little", rel < 0.01, `|diff| / Σ|w·x| = ${sci(rel)}`);
  // gollm's generated kernel on the same block and activations (1 row, K = 32).
  const kernelValue = kernelDot(ours, act);
  const dk8 = Math.abs(kernelValue - value) / Math.abs(value);
  check("the WASM kernel computes the same", dk8 < 1e-6, `kernel ${fixed(kernelValue, 6)}`);
  const u8 = dotQ8_0AsU8(ours, xa.q);
  check("(q_w + 128) · q_x summed, minus 128 · Σ q_x, is Σ q_w · q_x", u8 === isum, `${u8}`);
  const sx = xa.q.reduce((s, v) => s + v, 0);
  control("the u8 sum without its correction", u8 + 128 * sx !== isum, `off by 128 · ${sx}`);
  measured(
    "this runtime",
    `relaxed SIMD ${relaxedSimdSupported() ? "yes" : "no"}, ` +
      `dot product reads u8 ${relaxedDotU8() ? "yes (one per 16 weights)" : "no (two per 16)"}`,
  );

  section("four groups per instruction: the lane order");
  const { q: q4q, sc: q4sc } = q4kQuants(blk);
  const x256 = quantizeActs(weight(model, "tok_embeddings.weight").subarray(c.dim, c.dim + 256));
  console.log(`w: the Q4_K block above, quants 0..15; group scales sc = [${q4sc.join(", ")}]`);
  console.log("x: tok_embeddings.weight rows 1..4 (256 numbers) as int8, one scale for the 256");
  const plain = groupSums(q4q, x256.q, q4sc);
  console.log(`ggml's order: 8 groups summed apart, Σ_j sc_j · Σ q·x = ${plain}`);
  const words = (v: number) => [0, 1, 2, 3].map((l) => laneElement(v, 4 * l));
  console.log(
    `lane order: vector 0 holds elements ${words(0).map((e) => `${e}..${e + 3}`).join(", ")}`,
  );
  console.log(
    `            vector 9 holds elements ${words(9).map((e) => `${e}..${e + 3}`).join(", ")}`,
  );
  const { acc, isum: lanes } = laneSums(q4q, x256.q, q4sc);
  console.log(`after 16 dot products: lanes [${acc[0].join(", ")}] and [${acc[1].join(", ")}]`);
  console.log(`· [sc0..sc3] and [sc4..sc7], summed: ${lanes}`);
  check("both orders give the same integer", lanes === plain, `${lanes}`);
  // gollm's repacked Q4_K (a pair of rows: the block twice) stores its quants in this order.
  const pair = new Uint8Array(288);
  pair.set(blk, 0);
  pair.set(blk, 144);
  packQ4KPairsInPlace(pair, 0, 1);
  // Its byte n of row 0's quants (at 16): vector n >> 4, byte n & 15, low and high nibble.
  let inOrder = 0;
  for (let n = 0; n < 128; n++) {
    const v = n >> 4, j = n & 15;
    if ((pair[16 + n] & 0xf) === q4q[laneElement(v, j)]) inOrder++;
    if (pair[16 + n] >> 4 === q4q[laneElement(8 + v, j)]) inOrder++;
  }
  check(
    "gollm's repacked Q4_K pair stores its quants in this order",
    inOrder === 256,
    `${inOrder} of 256 nibbles, codegen/wasm/q4k_pairs.ts`,
  );
  let wrong = 0; // the lanes scaled as if each vector were one group, in ggml's order
  for (let h = 0; h < 2; h++) for (let l = 0; l < 4; l++) wrong += acc[h][l] * q4sc[2 * l + h];
  control("scaling the lane sums in ggml's group order", wrong !== plain, `${wrong}`);

  section("what rounding every weight does to the model");
  const story = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
  const text = model.tokenizer.encode(story);
  const exact = createReference(c, model.weights).forwardAll(text, 0); // (n, vocab_size)
  const rows: (string | number)[][] = [
    ["weights", "bits/weight", "max |logit diff|", "same top-1 token", "mean -log p(next)"],
  ];
  for (const name of ["F32", "F16", "Q8_0", "Q4_K", "Q4_0", "Q2_K"]) {
    const t = ggmlTypeByName(name)!;
    const rounded: Weights = new Map();
    for (const [k, w] of model.weights) {
      // Quantise then dequantise each matrix as one run of blocks (stories260K's rows of 64
      // are shorter than a 256-weight block; a GGUF file quantises row by row).
      const data = w.shape.length === 2
        ? dequantize(t, quantize(t, w.data), w.data.length)
        : w.data;
      rounded.set(k, { shape: w.shape, data });
    }
    const logits = createReference(c, rounded).forwardAll(text, 0);
    const { same, nll } = agreement(exact, logits, text, c.vocab_size);
    const bits = fixed((8 * t.blockBytes) / t.blockSize, 2);
    const n = `${same} / ${text.length - 1}`;
    rows.push([name, bits, fixed(maxAbsDiff(logits, exact), 4), n, fixed(nll, 4)]);
  }
  table(rows);

  section("decode waits on memory (measured on this machine)");
  bandwidth();
}

/**
 * How often two runs' logits (n, vocab) pick the same top token, and the mean of
 * -log p(next token) under the second run (over positions 0..n-2).
 */
function agreement(exact: Float32Array, logits: Float32Array, ids: number[], V: number) {
  let same = 0, nll = 0;
  for (let p = 0; p + 1 < ids.length; p++) {
    const a = exact.subarray(p * V, (p + 1) * V), b = logits.subarray(p * V, (p + 1) * V);
    if (a.indexOf(Math.max(...a)) === b.indexOf(Math.max(...b))) same++;
    const max = Math.max(...b);
    const z = b.reduce((s, l) => s + Math.exp(l - max), 0);
    nll -= b[ids[p + 1]] - max - Math.log(z); // -log softmax(b)[next]
  }
  return { same, nll: nll / (ids.length - 1) };
}

/** Σ w·x of one Q8_0 block by gollm's generated kernels: quantise x, then a 1 × 32 matvec. */
function kernelDot(block: Uint8Array, x: Float32Array): number {
  const relaxed = relaxedSimdSupported();
  const mv = emitLinear({
    type: "Q8_0",
    M: 1,
    K: 32,
    kind: "matvec",
    relaxed,
    dotU8: relaxedDotU8(),
  });
  const mod = buildKernelModule([mv, quantizeKernel("q8_0", 32)], { minPages: 1 });
  const memory = new WebAssembly.Memory({ initial: 1 });
  const e = new WebAssembly.Instance(new WebAssembly.Module(mod.bytes), { env: { memory } })
    .exports as Record<string, (...a: number[]) => void>;
  new Uint8Array(memory.buffer).set(block, 0); // W at 0, x at 256, its q8_0 row at 512, y at 1024
  new Float32Array(memory.buffer, 256, 32).set(x);
  e.quantize_q8_0_32(256, 512, 1);
  e[mv.name](0, 512, 1024, 0, 1);
  return new Float32Array(memory.buffer, 1024, 1)[0];
}

/** Small deterministic values for every weight of a config (timing needs no training). */
function cheapWeights(shapes: Map<string, number[]>): Weights {
  const w: Weights = new Map();
  let seed = 1;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5; // LCG
  for (const [name, shape] of shapes) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = shape.length === 1 ? 1 : 0.05 * next();
    w.set(name, { shape, data });
  }
  return w;
}

/** Milliseconds per call of `f`, averaged over 400 ms after one warm-up call. */
function time(f: () => void): number {
  f();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 400) {
    f();
    n++;
  }
  return (performance.now() - t0) / n;
}

/** Times decode and prefill of a model too big for the CPU caches, and a plain memory copy. */
function bandwidth() {
  const c = parseConfig({
    arch: "llama",
    vocab_size: 4096,
    dim: 1024,
    n_layers: 2,
    n_heads: 16,
    n_kv_heads: 8,
    hidden_dim: 2816,
    context_length: 256,
    norm: "rmsnorm",
    norm_eps: 1e-5,
    mlp: "swiglu",
    tie_embeddings: true,
  }, "<guide step 9>");
  const shapes = expectedShapes(c);
  let params = 0;
  for (const s of shapes.values()) params += s.reduce((a, b) => a * b, 1);
  const bytes = params * 4, flops = 2 * params; // f32 weights; a multiply-add per weight
  const size = `dim ${c.dim}, ${c.n_layers} layers, hidden ${c.hidden_dim}, vocab ${c.vocab_size}`;
  console.log(`a random model: ${size}`);
  console.log(`  ${int(params)} weights, ${fixed(bytes / 1e6, 1)} MB in f32`);
  console.log(
    "a decode step reads every weight once; a prefill step of 32 rows, once for 32 tokens",
  );
  const m = compileModel(c, cheapWeights(shapes), { kvCapacity: 128, backend: "wasm" });
  const rows = Array.from({ length: 32 }, (_, i) => i + 1);
  const prefillMs = time(() => m.forward(rows, 0));
  let pos = 32;
  const decodeMs = time(() => m.forward([7], pos = pos < 120 ? pos + 1 : 32));
  const dst = new Uint8Array(128 << 20), src = new Uint8Array(128 << 20).fill(1);
  const copyMs = time(() => dst.set(src));
  const readGBs = bytes / decodeMs / 1e6;
  const gflops = (ms: number, tokens: number) => fixed((tokens * flops) / ms / 1e6, 2);
  measured(
    "memory copy (read + write), 128 MiB",
    `${fixed((2 * dst.length) / copyMs / 1e6, 2)} GB/s`,
  );
  const decodeRate = `${fixed(1000 / decodeMs, 1)} tokens/s, ${gflops(decodeMs, 1)} GFLOP/s`;
  measured("decode, 1 token per step (WASM SIMD kernels)", decodeRate);
  measured("  weights read at", `${fixed(readGBs, 2)} GB/s`);
  const prefillRate = `${fixed(32000 / prefillMs, 1)} tokens/s, ${gflops(prefillMs, 32)} GFLOP/s`;
  measured("prefill, 32 tokens per step (same kernels)", prefillRate);
  measured("prefill / decode arithmetic per second", `${fixed((32 * decodeMs) / prefillMs, 1)}x`);
  console.log(
    "at that read speed, the same model in smaller types (bytes per token / bytes per s):",
  );
  for (const name of ["F32", "F16", "Q8_0", "Q4_K"]) {
    const t = ggmlTypeByName(name)!;
    const typeBytes = (params * t.blockBytes) / t.blockSize;
    const label = `  ${name.padEnd(4)} ${fixed(typeBytes / 1e6, 1).padStart(5)} MB`;
    measured(label, `at most ${fixed((readGBs * 1e9) / typeBytes, 0)} tokens/s`);
  }
}

if (import.meta.main) await main();
