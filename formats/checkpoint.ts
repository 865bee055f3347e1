/**
 * What every checkpoint reader returns: a validated config, canonical weights and (when the
 * files carry one) a tokenizer.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";
import type { F32Weights, Weights } from "../core/weights.ts";
import { FormatError } from "../core/errors.ts";

/** Checkpoint formats gollm reads (formats/load.ts). */
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

/**
 * A loaded checkpoint mapped onto the canonical config (core/config.ts) and tensor names
 * (core/tensor_names.ts). `W` is F32 weights by default; a loader asked to keep stored
 * tensors (`loadCheckpoint(path, { stored: true })`) returns `Checkpoint<Weights>`.
 */
export interface Checkpoint<W extends Weights = F32Weights> {
  /** Which reader produced it. */
  format: CheckpointFormat;
  /** The file or directory it was read from. */
  path: string;
  /** Validated config. */
  config: ModelConfig;
  /** Weights under canonical names (F32, or as stored), checked against `config`. */
  weights: W;
  /** The tokenizer, or null when the checkpoint carries none (token ids only). */
  tokenizer: Tokenizer | null;
  /** Extra EOS ids from the model's files (HF generation_config.json). */
  extraEosIds?: number[];
  /** Sampling defaults from the model's files. */
  generation?: GenerationDefaults;
}

/**
 * One tensor of a checkpoint as its file stores it, without its data: what `gollm inspect`
 * lists (formats/load.ts `inspectCheckpoint`).
 */
export interface CheckpointTensorInfo {
  /** Torch-order shape, outermost first (`[out_features, in_features]` for a matrix). */
  shape: number[];
  /**
   * The storage type as llama.cpp names it (`F32`, `F16`, `BF16`, `Q8_0`, `Q4_K`, ...): what
   * the wasm backend holds. A Hugging Face directory keeps F16/BF16 matrices; the rest is `F32`.
   */
  type: string;
  /** Bytes of the tensor as stored (for a part of a fused GGUF tensor, its rows' share). */
  bytes: number;
  /** The name in the file (`blk.0.attn_q.weight` in a GGUF; otherwise the canonical name). */
  stored: string;
}

/**
 * The rows `shape[0]` of a tensor whose info is `t` (a part of a fused tensor): its rows'
 * share of the bytes (rows are whole blocks in every type).
 *
 * @param t The whole tensor's info.
 * @param shape The part's shape (same trailing dimensions).
 * @returns The part's info.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { infoRows } from "./checkpoint.ts";
 * const qkv = { shape: [96, 32], type: "Q8_0", bytes: 96 * 34, stored: "blk.0.attn_qkv.weight" };
 * assert.equal(infoRows(qkv, [32, 32]).bytes, 32 * 34);
 * ```
 */
export function infoRows(t: CheckpointTensorInfo, shape: number[]): CheckpointTensorInfo {
  return { ...t, shape, bytes: (t.bytes / t.shape[0]) * shape[0] };
}

/**
 * A safetensors tensor as the wasm backend holds it after a `stored` load (formats/hf.ts,
 * formats/gollm_dir.ts): F16/BF16 matrices as stored, vectors and every other dtype F32.
 *
 * @param name Its name in the file.
 * @param dtype Its safetensors dtype.
 * @param shape Its shape.
 * @returns The info.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { heldInfo } from "./checkpoint.ts";
 * assert.equal(heldInfo("w", "BF16", [4, 8]).bytes, 64);
 * assert.equal(heldInfo("norm", "BF16", [8]).type, "F32");
 * ```
 */
export function heldInfo(
  name: string,
  dtype: string,
  shape: readonly number[],
): CheckpointTensorInfo {
  const n = shape.reduce((a, b) => a * b, 1);
  const half = (dtype === "F16" || dtype === "BF16") && shape.length >= 2;
  return { shape: [...shape], type: half ? dtype : "F32", bytes: (half ? 2 : 4) * n, stored: name };
}

/**
 * A checkpoint's config, tokenizer and tensor table without its weights: for a GGUF, what
 * its header alone says ({@linkcode CheckpointTensorInfo} per tensor, no tensor data read).
 */
export interface CheckpointSummary extends Omit<Checkpoint, "weights"> {
  /** Canonical name → the tensor as stored, in the file's order. */
  tensors: Map<string, CheckpointTensorInfo>;
}

/**
 * Validates sampling defaults read from a model's files (gollm `__metadata__.generation`,
 * HF `generation_config.json`) with the sampler's rules, so a bad value fails at load naming
 * the file instead of at generate time: `temperature` finite ≥ 0, `top_p` in (0, 1], `top_k`
 * an integer ≥ 0. Other keys are ignored; absent or null keys stay absent.
 *
 * @param raw The parsed object holding the keys.
 * @param file The file, named in errors.
 * @param where How the keys are addressed in that file (`__metadata__.generation.`, or `""`
 *   for top-level keys).
 * @returns The defaults (only the three known keys).
 * @throws {FormatError} `<file>: <where><key> must be ..., got <value>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkGenerationDefaults } from "./checkpoint.ts";
 * assert.deepEqual(checkGenerationDefaults({ temperature: 0.7, top_p: 0.9 }, "g.json", ""),
 *   { temperature: 0.7, top_p: 0.9 });
 * assert.throws(() => checkGenerationDefaults({ top_p: 1.5 }, "g.json", ""),
 *   /g.json: top_p must be in \(0, 1\], got 1.5$/);
 * ```
 */
export function checkGenerationDefaults(
  raw: Record<string, unknown>,
  file: string,
  where: string,
): GenerationDefaults {
  const out: GenerationDefaults = {};
  const rules: [keyof GenerationDefaults, string, (v: number) => boolean][] = [
    ["temperature", "a finite number ≥ 0", (v) => Number.isFinite(v) && v >= 0],
    ["top_p", "in (0, 1]", (v) => v > 0 && v <= 1],
    ["top_k", "an integer ≥ 0", (v) => Number.isInteger(v) && v >= 0],
  ];
  for (const [key, expected, ok] of rules) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== "number" || !ok(v)) {
      throw new FormatError(file, `${where}${key} must be ${expected}, got ${JSON.stringify(v)}`);
    }
    out[key] = v;
  }
  return out;
}
