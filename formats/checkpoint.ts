/**
 * What every checkpoint reader returns: a validated config, canonical weights and (when the
 * files carry one) a tokenizer.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { Weights } from "../core/weights.ts";

/** Checkpoint formats gollm reads (DESIGN.md "Checkpoint formats"). */
export type CheckpointFormat = "gollm" | "hf" | "gguf" | "llama2c";

/** Default sampling settings a model ships with (HF `generation_config.json`). */
export interface GenerationDefaults {
  /** Softmax temperature. */
  temperature?: number;
  /** Nucleus sampling mass. */
  top_p?: number;
  /** Top-k cutoff. */
  top_k?: number;
}

/** A loaded checkpoint mapped onto DESIGN.md's canonical config and tensor names. */
export interface Checkpoint {
  /** Which reader produced it. */
  format: CheckpointFormat;
  /** The file or directory it was read from. */
  path: string;
  /** Validated config. */
  config: ModelConfig;
  /** Weights under canonical names, F32, checked against `config`. */
  weights: Weights;
  /** The tokenizer, or null when the checkpoint carries none (token ids only). */
  tokenizer: Tokenizer | null;
  /** Extra EOS ids from the model's files (HF generation_config.json). */
  extraEosIds?: number[];
  /** Sampling defaults from the model's files. */
  generation?: GenerationDefaults;
}
