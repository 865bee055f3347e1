/**
 * Shared pieces of the wasm backend tests (tests/wasm_backend_test.ts,
 * tests/wasm_arch_test.ts): weights as a file of one type would hold them, the logits of a
 * fixed prompt-then-decode run, and those logits on N threads.
 *
 * @module
 */
import { compileModel } from "../codegen/compile.ts";
import type { ModelConfig } from "../core/config.ts";
import type { ForwardOptions } from "../core/forward.ts";
import type { F32Weights, Weights } from "../core/weights.ts";
import { ggmlTypeByName } from "../formats/quant.ts";
import { quantizeTensor } from "../formats/quant/tensor.ts";
import { startStepPool } from "../runtime/threads.ts";
import { tokens } from "./forward_cases.ts";

/**
 * The weights a file of `type` would hold: matrices in `type`, vectors and learned
 * positions F32.
 *
 * @param type A ggml type name (`Q8_0`, `Q4_K`, `F16`, ...).
 * @returns The conversion of F32 weights.
 */
export function store(type: string): (w: F32Weights) => Weights {
  const t = ggmlTypeByName(type)!;
  return (w) =>
    new Map(
      [...w].map(([name, x]) => [
        name,
        x.shape.length === 2 && name !== "pos_embeddings.weight" ? quantizeTensor(x, t) : x,
      ]),
    );
}

/**
 * The logits of 20 prompt tokens (chunks of 8 with `prefillChunk: 8`) then 3 decode steps.
 *
 * @param pass A forward pass.
 * @param c Its config.
 * @returns 4 logits arrays: (20, vocab_size), then 3 × (1, vocab_size).
 */
export function logitsOf(
  pass: { forwardAll(t: number[], p: number): Float32Array },
  c: ModelConfig,
): Float32Array[] {
  const toks = tokens(23, c.vocab_size, 4);
  return [
    pass.forwardAll(toks.slice(0, 20), 0),
    ...[20, 21, 22].map((p) => pass.forwardAll([toks[p]], p)),
  ];
}

/**
 * {@linkcode logitsOf} on the wasm backend with `threads` threads (40 KV slots, 8-row chunks).
 *
 * @param c The config.
 * @param w The weights.
 * @param threads Threads of the step.
 * @param options More compile options (e.g. the KV cache types).
 * @returns The logits.
 */
export function logitsOnThreads(
  c: ModelConfig,
  w: Weights,
  threads: number,
  options: ForwardOptions = {},
): Float32Array[] {
  const m = compileModel(c, w, {
    backend: "wasm",
    kvCapacity: 40,
    prefillChunk: 8,
    threads,
    startPool: startStepPool,
    ...options,
  });
  try {
    return logitsOf(m, c);
  } finally {
    m.close();
  }
}
