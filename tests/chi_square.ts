/**
 * Pearson's chi-square goodness-of-fit test, for the distribution tests of speculative
 * sampling (runtime/speculative_decode_test.ts, server/speculative_sampled_test.ts).
 *
 * @module
 */

/** The statistic of {@linkcode chiSquare}. */
export interface ChiSquare {
  /** Pearson's statistic Σ (o - e)² / e. */
  stat: number;
  /** Degrees of freedom: cells - 1. */
  df: number;
  /** The α = 0.001 critical value of chi-square with `df` (Wilson-Hilferty). */
  critical: number;
  /** Total-variation distance between the observed frequencies and the distribution. */
  tv: number;
}

/**
 * Pearson's chi-square of observed counts against a distribution: cells with an expected
 * count below 5 are pooled into one cell, and so are outcomes outside the distribution's
 * support (an observed outcome of probability 0 makes the statistic infinite).
 *
 * @param counts Observed count per outcome (any string key).
 * @param probs Probability per outcome (summing to 1).
 * @param n Number of observations.
 * @returns The statistic, degrees of freedom, 0.001 critical value and TV distance.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chiSquare } from "./chi_square.ts";
 * const p = new Map([["a", 0.5], ["b", 0.5]]);
 * const r = chiSquare(new Map([["a", 50], ["b", 50]]), p, 100);
 * assert.deepEqual([r.stat, r.df, r.tv], [0, 1, 0]);
 * assert.ok(chiSquare(new Map([["a", 90], ["b", 10]]), p, 100).stat > r.critical);
 * ```
 */
export function chiSquare(
  counts: Map<string, number>,
  probs: Map<string, number>,
  n: number,
): ChiSquare {
  let stat = 0, cells = 0, pooledE = 0, pooledO = 0, tv = 0;
  for (const [key, p] of probs) {
    const e = n * p, o = counts.get(key) ?? 0;
    tv += Math.abs(o / n - p);
    if (e < 5) {
      pooledE += e;
      pooledO += o;
      continue;
    }
    stat += (o - e) ** 2 / e;
    cells++;
  }
  for (const [key, o] of counts) {
    if (!probs.has(key)) {
      pooledO += o;
      tv += o / n;
    }
  }
  if (pooledE > 0 || pooledO > 0) {
    stat += pooledE > 0 ? (pooledO - pooledE) ** 2 / pooledE : Infinity;
    cells++;
  }
  const df = cells - 1, z = 3.0902; // the 0.999 quantile of N(0, 1)
  const critical = df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
  return { stat, df, critical, tv: tv / 2 };
}
