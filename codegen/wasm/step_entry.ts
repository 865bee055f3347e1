/**
 * The entry of the whole-step WASM module (codegen/emit_wasm.ts): `step`, which every thread
 * of the pool runs once per forward step.
 *
 * @module
 */
import { findBuffer, type Plan } from "../plan.ts";
import { WasmFunc } from "../wasm_asm.ts";
import { CTL } from "./barrier.ts";
import { callWith } from "./renderers.ts";

/**
 * The module's entry `step(tid, nthreads, a0 .. a7)`: reads n and nOut from the step rows
 * (`step.counts`) and runs the decode graph's group functions (n = 1) or the prefill
 * graph's, the LM head only when nOut > 0, unwinding when a barrier reports a failed thread.
 * Thread 0 first zeroes the `counters` row counters at `ctl + CTL.ROWS` (`barrier.ts`
 * `emitRowChunks`); the step emitter puts a barrier before the first matrix product.
 *
 * @param plan The plan (for `step.counts` and the prefill graph's rows).
 * @param entry The group functions of each graph, in order.
 * @param ctl Byte offset of the control block.
 * @param counters Row counters the graphs use (linear nodes, at most `MAX_ROW_COUNTERS`).
 * @returns The function.
 */
export function stepEntry(
  plan: Plan,
  entry: Record<"decode" | "prefill", string[]>,
  ctl: number,
  counters: number,
): WasmFunc {
  const params: [string, "i32"][] = [["tid", "i32"], ["nthreads", "i32"]];
  for (let i = 0; i < 8; i++) params.push([`a${i}`, "i32"]);
  const f = new WasmFunc("step", params);
  f.local("n", "i32").local("nOut", "i32").local("c", "i32");
  const counts = findBuffer(plan, "decode", "step.counts").offset;
  f.comment("the step the caller wrote: n rows, nOut out rows (step.counts)");
  f.i32(counts).mem("i32.load").set("n");
  f.i32(counts).mem("i32.load", 4).set("nOut");
  f.comment(
    `thread 0 zeroes the ${counters} row counters of the matrix products (${ctl + CTL.ROWS} ..); ` +
      "a barrier comes before the first product that reads them",
  );
  f.get("tid").op("i32.eqz").get("nthreads").i32(1).op("i32.gt_u").op("i32.and").if();
  f.i32(ctl + CTL.ROWS).set("c");
  f.loop("zero");
  f.get("c").i32(0).mem("i32.atomic.store");
  f.get("c").i32(4).op("i32.add").tee("c").i32(ctl + CTL.ROWS + 4 * counters).op("i32.lt_u");
  f.brIf("zero");
  f.end();
  f.end();
  const run = (names: string[]) => {
    f.block("abort");
    for (const name of names) {
      const call = () => {
        callWith(f, name, ["tid", "nthreads", "n", "nOut"]);
        f.brIf("abort");
      };
      if (/lm_head$/.test(name)) {
        f.comment("the LM head only when some row's logits are wanted");
        f.get("nOut").if();
        callWith(f, name, ["tid", "nthreads", "n", "nOut"]);
        f.if().br("abort").end();
        f.end();
      } else call();
    }
    f.end();
  };
  f.get("n").i32(1).op("i32.eq").if();
  f.comment("decode graph: one row");
  run(entry.decode);
  f.else();
  f.comment(`prefill graph: n <= ${plan.prefill.rows} rows`);
  run(entry.prefill);
  f.end();
  return f;
}
