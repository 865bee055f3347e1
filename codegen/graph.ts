/**
 * The per-config compute graph: an ordered list of nodes over named buffers, every shape a
 * constant. The memory planner (`plan.ts`) gives each buffer an arena offset from the
 * nodes' read/write order, and the emitter (`emit_js.ts`) turns each node into one kernel
 * call with literal shapes and offsets, through its op table (`ops/`).
 *
 * One graph describes one batched step over up to `rows` token rows (engine v2 contract):
 * row t has its token `tok[t]`, absolute position `pos[t]` and sequence slot `seq[t]`, read
 * from the int32 `step.*` buffers that the caller writes before the step. Rows may belong
 * to different sequences at different positions; `rows = 1` is the decode graph
 * (matrix-vector kernels), `rows = T` the graph whose kernels loop over the `n <= T` rows
 * present (matrix-matrix kernels). Logits are computed only for the `nOut` rows listed in
 * `step.out_rows`. The row counts n and nOut and the step's tokens, positions and sequences
 * are the only runtime values.
 *
 * The KV cache is paged (vLLM PagedAttention, Kwon et al. 2023): per layer a K and a V pool
 * of `numBlocks · blockSize` rows, and per sequence a row of the block table, a ring length
 * and a sliding window (`seq.*` buffers, written by `setSequence`). Per-layer variation is a
 * node attribute: the attention's `layer_window` (Mistral/Qwen2 sliding windows, Gemma's
 * local layers) comes from {@linkcode layerWindow}.
 *
 * A node carries every constant its kernel needs in `attrs` (typed per op by
 * {@linkcode OpAttrs}), so a renderer never looks at the config. A new op is one entry in
 * `OpAttrs`, the nodes that use it here, and one renderer in the emitter's table.
 *
 * The architectures of issue #10 add two ops and a few attributes, each general:
 * `geglu` (Gemma's gated GELU), `softcap` (`cap · tanh(x / cap)`, Gemma 2's final logits),
 * `norm` over `heads` segments of a row (Qwen3 / Gemma 3 QK-norm), `rope` on the first
 * `rot_dim` dims (Phi-3 partial rotary), `rope_cos_sin` with `mscale` (YaRN's attention
 * factor), `attention` with a `scale` from `query_pre_attn_scalar` and a `softcap`, `embed`
 * with a `scale`; a second RoPE table (`rope.inv_freq_local`) for Gemma 3's local layers;
 * sandwich norms are plain `norm` nodes. codegen/graph_features.ts `extendedFeatures` lists
 * the ones a graph uses (both backends render them: codegen/ops/* and codegen/wasm/renderers.ts).
 *
 * The layer structure follows llama2.c `run.c` `forward()` and GPT-2 (Radford et al. 2019).
 *
 * @module
 */
import {
  layerRopeIsLocal,
  layerWindow as configLayerWindow,
  type ModelConfig,
} from "../core/config.ts";
import { ropeAttnFactor, ropeInvFreq } from "../core/rope.ts";
import type { BatchLayout } from "../core/forward.ts";

/**
 * Where a buffer lives and who writes it: `activation` (per step, planned by liveness),
 * `kv` (a layer's K or V pool), `table` (constants filled once by `init()`: the RoPE
 * inverse frequencies), `step` (int32 rows of the step, written by the caller before each
 * step), `seqs` (int32 per-sequence state: block table, ring, window; written by
 * `setSequence`).
 */
export type BufferKind = "activation" | "kv" | "table" | "step" | "seqs";

/** A named buffer of the graph. */
export interface GraphBuffer {
  /** Unique name, e.g. `x`, `l3.q`, `kv.l3.k`, `step.positions`. */
  name: string;
  /** Shape in elements, outermost first, e.g. `[rows, dim]`. */
  shape: number[];
  /** Who writes it (see {@linkcode BufferKind}). */
  kind: BufferKind;
  /**
   * Element type: `f32`, `i32` for the `step` and `seqs` buffers (4 bytes each), or `f16` for
   * the K/V pools of an f16 cache (2 bytes; `BatchLayout.cacheTypeK`/`cacheTypeV`).
   */
  dtype: "f32" | "i32" | "f16";
  /** A `table` buffer's constant values (what `init()` writes), e.g. the RoPE inverse frequencies. */
  values?: Float32Array;
  /** One line saying what a `table` buffer holds (emitted above its values). */
  doc?: string;
}

/**
 * The constants of each op, by op name: what the op's kernel is specialised on. Sizes are in
 * elements.
 */
export interface OpAttrs {
  /** Token embedding row (+ learned position row): `x (n, dim) = e[tok[t]] (+ pe[pos[t]])`. */
  embed: {
    /** Model width. */
    dim: number;
    /** Adds a learned position embedding (gpt2's `pos_embeddings.weight`). */
    learned_pos: boolean;
    /** Multiplies the token embedding row (Gemma: sqrt(dim)); absent = 1. */
    scale?: number;
  };
  /** cos/sin `(n, half)` of the rows' positions from the `(half)` inverse frequencies. */
  rope_cos_sin: {
    /** `rope_dimension_count / 2`: rotation pairs per head. */
    half: number;
    /** cos and sin are multiplied by it (YaRN's attention factor); absent = 1. */
    mscale?: number;
  };
  /** RMSNorm or LayerNorm over each row, or over each of its `heads` segments. */
  norm: {
    /** `rmsnorm` (weight) or `layernorm` (weight and bias). */
    kind: "rmsnorm" | "layernorm";
    /** Width normalised: the row, or one head (`heads` segments of `dim` per row). */
    dim: number;
    /** Epsilon added to the mean square / variance. */
    eps: number;
    /** Segments per row, each normalised with the same `(dim)` weight (QK-norm); absent = 1. */
    heads?: number;
  };
  /** `y (n, out) = x (n, in) · wᵀ (+ bias)`, w `(out, in)` row-major. */
  linear: {
    /** Input features (columns of w). */
    in: number;
    /** Output features (rows of w). */
    out: number;
    /** Adds a bias `(out)`. */
    bias: boolean;
  };
  /** Rotates q and k in place by the rows' cos/sin. */
  rope: {
    /** Pairing: `half` (i, i + rot_dim/2) or `interleaved` (2i, 2i + 1). */
    style: "half" | "interleaved";
    /** Dims of each head rotated, the first ones (partial rotary); absent = head_dim. */
    rot_dim?: number;
    /** Query heads. */
    n_heads: number;
    /** Key/value heads. */
    n_kv_heads: number;
    /** Width of one head. */
    head_dim: number;
  };
  /** Stores each row's k, v in its sequence's slot of the layer's K/V pools. */
  kv_store: {
    /** `n_kv_heads · head_dim`. */
    kv_dim: number;
    /** Tokens per block. */
    block_size: number;
    /** Columns of the block table (its row stride). */
    blocks_per_seq: number;
    /** `f16`: the K pool holds f16 (rounded to nearest even when stored); absent: f32. */
    k_type?: "f16";
    /** `f16`: the V pool holds f16; absent: f32. */
    v_type?: "f16";
  };
  /** Causal attention of each row over its sequence's blocks (paged attention). */
  attention: {
    /** Query heads. */
    n_heads: number;
    /** Key/value heads (query head h reads KV head `h / (n_heads / n_kv_heads)`). */
    n_kv_heads: number;
    /** Width of one head. */
    head_dim: number;
    /** Tokens per block. */
    block_size: number;
    /** Columns of the block table (its row stride). */
    blocks_per_seq: number;
    /** This layer's own sliding window in tokens, or null for none ({@linkcode layerWindow}). */
    layer_window: number | null;
    /** Score scale, `1 / sqrt(head_dim)` (Gemma: `query_pre_attn_scalar^-0.5`). */
    scale: number;
    /** Scores become `softcap · tanh(score / softcap)` (Gemma 2); absent or null = none. */
    softcap?: number | null;
    /** `f16`: the K pool holds f16, widened to f32 when read; absent: f32. */
    k_type?: "f16";
    /** `f16`: the V pool holds f16; absent: f32. */
    v_type?: "f16";
  };
  /** `y (nOut, dim) = x[out_rows[i]]`: the rows whose logits are wanted. */
  gather_rows: {
    /** Row width. */
    dim: number;
  };
  /** `x += y` (the residual add). */
  add: {
    /** Row width. */
    dim: number;
  };
  /** `g = silu(g) · u` (Shazeer 2020). */
  swiglu: {
    /** Row width (hidden_dim). */
    dim: number;
  };
  /** `h = gelu_tanh(h)` (GPT-2, HF `gelu_new`). */
  gelu: {
    /** Row width (hidden_dim). */
    dim: number;
  };
  /** `g = gelu_tanh(g) · u` (GeGLU, Shazeer 2020; Gemma's `gelu_pytorch_tanh` gate). */
  geglu: {
    /** Row width (hidden_dim). */
    dim: number;
  };
  /** `x = cap · tanh(x / cap)` over each row (Gemma 2's final logit soft-capping). */
  softcap: {
    /** Row width. */
    dim: number;
    /** The cap. */
    cap: number;
  };
}

/** Operation of a graph node: a key of {@linkcode OpAttrs}. */
export type NodeOp = keyof OpAttrs;

/** One node of op `O`, reading and writing whole buffers (see {@linkcode GraphNode}). */
export interface GraphNodeOf<O extends NodeOp> {
  /** The operation. */
  op: O;
  /**
   * The emitted function (group) it belongs to: `embed`, `rope`, `layer3_attn`,
   * `layer3_ffn`, `lm_head`.
   */
  group: string;
  /** Layer index, or -1 outside the layers. */
  layer: number;
  /**
   * The rows it runs over: `step` (the n rows of the step; default) or `out` (the nOut
   * gathered out rows: the final norm and the LM head).
   */
  rows?: "step" | "out";
  /** Buffers read (before any write of this node). */
  inputs: string[];
  /** Buffers written (may also be inputs: in-place ops like `add`, `rope`). */
  outputs: string[];
  /** Weight tensors used, by canonical name (docs/DESIGN.md "Tensor names"). */
  weights: string[];
  /** The op's constants (see {@linkcode OpAttrs}). */
  attrs: OpAttrs[O];
  /** One line describing the node with shapes, used as the emitted comment. */
  doc: string;
}

/**
 * One operation of the graph: `op` names it and fixes the type of `attrs`. `GraphNode` alone
 * is the union over every op; `GraphNode<"linear">` is one op's node.
 */
export type GraphNode<O extends NodeOp = NodeOp> = O extends NodeOp ? GraphNodeOf<O> : never;

/** The ordered graph of one step. */
export interface Graph {
  /** The config it was built for. */
  config: ModelConfig;
  /** Token rows of the graph's buffers (1 = decode, T = `layout.maxRows`). */
  rows: number;
  /** The batch layout: rows per step, sequences, blocks. */
  layout: BatchLayout;
  /**
   * Buffers by name: this step's activations, the step's int32 rows, the sequences' block
   * tables, the K/V pools and the RoPE inverse frequencies. None is sized by
   * `context_length`.
   */
  buffers: Map<string, GraphBuffer>;
  /** Nodes in execution order. */
  nodes: GraphNode[];
  /** Name of the output buffer (`logits`, shape `(rows, vocab_size)`; nOut rows filled). */
  output: string;
}

/**
 * The sliding window of layer `layer` in tokens, or null when the layer attends to the
 * whole sequence (its sequence's own `window` still applies): core/config.ts `layerWindow`
 * (Mistral and Phi-3 on every layer, Qwen2's layers from `max_window_layers`, Gemma's
 * alternating local layers).
 *
 * @param config The model config.
 * @param layer Layer index.
 * @returns Tokens, or null for no limit.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig, parseConfigYaml } from "../core/config.ts";
 * import { layerWindow } from "./graph.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * assert.equal(layerWindow(c, 0), null);
 * assert.equal(layerWindow(parseConfig({ ...c, sliding_window: 16 }, "m"), 1), 16); // Mistral
 * ```
 */
export function layerWindow(config: ModelConfig, layer: number): number | null {
  return configLayerWindow(config, layer);
}

/**
 * Builds the graph of one batched step over up to `rows` token rows.
 *
 * First the embedding of each row's token (· embed_scale; + gpt2's learned position row)
 * (group `embed`), then (llama) the cos/sin of the rows' positions, `(rows, rope_dim / 2)`
 * each, computed once from the `(rope_dim / 2)` inverse frequencies (core/rope.ts, scaled)
 * and read by every layer's RoPE (group `rope`; HF's `rotary_emb`, llama.cpp's theta per
 * position), and a second pair from the local table when Gemma 3's sliding layers have their
 * own base. Nodes per layer l (group `layer{l}_attn`): norm → q/k/v linear (bias when
 * attn_bias or gpt2) → q/k norm per head (qk_norm) → rope (llama) → kv_store (every row's k,
 * v into its slot) → attention (reads only the cache; the layer's window, scale and softcap)
 * → o linear → post norm (post_norms) → residual add; (group `layer{l}_ffn`): norm → w1 +
 * w3 + swiglu/geglu, or w1 + gelu → w2 → post norm (post_norms) → residual add. Then (group
 * `lm_head`, over the nOut out rows only) the gather of the out rows, the final norm, the LM
 * head (it reuses `tok_embeddings.weight` when tied) and the final softcap.
 * Storing before attending lets rows of one sequence in the same step see each other
 * causally through the cache.
 *
 * @param config The model config.
 * @param rows Token rows of the graph (1 for decode, `layout.maxRows` otherwise).
 * @param layout The batch layout (rows per step, sequences, block size, blocks).
 * @returns The graph; buffer shapes in elements.
 * @throws {RangeError} when `rows` is not an integer in `[1, layout.maxRows]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { resolveBatchLayout } from "../core/forward.ts";
 * import { buildGraph } from "./graph.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const layout = resolveBatchLayout({ maxRows: 8, maxSeqs: 4, numBlocks: 32, maxBlocksPerSeq: 8 });
 * const g = buildGraph(c, 8, layout);
 * assert.deepEqual(g.nodes.slice(0, 3).map((n) => n.op), ["embed", "rope_cos_sin", "norm"]);
 * assert.deepEqual(g.buffers.get("x")!.shape, [8, 48]); // (rows, dim)
 * assert.deepEqual(g.buffers.get("kv.l0.k")!.shape, [512, 24]); // (numBlocks · blockSize, kv_dim)
 * assert.deepEqual(g.buffers.get("seq.block_table")!.shape, [4, 8]); // (maxSeqs, maxBlocksPerSeq)
 * ```
 */
export function buildGraph(config: ModelConfig, rows: number, layout: BatchLayout): Graph {
  if (!Number.isInteger(rows) || rows <= 0 || rows > layout.maxRows) {
    throw new RangeError(
      `buildGraph: rows must be an integer in [1, maxRows ${layout.maxRows}], got ${rows}`,
    );
  }
  const c = config;
  const T = rows;
  const gpt2 = c.arch === "gpt2";
  const qDim = c.n_heads * c.head_dim;
  const kvDim = c.n_kv_heads * c.head_dim;
  const rotDim = c.rope_dimension_count;
  const half = rotDim / 2;
  const { maxRows, maxSeqs, blockSize, numBlocks, maxBlocksPerSeq } = layout;
  const context = layout.contextSize ?? maxBlocksPerSeq * blockSize; // picks longrope's factors
  const kType = layout.cacheTypeK ?? "f32", vType = layout.cacheTypeV ?? "f32";
  const buffers = new Map<string, GraphBuffer>();
  const nodes: GraphNode[] = [];
  const buf = (
    name: string,
    shape: number[],
    kind: BufferKind = "activation",
    dtype: GraphBuffer["dtype"] = kind === "step" || kind === "seqs" ? "i32" : "f32",
  ) => {
    buffers.set(name, { name, shape, kind, dtype });
    return name;
  };
  const table = (name: string, values: Float32Array, doc: string) => {
    buffers.set(name, { name, shape: [values.length], kind: "table", dtype: "f32", values, doc });
    return name;
  };
  const node = <O extends NodeOp>(n: GraphNodeOf<O>) => nodes.push(n as GraphNode);
  const shp = (name: string) => `(${buffers.get(name)!.shape.join(", ")})`;

  // ---- the step's rows (written by the caller) and the sequences' paged-cache state ----
  const tok = buf("step.tokens", [maxRows], "step"); // token id of row t
  const pos = buf("step.positions", [maxRows], "step"); // absolute position of row t
  const seq = buf("step.seqs", [maxRows], "step"); // sequence slot of row t
  const outRows = buf("step.out_rows", [maxRows], "step"); // rows whose logits are wanted
  buf("step.counts", [2], "step"); // n (rows), nOut (out rows): read by the entry point
  const blockTable = buf("seq.block_table", [maxSeqs, maxBlocksPerSeq], "seqs");
  const ring = buf("seq.ring", [maxSeqs], "seqs"); // ring length in tokens
  const window = buf("seq.window", [maxSeqs], "seqs"); // the sequence's sliding window

  // ---- embedding ----
  const x = buf("x", [T, c.dim]); // residual stream
  const embedScale = c.embed_scale;
  node({
    op: "embed",
    group: "embed",
    layer: -1,
    inputs: gpt2 ? [tok, pos] : [tok],
    outputs: [x],
    weights: gpt2 ? ["tok_embeddings.weight", "pos_embeddings.weight"] : ["tok_embeddings.weight"],
    attrs: embedScale === 1
      ? { dim: c.dim, learned_pos: gpt2 }
      : { dim: c.dim, learned_pos: gpt2, scale: embedScale },
    doc: `x ${shp(x)} = tok_embeddings[tok[t]]` + (embedScale === 1 ? "" : ` · ${embedScale}`) +
      (gpt2 ? " + pos_embeddings[pos[t]]" : ""),
  });

  // ---- RoPE angles of this step's positions, shared by every layer ----
  /** cos, sin buffers of the global table ([0]) and of the local one ([1], Gemma 3). */
  const ropeTables: [string, string][] = [];
  if (!gpt2) {
    const locals = c.rope_local_base_freq === null ? [false] : [false, true];
    for (const local of locals) {
      const sfx = local ? "_local" : "";
      const values = ropeInvFreq(c, local, context);
      const theta = local ? c.rope_local_base_freq! : c.rope_theta;
      const scaled = local || c.rope_scaling === "none"
        ? (c.rope_freq_factors && !local ? " / rope_freq_factors[i]" : "")
        : c.rope_scaling === "longrope"
        ? ` / rope_${context > c.rope_original_context_length! ? "long" : "short"}_factors[i]`
        : ` ${c.rope_scaling} ×${c.rope_scaling_factor}`;
      const invFreq = table(
        `rope.inv_freq${sfx}`,
        values,
        `RoPE inverse frequencies (${half}) = ${theta}^(-2i/${rotDim})${scaled}, f32 (core/rope.ts)`,
      );
      const cos = buf(`rope.cos${sfx}`, [T, half]);
      const sin = buf(`rope.sin${sfx}`, [T, half]);
      const mscale = ropeAttnFactor(c, local);
      node({
        op: "rope_cos_sin",
        group: "rope",
        layer: -1,
        inputs: [invFreq, pos],
        outputs: [cos, sin],
        weights: [],
        attrs: mscale === 1 ? { half } : { half, mscale },
        doc: `${cos}, ${sin} ${shp(cos)} = cos, sin(pos[t] · ${invFreq} (${half}))` +
          (mscale === 1 ? "" : ` · ${mscale}`),
      });
      ropeTables.push([cos, sin]);
    }
  }

  const norm = (
    group: string,
    layer: number,
    input: string,
    out: string,
    prefix: string,
    rows: "step" | "out" = "step",
  ) => {
    const ln = c.norm === "layernorm";
    node({
      op: "norm",
      group,
      layer,
      rows,
      inputs: [input],
      outputs: [out],
      weights: ln ? [prefix + ".weight", prefix + ".bias"] : [prefix + ".weight"],
      attrs: { kind: c.norm, eps: c.norm_eps, dim: c.dim },
      doc: `${out} ${shp(out)} = ${c.norm}(${input}) · ${prefix}`,
    });
  };
  /** QK-norm: RMSNorm of each of the `heads` `(head_dim)` segments of every row, in place. */
  const headNorm = (group: string, layer: number, buffer: string, heads: number, w: string) => {
    node({
      op: "norm",
      group,
      layer,
      inputs: [buffer],
      outputs: [buffer],
      weights: [w],
      attrs: { kind: "rmsnorm", eps: c.norm_eps, dim: c.head_dim, heads },
      doc: `${buffer} ${
        shp(buffer)
      } = rmsnorm of each of its ${heads} heads (${c.head_dim}) · ${w}`,
    });
  };
  const linear = (
    group: string,
    layer: number,
    input: string,
    out: string,
    weight: string,
    bias: string | null,
    inF: number,
    outF: number,
    rows: "step" | "out" = "step",
  ) => {
    node({
      op: "linear",
      group,
      layer,
      rows,
      inputs: [input],
      outputs: [out],
      weights: bias ? [weight, bias] : [weight],
      attrs: { in: inF, out: outF, bias: bias !== null },
      doc: `${out} ${shp(out)} = ${input} ${shp(input)} · ${weight}ᵀ (${outF}, ${inF})` +
        (bias ? ` + bias` : ""),
    });
  };
  const residual = (group: string, layer: number, y: string) => {
    node({
      op: "add",
      group,
      layer,
      inputs: [x, y],
      outputs: [x],
      weights: [],
      attrs: { dim: c.dim },
      doc: `x ${shp(x)} += ${y}`,
    });
  };
  const ringMax = maxBlocksPerSeq * blockSize; // the most positions one row can read

  for (let l = 0; l < c.n_layers; l++) {
    const p = `layers.${l}.`;
    const L = `l${l}.`;

    // ---- attention: x += wo · attention(rope(wq · norm(x)), paged K/V) ----
    const ga = `layer${l}_attn`;
    const kPool = buf(`kv.l${l}.k`, [numBlocks * blockSize, kvDim], "kv", kType);
    const vPool = buf(`kv.l${l}.v`, [numBlocks * blockSize, kvDim], "kv", vType);
    const xa = buf(L + "attn_in", [T, c.dim]);
    norm(ga, l, x, xa, p + "attn_norm");
    const q = buf(L + "q", [T, qDim]);
    const k = buf(L + "k", [T, kvDim]);
    const v = buf(L + "v", [T, kvDim]);
    const qkvBias = c.attn_bias || gpt2;
    linear(ga, l, xa, q, p + "attn.wq.weight", qkvBias ? p + "attn.wq.bias" : null, c.dim, qDim);
    linear(ga, l, xa, k, p + "attn.wk.weight", qkvBias ? p + "attn.wk.bias" : null, c.dim, kvDim);
    linear(ga, l, xa, v, p + "attn.wv.weight", qkvBias ? p + "attn.wv.bias" : null, c.dim, kvDim);
    if (c.qk_norm) {
      headNorm(ga, l, q, c.n_heads, p + "attn.q_norm.weight");
      headNorm(ga, l, k, c.n_kv_heads, p + "attn.k_norm.weight");
    }
    if (!gpt2) {
      const [cos, sin] = ropeTables[layerRopeIsLocal(c, l) ? 1 : 0];
      const partial = rotDim !== c.head_dim;
      node({
        op: "rope",
        group: ga,
        layer: l,
        inputs: [q, k, cos, sin],
        outputs: [q, k],
        weights: [],
        attrs: {
          style: c.rope_style,
          n_heads: c.n_heads,
          n_kv_heads: c.n_kv_heads,
          head_dim: c.head_dim,
          ...(partial ? { rot_dim: rotDim } : {}),
        },
        doc: `RoPE (${c.rope_style}) on q ${shp(q)} and k ${shp(k)} by ${cos}, ${sin}` +
          (partial ? `, the first ${rotDim} dims of each head` : ""),
      });
    }
    node({
      op: "kv_store",
      group: ga,
      layer: l,
      inputs: [k, v, pos, seq, blockTable, ring],
      outputs: [kPool, vPool],
      weights: [],
      attrs: {
        kv_dim: kvDim,
        block_size: blockSize,
        blocks_per_seq: maxBlocksPerSeq,
        ...(kType === "f16" ? { k_type: kType } : {}),
        ...(vType === "f16" ? { v_type: vType } : {}),
      },
      doc: `${k}[t], ${v}[t] → the row of (seq[t], pos[t]) in the blocks of ${kPool}, ` +
        `${vPool} ${shp(kPool)}` +
        (kType === "f16" || vType === "f16" ? ` (K ${kType}, V ${vType})` : ""),
    });
    const lw = layerWindow(c, l);
    const scale = 1 / Math.sqrt(c.query_pre_attn_scalar);
    const cap = c.attn_logit_softcapping;
    const att = buf(L + "att", [ringMax]); // scores of one head over one row's window
    const ao = buf(L + "attn_out", [T, qDim]);
    node({
      op: "attention",
      group: ga,
      layer: l,
      inputs: [q, kPool, vPool, pos, seq, blockTable, ring, window],
      outputs: [ao, att],
      weights: [],
      attrs: {
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        block_size: blockSize,
        blocks_per_seq: maxBlocksPerSeq,
        layer_window: lw,
        scale,
        ...(cap === null ? {} : { softcap: cap }),
        ...(kType === "f16" ? { k_type: kType } : {}),
        ...(vType === "f16" ? { v_type: vType } : {}),
      },
      doc: `attn_out ${shp(ao)} = softmax(` +
        (cap === null ? "" : `${cap}·tanh(`) + `q·kᵀ/sqrt(${c.query_pre_attn_scalar})` +
        (cap === null ? "" : `/${cap})`) + `)·v, ` +
        `${c.n_heads} heads over ${c.n_kv_heads} KV heads` +
        (lw === null ? "" : `, layer window ${lw}`) +
        `, each row over its sequence's blocks of ${kPool}, ${vPool} ${shp(kPool)}`,
    });
    const o = buf(L + "attn_proj", [T, c.dim]);
    linear(ga, l, ao, o, p + "attn.wo.weight", gpt2 ? p + "attn.wo.bias" : null, qDim, c.dim);
    if (c.post_norms) norm(ga, l, o, o, p + "attn_post_norm");
    residual(ga, l, o);

    // ---- MLP: x += w2 · (act(w1 · h) * (w3 · h)) or w2 · gelu(w1 · h), h = norm(x) ----
    const gf = `layer${l}_ffn`;
    const H = c.hidden_dim;
    const xf = buf(L + "ffn_in", [T, c.dim]);
    norm(gf, l, x, xf, p + "ffn_norm");
    const h1 = buf(L + "h1", [T, H]);
    linear(gf, l, xf, h1, p + "ffn.w1.weight", gpt2 ? p + "ffn.w1.bias" : null, c.dim, H);
    if (c.mlp !== "gelu") {
      const h3 = buf(L + "h3", [T, H]);
      linear(gf, l, xf, h3, p + "ffn.w3.weight", null, c.dim, H);
      node({
        op: c.mlp,
        group: gf,
        layer: l,
        inputs: [h1, h3],
        outputs: [h1],
        weights: [],
        attrs: { dim: H },
        doc: `${h1} ${shp(h1)} = ${c.mlp === "swiglu" ? "silu" : "gelu_tanh"}(${h1}) * ${h3}`,
      });
    } else {
      node({
        op: "gelu",
        group: gf,
        layer: l,
        inputs: [h1],
        outputs: [h1],
        weights: [],
        attrs: { dim: H },
        doc: `${h1} ${shp(h1)} = gelu_tanh(${h1})`,
      });
    }
    const f = buf(L + "ffn_out", [T, c.dim]);
    linear(gf, l, h1, f, p + "ffn.w2.weight", gpt2 ? p + "ffn.w2.bias" : null, H, c.dim);
    if (c.post_norms) norm(gf, l, f, f, p + "ffn_post_norm");
    residual(gf, l, f);
  }

  // ---- the out rows only: gather, final norm and LM head ----
  const xo = buf("x_out", [T, c.dim]);
  node({
    op: "gather_rows",
    group: "lm_head",
    layer: -1,
    rows: "out",
    inputs: [x, outRows],
    outputs: [xo],
    weights: [],
    attrs: { dim: c.dim },
    doc: `x_out ${shp(xo)} = x[out_rows[i]] for the nOut rows whose logits are wanted`,
  });
  const xn = buf("final", [T, c.dim]);
  norm("lm_head", -1, xo, xn, "norm", "out");
  const logits = buf("logits", [T, c.vocab_size]);
  const head = c.tie_embeddings ? "tok_embeddings.weight" : "output.weight";
  linear("lm_head", -1, xn, logits, head, null, c.dim, c.vocab_size, "out");
  const finalCap = c.final_logit_softcapping;
  if (finalCap !== null) {
    node({
      op: "softcap",
      group: "lm_head",
      layer: -1,
      rows: "out",
      inputs: [logits],
      outputs: [logits],
      weights: [],
      attrs: { dim: c.vocab_size, cap: finalCap },
      doc: `logits ${shp(logits)} = ${finalCap} · tanh(logits / ${finalCap})`,
    });
  }
  return { config: c, rows: T, layout, buffers, nodes, output: logits };
}

/**
 * Multiply-accumulates of one token at absolute position `pos` (matrix products only:
 * q/k/v/o, MLP, LM head, and attention's q·k and a·v over each layer's live window), the count
 * `gollm bench` turns into effective GFLOP/s (2 FLOPs per MAC).
 *
 * @param config The model config.
 * @param pos Absolute position of the token (sets the attention window).
 * @param kvCapacity Ring slots per layer (window size).
 * @param lmHead Count the LM head (false for prefill rows whose logits are not needed).
 * @returns Multiply-adds for that token.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { macsPerToken } from "./graph.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * // 12 layers × (q, o: 768²; k, v: 768 × 256; MLP 3 × 768 × 2048; q·k and a·v over 1
 * // position: 2 × 768) + the LM head 768 × 32768
 * const layer = 2 * 768 ** 2 + 2 * 768 * 256 + 3 * 768 * 2048 + 2 * 768;
 * assert.equal(macsPerToken(c, 0, 2048, true), 12 * layer + 768 * 32768); // 100,681,728
 * ```
 */
export function macsPerToken(
  config: ModelConfig,
  pos: number,
  kvCapacity: number,
  lmHead: boolean,
): number {
  const c = config;
  const qDim = c.n_heads * c.head_dim, kvDim = c.n_kv_heads * c.head_dim;
  const mlp = (c.mlp === "gelu" ? 2 : 3) * c.dim * c.hidden_dim;
  const proj = c.dim * qDim + 2 * c.dim * kvDim + qDim * c.dim;
  let attn = 0;
  for (let l = 0; l < c.n_layers; l++) {
    const window = Math.min(pos + 1, kvCapacity, layerWindow(c, l) ?? kvCapacity);
    attn += 2 * c.n_heads * c.head_dim * window;
  }
  return c.n_layers * (proj + mlp) + attn + (lmHead ? c.dim * c.vocab_size : 0);
}
