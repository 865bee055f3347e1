/**
 * How the scheduler's loop yields to the event loop between steps: cheaply most of the
 * time, and a full turn (timers and I/O) often enough that HTTP requests and streamed
 * chunks are not held back (server/scheduler.ts).
 *
 * @module
 */
import { setImmediate } from "node:timers";

/**
 * Longest time between two full turns of the event loop (timers and I/O: HTTP requests
 * and the writes of streamed chunks), in milliseconds, while full turns are cheap.
 */
const IO_TURN_MS = 5;

/**
 * Most of the time full turns may take: the next one waits until the steps since the last
 * one have run {@linkcode TURN_SHARE}⁻¹ times as long as that turn took.
 */
const TURN_SHARE = 0.1;

/**
 * Longest time between two full turns whatever the last one cost (a turn that handled many
 * requests is long, and must not hold the next requests and chunks back for 10x as long).
 */
const MAX_TURN_GAP_MS = 30;

/**
 * Yields between steps. A full turn of the event loop (`setTimeout(0)`) lets HTTP in but
 * costs ~2-3 ms on Deno (measured on this project's machine), as much as half a decode
 * step of a small model; `setImmediate` costs ~0.01 ms but lets no I/O through. So:
 * `setImmediate`, and a full turn once {@linkcode IO_TURN_MS} ms have passed and the steps
 * since the last turn took at least 1/{@linkcode TURN_SHARE} times what that turn cost, at
 * most {@linkcode MAX_TURN_GAP_MS} ms (measured with 2 ms steps: a request is answered in
 * 6-30 ms this way, 0-17 ms with `setTimeout` alone, 700 ms with `setImmediate` alone). With 2.5 ms turns and 5.4 ms
 * decode steps the turn then comes every ~5 steps, not after every step (1 stream of
 * g110M Q8_0: ~120 → ~160 tok/s), and streamed tokens leave in bursts ~25 ms apart.
 */
export class Yielder {
  #last = performance.now(); // end of the last full turn
  #cost = 0; // what the last full turn took, ms

  /** Resolves when the loop may run its next step. */
  yield(): Promise<void> {
    const now = performance.now();
    const due = Math.min(MAX_TURN_GAP_MS, Math.max(IO_TURN_MS, this.#cost / TURN_SHARE));
    if (now - this.#last < due) return new Promise((r) => setImmediate(r));
    return new Promise((r) =>
      setTimeout(() => {
        this.#last = performance.now();
        this.#cost = this.#last - now;
        r();
      }, 0)
    );
  }
}
