/**
 * Canonical weights: a map from DESIGN.md tensor names to row-major F32 data, and the
 * shapes a config expects for each name.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";
import { FormatError } from "./errors.ts";

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
 * The canonical tensor names and shapes a config requires (DESIGN.md "Tensor names").
 *
 * @param c The model config.
 * @returns Map from name to shape, in checkpoint order.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * import { expectedShapes } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * console.log(expectedShapes(c).get("pos_embeddings.weight")); // [16, 32]
 * ```
 */
export function expectedShapes(c: ModelConfig): Map<string, number[]> {
  const q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  const gpt2 = c.arch === "gpt2";
  const ln = c.norm === "layernorm";
  const m = new Map<string, number[]>();
  m.set("tok_embeddings.weight", [c.vocab_size, c.dim]);
  if (gpt2) m.set("pos_embeddings.weight", [c.context_length, c.dim]);
  for (let i = 0; i < c.n_layers; i++) {
    const p = `layers.${i}.`;
    m.set(p + "attn_norm.weight", [c.dim]);
    if (ln) m.set(p + "attn_norm.bias", [c.dim]);
    m.set(p + "attn.wq.weight", [q, c.dim]);
    if (c.attn_bias) m.set(p + "attn.wq.bias", [q]);
    m.set(p + "attn.wk.weight", [kv, c.dim]);
    if (c.attn_bias) m.set(p + "attn.wk.bias", [kv]);
    m.set(p + "attn.wv.weight", [kv, c.dim]);
    if (c.attn_bias) m.set(p + "attn.wv.bias", [kv]);
    m.set(p + "attn.wo.weight", [c.dim, q]);
    if (gpt2) m.set(p + "attn.wo.bias", [c.dim]);
    m.set(p + "ffn_norm.weight", [c.dim]);
    if (ln) m.set(p + "ffn_norm.bias", [c.dim]);
    m.set(p + "ffn.w1.weight", [c.hidden_dim, c.dim]);
    if (gpt2) m.set(p + "ffn.w1.bias", [c.hidden_dim]);
    if (c.mlp === "swiglu") m.set(p + "ffn.w3.weight", [c.hidden_dim, c.dim]);
    m.set(p + "ffn.w2.weight", [c.dim, c.hidden_dim]);
    if (gpt2) m.set(p + "ffn.w2.bias", [c.dim]);
  }
  m.set("norm.weight", [c.dim]);
  if (ln) m.set("norm.bias", [c.dim]);
  if (!c.tie_embeddings) m.set("output.weight", [c.vocab_size, c.dim]);
  return m;
}

/**
 * Checks that `weights` holds exactly the tensors `c` requires, each with the right shape.
 *
 * @param c The model config.
 * @param weights The loaded weights.
 * @param file The checkpoint path, named in errors.
 * @throws {FormatError} naming the first missing, mis-shaped or unexpected tensor
 *   (expected vs actual shape).
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * import { checkWeights, randomWeights } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * checkWeights(c, randomWeights(c, 1), "<random>"); // passes
 * ```
 */
export function checkWeights(c: ModelConfig, weights: Weights, file: string): void {
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
 * import { parseConfig } from "./config.ts";
 * import { randomWeights } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * console.log(randomWeights(c, 7).get("norm.weight")!.shape); // [32]
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
  for (const [name, shape] of expectedShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = name.endsWith("norm.weight");
    const isBias = name.endsWith(".bias");
    const scale = shape.length === 2 ? Math.sqrt(3) * 0.5 / Math.sqrt(shape[1]) : 0.1;
    for (let i = 0; i < n; i++) {
      data[i] = (isNorm ? 1 : 0) + next() * (isBias || isNorm ? 0.1 : scale);
    }
    out.set(name, { shape: [...shape], data });
  }
  return out;
}
