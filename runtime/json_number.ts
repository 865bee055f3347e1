/**
 * A JSON number, byte by byte (RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`):
 * the one lexer of numbers that JSON mode's recogniser (json_constraint.ts) and the schema
 * recogniser (json_schema_recognizer.ts, which also reads integers: no fraction or exponent)
 * share. A number has no end byte of its own: the first byte that cannot continue it ends
 * it, and the enclosing context reads that byte.
 *
 * @module
 */

/** Positions inside a number: after the byte that led there. */
export const NUM = {
  /** After `-`: a digit. */
  Minus: 0,
  /** After a leading `0`. */
  Zero: 1,
  /** In the integer part (1-9 first). */
  Int: 2,
  /** After `.`: a digit. */
  Dot: 3,
  /** In the fraction. */
  Frac: 4,
  /** After `e`/`E`: a sign or digit. */
  Exp: 5,
  /** After the exponent's sign: a digit. */
  ExpSign: 6,
  /** In the exponent. */
  ExpDigits: 7,
} as const;

/** {@linkcode numberStep}: `b` ends the number; the enclosing context reads it. */
export const NUMBER_END = -1;
/** {@linkcode numberStart} / {@linkcode numberStep}: `b` cannot come here. */
export const NUMBER_REJECT = -2;

const isDigit = (b: number) => b >= 0x30 && b <= 0x39;

/**
 * The position after a number's first byte.
 *
 * @param b The byte.
 * @returns A {@linkcode NUM} position, or {@linkcode NUMBER_REJECT} when `b` starts no number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NUM, NUMBER_REJECT, numberStart } from "./json_number.ts";
 * assert.equal(numberStart(0x2d), NUM.Minus); // "-"
 * assert.equal(numberStart(0x2b), NUMBER_REJECT); // "+"
 * ```
 */
export function numberStart(b: number): number {
  return b === 0x2d ? NUM.Minus : b === 0x30 ? NUM.Zero : isDigit(b) ? NUM.Int : NUMBER_REJECT;
}

/**
 * The position after byte `b` inside a number.
 *
 * @param pos The current {@linkcode NUM} position.
 * @param b The byte.
 * @param integer No fraction or exponent: `.` and `e` end the number.
 * @returns The next position, {@linkcode NUMBER_END} or {@linkcode NUMBER_REJECT}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NUM, NUMBER_END, NUMBER_REJECT, numberStep } from "./json_number.ts";
 * assert.equal(numberStep(NUM.Int, 0x2e), NUM.Dot); // "1."
 * assert.equal(numberStep(NUM.Int, 0x2e, true), NUMBER_END); // an integer ends at "."
 * assert.equal(numberStep(NUM.Zero, 0x31), NUMBER_END); // "01": the 1 is not this number's
 * assert.equal(numberStep(NUM.Dot, 0x7d), NUMBER_REJECT); // "1.}"
 * ```
 */
export function numberStep(pos: number, b: number, integer = false): number {
  const fracOrExp = () =>
    integer ? NUMBER_END : b === 0x2e ? NUM.Dot : b === 0x65 || b === 0x45 ? NUM.Exp : NUMBER_END;
  switch (pos) {
    case NUM.Minus:
      return b === 0x30 ? NUM.Zero : isDigit(b) ? NUM.Int : NUMBER_REJECT;
    case NUM.Zero:
      return fracOrExp();
    case NUM.Int:
      return isDigit(b) ? NUM.Int : fracOrExp();
    case NUM.Dot:
      return isDigit(b) ? NUM.Frac : NUMBER_REJECT;
    case NUM.Frac:
      return isDigit(b) ? NUM.Frac : b === 0x65 || b === 0x45 ? NUM.Exp : NUMBER_END;
    case NUM.Exp:
      return b === 0x2b || b === 0x2d ? NUM.ExpSign : isDigit(b) ? NUM.ExpDigits : NUMBER_REJECT;
    case NUM.ExpSign:
      return isDigit(b) ? NUM.ExpDigits : NUMBER_REJECT;
    default: // NUM.ExpDigits
      return isDigit(b) ? NUM.ExpDigits : NUMBER_END;
  }
}

/**
 * Whether a number at `pos` is whole if it ends here (`0`, `12`, `1.5`, `1e3`; not `-`,
 * `1.`, `1e`, `1e+`).
 *
 * @param pos A {@linkcode NUM} position.
 * @returns True when the number may end.
 */
export function numberComplete(pos: number): boolean {
  return pos === NUM.Zero || pos === NUM.Int || pos === NUM.Frac || pos === NUM.ExpDigits;
}
