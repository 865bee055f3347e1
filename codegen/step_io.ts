/**
 * The step's inputs and outputs in the arena, shared by both compiled backends (the JS
 * kernels of codegen/compile.ts and the WASM module of codegen/compile_wasm.ts): where a
 * {@linkcode StepInput}'s rows and a sequence's block table are written, and the logits views
 * a step returns. Offsets come from the plan (docs/DESIGN.md, "The step, the arena and the
 * paged KV cache").
 *
 * @module
 */
import type { StepInput } from "../core/forward.ts";
import { findBuffer, type Plan } from "./plan.ts";

/** Writes step inputs and block tables into an arena and returns the logits views. */
export interface StepIo {
  /** The arena as int32 (the step and sequence buffers are int32). */
  readonly I: Int32Array;
  /** Int32 index of the ring lengths, `(maxSeqs)`. */
  readonly ringIndex: number;
  /** Int32 index of the attention windows, `(maxSeqs)`. */
  readonly windowIndex: number;
  /**
   * Writes sequence `seq`'s block table (block ids, in order).
   * @param seq Sequence slot.
   * @param blocks Its block ids (already checked by `checkSequence`).
   */
  writeTable(seq: number, blocks: ArrayLike<number>): void;
  /**
   * Writes a step's rows (`step.tokens`, `step.positions`, `step.seqs`, each `(maxRows)`),
   * its output rows and the two counts (rows, output rows).
   * @param input The step (already checked by `checkStepInput`).
   */
  writeInput(input: StepInput): void;
  /**
   * The logits a step wrote: `(nOut, vocab_size)` row-major, a view into the arena (the
   * decode buffer when the step had one row), made once per size.
   * @param input The step that ran.
   * @returns The view (empty when the step asked for no logits).
   */
  logits(input: StepInput): Float32Array;
}

/**
 * Binds the plan's step buffers to an arena memory.
 *
 * @param plan The compiled plan (offsets of `step.*`, `seq.*` and the logits).
 * @param buffer The arena's buffer (a `WebAssembly.Memory`'s).
 * @param vocab `vocab_size`: the width of a logits row.
 * @returns The writer and the logits views.
 * @throws {RangeError} when the plan lacks a step buffer (findBuffer).
 */
export function stepIo(plan: Plan, buffer: ArrayBufferLike, vocab: number): StepIo {
  const I = new Int32Array(buffer, 0, plan.arenaBytes >> 2);
  const at = (name: string) => findBuffer(plan, "decode", name).offset >> 2; // int32 index
  const TOK = at("step.tokens"), POS = at("step.positions"), SEQ = at("step.seqs");
  const OUT = at("step.out_rows"), COUNTS = at("step.counts");
  const TABLE = at("seq.block_table"), MB = plan.layout.maxBlocksPerSeq;
  const decodeLogits = findBuffer(plan, "decode", plan.decode.output).offset;
  const prefillLogits = findBuffer(plan, "prefill", plan.prefill.output).offset;
  const decodeView = new Float32Array(buffer, decodeLogits, vocab); // (1, vocab_size)
  const prefillViews: Float32Array[] = []; // [nOut]: (nOut, vocab_size) views, made once
  const none = new Float32Array(0);
  return {
    I,
    ringIndex: at("seq.ring"),
    windowIndex: at("seq.window"),
    writeTable(seq, blocks) {
      for (let b = 0; b < blocks.length; b++) I[TABLE + seq * MB + b] = blocks[b];
    },
    writeInput(input) {
      const n = input.tokens.length, nOut = input.outRows.length;
      for (let t = 0; t < n; t++) {
        I[TOK + t] = input.tokens[t];
        I[POS + t] = input.positions[t];
        I[SEQ + t] = input.seqs[t];
      }
      for (let i = 0; i < nOut; i++) I[OUT + i] = input.outRows[i];
      I[COUNTS] = n;
      I[COUNTS + 1] = nOut;
    },
    logits(input) {
      const nOut = input.outRows.length;
      if (nOut === 0) return none;
      if (input.tokens.length === 1) return decodeView;
      return prefillViews[nOut] ??= new Float32Array(buffer, prefillLogits, nOut * vocab);
    },
  };
}
