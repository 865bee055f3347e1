/**
 * Float comparison for tests: element-wise |actual - expected| ≤ tol, reporting the largest
 * difference and where it is.
 *
 * @module
 */
import { AssertionError } from "node:assert/strict";

/**
 * Asserts that two arrays have the same length and every element differs by at most `tol`
 * (NaN equals NaN; equal infinities are equal).
 *
 * @param actual Values computed.
 * @param expected Reference values.
 * @param tol Largest allowed absolute difference.
 * @param msg Prefix for the failure message.
 * @throws {AssertionError} naming the max |diff|, its index and both values there.
 *
 * @example
 * ```ts
 * import { assertClose } from "./assert_close.ts";
 * assertClose(new Float32Array([1, 2.00001]), [1, 2], 1e-4);
 * ```
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  msg?: string,
): void {
  const prefix = msg ? `${msg}: ` : "";
  if (actual.length !== expected.length) {
    throw new AssertionError({
      message: `${prefix}length ${actual.length} != expected length ${expected.length}`,
    });
  }
  let worst = -1, worstDiff = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const d = Math.abs(a - e);
    if (!(d <= worstDiff)) { // NaN diff counts as worst
      worstDiff = Number.isNaN(d) ? Infinity : d;
      worst = i;
    }
  }
  if (worst >= 0 && !(worstDiff <= tol)) {
    throw new AssertionError({
      message: `${prefix}max |diff| ${worstDiff} > ${tol} at index ${worst} ` +
        `(actual ${actual[worst]}, expected ${expected[worst]})`,
    });
  }
}
