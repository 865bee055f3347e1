/**
 * Canonical weights: a map from canonical tensor names (core/tensor_names.ts) to row-major F32 data, and the
 * shapes a config expects for each name.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";
import { FormatError } from "./errors.ts";
import {
  expectedTensorCount,
  fillLayer,
  isPerLayer,
  layersHeld,
  patternOf,
  type TensorNameRow,
  tensorRows,
} from "./tensor_names.ts";

/** One tensor: its shape and its row-major F32 data (`data.length == product(shape)`). */
export interface Tensor {
  /** Dimensions, outermost first, e.g. `[out_features, in_features]` for a matrix. */
  shape: number[];
  /** Row-major values. */
  data: Float32Array;
}

/**
 * All weights of a model under canonical names (`tok_embeddings.weight`,
 * `layers.{i}.attn.wq.weight`, ...). Matrices are `(out_features, in_features)` row-major,
 * like `torch.nn.Linear.weight`.
 */
export type Weights = Map<string, Tensor>;

/**
 * The canonical tensor names and shapes a config requires, derived from the table of
 * core/tensor_names.ts.
 *
 * Enumerates every layer: callers that hold a file's tensors compare counts first
 * ({@linkcode checkWeights} does), so a config claiming 10^8 layers never gets here.
 *
 * @param c The model config.
 * @returns Map from name to shape, in checkpoint order (globals, then layer by layer).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { expectedShapes } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * assert.deepEqual(expectedShapes(c).get("pos_embeddings.weight"), [16, 32]);
 * ```
 */
export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const rows = tensorRows(c);
  const m = new Map<string, number[]>();
  const add = (r: TensorNameRow, layer: number) => m.set(fillLayer(r.name, layer), r.shape(c));
  let i = 0;
  for (; i < rows.length && !isPerLayer(rows[i]); i++) add(rows[i], 0);
  const first = i;
  while (i < rows.length && isPerLayer(rows[i])) i++;
  for (let l = 0; l < c.n_layers; l++) for (let j = first; j < i; j++) add(rows[j], l);
  for (; i < rows.length; i++) add(rows[i], 0);
  return m;
}

/**
 * Checks that `weights` holds exactly the tensors `c` requires, each with the right shape.
 * The tensor count is compared first, arithmetically, so a config that declares far more
 * layers than the file holds fails at once.
 *
 * @param c The model config.
 * @param weights The loaded weights.
 * @param file The checkpoint path, named in errors.
 * @throws {FormatError} naming the first missing, mis-shaped or unexpected tensor
 *   (expected vs actual shape), or the tensor counts when they differ by a whole layer or
 *   more.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { checkWeights, randomWeights } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * const w = randomWeights(c, 1);
 * checkWeights(c, w, "<random>"); // passes
 * w.delete("norm.bias");
 * assert.throws(() => checkWeights(c, w, "m.safetensors"), /m.safetensors: tensor 'norm.bias' is missing/);
 * ```
 */
export function checkWeights(c: ModelConfig, weights: Weights, file: string): void {
  const count = expectedTensorCount(c);
  const layerRows = tensorRows(c).filter(isPerLayer);
  if (Math.abs(count - weights.size) >= layerRows.length) {
    const held = layersHeld(weights.keys(), new Set(layerRows.map((r) => r.name)));
    throw new FormatError(
      file,
      `holds ${weights.size} tensors (${
        held ? `layers 0..${held - 1}` : "no layers"
      }) but the config's n_layers ` +
        `${c.n_layers} needs ${count}`,
    );
  }
  const want = expectedShapes(c);
  for (const [name, shape] of want) {
    const t = weights.get(name);
    if (!t) throw new FormatError(file, `tensor '${name}' is missing (expected shape [${shape}])`);
    const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
    if (!same) {
      throw new FormatError(
        file,
        `tensor '${name}' has shape [${t.shape}], expected [${shape}] from the config`,
      );
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new FormatError(file, `tensor '${name}' holds ${t.data.length} values, expected ${n}`);
    }
  }
  for (const name of weights.keys()) {
    if (!want.has(name)) {
      throw new FormatError(file, `tensor '${name}' is not expected by the config`);
    }
  }
}

/**
 * Deterministic random weights for a config (no checkpoint needed): tests and `gollm bench`.
 * Matrices ~ U(-a, a) with a = 1/sqrt(in_features) · sqrt(3)·0.5, norm weights ~ 1 ± 0.1,
 * biases ~ U(-0.1, 0.1). Uses a xorshift32 PRNG so every machine gets the same values.
 *
 * @param c The model config.
 * @param seed PRNG seed (any 32-bit integer; 0 is mapped to 1).
 * @returns Weights that pass {@linkcode checkWeights}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * assert.deepEqual(randomWeights(c, 7).get("norm.weight")!.shape, [32]);
 * ```
 */
export function randomWeights(c: ModelConfig, seed: number): Weights {
  let s = (seed | 0) || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 4294967296) * 2 - 1; // U(-1, 1)
  };
  const out: Weights = new Map();
  const rows = new Map(tensorRows(c).map((r) => [r.name, r]));
  for (const [name, shape] of expectedShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const row = rows.get(patternOf(name)[0])!;
    const isBias = row.param === "bias";
    const isNorm = !isBias && row.kind.endsWith("_norm");
    const scale = shape.length === 2 ? Math.sqrt(3) * 0.5 / Math.sqrt(shape[1]) : 0.1;
    for (let i = 0; i < n; i++) {
      data[i] = (isNorm ? 1 : 0) + next() * (isBias || isNorm ? 0.1 : scale);
    }
    out.set(name, { shape: [...shape], data });
  }
  return out;
}
