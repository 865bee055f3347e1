/**
 * The JS emitter (codegen/emit_js.ts) and its op table (codegen/ops/): one kernel per
 * distinct name, names after layer and op, a call per node with the kernel's arity after
 * a shape comment, literal offsets, `deno fmt` layout, and the module `gollm kernels`
 * writes running on its own.
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../core/config.ts";
import { randomWeights } from "../core/weights.ts";
import { compileModel, stripTypes } from "./compile.ts";
import { emitKernels, emitKernelsForPlan, OPS } from "./emit_js.ts";
import type { GraphNode, NodeOp } from "./graph.ts";
import { JsSource } from "./js_source.ts";
import type { OpRenderer } from "./ops/renderer.ts";
import { planArena } from "./plan.ts";
import { assertClose } from "../tests/assert_close.ts";
import { ARCH_CASES, cfg, FORWARD_CASES, forwardCase, tokens } from "../tests/forward_cases.ts";

/** The functions of an emitted module: name → parameter count, in order of definition. */
function functionsOf(src: string): Map<string, number> {
  const fns = new Map<string, number>();
  for (const m of src.matchAll(/^ *(?:export )?function (\w+)\(([^)]*)\)/gm)) {
    assert.ok(!fns.has(m[1]), `function ${m[1]} is defined twice`);
    fns.set(m[1], m[2].split(",").filter((p) => p.trim() !== "").length);
  }
  return fns;
}

/** The statements of the step functions (`layer0_attn` ... `prefill_lm_head`), joined. */
function stepCalls(src: string): { comment: string; fn: string; args: string[] }[] {
  const steps = src.slice(src.indexOf("// ---- decode graph"), src.indexOf("function init()"));
  // Join wrapped calls into one line, then pair each call with the comment above it.
  const lines = steps.replace(/\(\n\s+/g, "(").replace(/,\n\s+/g, ", ").replace(/,\n\s*\)/g, ")")
    .split("\n").map((l) => l.trim());
  const calls = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\w+)\((.*)\);$/.exec(lines[i]);
    if (m) calls.push({ comment: lines[i - 1], fn: m[1], args: m[2].split(", ") });
  }
  return calls;
}

const KERNEL_NAME =
  /^(embed_\d+(_pos)?|rope_cos_sin_\d+|rmsnorm_\d+|layernorm_\d+|mat(vec|mul)_\d+x\d+(_bias)?|rope_(half|interleaved)_\d+x\d+x\d+|attention_\d+x\d+x\d+_b\d+(_w\d+)?|kv_store_\d+_b\d+|gather_rows_\d+|add_\d+|swiglu_\d+|gelu_\d+)$/;
const STEP_NAME = /^(prefill_)?(embed|rope|layer\d+_(attn|ffn)|lm_head)$/;

Deno.test("emitKernels() writes literal shapes, one function per layer, and is what compileModel() runs", () => {
  const c = cfg("llama", { n_layers: 3, n_kv_heads: 2, tie_embeddings: false });
  const src = emitKernels(c, { kvCapacity: 32, prefillChunk: 8 });
  for (let l = 0; l < 3; l++) {
    assert.match(src, new RegExp(`function layer${l}_attn\\(\\)`));
    assert.match(src, new RegExp(`function layer${l}_ffn\\(\\)`));
    assert.match(src, new RegExp(`function prefill_layer${l}_attn\\(n: number\\)`));
  }
  assert.match(src, /function lm_head\(\)/);
  assert.match(src, /function prefill_lm_head\(nOut: number\)/); // the out rows only
  assert.match(src, /function matvec_97x48\(/); // untied LM head (vocab 97, dim 48)
  assert.match(src, /function matmul_80x48\(/); // w1/w3 in prefill
  assert.match(src, /attention_4x2x12_b16/);
  const m = compileModel(c, randomWeights(c, 2), { kvCapacity: 32, prefillChunk: 8 });
  assert.equal(m.source, src);
  // The stripped source is plain JS.
  assert.doesNotThrow(() => new Function("memory", "W", stripTypes(src)));
});

Deno.test("emitKernels() writes each kernel once, names every function after its op or layer", () => {
  // Negative controls of the helpers: a duplicate definition and a call are found.
  assert.throws(() => functionsOf("function add_4(x: number) {}\nfunction add_4(x: number) {}"));
  assert.deepEqual(
    stepCalls("// ---- decode graph\n// x (1, 4) += y\nadd_4(0, 16, 1);\nfunction init()"),
    [{ comment: "// x (1, 4) += y", fn: "add_4", args: ["0", "16", "1"] }],
  );
  for (const [name, c] of FORWARD_CASES) {
    const src = emitKernels(c, { kvCapacity: 16, prefillChunk: 4 });
    const fns = functionsOf(src); // throws on a duplicate definition
    for (const fn of fns.keys()) {
      const known = KERNEL_NAME.test(fn) || STEP_NAME.test(fn) ||
        ["createKernels", "init", "decode", "prefill", "step"].includes(fn);
      assert.ok(known, `${name}: function ${fn} is named after no op or layer`);
    }
    // Every kernel is called, and every call has the kernel's arity.
    const calls = stepCalls(src);
    for (const fn of [...fns.keys()].filter((f) => KERNEL_NAME.test(f))) {
      assert.ok(calls.some((k) => k.fn === fn), `${name}: kernel ${fn} is never called`);
    }
    for (const k of calls) {
      if (!KERNEL_NAME.test(k.fn)) continue;
      assert.equal(k.args.length, fns.get(k.fn), `${name}: ${k.fn}(${k.args.join(", ")})`);
      // Offsets are literals; the only names are weights and the runtime values.
      for (const a of k.args) assert.match(a, /^(\d+|pos|n|1|tokens|start|[a-z]\w*)$/);
      assert.match(k.comment, /^\/\/ .*\(\d+(, \d+)*\)/, `${k.fn}: a shape comment above the call`);
    }
  }
});

Deno.test("OPS renders the same kernel for every node with the same kernel name", () => {
  // The emitter writes a kernel once per name: a name must fix its whole source.
  const sources = new Map<string, string>();
  for (const [name, c] of FORWARD_CASES) {
    const plan = planArena(c, { kvCapacity: 16, prefillChunk: 4 });
    for (const g of [plan.decode, plan.prefill]) {
      for (const node of g.nodes) {
        for (const backend of ["js", "wasm"] as const) {
          const r = OPS[node.op] as OpRenderer<NodeOp>;
          const ctx = { rows: g.rows, backend };
          const kernel = r.name(node, ctx);
          const s = new JsSource();
          r.kernel(s, kernel, node, ctx);
          const key = `${backend} ${kernel} eps=${c.norm_eps}`;
          const seen = sources.get(key);
          if (seen === undefined) sources.set(key, s.text());
          else assert.equal(s.text(), seen, `${name}: ${key} differs between nodes`);
          assert.match(s.text(), new RegExp(`^function ${kernel}\\(`), "named as it is called");
        }
      }
    }
  }
  assert.ok(sources.size > 100, `${sources.size} distinct kernels`);
});

Deno.test("OPS has a renderer for every op the graphs use", () => {
  const used = new Set<NodeOp>();
  for (const [, c] of [...FORWARD_CASES, ...ARCH_CASES]) {
    for (const n of planArena(c, { kvCapacity: 8 }).prefill.nodes) used.add(n.op);
  }
  assert.deepEqual([...used].sort(), Object.keys(OPS).sort());
});

Deno.test("emitKernels() output is formatted as deno fmt writes it", async () => {
  const configs: ModelConfig[] = [
    forwardCase("llama GQA4 interleaved bias"),
    forwardCase("gpt2 odd dim 45 head_dim 9"),
    cfg("llama", { dim: 768, n_heads: 12, n_kv_heads: 4, hidden_dim: 2048, vocab_size: 32768 }),
    ...ARCH_CASES.map(([, c]) => c),
  ];
  for (const c of configs) {
    for (const backend of ["js", "wasm"] as const) {
      const plan = planArena(c, { kvCapacity: 2048, weightsInArena: backend === "wasm" });
      const src = emitKernelsForPlan(plan, { backend });
      const fmt = new Deno.Command(Deno.execPath(), {
        args: ["fmt", "--ext", "ts", "-"],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const w = fmt.stdin.getWriter();
      await w.write(new TextEncoder().encode(src));
      await w.close();
      const out = await fmt.output();
      assert.ok(out.success);
      const formatted = new TextDecoder().decode(out.stdout);
      assert.equal(formatted, src, `${c.arch} dim ${c.dim} ${backend}`);
      assert.ok(src.split("\n").every((l) => l.length <= 100));
    }
  }
});

Deno.test("emitKernels() writes a module that runs on its own, as `gollm kernels` writes it", async () => {
  const c = forwardCase("llama GQA2 interleaved untied");
  const w = randomWeights(c, 6);
  const src = emitKernels(c, { kvCapacity: 24, prefillChunk: 5 });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/kernels.ts`;
    await Deno.writeTextFile(path, src);
    const mod = await import(`file://${path}`);
    const memory = new WebAssembly.Memory({ initial: Math.ceil(mod.ARENA_BYTES / 65536) });
    const W = Object.fromEntries([...w].map(([name, t]) => [name, t.data]));
    const k = mod.createKernels(memory, W);
    k.init();
    const toks = tokens(9, c.vocab_size, 1);
    // Sequence 0 owns blocks 0 .. NUM_BLOCKS - 1 as a ring, window 24.
    const I = new Int32Array(memory.buffer);
    for (let b = 0; b < mod.NUM_BLOCKS; b++) I[mod.SEQ_BLOCK_TABLE + b] = b;
    I[mod.SEQ_RING] = mod.NUM_BLOCKS * mod.BLOCK_SIZE;
    I[mod.SEQ_WINDOW] = 24;
    /** One step: tokens[start .. start + n) at positions start .., logits of the last row. */
    const step = (start: number, n: number, out: boolean) => {
      for (let t = 0; t < n; t++) {
        I[mod.STEP_TOKENS + t] = toks[start + t];
        I[mod.STEP_POSITIONS + t] = start + t;
        I[mod.STEP_SEQS + t] = 0;
      }
      I[mod.STEP_OUT_ROWS] = n - 1;
      I[mod.STEP_COUNTS] = n;
      I[mod.STEP_COUNTS + 1] = out ? 1 : 0;
      k.step();
    };
    step(0, 5, false);
    step(5, 3, false);
    step(8, 1, true); // the decode graph
    const logits = new Float32Array(memory.buffer, mod.LOGITS * 4, c.vocab_size);
    const jit = compileModel(c, w, { kvCapacity: 24, prefillChunk: 5 }).forward(toks, 0);
    assertClose(logits, jit, 0, "the same logits as compileModel()");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("emitKernelsForPlan() wasm backend calls the WASM exports for matrix products only", () => {
  const c = forwardCase("llama MQA half");
  const plan = planArena(c, { kvCapacity: 16, prefillChunk: 4, weightsInArena: true });
  const js = emitKernelsForPlan(plan);
  const wasm = emitKernelsForPlan(plan, { backend: "wasm" });
  assert.equal(js.includes("X."), false);
  assert.match(
    wasm,
    /function matvec_48x48\(w: Float32Array, x: number, y: number\) \{\n\s+\/\/ .*WASM f32x4 kernel\n\s+X\.matvec_48x48\(w\.byteOffset, x \* 4, y \* 4\);/,
  );
  // Every other kernel is the same JS.
  const jsFns = functionsOf(js), wasmFns = functionsOf(wasm);
  assert.deepEqual([...jsFns.keys()], [...wasmFns.keys()]);
  const body = (src: string, fn: string) =>
    src.slice(src.indexOf(`function ${fn}(`)).split("\n  }\n")[0];
  for (const fn of jsFns.keys()) {
    if (/^mat(vec|mul)_/.test(fn) || fn === "createKernels") continue;
    assert.equal(body(wasm, fn), body(js, fn), fn);
  }
});

Deno.test("emitKernels() fills the RoPE table from core/rope.ts and computes cos/sin once per step", () => {
  const c = forwardCase("llama head_dim 6 GQA3 bias untied");
  const src = emitKernels(c, { kvCapacity: 16 });
  assert.match(
    src,
    /const ROPE_INV_FREQ = \[\n\s+1,\n\s+0\.0464158\d*,\n\s+0\.00215443\d*,\n\s+\];/,
  );
  assert.match(src, /A\.set\(ROPE_INV_FREQ, 0\); \/\/ rope\.inv_freq \(3\)/);
  // One rope_cos_sin call per step function, before the layers; one rope call per layer.
  const calls = stepCalls(src).map((k) => k.fn);
  assert.equal(calls.filter((f) => f === "rope_cos_sin_3").length, 2);
  assert.equal(calls.filter((f) => f === "rope_half_6x2x6").length, 2 * c.n_layers);
  assert.ok(!src.includes(String(c.context_length * c.head_dim)), "no (context, head_dim) table");
});

Deno.test("emitKernels() kernels take every shape as a literal (no config at run time)", () => {
  const node: GraphNode<"linear"> = {
    op: "linear",
    group: "g",
    layer: 0,
    inputs: ["x"],
    outputs: ["y"],
    weights: ["w"],
    attrs: { in: 37, out: 9, bias: true },
    doc: "",
  };
  const s = new JsSource();
  OPS.linear.kernel(s, "matmul_9x37_bias", node, { rows: 4, backend: "js" });
  const text = s.text();
  assert.match(
    text,
    /^function matmul_9x37_bias\(w: Float32Array, bias: Float32Array, x: number, y: number, n: number\)/,
  );
  assert.match(text, /for \(let r = 0; r < 8; r \+= 4\)/); // two blocks of 4 rows
  assert.match(text, /for \(let r = 8; r < 9; r\+\+\)/); // and the row left over
  assert.match(text, /tail: 1 column\(s\) left over from the unroll by 2/); // 37 = 18 × 2 + 1
});
