/**
 * Typed access to GGUF metadata: one getter per value kind (int, float, bool, string,
 * array). Each returns the value or a fallback, and throws a one-line
 * {@linkcode FormatError} naming the file and the key, with what was expected and what was
 * found (`m.gguf: metadata 'llama.block_count' must be a non-negative integer, got "5"`).
 *
 * Key names follow llama.cpp's `LLM_KV_NAMES` (src/llama-arch.cpp), e.g.
 * `{arch}.embedding_length`, `tokenizer.ggml.tokens`.
 *
 * @module
 */
import { FormatError } from "../../core/errors.ts";
import { type GgufFile, type GgufValue, nm } from "./parse.ts";

/**
 * The raw metadata value stored under `key`, or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { meta } from "./metadata.ts";
 * const g = { file: "m.gguf", metadata: new Map([["general.name", "tiny"]]) };
 * assert.equal(meta(g, "general.name"), "tiny");
 * ```
 */
export function meta(g: Pick<GgufFile, "file" | "metadata">, key: string): GgufValue | undefined {
  return g.metadata.get(key);
}

/**
 * The value under `key` when `ok` accepts it. Absent: `fallback` when given (or when the key
 * is optional), else `<file>: metadata '<key>' is missing`; rejected: `... must be <what>,
 * got <value>`. The one place the scalar getters below check and word their errors.
 */
function checked<T>(
  g: Pick<GgufFile, "file" | "metadata">,
  key: string,
  ok: (v: GgufValue) => boolean,
  what: string,
  absent: { fallback?: T; optional?: boolean },
): T | undefined {
  const v = meta(g, key);
  if (v === undefined) {
    if (absent.fallback !== undefined || absent.optional) return absent.fallback;
    throw new FormatError(g.file, `metadata '${nm(key)}' is missing`);
  }
  if (!ok(v)) {
    throw new FormatError(g.file, `metadata '${nm(key)}' must be ${what}, got ${describe(v)}`);
  }
  return v as T;
}

/**
 * A non-negative integer (counts, sizes, ids).
 *
 * @param g The parsed file.
 * @param key Metadata key, e.g. `llama.block_count`.
 * @param fallback Returned when the key is absent; without it, absence is an error.
 * @throws {FormatError} `<file>: metadata '<key>' is missing` or `... must be a non-negative
 *   integer, got <value>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metaInt } from "./metadata.ts";
 * const g = { file: "m.gguf", metadata: new Map([["llama.block_count", 5]]) };
 * assert.equal(metaInt(g, "llama.block_count"), 5);
 * assert.equal(metaInt(g, "llama.expert_count", 0), 0);
 * assert.throws(() => metaInt(g, "llama.context_length"), /m.gguf: metadata 'llama.context_length' is missing/);
 * ```
 */
export function metaInt(
  g: Pick<GgufFile, "file" | "metadata">,
  key: string,
  fallback?: number,
): number {
  const ok = (v: GgufValue) => typeof v === "number" && Number.isInteger(v) && v >= 0;
  return checked<number>(g, key, ok, "a non-negative integer", { fallback })!;
}

/**
 * A finite number (epsilons, RoPE base).
 *
 * @param g The parsed file.
 * @param key Metadata key, e.g. `llama.rope.freq_base`.
 * @param fallback Returned when the key is absent; without it, absence is an error.
 * @throws {FormatError} naming the file and key when missing or not a finite number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metaFloat } from "./metadata.ts";
 * const g = { file: "m.gguf", metadata: new Map([["llama.rope.freq_base", 10000]]) };
 * assert.equal(metaFloat(g, "llama.rope.freq_base"), 10000);
 * ```
 */
export function metaFloat(
  g: Pick<GgufFile, "file" | "metadata">,
  key: string,
  fallback?: number,
): number {
  const ok = (v: GgufValue) => typeof v === "number" && Number.isFinite(v);
  return checked<number>(g, key, ok, "a number", { fallback })!;
}

/**
 * A bool, or `fallback` when absent.
 *
 * @throws {FormatError} naming the file and key when the value is not a bool.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metaBool } from "./metadata.ts";
 * const g = { file: "m.gguf", metadata: new Map([["tokenizer.ggml.add_bos_token", 1]]) };
 * assert.throws(() => metaBool(g, "tokenizer.ggml.add_bos_token", true), /must be a bool, got 1/);
 * ```
 */
export function metaBool(
  g: Pick<GgufFile, "file" | "metadata">,
  key: string,
  fallback: boolean,
): boolean {
  return checked<boolean>(g, key, (v) => typeof v === "boolean", "a bool", { fallback })!;
}

/**
 * A string, or undefined when absent.
 *
 * @throws {FormatError} naming the file and key when the value is not a string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metaString } from "./metadata.ts";
 * const g = { file: "m.gguf", metadata: new Map([["general.architecture", "llama"]]) };
 * assert.equal(metaString(g, "general.architecture"), "llama");
 * assert.equal(metaString(g, "general.name"), undefined);
 * ```
 */
export function metaString(
  g: Pick<GgufFile, "file" | "metadata">,
  key: string,
): string | undefined {
  return checked<string>(g, key, (v) => typeof v === "string", "a string", { optional: true });
}

/**
 * An array whose every element passes `check`, or undefined when absent.
 *
 * @param g The parsed file.
 * @param key Metadata key, e.g. `tokenizer.ggml.tokens`.
 * @param check Element type guard ({@linkcode isString}, {@linkcode isNumber}, {@linkcode isInt}).
 * @param what The element kind for the error message (`a string`).
 * @throws {FormatError} naming the file, key and first bad index.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isString, metaArray } from "./metadata.ts";
 * const g = { file: "m.gguf", metadata: new Map([["tokenizer.ggml.tokens", ["a", 3]]]) };
 * assert.throws(
 *   () => metaArray(g, "tokenizer.ggml.tokens", isString, "a string"),
 *   /m.gguf: metadata 'tokenizer.ggml.tokens'\[1\] must be a string, got 3/,
 * );
 * ```
 */
export function metaArray<T>(
  g: Pick<GgufFile, "file" | "metadata">,
  key: string,
  check: (x: GgufValue) => x is GgufValue & T,
  what: string,
): T[] | undefined {
  const v = meta(g, key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    throw new FormatError(g.file, `metadata '${nm(key)}' must be an array, got ${describe(v)}`);
  }
  for (let i = 0; i < v.length; i++) {
    if (!check(v[i])) {
      throw new FormatError(
        g.file,
        `metadata '${nm(key)}'[${i}] must be ${what}, got ${describe(v[i])}`,
      );
    }
  }
  return v as T[];
}

/**
 * A metadata value as error messages show it: strings quoted and cut at 40 characters,
 * arrays by length, bigints with `n`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { describe } from "./metadata.ts";
 * assert.equal(describe([1, 2, 3]), "an array of 3");
 * ```
 */
export function describe(v: GgufValue): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v);
  if (typeof v === "bigint") return `${v}n`;
  return String(v);
}

/** Element guard for {@linkcode metaArray}: a string. */
export const isString = (x: GgufValue): x is string => typeof x === "string";
/** Element guard for {@linkcode metaArray}: a number. */
export const isNumber = (x: GgufValue): x is number => typeof x === "number";
/** Element guard for {@linkcode metaArray}: an integer. */
export const isInt = (x: GgufValue): x is number => typeof x === "number" && Number.isInteger(x);
