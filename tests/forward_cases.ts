/**
 * Shared pieces of the forward-pass tests (codegen/compile_test.ts, codegen/emit_wasm_test.ts): small
 * configs built from a few overrides, deterministic token ids, and the check of a compiled
 * forward pass against the reference on one config.
 */
import { type ModelConfig, parseConfig } from "../core/config.ts";
import type { ForwardPass } from "../core/forward.ts";
import { createReference } from "../runtime/reference.ts";
import { randomWeights, type Weights } from "../core/weights.ts";
import { assertClose } from "./assert_close.ts";

/** DESIGN.md's F32 logit tolerance. */
export const TOL = 1e-4;

/** A config from a few overrides of a small llama/gpt2 base (dim 48, 2 layers, 4 heads). */
export function cfg(arch: "llama" | "gpt2", over: Record<string, unknown>): ModelConfig {
  const base: Record<string, unknown> = arch === "llama"
    ? {
      arch,
      vocab_size: 97,
      dim: 48,
      n_layers: 2,
      n_heads: 4,
      hidden_dim: 80,
      context_length: 64,
      norm: "rmsnorm",
      norm_eps: 1e-5,
      rope_theta: 10000,
      mlp: "swiglu",
      tie_embeddings: true,
    }
    : {
      arch,
      vocab_size: 97,
      dim: 48,
      n_layers: 2,
      n_heads: 4,
      hidden_dim: 96,
      context_length: 64,
      norm: "layernorm",
      norm_eps: 1e-5,
      mlp: "gelu",
      tie_embeddings: true,
    };
  return parseConfig({ ...base, ...over }, "<forward test>");
}

/** Deterministic token ids in `[0, vocab)` (xorshift32). */
export function tokens(n: number, vocab: number, seed: number): number[] {
  let s = seed * 2654435761 >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % vocab;
  });
}

/**
 * Checks a compiled forward pass against createReference() on random weights, both with a
 * KV ring of 24 slots: forwardAll over 13 tokens (prefill chunks 5 + 5 + 3 when `build`
 * uses prefillChunk 5), then single-token decode past the ring capacity (sliding window),
 * then a restart at position 0 through forward() (prefill + decode).
 *
 * @param c The config.
 * @param build Compiles the pass under test from the same weights (kvCapacity 24).
 * @param decodeEvery Compare every n-th decode step (1 = all), plus the last one.
 */
export function checkAgainstReference(
  c: ModelConfig,
  build: (w: Weights) => ForwardPass,
  decodeEvery = 1,
): void {
  const w = randomWeights(c, 11);
  const ref = createReference(c, w, { kvCapacity: 24 });
  const pass = build(w);
  const toks = tokens(30, c.vocab_size, 3);
  assertClose(
    pass.forwardAll(toks.slice(0, 13), 0),
    ref.forwardAll(toks.slice(0, 13), 0),
    TOL,
    "forwardAll",
  );
  for (let p = 13; p < 30; p++) {
    const r = ref.forward([toks[p]], p);
    const j = pass.forward([toks[p]], p);
    if ((p - 13) % decodeEvery === 0 || p === 29) assertClose(j, r, TOL, `decode at position ${p}`);
  }
  assertClose(
    pass.forward(toks.slice(5, 14), 0),
    ref.forward(toks.slice(5, 14), 0),
    TOL,
    "restart",
  );
}
