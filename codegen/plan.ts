/**
 * The memory planner: gives every buffer of the decode and prefill graphs a byte offset in
 * ONE arena (a `WebAssembly.Memory`, so a WASM backend can run on the same plan).
 *
 * Layout: `[RoPE inv_freq][step rows (int32)][sequences: block table, ring, window
 * (int32)][K/V pools: layer 0 K, layer 0 V, layer 1 K, ...][activations]`. Nothing is sized
 * by `context_length`: the K/V pools by `numBlocks · blockSize`, the RoPE constants by
 * `head_dim / 2`, the step and the activations by the step's rows.
 * The activation region is shared by the decode graph and the prefill graph (they never
 * run at the same time); inside each graph, buffers whose lifetimes (first write .. last
 * read, in node order) do not overlap reuse the same bytes (greedy first-fit, like the
 * "shared objects" strategy of TFLite's memory planner).
 *
 * {@linkcode planBatch} plans any batch layout (a server's many sequences);
 * {@linkcode planArena} plans the single-sequence layout of `generate` (one sequence whose
 * ring holds its window plus one step, core/single_sequence.ts).
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { BatchLayout, ForwardOptions } from "../core/forward.ts";
import {
  DEFAULT_BLOCK_SIZE,
  kvBlockBytes,
  resolveBatchLayout,
  resolveKvCapacity,
} from "../core/forward.ts";
import { singleSequenceBlocks } from "../core/single_sequence.ts";
import { expectedShapes } from "../core/weights.ts";
import { type BufferKind, buildGraph, type Graph } from "./graph.ts";

/** Byte alignment of every buffer (one cache line; also 16-byte aligned for WASM SIMD). */
export const ARENA_ALIGN = 64;

/**
 * Default tokens per prefill chunk of one sequence: the step's rows T (docs/DESIGN.md "A step,
 * the arena and the KV cache"; ForwardOptions). 128 rather than the server's step budget
 * (`DEFAULT_MAX_ROWS` of core/forward.ts): every chunk reads all the weights once, and the F16 matmul
 * converts each row block once per chunk, so a 256-token prompt ran 6-19 % faster in 128-row
 * chunks than in 32-row ones (g110M, wasm, 1 and 2 threads), for ~4 MB more arena and
 * 96 more KV slots.
 */
export const DEFAULT_PREFILL_CHUNK = 128;

/** One buffer with its place in the arena. */
export interface PlannedBuffer {
  /** Graph-local name (`x`, `l3.q`, `kv.l3.k`, `rope.inv_freq`, `step.positions`). */
  name: string;
  /** `decode` or `prefill` for activations; `shared` for everything else. */
  graph: "decode" | "prefill" | "shared";
  /** Buffer kind from the graph. */
  kind: BufferKind;
  /** Element type: `f32`, `i32` (step rows and sequence state) or `f16` (an f16 K/V pool). */
  dtype: "f32" | "i32" | "f16";
  /** Shape in elements. */
  shape: number[];
  /** Byte offset in the arena (multiple of {@linkcode ARENA_ALIGN}). */
  offset: number;
  /** Size in bytes (4 per element). */
  bytes: number;
  /**
   * Lifetime as node indices `[first, last]` of its graph (inclusive); shared buffers
   * live for the whole run (`[0, Infinity]`).
   */
  live: [number, number];
}

/**
 * Options of {@linkcode planArena}: the forward options plus `weightsInArena`, which the
 * WASM backend sets so that its kernels can address the weights (they get byte offsets in
 * the same memory, after the arena).
 */
export interface PlanOptions extends ForwardOptions {
  /** Place every weight the graphs use in the memory after the arena (default false). */
  weightsInArena?: boolean;
  /** Tokens per KV block (default 16). */
  blockSize?: number;
}

/** The arena layout of one (config, batch layout). */
export interface Plan {
  /** The batch layout: rows per step, sequences, block size, blocks. */
  layout: BatchLayout;
  /**
   * The single sequence's sliding window ({@linkcode planArena}'s `kvCapacity`), or, for
   * {@linkcode planBatch}, the most positions one sequence holds
   * (`maxBlocksPerSeq · blockSize`).
   */
  kvCapacity: number;
  /** Rows per step (T of the prefill graph) = `layout.maxRows`. */
  prefillChunk: number;
  /** Total arena size in bytes. */
  arenaBytes: number;
  /** Bytes of all K/V pools: `numBlocks · blockBytes`. */
  kvBytes: number;
  /** Bytes of one KV block over all layers, K and V (core/forward.ts `kvBlockBytes`). */
  blockBytes: number;
  /**
   * Bytes of the constant tables: the RoPE inverse frequencies (`head_dim / 2 · 4`, aligned
   * to {@linkcode ARENA_ALIGN}; 0 for gpt2). The per-step cos/sin are activations.
   */
  tableBytes: number;
  /** Bytes of the int32 step rows and sequence state (block table, ring, window). */
  stepBytes: number;
  /** Bytes of the activation region (max of the decode and prefill graphs' needs). */
  activationBytes: number;
  /** Activation bytes the decode graph needs. */
  decodeBytes: number;
  /** Activation bytes the prefill graph needs. */
  prefillBytes: number;
  /**
   * Byte offset of the weight region: `arenaBytes` rounded up to {@linkcode ARENA_ALIGN}
   * (weights follow the arena only with `weightsInArena`).
   */
  weightsOffset: number;
  /** Bytes of the weights placed in memory (0 unless `weightsInArena`). */
  weightsBytes: number;
  /** Byte offset of each placed weight by canonical name (empty unless `weightsInArena`). */
  weightOffsets: Map<string, number>;
  /** Bytes the memory needs: `arenaBytes`, or `weightsOffset + weightsBytes` with weights. */
  memoryBytes: number;
  /** Every buffer with its offset. */
  buffers: PlannedBuffer[];
  /** The decode graph (rows = 1). */
  decode: Graph;
  /** The prefill graph (rows = maxRows). */
  prefill: Graph;
}

const align = (n: number) => Math.ceil(n / ARENA_ALIGN) * ARENA_ALIGN;
const elements = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Plans one graph's activations from byte 0 of its region; returns buffers and region size. */
function planGraph(
  g: Graph,
  which: "decode" | "prefill",
  base: number,
): { buffers: PlannedBuffer[]; bytes: number } {
  const first = new Map<string, number>(), last = new Map<string, number>();
  g.nodes.forEach((n, i) => {
    for (const b of [...n.inputs, ...n.outputs]) {
      if (!b || g.buffers.get(b)!.kind !== "activation") continue;
      if (!first.has(b)) first.set(b, i);
      last.set(b, i);
    }
  });
  last.set(g.output, g.nodes.length); // the logits outlive the step
  const names = [...first.keys()].sort((a, b) =>
    first.get(a)! - first.get(b)! ||
    elements(g.buffers.get(b)!.shape) - elements(g.buffers.get(a)!.shape)
  );
  const placed: PlannedBuffer[] = [];
  let end = 0;
  for (const name of names) {
    const shape = g.buffers.get(name)!.shape;
    const bytes = elements(shape) * 4;
    const live: [number, number] = [first.get(name)!, last.get(name)!];
    // Regions (relative to the base) of buffers alive at the same time, by offset.
    const busy = placed
      .filter((p) => p.live[0] <= live[1] && live[0] <= p.live[1])
      .map((p) => [p.offset - base, p.offset - base + align(p.bytes)])
      .sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [s, e] of busy) {
      if (at + bytes <= s) break;
      at = Math.max(at, e);
    }
    placed.push({
      name,
      graph: which,
      kind: "activation",
      dtype: "f32",
      shape,
      offset: base + at,
      bytes,
      live,
    });
    end = Math.max(end, at + align(bytes));
  }
  return { buffers: placed, bytes: end };
}

/**
 * Plans the arena of a batch layout: the RoPE inverse frequencies, the step's int32 rows,
 * the sequences' block tables, one K and one V pool per layer, and the activations of the
 * decode graph (1 row) and the prefill graph (`maxRows` rows), which share one region.
 *
 * @param config The model config.
 * @param layout The batch layout (see core/forward.ts `resolveBatchLayout`).
 * @param options `weightsInArena` (default false: weights stay outside).
 * @returns The plan; all offsets in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { planBatch } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * const layout = resolveBatchLayout({ maxSeqs: 16, numBlocks: 2048, maxBlocksPerSeq: 128 });
 * const p = planBatch(c, layout);
 * assert.equal(p.blockBytes, 2 * 12 * 16 * 256 * 4); // K, V · layers · tokens · kv_dim · 4
 * assert.equal(p.kvBytes, 2048 * p.blockBytes); // 768 MiB: 32768 tokens over all sequences
 * ```
 */
export function planBatch(
  config: ModelConfig,
  layout: BatchLayout,
  options: { weightsInArena?: boolean; kvCapacity?: number } = {},
): Plan {
  const decode = buildGraph(config, 1, layout);
  const prefill = buildGraph(config, layout.maxRows, layout);

  const buffers: PlannedBuffer[] = [];
  let at = 0;
  const shared = (name: string) => {
    const b = decode.buffers.get(name)!;
    const bytes = elements(b.shape) * (b.dtype === "f16" ? 2 : 4);
    buffers.push({
      name,
      graph: "shared",
      kind: b.kind,
      dtype: b.dtype,
      shape: b.shape,
      offset: at,
      bytes,
      live: [0, Infinity],
    });
    at += align(bytes);
    return align(bytes);
  };
  const sum = (kinds: BufferKind[]) => {
    let bytes = 0;
    for (const b of decode.buffers.values()) if (kinds.includes(b.kind)) bytes += shared(b.name);
    return bytes;
  };
  const tableBytes = sum(["table"]);
  const stepBytes = sum(["step", "seqs"]);
  const kvBytes = sum(["kv"]);
  const base = at;
  const d = planGraph(decode, "decode", base);
  const p = planGraph(prefill, "prefill", base);
  buffers.push(...d.buffers, ...p.buffers);
  const activationBytes = Math.max(d.bytes, p.bytes);
  const arenaBytes = base + activationBytes;
  const weightsOffset = align(arenaBytes);
  const weightOffsets = new Map<string, number>();
  let weightsBytes = 0;
  if (options.weightsInArena) {
    const shapes = expectedShapes(config);
    for (const g of [decode, prefill]) {
      for (const n of g.nodes) {
        for (const w of n.weights) {
          if (weightOffsets.has(w)) continue;
          weightOffsets.set(w, weightsOffset + weightsBytes);
          weightsBytes += align(elements(shapes.get(w)!) * 4);
        }
      }
    }
  }
  return {
    layout,
    kvCapacity: options.kvCapacity ?? layout.maxBlocksPerSeq * layout.blockSize,
    prefillChunk: layout.maxRows,
    arenaBytes,
    weightsOffset,
    weightsBytes,
    weightOffsets,
    memoryBytes: options.weightsInArena ? weightsOffset + weightsBytes : arenaBytes,
    kvBytes,
    blockBytes: kvBlockBytes(config, layout.blockSize, layout),
    tableBytes,
    stepBytes,
    activationBytes,
    decodeBytes: d.bytes,
    prefillBytes: p.bytes,
    buffers,
    decode,
    prefill,
  };
}

/**
 * The batch layout of one sequence with sliding window `kvCapacity` (the single-sequence
 * adapter of `generate`, core/single_sequence.ts): `maxRows = min(prefillChunk,
 * kvCapacity)`, one sequence, and a ring of `ceil((kvCapacity + maxRows) / blockSize)`
 * blocks.
 *
 * @param config The model config.
 * @param options `kvCapacity` (default `context_length`), `prefillChunk` (default 32),
 *   `blockSize` (default 16).
 * @returns The layout.
 * @throws {RangeError} for a non-positive or non-integer option.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { singleSequenceLayout } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * const l = singleSequenceLayout(c, { kvCapacity: 2048 });
 * assert.equal(l.numBlocks, 136); // ceil((2048 + 128) / 16)
 * ```
 */
export function singleSequenceLayout(
  config: ModelConfig,
  options: PlanOptions = {},
): BatchLayout {
  const kvCapacity = resolveKvCapacity(config, options);
  const chunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
  if (!Number.isInteger(chunk) || chunk <= 0) {
    throw new RangeError(`prefillChunk must be a positive integer, got ${chunk}`);
  }
  const maxRows = Math.min(chunk, kvCapacity);
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  const numBlocks = singleSequenceBlocks(kvCapacity, maxRows, blockSize);
  return resolveBatchLayout({
    maxRows,
    maxSeqs: 1,
    blockSize,
    numBlocks,
    contextSize: kvCapacity,
    ...(options.cacheTypeK ? { cacheTypeK: options.cacheTypeK } : {}),
    ...(options.cacheTypeV ? { cacheTypeV: options.cacheTypeV } : {}),
  });
}

/**
 * Plans the arena of one sequence with sliding window `kvCapacity` (what `generate`,
 * `chat`, `logits` and `gollm inspect` use): {@linkcode planBatch} of
 * {@linkcode singleSequenceLayout}.
 *
 * @param config The model config.
 * @param options `kvCapacity` (default `context_length`), `prefillChunk` (default 32,
 *   clamped to `kvCapacity`), `blockSize` (default 16), `weightsInArena` (default false).
 * @returns The plan; all offsets in bytes.
 * @throws {RangeError} for a non-positive or non-integer `kvCapacity`, `prefillChunk` or
 *   `blockSize`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { planArena } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * const p = planArena(c, { kvCapacity: 2048 });
 * // layers · K, V · ring of 2176 tokens (window 2048 + one 128-row step) · kv_dim · 4 bytes
 * assert.equal(p.kvBytes, 12 * 2 * 2176 * 256 * 4);
 * assert.equal(p.tableBytes, 128); // RoPE inv_freq: head_dim / 2 = 32 f32
 * assert.equal(p.arenaBytes, p.tableBytes + p.stepBytes + p.kvBytes + p.activationBytes);
 * ```
 */
export function planArena(config: ModelConfig, options: PlanOptions = {}): Plan {
  const layout = singleSequenceLayout(config, options);
  return planBatch(config, layout, {
    weightsInArena: options.weightsInArena,
    kvCapacity: resolveKvCapacity(config, options),
  });
}

/**
 * Finds a planned buffer: first among the graph's activations, then among the shared
 * buffers (K/V pools, step rows, sequence state, RoPE inverse frequencies).
 *
 * @param plan The plan.
 * @param graph `decode` or `prefill`.
 * @param name Graph-local buffer name (`x`, `l3.q`, `kv.l3.k`, `rope.inv_freq`).
 * @returns The buffer with its byte offset.
 * @throws {Error} when no such buffer exists (a bug in the caller).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { findBuffer, planArena } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const plan = planArena(c);
 * assert.deepEqual(findBuffer(plan, "decode", "logits").shape, [1, 96]); // (rows, vocab_size)
 * assert.equal(findBuffer(plan, "prefill", "kv.l1.k").graph, "shared");
 * ```
 */
export function findBuffer(
  plan: Plan,
  graph: "decode" | "prefill",
  name: string,
): PlannedBuffer {
  const b = plan.buffers.find((b) => b.name === name && b.graph === graph) ??
    plan.buffers.find((b) => b.name === name && b.graph === "shared");
  if (!b) throw new Error(`plan has no buffer '${name}' in the ${graph} graph`);
  return b;
}
