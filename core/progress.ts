/**
 * Progress reporting for long work (loading and converting checkpoints, compiling kernels).
 *
 * Loaders call an optional {@linkcode ProgressCallback} at the start of each stage and,
 * where they can measure it, with the fraction done. The CLI turns these events into a
 * redrawn status line on a terminal and a single summary line otherwise.
 *
 * @module
 */

/** One progress report. */
export interface ProgressEvent {
  /** What is happening now, e.g. `reading model.safetensors` or `compiling kernels`. */
  stage: string;
  /** Fraction of this stage done, in `[0, 1]`, when it is known. */
  fraction?: number;
}

/**
 * Receives {@linkcode ProgressEvent}s. Called synchronously from the loader; keep it cheap.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ProgressCallback, ProgressEvent } from "./progress.ts";
 * const seen: ProgressEvent[] = [];
 * const log: ProgressCallback = (e) => seen.push(e);
 * log({ stage: "reading model.safetensors", fraction: 0.5 });
 * assert.equal(seen[0].fraction, 0.5);
 * ```
 */
export type ProgressCallback = (event: ProgressEvent) => void;
