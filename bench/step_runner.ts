/**
 * The batched engine's decode step alone, without the server: run as its own process by
 * bench/serve.ts after the server has stopped, with the server's options, to bound what any
 * number of streams can generate.
 *
 * ```
 * deno run -A bench/step_runner.ts '{"file": "...", "backend": "auto", "threads": 2,
 *   "parallel": 32, "ctxSize": 128, "batchSize": 64, "cacheType": "f32", "rows": [1, 16],
 *   "start": 16, "steps": 64, "rounds": 3}'
 * ```
 *
 * It loads the file with `loadBatchModel` as `gollm serve` does (`offload`: the step runs
 * on worker threads and is awaited with `stepAsync`), gives each of R sequence slots its own
 * blocks of the KV pool, and times `steps` decode steps of R rows (one per sequence, at
 * positions `start` .. `start + steps - 1`, the positions a stream of bench:serve decodes
 * at). No sampling, no HTTP: a server's step of R decode rows cannot take less. Per R, one
 * untimed round, then the median over `rounds` of the mean step time. Replies with one JSON
 * {@linkcode StepRunnerReply} line; failures are one `error: ...` line and exit status 1.
 *
 * @module
 */
import { loadBatchModel } from "../runtime/batch_model.ts";
import type { KvCacheType } from "../core/forward.ts";
import { median } from "./protocol.ts";
import { runnerMain } from "./subprocess.ts";

/** The request of the step runner (the options of `gollm serve` it copies). */
export interface StepRunnerRequest {
  /** Model file. */
  file: string;
  /** Backend, as `gollm serve --backend`. */
  backend: "auto" | "jit" | "wasm";
  /** Threads, as `--threads`. */
  threads: number;
  /** Sequence slots, as `--parallel` (at least the largest of `rows`). */
  parallel: number;
  /** Tokens per sequence, as `--ctx-size` (at least `start + steps`). */
  ctxSize: number;
  /** Rows per step, as `--batch-size`. */
  batchSize: number;
  /** KV element type, as `--cache-type-k` and `--cache-type-v`. */
  cacheType: KvCacheType;
  /** Rows per step to time: sequences decoding at once. */
  rows: number[];
  /** Position of the first timed step. */
  start: number;
  /** Steps per round. */
  steps: number;
  /** Timed rounds (the median is reported). */
  rounds: number;
}

/** The reply: per row count, the median time of one decode step. */
export interface StepRunnerReply {
  /** `{ rows, ms }`: R rows per step, milliseconds per step. */
  steps: { rows: number; ms: number }[];
}

async function main(r: StepRunnerRequest): Promise<StepRunnerReply> {
  const big = r.rows.find((n) => !(Number.isInteger(n) && n >= 1 && n <= r.parallel));
  if (big !== undefined) {
    throw new RangeError(`rows: expected integers 1..parallel (${r.parallel}), got ${big}`);
  }
  if (r.start + r.steps > r.ctxSize) {
    throw new RangeError(
      `start + steps: expected <= ctxSize (${r.ctxSize}), got ${r.start + r.steps}`,
    );
  }
  const model = await loadBatchModel(r.file, {
    backend: r.backend,
    threads: r.threads,
    parallel: r.parallel,
    ctxSize: r.ctxSize,
    batchSize: r.batchSize,
    cacheTypeK: r.cacheType,
    cacheTypeV: r.cacheType,
    offload: true,
  });
  const b = model.batch;
  const perSeq = Math.ceil(r.ctxSize / b.blockSize); // blocks of one sequence
  for (let s = 0; s < r.parallel; s++) {
    // Block 0 is the null block; slot s owns blocks 1 + s · perSeq ...
    const table = Array.from({ length: perSeq }, (_, i) => 1 + s * perSeq + i);
    b.setSequence(s, table, perSeq * b.blockSize, model.config.context_length);
  }
  const vocab = model.config.vocab_size;
  const steps: StepRunnerReply["steps"] = [];
  try {
    for (const R of r.rows) {
      const seqs = Int32Array.from({ length: R }, (_, i) => i);
      const round = async () => {
        const t0 = performance.now();
        for (let pos = r.start; pos < r.start + r.steps; pos++) {
          const input = {
            tokens: Int32Array.from(seqs, (s) => 1 + ((s * 131 + pos * 7) % (vocab - 1))),
            positions: Int32Array.from(seqs, () => pos),
            seqs,
            outRows: seqs,
          };
          if (b.stepAsync) await b.stepAsync(input);
          else b.step(input);
        }
        return (performance.now() - t0) / r.steps;
      };
      console.error(`progress: engine steps of ${R} row(s), warm-up`);
      await round();
      const ms: number[] = [];
      for (let i = 1; i <= r.rounds; i++) {
        console.error(`progress: engine steps of ${R} row(s), round ${i}/${r.rounds}`);
        ms.push(await round());
      }
      steps.push({ rows: R, ms: median(ms) });
    }
  } finally {
    model.close();
  }
  return { steps };
}

if (import.meta.main) await runnerMain(main);
