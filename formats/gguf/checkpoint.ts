/**
 * A parsed GGUF mapped onto gollm's canonical config and tensor names (core/tensor_names.ts)
 * for the architectures of formats/gguf/arch.ts: `llama` (Llama 1/2/3.x, Mistral-style),
 * `qwen2`, `qwen3`, `gemma2`, `gemma3`, `phi3` and `gpt2`.
 *
 * RoPE: llama.cpp's `llama` architecture applies "normal" RoPE to adjacent pairs. GGUFs
 * converted from Hugging Face carry Q/K rows permuted by convert_hf_to_gguf.py so that this
 * equals HF's rotate-half; files converted from Meta/llama2.c weights are unpermuted and
 * interleaved natively. Either way the stored tensors with `rope_style: interleaved` compute
 * the source model. The other architectures use NEOX (rotate-half) RoPE on unpermuted
 * weights → `half`. RoPE scaling, `rope_freqs.weight`, windows, soft-caps and Gemma's traits
 * come from formats/gguf/arch.ts.
 *
 * @module
 */
import { type Checkpoint, type CheckpointTensorInfo, infoRows } from "../checkpoint.ts";
import { type ModelConfig, parseConfig } from "../../core/config.ts";
import { FormatError } from "../../core/errors.ts";
import { readFileBounded } from "../../core/files.ts";
import { SentencePieceTokenizer } from "../../tokenizers/sentencepiece.ts";
import { checkWeights, expectedShapes, type Tensor, type Weights } from "../../core/weights.ts";
import { checkFinite, dequantize, requireSupported } from "../quant.ts";
import type { Tokenizer } from "../../tokenizers/tokenizer.ts";
import { type GgufFile, ggufTensor, type GgufTensorInfo, nm, parseGguf } from "./parse.ts";
import { meta, metaFloat, metaInt, metaString } from "./metadata.ts";
import { GGUF_ARCHS, GGUF_ROPE_TENSORS, ggufArchConfig } from "./arch.ts";
import { ggufTokenizer } from "./tokenizer.ts";
import {
  fillLayer,
  ggufPattern,
  layersHeld,
  patternOf,
  TENSOR_NAMES,
  tensorName,
  type TensorNameRow,
} from "../../core/tensor_names.ts";

/** GGUF name patterns of one architecture, derived from core/tensor_names.ts. */
interface GgufNames {
  /** GGUF pattern → the row stored under it. */
  direct: Map<string, TensorNameRow>;
  /** Fused GGUF pattern (`blk.{i}.attn_qkv.weight`) → its rows in part order. */
  fused: Map<string, TensorNameRow[]>;
}

/**
 * The name maps of `arch`. Two rows may share a GGUF name across MLP kinds (`ffn_up` is w3
 * of SwiGLU, w1 of GELU): with a config, the rows it has win. A row's `ggufArch` source for
 * `arch` replaces its own (phi3: w1 and w3 are the parts of the fused `ffn_up`).
 */
function ggufNames(arch: string, config?: ModelConfig): GgufNames {
  const mlp = GGUF_ARCHS[arch].mlp;
  const direct = new Map<string, TensorNameRow>();
  const fused = new Map<string, TensorNameRow[]>();
  const has = (r: TensorNameRow) => config !== undefined && r.when(config);
  const addFused = (name: string, part: number, row: TensorNameRow) => {
    const parts = fused.get(name) ?? [];
    parts[part] = row;
    fused.set(name, parts);
  };
  for (const row of [...TENSOR_NAMES.filter((r) => !has(r)), ...TENSOR_NAMES.filter(has)]) {
    const own = row.ggufArch?.[arch];
    if (own) {
      if (own.part === undefined) direct.set(own.name, row);
      else addFused(own.name, own.part, row);
      continue;
    }
    direct.set(ggufPattern(row, mlp), row);
    if (row.ggufFused) {
      const parts = fused.get(row.ggufFused.name) ?? [];
      parts[row.ggufFused.part ?? 0] = row;
      fused.set(row.ggufFused.name, parts);
    }
  }
  return { direct, fused };
}

/**
 * The GGUF tensor name that holds a canonical tensor (for error messages and writers).
 *
 * @param arch GGUF architecture (`llama`, `qwen2`, `qwen3`, `gemma2`, `gemma3`, `phi3`, `gpt2`).
 * @param canonical Canonical name, e.g. `layers.3.ffn.w1.weight`.
 * @returns The GGUF name (`blk.3.ffn_gate.weight`; for a part of a fused tensor, the fused
 *   tensor's name: phi3's w1 → `blk.3.ffn_up.weight`), or undefined when there is none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufNameOf } from "./checkpoint.ts";
 * assert.equal(ggufNameOf("llama", "layers.3.ffn.w1.weight"), "blk.3.ffn_gate.weight");
 * assert.equal(ggufNameOf("gpt2", "layers.3.ffn.w1.weight"), "blk.3.ffn_up.weight");
 * assert.equal(ggufNameOf("falcon", "norm.weight"), undefined);
 * ```
 */
export function ggufNameOf(arch: string, canonical: string): string | undefined {
  const traits = GGUF_ARCHS[arch];
  if (!traits) return undefined;
  const [pattern, layer] = patternOf(canonical);
  const row = TENSOR_NAMES.find((r) => r.name === pattern);
  if (!row) return undefined;
  return fillLayer(row.ggufArch?.[arch]?.name ?? ggufPattern(row, traits.mlp), layer);
}

/**
 * The fused GGUF tensor a canonical tensor is written into for `arch`, with the canonical
 * names of its parts in order: phi3's `blk.N.ffn_up.weight` = [w1; w3] (llama.cpp's phi3
 * reads no `ffn_gate`), gpt2's `blk.N.attn_qkv` = [wq; wk; wv]; undefined for a tensor
 * written alone.
 *
 * @param arch GGUF architecture.
 * @param canonical Canonical name, e.g. `layers.3.ffn.w3.weight`.
 * @returns `{name, parts}` or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufFusedOf } from "./checkpoint.ts";
 * assert.deepEqual(ggufFusedOf("phi3", "layers.3.ffn.w3.weight"), {
 *   name: "blk.3.ffn_up.weight",
 *   parts: ["layers.3.ffn.w1.weight", "layers.3.ffn.w3.weight"],
 * });
 * assert.equal(ggufFusedOf("llama", "layers.3.ffn.w3.weight"), undefined);
 * ```
 */
export function ggufFusedOf(
  arch: string,
  canonical: string,
): { name: string; parts: string[] } | undefined {
  if (!GGUF_ARCHS[arch]) return undefined;
  const [pattern, layer] = patternOf(canonical);
  const row = TENSOR_NAMES.find((r) => r.name === pattern);
  const src = row?.ggufArch?.[arch] ?? (arch === "gpt2" ? row?.ggufFused : undefined);
  if (!row || src?.part === undefined) return undefined;
  const parts = TENSOR_NAMES.filter((r) => {
    const s = r.ggufArch?.[arch] ?? (arch === "gpt2" ? r.ggufFused : undefined);
    return s?.name === src.name && s.part !== undefined;
  }).sort((a, b) =>
    (a.ggufArch?.[arch] ?? a.ggufFused)!.part! - (b.ggufArch?.[arch] ?? b.ggufFused)!.part!
  );
  return { name: fillLayer(src.name, layer), parts: parts.map((r) => fillLayer(r.name, layer)) };
}

/** Features a file may use that the engine does not implement: refuse rather than be wrong. */
function rejectUnsupported(g: GgufFile, arch: string): void {
  const expertCount = meta(g, `${arch}.expert_count`);
  if (typeof expertCount === "number" && expertCount > 0) {
    throw new FormatError(
      g.file,
      `metadata '${arch}.expert_count' = ${expertCount}: mixture-of-experts models are not supported`,
    );
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
 * `rope.freq_base` (default 10000), `rope_dimension_count` = `rope.dimension_count` (default
 * head_dim), `vocab_size` from `token_embd.weight`, tied when `output.weight` is absent, q/k/v
 * bias when `attn_q.bias` is present; the architecture's traits, RoPE scaling, windows and
 * soft-caps from formats/gguf/arch.ts (`ggufArchConfig`); `gpt2` → layernorm + gelu. Fused
 * tensors (`attn_qkv`; phi3's `ffn_up` = [gate; up]) are split.
 *
 * @param g Parsed GGUF holding the whole file.
 * @returns The checkpoint (`format: "gguf"`).
 * @throws {FormatError} for an unsupported architecture, a missing or malformed metadata
 *   key, a missing/unexpected/mis-shaped tensor, an unsupported tensor type or feature.
 * @throws {ConfigError} when the metadata describes an invalid config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufToCheckpoint } from "./checkpoint.ts";
 * import { parseGguf } from "./parse.ts";
 * const file = "tests/fixtures/gguf/gpt2.gguf"; // fused attn_qkv, split into wq/wk/wv
 * const ck = ggufToCheckpoint(parseGguf(await Deno.readFile(file), file));
 * assert.equal(ck.config.arch, "gpt2");
 * assert.ok(ck.weights.has("layers.0.attn.wk.bias"));
 * ```
 */
export function ggufToCheckpoint(g: GgufFile): Checkpoint;
/**
 * {@linkcode ggufToCheckpoint} with options: `stored` keeps F16, BF16 and block tensors as
 * stored (views, every block scale checked), `data` gives the tensor data section.
 *
 * @param g Parsed GGUF (whole, or a header with `data`).
 * @param options `stored`, `data`, `info`.
 * @returns The checkpoint, its weights F32 or stored.
 * @throws {FormatError} as the one-argument form, and for a non-finite block scale.
 */
export function ggufToCheckpoint(g: GgufFile, options: GgufLoadOptions): Checkpoint<Weights>;
export function ggufToCheckpoint(g: GgufFile, options: GgufLoadOptions = {}): Checkpoint<Weights> {
  const { arch, config, tokenizer } = options.info ?? ggufModelInfo(g);
  const weights = ggufWeights(g, arch, config, ggufNames(arch, config), options);
  checkWeights(config, weights, g.file);
  return { format: "gguf", path: g.file, config, weights, tokenizer };
}

/** What a GGUF header alone gives: the architecture, config and tokenizer. */
export interface GgufModelInfo {
  /** `general.architecture` (`llama`, `qwen2`, `gpt2`). */
  arch: string;
  /** The config the metadata describes. */
  config: ModelConfig;
  /** The embedded tokenizer, or null. */
  tokenizer: Tokenizer | null;
}

/**
 * The config and tokenizer of a GGUF from its header only ({@linkcode ggufToCheckpoint}'s
 * rules), checking the tensor infos against the config but reading no tensor data: what a
 * loader needs to size memory before it reads the weights into it.
 *
 * @param g A parsed GGUF (`readGguf`: header only, or `parseGguf`).
 * @returns Architecture, config, tokenizer.
 * @throws {FormatError} as {@linkcode ggufToCheckpoint} for the metadata.
 * @throws {ConfigError} when the metadata describes an invalid config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufModelInfo } from "./checkpoint.ts";
 * import { readGguf } from "./parse.ts";
 * const info = ggufModelInfo(await readGguf("tests/fixtures/gguf/qwen2.gguf"));
 * assert.equal(info.arch, "qwen2");
 * assert.equal(info.config.attn_bias, true);
 * ```
 */
export function ggufModelInfo(g: GgufFile): GgufModelInfo {
  const arch = metaString(g, "general.architecture");
  if (arch === undefined) {
    throw new FormatError(g.file, "metadata 'general.architecture' is missing");
  }
  if (!Object.hasOwn(GGUF_ARCHS, arch)) {
    throw new FormatError(
      g.file,
      `metadata 'general.architecture' = "${arch}" is not supported (supported: ${
        Object.keys(GGUF_ARCHS).join(", ")
      })`,
    );
  }
  rejectUnsupported(g, arch);
  const infos = new Map(g.tensors.map((t) => [t.name, t]));
  const embdName = ggufNameOf(arch, tensorName("token_embd"))!;
  const embd = infos.get(embdName);
  if (!embd) throw new FormatError(g.file, `tensor '${embdName}' is missing`);
  if (embd.ne.length !== 2) {
    throw new FormatError(g.file, `tensor '${embdName}' must be 2-D, got ne [${embd.ne}]`);
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
  const ropeDims = gpt2 ? headDim : metaInt(g, k("rope.dimension_count"), headDim);
  const tokenizer = ggufTokenizer(g);
  const tied = !infos.has(ggufNameOf(arch, tensorName("output"))!);
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
    attn_bias: gpt2 || infos.has(ggufNameOf(arch, tensorName("attn_q", 0, "bias"))!),
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
  if (!gpt2 && ropeDims !== headDim) raw.rope_dimension_count = ropeDims;
  Object.assign(
    raw,
    ggufArchConfig(g, arch, {
      dim,
      n_layers: raw.n_layers as number,
      n_heads: nHeads,
      head_dim: headDim,
    }),
  );
  // Cheap consistency check before anything sized by block_count is built.
  const names = ggufNames(arch);
  const layerPatterns = new Set([...names.direct.keys(), ...names.fused.keys()]);
  const blocks = layersHeld(g.tensors.map((t) => t.name), layerPatterns);
  if (blocks !== raw.n_layers) {
    throw new FormatError(
      g.file,
      `metadata '${k("block_count")}' = ${raw.n_layers} but the tensors hold ${blocks} blocks${
        blocks ? ` (blk.0 .. blk.${blocks - 1})` : ""
      }`,
    );
  }
  const config: ModelConfig = parseConfig(raw, g.file);
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) {
    throw new FormatError(
      g.file,
      `tokenizer has ${tokenizer.vocabSize} tokens but '${embdName}' has only ${config.vocab_size} rows`,
    );
  }
  return { arch, config, tokenizer };
}

/** Options of {@linkcode ggufToCheckpoint} and {@linkcode loadGguf}. */
export interface GgufLoadOptions {
  /**
   * Keep F16, BF16 and block-quantised tensors as stored (views on the file's bytes, each
   * checked: every block scale finite, the type one gollm reads) instead of dequantising
   * them to F32; F32 tensors stay F32. Default false.
   */
  stored?: boolean;
  /**
   * The tensor data section, when it is not in `g.bytes` (a header read with `readGguf`
   * and the data read elsewhere, e.g. straight into WASM memory): tensor t's bytes are
   * `data[t.offset .. t.offset + t.nbytes)`. Stored tensors are then views on it, and so
   * are F32 tensors whose bytes are 4-byte aligned.
   */
  data?: Uint8Array;
  /** The header's model info when the caller already has it ({@linkcode ggufModelInfo}). */
  info?: GgufModelInfo;
  /**
   * Check stored tensors' scales and values for NaN/Inf here (default true); a caller that
   * scans them faster itself (runtime/wasm_load.ts, in WASM) passes false.
   */
  check?: boolean;
}

/**
 * One tensor as stored: F32 as values; F16, BF16 and block types as a view on the file's
 * bytes after {@linkcode requireSupported} and {@linkcode checkFinite} (NaN/Inf scales).
 */
function storedTensor(g: GgufFile, info: GgufTensorInfo, data?: Uint8Array, check = true): Tensor {
  requireSupported(info.type, g.file, nm(info.name));
  const bytes = data
    ? data.subarray(info.offset, info.offset + info.nbytes)
    : g.bytes.subarray(info.fileOffset, info.fileOffset + info.nbytes);
  if (check) checkFinite(info.type, bytes, g.file, nm(info.name));
  const shape = [...info.ne].reverse();
  if (info.type.name !== "F32") return { shape, type: info.type, bytes };
  const n = info.nbytes / 4;
  if (data && bytes.byteOffset % 4 === 0) {
    return { shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, n) };
  }
  return { shape, data: new Float32Array(bytes.slice().buffer) };
}

/**
 * Row r0 .. r0 + rows of a tensor split along its first axis (a fused attn_qkv part): a view,
 * so parts of a tensor read into the WASM memory stay in place there (the loader reserves no
 * room for copies).
 */
function rowSlice(t: Tensor, r0: number, shape: number[]): Tensor {
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  if (t.type === undefined) {
    return { shape, data: t.data.subarray(r0 * cols, (r0 + shape[0]) * cols) };
  }
  const rowBytes = (cols / t.type.blockSize) * t.type.blockBytes;
  return {
    shape,
    type: t.type,
    bytes: t.bytes.subarray(r0 * rowBytes, (r0 + shape[0]) * rowBytes),
  };
}

/** Dequantises (or keeps) and renames every tensor; checks shapes against the config first. */
function ggufWeights(
  g: GgufFile,
  arch: string,
  config: ModelConfig,
  names: GgufNames,
  options: GgufLoadOptions,
): Weights {
  const data = options.data;
  const read = (info: GgufTensorInfo): Tensor => {
    if (options.stored) return storedTensor(g, info, data, options.check ?? true);
    if (!data) return ggufTensor(g, info);
    requireSupported(info.type, g.file, nm(info.name));
    const n = info.ne.reduce((a, b) => a * b, 1);
    const bytes = data.subarray(info.offset, info.offset + info.nbytes);
    return { shape: [...info.ne].reverse(), data: dequantize(info.type, bytes, n) };
  };
  return mapGgufTensors(g, arch, config, names, read, rowSlice);
}

/**
 * Puts every tensor of `g` under its canonical name (`read` makes each stored tensor's
 * value, `slice` cuts a fused tensor's rows into its parts), after checking each shape
 * against the config; then checks that none is missing. The one walk over the tensor infos
 * that the weights ({@linkcode ggufWeights}) and the header's table
 * ({@linkcode ggufTensorTable}) share.
 */
function mapGgufTensors<T>(
  g: GgufFile,
  arch: string,
  config: ModelConfig,
  names: GgufNames,
  read: (info: GgufTensorInfo) => T,
  slice: (t: T, r0: number, shape: number[]) => T,
): Map<string, T> {
  const want = expectedShapes(config);
  const out = new Map<string, T>();
  const unexpected = (info: GgufTensorInfo, canonical: string) =>
    new FormatError(
      g.file,
      `tensor '${
        nm(info.name)
      }' (${canonical}) is not expected for this config (e.g. n_layers ${config.n_layers}, tie_embeddings ${config.tie_embeddings})`,
    );
  for (const info of g.tensors) {
    if (GGUF_ROPE_TENSORS.has(info.name)) continue; // read into the config (arch.ts)
    const [pattern, layer] = patternOf(info.name);
    const row = names.direct.get(pattern);
    const parts = names.fused.get(pattern);
    if (row) {
      const canonical = fillLayer(row.name, layer);
      const shape = want.get(canonical);
      if (!shape) throw unexpected(info, canonical);
      const got = [...info.ne].reverse();
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new FormatError(
          g.file,
          `tensor '${
            nm(info.name)
          }' has shape [${got}] (ggml ne [${info.ne}]), expected [${shape}] for ${canonical}`,
        );
      }
      out.set(canonical, read(info));
    } else if (parts) {
      // A fused tensor (gpt2 attn_qkv): the parts' rows stacked along the output axis.
      const canonical = parts.map((r) => fillLayer(r.name, layer));
      const shapes = canonical.map((n) => want.get(n));
      if (shapes.some((sh) => sh === undefined)) throw unexpected(info, canonical.join(", "));
      const rest = shapes[0]!.slice(1);
      const total = [shapes.reduce((a, sh) => a + sh![0], 0), ...rest];
      const wantNe = [...total].reverse();
      if (info.ne.length !== wantNe.length || info.ne.some((d, i) => d !== wantNe[i])) {
        throw new FormatError(
          g.file,
          `tensor '${nm(info.name)}' has ggml ne [${info.ne}], expected [${wantNe}]`,
        );
      }
      const t = read(info);
      let r0 = 0;
      canonical.forEach((name, j) => {
        const shape = shapes[j]!;
        out.set(name, slice(t, r0, shape));
        r0 += shape[0];
      });
    } else {
      throw new FormatError(
        g.file,
        `tensor '${nm(info.name)}' is not supported for architecture ${arch}`,
      );
    }
  }
  for (const [canonical, shape] of want) {
    if (!out.has(canonical)) {
      const name = ggufNameOf(arch, canonical) ?? canonical;
      throw new FormatError(
        g.file,
        `tensor '${nm(name)}' is missing (${canonical}, expected shape [${shape}])`,
      );
    }
  }
  return out;
}

/**
 * The tensor table of a GGUF from its header alone: each canonical tensor's shape, stored
 * type and byte count, and the GGUF tensor that holds it (a part of a fused tensor gets its
 * rows' share of the bytes). Shapes and names are checked as {@linkcode ggufToCheckpoint}
 * checks them, and every type must be one gollm reads; no tensor data is read, so block
 * scales are not checked for NaN/Inf here.
 *
 * @param g A parsed GGUF (`readGguf`: the header is enough).
 * @param info The header's model info, when the caller has it ({@linkcode ggufModelInfo}).
 * @returns Canonical name → {@linkcode CheckpointTensorInfo}, in the file's tensor order.
 * @throws {FormatError} naming the file and tensor: an unsupported type, a missing,
 *   unexpected or mis-shaped tensor; and as {@linkcode ggufModelInfo}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ggufTensorTable } from "./checkpoint.ts";
 * import { readGguf } from "./parse.ts";
 * const table = ggufTensorTable(await readGguf("tests/fixtures/gguf/gpt2.gguf"));
 * const wk = table.get("layers.0.attn.wk.weight")!; // a third of the fused attn_qkv
 * assert.equal(wk.stored, "blk.0.attn_qkv.weight");
 * assert.equal(wk.bytes, wk.shape[0] * wk.shape[1] * 4); // F32
 * ```
 */
export function ggufTensorTable(
  g: GgufFile,
  info: GgufModelInfo = ggufModelInfo(g),
): Map<string, CheckpointTensorInfo> {
  const read = (t: GgufTensorInfo): CheckpointTensorInfo => {
    requireSupported(t.type, g.file, nm(t.name));
    return { shape: [...t.ne].reverse(), type: t.type.name, bytes: t.nbytes, stored: t.name };
  };
  const slice = (t: CheckpointTensorInfo, _r0: number, shape: number[]) => infoRows(t, shape);
  return mapGgufTensors(g, info.arch, info.config, ggufNames(info.arch, info.config), read, slice);
}

/**
 * Loads a GGUF checkpoint (architectures llama, qwen2, qwen3, gemma2, gemma3, phi3, gpt2;
 * tensor types F32, F16, BF16 and ggml's block types Q4_0 .. Q8_0, Q2_K .. Q6_K), dequantised
 * to F32, or with `stored: true` kept as stored (views on the file's bytes, every block scale
 * checked).
 *
 * @param path File path.
 * @param options `stored` (default false).
 * @returns The checkpoint with config, canonical weights and the embedded tokenizer.
 * @throws {FormatError} naming the file for unreadable or malformed files and unsupported
 *   architectures, tensor types or features (see {@linkcode ggufToCheckpoint}).
 *
 * @example
 * ```ts ignore
 * // Needs the shared assets (../shared/assets, see its README).
 * import { loadGguf } from "./checkpoint.ts";
 * const ck = await loadGguf("../shared/assets/stories260K/stories260K.gguf");
 * console.log(ck.config.n_kv_heads, ck.tokenizer?.encode("Once")); // 4 [1, 403]
 * ```
 */
export async function loadGguf(path: string): Promise<Checkpoint>;
/**
 * {@linkcode loadGguf} with options: `stored` keeps F16, BF16 and block tensors as stored.
 *
 * @param path File path.
 * @param options `stored`, `data`.
 * @returns The checkpoint, its weights F32 or stored.
 * @throws {FormatError} as the one-argument form, and for a non-finite block scale.
 */
export async function loadGguf(
  path: string,
  options: GgufLoadOptions,
): Promise<Checkpoint<Weights>>;
export async function loadGguf(
  path: string,
  options: GgufLoadOptions = {},
): Promise<Checkpoint<Weights>> {
  return ggufToCheckpoint(parseGguf(await readFileBounded(path, "GGUF file"), path), options);
}
