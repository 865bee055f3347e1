/**
 * Step 8 of the guide: the JIT. The graph of one step (codegen/graph.ts), the memory plan
 * that gives every buffer an offset in one arena (codegen/plan.ts), and the kernels emitted
 * for stories260K (codegen/emit_js.ts), printed next to the reference code they replace;
 * then the compiled model (codegen/compile.ts) checked against the reference.
 *
 * Run: `deno run -A docs/guide/08_jit.ts` (page: docs/guide/08_jit.md).
 *
 * @module
 */
import { compileModel } from "../../codegen/compile.ts";
import { emitKernels } from "../../codegen/emit_js.ts";
import { planArena } from "../../codegen/plan.ts";
import { createReference } from "../../runtime/reference.ts";
import {
  check,
  control,
  fixed,
  int,
  loadGuideModel,
  maxAbsDiff,
  measured,
  ROOT,
  sci,
  section,
  shape,
  table,
} from "./lib.ts";

/**
 * The text of `function name(...) { ... }` in a source file: from its line to the closing
 * brace at the same indentation (the emitted module and the reference are formatted so).
 */
export function functionSource(source: string, name: string): string {
  const lines = source.split("\n");
  const start = lines.findIndex((l) => new RegExp(`^\\s*(export )?function ${name}\\(`).test(l));
  if (start < 0) throw new Error(`no function ${name} in the source`);
  const indent = lines[start].match(/^\s*/)![0];
  const end = lines.findIndex((l, i) => i > start && l === `${indent}}`);
  return lines.slice(start, end + 1).map((l) => l.slice(indent.length)).join("\n");
}

const KV = 64; // the KV capacity the step compiles for: small, so the plan's numbers stay small

async function main() {
  section("the graph");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer;
  const plan = planArena(c, { kvCapacity: KV });
  const g = plan.decode, p = plan.prefill;
  console.log(`decode graph (1 row): ${g.nodes.length} nodes over ${g.buffers.size} buffers`);
  console.log(`prefill graph (up to ${p.rows} rows): ${p.nodes.length} nodes`);
  const ops = new Map<string, number>();
  for (const n of g.nodes) ops.set(n.op, (ops.get(n.op) ?? 0) + 1);
  console.log(`ops: ${[...ops].map(([op, k]) => `${op} ×${k}`).join(", ")}`);
  console.log("the nodes of layer 0 (op, weights, what it computes):");
  for (const n of g.nodes.filter((n) => n.layer === 0)) {
    const weights = n.weights.map((w) => w.replace("layers.0.", "")).join(", ") || "-";
    console.log(`  ${n.op.padEnd(9)} ${weights.padEnd(22)} ${n.doc}`);
  }

  section("the memory plan");
  const L = plan.layout, kvDim = c.n_kv_heads * c.head_dim;
  const pools = `(${L.numBlocks} blocks × ${L.blockSize}, ${kvDim})`;
  const steps =
    `int32 rows of a step (${L.maxRows}), block table (${L.maxSeqs}, ${L.maxBlocksPerSeq})`;
  const acts = `decode ${int(plan.decodeBytes)}, prefill ${int(plan.prefillBytes)}: one region`;
  table([
    ["region", "bytes", "what"],
    ["RoPE table", int(plan.tableBytes), `inv_freq (${c.head_dim / 2})`],
    ["step, seqs", int(plan.stepBytes), steps],
    ["K/V pools", int(plan.kvBytes), `2 × ${c.n_layers} layers × ${pools} f32`],
    ["activations", int(plan.activationBytes), acts],
    ["arena", int(plan.arenaBytes), "one WebAssembly.Memory"],
  ]);
  const decodeBuffers = plan.buffers.filter((b) => b.graph === "decode");
  const apart = int(decodeBuffers.reduce((s, b) => s + b.bytes, 0));
  console.log(`decode activations: ${decodeBuffers.length} buffers, ${apart} bytes if each had`);
  console.log(`  its own place, ${int(plan.decodeBytes)} planned`);
  console.log("layer 0 of the decode graph (A[i]: the f32 at byte 4i; live: nodes that use it):");
  const rows: (string | number)[][] = [["buffer", "shape", "byte", "A[i]", "bytes", "live"]];
  for (const b of decodeBuffers.filter((b) => /^(x|rope\.|l0\.)/.test(b.name))) {
    const live = `${b.live[0]}..${b.live[1]}`;
    rows.push([b.name, shape(...b.shape), b.offset, b.offset / 4, b.bytes, live]);
  }
  table(rows);

  section("the kernels");
  const source = emitKernels(c, { kvCapacity: KV }); // = the source of this plan
  const names = [...source.matchAll(/^ {2}function ([a-z0-9_]+)\(/gm)].map((m) => m[1]);
  const isKernel = (k: string) => /_\d/.test(k) && !/^(layer|prefill_|lm_head)/.test(k);
  const lines = source.split("\n").length;
  console.log(`emitKernels(stories260K): ${lines} lines, ${int(source.length)} characters`);
  console.log(`kernels (one per op and shape): ${names.filter(isKernel).join(", ")}`);
  const decodeFns = names.filter((k) => !isKernel(k) && !k.startsWith("prefill"));
  console.log(`decode functions: ${decodeFns.join(", ")}`);
  console.log(`prefill functions: ${names.filter((k) => k.startsWith("prefill_")).join(", ")}`);

  section("reference: rmsnorm");
  const reference = await Deno.readTextFile(`${ROOT}runtime/reference.ts`);
  console.log(functionSource(reference, "rmsnorm"));

  section("emitted: rmsnorm_" + c.dim);
  console.log(functionSource(source, `rmsnorm_${c.dim}`));

  section("reference: matmul");
  console.log(functionSource(reference, "matmul"));

  section(`emitted: matvec_${c.dim}x${c.dim}`);
  console.log(functionSource(source, `matvec_${c.dim}x${c.dim}`));

  section("emitted: layer0_attn");
  console.log(functionSource(source, "layer0_attn"));

  const attn = `attention_${c.n_heads}x${c.n_kv_heads}x${c.head_dim}_b${L.blockSize}`;
  section(`emitted: ${attn}`);
  console.log(functionSource(source, attn));

  section("compiled, checked, timed");
  const t0 = performance.now();
  const jit = compileModel(c, model.weights, { kvCapacity: KV });
  const tCompile = performance.now() - t0;
  const same = jit.source === source;
  check(
    "compileModel evaluates exactly the source printed above",
    same,
    `${int(source.length)} characters`,
  );
  const ref = createReference(c, model.weights, { kvCapacity: KV });
  const ids = tok.encode("Once upon a time");
  const d = maxAbsDiff(jit.forwardAll(ids, 0), ref.forwardAll(ids, 0));
  const where = `${ids.length} positions × ${c.vocab_size}, max |diff| ${sci(d)}`;
  check("the JIT's logits equal the reference's", d < 1e-4, where);
  const greedy = (pass: { forward(t: number[], p: number): Float32Array }, n: number) => {
    const out = [...ids];
    let logits = pass.forward(ids, 0);
    const start = performance.now();
    for (let s = 0; s < n; s++) {
      out.push(logits.indexOf(Math.max(...logits)));
      logits = pass.forward([out.at(-1)!], out.length - 1);
    }
    return { out, ms: performance.now() - start };
  };
  const N = 48;
  greedy(jit, 8); // let V8 compile the kernels before timing
  const a = greedy(jit, N), b = greedy(ref, N);
  const text = `${JSON.stringify(tok.decode(a.out)).slice(0, 60)}..."`;
  check(`${N} greedy tokens are the same`, JSON.stringify(a.out) === JSON.stringify(b.out), text);
  const flipped = {
    ...c,
    rope_style: c.rope_style === "half" ? "interleaved" as const : "half" as const,
  };
  const wrong = compileModel(flipped, model.weights, { kvCapacity: KV }).forwardAll(ids, 0);
  const dw = maxAbsDiff(wrong, ref.forwardAll(ids, 0));
  control("kernels compiled for the other RoPE pairing", dw > 1e-3, `max |diff| ${fixed(dw, 2)}`);
  measured("plan, emit and compile", `${fixed(tCompile, 1)} ms`);
  measured("decode, reference", `${fixed((1000 * N) / b.ms, 0)} tokens/s`);
  measured("decode, JIT", `${fixed((1000 * N) / a.ms, 0)} tokens/s (${fixed(b.ms / a.ms, 1)}x)`);
}

if (import.meta.main) await main();
