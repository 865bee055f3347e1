/**
 * llama2.c checkpoints (`.bin`, Karpathy's llama2.c `export.py`) and their `tokenizer.bin`.
 *
 * Legacy version 0 (what run.c reads; stories15M/42M/110M/260K):
 * ```
 * int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 *   (vocab_size < 0: the classifier is not shared and follows at the end)
 * f32 tok_embeddings (vocab, dim)
 * f32 attn_norm (L, dim) · wq (L, dim, dim) · wk (L, kv_dim, dim) · wv (L, kv_dim, dim)
 *     · wo (L, dim, dim) · ffn_norm (L, dim) · w1 (L, hidden, dim) · w2 (L, dim, hidden)
 *     · w3 (L, hidden, dim) · norm (dim)
 * f32 freq_cis_real (seq_len, head_size/2) · freq_cis_imag (seq_len, head_size/2)  — skipped
 * f32 output (vocab, dim)                                              — only when unshared
 * ```
 * Version 1 (`export.py --version 1`): a 256-byte header — uint32 magic `0x616b3432`
 * ("ak42"), int32 version 1, the same 7 int32, uint8 shared_classifier, zero padding — then
 * f32 attn_norm (L, dim), ffn_norm (L, dim), norm (dim), tok_embeddings, wq, wk, wv, wo, w1,
 * w2, w3 (each stacked over layers), and output (vocab, dim) when not shared.
 *
 * Every matrix is `(out_features, in_features)` row-major (torch `nn.Linear.weight`). llama2.c
 * models use RMSNorm eps 1e-5, RoPE theta 10000 on adjacent pairs (`rope_style:
 * interleaved`).
 *
 * @module
 */
import type { Checkpoint } from "./checkpoint.ts";
import { type ModelConfig, parameterCount, parseConfig } from "../core/config.ts";
import { FormatError } from "../core/errors.ts";
import { dirname, isFile, join, readFileBounded } from "../core/files.ts";
import { readLlama2cTokenizer, type SentencePieceTokenizer } from "../tokenizers/sentencepiece.ts";
import { checkWeights, type F32Weights as Weights } from "../core/weights.ts";
import { fillLayer, isPerLayer, tensorRows } from "../core/tensor_names.ts";

/** Magic of versioned llama2.c checkpoints: "ak42" as a little-endian uint32. */
export const LLAMA2C_MAGIC = 0x616b3432;

/** The seven header integers of a llama2.c checkpoint (run.c `Config`). */
export interface Llama2cHeader {
  /** Format version: 0 (legacy) or 1. */
  version: number;
  /** Model dimension. */
  dim: number;
  /** FFN hidden dimension. */
  hidden_dim: number;
  /** Number of layers. */
  n_layers: number;
  /** Number of query heads. */
  n_heads: number;
  /** Number of key/value heads. */
  n_kv_heads: number;
  /** Vocabulary size (always positive here). */
  vocab_size: number;
  /** Maximum sequence length. */
  seq_len: number;
  /** Whether the classifier reuses the token embedding. */
  shared_classifier: boolean;
  /** Byte offset of the first weight. */
  headerBytes: number;
}

/** Options of {@linkcode loadLlama2c}. */
export interface LoadLlama2cOptions {
  /**
   * The tokenizer file. Default: `tok{vocab_size}.bin`, else `tokenizer.bin`, beside the
   * checkpoint; none found means a checkpoint without tokenizer (token ids only).
   */
  tokenizerPath?: string;
}

/**
 * Parses and checks the header of a llama2.c checkpoint.
 *
 * @param bytes At least the header bytes (28 for v0, 256 for v1).
 * @param file Path named in errors.
 * @returns The header.
 * @throws {FormatError} when the header is truncated, the version is unsupported (v2 Q8_0
 *   files) or a size is not a positive integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLlama2cHeader } from "./llama2c.ts";
 * const h = new Int32Array([64, 172, 5, 8, 4, 512, 512]); // stories260K's header
 * assert.equal(parseLlama2cHeader(new Uint8Array(h.buffer), "m.bin").shared_classifier, true);
 * h[5] = -512; // a negative vocab_size: the classifier is stored separately
 * assert.equal(parseLlama2cHeader(new Uint8Array(h.buffer), "m.bin").shared_classifier, false);
 * ```
 */
export function parseLlama2cHeader(bytes: Uint8Array, file: string): Llama2cHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let version = 0, at = 0, headerBytes = 28;
  if (bytes.length >= 4 && view.getUint32(0, true) === LLAMA2C_MAGIC) {
    if (bytes.length < 8) {
      throw new FormatError(file, `truncated header: expected 256 bytes, got ${bytes.length}`);
    }
    version = view.getInt32(4, true);
    if (version !== 1) {
      throw new FormatError(
        file,
        `llama2.c checkpoint version ${version} is not supported (supported: 0 legacy, 1)`,
      );
    }
    at = 8;
    headerBytes = 256;
  }
  if (bytes.length < headerBytes) {
    throw new FormatError(
      file,
      `truncated header: expected ${headerBytes} bytes, got ${bytes.length}`,
    );
  }
  const names = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"];
  const vals = names.map((_, i) => view.getInt32(at + 4 * i, true));
  let shared: boolean;
  if (version === 0) {
    shared = vals[5] > 0;
    vals[5] = Math.abs(vals[5]);
  } else {
    const flag = view.getUint8(at + 28);
    if (flag > 1) throw new FormatError(file, `shared_classifier flag must be 0 or 1, got ${flag}`);
    shared = flag === 1;
  }
  names.forEach((name, i) => {
    if (!(vals[i] > 0)) {
      throw new FormatError(
        file,
        `header field ${name} must be a positive integer, got ${
          vals[i]
        } (not a llama2.c checkpoint?)`,
      );
    }
  });
  const [dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len] = vals;
  if (dim % n_heads !== 0 || (dim / n_heads) % 2 !== 0) {
    throw new FormatError(
      file,
      `header dim ${dim} must be divisible by n_heads ${n_heads} into an even head size`,
    );
  }
  if (n_heads % n_kv_heads !== 0) {
    throw new FormatError(
      file,
      `header n_kv_heads ${n_kv_heads} must divide n_heads ${n_heads}`,
    );
  }
  return {
    version,
    dim,
    hidden_dim,
    n_layers,
    n_heads,
    n_kv_heads,
    vocab_size,
    seq_len,
    shared_classifier: shared,
    headerBytes,
  };
}

/**
 * The config a llama2.c header describes: arch llama, rmsnorm eps 1e-5, rope_theta 10000,
 * `rope_style: interleaved`, swiglu, `context_length` = seq_len, tied when the classifier is
 * shared.
 */
function llama2cConfig(h: Llama2cHeader, file: string, tokenizer = "none"): ModelConfig {
  return parseConfig({
    arch: "llama",
    vocab_size: h.vocab_size,
    dim: h.dim,
    n_layers: h.n_layers,
    n_heads: h.n_heads,
    n_kv_heads: h.n_kv_heads,
    hidden_dim: h.hidden_dim,
    context_length: h.seq_len,
    norm: "rmsnorm",
    norm_eps: 1e-5,
    rope_theta: 10000,
    rope_style: "interleaved",
    attn_bias: false,
    mlp: "swiglu",
    tie_embeddings: h.shared_classifier,
    tokenizer,
  }, file);
}

/**
 * (name, shape) of every stored array in file order, from the `llama2c` positions of
 * core/tensor_names.ts; v0 also stores the RoPE tables (`<freq_cis_*>`, skipped) after the
 * final norm.
 */
function layout(h: Llama2cHeader, c: ModelConfig): [string, number[]][] {
  const v = h.version === 0 ? 0 : 1;
  const rows = tensorRows(c).sort((a, b) => a.llama2c![v] - b.llama2c![v]);
  const out: [string, number[]][] = [];
  for (const r of rows) {
    const shape = r.shape(c);
    if (isPerLayer(r)) {
      for (let l = 0; l < c.n_layers; l++) out.push([fillLayer(r.name, l), shape]);
    } else out.push([r.name, shape]);
    if (v === 0 && r.kind === "output_norm") {
      const freq = c.context_length * c.head_dim / 2;
      out.push(["<freq_cis_real>", [freq]], ["<freq_cis_imag>", [freq]]);
    }
  }
  return out;
}

/**
 * Parses a whole llama2.c checkpoint held in memory (weights only).
 *
 * @param bytes File contents.
 * @param file Path named in errors.
 * @returns The header and canonical F32 weights (copies).
 * @throws {FormatError} for a bad header or when the file size differs from what the
 *   header implies (expected vs actual bytes).
 * @throws {ConfigError} when the header describes an invalid config.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLlama2c } from "./llama2c.ts";
 * // dim 8, hidden 16, 1 layer, 2 heads, 1 KV head, vocab 4, seq_len 4, shared classifier.
 * const header = new Int32Array([8, 16, 1, 2, 1, 4, 4]);
 * const floats = 4 * 8 + 8 + 8 * 8 + 2 * 4 * 8 + 8 * 8 + 8 + 3 * 16 * 8 + 8 + 4 * 4;
 * const bytes = new Uint8Array(28 + 4 * floats);
 * bytes.set(new Uint8Array(header.buffer));
 * const { weights } = parseLlama2c(bytes, "m.bin");
 * assert.deepEqual(weights.get("layers.0.attn.wk.weight")!.shape, [4, 8]); // (kv_dim, dim)
 * assert.throws(() => parseLlama2c(bytes.subarray(0, 100), "m.bin"), /m.bin: truncated/);
 * ```
 */
export function parseLlama2c(
  bytes: Uint8Array,
  file: string,
): { header: Llama2cHeader; weights: Weights } {
  const h = parseLlama2cHeader(bytes, file);
  const c = llama2cConfig(h, file);
  // Size check first, arithmetically: a corrupt header may claim billions of layers.
  const floats = parameterCount(c) + (h.version === 0 ? h.seq_len * c.head_dim : 0);
  const expected = h.headerBytes + 4 * floats;
  if (bytes.length !== expected) {
    const shape = `dim ${h.dim}, hidden_dim ${h.hidden_dim}, n_layers ${h.n_layers}, ` +
      `n_heads ${h.n_heads}, n_kv_heads ${h.n_kv_heads}, vocab ${h.vocab_size}, seq_len ${h.seq_len}`;
    throw new FormatError(
      file,
      `${
        bytes.length < expected ? "truncated" : "too large"
      }: the v${h.version} header (${shape}, shared_classifier ${h.shared_classifier}) implies ${expected} bytes, file has ${bytes.length}`,
    );
  }
  const arrays = layout(h, c);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const aligned = (bytes.byteOffset + h.headerBytes) % 4 === 0;
  const weights: Weights = new Map();
  let o = h.headerBytes;
  for (const [name, shape] of arrays) {
    const n = shape.reduce((x, y) => x * y, 1);
    if (!name.startsWith("<")) {
      let data: Float32Array;
      if (aligned) {
        data = new Float32Array(bytes.buffer, bytes.byteOffset + o, n).slice();
      } else {
        data = new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = view.getFloat32(o + 4 * i, true);
      }
      weights.set(name, { shape, data });
    }
    o += 4 * n;
  }
  return { header: h, weights };
}

/**
 * Loads a llama2.c checkpoint (legacy v0 or v1) with its tokenizer.
 *
 * Config: arch llama, rmsnorm eps 1e-5, rope_theta 10000, `rope_style: interleaved`,
 * swiglu, `context_length` = header seq_len, tied when the classifier is shared.
 *
 * @param path Checkpoint path.
 * @param options `tokenizerPath` (default: `tok{vocab}.bin` or `tokenizer.bin` beside it).
 * @returns The checkpoint (`format: "llama2c"`).
 * @throws {FormatError} for unreadable/truncated/oversized files, an unsupported version,
 *   a missing explicit tokenizer, or a tokenizer whose size differs from the model's vocab.
 * @throws {ConfigError} when the header describes an invalid config.
 *
 * @example
 * ```ts ignore
 * // Needs the shared assets (../shared/assets, see its README).
 * import { loadLlama2c } from "./llama2c.ts";
 * const ck = await loadLlama2c("../shared/assets/stories260K/stories260K.bin");
 * console.log(ck.config.context_length, ck.tokenizer?.vocabSize); // 512 512
 * ```
 */
export async function loadLlama2c(
  path: string,
  options: LoadLlama2cOptions = {},
): Promise<Checkpoint> {
  const bytes = await readFileBounded(path, "llama2.c checkpoint");
  const { header: h, weights } = parseLlama2c(bytes, path);
  let tokenizer: SentencePieceTokenizer | null = null;
  let tokPath = options.tokenizerPath;
  if (tokPath === undefined) {
    for (const name of [`tok${h.vocab_size}.bin`, "tokenizer.bin"]) {
      if (await isFile(join(dirname(path), name))) {
        tokPath = join(dirname(path), name);
        break;
      }
    }
  }
  if (tokPath !== undefined) {
    tokenizer = await readLlama2cTokenizer(tokPath);
    if (tokenizer.vocabSize !== h.vocab_size) {
      throw new FormatError(
        tokPath,
        `tokenizer has ${tokenizer.vocabSize} tokens but the checkpoint ${path} has vocab_size ${h.vocab_size}`,
      );
    }
  }
  const config = llama2cConfig(h, path, tokenizer ? "tokenizer.bin" : "none");
  checkWeights(config, weights, path);
  return { format: "llama2c", path, config, weights, tokenizer };
}
