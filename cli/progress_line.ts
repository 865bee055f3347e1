/**
 * The progress display on stderr: a redrawn status line on a terminal, one summary line
 * otherwise.
 *
 * @module
 */
import type { ProgressCallback } from "../core/progress.ts";
import { err } from "./output.ts";

const encoder = new TextEncoder();

/**
 * A progress display on stderr: a redrawn status line on a terminal, silence otherwise.
 *
 * @example
 * ```ts
 * import { progress } from "./progress_line.ts";
 * const p = progress();
 * p.onProgress({ stage: "reading", fraction: 0.5 });
 * p.done("loaded x"); // stderr: "loaded x in 0.00 s"
 * ```
 */
export interface Progress {
  /** Pass to loaders. */
  onProgress: ProgressCallback;
  /** Ends the display and prints one summary line (`label in 1.23 s`). */
  done(summary: string): void;
  /** Ends the display without a summary (on error). */
  clear(): void;
}

/**
 * Starts a progress display. On a terminal each event redraws one status line with the
 * elapsed time; otherwise only `done`'s summary line is printed.
 *
 * @param quiet Print nothing at all (not even the summary).
 * @returns The display; end it with `done` or `clear`.
 *
 * @example
 * ```ts
 * import { progress } from "./progress_line.ts";
 * const p = progress(true); // quiet: nothing is printed
 * p.onProgress({ stage: "compiling kernels" });
 * p.clear();
 * ```
 */
export function progress(quiet = false): Progress {
  const tty = !quiet && Deno.stderr.isTerminal();
  const t0 = performance.now();
  let shown = false;
  let stage = "";
  let timer: ReturnType<typeof setInterval> | undefined;
  const draw = () => {
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    Deno.stderr.writeSync(encoder.encode(`\r\x1b[K${stage} (${secs} s)`));
    shown = true;
  };
  const clear = () => {
    if (timer !== undefined) clearInterval(timer);
    timer = undefined;
    if (shown) Deno.stderr.writeSync(encoder.encode("\r\x1b[K"));
    shown = false;
  };
  return {
    onProgress: (e) => {
      if (!tty) return;
      const pct = e.fraction === undefined ? "" : ` ${Math.round(e.fraction * 100)}%`;
      stage = `${e.stage}${pct}`;
      draw();
      if (timer === undefined) {
        // Keep the elapsed time moving during long asynchronous reads.
        timer = setInterval(draw, 250);
        const t = timer as unknown;
        if (typeof t === "number") Deno.unrefTimer(t);
        else (t as { unref?: () => void }).unref?.();
      }
    },
    done: (summary) => {
      clear();
      if (!quiet) err(`${summary} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
    },
    clear,
  };
}

/**
 * Runs `work` under a {@linkcode progress} display: on success prints `summary(result)` with
 * the elapsed time (`loaded m in 0.12 s`), on error clears the display and rethrows.
 *
 * @param quiet Print nothing (e.g. with `--json`).
 * @param work The long job; receives the progress callback to pass to loaders.
 * @param summary The summary line for the result (may read files; counted in the time).
 * @returns What `work` returned.
 * @throws Whatever `work` or `summary` throws.
 *
 * @example
 * ```ts ignore
 * import { withProgress } from "./progress_line.ts";
 * import { loadCheckpoint } from "../formats/load.ts";
 * const ckpt = await withProgress(
 *   false,
 *   (onProgress) => loadCheckpoint("models/default", { onProgress }),
 *   (c) => `loaded ${c.path}`,
 * );
 * ```
 */
export async function withProgress<T>(
  quiet: boolean,
  work: (onProgress: ProgressCallback) => Promise<T>,
  summary: (result: T) => string | Promise<string>,
): Promise<T> {
  const prog = progress(quiet);
  let result: T, line: string;
  try {
    result = await work(prog.onProgress);
    line = await summary(result);
  } catch (e) {
    prog.clear();
    throw e;
  }
  prog.done(line);
  return result;
}
