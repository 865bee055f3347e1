/**
 * The memory planner: gives every buffer of the decode and prefill graphs a byte offset in
 * ONE arena (a `WebAssembly.Memory`, so a WASM backend can run on the same plan).
 *
 * Layout: `[RoPE inv_freq][KV rings: layer 0 K, layer 0 V, layer 1 K, ...][activations]`.
 * Nothing is sized by `context_length`: the KV rings by `kvCapacity`, the RoPE constants by
 * `head_dim / 2`, the activations by the step's rows.
 * The activation region is shared by the decode graph and the prefill graph (they never
 * run at the same time); inside each graph, buffers whose lifetimes (first write .. last
 * read, in node order) do not overlap reuse the same bytes (greedy first-fit, like the
 * "shared objects" strategy of TFLite's memory planner).
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { ForwardOptions } from "../core/forward.ts";
import { resolveKvCapacity } from "../core/forward.ts";
import { expectedShapes } from "../core/weights.ts";
import { type BufferKind, buildGraph, type Graph } from "./graph.ts";

/** Byte alignment of every buffer (one cache line; also 16-byte aligned for WASM SIMD). */
export const ARENA_ALIGN = 64;

/** Default tokens per prefill chunk (DESIGN.md / ForwardOptions). */
export const DEFAULT_PREFILL_CHUNK = 32;

/** One buffer with its place in the arena. */
export interface PlannedBuffer {
  /** Graph-local name (`x`, `l3.q`, `kv.l3.k`, `rope.inv_freq`). */
  name: string;
  /** `decode` or `prefill` for activations; `shared` for KV rings and the RoPE inv_freq. */
  graph: "decode" | "prefill" | "shared";
  /** Buffer kind from the graph. */
  kind: BufferKind;
  /** Shape in f32 elements. */
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
}

/** The arena layout of one (config, kvCapacity, prefillChunk). */
export interface Plan {
  /** KV ring slots per layer. */
  kvCapacity: number;
  /** Tokens per prefill chunk (T of the prefill graph). */
  prefillChunk: number;
  /** Total arena size in bytes. */
  arenaBytes: number;
  /** Bytes of all KV rings: `2 · n_layers · kvCapacity · kv_dim · 4`. */
  kvBytes: number;
  /**
   * Bytes of the constant tables: the RoPE inverse frequencies (`head_dim / 2 · 4`, aligned
   * to {@linkcode ARENA_ALIGN}; 0 for gpt2). The per-step cos/sin are activations.
   */
  tableBytes: number;
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
  /** The prefill graph (rows = prefillChunk). */
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
    placed.push({ name, graph: which, kind: "activation", shape, offset: base + at, bytes, live });
    end = Math.max(end, at + align(bytes));
  }
  return { buffers: placed, bytes: end };
}

/**
 * Plans the arena for a config: the RoPE inverse frequencies, one K and one V ring per
 * layer, and the activations of the decode graph (1 token) and the prefill graph
 * (`prefillChunk` tokens), which share one region.
 *
 * @param config The model config.
 * @param options `kvCapacity` (default `context_length`), `prefillChunk` (default 32,
 *   clamped to `kvCapacity`), `weightsInArena` (default false: weights stay outside).
 * @returns The plan; all offsets in bytes.
 * @throws {RangeError} for a non-positive or non-integer `kvCapacity` or `prefillChunk`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { planArena } from "./plan.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * const p = planArena(c, { kvCapacity: 2048 });
 * assert.equal(p.kvBytes, 12 * 2 * 2048 * 256 * 4); // layers · K, V · slots · kv_dim · 4 bytes
 * assert.equal(p.tableBytes, 128); // RoPE inv_freq: head_dim / 2 = 32 f32
 * assert.equal(p.arenaBytes, p.tableBytes + p.kvBytes + p.activationBytes);
 * ```
 */
export function planArena(config: ModelConfig, options: PlanOptions = {}): Plan {
  const kvCapacity = resolveKvCapacity(config, options);
  const chunk = options.prefillChunk ?? DEFAULT_PREFILL_CHUNK;
  if (!Number.isInteger(chunk) || chunk <= 0) {
    throw new RangeError(`prefillChunk must be a positive integer, got ${chunk}`);
  }
  const prefillChunk = Math.min(chunk, kvCapacity);
  const decode = buildGraph(config, 1, kvCapacity);
  const prefill = buildGraph(config, prefillChunk, kvCapacity);

  const buffers: PlannedBuffer[] = [];
  let at = 0;
  const shared = (name: string) => {
    const b = decode.buffers.get(name)!;
    const bytes = elements(b.shape) * 4;
    buffers.push({
      name,
      graph: "shared",
      kind: b.kind,
      shape: b.shape,
      offset: at,
      bytes,
      live: [0, Infinity],
    });
    at += align(bytes);
    return align(bytes);
  };
  let tableBytes = 0;
  for (const b of decode.buffers.values()) if (b.kind === "table") tableBytes += shared(b.name);
  let kvBytes = 0;
  for (let l = 0; l < config.n_layers; l++) {
    kvBytes += shared(`kv.l${l}.k`);
    kvBytes += shared(`kv.l${l}.v`);
  }
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
    kvCapacity,
    prefillChunk,
    arenaBytes,
    weightsOffset,
    weightsBytes,
    weightOffsets,
    memoryBytes: options.weightsInArena ? weightsOffset + weightsBytes : arenaBytes,
    kvBytes,
    tableBytes,
    activationBytes,
    decodeBytes: d.bytes,
    prefillBytes: p.bytes,
    buffers,
    decode,
    prefill,
  };
}

/**
 * Finds a planned buffer: first among the graph's activations, then among the shared
 * buffers (KV rings, RoPE inverse frequencies).
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
