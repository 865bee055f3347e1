/**
 * The reference forward pass: plain loops, no code generation, written to be read.
 *
 * It is the oracle the generated kernels (`codegen/`) are tested against, and the
 * `--backend reference` of the CLI. The structure follows Karpathy's llama2.c `run.c`
 * (`forward()`), extended to GPT-2 (learned positions, LayerNorm with bias, GELU), to the
 * things LLaMA-3 / Qwen2 need (GQA, both RoPE pairings, q/k/v bias) and to those of issue
 * #10: RoPE scaling and partial rotary (core/rope.ts), Qwen3/Gemma 3's per-head q/k RMSNorm,
 * Gemma's GeGLU, sandwich norms, embedding scale, `query_pre_attn_scalar` and soft-capping,
 * and per-layer sliding windows (core/config.ts `layerWindow`).
 *
 * Sources: Vaswani et al. 2017 "Attention Is All You Need" (attention, scale
 * 1/sqrt(head_dim)); Su et al. 2021 "RoFormer" (RoPE); Zhang & Sennrich 2019 (RMSNorm);
 * Shazeer 2020 "GLU Variants" (SwiGLU, GeGLU); Ainslie et al. 2023 (GQA); Radford et al. 2019
 * (GPT-2, GELU tanh approximation as HF `gelu_new`); Gemma Team 2024 "Gemma 2" (soft-capping,
 * alternating local/global attention); llama2.c `run.c`; transformers `modeling_gemma2.py`,
 * `modeling_qwen3.py`, `modeling_phi3.py`.
 *
 * @module
 */
import { layerRopeIsLocal, layerWindow, type ModelConfig } from "../core/config.ts";
import {
  checkForwardArgs,
  type ForwardOptions,
  type ForwardPass,
  resolveKvCapacity,
} from "../core/forward.ts";
import { ResourceError } from "../core/errors.ts";
import { ropeAttnFactor, ropeInvFreq } from "../core/rope.ts";
import { checkWeights, type F32Weights as Weights } from "../core/weights.ts";

// ---------------------------------------------------------------------------------------
// Building blocks. Each writes into `out` and reads row-major f32 arrays.

/** out (d) = W (d, n) · x (n) + b (d): one output per row of W, like torch.nn.Linear. */
function matmul(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  n: number,
  d: number,
): void {
  for (let i = 0; i < d; i++) {
    let sum = 0;
    for (let j = 0; j < n; j++) sum += w[i * n + j] * x[j];
    out[i] = b ? sum + b[i] : sum;
  }
}

/** RMSNorm (Zhang & Sennrich 2019): out = x / sqrt(mean(x²) + eps) · weight. */
function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, eps: number): void {
  const n = x.length;
  let ss = 0;
  for (let j = 0; j < n; j++) ss += x[j] * x[j];
  const inv = 1 / Math.sqrt(ss / n + eps);
  for (let j = 0; j < n; j++) out[j] = x[j] * inv * weight[j];
}

/** LayerNorm (Ba et al. 2016): out = (x - mean) / sqrt(var + eps) · weight + bias (biased var). */
function layernorm(
  out: Float32Array,
  x: Float32Array,
  weight: Float32Array,
  bias: Float32Array,
  eps: number,
): void {
  const n = x.length;
  let mean = 0;
  for (let j = 0; j < n; j++) mean += x[j];
  mean /= n;
  let variance = 0;
  for (let j = 0; j < n; j++) variance += (x[j] - mean) * (x[j] - mean);
  variance /= n;
  const inv = 1 / Math.sqrt(variance + eps);
  for (let j = 0; j < n; j++) out[j] = (x[j] - mean) * inv * weight[j] + bias[j];
}

/**
 * RoPE (Su et al. 2021) on the first `rotDim` dims of every head of `vec` (n_heads_here,
 * head_dim), rotating pair i by the angle whose cosine and sine are `cos[i]`, `sin[i]`
 * (rotDim/2 each, of this token's position): `half` pairs dim i with i + rotDim/2 (HF
 * rotate_half, on `q[..., :rotary_dim]` for partial rotary); `interleaved` pairs 2i with 2i+1
 * (llama2.c, Meta's reference). Dims from rotDim on pass through.
 */
function rope(
  vec: Float32Array,
  nHeads: number,
  headDim: number,
  rotDim: number,
  cos: Float64Array,
  sin: Float64Array,
  style: "half" | "interleaved",
): void {
  const half = rotDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let i = 0; i < half; i++) {
      const ia = style === "half" ? base + i : base + 2 * i;
      const ib = style === "half" ? base + i + half : base + 2 * i + 1;
      const a = vec[ia], b = vec[ib];
      vec[ia] = a * cos[i] - b * sin[i];
      vec[ib] = b * cos[i] + a * sin[i];
    }
  }
}

/** GELU, tanh approximation (Hendrycks & Gimpel 2016; HF `gelu_new`, GPT-2). */
function gelu(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/** Soft-capping (Gemma 2): `cap · tanh(x / cap)`, or x when cap is null. */
function softcap(x: number, cap: number | null): number {
  return cap === null ? x : cap * Math.tanh(x / cap);
}

/** SiLU / swish: x · sigmoid(x). */
function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/**
 * The intermediate tensors the reference reports to a {@linkcode ReferenceOptions.trace}
 * callback, named as llama.cpp's graph names them (`src/llama-model.cpp`, printed by
 * `llama-eval-callback`), each for one token:
 *
 * | name            | layer | shape                   | what                                       |
 * |-----------------|------:|-------------------------|--------------------------------------------|
 * | `inp_embd`      |    -1 | (dim)                   | token embedding (+ gpt2 position row)      |
 * | `attn_norm`     |     l | (dim)                   | normed input of the attention              |
 * | `Qcur`, `Kcur`  |     l | (n_heads · head_dim), (n_kv_heads · head_dim) | q, k after RoPE (as cached) |
 * | `Vcur`          |     l | (n_kv_heads · head_dim) | v                                          |
 * | `kqv_out`       |     l | (n_heads · head_dim)    | the heads' outputs, concatenated (before wo) |
 * | `attn_out`      |     l | (dim)                   | wo · kqv_out (+ bias)                      |
 * | `attn_post_norm`|     l | (dim)                   | its sandwich norm (`post_norms`, Gemma)    |
 * | `ffn_inp`       |     l | (dim)                   | residual stream after the attention        |
 * | `ffn_norm`      |     l | (dim)                   | normed input of the MLP                    |
 * | `ffn_out`       |     l | (dim)                   | w2 · ... (+ bias)                          |
 * | `ffn_post_norm` |     l | (dim)                   | its sandwich norm (`post_norms`, Gemma)    |
 * | `l_out`         |     l | (dim)                   | residual stream after the layer            |
 * | `result_norm`   |    -1 | (dim)                   | final norm (only when logits are computed) |
 * | `result_output` |    -1 | (vocab_size)            | logits (soft-capped when the model does)   |
 */
export type TraceName =
  | "inp_embd"
  | "attn_norm"
  | "Qcur"
  | "Kcur"
  | "Vcur"
  | "kqv_out"
  | "attn_out"
  | "attn_post_norm"
  | "ffn_inp"
  | "ffn_norm"
  | "ffn_out"
  | "ffn_post_norm"
  | "l_out"
  | "result_norm"
  | "result_output";

/** Options of {@linkcode createReference}: the forward options plus a tensor callback. */
export interface ReferenceOptions extends ForwardOptions {
  /**
   * Called with each intermediate tensor of each token as it is computed (see
   * {@linkcode TraceName}), like llama.cpp's eval callback or HF `output_hidden_states`: for
   * debugging and for docs/guide, whose steps compare their own code with these values.
   * `layer` is -1 outside the layers, `pos` the token's absolute position; `data` is a view
   * of the reference's own buffer, valid only during the call (copy it to keep it).
   */
  trace?: (name: TraceName, layer: number, pos: number, data: Float32Array) => void;
}

/**
 * Builds the reference forward pass for a config and its weights.
 *
 * Per token (llama2.c `forward()`): embedding (· embed_scale; + learned position for
 * gpt2); per layer `x += post_norm(wo · attention(rope(qk_norm(wq · norm(x))), ring K/V))`
 * then `x += post_norm(w2 · (act(w1 · h) * (w3 · h)))` (llama; act = silu for SwiGLU,
 * gelu_tanh for GeGLU; post norms only with `post_norms`) or `x += w2 · gelu(w1 · h + b1) + b2`
 * (gpt2) with `h = norm(x)`; final norm; logits = output (or tok_embeddings when tied) · x,
 * soft-capped when `final_logit_softcapping` is set.
 * Attention is causal over the KV ring: the token at position p is stored (keys after
 * RoPE) in slot `p % kvCapacity` and attends to positions `max(0, p - W + 1) .. p` with
 * W = min(kvCapacity, the layer's sliding window); query head h reads KV head
 * `floor(h / (n_heads / n_kv_heads))` (GQA / MQA); scores scaled by
 * `query_pre_attn_scalar^-0.5` (1/sqrt(head_dim) by default), then soft-capped when
 * `attn_logit_softcapping` is set.
 *
 * Buffers are f32; dot products accumulate in JS doubles.
 *
 * @param config The model config.
 * @param weights Canonical weights (checked against the config).
 * @param options `kvCapacity` (default `context_length`); `prefillChunk` is ignored here;
 *   `trace` receives every intermediate tensor ({@linkcode TraceName}).
 * @returns A {@linkcode ForwardPass} that processes tokens one at a time.
 * @throws {FormatError} when a weight is missing or mis-shaped.
 * @throws {RangeError} for a bad `kvCapacity`; `forward` throws it for bad ids/positions.
 * @throws {ResourceError} when the KV cache cannot be allocated (lower `kvCapacity`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { randomWeights } from "../core/weights.ts";
 * import { createReference } from "./reference.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const ref = createReference(c, randomWeights(c, 1));
 * const logits = ref.forward([1, 2, 3], 0).slice(); // (vocab_size) for the token at position 2
 * assert.equal(logits.length, 96);
 * // The same tokens one at a time through the KV cache give the same logits.
 * ref.forward([1], 0);
 * ref.forward([2], 1);
 * assert.deepEqual(ref.forward([3], 2), logits);
 * ```
 */
export function createReference(
  config: ModelConfig,
  weights: Weights,
  options: ReferenceOptions = {},
): ForwardPass {
  checkWeights(config, weights, "<weights>");
  const trace = options.trace;
  const kvCapacity = resolveKvCapacity(config, options);
  const c = config;
  const gpt2 = c.arch === "gpt2";
  const qDim = c.n_heads * c.head_dim;
  const kvDim = c.n_kv_heads * c.head_dim;
  const kvMul = c.n_heads / c.n_kv_heads; // query heads per KV head
  const scale = 1 / Math.sqrt(c.query_pre_attn_scalar);
  const rotDim = c.rope_dimension_count;
  const W = (name: string) => weights.get(name)!.data;
  const B = (name: string) => weights.get(name)?.data ?? null; // optional bias

  // Run state (llama2.c RunState).
  const x = new Float32Array(c.dim); // (dim) residual stream
  const xb = new Float32Array(c.dim); // (dim) normed input of a sublayer
  const xb2 = new Float32Array(c.dim); // (dim) sublayer output before the residual add
  const q = new Float32Array(qDim); // (n_heads * head_dim)
  const k = new Float32Array(kvDim); // (n_kv_heads * head_dim)
  const v = new Float32Array(kvDim); // (n_kv_heads * head_dim)
  const attOut = new Float32Array(qDim); // (n_heads * head_dim) concatenated head outputs
  let att: Float32Array; // (kv_capacity) scores of one head
  const hb = new Float32Array(c.hidden_dim); // (hidden_dim)
  const hb2 = new Float32Array(c.hidden_dim); // (hidden_dim)
  const logits = new Float32Array(c.vocab_size); // (vocab_size)
  // RoPE tables (core/rope.ts): global, and Gemma 3's local one for its sliding layers.
  const tables = gpt2
    ? []
    : [false, true].filter((local) => !local || c.rope_local_base_freq !== null).map((local) => ({
      invFreq: ropeInvFreq(c, local, kvCapacity), // (rope_dim/2); kvCapacity picks longrope's factors
      mscale: ropeAttnFactor(c, local), // yarn attention factor on cos and sin
      cos: new Float64Array(rotDim / 2), // (rope_dim/2) of this token's position
      sin: new Float64Array(rotDim / 2), // (rope_dim/2)
    }));
  const keyCache: Float32Array[] = []; // n_layers × (kv_capacity, kv_dim)
  const valueCache: Float32Array[] = []; // n_layers × (kv_capacity, kv_dim)
  try {
    for (let l = 0; l < c.n_layers; l++) {
      keyCache.push(new Float32Array(kvCapacity * kvDim));
      valueCache.push(new Float32Array(kvCapacity * kvDim));
    }
    att = new Float32Array(kvCapacity);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    const bytes = 2 * c.n_layers * kvCapacity * kvDim * 4;
    throw new ResourceError(
      `could not allocate the KV cache of ${bytes} bytes (2 × ${c.n_layers} layers × ` +
        `kvCapacity ${kvCapacity} × kv_dim ${kvDim} × 4): ${e.message}; lower --kv-capacity ` +
        "(kvCapacity)",
      bytes,
    );
  }

  const norm = (out: Float32Array, input: Float32Array, prefix: string) => {
    if (c.norm === "rmsnorm") rmsnorm(out, input, W(prefix + ".weight"), c.norm_eps);
    else layernorm(out, input, W(prefix + ".weight"), W(prefix + ".bias"), c.norm_eps);
  };
  /** RMSNorm of each `(head_dim)` head of `vec` (n_heads_here heads) with weight `(head_dim)`. */
  const headNorm = (vec: Float32Array, nHeads: number, weight: Float32Array) => {
    for (let h = 0; h < nHeads; h++) {
      const head = vec.subarray(h * c.head_dim, (h + 1) * c.head_dim);
      rmsnorm(head, head, weight, c.norm_eps);
    }
  };

  /** Runs one token at absolute position `pos`; fills `logits` when `wantLogits`. */
  function step(token: number, pos: number, wantLogits: boolean): void {
    // Embedding (+ learned position embedding for gpt2).
    const emb = W("tok_embeddings.weight");
    for (let j = 0; j < c.dim; j++) x[j] = emb[token * c.dim + j] * c.embed_scale;
    if (gpt2) {
      const pe = W("pos_embeddings.weight");
      for (let j = 0; j < c.dim; j++) x[j] += pe[pos * c.dim + j];
    }
    if (trace) trace("inp_embd", -1, pos, x);

    // RoPE angles of this position, once for every layer: pos · inv_freq[i] (· attn factor).
    for (const t of tables) {
      for (let i = 0; i < t.invFreq.length; i++) {
        t.cos[i] = Math.cos(pos * t.invFreq[i]) * t.mscale;
        t.sin[i] = Math.sin(pos * t.invFreq[i]) * t.mscale;
      }
    }

    const slot = pos % kvCapacity;
    for (let l = 0; l < c.n_layers; l++) {
      const p = `layers.${l}.`;
      // Oldest position this layer reads: the ring's and the layer's sliding window.
      const window = Math.min(kvCapacity, layerWindow(c, l) ?? kvCapacity);
      const start = Math.max(0, pos - window + 1);
      // ---- attention ----
      norm(xb, x, p + "attn_norm");
      if (trace) trace("attn_norm", l, pos, xb);
      matmul(q, xb, W(p + "attn.wq.weight"), B(p + "attn.wq.bias"), c.dim, qDim);
      matmul(k, xb, W(p + "attn.wk.weight"), B(p + "attn.wk.bias"), c.dim, kvDim);
      matmul(v, xb, W(p + "attn.wv.weight"), B(p + "attn.wv.bias"), c.dim, kvDim);
      if (c.qk_norm) {
        headNorm(q, c.n_heads, W(p + "attn.q_norm.weight"));
        headNorm(k, c.n_kv_heads, W(p + "attn.k_norm.weight"));
      }
      if (!gpt2) {
        const t = tables[layerRopeIsLocal(c, l) ? 1 : 0];
        rope(q, c.n_heads, c.head_dim, rotDim, t.cos, t.sin, c.rope_style);
        rope(k, c.n_kv_heads, c.head_dim, rotDim, t.cos, t.sin, c.rope_style);
      }
      if (trace) {
        trace("Qcur", l, pos, q);
        trace("Kcur", l, pos, k);
        trace("Vcur", l, pos, v);
      }
      // Store k, v (keys after RoPE) in this position's ring slot.
      keyCache[l].set(k, slot * kvDim);
      valueCache[l].set(v, slot * kvDim);

      for (let h = 0; h < c.n_heads; h++) {
        const qOff = h * c.head_dim;
        const kvOff = Math.floor(h / kvMul) * c.head_dim;
        // Scores over the window, oldest first.
        let max = -Infinity;
        for (let t = start; t <= pos; t++) {
          const kBase = (t % kvCapacity) * kvDim + kvOff;
          let score = 0;
          for (let i = 0; i < c.head_dim; i++) score += q[qOff + i] * keyCache[l][kBase + i];
          score = softcap(score * scale, c.attn_logit_softcapping);
          att[t - start] = score;
          if (score > max) max = score;
        }
        // Softmax.
        let sum = 0;
        for (let t = 0; t <= pos - start; t++) {
          att[t] = Math.exp(att[t] - max);
          sum += att[t];
        }
        // Weighted sum of values.
        for (let i = 0; i < c.head_dim; i++) {
          let acc = 0;
          for (let t = start; t <= pos; t++) {
            acc += att[t - start] * valueCache[l][(t % kvCapacity) * kvDim + kvOff + i];
          }
          attOut[qOff + i] = acc / sum;
        }
      }
      if (trace) trace("kqv_out", l, pos, attOut);
      matmul(xb2, attOut, W(p + "attn.wo.weight"), B(p + "attn.wo.bias"), qDim, c.dim);
      if (trace) trace("attn_out", l, pos, xb2);
      if (c.post_norms) {
        rmsnorm(xb2, xb2, W(p + "attn_post_norm.weight"), c.norm_eps);
        if (trace) trace("attn_post_norm", l, pos, xb2);
      }
      for (let j = 0; j < c.dim; j++) x[j] += xb2[j]; // residual
      if (trace) trace("ffn_inp", l, pos, x);

      // ---- MLP ----
      norm(xb, x, p + "ffn_norm");
      if (trace) trace("ffn_norm", l, pos, xb);
      matmul(hb, xb, W(p + "ffn.w1.weight"), B(p + "ffn.w1.bias"), c.dim, c.hidden_dim);
      if (c.mlp === "gelu") {
        for (let j = 0; j < c.hidden_dim; j++) hb[j] = gelu(hb[j]);
      } else {
        matmul(hb2, xb, W(p + "ffn.w3.weight"), null, c.dim, c.hidden_dim);
        const act = c.mlp === "swiglu" ? silu : gelu;
        for (let j = 0; j < c.hidden_dim; j++) hb[j] = act(hb[j]) * hb2[j];
      }
      matmul(xb2, hb, W(p + "ffn.w2.weight"), B(p + "ffn.w2.bias"), c.hidden_dim, c.dim);
      if (trace) trace("ffn_out", l, pos, xb2);
      if (c.post_norms) {
        rmsnorm(xb2, xb2, W(p + "ffn_post_norm.weight"), c.norm_eps);
        if (trace) trace("ffn_post_norm", l, pos, xb2);
      }
      for (let j = 0; j < c.dim; j++) x[j] += xb2[j]; // residual
      if (trace) trace("l_out", l, pos, x);
    }

    if (!wantLogits) return;
    norm(xb, x, "norm");
    if (trace) trace("result_norm", -1, pos, xb);
    const head = W(c.tie_embeddings ? "tok_embeddings.weight" : "output.weight");
    matmul(logits, xb, head, null, c.dim, c.vocab_size);
    const cap = c.final_logit_softcapping;
    if (cap !== null) {
      for (let j = 0; j < c.vocab_size; j++) {
        logits[j] = softcap(logits[j], cap);
      }
    }
    if (trace) trace("result_output", -1, pos, logits);
  }

  return {
    config,
    kvCapacity,
    forward(tokens: ArrayLike<number>, pos: number): Float32Array {
      checkForwardArgs(c, tokens, pos);
      const n = tokens.length;
      for (let i = 0; i < n; i++) step(tokens[i], pos + i, i === n - 1);
      return logits;
    },
    forwardAll(tokens: ArrayLike<number>, pos: number): Float32Array {
      checkForwardArgs(c, tokens, pos);
      const n = tokens.length;
      const out = new Float32Array(n * c.vocab_size); // (n, vocab_size)
      for (let i = 0; i < n; i++) {
        step(tokens[i], pos + i, true);
        out.set(logits, i * c.vocab_size);
      }
      return out;
    },
  };
}
