/**
 * Sampler: greedy = argmax; top-k / top-p / min-p keep exactly the set an independent,
 * sort-everything oracle keeps; repetition penalty; the PRNG against the reference
 * xoshiro128** C code; same seed → same sequence; draws follow the distribution.
 */
import assert from "node:assert/strict";
import { GollmError } from "../core/errors.ts";
import { keptSet, Rng, Sampler, type SamplerOptions } from "./sampler.ts";
import { assertClose } from "../tests/assert_close.ts";

/** Deterministic test logits (xorshift32), values in (-scale, scale). */
function randomLogits(n: number, seed: number, scale = 4): Float32Array {
  let s = seed | 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 4294967296 * 2 - 1) * scale;
  }
  return out;
}

/**
 * Oracle: the textbook definition, written independently of runtime/sampler.ts — softmax
 * over everything, sort by probability (ties: lower id), cut top-k, renormalise, cut the
 * smallest prefix with mass ≥ p, cut below minP × max, renormalise.
 */
function oracle(
  logits: ArrayLike<number>,
  o: { temperature?: number; topK?: number; topP?: number; minP?: number },
): Map<number, number> {
  const t = o.temperature ?? 1;
  const max = Math.max(...Array.from(logits));
  let items = Array.from(logits, (x, id) => ({ id, p: Math.exp((x - max) / t) }));
  const z0 = items.reduce((a, b) => a + b.p, 0);
  items = items.map((e) => ({ id: e.id, p: e.p / z0 }));
  items.sort((a, b) => b.p - a.p || a.id - b.id);
  if (o.topK && o.topK > 0) items = items.slice(0, o.topK);
  const renorm = () => {
    const z = items.reduce((a, b) => a + b.p, 0);
    items = items.map((e) => ({ id: e.id, p: e.p / z }));
  };
  renorm();
  if (o.topP !== undefined && o.topP < 1) {
    let cum = 0, keep = items.length;
    for (let j = 0; j < items.length; j++) {
      cum += items[j].p;
      if (cum >= o.topP) {
        keep = j + 1;
        break;
      }
    }
    items = items.slice(0, Math.max(1, keep));
    renorm();
  }
  if (o.minP && o.minP > 0) {
    const pmax = items[0].p;
    items = items.filter((e) => e.p >= o.minP! * pmax);
    renorm();
  }
  return new Map(items.map((e) => [e.id, e.p]));
}

function assertSameSet(
  logits: Float32Array,
  o: SamplerOptions,
  what: string,
): void {
  const got = keptSet(logits, o);
  const want = oracle(logits, o);
  assert.deepEqual(
    [...got.ids].sort((a, b) => a - b),
    [...want.keys()].sort((a, b) => a - b),
    what,
  );
  assertClose(got.probs, got.ids.map((id) => want.get(id)!), 1e-9, what);
}

Deno.test("Sampler with temperature 0 returns the argmax (ties → lowest id)", () => {
  const s = new Sampler({ temperature: 0, seed: 1, topK: 5, topP: 0.5, minP: 0.3 });
  for (let seed = 1; seed <= 50; seed++) {
    const l = randomLogits(1000, seed);
    let arg = 0;
    for (let i = 1; i < l.length; i++) if (l[i] > l[arg]) arg = i;
    assert.equal(s.sample(l), arg);
  }
  assert.equal(s.sample(new Float32Array([1, 5, 3, 5, 5])), 1);
  assert.equal(s.sample(new Float32Array([-Infinity, -Infinity, -3])), 2);
  assert.equal(s.sample(new Float32Array([NaN, 0.5, 1])), 2);
  assert.deepEqual(keptSet(new Float32Array([2, 7, 7]), { temperature: 0 }).ids, [1]);
  assert.throws(() => s.sample(new Float32Array([-Infinity, NaN])), RangeError);
  // A penalty on the recent ids makes greedy take the penalised argmax (5 / 10 < 3).
  const p = new Sampler({ temperature: 0, repeatPenalty: 10 });
  assert.equal(p.sample(new Float32Array([1, 5, 3]), [1]), 2);
  assert.equal(p.sample(new Float32Array([1, 5, 3]), []), 1);
});

Deno.test("keptSet() with top-k keeps exactly the k most likely tokens", () => {
  for (let seed = 1; seed <= 30; seed++) {
    const l = randomLogits(500, seed);
    for (const k of [1, 2, 7, 40, 499, 500, 1000]) {
      assertSameSet(l, { topK: k }, `seed ${seed} k ${k}`);
      assert.equal(keptSet(l, { topK: k }).ids.length, Math.min(k, 500));
    }
  }
  // Ties at the boundary: the lower ids win.
  assert.deepEqual(keptSet(new Float32Array([1, 3, 2, 3, 3, 0]), { topK: 2 }).ids, [1, 3]);
});

Deno.test("keptSet() with top-p keeps the smallest set whose mass reaches p", () => {
  for (let seed = 1; seed <= 30; seed++) {
    for (const scale of [0.5, 4, 12]) {
      const l = randomLogits(800, seed * 7 + scale, scale);
      for (const p of [0.01, 0.1, 0.5, 0.9, 0.95, 0.999]) {
        assertSameSet(l, { topP: p }, `seed ${seed} scale ${scale} p ${p}`);
      }
    }
  }
  // Hand case: probs 0.5, 0.3, 0.2 (logits = log p); p = 0.75 keeps two, p = 0.8 keeps two
  // (0.5 + 0.3 reaches 0.8), p = 0.81 keeps all three; p tiny keeps the top one.
  const l = new Float32Array([Math.log(0.2), Math.log(0.5), Math.log(0.3)]);
  assert.deepEqual(keptSet(l, { topP: 0.75 }).ids, [1, 2]);
  assert.deepEqual(keptSet(l, { topP: 0.81 }).ids, [1, 2, 0]);
  assert.deepEqual(keptSet(l, { topP: 1e-9 }).ids, [1]);
  assertClose(keptSet(l, { topP: 0.75 }).probs, [0.625, 0.375], 1e-6);
  // All tied: the nucleus is the lowest ids.
  const flat = keptSet(new Float32Array(1000), { topP: 0.5 });
  assert.deepEqual(flat.ids, Array.from({ length: 500 }, (_, i) => i));
  const flatBig = keptSet(new Float32Array(5000).fill(3), { topP: 0.3001 });
  assert.equal(flatBig.ids.length, 1501);
});

Deno.test("keptSet() with min-p keeps tokens with p ≥ minP · p_max", () => {
  for (let seed = 1; seed <= 30; seed++) {
    const l = randomLogits(600, seed, 6);
    for (const m of [0.001, 0.05, 0.2, 0.9, 1]) {
      assertSameSet(l, { minP: m }, `seed ${seed} minP ${m}`);
    }
  }
  const l = new Float32Array([Math.log(0.2), Math.log(0.5), Math.log(0.3)]);
  assert.deepEqual(keptSet(l, { minP: 0.5 }).ids, [1, 2]); // 0.3 ≥ 0.25, 0.2 < 0.25
  assert.deepEqual(keptSet(l, { minP: 0.39 }).ids, [1, 2, 0]);
});

Deno.test("keptSet() applies temperature, top-k, top-p and min-p in that order", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const l = randomLogits(700, seed, 5);
    for (
      const o of [
        { temperature: 0.7, topK: 40, topP: 0.9 },
        { temperature: 1.3, topK: 100, topP: 0.5, minP: 0.05 },
        { temperature: 0.2, topP: 0.95, minP: 0.1 },
        { temperature: 2, topK: 3, minP: 0.5 },
      ]
    ) {
      assertSameSet(l, o, `seed ${seed} ${JSON.stringify(o)}`);
    }
  }
});

Deno.test("repetition penalty divides positive and multiplies negative logits of recent tokens once", () => {
  const s = new Sampler({ temperature: 0, repeatPenalty: 1.1, seed: 1 });
  // 2 / 1.1 = 1.818 < 1.9: the repeated token loses.
  assert.equal(s.sample(new Float32Array([2, 1.9]), [0]), 1);
  assert.equal(s.sample(new Float32Array([2, 1.9])), 0);
  // -1 · 1.1 = -1.1 < -1.05.
  assert.equal(s.sample(new Float32Array([-1, -1.05]), [0]), 1);
  // Repeated occurrences penalise once (2 / 1.1 = 1.818 > 1.8; twice would be 1.65).
  assert.equal(s.sample(new Float32Array([2, 1.8]), [0, 0, 0]), 0);
  // Only the last repeatLastN tokens count.
  const last2 = new Sampler({ temperature: 0, repeatPenalty: 1.5, repeatLastN: 2, seed: 1 });
  assert.equal(last2.sample(new Float32Array([2, 1.9, 1]), [0, 2, 2]), 0);
  assert.equal(last2.sample(new Float32Array([2, 1.9, 1]), [2, 0]), 1);
  // Probabilities: penalised logit enters the softmax.
  const k = keptSet(new Float32Array([2, 0]), { repeatPenalty: 2 }, [0]);
  const want = 1 / (1 + Math.exp(-1)); // logits [1, 0]
  assertClose(k.probs, [want, 1 - want], 1e-9);
  // Out-of-range ids in `recent` are ignored; the caller's logits are not modified.
  const logits = new Float32Array([2, 1]);
  s.sample(logits, [0, -1, 99]);
  assert.deepEqual([...logits], [2, 1]);
});

Deno.test("frequency and presence penalties follow OpenAI's formula over the penalty window", () => {
  // Oracle: OpenAI's documented formula, mu[j] - c[j] * alpha_frequency - (c[j] > 0) *
  // alpha_presence, after llama.cpp's repetition penalty, then a plain softmax.
  const oracleProbs = (
    logits: number[],
    recent: number[],
    o: { rep: number; freq: number; pres: number; lastN: number },
  ) => {
    const window = recent.slice(Math.max(0, recent.length - o.lastN));
    const mu = logits.map((x, j) => {
      const c = window.filter((id) => id === j).length;
      if (c === 0) return x;
      const r = x > 0 ? x / o.rep : x * o.rep;
      return r - c * o.freq - (c > 0 ? 1 : 0) * o.pres;
    });
    const max = Math.max(...mu);
    const e = mu.map((x) => Math.exp(x - max));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  };
  const logits = [1.5, -0.5, 0.25, 2, 0, -1.25];
  const recent = [3, 3, 3, 0, 5, 1, 3, 0, 2];
  for (
    const o of [
      { rep: 1, freq: 0.5, pres: 0, lastN: 64 },
      { rep: 1, freq: 0, pres: 1.25, lastN: 64 },
      { rep: 1.3, freq: 0.4, pres: 0.7, lastN: 64 },
      { rep: 1, freq: -0.6, pres: -1, lastN: 64 }, // negative values encourage repetition
      { rep: 1.1, freq: 0.9, pres: 0.3, lastN: 4 }, // only the last 4 tokens count
    ]
  ) {
    const opts = {
      repeatPenalty: o.rep,
      frequencyPenalty: o.freq,
      presencePenalty: o.pres,
      repeatLastN: o.lastN,
    };
    const k = keptSet(new Float32Array(logits), opts, recent);
    const got = logits.map((_, j) => k.probs[k.ids.indexOf(j)]);
    assertClose(got, oracleProbs(logits, recent, o), 1e-12, JSON.stringify(o));
  }
  // Greedy: token 3 (logit 2, 4 occurrences) against token 0 (1.5, twice): at frequency 0.2,
  // 2 - 0.8 = 1.2 > 1.5 - 0.4 = 1.1 (3 stays); at 0.3, 2 - 1.2 = 0.8 < 1.5 - 0.6 = 0.9.
  const g = (freq: number) =>
    new Sampler({ temperature: 0, frequencyPenalty: freq, seed: 1 }).sample(
      new Float32Array(logits),
      recent,
    );
  assert.equal(g(0.2), 3);
  assert.equal(g(0.3), 0);
  // Negative control: without the history the penalties change nothing.
  assert.equal(
    new Sampler({ temperature: 0, frequencyPenalty: 2, presencePenalty: 2, seed: 1 }).sample(
      new Float32Array(logits),
    ),
    3,
  );
});

Deno.test("Rng matches the reference xoshiro128** C code", () => {
  // Outputs of prng.di.unimi.it/xoshiro128starstar.c next() from state {1, 2, 3, 4}
  // (compiled with gcc), calls 1-8 and 1001.
  const r = Rng.fromState([1, 2, 3, 4]);
  const first = Array.from({ length: 8 }, () => r.nextUint32());
  assert.deepEqual(first, [
    11520,
    0,
    5927040,
    70819200,
    2031721883,
    1637235492,
    1287239034,
    3734860849,
  ]);
  for (let i = 0; i < 992; i++) r.nextUint32();
  assert.equal(r.nextUint32(), 136054147);
  const u = new Rng(5);
  for (let i = 0; i < 10000; i++) {
    const x = u.nextFloat();
    assert.ok(x >= 0 && x < 1);
  }
});

Deno.test("Sampler with the same seed gives the same sequence; different seeds differ", () => {
  const opts = { temperature: 0.9, topK: 50, topP: 0.95, repeatPenalty: 1.1 };
  const run = (seed: number) => {
    const s = new Sampler({ ...opts, seed });
    const out: number[] = [];
    for (let t = 0; t < 200; t++) out.push(s.sample(randomLogits(300, 1000 + t, 3), out));
    return out;
  };
  assert.deepEqual(run(42), run(42));
  assert.notDeepEqual(run(42), run(43));
  assert.notDeepEqual(run(0), run(2 ** 40)); // high seed bits matter too
  const s = new Sampler({ seed: 9 });
  assert.equal(s.options.seed, 9);
  assert.ok(Number.isInteger(new Sampler().options.seed), "a default seed is chosen and reported");
  // Every draw is in the kept set.
  const o = { temperature: 0.8, topK: 20, topP: 0.8, minP: 0.05, seed: 3 };
  const t = new Sampler(o);
  for (let i = 0; i < 300; i++) {
    const l = randomLogits(400, i + 1, 5);
    assert.ok(keptSet(l, o).ids.includes(t.sample(l)));
  }
  // A vocabulary size change reallocates the scratch buffers.
  assert.ok(t.sample(randomLogits(10, 1)) < 10);
  assert.ok(t.sample(randomLogits(1000, 1)) < 1000);
});

Deno.test("Sampler draws follow the softmax distribution (fixed seed, 40000 draws)", () => {
  const logits = new Float32Array([1, 0.5, 0, -0.5, -1, 2, -3, 0.25]);
  for (const temperature of [1, 0.5]) {
    const probs = oracle(logits, { temperature });
    const s = new Sampler({ temperature, seed: 2024 });
    const counts = new Array(logits.length).fill(0);
    const n = 40000;
    for (let i = 0; i < n; i++) counts[s.sample(logits)]++;
    let chi2 = 0;
    for (let id = 0; id < logits.length; id++) {
      const e = n * probs.get(id)!;
      chi2 += (counts[id] - e) ** 2 / e;
      // Each frequency within 5 standard deviations.
      const sd = Math.sqrt(n * probs.get(id)! * (1 - probs.get(id)!));
      assert.ok(
        Math.abs(counts[id] - e) < 5 * sd + 1,
        `T ${temperature} id ${id}: ${counts[id]} vs ${e}`,
      );
    }
    // 7 degrees of freedom: P(chi2 > 24.3) ≈ 0.001.
    assert.ok(chi2 < 24.3, `T ${temperature}: chi2 ${chi2}`);
  }
  // Top-k 2 at T=1: only ids 5 and 0, in ratio e^2 : e^1.
  const s = new Sampler({ topK: 2, seed: 7 });
  let n5 = 0, n0 = 0;
  for (let i = 0; i < 20000; i++) {
    const id = s.sample(logits);
    if (id === 5) n5++;
    else if (id === 0) n0++;
    else assert.fail(`id ${id} outside top-2`);
  }
  assert.ok(Math.abs(n5 / 20000 - Math.E / (Math.E + 1)) < 0.015, `${n5}`);
});

Deno.test("Sampler rejects out-of-range options with a GollmError naming the option", () => {
  const bad: [SamplerOptions, string][] = [
    [{ temperature: -1 }, "temperature"],
    [{ temperature: NaN }, "temperature"],
    [{ topK: 1.5 }, "topK"],
    [{ topK: -1 }, "topK"],
    [{ topP: 0 }, "topP"],
    [{ topP: 1.5 }, "topP"],
    [{ minP: -0.1 }, "minP"],
    [{ minP: 2 }, "minP"],
    [{ repeatPenalty: 0 }, "repeatPenalty"],
    [{ frequencyPenalty: NaN }, "frequencyPenalty"],
    [{ presencePenalty: Infinity }, "presencePenalty"],
    [{ repeatLastN: -3 }, "repeatLastN"],
    [{ seed: 1.5 }, "seed"],
  ];
  for (const [o, name] of bad) {
    assert.throws(
      () => new Sampler(o),
      (e: unknown) => e instanceof GollmError && e.message.includes(`'${name}'`),
      JSON.stringify(o),
    );
  }
});

Deno.test("Sampler on a 128k vocabulary draws from the kept set (timing printed)", () => {
  const l = randomLogits(128256, 5, 8);
  for (
    const o of [
      { temperature: 0 },
      { temperature: 0.8, topK: 40, topP: 0.95 },
      { temperature: 0.8, topP: 0.95 },
      { temperature: 0.8, minP: 0.05 },
    ]
  ) {
    const s = new Sampler({ ...o, seed: 1 });
    const kept = keptSet(l, o).ids;
    assert.ok(kept.includes(s.sample(l)));
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) s.sample(l);
    console.log(
      `  sample() over 128256 logits ${JSON.stringify(o)}: ${
        ((performance.now() - t0) / 20).toFixed(2)
      } ms`,
    );
  }
});

Deno.test("Sampler with top-p alone draws by walking the nucleus in id order", () => {
  // Reference: the oracle's nucleus in id order, walked with the same PRNG stream.
  for (const [seed, scale, topP] of [[3, 4, 0.9], [5, 0.5, 0.95], [8, 12, 0.5], [9, 2, 0.999]]) {
    const logits = randomLogits(3000, seed, scale);
    const o = { temperature: 0.9, topP, seed };
    const want = oracle(logits, o);
    const ids = [...want.keys()].sort((a, b) => a - b);
    const d = new Sampler(o).distribution(logits);
    assert.deepEqual([...d.ids], ids, `seed ${seed}: distribution() in id order`);
    const s = new Sampler(o), rng = new Rng(seed);
    for (let k = 0; k < 50; k++) {
      const r = rng.nextFloat();
      let cum = 0, pick = ids[ids.length - 1];
      for (const id of ids) {
        cum += want.get(id)!;
        if (r < cum) {
          pick = id;
          break;
        }
      }
      assert.equal(s.sample(logits), pick, `seed ${seed} scale ${scale} draw ${k}`);
    }
  }
});

Deno.test("Sampler logitBias adds to the logits before the penalties: +100 forces, -Infinity bans", () => {
  const logits = new Float32Array([1, 2, 3, 0.5]);
  const greedy = (logitBias?: SamplerOptions["logitBias"], recent?: number[], repeatPenalty = 1) =>
    new Sampler({ temperature: 0, seed: 1, logitBias, repeatPenalty }).sample(logits, recent);
  assert.equal(greedy(), 2);
  assert.equal(greedy({ 2: -Infinity }), 1); // banned
  assert.equal(greedy(new Map([[3, 100]])), 3); // forced
  assert.equal(greedy([[0, 2.5], [1, 0]]), 0); // pairs: 3.5 > 3
  // llama.cpp's order, bias then repetition penalty: id 1 gets (2 + 2.5) / 2 = 2.25 < 3; the
  // other order would give 2 / 2 + 2.5 = 3.5 > 3.
  assert.equal(greedy({ 1: 2.5 }, [1], 2), 2);
  assert.equal(greedy({ 1: 2.5 }), 1);
  // Sampling: the kept set and probabilities are those of the biased logits.
  const bias = { 0: 2, 3: -1 };
  const biased = logits.map((x, i) => x + ((bias as Record<number, number>)[i] ?? 0));
  for (const o of [{ topK: 3 }, { topP: 0.9 }, { minP: 0.2 }, { temperature: 0.7 }]) {
    assert.deepEqual(
      keptSet(logits, { ...o, logitBias: bias }),
      keptSet(biased, o),
      JSON.stringify(o),
    );
  }
  // Bad input: one line naming the option; an id past the vocabulary when sampling.
  assert.throws(
    () => new Sampler({ logitBias: { 1: NaN } }),
    /'logitBias\[1\]' must be a finite number or -Infinity, got NaN/,
  );
  assert.throws(
    () => new Sampler({ logitBias: [[1.5, 1]] }),
    /'logitBias' must be keyed by token ids ≥ 0, got 1.5/,
  );
  assert.throws(
    () => new Sampler({ logitBias: [[1, 1], [1, 2]] }),
    /'logitBias' must be keyed by distinct ids, got 1/,
  );
  assert.throws(
    () => greedy({ 4: 1 }),
    /logitBias: token id 4 is outside the vocabulary \(4 logits\)/,
  );
});
