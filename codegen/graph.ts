/**
 * The per-config compute graph: an ordered list of nodes over named buffers, every shape a
 * constant. The memory planner (`plan.ts`) gives each buffer an arena offset from the
 * nodes' read/write order, and the emitter (`emit_js.ts`) turns each node into one kernel
 * call with literal shapes and offsets, through its op table (`ops/`).
 *
 * One graph describes one step over `rows` tokens: `rows = 1` is the decode step,
 * `rows = T` the prefill step (a chunk of up to T tokens; kernels loop over the `n <= T`
 * rows actually present). Positions are the only runtime values.
 *
 * A node carries every constant its kernel needs in `attrs` (typed per op by
 * {@linkcode OpAttrs}), so a renderer never looks at the config. A new op is one entry in
 * `OpAttrs`, the nodes that use it here, and one renderer in the emitter's table.
 *
 * The layer structure follows llama2.c `run.c` `forward()` and GPT-2 (Radford et al. 2019).
 *
 * @module
 */
import type { ModelConfig } from "../core/config.ts";

/** Where a buffer lives: per-step activations, or state that persists across steps. */
export type BufferKind = "activation" | "kv" | "table";

/** A named f32 buffer of the graph. */
export interface GraphBuffer {
  /** Unique name, e.g. `x`, `l3.q`, `kv.l3.k`. */
  name: string;
  /** Shape in f32 elements, outermost first, e.g. `[rows, dim]`. */
  shape: number[];
  /**
   * `activation` (planned by liveness), `kv` (a layer's ring), `table` (constants filled
   * once by `init()`: the RoPE inverse frequencies).
   */
  kind: BufferKind;
}

/**
 * The constants of each op, by op name: what the op's kernel is specialised on. Sizes are in
 * f32 elements.
 */
export interface OpAttrs {
  /** Token embedding row (+ learned position row): `x (n, dim) = e[token] (+ pe[pos])`. */
  embed: {
    /** Model width. */
    dim: number;
    /** Adds a learned position embedding (gpt2's `pos_embeddings.weight`). */
    learned_pos: boolean;
  };
  /** cos/sin `(n, half)` of the step's positions from the `(half)` inverse frequencies. */
  rope_cos_sin: {
    /** `head_dim / 2`: rotation pairs per head. */
    half: number;
  };
  /** RMSNorm or LayerNorm over each row. */
  norm: {
    /** `rmsnorm` (weight) or `layernorm` (weight and bias). */
    kind: "rmsnorm" | "layernorm";
    /** Row width. */
    dim: number;
    /** Epsilon added to the mean square / variance. */
    eps: number;
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
  /** Rotates q and k in place by the step's cos/sin. */
  rope: {
    /** Pairing: `half` (i, i + head_dim/2) or `interleaved` (2i, 2i + 1). */
    style: "half" | "interleaved";
    /** Query heads. */
    n_heads: number;
    /** Key/value heads. */
    n_kv_heads: number;
    /** Width of one head. */
    head_dim: number;
  };
  /** Causal attention of the step's rows over the KV ring and their own k/v. */
  attention: {
    /** Query heads. */
    n_heads: number;
    /** Key/value heads (query head h reads KV head `h / (n_heads / n_kv_heads)`). */
    n_kv_heads: number;
    /** Width of one head. */
    head_dim: number;
    /** Ring slots: the sliding window. */
    kv_capacity: number;
    /** Score scale, `1 / sqrt(head_dim)`. */
    scale: number;
  };
  /** Stores the step's k/v rows in ring slots `(pos + t) % kv_capacity`. */
  kv_store: {
    /** `n_kv_heads · head_dim`. */
    kv_dim: number;
    /** Ring slots. */
    kv_capacity: number;
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
  /** Buffers read (before any write of this node). */
  inputs: string[];
  /** Buffers written (may also be inputs: in-place ops like `add`, `rope`). */
  outputs: string[];
  /** Weight tensors used, by canonical name (DESIGN.md "Tensor names"). */
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
  /** Token rows per step (1 = decode, T = prefill chunk). */
  rows: number;
  /** KV ring slots per layer. */
  kvCapacity: number;
  /**
   * Buffers by name: this step's activations, the persistent KV rings and the RoPE inverse
   * frequencies. None is sized by `context_length`.
   */
  buffers: Map<string, GraphBuffer>;
  /** Nodes in execution order. */
  nodes: GraphNode[];
  /** Name of the output buffer (`logits`, shape `(rows, vocab_size)`). */
  output: string;
}

/**
 * Builds the graph of one forward step over `rows` tokens.
 *
 * First the embedding (group `embed`), then (llama) the cos/sin of the step's positions,
 * `(rows, head_dim / 2)` each, computed once from the `(head_dim / 2)` inverse frequencies
 * and read by every layer's RoPE (group `rope`; HF's `rotary_emb`, llama.cpp's theta per
 * position). Nodes per layer l (group `layer{l}_attn`): norm → q/k/v linear (bias when
 * attn_bias or gpt2) → rope (llama) → attention (reads this step's k/v rows and the ring)
 * → kv_store → o linear → residual add; (group `layer{l}_ffn`): norm → w1 (+ w3, swiglu)
 * or w1 + gelu → w2 → residual add. Then the final norm and the LM head (group `lm_head`;
 * it reuses `tok_embeddings.weight` when tied). Attention runs before kv_store so that a
 * chunk longer than the window never overwrites a slot one of its own tokens still needs.
 *
 * @param config The model config.
 * @param rows Tokens per step (1 for decode, the prefill chunk T otherwise).
 * @param kvCapacity Ring slots per layer.
 * @returns The graph; buffer shapes in f32 elements.
 * @throws {RangeError} when `rows` or `kvCapacity` is not a positive integer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfigYaml } from "../core/config.ts";
 * import { buildGraph } from "./graph.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const g = buildGraph(c, 1, 64);
 * assert.deepEqual(g.nodes.slice(0, 3).map((n) => n.op), ["embed", "rope_cos_sin", "norm"]);
 * assert.deepEqual(g.buffers.get("x")!.shape, [1, 48]); // (rows, dim)
 * assert.deepEqual(g.buffers.get("rope.cos")!.shape, [1, 6]); // (rows, head_dim / 2)
 * ```
 */
export function buildGraph(config: ModelConfig, rows: number, kvCapacity: number): Graph {
  if (!Number.isInteger(rows) || rows <= 0) {
    throw new RangeError(`buildGraph: rows must be a positive integer, got ${rows}`);
  }
  if (!Number.isInteger(kvCapacity) || kvCapacity <= 0) {
    throw new RangeError(`buildGraph: kvCapacity must be a positive integer, got ${kvCapacity}`);
  }
  const c = config;
  const T = rows;
  const gpt2 = c.arch === "gpt2";
  const qDim = c.n_heads * c.head_dim;
  const kvDim = c.n_kv_heads * c.head_dim;
  const half = c.head_dim / 2;
  const buffers = new Map<string, GraphBuffer>();
  const nodes: GraphNode[] = [];
  const buf = (name: string, shape: number[], kind: BufferKind = "activation") => {
    buffers.set(name, { name, shape, kind });
    return name;
  };
  const node = <O extends NodeOp>(n: GraphNodeOf<O>) => nodes.push(n as GraphNode);
  const shp = (name: string) => `(${buffers.get(name)!.shape.join(", ")})`;

  // ---- embedding ----
  const x = buf("x", [T, c.dim]); // residual stream
  node({
    op: "embed",
    group: "embed",
    layer: -1,
    inputs: [],
    outputs: [x],
    weights: gpt2 ? ["tok_embeddings.weight", "pos_embeddings.weight"] : ["tok_embeddings.weight"],
    attrs: { dim: c.dim, learned_pos: gpt2 },
    doc: `x ${shp(x)} = tok_embeddings[token]` + (gpt2 ? " + pos_embeddings[pos]" : ""),
  });

  // ---- RoPE angles of this step's positions, shared by every layer ----
  let ropeCos = "", ropeSin = "";
  if (!gpt2) {
    const invFreq = buf("rope.inv_freq", [half], "table");
    ropeCos = buf("rope.cos", [T, half]);
    ropeSin = buf("rope.sin", [T, half]);
    node({
      op: "rope_cos_sin",
      group: "rope",
      layer: -1,
      inputs: [invFreq],
      outputs: [ropeCos, ropeSin],
      weights: [],
      attrs: { half },
      doc: `rope.cos, rope.sin ${shp(ropeCos)} = cos, sin((pos + t) · rope.inv_freq (${half}))`,
    });
  }

  const norm = (group: string, layer: number, input: string, out: string, prefix: string) => {
    const ln = c.norm === "layernorm";
    node({
      op: "norm",
      group,
      layer,
      inputs: [input],
      outputs: [out],
      weights: ln ? [prefix + ".weight", prefix + ".bias"] : [prefix + ".weight"],
      attrs: { kind: c.norm, eps: c.norm_eps, dim: c.dim },
      doc: `${out} ${shp(out)} = ${c.norm}(${input}) · ${prefix}`,
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
  ) => {
    node({
      op: "linear",
      group,
      layer,
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

  for (let l = 0; l < c.n_layers; l++) {
    const p = `layers.${l}.`;
    const L = `l${l}.`;

    // ---- attention: x += wo · attention(rope(wq · norm(x)), K/V ring) ----
    const ga = `layer${l}_attn`;
    const kRing = buf(`kv.l${l}.k`, [kvCapacity, kvDim], "kv");
    const vRing = buf(`kv.l${l}.v`, [kvCapacity, kvDim], "kv");
    const xa = buf(L + "attn_in", [T, c.dim]);
    norm(ga, l, x, xa, p + "attn_norm");
    const q = buf(L + "q", [T, qDim]);
    const k = buf(L + "k", [T, kvDim]);
    const v = buf(L + "v", [T, kvDim]);
    const qkvBias = c.attn_bias || gpt2;
    linear(ga, l, xa, q, p + "attn.wq.weight", qkvBias ? p + "attn.wq.bias" : null, c.dim, qDim);
    linear(ga, l, xa, k, p + "attn.wk.weight", qkvBias ? p + "attn.wk.bias" : null, c.dim, kvDim);
    linear(ga, l, xa, v, p + "attn.wv.weight", qkvBias ? p + "attn.wv.bias" : null, c.dim, kvDim);
    if (!gpt2) {
      node({
        op: "rope",
        group: ga,
        layer: l,
        inputs: [q, k, ropeCos, ropeSin],
        outputs: [q, k],
        weights: [],
        attrs: {
          style: c.rope_style,
          n_heads: c.n_heads,
          n_kv_heads: c.n_kv_heads,
          head_dim: c.head_dim,
        },
        doc: `RoPE (${c.rope_style}) on q ${shp(q)} and k ${shp(k)} by rope.cos, rope.sin`,
      });
    }
    const att = buf(L + "att", [kvCapacity]); // scores of one head over the window
    const ao = buf(L + "attn_out", [T, qDim]);
    node({
      op: "attention",
      group: ga,
      layer: l,
      inputs: [q, k, v, kRing, vRing],
      outputs: [ao, att],
      weights: [],
      attrs: {
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        kv_capacity: kvCapacity,
        scale: 1 / Math.sqrt(c.head_dim),
      },
      doc: `attn_out ${shp(ao)} = softmax(q·kᵀ/sqrt(${c.head_dim}))·v, ` +
        `${c.n_heads} heads over ${c.n_kv_heads} KV heads, window ${kvCapacity}`,
    });
    node({
      op: "kv_store",
      group: ga,
      layer: l,
      inputs: [k, v],
      outputs: [kRing, vRing],
      weights: [],
      attrs: { kv_dim: kvDim, kv_capacity: kvCapacity },
      doc: `${kRing}, ${vRing} ${shp(kRing)}: slot (pos + t) % ${kvCapacity} = ${k}[t], ${v}[t]`,
    });
    const o = buf(L + "attn_proj", [T, c.dim]);
    linear(ga, l, ao, o, p + "attn.wo.weight", gpt2 ? p + "attn.wo.bias" : null, qDim, c.dim);
    residual(ga, l, o);

    // ---- MLP: x += w2 · (silu(w1 · h) * (w3 · h)) or w2 · gelu(w1 · h), h = norm(x) ----
    const gf = `layer${l}_ffn`;
    const H = c.hidden_dim;
    const xf = buf(L + "ffn_in", [T, c.dim]);
    norm(gf, l, x, xf, p + "ffn_norm");
    const h1 = buf(L + "h1", [T, H]);
    linear(gf, l, xf, h1, p + "ffn.w1.weight", gpt2 ? p + "ffn.w1.bias" : null, c.dim, H);
    if (c.mlp === "swiglu") {
      const h3 = buf(L + "h3", [T, H]);
      linear(gf, l, xf, h3, p + "ffn.w3.weight", null, c.dim, H);
      node({
        op: "swiglu",
        group: gf,
        layer: l,
        inputs: [h1, h3],
        outputs: [h1],
        weights: [],
        attrs: { dim: H },
        doc: `${h1} ${shp(h1)} = silu(${h1}) * ${h3}`,
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
    residual(gf, l, f);
  }

  // ---- final norm and LM head ----
  const xn = buf("final", [T, c.dim]);
  norm("lm_head", -1, x, xn, "norm");
  const logits = buf("logits", [T, c.vocab_size]);
  const head = c.tie_embeddings ? "tok_embeddings.weight" : "output.weight";
  linear("lm_head", -1, xn, logits, head, null, c.dim, c.vocab_size);
  return { config: c, rows: T, kvCapacity, buffers, nodes, output: logits };
}

/**
 * Multiply-accumulates of one token at absolute position `pos` (matrix products only:
 * q/k/v/o, MLP, LM head, and attention's q·k and a·v over the live window), the count
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
  const mlp = (c.mlp === "swiglu" ? 3 : 2) * c.dim * c.hidden_dim;
  const proj = c.dim * qDim + 2 * c.dim * kvDim + qDim * c.dim;
  const window = Math.min(pos + 1, kvCapacity);
  const attn = 2 * c.n_heads * c.head_dim * window;
  return c.n_layers * (proj + mlp + attn) + (lmHead ? c.dim * c.vocab_size : 0);
}
