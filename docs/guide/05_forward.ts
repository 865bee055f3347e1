/**
 * Step 5 of the guide: the whole forward pass. Embedding, every block, the final norm and
 * the LM head give one row of logits per position; checked against gollm's reference and
 * its JIT, and the greedy continuation against the output stories260K's author published.
 *
 * Run: `deno run -A docs/guide/05_forward.ts` (page: docs/guide/05_forward.md).
 *
 * @module
 */
import { compileModel } from "../../codegen/compile.ts";
import { createReference } from "../../runtime/reference.ts";
import { embed } from "./02_embeddings.ts";
import { softmax } from "./03_attention.ts";
import { block, linear, rmsnorm } from "./04_block.ts";
import {
  ASSETS,
  check,
  control,
  fixed,
  type GuideModel,
  int,
  isFile,
  loadGuideModel,
  maxAbsDiff,
  row,
  sci,
  section,
  shape,
  show,
  table,
  weight,
} from "./lib.ts";

// #region forward
/** The forward pass over token ids at positions 0..n-1: logits (n, vocab_size). */
export function forward(m: GuideModel, ids: number[], finalNorm = true): Float32Array {
  const c = m.config;
  let x = embed(weight(m, "tok_embeddings.weight"), ids, c.dim); // (n, dim)
  for (let l = 0; l < c.n_layers; l++) x = block(m, l, x).l_out; // (n, dim)
  if (finalNorm) x = rmsnorm(x, weight(m, "norm.weight"), c.norm_eps); // (n, dim)
  const head = weight(m, c.tie_embeddings ? "tok_embeddings.weight" : "output.weight");
  return linear(x, head, c.dim); // (n, vocab_size): x · headᵀ, head (vocab_size, dim)
}
// #endregion forward

// #region greedy
/** Greedy decoding without a cache: run the whole sequence again for every new token. */
export function greedy(m: GuideModel, prompt: number[], steps: number): number[] {
  const ids = [...prompt];
  for (let s = 0; s < steps; s++) {
    const logits = row(forward(m, ids), ids.length - 1, m.config.vocab_size); // last row
    ids.push(logits.indexOf(Math.max(...logits))); // argmax: the most likely next token
  }
  return ids.slice(prompt.length);
}
// #endregion greedy

/** Probabilities (vocab_size) of a row of logits. */
function probs(logits: Float32Array): Float64Array {
  const p = Float64Array.from(logits);
  softmax(p);
  return p;
}

async function main() {
  section("shapes through the model");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer, V = c.vocab_size;
  const prompt = "Once upon a time";
  const ids = tok.encode(prompt);
  const n = ids.length;
  const logits = forward(model, ids);
  console.log(`ids ${shape(n)} ${JSON.stringify(ids)}`);
  const stage = (what: string, s: string) => console.log(`-> ${what.padEnd(20)} ${s}`);
  stage("embedding rows", `x ${shape(n, c.dim)}`);
  stage(`${c.n_layers} blocks (step 4)`, `x ${shape(n, c.dim)}`);
  stage("final RMSNorm", `x ${shape(n, c.dim)}`);
  const head = c.tie_embeddings ? "tok_embeddings.weight (tied)" : "output.weight";
  console.log(`-> LM head: x · Eᵀ, E = ${head} ${shape(V, c.dim)}`);
  console.log(`-> logits ${shape(n, V)}: one score per vocabulary id, per position`);

  section("what the model expects next");
  const rows: (string | number)[][] = [["pos", "token", "top 3 next (probability)", "actual next"]];
  for (let t = 0; t < n; t++) {
    const p = probs(row(logits, t, V));
    const withP = (id: number) => `${show(tok.tokenPiece(id))} ${fixed(p[id], 3)}`;
    const top = Array.from(p.keys()).sort((a, b) => p[b] - p[a]).slice(0, 3);
    const next = t + 1 < n ? withP(ids[t + 1]) : "";
    rows.push([t, show(tok.tokenPiece(ids[t])), top.map(withP).join("  "), next]);
  }
  table(rows);
  const lastP = probs(row(logits, n - 1, V));
  const lastLogits = row(logits, n - 1, V);
  const best = lastLogits.indexOf(Math.max(...lastLogits));
  const range = `${fixed(Math.min(...lastLogits), 2)} to ${fixed(Math.max(...lastLogits), 2)}`;
  const top = `${show(tok.tokenPiece(best))} ${fixed(lastP[best], 3)}`;
  console.log(`last row: logits from ${range}; softmax gives ${top}`);

  section("checked against the engine");
  const ref = createReference(c, model.weights).forwardAll(ids, 0);
  const dRef = maxAbsDiff(logits, ref);
  check(
    "our logits equal the reference's",
    dRef < 1e-5,
    `${n} × ${V} logits, max |diff| ${sci(dRef)}`,
  );
  const jit = compileModel(c, model.weights, { kvCapacity: 64 }).forwardAll(ids, 0);
  const dJit = maxAbsDiff(logits, jit);
  check("our logits equal the JIT's (codegen/compile.ts)", dJit < 1e-4, `max |diff| ${sci(dJit)}`);
  const noNorm = forward(model, ids, false);
  control(
    "leaving out the final norm",
    maxAbsDiff(noNorm, ref) > 1e-3,
    `max |diff| ${fixed(maxAbsDiff(noNorm, ref), 2)}`,
  );

  section("greedy decoding, against the published output");
  const steps = 30;
  const out = greedy(model, [tok.bosId!], steps);
  const text = tok.decode(out);
  console.log(`from BOS alone, ${steps} greedy tokens: ${show(text)}`);
  const published = `${ASSETS}/stories260K/stories260K.md`;
  if (model.name === "stories260K" && isFile(published)) {
    const md = await Deno.readTextFile(published);
    const ran = md.slice(md.indexOf("-t 0.0\n") + 7);
    check(
      "our greedy text is the start of the text llama2.c's author published (stories260K.md)",
      ran.startsWith(text),
      `${steps} tokens, ${text.length} characters`,
    );
  } else {
    console.log(`note: no published output for ${model.name}; the comparison is skipped`);
  }

  section("parameters and work per token");
  const kinds = new Map<string, number>();
  for (const [name, t] of model.weights) {
    const kind = name.replace(/^layers\.\d+\./, "layers.*.");
    kinds.set(kind, (kinds.get(kind) ?? 0) + t.data.length);
  }
  const total = [...kinds.values()].reduce((a, b) => a + b, 0);
  const kindRows = [...kinds].map(([k, v]) => [k, int(v)]);
  table([["tensor", "parameters"], ...kindRows, ["total", int(total)]]);
  const perLayer = c.dim * (2 * c.n_heads + 2 * c.n_kv_heads) * c.head_dim +
    3 * c.dim * c.hidden_dim;
  const macs = c.n_layers * perLayer + V * c.dim;
  const linears = `${c.n_layers} × ${int(perLayer)} (linear layers)`;
  console.log(`multiply-adds per token: ${linears} + ${int(V * c.dim)} (LM head) = ${int(macs)}`);
  const qDim = c.n_heads * c.head_dim;
  console.log(`plus attention: 2 × ${c.n_layers} × ${qDim} per earlier position`);
}

if (import.meta.main) await main();
