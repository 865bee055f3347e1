/**
 * Canonical weights: a map from canonical tensor names (core/tensor_names.ts) to tensors, and
 * the shapes a config expects for each name. A tensor is either row-major F32 data
 * ({@linkcode F32Tensor}) or the bytes a file stores it in ({@linkcode StoredTensor}: F16,
 * BF16 or one of ggml's block types, ggml-common.h), kept as stored so that a backend that
 * reads them directly (the WASM backend) never holds an F32 copy of the model.
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

/** One tensor as F32: its shape and its row-major data (`data.length == product(shape)`). */
export interface F32Tensor {
  /** Dimensions, outermost first, e.g. `[out_features, in_features]` for a matrix. */
  shape: number[];
  /** Row-major values. */
  data: Float32Array;
  /** Absent: the F32 form (a {@linkcode StoredTensor} has its storage type here). */
  type?: undefined;
  /** Absent: see {@linkcode StoredTensor}. */
  bytes?: undefined;
}

/**
 * The storage geometry of a ggml tensor type (ggml.h `enum ggml_type`, ggml-common.h block
 * structs): formats/quant.ts `GgmlType` has these fields, so its types fit here.
 */
export interface StorageType {
  /** The `ggml_type` id (GGUF tensor infos): F16 1, Q8_0 8, Q4_K 12, BF16 30, ... */
  readonly id: number;
  /** Name as llama.cpp prints it (`F16`, `Q8_0`, `Q4_K`). */
  readonly name: string;
  /** Elements per block (1 for F16/BF16, 32 for Q8_0, 256 for the K-quants). */
  readonly blockSize: number;
  /** Bytes per block (2 for F16, 34 for Q8_0, 144 for Q4_K). */
  readonly blockBytes: number;
}

/**
 * One tensor as a file stores it: F16, BF16 or ggml block bytes. `shape` is torch order
 * (outermost first); a row is the last dimension (ggml `ne[0]`), stored as
 * `cols / blockSize` whole blocks, rows one after another (`rows · rowBytes` bytes).
 */
export interface StoredTensor {
  /** Dimensions, outermost first; the last is the row length. */
  shape: number[];
  /** The storage type. */
  type: StorageType;
  /** `rows × (cols / blockSize) × blockBytes` bytes (a view on the file, or one copy). */
  bytes: Uint8Array;
  /** Absent: see {@linkcode F32Tensor}. */
  data?: undefined;
}

/** A tensor of a model: F32 values, or the bytes of its stored type. */
export type Tensor = F32Tensor | StoredTensor;

/**
 * All weights of a model under canonical names (`tok_embeddings.weight`,
 * `layers.{i}.attn.wq.weight`, ...). Matrices are `(out_features, in_features)` row-major,
 * like `torch.nn.Linear.weight`; each tensor F32 or stored ({@linkcode Tensor}).
 */
export type Weights = Map<string, Tensor>;

/** Weights that are all F32 (what the reference, the JS kernels and the writers take). */
export type F32Weights = Map<string, F32Tensor>;

/**
 * Bytes a tensor of `shape` takes in `type` (rows of whole blocks).
 *
 * @param type The storage type.
 * @param shape Torch-order shape; the last dimension is the row length.
 * @returns `rows · cols / blockSize · blockBytes`.
 * @throws {RangeError} when the row length is not a multiple of the block size.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { storedBytes } from "./weights.ts";
 * const Q4_K = { id: 12, name: "Q4_K", blockSize: 256, blockBytes: 144 };
 * assert.equal(storedBytes(Q4_K, [2048, 768]), 2048 * 3 * 144);
 * ```
 */
export function storedBytes(type: StorageType, shape: readonly number[]): number {
  const cols = shape.length ? shape[shape.length - 1] : 1;
  const rows = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  if (cols % type.blockSize !== 0) {
    throw new RangeError(
      `row length ${cols} is not a multiple of the ${type.name} block size ${type.blockSize}`,
    );
  }
  return rows * (cols / type.blockSize) * type.blockBytes;
}

/**
 * Whether every tensor is F32 (narrows to {@linkcode F32Weights}).
 *
 * @param weights The weights.
 * @returns True when no tensor is stored.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { allF32, type Weights } from "./weights.ts";
 * const w: Weights = new Map([["norm.weight", { shape: [2], data: new Float32Array(2) }]]);
 * assert.ok(allF32(w));
 * ```
 */
export function allF32(weights: Weights): weights is F32Weights {
  for (const t of weights.values()) if (t.type !== undefined) return false;
  return true;
}

/**
 * The weights as F32 for a consumer that needs values (the reference, the JS kernels),
 * refusing stored tensors with the name and type of the first one.
 *
 * @param weights The weights.
 * @param who The consumer, named in the error (`the reference backend`).
 * @returns The same map, typed as F32.
 * @throws {RangeError} `<who> needs F32 weights; tensor 'X' is stored as Q4_K (dequantise
 *   with formats/quant/tensor.ts dequantizeWeights)`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireF32, type Weights } from "./weights.ts";
 * const Q8_0 = { id: 8, name: "Q8_0", blockSize: 32, blockBytes: 34 };
 * const w: Weights = new Map([["x.weight", { shape: [1, 32], type: Q8_0, bytes: new Uint8Array(34) }]]);
 * assert.throws(() => requireF32(w, "the js backend"), /tensor 'x.weight' is stored as Q8_0/);
 * ```
 */
export function requireF32(weights: Weights, who: string): F32Weights {
  for (const [name, t] of weights) {
    if (t.type !== undefined) {
      throw new RangeError(
        `${who} needs F32 weights; tensor '${name}' is stored as ${t.type.name} ` +
          `(dequantise with formats/quant/tensor.ts dequantizeWeights)`,
      );
    }
  }
  return weights as F32Weights;
}

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
  checkTensorShapes(c, new Map([...weights].map(([n, t]) => [n, t.shape])), file);
  for (const [name, t] of weights) {
    const shape = t.shape, n = shape.reduce((a, b) => a * b, 1);
    if (t.type !== undefined) {
      let want: number;
      try {
        want = storedBytes(t.type, shape);
      } catch (e) {
        throw new FormatError(file, `tensor '${name}' (${t.type.name}): ${(e as Error).message}`);
      }
      if (t.bytes.length !== want) {
        throw new FormatError(
          file,
          `tensor '${name}' (${t.type.name} [${shape}]) holds ${t.bytes.length} bytes, ` +
            `expected ${want}`,
        );
      }
    } else if (t.data.length !== n) {
      throw new FormatError(file, `tensor '${name}' holds ${t.data.length} values, expected ${n}`);
    }
  }
}

/**
 * The shape part of {@linkcode checkWeights}, for tensors known by their shapes alone (a
 * header read without the data): exactly the tensors `c` requires, each with the right
 * shape, the count compared first.
 *
 * @param c The model config.
 * @param shapes Tensor name → shape.
 * @param file The checkpoint path, named in errors.
 * @throws {FormatError} as {@linkcode checkWeights} for a missing, mis-shaped or unexpected
 *   tensor, or tensor counts a whole layer apart.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { checkTensorShapes, expectedShapes } from "./weights.ts";
 * const c = parseConfig({ arch: "gpt2", vocab_size: 64, dim: 32, n_layers: 1, n_heads: 2,
 *   hidden_dim: 64, context_length: 16, norm: "layernorm", norm_eps: 1e-5, mlp: "gelu",
 *   tie_embeddings: true }, "<example>");
 * const shapes = expectedShapes(c);
 * checkTensorShapes(c, shapes, "m.safetensors"); // passes
 * shapes.set("norm.bias", [31]);
 * assert.throws(() => checkTensorShapes(c, shapes, "m.safetensors"), /has shape \[31\], expected \[32\]/);
 * ```
 */
export function checkTensorShapes(
  c: ModelConfig,
  shapes: ReadonlyMap<string, readonly number[]>,
  file: string,
): void {
  const count = expectedTensorCount(c);
  const layerRows = tensorRows(c).filter(isPerLayer);
  if (Math.abs(count - shapes.size) >= layerRows.length) {
    const held = layersHeld(shapes.keys(), new Set(layerRows.map((r) => r.name)));
    throw new FormatError(
      file,
      `holds ${shapes.size} tensors (${
        held ? `layers 0..${held - 1}` : "no layers"
      }) but the config's n_layers ` +
        `${c.n_layers} needs ${count}`,
    );
  }
  const want = expectedShapes(c);
  for (const [name, shape] of want) {
    const got = shapes.get(name);
    if (!got) {
      throw new FormatError(file, `tensor '${name}' is missing (expected shape [${shape}])`);
    }
    const same = got.length === shape.length && got.every((d, i) => d === shape[i]);
    if (!same) {
      throw new FormatError(
        file,
        `tensor '${name}' has shape [${got}], expected [${shape}] from the config`,
      );
    }
  }
  for (const name of shapes.keys()) {
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
export function randomWeights(c: ModelConfig, seed: number): F32Weights {
  let s = (seed | 0) || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 4294967296) * 2 - 1; // U(-1, 1)
  };
  const out: F32Weights = new Map();
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
