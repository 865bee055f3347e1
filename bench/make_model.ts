/**
 * The benchmark's model files: a random-weight GGUF of the g110M shape (configs/gollm-85m.yaml:
 * llama arch, dim 768, 12 layers, 12 query / 4 KV heads, head_dim 64, SwiGLU hidden 2048,
 * vocab 32768, tied embeddings, RoPE theta 500000), deterministic from a seed, written in F32
 * and quantised by llama.cpp's own quantiser (bench/llama_cpp.ts) into F16, Q8_0 and Q4_K_M.
 * The files (~400 MB at F32) are cached in `<peerCacheDir()>/bench-models/`, outside the
 * repository, under names that hold the seed and the generator version.
 *
 * The tokenizer is a synthetic byte-level BPE that llama.cpp and gollm both accept
 * ({@linkcode byteLevelVocab}): 256 byte tokens, two-byte merges, BOS and EOS.
 *
 * ```
 * deno run -A bench/make_model.ts [--seed N] [--types F16,Q8_0,Q4_K_M]   # prints the paths
 * ```
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { loadConfig, type ModelConfig } from "../core/config.ts";
import { GollmError } from "../core/errors.ts";
import { type BuilderTensor, buildGguf, v } from "../tests/gguf_builder.ts";
import { llamaCppQuantize, peerCacheDir, type PeerCallOptions } from "./llama_cpp.ts";

/** Bump when the bytes this file writes for a given seed change (it names the cache files). */
export const GENERATOR_VERSION = 1;

/** The types `deno task bench:peers` measures by default. */
export const BENCH_TYPES: readonly string[] = ["F16", "Q8_0", "Q4_K_M"];

/** configs/gollm-85m.yaml: the g110M shape. */
export const G110M_CONFIG: string = fileURLToPath(
  new URL("../configs/gollm-85m.yaml", import.meta.url),
);

/** A byte-level BPE vocabulary in GGUF's `tokenizer.ggml.*` form. */
export interface ByteLevelVocab {
  /** Token texts in GPT-2's byte-to-unicode alphabet (`tokenizer.ggml.tokens`). */
  tokens: string[];
  /** ggml token types: 1 normal, 3 control (`tokenizer.ggml.token_type`). */
  types: number[];
  /** `"a b"` merges; merge i makes token 256 + i (`tokenizer.ggml.merges`). */
  merges: string[];
  /** BOS id (`<|begin_of_text|>`, the second to last id). */
  bosId: number;
  /** EOS id (`<|end_of_text|>`, the last id). */
  eosId: number;
}

/** GPT-2's `bytes_to_unicode()`: printable bytes map to themselves, the others to 256 + n. */
function byteToUnicode(): string[] {
  const table = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    table[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return table;
}

/**
 * A synthetic byte-level BPE vocabulary of exactly `vocabSize` ids: ids 0..255 are the bytes
 * (in byte order, spelled with GPT-2's byte-to-unicode map), then two-byte tokens from
 * merges of byte pairs (first byte 0x20, 0x61.., i.e. space and lowercase first), then BOS
 * and EOS as control tokens. Ranks equal ids, as tiktoken and llama.cpp's BPE both expect.
 *
 * @param vocabSize Total ids, 258 ..= 65794.
 * @returns Tokens, types, merges, BOS and EOS ids.
 * @throws {GollmError} when `vocabSize` is out of range.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteLevelVocab } from "./make_model.ts";
 * const v = byteLevelVocab(300);
 * assert.equal(v.tokens.length, 300);
 * assert.equal(v.tokens[32], "Ġ"); // the space byte
 * assert.equal(v.merges[0], "Ġ Ġ");
 * assert.equal(v.tokens[256], "ĠĠ");
 * assert.equal(v.bosId, 298);
 * ```
 */
export function byteLevelVocab(vocabSize: number): ByteLevelVocab {
  const nMerges = vocabSize - 258;
  if (!Number.isInteger(vocabSize) || nMerges < 0 || nMerges > 256 * 256) {
    throw new GollmError(`byteLevelVocab: vocab_size must be in [258, 65794], got ${vocabSize}`);
  }
  const u = byteToUnicode();
  const tokens = [...u];
  const merges: string[] = [];
  // First bytes in a readable order: space, lowercase, uppercase, digits, then the rest.
  const order: number[] = [0x20];
  for (let b = 0x61; b <= 0x7a; b++) order.push(b);
  for (let b = 0x41; b <= 0x5a; b++) order.push(b);
  for (let b = 0x30; b <= 0x39; b++) order.push(b);
  for (let b = 0; b < 256; b++) if (!order.includes(b)) order.push(b);
  outer: for (const a of order) {
    for (const b of order) {
      if (merges.length === nMerges) break outer;
      merges.push(`${u[a]} ${u[b]}`);
      tokens.push(u[a] + u[b]);
    }
  }
  tokens.push("<|begin_of_text|>", "<|end_of_text|>");
  const types = tokens.map((_, i) => (i >= vocabSize - 2 ? 3 : 1));
  return { tokens, types, merges, bosId: vocabSize - 2, eosId: vocabSize - 1 };
}

/** Options of {@linkcode randomLlamaGguf}. */
export interface RandomGgufOptions {
  /** PRNG seed (default 1). */
  seed?: number;
  /** Weights are uniform with this standard deviation (default 0.02); norm weights are 1. */
  std?: number;
}

/**
 * Serialises a random-weight llama-architecture GGUF (F32) for a config: `llama.*`
 * hyperparameters, the {@linkcode byteLevelVocab} tokenizer (`tokenizer.ggml.pre` =
 * `llama-bpe`), tensors named as llama.cpp's LLM_TENSOR_NAMES (`token_embd`, `blk.N.attn_q`,
 * ... `output_norm`; no `output.weight` when embeddings are tied). Weights are uniform in
 * `[-std·√3, std·√3]` from a seeded xorshift32, in file order, so a seed always gives the
 * same bytes. RoPE in this file is llama.cpp's LLAMA_ROPE_TYPE_NORM (adjacent pairs), which
 * gollm reads as `rope_style: interleaved`; with random weights no Q/K permutation applies.
 *
 * @param config A llama config (rmsnorm, swiglu, no attention bias).
 * @param options Seed, weight scale.
 * @returns The file's bytes.
 * @throws {GollmError} for a config llama.cpp's llama architecture cannot express.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "../core/config.ts";
 * import { randomLlamaGguf } from "./make_model.ts";
 * const config = parseConfig({
 *   arch: "llama", vocab_size: 300, dim: 32, n_layers: 1, n_heads: 2, n_kv_heads: 1,
 *   head_dim: 16, hidden_dim: 64, context_length: 64, norm: "rmsnorm", norm_eps: 1e-5,
 *   rope_theta: 10000, rope_style: "interleaved", attn_bias: false, mlp: "swiglu",
 *   tie_embeddings: true, tokenizer: "none",
 * }, "<doc>");
 * const bytes = randomLlamaGguf(config, { seed: 3 });
 * assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "GGUF");
 * assert.deepEqual(randomLlamaGguf(config, { seed: 3 }), bytes);
 * ```
 */
export function randomLlamaGguf(config: ModelConfig, options: RandomGgufOptions = {}): Uint8Array {
  const c = config;
  if (c.arch !== "llama" || c.norm !== "rmsnorm" || c.mlp !== "swiglu" || c.attn_bias) {
    throw new GollmError(
      "randomLlamaGguf: config must be arch llama, norm rmsnorm, mlp swiglu, attn_bias false",
    );
  }
  const vocab = byteLevelVocab(c.vocab_size);
  const seed = options.seed ?? 1;
  const half = (options.std ?? 0.02) * Math.sqrt(3);
  let s = (seed >>> 0) || 0x9e3779b9;
  const uniform = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s / 4294967296) * 2 - 1;
  };
  const tensors: BuilderTensor[] = [];
  /** A tensor of ggml shape `ne` (fastest dim first): random, or all `fill`. */
  const add = (name: string, ne: number[], fill?: number) => {
    const x = new Float32Array(ne.reduce((a, b) => a * b, 1));
    if (fill !== undefined) x.fill(fill);
    else for (let i = 0; i < x.length; i++) x[i] = uniform() * half;
    tensors.push({ name, ne, type: 0, data: new Uint8Array(x.buffer) });
  };
  const q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  add("token_embd.weight", [c.dim, c.vocab_size]); // (vocab, dim)
  for (let l = 0; l < c.n_layers; l++) {
    add(`blk.${l}.attn_norm.weight`, [c.dim], 1); // (dim)
    add(`blk.${l}.attn_q.weight`, [c.dim, q]); // (n_heads·head_dim, dim)
    add(`blk.${l}.attn_k.weight`, [c.dim, kv]); // (n_kv_heads·head_dim, dim)
    add(`blk.${l}.attn_v.weight`, [c.dim, kv]); // (n_kv_heads·head_dim, dim)
    add(`blk.${l}.attn_output.weight`, [q, c.dim]); // (dim, n_heads·head_dim)
    add(`blk.${l}.ffn_norm.weight`, [c.dim], 1); // (dim)
    add(`blk.${l}.ffn_gate.weight`, [c.dim, c.hidden_dim]); // (hidden, dim)
    add(`blk.${l}.ffn_up.weight`, [c.dim, c.hidden_dim]); // (hidden, dim)
    add(`blk.${l}.ffn_down.weight`, [c.hidden_dim, c.dim]); // (dim, hidden)
  }
  add("output_norm.weight", [c.dim], 1); // (dim)
  if (!c.tie_embeddings) add("output.weight", [c.dim, c.vocab_size]); // (vocab, dim)

  const arch = "llama";
  const kvs: [string, ReturnType<typeof v.u32>][] = [
    ["general.architecture", v.str(arch)],
    ["general.name", v.str(`gollm bench random llama (seed ${seed})`)],
    ["general.file_type", v.u32(0)], // LLAMA_FTYPE_ALL_F32
    [`${arch}.vocab_size`, v.u32(c.vocab_size)],
    [`${arch}.context_length`, v.u32(c.context_length)],
    [`${arch}.embedding_length`, v.u32(c.dim)],
    [`${arch}.block_count`, v.u32(c.n_layers)],
    [`${arch}.feed_forward_length`, v.u32(c.hidden_dim)],
    [`${arch}.attention.head_count`, v.u32(c.n_heads)],
    [`${arch}.attention.head_count_kv`, v.u32(c.n_kv_heads)],
    [`${arch}.attention.key_length`, v.u32(c.head_dim)],
    [`${arch}.attention.value_length`, v.u32(c.head_dim)],
    [`${arch}.attention.layer_norm_rms_epsilon`, v.f32(c.norm_eps)],
    [`${arch}.rope.dimension_count`, v.u32(c.head_dim)],
    [`${arch}.rope.freq_base`, v.f32(c.rope_theta)],
    ["tokenizer.ggml.model", v.str("gpt2")],
    ["tokenizer.ggml.pre", v.str("llama-bpe")],
    ["tokenizer.ggml.tokens", v.strs(vocab.tokens)],
    ["tokenizer.ggml.token_type", v.i32s(vocab.types)],
    ["tokenizer.ggml.merges", v.strs(vocab.merges)],
    ["tokenizer.ggml.bos_token_id", v.u32(vocab.bosId)],
    ["tokenizer.ggml.eos_token_id", v.u32(vocab.eosId)],
    ["tokenizer.ggml.add_bos_token", v.bool(true)],
  ];
  return buildGguf(kvs, tensors);
}

/** Options of {@linkcode benchModels}. */
export interface BenchModelsOptions extends PeerCallOptions {
  /** Types to produce, keys of LLAMA_FTYPES (default {@linkcode BENCH_TYPES}). `F32` is the source. */
  types?: readonly string[];
  /** Weight seed (default 1). */
  seed?: number;
  /** Folder of the files (default `<peerCacheDir()>/bench-models`). */
  dir?: string;
  /** The config whose shape to use (default {@linkcode G110M_CONFIG}). */
  configPath?: string;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * The benchmark's GGUF files, made on first use and cached: the F32 source from
 * {@linkcode randomLlamaGguf} on the config's shape, then each type by
 * {@linkcode llamaCppQuantize}. Files are written atomically, so a present file is complete.
 *
 * @param options Types, seed, folder, config, peer folder, progress.
 * @returns Type name (upper case) → file path, for `F32` and every requested type.
 * @throws {GollmError} for an unreadable config, a file that cannot be written, or a
 *   failure of the quantiser (PeerError).
 * @example
 * ```ts ignore
 * const files = await benchModels({ types: ["Q8_0"] });
 * console.log(files.Q8_0); // ~/.cache/gollm/bench-models/gollm-85m-random-v1-s1-q8_0.gguf
 * ```
 */
export async function benchModels(
  options: BenchModelsOptions = {},
): Promise<Record<string, string>> {
  const seed = options.seed ?? 1;
  if (!Number.isInteger(seed) || seed < 0) {
    throw new GollmError(`benchModels: seed must be an integer >= 0, got ${seed}`);
  }
  const configPath = options.configPath ?? G110M_CONFIG;
  const dir = options.dir ?? `${peerCacheDir()}/bench-models`;
  const stem = configPath.replace(/^.*\//, "").replace(/\.ya?ml$/, "");
  const name = (t: string) =>
    `${dir}/${stem}-random-v${GENERATOR_VERSION}-s${seed}-${t.toLowerCase()}.gguf`;
  const out: Record<string, string> = { F32: name("F32") };
  await Deno.mkdir(dir, { recursive: true });
  if (!(await isFile(out.F32))) {
    options.onProgress?.(`writing ${out.F32} (random weights, seed ${seed})`);
    const bytes = randomLlamaGguf(await loadConfig(configPath), { seed });
    const tmp = `${out.F32}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.writeFile(tmp, bytes);
      await Deno.rename(tmp, out.F32);
    } catch (e) {
      throw new GollmError(`${out.F32}: cannot be written: ${(e as Error).message}`);
    } finally {
      await Deno.remove(tmp).catch(() => {});
    }
  }
  for (const t of options.types ?? BENCH_TYPES) {
    const type = t.toUpperCase();
    if (type === "F32") continue;
    out[type] = name(type);
    if (await isFile(out[type])) continue;
    options.onProgress?.(`quantising to ${type} with llama.cpp: ${out[type]}`);
    await llamaCppQuantize(out.F32, out[type], type, options);
  }
  return out;
}

if (import.meta.main) {
  const arg = (flag: string) => {
    const i = Deno.args.indexOf(flag);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  try {
    const files = await benchModels({
      seed: Number(arg("--seed") ?? 1),
      types: arg("--types")?.split(","),
      onProgress: (m) => console.error(m),
    });
    for (const [t, p] of Object.entries(files)) console.log(`${t}\t${p}`);
  } catch (e) {
    if (!(e instanceof GollmError)) throw e;
    console.error(`error: ${e.message}`);
    Deno.exit(1);
  }
}
