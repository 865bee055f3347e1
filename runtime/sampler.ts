/**
 * Token sampling: greedy, temperature, top-k, top-p (nucleus), min-p, and the repetition,
 * frequency and presence penalties, driven by a seeded integer PRNG so that the same seed
 * draws the same tokens on every machine.
 *
 * Order of operations (as in llama.cpp's default chain and HF `transformers` warpers):
 * penalties → temperature → softmax → top-k → top-p → min-p → renormalise → draw.
 * Temperature 0 means greedy: the argmax of the penalised logits (ties → lowest id).
 *
 * References:
 * - top-p: Holtzman et al. 2019, "The Curious Case of Neural Text Degeneration"
 *   (arXiv:1904.09751).
 * - repetition penalty: Keskar et al. 2019, "CTRL: A Conditional Transformer Language Model
 *   for Controllable Generation" (arXiv:1909.05858), in llama.cpp's form: a positive logit is
 *   divided by the penalty, a negative one multiplied, once per distinct recent token.
 * - frequency and presence penalties: OpenAI's formula (platform.openai.com/docs, "Parameter
 *   details"): `logit[j] -= count[j] · frequency_penalty + (count[j] > 0) · presence_penalty`,
 *   applied after the repetition penalty over the same window of the last `repeatLastN`
 *   tokens, as llama.cpp's `llama_sampler_penalties` (src/llama-sampling.cpp) does.
 * - min-p: Nguyen et al. 2024, "Turning Up the Heat: Min-p Sampling for Creative and Coherent
 *   LLM Outputs" (arXiv:2407.01082).
 * - PRNG: xoshiro128** (Blackman & Vigna 2018), seeded through splitmix32.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";

/** Sampling settings. Every field is optional; defaults leave the distribution unchanged. */
export interface SamplerOptions {
  /** Softmax temperature (≥ 0); 0 = greedy. Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = off. Default 0. */
  topK?: number;
  /** Keep the smallest set whose probability mass reaches p (0 < p ≤ 1); 1 = off. Default 1. */
  topP?: number;
  /** Keep tokens with probability ≥ minP × the largest probability (0 ≤ minP ≤ 1); 0 = off. */
  minP?: number;
  /** Repetition penalty (> 0); 1 = off. Default 1. */
  repeatPenalty?: number;
  /**
   * Frequency penalty (finite; OpenAI's range is [-2, 2]): subtracted from a token's logit
   * once per occurrence among the last `repeatLastN` tokens; 0 = off. Default 0.
   */
  frequencyPenalty?: number;
  /**
   * Presence penalty (finite; OpenAI's range is [-2, 2]): subtracted once from the logit of
   * every token that occurs among the last `repeatLastN` tokens; 0 = off. Default 0.
   */
  presencePenalty?: number;
  /** How many of the most recent tokens the penalties look at (≥ 0). Default 64. */
  repeatLastN?: number;
  /** PRNG seed (any integer; only its low 53 bits matter). Default: random from `crypto`. */
  seed?: number;
  /**
   * Token id → a bias (an object, a Map, or `[id, bias]` pairs) added to its logit before
   * anything else (OpenAI's `logit_bias`,
   * llama.cpp's `--logit-bias`, which also applies it first): -100 all but bans a token,
   * +100 all but forces it, `-Infinity` bans it. Ids must be integers ≥ 0 (and inside the
   * vocabulary when sampling); biases finite or `-Infinity`. Default: none.
   */
  logitBias?:
    | Readonly<Record<number, number>>
    | ReadonlyMap<number, number>
    | readonly (readonly [number, number])[];
}

/**
 * {@linkcode SamplerOptions} with every default filled in; `logitBias` as `[id, bias]` pairs
 * in id order.
 */
export type ResolvedSamplerOptions = Required<Omit<SamplerOptions, "logitBias">> & {
  /** `[token id, bias]` pairs, ids ascending and distinct (empty: no bias). */
  logitBias: readonly (readonly [number, number])[];
};

/**
 * Validates options and fills defaults.
 *
 * @param o Options as given (e.g. from CLI flags).
 * @returns Every field set.
 * @throws {GollmError} naming the option and the allowed range.
 *
 * @example
 * ```ts
 * import { resolveSamplerOptions } from "./sampler.ts";
 * import assert from "node:assert/strict";
 * assert.equal(resolveSamplerOptions({ temperature: 0, seed: 1 }).topP, 1);
 * assert.throws(() => resolveSamplerOptions({ repeatPenalty: 0 }), /'repeatPenalty' must be/);
 * ```
 */
export function resolveSamplerOptions(o: SamplerOptions = {}): ResolvedSamplerOptions {
  const r: ResolvedSamplerOptions = {
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    minP: o.minP ?? 0,
    repeatPenalty: o.repeatPenalty ?? 1,
    frequencyPenalty: o.frequencyPenalty ?? 0,
    presencePenalty: o.presencePenalty ?? 0,
    repeatLastN: o.repeatLastN ?? 64,
    seed: o.seed ?? crypto.getRandomValues(new Uint32Array(1))[0],
    logitBias: biasPairs(o.logitBias),
  };
  const bad = (name: string, want: string, got: number) => {
    throw new GollmError(`sampler option '${name}' must be ${want}, got ${got}`);
  };
  r.logitBias.forEach(([id, b], i) => {
    if (!(Number.isInteger(id) && id >= 0)) bad("logitBias", "keyed by token ids ≥ 0", id);
    if (i > 0 && r.logitBias[i - 1][0] === id) bad("logitBias", "keyed by distinct ids", id);
    if (!(Number.isFinite(b) || b === -Infinity)) {
      bad(`logitBias[${id}]`, "a finite number or -Infinity", b);
    }
  });
  if (!(r.temperature >= 0 && Number.isFinite(r.temperature))) {
    bad("temperature", "a finite number ≥ 0", r.temperature);
  }
  if (!(Number.isInteger(r.topK) && r.topK >= 0)) bad("topK", "an integer ≥ 0", r.topK);
  if (!(r.topP > 0 && r.topP <= 1)) bad("topP", "in (0, 1]", r.topP);
  if (!(r.minP >= 0 && r.minP <= 1)) bad("minP", "in [0, 1]", r.minP);
  if (!(r.repeatPenalty > 0 && Number.isFinite(r.repeatPenalty))) {
    bad("repeatPenalty", "a finite number > 0", r.repeatPenalty);
  }
  if (!Number.isFinite(r.frequencyPenalty)) {
    bad("frequencyPenalty", "a finite number", r.frequencyPenalty);
  }
  if (!Number.isFinite(r.presencePenalty)) {
    bad("presencePenalty", "a finite number", r.presencePenalty);
  }
  if (!(Number.isInteger(r.repeatLastN) && r.repeatLastN >= 0)) {
    bad("repeatLastN", "an integer ≥ 0", r.repeatLastN);
  }
  if (!Number.isInteger(r.seed)) bad("seed", "an integer", r.seed);
  return r;
}

/** `logitBias` as `[id, bias]` pairs in id order (object keys are strings: made numbers). */
function biasPairs(b: SamplerOptions["logitBias"]): [number, number][] {
  if (b === undefined) return [];
  const entries: (readonly [number | string, number])[] = Array.isArray(b)
    ? b
    : b instanceof Map
    ? [...b]
    : Object.entries(b as Record<string, number>);
  return entries.map(([id, v]): [number, number] => [Number(id), v]).sort((x, y) => x[0] - y[0]);
}

/**
 * xoshiro128** PRNG in 32-bit integer arithmetic (identical output on every machine),
 * seeded through splitmix32 from the low and high 32-bit halves of the seed.
 *
 * @example
 * ```ts
 * import { Rng } from "./sampler.ts";
 * const a = new Rng(42), b = new Rng(42);
 * import assert from "node:assert/strict";
 * assert.equal(a.nextUint32(), b.nextUint32());
 * ```
 */
export class Rng {
  #s = new Uint32Array(4); // (4) xoshiro128 state

  /**
   * Seeds the generator.
   * @param seed Any integer (its low 53 bits are used).
   */
  constructor(seed: number) {
    let x = (seed % 4294967296) >>> 0; // low 32 bits
    const hi = Math.floor(seed / 4294967296) >>> 0; // high bits (53-bit safe range)
    const splitmix32 = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s[0] = splitmix32();
    this.#s[1] = splitmix32() ^ hi;
    this.#s[2] = splitmix32();
    this.#s[3] = splitmix32();
    if ((this.#s[0] | this.#s[1] | this.#s[2] | this.#s[3]) === 0) this.#s[0] = 1;
  }

  /**
   * A generator with an explicit xoshiro128 state (for checking against the reference C
   * implementation, prng.di.unimi.it/xoshiro128starstar.c).
   *
   * @param state Four 32-bit words, not all zero.
   * @returns The generator.
   * @throws {RangeError} when every word is zero.
   *
   * @example
   * ```ts
   * import { Rng } from "./sampler.ts";
   * import assert from "node:assert/strict";
   * assert.equal(Rng.fromState([1, 2, 3, 4]).nextUint32(), 11520); // the C reference's first output
   * ```
   */
  static fromState(state: readonly [number, number, number, number]): Rng {
    const r = new Rng(0);
    r.#s.set(state.map((x) => x >>> 0));
    if ((r.#s[0] | r.#s[1] | r.#s[2] | r.#s[3]) === 0) {
      throw new RangeError("xoshiro128 state must not be all zero");
    }
    return r;
  }

  /**
   * Advances the state once.
   * @returns The next 32-bit unsigned integer.
   */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /**
   * Draws a uniform double from two 32-bit outputs.
   * @returns A uniform double in [0, 1) with 53 random bits.
   */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5, b = this.nextUint32() >>> 6; // 27 + 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Buckets of log-probability per nat below the max, for top-p (see filterCandidates). */
const NUCLEUS_PER_NAT = 16;
/** Buckets: 64 nats (p down to e^-64 of the max); the last one holds everything below. */
const NUCLEUS_BUCKETS = 64 * NUCLEUS_PER_NAT;

/**
 * Shared filtering core: the logit bias, the penalties, then temperature, top-k, top-p and
 * min-p. Writes the candidate ids into `idx[0..m)` and their unnormalised
 * probabilities (`exp((logit - max) / T)`) into `p[id]` (with top-k, for the k kept ids
 * only: the others keep their logits); returns m. Candidates come out in
 * descending probability (ties: lower id first) after top-k, in id order otherwise.
 */
function filterCandidates(
  logits: ArrayLike<number>,
  recent: ArrayLike<number> | undefined,
  o: ResolvedSamplerOptions,
  work: Float64Array, // (vocab) penalised logits, then probabilities
  idx: Int32Array, // (vocab) candidate ids
  stamp: Int32Array, // (vocab) marks of the ids counted for the penalties
  count: Int32Array, // (vocab) occurrences of each marked id in the penalty window
  stampValue: number,
  bucket: Uint16Array, // (vocab) log-probability bucket of each id (top-p without top-k)
  bucketMass: Float64Array, // (NUCLEUS_BUCKETS) probability mass of each bucket
  merge: Int32Array, // (vocab) the kept boundary ids, sorted by id before the merge
): number {
  const n = logits.length;
  for (let i = 0; i < n; i++) {
    const x = logits[i];
    work[i] = x > -Infinity ? x : -Infinity; // NaN → -Infinity
  }
  for (const [id, b] of o.logitBias) {
    if (id >= n) {
      throw new RangeError(
        `logitBias: token id ${id} is outside the vocabulary (${n} logits)`,
      );
    }
    work[id] += b;
  }
  applyPenalties(work, recent, o, stamp, count, stampValue);
  let max = -Infinity, arg = 0;
  for (let i = 0; i < n; i++) {
    if (work[i] > max) {
      max = work[i];
      arg = i;
    }
  }
  if (max === -Infinity) {
    throw new RangeError("sampler: every logit is -Infinity or NaN");
  }
  if (o.temperature === 0) {
    idx[0] = arg;
    work.fill(0, 0, n);
    work[arg] = 1;
    return 1;
  }
  // Softmax numerators (the max token gets exactly 1). For top-p over the whole vocabulary,
  // each token also goes into a bucket of its log-probability (1/NUCLEUS_PER_NAT nat wide,
  // below the max) and the bucket's mass is summed, in the same pass.
  const invT = 1 / o.temperature;
  const topK = o.topK > 0 && o.topK < n;
  const nucleusAll = o.topP < 1 && !topK;
  const p = work;
  const before = (a: number, b: number) => p[b] - p[a] || a - b; // descending p, then id
  let m = n;
  let sorted = false;
  if (topK) {
    // exp is increasing, so the k largest logits are the k most probable tokens: select
    // them on the (penalised) logits, then take exp of those k only (llama.cpp's top-k
    // first: O(n log k) compares instead of n exps).
    m = topKInto(n, o.topK, idx, before);
    sorted = true;
    for (let j = 0; j < m; j++) p[idx[j]] = Math.exp((work[idx[j]] - max) * invT);
  } else if (nucleusAll) {
    bucketMass.fill(0);
    for (let i = 0; i < n; i++) {
      const z = (work[i] - max) * invT; // ≤ 0
      const p = Math.exp(z);
      const b = -z * NUCLEUS_PER_NAT;
      const k = b < NUCLEUS_BUCKETS - 1 ? b | 0 : NUCLEUS_BUCKETS - 1;
      work[i] = p;
      bucket[i] = k;
      bucketMass[k] += p;
    }
  } else {
    for (let i = 0; i < n; i++) work[i] = Math.exp((work[i] - max) * invT);
  }
  if (!topK) { for (let i = 0; i < n; i++) idx[i] = i; }
  if (o.topP < 1) {
    let mass = 0;
    for (let j = 0; j < m; j++) mass += p[idx[j]];
    const target = o.topP * mass;
    let start = 0; // idx[0..start) are surely in the nucleus; idx[start..m) sorted, cut below
    let cum = 0;
    if (!sorted) {
      // The nucleus is a prefix of the sorted order, so it is the buckets above some bucket
      // c (surely kept) plus a prefix of bucket c in sorted order. c: the first bucket at
      // which the bucket masses reach the target. O(n) per step instead of sorting the
      // whole vocabulary; only bucket c is sorted.
      let c = 0, acc = 0;
      for (; c < NUCLEUS_BUCKETS - 1; c++) {
        acc += bucketMass[c];
        if (acc >= target) break;
      }
      let k = 0;
      for (let i = 0; i < n; i++) {
        if (bucket[i] < c) {
          idx[k++] = i;
          cum += p[i];
        }
      }
      start = k;
      for (let i = 0; i < n; i++) if (bucket[i] === c) idx[k++] = i;
      m = k;
      idx.subarray(start, m).sort(before);
    }
    let keep = m;
    if (cum >= target) keep = start; // only by rounding: the sure tokens already suffice
    else {
      for (let j = start; j < m; j++) {
        cum += p[idx[j]];
        if (cum >= target) {
          keep = j + 1;
          break;
        }
      }
    }
    m = Math.max(1, keep);
    if (!sorted && m > start) {
      // Back to id order: the kept boundary tokens (sorted by p) merged into the sure ones
      // (in id order), so the order — and what a seeded draw picks — does not depend on
      // where the search put the boundary.
      const nb = m - start;
      merge.set(idx.subarray(start, m));
      merge.subarray(0, nb).sort(); // numeric, in place
      let i = start - 1, j = nb - 1, w = m - 1;
      while (j >= 0) idx[w--] = i >= 0 && idx[i] > merge[j] ? idx[i--] : merge[j--];
    }
  }
  if (o.minP > 0) {
    // The max probability is 1 (unnormalised) and always survives top-k/top-p.
    const threshold = o.minP;
    let k = 0;
    for (let j = 0; j < m; j++) if (p[idx[j]] >= threshold) idx[k++] = idx[j];
    m = Math.max(1, k);
  }
  return m;
}

/** Whether {@linkcode applyPenalties} changes anything for these options and ids. */
function penalises(o: ResolvedSamplerOptions, recent: ArrayLike<number> | undefined): boolean {
  const { repeatPenalty: rep, frequencyPenalty: freq, presencePenalty: pres } = o;
  return !!recent && recent.length > 0 && o.repeatLastN !== 0 &&
    !(rep === 1 && freq === 0 && pres === 0);
}

/**
 * Greedy without penalties in one pass over the logits, as filterCandidates decides it: the
 * first id of the largest logit, NaN never chosen.
 *
 * @throws {RangeError} when every logit is -Infinity or NaN.
 */
function argmaxOf(logits: ArrayLike<number>): number {
  let max = -Infinity, arg = -1;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > max) {
      max = logits[i];
      arg = i;
    }
  }
  if (arg < 0) throw new RangeError("sampler: every logit is -Infinity or NaN");
  return arg;
}

/**
 * The repetition, frequency and presence penalties over the last `repeatLastN` ids of
 * `recent` (llama.cpp `llama_sampler_penalties`): each distinct id's logit x becomes
 * `(x > 0 ? x / repeat : x · repeat) - count · frequency - presence`.
 */
function applyPenalties(
  work: Float64Array, // (vocab) logits, penalised in place
  recent: ArrayLike<number> | undefined,
  o: ResolvedSamplerOptions,
  stamp: Int32Array, // (vocab) marks of the ids counted in this call
  count: Int32Array, // (vocab) occurrences in the window (valid where marked)
  stampValue: number,
): void {
  if (!recent || !penalises(o, recent)) return;
  const { repeatPenalty: rep, frequencyPenalty: freq, presencePenalty: pres } = o;
  const n = work.length;
  const from = Math.max(0, recent.length - o.repeatLastN);
  for (let j = from; j < recent.length; j++) {
    const id = recent[j];
    if (!(id >= 0 && id < n)) continue;
    if (stamp[id] !== stampValue) {
      stamp[id] = stampValue;
      count[id] = 0;
    }
    count[id]++;
  }
  for (let j = from; j < recent.length; j++) {
    const id = recent[j];
    if (!(id >= 0 && id < n) || count[id] === 0) continue; // outside, or already applied
    let x = work[id];
    if (rep !== 1) x = x > 0 ? x / rep : x * rep;
    work[id] = x - count[id] * freq - pres;
    count[id] = 0;
  }
}

/**
 * Selects the k best ids (by `before`) into `idx[0..k)`, sorted, with a bounded heap whose
 * root is the worst kept id: O(n log k).
 */
function topKInto(
  n: number,
  k: number,
  idx: Int32Array,
  before: (a: number, b: number) => number,
): number {
  // Heap property: parent is "after" (worse than) its children.
  const worse = (a: number, b: number) => before(a, b) > 0;
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let w = i;
      if (l < k && worse(idx[l], idx[w])) w = l;
      if (r < k && worse(idx[r], idx[w])) w = r;
      if (w === i) return;
      const t = idx[i];
      idx[i] = idx[w];
      idx[w] = t;
      i = w;
    }
  };
  for (let i = 0; i < k; i++) idx[i] = i;
  for (let i = (k >> 1) - 1; i >= 0; i--) siftDown(i);
  for (let i = k; i < n; i++) {
    if (before(i, idx[0]) < 0) {
      idx[0] = i;
      siftDown(0);
    }
  }
  idx.subarray(0, k).sort(before);
  return k;
}

/**
 * The tokens a sampler with these options could draw, with their renormalised
 * probabilities: the exact set after penalty, temperature, top-k, top-p and min-p. For
 * tests and debugging; allocates.
 *
 * @param logits Raw logits, one per vocabulary id (not modified).
 * @param options Sampling options (`seed` is irrelevant here).
 * @param recent Recent token ids for the penalties.
 * @returns Kept ids in descending probability (ties: lower id first) and their
 *   probabilities (summing to 1). Greedy (`temperature: 0`) keeps only the argmax.
 * @throws {GollmError} for invalid options; {RangeError} when every logit is -Infinity/NaN.
 *
 * @example
 * ```ts
 * import { keptSet } from "./sampler.ts";
 * const k = keptSet(new Float32Array([0, 3, 1, 2]), { topK: 2, seed: 0 });
 * import assert from "node:assert/strict";
 * assert.deepEqual(k.ids, [1, 3]);
 * ```
 */
export function keptSet(
  logits: ArrayLike<number>,
  options: SamplerOptions = {},
  recent?: ArrayLike<number>,
): { ids: number[]; probs: number[] } {
  const o = resolveSamplerOptions({ seed: 0, ...options });
  const n = logits.length;
  const work = new Float64Array(n), idx = new Int32Array(n), stamp = new Int32Array(n);
  const m = filterCandidates(
    logits,
    recent,
    o,
    work,
    idx,
    stamp,
    new Int32Array(n),
    1,
    new Uint16Array(n),
    new Float64Array(NUCLEUS_BUCKETS),
    new Int32Array(n),
  );
  const ids = Array.from(idx.subarray(0, m));
  ids.sort((a, b) => work[b] - work[a] || a - b);
  let z = 0;
  for (const id of ids) z += work[id];
  return { ids, probs: ids.map((id) => work[id] / z) };
}

/**
 * Draws token ids from logits. Keeps its scratch buffers (vocab-sized) across calls, so a
 * decode step allocates nothing after the first call.
 *
 * @example
 * ```ts
 * import { Sampler } from "./sampler.ts";
 * const s = new Sampler({ temperature: 0.8, topK: 40, topP: 0.95, seed: 1234 });
 * const id = s.sample(new Float32Array([0.1, 2.5, -1, 0.7]));
 * import assert from "node:assert/strict";
 * assert.ok(id >= 0 && id < 4);
 * ```
 */
export class Sampler {
  /** The options in effect (defaults filled; `seed` is the one actually used). */
  readonly options: Readonly<ResolvedSamplerOptions>;
  #rng: Rng;
  #work = new Float64Array(0); // (vocab) penalised logits / probabilities
  #idx = new Int32Array(0); // (vocab) candidate ids
  #probs = new Float64Array(0); // (vocab) normalised probabilities of the candidates
  #stamp = new Int32Array(0); // (vocab) marks of the ids counted for the penalties
  #count = new Int32Array(0); // (vocab) their occurrences in the penalty window
  #bucket = new Uint16Array(0); // (vocab) log-probability bucket of each id (top-p)
  #bucketMass = new Float64Array(NUCLEUS_BUCKETS); // (buckets) mass of each bucket
  #merge = new Int32Array(0); // (vocab) kept boundary ids (top-p)
  #stampValue = 0;

  /**
   * Validates the options, seeds the PRNG; scratch buffers are sized on the first sample.
   * @param options Sampling options (see {@linkcode SamplerOptions}).
   * @throws {GollmError} for an out-of-range option.
   */
  constructor(options: SamplerOptions = {}) {
    this.options = Object.freeze(resolveSamplerOptions(options));
    this.#rng = new Rng(this.options.seed);
  }

  /**
   * Picks the next token.
   *
   * @param logits Logits over the vocabulary (not modified; may be a view into the arena).
   * @param recent Previously generated/prompt token ids; the last `repeatLastN` are penalised
   *   (repetition, frequency and presence penalties).
   * @returns The chosen id.
   * @throws {RangeError} when every logit is -Infinity or NaN.
   */
  sample(logits: ArrayLike<number>, recent?: ArrayLike<number>): number {
    const o = this.options;
    if (o.temperature === 0 && !penalises(o, recent) && o.logitBias.length === 0) {
      return argmaxOf(logits);
    }
    const m = this.#filter(logits, recent);
    const work = this.#work, idx = this.#idx;
    if (m === 1) return idx[0];
    let total = 0;
    for (let j = 0; j < m; j++) total += work[idx[j]];
    const r = this.#rng.nextFloat() * total;
    let cum = 0;
    for (let j = 0; j < m; j++) {
      cum += work[idx[j]];
      if (r < cum) return idx[j];
    }
    return idx[m - 1];
  }

  /**
   * The distribution {@linkcode Sampler.sample} draws from for these logits: the kept ids
   * and their renormalised probabilities, after the penalties, temperature, top-k, top-p and
   * min-p. Speculative decoding (runtime/speculative.ts) takes the target's p and the
   * draft's q from it, so both are filtered the same way. Draws nothing from the PRNG.
   *
   * @param logits Logits over the vocabulary (not modified).
   * @param recent Previous token ids, as for `sample`.
   * @returns `ids` `(m)` and `probs` `(m)` (summing to 1), views into the sampler's scratch
   *   buffers valid until its next call (copy them to keep). Order: descending probability
   *   after top-k, id order otherwise. Greedy: the argmax alone, probability 1.
   * @throws {RangeError} when every logit is -Infinity or NaN.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { Sampler } from "./sampler.ts";
   * const d = new Sampler({ topK: 2, seed: 1 }).distribution(new Float32Array([0, Math.log(3), 5, 0]));
   * assert.deepEqual([...d.ids], [2, 1]);
   * assert.ok(Math.abs(d.probs[0] + d.probs[1] - 1) < 1e-12);
   * ```
   */
  distribution(
    logits: ArrayLike<number>,
    recent?: ArrayLike<number>,
  ): { ids: Int32Array; probs: Float64Array } {
    const m = this.#filter(logits, recent);
    const work = this.#work, idx = this.#idx, probs = this.#probs;
    let total = 0;
    for (let j = 0; j < m; j++) total += work[idx[j]];
    for (let j = 0; j < m; j++) probs[j] = work[idx[j]] / total;
    return { ids: idx.subarray(0, m), probs: probs.subarray(0, m) };
  }

  /**
   * Draws a uniform double in [0, 1) from the sampler's seeded PRNG (the acceptance tests
   * and residual draws of speculative decoding use the same stream as `sample`).
   *
   * @returns The draw.
   */
  random(): number {
    return this.#rng.nextFloat();
  }

  /** Runs the filtering chain into `#work` / `#idx` (sized on first use); returns m. */
  #filter(logits: ArrayLike<number>, recent: ArrayLike<number> | undefined): number {
    const n = logits.length;
    if (this.#work.length !== n) {
      this.#work = new Float64Array(n);
      this.#idx = new Int32Array(n);
      this.#probs = new Float64Array(n);
      this.#stamp = new Int32Array(n);
      this.#count = new Int32Array(n);
      this.#bucket = new Uint16Array(n);
      this.#merge = new Int32Array(n);
      this.#stampValue = 0;
    }
    if (++this.#stampValue === 0x7fffffff) {
      this.#stamp.fill(0);
      this.#stampValue = 1;
    }
    return filterCandidates(
      logits,
      recent,
      this.options,
      this.#work,
      this.#idx,
      this.#stamp,
      this.#count,
      this.#stampValue,
      this.#bucket,
      this.#bucketMass,
      this.#merge,
    );
  }
}
