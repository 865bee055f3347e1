/**
 * Step 6 of the guide: generation and sampling. Greedy, temperature, top-k, top-p and min-p
 * written out, checked against gollm's sampler (runtime/sampler.ts) set for set and draw for
 * draw at a seed, and a generation loop checked against `Model.generate` (runtime/model.ts).
 *
 * Run: `deno run -A docs/guide/06_sampling.ts` (page: docs/guide/06_sampling.md).
 *
 * @module
 */
import { createReference } from "../../runtime/reference.ts";
import { createModel, type GenerateStats } from "../../runtime/model.ts";
import { keptSet, Rng, Sampler } from "../../runtime/sampler.ts";
import { check, control, fixed, loadGuideModel, maxAbsDiff, section, show, table } from "./lib.ts";

// #region candidates
/** Sampling settings: temperature (0: greedy), top-k (0: off), top-p (1: off), min-p (0: off). */
export interface Settings {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
}

/**
 * The tokens one draw may pick, most likely first, each with its unnormalised probability
 * exp((logit - max) / temperature): softmax without the division, so the top token has 1.
 */
export function candidates(logits: Float32Array, s: Settings): { ids: number[]; p: number[] } {
  const max = Math.max(...logits);
  let ids = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
  if (s.temperature === 0) return { ids: ids.slice(0, 1), p: [1] }; // greedy: the argmax only
  const invT = 1 / s.temperature;
  const prob = (id: number) => Math.exp((logits[id] - max) * invT);
  if (s.topK > 0) ids = ids.slice(0, s.topK); // the k most likely
  if (s.topP < 1) { // the shortest head of the list holding a share topP of the mass
    const target = s.topP * ids.reduce((sum, id) => sum + prob(id), 0);
    let cum = 0, keep = 0;
    while (keep < ids.length && cum < target) cum += prob(ids[keep++]);
    ids = ids.slice(0, Math.max(1, keep));
  }
  if (s.minP > 0) ids = ids.filter((id, i) => i === 0 || prob(id) >= s.minP); // >= minP × top
  return { ids, p: ids.map(prob) };
}

/**
 * One draw: a uniform number in [0, 1) from the seeded generator, scaled to the total mass,
 * picks the candidate it lands in. A lone candidate is returned without drawing, as
 * runtime/sampler.ts does, so only real choices consume random numbers.
 */
export function draw(c: { ids: number[]; p: number[] }, rng: Rng): number {
  if (c.ids.length === 1) return c.ids[0];
  const total = c.p.reduce((a, b) => a + b, 0);
  const r = rng.nextFloat() * total;
  let cum = 0;
  for (let i = 0; i < c.ids.length; i++) if (r < (cum += c.p[i])) return c.ids[i];
  return c.ids[c.ids.length - 1];
}
// #endregion candidates

const bar = (p: number, width = 30) => "#".repeat(Math.round(p * width));
const settings = (o: Partial<Settings>): Settings => ({
  temperature: 1,
  topK: 0,
  topP: 1,
  minP: 0,
  ...o,
});
const describe = (s: Settings) => {
  const parts = [`T ${s.temperature}`];
  if (s.topK) parts.push(`top-k ${s.topK}`);
  if (s.topP < 1) parts.push(`top-p ${s.topP}`);
  if (s.minP) parts.push(`min-p ${s.minP}`);
  return parts.join(", ");
};
/** The normalised probability of `id` among the candidates (0 when it was cut). */
const prob = (c: { ids: number[]; p: number[] }, id: number) => {
  const i = c.ids.indexOf(id);
  return i < 0 ? 0 : c.p[i] / c.p.reduce((a, b) => a + b, 0);
};

async function main() {
  section("the next-token distribution");
  const model = await loadGuideModel();
  const c = model.config, tok = model.tokenizer;
  const piece = (id: number) => show(tok.tokenPiece(id));
  const prompt = "Once upon a time, there was a";
  const ids = tok.encode(prompt);
  const logits = createReference(c, model.weights).forward(ids, 0).slice(); // (vocab_size)
  console.log(`after ${show(prompt)}: logits (${c.vocab_size}); the 8 most likely at T 1:`);
  const all = candidates(logits, settings({}));
  const top8 = all.ids.slice(0, 8);
  table(
    top8.map((
      id,
    ) => [piece(id), fixed(logits[id], 2), fixed(prob(all, id), 3), bar(prob(all, id))]),
  );

  section("temperature");
  const temps = [0.5, 1, 2];
  const byT = temps.map((t) => candidates(logits, settings({ temperature: t })));
  table([
    ["token", ...temps.map((t) => `T = ${t}`)],
    ...all.ids.slice(0, 5).map((id) => [piece(id), ...byT.map((cand) => fixed(prob(cand, id), 3))]),
  ]);

  section("cutting the tail: top-k, top-p, min-p");
  const tries = [
    settings({ temperature: 0 }),
    settings({ topK: 5 }),
    settings({ topP: 0.9 }),
    settings({ minP: 0.05 }),
    settings({ temperature: 0.8, topK: 40, topP: 0.9, minP: 0.02 }),
    settings({ temperature: 1.5, topP: 0.95 }),
  ];
  const kept: (string | number)[][] = [["settings", "kept", "most likely ... least likely kept"]];
  for (const s of tries) {
    const ours = candidates(logits, s);
    const theirs = keptSet(logits, { ...s, seed: 0 });
    const same = JSON.stringify(ours.ids) === JSON.stringify(theirs.ids) &&
      maxAbsDiff(ours.ids.map((id) => prob(ours, id)), theirs.probs) < 1e-12;
    const claim = `our candidates for ${describe(s)} are runtime/sampler.ts's`;
    check(claim, same, `${ours.ids.length} tokens, same probabilities`);
    const ends = ours.ids.length > 2 ? [ours.ids[0], ours.ids.at(-1)!] : ours.ids;
    kept.push([describe(s), ours.ids.length, ends.map(piece).join(" ... ")]);
  }
  table(kept);

  section("drawing with a seed");
  const s = settings({ temperature: 0.8, topK: 40, topP: 0.9 });
  const seed = 42;
  const cand = candidates(logits, s);
  const rng = new Rng(seed), sampler = new Sampler({ ...s, seed });
  const ours = Array.from({ length: 1000 }, () => draw(cand, rng));
  const theirs = Array.from({ length: 1000 }, () => sampler.sample(logits));
  console.log(`${describe(s)}, seed ${seed}: first draws ${ours.slice(0, 8).map(piece).join(" ")}`);
  const same = JSON.stringify(ours) === JSON.stringify(theirs);
  check(
    "our 1000 draws are the Sampler's",
    same,
    `xoshiro128** from runtime/sampler.ts, seed ${seed}`,
  );
  const drawn = (id: number) => ours.filter((d) => d === id).length;
  table([
    ["token", "drawn", "expected"],
    ...cand.ids.slice(0, 4).map((id) => [piece(id), drawn(id), fixed(1000 * prob(cand, id), 1)]),
  ]);
  const idOrder = [...cand.ids].sort((a, b) => a - b); // the same candidates, walked by id
  const byId = { ids: idOrder, p: idOrder.map((id) => cand.p[cand.ids.indexOf(id)]) };
  const rng2 = new Rng(seed);
  const differ = theirs.filter((id) => draw(byId, rng2) !== id).length;
  control(
    "the same draws walking the candidates in id order",
    differ > 0,
    `${differ} of 1000 tokens differ`,
  );

  section("generation");
  const gen = settings({ temperature: 0.8, topK: 40, topP: 0.9 });
  const pass = createReference(c, model.weights);
  const out: number[] = [];
  const r = new Rng(7);
  let next = draw(candidates(pass.forward(ids, 0), gen), r);
  while (out.length < 40 && !tok.eosIds.includes(next)) {
    out.push(next);
    // The reference keeps every earlier position's keys and values (step 7): feed one token.
    const logits = pass.forward([next], ids.length + out.length - 1);
    next = draw(candidates(logits, gen), r);
  }
  console.log(`ours, ${describe(gen)}, seed 7:`);
  console.log(`  ${show(tok.decode([...ids, ...out]))}`);
  const m = createModel(c, model.weights, tok, { backend: "reference" });
  const generate = async (o: Settings, seed: number) => {
    let text = "", tokens: number[] = [];
    const options = {
      maxTokens: 40,
      ...o,
      seed,
      onStats: (st: GenerateStats) => tokens = st.tokens,
    };
    for await (const piece of m.generate(prompt, options)) text += piece;
    return { text, tokens };
  };
  const engine = await generate(gen, 7);
  const agree = JSON.stringify(out) === JSON.stringify(engine.tokens);
  check("our loop generates the tokens Model.generate does", agree, `${out.length} tokens, seed 7`);
  const greedy = await generate(settings({ temperature: 0 }), 0);
  console.log("gollm, greedy:");
  console.log(`  ${show(prompt + greedy.text)}`);
  const hot = await generate(settings({ temperature: 1.5, topP: 0.95 }), 7);
  console.log("gollm, T 1.5, top-p 0.95, seed 7:");
  console.log(`  ${show(prompt + hot.text)}`);
}

if (import.meta.main) await main();
