/**
 * GPT-2's reversible byte ⇄ unicode map ("byte-level BPE"): every byte 0..255 is shown as
 * one printable Unicode character, so a vocabulary of byte strings can be stored as text
 * (`encoder.json`, HF `tokenizer.json`, GGUF `tokenizer.ggml.tokens` for `gpt2` models).
 * Printable bytes map to themselves (`a` → `a`); the others are shifted to U+0100.. (space
 * 0x20 → `Ġ` U+0120, newline 0x0A → `Ċ` U+010A).
 *
 * Follows `bytes_to_unicode()` in openai/gpt-2 `src/encoder.py` (and HF `tokenizers`
 * ByteLevel).
 *
 * @module
 */

/** `BYTE_TO_UNICODE[b]` is the one-character string that stands for byte `b` (256 entries). */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b); // '!'..'~'
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b); // '¡'..'¬'
  for (let b = 0xae; b <= 0xff; b++) bs.push(b); // '®'..'ÿ'
  const out: string[] = new Array(256);
  for (const b of bs) out[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (out[b] === undefined) out[b] = String.fromCharCode(256 + n++);
  }
  return out;
})();

/** Inverse of {@linkcode BYTE_TO_UNICODE}: UTF-16 code unit → byte, -1 for any other unit. */
const UNIT_TO_BYTE: Int16Array = (() => {
  const t = new Int16Array(0x144).fill(-1); // (324) every mapped unit is < 0x144
  for (let b = 0; b < 256; b++) t[BYTE_TO_UNICODE[b].charCodeAt(0)] = b;
  return t;
})();

/**
 * Turns raw bytes into their byte-level string (`[0x20, 0x74]` → `"Ġt"`).
 *
 * @param bytes Raw bytes.
 * @returns One character per byte.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { bytesToByteLevel } from "./byte_level.ts";
 * assert.equal(bytesToByteLevel(new TextEncoder().encode(" the\n")), "ĠtheĊ");
 * ```
 */
export function bytesToByteLevel(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_UNICODE[bytes[i]];
  return s;
}

/**
 * Writes the raw bytes of a byte-level string into `out` at `at` (no allocation: a
 * tokenizer's whole vocabulary goes into one buffer this way).
 *
 * @param text A string made only of characters of {@linkcode BYTE_TO_UNICODE}.
 * @param out The buffer, with at least `text.length` bytes free at `at` (one byte per
 *   character).
 * @param at Where to write.
 * @returns The end of the bytes written, or -1 when `text` holds a character outside the
 *   map (`out` may then hold some of its bytes).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteLevelInto } from "./byte_level.ts";
 * const out = new Uint8Array(8);
 * assert.equal(byteLevelInto("Ġt", out, 2), 4);
 * assert.deepEqual([...out.subarray(2, 4)], [0x20, 0x74]);
 * assert.equal(byteLevelInto("€", out, 0), -1);
 * ```
 */
export function byteLevelInto(text: string, out: Uint8Array, at: number): number {
  for (let i = 0; i < text.length; i++) {
    const u = text.charCodeAt(i);
    const b = u < UNIT_TO_BYTE.length ? UNIT_TO_BYTE[u] : -1;
    if (b < 0) return -1;
    out[at++] = b;
  }
  return at;
}

/**
 * Turns a byte-level string back into raw bytes (`"Ġt"` → `[0x20, 0x74]`).
 *
 * @param text A string made only of characters of {@linkcode BYTE_TO_UNICODE}.
 * @returns The bytes, or `null` when `text` holds a character outside the map (such a
 *   token is not a byte-level token, e.g. a GGUF user-defined `<|im_start|>`-style piece
 *   with characters outside the table).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { byteLevelToBytes } from "./byte_level.ts";
 * assert.deepEqual(byteLevelToBytes("Ġthe"), Uint8Array.of(32, 116, 104, 101));
 * assert.equal(byteLevelToBytes("€"), null);
 * ```
 */
export function byteLevelToBytes(text: string): Uint8Array | null {
  const out = new Uint8Array(text.length); // one byte per character
  return byteLevelInto(text, out, 0) < 0 ? null : out;
}
