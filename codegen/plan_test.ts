/**
 * The memory planner (codegen/plan.ts): liveness, no two live buffers on the same bytes,
 * reuse of dead ones, alignment, byte totals, nothing sized by context_length, the weight
 * region of the WASM backend, and findBuffer().
 */
import assert from "node:assert/strict";
import { kvBlockBytes, resolveBatchLayout } from "../core/forward.ts";
import { randomWeights } from "../core/weights.ts";
import { emitKernels } from "./emit_js.ts";
import {
  ARENA_ALIGN,
  DEFAULT_PREFILL_CHUNK,
  findBuffer,
  planArena,
  planBatch,
  type PlannedBuffer,
} from "./plan.ts";
import { cfg, FORWARD_CASES, forwardCase } from "../tests/forward_cases.ts";

/** Asserts every buffer is aligned and in the arena, and no two live ones share bytes. */
function checkNoLiveOverlap(buffers: PlannedBuffer[], arenaBytes: number, what: string) {
  for (const b of buffers) {
    assert.ok(b.offset >= 0 && b.offset + b.bytes <= arenaBytes, `${what}: ${b.name} in arena`);
    assert.equal(b.offset % 64, 0, `${what}: ${b.name} aligned`);
  }
  for (let i = 0; i < buffers.length; i++) {
    for (let j = i + 1; j < buffers.length; j++) {
      const a = buffers[i], b = buffers[j];
      const sameTime = a.live[0] <= b.live[1] && b.live[0] <= a.live[1];
      const sameBytes = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      assert.ok(!(sameTime && sameBytes), `${what}: live buffers ${a.name} and ${b.name} overlap`);
    }
  }
}

Deno.test("planArena() never places two live buffers on the same bytes, and reuses dead ones", () => {
  for (const [name, c] of FORWARD_CASES) {
    const plan = planArena(c, { kvCapacity: 16, prefillChunk: 8 });
    const shared = plan.buffers.filter((b) => b.graph === "shared");
    for (const g of ["decode", "prefill"] as const) {
      const mine = plan.buffers.filter((b) => b.graph === g);
      checkNoLiveOverlap([...shared, ...mine], plan.arenaBytes, `${name} ${g}`);
      const total = mine.reduce((a, b) => a + b.bytes, 0);
      assert.ok(plan[`${g}Bytes`] < total, `${name} ${g}: dead buffers are reused`);
      // Every node's buffers are planned.
      const graph = plan[g];
      for (const n of graph.nodes) {
        for (const b of [...n.inputs, ...n.outputs].filter(Boolean)) {
          assert.ok(
            plan.buffers.some((p) => p.name === b && (p.graph === g || p.graph === "shared")),
            `${name}: ${b} planned`,
          );
        }
      }
    }
    const kvDim = c.n_kv_heads * c.head_dim;
    // One sequence's ring: window 16 + one 8-row step = 24 tokens, rounded up to 2 blocks.
    assert.equal(plan.kvBytes, 2 * c.n_layers * 32 * kvDim * 4);
    assert.equal(plan.arenaBytes >= plan.kvBytes + plan.activationBytes, true);
  }
});

Deno.test("planArena() places weights after the arena only with weightsInArena", () => {
  const c = forwardCase("llama GQA2 interleaved untied");
  const plain = planArena(c, { kvCapacity: 16 });
  assert.equal(plain.weightsBytes, 0);
  assert.equal(plain.memoryBytes, plain.arenaBytes);
  assert.equal(plain.weightOffsets.size, 0);
  const withW = planArena(c, { kvCapacity: 16, weightsInArena: true });
  assert.equal(withW.arenaBytes, plain.arenaBytes);
  // Untied llama: embeddings, 2 layers × (7 matrices + 2 norms), final norm, output.
  assert.equal(withW.weightOffsets.size, 1 + 2 * 9 + 2);
  const weights = randomWeights(c, 1);
  const spans = [...withW.weightOffsets].map(([name, off]) => {
    const t = weights.get(name)!;
    return [off, off + t.data.length * 4] as const;
  }).sort((a, b) => a[0] - b[0]);
  assert.ok(spans[0][0] >= withW.arenaBytes);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i][0] >= spans[i - 1][1]);
  assert.ok(spans[spans.length - 1][1] <= withW.memoryBytes);
  // The JS backend's emitted module does not depend on the WASM option.
  assert.equal(emitKernels(c, { kvCapacity: 16 }).includes("X."), false);
});

Deno.test("checkNoLiveOverlap() fails for two live buffers on the same bytes or an unaligned one", () => {
  // Negative control of the check above.
  const b = (name: string, offset: number, live: [number, number]): PlannedBuffer => ({
    name,
    graph: "decode",
    kind: "activation",
    dtype: "f32",
    shape: [16],
    offset,
    bytes: 64,
    live,
  });
  checkNoLiveOverlap([b("a", 0, [0, 2]), b("b", 0, [3, 4])], 128, "dead reused");
  assert.throws(
    () => checkNoLiveOverlap([b("a", 0, [0, 2]), b("b", 0, [2, 4])], 128, "t"),
    /overlap/,
  );
  assert.throws(() => checkNoLiveOverlap([b("a", 32, [0, 2])], 128, "t"), /aligned/);
  assert.throws(() => checkNoLiveOverlap([b("a", 128, [0, 2])], 128, "t"), /in arena/);
});

Deno.test("planArena() gives each activation the lifetime from its first writer to its last reader", () => {
  for (const [name, c] of FORWARD_CASES.slice(0, 6)) {
    const plan = planArena(c, { kvCapacity: 12, prefillChunk: 4 });
    for (const which of ["decode", "prefill"] as const) {
      const g = plan[which];
      for (const b of plan.buffers.filter((p) => p.graph === which)) {
        const touching = g.nodes.flatMap((n, i) =>
          [...n.inputs, ...n.outputs].includes(b.name) ? [i] : []
        );
        const last = b.name === g.output ? g.nodes.length : touching.at(-1); // logits outlive the step
        assert.deepEqual(b.live, [touching[0], last], `${name} ${which} ${b.name}`);
        assert.deepEqual(b.shape, g.buffers.get(b.name)!.shape);
        assert.equal(b.bytes, b.shape.reduce((a, d) => a * d, 4));
      }
    }
  }
});

Deno.test("planArena() byte totals: RoPE table, step rows, K/V pools, activations sharing one region", () => {
  const c = forwardCase("llama head_dim 6 GQA3 bias untied"); // head_dim 6, kv_dim 12
  const plan = planArena(c, { kvCapacity: 20, prefillChunk: 6 });
  const align = (n: number) => Math.ceil(n / ARENA_ALIGN) * ARENA_ALIGN;
  assert.equal(plan.tableBytes, align(3 * 4)); // (head_dim / 2) f32
  // A ring of window 20 + one 6-row step = 26 tokens: 2 blocks of 16.
  assert.deepEqual(plan.layout, {
    maxRows: 6,
    maxSeqs: 1,
    blockSize: 16,
    numBlocks: 2,
    maxBlocksPerSeq: 2,
    contextSize: 20, // the window: what picks longrope's factor set (core/rope.ts)
  });
  assert.equal(plan.kvBytes, 2 * 2 * align(32 * 12 * 4));
  assert.equal(plan.blockBytes, kvBlockBytes(c, 16));
  // int32: 4 step rows (6) and the counts (2), the block table (1, 2), ring (1), window (1)
  assert.equal(plan.stepBytes, 4 * align(6 * 4) + 4 * align(2 * 4));
  assert.equal(plan.activationBytes, Math.max(plan.decodeBytes, plan.prefillBytes));
  assert.equal(
    plan.arenaBytes,
    plan.tableBytes + plan.stepBytes + plan.kvBytes + plan.activationBytes,
  );
  // Layout: table, step rows, sequences, then pools in layer order, then the activations.
  const shared = plan.buffers.filter((b) => b.graph === "shared");
  assert.deepEqual(shared.map((b) => b.name), [
    "rope.inv_freq",
    "step.tokens",
    "step.positions",
    "step.seqs",
    "step.out_rows",
    "step.counts",
    "seq.block_table",
    "seq.ring",
    "seq.window",
    "kv.l0.k",
    "kv.l0.v",
    "kv.l1.k",
    "kv.l1.v",
  ]);
  const base = plan.tableBytes + plan.stepBytes + plan.kvBytes;
  for (const b of plan.buffers.filter((b) => b.graph !== "shared")) {
    assert.ok(b.offset >= base && b.offset + b.bytes <= plan.arenaBytes, b.name);
  }
  // The two graphs share the region: each starts at its base.
  for (const g of ["decode", "prefill"] as const) {
    assert.equal(Math.min(...plan.buffers.filter((b) => b.graph === g).map((b) => b.offset)), base);
  }
  // gpt2 has no RoPE table.
  assert.equal(planArena(forwardCase("gpt2 MHA tied")).tableBytes, 0);
});

Deno.test("planArena() sizes nothing by context_length", () => {
  const small = planArena(cfg("llama", { context_length: 64 }), { kvCapacity: 64 });
  const huge = planArena(cfg("llama", { context_length: 2 ** 31 - 1 }), { kvCapacity: 64 });
  assert.equal(huge.arenaBytes, small.arenaBytes);
  assert.deepEqual(
    huge.buffers.map((b) => [b.name, b.offset]),
    small.buffers.map((b) => [b.name, b.offset]),
  );
  // The default KV ring is the context length: then the ring, and only it, grows.
  const byDefault = planArena(cfg("llama", { context_length: 2 ** 20 }));
  assert.equal(byDefault.kvCapacity, 2 ** 20);
  assert.equal(byDefault.tableBytes, small.tableBytes);
});

Deno.test("planArena() clamps prefillChunk to kvCapacity and rejects bad options", () => {
  const c = forwardCase("llama MQA half");
  assert.equal(planArena(c).prefillChunk, Math.min(DEFAULT_PREFILL_CHUNK, c.context_length));
  assert.equal(
    planArena(c, { kvCapacity: 200 }).prefillChunk,
    Math.min(DEFAULT_PREFILL_CHUNK, 200),
  );
  assert.equal(planArena(c, { kvCapacity: 6 }).prefillChunk, 6);
  assert.equal(planArena(c, { kvCapacity: 6, prefillChunk: 4 }).prefill.rows, 4);
  assert.equal(planArena(c).decode.rows, 1);
  for (const bad of [0, -3, 2.5]) {
    assert.throws(
      () => planArena(c, { prefillChunk: bad }),
      /prefillChunk must be a positive integer/,
    );
    assert.throws(() => planArena(c, { kvCapacity: bad }), /kvCapacity must be a positive integer/);
  }
});

Deno.test("planBatch() sizes the K/V pools by numBlocks and nothing else by the sequences' lengths", () => {
  const c = forwardCase("gpt2 GQA2");
  const layout = (numBlocks: number) =>
    resolveBatchLayout({ maxRows: 8, maxSeqs: 4, numBlocks, maxBlocksPerSeq: 4 });
  const small = planBatch(c, layout(8)), big = planBatch(c, layout(24));
  assert.equal(small.kvBytes, 8 * small.blockBytes);
  assert.equal(big.kvBytes - small.kvBytes, 16 * kvBlockBytes(c, 16));
  assert.equal(big.arenaBytes - small.arenaBytes, big.kvBytes - small.kvBytes);
  assert.equal(small.kvCapacity, 4 * 16); // the most one sequence holds
  assert.deepEqual(findBuffer(small, "decode", "seq.block_table").shape, [4, 4]);
  checkNoLiveOverlap(
    small.buffers.filter((b) => b.graph !== "prefill"),
    small.arenaBytes,
    "planBatch decode",
  );
});

Deno.test("findBuffer() finds a graph's activations, then the shared buffers", () => {
  const plan = planArena(forwardCase("llama MQA half"), { kvCapacity: 8, prefillChunk: 4 });
  const d = findBuffer(plan, "decode", "logits"), p = findBuffer(plan, "prefill", "logits");
  assert.deepEqual([d.graph, d.shape, p.graph, p.shape], ["decode", [1, 97], "prefill", [4, 97]]);
  assert.equal(findBuffer(plan, "prefill", "kv.l1.k").graph, "shared");
  assert.equal(findBuffer(plan, "decode", "rope.inv_freq").offset, 0);
  assert.throws(() => findBuffer(plan, "decode", "kv.l9.k"), /plan has no buffer 'kv\.l9\.k'/);
});
