/**
 * The one table of gollm's canonical tensor names, as llama.cpp's `llm_tensor` enum with
 * `LLM_TENSOR_NAMES` and `LLM_TN` (src/llama-arch.cpp) are for llama.cpp.
 *
 * Every tensor a model can hold is one row of {@linkcode TENSOR_NAMES}:
 *
 * | field      | what it says                                                                |
 * |------------|-----------------------------------------------------------------------------|
 * | `kind`     | the tensor's role (`attn_q`), with `param` (`weight` or `bias`)               |
 * | `name`     | canonical name pattern, `{i}` = layer: `layers.{i}.attn.wq.weight`            |
 * | `shape`    | torch-order shape as a function of the config: `[n_heads*head_dim, dim]`      |
 * | `when`     | whether the config has it (arch, norm kind, bias, tied embeddings, MLP kind)  |
 * | `gguf`     | the GGUF name (`blk.{i}.attn_q.weight`), per MLP kind where it differs          |
 * | `ggufFused`| the fused GGUF tensor it may also come from (`blk.{i}.attn_qkv.weight`, part 0)|
 * | `ggufArch` | a GGUF architecture's own source (phi3: w1, w3 = parts of `ffn_up`)           |
 * | `hf`       | Hugging Face source per family (`llama`: Llama/Mistral/Qwen2/Qwen3, `gemma`:   |
 * |            | Gemma 2/3, `phi3`: Phi-3/Phi-4-mini, `gpt2`)                                  |
 * | `llama2c`  | its position in a llama2.c checkpoint, `[v0, v1]` (arrays stacked over layers)  |
 *
 * From it are derived: {@linkcode tensorRows} / `expectedShapes` (core/weights.ts), the GGUF
 * name map (formats/gguf/checkpoint.ts), the HF maps with their transposed and fused sources
 * (formats/hf.ts), and the llama2.c layout (formats/llama2c.ts). A source that is `fused`
 * holds several rows stacked along its first (output) axis in `part` order, each row as many
 * output rows as its own shape says; `transpose` marks GPT-2's `Conv1D` layout `(in, out)`;
 * `add` is a constant added at load (Gemma's RMSNorm computes `x · (1 + w)`: 1 is added to
 * every Gemma norm weight, as llama.cpp's convert_hf_to_gguf.py does).
 *
 * A new architecture adds rows and conditions, not code: Qwen3's and Gemma 3's `attn_q_norm`
 * / `attn_k_norm` (GGUF `blk.{i}.attn_q_norm.weight`, HF `self_attn.q_norm.weight`, when
 * `qk_norm`), Gemma's `attn_post_norm` / `ffn_post_norm` (GGUF `post_attention_norm` /
 * `post_ffw_norm`, when `post_norms`; note that HF Gemma's `post_attention_layernorm` is this
 * post-attention norm, while Llama's is the pre-MLP `ffn_norm`), Phi-3's fused `qkv_proj` /
 * `gate_up_proj` (the `hf.phi3` sources of wq/wk/wv share one name with parts 0, 1, 2; those of
 * w1/w3 another with parts 0, 1).
 *
 * Matrices are `(out_features, in_features)` row-major, like `torch.nn.Linear.weight`.
 * `w1`/`w3`/`w2` follow Meta's Llama naming: w1 is the gate of SwiGLU (GELU's only input
 * projection, `c_fc`), w3 SwiGLU's up projection, w2 the down projection.
 *
 * @module
 */
import type { ModelConfig } from "./config.ts";

/** The role of a tensor (llama.cpp `LLM_TENSOR_*`, lower case, in gollm's terms). */
export type TensorKind =
  | "token_embd"
  | "pos_embd"
  | "attn_norm"
  | "attn_q"
  | "attn_k"
  | "attn_v"
  | "attn_q_norm"
  | "attn_k_norm"
  | "attn_out"
  | "attn_post_norm"
  | "ffn_norm"
  | "ffn_w1"
  | "ffn_w3"
  | "ffn_w2"
  | "ffn_post_norm"
  | "output_norm"
  | "output";

/**
 * Hugging Face model families whose names the table holds: `llama` (Llama, Mistral, Qwen2,
 * Qwen3), `gemma` (Gemma 2, Gemma 3 text), `phi3` (Phi-3, Phi-4-mini), `gpt2`.
 */
export type HfFamily = "llama" | "gemma" | "phi3" | "gpt2";

/** Where a canonical tensor is stored in another format. */
export interface TensorSource {
  /** Stored name pattern (`{i}` = layer), e.g. `model.layers.{i}.self_attn.q_proj.weight`. */
  name: string;
  /** Stored `(in, out)` (GPT-2 `Conv1D`): transpose to get the canonical `(out, in)`. */
  transpose?: boolean;
  /** Index in a fused tensor that stacks several rows along the output axis, in `part` order. */
  part?: number;
  /** A constant added to every value at load (Gemma's `1 + w` norms). */
  add?: number;
}

/** One row of {@linkcode TENSOR_NAMES}: one tensor a model can hold. */
export interface TensorNameRow {
  /** The tensor's role. */
  kind: TensorKind;
  /** `weight` or `bias`. */
  param: "weight" | "bias";
  /** Canonical name pattern; `{i}` marks a per-layer tensor. */
  name: string;
  /** Torch-order shape for a config. */
  shape: (c: ModelConfig) => number[];
  /** Whether a model with this config has the tensor. */
  when: (c: ModelConfig) => boolean;
  /** GGUF name pattern, or one per MLP kind when the two differ. */
  gguf: string | Record<ModelConfig["mlp"], string>;
  /** The fused GGUF tensor this row may instead be a part of (gpt2 `attn_qkv`). */
  ggufFused?: TensorSource;
  /** Per GGUF architecture, the source that replaces `gguf` (phi3's fused `ffn_up`). */
  ggufArch?: Record<string, TensorSource>;
  /** Hugging Face source per family; absent = that family has no such tensor. */
  hf: Partial<Record<HfFamily, TensorSource>>;
  /** Position among the arrays of a llama2.c checkpoint `[v0, v1]`; absent = not stored. */
  llama2c?: [number, number];
}

const always = () => true;
const qkNorm = (c: ModelConfig) => c.qk_norm;
const postNorms = (c: ModelConfig) => c.post_norms;
const gated = (c: ModelConfig) => c.mlp !== "gelu";
const layernorm = (c: ModelConfig) => c.norm === "layernorm";
/** GPT-2 has a bias on every linear layer. */
const gpt2 = (c: ModelConfig) => c.arch === "gpt2";
const qkvBias = (c: ModelConfig) => c.attn_bias;
const qDim = (c: ModelConfig) => c.n_heads * c.head_dim;
const kvDim = (c: ModelConfig) => c.n_kv_heads * c.head_dim;
const vec = (c: ModelConfig) => [c.dim];

/** HF base-model prefixes (`base_model_prefix`): names may be stored with or without them. */
export const HF_BASE_PREFIX: Record<HfFamily, string> = {
  llama: "model.",
  gemma: "model.",
  phi3: "model.",
  gpt2: "transformer.",
};

const hfL = (s: string, more: Omit<TensorSource, "name"> = {}): TensorSource => ({
  name: `model.layers.{i}.${s}`,
  ...more,
});
/** A Gemma norm weight: stored as w, computed as 1 + w. */
const gemmaNorm = (s: string): TensorSource => hfL(s, { add: 1 });
const LLAMA_LIKE = (s: string) => ({ llama: hfL(s), gemma: hfL(s), phi3: hfL(s) });
const hfG = (s: string, more: Omit<TensorSource, "name"> = {}): TensorSource => ({
  name: `transformer.h.{i}.${s}`,
  ...more,
});

/**
 * Every tensor gollm knows, in checkpoint order (globals before, then per-layer, then
 * globals after). See the module doc for the meaning of each field.
 */
export const TENSOR_NAMES: readonly TensorNameRow[] = [
  {
    kind: "token_embd",
    param: "weight",
    name: "tok_embeddings.weight",
    shape: (c) => [c.vocab_size, c.dim],
    when: always,
    gguf: "token_embd.weight",
    hf: {
      llama: { name: "model.embed_tokens.weight" },
      gemma: { name: "model.embed_tokens.weight" },
      phi3: { name: "model.embed_tokens.weight" },
      gpt2: { name: "transformer.wte.weight" },
    },
    llama2c: [0, 3],
  },
  {
    kind: "pos_embd",
    param: "weight",
    name: "pos_embeddings.weight",
    shape: (c) => [c.context_length, c.dim],
    when: gpt2,
    gguf: "position_embd.weight",
    hf: { gpt2: { name: "transformer.wpe.weight" } },
  },
  {
    kind: "attn_norm",
    param: "weight",
    name: "layers.{i}.attn_norm.weight",
    shape: vec,
    when: always,
    gguf: "blk.{i}.attn_norm.weight",
    hf: {
      llama: hfL("input_layernorm.weight"),
      gemma: gemmaNorm("input_layernorm.weight"),
      phi3: hfL("input_layernorm.weight"),
      gpt2: hfG("ln_1.weight"),
    },
    llama2c: [1, 0],
  },
  {
    kind: "attn_norm",
    param: "bias",
    name: "layers.{i}.attn_norm.bias",
    shape: vec,
    when: layernorm,
    gguf: "blk.{i}.attn_norm.bias",
    hf: { gpt2: hfG("ln_1.bias") },
  },
  {
    kind: "attn_q",
    param: "weight",
    name: "layers.{i}.attn.wq.weight",
    shape: (c) => [qDim(c), c.dim],
    when: always,
    gguf: "blk.{i}.attn_q.weight",
    ggufFused: { name: "blk.{i}.attn_qkv.weight", part: 0 },
    hf: {
      llama: hfL("self_attn.q_proj.weight"),
      gemma: hfL("self_attn.q_proj.weight"),
      phi3: hfL("self_attn.qkv_proj.weight", { part: 0 }),
      gpt2: hfG("attn.c_attn.weight", { transpose: true, part: 0 }),
    },
    llama2c: [2, 4],
  },
  {
    kind: "attn_q",
    param: "bias",
    name: "layers.{i}.attn.wq.bias",
    shape: (c) => [qDim(c)],
    when: qkvBias,
    gguf: "blk.{i}.attn_q.bias",
    ggufFused: { name: "blk.{i}.attn_qkv.bias", part: 0 },
    hf: { llama: hfL("self_attn.q_proj.bias"), gpt2: hfG("attn.c_attn.bias", { part: 0 }) },
  },
  {
    kind: "attn_k",
    param: "weight",
    name: "layers.{i}.attn.wk.weight",
    shape: (c) => [kvDim(c), c.dim],
    when: always,
    gguf: "blk.{i}.attn_k.weight",
    ggufFused: { name: "blk.{i}.attn_qkv.weight", part: 1 },
    hf: {
      llama: hfL("self_attn.k_proj.weight"),
      gemma: hfL("self_attn.k_proj.weight"),
      phi3: hfL("self_attn.qkv_proj.weight", { part: 1 }),
      gpt2: hfG("attn.c_attn.weight", { transpose: true, part: 1 }),
    },
    llama2c: [3, 5],
  },
  {
    kind: "attn_k",
    param: "bias",
    name: "layers.{i}.attn.wk.bias",
    shape: (c) => [kvDim(c)],
    when: qkvBias,
    gguf: "blk.{i}.attn_k.bias",
    ggufFused: { name: "blk.{i}.attn_qkv.bias", part: 1 },
    hf: { llama: hfL("self_attn.k_proj.bias"), gpt2: hfG("attn.c_attn.bias", { part: 1 }) },
  },
  {
    kind: "attn_v",
    param: "weight",
    name: "layers.{i}.attn.wv.weight",
    shape: (c) => [kvDim(c), c.dim],
    when: always,
    gguf: "blk.{i}.attn_v.weight",
    ggufFused: { name: "blk.{i}.attn_qkv.weight", part: 2 },
    hf: {
      llama: hfL("self_attn.v_proj.weight"),
      gemma: hfL("self_attn.v_proj.weight"),
      phi3: hfL("self_attn.qkv_proj.weight", { part: 2 }),
      gpt2: hfG("attn.c_attn.weight", { transpose: true, part: 2 }),
    },
    llama2c: [4, 6],
  },
  {
    kind: "attn_v",
    param: "bias",
    name: "layers.{i}.attn.wv.bias",
    shape: (c) => [kvDim(c)],
    when: qkvBias,
    gguf: "blk.{i}.attn_v.bias",
    ggufFused: { name: "blk.{i}.attn_qkv.bias", part: 2 },
    hf: { llama: hfL("self_attn.v_proj.bias"), gpt2: hfG("attn.c_attn.bias", { part: 2 }) },
  },
  {
    kind: "attn_q_norm",
    param: "weight",
    name: "layers.{i}.attn.q_norm.weight",
    shape: (c) => [c.head_dim],
    when: qkNorm,
    gguf: "blk.{i}.attn_q_norm.weight",
    hf: { llama: hfL("self_attn.q_norm.weight"), gemma: gemmaNorm("self_attn.q_norm.weight") },
  },
  {
    kind: "attn_k_norm",
    param: "weight",
    name: "layers.{i}.attn.k_norm.weight",
    shape: (c) => [c.head_dim],
    when: qkNorm,
    gguf: "blk.{i}.attn_k_norm.weight",
    hf: { llama: hfL("self_attn.k_norm.weight"), gemma: gemmaNorm("self_attn.k_norm.weight") },
  },
  {
    kind: "attn_out",
    param: "weight",
    name: "layers.{i}.attn.wo.weight",
    shape: (c) => [c.dim, qDim(c)],
    when: always,
    gguf: "blk.{i}.attn_output.weight",
    hf: {
      ...LLAMA_LIKE("self_attn.o_proj.weight"),
      gpt2: hfG("attn.c_proj.weight", { transpose: true }),
    },
    llama2c: [5, 7],
  },
  {
    kind: "attn_out",
    param: "bias",
    name: "layers.{i}.attn.wo.bias",
    shape: vec,
    when: gpt2,
    gguf: "blk.{i}.attn_output.bias",
    hf: { gpt2: hfG("attn.c_proj.bias") },
  },
  {
    kind: "attn_post_norm",
    param: "weight",
    name: "layers.{i}.attn_post_norm.weight",
    shape: vec,
    when: postNorms,
    gguf: "blk.{i}.post_attention_norm.weight",
    hf: { gemma: gemmaNorm("post_attention_layernorm.weight") },
  },
  {
    kind: "ffn_norm",
    param: "weight",
    name: "layers.{i}.ffn_norm.weight",
    shape: vec,
    when: always,
    gguf: "blk.{i}.ffn_norm.weight",
    hf: {
      llama: hfL("post_attention_layernorm.weight"),
      gemma: gemmaNorm("pre_feedforward_layernorm.weight"),
      phi3: hfL("post_attention_layernorm.weight"),
      gpt2: hfG("ln_2.weight"),
    },
    llama2c: [6, 1],
  },
  {
    kind: "ffn_norm",
    param: "bias",
    name: "layers.{i}.ffn_norm.bias",
    shape: vec,
    when: layernorm,
    gguf: "blk.{i}.ffn_norm.bias",
    hf: { gpt2: hfG("ln_2.bias") },
  },
  {
    kind: "ffn_w1",
    param: "weight",
    name: "layers.{i}.ffn.w1.weight",
    shape: (c) => [c.hidden_dim, c.dim],
    when: always,
    gguf: {
      swiglu: "blk.{i}.ffn_gate.weight",
      geglu: "blk.{i}.ffn_gate.weight",
      gelu: "blk.{i}.ffn_up.weight",
    },
    ggufArch: { phi3: { name: "blk.{i}.ffn_up.weight", part: 0 } },
    hf: {
      llama: hfL("mlp.gate_proj.weight"),
      gemma: hfL("mlp.gate_proj.weight"),
      phi3: hfL("mlp.gate_up_proj.weight", { part: 0 }),
      gpt2: hfG("mlp.c_fc.weight", { transpose: true }),
    },
    llama2c: [7, 8],
  },
  {
    kind: "ffn_w1",
    param: "bias",
    name: "layers.{i}.ffn.w1.bias",
    shape: (c) => [c.hidden_dim],
    when: gpt2,
    gguf: {
      swiglu: "blk.{i}.ffn_gate.bias",
      geglu: "blk.{i}.ffn_gate.bias",
      gelu: "blk.{i}.ffn_up.bias",
    },
    hf: { gpt2: hfG("mlp.c_fc.bias") },
  },
  {
    kind: "ffn_w3",
    param: "weight",
    name: "layers.{i}.ffn.w3.weight",
    shape: (c) => [c.hidden_dim, c.dim],
    when: gated,
    gguf: "blk.{i}.ffn_up.weight",
    ggufArch: { phi3: { name: "blk.{i}.ffn_up.weight", part: 1 } },
    hf: {
      llama: hfL("mlp.up_proj.weight"),
      gemma: hfL("mlp.up_proj.weight"),
      phi3: hfL("mlp.gate_up_proj.weight", { part: 1 }),
    },
    llama2c: [9, 10],
  },
  {
    kind: "ffn_w2",
    param: "weight",
    name: "layers.{i}.ffn.w2.weight",
    shape: (c) => [c.dim, c.hidden_dim],
    when: always,
    gguf: "blk.{i}.ffn_down.weight",
    hf: {
      ...LLAMA_LIKE("mlp.down_proj.weight"),
      gpt2: hfG("mlp.c_proj.weight", { transpose: true }),
    },
    llama2c: [8, 9],
  },
  {
    kind: "ffn_w2",
    param: "bias",
    name: "layers.{i}.ffn.w2.bias",
    shape: vec,
    when: gpt2,
    gguf: "blk.{i}.ffn_down.bias",
    hf: { gpt2: hfG("mlp.c_proj.bias") },
  },
  {
    kind: "ffn_post_norm",
    param: "weight",
    name: "layers.{i}.ffn_post_norm.weight",
    shape: vec,
    when: postNorms,
    gguf: "blk.{i}.post_ffw_norm.weight",
    hf: { gemma: gemmaNorm("post_feedforward_layernorm.weight") },
  },
  {
    kind: "output_norm",
    param: "weight",
    name: "norm.weight",
    shape: vec,
    when: always,
    gguf: "output_norm.weight",
    hf: {
      llama: { name: "model.norm.weight" },
      gemma: { name: "model.norm.weight", add: 1 },
      phi3: { name: "model.norm.weight" },
      gpt2: { name: "transformer.ln_f.weight" },
    },
    llama2c: [10, 2],
  },
  {
    kind: "output_norm",
    param: "bias",
    name: "norm.bias",
    shape: vec,
    when: layernorm,
    gguf: "output_norm.bias",
    hf: { gpt2: { name: "transformer.ln_f.bias" } },
  },
  {
    kind: "output",
    param: "weight",
    name: "output.weight",
    shape: (c) => [c.vocab_size, c.dim],
    when: (c) => !c.tie_embeddings,
    gguf: "output.weight",
    hf: {
      llama: { name: "lm_head.weight" },
      gemma: { name: "lm_head.weight" },
      phi3: { name: "lm_head.weight" },
      gpt2: { name: "lm_head.weight" },
    },
    llama2c: [11, 11],
  },
];

/** Whether a row (or a name pattern) is per layer. */
export function isPerLayer(row: Pick<TensorNameRow, "name">): boolean {
  return row.name.includes("{i}");
}

/**
 * A name pattern with `{i}` replaced by the layer index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fillLayer } from "./tensor_names.ts";
 * assert.equal(fillLayer("blk.{i}.attn_q.weight", 3), "blk.3.attn_q.weight");
 * ```
 */
export function fillLayer(pattern: string, layer: number): string {
  return pattern.replace("{i}", String(layer));
}

/**
 * The canonical name of a tensor (for code that builds the forward pass: codegen/graph.ts,
 * runtime/reference.ts).
 *
 * @param kind The tensor's role.
 * @param layer The layer index (ignored for global tensors).
 * @param param `weight` (default) or `bias`.
 * @returns e.g. `layers.3.attn.wq.weight`.
 * @throws {RangeError} for a kind/param pair the table does not hold (a programming error).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tensorName } from "./tensor_names.ts";
 * assert.equal(tensorName("attn_q", 3), "layers.3.attn.wq.weight");
 * assert.equal(tensorName("ffn_w2", 0, "bias"), "layers.0.ffn.w2.bias");
 * assert.equal(tensorName("token_embd"), "tok_embeddings.weight");
 * ```
 */
export function tensorName(
  kind: TensorKind,
  layer = 0,
  param: "weight" | "bias" = "weight",
): string {
  const row = TENSOR_NAMES.find((r) => r.kind === kind && r.param === param);
  if (!row) throw new RangeError(`tensorName: no ${kind} ${param} in TENSOR_NAMES`);
  return fillLayer(row.name, layer);
}

/**
 * The rows a config has (its `when` holds), in checkpoint order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { tensorRows } from "./tensor_names.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 32, dim: 16, n_layers: 2, n_heads: 2,
 *   hidden_dim: 32, context_length: 8, norm: "rmsnorm", norm_eps: 1e-5, mlp: "swiglu",
 *   tie_embeddings: true }, "<example>");
 * assert.equal(tensorRows(c).length, 11); // embeddings, 9 per layer, final norm
 * ```
 */
export function tensorRows(c: ModelConfig): TensorNameRow[] {
  return TENSOR_NAMES.filter((r) => r.when(c));
}

/**
 * How many canonical tensors a config has, computed without enumerating layers (so a
 * config claiming 10^8 layers is compared with a file's tensor count in microseconds).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { expectedTensorCount } from "./tensor_names.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 32, dim: 16, n_layers: 2, n_heads: 2,
 *   hidden_dim: 32, context_length: 8, norm: "rmsnorm", norm_eps: 1e-5, mlp: "swiglu",
 *   tie_embeddings: false }, "<example>");
 * assert.equal(expectedTensorCount(c), 2 + 2 * 9 + 1);
 * ```
 */
export function expectedTensorCount(c: ModelConfig): number {
  let n = 0;
  for (const r of tensorRows(c)) n += isPerLayer(r) ? c.n_layers : 1;
  return n;
}

/**
 * The GGUF name pattern of a row for a model's MLP kind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufPattern, TENSOR_NAMES } from "./tensor_names.ts";
 * const w1 = TENSOR_NAMES.find((r) => r.name === "layers.{i}.ffn.w1.weight")!;
 * assert.equal(ggufPattern(w1, "swiglu"), "blk.{i}.ffn_gate.weight");
 * assert.equal(ggufPattern(w1, "gelu"), "blk.{i}.ffn_up.weight");
 * ```
 */
export function ggufPattern(row: TensorNameRow, mlp: ModelConfig["mlp"]): string {
  return typeof row.gguf === "string" ? row.gguf : row.gguf[mlp];
}

/**
 * Splits a concrete tensor name into its pattern and layer: the first `.<digits>.` becomes
 * `.{i}.` (`blk.3.attn_q.weight` → `["blk.{i}.attn_q.weight", 3]`); a name without one is
 * its own pattern with layer -1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { patternOf } from "./tensor_names.ts";
 * assert.deepEqual(patternOf("model.layers.12.mlp.up_proj.weight"), ["model.layers.{i}.mlp.up_proj.weight", 12]);
 * assert.deepEqual(patternOf("output.weight"), ["output.weight", -1]);
 * ```
 */
export function patternOf(name: string): [string, number] {
  const m = /^(.*?)\.(\d{1,9})\.(.*)$/.exec(name);
  if (!m) return [name, -1];
  return [`${m[1]}.{i}.${m[3]}`, Number(m[2])];
}

/**
 * How many layers a set of stored names covers: 1 + the highest layer index of any name
 * that matches one of `patterns` (0 when none does). Used to compare a config's `n_layers`
 * with what a file holds before anything per layer is built.
 *
 * @param names Stored tensor names.
 * @param patterns Per-layer name patterns of the format (`blk.{i}.attn_q.weight`, ...).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layersHeld } from "./tensor_names.ts";
 * const names = ["blk.0.attn_q.weight", "blk.4.attn_q.weight", "output.weight"];
 * assert.equal(layersHeld(names, new Set(["blk.{i}.attn_q.weight"])), 5);
 * ```
 */
export function layersHeld(names: Iterable<string>, patterns: ReadonlySet<string>): number {
  let n = 0;
  for (const name of names) {
    const [p, layer] = patternOf(name);
    if (layer >= 0 && patterns.has(p)) n = Math.max(n, layer + 1);
  }
  return n;
}
