/**
 * The memory planner (codegen/plan.ts): no two live buffers share bytes, dead ones are
 * reused, every buffer is aligned and inside the arena, KV byte totals, and the weight
 * region of the WASM backend.
 */
import assert from "node:assert/strict";
import { randomWeights } from "../core/weights.ts";
import { emitKernels } from "./emit_js.ts";
import { planArena, type PlannedBuffer } from "./plan.ts";
import { FORWARD_CASES, forwardCase } from "../tests/forward_cases.ts";

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
    assert.equal(plan.kvBytes, 2 * c.n_layers * 16 * kvDim * 4);
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
