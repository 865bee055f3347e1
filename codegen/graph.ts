/**
 * The per-config compute graph: an ordered list of nodes over named buffers, every shape a
 * constant. The memory planner (`plan.ts`) gives each buffer an arena offset from the
 * nodes' read/write order, and the emitter (`emit_js.ts`) turns each node into one kernel
 * call with literal shapes and offsets.
 *
 * One graph describes one step over `rows` tokens: `rows = 1` is the decode step,
 * `rows = T` the prefill step (a chunk of up to T tokens; kernels loop over the `n <= T`
 * rows actually present). Positions are the only runtime values.
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

/** Operation of a graph node. */
export type NodeOp =
  | "embed"
  | "rope_cos_sin"
  | "norm"
  | "linear"
  | "rope"
  | "attention"
  | "kv_store"
  | "add"
  | "swiglu"
  | "gelu";

/** One operation, reading and writing whole buffers. */
export interface GraphNode {
  /** The operation. */
  op: NodeOp;
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
  /** Op-specific constants: `in`, `out` (linear), `kind`/`eps` (norm), `n`, .... */
  attrs: Record<string, number | string | boolean>;
  /** One line describing the node with shapes, used as the emitted comment. */
  doc: string;
}

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
 * attn_bias or gpt2) → rope (llama) → attention (reads this step's k/v rows and the ring) → kv_store →
 * o linear → residual add; (group `layer{l}_ffn`): norm → w1 (+ w3, swiglu) or w1 + gelu →
 * w2 → residual add. Then `final_norm` and `lm_head` (the LM head reuses
 * `tok_embeddings.weight` when tied). Attention runs before kv_store so that a chunk longer
 * than the window never overwrites a slot one of its own tokens still needs.
 *
 * @param config The model config.
 * @param rows Tokens per step (1 for decode, the prefill chunk T otherwise).
 * @param kvCapacity Ring slots per layer.
 * @returns The graph; buffer shapes in f32 elements.
 * @throws {RangeError} when `rows` or `kvCapacity` is not a positive integer.
 *
 * @example
 * ```ts
 * import { parseConfigYaml } from "../core/config.ts";
 * import { buildGraph } from "./graph.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/test-llama.yaml"), "t.yaml");
 * const g = buildGraph(c, 1, 64);
 * console.log(g.nodes[0].op, g.buffers.get("x")!.shape); // embed [1, 48]
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
  const buffers = new Map<string, GraphBuffer>();
  const nodes: GraphNode[] = [];
  const buf = (name: string, shape: number[], kind: BufferKind = "activation") => {
    buffers.set(name, { name, shape, kind });
    return name;
  };
  const node = (n: Omit<GraphNode, "attrs"> & { attrs?: GraphNode["attrs"] }) => {
    nodes.push({ attrs: {}, ...n });
  };
  const shp = (name: string) => `(${buffers.get(name)!.shape.join(", ")})`;

  const half = c.head_dim / 2;
  const x = buf("x", [T, c.dim]);
  node({
    op: "embed",
    group: "embed",
    layer: -1,
    inputs: [],
    outputs: [x],
    weights: gpt2 ? ["tok_embeddings.weight", "pos_embeddings.weight"] : ["tok_embeddings.weight"],
    attrs: { dim: c.dim },
    doc: `x ${shp(x)} = tok_embeddings[token]` + (gpt2 ? " + pos_embeddings[pos]" : ""),
  });

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

  const normNode = (
    group: string,
    layer: number,
    input: string,
    out: string,
    prefix: string,
  ) => {
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

  for (let l = 0; l < c.n_layers; l++) {
    const p = `layers.${l}.`;
    const L = `l${l}.`;
    const ga = `layer${l}_attn`, gf = `layer${l}_ffn`;
    const kRing = buf(`kv.l${l}.k`, [kvCapacity, kvDim], "kv");
    const vRing = buf(`kv.l${l}.v`, [kvCapacity, kvDim], "kv");
    const xa = buf(L + "attn_in", [T, c.dim]);
    normNode(ga, l, x, xa, p + "attn_norm");
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
        attrs: { style: c.rope_style, theta: c.rope_theta },
        doc: `RoPE (${c.rope_style}) on q ${shp(q)} and k ${shp(k)} by rope.cos, rope.sin`,
      });
    }
    const att = buf(L + "att", [kvCapacity]);
    const ao = buf(L + "attn_out", [T, qDim]);
    node({
      op: "attention",
      group: ga,
      layer: l,
      inputs: [q, k, v, kRing, vRing],
      outputs: [ao, att],
      weights: [],
      attrs: { scale: 1 / Math.sqrt(c.head_dim) },
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
      attrs: {},
      doc: `ring slot (pos + t) % ${kvCapacity} of ${kRing}, ${vRing} = k[t], v[t]`,
    });
    const o = buf(L + "attn_proj", [T, c.dim]);
    linear(ga, l, ao, o, p + "attn.wo.weight", gpt2 ? p + "attn.wo.bias" : null, qDim, c.dim);
    node({
      op: "add",
      group: ga,
      layer: l,
      inputs: [x, o],
      outputs: [x],
      weights: [],
      attrs: { dim: c.dim },
      doc: `x ${shp(x)} += ${o}`,
    });

    const xf = buf(L + "ffn_in", [T, c.dim]);
    normNode(gf, l, x, xf, p + "ffn_norm");
    const h1 = buf(L + "h1", [T, c.hidden_dim]);
    linear(
      gf,
      l,
      xf,
      h1,
      p + "ffn.w1.weight",
      gpt2 ? p + "ffn.w1.bias" : null,
      c.dim,
      c.hidden_dim,
    );
    if (c.mlp === "swiglu") {
      const h3 = buf(L + "h3", [T, c.hidden_dim]);
      linear(gf, l, xf, h3, p + "ffn.w3.weight", null, c.dim, c.hidden_dim);
      node({
        op: "swiglu",
        group: gf,
        layer: l,
        inputs: [h1, h3],
        outputs: [h1],
        weights: [],
        attrs: { dim: c.hidden_dim },
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
        attrs: { dim: c.hidden_dim },
        doc: `${h1} ${shp(h1)} = gelu_tanh(${h1})`,
      });
    }
    const f = buf(L + "ffn_out", [T, c.dim]);
    linear(gf, l, h1, f, p + "ffn.w2.weight", gpt2 ? p + "ffn.w2.bias" : null, c.hidden_dim, c.dim);
    node({
      op: "add",
      group: gf,
      layer: l,
      inputs: [x, f],
      outputs: [x],
      weights: [],
      attrs: { dim: c.dim },
      doc: `x ${shp(x)} += ${f}`,
    });
  }

  const xn = buf("final", [T, c.dim]);
  normNode("lm_head", -1, x, xn, "norm");
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
 * import { parseConfigYaml } from "../core/config.ts";
 * import { macsPerToken } from "./graph.ts";
 * const c = parseConfigYaml(await Deno.readTextFile("configs/gollm-85m.yaml"), "c.yaml");
 * console.log(macsPerToken(c, 0, 2048, true)); // ≈ 100.7e6
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
