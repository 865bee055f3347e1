/**
 * Step 10 of the guide: serving. One batched step over rows of many sequences (the weights
 * read once for all of them), a paged KV cache read through block tables, prefix caching by
 * content hash, continuous batching, and speculative decoding with its rejection-sampling
 * rule. Checked against gollm's engine: the reference run one sequence at a time
 * (runtime/reference.ts), the batched kernels (codegen `compileBatch`), the block pool and
 * the scheduler of the server (server/), `Model.generate` with a draft, and `verifyDraft`
 * (runtime/speculative.ts).
 *
 * Run: `deno run -A docs/guide/10_serving.ts` (page: docs/guide/10_serving.md).
 *
 * @module
 */
import type { ModelConfig } from "../../core/config.ts";
import type { BatchForward, StepInput } from "../../core/forward.ts";
import { compileBatch, type CompiledBatch } from "../../codegen/compile.ts";
import { findBuffer } from "../../codegen/plan.ts";
import type { Checkpoint } from "../../formats/checkpoint.ts";
import { loadCheckpoint } from "../../formats/load.ts";
import {
  createModel,
  type GenerateOptions,
  type GenerateStats,
  type Model,
} from "../../runtime/model.ts";
import { createReference } from "../../runtime/reference.ts";
import { Rng, Sampler } from "../../runtime/sampler.ts";
import { verifyDraft } from "../../runtime/speculative.ts";
import { NgramProposer } from "../../runtime/speculative_ngram.ts";
import { BlockManager, NULL_BLOCK } from "../../server/block_manager.ts";
import { Scheduler } from "../../server/scheduler.ts";
import { NgramProposer as ServerNgram } from "../../server/speculative.ts";
import { softmax } from "./03_attention.ts";
import {
  check,
  control,
  fixed,
  type GuideModel,
  int,
  loadGuideModel,
  maxAbsDiff,
  measured,
  ROOT,
  row,
  sci,
  section,
  shape,
  show,
  table,
  Trace,
} from "./lib.ts";

// #region rows
/** A {@linkcode StepInput} with plain arrays: `(n)` tokens, positions, seqs; `(nOut)` outRows. */
export type Rows = { [K in keyof StepInput]: number[] };

/**
 * The rows of one batched step: for each sequence, its tokens from `computed[s]` (the first
 * position whose K/V is not in the cache) to its last one. A prompt gives many rows (a
 * prefill chunk), a sequence in decode gives one. The logits wanted are each sequence's
 * last row: it predicts the sequence's next token.
 */
export function stepRows(seqs: number[][], computed: number[]): Rows {
  const tokens: number[] = [], positions: number[] = [], slots: number[] = [];
  const outRows: number[] = [];
  seqs.forEach((ids, s) => {
    for (let p = computed[s]; p < ids.length; p++) {
      tokens.push(ids[p]), positions.push(p), slots.push(s);
    }
    outRows.push(tokens.length - 1);
  });
  return { tokens, positions, seqs: slots, outRows };
}
// #endregion rows

// #region paged
/** Where position `pos` of a sequence lives in a pool: the page-table walk of paged KV. */
export function physicalRow(table: ArrayLike<number>, pos: number, blockSize: number): number {
  const block = table[Math.floor(pos / blockSize)]; // virtual page -> physical block
  return block * blockSize + (pos % blockSize); // the block's first row + offset in the block
}

/**
 * One query row at position `pos` attending to positions 0..pos of its sequence, whose keys
 * and values are gathered from the pools through its block table: step 3's attention.
 */
export function pagedAttention(
  c: ModelConfig,
  q: Float32Array, // (n_heads · head_dim), after RoPE
  kPool: Float32Array, // (numBlocks · blockSize, kv_dim)
  vPool: Float32Array, // (numBlocks · blockSize, kv_dim)
  table: ArrayLike<number>, // block ids, position order
  pos: number,
  blockSize: number,
): Float32Array {
  const hd = c.head_dim, kvDim = c.n_kv_heads * hd, group = c.n_heads / c.n_kv_heads;
  const out = new Float32Array(c.n_heads * hd); // (n_heads · head_dim)
  for (let h = 0; h < c.n_heads; h++) {
    const kvh = Math.floor(h / group) * hd; // the KV head this query head shares (GQA)
    const w = new Float64Array(pos + 1); // (pos + 1) scores, then weights
    for (let u = 0; u <= pos; u++) {
      const r = physicalRow(table, u, blockSize) * kvDim + kvh;
      for (let i = 0; i < hd; i++) w[u] += q[h * hd + i] * kPool[r + i];
      w[u] /= Math.sqrt(hd);
    }
    softmax(w);
    for (let u = 0; u <= pos; u++) {
      const r = physicalRow(table, u, blockSize) * kvDim + kvh;
      for (let i = 0; i < hd; i++) out[h * hd + i] += w[u] * vPool[r + i];
    }
  }
  return out;
}
// #endregion paged

// #region rejection
/**
 * Speculative sampling's rule for one drafted token `d` drawn from the draft's q (Leviathan
 * et al. 2023, Algorithm 1): keep it with probability min(1, p(d) / q(d)); otherwise draw a
 * replacement from the residual max(0, p − q), renormalised. `u` gives uniform draws in [0, 1).
 */
export function acceptOrResample(
  p: Float64Array, // (vocab_size) the target's probabilities
  q: Float64Array, // (vocab_size) the draft's probabilities
  d: number,
  u: () => number,
): { accepted: boolean; token: number } {
  if (p[d] >= q[d] || u() < p[d] / q[d]) return { accepted: true, token: d };
  const residual = p.map((pi, i) => Math.max(0, pi - q[i])); // (vocab_size), unnormalised
  const target = u() * residual.reduce((a, b) => a + b, 0);
  let cum = 0;
  for (let i = 0; i < residual.length; i++) {
    cum += residual[i];
    if (residual[i] > 0 && target < cum) return { accepted: false, token: i };
  }
  return { accepted: false, token: residual.findLastIndex((r) => r > 0) }; // rounding
}

/**
 * The exact distribution of the token the rule emits, over every draft d ~ q:
 * P(x) = q(x) · min(1, p(x) / q(x)) + P(reject) · residual(x) / Σ residual.
 */
export function emittedDistribution(p: Float64Array, q: Float64Array): Float64Array {
  const kept = p.map((pi, i) => Math.min(q[i], pi)); // q(x) · min(1, p(x) / q(x))
  const pReject = 1 - kept.reduce((a, b) => a + b, 0);
  const residual = p.map((pi, i) => Math.max(0, pi - q[i]));
  const total = residual.reduce((a, b) => a + b, 0);
  return kept.map((k, i) => k + (total > 0 ? pReject * residual[i] / total : 0));
}
// #endregion rejection

const argmax = (v: ArrayLike<number>) => {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
};

/** `0..4` for several positions, `5` for one. */
const span = (pos: number[]) => pos.length > 1 ? `${pos[0]}..${pos.at(-1)}` : `${pos[0]}`;

/** The greedy continuation of `prompt` by the reference alone: ids and each step's logits. */
function greedyAlone(m: GuideModel, prompt: number[], n: number) {
  const ref = createReference(m.config, m.weights);
  const logits: Float32Array[] = [ref.forward(prompt, 0).slice()]; // n × (vocab_size)
  const ids: number[] = [];
  for (let s = 0; s < n; s++) {
    ids.push(argmax(logits[s]));
    if (s + 1 < n) logits.push(ref.forward([ids[s]], prompt.length + s).slice());
  }
  return { ids, logits };
}

/** A block table padded with the null block to `width` entries (the server's layout). */
const padded = (blocks: readonly number[], width: number) => [
  ...blocks,
  ...new Array(width - blocks.length).fill(NULL_BLOCK),
];

/** One layer's K or V pool of a batched forward, as a view of its arena. */
function pool(b: CompiledBatch, name: string): Float32Array {
  const buf = findBuffer(b.plan, "decode", name);
  return new Float32Array(b.memory.buffer, buf.offset, buf.bytes / 4); // (rows, kv_dim)
}

function whyBatch(model: GuideModel): void {
  let params = 0;
  for (const t of model.weights.values()) params += t.data.length;
  const bytes = params * 4;
  console.log(`${model.name}: ${int(params)} weights, ${int(bytes)} bytes in f32`);
  console.log("weight bytes read per generated token when one step decodes B sequences:");
  table([
    ["B", model.name, "Llama-3-8B in Q8_0"],
    ...[1, 4, 16, 64].map((b) => [b, `${int(bytes / b)} B`, `${fixed(8.53 / b, 2)} GB`]),
  ]);
}

const BS = 4, MAX_ROWS = 32, MAX_BLOCKS = 8; // block size, token budget, table columns

/** Three sequences through 8 batched steps; returns the batch and what it holds. */
function oneStep(model: GuideModel) {
  const c = model.config, tok = model.tokenizer, V = c.vocab_size;
  const layout = { maxSeqs: 3, maxRows: MAX_ROWS, blockSize: BS, numBlocks: 24 };
  const batch = compileBatch(c, model.weights, { ...layout, maxBlocksPerSeq: MAX_BLOCKS });
  const prompts = ["Once upon a time", "Tom had a red ball", "The sun"].map((t) => tok.encode(t));
  const names = ["A", "B", "C"];
  const tables = [[3, 9, 1, 6], [7, 2, 11, 5], [4, 10, 8]]; // scattered on purpose
  tables.forEach((t, s) =>
    batch.setSequence(s, padded(t, MAX_BLOCKS), MAX_BLOCKS * BS, c.context_length)
  );
  const steps = 8;
  const seqs = prompts.map((p) => [...p]), computed = [0, 0, 0];
  const got: Float32Array[][] = [[], [], []]; // per sequence, steps × (vocab_size)
  const inputs: Rows[] = [];
  for (let st = 0; st < steps; st++) {
    const inp = stepRows(seqs, computed);
    inputs.push(inp);
    const logits = batch.step(inp); // (3, vocab_size): one row per sequence
    seqs.forEach((ids, s) => {
      got[s].push(row(logits, s, V).slice());
      computed[s] = ids.length;
      ids.push(argmax(row(logits, s, V)));
    });
    if (st >= 2) continue;
    const where = names.map((n, s) =>
      `${n} ${span([...inp.positions].filter((_, r) => inp.seqs[r] === s))}`
    );
    console.log(`step ${st + 1}: ${inp.tokens.length} rows; positions ${where.join(", ")}`);
    console.log(`  tokens     [${[...inp.tokens].join(", ")}]`);
    console.log(`  positions  [${[...inp.positions].join(", ")}]`);
    console.log(`  seqs       [${[...inp.seqs].join(", ")}]`);
    console.log(`  outRows    [${[...inp.outRows].join(", ")}] -> logits ${shape(3, V)}`);
  }
  console.log(`steps 3..${steps}: 3 rows each, one per sequence`);
  seqs.forEach((ids, s) => console.log(`${names[s]}: ${show(tok.decode(ids))}`));
  const alone = prompts.map((p) => greedyAlone(model, p, steps).logits); // steps × (vocab_size)
  let worst = 0;
  for (let s = 0; s < 3; s++) {
    for (let st = 0; st < steps; st++) {
      worst = Math.max(worst, maxAbsDiff(got[s][st], alone[s][st]));
    }
  }
  check(
    "every sequence's logits in the batched steps equal its logits run alone",
    worst < 1e-5,
    `the reference, one sequence at a time; 3 sequences × ${steps} steps, max |diff| ${sci(worst)}`,
  );
  // The same steps on the WASM kernels that `gollm serve` runs by default.
  const wasm = compileBatch(c, model.weights, {
    ...layout,
    maxBlocksPerSeq: MAX_BLOCKS,
    backend: "wasm",
  });
  tables.forEach((t, s) =>
    wasm.setSequence(s, padded(t, MAX_BLOCKS), MAX_BLOCKS * BS, c.context_length)
  );
  let wasmWorst = 0;
  inputs.forEach((inp, st) => {
    const logits = wasm.step(inp); // (3, vocab_size)
    for (let s = 0; s < 3; s++) {
      wasmWorst = Math.max(wasmWorst, maxAbsDiff(row(logits, s, V), alone[s][st]));
    }
  });
  check(
    "and on the WASM kernels of gollm serve",
    wasmWorst < 1e-5,
    `the same ${steps} steps, max |diff| ${sci(wasmWorst)}`,
  );
  // Control: C's next row in A's sequence slot (it reads A's cache), then A's row again.
  const c0 = seqs[2].length - 1, a0 = seqs[0].length - 2;
  const wrong = batch.step({ tokens: [seqs[2][c0]], positions: [c0], seqs: [0], outRows: [0] });
  const d = maxAbsDiff(wrong, greedyAlone(model, prompts[2], steps + 1).logits[steps]);
  batch.step({ tokens: [seqs[0][a0]], positions: [a0], seqs: [0], outRows: [0] });
  control("C's next row given A's sequence slot", d > 1e-3, `max |diff| ${fixed(d, 2)}`);
  return { batch, prompts, names, tables, seqs };
}

/** Decode steps of 1, 4 and 16 rows of the default model, on the server's WASM kernels. */
function timeSteps(ckpt: Checkpoint): void {
  const layout = { maxSeqs: 16, maxRows: 16, blockSize: 16, numBlocks: 33, maxBlocksPerSeq: 2 };
  const wb = compileBatch(ckpt.config, ckpt.weights, { ...layout, backend: "wasm" });
  for (let s = 0; s < 16; s++) wb.setSequence(s, [1 + 2 * s, 2 + 2 * s], 32, 32);
  for (const n of [1, 4, 16]) {
    const seqs = Array.from({ length: n }, (_, s) => s); // one decode row per sequence
    const inp = { tokens: seqs.map(() => 1), positions: seqs.map(() => 20), seqs, outRows: seqs };
    for (let i = 0; i < 10; i++) wb.step(inp); // warm up
    const t0 = performance.now();
    let runs = 0;
    while (performance.now() - t0 < 300) wb.step(inp), runs++;
    const ms = (performance.now() - t0) / runs;
    measured(
      `models/default, steps of ${n} decode rows`,
      `${fixed(ms, 2)} ms per step, ${int((n * 1000) / ms)} tokens/s`,
    );
  }
}

/** The block tables of the three sequences, checked against the engine's pools. */
function pages(model: GuideModel, run: ReturnType<typeof oneStep>): void {
  const c = model.config, kvDim = c.n_kv_heads * c.head_dim;
  const { batch, names, tables, seqs } = run;
  names.forEach((n, s) => {
    console.log(`${n}: positions 0..${seqs[s].length - 2}, block table [${tables[s].join(", ")}]`);
  });
  const p = seqs[0].length - 2, b = Math.floor(p / BS);
  const at = physicalRow(tables[0], p, BS);
  console.log(
    `A's position ${p}: table[${p} / ${BS} = ${b}] = block ${tables[0][b]}, offset ${p % BS} ` +
      `-> pool row ${tables[0][b]} × ${BS} + ${p % BS} = ${at}`,
  );
  const owner = (blk: number) => names[tables.findIndex((t) => t.includes(blk))] ?? ".";
  const ids = Array.from({ length: 24 }, (_, i) => i);
  console.log(`the pool: 24 blocks × ${BS} rows × kv_dim ${kvDim}, per layer, K and V`);
  console.log(`  block  ${ids.map((i) => String(i).padStart(2)).join(" ")}`);
  console.log(`  owner  ${ids.map((i) => owner(i).padStart(2)).join(" ")}`);
  const traces = seqs.map((ids) => {
    const t = new Trace();
    createReference(c, model.weights, { trace: t.record }).forward(ids.slice(0, -1), 0);
    return t;
  });
  let kWorst = 0, attnWorst = 0;
  for (let l = 0; l < c.n_layers; l++) {
    const K = pool(batch, `kv.l${l}.k`), V = pool(batch, `kv.l${l}.v`);
    seqs.forEach((ids, s) => {
      const last = ids.length - 2; // the last position whose K/V the pools hold
      for (let u = 0; u <= last; u++) {
        const r = physicalRow(tables[s], u, BS) * kvDim;
        kWorst = Math.max(
          kWorst,
          maxAbsDiff(K.subarray(r, r + kvDim), traces[s].get("Kcur", l, u)),
        );
      }
      const o = pagedAttention(c, traces[s].get("Qcur", l, last), K, V, tables[s], last, BS);
      attnWorst = Math.max(attnWorst, maxAbsDiff(o, traces[s].get("kqv_out", l, last)));
    });
  }
  check(
    "each position's key is in the engine's pool where our page walk finds it",
    kWorst < 1e-5,
    `the reference's Kcur; ${c.n_layers} layers, every position of A, B, C, max |diff| ${
      sci(kWorst)
    }`,
  );
  check(
    "our paged attention over the engine's pools equals the reference's attention",
    attnWorst < 1e-5,
    `kqv_out at each sequence's last position, every layer, max |diff| ${sci(attnWorst)}`,
  );
  const last = seqs[1].length - 2, flat = [1, 2, 3, 4, 5, 6, 7, 8]; // B without its table
  const K0 = pool(batch, "kv.l0.k"), V0 = pool(batch, "kv.l0.v");
  const o = pagedAttention(c, traces[1].get("Qcur", 0, last), K0, V0, flat, last, BS);
  const d = maxAbsDiff(o, traces[1].get("kqv_out", 0, last));
  control("reading B as if its blocks were 1, 2, 3, ...", d > 1e-3, `max |diff| ${fixed(d, 3)}`);
}

/** Two prompts with a common prefix through the server's block pool. */
function prefixCaching(model: GuideModel): void {
  const c = model.config, tok = model.tokenizer;
  const layout = { maxSeqs: 2, maxRows: MAX_ROWS, blockSize: BS, numBlocks: 24 };
  const pb = compileBatch(c, model.weights, { ...layout, maxBlocksPerSeq: MAX_BLOCKS });
  const blocks = new BlockManager({ numBlocks: 24, blockSize: BS });
  const system = "Once upon a time, there was a little girl named Lily.";
  const p1 = tok.encode(`${system} She liked cats.`);
  const p2 = tok.encode(`${system} She saw a big dog.`);
  let common = 0;
  while (p1[common] === p2[common]) common++;
  console.log(
    `prompt 1: ${p1.length} tokens, prompt 2: ${p2.length} tokens; the first ${common} equal`,
  );
  const full = Array.from(
    { length: Math.floor(common / BS) },
    (_, b) => p1.slice(b * BS, (b + 1) * BS),
  );
  console.log(
    `their common full blocks: ${
      full.map((ids) => `[${ids.map((id) => tok.tokenPiece(id)).join(" ")}]`).join(" ")
    }`,
  );
  /** Prefills `ids` from position `from` over a table; returns the last row's logits. */
  const prefill = (slot: number, table: readonly number[], ids: number[], from: number) => {
    pb.setSequence(slot, padded(table, MAX_BLOCKS), MAX_BLOCKS * BS, c.context_length);
    const seqs = [[], []] as number[][], computed = [0, 0];
    seqs[slot] = ids, computed[slot] = from;
    const inp = stepRows(seqs, computed);
    const rows = { ...inp, outRows: [inp.outRows[slot]] }; // the other slot has no rows
    return pb.step(rows).slice(); // (vocab_size)
  };
  const a1 = blocks.allocatePrompt(1, p1)!;
  prefill(0, blocks.table(1), p1, a1.cachedTokens);
  blocks.commit(1, p1, p1.length); // its full blocks enter the cache under their hashes
  console.log(
    `request 1: ${a1.cachedTokens} tokens from the cache, ${p1.length} rows of prefill; ` +
      `table [${blocks.table(1).join(", ")}]`,
  );
  const a2 = blocks.allocatePrompt(2, p2)!;
  const warm = prefill(1, blocks.table(2), p2, a2.cachedTokens);
  console.log(
    `request 2: ${a2.cachedTokens} tokens from the cache, ${p2.length - a2.cachedTokens} rows ` +
      `of prefill; table [${blocks.table(2).join(", ")}]`,
  );
  const st = blocks.stats;
  console.log(
    `BlockManager stats: ${st.hitTokens} of ${st.queriedTokens} prompt tokens looked up hit ` +
      `the cache; ${blocks.cachedBlocks} blocks cached`,
  );
  const hits = a2.cachedTokens / BS;
  check(
    "request 2 maps request 1's blocks for the common prefix",
    hits > 0 && blocks.table(2).slice(0, hits).join() === blocks.table(1).slice(0, hits).join(),
    `${hits} full blocks of ${BS} tokens; the common tokens after them (${common - hits * BS}) ` +
      `are in a block that is not full, and are computed again`,
  );
  const cold = createReference(c, model.weights).forward(p2, 0);
  const d = maxAbsDiff(warm, cold);
  check(
    "request 2's logits equal a cold prefill of the whole prompt",
    d < 1e-5,
    `the reference on all ${p2.length} tokens, max |diff| ${sci(d)}`,
  );
  const used = new Set([NULL_BLOCK, ...blocks.table(1), ...blocks.table(2)]);
  const never = Array.from({ length: 24 }, (_, b) => b).filter((b) => !used.has(b)).reverse();
  const fresh = never.slice(0, hits).concat(blocks.table(2).slice(hits)); // never written
  const bad = prefill(1, fresh, p2, a2.cachedTokens);
  const dc = maxAbsDiff(bad, cold);
  control(
    "skipping the prefix's rows over blocks that do not hold it",
    dc > 1e-3,
    `max |diff| ${fixed(dc, 2)}`,
  );
}

/** Five requests through the server's scheduler, with every step's rows recorded. */
async function continuousBatching(model: GuideModel): Promise<void> {
  const c = model.config, tok = model.tokenizer;
  const layout = { maxSeqs: 3, maxRows: 8, blockSize: BS, numBlocks: 40, maxBlocksPerSeq: 16 };
  const cb = compileBatch(c, model.weights, layout);
  const letters = "ABCDE", inSlot = ["", "", ""], log: string[][] = [];
  let next = 0;
  const recording: BatchForward = { // the batch, with each step's rows written down
    config: cb.config,
    maxRows: cb.maxRows,
    maxSeqs: cb.maxSeqs,
    blockSize: cb.blockSize,
    numBlocks: cb.numBlocks,
    maxBlocksPerSeq: cb.maxBlocksPerSeq,
    blockBytes: cb.blockBytes,
    setSequence: (s, b, r, w) => cb.setSequence(s, b, r, w),
    step(inp) {
      log.push(inSlot.map((_, s) => {
        const pos = Array.from(inp.positions).filter((_, r) => inp.seqs[r] === s);
        if (pos.length === 0) return "-";
        if (pos[0] === 0) inSlot[s] = letters[next++]; // a new request starts at position 0
        return `${inSlot[s]} ${span(pos)}`;
      }));
      return cb.step(inp);
    },
  };
  const sched = new Scheduler(recording, tok, [], { prefixCaching: false });
  const requests: [string, number][] = [
    ["Once upon a time", 6],
    ["Tom had a red ball", 10],
    ["The sun", 3],
    ["Lily and her mom", 5],
    ["One day, a big dog", 4],
  ];
  const outputs = await Promise.all(requests.map(async ([text, maxTokens]) => {
    const prompt = tok.encode(text), ids: number[] = [];
    const h = sched.submit({ prompt, maxTokens, sampling: { temperature: 0 }, ignoreEos: true });
    for await (const chunk of h) ids.push(...chunk.tokens.map((t) => t.id));
    return ids;
  }));
  requests.forEach(([text, n], i) => {
    const len = tok.encode(text).length;
    console.log(`${letters[i]}: ${len}-token prompt ${show(text)}, ${n} tokens`);
  });
  console.log("3 sequence slots, a budget of 8 rows per step; the positions each step ran:");
  table([["step", "slot 0", "slot 1", "slot 2"], ...log.map((l, i) => [i + 1, ...l])]);
  const same = requests.every(([text, n], i) =>
    greedyAlone(model, tok.encode(text), n).ids.join() === outputs[i].join()
  );
  const st = sched.stats;
  check(
    "each request's greedy tokens equal its prompt decoded alone",
    same,
    `the reference; 5 requests in ${st.steps} steps of ${st.rows} rows in all`,
  );
}

/** The server's scheduler with n-gram drafts: verify rows inside its batched steps. */
async function serverSpeculation(model: GuideModel): Promise<void> {
  const c = model.config, tok = model.tokenizer;
  const layout = { maxSeqs: 2, maxRows: 16, blockSize: 16, numBlocks: 33, maxBlocksPerSeq: 16 };
  const b = compileBatch(c, model.weights, layout);
  const sched = new Scheduler(b, tok, [], {
    speculative: { proposers: new ServerNgram(1, 3), maxDraft: 4 },
  });
  const prompts = ["Once upon a time", "Tom had a red ball"].map((t) => tok.encode(t));
  const outputs = await Promise.all(prompts.map(async (prompt) => {
    const ids: number[] = [];
    const h = sched.submit({
      prompt,
      maxTokens: 200,
      sampling: { temperature: 0 },
      ignoreEos: true,
    });
    for await (const chunk of h) ids.push(...chunk.tokens.map((t) => t.id));
    return ids;
  }));
  const st = sched.stats;
  const rate = fixed((100 * st.acceptedTokens) / st.draftedTokens, 1);
  console.log(
    `the server's scheduler, 2 requests × 200 tokens, n-gram drafts verified as extra rows: ` +
      `${st.steps} steps for 400 tokens; drafted ${st.draftedTokens}, accepted ${st.acceptedTokens} (${rate} %)`,
  );
  const same = prompts.every((p, i) => greedyAlone(model, p, 200).ids.join() === outputs[i].join());
  check(
    "in the server's batched steps too, the greedy tokens are the plain ones",
    same,
    "the reference, each request alone",
  );
}

/** Greedy generation, plain and with a draft: ids, stats and wall time. */
async function generate(m: Model, prompt: string, maxTokens: number, o: GenerateOptions = {}) {
  let stats: GenerateStats | null = null;
  const t0 = performance.now();
  const opts = { maxTokens, temperature: 0, onStats: (s: GenerateStats) => stats = s, ...o };
  let text = "";
  for await (const piece of m.generate(prompt, opts)) text += piece;
  return { stats: stats!, text, ms: performance.now() - t0 };
}

async function speculative(model: GuideModel, target: Model, draft: Model): Promise<void> {
  const m = createModel(model.config, model.weights, model.tokenizer, { backend: "jit" });
  const plain = await generate(m, "Once upon a time", 200);
  const ngram = await generate(m, "Once upon a time", 200, {
    draft: new NgramProposer({ ngramMax: 3 }),
    draftMax: 4,
  });
  const s = ngram.stats.speculative!;
  console.log(`${model.name}, greedy, 200 tokens; n-gram proposer (prompt lookup, 1..3 tokens):`);
  console.log(`  ${show(plain.text.slice(-120))}`);
  console.log(
    `  drafted ${s.drafted}, accepted ${s.accepted} (${fixed(100 * s.acceptanceRate, 1)} %); ` +
      `${s.steps} target steps for 200 tokens (${fixed(s.tokensPerStep, 2)} per step)`,
  );
  check(
    "with n-gram drafts, the greedy tokens are the plain ones",
    plain.stats.tokens.join() === ngram.stats.tokens.join(),
    `${plain.stats.tokens.length} tokens`,
  );
  await serverSpeculation(model);
  const prompt = "Fellow-Citizens of the Senate and House of Representatives:";
  const tc = target.config, dc = draft.config;
  const p0 = await generate(target, prompt, 64), p1 = await generate(target, prompt, 64, { draft });
  const t = p1.stats.speculative!;
  console.log(
    `models/default (${tc.n_layers} layers, dim ${tc.dim}) drafted for by models/draft ` +
      `(${dc.n_layers} layers, dim ${dc.dim}), greedy, 64 tokens:`,
  );
  console.log(`  ${show(prompt + p0.text.slice(0, 80))}...`);
  console.log(
    `  drafted ${t.drafted}, accepted ${t.accepted} (${fixed(100 * t.acceptanceRate, 1)} %); ` +
      `${t.steps} target steps for 64 tokens (${fixed(t.tokensPerStep, 2)} per step)`,
  );
  check(
    "with a draft model, the greedy tokens are the plain ones",
    p0.stats.tokens.join() === p1.stats.tokens.join(),
    `${p0.stats.tokens.length} tokens`,
  );
  measured("64 tokens, plain decoding", `${fixed(p0.ms, 0)} ms`);
  measured("64 tokens, with the draft model", `${fixed(p1.ms, 0)} ms`);
  const ms = (f: () => void) => { // best of 5 runs of 10 calls
    let best = Infinity;
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) f();
      best = Math.min(best, (performance.now() - t0) / 10);
    }
    return best;
  };
  const five = p0.stats.tokens.slice(0, 5), at = 40;
  const one = ms(() => target.forward(five.slice(0, 1), at));
  const verify = ms(() => target.forwardAll(five, at)) / one;
  const drafting = ms(() => draft.forward(five.slice(0, 1), at)) / one;
  measured("a target step of 5 rows (1 + 4 drafts)", `${fixed(verify, 2)}x a one-row step`);
  measured("a draft-model step", `${fixed(drafting, 2)}x a target step`);
}

function rejection(target: Model, draft: Model): void {
  const tok = target.tokenizer!, V = target.config.vocab_size;
  const context = "Fellow-Citizens of the Senate and House of Representatives: The";
  const ids = tok.encode(context);
  const logits = target.forward(ids); // (vocab_size)
  const p = Float64Array.from(logits), q = Float64Array.from(draft.forward(ids));
  softmax(p), softmax(q); // temperature 1
  const byP = [...p.keys()].sort((a, b) => p[b] - p[a]);
  const byQ = [...q.keys()].sort((a, b) => q[b] - q[a]);
  const shown = [...new Set([...byP.slice(0, 4), ...byQ.slice(0, 4)])];
  console.log(`after ${show(context)}: target p, draft q over ${V} ids`);
  table([
    ["token", "p", "q", "kept if drafted", "max(0, p - q)"],
    ...shown.map((i) => [
      show(tok.tokenPiece(i)),
      fixed(p[i]),
      fixed(q[i]),
      fixed(Math.min(1, p[i] / q[i])),
      fixed(Math.max(0, p[i] - q[i])),
    ]),
  ]);
  const keep = p.reduce((a, pi, i) => a + Math.min(pi, q[i]), 0);
  console.log(`P(a draft is kept) = Σ min(p, q) = ${fixed(keep)}`);
  const e = maxAbsDiff(emittedDistribution(p, q), p);
  check(
    "the rule emits tokens distributed exactly as p",
    e < 1e-12,
    `all ${V} ids, max |P(x) - p(x)| ${sci(e)}`,
  );
  const wrong = maxAbsDiff(q, p);
  control(
    "keeping every draft (the output is then distributed as q)",
    wrong > 1e-3,
    `max |q(x) - p(x)| ${fixed(wrong)}`,
  );
  // Ours against verifyDraft, trial by trial, both given the same uniform draws.
  const rows = new Float32Array(2 * V); // (2, vocab_size): the draft's row, then a bonus row
  rows.set(logits, 0);
  const qDist = { ids: Int32Array.from(q.keys()), probs: q };
  const sampler = new Sampler({ temperature: 1, seed: 1 });
  const draws = new Rng(11), uniforms = new Rng(12), trials = 2000;
  let agree = 0, kept = 0;
  for (let i = 0; i < trials; i++) {
    let x = draws.nextFloat(), d = 0; // d ~ q
    while (d < V - 1 && (x -= q[d]) >= 0) d++;
    const us = [uniforms.nextFloat(), uniforms.nextFloat()];
    let a = 0, b = 0;
    const scripted = {
      distribution: sampler.distribution.bind(sampler),
      sample: sampler.sample.bind(sampler),
      random: () => us[a++],
    };
    const theirs = verifyDraft(rows, [d], [qDist], scripted).tokens[0];
    const ours = acceptOrResample(p, q, d, () => us[b++]);
    if (ours.token === theirs) agree++;
    if (ours.accepted) kept++;
  }
  check(
    "our rule picks verifyDraft's token in every trial",
    agree === trials,
    `${agree} of ${trials} drafts d ~ q, the same uniform draws; ${kept} kept ` +
      `(${fixed((100 * kept) / trials, 1)} %; expected ${fixed(100 * keep, 1)} %)`,
  );
}

async function main() {
  section("why serve many sequences at once");
  const model = await loadGuideModel();
  whyBatch(model);

  section("one step, rows of three sequences");
  const run = oneStep(model);
  const big = await loadCheckpoint(`${ROOT}models/default`);
  timeSteps(big);

  section("the block table: a page table for the KV cache");
  pages(model, run);

  section("prefix caching: blocks shared by content");
  prefixCaching(model);

  section("continuous batching");
  await continuousBatching(model);

  section("speculative decoding");
  const small = await loadCheckpoint(`${ROOT}models/draft`);
  const target = createModel(big.config, big.weights, big.tokenizer, { backend: "jit" });
  const draft = createModel(small.config, small.weights, small.tokenizer, { backend: "jit" });
  await speculative(model, target, draft);

  section("the rejection-sampling rule");
  rejection(target, draft);
}

if (import.meta.main) await main();
