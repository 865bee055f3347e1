/**
 * `deno run -A bench/big_model.ts [--layers 7] [--threads 2] [--tokens 4]`: the wasm backend
 * on a model whose weights do not fit one 32-bit WebAssembly memory (issue #8 item 4; not
 * part of CI: it needs about 11 GB of RAM for a minute).
 *
 * It generates, in memory, a llama-shaped model with Llama-2-70B-sized layers (dim 8192, 64
 * query / 8 KV heads, SwiGLU hidden 28672) and random Q8_0 matrices — with the default 7
 * layers 5.5 GB of weights — compiles it (the weights past the first memory's 4 GiB go to
 * further shared memories, `env.memory1`, ...), then runs a 4-token prompt and a few
 * greedy decode steps on `--threads` threads, and prints the memory layout, the time of
 * each stage, tok/s and peak RSS. The logits are checked finite at every step.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { compileModel } from "../codegen/compile.ts";
import { parseConfig } from "../core/config.ts";
import { expectedShapes, type StorageType, type Weights } from "../core/weights.ts";
import { startStepPool } from "../runtime/threads.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    layers: { type: "string", default: "7" },
    threads: { type: "string", default: "2" },
    tokens: { type: "string", default: "4" },
  },
});
const layers = Number(values.layers), threads = Number(values.threads);
const steps = Number(values.tokens);

const config = parseConfig({
  arch: "llama",
  vocab_size: 1024,
  dim: 8192,
  n_layers: layers,
  n_heads: 64,
  n_kv_heads: 8,
  head_dim: 128,
  hidden_dim: 28672,
  context_length: 64,
  norm: "rmsnorm",
  norm_eps: 1e-5,
  rope_theta: 500000,
  rope_style: "half",
  mlp: "swiglu",
  tie_embeddings: false,
}, "<big model>");

const Q8_0: StorageType = { id: 8, name: "Q8_0", blockSize: 32, blockBytes: 34 };
const t0 = performance.now();
const ms = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const rss = () => {
  const s = Deno.readTextFileSync("/proc/self/status");
  const kb = (k: string) => Number(s.match(new RegExp(`${k}:\\s+(\\d+)`))![1]);
  return `RSS ${(kb("VmRSS") / 1048576).toFixed(2)} GB, peak ${
    (kb("VmHWM") / 1048576).toFixed(2)
  } GB`;
};

/** Random Q8_0 blocks: int8 quants uniform in [-127, 127], d with weight std 1/sqrt(K). */
function q8(rows: number, cols: number, seed: number): Uint8Array {
  const blocks = rows * (cols / 32);
  const buf = new Uint8Array(Math.ceil((blocks * 34) / 4) * 4);
  const words = new Uint32Array(buf.buffer);
  let s = seed | 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  // d = 1 / (73 · sqrt(K)) as f16 (73: the std of a uniform int8 in [-127, 127]).
  const d = 1 / (73 * Math.sqrt(cols));
  const e = Math.floor(Math.log2(d));
  const h = ((e + 15) << 10) | Math.round((d / 2 ** e - 1) * 1024);
  for (let b = 0, o = 0; b < blocks; b++, o += 34) {
    buf[o] = h & 0xff;
    buf[o + 1] = h >> 8;
    for (let j = 2; j < 34; j++) if (buf[o + j] === 0x80) buf[o + j] = 0x81; // no -128
  }
  return buf.subarray(0, blocks * 34);
}

let weights: Weights | null = new Map();
let total = 0;
let seed = 1;
for (const [name, shape] of expectedShapes(config)) {
  if (shape.length === 1) {
    weights.set(name, { shape, data: new Float32Array(shape[0]).fill(1) });
    continue;
  }
  const bytes = q8(shape[0], shape[1], seed++);
  total += bytes.length;
  weights.set(name, { shape, type: Q8_0, bytes });
}
console.log(
  `generated ${config.n_layers} layers of dim ${config.dim}, hidden ${config.hidden_dim}: ` +
    `${(total / 1e9).toFixed(2)} GB of Q8_0 weights (${weights.size} tensors) in ${ms()}; ${rss()}`,
);

const m = compileModel(config, weights, {
  backend: "wasm",
  kvCapacity: 64,
  prefillChunk: 8,
  threads,
  startPool: startStepPool,
});
weights = null; // the model holds its own copy, in its memories
const L = m.wasm!.layout;
console.log(
  `compiled in ${ms()}: memory 0 ${(L.memoryBytes / 2 ** 30).toFixed(2)} GiB (arena, scratch, ` +
    `weights), further memories ${
      L.more.map((b) => `${(b / 2 ** 30).toFixed(2)} GiB`).join(", ")
    }` +
    `; ${
      [...L.weights.values()].filter((w) => w.memory > 0).length
    } tensors past memory 0; ${rss()}`,
);

const argmax = (x: Float32Array) => x.reduce((b, v, i) => (v > x[b] ? i : b), 0);
const finite = (x: Float32Array) => x.every(Number.isFinite);
let t1 = performance.now();
let logits = m.forward([1, 17, 42, 99], 0);
console.log(
  `prefill 4 tokens: ${((performance.now() - t1) / 1000).toFixed(2)} s, logits finite: ${
    finite(logits)
  }`,
);
const ids: number[] = [];
t1 = performance.now();
for (let i = 0; i < steps; i++) {
  const id = argmax(logits);
  ids.push(id);
  logits = m.forward([id], 4 + i);
  if (!finite(logits)) throw new Error(`non-finite logits at step ${i}`);
}
const secs = (performance.now() - t1) / 1000;
console.log(
  `decode ${steps} tokens on ${threads} thread(s): ${(steps / secs).toFixed(2)} tok/s ` +
    `(${((total / 1e9) * steps / secs).toFixed(1)} GB/s of weights); greedy ids ${ids.join(" ")}`,
);
console.log(`${rss()}; total ${ms()}`);
m.close();
