/**
 * `quantizeModel`: any checkpoint gollm reads → a GGUF file llama.cpp reads, quantised the way
 * `llama-quantize` does it (type mix of src/llama-quant.cpp, block quantisers of
 * ggml-quants.c without an importance matrix; formats/quant/mix.ts and formats/quant.ts).
 *
 * The inverse of the GGUF reader's mapping (formats/gguf/checkpoint.ts, convert_hf_to_gguf.py):
 *
 * | gollm config                         | GGUF architecture | weights                         |
 * |--------------------------------------|-------------------|---------------------------------|
 * | `arch: gpt2`                         | `gpt2`            | q/k/v fused into `attn_qkv`     |
 * | llama, `rope_style: interleaved`     | `llama`           | as they are                     |
 * | llama, `rope_style: half`, q/k/v bias | `qwen2`          | as they are (NEOX RoPE)         |
 * | llama, `rope_style: half`, no bias   | `llama`           | Q/K rows permuted to interleaved pairs (convert_hf_to_gguf `permute`) |
 * | llama, `qk_norm`                     | `qwen3`           | as they are, with `attn_q_norm`/`attn_k_norm` |
 * | llama, GeGLU + `post_norms` (+ `qk_norm`) | `gemma2` (`gemma3`) | as they are (norms already hold 1 + w) |
 * | llama, `rope_dimension_count` < head_dim or `longrope` | `phi3` | w1, w3 fused into `ffn_up` |
 *
 * (formats/gguf/arch.ts `ggufArchFor`; it refuses a config no llama.cpp architecture computes.)
 * The arch's own keys (RoPE scaling, windows, soft-caps, `rope.freq_base_swa`,
 * `attention.scale`) come from `ggufArchMetadata`, and Llama 3.1's `llama3` scaling (or
 * `rope_freq_factors`) is written as the `rope_freqs.weight` tensor, and `longrope` (always
 * arch `phi3`) as `rope_factors_long.weight` and `rope_factors_short.weight` with
 * `rope.scaling.attn_factor` and `rope.scaling.original_context_length`, as
 * convert_hf_to_gguf.py does.
 *
 * Metadata: `general.architecture`, `general.name`, `general.file_type` (`llama_ftype`),
 * `general.quantization_version` (2), `{arch}.context_length`, `.embedding_length`,
 * `.block_count`, `.feed_forward_length`, `.attention.head_count`, `.attention.head_count_kv`,
 * `.attention.key_length`/`.value_length` (when head_dim ≠ dim / n_heads), `.rope.dimension_count`,
 * `.rope.freq_base`, `.attention.layer_norm_rms_epsilon` (gpt2: `.layer_norm_epsilon`),
 * `.vocab_size`; and the tokenizer as `tokenizer.ggml.*`: SentencePiece → model `llama`
 * (tokens, scores, token_type, bos/eos/unknown ids, add_bos/add_eos/add_space_prefix);
 * byte-level BPE (tiktoken) → model `gpt2` with `pre`, tokens, token_type and the `merges`
 * llama.cpp needs, rebuilt from the ranks; `tokenizer.chat_template` when the model has one.
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import type { ProgressCallback } from "../core/progress.ts";
import type { F32Tensor as Tensor } from "../core/weights.ts";
import { loadCheckpoint } from "./load.ts";
import { type GgmlType, ggmlTypeByName, quantize } from "./quant.ts";
import { type FileType, fileType, tensorType } from "./quant/mix.ts";
import { QuantizePool } from "./quant/pool.ts";
import { ggufFusedOf, ggufNameOf } from "./gguf/checkpoint.ts";
import { ggufArchFor as archFor, ggufArchMetadata, ggufRopeTensors } from "./gguf/arch.ts";
import { gguf, type GgufTypedValue, type GgufWriteTensor, writeGguf } from "./gguf/write.ts";
import { SentencePieceTokenizer } from "../tokenizers/sentencepiece.ts";
import { PRETOKENIZE_PATTERNS, TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
import { bytesToByteLevel } from "../tokenizers/byte_level.ts";
import type { Tokenizer } from "../tokenizers/tokenizer.ts";

/** Options of {@linkcode quantizeModel}. */
export interface QuantizeModelOptions {
  /** A tokenizer file to embed instead of the checkpoint's own (as `loadCheckpoint` takes). */
  tokenizerPath?: string;
  /** Reports loading, then each tensor (`fraction` = tensors written / total). */
  onProgress?: ProgressCallback;
  /** `general.name` (default: the input path's last component). */
  name?: string;
  /**
   * Worker threads for the block quantisers (default `navigator.hardwareConcurrency`; 1 runs
   * on the calling thread). The bytes do not depend on it.
   */
  threads?: number;
}

/** One tensor of the written file. */
export interface QuantizedTensorInfo {
  /** GGUF name. */
  name: string;
  /** Torch-order shape. */
  shape: number[];
  /** Stored type. */
  type: GgmlType;
  /** Data bytes (without padding). */
  bytes: number;
}

/** What {@linkcode quantizeModel} wrote. */
export interface QuantizeModelResult {
  /** The output path. */
  path: string;
  /** The file type (`q4_k_m`, ...). */
  fileType: FileType;
  /** GGUF architecture written. */
  arch: string;
  /** Tensors in file order. */
  tensors: QuantizedTensorInfo[];
  /** File size in bytes. */
  fileBytes: number;
  /** Parameters (elements of all tensors). */
  parameters: number;
  /** Wall time of load + quantise + write, in seconds. */
  seconds: number;
}

/**
 * The GGUF architecture a config is written as, and whether its Q/K rows need the
 * rotate-half → interleaved permutation (see the module table).
 *
 * @param c A validated config.
 * @returns `{arch, permuteQk}`.
 * @throws {GollmError} when no llama.cpp architecture computes the config.
 *
 * @example
 * ```ts
 * import { parseConfig } from "../core/config.ts";
 * import { ggufArchFor } from "./quantize.ts";
 * const c = parseConfig({ arch: "llama", vocab_size: 8, dim: 8, n_layers: 1, n_heads: 2,
 *   hidden_dim: 16, context_length: 4, norm: "rmsnorm", norm_eps: 1e-5, mlp: "swiglu",
 *   tie_embeddings: true, rope_style: "half" }, "<example>");
 * const { arch, permuteQk } = ggufArchFor(c);
 * if (arch !== "llama" || !permuteQk) throw new Error();
 * ```
 */
export function ggufArchFor(c: ModelConfig): { arch: string; permuteQk: boolean } {
  return archFor(c);
}

/**
 * convert_hf_to_gguf.py `permute`: the rows of each head reordered from rotate-half pairs
 * (i, i + hd/2) to adjacent pairs (2i, 2i + 1), so llama.cpp's interleaved RoPE computes what
 * rotate-half RoPE computed on the original rows.
 *
 * @param t `(heads·head_dim, cols)` weight (or a `(heads·head_dim)` bias).
 * @param heads Number of heads the rows hold (n_heads for wq, n_kv_heads for wk).
 * @returns The permuted tensor, same shape; row `h·hd + 2i + j` is input row `h·hd + j·hd/2 + i`.
 *
 * @example
 * ```ts
 * import { permuteRowsToInterleaved } from "./quantize.ts";
 * const t = { shape: [4], data: new Float32Array([0, 1, 2, 3]) }; // one head, head_dim 4
 * const p = permuteRowsToInterleaved(t, 1);
 * if (p.data.join() !== "0,2,1,3") throw new Error(p.data.join());
 * ```
 */
export function permuteRowsToInterleaved(t: Tensor, heads: number): Tensor {
  const [rows, cols] = t.shape.length === 2 ? t.shape : [t.shape[0], 1];
  const hd = rows / heads, half = hd / 2;
  const out = new Float32Array(t.data.length); // (rows, cols)
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * hd + j * half + i) * cols, dst = (h * hd + 2 * i + j) * cols;
        out.set(t.data.subarray(src, src + cols), dst);
      }
    }
  }
  return { shape: [...t.shape], data: out };
}

/** Rows of several tensors stacked (q, k, v → attn_qkv). */
function concatRows(parts: Tensor[]): Tensor {
  const rows = parts.reduce((a, p) => a + p.shape[0], 0);
  const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
  let o = 0;
  for (const p of parts) {
    data.set(p.data, o);
    o += p.data.length;
  }
  return { shape: parts[0].shape.length === 2 ? [rows, parts[0].shape[1]] : [rows], data };
}

/** The llama.cpp pre-tokenizer name of a byte-level BPE pattern. */
function preTokenizerName(pattern: string): string {
  const r50k = String.raw`'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
  if (pattern === PRETOKENIZE_PATTERNS.gpt2 || pattern === r50k) return "gpt-2";
  if (pattern === PRETOKENIZE_PATTERNS.llama3) return "llama-bpe";
  if (pattern === PRETOKENIZE_PATTERNS.qwen2) return "qwen2";
  throw new GollmError(
    `tokenizer pre-tokenizer pattern has no llama.cpp name (known: GPT-2, Llama-3/cl100k, Qwen2): ${pattern}`,
  );
}

/**
 * BPE merges from ranks (id = rank): each multi-byte token is the merge of the two parts BPE
 * reaches when only lower ranks may merge (the tiktoken → HF conversion rule).
 */
function mergesFromRanks(tok: TiktokenTokenizer, normal: boolean[]): string[] {
  const key = (b: Uint8Array) => String.fromCharCode(...b);
  const rank = new Map<string, number>();
  for (let id = 0; id < tok.vocabSize; id++) if (normal[id]) rank.set(key(tok.tokenBytes(id)), id);
  const merges: string[] = [];
  for (let id = 0; id < tok.vocabSize; id++) {
    if (!normal[id]) continue;
    const bytes = tok.tokenBytes(id);
    if (bytes.length < 2) continue;
    let parts = [...bytes].map((b) => String.fromCharCode(b));
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = rank.get(parts[i] + parts[i + 1]);
        if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
      }
      if (best < 0 || bestRank >= id) break;
      parts = [...parts.slice(0, best), parts[best] + parts[best + 1], ...parts.slice(best + 2)];
    }
    if (parts.length !== 2) continue; // not reachable by merges: llama.cpp keeps it as a token
    const bl = (s: string) => bytesToByteLevel(Uint8Array.from(s, (c) => c.charCodeAt(0)));
    merges.push(`${bl(parts[0])} ${bl(parts[1])}`);
  }
  return merges;
}

/** `tokenizer.ggml.*` metadata for a tokenizer (null: none written). */
function tokenizerMetadata(tok: Tokenizer | null): [string, GgufTypedValue][] {
  if (tok === null) return [["tokenizer.ggml.model", gguf.string("none")]];
  const m: [string, GgufTypedValue][] = [];
  const ids = (key: string, id: number | null | undefined) => {
    if (id !== null && id !== undefined) m.push([`tokenizer.ggml.${key}`, gguf.u32(id)]);
  };
  if (tok instanceof SentencePieceTokenizer) {
    m.push(["tokenizer.ggml.model", gguf.string("llama")]);
    m.push(["tokenizer.ggml.tokens", gguf.strings(tok.pieces)]);
    m.push(["tokenizer.ggml.scores", gguf.f32s(tok.scores)]);
    m.push(["tokenizer.ggml.token_type", gguf.i32s(tok.types)]);
    ids("bos_token_id", tok.bosId);
    ids("eos_token_id", tok.eosIds[0]);
    ids("unknown_token_id", tok.unkId);
    m.push(["tokenizer.ggml.add_bos_token", gguf.bool(tok.addBos)]);
    m.push(["tokenizer.ggml.add_eos_token", gguf.bool(tok.addEos)]);
    m.push(["tokenizer.ggml.add_space_prefix", gguf.bool(tok.addSpacePrefix)]);
  } else if (tok instanceof TiktokenTokenizer) {
    const specialIds = new Set(tok.specialTokens.values());
    const tokens: string[] = [], types: number[] = [], normal: boolean[] = [];
    for (let id = 0; id < tok.vocabSize; id++) {
      const piece = tok.tokenPiece(id);
      const isNormal = !specialIds.has(id) && !piece.startsWith("<unused:") &&
        tok.tokenBytes(id).length > 0 && bytesToByteLevel(tok.tokenBytes(id)) === piece;
      normal.push(isNormal);
      tokens.push(piece);
      types.push(isNormal ? 1 : specialIds.has(id) ? 3 : piece.startsWith("<unused:") ? 5 : 4);
    }
    m.push(["tokenizer.ggml.model", gguf.string("gpt2")]);
    m.push(["tokenizer.ggml.pre", gguf.string(preTokenizerName(tok.pattern))]);
    m.push(["tokenizer.ggml.tokens", gguf.strings(tokens)]);
    m.push(["tokenizer.ggml.token_type", gguf.i32s(types)]);
    m.push(["tokenizer.ggml.merges", gguf.strings(mergesFromRanks(tok, normal))]);
    ids("bos_token_id", tok.bosId);
    ids("eos_token_id", tok.eosIds[0]);
    m.push(["tokenizer.ggml.add_bos_token", gguf.bool(tok.addBos)]);
  } else {
    throw new GollmError(`tokenizer ${tok.constructor.name} cannot be written to GGUF`);
  }
  if (tok.chatTemplate) m.push(["tokenizer.chat_template", gguf.string(tok.chatTemplate)]);
  return m;
}

/** Model metadata (`general.*`, `{arch}.*`). */
function modelMetadata(
  c: ModelConfig,
  arch: string,
  ft: FileType,
  name: string,
): [string, GgufTypedValue][] {
  const k = (s: string) => `${arch}.${s}`;
  const m: [string, GgufTypedValue][] = [
    ["general.architecture", gguf.string(arch)],
    ["general.name", gguf.string(name)],
    [k("vocab_size"), gguf.u32(c.vocab_size)],
    [k("context_length"), gguf.u32(c.context_length)],
    [k("embedding_length"), gguf.u32(c.dim)],
    [k("block_count"), gguf.u32(c.n_layers)],
    [k("feed_forward_length"), gguf.u32(c.hidden_dim)],
    [k("attention.head_count"), gguf.u32(c.n_heads)],
    [k("attention.head_count_kv"), gguf.u32(c.n_kv_heads)],
  ];
  if (c.head_dim * c.n_heads !== c.dim) {
    m.push([k("attention.key_length"), gguf.u32(c.head_dim)]);
    m.push([k("attention.value_length"), gguf.u32(c.head_dim)]);
  }
  if (arch === "gpt2") {
    m.push([k("attention.layer_norm_epsilon"), gguf.f32(c.norm_eps)]);
  } else {
    m.push([k("rope.freq_base"), gguf.f32(c.rope_theta)]);
    m.push([k("attention.layer_norm_rms_epsilon"), gguf.f32(c.norm_eps)]);
  }
  m.push(...ggufArchMetadata(c, arch));
  m.push(["general.file_type", gguf.u32(ft.id)]);
  m.push(["general.quantization_version", gguf.u32(2)]); // GGML_QNT_VERSION, as llama.cpp writes
  return m;
}

/**
 * Quantises any checkpoint gollm reads into a GGUF file in one of `llama-quantize`'s file
 * types (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s/m/l, q4_k_s/m, q5_k_s/m, q6_k, f16, bf16,
 * f32), with llama.cpp's per-tensor type mix and its reference block quantisers (so the
 * blocks equal `llama-quantize`'s on the same F32 weights). Written atomically.
 *
 * @param inPath Checkpoint (gollm or HF directory, GGUF, llama2.c `.bin`).
 * @param outPath Output `.gguf` file.
 * @param type File type name (case-insensitive; `q4_k` = `q4_k_m`).
 * @param options Tokenizer override, progress, `general.name`.
 * @returns What was written (tensor types, sizes, time).
 * @throws {GollmError} for an unknown type, an unreadable checkpoint (ConfigError /
 *   FormatError from the loaders), a tokenizer that cannot be expressed in GGUF, a row length
 *   no type fits, or a write error (nothing is left at `outPath`).
 *
 * @example
 * ```ts ignore
 * import { quantizeModel } from "./quantize.ts";
 * const r = await quantizeModel("models/default", "default.q4_k_m.gguf", "q4_k_m");
 * console.log(r.fileBytes, r.tensors.map((t) => `${t.name} ${t.type.name}`));
 * ```
 */
export async function quantizeModel(
  inPath: string,
  outPath: string,
  type: string,
  options: QuantizeModelOptions = {},
): Promise<QuantizeModelResult> {
  const t0 = performance.now();
  const ft = fileType(type);
  const ckpt = await loadCheckpoint(inPath, {
    tokenizerPath: options.tokenizerPath,
    onProgress: options.onProgress,
  });
  const c = ckpt.config;
  const { arch, permuteQk } = ggufArchFor(c);
  const w = ckpt.weights;
  const get = (name: string) => {
    const t = w.get(name);
    if (!t) throw new GollmError(`${inPath}: tensor '${name}' is missing`);
    return t;
  };
  // Canonical tensors → GGUF tensors (F32), in convert_hf_to_gguf order.
  const src: { name: string; tensor: () => Tensor; shape: number[] }[] = [];
  const add = (canonical: string, tensor: () => Tensor = () => get(canonical)) => {
    const name = ggufNameOf(arch, canonical);
    if (!name) throw new GollmError(`tensor '${canonical}' has no GGUF name for ${arch}`);
    src.push({ name, tensor, shape: [...get(canonical).shape] });
  };
  for (const [name, data] of ggufRopeTensors(c)) {
    const t = { shape: [data.length], data };
    src.push({ name, tensor: () => t, shape: t.shape });
  }
  add("tok_embeddings.weight");
  if (w.has("pos_embeddings.weight")) add("pos_embeddings.weight");
  for (let i = 0; i < c.n_layers; i++) {
    const p = `layers.${i}.`;
    for (const [canonical] of w) {
      if (!canonical.startsWith(p)) continue;
      const s = canonical.slice(p.length);
      const fused = ggufFusedOf(arch, canonical); // gpt2 attn_qkv, phi3 ffn_up = [gate; up]
      if (fused) {
        if (fused.parts[0] !== canonical) continue;
        const shapes = fused.parts.map((x) => get(x).shape);
        src.push({
          name: fused.name,
          tensor: () => concatRows(fused.parts.map(get)),
          shape: [shapes.reduce((a, q) => a + q[0], 0), ...shapes[0].slice(1)],
        });
        continue;
      }
      const heads = s.startsWith("attn.wq.") ? c.n_heads : c.n_kv_heads;
      const permute = permuteQk && (s.startsWith("attn.wq.") || s.startsWith("attn.wk."));
      add(canonical, permute ? () => permuteRowsToInterleaved(get(canonical), heads) : undefined);
    }
  }
  add("norm.weight");
  if (w.has("norm.bias")) add("norm.bias");
  if (w.has("output.weight")) add("output.weight");

  const model = {
    arch,
    nLayers: c.n_layers,
    nHeads: c.n_heads,
    nKvHeads: c.n_kv_heads,
    tiedEmbeddings: !w.has("output.weight"),
  };
  const f32 = ggmlTypeByName("F32")!;
  const types = src.map((s) => {
    try {
      return tensorType(s.name, s.shape, ft, model) ?? f32;
    } catch (e) {
      // A row no type of the mix fits: name the input (the message names the tensor).
      if (e instanceof GollmError) throw new GollmError(`${inPath}: ${ft.name}: ${e.message}`);
      throw e;
    }
  });
  const infos: QuantizedTensorInfo[] = src.map((s, i) => ({
    name: s.name,
    shape: s.shape,
    type: types[i],
    bytes: (s.shape.reduce((a, b) => a * b, 1) / types[i].blockSize) * types[i].blockBytes,
  }));
  const name = options.name ?? inPath.replace(/\/+$/, "").split("/").pop() ?? "model";
  const metadata = [...modelMetadata(c, arch, ft, name), ...tokenizerMetadata(ckpt.tokenizer)];
  // Quantise on every core, a few tensors ahead of the writer (bounded memory in flight).
  const pool = new QuantizePool(options.threads);
  const jobs: (Promise<Uint8Array> | undefined)[] = [];
  const start = (i: number) => {
    if (i >= src.length || jobs[i]) return;
    const t = types[i], data = src[i].tensor().data;
    const bad = data.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      jobs[i] = Promise.reject(
        new GollmError(
          `${inPath}: tensor '${src[i].name}' holds ${
            data[bad]
          } at element ${bad}; cannot quantise a non-finite weight`,
        ),
      );
    } else {
      jobs[i] = t.name === "F32" ? Promise.resolve(quantize(t, data)) : pool.quantize(t, data);
    }
    jobs[i]!.catch(() => {}); // a failure is reported when the writer awaits it
  };
  const tensors: GgufWriteTensor[] = src.map((s, i) => ({
    name: s.name,
    shape: s.shape,
    type: types[i],
    data: () => {
      for (let k = i; k < i + 4; k++) start(k);
      const job = jobs[i]!;
      jobs[i] = undefined;
      return job;
    },
  }));
  let fileBytes: number;
  try {
    fileBytes = await writeGguf(outPath, { metadata, tensors }, {
      onProgress: options.onProgress,
    });
  } finally {
    pool.close();
  }
  return {
    path: outPath,
    fileType: ft,
    arch,
    tensors: infos,
    fileBytes,
    parameters: infos.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0),
    seconds: (performance.now() - t0) / 1000,
  };
}
