/**
 * The scale searches llama.cpp's K-quant reference quantisers run when no importance matrix
 * is given (ggml/src/ggml-quants.c): `make_qx_quants` (symmetric, Q6_K), `make_q3_quants`
 * (symmetric with a coordinate-descent refinement, Q3_K) and `make_qkx2_quants` (scale and
 * min by weighted least squares over a grid of trial scales, Q2_K/Q4_K/Q5_K).
 *
 * Each mirrors the C in F32 arithmetic (`fr` after every operation, in the C evaluation
 * order) so the chosen levels and scales are bit-identical.
 *
 * @module
 */
import { fr, nearestInt } from "./common.ts";

/** ggml's `GROUP_MAX_EPS`: below this a group counts as all zero. */
const GROUP_MAX_EPS = 1e-15;

/**
 * `make_qx_quants` with `rmse_type` 1 and no importance weights (weights `x²`): symmetric
 * levels in `[0, 2·nmax)` stored with the `+nmax` offset, searching 19 trial scales around
 * `nmax / max` for the least weighted squared error.
 *
 * @param n Group size.
 * @param nmax Half the level count (32 for 6 bits).
 * @param x Input values.
 * @param xo Offset of the group in `x`.
 * @param L Output levels (`n` entries from `lo`).
 * @param lo Offset in `L`.
 * @returns The group scale (signed; 0 for an all-zero group).
 */
export function makeQxQuants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  L: Int8Array | Uint8Array,
  lo: number,
): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i];
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L[lo + i] = l + nmax;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 ? fr(sumlx / suml2) : 0;
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumlx = suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i];
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
      const w = fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(fr(iscale * x[xo + i]));
        L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/**
 * `make_q3_quants` with `do_rmse`: symmetric levels in `[-nmax, nmax)` from `nmax / max`,
 * then up to 5 rounds that move single levels while that lowers the `x²`-weighted error.
 * Levels are stored with the `+nmax` offset.
 *
 * @param n Group size.
 * @param nmax Half the level count (4 for 3 bits).
 * @param x Input values.
 * @param xo Offset of the group in `x`.
 * @param L Output levels (`n` entries from `lo`).
 * @param lo Offset in `L`.
 * @returns The group scale (signed; 0 for an all-zero group).
 */
export function makeQ3Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  L: Int8Array,
  lo: number,
): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i];
    }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    return 0;
  }
  const iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i];
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L[lo + i] = l;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i], li = L[lo + i];
      const w = fr(xi * xi);
      let slx = fr(sumlx - fr(fr(w * xi) * li));
      if (slx > 0) {
        let sl2 = fr(suml2 - fr(fr(w * li) * li));
        let nl = nearestInt(fr(fr(xi * sl2) / slx));
        nl = Math.max(-nmax, Math.min(nmax - 1, nl));
        if (nl !== li) {
          slx = fr(slx + fr(fr(w * xi) * nl));
          sl2 = fr(sl2 + fr(fr(w * nl) * nl));
          if (sl2 > 0 && fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) {
            L[lo + i] = nl;
            sumlx = slx;
            suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (let i = 0; i < n; i++) L[lo + i] += nmax;
  return suml2 > 0 ? fr(sumlx / suml2) : 0;
}

/** Scratch for {@linkcode makeQkx2Quants}: trial levels. */
const LAUX = new Uint8Array(32);

/** The min (≥ 0, subtracted) that the last {@linkcode makeQkx2Quants} call chose. */
export let qkx2Min = 0;

/**
 * `make_qkx2_quants`: levels in `[0, nmax]` for `x ≈ scale·L − min`. Starts from the
 * min/max grid, then tries `nstep + 1` scales `(rmin + rdelta·is + nmax) / (max − min)`,
 * refitting scale and min by weighted least squares for each and keeping the lowest weighted
 * error (absolute when `useMad`, squared otherwise). `min` moves to the best fit so far, and
 * later trials measure from it, as in the C.
 *
 * @param n Group size (≤ 32).
 * @param nmax Largest level (3, 15 or 31).
 * @param x Input values.
 * @param xo Offset of the group in `x`.
 * @param weights Per-element weights (`n` entries from 0).
 * @param L Output levels (`n` entries from `lo`).
 * @param lo Offset in `L`.
 * @param rmin First trial offset.
 * @param rdelta Trial step.
 * @param nstep Number of trial steps.
 * @param useMad Absolute instead of squared error.
 * @returns The scale; the min (≥ 0, `x ≈ scale·L − min`) is left in {@linkcode qkx2Min}.
 */
export function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  xo: number,
  weights: Float32Array,
  L: Uint8Array,
  lo: number,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): number {
  let min = x[xo], max = x[xo];
  let sumW = weights[0];
  let sumX = fr(sumW * x[xo]);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i];
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    qkx2Min = -min;
    return 0;
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i];
    let l = fr(fr(iscale * fr(xi - min)) + 12582912) - 12582912; // nearest_int
    l = l < 0 ? 0 : l > nmax ? nmax : l;
    L[lo + i] = l;
    const diff = fr(fr(fr(scale * l) + min) - xi);
    bestError = fr(bestError + fr(weights[i] * (useMad ? Math.abs(diff) : fr(diff * diff))));
  }
  if (nstep < 1) {
    qkx2Min = -min;
    return scale;
  }
  const rminF = fr(rmin), rdeltaF = fr(rdelta);
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rminF + fr(rdeltaF * is)) + nmax) / fr(max - min));
    // Levels equal to the previous trial's give the same sums, scale, min and error, which
    // cannot beat bestError (already ≤ that error): skipping such a trial changes no result.
    let changed = is === 0;
    for (let i = 0; i < n; i++) {
      let l = fr(fr(iscale * fr(x[xo + i] - min)) + 12582912) - 12582912; // nearest_int
      l = l < 0 ? 0 : l > nmax ? nmax : l;
      if (LAUX[i] !== l) {
        LAUX[i] = l;
        changed = true;
      }
    }
    if (!changed) continue;
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i], l = LAUX[i];
      const wl = fr(weights[i] * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * xi));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
    let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = fr(sumXL / sumL2);
    }
    // The terms are ≥ 0 and F32 rounding is monotonic, so once the partial sum reaches
    // bestError this trial cannot win: stopping there changes no result.
    let curError = 0;
    for (let i = 0; i < n && curError < bestError; i++) {
      const diff = fr(fr(fr(thisScale * LAUX[i]) + thisMin) - x[xo + i]);
      curError = fr(curError + fr(weights[i] * (useMad ? Math.abs(diff) : fr(diff * diff))));
    }
    if (curError < bestError) {
      for (let i = 0; i < n; i++) L[lo + i] = LAUX[i];
      bestError = curError;
      scale = thisScale;
      min = thisMin;
    }
  }
  qkx2Min = -min;
  return scale;
}
