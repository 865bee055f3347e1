/**
 * The graph builder (codegen/graph.ts): node order and groups per arch, buffer shapes, the
 * constants each node carries, data flow, and the MAC count, cross-checked against the
 * weight shapes of core/weights.ts.
 */
import assert from "node:assert/strict";
import { resolveBatchLayout } from "../core/forward.ts";
import { expectedShapes } from "../core/weights.ts";
import { buildGraph, type GraphNode, macsPerToken } from "./graph.ts";
import { archCase, cfg, FORWARD_CASES, forwardCase } from "../tests/forward_cases.ts";

/** A layout of 8-row steps, 3 sequences, 10 blocks of 4 tokens, up to 5 per sequence. */
const LAYOUT = resolveBatchLayout({
  maxRows: 8,
  maxSeqs: 3,
  blockSize: 4,
  numBlocks: 10,
  maxBlocksPerSeq: 5,
});

const LLAMA_LAYER = [
  "norm", // attn_norm
  "linear", // wq
  "linear", // wk
  "linear", // wv
  "rope",
  "kv_store",
  "attention",
  "linear", // wo
  "add",
  "norm", // ffn_norm
  "linear", // w1
  "linear", // w3
  "swiglu",
  "linear", // w2
  "add",
];
const GPT2_LAYER = [
  "norm",
  "linear",
  "linear",
  "linear",
  "kv_store",
  "attention",
  "linear",
  "add",
  "norm",
  "linear", // w1
  "gelu",
  "linear", // w2
  "add",
];

Deno.test("buildGraph() orders llama as embed, rope angles, layers, final norm, LM head", () => {
  const c = cfg("llama", { n_layers: 3, n_kv_heads: 2 });
  const g = buildGraph(c, 1, LAYOUT);
  const ops = g.nodes.map((n) => n.op);
  assert.deepEqual(ops, [
    "embed",
    "rope_cos_sin",
    ...LLAMA_LAYER,
    ...LLAMA_LAYER,
    ...LLAMA_LAYER,
    "gather_rows",
    "norm",
    "linear",
  ]);
  assert.equal(g.output, "logits");
  assert.deepEqual(g.nodes.at(-1)!.outputs, ["logits"]);
  // The gather, final norm and LM head run over the out rows only.
  assert.deepEqual(g.nodes.filter((n) => n.rows === "out").map((n) => n.op), [
    "gather_rows",
    "norm",
    "linear",
  ]);
});

Deno.test("buildGraph() orders gpt2 without RoPE, with learned positions, biases and GELU", () => {
  const c = cfg("gpt2", { n_layers: 2 });
  const g = buildGraph(c, 4, LAYOUT);
  assert.deepEqual(g.nodes.map((n) => n.op), [
    "embed",
    ...GPT2_LAYER,
    ...GPT2_LAYER,
    "gather_rows",
    "norm",
    "linear",
  ]);
  assert.ok(![...g.buffers.keys()].some((b) => b.startsWith("rope")));
  const embed = g.nodes[0] as GraphNode<"embed">;
  assert.deepEqual(embed.weights, ["tok_embeddings.weight", "pos_embeddings.weight"]);
  assert.equal(embed.attrs.learned_pos, true);
  // Every linear but the LM head has a bias; norms are LayerNorms with a bias.
  for (const n of g.nodes) {
    if (n.op === "linear" && n.group !== "lm_head") assert.equal(n.weights.length, 2, n.doc);
    if (n.op === "norm") assert.deepEqual([n.attrs.kind, n.weights.length], ["layernorm", 2]);
  }
});

Deno.test("buildGraph() groups nodes into embed, rope, layerN_attn, layerN_ffn, lm_head runs", () => {
  const g = buildGraph(cfg("llama", { n_layers: 2 }), 1, LAYOUT);
  const runs: string[] = [];
  for (const n of g.nodes) if (runs.at(-1) !== n.group) runs.push(n.group);
  assert.deepEqual(runs, [
    "embed",
    "rope",
    "layer0_attn",
    "layer0_ffn",
    "layer1_attn",
    "layer1_ffn",
    "lm_head",
  ]);
  for (const n of g.nodes) {
    const m = /^layer(\d+)_/.exec(n.group);
    assert.equal(n.layer, m ? Number(m[1]) : -1, `${n.group}: layer index`);
  }
});

Deno.test("buildGraph() shapes: activations (rows, width), pools (blocks · blockSize, kv_dim), step rows, block table", () => {
  const c = forwardCase("llama head_dim 6 GQA3 bias untied"); // dim 30, 6 heads × 6, 2 KV heads
  for (const rows of [1, 7]) {
    const g = buildGraph(c, rows, LAYOUT);
    const shape = (b: string) => g.buffers.get(b)!.shape;
    assert.deepEqual(shape("x"), [rows, 30]);
    assert.deepEqual(shape("l0.q"), [rows, 36]);
    assert.deepEqual(shape("l0.k"), [rows, 12]);
    assert.deepEqual(shape("l1.h1"), [rows, 50]);
    assert.deepEqual(shape("logits"), [rows, 97]);
    assert.deepEqual(shape("kv.l1.v"), [40, 12]); // 10 blocks × 4 tokens, kv_dim
    assert.deepEqual(shape("l0.att"), [20]); // the most one sequence holds: 5 blocks × 4
    assert.deepEqual(shape("rope.inv_freq"), [3]);
    assert.deepEqual(shape("rope.cos"), [rows, 3]);
    assert.deepEqual(shape("step.positions"), [8]); // maxRows, in both graphs
    assert.deepEqual(shape("seq.block_table"), [3, 5]); // (maxSeqs, maxBlocksPerSeq)
    assert.deepEqual(
      [...g.buffers.values()].filter((b) => b.kind !== "activation").map((b) => [
        b.name,
        b.kind,
        b.dtype,
      ]),
      [
        ["step.tokens", "step", "i32"],
        ["step.positions", "step", "i32"],
        ["step.seqs", "step", "i32"],
        ["step.out_rows", "step", "i32"],
        ["step.counts", "step", "i32"],
        ["seq.block_table", "seqs", "i32"],
        ["seq.ring", "seqs", "i32"],
        ["seq.window", "seqs", "i32"],
        ["rope.inv_freq", "table", "f32"],
        ["kv.l0.k", "kv", "f32"],
        ["kv.l0.v", "kv", "f32"],
        ["kv.l1.k", "kv", "f32"],
        ["kv.l1.v", "kv", "f32"],
      ],
    );
  }
});

Deno.test("buildGraph() sizes nothing by context_length", () => {
  const small = buildGraph(cfg("llama", { context_length: 64 }), 4, LAYOUT);
  const huge = buildGraph(cfg("llama", { context_length: 2 ** 31 - 1 }), 4, LAYOUT);
  assert.deepEqual(
    [...huge.buffers.values()].map((b) => [b.name, b.shape]),
    [...small.buffers.values()].map((b) => [b.name, b.shape]),
  );
});

Deno.test("buildGraph() linear nodes match the weight shapes; attrs carry every constant", () => {
  for (const [name, c] of FORWARD_CASES) {
    const shapes = expectedShapes(c);
    const g = buildGraph(c, 3, LAYOUT);
    for (const n of g.nodes) {
      for (const w of n.weights) assert.ok(shapes.has(w), `${name}: ${w} is a model tensor`);
      if (n.op === "linear") {
        assert.deepEqual(shapes.get(n.weights[0]), [n.attrs.out, n.attrs.in], `${name} ${n.doc}`);
        assert.equal(n.attrs.bias, n.weights.length === 2);
        if (n.attrs.bias) assert.deepEqual(shapes.get(n.weights[1]), [n.attrs.out]);
        assert.deepEqual(g.buffers.get(n.inputs[0])!.shape, [3, n.attrs.in]);
        assert.deepEqual(g.buffers.get(n.outputs[0])!.shape, [3, n.attrs.out]);
      }
      if (n.op === "attention") {
        assert.deepEqual(n.attrs, {
          n_heads: c.n_heads,
          n_kv_heads: c.n_kv_heads,
          head_dim: c.head_dim,
          block_size: 4,
          blocks_per_seq: 5,
          layer_window: null,
          scale: 1 / Math.sqrt(c.head_dim),
        });
      }
      if (n.op === "rope") {
        assert.deepEqual(n.attrs, {
          style: c.rope_style,
          n_heads: c.n_heads,
          n_kv_heads: c.n_kv_heads,
          head_dim: c.head_dim,
        });
      }
      if (n.op === "norm") assert.deepEqual(n.attrs, { kind: c.norm, dim: c.dim, eps: c.norm_eps });
    }
    // Every model tensor is used by some node (nothing loaded is ignored).
    const used = new Set(g.nodes.flatMap((n) => n.weights));
    assert.deepEqual([...shapes.keys()].filter((w) => !used.has(w)), [], name);
  }
});

Deno.test("buildGraph() reads every activation after a node wrote it", () => {
  for (const [name, c] of FORWARD_CASES) {
    const g = buildGraph(c, 2, LAYOUT);
    const written = new Set<string>();
    for (const n of g.nodes) {
      for (const b of n.inputs) {
        const kind = g.buffers.get(b)!.kind;
        assert.ok(
          kind !== "activation" || written.has(b),
          `${name}: ${n.doc} reads ${b} unwritten`,
        );
      }
      for (const b of n.outputs) written.add(b);
    }
  }
});

Deno.test("buildGraph() uses the tied embedding as LM head, or output.weight", () => {
  const tied = buildGraph(forwardCase("llama MHA half tied"), 1, LAYOUT).nodes.at(-1)!;
  const untied = buildGraph(forwardCase("llama GQA2 interleaved untied"), 1, LAYOUT).nodes.at(-1)!;
  assert.deepEqual(tied.weights, ["tok_embeddings.weight"]);
  assert.deepEqual(untied.weights, ["output.weight"]);
  const bias = buildGraph(forwardCase("llama GQA4 interleaved bias"), 1, LAYOUT);
  assert.deepEqual(
    bias.nodes.filter((n) => n.op === "linear" && n.layer === 0).map((n) => n.weights.length),
    [2, 2, 2, 1, 1, 1, 1], // q/k/v biased (attn_bias), o and the MLP not
  );
});

Deno.test("buildGraph() rejects rows that are not an integer in [1, maxRows]", () => {
  const c = forwardCase("llama MQA half");
  for (const bad of [0, -1, 1.5, NaN, 9]) {
    assert.throws(() => buildGraph(c, bad, LAYOUT), /rows must be an integer in \[1, maxRows 8\]/);
  }
});

Deno.test("buildGraph() stores every row's k, v before attention reads the pools", () => {
  const g = buildGraph(forwardCase("llama GQA2 interleaved untied"), 8, LAYOUT);
  const store = g.nodes.findIndex((n) => n.op === "kv_store" && n.layer === 1);
  const attend = g.nodes.findIndex((n) => n.op === "attention" && n.layer === 1);
  assert.ok(store < attend);
  assert.deepEqual(g.nodes[store].outputs, ["kv.l1.k", "kv.l1.v"]);
  assert.deepEqual(g.nodes[attend].inputs.slice(0, 3), ["l1.q", "kv.l1.k", "kv.l1.v"]);
});

Deno.test("macsPerToken() counts the graph's matrix products and attention window", () => {
  for (const [name, c] of FORWARD_CASES) {
    const g = buildGraph(c, 1, LAYOUT);
    const linear = g.nodes.filter((n) => n.op === "linear") as GraphNode<"linear">[];
    const body = linear.filter((n) => n.group !== "lm_head");
    const head = linear.filter((n) => n.group === "lm_head");
    const macs = (ns: GraphNode<"linear">[]) =>
      ns.reduce((a, n) => a + n.attrs.in * n.attrs.out, 0);
    for (const pos of [0, 3, 9, 40]) {
      const attn = c.n_layers * 2 * c.n_heads * c.head_dim * Math.min(pos + 1, 10);
      assert.equal(macsPerToken(c, pos, 10, false), macs(body) + attn, `${name} at ${pos}`);
      assert.equal(macsPerToken(c, pos, 10, true), macs(body) + macs(head) + attn);
    }
  }
});

Deno.test("buildGraph() places Gemma 3's QK-norm, sandwich norms, GeGLU, local RoPE and windows", () => {
  const c = archCase("gemma3 qk_norm local rope linear x4 window 6");
  const g = buildGraph(c, 8, LAYOUT);
  const layer = (l: number) => g.nodes.filter((n) => n.layer === l);
  assert.deepEqual(layer(0).map((n) => n.op), [
    "norm", // attn_norm
    "linear",
    "linear",
    "linear",
    "norm", // q_norm over 4 heads
    "norm", // k_norm over 1 head
    "rope",
    "kv_store",
    "attention",
    "linear", // wo
    "norm", // attn_post_norm
    "add",
    "norm", // ffn_norm
    "linear", // w1
    "linear", // w3
    "geglu",
    "linear", // w2
    "norm", // ffn_post_norm
    "add",
  ]);
  const qn = layer(0)[4] as GraphNode<"norm">;
  assert.deepEqual(qn.attrs, { kind: "rmsnorm", eps: 1e-5, dim: 12, heads: 4 });
  assert.deepEqual(qn.weights, ["layers.0.attn.q_norm.weight"]);
  assert.deepEqual(qn.inputs, qn.outputs); // in place on l0.q
  // Layers 0, 1 slide (window 6) and rotate by the local table; layer 2 is global.
  const atts = g.nodes.filter((n) => n.op === "attention") as GraphNode<"attention">[];
  assert.deepEqual(atts.map((n) => n.attrs.layer_window), [6, 6, null]);
  const ropes = g.nodes.filter((n) => n.op === "rope");
  assert.deepEqual(ropes.map((n) => n.inputs[2]), ["rope.cos_local", "rope.cos_local", "rope.cos"]);
  assert.equal(g.buffers.get("rope.inv_freq_local")!.kind, "table");
  // Linear x4 scales the global table only.
  const glob = g.buffers.get("rope.inv_freq")!.values!,
    loc = g.buffers.get("rope.inv_freq_local")!.values!;
  assert.equal(glob[0], 0.25);
  assert.equal(loc[0], 1);
  const emb = g.nodes[0] as GraphNode<"embed">;
  assert.equal(emb.attrs.scale, Math.fround(Math.sqrt(48)));
});

Deno.test("buildGraph() soft-caps Gemma 2's scores and final logits, scales by query_pre_attn_scalar", () => {
  const c = archCase("gemma2 geglu post_norms softcaps alternating window 5");
  const g = buildGraph(c, 1, LAYOUT);
  const last = g.nodes.at(-1) as GraphNode<"softcap">;
  assert.equal(last.op, "softcap");
  assert.equal(last.rows, "out");
  assert.deepEqual(last.attrs, { dim: 97, cap: 2.5 });
  const att = g.nodes.find((n) => n.op === "attention") as GraphNode<"attention">;
  assert.equal(att.attrs.scale, 1 / Math.sqrt(20));
  assert.equal(att.attrs.softcap, 3);
});

Deno.test("buildGraph() rotates the first rope_dimension_count dims (partial rotary)", () => {
  const c = archCase("phi3 partial rotary 6 of 12, window 7");
  const g = buildGraph(c, 1, LAYOUT);
  const rope = g.nodes.find((n) => n.op === "rope") as GraphNode<"rope">;
  assert.equal(rope.attrs.rot_dim, 6);
  assert.deepEqual(g.buffers.get("rope.cos")!.shape, [1, 3]); // (rows, rot_dim / 2)
  assert.deepEqual(g.buffers.get("rope.inv_freq")!.shape, [3]);
});

Deno.test("macsPerToken() counts each layer's own window and GeGLU's three matrices", () => {
  const c = archCase("gemma2 geglu post_norms softcaps alternating window 5");
  const dim = 48, H = 80;
  const proj = 48 * 48 + 2 * 48 * 24 + 48 * 48;
  const at = (w: number) => 2 * 4 * 12 * w;
  // Position 20: layer 0 reads 5 positions (its window), layer 1 all 21.
  assert.equal(
    macsPerToken(c, 20, 64, false),
    2 * (proj + 3 * dim * H) + at(5) + at(21),
  );
});
