/**
 * Step 12 of the guide: WebAssembly SIMD and threads. The matrix-vector product that is most
 * of a decode step, written three times in WebAssembly with gollm's assembler
 * (codegen/wasm_asm.ts): one multiply-add at a time, four lanes at a time (`f32x4`), and four
 * rows at a time; each checked against a float64 loop on stories260K's weights and against
 * the kernel gollm generates for the same shape (codegen/wasm/linear.ts), bit for bit; their
 * speeds measured; then two threads sharing one memory, each with half the rows, meeting at
 * an Atomics counter, bit for bit the one-thread result.
 *
 * Run: `deno run -A docs/guide/12_simd.ts` (page: docs/guide/12_simd.md).
 *
 * @module
 */
import { WasmFunc } from "../../codegen/wasm_asm.ts";
import { buildKernelModule } from "../../codegen/wasm/module.ts";
import { emitLinear } from "../../codegen/wasm/linear.ts";
import {
  check,
  control,
  fixed,
  int,
  loadGuideModel,
  maxAbsDiff,
  measured,
  sci,
  section,
  vec,
  weight,
} from "./lib.ts";

/** A kernel's signature: y[r] = Σ_k W[r, k] · x[k] for rows r0 .. r1 - 1 (byte addresses). */
const PARAMS: [string, "i32"][] = [["w", "i32"], ["x", "i32"], ["y", "i32"], ["r0", "i32"], [
  "r1",
  "i32",
]];

// #region scalar
/** One multiply and one add per weight; `cols` is a constant of the kernel, as in the JIT. */
export function matvecScalar(cols: number): WasmFunc {
  const f = new WasmFunc(`matvec_scalar_${cols}`, PARAMS);
  f.local("r", "i32").local("pw", "i32").local("px", "i32").local("end", "i32");
  f.local("acc", "f32");
  f.get("r0").set("r");
  f.block("done").loop("rows");
  f.get("r").get("r1").op("i32.ge_u").brIf("done");
  f.comment(`pw = W's row r (${cols} f32 = ${cols * 4} bytes per row); end = its end`);
  f.get("w").get("r").i32(cols * 4).op("i32.mul").op("i32.add").tee("pw");
  f.i32(cols * 4).op("i32.add").set("end");
  f.get("x").set("px").f32(0).set("acc");
  f.loop("cols");
  f.comment("acc += W[r, k] · x[k]");
  f.get("acc").get("pw").mem("f32.load").get("px").mem("f32.load").op("f32.mul").op("f32.add");
  f.set("acc");
  f.get("pw").i32(4).op("i32.add").set("pw").get("px").i32(4).op("i32.add").set("px");
  f.get("pw").get("end").op("i32.lt_u").brIf("cols");
  f.end();
  f.get("y").get("r").i32(4).op("i32.mul").op("i32.add").get("acc").mem("f32.store");
  f.get("r").i32(1).op("i32.add").set("r");
  f.br("rows").end().end();
  return f;
}
// #endregion scalar

// #region simd
/**
 * `rows` rows at a time, four columns per instruction: a v128 register holds 4 f32 lanes, so
 * `f32x4.mul` and `f32x4.add` do 4 multiply-adds each. With `chains` = 2 each row has two
 * accumulators, one for columns k .. k + 3 and one for k + 4 .. k + 7 of each step of 8, so
 * no add waits on the one before it; lane i of an accumulator sums its columns ≡ i (mod 4),
 * the two are added and their 4 lanes summed at the end. x's values are loaded once for all
 * the rows. `rows` divides the row count (172 and 1024 here), `4 · chains` divides `cols`.
 */
export function matvecF32x4(cols: number, rows: number, chains: 1 | 2 = 1): WasmFunc {
  const f = new WasmFunc(`matvec_f32x4_${rows}rows_${chains}chains_${cols}`, PARAMS);
  f.local("r", "i32").local("pw", "i32").local("px", "i32").local("end", "i32");
  for (let c = 0; c < chains; c++) f.local(`xv${c}`, "v128");
  for (let a = 0; a < rows; a++) {
    for (let c = 0; c < chains; c++) f.local(`acc${a}_${c}`, "v128");
  }
  f.get("r0").set("r");
  f.block("done").loop("rows");
  f.get("r").get("r1").op("i32.ge_u").brIf("done");
  f.get("w").get("r").i32(cols * 4).op("i32.mul").op("i32.add").tee("pw");
  f.i32(cols * 4).op("i32.add").set("end");
  f.get("x").set("px");
  for (let a = 0; a < rows; a++) {
    for (let c = 0; c < chains; c++) f.zeroV128().set(`acc${a}_${c}`);
  }
  f.loop("cols");
  for (let c = 0; c < chains; c++) {
    f.comment(`xv${c} = x[k + ${4 * c} .. k + ${4 * c + 3}]`);
    f.get("px").mem("v128.load", 16 * c).set(`xv${c}`);
  }
  for (let a = 0; a < rows; a++) {
    for (let c = 0; c < chains; c++) {
      f.comment(`acc${a}_${c} += W[r + ${a}, k + ${4 * c} .. k + ${4 * c + 3}] · xv${c}`);
      f.get(`acc${a}_${c}`).get("pw").mem("v128.load", a * cols * 4 + 16 * c).get(`xv${c}`);
      f.op("f32x4.mul").op("f32x4.add").set(`acc${a}_${c}`);
    }
  }
  f.get("pw").i32(16 * chains).op("i32.add").set("pw");
  f.get("px").i32(16 * chains).op("i32.add").set("px");
  f.get("pw").get("end").op("i32.lt_u").brIf("cols");
  f.end();
  for (let a = 0; a < rows; a++) {
    const acc = `acc${a}_0`;
    if (chains === 2) {
      f.comment(`acc${a}_0 += acc${a}_1`);
      f.get(acc).get(`acc${a}_1`).op("f32x4.add").set(acc);
    }
    f.comment(`y[r + ${a}] = (lane 0 + lane 1) + (lane 2 + lane 3) of ${acc}`);
    f.get("y").get("r").i32(4).op("i32.mul").op("i32.add");
    f.get(acc).lane("f32x4.extract_lane", 0).get(acc).lane("f32x4.extract_lane", 1);
    f.op("f32.add");
    f.get(acc).lane("f32x4.extract_lane", 2).get(acc).lane("f32x4.extract_lane", 3);
    f.op("f32.add").op("f32.add").mem("f32.store", 4 * a);
  }
  f.get("r").i32(rows).op("i32.add").set("r");
  f.br("rows").end().end();
  return f;
}
// #endregion simd

type Kernel = (w: number, x: number, y: number, r0: number, r1: number) => void;

/** Instantiates kernels on `memory` (shared, so threads can use the same module). */
function instantiate(funcs: WasmFunc[], memory: WebAssembly.Memory, pages: number) {
  const built = buildKernelModule(funcs, { minPages: pages, maxPages: pages, shared: true });
  const module = new WebAssembly.Module(built.bytes);
  const inst = new WebAssembly.Instance(module, { env: { memory } });
  const get = (name: string) => inst.exports[name] as Kernel;
  return { module, get };
}

/** W·x in float64, for the checks. */
function reference(w: Float32Array, x: Float32Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < cols; k++) s += w[r * cols + k] * x[k];
    y[r] = s;
  }
  return y;
}

/** Best time of `fn` in ms over 5 rounds of enough calls to take ~50 ms. */
function timeMs(fn: () => void): number {
  fn();
  let n = 1;
  for (let t = 0; t < 20;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    t = performance.now() - t0;
    if (t < 20) n *= 2;
  }
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    best = Math.min(best, (performance.now() - t0) / n);
  }
  return best;
}

/** Deterministic values in [-1, 1) (xorshift), for the measured matrices. */
function fill(a: Float32Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
    a[i] = (s >>> 0) / 2 ** 31 - 1;
  }
}

// #region threads
/** The worker: the same module on the same memory; it sleeps on ctl[0] (Atomics.wait), runs
 * the rows it is given, and counts itself done in ctl[1]. */
const WORKER_SOURCE = `
  self.onmessage = ({ data: { module, memory, ctl, name } }) => {
    const run = new WebAssembly.Instance(module, { env: { memory } }).exports[name];
    const c = new Int32Array(memory.buffer, ctl, 8); // go, done, w, x, y, r0, r1
    self.postMessage("ready");
    for (let seen = 0;;) {
      Atomics.wait(c, 0, seen);   // sleep until the main thread bumps go
      seen = Atomics.load(c, 0);
      if (c[5] < 0) return self.close();
      run(c[2], c[3], c[4], c[5], c[6]);
      Atomics.add(c, 1, 1);       // done
    }
  };`;

/** Starts the worker on kernel `name` of `module`; `ctl`: the byte offset of its 8 int32s. */
export async function startWorker(
  module: WebAssembly.Module,
  memory: WebAssembly.Memory,
  ctl: number,
  name: string,
): Promise<Worker> {
  const url = `data:application/javascript,${encodeURIComponent(WORKER_SOURCE)}`;
  const worker = new Worker(url, { type: "module" });
  const ready = new Promise((r) => worker.onmessage = r);
  worker.postMessage({ module, memory, ctl, name });
  await ready;
  return worker;
}

/** y = W · x on two threads: the worker takes rows rows/2 .. rows - 1, this thread the rest. */
export function splitRows(
  run: Kernel,
  c: Int32Array,
  w: number,
  x: number,
  y: number,
  rows: number,
): void {
  c.set([w, x, y, rows / 2, rows], 2); // the worker's half
  const done = Atomics.load(c, 1);
  Atomics.add(c, 0, 1);
  Atomics.notify(c, 0); // wake the worker
  run(w, x, y, 0, rows / 2); // our half, meanwhile
  while (Atomics.load(c, 1) === done); // wait for the worker's half (a spin: ~µs)
}
// #endregion threads

const PAGE = 65536;

if (import.meta.main) {
  section("three matrix-vector products in WebAssembly");
  const model = await loadGuideModel();
  const name = "layers.0.ffn.w1.weight";
  const [rows, cols] = [model.config.hidden_dim, model.config.dim];
  const w = weight(model, name),
    x = weight(model, "tok_embeddings.weight").subarray(cols, 2 * cols);
  console.log(`W = ${name}, (${rows}, ${cols}); x = tok_embeddings.weight[1]`);
  // One memory: W at 0, x after it, then one y per kernel.
  const pages1 = Math.ceil(((rows + 5) * cols + 5 * rows) * 4 / PAGE);
  const memory = new WebAssembly.Memory({ initial: pages1, maximum: pages1, shared: true });
  const f32 = new Float32Array(memory.buffer);
  const W = 0, X = rows * cols * 4, Y = X + cols * 4;
  f32.set(w, W / 4);
  f32.set(x, X / 4);
  const ours = [matvecScalar(cols), matvecF32x4(cols, 1), matvecF32x4(cols, 4, 2)];
  const gollm = emitLinear({
    type: "F32",
    M: rows,
    K: cols,
    kind: "matvec",
    relaxed: false,
    fp16: false,
  });
  const { get } = instantiate([...ours, gollm], memory, pages1);
  const want = reference(w, x, rows, cols);
  const results: Float32Array[] = [];
  for (const [i, f] of [...ours, gollm].entries()) {
    const y = Y + i * rows * 4;
    get(f.name)(W, X, y, 0, rows);
    results.push(f32.slice(y / 4, y / 4 + rows));
  }
  const scale = Math.max(...want.map(Math.abs));
  for (const [i, f] of ours.entries()) {
    const d = maxAbsDiff(results[i], want);
    check(`${f.name} computes W · x`, d <= 1e-6 * scale, `max |diff| ${sci(d)} from float64`);
  }
  console.log(`y = ${vec(results[2])}`);
  const same = (a: Float32Array, b: Float32Array) => a.every((v, i) => Object.is(v, b[i]));
  check(
    `four lanes, four rows, two chains: the same bits as gollm's generated ${gollm.name}`,
    same(results[2], results[3]),
    "the same lanes, the same order of additions",
  );
  check(
    "one multiply-add at a time sums in another order: other bits, within rounding",
    !same(results[0], results[2]) && maxAbsDiff(results[0], results[2]) <= 1e-6 * scale,
    `max |diff| ${sci(maxAbsDiff(results[0], results[2]))}`,
  );
  // A JIT's typical mistake: a kernel compiled for the wrong shape (56 columns, not 64).
  const broken = matvecF32x4(cols - 8, 4, 2);
  instantiate([broken], memory, pages1).get(broken.name)(W, X, Y, 0, rows);
  control(
    `a kernel compiled for ${cols - 8} columns`,
    maxAbsDiff(f32.subarray(Y / 4, Y / 4 + rows), want) > 1e-3 * scale,
    `max |diff| ${fixed(maxAbsDiff(f32.subarray(Y / 4, Y / 4 + rows), want))}`,
  );
  const text = ours[2].text().split("\n");
  const from = text.findIndex((l) => l.includes("loop $cols"));
  const to = text.findIndex((l, i) => i > from && /^\s*end$/.test(l));
  const count = text.slice(from + 1, to).filter((l) => !l.trim().startsWith(";;")).length;
  console.log(`the inner loop of ${ours[2].name} (${count} instructions, 32 multiply-adds):`);
  for (const l of text.slice(from, to + 1)) console.log(l.replace(/^ {4}/, ""));

  section("how fast (measured on this machine)");
  // A larger matrix in cache (1024 × 1024 f32, 4 MiB), so the arithmetic is what is timed.
  const n = 1024, pages = Math.ceil((n * n * 4 + 2 * n * 4) / PAGE) + 1;
  const mem2 = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const m2 = new Float32Array(mem2.buffer);
  fill(m2.subarray(0, n * n + n), 7);
  const fast = [matvecScalar(n), matvecF32x4(n, 1), matvecF32x4(n, 4, 2)];
  const k2 = instantiate(fast, mem2, pages);
  console.log(`W (${n}, ${n}) f32, 4 MiB, warm in the caches; one thread`);
  const speed = new Map<string, number>();
  for (const f of fast) {
    const run = k2.get(f.name);
    const ms = timeMs(() => run(0, n * n * 4, (n * n + n) * 4, 0, n));
    speed.set(f.name, n * n / ms / 1e6);
    measured(f.name, `${fixed(ms, 3)} ms, ${fixed(n * n / ms / 1e6, 2)} multiply-adds per ns`);
  }
  const s = (k: WasmFunc) => speed.get(k.name)!;
  measured("four lanes / one at a time", `${fixed(s(fast[1]) / s(fast[0]), 1)}x`);
  measured(
    "four rows and two chains / one row (both four lanes)",
    `${fixed(s(fast[2]) / s(fast[1]), 1)}x`,
  );

  section("two threads, one memory");
  // 64 MiB of weights: larger than the caches, as a model's are.
  const R = 8192, C = 2048, bytes = R * C * 4;
  const p3 = Math.ceil((bytes + C * 4 + 2 * R * 4 + 64) / PAGE);
  const mem3 = new WebAssembly.Memory({ initial: p3, maximum: p3, shared: true });
  const m3 = new Float32Array(mem3.buffer);
  fill(m3.subarray(0, R * C + C), 11);
  const X3 = bytes, Y1 = X3 + C * 4, Y2 = Y1 + R * 4, CTL = Y2 + R * 4;
  const k = matvecF32x4(C, 4, 2);
  const k3 = instantiate([k], mem3, p3);
  const run = k3.get(k.name);
  console.log(
    `W (${R}, ${C}) f32, ${int(bytes / 2 ** 20)} MiB; the worker gets rows ${R / 2} .. ${R - 1}`,
  );
  const worker = await startWorker(k3.module, mem3, CTL, k.name);
  const ctl = new Int32Array(mem3.buffer, CTL, 8);
  const twoThreads = (y: number) => splitRows(run, ctl, 0, X3, y, R);
  run(0, X3, Y1, 0, R);
  twoThreads(Y2);
  const y1 = m3.slice(Y1 / 4, Y1 / 4 + R), y2 = m3.slice(Y2 / 4, Y2 / 4 + R);
  check("two threads give the one-thread bits", same(y1, y2), `${R} of ${R} rows equal`);
  m3.fill(0, Y2 / 4, Y2 / 4 + R);
  run(0, X3, Y2, 0, R / 2); // only our half: as if the wait for the worker were left out
  control(
    "reading y before the worker's half is done",
    !same(y1, m3.subarray(Y2 / 4, Y2 / 4 + R)),
    `${m3.subarray(Y2 / 4, Y2 / 4 + R).filter((v, i) => v !== y1[i]).length} rows differ`,
  );
  const one = timeMs(() => run(0, X3, Y1, 0, R)), two = timeMs(() => twoThreads(Y2));
  measured(
    "one thread",
    `${fixed(one, 2)} ms, weights read at ${fixed(bytes / one / 1e6, 1)} GB/s`,
  );
  measured(
    "two threads",
    `${fixed(two, 2)} ms, weights read at ${fixed(bytes / two / 1e6, 1)} GB/s`,
  );
  measured("two / one", `${fixed(one / two, 2)}x`);
  ctl[5] = -1; // stop the worker
  Atomics.add(ctl, 0, 1);
  Atomics.notify(ctl, 0);
  worker.terminate();
}
