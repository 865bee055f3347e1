/**
 * A parsed GGUF mapped onto gollm's canonical config and tensor names (core/tensor_names.ts)
 * for the architectures `llama` (Llama 1/2/3, Mistral-style), `qwen2` and `gpt2`.
 *
 * RoPE: llama.cpp's `llama` architecture applies "normal" RoPE to adjacent pairs. GGUFs
 * converted from Hugging Face carry Q/K rows permuted by convert_hf_to_gguf.py so that this
 * equals HF's rotate-half; files converted from Meta/llama2.c weights are unpermuted and
 * interleaved natively. Either way the stored tensors with `rope_style: interleaved` compute
 * the source model. `qwen2` uses NEOX (rotate-half) RoPE on unpermuted weights → `half`.
 *
 * @module
 */
import type { Checkpoint } from "../checkpoint.ts";
import { type ModelConfig, parseConfig } from "../../core/config.ts";
import { FormatError } from "../../core/errors.ts";
import { SentencePieceTokenizer } from "../../tokenizers/sentencepiece.ts";
import { checkWeights, expectedShapes, type Weights } from "../../core/weights.ts";
import { type GgufFile, ggufTensor, type GgufTensorInfo, nm, parseGguf } from "./parse.ts";
import { meta, metaFloat, metaInt, metaString } from "./metadata.ts";
import { ggufTokenizer } from "./tokenizer.ts";

/** Per-block GGUF suffix → canonical suffix, for each architecture. */
const BLOCK_NAMES: Record<string, Record<string, string>> = {
  llama: {
    "attn_norm.weight": "attn_norm.weight",
    "attn_q.weight": "attn.wq.weight",
    "attn_q.bias": "attn.wq.bias",
    "attn_k.weight": "attn.wk.weight",
    "attn_k.bias": "attn.wk.bias",
    "attn_v.weight": "attn.wv.weight",
    "attn_v.bias": "attn.wv.bias",
    "attn_output.weight": "attn.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "ffn.w1.weight",
    "ffn_up.weight": "ffn.w3.weight",
    "ffn_down.weight": "ffn.w2.weight",
  },
  gpt2: {
    "attn_norm.weight": "attn_norm.weight",
    "attn_norm.bias": "attn_norm.bias",
    "attn_q.weight": "attn.wq.weight",
    "attn_q.bias": "attn.wq.bias",
    "attn_k.weight": "attn.wk.weight",
    "attn_k.bias": "attn.wk.bias",
    "attn_v.weight": "attn.wv.weight",
    "attn_v.bias": "attn.wv.bias",
    "attn_output.weight": "attn.wo.weight",
    "attn_output.bias": "attn.wo.bias",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_norm.bias": "ffn_norm.bias",
    "ffn_up.weight": "ffn.w1.weight",
    "ffn_up.bias": "ffn.w1.bias",
    "ffn_down.weight": "ffn.w2.weight",
    "ffn_down.bias": "ffn.w2.bias",
  },
};
BLOCK_NAMES.qwen2 = BLOCK_NAMES.llama;

const TOP_NAMES: Record<string, string> = {
  "token_embd.weight": "tok_embeddings.weight",
  "position_embd.weight": "pos_embeddings.weight",
  "output_norm.weight": "norm.weight",
  "output_norm.bias": "norm.bias",
  "output.weight": "output.weight",
};

/**
 * The GGUF tensor name that holds a canonical tensor (for error messages and writers).
 *
 * @param arch GGUF architecture (`llama`, `qwen2`, `gpt2`).
 * @param canonical Canonical name, e.g. `layers.3.ffn.w1.weight`.
 * @returns The GGUF name (`blk.3.ffn_gate.weight`), or undefined when there is none.
 *
 * @example
 * ```ts
 * import { ggufNameOf } from "./checkpoint.ts";
 * console.log(ggufNameOf("llama", "layers.3.ffn.w1.weight")); // "blk.3.ffn_gate.weight"
 * ```
 */
export function ggufNameOf(arch: string, canonical: string): string | undefined {
  for (const [g, c] of Object.entries(TOP_NAMES)) if (c === canonical) return g;
  const m = /^layers\.(\d+)\.(.+)$/.exec(canonical);
  const table = BLOCK_NAMES[arch];
  if (!m || !table) return undefined;
  for (const [g, c] of Object.entries(table)) if (c === m[2]) return `blk.${m[1]}.${g}`;
  return undefined;
}

/** Features a file may use that the engine does not implement: refuse rather than be wrong. */
function rejectUnsupported(g: GgufFile, arch: string): void {
  const scaling = metaString(g, `${arch}.rope.scaling.type`);
  if (scaling !== undefined && scaling !== "none") {
    const factor = meta(g, `${arch}.rope.scaling.factor`);
    if (!(scaling === "linear" && factor === 1)) {
      throw new FormatError(
        g.file,
        `metadata '${arch}.rope.scaling.type' = "${scaling}": RoPE scaling is not supported`,
      );
    }
  }
  if (g.tensors.some((t) => t.name === "rope_freqs.weight")) {
    throw new FormatError(
      g.file,
      "tensor 'rope_freqs.weight' (Llama-3.1-style RoPE frequency scaling) is not supported",
    );
  }
  const expertCount = meta(g, `${arch}.expert_count`);
  if (typeof expertCount === "number" && expertCount > 0) {
    throw new FormatError(
      g.file,
      `metadata '${arch}.expert_count' = ${expertCount}: mixture-of-experts models are not supported`,
    );
  }
  const window = meta(g, `${arch}.attention.sliding_window`);
  if (typeof window === "number" && window > 0) {
    const ctx = meta(g, `${arch}.context_length`);
    if (typeof ctx === "number" && window < ctx) {
      throw new FormatError(
        g.file,
        `metadata '${arch}.attention.sliding_window' = ${window} < context_length ${ctx}: sliding-window attention is not supported`,
      );
    }
  }
}

/**
 * Maps a parsed GGUF (read whole) onto a gollm {@linkcode Checkpoint}: config from
 * `{arch}.*` metadata, tensors dequantised to F32 under canonical names, tokenizer from
 * `tokenizer.ggml.*`.
 *
 * Config: `dim` = `embedding_length`, `n_layers` = `block_count`, `n_heads` =
 * `attention.head_count`, `n_kv_heads` = `attention.head_count_kv` (default n_heads),
 * `head_dim` = `attention.key_length` (default dim / n_heads; `rope.dimension_count` must
 * equal it), `hidden_dim` = `feed_forward_length`, `context_length`, `norm_eps` =
 * `attention.layer_norm_rms_epsilon` (gpt2: `attention.layer_norm_epsilon`), `rope_theta` =
 * `rope.freq_base` (default 10000), `vocab_size` from `token_embd.weight`, tied when
 * `output.weight` is absent; `llama` → `rope_style: interleaved`, `qwen2` → `half` with q/k/v
 * bias, `gpt2` → layernorm + gelu (a fused `attn_qkv` is split into wq/wk/wv).
 *
 * @param g Parsed GGUF holding the whole file.
 * @returns The checkpoint (`format: "gguf"`).
 * @throws {FormatError} for an unsupported architecture, a missing or malformed metadata
 *   key, a missing/unexpected/mis-shaped tensor, an unsupported tensor type or feature.
 * @throws {ConfigError} when the metadata describes an invalid config.
 *
 * @example
 * ```ts ignore
 * import { ggufToCheckpoint } from "./checkpoint.ts";
 * import { parseGguf } from "./parse.ts";
 * const ck = ggufToCheckpoint(parseGguf(await Deno.readFile("m.gguf"), "m.gguf"));
 * console.log(ck.config.rope_style); // "interleaved"
 * ```
 */
export function ggufToCheckpoint(g: GgufFile): Checkpoint {
  const arch = metaString(g, "general.architecture");
  if (arch === undefined) {
    throw new FormatError(g.file, "metadata 'general.architecture' is missing");
  }
  if (!BLOCK_NAMES[arch]) {
    throw new FormatError(
      g.file,
      `metadata 'general.architecture' = "${arch}" is not supported (supported: llama, qwen2, gpt2)`,
    );
  }
  rejectUnsupported(g, arch);
  const infos = new Map(g.tensors.map((t) => [t.name, t]));
  const embd = infos.get("token_embd.weight");
  if (!embd) throw new FormatError(g.file, "tensor 'token_embd.weight' is missing");
  if (embd.ne.length !== 2) {
    throw new FormatError(
      g.file,
      `tensor 'token_embd.weight' must be 2-D, got ne [${embd.ne}]`,
    );
  }
  const k = (s: string) => `${arch}.${s}`;
  const dim = metaInt(g, k("embedding_length"));
  const nHeads = metaInt(g, k("attention.head_count"));
  const headDim = metaInt(g, k("attention.key_length"), nHeads > 0 ? Math.floor(dim / nHeads) : 0);
  const valueLength = metaInt(g, k("attention.value_length"), headDim);
  if (valueLength !== headDim) {
    throw new FormatError(
      g.file,
      `metadata '${
        k("attention.value_length")
      }' = ${valueLength} differs from key_length ${headDim}: not supported`,
    );
  }
  const gpt2 = arch === "gpt2";
  if (!gpt2) {
    const ropeDims = metaInt(g, k("rope.dimension_count"), headDim);
    if (ropeDims !== headDim) {
      throw new FormatError(
        g.file,
        `metadata '${
          k("rope.dimension_count")
        }' = ${ropeDims} differs from head_dim ${headDim}: partial RoPE is not supported`,
      );
    }
  }
  const tokenizer = ggufTokenizer(g);
  const tied = !infos.has("output.weight");
  const raw: Record<string, unknown> = {
    arch: gpt2 ? "gpt2" : "llama",
    vocab_size: embd.ne[1],
    dim,
    n_layers: metaInt(g, k("block_count")),
    n_heads: nHeads,
    n_kv_heads: metaInt(g, k("attention.head_count_kv"), nHeads),
    head_dim: headDim,
    hidden_dim: metaInt(g, k("feed_forward_length")),
    context_length: metaInt(g, k("context_length")),
    norm: gpt2 ? "layernorm" : "rmsnorm",
    norm_eps: gpt2
      ? metaFloat(g, k("attention.layer_norm_epsilon"))
      : metaFloat(g, k("attention.layer_norm_rms_epsilon")),
    rope_theta: metaFloat(g, k("rope.freq_base"), 10000),
    rope_style: arch === "llama" ? "interleaved" : "half",
    attn_bias: gpt2 || infos.has("blk.0.attn_q.bias"),
    mlp: gpt2 ? "gelu" : "swiglu",
    tie_embeddings: tied,
    tokenizer: tokenizer === null
      ? "none"
      : tokenizer instanceof SentencePieceTokenizer
      ? "tokenizer.bin"
      : "tokenizer.tiktoken",
  };
  if (raw.n_layers === 0 || raw.dim === 0 || nHeads === 0) {
    throw new FormatError(
      g.file,
      `metadata describes an empty model (block_count ${raw.n_layers}, embedding_length ${dim}, head_count ${nHeads})`,
    );
  }
  // Cheap consistency check before anything sized by block_count is built.
  let blocks = 0;
  for (const t of g.tensors) {
    const m = /^blk\.(\d+)\./.exec(t.name);
    if (m) blocks = Math.max(blocks, Number(m[1]) + 1);
  }
  if (blocks !== raw.n_layers) {
    throw new FormatError(
      g.file,
      `metadata '${
        k("block_count")
      }' = ${raw.n_layers} but the tensors hold ${blocks} blocks (blk.0 .. blk.${blocks - 1})`,
    );
  }
  const config: ModelConfig = parseConfig(raw, g.file);
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) {
    throw new FormatError(
      g.file,
      `tokenizer has ${tokenizer.vocabSize} tokens but 'token_embd.weight' has only ${config.vocab_size} rows`,
    );
  }
  const weights = ggufWeights(g, arch, config);
  checkWeights(config, weights, g.file);
  return { format: "gguf", path: g.file, config, weights, tokenizer };
}

/** Dequantises and renames every tensor; checks shapes against the config first. */
function ggufWeights(g: GgufFile, arch: string, config: ModelConfig): Weights {
  const want = expectedShapes(config);
  const weights: Weights = new Map();
  const table = BLOCK_NAMES[arch];
  const q = config.n_heads * config.head_dim, kv = config.n_kv_heads * config.head_dim;
  const put = (info: GgufTensorInfo, canonical: string) => {
    const shape = want.get(canonical);
    if (!shape) {
      throw new FormatError(
        g.file,
        `tensor '${
          nm(info.name)
        }' (${canonical}) is not expected for this config (e.g. n_layers ${config.n_layers}, tie_embeddings ${config.tie_embeddings})`,
      );
    }
    const got = [...info.ne].reverse();
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new FormatError(
        g.file,
        `tensor '${
          nm(info.name)
        }' has shape [${got}] (ggml ne [${info.ne}]), expected [${shape}] for ${canonical}`,
      );
    }
    weights.set(canonical, ggufTensor(g, info));
  };
  for (const info of g.tensors) {
    const top = TOP_NAMES[info.name];
    if (top) {
      put(info, top);
      continue;
    }
    const m = /^blk\.(\d+)\.(.+)$/.exec(info.name);
    const suffix = m ? m[2] : "";
    if (m && (suffix === "attn_qkv.weight" || suffix === "attn_qkv.bias")) {
      // Fused QKV (gpt2 c_attn): rows are q then k then v.
      const isW = suffix.endsWith("weight");
      const rows = q + 2 * kv;
      const cols = isW ? config.dim : 1;
      const wantNe = isW ? [config.dim, rows] : [rows];
      if (info.ne.length !== wantNe.length || info.ne.some((d, i) => d !== wantNe[i])) {
        throw new FormatError(
          g.file,
          `tensor '${nm(info.name)}' has ggml ne [${info.ne}], expected [${wantNe}]`,
        );
      }
      const t = ggufTensor(g, info);
      const kind = isW ? "weight" : "bias";
      const parts: [string, number, number][] = [["wq", 0, q], ["wk", q, kv], ["wv", q + kv, kv]];
      for (const [name, r0, nr] of parts) {
        const canonical = `layers.${m[1]}.attn.${name}.${kind}`;
        if (!want.has(canonical)) {
          throw new FormatError(
            g.file,
            `tensor '${nm(info.name)}' is not expected for this config`,
          );
        }
        weights.set(canonical, {
          shape: isW ? [nr, cols] : [nr],
          data: t.data.slice(r0 * cols, (r0 + nr) * cols),
        });
      }
      continue;
    }
    const canonicalSuffix = m ? table[suffix] : undefined;
    if (!m || !canonicalSuffix) {
      throw new FormatError(
        g.file,
        `tensor '${nm(info.name)}' is not supported for architecture ${arch}`,
      );
    }
    put(info, `layers.${m[1]}.${canonicalSuffix}`);
  }
  for (const [canonical, shape] of want) {
    if (!weights.has(canonical)) {
      const name = ggufNameOf(arch, canonical) ?? canonical;
      throw new FormatError(
        g.file,
        `tensor '${nm(name)}' is missing (${canonical}, expected shape [${shape}])`,
      );
    }
  }
  return weights;
}

/**
 * Loads a GGUF checkpoint (architectures llama, qwen2, gpt2; tensor types F32, F16, BF16,
 * Q8_0, Q4_0 dequantised to F32).
 *
 * @param path File path.
 * @returns The checkpoint with config, canonical weights and the embedded tokenizer.
 * @throws {FormatError} naming the file for unreadable or malformed files and unsupported
 *   architectures, tensor types or features (see {@linkcode ggufToCheckpoint}).
 *
 * @example
 * ```ts ignore
 * import { loadGguf } from "./checkpoint.ts";
 * const ck = await loadGguf("../shared/assets/stories260K/stories260K.gguf");
 * console.log(ck.config.n_kv_heads, ck.tokenizer?.encode("Once")); // 4 [1, 403]
 * ```
 */
export async function loadGguf(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new FormatError(path, `cannot be read: ${(e as Error).message}`);
  }
  return ggufToCheckpoint(parseGguf(bytes, path));
}
