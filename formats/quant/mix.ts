/**
 * llama.cpp's quantisation mixes: which ggml type each tensor of a model gets for a file type
 * such as `q4_k_m`. A port of `llama_tensor_get_type` (src/llama-quant.cpp) for the file types
 * gollm writes, without an importance matrix and for dense (non-MoE) models:
 *
 * - only tensors with ≥ 2 dims whose name ends in `weight` (not `*_norm.weight`, not
 *   `position_embd.weight`) are quantised; the rest keep their type (F32);
 * - `output.weight`, and `token_embd.weight` when the embeddings are tied (no
 *   `output.weight`), get Q6_K (Q8_0 stays Q8_0; Q8_0 when the row is not a block multiple);
 * - `attn_v` (and a fused `attn_qkv`): Q6_K for `*_k_m` in the layers `use_more_bits` picks
 *   (first and last eighth, every third between), Q5_K for the first 4 in `q4_k_s`, Q3_K/Q4_K
 *   (by GQA ratio) for `q2_k`, Q5_K for `q3_k_l`, ...;
 * - `ffn_down`: Q6_K in the `use_more_bits` layers for `*_k_m`, Q5_K in the first eighth for
 *   `q4_k_s`, Q3_K for `q2_k`, ...; `attn_output`: Q3_K for `q2_k`, Q4_K for `q3_k_m`, Q5_K for
 *   `q3_k_l`;
 * - a row length that is not a multiple of the chosen type's block falls back
 *   (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, then F16).
 *
 * Layer-counted rules use the layer index (llama.cpp counts tensors in the order of its
 * `weight_name_comparer`, layer then name, which for dense models is the same number).
 *
 * @module
 */
import { GollmError } from "../../core/errors.ts";
import { type GgmlType, ggmlTypeByName } from "../quant.ts";

/** A `llama-quantize` file type (`llama_ftype`) with its id and default tensor type. */
export interface FileType {
  /** Lower-case name as `llama-quantize` spells it (`q4_k_m`). */
  name: string;
  /** `llama_ftype` value, written as `general.file_type`. */
  id: number;
  /** The type most 2-D weights get. */
  defaultType: string;
}

/** The file types gollm can write, in `llama_ftype` order. */
export const FILE_TYPES: readonly FileType[] = [
  { name: "f32", id: 0, defaultType: "F32" },
  { name: "f16", id: 1, defaultType: "F16" },
  { name: "q4_0", id: 2, defaultType: "Q4_0" },
  { name: "q4_1", id: 3, defaultType: "Q4_1" },
  { name: "q8_0", id: 7, defaultType: "Q8_0" },
  { name: "q5_0", id: 8, defaultType: "Q5_0" },
  { name: "q5_1", id: 9, defaultType: "Q5_1" },
  { name: "q2_k", id: 10, defaultType: "Q2_K" },
  { name: "q3_k_s", id: 11, defaultType: "Q3_K" },
  { name: "q3_k_m", id: 12, defaultType: "Q3_K" },
  { name: "q3_k_l", id: 13, defaultType: "Q3_K" },
  { name: "q4_k_s", id: 14, defaultType: "Q4_K" },
  { name: "q4_k_m", id: 15, defaultType: "Q4_K" },
  { name: "q5_k_s", id: 16, defaultType: "Q5_K" },
  { name: "q5_k_m", id: 17, defaultType: "Q5_K" },
  { name: "q6_k", id: 18, defaultType: "Q6_K" },
  { name: "bf16", id: 32, defaultType: "BF16" },
];

/**
 * Looks up a file type by name (case-insensitive; `q4_k` and `q3_k` mean `q4_k_m` and
 * `q3_k_m`, `q5_k` means `q5_k_m`, as in `llama-quantize`).
 *
 * @param name E.g. `q4_k_m`, `Q8_0`, `f16`.
 * @returns The file type.
 * @throws {GollmError} naming the value and listing the choices.
 *
 * @example
 * ```ts
 * import { fileType } from "./mix.ts";
 * if (fileType("Q4_K_M").id !== 15 || fileType("q4_k").name !== "q4_k_m") throw new Error();
 * ```
 */
export function fileType(name: string): FileType {
  const alias: Record<string, string> = { q3_k: "q3_k_m", q4_k: "q4_k_m", q5_k: "q5_k_m" };
  const key = name.toLowerCase();
  const ft = FILE_TYPES.find((f) => f.name === (alias[key] ?? key));
  if (!ft) {
    throw new GollmError(
      `quantisation type '${name}' is not supported (expected one of ${
        FILE_TYPES.map((f) => f.name).join(", ")
      })`,
    );
  }
  return ft;
}

/** What the mix rules need to know about the model. */
export interface MixModel {
  /** GGUF architecture (`llama`, `qwen2`, `gpt2`). */
  arch: string;
  /** Number of blocks (`n_layer`). */
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads. */
  nKvHeads: number;
  /** Whether the file has no `output.weight` (the LM head reuses `token_embd.weight`). */
  tiedEmbeddings: boolean;
}

/** Broad tensor categories (llama-quant.cpp `tensor_category`). */
type Category =
  | "token_embd"
  | "attn_q"
  | "attn_k"
  | "attn_v"
  | "attn_qkv"
  | "attn_output"
  | "ffn_up"
  | "ffn_gate"
  | "ffn_down"
  | "output"
  | "other";

function category(name: string): Category {
  if (name === "output.weight") return "output";
  if (name === "token_embd.weight") return "token_embd";
  for (const c of ["attn_qkv", "attn_v", "attn_k", "attn_q", "attn_output"] as const) {
    if (name.includes(`${c}.weight`)) return c;
  }
  for (const c of ["ffn_up", "ffn_gate", "ffn_down"] as const) if (name.includes(c)) return c;
  return "other";
}

/**
 * llama.cpp's `use_more_bits`: the first and last eighth of the layers, and every third
 * layer between (C integer division).
 *
 * @param i Layer index.
 * @param n Layer count.
 * @returns Whether layer `i` gets the larger type.
 *
 * @example
 * ```ts
 * import { useMoreBits } from "./mix.ts";
 * const picked = [...Array(16).keys()].filter((i) => useMoreBits(i, 16));
 * if (picked.join() !== "0,1,4,7,10,13,14,15") throw new Error(picked.join());
 * ```
 */
export function useMoreBits(i: number, n: number): boolean {
  const e = Math.trunc(n / 8);
  return i < e || i >= Math.trunc((7 * n) / 8) || (i - e) % 3 === 2;
}

/**
 * Whether llama.cpp quantises a tensor at all (`tensor_allows_quantization`, the parts that
 * apply to the architectures gollm writes).
 *
 * @param name GGUF tensor name.
 * @param nDims Number of dimensions.
 * @returns False for 1-D tensors, norms, position embeddings and non-`weight` tensors.
 *
 * @example
 * ```ts
 * import { allowsQuantization } from "./mix.ts";
 * if (allowsQuantization("output_norm.weight", 1) || !allowsQuantization("output.weight", 2)) {
 *   throw new Error();
 * }
 * ```
 */
export function allowsQuantization(name: string, nDims: number): boolean {
  return nDims >= 2 && name.endsWith("weight") && !name.includes("_norm.weight") &&
    name !== "position_embd.weight";
}

/** The block-size fallback of `tensor_type_fallback`. */
function fallback(type: string, cols: number, name: string): string {
  if (cols % ggmlTypeByName(type)!.blockSize === 0) return type;
  const next: Record<string, string> = {
    Q2_K: "Q4_0",
    Q3_K: "Q4_0",
    Q4_K: "Q5_0",
    Q5_K: "Q5_1",
    Q6_K: "Q8_0",
  };
  if (!next[type]) {
    throw new GollmError(
      `tensor '${name}': row length ${cols} is not a multiple of the ${type} block size ${
        ggmlTypeByName(type)!.blockSize
      } and ${type} has no fallback type (llama-quantize refuses it too)`,
    );
  }
  return cols % 32 === 0 ? next[type] : "F16";
}

/**
 * The ggml type llama.cpp's `llama_tensor_get_type` gives a tensor under a file type.
 *
 * @param name GGUF tensor name (`blk.3.ffn_down.weight`).
 * @param shape Torch-order shape (the row length is the last dimension).
 * @param ft The file type.
 * @param model Architecture, layer and head counts, tied embeddings.
 * @returns The type to store the tensor in; `null` when the tensor is not quantised and keeps
 *   its source type (1-D tensors, norms, position embeddings).
 * @throws {GollmError} when a legacy type does not fit the row length (llama.cpp has no
 *   fallback for those either).
 *
 * @example
 * ```ts
 * import { fileType, tensorType } from "./mix.ts";
 * const m = { arch: "llama", nLayers: 16, nHeads: 8, nKvHeads: 8, tiedEmbeddings: false };
 * const ft = fileType("q4_k_m");
 * if (tensorType("blk.0.ffn_down.weight", [512, 1536], ft, m)?.name !== "Q6_K") throw new Error();
 * if (tensorType("blk.3.ffn_down.weight", [512, 1536], ft, m)?.name !== "Q4_K") throw new Error();
 * if (tensorType("output.weight", [32000, 512], ft, m)?.name !== "Q6_K") throw new Error();
 * if (tensorType("blk.0.attn_norm.weight", [512], ft, m) !== null) throw new Error();
 * ```
 */
export function tensorType(
  name: string,
  shape: readonly number[],
  ft: FileType,
  model: MixModel,
): GgmlType | null {
  if (!allowsQuantization(name, shape.length)) return null;
  let t = ft.defaultType;
  const quantized = !["F32", "F16", "BF16"].includes(t);
  if (!quantized) return ggmlTypeByName(t)!;
  const cols = shape[shape.length - 1];
  const cat = category(name);
  const f = ft.name;
  const layer = Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? 0);
  const n = model.nLayers;
  const gqa = Math.trunc(model.nHeads / model.nKvHeads);
  const is70b = model.arch === "llama" && n === 80 && model.nHeads !== model.nKvHeads;
  if (cat === "output" || (model.tiedEmbeddings && cat === "token_embd")) {
    if (cols % ggmlTypeByName(t)!.blockSize !== 0) t = "Q8_0";
    else if (t !== "Q8_0") t = "Q6_K";
  } else if (cat === "token_embd") {
    // Keeps the default type for every non-IQ file type.
  } else if (cat === "attn_v" || cat === "attn_qkv") {
    if (f === "q2_k") t = gqa >= 4 ? "Q4_K" : "Q3_K";
    else if (f === "q3_k_m") t = layer < 2 ? "Q5_K" : "Q4_K";
    else if (f === "q3_k_l") t = "Q5_K";
    else if ((f === "q4_k_m" || f === "q5_k_m") && useMoreBits(layer, n)) t = "Q6_K";
    else if (f === "q4_k_s" && layer < 4) t = "Q5_K";
    if (is70b && (t === "Q3_K" || t === "Q4_K")) t = "Q5_K";
  } else if (cat === "ffn_down") {
    if (f === "q2_k") t = "Q3_K";
    else if (f === "q3_k_m") t = layer < Math.trunc(n / 16) ? "Q5_K" : "Q4_K";
    else if (f === "q3_k_l") t = "Q5_K";
    else if (f === "q4_k_m") {
      if (useMoreBits(layer, n)) t = "Q6_K";
    } else if (f === "q5_k_m" && useMoreBits(layer, n)) t = "Q6_K";
    else if (f === "q4_k_s" && layer < Math.trunc(n / 8)) t = "Q5_K";
  } else if (cat === "attn_output") {
    if (f === "q2_k") t = "Q3_K";
    else if (f === "q3_k_m") t = "Q4_K";
    else if (f === "q3_k_l") t = "Q5_K";
  }
  return ggmlTypeByName(fallback(t, cols, name))!;
}
