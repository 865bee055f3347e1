/**
 * Thread synchronisation in WASM: the layout of the control block that the thread pool
 * (`runtime/threads.ts`) and the generated step code share in the memory, the barrier
 * every thread calls between the ops of a step, and the row split of a range between
 * threads.
 *
 * The barrier is a counter and a generation word (a "sense-reversing" barrier, Mellor-Crummey
 * & Scott 1991): each arriving thread adds 1 to the counter; the last one resets it, bumps
 * the generation and `memory.atomic.notify`s; the others spin a while on the generation,
 * then `memory.atomic.wait32` on it in 1 ms slices. While waiting they watch the error word:
 * a thread that failed (or the caller, on a timeout) sets it, and every waiter returns 1 so
 * the step unwinds instead of hanging. A waiter that sees no progress for the control
 * block's timeout sets the error word itself (code {@linkcode ERR_TIMEOUT}).
 *
 * The rows of a matrix product are shared out as they are done, not split in advance
 * ({@linkcode emitRowChunks}): a thread whose core is busy with another process takes fewer
 * chunks, the others more, and the step does not wait for the slowest thread's half.
 *
 * @module
 */
import { WasmFunc } from "../wasm_asm.ts";

/** Control block words (byte offsets from its start; every word is an i32). */
export const CTL = {
  /** Step generation: the caller bumps it and notifies to start a step. */
  GEN: 0,
  /** Barrier arrival counter. */
  COUNT: 4,
  /** Barrier generation. */
  BGEN: 8,
  /** Threads (other than the caller) finished with the current step. */
  DONE: 12,
  /** Error word: 0, or (thread id + 1), or {@linkcode ERR_TIMEOUT}. */
  ERR: 16,
  /** Index of the entry point the step runs. */
  CMD: 20,
  /** Thread count of the step. */
  NTHREADS: 24,
  /** Barrier timeout in milliseconds (0: none). */
  TIMEOUT_MS: 28,
  /** Eight i32 arguments of the entry point. */
  ARGS: 32,
  /** Per thread: the last step generation it finished (64 threads). */
  FINISHED: 64,
  /** UTF-8 error message of a failed thread (256 bytes, 0-terminated). */
  MSG: 320,
  /** Workers that finished starting (instantiated their module, or failed to). */
  READY: 576,
  /**
   * Row counters of the matrix products of a step ({@linkcode MAX_ROW_COUNTERS} i32, one
   * per linear node): the next row a thread takes ({@linkcode emitRowChunks}).
   */
  ROWS: 640,
  /** Size of the block. */
  BYTES: 640 + 4 * 1024,
} as const;

/** Linear nodes of one graph that share their rows through a counter (more: static split). */
export const MAX_ROW_COUNTERS = 1024;

/** Error word value of a barrier timeout. */
export const ERR_TIMEOUT = 0x7fff0001;

/**
 * Spins before a barrier waiter blocks (tens of microseconds here). A thread that blocks
 * must be woken by the last one to arrive, which costs more than the imbalance a barrier
 * usually waits for: g110M on 2 threads, `gollm bench --backends wasm`, 2000 → 50000
 * spins: decode Q8_0 256-260 → 290-308 tok/s, Q4_K_M 262 → 283, F16 124 → 141; a 16-row
 * batch step 28-32 → 26-27 ms. One thread has no barriers.
 */
const SPINS = 50000;

/**
 * The barrier function `barrier(ctl) -> i32` (0: all threads arrived; 1: a thread failed
 * or timed out, unwind). Internal (called by generated step code) and exported (for
 * tests).
 *
 * @returns The function.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { barrierKernel } from "./barrier.ts";
 * assert.ok(barrierKernel().text().includes("memory.atomic.wait32"));
 * ```
 */
export function barrierKernel(): WasmFunc {
  const f = new WasmFunc("barrier", [["ctl", "i32"]], ["i32"]);
  f.local("gen", "i32").local("spin", "i32").local("waited", "i32");
  f.comment("sense-reversing barrier over the control block at ctl (see CTL in barrier.ts)");
  f.get("ctl").mem("i32.atomic.load", CTL.BGEN).set("gen");
  f.get("ctl").i32(1).mem("i32.atomic.rmw.add", CTL.COUNT).i32(1).op("i32.add");
  f.get("ctl").mem("i32.atomic.load", CTL.NTHREADS).op("i32.ge_u");
  f.if();
  f.comment("last to arrive: reset the count, open the next generation, wake everyone");
  f.get("ctl").i32(0).mem("i32.atomic.store", CTL.COUNT);
  f.get("ctl").i32(1).mem("i32.atomic.rmw.add", CTL.BGEN).op("drop");
  f.get("ctl").i32(-1).mem("memory.atomic.notify", CTL.BGEN).op("drop");
  f.get("ctl").mem("i32.atomic.load", CTL.ERR).i32(0).op("i32.ne").op("return");
  f.end();
  f.comment(`spin up to ${SPINS} times, then wait in 1 ms slices`);
  f.block("done").loop("wait");
  f.get("ctl").mem("i32.atomic.load", CTL.ERR).if().i32(1).op("return").end();
  f.get("ctl").mem("i32.atomic.load", CTL.BGEN).get("gen").op("i32.ne").brIf("done");
  f.get("spin").i32(SPINS).op("i32.lt_u");
  f.if();
  f.get("spin").i32(1).op("i32.add").set("spin");
  f.else();
  f.get("ctl").get("gen").i64(1_000_000).mem("memory.atomic.wait32", CTL.BGEN).op("drop");
  f.get("waited").i32(1).op("i32.add").tee("waited");
  f.get("ctl").mem("i32.atomic.load", CTL.TIMEOUT_MS).op("i32.ge_u");
  f.get("ctl").mem("i32.atomic.load", CTL.TIMEOUT_MS).op("i32.eqz").op("i32.eqz").op("i32.and");
  f.if();
  f.comment("no progress for the timeout: flag it, wake the others, unwind");
  f.get("ctl").i32(0).i32(ERR_TIMEOUT).mem("i32.atomic.rmw.cmpxchg", CTL.ERR).op("drop");
  f.get("ctl").i32(-1).mem("memory.atomic.notify", CTL.BGEN).op("drop");
  f.i32(1).op("return");
  f.end();
  f.end();
  f.br("wait");
  f.end().end();
  f.i32(0);
  return f;
}

/**
 * Emits `lo = total · tid / nthreads` rounded down to a multiple of `align` (and `hi` the
 * same for tid + 1, `total` for the last thread) into i32 locals: the contiguous share of
 * a range that thread `tid` owns. Shares differ by at most `align`.
 *
 * @param f The function (with i32 locals `tid`, `nthreads` and the two outputs).
 * @param total Range length (a constant).
 * @param align Granularity (rows per register block, heads, ...).
 * @param lo Output local of the first index.
 * @param hi Output local of the end index.
 */
export function emitShare(f: WasmFunc, total: number, align: number, lo: string, hi: string) {
  const units = Math.ceil(total / align);
  const share = (tidExpr: () => void) => {
    f.i32(units);
    tidExpr();
    f.op("i32.mul").get("nthreads").op("i32.div_u").i32(align).op("i32.mul");
  };
  f.comment(
    `share of ${total} in units of ${align}: [${units}·tid/n, ${units}·(tid+1)/n) · ${align}`,
  );
  share(() => f.get("tid"));
  f.set(lo);
  share(() => f.get("tid").i32(1).op("i32.add"));
  f.tee(hi).i32(total).op("i32.gt_u").if().i32(total).set(hi).end();
  f.get(lo).i32(total).op("i32.gt_u").if().i32(total).set(lo).end();
}

/**
 * Emits a loop that runs `body` on chunks of the range `0 .. total` taken from the i32
 * counter at `counter` (`i32.atomic.rmw.add`; llama.cpp's `current_chunk` of
 * `ggml_compute_forward_mul_mat`): each thread takes the next chunk until none is left, so
 * a thread slowed by another process takes fewer. Chunks are about a quarter of a thread's
 * share, `8 · ceil(total / (32 · nthreads))` (a multiple of 8: whole register blocks and
 * panels); the last ends at `total`. On one thread `body` runs once over the whole range, as
 * the static split. Which thread computes a row does not change the row (the kernels' result
 * does not depend on the range), so the output is the same for any thread count. The counter
 * must be 0 before the first thread reaches the loop (the step zeroes every counter, then
 * passes a barrier) and is left past `total`.
 *
 * @param f The function (with i32 locals `tid`, `nthreads`, `lo`, `hi`, `chunk`).
 * @param total Range length (a constant).
 * @param counter Byte address of the counter.
 * @param body Emits the work on `lo .. hi`.
 */
export function emitRowChunks(
  f: WasmFunc,
  total: number,
  counter: number,
  body: () => void,
): void {
  f.get("nthreads").i32(1).op("i32.eq").if();
  f.comment(`one thread: all ${total} rows`);
  f.i32(0).set("lo").i32(total).set("hi");
  body();
  f.else();
  f.comment(
    `rows taken in chunks of 8 · ceil(${total} / (32 · nthreads)) from the counter at ` +
      `${counter}, until none is left`,
  );
  f.i32(total + 31).get("nthreads").i32(32).op("i32.mul").op("i32.add").i32(1).op("i32.sub");
  f.get("nthreads").i32(32).op("i32.mul").op("i32.div_u").i32(8).op("i32.mul").set("chunk");
  f.block("rows_done").loop("rows_next");
  f.i32(counter).get("chunk").mem("i32.atomic.rmw.add").tee("lo");
  f.i32(total).op("i32.ge_u").brIf("rows_done");
  f.get("lo").get("chunk").op("i32.add").tee("hi").i32(total).op("i32.gt_u");
  f.if().i32(total).set("hi").end();
  body();
  f.br("rows_next");
  f.end().end();
  f.end();
}
