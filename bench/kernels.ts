/**
 * `deno task bench:kernels`: the WASM kernels of codegen/wasm/ on the g110M shapes
 * (configs/gollm-85m.yaml: dim 768, 12 layers, 4 KV heads × 64, hidden 2048, vocab 32768),
 * for each weight type at 1 and 2 threads (runtime/threads.ts). Prints:
 * - the streaming read bandwidth of this machine right now (a v128 sum over 256 MiB): the
 *   bound every decode figure below is to be read against;
 * - per shape: ms per matvec call (rows split between threads) and GB/s of weights read;
 * - the decode step: all 12 × 7 matvecs and the LM head of one token, activations
 *   quantised as they go, a barrier after each op, started by ONE notify: ms, tok/s, GB/s;
 * - prefill: the 12 × 7 matmuls of 64 and 256 tokens: ms and GFLOP/s.
 * Weights are random blocks (12 copies of one layer), rows interleaved where the engine
 * interleaves them at load (`interleaveRows`: F32/F16/BF16/Q8_0 in fours, Q4_K, Q5_K and Q6_K
 * in pairs) and repacked where it repacks them (`hasPackedLayout`: Q4_K/Q5_K pairs, Q6_K), so the
 * kernels are the ones a model runs (`_i4`, `_i2`, `_p`);
 * every figure is the minimum over repeated runs (the least disturbed by other processes)
 * with the median beside it.
 *
 * Usage: deno task bench:kernels [--types Q8_0,Q4_K,Q6_K,F16] [--threads 1,2] [--reps 7]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { WasmFunc } from "../codegen/wasm_asm.ts";
import { fp16SimdSupported, relaxedDotU8, relaxedSimdSupported } from "../codegen/wasm_features.ts";
import { barrierKernel, emitShare } from "../codegen/wasm/barrier.ts";
import {
  actLayout,
  hasPackedLayout,
  rowBytes,
  WEIGHT_TYPES,
  type WeightTypeName,
} from "../codegen/wasm/blocks.ts";
import {
  emitLinear,
  interleaveRows,
  interleaveUnit,
  linearName,
  panelSupported,
} from "../codegen/wasm/linear.ts";
import { interleaveRowsInPlace } from "../codegen/wasm/interleave.ts";
import { packQ6KInPlace, Q6K_BLOCK_BYTES } from "../codegen/wasm/q6k_pack.ts";
import { panelScratchBytes } from "../codegen/wasm/linear_panel.ts";
import { buildKernelModule } from "../codegen/wasm/module.ts";
import { quantizeKernel } from "../codegen/wasm/quantize.ts";
import { createThreadPool, type ThreadPool } from "../runtime/threads.ts";
import { randomBlocks, rng } from "../tests/ggml_blocks.ts";

const DIM = 768, HIDDEN = 2048, KV = 256, VOCAB = 32768, LAYERS = 12;
/** One layer's matrix products in order: [name, M, K, input buffer]. */
const LAYER: [string, number, number, "attn_in" | "attn_out" | "ffn_in" | "h"][] = [
  ["wq", DIM, DIM, "attn_in"],
  ["wk", KV, DIM, "attn_in"],
  ["wv", KV, DIM, "attn_in"],
  ["wo", DIM, DIM, "attn_out"],
  ["w1", HIDDEN, DIM, "ffn_in"],
  ["w3", HIDDEN, DIM, "ffn_in"],
  ["w2", DIM, HIDDEN, "h"],
];
const SHAPES: [number, number][] = [[DIM, DIM], [KV, DIM], [HIDDEN, DIM], [DIM, HIDDEN], [
  VOCAB,
  DIM,
]];
const ENTRY_ARGS = Array.from({ length: 8 }, (_, i) => [`a${i}`, "i32"] as [string, "i32"]);
const MAX_TOKENS = 256;
/**
 * llama.cpp on the same machine and model shape (issue #8, node-llama-cpp 3.22.1, a
 * quieter moment): decode tok/s at 1 and 2 threads, for the types it measured.
 */
const LLAMA_CPP: Partial<Record<WeightTypeName, [number, number]>> = {
  F32: [28.0, 51.4],
  Q8_0: [107.0, 210.3],
};

const USAGE =
  "usage: deno task bench:kernels [--types Q8_0,Q4_K,Q6_K,F16] [--threads 1,2] [--reps 7]";
/** Prints one line and the usage to stderr, and exits 2. */
function usageError(message: string): never {
  console.error(`bench:kernels: ${message}\n${USAGE}`);
  Deno.exit(2);
}
const options = {
  types: { type: "string", default: "Q8_0,Q4_K,Q6_K,F16" },
  threads: { type: "string", default: "1,2" },
  reps: { type: "string", default: "7" },
  help: { type: "boolean", short: "h" },
} as const;
const values = (() => {
  try {
    return parseArgs({ args: Deno.args, options }).values;
  } catch (e) {
    return usageError((e as Error).message);
  }
})();
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const types = values.types.split(",") as WeightTypeName[];
for (const t of types) {
  if (!WEIGHT_TYPES[t]) {
    usageError(`--types: unknown type '${t}' (known: ${Object.keys(WEIGHT_TYPES).join(", ")})`);
  }
}
const threadCounts = values.threads.split(",").map(Number);
for (const n of threadCounts) {
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    usageError(`--threads: expected integers in 1..64, got '${values.threads}'`);
  }
}
const REPS = Number(values.reps);
if (!Number.isInteger(REPS) || REPS < 1) {
  usageError(`--reps: expected an integer >= 1, got '${values.reps}'`);
}
const relaxed = relaxedSimdSupported();
const fp16 = fp16SimdSupported();
const dotU8 = relaxedDotU8();

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[s.length >> 1] };
};
const time = (fn: () => void, reps: number) => {
  fn();
  const xs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    xs.push(performance.now() - t0);
  }
  return stats(xs);
};
const fmt = (x: number, d = 2) => x.toFixed(d).padStart(8);

/** The memory layout and module of one weight type. */
function build(type: WeightTypeName) {
  const t = WEIGHT_TYPES[type];
  const q = t.act !== "f32";
  let off = 1 << 20; // control block at 0, activations from 64 KiB
  const act = (K: number) => actLayout(t.act, K).stride;
  const buf: Record<string, number> = {};
  let a = 65536;
  for (
    const [name, bytes] of [
      ["x", 4 * DIM * MAX_TOKENS],
      ["attn_in", 4 * DIM * MAX_TOKENS],
      ["attn_out", 4 * DIM * MAX_TOKENS],
      ["ffn_in", 4 * DIM * MAX_TOKENS],
      ["h", 4 * HIDDEN * MAX_TOKENS],
      ["xq", act(HIDDEN) * MAX_TOKENS],
      ["y", 4 * VOCAB * 2],
      ["panel", panelScratchBytes(HIDDEN) * 64], // the panel matmuls' scratch, per thread
    ] as [string, number][]
  ) {
    buf[name] = a;
    a += Math.ceil(bytes / 64) * 64;
  }
  off = Math.max(off, Math.ceil(a / 65536) * 65536);
  const layerW: number[][] = [];
  for (let l = 0; l < LAYERS; l++) {
    layerW.push(LAYER.map(([, M, K]) => {
      const o = off;
      off += Math.ceil((rowBytes(t, K) * M) / 64) * 64;
      return o;
    }));
  }
  const head = off;
  off += rowBytes(t, DIM) * VOCAB;
  const weightBytes = off - layerW[0][0];
  const pages = Math.ceil(off / 65536) + 1; // + slack for prefetch touches past the end
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });

  const funcs: WasmFunc[] = [barrierKernel()];
  const kernels = new Set<string>();
  // The engine's choice for a prefill (renderers.ts: n above panelMinTokens, which 64 is).
  const usePanel = (kind: "matvec" | "matmul") =>
    panelSupported({ type, M: DIM, K: DIM, kind, relaxed, dotU8 });
  const kernel = (M: number, K: number, kind: "matvec" | "matmul") => {
    const panel = usePanel(kind);
    const interleave = interleaveRows(type, M, K);
    const packed = hasPackedLayout(type, interleave);
    const name = linearName({ type, M, K, kind, panel, interleave, packed });
    if (!kernels.has(name)) {
      kernels.add(name);
      funcs.push(
        emitLinear({ type, M, K, kind, relaxed, fp16, dotU8, panel, interleave, packed }),
      );
    }
    return name;
  };
  if (q) funcs.push(quantizeKernel(t.act as "q8_0", DIM), quantizeKernel(t.act as "q8_0", HIDDEN));
  const entry = (name: string) => {
    const f = new WasmFunc(name, [["tid", "i32"], ["nthreads", "i32"], ...ENTRY_ARGS]);
    f.local("lo", "i32").local("hi", "i32");
    funcs.push(f);
    return f;
  };
  const barrier = (f: WasmFunc) => f.i32(0).call("barrier").if().op("return").end();
  /** input → (thread 0 quantises) → the x argument of the kernel. */
  const input = (f: WasmFunc, from: string, K: number, n: () => void) => {
    if (!q) return buf[from];
    f.get("tid").op("i32.eqz").if().i32(buf[from]).i32(buf.xq);
    n();
    f.call(`quantize_${t.act}_${K}`).end();
    barrier(f);
    return buf.xq;
  };
  const linear = (f: WasmFunc, w: number, M: number, K: number, x: number, mm: boolean) => {
    emitShare(f, M, Math.max(2, interleaveRows(type, M, K)), "lo", "hi");
    f.i32(w).i32(x).i32(buf.y).get("lo").get("hi");
    if (mm) f.get("a0");
    if (usePanel(mm ? "matmul" : "matvec")) {
      f.i32(buf.panel).get("tid").i32(panelScratchBytes(HIDDEN)).op("i32.mul").op("i32.add");
    }
    f.call(kernel(M, K, mm ? "matmul" : "matvec"));
    barrier(f);
  };
  // shape_i(w = a0): one matvec of shape i.
  SHAPES.forEach(([M, K], i) => {
    const f = entry(`shape${i}`);
    emitShare(f, M, Math.max(2, interleaveRows(type, M, K)), "lo", "hi");
    f.get("a0").i32(q ? buf.xq : buf.h).i32(buf.y).get("lo").get("hi");
    f.call(kernel(M, K, "matvec"));
  });
  // decode: every layer's matvecs, then the LM head; prefill(n = a0): every layer's matmuls.
  for (const mm of [false, true]) {
    const f = entry(mm ? "prefill" : "decode");
    const n = () => (mm ? f.get("a0") : f.i32(1));
    for (let l = 0; l < LAYERS; l++) {
      let last = "";
      LAYER.forEach(([, M, K, from], j) => {
        const x = from === last ? buf.xq : input(f, from, K, n);
        last = from;
        linear(f, layerW[l][j], M, K, x, mm);
      });
    }
    if (!mm) linear(f, head, VOCAB, DIM, input(f, "x", DIM, n), false);
  }
  const mod = buildKernelModule(funcs, { minPages: pages, maxPages: pages, shared: true });
  // Fill: one random layer copied into every layer; quantised inputs from random x.
  const u8 = new Uint8Array(memory.buffer);
  const r = rng(1);
  // Rows interleaved as the engine lays them out at load (codegen/wasm/interleave.ts).
  const interleaved = (M: number, K: number, b: Uint8Array) => {
    interleaveRowsInPlace(
      b,
      0,
      M,
      rowBytes(t, K),
      interleaveUnit(type),
      interleaveRows(type, M, K),
    );
    if (type === "Q6_K") packQ6KInPlace(b, 0, b.length / Q6K_BLOCK_BYTES);
    return b;
  };
  const layer = LAYER.map(([, M, K]) => interleaved(M, K, randomBlocks(type, M, K, r)));
  for (let l = 0; l < LAYERS; l++) layer.forEach((b, j) => u8.set(b, layerW[l][j]));
  const headBytes = interleaved(4096, DIM, randomBlocks(type, 4096, DIM, r));
  for (let i = 0; i < VOCAB / 4096; i++) u8.set(headBytes, head + i * headBytes.length);
  const f32 = new Float32Array(memory.buffer);
  for (const name of ["x", "attn_in", "attn_out", "ffn_in", "h"]) {
    const n = (name === "h" ? HIDDEN : DIM) * MAX_TOKENS;
    for (let i = 0; i < n; i++) f32[buf[name] / 4 + i] = 2 * r() - 1;
  }
  const entries = ["decode", "prefill", ...SHAPES.map((_, i) => `shape${i}`)];
  return {
    memory,
    module: new WebAssembly.Module(mod.bytes),
    entries,
    layerW,
    head,
    weightBytes,
    buf,
  };
}

/** Streaming read bandwidth: v128 loads summed over 256 MiB, split between threads. */
async function bandwidth(threads: number): Promise<number> {
  const bytes = 256 << 20, pages = bytes / 65536 + 2;
  const f = new WasmFunc("stream", [["tid", "i32"], ["nthreads", "i32"], ...ENTRY_ARGS]);
  f.local("lo", "i32").local("hi", "i32").local("acc", "v128");
  emitShare(f, bytes / 4096, 1, "lo", "hi");
  f.get("lo").i32(4096).op("i32.mul").i32(65536).op("i32.add").set("lo");
  f.get("hi").i32(4096).op("i32.mul").i32(65536).op("i32.add").set("hi");
  f.loop("l");
  for (let u = 0; u < 4; u++) {
    f.get("acc").get("lo").mem("v128.load", 16 * u).op("i32x4.add").set("acc");
  }
  f.get("lo").i32(64).op("i32.add").tee("lo").get("hi").op("i32.lt_u").brIf("l").end();
  f.i32(128).get("acc").mem("v128.store", 0);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  new Uint8Array(memory.buffer).fill(1, 65536);
  const mod = buildKernelModule([f], { minPages: pages, maxPages: pages, shared: true });
  const pool = await createThreadPool(new WebAssembly.Module(mod.bytes), memory, 0, ["stream"], {
    threads,
  });
  try {
    return bytes / time(() => pool.run("stream"), REPS).min / 1e6;
  } finally {
    pool.close();
  }
}

console.log(
  `gollm bench:kernels — g110M shapes, relaxed SIMD ${relaxed ? "on" : "off"}, ` +
    `FP16 proposal ${fp16 ? "on" : "off"}, u8 dot product ${dotU8 ? "on" : "off"}, ` +
    `${navigator.hardwareConcurrency} cores, min (median) of ${REPS} runs`,
);
for (const threads of threadCounts) {
  console.log(
    `streaming read, ${threads} thread(s): ${(await bandwidth(threads)).toFixed(1)} GB/s`,
  );
}
for (const type of types) {
  const b = build(type);
  for (const threads of threadCounts) {
    const pool: ThreadPool = await createThreadPool(b.module, b.memory, 0, b.entries, { threads });
    try {
      console.log(`\n${type}, ${threads} thread(s)`);
      const t = WEIGHT_TYPES[type];
      if (t.act !== "f32") {
        // The kernels read quantised activations at xq: make them valid once.
        // deno-lint-ignore no-explicit-any
        const X = pool.instance.exports as any;
        X[`quantize_${t.act}_${HIDDEN}`](b.buf.h, b.buf.xq, MAX_TOKENS);
      }
      console.log("  shape           ms/call      GB/s");
      SHAPES.forEach(([M, K], i) => {
        const w = i === 4 ? b.head : b.layerW[0][LAYER.findIndex(([, m, k]) => m === M && k === K)];
        const bytes = rowBytes(t, K) * M;
        const s = time(() => pool.run(`shape${i}`, [w]), Math.max(REPS, 20));
        console.log(
          `  ${`${M}x${K}`.padEnd(12)} ${fmt(s.min, 4)} ${fmt(bytes / s.min / 1e6, 1)}` +
            `   (median ${s.median.toFixed(4)} ms)`,
        );
      });
      const d = time(() => pool.run("decode"), REPS);
      console.log(
        `  decode step (${LAYERS}×7 matvecs + LM head, activation quantisation, barriers): ` +
          `${d.min.toFixed(2)} ms → ${(1000 / d.min).toFixed(1)} tok/s, ` +
          `${(b.weightBytes / d.min / 1e6).toFixed(1)} GB/s (median ${d.median.toFixed(2)} ms)`,
      );
      const peer = LLAMA_CPP[type]?.[threads - 1];
      if (peer) {
        console.log(
          `  llama.cpp (issue #8 table): ${peer} tok/s = ${
            (1000 / peer).toFixed(2)
          } ms per token ` +
            `(whole step); this matvec step is ${(1000 / d.min / peer).toFixed(2)}× its rate`,
        );
      }
      const flopsPerToken = 2 * LAYERS * LAYER.reduce((s, [, M, K]) => s + M * K, 0);
      for (const n of [64, 256]) {
        const p = time(() => pool.run("prefill", [n]), Math.max(3, REPS >> 1));
        console.log(
          `  prefill ${n} tokens (layer matmuls): ${p.min.toFixed(1)} ms → ` +
            `${(flopsPerToken * n / p.min / 1e6).toFixed(1)} GFLOP/s, ` +
            `${(n / p.min * 1000).toFixed(0)} tok/s (median ${p.median.toFixed(1)} ms)`,
        );
      }
    } finally {
      pool.close();
    }
  }
}
