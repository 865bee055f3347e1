/**
 * Small in-memory models for the model, gollm directory and CLI tests.
 *
 * - {@linkcode byteTokenizer}: a byte-level tiktoken tokenizer with no merges (id = byte
 *   value), plus `<|bos|>` = 256 and `<|eos|>` = 257. Every ASCII character is one token.
 * - {@linkcode scriptedWeights}: weights whose greedy output is a fixed bigram table: all
 *   layer outputs are zero (wo, w2 and biases zero), embeddings are one-hot
 *   (`tok_embeddings[a] = e_a`, needs dim >= vocab), so the final norm sees `e_a` and the
 *   logits are `output.weight[:, a]` scaled: setting `output.weight[b, a] = 1` makes b the
 *   next token after a, with a logit gap of about sqrt(dim) over every other id.
 *
 * @module
 */
import { parseConfig } from "../core/config.ts";
import type { ModelConfig } from "../core/config.ts";
import { TiktokenTokenizer } from "../tokenizers/tiktoken.ts";
import { type F32Weights as Weights, randomWeights } from "../core/weights.ts";

/** Id of `<|bos|>` in {@linkcode byteTokenizer}. */
export const BOS = 256;
/** Id of `<|eos|>` in {@linkcode byteTokenizer}. */
export const EOS = 257;
/** Vocabulary size of {@linkcode byteTokenizer}. */
export const VOCAB = 258;

/**
 * A byte-level tokenizer without merges: id = byte value; BOS 256, EOS 257; addBos true.
 * @param chatTemplate An optional Jinja chat template to carry.
 */
export function byteTokenizer(chatTemplate?: string): TiktokenTokenizer {
  const ranks = Array.from({ length: 256 }, (_, b) => new Uint8Array([b]));
  return TiktokenTokenizer.fromRanks(
    ranks,
    new Map([["<|bos|>", BOS], ["<|eos|>", EOS]]),
    undefined,
    { chatTemplate },
  );
}

/**
 * A tiny config over the byte vocabulary.
 * @param arch llama or gpt2.
 * @param over Fields to override (context_length, dim, ...).
 */
export function tinyConfig(
  arch: "llama" | "gpt2",
  over: Record<string, unknown> = {},
): ModelConfig {
  const base = arch === "llama"
    ? {
      arch,
      vocab_size: VOCAB,
      dim: 264,
      n_layers: 1,
      n_heads: 4,
      n_kv_heads: 2,
      hidden_dim: 16,
      context_length: 32,
      norm: "rmsnorm",
      norm_eps: 1e-5,
      rope_style: "half",
      mlp: "swiglu",
      tie_embeddings: false,
    }
    : {
      arch,
      vocab_size: VOCAB,
      dim: 264,
      n_layers: 1,
      n_heads: 4,
      hidden_dim: 16,
      context_length: 32,
      norm: "layernorm",
      norm_eps: 1e-5,
      mlp: "gelu",
      tie_embeddings: false,
    };
  return parseConfig({ ...base, ...over }, "<tiny config>");
}

/**
 * Weights whose greedy continuation follows `next` (current id → next id). Ids missing
 * from `next` have all-zero logits (greedy then picks id 0).
 *
 * @param c A config with `dim >= vocab_size` and untied output.
 * @param next The bigram table.
 */
export function scriptedWeights(c: ModelConfig, next: Map<number, number>): Weights {
  if (c.dim < c.vocab_size || c.tie_embeddings) {
    throw new Error("scriptedWeights needs dim >= vocab_size and untied output");
  }
  const w = randomWeights(c, 7);
  for (const [name, t] of w) {
    if (/\.(wo|w2)\.weight$/.test(name) || name.endsWith(".bias")) t.data.fill(0);
    if (name.endsWith("norm.weight")) t.data.fill(1);
    if (name === "pos_embeddings.weight") t.data.fill(0);
  }
  const emb = w.get("tok_embeddings.weight")!.data; // (vocab, dim)
  emb.fill(0);
  for (let a = 0; a < c.vocab_size; a++) emb[a * c.dim + a] = 1;
  const out = w.get("output.weight")!.data; // (vocab, dim)
  out.fill(0);
  for (const [a, b] of next) out[b * c.dim + a] = 1;
  return w;
}

/** The bigram table that spells `text` (each char's code → the next one), then `end`. */
export function chain(text: string, end?: number): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i + 1 < text.length; i++) {
    const a = text.charCodeAt(i), b = text.charCodeAt(i + 1);
    if (m.has(a) && m.get(a) !== b) throw new Error(`chain: '${text[i]}' repeats`);
    m.set(a, b);
  }
  if (end !== undefined) m.set(text.charCodeAt(text.length - 1), end);
  return m;
}
