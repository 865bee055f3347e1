/**
 * Step 2 of the guide: embeddings. Token ids become rows of one table; the row lookup is
 * checked against what gollm's reference forward pass (runtime/reference.ts) feeds its first
 * layer, and against the same table read from the model's GGUF file.
 *
 * Run: `deno run -A docs/guide/02_embeddings.ts` (page: docs/guide/02_embeddings.md).
 *
 * @module
 */
import { loadCheckpoint } from "../../formats/load.ts";
import { createReference } from "../../runtime/reference.ts";
import {
  ASSETS,
  check,
  control,
  fixed,
  int,
  isFile,
  loadGuideModel,
  maxAbsDiff,
  row,
  section,
  shape,
  show,
  table,
  Trace,
  vec,
  weight,
} from "./lib.ts";

// #region embed
/** x (n, dim) = the rows of `table` (vocab_size, dim) at the token ids: a gather, no arithmetic. */
export function embed(table: Float32Array, ids: number[], dim: number): Float32Array {
  const x = new Float32Array(ids.length * dim); // (n, dim)
  ids.forEach((id, t) => x.set(table.subarray(id * dim, (id + 1) * dim), t * dim));
  return x;
}
// #endregion embed

// #region cosine
/** Cosine similarity: the cosine of the angle between two vectors, in [-1, 1]. */
export function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}
// #endregion cosine

async function main() {
  section("the table");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer;
  const E = weight(model, "tok_embeddings.weight"); // (vocab_size, dim)
  console.log(`tok_embeddings.weight: shape ${shape(c.vocab_size, c.dim)}, f32, row-major`);
  console.log(
    `${int(E.length)} numbers = ${int(E.length * 4)} bytes; row i at byte i × ${c.dim} × 4`,
  );
  let total = 0;
  for (const t of model.weights.values()) total += t.data.length;
  console.log(
    `that is ${fixed((100 * E.length) / total, 1)} % of the model's ${int(total)} parameters`,
  );

  section("a prompt becomes a matrix");
  const prompt = "Once upon a time";
  const ids = tok.encode(prompt);
  const x = embed(E, ids, c.dim); // (n, dim)
  console.log(`${show(prompt)} -> ids ${JSON.stringify(ids)} -> x ${shape(ids.length, c.dim)}`);
  ids.forEach((id, t) => {
    const lookup = `x[${t}] = E[${id}]`.padEnd(13);
    console.log(`  ${lookup} ${show(tok.tokenPiece(id)).padEnd(8)} ${vec(row(x, t, c.dim))}`);
  });

  section("the lookup is a matrix product with a one-hot vector");
  const id = ids[1];
  const oneHot = new Float32Array(c.vocab_size); // (vocab_size): 1 at the id, 0 elsewhere
  oneHot[id] = 1;
  const product = new Float32Array(c.dim); // (dim) = oneHotᵀ (vocab_size) · E (vocab_size, dim)
  for (let v = 0; v < c.vocab_size; v++) {
    for (let j = 0; j < c.dim; j++) product[j] += oneHot[v] * E[v * c.dim + j];
  }
  console.log(
    `one-hot (${c.vocab_size}) · E ${shape(c.vocab_size, c.dim)}: ` +
      `${int(c.vocab_size * c.dim)} multiply-adds; the lookup: 0`,
  );
  check(
    "one-hot · E equals row E[id]",
    maxAbsDiff(product, row(E, id, c.dim)) === 0,
    `id ${id}, ${c.dim} values identical`,
  );

  section("what the engine feeds its first layer");
  const trace = new Trace();
  createReference(c, model.weights, { trace: trace.record }).forwardAll(ids, 0);
  const engine = trace.rows("inp_embd", -1, ids.length); // (n, dim)
  check(
    "our x equals the reference's inp_embd at every position",
    maxAbsDiff(x, engine) === 0,
    `${ids.length} × ${c.dim} values identical`,
  );
  const shifted = embed(E, ids.map((i) => (i + 1) % c.vocab_size), c.dim);
  control(
    "an off-by-one row",
    maxAbsDiff(shifted, engine) > 0,
    `max |diff| ${fixed(maxAbsDiff(shifted, engine))}`,
  );
  const gguf = `${ASSETS}/stories260K/stories260K.gguf`;
  if (model.name === "stories260K" && isFile(gguf)) {
    const other = await loadCheckpoint(gguf);
    const E2 = other.weights.get("tok_embeddings.weight")!.data;
    check(
      "the GGUF file's table equals the llama2.c file's",
      maxAbsDiff(E, E2) === 0,
      `two formats, two readers, ${int(E.length)} values identical`,
    );
  }

  section("nearby rows, nearby meanings");
  const single = (w: string) => tok.encode(w, { bos: false }).length === 1;
  const words = ["Lily", "mom", "happy", "said", "big"].filter(single);
  const rows: (string | number)[][] = [["token", "nearest rows by cosine similarity"]];
  for (const w of words) {
    const id = tok.encode(w, { bos: false })[0];
    const a = row(E, id, c.dim);
    const near = Array.from({ length: c.vocab_size }, (_, v) => v)
      .filter((v) => v !== id && tok.tokenPiece(v).length > 2)
      .map((v) => [v, cosine(a, row(E, v, c.dim))] as const)
      .sort((p, q) => q[1] - p[1])
      .slice(0, 4);
    rows.push([
      show(tok.tokenPiece(id)),
      near.map(([v, s]) => `${show(tok.tokenPiece(v))} ${fixed(s, 2)}`).join("  "),
    ]);
  }
  table(rows);
}

if (import.meta.main) await main();
